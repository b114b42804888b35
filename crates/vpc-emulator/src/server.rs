//! HTTP glue: one handler answers every API request (any path, GET or POST), the admin API
//! sits under `/_emulator/`. All shared state is behind short-held mutexes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use crate::auth::{self, AuthContext, SignatureStyle, SignedParts};
use crate::counters::SUCCESS;
use crate::error::ApiError;
use crate::faults::FaultOutcome;
use crate::ops;
use crate::params::{Params, parse_urlencoded};
use crate::render::{Format, render};
use crate::service::{Emulator, lock};
use crate::sts;

/// The full router: API on every path, admin API under `/_emulator` if `with_admin`.
pub fn router(emu: Arc<Emulator>, with_admin: bool) -> Router {
    let mut r = Router::new();
    if with_admin {
        r = r.nest("/_emulator", crate::admin::router());
    }
    r.fallback(api).with_state(emu)
}

/// The admin API alone (for `--admin-listen`).
pub fn admin_router(emu: Arc<Emulator>) -> Router {
    Router::new()
        .nest("/_emulator", crate::admin::router())
        .with_state(emu)
}

/// What the handler learned about a request before running it.
struct Call {
    request_id: String,
    format: Format,
    action: &'static str,
    /// The account of the calling key, once it is known (for the per-account counters).
    account: Option<String>,
}

async fn api(
    State(emu): State<Arc<Emulator>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut buf = uuid::Uuid::encode_buffer();
    let request_id = uuid::Uuid::new_v4()
        .as_hyphenated()
        .encode_upper(&mut buf)
        .to_owned();
    let mut query = BTreeMap::new();
    if let Some(q) = uri.query() {
        parse_urlencoded(q.as_bytes(), &mut query);
    }
    let mut all = query.clone();
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form && !body.is_empty() {
        parse_urlencoded(&body, &mut all);
    }
    let params = Params::new(all);
    let format = Format::from_param(params.get("Format"));
    let style = auth::style_of(&headers);
    let header_str = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (action_name, version) = match style {
        SignatureStyle::V3 => (header_str("x-acs-action"), header_str("x-acs-version")),
        SignatureStyle::V1 => (params.get("Action"), params.get("Version")),
    };
    let mut call = Call {
        request_id,
        format,
        action: "_unknown",
        account: None,
    };
    if method != Method::GET && method != Method::POST {
        let err = ApiError::new(
            400,
            "UnsupportedHTTPMethod",
            "Specified HTTP method is not supported.",
        );
        return fail(&emu, &call, err, None);
    }
    let Some(action_name) = action_name else {
        return fail(&emu, &call, ApiError::missing("Action"), None);
    };
    let Some((action, expected_version)) = ops::known_action(action_name) else {
        return fail(&emu, &call, ApiError::action_not_found(), None);
    };
    call.action = action;
    match version {
        None => return fail(&emu, &call, ApiError::missing("Version"), None),
        Some(v) if v != expected_version => {
            return fail(&emu, &call, ApiError::invalid_version(), None);
        }
        Some(_) => {}
    }
    let now = emu.clock.now_ms();
    if action == "AssumeRoleWithOIDC" {
        // Anonymous by design: the OIDC token is the credential.
        let issued = sts::assume_role_with_oidc(
            &params,
            emu.config.oidc.as_ref(),
            emu.config.settings.test_min_session_seconds,
            now,
            random_hex,
        );
        return answer_issued(&emu, &call, issued, now);
    }

    let parts = SignedParts {
        method: method.as_str(),
        path: uri.path(),
        query: &query,
        params: &params.map,
        headers: &headers,
        body: &body,
    };
    let verified = {
        let keys = emu
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        auth::verify(
            &parts,
            &AuthContext {
                keys: &keys,
                now_ms: now,
                window_ms: emu.config.settings.timestamp_window_secs * 1000,
            },
        )
    };
    let key_id = match verified {
        Ok(id) => id,
        Err(e) => return fail(&emu, &call, e, None),
    };
    if let Some(nonce) = auth::nonce_of(&parts)
        && !lock(&emu.nonces).check_and_insert(nonce, now)
    {
        return fail(&emu, &call, ApiError::nonce_used(), None);
    }
    // RAM: the key's policy must allow the action (after authentication, before faults);
    // GetCallerIdentity needs no permission (its API page), AssumeRole is decided by the
    // role's trust policy alone. The key's account decides which gateways it sees.
    let key = emu
        .keys
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key_id)
        .cloned();
    let Some(key) = key else {
        return fail(&emu, &call, ApiError::access_key_not_found(), None);
    };
    call.account = Some(key.account_id.clone());
    if action != "GetCallerIdentity"
        && action != "AssumeRole"
        && let Err(e) = key.authorize(action)
    {
        return fail(&emu, &call, e, None);
    }

    let outcome = lock(&emu.faults).decide(&key.account_id, action, now, rand::random::<f64>);
    match outcome {
        FaultOutcome::Proceed => {}
        FaultOutcome::Fail(e) => return fail(&emu, &call, e, None),
        FaultOutcome::RateLimited {
            error,
            limit,
            time_left_ms,
        } => {
            let header = format!(
                "Limit:{limit},Remain:0,TimeLeft:{time_left_ms},Reset:{}",
                now + time_left_ms
            );
            return fail(&emu, &call, error, Some(header));
        }
        FaultOutcome::Drop => {
            lock(&emu.counters).record(action, "_dropped", call.account.as_deref());
            tracing::info!(action, "fault: dropping connection");
            return dropped();
        }
        FaultOutcome::Delay(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    if action == "GetCallerIdentity" {
        return succeed(&emu, &call, sts::caller_identity(&key_id, &key));
    }
    // Re-read the clock: a slow-response fault may have slept.
    let now = emu.clock.now_ms();
    if action == "AssumeRole" {
        let issued = sts::assume_role(
            &params,
            &emu.config,
            &key.account_id,
            &key.principal,
            now,
            random_hex,
        );
        return answer_issued(&emu, &call, issued, now);
    }
    let result = {
        let mut st = lock(&emu.state);
        ops::run_as(&key.account_id, action, &params, &mut st, now)
    };
    match result {
        Ok(out) => {
            if !action.starts_with("Describe") {
                emu.touch();
                tracing::info!(action, request_id = %call.request_id, "mutation accepted");
            }
            if let Some(key) = &out.created {
                lock(&emu.counters).record_create(key);
            }
            succeed(&emu, &call, out.body)
        }
        Err(e) => fail(&emu, &call, e, None),
    }
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Stores newly issued temporary keys (forgetting long-expired ones) and answers them.
fn answer_issued(
    emu: &Emulator,
    call: &Call,
    issued: Result<sts::Issued, ApiError>,
    now: u64,
) -> Response {
    match issued {
        Ok(i) => {
            let mut keys = emu
                .keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.prune(now);
            keys.insert(i.access_key_id.clone(), i.key);
            drop(keys);
            tracing::info!(action = call.action, access_key_id = %i.access_key_id, "issued temporary keys");
            succeed(emu, call, i.body)
        }
        Err(e) => fail(emu, call, e, None),
    }
}

fn succeed(emu: &Emulator, call: &Call, mut body: Value) -> Response {
    lock(&emu.counters).record(call.action, SUCCESS, call.account.as_deref());
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "RequestId".to_owned(),
            Value::String(call.request_id.clone()),
        );
    }
    let root = format!("{}Response", call.action);
    respond(call, 200, &root, &body, None)
}

fn fail(emu: &Emulator, call: &Call, err: ApiError, ratelimit: Option<String>) -> Response {
    lock(&emu.counters).record(call.action, &err.code, call.account.as_deref());
    tracing::debug!(action = call.action, code = %err.code, status = err.status, "request refused");
    let mut body = json!({
        "RequestId": call.request_id,
        "HostId": emu.config.settings.host_id,
        "Code": err.code,
        "Message": err.message,
        "Recommend": format!(
            "https://api.aliyun.com/troubleshoot?q={}&product=Vpc&requestId={}",
            err.code, call.request_id
        ),
    });
    if let (Some(detail), Some(obj)) = (&err.access_denied_detail, body.as_object_mut()) {
        obj.insert("AccessDeniedDetail".to_owned(), (**detail).clone());
    }
    respond(call, err.status, "Error", &body, ratelimit)
}

fn respond(
    call: &Call,
    status: u16,
    root: &str,
    body: &Value,
    ratelimit: Option<String>,
) -> Response {
    let text = render(call.format, root, body);
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(call.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&call.request_id) {
        h.insert("x-acs-request-id", v);
    }
    if let Some(v) = ratelimit.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert("x-ratelimit-user-api", v);
    }
    resp
}

/// A response whose body fails at once: the server closes the connection without a
/// complete answer, which clients see as a dropped connection.
fn dropped() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("fault injection: connection dropped"))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;

    const T0: u64 = 1_700_000_000_000;

    /// Key `ak-a` of account A (which owns `vpn-a`), key `ak-b` of account B, allowed only
    /// to describe (GetCallerIdentity needs no permission).
    const CONFIG: &str = r#"
access_keys:
  - {id: ak-a, secret: sa, account_id: "1111111111111111"}
  - {id: ak-b, secret: sb, account_id: "2222222222222222", allowed_actions: ["vpc:Describe*"]}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1, account_id: "1111111111111111"}
"#;

    /// A V1-signed POST of `action` with `extra` parameters, answered by the handler.
    async fn call(
        emu: &Arc<Emulator>,
        (key, secret): (&str, &str),
        action: &str,
        version: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let timestamp = jiff::Timestamp::from_millisecond(T0 as i64)
            .expect("time")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let nonce = uuid::Uuid::new_v4().to_string();
        let mut params: BTreeMap<String, String> = [
            ("Action", action),
            ("Version", version),
            ("Format", "JSON"),
            ("Timestamp", timestamp.as_str()),
            ("SignatureNonce", nonce.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("AccessKeyId", key),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let signature = alicloud_signature::sign_v1(secret, "POST", &params);
        params.insert("Signature".to_owned(), signature);
        let body: String = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    alicloud_signature::percent_encode(k),
                    alicloud_signature::percent_encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let resp = api(
            State(emu.clone()),
            Method::POST,
            Uri::from_static("/"),
            headers,
            Bytes::from(body),
        )
        .await;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn each_key_acts_for_its_account() {
        let config = Config::parse(CONFIG, "t").expect("config");
        let emu = Arc::new(Emulator::new(config, Arc::new(ManualClock::new(T0)), None));
        let (a, b) = (("ak-a", "sa"), ("ak-b", "sb"));
        let describe = [("RegionId", "cn-hangzhou"), ("VpnGatewayId", "vpn-a")];
        let vpc = crate::actions::VPC_VERSION;
        let sts = crate::actions::STS_VERSION;

        let (status, body) = call(&emu, b, "DescribeVpnGateway", vpc, &describe).await;
        assert_eq!(
            (status, body["Code"].as_str()),
            (404, Some("InvalidVpnGatewayInstanceId.NotFound")),
            "another account's gateway does not exist for B: {body}"
        );
        let (status, body) = call(&emu, a, "DescribeVpnGateway", vpc, &describe).await;
        assert_eq!(
            (status, body["VpnGatewayId"].as_str()),
            (200, Some("vpn-a")),
            "{body}"
        );

        for (creds, account) in [(a, "1111111111111111"), (b, "2222222222222222")] {
            let key = creds.0;
            let (status, body) = call(&emu, creds, "GetCallerIdentity", sts, &[]).await;
            assert_eq!(status, 200, "{key}: {body}");
            assert_eq!(body["AccountId"], account, "{key}: {body}");
            assert_eq!(body["IdentityType"], "RAMUser", "{key}: {body}");
            assert_eq!(
                body["Arn"],
                format!("acs:ram::{account}:user/{key}"),
                "{key}: {body}"
            );
            assert!(body["RequestId"].is_string(), "{key}: {body}");
        }
        // A wrong secret is refused like any signed call.
        let (status, body) = call(&emu, ("ak-b", "wrong"), "GetCallerIdentity", sts, &[]).await;
        assert_eq!(
            (status, body["Code"].as_str()),
            (400, Some("SignatureDoesNotMatch")),
            "{body}"
        );
    }

    /// Asserts an error answer.
    fn assert_code((status, body): (u16, &Value), want_status: u16, want_code: &str) {
        assert_eq!(
            (status, body["Code"].as_str()),
            (want_status, Some(want_code)),
            "{body}"
        );
    }

    /// Account A (`1111111111111111`, key `ak-a`) may assume B's role `vpn-operator` with
    /// external ID `ext-1`; sessions may be as short as 60 s (test only).
    const MULTI: &str = r#"
settings: {test_min_session_seconds: 60}
access_keys:
  - {id: ak-a, secret: sa, account_id: "1111111111111111"}
  - {id: ak-c, secret: sc, account_id: "3333333333333333"}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-b, region: cn-hangzhou, vpc_id: vpc-2, account_id: "2222222222222222"}
accounts:
  - id: "2222222222222222"
    roles:
      - name: vpn-operator
        allowed_actions: ["vpc:Describe*"]
        trust_policy:
          Statement:
            - Action: sts:AssumeRole
              Effect: Allow
              Principal: {RAM: ["acs:ram::1111111111111111:root"]}
              Condition: {StringEquals: {"sts:ExternalId": ext-1}}
          Version: "1"
  - id: "3333333333333333"
    roles:
      - name: chained
        trust_policy:
          Statement:
            - {Action: sts:AssumeRole, Effect: Allow, Principal: {RAM: "acs:ram::2222222222222222:role/vpn-operator"}}
"#;

    #[tokio::test]
    async fn assume_role_gives_a_session_of_the_roles_account_until_it_expires() {
        let config = Config::parse(MULTI, "t").expect("config");
        let clock = Arc::new(ManualClock::new(T0));
        let emu = Arc::new(Emulator::new(config, clock.clone(), None));
        let sts = crate::actions::STS_VERSION;
        let vpc = crate::actions::VPC_VERSION;
        let role = "acs:ram::2222222222222222:role/vpn-operator";
        let a = ("ak-a", "sa");
        let ask = |arn: &'static str, ext: &'static str, secs: &'static str| {
            vec![
                ("RoleArn", arn),
                ("RoleSessionName", "route-sync"),
                ("ExternalId", ext),
                ("DurationSeconds", secs),
            ]
        };
        // Refusals: (caller, parameters, status, code).
        type Refusal<'a> = ((&'a str, &'a str), Vec<(&'a str, &'a str)>, u16, &'a str);
        let refusals: Vec<Refusal<'_>> = vec![
            (a, ask(role, "ext-2", "900"), 403, "NoPermission"),
            (
                ("ak-c", "sc"),
                ask(role, "ext-1", "900"),
                403,
                "NoPermission",
            ),
            (
                a,
                ask("acs:ram::2222222222222222:role/nope", "ext-1", "900"),
                404,
                "EntityNotExist.Role",
            ),
            (
                a,
                ask("arn:role", "ext-1", "900"),
                400,
                "InvalidParameter.RoleArn",
            ),
            (
                a,
                ask(role, "ext-1", "3601"),
                400,
                "InvalidParameter.DurationSeconds",
            ),
            (
                a,
                ask(role, "ext-1", "59"),
                400,
                "InvalidParameter.DurationSeconds",
            ),
            (
                a,
                [ask(role, "ext-1", "900"), vec![("Policy", "{}")]].concat(),
                400,
                "InvalidParameter.PolicyGrammar",
            ),
            (
                a,
                vec![
                    ("RoleArn", role),
                    ("RoleSessionName", "x"),
                    ("ExternalId", "ext-1"),
                ],
                400,
                "InvalidParameter.RoleSessionName",
            ),
            (a, vec![("RoleArn", role)], 400, "MissingRoleSessionName"),
        ];
        for (caller, params, status, code) in &refusals {
            let (got, body) = call(&emu, *caller, "AssumeRole", sts, params).await;
            assert_code((got, &body), *status, code);
        }

        let (status, body) = call(&emu, a, "AssumeRole", sts, &ask(role, "ext-1", "60")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["RequestId"].is_string(), "{body}");
        let user = &body["AssumedRoleUser"];
        assert_eq!(user["Arn"], format!("{role}/route-sync"), "{body}");
        assert!(
            user["AssumedRoleId"]
                .as_str()
                .is_some_and(|id| id.ends_with(":route-sync")),
            "{body}"
        );
        let creds = &body["Credentials"];
        assert_eq!(
            creds["Expiration"], "2023-11-14T22:14:20Z",
            "T0 + 60 s: {body}"
        );
        let key_id = creds["AccessKeyId"].as_str().expect("key id").to_owned();
        let secret = creds["AccessKeySecret"]
            .as_str()
            .expect("secret")
            .to_owned();
        let token = creds["SecurityToken"].as_str().expect("token").to_owned();
        assert!(key_id.starts_with("STS."), "{key_id}");
        let session = (key_id.as_str(), secret.as_str());
        let signed = [
            ("RegionId", "cn-hangzhou"),
            ("VpnGatewayId", "vpn-b"),
            ("SecurityToken", token.as_str()),
        ];

        // The session acts for B: it sees B's gateway, GetCallerIdentity tells the role.
        let (status, body) = call(&emu, session, "DescribeVpnGateway", vpc, &signed).await;
        assert_eq!(
            (status, body["VpnGatewayId"].as_str()),
            (200, Some("vpn-b")),
            "{body}"
        );
        let (status, body) = call(&emu, session, "GetCallerIdentity", sts, &signed[2..]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["AccountId"], "2222222222222222", "{body}");
        assert_eq!(body["IdentityType"], "AssumedRoleUser", "{body}");
        assert_eq!(
            body["Arn"], "acs:ram::2222222222222222:assumed-role/vpn-operator/route-sync",
            "{body}"
        );
        // The role's policy applies to its sessions.
        let (status, body) = call(&emu, session, "DeleteVpnPbrRouteEntry", vpc, &signed).await;
        assert_code((status, &body), 403, "Forbidden");
        // Without its token the session key is refused.
        let (status, body) = call(&emu, session, "GetCallerIdentity", sts, &[]).await;
        assert_code((status, &body), 400, "MissingSecurityToken");

        // A session may itself assume a role that trusts its role (role chaining), signing
        // with its token; the configured key of A may not.
        let chained = [
            ("RoleArn", "acs:ram::3333333333333333:role/chained"),
            ("RoleSessionName", "hop"),
        ];
        let (status, body) = call(&emu, a, "AssumeRole", sts, &chained).await;
        assert_code((status, &body), 403, "NoPermission");
        let with_token = [chained.as_slice(), &signed[2..]].concat();
        let (status, body) = call(&emu, session, "AssumeRole", sts, &with_token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["AssumedRoleUser"]["Arn"], "acs:ram::3333333333333333:role/chained/hop",
            "{body}"
        );

        // After Expiration: the token has expired (the timestamp is still in its window).
        clock.advance(60_000);
        let (status, body) = call(&emu, session, "GetCallerIdentity", sts, &signed[2..]).await;
        assert_code((status, &body), 400, "InvalidSecurityToken.Expired");
    }

    /// A policy file of the repository's `deploy/` (the ones docs/install.md shows), as JSON.
    fn deploy_policy(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The files of docs/install.md, "Many accounts, many teams", as they are: the operator's
    /// RRSA role (policies/operator-assume-role.json lets it assume the target roles) assumes
    /// the target account's role, whose trust policy is policies/target-role-trust.json and
    /// whose sessions may call what ram-policy.json allows.
    #[tokio::test]
    async fn the_documented_trust_policy_admits_the_operators_role_with_its_external_id() {
        let trust = deploy_policy("policies/target-role-trust.json");
        let operator_policy = deploy_policy("policies/operator-assume-role.json");
        let vpc_policy = deploy_policy("ram-policy.json");
        let statement = &trust["Statement"][0];
        let operator_role = statement["Principal"]["RAM"][0]
            .as_str()
            .expect("the trusted role");
        let external_id = statement["Condition"]["StringEquals"]["sts:ExternalId"]
            .as_str()
            .expect("the ExternalId");
        let operator_account = operator_role
            .strip_prefix("acs:ram::")
            .and_then(|r| r.split(':').next())
            .expect("the operator's account");
        let op_statement = &operator_policy["Statement"][0];
        assert_eq!(op_statement["Action"], "sts:AssumeRole");
        let target_role = op_statement["Resource"][0]
            .as_str()
            .expect("a target role")
            .to_owned();
        let (target_account, target_name) = target_role
            .strip_prefix("acs:ram::")
            .and_then(|r| r.split_once(":role/"))
            .expect("acs:ram::<account>:role/<name>");
        let provider = format!("acs:ram::{operator_account}:oidc-provider/ack-rrsa-test");
        let config = json!({
            "access_keys": [{"id": "ak-op", "secret": "so", "account_id": operator_account}],
            "regions": ["cn-hangzhou"],
            "vpn_gateways": [{"id": "vpn-t", "region": "cn-hangzhou", "vpc_id": "vpc-t",
                "account_id": target_account}],
            "oidc": {"provider_arn": provider, "roles": [{"arn": operator_role}]},
            "accounts": [{"id": target_account, "roles": [{
                "name": target_name,
                "trust_policy": trust,
                "allowed_actions": vpc_policy["Statement"][0]["Action"],
            }]}],
        });
        let config = Config::parse(&config.to_string(), "t").expect("the policies load");
        let emu = Arc::new(Emulator::new(config, Arc::new(ManualClock::new(T0)), None));
        let (sts, vpc) = (crate::actions::STS_VERSION, crate::actions::VPC_VERSION);

        // The operator's identity: a session of its RRSA role (AssumeRoleWithOIDC is anonymous;
        // the key `call` signs with is not looked at).
        let oidc = [
            ("RoleArn", operator_role),
            ("OIDCProviderArn", provider.as_str()),
            ("OIDCToken", "eyJ.test.token"),
            ("RoleSessionName", "vpn-pbr-operator"),
        ];
        let (status, body) = call(&emu, ("ak-op", "so"), "AssumeRoleWithOIDC", sts, &oidc).await;
        assert_eq!(status, 200, "{body}");
        let creds = &body["Credentials"];
        let text = |v: &Value| v.as_str().expect("credential field").to_owned();
        let (op_key, op_secret, op_token) = (
            text(&creds["AccessKeyId"]),
            text(&creds["AccessKeySecret"]),
            text(&creds["SecurityToken"]),
        );
        let operator = (op_key.as_str(), op_secret.as_str());
        let ask = |id: Option<&'static str>| {
            let mut p = vec![
                ("RoleArn", target_role.as_str()),
                ("RoleSessionName", "vpn-pbr-operator"),
                ("SecurityToken", op_token.as_str()),
            ];
            p.extend(id.map(|id| ("ExternalId", id)));
            p
        };

        // A wrong or missing ExternalId is refused; so is a key of the operator's account that
        // is not its role.
        for id in [Some("vpn-pbr-someone-else"), None] {
            let (status, body) = call(&emu, operator, "AssumeRole", sts, &ask(id)).await;
            assert_code((status, &body), 403, "NoPermission");
        }
        let right = [
            ("RoleArn", target_role.as_str()),
            ("RoleSessionName", "vpn-pbr-operator"),
            ("ExternalId", external_id),
        ];
        let (status, body) = call(&emu, ("ak-op", "so"), "AssumeRole", sts, &right).await;
        assert_code((status, &body), 403, "NoPermission");

        // The right one: a session of the target account.
        let with_token = [right.as_slice(), &[("SecurityToken", op_token.as_str())]].concat();
        let (status, body) = call(&emu, operator, "AssumeRole", sts, &with_token).await;
        assert_eq!(status, 200, "{body}");
        let creds = &body["Credentials"];
        let (key, secret, token) = (
            text(&creds["AccessKeyId"]),
            text(&creds["AccessKeySecret"]),
            text(&creds["SecurityToken"]),
        );
        let session = (key.as_str(), secret.as_str());
        let gateway = [
            ("RegionId", "cn-hangzhou"),
            ("VpnGatewayId", "vpn-t"),
            ("SecurityToken", token.as_str()),
        ];
        let (status, body) = call(&emu, session, "GetCallerIdentity", sts, &gateway[2..]).await;
        assert_eq!(
            (status, body["AccountId"].as_str()),
            (200, Some(target_account)),
            "{body}"
        );
        // Least privilege: what the operator calls, and nothing it does not.
        let (status, body) = call(&emu, session, "DescribeVpnGateway", vpc, &gateway).await;
        assert_eq!(status, 200, "{body}");
        let connection = [
            ("RegionId", "cn-hangzhou"),
            ("VpnConnectionId", "vco-t"),
            ("SecurityToken", token.as_str()),
        ];
        let (status, body) = call(&emu, session, "DescribeVpnConnection", vpc, &connection).await;
        assert_code((status, &body), 403, "Forbidden");
    }

    #[tokio::test]
    async fn each_account_has_its_own_rate_limit() {
        // Default 2/s for every account; account 3 has its own 1/s.
        let config = Config::parse(
            r#"
access_keys:
  - {id: ak-a, secret: sa, account_id: "1111111111111111"}
  - {id: ak-b, secret: sb, account_id: "2222222222222222"}
  - {id: ak-c, secret: sc, account_id: "3333333333333333"}
accounts:
  - {id: "3333333333333333", rate_limit_per_second: 1}
faults: {rate_limit_per_second: 2}
"#,
            "t",
        )
        .expect("config");
        let emu = Arc::new(Emulator::new(config, Arc::new(ManualClock::new(T0)), None));
        let sts = crate::actions::STS_VERSION;
        let who = |creds| call(&emu, creds, "GetCallerIdentity", sts, &[]);
        let (a, b, c) = (("ak-a", "sa"), ("ak-b", "sb"), ("ak-c", "sc"));
        for _ in 0..2 {
            assert_eq!(who(a).await.0, 200);
        }
        let (status, body) = who(a).await;
        assert_code((status, &body), 400, "Throttling.User");
        // A busy account A does not slow B (its own bucket, the default rate).
        for _ in 0..2 {
            let (status, body) = who(b).await;
            assert_eq!(status, 200, "{body}");
        }
        assert_eq!(who(b).await.0, 400);
        // C's own rate (1/s).
        assert_eq!(who(c).await.0, 200);
        assert_eq!(who(c).await.0, 400);
    }
}
