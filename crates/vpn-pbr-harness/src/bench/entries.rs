//! The emulator's entries matched to the routes that made them, by (gateway, source,
//! destination, next hop): their `CreateTime`s, and how many entries each gateway holds.

use std::collections::HashMap;

use serde_json::Value;

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

/// Which route an entry is: (gateway, source, destination, next hop).
pub(crate) type RouteKey = (String, String, String, String);

/// The key of the entry `route` makes.
pub(crate) fn route_key(route: &VpnPbrRoute) -> RouteKey {
    let s = &route.spec;
    (
        s.vpn_gateway_id.clone(),
        s.route_source.clone(),
        s.route_dest.clone(),
        s.next_hop.clone(),
    )
}

/// The `CreateTime` (epoch ms) of every entry of `entries` ((gateway, entry), as
/// `Emulator::entries` returns them), by key.
pub(crate) fn create_times(entries: &[(String, Value)]) -> HashMap<RouteKey, u64> {
    let field = |e: &Value, name: &str| e[name].as_str().unwrap_or_default().to_owned();
    entries
        .iter()
        .map(|(gw, e)| {
            (
                (
                    gw.clone(),
                    field(e, "RouteSource"),
                    field(e, "RouteDest"),
                    field(e, "NextHop"),
                ),
                e["CreateTime"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Apply -> create accepted of the route `key` applied at `applied_ms` (epoch ms): its entry's
/// `CreateTime` in `created` minus `applied_ms` (`None`: no entry).
pub(crate) fn accepted_ms(
    created: &HashMap<RouteKey, u64>,
    key: &RouteKey,
    applied_ms: u64,
) -> Option<f64> {
    created
        .get(key)
        .map(|t| t.saturating_sub(applied_ms) as f64)
}

/// How many entries each gateway of `entries` holds (gateways without any are absent).
pub(crate) fn per_gateway(entries: &[(String, Value)]) -> HashMap<&str, usize> {
    let mut out: HashMap<&str, usize> = HashMap::new();
    for (gw, _) in entries {
        *out.entry(gw.as_str()).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::route_on;
    use serde_json::json;

    #[test]
    fn entries_match_the_routes_that_made_them() {
        let entry = |g: usize, j: usize, at: u64| {
            let r = route_on(g, j).expect("route");
            let (gw, source, dest, hop) = route_key(&r);
            let e =
                json!({"RouteSource": source, "RouteDest": dest, "NextHop": hop, "CreateTime": at});
            (gw, e)
        };
        let entries = vec![entry(0, 0, 100), entry(0, 1, 2100), entry(3, 0, 150)];
        let times = create_times(&entries);
        // (gateway, route of it) -> CreateTime
        let table = [
            ((0, 0), Some(100)),
            ((0, 1), Some(2100)),
            ((3, 0), Some(150)),
            ((3, 1), None),
        ];
        for ((g, j), want) in table {
            let key = route_key(&route_on(g, j).expect("route"));
            assert_eq!(times.get(&key).copied(), want, "{g}/{j}");
        }
        let key = route_key(&route_on(0, 1).expect("route"));
        assert_eq!(accepted_ms(&times, &key, 2000), Some(100.0));
        assert_eq!(accepted_ms(&times, &key, 2200), Some(0.0));
        let counts = per_gateway(&entries);
        assert_eq!(
            (counts.get("vpn-bench0000"), counts.get("vpn-bench0003")),
            (Some(&2), Some(&1))
        );
        assert_eq!(counts.len(), 2);
    }
}
