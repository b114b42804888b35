//! A scenario run: create every route, wait until all are Ready, take the counters, then probe
//! the latency on idle gateways.

use std::path::Path;

use anyhow::Result;
use kube::Client;
use tokio::time::Instant;

use super::latency::probe_latency;
use super::progress::{Progress, converged_word};
use super::result::ScenarioResult;
use super::scenario::Scenario;
use super::stack::{Stack, start_scenario};
use crate::cluster::ControlPlane;
use crate::emulator;
use crate::tools::Binaries;
use crate::workload;

/// Creates every route of the stack and waits until all are Ready (or the scenario's timeout),
/// then takes the emulator's counters and the operator's CPU time and reconciles: a result
/// without latencies, with the usage at convergence.
pub(crate) async fn converge(stack: &mut Stack, sc: &Scenario) -> Result<ScenarioResult> {
    eprintln!(
        "[{}] creating {} routes over {} gateways (T = {:?}, scheduler {}, api rate {}/s, {} at a time)",
        sc.label,
        sc.routes,
        sc.gateways,
        sc.update,
        sc.scheduler,
        sc.api_rate(),
        sc.parallel
    );
    let names = &stack.names;
    let t0 = Instant::now();
    workload::create_all(&stack.api, std::mem::take(&mut stack.objs), sc.parallel).await?;
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
    let (ready, last) = stack.tracker.ready_of(names);
    let wall = match (converged, last) {
        (true, Some(l)) => l.saturating_duration_since(t0),
        _ => t0.elapsed(),
    };
    let calls = emulator::calls(&stack.emu.counters().await?);
    let usage = stack.op.usage().unwrap_or_default();
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
        latencies_ms: Vec::new(),
        latency_missing: 0,
        reconciles: stack.reconciles().await,
    };
    eprintln!(
        "[{}] {} in {:.1} s ({ready}/{} Ready), ratio {:.3}, binding bound {:.1} s ({:?})",
        sc.label,
        converged_word(converged),
        wall.as_secs_f64(),
        sc.routes,
        result.ratio(),
        result.binding_bound().bound().as_secs_f64(),
        result.binding_bound().binding()
    );
    Ok(result)
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
    let mut result = converge(&mut stack, sc).await?;
    if !sc.settle_wait.is_zero() {
        tokio::time::sleep(sc.settle_wait).await;
        result.settled_rss_kib = stack.op.usage().map(|u| u.rss_kib);
    }
    if sc.latency_probes > 0 {
        (result.latencies_ms, result.latency_missing) = probe_latency(&stack, sc).await?;
    }
    // Peak RSS over the whole run, probes included.
    result.usage = stack.op.usage().unwrap_or(result.usage);
    stack.op.stop_within(sc.stop_grace);
    Ok(result)
}
