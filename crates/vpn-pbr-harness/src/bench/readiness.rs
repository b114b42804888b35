//! Per-route time to Ready against the earliest each route could have been Ready: the end of
//! its gateway's update for it had every change on that gateway gone out back to back (route
//! `k` of a gateway, in the order the cloud accepted them: `k x T` after the gateway's first
//! accepted change). Measured from the emulator's `CreateTime` of each entry and the time a
//! watch first saw the route `Ready=True`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::result::percentile;
use super::stack::Stack;
use crate::workload;

/// Milliseconds since the epoch, the clock of the emulator's `CreateTime`.
pub(crate) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An `Instant` of this process as milliseconds since the epoch (by one reading of both
/// clocks).
pub(crate) fn instant_ms(at: Instant) -> f64 {
    let (now, epoch) = (Instant::now(), epoch_ms() as f64);
    epoch - now.saturating_duration_since(at).as_secs_f64() * 1000.0
        + at.saturating_duration_since(now).as_secs_f64() * 1000.0
}

/// One route: its gateway, when the cloud accepted its create, when it was first seen Ready
/// (both ms since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RouteTimes {
    pub(crate) gateway: String,
    pub(crate) created_ms: f64,
    pub(crate) ready_ms: f64,
}

/// Time to Ready minus the earliest possible, over the routes of a run (ms, sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Readiness {
    /// Every route's lateness.
    pub(crate) late_ms: Vec<f64>,
    /// The lateness of each gateway's first route.
    pub(crate) first_ms: Vec<f64>,
    /// Time to Ready after the route's own update ended (its create's `CreateTime` + T): the
    /// read-back and status write alone, without the sends' drift from back to back.
    pub(crate) own_ms: Vec<f64>,
    /// Routes without a created entry or a Ready time.
    pub(crate) missing: usize,
}

impl Readiness {
    /// From each route's times and the gateways' update time `update`.
    pub(crate) fn of(routes: &[RouteTimes], missing: usize, update: Duration) -> Readiness {
        let t = update.as_secs_f64() * 1000.0;
        let mut by_gateway: BTreeMap<&str, Vec<&RouteTimes>> = BTreeMap::new();
        for r in routes {
            by_gateway.entry(&r.gateway).or_default().push(r);
        }
        let (mut late_ms, mut first_ms, mut own_ms) = (Vec::new(), Vec::new(), Vec::new());
        for rs in by_gateway.values_mut() {
            rs.sort_by(|a, b| a.created_ms.total_cmp(&b.created_ms));
            let first_send = rs[0].created_ms;
            for (k, r) in rs.iter().enumerate() {
                let late = r.ready_ms - (first_send + t * (k + 1) as f64);
                late_ms.push(late);
                own_ms.push(r.ready_ms - r.created_ms - t);
                if k == 0 {
                    first_ms.push(late);
                }
            }
        }
        for v in [&mut late_ms, &mut first_ms, &mut own_ms] {
            v.sort_by(f64::total_cmp);
        }
        Readiness {
            late_ms,
            first_ms,
            own_ms,
            missing,
        }
    }

    pub(crate) fn mean_ms(&self) -> Option<f64> {
        mean(&self.late_ms)
    }

    pub(crate) fn p99_ms(&self) -> Option<f64> {
        percentile(&self.late_ms, 0.99)
    }

    pub(crate) fn own_mean_ms(&self) -> Option<f64> {
        mean(&self.own_ms)
    }

    pub(crate) fn first_mean_ms(&self) -> Option<f64> {
        mean(&self.first_ms)
    }

    pub(crate) fn first_max_ms(&self) -> Option<f64> {
        self.first_ms.last().copied()
    }

    /// The target of the mean: 2 s plus one update time (a read-back every few changes).
    pub(crate) fn mean_bound_ms(update: Duration) -> f64 {
        2000.0 + update.as_secs_f64() * 1000.0
    }

    /// The target of each gateway's first route: one update time after its earliest (one
    /// read, when the next change's acceptance proves it applied), where a batch of `n`
    /// changes would hold it `n - 1` update times.
    pub(crate) fn first_bound_ms(update: Duration) -> f64 {
        update.as_secs_f64() * 1000.0
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The route keys of the emulator's entries: (gateway, destination) -> `CreateTime` (ms).
pub(crate) async fn created(stack: &Stack) -> Result<HashMap<(String, String), f64>> {
    Ok(stack
        .emu
        .entries()
        .await?
        .into_iter()
        .map(|(gw, e)| {
            let dest = e["RouteDest"].as_str().unwrap_or_default().to_owned();
            ((gw, dest), e["CreateTime"].as_u64().unwrap_or(0) as f64)
        })
        .collect())
}

/// The times of routes `0..routes` of a run over `gateways` gateways.
pub(crate) async fn measure(
    stack: &Stack,
    routes: usize,
    gateways: usize,
    update: Duration,
) -> Result<Readiness> {
    let created = created(stack).await?;
    let ready = stack.tracker.ready_times();
    let mut times = Vec::new();
    let mut missing = 0;
    for i in 0..routes {
        let obj = workload::route(i, gateways)?;
        let key = (obj.spec.vpn_gateway_id.clone(), obj.spec.route_dest.clone());
        let name = kube::ResourceExt::name_any(&obj);
        match (created.get(&key), ready.get(&name)) {
            (Some(c), Some(r)) => times.push(RouteTimes {
                gateway: key.0,
                created_ms: *c,
                ready_ms: instant_ms(*r),
            }),
            _ => missing += 1,
        }
    }
    Ok(Readiness::of(&times, missing, update))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(gateway: &str, created_ms: f64, ready_ms: f64) -> RouteTimes {
        RouteTimes {
            gateway: gateway.to_owned(),
            created_ms,
            ready_ms,
        }
    }

    #[test]
    fn route_k_of_a_gateway_is_measured_from_k_update_times_after_its_first_change() {
        // T = 2 s. Gateway a: changes at 0, 2.1, 4.3 s; Ready at 2.5, 6.2, 6.3 s. Gateway b:
        // one change at 10 s, Ready at 13 s. Listed out of order: the creates order them.
        let routes = [
            at("a", 4300.0, 6300.0),
            at("a", 0.0, 2500.0),
            at("b", 10_000.0, 13_000.0),
            at("a", 2100.0, 6200.0),
        ];
        let r = Readiness::of(&routes, 1, Duration::from_secs(2));
        // a: 2500 - 2000, 6200 - 4000, 6300 - 6000; b: 13000 - 12000.
        assert_eq!(r.late_ms, vec![300.0, 500.0, 1000.0, 2200.0]);
        assert_eq!(r.first_ms, vec![500.0, 1000.0]);
        // After each route's own update: 2500 - 2000, 6200 - 4100, 6300 - 6300, 13000 - 12000.
        assert_eq!(r.own_ms, vec![0.0, 500.0, 1000.0, 2100.0]);
        assert_eq!(r.own_mean_ms(), Some(900.0));
        assert_eq!(r.mean_ms(), Some(1000.0));
        assert_eq!(r.p99_ms(), Some(2200.0));
        assert_eq!(
            (r.first_mean_ms(), r.first_max_ms()),
            (Some(750.0), Some(1000.0))
        );
        assert_eq!(r.missing, 1);
        assert_eq!(Readiness::mean_bound_ms(Duration::from_secs(2)), 4000.0);
        assert_eq!(Readiness::first_bound_ms(Duration::from_secs(2)), 2000.0);
        assert_eq!(
            Readiness::of(&[], 0, Duration::from_secs(2)).mean_ms(),
            None
        );
    }
}
