//! The spec rules of the CRD, checked again in the controller (defence in depth): an object that
//! slipped past the apiserver (an older CRD, a disabled rule) never reaches the cloud.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::VpnPbrRouteSpec;

/// One broken rule: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "spec.{}: {}", self.field, self.message)
    }
}

/// Checks every create-time rule of the CRD; returns all broken ones.
pub fn validate(spec: &VpnPbrRouteSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: &'static str, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        });
    };
    let region_ok = !spec.region_id.is_empty()
        && spec.region_id.len() <= 64
        && spec.region_id.split('-').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !region_ok {
        fail("regionId", "must be a region ID such as cn-hangzhou");
    }
    if !spec.vpn_gateway_id.starts_with("vpn-") || spec.vpn_gateway_id.len() > 64 {
        fail(
            "vpnGatewayId",
            "must be a VPN gateway ID starting with 'vpn-'",
        );
    }
    if !spec.next_hop.starts_with("vco-") || spec.next_hop.len() > 64 {
        fail(
            "nextHop",
            "must be an IPsec connection ID starting with 'vco-'",
        );
    }
    if let Err(m) = network(&spec.route_source) {
        fail("routeSource", m);
    }
    if let Err(m) = network(&spec.route_dest) {
        fail("routeDest", m);
    }
    if spec.weight != 0 && spec.weight != 100 {
        fail("weight", "must be 0 (standby) or 100 (active)");
    }
    if !(1..=100).contains(&spec.priority) {
        fail("priority", "must be between 1 and 100");
    }
    if let Some(d) = &spec.description {
        let chars = d.chars().count();
        if !(1..=100).contains(&chars) {
            fail("description", "must be 1 to 100 characters");
        }
        if d.starts_with("http://") || d.starts_with("https://") {
            fail("description", "must not start with http:// or https://");
        }
    }
    if spec
        .account_ref
        .as_deref()
        .is_some_and(|a| a.is_empty() || a.len() > 253)
    {
        fail("accountRef", "must name a VpnAccount; it must not be empty");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Parses an IPv4 network in canonical form (no host bits).
fn network(s: &str) -> Result<Ipv4Net, &'static str> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| "must be an IPv4 CIDR block such as 192.168.1.0/24")?;
    if net.trunc() != net {
        return Err("must be a network address: host bits must be zero");
    }
    Ok(net)
}

/// The destinations a single-tunnel gateway refuses (dual-tunnel gateways take them): `None`
/// when `dest` is fine there, else the message for `spec.routeDest`.
pub(crate) fn single_tunnel_dest_rule(dest: &str) -> Option<&'static str> {
    let net = network(dest).ok()?;
    let cgnat = Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).unwrap_or_default();
    if net.prefix_len() == 0 {
        Some("must not be 0.0.0.0/0 on a single-tunnel gateway")
    } else if cgnat.contains(&net) || net.contains(&cgnat) {
        Some("must not overlap 100.64.0.0/10 on a single-tunnel gateway")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{DeletionPolicy, ManagementPolicy};

    pub(crate) fn valid() -> VpnPbrRouteSpec {
        VpnPbrRouteSpec {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: "vpn-bp1a3kqjiiq9legfx****".replace('*', "x"),
            route_source: "192.168.1.0/24".into(),
            route_dest: "10.0.0.0/24".into(),
            next_hop: "vco-bp15oes1py4i66rmd****".replace('*', "x"),
            weight: 100,
            publish_vpc: false,
            priority: 10,
            description: Some("office".into()),
            overlay_mode: None,
            credentials_ref: None,
            account_ref: None,
            deletion_policy: DeletionPolicy::Delete,
            management_policy: ManagementPolicy::Full,
        }
    }

    fn fields(spec: &VpnPbrRouteSpec) -> Vec<&'static str> {
        validate(spec)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(validate(&valid()), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        type Mutate = fn(&mut VpnPbrRouteSpec);
        let cases: Vec<(Mutate, &str)> = vec![
            (|s| s.region_id = "CN_HZ".into(), "regionId"),
            (|s| s.vpn_gateway_id = "gw-1".into(), "vpnGatewayId"),
            (|s| s.next_hop = "conn-1".into(), "nextHop"),
            (|s| s.route_source = "10.0.0.300/24".into(), "routeSource"),
            (|s| s.route_source = "10.0.0.1/24".into(), "routeSource"),
            (|s| s.route_dest = "fd00::/8".into(), "routeDest"),
            (|s| s.weight = 50, "weight"),
            (|s| s.priority = 0, "priority"),
            (|s| s.priority = 101, "priority"),
            (|s| s.description = Some("https://x".into()), "description"),
            (|s| s.description = Some(String::new()), "description"),
            (|s| s.description = Some("x".repeat(101)), "description"),
            (|s| s.account_ref = Some(String::new()), "accountRef"),
        ];
        for (mutate, field) in cases {
            let mut s = valid();
            mutate(&mut s);
            assert_eq!(fields(&s), vec![field], "{s:?}");
        }
    }

    #[test]
    fn single_tunnel_gateways_refuse_the_default_route_and_cgnat() {
        for (dest, refused) in [
            ("0.0.0.0/0", true),
            ("100.64.0.0/10", true),
            ("100.64.1.0/24", true),
            ("100.0.0.0/8", true),
            ("100.128.0.0/10", false),
            ("10.0.0.0/8", false),
        ] {
            assert_eq!(single_tunnel_dest_rule(dest).is_some(), refused, "{dest}");
            let mut s = valid();
            s.route_dest = dest.into();
            assert_eq!(validate(&s), Ok(()), "{dest} is the gateway's business");
        }
    }

    #[test]
    fn an_account_ref_passes() {
        let mut s = valid();
        s.account_ref = Some("prod".into());
        assert_eq!(validate(&s), Ok(()));
    }

    #[test]
    fn neighbours_of_cgnat_are_allowed() {
        let mut s = valid();
        s.route_dest = "100.128.0.0/10".into();
        assert_eq!(validate(&s), Ok(()));
    }
}
