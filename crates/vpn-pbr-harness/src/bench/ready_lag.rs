//! Time to Ready per route: how long after the earliest moment its gateway allows each route
//! was first seen Ready. A gateway takes one change per update time T, so the k-th route of a
//! gateway (in the order of its entries' `CreateTime`) can be Ready no earlier than the
//! gateway's first create + k x T.

use std::time::Duration;

use tokio::time::Instant;

use super::latency::epoch_ms;
use super::result::percentile;

/// One instant of the harness's clock and the epoch ms at it: converts the watch's `Instant`s
/// to the clock of the emulator's `CreateTime`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub(crate) at: Instant,
    epoch_ms: u64,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        Clock {
            at: Instant::now(),
            epoch_ms: epoch_ms(),
        }
    }

    /// Epoch ms at `t`.
    pub(crate) fn epoch_ms_of(&self, t: Instant) -> f64 {
        let ahead = t.saturating_duration_since(self.at).as_secs_f64();
        let behind = self.at.saturating_duration_since(t).as_secs_f64();
        self.epoch_ms as f64 + (ahead - behind) * 1000.0
    }
}

/// One route of a run: its gateway, its entry's `CreateTime` and when it was first seen Ready
/// (epoch ms; `None`: never).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteTimes<'a> {
    pub(crate) gateway: &'a str,
    pub(crate) created_ms: u64,
    pub(crate) ready_ms: Option<f64>,
}

/// The figures of a run's lags (first Ready - earliest possible Ready), ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ReadyLag {
    /// Routes with a lag (an entry and a Ready time).
    pub(crate) n: usize,
    pub(crate) mean_ms: f64,
    pub(crate) p99_ms: f64,
    /// The largest lag of a gateway's first route (`None`: no first route was Ready).
    pub(crate) first_max_ms: Option<f64>,
}

/// The lags of `routes` on gateways of update time `update`; `None` without any.
pub(crate) fn ready_lag(mut routes: Vec<RouteTimes<'_>>, update: Duration) -> Option<ReadyLag> {
    routes.sort_by(|a, b| (a.gateway, a.created_ms).cmp(&(b.gateway, b.created_ms)));
    let t_ms = update.as_secs_f64() * 1000.0;
    let mut lags = Vec::new();
    let mut first_max: Option<f64> = None;
    for gateway in routes.chunk_by(|a, b| a.gateway == b.gateway) {
        let Some(first_send) = gateway.first().map(|r| r.created_ms as f64) else {
            continue;
        };
        for (k, route) in (1u32..).zip(gateway) {
            let Some(ready) = route.ready_ms else {
                continue;
            };
            let lag = ready - (first_send + f64::from(k) * t_ms);
            if k == 1 {
                first_max = Some(first_max.map_or(lag, |m| m.max(lag)));
            }
            lags.push(lag);
        }
    }
    // The mean of the raw lags: a small negative one (the watch's clock and the emulator's
    // millisecond `CreateTime` differ by their granularity) is kept, not clamped at zero.
    let mean_ms = lags.iter().sum::<f64>() / lags.len().max(1) as f64;
    lags.sort_by(f64::total_cmp);
    Some(ReadyLag {
        n: lags.len(),
        mean_ms,
        p99_ms: percentile(&lags, 0.99)?,
        first_max_ms: first_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(gateway: &str, created_ms: u64, ready_ms: Option<f64>) -> RouteTimes<'_> {
        RouteTimes {
            gateway,
            created_ms,
            ready_ms,
        }
    }

    #[test]
    fn lags_count_from_the_gateways_first_send_plus_k_update_times() {
        let t = Duration::from_secs(2);
        // routes -> (n, mean, p99, largest lag of a first route)
        type Figures = (usize, f64, f64, Option<f64>);
        let table: [(Vec<RouteTimes<'_>>, Option<Figures>); 5] = [
            (vec![], None),
            // One gateway, sent at 1000 and 3000 (listed out of order): earliest 3000 and 5000.
            (
                vec![
                    route("a", 3000, Some(5400.0)),
                    route("a", 1000, Some(3100.0)),
                ],
                Some((2, 250.0, 400.0, Some(100.0))),
            ),
            // A late second send counts from the first send: 1000 + 2 x 2000 = 5000.
            (
                vec![
                    route("a", 1000, Some(3200.0)),
                    route("a", 4000, Some(8000.0)),
                ],
                Some((2, 1600.0, 3000.0, Some(200.0))),
            ),
            // Two gateways; a negative lag (clock granularity) stays in the mean; a route never
            // Ready keeps its place but has no lag.
            (
                vec![
                    route("a", 1000, Some(2990.0)),
                    route("b", 500, None),
                    route("b", 2500, Some(4510.0)),
                    route("a", 3000, Some(5030.0)),
                ],
                Some((3, 10.0, 30.0, Some(-10.0))),
            ),
            // No route Ready: no figures.
            (vec![route("a", 1000, None)], None),
        ];
        for (routes, want) in table {
            let got =
                ready_lag(routes.clone(), t).map(|l| (l.n, l.mean_ms, l.p99_ms, l.first_max_ms));
            assert_eq!(got, want, "{routes:?}");
        }
    }

    #[test]
    fn clock_converts_instants_to_epoch_ms() {
        let clock = Clock {
            at: Instant::now(),
            epoch_ms: 1_000_000,
        };
        // offset from the clock's instant (ms, signed) -> epoch ms
        for (offset, want) in [(0i64, 1_000_000.0), (1500, 1_001_500.0), (-250, 999_750.0)] {
            let d = Duration::from_millis(offset.unsigned_abs());
            let t = if offset < 0 {
                clock.at - d
            } else {
                clock.at + d
            };
            assert!((clock.epoch_ms_of(t) - want).abs() < 1e-6, "{offset}");
        }
    }
}
