//! Single changes during a burst: while the burst converges, one route at a time on a quiet
//! gateway (one that no route of the burst uses), every `single_every`; then apply -> create
//! accepted and apply -> Ready of each.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

use super::entries::{RouteKey, accepted_ms, create_times, route_key};
use super::latency::epoch_ms;
use super::ready_lag::Clock;
use super::result::Latencies;
use super::scenario::Scenario;
use super::stack::Stack;
use crate::workload;

/// How long after the burst the single changes may take to be Ready and listed.
const SETTLE: Duration = Duration::from_secs(60);
/// The file in the stack's directory that holds each single change's timings.
const SINGLES_TABLE: &str = "singles.tsv";
/// The shortest gap between two single changes (a gap of zero would create without a pause).
const MIN_GAP: Duration = Duration::from_millis(100);

/// One single change sent: its route's name and entry key, and the epoch ms just before its
/// create request.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    name: String,
    key: RouteKey,
    applied_ms: u64,
}

/// The figures of a run's single changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SingleChanges {
    /// Apply -> create accepted: the entry's `CreateTime` - applied; missing: no entry listed.
    pub(crate) create: Latencies,
    /// Apply -> Ready: first seen Ready - applied; missing: never Ready.
    pub(crate) ready: Latencies,
}

/// The gateway of the `k`-th single change and which route of it: round robin over the
/// `quiet` gateways that follow the burst's `gateways`.
fn single_slot(k: usize, gateways: usize, quiet: usize) -> (usize, usize) {
    let quiet = quiet.max(1);
    (gateways + k % quiet, k / quiet)
}

/// Creates a single change at once and then every `sc.single_every` until `stop` fires (or its
/// sender is gone); none without quiet gateways.
pub(crate) async fn send_singles(
    api: &Api<VpnPbrRoute>,
    sc: &Scenario,
    mut stop: oneshot::Receiver<()>,
) -> Result<Vec<Sent>> {
    let mut sent = Vec::new();
    if sc.quiet_gateways == 0 {
        return Ok(sent);
    }
    let every = sc.single_every.max(MIN_GAP);
    let start = Instant::now();
    loop {
        let (g, j) = single_slot(sent.len(), sc.gateways, sc.quiet_gateways);
        let obj = workload::route_on(g, j)?;
        let applied_ms = epoch_ms();
        workload::create_one(api, &obj).await?;
        sent.push(Sent {
            name: obj.name_any(),
            key: route_key(&obj),
            applied_ms,
        });
        let next = start + every * u32::try_from(sent.len())?;
        tokio::select! {
            _ = &mut stop => return Ok(sent),
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Waits (at most `SETTLE`) until every single change of `sent` is Ready and its entry is
/// listed; returns their figures and the emulator's entries as last read.
pub(crate) async fn settle_singles(
    stack: &Stack,
    sent: &[Sent],
    clock: &Clock,
) -> Result<(SingleChanges, Vec<(String, Value)>)> {
    let names: Vec<String> = sent.iter().map(|s| s.name.clone()).collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = stack
            .tracker
            .wait(left, |t| t.ready_of(&names).0 == names.len())
            .await;
        let entries = stack.emu.entries().await?;
        let created = create_times(&entries);
        let listed = sent.iter().all(|s| created.contains_key(&s.key));
        if (ready && listed) || Instant::now() >= deadline {
            let ready_ms: Vec<Option<f64>> = stack
                .tracker
                .first_ready(&names)
                .into_iter()
                .map(|t| t.map(|t| clock.epoch_ms_of(t)))
                .collect();
            let table = singles_table(sent, &created, &ready_ms, clock);
            std::fs::write(stack.dir.join(SINGLES_TABLE), table)?;
            return Ok((single_changes(sent, &created, &ready_ms), entries));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line per single change, tab-separated, for analysis: its name, when it was applied
/// (ms after the run's start), and apply -> create accepted and apply -> Ready in ms (empty:
/// never).
fn singles_table(
    sent: &[Sent],
    created: &HashMap<RouteKey, u64>,
    ready_ms: &[Option<f64>],
    clock: &Clock,
) -> String {
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    let start = clock.epoch_ms_of(clock.at);
    let mut out = String::from("name\tapplied_ms\tcreate_ms\tready_ms\n");
    for (s, r) in sent.iter().zip(ready_ms) {
        out.push_str(&format!(
            "{}\t{:.0}\t{}\t{}\n",
            s.name,
            s.applied_ms as f64 - start,
            cell(accepted_ms(created, &s.key, s.applied_ms)),
            cell(r.map(|r| r - s.applied_ms as f64)),
        ));
    }
    out
}

/// The figures of `sent`, given the entries' `CreateTime`s and when each was first seen Ready
/// (epoch ms, in the order of `sent`).
fn single_changes(
    sent: &[Sent],
    created: &HashMap<RouteKey, u64>,
    ready_ms: &[Option<f64>],
) -> SingleChanges {
    SingleChanges {
        create: Latencies::new(
            sent.iter()
                .map(|s| accepted_ms(created, &s.key, s.applied_ms)),
        ),
        ready: Latencies::new(
            sent.iter()
                .zip(ready_ms)
                .map(|(s, r)| r.map(|r| r - s.applied_ms as f64)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singles_go_round_robin_over_the_quiet_gateways() {
        // (k, gateways, quiet) -> (gateway, route of it)
        let table = [
            ((0, 500, 20), (500, 0)),
            ((19, 500, 20), (519, 0)),
            ((20, 500, 20), (500, 1)),
            ((41, 20, 4), (21, 10)),
            // No quiet gateway: never called so, but no division by zero.
            ((3, 5, 0), (5, 3)),
        ];
        for ((k, gateways, quiet), want) in table {
            assert_eq!(
                single_slot(k, gateways, quiet),
                want,
                "{k} {gateways} {quiet}"
            );
        }
    }

    #[test]
    fn single_figures_from_create_times_and_ready_times() {
        let sent: Vec<Sent> = (0..3)
            .map(|k| {
                let obj = workload::route_on(500, k).expect("route");
                Sent {
                    name: obj.name_any(),
                    key: route_key(&obj),
                    applied_ms: 10_000 * (k as u64 + 1),
                }
            })
            .collect();
        // Listed: the first two, 40 ms and 900 ms after their apply; Ready: the first and the
        // third, 2300 ms and 2100 ms after theirs.
        let created = HashMap::from([(sent[0].key.clone(), 10_040), (sent[1].key.clone(), 20_900)]);
        let ready = [Some(12_300.0), None, Some(32_100.0)];
        let clock = Clock::now();
        let table = singles_table(&sent, &created, &ready, &clock);
        let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(lines[0], ["name", "applied_ms", "create_ms", "ready_ms"]);
        assert_eq!(lines[1][0], sent[0].name);
        assert_eq!(lines[1][2..], ["40", "2300"]);
        assert_eq!(lines[2][2..], ["900", ""]);
        assert_eq!(lines[3][2..], ["", "2100"]);
        let got = single_changes(&sent, &created, &ready);
        assert_eq!(
            got,
            SingleChanges {
                create: Latencies {
                    sorted_ms: vec![40.0, 900.0],
                    missing: 1
                },
                ready: Latencies {
                    sorted_ms: vec![2100.0, 2300.0],
                    missing: 1
                },
            }
        );
    }
}
