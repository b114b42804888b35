//! The restart run: what a fresh operator does to routes that are all Ready already (cloud
//! mutations, reads per gateway, Ready flips until it has settled).

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow};
use kube::Client;
use tokio::time::Instant;

use super::calls::{action_calls, calls_since, mutations};
use super::converge::converge;
use super::result::ScenarioResult;
use super::scenario::Scenario;
use super::settle::{SettleCriterion, Settled, settle};
use super::stack::start_scenario;
use crate::cluster::ControlPlane;
use crate::emulator::{self, Counter};
use crate::operator::Usage;
use crate::tools::Binaries;
use crate::workload::Flips;

/// The restart run: what a fresh operator does to routes that are all Ready already.
#[derive(Clone, Debug)]
pub struct RestartResult {
    /// Convergence of the first operator (the setup).
    pub(crate) setup: ScenarioResult,
    pub(crate) criterion: SettleCriterion,
    pub(crate) stop: Stopped,
    /// Calls of the new operator: the emulator's counters since the old one exited.
    pub(crate) calls: Vec<Counter>,
    /// The new operator from its start until settled (see `settle`).
    pub(crate) settle: Settled,
    /// Updates with Ready not True seen from before the stop until settled.
    pub(crate) flips: Flips,
    /// The new operator's usage until settled.
    pub(crate) usage: Usage,
}

/// The SIGTERMed operator: its exit status and how long it took to exit.
#[derive(Clone, Debug)]
pub(crate) struct Stopped {
    pub(crate) status: String,
    pub(crate) took: Duration,
}

impl RestartResult {
    pub(crate) fn mutations(&self) -> u64 {
        mutations(&self.calls)
    }

    /// DescribeVpnGateway and DescribeVpnPbrRouteEntries calls.
    pub(crate) fn reads(&self) -> (u64, u64) {
        (
            action_calls(&self.calls, "DescribeVpnGateway"),
            action_calls(&self.calls, "DescribeVpnPbrRouteEntries"),
        )
    }

    pub(crate) fn reads_per_gateway(&self) -> f64 {
        let (g, l) = self.reads();
        (g + l) as f64 / self.setup.scenario.gateways.max(1) as f64
    }
}

/// The restart run: converge `sc`, wait until the operator is idle, stop it with SIGTERM,
/// start a fresh one with the same flags and measure until it has settled (`crit`).
pub async fn run_restart(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    crit: SettleCriterion,
    work: &Path,
) -> Result<RestartResult> {
    let mut stack = start_scenario(cluster, client, bins, sc, work).await?;
    let (setup, _) = converge(&mut stack, sc).await?;
    if !setup.converged {
        stack.op.kill();
        return Err(anyhow!(
            "[{}] only {}/{} routes Ready after {:?}: nothing to restart on",
            sc.label,
            setup.ready,
            sc.routes,
            setup.wall
        ));
    }
    // The first operator's read-backs must be over, or the new one would be charged for them.
    let idle = settle(
        &mut stack,
        &sc.label,
        Instant::now(),
        SettleCriterion {
            min_reconciles: 0.0,
            ..crit
        },
    )
    .await?;
    if !idle.settled {
        return Err(anyhow!(
            "[{}] the first operator kept calling the cloud for {:?} after convergence",
            sc.label,
            crit.timeout
        ));
    }
    stack.tracker.count_flips();
    eprintln!("[{}] stopping the operator (SIGTERM)", sc.label);
    let stopping = Instant::now();
    let stop = Stopped {
        status: stack
            .op
            .terminate()
            .map_or("not running".to_owned(), |s| s.to_string()),
        took: stopping.elapsed(),
    };
    let before = emulator::calls(&stack.emu.counters().await?);
    let started = Instant::now();
    stack.op.restart()?;
    eprintln!(
        "[{}] operator exited ({}) after {:.1} s; new operator started",
        sc.label,
        stop.status,
        stop.took.as_secs_f64()
    );
    let settled = settle(&mut stack, &sc.label, started, crit).await?;
    let calls = calls_since(&before, &emulator::calls(&stack.emu.counters().await?));
    let usage = stack.op.usage().unwrap_or_default();
    stack.op.kill();
    let result = RestartResult {
        setup,
        criterion: crit,
        stop,
        calls,
        settle: settled,
        flips: stack.tracker.flips(),
        usage,
    };
    eprintln!(
        "[{}] {} after {:.1} s: {} mutations, {:.2} reads per gateway, {} Ready flips",
        sc.label,
        if result.settle.settled {
            "settled"
        } else {
            "NOT settled"
        },
        result.settle.after.as_secs_f64(),
        result.mutations(),
        result.reads_per_gateway(),
        result.flips.updates
    );
    Ok(result)
}
