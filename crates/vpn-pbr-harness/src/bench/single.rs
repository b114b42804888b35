//! Single changes during a burst: while the burst's routes are created and converge on their
//! gateways, one route at a time is created on gateways no burst route uses, from the burst's
//! first create until it converged (its first minute included). Each probe measures apply ->
//! first cloud call (the emulator's `CreateTime` of its entry minus the harness clock just
//! before the create request: an upper bound) and apply -> Ready (a watch's first
//! `Ready=True`).

use std::time::Duration;

use anyhow::Result;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use super::readiness::{created, epoch_ms, instant_ms};
use super::result::percentile;
use super::stack::Stack;
use crate::workload;
use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

/// How the single changes are made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SingleProbes {
    /// Gateways of their own, after the burst's (none of the burst's routes is on them).
    pub idle_gateways: usize,
    /// One probe every this long, round robin over the idle gateways.
    pub every: Duration,
}

impl SingleProbes {
    /// Whether each idle gateway's previous probe is at least `T + 0.5 s` old when the next
    /// comes (else it is not idle).
    pub fn spaced_for(&self, update: Duration) -> bool {
        self.every * u32::try_from(self.idle_gateways).unwrap_or(u32::MAX)
            >= update + Duration::from_millis(500)
    }
}

/// What the probes measured (ms, sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SingleResult {
    pub(crate) probes: SingleProbes,
    /// Apply -> the create accepted, per probe whose entry was made.
    pub(crate) call_ms: Vec<f64>,
    /// Apply -> Ready, per probe seen Ready.
    pub(crate) ready_ms: Vec<f64>,
    /// Probes made.
    pub(crate) made: usize,
}

impl Default for SingleProbes {
    fn default() -> Self {
        Self {
            idle_gateways: 10,
            every: Duration::from_secs(1),
        }
    }
}

impl SingleResult {
    pub(crate) fn call_p(&self, q: f64) -> Option<f64> {
        percentile(&self.call_ms, q)
    }

    pub(crate) fn ready_p(&self, q: f64) -> Option<f64> {
        percentile(&self.ready_ms, q)
    }

    /// The target of apply -> first call p99 during a burst.
    pub(crate) const CALL_BOUND_MS: f64 = 1000.0;

    /// The target of apply -> Ready p99: 1 s plus the gateway's update time.
    pub(crate) fn ready_bound_ms(update: Duration) -> f64 {
        Self::CALL_BOUND_MS + update.as_secs_f64() * 1000.0
    }
}

/// A probe made: its object and the harness clock just before its create (ms since the epoch).
struct Probe {
    obj: VpnPbrRoute,
    applied_ms: f64,
}

/// The task that makes the probes until `stop` turns true.
pub(crate) struct Prober {
    task: tokio::task::JoinHandle<Result<Vec<Probe>>>,
    stop: watch::Sender<bool>,
    probes: SingleProbes,
}

impl Prober {
    /// Starts making probes on gateways `first_idle..first_idle + probes.idle_gateways`.
    pub(crate) fn start(api: Api<VpnPbrRoute>, first_idle: usize, probes: SingleProbes) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut made = Vec::new();
            for k in 0.. {
                let g = first_idle + k % probes.idle_gateways.max(1);
                let obj = workload::route_on(g, k / probes.idle_gateways.max(1))?;
                let applied_ms = epoch_ms() as f64;
                workload::create_one(&api, &obj).await?;
                made.push(Probe { obj, applied_ms });
                let next = start + probes.every * u32::try_from(k + 1)?;
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
            }
            Ok(made)
        });
        Self { task, stop, probes }
    }

    /// Stops making probes, waits up to `within` for every probe to be Ready, and measures
    /// them.
    pub(crate) async fn finish(self, stack: &Stack, within: Duration) -> Result<SingleResult> {
        self.stop.send_replace(true);
        let probes = self.task.await??;
        let names: Vec<String> = probes
            .iter()
            .map(|p| kube::ResourceExt::name_any(&p.obj))
            .collect();
        stack
            .tracker
            .wait(within, |t| t.ready_of(&names).0 == names.len())
            .await;
        let created = created(stack).await?;
        let ready = stack.tracker.ready_times();
        let (mut call_ms, mut ready_ms) = (Vec::new(), Vec::new());
        for (p, name) in probes.iter().zip(&names) {
            let key = (
                p.obj.spec.vpn_gateway_id.clone(),
                p.obj.spec.route_dest.clone(),
            );
            if let Some(c) = created.get(&key) {
                call_ms.push(c - p.applied_ms);
            }
            if let Some(r) = ready.get(name) {
                ready_ms.push(instant_ms(*r) - p.applied_ms);
            }
        }
        call_ms.sort_by(f64::total_cmp);
        ready_ms.sort_by(f64::total_cmp);
        let result = SingleResult {
            probes: self.probes,
            call_ms,
            ready_ms,
            made: probes.len(),
        };
        eprintln!(
            "single changes during the burst: {} made; apply -> call p50 {:?} p99 {:?} ms; \
             apply -> Ready p50 {:?} p99 {:?} ms ({} Ready)",
            result.made,
            result.call_p(0.5),
            result.call_p(0.99),
            result.ready_p(0.5),
            result.ready_p(0.99),
            result.ready_ms.len()
        );
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_spaced_by_the_update_time_and_bounds_follow_it() {
        let p = SingleProbes {
            idle_gateways: 5,
            every: Duration::from_millis(500),
        };
        assert!(p.spaced_for(Duration::from_secs(2)));
        assert!(!p.spaced_for(Duration::from_secs(3)));
        assert_eq!(SingleResult::ready_bound_ms(Duration::from_secs(2)), 3000.0);
        let r = SingleResult {
            call_ms: vec![10.0, 20.0, 900.0],
            ready_ms: vec![2100.0],
            ..SingleResult::default()
        };
        assert_eq!(
            (r.call_p(0.99), r.ready_p(0.5)),
            (Some(900.0), Some(2100.0))
        );
    }
}
