//! The VPC client against a tiny in-test HTTP server: signing on the wire, every operation,
//! retries, rate limiting, pagination, timeouts, RRSA, and random answers.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicloud_vpc_client::signature::sign_v1;
use alicloud_vpc_client::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use proptest::prelude::*;

#[derive(Clone)]
struct Canned {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Canned {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/json;charset=utf-8",
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    query: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
}

#[derive(Default)]
struct MockState {
    queue: VecDeque<Canned>,
    fallback: Option<Canned>,
    requests: Vec<Recorded>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Mutex<MockState>>);

impl Mock {
    fn push(&self, c: Canned) {
        self.0.lock().unwrap().queue.push_back(c);
    }
    fn fallback(&self, c: Canned) {
        self.0.lock().unwrap().fallback = Some(c);
    }
    fn requests(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().requests.clone()
    }
}

fn pairs(s: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(s).into_owned().collect()
}

async fn handler(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    _h: HeaderMap,
    body: Bytes,
) -> Response {
    let canned = {
        let mut st = mock.0.lock().unwrap();
        st.requests.push(Recorded {
            method,
            query: pairs(uri.query().unwrap_or("").as_bytes()),
            form: pairs(&body),
        });
        st.queue.pop_front().or_else(|| st.fallback.clone())
    };
    let c =
        canned.unwrap_or_else(|| Canned::json(500, r#"{"Code":"NoCanned","RequestId":"none"}"#));
    if !c.delay.is_zero() {
        tokio::time::sleep(c.delay).await;
    }
    let mut resp = (StatusCode::from_u16(c.status).unwrap(), c.body).into_response();
    resp.headers_mut()
        .insert("content-type", c.content_type.parse().unwrap());
    for (k, v) in c.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn serve() -> (Mock, String) {
    let mock = Mock::default();
    let app = axum::Router::new()
        .fallback(handler)
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (mock, format!("http://{addr}/"))
}

fn config(url: &str) -> ClientConfig {
    ClientConfig {
        endpoint: Endpoint::from_url(url).unwrap(),
        read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        rate_limit: RateLimitConfig {
            max_rate: 1000.0,
            min_rate: 1.0,
            burst: 1000.0,
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        ..ClientConfig::default()
    }
}

fn creds() -> Arc<dyn CredentialsProvider> {
    Arc::new(StaticCredentials::new(
        Credentials::new("AKID", "the-secret").with_security_token("sts-token"),
    ))
}

async fn setup() -> (Mock, VpcClientFactory, VpcClient) {
    setup_with(|_| {}).await
}

/// [`setup`] with `tune` applied to the [`config`].
async fn setup_with(tune: impl FnOnce(&mut ClientConfig)) -> (Mock, VpcClientFactory, VpcClient) {
    let (mock, url) = serve().await;
    let mut cfg = config(&url);
    tune(&mut cfg);
    let factory = VpcClientFactory::new(cfg).unwrap();
    let client = factory.client("cn-hangzhou", creds()).unwrap();
    (mock, factory, client)
}

const GATEWAY: &str = r#"{"RequestId":"RG","VpnGatewayId":"vpn-1","Status":"active","Tag":"{\"PbrPriority\":\"true\"}"}"#;

/// `DescribeVpnGateway` of `vpn-1`, the gateway of [`GATEWAY`].
fn gateway_1() -> DescribeVpnGatewayRequest {
    DescribeVpnGatewayRequest {
        vpn_gateway_id: "vpn-1".into(),
        include_reservation_data: None,
    }
}

fn key() -> EntryKey {
    EntryKey {
        vpn_gateway_id: "vpn-1".into(),
        route_source: "192.168.1.0/24".into(),
        route_dest: "10.0.0.0/24".into(),
        next_hop: "vco-1".into(),
    }
}

/// Asserts that `form` carries the signature of the rest of it under `secret`.
fn assert_signed(form: &BTreeMap<String, String>, secret: &str) {
    let mut unsigned = form.clone();
    let sig = unsigned.remove("Signature").expect("a Signature");
    assert_eq!(
        sign_v1(secret, "POST", &unsigned),
        sig,
        "{:?}",
        form.get("Action")
    );
}

/// Asserts that `form` has each of `params`.
fn assert_params<K: AsRef<str>, V: AsRef<str>>(
    form: &BTreeMap<String, String>,
    params: impl IntoIterator<Item = (K, V)>,
) {
    for (k, v) in params {
        let (k, v) = (k.as_ref(), v.as_ref());
        assert_eq!(form.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[tokio::test]
async fn requests_are_signed_and_carry_common_parameters() {
    let (mock, _f, client) = setup().await;
    mock.push(Canned::json(200, GATEWAY));
    let gw = client.describe_vpn_gateway(&gateway_1()).await.unwrap();
    assert!(gw.is_active() && gw.supports_pbr_priority());
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert!(r.query.is_empty(), "nothing in the URL: {:?}", r.query);
    let f = &r.form;
    assert_params(
        f,
        [
            ("Action", "DescribeVpnGateway"),
            ("Version", "2016-04-28"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("AccessKeyId", "AKID"),
            ("SecurityToken", "sts-token"),
            ("RegionId", "cn-hangzhou"),
            ("VpnGatewayId", "vpn-1"),
        ],
    );
    assert!(!f.contains_key("ClientToken"), "reads carry no ClientToken");
    let ts = &f["Timestamp"];
    assert!(
        ts.parse::<jiff::Timestamp>().is_ok() && ts.ends_with('Z') && ts.len() == 20,
        "{ts}"
    );
    assert_signed(f, "the-secret");
}

/// A call answered with only a `RequestId`.
type Call<'a> = Pin<Box<dyn Future<Output = Result<ActionResponse, CloudError>> + 'a>>;

/// Awaits `call`, which the mock answers with only a `RequestId`: the form it sent, signed.
async fn sent_form(mock: &Mock, call: Call<'_>) -> BTreeMap<String, String> {
    // Futures are lazy: the answer is queued before the request leaves.
    mock.push(Canned::json(200, r#"{"RequestId":"R"}"#));
    assert_eq!(call.await.unwrap().request_id, "R");
    let form = mock.requests().pop().unwrap().form;
    assert_signed(&form, "the-secret");
    form
}

#[tokio::test]
async fn every_operation_sends_its_parameters() {
    let (mock, _f, client) = setup().await;
    let entry = key();

    mock.push(Canned::json(200, r#"{"RequestId":"RC","RouteSource":"192.168.1.0/24","RouteDest":"10.0.0.0/24","NextHop":"vco-1","Weight":100,"State":"published","CreateTime":1}"#));
    let created = client
        .create_vpn_pbr_route_entry(&CreateVpnPbrRouteEntryRequest {
            entry: entry.clone(),
            weight: 100,
            publish_vpc: true,
            priority: Some(10),
            description: Some("my route é & co".into()),
            client_token: Some("tok-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.request_id, "RC");
    let f = mock.requests().pop().unwrap().form;
    assert_signed(&f, "the-secret");
    assert_params(
        &f,
        [
            ("Action", "CreateVpnPbrRouteEntry"),
            ("ClientToken", "tok-1"),
            ("PublishVpc", "true"),
            ("Description", "my route é & co"),
            ("Weight", "100"),
        ],
    );

    // The five mutations after it answer only a RequestId.
    let (delete, weight, priority, attribute, publish) = (
        DeleteVpnPbrRouteEntryRequest {
            entry: entry.clone(),
            weight: 0,
            priority: Some(10),
            ..Default::default()
        },
        ModifyVpnPbrRouteEntryWeightRequest {
            entry: entry.clone(),
            weight: 0,
            new_weight: 100,
            ..Default::default()
        },
        ModifyVpnPbrRouteEntryPriorityRequest {
            entry: entry.clone(),
            weight: 100,
            new_priority: 5,
            priority: Some(10),
            ..Default::default()
        },
        ModifyVpnPbrRouteEntryAttributeRequest {
            entry: entry.clone(),
            weight: 100,
            priority: 10,
            new_weight: Some(0),
            new_priority: Some(20),
            ..Default::default()
        },
        PublishVpnRouteEntryRequest {
            vpn_gateway_id: entry.vpn_gateway_id.clone(),
            route_dest: entry.route_dest.clone(),
            next_hop: entry.next_hop.clone(),
            route_type: ROUTE_TYPE_PBR.into(),
            publish_vpc: false,
            client_token: None,
        },
    );
    // Each call with the parameters it must send.
    let calls: [(Call<'_>, &str); 5] = [
        (
            Box::pin(client.delete_vpn_pbr_route_entry(&delete)),
            "Action=DeleteVpnPbrRouteEntry&Priority=10",
        ),
        (
            Box::pin(client.modify_vpn_pbr_route_entry_weight(&weight)),
            "Action=ModifyVpnPbrRouteEntryWeight&Weight=0&NewWeight=100",
        ),
        (
            Box::pin(client.modify_vpn_pbr_route_entry_priority(&priority)),
            "Action=ModifyVpnPbrRouteEntryPriority&NewPriority=5&Priority=10",
        ),
        (
            Box::pin(client.modify_vpn_pbr_route_entry_attribute(&attribute)),
            "Action=ModifyVpnPbrRouteEntryAttribute&NewWeight=0&NewPriority=20",
        ),
        (
            Box::pin(client.publish_vpn_route_entry(&publish)),
            "Action=PublishVpnRouteEntry&RouteType=pbr&PublishVpc=false",
        ),
    ];
    for (call, params) in calls {
        let f = sent_form(&mock, call).await;
        assert_params(&f, pairs(params.as_bytes()));
        // None of these requests names a ClientToken: the client makes one.
        assert!(
            uuid::Uuid::parse_str(&f["ClientToken"]).is_ok(),
            "{params}: generated token"
        );
    }
    assert!(
        !mock.requests()[5].form.contains_key("RouteSource"),
        "PublishVpnRouteEntry has no RouteSource"
    );

    mock.push(Canned::json(
        200,
        r#"{"RequestId":"RV","VpnConnectionId":"vco-1","VpnGatewayId":"vpn-1"}"#,
    ));
    let conn = client
        .describe_vpn_connection(&DescribeVpnConnectionRequest {
            vpn_connection_id: "vco-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(conn.vpn_gateway_id.as_deref(), Some("vpn-1"));
    let f = mock.requests().pop().unwrap().form;
    assert_signed(&f, "the-secret");
    assert_eq!(f["Action"], "DescribeVpnConnection");
    assert_eq!(mock.requests().len(), 7);
}

#[tokio::test]
async fn get_caller_identity_goes_to_sts_signed_and_names_the_account() {
    let (vpc, vpc_url) = serve().await;
    let (sts, sts_url) = serve().await;
    let factory = VpcClientFactory::new(ClientConfig {
        sts_endpoint: Endpoint::from_url(&sts_url).unwrap(),
        ..config(&vpc_url)
    })
    .unwrap();
    let client = factory.client("cn-hangzhou", creds()).unwrap();
    // The API page's sample answer; the account ID may also come as a number.
    sts.push(Canned::json(
        200,
        r#"{"IdentityType":"RAMUser","AccountId":"1968132000123456","RequestId":"RS","PrincipalId":"288774244375212","UserId":"216959339000123","Arn":"acs:ram::1968132000123456:user/admin"}"#,
    ));
    sts.push(Canned::json(
        200,
        r#"{"IdentityType":"AssumedRoleUser","AccountId":1968132000123457,"RequestId":"RT","RoleId":"3353762008299","Arn":"acs:ram::1968132000123457:assumed-role/r/s"}"#,
    ));
    let who = client.get_caller_identity().await.unwrap();
    assert_eq!(who.account_id, "1968132000123456");
    assert_eq!(who.identity_type.as_deref(), Some("RAMUser"));
    assert_eq!(
        who.arn.as_deref(),
        Some("acs:ram::1968132000123456:user/admin")
    );
    assert_eq!(who.request_id, "RS");
    let role = client.get_caller_identity().await.unwrap();
    assert_eq!(role.account_id, "1968132000123457");
    assert_eq!(role.role_id.as_deref(), Some("3353762008299"));

    assert!(
        vpc.requests().is_empty(),
        "nothing went to the VPC endpoint"
    );
    let reqs = sts.requests();
    assert_eq!(reqs.len(), 2);
    let f = &reqs[0].form;
    assert_params(
        f,
        [
            ("Action", "GetCallerIdentity"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("AccessKeyId", "AKID"),
            ("SecurityToken", "sts-token"),
        ],
    );
    assert!(!f.contains_key("RegionId"), "STS takes no RegionId: {f:?}");
    assert_signed(f, "the-secret");

    // A refusal is a classified CloudError; an answer without an account is malformed.
    sts.push(Canned::json(
        404,
        r#"{"RequestId":"RE","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}"#,
    ));
    let e = client.get_caller_identity().await.unwrap_err();
    assert_eq!(e.code(), "InvalidAccessKeyId.NotFound");
    sts.fallback(Canned::json(200, r#"{"RequestId":"RX","AccountId":""}"#));
    let e = client.get_caller_identity().await.unwrap_err();
    assert_eq!(e.code(), "MalformedResponse", "{e}");
}

#[tokio::test]
async fn reads_retry_transient_failures_with_fresh_nonces() {
    let (mock, url) = serve().await;
    let calls = Arc::new(Mutex::new(Vec::<(String, String, u32)>::new()));
    let sink = calls.clone();
    let observer: Arc<dyn CallObserver> = Arc::new(move |c: &CallRecord<'_>| {
        sink.lock()
            .unwrap()
            .push((c.action.to_owned(), c.code.to_owned(), c.attempt));
    });
    let factory = VpcClientFactory::new(config(&url))
        .unwrap()
        .with_observer(observer);
    let client = factory.client("cn-hangzhou", creds()).unwrap();
    mock.push(Canned::json(
        503,
        r#"{"RequestId":"R1","Code":"ServiceUnavailable","Message":"busy"}"#,
    ));
    mock.push(Canned {
        content_type: "text/xml",
        ..Canned::json(
            500,
            "<Error><RequestId>R2</RequestId><Code>InternalError</Code></Error>",
        )
    });
    mock.push(Canned::json(200, GATEWAY));
    let gw = client.describe_vpn_gateway(&gateway_1()).await.unwrap();
    assert_eq!(gw.request_id, "RG");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    let nonces: std::collections::HashSet<_> = reqs
        .iter()
        .map(|r| r.form["SignatureNonce"].clone())
        .collect();
    assert_eq!(nonces.len(), 3, "fresh nonce per attempt");
    let calls = calls.lock().unwrap().clone();
    let codes: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(codes, ["ServiceUnavailable", "InternalError", "Success"]);
    assert_eq!(calls[2], ("DescribeVpnGateway".into(), "Success".into(), 3));
}

#[tokio::test]
async fn mutation_retries_reuse_one_client_token() {
    let (mock, _f, client) = setup().await;
    mock.push(Canned::json(502, "bad gateway"));
    mock.push(Canned::json(200, r#"{"RequestId":"R"}"#));
    let entry = key();
    client
        .delete_vpn_pbr_route_entry(&DeleteVpnPbrRouteEntryRequest {
            entry,
            weight: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].form["ClientToken"], reqs[1].form["ClientToken"]);
    assert_ne!(
        reqs[0].form["SignatureNonce"],
        reqs[1].form["SignatureNonce"]
    );
}

#[tokio::test]
async fn busy_gateway_and_spec_errors_are_returned_at_once() {
    let (mock, _f, client) = setup().await;
    let entry = key();
    let req = CreateVpnPbrRouteEntryRequest {
        entry,
        weight: 100,
        publish_vpc: false,
        ..Default::default()
    };
    mock.push(Canned::json(400, r#"{"RequestId":"RB","Code":"VpnGateway.Configuring","Message":"The specified service is configuring."}"#));
    let e = client.create_vpn_pbr_route_entry(&req).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::GatewayBusy);
    assert_eq!(e.request_id(), Some("RB"));
    mock.push(Canned::json(
        400,
        r#"{"RequestId":"RS","Code":"IllegalParam.RouteDest","Message":"bad"}"#,
    ));
    let e = client.create_vpn_pbr_route_entry(&req).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NeedsSpecChange);
    assert_eq!(mock.requests().len(), 2, "no client-side retries");
}

#[tokio::test]
async fn throttling_backs_off_and_slows_the_shared_limiter() {
    let (mock, factory, a) = setup_with(|c| c.rate_limit.max_rate = 100.0).await;
    // Two clients (say, two routes' Secrets) share one limiter.
    let b = factory.client("cn-shanghai", creds()).unwrap();
    let mut throttled = Canned::json(
        400,
        r#"{"RequestId":"RT","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
    );
    throttled.headers.push((
        "x-ratelimit-user-api",
        "Limit:1,Remain:0,TimeLeft:30,Reset:1".into(),
    ));
    mock.fallback(throttled);
    let e = a.describe_vpn_gateway(&gateway_1()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert_eq!(e.retry_after(), Some(Duration::from_millis(30)));
    assert_eq!(mock.requests().len(), 3, "throttled reads are retried");
    let rate = factory.rate_limiter().current_rate();
    assert!(rate <= 12.5 + 1e-9, "rate halved three times: {rate}");
    mock.0.lock().unwrap().fallback = Some(Canned::json(200, GATEWAY));
    b.describe_vpn_gateway(&gateway_1()).await.unwrap();
    assert!(
        factory.rate_limiter().current_rate() > rate,
        "success recovers the rate"
    );
}

#[tokio::test]
async fn lists_every_page_of_fifty() {
    let (mock, _f, client) = setup().await;
    let entry = |i: usize| {
        format!(
            r#"{{"VpnInstanceId":"vpn-1","RouteSource":"192.168.{}.0/24","RouteDest":"10.0.0.0/24","NextHop":"vco-1","Weight":100,"Priority":10,"State":"published","CreateTime":1}}"#,
            i % 250
        )
    };
    // A stable list of three pages is proven by them and the first two again
    // (tests/cloud_list.rs has lists that change between pages).
    for (page, range) in [
        (1, 0..50),
        (2, 50..100),
        (3, 100..120),
        (1, 0..50),
        (2, 50..100),
    ] {
        let items: Vec<String> = range.map(entry).collect();
        mock.push(Canned::json(
            200,
            format!(
                r#"{{"RequestId":"P{page}","TotalCount":120,"PageNumber":{page},"PageSize":50,"VpnPbrRouteEntries":{{"VpnPbrRouteEntry":[{}]}}}}"#,
                items.join(",")
            ),
        ));
    }
    let list = client.list_vpn_pbr_route_entries("vpn-1").await.unwrap();
    assert_eq!(list.entries.len(), 120);
    assert_eq!(list.total_count, 120);
    assert_eq!(list.request_ids, ["P1", "P2", "P3", "P1", "P2"]);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 5);
    for (r, page) in reqs.iter().zip([1, 2, 3, 1, 2]) {
        assert_eq!(r.form["Action"], "DescribeVpnPbrRouteEntries");
        assert_eq!(r.form["PageSize"], "50");
        assert_eq!(r.form["PageNumber"], page.to_string());
    }

    mock.push(Canned::json(200, r#"{"RequestId":"E","TotalCount":0,"PageNumber":1,"PageSize":50,"VpnPbrRouteEntries":{"VpnPbrRouteEntry":[]}}"#));
    let empty = client.list_vpn_pbr_route_entries("vpn-2").await.unwrap();
    assert!(empty.entries.is_empty());
    assert_eq!(mock.requests().len(), 6, "one page proves itself");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let (mock, _f, client) = setup_with(|c| {
        c.retry.max_attempts = 1;
        c.read_timeout = Duration::from_millis(100);
    })
    .await;
    mock.push(Canned {
        delay: Duration::from_secs(2),
        ..Canned::json(200, GATEWAY)
    });
    let req = gateway_1();
    let e = client.describe_vpn_gateway(&req).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "Timeout");
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("the-secret")
            && !shown.contains("sts-token")
            && !shown.contains("Signature="),
        "{shown}"
    );

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&format!("http://127.0.0.1:{port}/"));
    cfg.retry.max_attempts = 1;
    let client = VpcClientFactory::new(cfg)
        .unwrap()
        .client("cn-hangzhou", creds())
        .unwrap();
    let e = client.describe_vpn_gateway(&req).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.code(), "ConnectionFailed");
    assert!(!format!("{client:?}").contains("the-secret"));
}

fn sts_body(expires_in: Duration, ak: &str) -> String {
    let exp = jiff::Timestamp::now() + jiff::SignedDuration::try_from(expires_in).unwrap();
    format!(
        r#"{{"RequestId":"S","AssumedRoleUser":{{"Arn":"a","AssumedRoleId":"b"}},"Credentials":{{"AccessKeyId":"{ak}","AccessKeySecret":"sts-secret","SecurityToken":"sts-tok","Expiration":"{}"}}}}"#,
        exp.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// A mock that answers both STS and VPC, a factory, and the RRSA settings of a role whose
/// token file (in the returned directory) holds `token`.
async fn rrsa(token: &str) -> (Mock, VpcClientFactory, OidcConfig, tempfile::TempDir) {
    let (mock, url) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let factory = VpcClientFactory::new(config(&url)).unwrap();
    let oidc = OidcConfig {
        role_arn: "acs:ram::123:role/op".into(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack".into(),
        token_file,
        role_session_name: "test".into(),
        duration: Duration::from_secs(3600),
        sts_url: url.parse().unwrap(),
    };
    (mock, factory, oidc, dir)
}

#[tokio::test]
async fn rrsa_assumes_the_role_rereads_the_token_and_refreshes_early() {
    let (mock, factory, oidc, _dir) = rrsa("jwt-1\n").await;
    let token_file = oidc.token_file.clone();
    let provider = Arc::new(OidcProvider::new(oidc, factory.http_client().clone()));

    // Expires within the refresh margin (20 min of a 1 h lifetime): every call refreshes.
    mock.push(Canned::json(
        200,
        sts_body(Duration::from_secs(600), "STS.A1"),
    ));
    let c1 = provider.credentials().await.unwrap();
    assert_eq!(c1.access_key_id(), "STS.A1");
    std::fs::write(&token_file, "jwt-2").unwrap();
    mock.push(Canned::json(
        200,
        sts_body(Duration::from_secs(7200), "STS.A2"),
    ));
    let c2 = provider.credentials().await.unwrap();
    assert_eq!(c2.access_key_id(), "STS.A2");
    // Fresh enough now: no STS call.
    let c3 = provider.credentials().await.unwrap();
    assert_eq!(c3.access_key_id(), "STS.A2");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    for (r, token) in reqs.iter().zip(["jwt-1", "jwt-2"]) {
        assert_eq!(r.query["Action"], "AssumeRoleWithOIDC");
        assert_eq!(r.query["Version"], "2015-04-01");
        assert_eq!(r.form["OIDCToken"], token);
        assert_eq!(r.form["RoleArn"], "acs:ram::123:role/op");
        assert_eq!(r.form["OIDCProviderArn"], "acs:ram::123:oidc-provider/ack");
        assert_eq!(r.form["RoleSessionName"], "test");
        assert_eq!(r.form["DurationSeconds"], "3600");
        assert!(!r.query.contains_key("Signature") && !r.form.contains_key("Signature"));
        assert!(!r.query.contains_key("AccessKeyId") && !r.form.contains_key("AccessKeyId"));
    }

    // The VPC client signs with the STS keys.
    let client = factory.client("cn-hangzhou", provider.clone()).unwrap();
    mock.push(Canned::json(200, GATEWAY));
    client.describe_vpn_gateway(&gateway_1()).await.unwrap();
    let last = mock.requests().pop().unwrap();
    assert_eq!(last.form["AccessKeyId"], "STS.A2");
    assert_eq!(last.form["SecurityToken"], "sts-tok");
    assert_signed(&last.form, "sts-secret");
}

#[tokio::test]
async fn rrsa_errors_are_classified() {
    let (mock, factory, cfg, dir) = rrsa("jwt").await;
    let provider: Arc<dyn CredentialsProvider> = Arc::new(OidcProvider::new(
        cfg.clone(),
        factory.http_client().clone(),
    ));
    let client = factory.client("cn-hangzhou", provider).unwrap();
    mock.fallback(Canned::json(
        400,
        r#"{"RequestId":"S","Code":"AuthenticationFail.OIDCToken.Invalid","Message":"bad token"}"#,
    ));
    let e = client.describe_vpn_gateway(&gateway_1()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NeedsOutsideAction);
    assert_eq!(e.code(), "AuthenticationFail.OIDCToken.Invalid");
    assert!(!e.to_string().contains("jwt"));

    let missing = OidcProvider::new(
        OidcConfig {
            token_file: dir.path().join("absent"),
            ..cfg
        },
        factory.http_client().clone(),
    );
    let e = missing.credentials().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NeedsOutsideAction);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the server sends, the client returns a value or a classified error.
    #[test]
    fn random_answers_over_http_never_panic(
        status in 200u16..600,
        body in proptest::collection::vec(any::<u8>(), 0..200),
        xml in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mock, _f, client) = setup_with(|c| c.retry.max_attempts = 1).await;
            mock.fallback(Canned {
                status,
                content_type: if xml { "text/xml" } else { "application/json" },
                body: String::from_utf8_lossy(&body).into_owned(),
                headers: Vec::new(),
                delay: Duration::ZERO,
            });
            let list = client.list_vpn_pbr_route_entries("vpn-1").await;
            if let Err(e) = list {
                let _ = (e.class(), e.code(), e.request_id(), e.http_status(), e.to_string());
            }
            let _ = client
                .create_vpn_pbr_route_entry(&CreateVpnPbrRouteEntryRequest::default())
                .await;
        });
    }
}

#[tokio::test]
async fn a_closed_send_gate_keeps_the_request_from_leaving() {
    let (mock, _f, client) = setup().await;
    mock.fallback(Canned::json(200, r#"{"RequestId":"R"}"#));
    let entry = key();
    let req = DeleteVpnPbrRouteEntryRequest {
        entry,
        weight: 100,
        ..Default::default()
    };
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = {
        let open = open.clone();
        SendGate::new(move || open.load(std::sync::atomic::Ordering::SeqCst))
    };
    let e = with_send_gate(gate.clone(), client.delete_vpn_pbr_route_entry(&req))
        .await
        .unwrap_err();
    assert_eq!(e.code(), NOT_SENT);
    assert_eq!(e.class(), ErrorClass::Throttled, "safe to try again later");
    assert!(
        mock.requests().is_empty(),
        "nothing left: {:?}",
        mock.requests()
    );
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    with_send_gate(gate, client.delete_vpn_pbr_route_entry(&req))
        .await
        .unwrap();
    assert_eq!(mock.requests().len(), 1, "an open gate lets it leave");
}
