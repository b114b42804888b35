//! A scenario run: create every route (and, with quiet gateways, single changes meanwhile),
//! wait until all are Ready, take the counters and the figures of the emulator's entries, then
//! probe the latency on idle gateways.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use kube::Client;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

use super::entries::{RouteKey, create_times, per_gateway, route_key};
use super::latency::probe_latency;
use super::progress::{Progress, converged_word};
use super::ready_lag::{Clock, ReadyLag, RouteTimes, ready_lag};
use super::result::{Latencies, ScenarioResult};
use super::scenario::{Scenario, unavoidable_calls};
use super::single::{send_singles, settle_singles};
use super::stack::{Stack, start_scenario};
use crate::cluster::ControlPlane;
use crate::emulator;
use crate::tools::Binaries;
use crate::workload;

/// Creates every route of the stack and waits until all are Ready (or the scenario's timeout),
/// sending single changes to the quiet gateways meanwhile; then takes the emulator's counters
/// and the operator's CPU time and reconciles, waits for the single changes, and takes the
/// figures of the emulator's entries. Returns a result without latencies, with the usage at
/// convergence, and when the burst converged (or timed out).
pub(crate) async fn converge(
    stack: &mut Stack,
    sc: &Scenario,
) -> Result<(ScenarioResult, Instant)> {
    eprintln!(
        "[{}] creating {} routes over {} gateways (T = {:?}, scheduler {}, api rate {}/s, {} at a time; {} quiet gateways)",
        sc.label,
        sc.routes,
        sc.gateways,
        sc.update,
        sc.scheduler,
        sc.api_rate(),
        sc.parallel,
        sc.quiet_gateways
    );
    let objs = std::mem::take(&mut stack.objs);
    let keys: Vec<RouteKey> = objs.iter().map(route_key).collect();
    let clock = Clock::now();
    let (stop, stopped) = oneshot::channel();
    let burst = async {
        let out = burst(stack, sc, objs, clock.at).await;
        let _ = stop.send(());
        out
    };
    let ((converged, create_time, converged_at), sent) =
        tokio::try_join!(burst, send_singles(&stack.api, sc, stopped))?;
    let (ready, last) = stack.tracker.ready_of(&stack.names);
    let wall = match (converged, last) {
        (true, Some(l)) => l.saturating_duration_since(clock.at),
        _ => converged_at.saturating_duration_since(clock.at),
    };
    let calls = emulator::calls(&stack.emu.counters().await?);
    let usage = stack.op.usage().unwrap_or_default();
    let reconciles = stack.reconciles().await;
    // Read after the single changes: the burst's entries stay as they were at convergence.
    let (singles, entries) = settle_singles(stack, &sent, &clock).await?;
    let result = ScenarioResult {
        scenario: sc.clone(),
        ready,
        converged,
        wall,
        create_time,
        calls,
        usage,
        settled_rss_kib: None,
        cpu_at_convergence: usage.cpu,
        latency: Latencies::default(),
        reconciles,
        ready_lag: lag_of(stack, sc, &keys, &entries, &clock),
        singles: (sc.quiet_gateways > 0).then_some(singles),
        unavoidable_calls: Some(unavoidable_calls(
            sc.routes + sent.len(),
            per_gateway(&entries).into_values(),
        )),
    };
    say_result(&result);
    Ok((result, converged_at))
}

/// Creates `objs` and waits until every route of the stack is Ready, at most the scenario's
/// timeout from `t0`: whether they all are, how long the creates took, and when the wait
/// ended.
async fn burst(
    stack: &Stack,
    sc: &Scenario,
    objs: Vec<VpnPbrRoute>,
    t0: Instant,
) -> Result<(bool, Duration, Instant)> {
    let names = &stack.names;
    workload::create_all(&stack.api, objs, sc.parallel).await?;
    let create_time = t0.elapsed();
    let mut progress = Progress::new(&sc.label, t0);
    let converged = stack
        .tracker
        .wait(sc.timeout.saturating_sub(t0.elapsed()), |t| {
            let n = t.ready_of(names).0;
            progress.every_10s(|| format!("{n}/{} Ready", names.len()));
            n == names.len()
        })
        .await;
    Ok((converged, create_time, Instant::now()))
}

/// The time-to-Ready lags of the burst's routes (`keys`, in the order of `stack.names`), from
/// the emulator's `entries` and the watch's first Ready times.
fn lag_of(
    stack: &Stack,
    sc: &Scenario,
    keys: &[RouteKey],
    entries: &[(String, Value)],
    clock: &Clock,
) -> Option<ReadyLag> {
    let created = create_times(entries);
    let routes = keys
        .iter()
        .zip(stack.tracker.first_ready(&stack.names))
        .filter_map(|(key, ready)| {
            created.get(key).map(|c| RouteTimes {
                gateway: &key.0,
                created_ms: *c,
                ready_ms: ready.map(|t| clock.epoch_ms_of(t)),
            })
        })
        .collect();
    ready_lag(routes, sc.update)
}

/// The run's summary on stderr.
fn say_result(r: &ScenarioResult) {
    let sc = &r.scenario;
    eprintln!(
        "[{}] {} in {:.1} s ({}/{} Ready), ratio {:.3}, binding bound {:.1} s ({:?}), honest bound {:?} s",
        sc.label,
        converged_word(r.converged),
        r.wall.as_secs_f64(),
        r.ready,
        sc.routes,
        r.ratio(),
        r.binding_bound().bound().as_secs_f64(),
        r.binding_bound().binding(),
        r.honest_bound().map(|b| b.as_secs_f64())
    );
    if let Some(l) = &r.ready_lag {
        eprintln!(
            "[{}] time to Ready lag: mean {:.0} ms, p99 {:.0} ms, first routes' max {:?} ms (n = {})",
            sc.label, l.mean_ms, l.p99_ms, l.first_max_ms, l.n
        );
    }
    if let Some(s) = &r.singles {
        eprintln!(
            "[{}] single changes: apply -> create accepted p99 {:?} ms, apply -> Ready p99 {:?} ms (n = {}, {} and {} missing)",
            sc.label,
            s.create.percentile(0.99),
            s.ready.percentile(0.99),
            s.create.sorted_ms.len() + s.create.missing,
            s.create.missing,
            s.ready.missing
        );
    }
}

/// Runs one scenario on `cluster` in a namespace of its own, with its own emulator and
/// operator process.
pub async fn run_scenario(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    work: &Path,
) -> Result<ScenarioResult> {
    let mut stack = start_scenario(cluster, client, bins, sc, work).await?;
    let (mut result, converged_at) = converge(&mut stack, sc).await?;
    if !sc.settle_wait.is_zero() {
        tokio::time::sleep_until(converged_at + sc.settle_wait).await;
        result.settled_rss_kib = stack.op.usage().map(|u| u.rss_kib);
    }
    if sc.latency_probes > 0 {
        result.latency = probe_latency(&stack, sc).await?;
    }
    // Peak RSS over the whole run, probes included.
    result.usage = stack.op.usage().unwrap_or(result.usage);
    stack.op.stop_within(sc.stop_grace);
    Ok(result)
}
