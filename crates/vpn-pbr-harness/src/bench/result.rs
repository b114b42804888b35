//! What one scenario run measured ([`ScenarioResult`]) and the figures derived from it: ratios
//! to its bounds, calls per route, refusals, CPU per route, latency percentiles
//! ([`Latencies`]).

use std::time::Duration;

use super::calls::{mutations, refusals};
use super::ready_lag::ReadyLag;
use super::scenario::{BindingBound, Scenario, at_rate};
use super::single::SingleChanges;
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
    /// Apply -> accepted create of the latency probes (upper bound of apply -> first cloud
    /// call); missing: probes whose entry never showed up.
    pub(crate) latency: Latencies,
    /// vpn_pbr_reconciles_total summed over labels, at convergence.
    pub(crate) reconciles: Option<f64>,
    /// Each route's first Ready behind the earliest its gateway allows (`ready_lag`); `None`
    /// when no route has both an entry and a Ready time.
    pub(crate) ready_lag: Option<ReadyLag>,
    /// The single changes on quiet gateways during the burst; `None` without quiet gateways.
    pub(crate) singles: Option<SingleChanges>,
    /// The calls today's design cannot avoid (`scenario::unavoidable_calls`).
    pub(crate) unavoidable_calls: Option<u64>,
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

    /// Unavoidable calls / API rate.
    pub(crate) fn honest_bound(&self) -> Option<Duration> {
        self.unavoidable_calls
            .map(|n| at_rate(n, self.scenario.api_rate()))
    }

    /// Wall time / honest bound.
    pub(crate) fn honest_ratio(&self) -> Option<f64> {
        self.honest_bound()
            .map(|b| self.wall.as_secs_f64() / b.as_secs_f64())
    }
}

/// Latencies of one kind (ms, sorted) and how many never showed up.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Latencies {
    pub(crate) sorted_ms: Vec<f64>,
    pub(crate) missing: usize,
}

impl Latencies {
    /// The latencies found (`Some`), sorted; the `None`s count as missing.
    pub(crate) fn new(found: impl IntoIterator<Item = Option<f64>>) -> Latencies {
        let mut out = Latencies::default();
        for f in found {
            match f {
                Some(v) => out.sorted_ms.push(v),
                None => out.missing += 1,
            }
        }
        out.sorted_ms.sort_by(f64::total_cmp);
        out
    }

    pub(crate) fn percentile(&self, q: f64) -> Option<f64> {
        percentile(&self.sorted_ms, q)
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.sorted_ms.last().copied()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_sort_and_count_the_missing() {
        // found -> (sorted, missing, p50, p99)
        type Case<'a> = (
            &'a [Option<f64>],
            &'a [f64],
            usize,
            Option<f64>,
            Option<f64>,
        );
        let table: [Case<'_>; 3] = [
            (&[], &[], 0, None, None),
            (
                &[Some(30.0), None, Some(10.0), Some(20.0)],
                &[10.0, 20.0, 30.0],
                1,
                Some(20.0),
                Some(30.0),
            ),
            (&[None, None], &[], 2, None, None),
        ];
        for (found, sorted, missing, p50, p99) in table {
            let l = Latencies::new(found.iter().copied());
            assert_eq!(
                (l.sorted_ms.as_slice(), l.missing),
                (sorted, missing),
                "{found:?}"
            );
            assert_eq!(
                (l.percentile(0.5), l.percentile(0.99)),
                (p50, p99),
                "{found:?}"
            );
            assert_eq!(l.max(), sorted.last().copied());
        }
    }
}
