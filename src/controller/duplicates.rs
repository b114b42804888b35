//! Duplicate claims: two objects that name the same cloud entry. The older one (by creation
//! time, then namespace/name) keeps it; the younger is refused.

use std::sync::Arc;

use kube::ResourceExt;

use crate::api::v1alpha1::VpnPbrRoute;

/// The `namespace/name` of an older object claiming the same route, if any.
pub fn older_claim(route: &VpnPbrRoute, all: &[Arc<VpnPbrRoute>]) -> Option<String> {
    let key = route.spec.route_key();
    let rank = |r: &VpnPbrRoute| {
        (
            r.creation_timestamp().map(|t| t.0),
            r.namespace().unwrap_or_default(),
            r.name_any(),
        )
    };
    let mine = rank(route);
    all.iter()
        .filter(|o| o.metadata.uid != route.metadata.uid && o.metadata.deletion_timestamp.is_none())
        .filter(|o| o.spec.route_key() == key)
        .filter(|o| rank(o) < mine)
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
        .min()
}
