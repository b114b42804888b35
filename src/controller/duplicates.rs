//! Duplicate claims: two objects that name the same cloud entry. The older one (by creation
//! time, then namespace/name) keeps it; the younger is refused.

use kube::ResourceExt;

use kube::runtime::reflector::Store;

use super::decide::owns_entry;
use crate::api::v1alpha1::{RouteKey, VpnPbrRoute};

/// The `namespace/name` of an older object claiming the same route, if any, among the
/// controllers' caches (searched in place: no copy of the cache per reconcile).
pub fn older_claim_in(route: &VpnPbrRoute, stores: &[Store<VpnPbrRoute>]) -> Option<String> {
    let key = route.spec.route_key();
    let mine = rank(route);
    stores
        .iter()
        .filter_map(|s| s.find(|o| is_older_claim(o, route, &key, &mine)))
        .min_by_key(|o| rank(o))
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

/// The `namespace/name` of an older object whose entry shares this route's gateway,
/// destination and next hop but wants the other `publishVpc`. `PublishVpnRouteEntry` acts on
/// every entry with that destination and next hop, so the two would flip each other.
pub fn older_publish_conflict_in(
    route: &VpnPbrRoute,
    stores: &[Store<VpnPbrRoute>],
) -> Option<String> {
    let mine = rank(route);
    let s = &route.spec;
    stores
        .iter()
        .filter_map(|st| {
            st.find(|o| {
                let t = &o.spec;
                t.route_dest == s.route_dest
                    && t.next_hop == s.next_hop
                    && t.vpn_gateway_id == s.vpn_gateway_id
                    && t.region_id == s.region_id
                    && t.publish_vpc != s.publish_vpc
                    && o.metadata.uid != route.metadata.uid
                    && o.metadata.deletion_timestamp.is_none()
                    && rank(o) < mine
            })
        })
        .min_by_key(|o| rank(o))
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
}

type Rank = (bool, Option<jiff::Timestamp>, String, String);

/// The object that holds the entry (its status says it made or adopted it) comes first, then
/// the older: creation times have one-second resolution, so two objects made in the same
/// second would otherwise be ordered by name, and the one that made the entry could lose it.
fn rank(r: &VpnPbrRoute) -> Rank {
    (
        !owns_entry(r),
        r.creation_timestamp().map(|t| t.0),
        r.namespace().unwrap_or_default(),
        r.name_any(),
    )
}

fn is_older_claim(o: &VpnPbrRoute, route: &VpnPbrRoute, key: &RouteKey, mine: &Rank) -> bool {
    // Field by field, so the scan over every cached route allocates nothing until a match.
    let s = &o.spec;
    s.route_dest == key.route_dest
        && s.route_source == key.route_source
        && s.next_hop == key.next_hop
        && s.vpn_gateway_id == key.vpn_gateway_id
        && s.region_id == key.region_id
        && o.metadata.uid != route.metadata.uid
        // An older object being deleted still holds the entry until its cleanup is done.
        && rank(o) < *mine
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;

    use super::*;

    fn route(name: &str, created: &str, dest: &str) -> VpnPbrRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a", "routeSource": "10.0.0.0/24",
                     "routeDest": dest, "nextHop": "vco-a", "weight": 100, "publishVpc": false}
        }))
        .expect("route")
    }

    #[test]
    fn the_younger_claim_loses() {
        let (reader, mut writer) = kube::runtime::reflector::store();
        let old = route("old", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        let young = route("young", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        let other = route("other", "2025-01-01T00:00:00Z", "10.2.0.0/16");
        for r in [&old, &young, &other] {
            writer.apply_watcher_event(&Event::Apply(r.clone()));
        }
        let stores = [reader];
        assert_eq!(older_claim_in(&young, &stores).as_deref(), Some("ns/old"));
        assert_eq!(older_claim_in(&old, &stores), None);
        assert_eq!(older_claim_in(&other, &stores), None);
    }

    #[test]
    fn the_younger_of_two_disagreeing_publishers_loses() {
        let (reader, mut writer) = kube::runtime::reflector::store();
        let old = route("old", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        let mut young = route("young", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        young.spec.route_source = "10.9.0.0/24".into();
        young.spec.publish_vpc = true;
        let mut agrees = young.clone();
        agrees.metadata.uid = Some("agrees".into());
        agrees.spec.publish_vpc = false;
        for r in [&old, &young, &agrees] {
            writer.apply_watcher_event(&Event::Apply(r.clone()));
        }
        let stores = [reader];
        assert_eq!(
            older_publish_conflict_in(&young, &stores).as_deref(),
            Some("ns/old")
        );
        assert_eq!(older_publish_conflict_in(&old, &stores), None);
        assert_eq!(older_publish_conflict_in(&agrees, &stores), None);
    }
}
