//! One measured workload ([`Scenario`]) and the lower bounds of its wall time: the two of
//! [`BindingBound`] (the gateways' update time and the operator's API rate) and the calls no
//! run of today's design avoids ([`unavoidable_calls`]).

use std::time::Duration;

use super::latency::LIST_PAGE;
use super::stack::log_and_rate;

/// The operator's default `--api-rate` (src/config.rs); a test checks that they agree.
pub(crate) const OPERATOR_API_RATE: f64 = 20.0;

/// One measured workload.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub label: String,
    pub routes: usize,
    pub gateways: usize,
    /// The gateways' update time T.
    pub update: Duration,
    /// `--gateway-scheduler`.
    pub scheduler: bool,
    /// `--api-rate` (operator default when unset).
    pub api_rate: Option<f64>,
    /// `--read-back-every` (operator default when unset).
    pub read_back_every: Option<u16>,
    /// Routes created one at a time on idle gateways after convergence.
    pub latency_probes: usize,
    /// Gateways beyond `gateways` that no route of the burst uses; while the burst converges
    /// one route at a time is created on them (`single`). Zero: none.
    pub quiet_gateways: usize,
    /// How often a single change is created on a quiet gateway during the burst.
    pub single_every: Duration,
    /// Give up waiting for convergence after this long.
    pub timeout: Duration,
    /// `--log-level` of the operator.
    pub log_level: String,
    /// Concurrent creates.
    pub parallel: usize,
    /// How long the operator may take to exit after SIGTERM at the end of the run; zero:
    /// SIGKILL at once.
    pub stop_grace: Duration,
    /// How long after convergence its RSS is read again (the burst settled: the backlog's
    /// queues gone, freed memory returned); zero: not read.
    pub settle_wait: Duration,
}

impl Scenario {
    /// `max over gateways of (routes on it x T)`.
    pub(crate) fn physical_limit(&self) -> Duration {
        self.update * u32::try_from(self.routes.div_ceil(self.gateways.max(1))).unwrap_or(u32::MAX)
    }

    /// The `--api-rate` the operator runs with.
    pub(crate) fn api_rate(&self) -> f64 {
        self.api_rate.unwrap_or(OPERATOR_API_RATE)
    }

    /// A lower bound of the wall time known before the run: the physical limit, or one call
    /// per route at the API rate when that is longer.
    pub fn lower_bound(&self) -> Duration {
        BindingBound::new(self.physical_limit(), self.routes as u64, self.api_rate()).bound()
    }

    /// The operator's flags.
    pub(crate) fn operator_args(&self) -> Vec<String> {
        let mut args = vec!["--gateway-scheduler".to_owned(), self.scheduler.to_string()];
        args.extend(log_and_rate(&self.log_level, self.api_rate));
        if let Some(n) = self.read_back_every {
            args.extend(["--read-back-every".to_owned(), n.to_string()]);
        }
        args
    }
}

/// Which of the two bounds of a run's wall time is the larger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// The busiest gateway's routes x T.
    Gateways,
    /// Cloud calls / API rate.
    Api,
}

/// The two lower bounds of a run's wall time: no gateway takes more than one change per T, and
/// the operator makes at most `--api-rate` calls per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BindingBound {
    /// The busiest gateway's routes x T (the physical limit).
    pub(crate) gateways: Duration,
    /// Cloud calls until convergence / API rate.
    pub(crate) api: Duration,
}

impl BindingBound {
    pub(crate) fn new(physical_limit: Duration, calls: u64, api_rate: f64) -> BindingBound {
        BindingBound {
            gateways: physical_limit,
            api: at_rate(calls, api_rate),
        }
    }

    pub(crate) fn bound(&self) -> Duration {
        self.gateways.max(self.api)
    }

    pub(crate) fn binding(&self) -> Binding {
        if self.api > self.gateways {
            Binding::Api
        } else {
            Binding::Gateways
        }
    }
}

/// How long `calls` take at `api_rate` calls per second (unbounded at a rate of zero).
pub(crate) fn at_rate(calls: u64, api_rate: f64) -> Duration {
    Duration::try_from_secs_f64(calls as f64 / api_rate).unwrap_or(Duration::MAX)
}

/// The calls today's design cannot avoid: one create per route (`creates`), and for each
/// gateway with entries (`entries_per_gateway`) its list pages (`LIST_PAGE` entries a page)
/// and one gateway read.
pub(crate) fn unavoidable_calls(
    creates: usize,
    entries_per_gateway: impl IntoIterator<Item = usize>,
) -> u64 {
    let reads: usize = entries_per_gateway
        .into_iter()
        .filter(|n| *n > 0)
        .map(|n| n.div_ceil(LIST_PAGE) + 1)
        .sum();
    (creates + reads) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn scenario(routes: usize, gateways: usize, api_rate: Option<f64>) -> Scenario {
        Scenario {
            label: "t".to_owned(),
            routes,
            gateways,
            update: Duration::from_secs(2),
            scheduler: true,
            api_rate,
            read_back_every: None,
            latency_probes: 0,
            quiet_gateways: 0,
            single_every: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            log_level: "info".to_owned(),
            parallel: 1,
            stop_grace: Duration::ZERO,
            settle_wait: Duration::ZERO,
        }
    }

    #[test]
    fn default_api_rate_is_the_operators() {
        let config = vpn_pbr_operator::config::Config::try_parse_from(["vpn-pbr-operator"])
            .expect("defaults parse");
        assert!((config.api_rate() - OPERATOR_API_RATE).abs() < f64::EPSILON);
    }

    #[test]
    fn operator_args_pass_the_set_flags() {
        // (scheduler, API rate, read back every) -> flags
        let table = [
            (
                (true, None, None),
                "--gateway-scheduler true --log-level info",
            ),
            (
                (false, Some(100.0), None),
                "--gateway-scheduler false --log-level info --api-rate 100",
            ),
            (
                (true, None, Some(1000)),
                "--gateway-scheduler true --log-level info --read-back-every 1000",
            ),
            (
                (true, Some(20.5), Some(4)),
                "--gateway-scheduler true --log-level info --api-rate 20.5 --read-back-every 4",
            ),
        ];
        for ((scheduler, api_rate, read_back_every), want) in table {
            let mut sc = scenario(1, 1, api_rate);
            sc.scheduler = scheduler;
            sc.read_back_every = read_back_every;
            assert_eq!(sc.operator_args().join(" "), want);
        }
    }

    #[test]
    fn binding_bound_is_the_larger_bound() {
        // (routes, gateways, calls, rate) -> (gateway bound s, API bound s, binding)
        let table = [
            // The main run: 50 routes per gateway x 2 s vs 1900 calls at 20/s.
            ((1000, 20, 1900, None), (100.0, 95.0, Binding::Gateways)),
            // The scale run: 20 routes per gateway x 2 s vs 12000 calls at 20/s.
            ((10_000, 500, 12_000, None), (40.0, 600.0, Binding::Api)),
            // A tie binds on the gateways.
            ((100, 10, 200, Some(10.0)), (20.0, 20.0, Binding::Gateways)),
            // Uneven spread: the busiest gateway has 4 routes.
            ((7, 2, 0, Some(100.0)), (8.0, 0.0, Binding::Gateways)),
        ];
        for ((routes, gateways, n, rate), (gw, api, binding)) in table {
            let sc = scenario(routes, gateways, rate);
            let b = BindingBound::new(sc.physical_limit(), n, sc.api_rate());
            assert_eq!(
                b.gateways,
                Duration::from_secs_f64(gw),
                "{routes}/{gateways}"
            );
            assert_eq!(b.api, Duration::from_secs_f64(api), "{routes}/{gateways}");
            assert_eq!(b.binding(), binding, "{routes}/{gateways}");
            assert_eq!(b.bound(), b.gateways.max(b.api));
        }
        // A rate of zero does not panic: the API bound is unbounded.
        let b = BindingBound::new(Duration::from_secs(1), 5, 0.0);
        assert_eq!((b.api, b.binding()), (Duration::MAX, Binding::Api));
        // Before the run: one call per route at the rate, or the physical limit.
        assert_eq!(
            scenario(10_000, 500, None).lower_bound(),
            Duration::from_secs(500)
        );
        assert_eq!(
            scenario(1000, 20, None).lower_bound(),
            Duration::from_secs(100)
        );
    }

    #[test]
    fn unavoidable_calls_are_creates_pages_and_gateway_reads() {
        // (creates, entries per gateway) -> calls
        let table: [(usize, &[usize], u64); 5] = [
            (0, &[], 0),
            // One entry: its create, one page, one gateway read.
            (1, &[1], 3),
            // 50 entries fit a page, 51 take two; a gateway without entries is not read.
            (101, &[50, 51, 0], 101 + 1 + 2 + 2),
            // The scale run: 10,000 routes over 500 gateways and 60 single changes on 20 quiet
            // gateways, one page each.
            (
                10_060,
                &[[20; 500].as_slice(), &[3; 20]].concat(),
                10_060 + 520 + 520,
            ),
            // The large run: 20 a gateway over 2,500 gateways.
            (50_000, &[20; 2500], 50_000 + 2 * 2500),
        ];
        for (creates, per_gateway, want) in table {
            assert_eq!(
                unavoidable_calls(creates, per_gateway.iter().copied()),
                want,
                "{creates} {per_gateway:?}"
            );
        }
        assert_eq!(at_rate(11_100, 20.0), Duration::from_secs(555));
    }
}
