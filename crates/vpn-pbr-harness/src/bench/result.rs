//! What one scenario run measured ([`ScenarioResult`]) and the figures derived from it: ratios
//! to its bounds, calls per route, refusals, CPU per route, latency percentiles.

use std::time::Duration;

use super::calls::{mutations, refusals};
use super::scenario::{BindingBound, Scenario};
use crate::emulator::Counter;
use crate::operator::Usage;

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub(crate) scenario: Scenario,
    /// Emulator counters at convergence: (action, code, n).
    pub(crate) calls: Vec<Counter>,
    /// Routes seen Ready (of `routes`).
    pub(crate) ready: usize,
    pub(crate) converged: bool,
    /// First create to the last route Ready (or to the timeout).
    pub(crate) wall: Duration,
    /// Time the harness took to create the objects.
    pub(crate) create_time: Duration,
    /// Operator usage at the end of the run (peak RSS covers the whole run).
    pub(crate) usage: Usage,
    /// The operator's RSS (VmRSS) `settle_wait` after convergence, KiB.
    pub(crate) settled_rss_kib: Option<u64>,
    /// CPU time at convergence.
    pub(crate) cpu_at_convergence: Duration,
    /// Apply -> accepted create (upper bound of apply -> first cloud call), ms, sorted.
    pub(crate) latencies_ms: Vec<f64>,
    /// Probes whose entry never showed up.
    pub(crate) latency_missing: usize,
    /// vpn_pbr_reconciles_total summed over labels, at convergence.
    pub(crate) reconciles: Option<f64>,
}

impl ScenarioResult {
    pub(crate) fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.scenario.physical_limit().as_secs_f64()
    }

    pub(crate) fn binding_bound(&self) -> BindingBound {
        BindingBound::new(
            self.scenario.physical_limit(),
            self.total_calls(),
            self.scenario.api_rate(),
        )
    }

    pub(crate) fn binding_ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.binding_bound().bound().as_secs_f64()
    }

    pub(crate) fn total_calls(&self) -> u64 {
        self.calls.iter().map(|c| c.2).sum()
    }

    /// Calls per route that reached Ready.
    pub(crate) fn calls_per_route(&self) -> f64 {
        self.total_calls() as f64 / self.ready.max(1) as f64
    }

    /// `n` divided by the routes of the run.
    pub(crate) fn per_route(&self, n: u64) -> f64 {
        n as f64 / self.scenario.routes.max(1) as f64
    }

    pub(crate) fn refusals(&self) -> Vec<Counter> {
        refusals(&self.calls)
    }

    pub(crate) fn refused_calls(&self) -> u64 {
        self.refusals().iter().map(|c| c.2).sum()
    }

    /// Refused calls of the mutating actions.
    pub(crate) fn refused_mutations(&self) -> u64 {
        mutations(&self.refusals())
    }

    /// Operator CPU time until convergence per route, ms.
    pub(crate) fn cpu_ms_per_route(&self) -> f64 {
        self.cpu_at_convergence.as_secs_f64() * 1000.0 / self.scenario.routes.max(1) as f64
    }

    pub(crate) fn percentile(&self, q: f64) -> Option<f64> {
        percentile(&self.latencies_ms, q)
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
