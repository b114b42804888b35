//! The tables of the scenario runs, one column per run: what each measured, and its cloud
//! calls by action and code.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::format::{binding, count, latencies, mib, ms, secs, size};
use crate::bench::ScenarioResult;

/// One row of a run's column: (row, value); `None` where the run has no such value.
type Row = (&'static str, Option<String>);

/// The rows of one run's column.
fn rows(r: &ScenarioResult) -> Vec<Row> {
    let mut out = bound_rows(r);
    out.extend(honest_rows(r));
    out.extend(call_rows(r));
    out.extend(ready_rows(r));
    out.extend(usage_rows(r));
    out
}

/// Size, bounds, wall time and the ratios to the bounds.
fn bound_rows(r: &ScenarioResult) -> Vec<Row> {
    let sc = &r.scenario;
    let bound = r.binding_bound();
    vec![
        (
            "routes / gateways / update time T / API rate",
            Some(size(sc)),
        ),
        (
            "physical limit (busiest gateway's routes x T)",
            Some(secs(sc.physical_limit())),
        ),
        (
            "API bound (cloud calls until convergence / API rate)",
            Some(secs(bound.api)),
        ),
        (
            "binding bound (the larger)",
            Some(format!(
                "{} ({})",
                secs(bound.bound()),
                binding(bound.binding())
            )),
        ),
        (
            "wall time, first create to last Ready",
            Some(if r.converged {
                secs(r.wall)
            } else {
                format!(
                    "not converged: {}/{} Ready after {}",
                    r.ready,
                    sc.routes,
                    secs(r.wall)
                )
            }),
        ),
        (
            "ratio to the physical limit",
            Some(format!("**{:.3}**", r.ratio())),
        ),
        (
            "ratio to the binding bound",
            Some(format!("**{:.3}**", r.binding_ratio())),
        ),
    ]
}

/// The calls no run of today's design avoids, and the bound they set.
fn honest_rows(r: &ScenarioResult) -> Vec<Row> {
    vec![
        (
            "unavoidable calls (a create per route, list pages and a gateway read per gateway)",
            r.unavoidable_calls.map(|n| n.to_string()),
        ),
        (
            "honest bound (unavoidable calls / API rate)",
            r.honest_bound().map(secs),
        ),
        (
            "ratio to the honest bound",
            r.honest_ratio().map(|x| format!("**{x:.3}**")),
        ),
    ]
}

/// Creates, cloud calls, refusals, reconciles, the latency probes.
fn call_rows(r: &ScenarioResult) -> Vec<Row> {
    let sc = &r.scenario;
    vec![
        (
            "harness create time (all objects)",
            Some(format!(
                "{} ({} at a time)",
                secs(r.create_time),
                sc.parallel
            )),
        ),
        (
            "cloud API calls until convergence",
            Some(r.total_calls().to_string()),
        ),
        (
            "cloud calls per converged route",
            Some(format!("**{:.2}**", r.calls_per_route())),
        ),
        (
            "refused calls (per route)",
            Some(format!(
                "{} ({:.3})",
                r.refused_calls(),
                r.per_route(r.refused_calls())
            )),
        ),
        (
            "refused mutations (per route)",
            Some(format!(
                "{} (**{:.3}**)",
                r.refused_mutations(),
                r.per_route(r.refused_mutations())
            )),
        ),
        ("reconciles until convergence", Some(count(r.reconciles))),
        (
            "apply -> create accepted, p50 / p99 / max",
            (sc.latency_probes > 0).then(|| latencies(&r.latency)),
        ),
    ]
}

/// Time to Ready, and the single changes during the burst.
fn ready_rows(r: &ScenarioResult) -> Vec<Row> {
    let lag = r.ready_lag.as_ref();
    vec![
        (
            "time to Ready: lag behind first send + k x T, mean / p99",
            lag.map(|l| {
                format!(
                    "**{}** / {} (n = {})",
                    ms(Some(l.mean_ms)),
                    ms(Some(l.p99_ms)),
                    l.n
                )
            }),
        ),
        (
            "time to Ready: largest lag of a gateway's first route",
            lag.map(|l| format!("**{}**", ms(l.first_max_ms))),
        ),
        (
            "single change during the burst: apply -> create accepted, p50 / p99 / max",
            r.singles.as_ref().map(|s| latencies(&s.create)),
        ),
        (
            "single change during the burst: apply -> Ready, p50 / p99 / max",
            r.singles.as_ref().map(|s| latencies(&s.ready)),
        ),
    ]
}

/// The operator's memory and CPU time.
fn usage_rows(r: &ScenarioResult) -> Vec<Row> {
    let sc = &r.scenario;
    vec![
        (
            "operator peak RSS (VmHWM)",
            Some(format!("**{:.1} MiB**", mib(r.usage.peak_rss_kib))),
        ),
        (
            "operator RSS after the burst settled (VmRSS)",
            r.settled_rss_kib.map(|k| {
                format!(
                    "**{:.1} MiB** ({} after convergence)",
                    mib(k),
                    secs(sc.settle_wait)
                )
            }),
        ),
        (
            "operator CPU time (user + system)",
            Some(format!(
                "{} ({} at convergence)",
                secs(r.usage.cpu),
                secs(r.cpu_at_convergence)
            )),
        ),
        (
            "operator CPU time per route, until convergence",
            Some(format!("**{:.2} ms**", r.cpu_ms_per_route())),
        ),
    ]
}

/// A table with one column per run (`heads`); rows no run has a value for are left out.
pub(super) fn runs_table(s: &mut String, heads: &[String], runs: &[&ScenarioResult]) {
    let cols: Vec<_> = runs.iter().map(|r| rows(r)).collect();
    let _ = writeln!(
        s,
        "| |{}",
        heads.iter().map(|h| format!(" {h} |")).collect::<String>()
    );
    let _ = writeln!(s, "|---|{}", "---|".repeat(heads.len()));
    let Some(first) = cols.first() else {
        return;
    };
    for (i, (row, _)) in first.iter().enumerate() {
        if cols.iter().all(|c| c[i].1.is_none()) {
            continue;
        }
        let _ = write!(s, "| {row} |");
        for c in &cols {
            let _ = write!(s, " {} |", c[i].1.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
}

/// Calls by action and code, one column per run; `refused` keeps only the refused ones and
/// adds the count per route.
pub(super) fn calls_table(s: &mut String, runs: &[&ScenarioResult], refused: bool) {
    let calls = |r: &ScenarioResult| {
        if refused {
            r.refusals()
        } else {
            r.calls.clone()
        }
    };
    let keys: BTreeSet<(String, String)> = runs
        .iter()
        .flat_map(|r| calls(r).into_iter().map(|c| (c.0, c.1)))
        .collect();
    if keys.is_empty() {
        let _ = writeln!(s, "None.\n");
        return;
    }
    let _ = write!(s, "| action | code |");
    for r in runs {
        let _ = write!(s, " {} |", r.scenario.label);
    }
    let _ = writeln!(s, "\n|---|---|{}", "---:|".repeat(runs.len()));
    for (a, c) in &keys {
        let _ = write!(s, "| {a} | {c} |");
        for r in runs {
            let n = r
                .calls
                .iter()
                .find(|x| &x.0 == a && &x.1 == c)
                .map_or(0, |x| x.2);
            if refused {
                let _ = write!(s, " {n} ({:.3}) |", r.per_route(n));
            } else {
                let _ = write!(s, " {n} |");
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
}
