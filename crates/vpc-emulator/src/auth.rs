//! Request authentication as the real endpoint does it: signature V1 (HMAC-SHA1 over the
//! parameters) or V3 (`ACS3-HMAC-SHA256` Authorization header), timestamp window, nonce
//! replay, access keys and STS tokens. The signing itself is `alicloud_signature`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use http::HeaderMap;

use super::actions::{ACTIONS, VPC_VERSION};
use super::config::DEFAULT_ACCOUNT_ID;
use super::error::{ApiError, ForbiddenCode};
use alicloud_signature::{
    V3Request, sha256_hex, sign_v1, sign_v3, string_to_sign_v1, string_to_sign_v3,
};

#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub secret: String,
    pub security_token: Option<String>,
    /// Temporary (STS) keys expire.
    pub expires_ms: Option<u64>,
    /// The key's RAM policy: action patterns it may call; `None`: every action.
    pub allowed_actions: Option<Vec<String>>,
    /// The code a refused action gets.
    pub forbidden_code: ForbiddenCode,
    /// The account the key acts for: it sees only this account's gateways.
    pub account_id: String,
    /// Who the key is, as `GetCallerIdentity` tells it.
    pub principal: Principal,
}

/// The identity behind a key (`GetCallerIdentity`'s `IdentityType` and the fields it brings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A configured key: a RAM user of its account, named after the key (our choice).
    RamUser { name: String },
    /// Temporary keys of `AssumeRole` or `AssumeRoleWithOIDC`: a session of the role.
    AssumedRole {
        role_arn: String,
        role_id: String,
        session: String,
    },
}

impl KeyEntry {
    /// A key of the default account, without a policy (every action allowed), a RAM user
    /// named `user`.
    pub fn new(
        secret: String,
        security_token: Option<String>,
        expires_ms: Option<u64>,
        user: &str,
    ) -> Self {
        Self {
            secret,
            security_token,
            expires_ms,
            allowed_actions: None,
            forbidden_code: ForbiddenCode::Forbidden,
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            principal: Principal::RamUser {
                name: user.to_owned(),
            },
        }
    }

    /// RAM's verdict on `action` for this key: allowed, or HTTP 403 naming the action.
    pub fn authorize(&self, action: &str) -> Result<(), ApiError> {
        match &self.allowed_actions {
            Some(patterns) if !patterns.iter().any(|p| pattern_matches(p, action)) => {
                Err(ApiError::forbidden(self.forbidden_code, action))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a RAM action pattern (`CreateVpnPbrRouteEntry`, `vpc:CreateVpnPbrRouteEntry`,
/// `vpc:Describe*`, `*`) covers `action`; case-insensitive like RAM.
pub fn pattern_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let p = p.strip_prefix("vpc:").unwrap_or(&p);
    let a = action.to_ascii_lowercase();
    match p.strip_suffix('*') {
        Some(prefix) => a.starts_with(prefix),
        None => a == p,
    }
}

/// Whether a pattern covers at least one VPC action the emulator answers (a typo in a policy
/// is refused at load rather than silently denying everything).
pub fn pattern_is_known(pattern: &str) -> bool {
    ACTIONS
        .iter()
        .filter(|(_, version)| *version == VPC_VERSION)
        .any(|(a, _)| pattern_matches(pattern, a))
}

#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    keys: HashMap<String, KeyEntry>,
}

impl KeyStore {
    pub fn insert(&mut self, id: String, entry: KeyEntry) {
        self.keys.insert(id, entry);
    }

    pub fn get(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.get(id)
    }

    /// Forgets temporary keys that expired a day ago or more (until then a call with one
    /// gets `InvalidSecurityToken.Expired`, not `InvalidAccessKeyId.NotFound`).
    pub fn prune(&mut self, now_ms: u64) {
        const KEEP_EXPIRED_MS: u64 = 24 * 3600 * 1000;
        self.keys.retain(|_, k| {
            k.expires_ms
                .is_none_or(|e| e.saturating_add(KEEP_EXPIRED_MS) > now_ms)
        });
    }
}

/// Remembers nonces for the timestamp window; a nonce seen again inside it is refused.
#[derive(Debug)]
pub struct NonceCache {
    seen: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
    max: usize,
    ttl_ms: u64,
}

impl NonceCache {
    pub fn new(max: usize, ttl_ms: u64) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            ttl_ms,
        }
    }

    /// Records `nonce`; false if it was already used.
    pub fn check_and_insert(&mut self, nonce: &str, now_ms: u64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if t.saturating_add(self.ttl_ms) > now_ms && self.order.len() < self.max {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
        if self.seen.contains_key(nonce) {
            return false;
        }
        self.seen.insert(nonce.to_owned(), now_ms);
        self.order.push_back((now_ms, nonce.to_owned()));
        true
    }

    pub fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }
}

/// The parts of an HTTP request that signatures cover.
pub struct SignedParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Query string parameters only (V3 signs these).
    pub query: &'a BTreeMap<String, String>,
    /// Query and form parameters together (V1 signs these).
    pub params: &'a BTreeMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Which signature a request carries; decided by the Authorization header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStyle {
    V1,
    V3,
}

pub fn style_of(headers: &HeaderMap) -> SignatureStyle {
    match headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v.starts_with("ACS3-") => SignatureStyle::V3,
        _ => SignatureStyle::V1,
    }
}

/// Authentication inputs.
pub struct AuthContext<'a> {
    pub keys: &'a KeyStore,
    pub now_ms: u64,
    pub window_ms: u64,
}

/// Verifies the request; returns the access key id. The nonce is checked by the caller
/// afterwards ([`nonce_of`]) so that a forged request cannot burn a nonce.
pub fn verify(req: &SignedParts<'_>, ctx: &AuthContext<'_>) -> Result<String, ApiError> {
    match style_of(req.headers) {
        SignatureStyle::V1 => verify_v1(req, ctx),
        SignatureStyle::V3 => verify_v3(req, ctx),
    }
}

fn param<'a>(req: &'a SignedParts<'_>, name: &str) -> Result<&'a str, ApiError> {
    req.params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(name))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn verify_v1(req: &SignedParts<'_>, ctx: &AuthContext<'_>) -> Result<String, ApiError> {
    let key_id = param(req, "AccessKeyId")?;
    let signature = param(req, "Signature")?;
    let method = param(req, "SignatureMethod")?;
    if method != "HMAC-SHA1" {
        return Err(ApiError::signature_method());
    }
    if let Some(v) = req.params.get("SignatureVersion")
        && v != "1.0"
    {
        return Err(ApiError::signature_version());
    }
    check_timestamp(param(req, "Timestamp")?, ctx)?;
    param(req, "SignatureNonce")?;
    let key = lookup_key(
        ctx,
        key_id,
        req.params.get("SecurityToken").map(String::as_str),
    )?;
    let expected = sign_v1(&key.secret, req.method, req.params);
    if expected != signature {
        return Err(ApiError::signature_mismatch(&string_to_sign_v1(
            req.method, req.params,
        )));
    }
    Ok(key_id.to_owned())
}

/// Parsed `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, ApiError> {
    let (algorithm, rest) = value
        .split_once(' ')
        .ok_or_else(ApiError::incomplete_signature)?;
    if algorithm != "ACS3-HMAC-SHA256" {
        return Err(ApiError::signature_method());
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(ApiError::incomplete_signature()),
        }
    }
    match (credential, signed_headers, signature) {
        (Some(c), Some(h), Some(s)) if !c.is_empty() && !s.is_empty() => Ok(Authorization {
            credential: c,
            signed_headers: h,
            signature: s,
        }),
        _ => Err(ApiError::incomplete_signature()),
    }
}

fn verify_v3(req: &SignedParts<'_>, ctx: &AuthContext<'_>) -> Result<String, ApiError> {
    let raw = header(req.headers, "authorization").ok_or_else(ApiError::incomplete_signature)?;
    let auth = parse_authorization(raw)?;
    let date = header(req.headers, "x-acs-date").ok_or_else(|| ApiError::missing("Timestamp"))?;
    check_timestamp(date, ctx)?;
    if header(req.headers, "x-acs-signature-nonce").is_none() {
        return Err(ApiError::missing("SignatureNonce"));
    }
    let key = lookup_key(
        ctx,
        auth.credential,
        header(req.headers, "x-acs-security-token"),
    )?;
    // Rebuild the canonical headers from the client's own list: the Python SDK signs every
    // header it sends, the Go SDK only x-acs-*, host and content-type.
    let mut signed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in auth.signed_headers.split(';').filter(|n| !n.is_empty()) {
        let lower = name.to_ascii_lowercase();
        let values = req
            .headers
            .get_all(lower.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        signed.insert(lower, values);
    }
    let payload_hash = sha256_hex(req.body);
    let v3 = V3Request {
        method: req.method,
        path: req.path,
        query: req.query,
        signed_headers: &signed,
        payload_hash: &payload_hash,
    };
    if sign_v3(&key.secret, &v3) != auth.signature {
        return Err(ApiError::signature_mismatch(&string_to_sign_v3(&v3)));
    }
    Ok(auth.credential.to_owned())
}

/// The request's nonce (V1 parameter or V3 header), if any.
pub fn nonce_of<'a>(req: &'a SignedParts<'_>) -> Option<&'a str> {
    match style_of(req.headers) {
        SignatureStyle::V1 => req.params.get("SignatureNonce").map(String::as_str),
        SignatureStyle::V3 => header(req.headers, "x-acs-signature-nonce"),
    }
}

fn lookup_key<'a>(
    ctx: &'a AuthContext<'_>,
    id: &str,
    token: Option<&str>,
) -> Result<&'a KeyEntry, ApiError> {
    let key = ctx
        .keys
        .get(id)
        .ok_or_else(ApiError::access_key_not_found)?;
    if let Some(expected) = &key.security_token {
        match token {
            None | Some("") => return Err(ApiError::security_token_missing()),
            Some(t) if t != expected => return Err(ApiError::security_token_mismatch()),
            Some(_) => {}
        }
    }
    if key.expires_ms.is_some_and(|e| e <= ctx.now_ms) {
        return Err(ApiError::security_token_expired());
    }
    Ok(key)
}

fn check_timestamp(value: &str, ctx: &AuthContext<'_>) -> Result<(), ApiError> {
    let ts: jiff::Timestamp = value.parse().map_err(|_| ApiError::timestamp_format())?;
    let ms = ts.as_millisecond();
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    let window = i64::try_from(ctx.window_ms).unwrap_or(i64::MAX);
    if (now - ms).abs() > window {
        return Err(ApiError::timestamp_expired());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn keys() -> KeyStore {
        let mut k = KeyStore::default();
        k.insert(
            "ak".into(),
            KeyEntry::new("secret".into(), None, None, "ak"),
        );
        k
    }

    #[test]
    fn ram_policy_allows_listed_actions_only() {
        // (allowed_actions, code, action, expected: None = allowed, Some(code) = refused)
        type Row<'a> = (Option<Vec<String>>, ForbiddenCode, &'a str, Option<&'a str>);
        let describe_only = Some(vec!["vpc:Describe*".to_owned()]);
        let create_only = Some(vec!["CreateVpnPbrRouteEntry".to_owned()]);
        let table: &[Row<'_>] = &[
            (
                None,
                ForbiddenCode::Forbidden,
                "CreateVpnPbrRouteEntry",
                None,
            ),
            (
                describe_only.clone(),
                ForbiddenCode::Forbidden,
                "DescribeVpnGateway",
                None,
            ),
            (
                describe_only.clone(),
                ForbiddenCode::Forbidden,
                "CreateVpnPbrRouteEntry",
                Some("Forbidden"),
            ),
            (
                describe_only,
                ForbiddenCode::SubUser,
                "DeleteVpnPbrRouteEntry",
                Some("Forbbiden.SubUser"),
            ),
            (
                create_only.clone(),
                ForbiddenCode::Forbidden,
                "CreateVpnPbrRouteEntry",
                None,
            ),
            (
                create_only,
                ForbiddenCode::Forbidden,
                "DescribeVpnPbrRouteEntries",
                Some("Forbidden"),
            ),
            (
                Some(vec!["vpc:*".to_owned()]),
                ForbiddenCode::Forbidden,
                "PublishVpnRouteEntry",
                None,
            ),
            (
                Some(vec![]),
                ForbiddenCode::Forbidden,
                "DescribeVpnGateway",
                Some("Forbidden"),
            ),
        ];
        for (allowed, code, action, want) in table {
            let mut key = KeyEntry::new("s".into(), None, None, "k");
            key.allowed_actions = allowed.clone();
            key.forbidden_code = *code;
            match (key.authorize(action), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    assert_eq!((e.status, e.code.as_ref()), (403, *w), "{action}");
                    assert!(
                        e.message.ends_with(&format!("Action: vpc:{action}")),
                        "{}",
                        e.message
                    );
                    let detail = e.access_denied_detail.expect("detail");
                    assert_eq!(detail["AuthAction"], format!("vpc:{action}"));
                }
                (got, want) => panic!("{action} with {allowed:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(pattern_is_known("vpc:Describe*"));
        assert!(pattern_is_known("modifyvpnpbrrouteentryweight"));
        assert!(!pattern_is_known("vpc:CreateVpnGateway"));
        assert!(!pattern_is_known("AssumeRoleWithOIDC"));
    }

    fn v1_params(ts: &str) -> BTreeMap<String, String> {
        [
            ("Action", "DescribeVpnGateway"),
            ("AccessKeyId", "ak"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "n1"),
            ("Timestamp", ts),
            ("Format", "JSON"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn now_ts() -> String {
        jiff::Timestamp::from_millisecond(NOW as i64)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    }

    fn check(params: &BTreeMap<String, String>, headers: &HeaderMap) -> Result<String, ApiError> {
        let keys = keys();
        let ctx = AuthContext {
            keys: &keys,
            now_ms: NOW,
            window_ms: 900_000,
        };
        let empty = BTreeMap::new();
        verify(
            &SignedParts {
                method: "POST",
                path: "/",
                query: &empty,
                params,
                headers,
                body: b"",
            },
            &ctx,
        )
    }

    #[test]
    fn v1_good_wrong_and_old() {
        let mut p = v1_params(&now_ts());
        let sig = sign_v1("secret", "POST", &p);
        p.insert("Signature".into(), sig);
        assert_eq!(check(&p, &HeaderMap::new()), Ok("ak".to_owned()));

        let mut bad = v1_params(&now_ts());
        bad.insert("Signature".into(), sign_v1("wrong", "POST", &bad));
        let err = check(&bad, &HeaderMap::new()).unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch");
        assert!(
            err.message
                .contains("server string to sign is:POST&%2F&AccessKeyId%3Dak")
        );

        let mut old = v1_params("2020-01-01T00:00:00Z");
        old.insert("Signature".into(), sign_v1("secret", "POST", &old));
        assert_eq!(
            check(&old, &HeaderMap::new()).unwrap_err().code,
            "InvalidTimeStamp.Expired"
        );

        let mut missing = v1_params(&now_ts());
        missing.remove("SignatureNonce");
        missing.insert("Signature".into(), "x".into());
        assert_eq!(
            check(&missing, &HeaderMap::new()).unwrap_err().code,
            "MissingSignatureNonce"
        );

        let mut unknown = v1_params(&now_ts());
        unknown.insert("AccessKeyId".into(), "nope".into());
        unknown.insert("Signature".into(), "x".into());
        let err = check(&unknown, &HeaderMap::new()).unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (404, "InvalidAccessKeyId.NotFound")
        );
    }

    #[test]
    fn v3_rebuilds_headers_from_signed_list() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:1".parse().unwrap());
        headers.insert("x-acs-date", now_ts().parse().unwrap());
        headers.insert("x-acs-signature-nonce", "n".parse().unwrap());
        headers.insert("user-agent", "py".parse().unwrap());
        headers.insert("x-unsigned", "whatever".parse().unwrap());
        let query: BTreeMap<String, String> =
            [("RegionId".to_owned(), "cn-hangzhou".to_owned())].into();
        let mut signed = BTreeMap::new();
        for n in ["host", "user-agent", "x-acs-date", "x-acs-signature-nonce"] {
            signed.insert(n.to_owned(), vec![headers[n].to_str().unwrap().to_owned()]);
        }
        let hash = sha256_hex(b"");
        let sig = sign_v3(
            "secret",
            &V3Request {
                method: "POST",
                path: "/",
                query: &query,
                signed_headers: &signed,
                payload_hash: &hash,
            },
        );
        headers.insert(
            "authorization",
            format!("ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;user-agent;x-acs-date;x-acs-signature-nonce,Signature={sig}")
                .parse()
                .unwrap(),
        );
        let keys = keys();
        let ctx = AuthContext {
            keys: &keys,
            now_ms: NOW,
            window_ms: 900_000,
        };
        let parts = SignedParts {
            method: "POST",
            path: "/",
            query: &query,
            params: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(verify(&parts, &ctx), Ok("ak".to_owned()));
        let parts = SignedParts {
            method: "GET",
            ..parts
        };
        let err = verify(&parts, &ctx).unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch");
        assert!(
            err.message
                .contains("server string to sign is:ACS3-HMAC-SHA256\n")
        );
    }

    #[test]
    fn nonce_replay_and_expiry() {
        let mut c = NonceCache::new(10, 1000);
        assert!(c.check_and_insert("a", 0));
        assert!(!c.check_and_insert("a", 500));
        assert!(c.check_and_insert("a", 1500));
    }
}
