//! When an operator has settled: polling the emulator's call counters and the operator's
//! reconciles until no call came for a while after enough reconciles.

use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;

use super::progress::Progress;
use super::stack::Stack;

/// When an operator counts as settled: it has made `min_reconciles` reconciles and the
/// emulator has answered no call for `quiet`.
#[derive(Clone, Copy, Debug)]
pub struct SettleCriterion {
    pub min_reconciles: f64,
    pub quiet: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Settled {
    pub(crate) settled: bool,
    /// From `since` to the later of the last cloud call seen and the `min_reconciles`-th
    /// reconcile (polled every 500 ms: the counters list every accepted create), or to the timeout.
    pub(crate) after: Duration,
    pub(crate) reconciles: Option<f64>,
}

/// Polls the emulator's call counters and the operator's reconciles until `crit` holds.
pub(crate) async fn settle(
    stack: &mut Stack,
    label: &str,
    since: Instant,
    crit: SettleCriterion,
) -> Result<Settled> {
    let mut last_total = None;
    let mut last_change = Instant::now();
    let mut reconciled_at: Option<Instant> = None;
    let mut progress = Progress::new(label, since);
    loop {
        if let Some(st) = stack.op.exited() {
            return Err(anyhow!(
                "[{label}] the operator exited ({st}); see {}",
                stack.op.log.display()
            ));
        }
        let now = Instant::now();
        let total = stack.emu.total_calls().await?;
        if last_total != Some(total) {
            last_total = Some(total);
            last_change = now;
        }
        let n = stack.reconciles().await;
        if reconciled_at.is_none() && n.is_some_and(|n| n >= crit.min_reconciles) {
            reconciled_at = Some(now);
        }
        let busy_until = reconciled_at.map(|r| r.max(last_change));
        if let Some(b) = busy_until
            && now.saturating_duration_since(b) >= crit.quiet
        {
            return Ok(Settled {
                settled: true,
                after: b.saturating_duration_since(since),
                reconciles: n,
            });
        }
        if now.saturating_duration_since(since) > crit.timeout {
            return Ok(Settled {
                settled: false,
                after: now.saturating_duration_since(since),
                reconciles: n,
            });
        }
        progress.every_10s(|| format!("{total} cloud calls, {} reconciles", n.unwrap_or(0.0)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
