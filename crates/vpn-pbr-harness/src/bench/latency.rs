//! The latency probes: apply -> accepted create on idle gateways, measured against the
//! emulator's `CreateTime` of each new entry.

use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::entries::{accepted_ms, create_times, route_key};
use super::result::Latencies;
use super::scenario::Scenario;
use super::stack::Stack;
use crate::workload;

/// Milliseconds since the epoch, the clock of the emulator's `CreateTime`.
pub(crate) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Page size of the operator's list reads (`PBR_PAGE_SIZE` of alicloud-vpc-client).
pub(crate) const LIST_PAGE: usize = 50;

/// The time between two probes: each gateway's previous change at least T + 0.5 s old, and
/// the calls of one probe (its plan list, its create, its read-back list; a list of n pages
/// proven in 2n - 1 reads, `listing.rs` of alicloud-vpc-client) within the API rate, so that
/// nothing but the probe itself runs: probes sent faster than the rate allows measure a
/// queue at the operator's rate limiter, not a single change.
pub(crate) fn probe_gap(sc: &Scenario) -> Duration {
    let gateways = u32::try_from(sc.gateways.max(1)).unwrap_or(u32::MAX);
    let idle = (sc.update + Duration::from_millis(500)) / gateways;
    let entries = (sc.routes + sc.latency_probes).div_ceil(sc.gateways.max(1));
    let list_reads = 2 * entries.div_ceil(LIST_PAGE).max(1) - 1;
    let calls = 2 * list_reads + 1;
    let budget = Duration::from_secs_f64(calls as f64 / sc.api_rate());
    idle.max(budget).max(Duration::from_millis(50))
}

/// Apply -> first cloud call on idle gateways: one route at a time, round robin over the
/// gateways, paced by `probe_gap`. Returns the latencies (ms), the probes whose entry never
/// showed up as missing.
pub(crate) async fn probe_latency(stack: &Stack, sc: &Scenario) -> Result<Latencies> {
    tokio::time::sleep(sc.update + Duration::from_millis(500)).await;
    let gap = probe_gap(sc);
    let mut probes = Vec::new();
    let start = Instant::now();
    for k in 0..sc.latency_probes {
        let obj = workload::route(sc.routes + k, sc.gateways)?;
        let applied = epoch_ms();
        workload::create_one(&stack.api, &obj).await?;
        probes.push((route_key(&obj), applied));
        tokio::time::sleep_until(start + gap * u32::try_from(k + 1)?).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = create_times(&stack.emu.entries().await?);
        let latency = Latencies::new(
            probes
                .iter()
                .map(|(key, applied)| accepted_ms(&created, key, *applied)),
        );
        if latency.missing == 0 || Instant::now() > deadline {
            eprintln!(
                "[{}] apply -> create accepted: p50 {:?} ms, p99 {:?} ms ({} probes, {} missing)",
                sc.label,
                latency.percentile(0.5),
                latency.percentile(0.99),
                latency.sorted_ms.len(),
                latency.missing
            );
            return Ok(latency);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(routes: usize, gateways: usize) -> Scenario {
        Scenario {
            label: "main".to_owned(),
            routes,
            gateways,
            update: Duration::from_secs(2),
            scheduler: true,
            api_rate: None,
            read_back_every: None,
            latency_probes: 100,
            quiet_gateways: 0,
            single_every: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            log_level: "info".to_owned(),
            parallel: 1,
            stop_grace: Duration::ZERO,
            settle_wait: Duration::ZERO,
        }
    }

    #[test]
    fn probes_leave_each_gateway_idle_and_fit_the_api_rate() {
        // 15 entries a gateway: one page, 3 calls a probe: 150 ms at 20/s, longer than the
        // idle gap (2.5 s over 20 gateways).
        assert_eq!(probe_gap(&scenario(200, 20)), Duration::from_millis(150));
        // 55 entries: two pages proven in 3 reads, 7 calls a probe: 350 ms at 20/s.
        assert_eq!(probe_gap(&scenario(1000, 20)), Duration::from_millis(350));
        // One gateway: its own idle time.
        assert_eq!(probe_gap(&scenario(10, 1)), Duration::from_millis(2500));
    }
}
