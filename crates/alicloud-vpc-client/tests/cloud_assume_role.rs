//! `AssumeRoleProvider` against the real `vpc-emulator` binary with two accounts: the key of
//! account A assumes a role of account B that trusts A with an `ExternalId`. Needs the binary
//! (`cargo build --bins`; `VPC_EMULATOR_BIN` overrides where it is looked for). The tests of a
//! cloud clock ahead of this process's run the emulator in this process, on a clock they move.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicloud_vpc_client::*;
use vpc_emulator::process::EmulatorProcess;
use vpc_emulator::{Clock as _, Emulator, ManualClock, SystemClock};

const ACCOUNT_A: &str = "1234567890123456";
const ACCOUNT_B: &str = "2222222222222222";
const ROLE_B: &str = "acs:ram::2222222222222222:role/vpn-operator";
const EXTERNAL_ID: &str = "ext-tenant-b";
const BASE_SECRET: &str = "secret-of-a";
/// The shortest session the emulator grants with `test_min_session_seconds`.
const SHORT_SESSION: Duration = Duration::from_secs(3);

const CONFIG: &str = r#"
settings:
  test_min_session_seconds: 3
access_keys:
  - {id: key-a, secret: secret-of-a}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-a, update_duration_ms: 0}
  - {id: vpn-b, region: cn-hangzhou, vpc_id: vpc-b, update_duration_ms: 0, account_id: "2222222222222222"}
vpn_connections:
  - {id: vco-b1, gateway_id: vpn-b}
accounts:
  - id: "2222222222222222"
    roles:
      - name: vpn-operator
        trust_policy:
          Statement:
            - Action: sts:AssumeRole
              Effect: Allow
              Principal: {RAM: ["acs:ram::1234567890123456:root"]}
              Condition: {StringEquals: {"sts:ExternalId": ext-tenant-b}}
"#;

/// `target/<profile>/vpc-emulator` beside this test's executable, unless `VPC_EMULATOR_BIN`.
fn emulator_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VPC_EMULATOR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("test executable dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("vpc-emulator")
}

struct Setup {
    url: String,
    /// The emulator's clock, when it runs in this process.
    cloud_clock: Option<Arc<ManualClock>>,
    factory: VpcClientFactory,
    base: Arc<dyn CredentialsProvider>,
    /// Every attempt's (account key, code).
    calls: Arc<Mutex<Vec<(String, String)>>>,
    _process: Option<(EmulatorProcess, tempfile::TempDir)>,
}

/// The emulator binary in its own process. One attempt per call: a retry must not hide an
/// expired session.
fn start() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("emulator.yaml");
    std::fs::write(&config, CONFIG).expect("write config");
    // A missing binary fails the test with the command that builds it.
    let emulator = EmulatorProcess::spawn(&emulator_binary(), &config, Stdio::null(), None)
        .unwrap_or_else(|e| panic!("vpc-emulator: {e}"));
    let url = emulator.url().to_owned();
    Setup::new(url, None, 1, Some((emulator, dir)))
}

/// The emulator in this process, its clock at this process's until the test moves it; calls
/// get `max_attempts` attempts.
async fn start_in_process(max_attempts: u32) -> Setup {
    let config = vpc_emulator::Config::parse(CONFIG, "in-process").expect("config");
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let emulator = Arc::new(Emulator::new(config, clock.clone(), None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = vpc_emulator::router(emulator, true);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Setup::new(url, Some(clock), max_attempts, None)
}

impl Setup {
    fn new(
        url: String,
        cloud_clock: Option<Arc<ManualClock>>,
        max_attempts: u32,
        process: Option<(EmulatorProcess, tempfile::TempDir)>,
    ) -> Self {
        let endpoint = Endpoint::from_url(&url).expect("emulator URL");
        let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let sink = calls.clone();
        let factory = VpcClientFactory::new(ClientConfig {
            endpoint: endpoint.clone(),
            sts_endpoint: endpoint,
            retry: RetryPolicy {
                max_attempts,
                ..RetryPolicy::default()
            },
            ..ClientConfig::default()
        })
        .expect("factory")
        .with_observer(Arc::new(move |c: &CallRecord<'_>| {
            sink.lock()
                .unwrap()
                .push((c.account.to_owned(), c.code.to_owned()));
        }));
        let base: Arc<dyn CredentialsProvider> = Arc::new(StaticCredentials::new(
            Credentials::new("key-a", BASE_SECRET),
        ));
        Self {
            url,
            cloud_clock,
            factory,
            base,
            calls,
            _process: process,
        }
    }

    fn role(&self, external_id: &str, duration: Duration) -> Arc<AssumeRoleProvider> {
        let config = AssumeRoleConfig::new(
            ROLE_B,
            "vpn-pbr-operator-test",
            self.factory.sts_url_for("cn-hangzhou").expect("STS URL"),
        )
        .with_external_id(external_id)
        .with_duration(duration);
        Arc::new(AssumeRoleProvider::new(
            config,
            self.base.clone(),
            self.factory.http_client().clone(),
        ))
    }

    fn client(&self, account: &str, credentials: Arc<dyn CredentialsProvider>) -> VpcClient {
        self.factory
            .client_for_account(account, "cn-hangzhou", credentials)
            .expect("client")
    }

    /// Moves the clock of the emulator in this process (STS's and the VPC API's) `by` ahead of
    /// this process's.
    fn cloud_clock_ahead(&self, by: Duration) {
        let clock = self
            .cloud_clock
            .as_ref()
            .expect("the emulator runs in this process");
        clock.advance(u64::try_from(by.as_millis()).expect("milliseconds"));
    }

    /// The emulator's `calls` counters: `{"<Action>": {"<Code or Success>": n}}`.
    async fn calls(&self) -> serde_json::Value {
        let url = format!("{}/_emulator/counters", self.url);
        let counters: serde_json::Value = self
            .factory
            .http_client()
            .get(url)
            .send()
            .await
            .expect("counters")
            .json()
            .await
            .expect("counters JSON");
        counters["calls"].clone()
    }

    /// Calls of `action` the emulator answered with `code`.
    async fn counted(&self, action: &str, code: &str) -> u64 {
        self.calls().await[action][code].as_u64().unwrap_or(0)
    }

    /// Every call the emulator answered with `code`, whatever the action.
    async fn counted_code(&self, code: &str) -> u64 {
        let calls = self.calls().await;
        let actions = calls.as_object().expect("calls by action");
        assert!(!actions.is_empty(), "no calls counted");
        actions
            .values()
            .filter_map(|codes| codes[code].as_u64())
            .sum()
    }
}

fn gateway(id: &str) -> DescribeVpnGatewayRequest {
    DescribeVpnGatewayRequest {
        vpn_gateway_id: id.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_role_session_acts_in_account_b() {
    let s = start();
    let role = s.role(EXTERNAL_ID, Duration::from_secs(3600));
    let b = s.client("tenant-b", role.clone());
    let who = b.get_caller_identity().await.expect("GetCallerIdentity");
    assert_eq!(who.account_id, ACCOUNT_B);
    let created = b
        .create_vpn_pbr_route_entry(&CreateVpnPbrRouteEntryRequest {
            entry: EntryKey {
                vpn_gateway_id: "vpn-b".into(),
                route_source: "192.168.10.0/24".into(),
                route_dest: "10.10.0.0/24".into(),
                next_hop: "vco-b1".into(),
            },
            weight: 100,
            ..Default::default()
        })
        .await
        .expect("create in B");
    assert_eq!(created.fields.route_dest, "10.10.0.0/24");
    let list = b.list_vpn_pbr_route_entries("vpn-b").await.expect("list B");
    let dests: Vec<_> = list
        .entries
        .iter()
        .map(|e| e.fields.route_dest.as_str())
        .collect();
    assert_eq!(dests, ["10.10.0.0/24"]);
    // The session is B's only: A's gateway is not found with it, and B's not with A's key.
    let e = b.describe_vpn_gateway(&gateway("vpn-a")).await.unwrap_err();
    assert_eq!(e.code(), "InvalidVpnGatewayInstanceId.NotFound");
    let a = s.client(DEFAULT_ACCOUNT, s.base.clone());
    assert_eq!(a.get_caller_identity().await.unwrap().account_id, ACCOUNT_A);
    let e = a.describe_vpn_gateway(&gateway("vpn-b")).await.unwrap_err();
    assert_eq!(e.code(), "InvalidVpnGatewayInstanceId.NotFound");
    // One session served every call of B.
    assert_eq!(s.counted("AssumeRole", "Success").await, 1);
    let keys = role.credentials().await.unwrap();
    assert!(keys.access_key_id().starts_with("STS."), "{keys}");
    assert!(keys.security_token().is_some());
    // Each attempt names the account whose limiter it waited at.
    let calls = s.calls.lock().unwrap().clone();
    assert!(calls.iter().any(|(acc, _)| acc == "tenant-b"));
    assert!(calls.iter().any(|(acc, _)| acc.is_empty()));
}

#[tokio::test]
async fn a_wrong_external_id_is_the_clouds_refusal_typed() {
    let s = start();
    let role = s.role("ext-not-the-one", Duration::from_secs(3600));
    let e = role.credentials().await.unwrap_err();
    match &e {
        CredentialsError::Sts {
            action,
            http_status,
            code,
            ..
        } => {
            assert_eq!(*action, "AssumeRole");
            assert_eq!(*http_status, 403);
            assert_eq!(code, "NoPermission");
        }
        other => panic!("not the cloud's refusal: {other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::NeedsOutsideAction);
    // Through a client: the same code, never retried, and nothing sent to the VPC API.
    let b = s.client("tenant-b", role.clone());
    let err = b.describe_vpn_gateway(&gateway("vpn-b")).await.unwrap_err();
    assert_eq!(err.code(), "NoPermission");
    assert_eq!(err.class(), ErrorClass::NeedsOutsideAction);
    assert_eq!(s.counted("DescribeVpnGateway", "Success").await, 0);
    for shown in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{err}"),
        format!("{err:?}"),
        format!("{role:?}"),
    ] {
        for secret in ["ext-not-the-one", BASE_SECRET] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
    }
    // A role B does not have.
    let missing = Arc::new(AssumeRoleProvider::new(
        AssumeRoleConfig::new(
            "acs:ram::2222222222222222:role/nobody",
            "vpn-pbr-operator-test",
            s.factory.sts_url_for("cn-hangzhou").unwrap(),
        ),
        s.base.clone(),
        s.factory.http_client().clone(),
    ));
    assert_eq!(
        missing.credentials().await.unwrap_err().code(),
        "EntityNotExist.Role"
    );
}

#[tokio::test]
async fn short_sessions_are_renewed_before_they_expire() {
    let s = start();
    let role = s.role(EXTERNAL_ID, SHORT_SESSION);
    let b = s.client("tenant-b", role.clone());
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    // Four callers at once for three lifetimes: every call must succeed.
    let run = SHORT_SESSION * 3;
    let started = tokio::time::Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (b, role, keys) = (b.clone(), role.clone(), keys.clone());
            tokio::spawn(async move {
                let mut calls = 0u32;
                while started.elapsed() < run {
                    b.describe_vpn_gateway(&gateway("vpn-b"))
                        .await
                        .unwrap_or_else(|e| {
                            panic!("call {calls} after {:?}: {e}", started.elapsed())
                        });
                    let key = role.credentials().await.unwrap().access_key_id().to_owned();
                    keys.lock().unwrap().push(key);
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for w in workers {
        calls += w.await.expect("worker");
    }
    assert!(calls > 40, "only {calls} calls in {run:?}");
    assert_eq!(s.counted_code("InvalidSecurityToken.Expired").await, 0);
    let mut distinct = keys.lock().unwrap().clone();
    distinct.sort();
    distinct.dedup();
    let renewals = s.counted("AssumeRole", "Success").await;
    println!("{calls} calls, {renewals} sessions");
    // Renewed when a third of the 3 s asked for is left; `Expiration` is in whole seconds, so
    // that is after 1 to 2 s of use: 5 to 10 sessions in 9 s. The four callers shared each
    // renewal (one STS call per session, not one per caller).
    assert!((4..=11).contains(&renewals), "{renewals} AssumeRole calls");
    assert_eq!(
        distinct.len() as u64,
        renewals,
        "one set of keys per session"
    );
}

/// A session length long enough that this process's clock never makes it due for renewal
/// within a test.
const MINUTE_SESSION: Duration = Duration::from_secs(60);

/// The cloud's clock 61 s ahead of ours: by its clock the minute session has expired, by ours
/// 60 s of it remain, more than the renewal margin (a third of it).
const CLOUD_AHEAD: Duration = Duration::from_secs(61);

#[tokio::test]
async fn a_session_the_cloud_expired_early_is_renewed_once_for_every_caller() {
    let s = start_in_process(RetryPolicy::default().max_attempts).await;
    let role = s.role(EXTERNAL_ID, MINUTE_SESSION);
    let b = s.client("tenant-b", role.clone());
    b.describe_vpn_gateway(&gateway("vpn-b"))
        .await
        .expect("first call");
    let first = role.credentials().await.expect("first session");
    s.cloud_clock_ahead(CLOUD_AHEAD);
    // Eight callers at once, each signing with the session the cloud now refuses.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.describe_vpn_gateway(&gateway("vpn-b")).await })
        })
        .collect();
    for c in callers {
        c.await
            .expect("caller")
            .expect("renewed once and tried again");
    }
    assert_eq!(
        s.counted("AssumeRole", "Success").await,
        2,
        "one renewal served every caller"
    );
    let expired = s
        .counted("DescribeVpnGateway", "InvalidSecurityToken.Expired")
        .await;
    assert!((1..=8).contains(&expired), "{expired} refused as expired");
    assert_eq!(s.counted("DescribeVpnGateway", "Success").await, 9);
    let second = role.credentials().await.expect("second session");
    assert_ne!(second.access_key_id(), first.access_key_id());
    // A report about the first session that arrives late keeps the second.
    role.invalidate(&first);
    assert_eq!(role.credentials().await.expect("still the second"), second);
    assert_eq!(s.counted("AssumeRole", "Success").await, 2);
    for shown in [
        format!("{role:?}"),
        format!("{second:?}"),
        format!("{second}"),
    ] {
        let token = second
            .security_token()
            .expect("a session has a token")
            .expose();
        assert!(!shown.contains(token), "token shown in {shown}");
    }
}

#[tokio::test]
async fn without_retries_the_refused_call_fails_and_the_next_one_renews() {
    let s = start_in_process(1).await;
    let role = s.role(EXTERNAL_ID, MINUTE_SESSION);
    let b = s.client("tenant-b", role.clone());
    b.describe_vpn_gateway(&gateway("vpn-b"))
        .await
        .expect("first call");
    s.cloud_clock_ahead(CLOUD_AHEAD);
    let e = b.describe_vpn_gateway(&gateway("vpn-b")).await.unwrap_err();
    assert_eq!(e.code(), "InvalidSecurityToken.Expired");
    b.describe_vpn_gateway(&gateway("vpn-b"))
        .await
        .expect("the next call signs with a new session");
    assert_eq!(s.counted("AssumeRole", "Success").await, 2);
}
