//! The Kubernetes side of a reconcile, behind a trait: the real one over the API server
//! ([`KubeObjects`]), an in-memory one in the simulation test.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::duplicates;
use super::event::EventNote;
use crate::api::v1alpha1::{
    CREDENTIALS_LABEL, CREDENTIALS_LABEL_VALUE, FINALIZER, VpnPbrRoute, VpnPbrRouteStatus,
};

pub type ObjectFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, kube::Error>> + Send + 'a>>;
/// What publishing an event comes to: nothing (best effort, a failure is logged).
pub type EventFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// The data of a Secret, by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// A Secret as the operator reads it: its labels and its data. No `Debug`, so that the data
/// cannot reach a log by a stray `{:?}`.
#[derive(Clone, Default)]
pub struct SecretObject {
    pub labels: BTreeMap<String, String>,
    pub data: SecretData,
}

impl SecretObject {
    /// A Secret with `data` and the label that makes it usable as credentials.
    pub fn labelled(data: SecretData) -> Self {
        Self {
            labels: BTreeMap::from([(
                CREDENTIALS_LABEL.to_owned(),
                CREDENTIALS_LABEL_VALUE.to_owned(),
            )]),
            data,
        }
    }

    /// Whether the Secret carries the credentials label: only such a Secret is read for keys.
    pub(crate) fn is_credentials(&self) -> bool {
        self.labels
            .get(CREDENTIALS_LABEL)
            .is_some_and(|v| v == CREDENTIALS_LABEL_VALUE)
    }
}

/// What a reconcile reads and writes of Kubernetes objects. The futures of the reads by name
/// (`get`, `secret`) borrow only the port: an implementation copies the names it needs.
pub trait ObjectPort: Send + Sync + 'static {
    /// The newest copy of a route (`None` when it is gone).
    fn get(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<VpnPbrRoute>>;
    /// Replaces the route's status, only while the object is still the copy `route` (its
    /// resourceVersion): a status built on an older copy would drop what a newer write
    /// recorded, so it is refused (409 Conflict) and the caller decides again on the newest
    /// copy. Returns the new resourceVersion; `None` when the route is gone (not an error).
    fn write_status<'a>(
        &'a self,
        route: &'a VpnPbrRoute,
        status: &'a VpnPbrRouteStatus,
    ) -> ObjectFuture<'a, Option<String>>;
    /// Adds the cleanup finalizer (the route's finalizers as observed, plus ours). Returns the
    /// new resourceVersion.
    fn add_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, Option<String>>;
    /// Removes the cleanup finalizer (a route already gone is not an error).
    fn remove_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, ()>;
    /// Publishes an event about the route (best effort: failures are logged, not returned).
    fn publish<'a>(&'a self, route: &'a VpnPbrRoute, event: &'a EventNote) -> EventFuture<'a>;
    /// The labels and data of a Secret (`None` when it does not exist).
    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>>;
    /// `namespace/name` of an older object naming the same cloud entry, from the watch caches.
    fn older_claim(&self, route: &VpnPbrRoute) -> Option<String>;
    /// `namespace/name` of an older object with the same gateway, destination and next hop that
    /// wants the other `publishVpc`.
    fn publish_conflict(&self, route: &VpnPbrRoute) -> Option<String>;
    /// Our other objects with the same gateway, destination and next hop, from the watch
    /// caches (`PublishVpnRouteEntry` acts on all their entries).
    fn publish_sharers(&self, route: &VpnPbrRoute) -> Vec<Arc<VpnPbrRoute>>;
}

/// Who publishes events (`reportingController` / `reportingInstance`).
#[derive(Clone, Debug)]
pub struct EventSource {
    pub controller: String,
    pub instance: Option<String>,
}

/// The API server.
pub struct KubeObjects {
    pub client: kube::Client,
    /// Events are created directly rather than through kube's `Recorder`, which keeps every
    /// event it published for six minutes (to count repeats) and scans them all on each publish:
    /// a create burst of N routes would hold N events and cost O(N) per event. `decide.rs`
    /// already publishes a warning only when its reason is new, so there is nothing to count.
    pub events: EventSource,
    /// The controllers' caches of every watched route (one per watched namespace set), with
    /// their claim indexes.
    pub caches: Vec<duplicates::ClaimCache>,
    /// Field manager of status writes.
    pub manager: String,
}

impl KubeObjects {
    fn api(&self, route: &VpnPbrRoute) -> Api<VpnPbrRoute> {
        Api::namespaced(self.client.clone(), &route.namespace().unwrap_or_default())
    }

    /// An object of kind `K` (`None` when it does not exist).
    fn read<K>(&self, namespace: &str, name: &str) -> ObjectFuture<'static, Option<K>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
        K: Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let api = Api::<K>::namespaced(self.client.clone(), namespace);
        let name = name.to_owned();
        Box::pin(async move { api.get_opt(&name).await })
    }
}

/// The labels and data of Secret `name` of `api` (`None` when it does not exist).
pub(crate) fn read_secret(
    api: Api<Secret>,
    name: &str,
) -> ObjectFuture<'static, Option<SecretObject>> {
    let name = name.to_owned();
    Box::pin(async move {
        Ok(api.get_opt(&name).await?.map(|s| SecretObject {
            labels: s.metadata.labels.unwrap_or_default(),
            data: s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        }))
    })
}

/// The server-side apply of a whole status, with the copy's resourceVersion as a precondition:
/// the write is refused (409) if the object changed since `route` was read.
fn status_patch(route: &VpnPbrRoute, status: &VpnPbrRouteStatus) -> serde_json::Value {
    let mut patch = json!({
        "apiVersion": VpnPbrRoute::api_version(&()),
        "kind": VpnPbrRoute::kind(&()),
        "status": status,
    });
    if let Some(rv) = &route.metadata.resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    patch
}

/// Treats "not found" as done: the object is gone, so there is nothing left to change.
/// Whether the API server refused a create because its namespace is being deleted (a 403
/// whose cause is `NamespaceTerminating`).
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403
        && s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

fn gone_is_ok<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn json_patch(value: serde_json::Value) -> Result<json_patch::Patch, kube::Error> {
    serde_json::from_value(value).map_err(kube::Error::SerdeError)
}

impl ObjectPort for KubeObjects {
    fn get(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<VpnPbrRoute>> {
        self.read(namespace, name)
    }

    fn write_status<'a>(
        &'a self,
        route: &'a VpnPbrRoute,
        status: &'a VpnPbrRouteStatus,
    ) -> ObjectFuture<'a, Option<String>> {
        let patch = status_patch(route, status);
        Box::pin(async move {
            let written = self
                .api(route)
                .patch_status(
                    &route.name_any(),
                    &PatchParams::apply(&self.manager).force(),
                    &Patch::Apply(&patch),
                )
                .await;
            match written {
                Ok(o) => Ok(o.metadata.resource_version),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn add_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, Option<String>> {
        Box::pin(async move {
            // The test ops make any change since our copy fail the patch instead of being lost
            // or hidden: the answer's resourceVersion becomes our copy's, so our copy's spec and
            // status must then be the object's (a status write on a copy without our last one
            // would drop what it recorded, e.g. a create's token; a spec edited since would get
            // a token for the old spec).
            let mut ops = vec![json!({
                "op": "test", "path": "/metadata/resourceVersion",
                "value": route.metadata.resource_version
            })];
            if route.metadata.finalizers.is_none() {
                ops.push(
                    json!({ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] }),
                );
            } else {
                ops.push(json!({ "op": "test", "path": "/metadata/finalizers", "value": route.finalizers() }));
                ops.push(
                    json!({ "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER }),
                );
            }
            let patch = json_patch(serde_json::Value::Array(ops))?;
            self.api(route)
                .patch(
                    &route.name_any(),
                    &PatchParams::default(),
                    &Patch::<()>::Json(patch),
                )
                .await
                .map(|o| o.metadata.resource_version)
        })
    }

    fn remove_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, ()> {
        Box::pin(async move {
            let Some(i) = route.finalizers().iter().position(|f| f == FINALIZER) else {
                return Ok(());
            };
            let patch = json_patch(json!([
                { "op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER },
                { "op": "remove", "path": format!("/metadata/finalizers/{i}") }
            ]))?;
            gone_is_ok(
                self.api(route)
                    .patch(
                        &route.name_any(),
                        &PatchParams::default(),
                        &Patch::<()>::Json(patch),
                    )
                    .await,
            )
        })
    }

    fn publish<'a>(&'a self, route: &'a VpnPbrRoute, note: &'a EventNote) -> EventFuture<'a> {
        Box::pin(async move {
            let event = event_of(route, note, &self.events, jiff::Timestamp::now());
            let ns = route.namespace().unwrap_or_default();
            if let Err(e) = Api::<Event>::namespaced(self.client.clone(), &ns)
                .create(&PostParams::default(), &event)
                .await
            {
                if namespace_terminating(&e) {
                    // The route goes with its namespace: no one will read the event.
                    tracing::debug!(route = %route.name_any(), "no event: namespace terminating");
                } else {
                    tracing::warn!(route = %route.name_any(), error = %e, "could not publish event");
                }
            }
        })
    }

    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>> {
        read_secret(Api::namespaced(self.client.clone(), namespace), name)
    }

    fn older_claim(&self, route: &VpnPbrRoute) -> Option<String> {
        duplicates::older_claim_in(route, &self.caches)
    }

    fn publish_conflict(&self, route: &VpnPbrRoute) -> Option<String> {
        duplicates::older_publish_conflict_in(route, &self.caches)
    }

    fn publish_sharers(&self, route: &VpnPbrRoute) -> Vec<Arc<VpnPbrRoute>> {
        duplicates::publish_sharers_in(route, &self.caches)
    }
}

/// An `events.k8s.io/v1` Event about `route`, as kube's `Recorder` would make it (name
/// `<object>.<nanoseconds hex>`, reason and note cut to the API's limits).
fn event_of(
    route: &VpnPbrRoute,
    note: &EventNote,
    source: &EventSource,
    now: jiff::Timestamp,
) -> Event {
    let name = route.name_any();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: route.namespace(),
            ..Default::default()
        },
        action: Some(note.action.to_owned()),
        reason: Some(note.reason.as_str().chars().take(128).collect()),
        note: Some(note.note.chars().take(1000).collect()),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.to_owned()),
        event_time: Some(MicroTime(now)),
        regarding: Some(route.object_ref(&())),
        reporting_controller: Some(source.controller.clone()),
        reporting_instance: Some(
            source
                .instance
                .clone()
                .unwrap_or_else(|| source.controller.clone()),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_terminating_namespace_silences_a_failed_event() {
        // As the API server answers a create in a namespace being deleted.
        let refusal = |cause: &str| -> kube::Error {
            kube::Error::Api(
                serde_json::from_value(serde_json::json!({
                    "status": "Failure", "code": 403, "reason": "Forbidden",
                    "message": "events is forbidden: unable to create new content in namespace t because it is being terminated",
                    "details": {"name": "t", "kind": "namespaces",
                                "causes": [{"reason": cause, "message": "namespace t is being terminated", "field": "metadata.namespace"}]}
                }))
                .expect("status"),
            )
        };
        assert!(super::namespace_terminating(&refusal(
            "NamespaceTerminating"
        )));
        assert!(!super::namespace_terminating(&refusal(
            "FieldValueForbidden"
        )));
    }

    use super::*;
    use crate::controller::reason::Reason;

    #[test]
    fn only_a_secret_with_the_credentials_label_is_usable() {
        let with = |labels: &[(&str, &str)]| SecretObject {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            data: SecretData::new(),
        };
        assert!(SecretObject::labelled(SecretData::new()).is_credentials());
        assert!(with(&[("vpn.alicloud.dev/credentials", "true"), ("team", "a")]).is_credentials());
        for refused in [
            with(&[]),
            with(&[("team", "a")]),
            with(&[("vpn.alicloud.dev/credentials", "false")]),
            with(&[("vpn.alicloud.dev/credentials", "")]),
            with(&[("vpn.alicloud.dev/credentials", "True")]),
            with(&[("credentials", "true")]),
        ] {
            assert!(!refused.is_credentials(), "{:?}", refused.labels);
        }
    }

    #[test]
    fn an_event_names_its_route_and_source() {
        let route: VpnPbrRoute = serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": "r1", "namespace": "ns", "uid": "u-1"},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a", "routeSource": "10.0.0.0/24",
                "routeDest": "10.1.0.0/24", "nextHop": "vco-a", "weight": 100, "publishVpc": false}
        }))
        .expect("route");
        let note = EventNote {
            warning: true,
            reason: Reason::AlreadyExists,
            action: "Adopt",
            note: "x".repeat(2000),
        };
        let source = EventSource {
            controller: "vpn-pbr-operator".into(),
            instance: None,
        };
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
        let e = event_of(&route, &note, &source, now);
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert!(
            e.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("r1."))
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("AlreadyExists"));
        assert_eq!(e.action.as_deref(), Some("Adopt"));
        assert_eq!(e.note.as_ref().map(String::len), Some(1000));
        let regarding = e.regarding.expect("regarding");
        assert_eq!(
            (
                regarding.name.as_deref(),
                regarding.uid.as_deref(),
                regarding.kind.as_deref()
            ),
            (Some("r1"), Some("u-1"), Some("VpnPbrRoute"))
        );
        assert_eq!(e.reporting_instance.as_deref(), Some("vpn-pbr-operator"));
    }
}
