//! How the document writes values: durations, sizes, latencies, rates, verdicts.

use crate::bench::{Binding, Latencies, Scenario};

/// Seconds, one decimal.
pub(super) fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// KiB as MiB.
pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Whether a target is met.
pub(super) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// Milliseconds, `-` without a value.
pub(super) fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.0} ms"))
}

/// Latencies as `p50 / **p99** / max (n = found, missing)`.
pub(super) fn latencies(l: &Latencies) -> String {
    format!(
        "{} / **{}** / {} (n = {}{})",
        ms(l.percentile(0.5)),
        ms(l.percentile(0.99)),
        ms(l.max()),
        l.sorted_ms.len(),
        missing(l)
    )
}

/// `, n missing` when some latencies are missing.
pub(super) fn missing(l: &Latencies) -> String {
    if l.missing > 0 {
        format!(", {} missing", l.missing)
    } else {
        String::new()
    }
}

/// Calls per second.
pub(super) fn rate(r: f64) -> String {
    format!("{r}/s")
}

/// Which bound binds.
pub(super) fn binding(b: Binding) -> &'static str {
    match b {
        Binding::Gateways => "gateways bind",
        Binding::Api => "API rate binds",
    }
}

/// A run's size: routes / gateways (and the quiet ones) / update time T / API rate.
pub(super) fn size(sc: &Scenario) -> String {
    let quiet = if sc.quiet_gateways > 0 {
        format!(" + {} quiet", sc.quiet_gateways)
    } else {
        String::new()
    };
    format!(
        "{} / {}{quiet} / {} / {}",
        sc.routes,
        sc.gateways,
        secs(sc.update),
        rate(sc.api_rate())
    )
}

/// A run's `--read-back-every` as the flag it passed, or the operator's default.
pub(super) fn read_back_every(sc: &Scenario) -> String {
    sc.read_back_every.map_or_else(
        || "the default `--read-back-every`".to_owned(),
        |n| format!("`--read-back-every {n}`"),
    )
}

/// A count kept as a float (the reconciles metric), `-` without a value.
pub(super) fn count(n: Option<f64>) -> String {
    n.map_or("-".to_owned(), |n| format!("{n:.0}"))
}
