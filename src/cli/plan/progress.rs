//! PURE: what `plan` says on stderr while it works (stdout carries the report alone). The dry
//! runs go one at a time and a busy gateway can hold each for up to `--busy-timeout`, so a large
//! change would otherwise sit silent for minutes: each dry run is counted, and each wait names
//! the gateway it waits for.

use std::time::Duration;

use super::route::RoutePlan;

/// Before the gateways are read (each once, together).
pub(super) fn reading(gateways: usize) -> String {
    format!("plan: reading {gateways} gateway(s)")
}

/// Before the `i`-th (from 1) of `n` dry runs.
pub(super) fn dry_run(i: usize, n: usize, p: &RoutePlan) -> String {
    format!(
        "plan: dry run {i}/{n}: {}/{} on gateway {} ({})",
        p.namespace, p.name, p.vpn_gateway_id, p.region_id
    )
}

/// The gateway answered busy (`code`); the dry run is sent again after `retry_in`, at most
/// `left` from now.
pub(super) fn busy(p: &RoutePlan, code: &str, retry_in: Duration, left: Duration) -> String {
    format!(
        "plan: waiting for gateway {} ({}), busy with another change ({code}): the dry run of {}/{} goes again in {} ({} left of --busy-timeout)",
        p.vpn_gateway_id,
        p.region_id,
        p.namespace,
        p.name,
        seconds(retry_in),
        seconds(left),
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RoutePlan {
        serde_json::from_value::<crate::api::v1alpha1::VpnPbrRoute>(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": "r1"},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                     "routeSource": "192.168.1.0/24", "routeDest": "10.0.0.0/16",
                     "nextHop": "vco-1", "weight": 100, "publishVpc": false}
        }))
        .map(|r| {
            super::super::route::plan_apply(
                &r,
                "ns",
                "f.yaml",
                None,
                super::super::route::Claims::default(),
                super::super::route::OWN,
                None,
            )
        })
        .expect("route")
    }

    #[test]
    fn each_line_names_the_route_and_the_gateway() {
        let p = plan();
        assert_eq!(reading(2), "plan: reading 2 gateway(s)");
        assert_eq!(
            dry_run(3, 120, &p),
            "plan: dry run 3/120: ns/r1 on gateway vpn-a (cn-hangzhou)"
        );
        assert_eq!(
            busy(
                &p,
                "VpnGateway.Configuring",
                Duration::from_millis(500),
                Duration::from_secs(59)
            ),
            "plan: waiting for gateway vpn-a (cn-hangzhou), busy with another change (VpnGateway.Configuring): the dry run of ns/r1 goes again in 0.5s (59.0s left of --busy-timeout)"
        );
    }
}
