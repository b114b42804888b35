//! The section of the restart run: how it was made, and what the new operator did.

use std::fmt::Write as _;

use super::format::{count, mib, secs, size};
use crate::bench::RestartResult;

/// The restart run's section: how it was measured, then its table.
pub(super) fn restart_section(s: &mut String, r: &RestartResult) {
    let sc = &r.setup.scenario;
    let crit = &r.criterion;
    let _ = writeln!(s, "## Restart run\n");
    let _ = writeln!(
        s,
        "{} routes over {} gateways, T = {}, set up with `--api-rate {}` (only to converge \
         faster; the new operator runs with the same flags). Once every route was Ready and \
         the cloud had answered no call for {}, the operator was stopped with SIGTERM, the \
         emulator's counters were taken, and a fresh operator was started. **Settled**: the \
         new operator's `vpn_pbr_reconciles_total` reached {} (its initial list queues every \
         route once) and the emulator answered no call for {} after that and after its last \
         call; the time to settle runs from the new start to the later of the two (polled \
         every 500 ms). **Ready flips**: new versions of any route with its Ready condition \
         not True (False, Unknown or none), seen by a watch running from before the stop \
         until settled.\n",
        sc.routes,
        sc.gateways,
        secs(sc.update),
        sc.api_rate(),
        secs(crit.quiet),
        crit.min_reconciles,
        secs(crit.quiet),
    );
    let (gw_reads, list_reads) = r.reads();
    let calls = if r.calls.is_empty() {
        "none".to_owned()
    } else {
        r.calls
            .iter()
            .map(|(a, c, n)| format!("{a} {c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let flips = if r.flips.updates == 0 {
        "**0**".to_owned()
    } else {
        format!(
            "**{}** on {} routes: {}",
            r.flips.updates,
            r.flips.routes,
            r.flips
                .by_reason
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let table = [
        ("routes / gateways / update time T / API rate", size(sc)),
        (
            "setup: first create to last Ready",
            format!(
                "{} ({} cloud calls)",
                secs(r.setup.wall),
                r.setup.total_calls()
            ),
        ),
        (
            "old operator stop (SIGTERM)",
            format!("{} after {}", r.stop.status, secs(r.stop.took)),
        ),
        (
            "time to settle",
            if r.settle.settled {
                secs(r.settle.after)
            } else {
                format!("**not settled** after {}", secs(r.settle.after))
            },
        ),
        ("reconciles by the new operator", count(r.settle.reconciles)),
        ("cloud calls of the new operator (action code n)", calls),
        ("mutations", format!("**{}**", r.mutations())),
        (
            "reads per gateway",
            format!(
                "**{:.2}** ({gw_reads} DescribeVpnGateway + {list_reads} \
                 DescribeVpnPbrRouteEntries over {} gateways)",
                r.reads_per_gateway(),
                sc.gateways
            ),
        ),
        ("Ready flips (updates with Ready not True)", flips),
        (
            "new operator peak RSS / CPU time until settled",
            format!(
                "{:.1} MiB / {}",
                mib(r.usage.peak_rss_kib),
                secs(r.usage.cpu)
            ),
        ),
    ];
    let _ = writeln!(s, "| | |\n|---|---|");
    for (row, val) in table {
        let _ = writeln!(s, "| {row} | {val} |");
    }
    let _ = writeln!(s);
}
