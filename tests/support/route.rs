//! Route objects, the credentials Secrets they name, and what the tests ask of a route's status.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vpn_pbr_operator::api::v1alpha1::{
    CREDENTIALS_LABEL, CREDENTIALS_LABEL_VALUE, Condition, ConditionStatus, ObservedRoute,
    VpnPbrRoute,
};

use super::ready_is;

/// A spec on `cn-hangzhou`, not published, with the default priority.
pub fn spec(gw: &str, src: &str, dst: &str, hop: &str, weight: i32) -> Value {
    json!({
        "regionId": "cn-hangzhou", "vpnGatewayId": gw, "routeSource": src, "routeDest": dst,
        "nextHop": hop, "weight": weight, "publishVpc": false
    })
}

/// A `VpnPbrRoute` named `name` with `spec`.
pub fn route_object(name: &str, spec: Value) -> VpnPbrRoute {
    serde_json::from_value(json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("route")
}

/// Creates the Secret `name` in `ns` holding the access key `id` with `secret`, in the format of
/// a route's `credentialsRef` (README.md, the API table), with the credentials label.
pub async fn create_key_secret(client: &Client, ns: &str, name: &str, id: &str, secret: &str) {
    create_key_secret_labelled(client, ns, name, id, secret, true).await;
}

/// [`create_key_secret`], with the credentials label only when `labelled`.
pub async fn create_key_secret_labelled(
    client: &Client,
    ns: &str,
    name: &str,
    id: &str,
    secret: &str,
    labelled: bool,
) {
    let labels = if labelled {
        json!({ CREDENTIALS_LABEL: CREDENTIALS_LABEL_VALUE })
    } else {
        json!({})
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "stringData": {"accessKeyId": id, "accessKeySecret": secret}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

/// Adds the credentials label to the Secret `name` in `ns` (what `kubectl label` does).
pub async fn label_key_secret(client: &Client, ns: &str, name: &str) {
    let patch = json!({"metadata": {"labels": { CREDENTIALS_LABEL: CREDENTIALS_LABEL_VALUE }}});
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label secret");
}

/// The route's condition of this type.
pub fn condition<'a>(r: &'a VpnPbrRoute, type_: &str) -> Option<&'a Condition> {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// The cloud's epoch milliseconds as the status writes them: RFC 3339 with milliseconds
/// (README.md, "Status and conditions").
pub fn millis_rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .expect("ts")
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Whether the route's `Synced` condition has this reason.
pub fn synced_because(r: &VpnPbrRoute, reason: &str) -> bool {
    condition(r, "Synced").is_some_and(|c| c.reason == reason)
}

/// Whether the route's `Synced` condition has this status.
pub fn synced_is(r: &VpnPbrRoute, status: ConditionStatus) -> bool {
    condition(r, "Synced").is_some_and(|c| c.status == status)
}

/// Whether the route is Ready and what its status observed in the cloud passes `check`; with
/// `generation`, only once the status describes that generation of the spec.
pub fn ready_observing(
    r: &VpnPbrRoute,
    generation: Option<i64>,
    check: impl FnOnce(&ObservedRoute) -> bool,
) -> bool {
    r.status.as_ref().is_some_and(|s| {
        generation.is_none_or(|g| s.observed_generation == Some(g))
            && s.observed.as_ref().is_some_and(check)
    }) && ready_is(r, ConditionStatus::True, None)
}
