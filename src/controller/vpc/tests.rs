//! The cloud port over the real client against the emulator (in-process, on loopback) whose
//! route list changes between page reads: what the read cache serves and what the decision
//! makes of it. "Not listed" may mean "gone" only on a list proven whole
//! (docs/architecture.md, "Evidence of absence").

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use super::*;
use crate::api::v1alpha1::{FINALIZER, VpnPbrRoute};
use crate::controller::decide::{self, AccountGate, AccountRead, CloudRead, JobOp, Observation};
use crate::controller::entries::GatewayCache;
use crate::controller::error::Error;
use crate::controller::fixtures;
use crate::controller::metrics::{CloudCallMetrics, Metrics};
use crate::controller::model::{CredentialsHandle, GatewayFacts};
use crate::controller::reason::Reason;
use crate::controller::status;
use alicloud_vpc_client::{
    ClientConfig, Credentials, Endpoint, LIST_INCONSISTENT, StaticCredentials,
};

const ENTRIES: usize = 60;

/// An emulator with gateway `vpn-a` holding `ENTRIES` routes (two pages), its URL.
async fn emulator() -> String {
    let config = vpc_emulator::Config::parse(
        "access_keys: [{id: AKID, secret: secret}]\nregions: [cn-hangzhou]\n\
         vpn_gateways: [{id: vpn-a, region: cn-hangzhou, vpc_id: vpc-a, pbr_quota: 1000, \
         vpc_route_quota: 1000}]\nvpn_connections: [{id: vco-a1, gateway_id: vpn-a}]\n",
        "test",
    )
    .expect("config");
    let emu = Arc::new(vpc_emulator::Emulator::new(
        config,
        Arc::new(vpc_emulator::SystemClock),
        None,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, vpc_emulator::router(emu, true)).await;
    });
    for i in 0..ENTRIES {
        admin(&url, "entries/create", entry_body(i)).await;
    }
    url
}

fn dest(i: usize) -> String {
    format!("10.{i}.0.0/24")
}

fn entry_body(i: usize) -> serde_json::Value {
    json!({"VpnGatewayId": "vpn-a", "RouteSource": "192.168.0.0/24", "RouteDest": dest(i),
           "NextHop": "vco-a1"})
}

async fn admin(url: &str, path: &str, body: serde_json::Value) {
    // As the binary does at start (reqwest needs a provider).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{url}/_emulator/{path}"))
        .json(&body)
        .send()
        .await
        .expect("admin call");
    assert!(
        resp.status().is_success(),
        "admin {path}: {}",
        resp.status()
    );
}

fn scope() -> Scope {
    Scope {
        region_id: "cn-hangzhou".into(),
        vpn_gateway_id: "vpn-a".into(),
        credentials: CredentialsHandle {
            key: "default".into(),
            account: String::new(),
            api_rate: None,
            provider: Arc::new(StaticCredentials::new(Credentials::new("AKID", "secret"))),
        },
    }
}

/// The read cache over the real client of `url`, and the metrics it feeds.
fn cache(url: &str) -> (GatewayCache, Arc<Metrics>) {
    let metrics = Metrics::new(&mut prometheus_client::registry::Registry::default());
    let factory = VpcClientFactory::new(ClientConfig {
        endpoint: Endpoint::from_url(&format!("{url}/")).expect("endpoint"),
        ..ClientConfig::default()
    })
    .expect("factory")
    .with_observer(Arc::new(CloudCallMetrics(metrics.clone())));
    let port: Arc<dyn CloudPort> = Arc::new(VpcPort::new(factory));
    (
        GatewayCache::new(port, mpsc::unbounded_channel().0),
        metrics,
    )
}

/// A route of entry `i`, Ready at generation 1 with the entry's creation time recorded;
/// `deleting`: its deletion has started.
fn route(i: usize, created: i64, deleting: bool) -> VpnPbrRoute {
    let mut metadata = json!({"name": format!("r{i}"), "namespace": "ns", "uid": "u",
                              "generation": 1, "finalizers": [FINALIZER]});
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": metadata,
        "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                 "routeSource": "192.168.0.0/24", "routeDest": dest(i), "nextHop": "vco-a1",
                 "weight": 100, "publishVpc": false},
        "status": {"createTime": status::rfc3339_millis(created),
                   "conditions": [
                       {"type": "Ready", "status": "True", "reason": "Available",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1},
                       {"type": "Synced", "status": "True", "reason": "Synced",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}
    }))
    .expect("route")
}

fn observe<'a>(r: &'a VpnPbrRoute, cloud: CloudRead<'a>) -> Observation<'a> {
    Observation {
        route: r,
        older_claim: None,
        publish_conflict: None,
        job: None,
        recently_verified: false,
        cloud,
        new_token: "tok-new",
        credentials_fallback: None,
        publish_sharers: &[],
        account: AccountRead::Known("1234567890123456"),
        held_by: AccountGate::Open {
            name: crate::api::v1alpha1::OPERATOR_ACCOUNT,
            adoption: true,
        },
    }
}

fn facts() -> GatewayFacts {
    fixtures::gateway(false)
}

#[tokio::test]
async fn a_list_whose_pages_change_between_reads_never_makes_a_route_gone() {
    let url = emulator().await;
    let (cache, metrics) = cache(&url);
    let s = scope();
    let before = cache
        .entries(&s, Duration::ZERO)
        .await
        .expect("a quiet list");
    assert_eq!(before.len(), ENTRIES);
    let created = |i: usize| {
        before
            .iter()
            .find(|e| e.route_dest == dest(i))
            .map(|e| e.create_time)
            .expect("listed")
    };

    // A delete between page 1 and page 2 moves entry 50 to page 1, after page 1 was read:
    // it is on no page of that pass, whose union has the new TotalCount.
    admin(
        &url,
        "entries/delete",
        json!({"VpnGatewayId": "vpn-a", "RouteSource": "192.168.0.0/24", "RouteDest": dest(10),
               "NextHop": "vco-a1", "BeforeListPage": 2}),
    )
    .await;
    let after = cache.entries(&s, Duration::ZERO).await.expect("proven");
    assert!(
        after.iter().any(|e| e.route_dest == dest(50)),
        "entry 50 missing from a list of {} entries",
        after.len()
    );
    assert!(!after.iter().any(|e| e.route_dest == dest(10)), "deleted");
    let kept = route(50, created(50), false);
    let d = decide::decide(&observe(
        &kept,
        CloudRead::Ready {
            facts: &facts(),
            entries: &after,
        },
    ));
    assert!(
        !matches!(d.job, Some(JobOp::Submit(_))),
        "the route acted on a list that lacked its entry: {:?}",
        d.job
    );
    assert_eq!(
        d.status.and_then(|r| r.ready).map(|c| c.reason),
        Some(Reason::Available)
    );

    // Pages that never add up: an error that proves nothing, for a live route and for one
    // being deleted.
    admin(
        &url,
        "gateways/list_churn",
        json!({"VpnGatewayId": "vpn-a"}),
    )
    .await;
    let e = Arc::new(
        cache
            .entries(&s, Duration::ZERO)
            .await
            .expect_err("no list proven"),
    );
    assert_eq!(e.code(), LIST_INCONSISTENT);
    assert_eq!(metrics.list_inconsistent.get(), 1);
    for deleting in [false, true] {
        let r = route(20, created(20), deleting);
        let d = decide::decide(&observe(&r, CloudRead::Failed(&e)));
        assert!(
            !d.remove_finalizer,
            "deleting {deleting}: finalizer released"
        );
        assert!(
            !matches!(d.job, Some(JobOp::Submit(_))),
            "deleting {deleting}: {:?}",
            d.job
        );
        let failure = d.failure.expect("a failure to report");
        let (report, _) = decide::failure(&r, &Error::from(failure), None);
        let synced = report.synced.expect("Synced says why");
        assert_eq!(synced.reason, Reason::Cloud(LIST_INCONSISTENT.into()));
        if deleting {
            assert!(
                synced.message.starts_with("deleting: "),
                "{}",
                synced.message
            );
        } else {
            assert!(report.ready.is_none(), "a Ready route stays Ready");
        }
    }
}

/// Each account's calls wait at its own rate limiter (the cloud's flow control is per account),
/// at the account's own rate when it sets one (`spec.apiRate`), else at `--api-rate`; the
/// operator's identity and route Secrets share the default one.
#[test]
fn each_account_has_its_own_rate_limiter() {
    let port = VpcPort::new(
        VpcClientFactory::new(ClientConfig {
            endpoint: Endpoint::from_url("http://127.0.0.1:1/").expect("endpoint"),
            ..ClientConfig::default()
        })
        .expect("factory"),
    );
    let operator_rate = ClientConfig::default().rate_limit.max_rate;
    let in_account = |account: &str, api_rate: Option<f64>| {
        let mut s = scope();
        s.credentials.account = account.to_owned();
        s.credentials.api_rate = api_rate;
        let client = port.client(&s).expect("client");
        let limiter = port.factory.account_rate_limiter(client.account());
        (client.account().to_owned(), limiter.max_rate())
    };
    let cases = [
        ("", None, operator_rate),
        ("team-a", Some(5.0), 5.0),
        ("team-b", Some(40.0), 40.0),
        ("team-c", None, operator_rate),
        ("", None, operator_rate),
        // A changed rate takes effect on the account's existing client; unset, back to
        // `--api-rate`.
        ("team-a", Some(2.5), 2.5),
        ("team-b", None, operator_rate),
    ];
    for (account, api_rate, want) in cases {
        assert_eq!(
            in_account(account, api_rate),
            (account.to_owned(), want),
            "{account:?} at {api_rate:?}"
        );
    }
    assert_eq!(
        port.factory.account_rate_limiter("team-a").max_rate(),
        2.5,
        "team-b's change left team-a alone"
    );
}
