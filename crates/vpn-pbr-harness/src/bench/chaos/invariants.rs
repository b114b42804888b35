//! The invariants a chaos run checks once every object is deleted: no entry left in the cloud,
//! no route key created twice, no panic in any log.

use serde_json::Value;

/// The violation of entries left in the cloud after deletion (naming up to five), if any.
pub(super) fn entries_left(entries: &[(String, Value)]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let sample: Vec<String> = entries
        .iter()
        .take(5)
        .map(|(gw, e)| {
            format!(
                "{gw} {} {} {}",
                e["RouteSource"], e["RouteDest"], e["NextHop"]
            )
        })
        .collect();
    Some(format!(
        "{} entries left in the cloud after deletion (e.g. {})",
        entries.len(),
        sample.join("; ")
    ))
}

/// The route keys the emulator accepted a create of more than once (its `counters`).
pub(super) fn duplicate_creates(counters: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for c in counters["accepted_creates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if c["Count"].as_u64().unwrap_or(0) > 1 {
            out.push(format!(
                "{} {} {} {} x{}",
                c["VpnGatewayId"], c["RouteSource"], c["RouteDest"], c["NextHop"], c["Count"]
            ));
        }
    }
    out
}

/// A violation for each log (what, text) with panic lines in it.
pub(super) fn panics(logs: [(&str, String); 3]) -> Vec<String> {
    let mut out = Vec::new();
    for (what, text) in logs {
        let panics = text
            .lines()
            .filter(|l| l.contains("panicked at") || l.contains("panic:"))
            .count();
        if panics > 0 {
            out.push(format!("{panics} panic lines in the {what} log"));
        }
    }
    out
}
