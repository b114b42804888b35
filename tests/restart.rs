//! A restart of the operator with every route in sync costs the cloud almost nothing: no change,
//! one entry list and one gateway read per gateway, and no route's `Ready` goes away on the
//! way (no flip, no status write at all). The operator binary against the real kube-apiserver
//! and the `vpc-emulator` binary; one control plane for the binary.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::{Value, json};
use support::emulator::{self, bench_config_yaml, connection_id, gateway_id};
use support::env::{RouteEnv as Env, tail};
use support::route::synced_is;
use support::{eventually, ready_is};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

const GATEWAYS: usize = 6;
const ROUTES: usize = 60;
/// The reads that are counted per gateway.
const LIST: &str = "DescribeVpnPbrRouteEntries";
const GATEWAY_READ: &str = "DescribeVpnGateway";

/// Route `i` on gateway `g`.
fn spec(g: usize, i: usize) -> Value {
    json!({
        "regionId": emulator::REGION,
        "vpnGatewayId": gateway_id(g),
        "routeSource": format!("192.168.{}.0/24", i % 7),
        "routeDest": format!("10.{}.{}.0/24", 100 + i / 250, i % 250),
        "nextHop": connection_id(g, i % emulator::CONNECTIONS),
        "weight": 100,
        "priority": 10,
        "publishVpc": false,
    })
}

/// Calls per action, every answer code together.
fn per_action(counters: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (action, _, n) in emulator::calls(counters) {
        *out.entry(action).or_default() += n;
    }
    out
}

/// The sum of a counter family of the operator's /metrics text.
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn a_restart_with_every_route_ready_reads_each_gateway_once_and_flips_nothing()
-> anyhow::Result<()> {
    let mut env = all_ready_then_stopped("restart", GATEWAYS, ROUTES).await?;
    let before = per_action(&env.emu.counters().await?);

    let (list, written, recorder) = record_writes(&env).await?;
    assert_eq!(list.len(), ROUTES);

    env.op.restart()?;
    env.op.wait_ready(Duration::from_secs(60)).await?;
    // Every route reconciled (each at least once) and nothing sent for a while.
    eventually(
        Duration::from_secs(60),
        "every route reconciled",
        || async {
            let m = env.op.metrics().await.ok()?;
            (metric_sum(&m, "vpn_pbr_reconciles_total") >= ROUTES as u64).then_some(())
        },
    )
    .await?;
    quiet(&env, Duration::from_secs(3)).await?;
    recorder.abort();

    let after = per_action(&env.emu.counters().await?);
    let delta: BTreeMap<&str, u64> = after
        .iter()
        .map(|(a, n)| (a.as_str(), n - before.get(a).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let log = tail(&env.op.logs(), 40);
    let mutations: u64 = delta
        .iter()
        .filter(|(a, _)| vpc_emulator::ops::is_mutation(a))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        mutations, 0,
        "no change after a restart; calls {delta:?}\n{log}"
    );
    // Every gateway must be read for its routes to be confirmed, so at most one per gateway
    // is exactly one each.
    assert!(
        delta.get(LIST).copied().unwrap_or(0) <= GATEWAYS as u64,
        "at most one entry list per gateway; calls {delta:?}\n{log}"
    );
    assert!(
        delta.get(GATEWAY_READ).copied().unwrap_or(0) <= GATEWAYS as u64,
        "at most one gateway read per gateway; calls {delta:?}\n{log}"
    );
    let flips = flips(&written);
    assert!(
        flips.is_empty(),
        "Ready stays True through a restart: {flips:#?}"
    );
    let written = written
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let names: Vec<String> = written.iter().map(ResourceExt::name_any).collect();
    let first = written.first().map(|w| {
        let was = list.iter().find(|r| r.name_any() == w.name_any());
        format!(
            "{}: before {:?}\nafter {:?}",
            w.name_any(),
            was.and_then(|r| r.status.as_ref()),
            w.status
        )
    });
    assert!(
        names.is_empty(),
        "nothing changed, nothing written; writes of {names:?}; first {first:?}"
    );
    Ok(())
}

/// An emulator with `gateways` gateways, an operator (drift checks far beyond the test: what is
/// measured is the restart alone), `routes` routes all Ready, and the operator stopped once the
/// cloud is quiet.
async fn all_ready_then_stopped(
    prefix: &str,
    gateways: usize,
    routes: usize,
) -> anyhow::Result<Env> {
    let mut env = Env::start_with(
        prefix,
        &bench_config_yaml(gateways, 200),
        &["--resync", "30m"],
        &[],
    )
    .await?;
    env.op.wait_ready(Duration::from_secs(60)).await?;
    for i in 0..routes {
        env.apply(&format!("r{i:02}"), spec(i % gateways, i)).await;
    }
    let two_minutes = Duration::from_secs(120);
    eventually_logged(&env, two_minutes, "every route Ready", || async {
        let listed = env.api.list(&ListParams::default()).await.ok()?.items;
        let ready = listed
            .iter()
            .filter(|r| ready_is(r, ConditionStatus::True, None))
            .count();
        (ready == routes).then_some(())
    })
    .await?;
    // Let the first operator's read-backs end, then stop it.
    quiet(&env, Duration::from_secs(2)).await?;
    env.op.terminate();
    Ok(env)
}

/// [`eventually`], with the end of the operator's log in the error.
async fn eventually_logged<T, F, Fut>(
    env: &Env,
    timeout: Duration,
    what: &str,
    check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(timeout, what, check)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- operator log ---\n{}", env.log_tail()))
}

type Written = Arc<Mutex<Vec<VpnPbrRoute>>>;

/// The routes as they are now, and every version of a route written from now on (from a watch
/// that starts at this list, so no version is missed).
async fn record_writes(
    env: &Env,
) -> anyhow::Result<(
    Vec<VpnPbrRoute>,
    Written,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let written: Written = Arc::default();
    let list = env.api.list(&ListParams::default()).await?;
    let version = list.metadata.resource_version.clone().unwrap_or_default();
    let recorder = tokio::spawn({
        let written = written.clone();
        let api = env.api.clone();
        async move {
            let mut events = std::pin::pin!(api.watch(&Default::default(), &version).await?);
            while let Some(ev) = events.next().await {
                if let kube::core::WatchEvent::Added(r) | kube::core::WatchEvent::Modified(r) = ev?
                {
                    written
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(r);
                }
            }
            anyhow::Ok(())
        }
    });
    Ok((list.items, written, recorder))
}

/// The written versions whose `Ready` is not True.
fn flips(written: &Written) -> Vec<String> {
    written
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|r| !ready_is(r, ConditionStatus::True, None))
        .map(|r| format!("{}: {:?}", r.name_any(), r.status))
        .collect()
}

#[tokio::test]
async fn a_restart_into_a_failing_cloud_keeps_every_route_ready() -> anyhow::Result<()> {
    const FEW: usize = 12;
    let mut env = all_ready_then_stopped("restartfail", 2, FEW).await?;
    // Every list fails for a while after the restart: the cloud cannot be read, but nothing
    // says the entries changed.
    env.emu
        .set_faults(&json!({"rate_limit_per_second": null, "rules": [
            {"action": LIST, "rate": 1.0, "kind": "unavailable"}]}))
        .await?;
    let (_, written, recorder) = record_writes(&env).await?;
    env.op.restart()?;
    env.op.wait_ready(Duration::from_secs(60)).await?;
    let minute = Duration::from_secs(60);
    eventually_logged(&env, minute, "a failed read reported", || async {
        let w = written.lock().unwrap_or_else(PoisonError::into_inner);
        w.iter()
            .any(|r| synced_is(r, ConditionStatus::False))
            .then_some(())
    })
    .await?;
    env.emu
        .set_faults(&json!({"rate_limit_per_second": null, "rules": []}))
        .await?;
    eventually_logged(&env, minute, "every route Synced again", || async {
        let listed = env.api.list(&ListParams::default()).await.ok()?.items;
        listed
            .iter()
            .all(|r| synced_is(r, ConditionStatus::True))
            .then_some(())
    })
    .await?;
    recorder.abort();
    let flips = flips(&written);
    assert!(
        flips.is_empty(),
        "a cloud that cannot be read flips no route: {flips:#?}"
    );
    Ok(())
}

/// Waits until the emulator has answered no call for `period`.
async fn quiet(env: &Env, period: Duration) -> anyhow::Result<()> {
    let mut last = env.emu.total_calls().await?;
    let mut since = tokio::time::Instant::now();
    let deadline = since + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = env.emu.total_calls().await?;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= period {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the cloud never went quiet"
        );
    }
}
