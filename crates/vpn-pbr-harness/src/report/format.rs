//! How the document writes values: durations, sizes, latencies, rates, verdicts.

use crate::bench::Binding;

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
