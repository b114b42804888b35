//! PURE: what the operator would do for one route, from its manifest, its live object (if
//! any) and the gateway's facts and list. The next change of an existing entry is decided by
//! the controller's own functions in `src/controller/plan.rs` (`find`, `has_partner`,
//! `update`, `create`, `drift`, `delete`), applied step by step to a copy of the list as the
//! operator's reconciles would, so the plan cannot disagree with the controller about them.

use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::v1alpha1::{
    DeletionPolicy, ManagementPolicy, OPERATOR_ACCOUNT, PAUSED_ANNOTATION, VpnPbrRoute,
    VpnPbrRouteSpec, validation,
};
use std::sync::Arc;

use super::rehearse::{Rehearsal, Stage, rehearse};
use crate::controller::decide::AccountGate;
use crate::controller::model::{Entry, GatewayFacts, Mutation};
use crate::controller::plan;
use crate::controller::reason::Reason;
use crate::controller::status;
use crate::controller::vpc::MutationRequest;
use alicloud_vpc_client::CloudError;

/// The problem of a route whose gateway was not read (its credentials could not be had).
pub(crate) const NOT_READ: &str = "NotRead";

/// What the operator would do with a route.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// No entry in the cloud: it is created (checked with DryRun).
    Create,
    /// The entry's weight, priority or publishing changes in place.
    Modify,
    /// A weight change of an active/standby pair member: delete, then create.
    Replace,
    /// The object is in the cluster but not in the manifests (`--prune`).
    Delete,
    /// The entry exists and the object consents to adopt it.
    Adopt,
    /// The entry exists, is not the object's and the object does not consent: the operator
    /// refuses it (`AlreadyExists`).
    Conflict,
    /// Nothing to do.
    Nothing,
    /// The route cannot be planned: invalid spec, an immutable field changed, a duplicate, a
    /// failed read.
    Error,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Modify => "modify",
            Self::Replace => "replace",
            Self::Delete => "delete",
            Self::Adopt => "adopt",
            Self::Conflict => "conflict",
            Self::Nothing => "nothing",
            Self::Error => "error",
        }
    }
}

/// One attribute that changes.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(crate) struct FieldChange {
    pub field: &'static str,
    pub old: Value,
    pub new: Value,
}

/// A cloud call the operator would send.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub action: &'static str,
    pub summary: String,
}

/// What the cloud said to the DryRun of a create.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DryRunResult {
    /// The cloud would create the entry.
    pub passed: bool,
    /// The refusal's code (`DryRunOperation` for a pass).
    pub code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Why a route is an error or a conflict.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// A condition reason or a cloud error code.
    pub code: String,
    pub message: String,
}

/// The plan of one route.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoutePlan {
    pub namespace: String,
    pub name: String,
    /// The manifest it was read from, or `cluster` for a pruned object.
    pub origin: String,
    pub region_id: String,
    pub vpn_gateway_id: String,
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
    pub action: Action,
    /// The account the route acts in, as `status.account` records it (a VpnAccount's name, or
    /// `(operator)`); only when the cluster's accounts were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The cloud mutations the operator would send, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The create to check with DryRun.
    #[serde(skip)]
    pub create: Option<Mutation>,
}

impl RoutePlan {
    fn new(route: &VpnPbrRoute, namespace: &str, origin: &str) -> Self {
        let s = &route.spec;
        Self {
            namespace: namespace.to_owned(),
            name: route.name_any(),
            origin: origin.to_owned(),
            region_id: s.region_id.clone(),
            vpn_gateway_id: s.vpn_gateway_id.clone(),
            route_source: s.route_source.clone(),
            route_dest: s.route_dest.clone(),
            next_hop: s.next_hop.clone(),
            action: Action::Nothing,
            account: None,
            changes: Vec::new(),
            calls: Vec::new(),
            dry_run: None,
            problem: None,
            notes: Vec::new(),
            create: None,
        }
    }

    pub(super) fn error(mut self, code: &str, message: impl Into<String>) -> Self {
        self.action = Action::Error;
        self.problem = Some(Problem {
            code: code.to_owned(),
            message: message.into(),
        });
        self.calls.clear();
        self.create = None;
        self
    }

    /// An error, a conflict or a refused DryRun: the CI check fails.
    pub(crate) fn has_problem(&self) -> bool {
        matches!(self.action, Action::Error | Action::Conflict)
            || self.dry_run.as_ref().is_some_and(|d| !d.passed)
    }

    /// Merging would change something: a cloud call, or an object pruned.
    pub(crate) fn has_change(&self) -> bool {
        match self.action {
            Action::Create | Action::Modify | Action::Replace | Action::Delete => true,
            Action::Adopt => !self.calls.is_empty(),
            Action::Conflict | Action::Nothing | Action::Error => false,
        }
    }

    /// `namespace/name`.
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The gateway as read: its facts and every entry, or the read's failure.
pub(crate) type GatewayView<'a> = Result<(&'a GatewayFacts, &'a [Entry]), &'a CloudError>;

/// Whether the object's status says the cloud entry is its own (the controller's rule).
pub(crate) use crate::controller::decide::owns_entry;

/// What a create token alone means for the listed entry (`decide/ownership.rs`).
const REPLAY_NOTE: &str = "only a create token is recorded: the operator replays that create \
     first, and the entry is the object's only if the cloud answers with this entry (else \
     AlreadyExists and it stays)";

fn annotation_is_true(route: &VpnPbrRoute, key: &str) -> bool {
    route.annotations().get(key).is_some_and(|v| v == "true")
}

/// The identity fields that differ between two specs.
fn identity_changes(old: &VpnPbrRouteSpec, new: &VpnPbrRouteSpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    let pairs = [
        ("regionId", &old.region_id, &new.region_id),
        ("vpnGatewayId", &old.vpn_gateway_id, &new.vpn_gateway_id),
        ("routeSource", &old.route_source, &new.route_source),
        ("routeDest", &old.route_dest, &new.route_dest),
        ("nextHop", &old.next_hop, &new.next_hop),
    ];
    for (field, a, b) in pairs {
        if a != b {
            out.push(field);
        }
    }
    out
}

/// The changes `plan::drift` names, with their old and new values.
fn changes(spec: &VpnPbrRouteSpec, entry: &Entry, facts: &GatewayFacts) -> Vec<FieldChange> {
    plan::drift(spec, entry, facts)
        .fields
        .into_iter()
        .map(|field| {
            let (old, new) = match field {
                "weight" => (json!(entry.weight), json!(spec.weight)),
                "priority" => (json!(entry.priority), json!(spec.priority)),
                "publishVpc" => (json!(entry.published()), json!(spec.publish_vpc)),
                _ => (Value::Null, Value::Null),
            };
            FieldChange { field, old, new }
        })
        .collect()
}

/// A one-line account of a mutation on `gateway`: the request the operator would send.
pub(crate) fn call(m: &Mutation, gateway: &str) -> Call {
    let summary = match MutationRequest::of(gateway, m) {
        MutationRequest::Create(r) => {
            let mut s = format!("weight={}", r.weight);
            if let Some(p) = r.priority {
                s.push_str(&format!(" priority={p}"));
            }
            s.push_str(&format!(" publishVpc={}", r.publish_vpc));
            if let Some(d) = r.description {
                s.push_str(&format!(" description={d:?}"));
            }
            s
        }
        MutationRequest::ModifyAttribute(r) => {
            let weight = r.new_weight.map(|w| format!("weight {} -> {w}", r.weight));
            let priority = r
                .new_priority
                .map(|p| format!("priority {} -> {p}", r.priority));
            [weight, priority]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        }
        MutationRequest::ModifyWeight(r) => format!("weight {} -> {}", r.weight, r.new_weight),
        MutationRequest::ModifyPriority(r) => {
            let from = r.priority.map(|p| format!("{p} ")).unwrap_or_default();
            format!("priority {from}-> {}", r.new_priority)
        }
        MutationRequest::Publish(r) => format!("publishVpc={}", r.publish_vpc),
        MutationRequest::Delete(r) => format!("the entry (weight {})", r.weight),
    };
    Call {
        action: m.action(),
        summary,
    }
}

/// The time a plan stands at: the creation time of the entries a rehearsed create makes, and
/// the stamp of rehearsed conditions (neither is shown).
const PLAN_TIME: &str = "2000-01-01T00:00:00Z";
const PLAN_TIME_MS: i64 = 946_684_800_000;

/// The object as the operator would see it once `desired` is applied over `live`: the
/// manifest's spec and metadata, the cluster's identity, finalizers and status; a changed spec
/// is a new generation.
pub(crate) fn as_applied(
    desired: &VpnPbrRoute,
    namespace: &str,
    live: Option<&VpnPbrRoute>,
) -> VpnPbrRoute {
    let mut r = desired.clone();
    r.metadata.namespace = Some(namespace.to_owned());
    match live {
        Some(l) => {
            let g = l.metadata.generation.unwrap_or(1);
            r.metadata.uid = l.metadata.uid.clone();
            r.metadata.creation_timestamp = l.metadata.creation_timestamp.clone();
            r.metadata.finalizers = l.metadata.finalizers.clone();
            r.metadata.generation = Some(if l.spec == desired.spec { g } else { g + 1 });
            r.status = l.status.clone();
        }
        None => {
            r.metadata.uid = Some(format!("plan:{namespace}/{}", desired.name_any()));
            r.metadata.generation = Some(1);
            r.status = None;
        }
    }
    r
}

/// The account gate of a route planned without the cluster's accounts: the operator's own
/// identity, which may adopt (as before accounts).
pub(crate) const OWN: AccountGate<'static> = AccountGate::Open {
    name: OPERATOR_ACCOUNT,
    adoption: true,
};

/// Who else claims the entry or its publishing, as the controller would judge it (see
/// `controller::duplicates`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Claims<'a> {
    /// An older object naming the same entry.
    pub older: Option<&'a str>,
    /// An older object publishing the same destination and next hop the other way.
    pub publish_conflict: Option<&'a str>,
    /// Our other objects naming an entry with this gateway, destination and next hop.
    pub publish_sharers: &'a [Arc<VpnPbrRoute>],
}

/// The plan of a route from the manifests. `live` is the object in the cluster of the same
/// namespace and name; `claims` what the other objects claim.
pub(crate) fn plan_apply(
    desired: &VpnPbrRoute,
    namespace: &str,
    origin: &str,
    live: Option<&VpnPbrRoute>,
    claims: Claims<'_>,
    held_by: AccountGate<'_>,
    gateway: Option<GatewayView<'_>>,
) -> RoutePlan {
    let mut p = RoutePlan::new(desired, namespace, origin);
    let spec = &desired.spec;
    if let Err(errors) = validation::validate(spec) {
        // The operator's first gate (`decide`); the gateway is not even read.
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return p.error("InvalidSpec", message);
    }
    if let Some(live) = live {
        // What the apiserver refuses (the CRD's CEL rules): identity fields of a route that
        // exists in the cloud, and any change of the description.
        let moved = identity_changes(&live.spec, spec);
        if !moved.is_empty() && owns_entry(live) {
            return p.error(
                "Immutable",
                format!(
                    "{} cannot change once the route exists in the cloud; create a new VpnPbrRoute instead",
                    moved
                        .iter()
                        .map(|f| format!("spec.{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        if live.spec.description != spec.description {
            return p.error(
                "Immutable",
                "spec.description cannot be added, removed or changed after creation",
            );
        }
    }
    if spec.credentials_ref.is_some() {
        p.notes.push(
            "credentialsRef: planned with the command's own credentials, not the Secret's".into(),
        );
    }
    let route = as_applied(desired, namespace, live);
    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;
    let paused = annotation_is_true(&route, PAUSED_ANNOTATION);
    // A refused account is a gate before any read (not even its credentials are used).
    let refused = matches!(held_by, AccountGate::Refused(_));
    let gated = claims.older.is_some() || paused || refused;
    let Some(gateway) = gateway.filter(|_| !gated) else {
        if !gated {
            return p.error(NOT_READ, "the gateway was not read");
        }
        // Gates that need no read: the rehearsal decides them on the object alone.
        let r = rehearse_on(&route, None, claims, held_by);
        return outcome(p, &r, live, observe_only);
    };
    let (facts, entries) = match gateway {
        Ok(read) => read,
        Err(e) => return p.error(e.code(), e.to_string()),
    };
    if let Some(e) = plan::find(spec, entries) {
        p.changes = changes(spec, e, facts);
    }
    let r = rehearse_on(&route, Some(Ok((facts, entries))), claims, held_by);
    outcome(p, &r, live, observe_only)
}

fn rehearse_on(
    route: &VpnPbrRoute,
    gateway: Option<GatewayView<'_>>,
    claims: Claims<'_>,
    held_by: AccountGate<'_>,
) -> Rehearsal {
    rehearse(&Stage {
        route,
        gateway,
        older_claim: claims.older,
        publish_conflict: claims.publish_conflict,
        publish_sharers: claims.publish_sharers,
        account: None,
        credentials_fallback: None,
        held_by,
        now_ms: PLAN_TIME_MS,
        now: PLAN_TIME,
    })
}

/// What the rehearsal of an applied route comes to.
fn outcome(
    mut p: RoutePlan,
    r: &Rehearsal,
    live: Option<&VpnPbrRoute>,
    observe_only: bool,
) -> RoutePlan {
    if let Some((reason, message)) = &r.failed {
        return p.error(reason.as_str(), message.clone());
    }
    let ready = status::ready(r.status.as_ref());
    let synced = status::synced(r.status.as_ref());
    let reason = |c: Option<&crate::api::v1alpha1::Condition>| c.map(|c| Reason::parse(&c.reason));
    if let Some(c) = ready {
        match Reason::parse(&c.reason) {
            // The operator's refusals: the route's spec, its claim, or its account.
            Reason::InvalidSpec
            | Reason::DuplicateRoute
            | Reason::AccountRequired
            | Reason::AccountNotFound
            | Reason::AccountForbidden
            | Reason::AdoptionForbidden => {
                return p.error(&c.reason, c.message.clone());
            }
            Reason::AlreadyExists | Reason::PublishConflict => {
                p.action = Action::Conflict;
                p.problem = Some(Problem {
                    code: c.reason.clone(),
                    message: c.message.clone(),
                });
                return p;
            }
            _ => {}
        }
    }
    if reason(synced) == Some(Reason::Paused) {
        p.notes.push(format!(
            "paused ({PAUSED_ANNOTATION}): nothing is sent until it is unpaused"
        ));
        return p;
    }
    if observe_only {
        match reason(synced) {
            Some(Reason::NotFound) => p.notes.push(
                "ObserveOnly: no such entry on the gateway; reported as NotFound, never created"
                    .into(),
            ),
            Some(Reason::Drift) => p
                .notes
                .push("ObserveOnly: reported as Drift, the cloud is not changed".into()),
            _ => {}
        }
        return p;
    }
    p.calls = r.calls.iter().map(|m| call(m, &p.vpn_gateway_id)).collect();
    let adopted_now = r.status.as_ref().and_then(|s| s.adopted) == Some(true)
        && live.and_then(|l| l.status.as_ref()).and_then(|s| s.adopted) != Some(true);
    // A replay of the held token changes nothing by itself: what follows it does.
    let changes = &r.calls[usize::from(r.replayed)..];
    p.action = match changes.first() {
        _ if adopted_now => Action::Adopt,
        None => Action::Nothing,
        Some(Mutation::Delete { .. }) => Action::Replace,
        Some(Mutation::Create { .. }) => Action::Create,
        Some(_) => Action::Modify,
    };
    if r.replayed {
        p.notes.push(REPLAY_NOTE.into());
    }
    match p.action {
        Action::Replace => p.notes.push(
            "a member of an active/standby pair: the API refuses its weight change, so the entry is deleted and made again (the partner carries the traffic meanwhile)".into(),
        ),
        Action::Create => {
            p.create = changes.first().cloned();
            if live.is_some_and(owns_entry) {
                p.notes.push(
                    "the entry this object made is gone from the cloud (deleted outside the operator): it is made again".into(),
                );
            }
        }
        _ => {}
    }
    p
}

/// The plan of an object in the cluster that no manifest names (`--prune`): what its deletion
/// does in the cloud, as the operator's cleanup decides it. `account` is the account of the
/// credentials the gateway was read with (plan's own, the operator's chain), if asked.
pub(crate) fn plan_prune(
    live: &VpnPbrRoute,
    gateway: Option<GatewayView<'_>>,
    account: Option<Result<&str, &CloudError>>,
    held_by: AccountGate<'_>,
) -> RoutePlan {
    let namespace = live.namespace().unwrap_or_default();
    let mut p = RoutePlan::new(live, &namespace, "cluster");
    p.action = Action::Delete;
    let spec = &live.spec;
    let mut route = live.clone();
    route.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_millisecond(PLAN_TIME_MS).unwrap_or_default(),
    ));
    let r = rehearse(&Stage {
        route: &route,
        gateway,
        older_claim: None,
        publish_conflict: None,
        publish_sharers: &[],
        account,
        // Plan reads with its own credentials: for a route with a Secret of its own they
        // are not the route's.
        credentials_fallback: spec
            .credentials_ref
            .is_some()
            .then_some("plan reads with its own credentials"),
        held_by,
        now_ms: PLAN_TIME_MS,
        now: PLAN_TIME,
    });
    if let Some((reason, message)) = &r.failed {
        return p.error(reason.as_str(), message.clone());
    }
    p.calls = r.calls.iter().map(|m| call(m, &p.vpn_gateway_id)).collect();
    if r.replayed {
        p.notes.push(REPLAY_NOTE.into());
    }
    let note = if spec.deletion_policy == DeletionPolicy::Orphan {
        "deletionPolicy Orphan: the object goes, the cloud entry stays"
    } else if spec.management_policy == ManagementPolicy::ObserveOnly {
        "ObserveOnly: the object goes, the cloud entry stays"
    } else if !owns_entry(live) {
        "this object never created nor adopted a cloud entry: nothing is deleted in the cloud"
    } else if annotation_is_true(live, PAUSED_ANNOTATION) {
        "paused: the deletion waits until it is unpaused"
    } else if r.needs_read {
        return p.error(NOT_READ, "the gateway was not read");
    } else if !p.calls.is_empty() {
        return p;
    } else if r.released {
        "nothing of this object's is left in the cloud"
    } else {
        "the deletion waits"
    };
    p.notes.push(note.to_owned());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::ADOPT_ANNOTATION;
    use crate::api::v1alpha1::VpnPbrRouteStatus;
    use crate::controller::fixtures;
    use alicloud_vpc_client::{ApiError, ErrorClass};

    fn route(name: &str, src: &str, hop: &str, weight: i32) -> VpnPbrRoute {
        serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a", "routeSource": src,
                     "routeDest": "10.0.0.0/16", "nextHop": hop, "weight": weight,
                     "publishVpc": false}
        }))
        .expect("route")
    }

    fn entry(src: &str, hop: &str, weight: i32) -> Entry {
        fixtures::normal_entry(src, "10.0.0.0/16", hop, weight)
    }

    fn facts() -> GatewayFacts {
        fixtures::gateway(true)
    }

    fn owned(mut r: VpnPbrRoute) -> VpnPbrRoute {
        r.metadata.finalizers = Some(vec![crate::api::v1alpha1::FINALIZER.to_owned()]);
        r.status = Some(VpnPbrRouteStatus {
            // The creation time of `entry(..)`.
            create_time: Some("1970-01-01T00:00:00.001Z".into()),
            ..Default::default()
        });
        r
    }

    fn adopt(mut r: VpnPbrRoute) -> VpnPbrRoute {
        r.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ADOPT_ANNOTATION.into(), "true".into());
        r
    }

    fn apply(desired: &VpnPbrRoute, live: Option<&VpnPbrRoute>, entries: &[Entry]) -> RoutePlan {
        let f = facts();
        plan_apply(
            desired,
            "ns",
            "f.yaml",
            live,
            Claims::default(),
            OWN,
            Some(Ok((&f, entries))),
        )
    }

    #[test]
    fn absent_entry_is_created() {
        let r = route("a", "192.168.1.0/24", "vco-1", 100);
        let p = apply(&r, None, &[]);
        assert_eq!(p.action, Action::Create);
        assert_eq!(p.calls[0].action, "CreateVpnPbrRouteEntry");
        assert!(matches!(
            p.create,
            Some(Mutation::Create { weight: 100, .. })
        ));
        assert!(p.has_change() && !p.has_problem());
    }

    #[test]
    fn existing_entry_without_consent_is_a_conflict_and_with_it_an_adoption() {
        let r = route("a", "192.168.1.0/24", "vco-1", 100);
        let list = [entry("192.168.1.0/24", "vco-1", 100)];
        let p = apply(&r, None, &list);
        assert_eq!(p.action, Action::Conflict);
        assert!(p.has_problem() && !p.has_change());
        assert_eq!(
            p.problem.as_ref().map(|x| x.code.as_str()),
            Some("AlreadyExists")
        );

        let p = apply(&adopt(r.clone()), None, &list);
        assert_eq!(p.action, Action::Adopt);
        assert!(p.calls.is_empty());
        assert!(
            !p.has_change() && !p.has_problem(),
            "an adoption in sync changes nothing"
        );

        // Adopting an entry that differs: the follow-up change is listed and counts.
        let p = apply(
            &adopt(route("a", "192.168.1.0/24", "vco-1", 0)),
            None,
            &list,
        );
        assert_eq!(p.action, Action::Adopt);
        assert_eq!(p.calls[0].action, "ModifyVpnPbrRouteEntryAttribute");
        assert!(p.has_change());
        // An adopted object (status) is the entry's owner: no conflict, nothing to do.
        let mut live = r.clone();
        live.status = Some(VpnPbrRouteStatus {
            adopted: Some(true),
            create_time: Some("1970-01-01T00:00:00.001Z".into()),
            ..Default::default()
        });
        assert_eq!(apply(&r, Some(&live), &list).action, Action::Nothing);
    }

    #[test]
    fn owned_entry_is_modified_field_by_field() {
        let mut r = route("a", "192.168.1.0/24", "vco-1", 0);
        r.spec.priority = 20;
        r.spec.publish_vpc = true;
        let live = owned(route("a", "192.168.1.0/24", "vco-1", 100));
        let p = apply(&r, Some(&live), &[entry("192.168.1.0/24", "vco-1", 100)]);
        assert_eq!(p.action, Action::Modify);
        let fields: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.field, c.old.clone(), c.new.clone()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("weight", json!(100), json!(0)),
                ("priority", json!(10), json!(20)),
                ("publishVpc", json!(false), json!(true)),
            ]
        );
        let calls: Vec<_> = p.calls.iter().map(|c| c.action).collect();
        assert_eq!(
            calls,
            vec!["ModifyVpnPbrRouteEntryAttribute", "PublishVpnRouteEntry"]
        );
        assert_eq!(p.calls[0].summary, "weight 100 -> 0, priority 10 -> 20");
    }

    #[test]
    fn a_pair_members_weight_flip_is_a_replace() {
        // The standby becoming active is replaced (the other member changes in place).
        let live = owned(route("a", "192.168.1.0/24", "vco-1", 0));
        let r = route("a", "192.168.1.0/24", "vco-1", 100);
        let list = [
            entry("192.168.1.0/24", "vco-1", 0),
            entry("192.168.1.0/24", "vco-2", 100),
        ];
        let p = apply(&r, Some(&live), &list);
        assert_eq!(p.action, Action::Replace);
        let calls: Vec<_> = p.calls.iter().map(|c| c.action).collect();
        assert_eq!(
            calls,
            vec!["DeleteVpnPbrRouteEntry", "CreateVpnPbrRouteEntry"]
        );
        assert!(p.create.is_none(), "no DryRun: the entry still exists now");
    }

    #[test]
    fn a_destination_the_gateway_refuses_is_an_invalid_spec() {
        let mut r = route("a", "192.168.1.0/24", "vco-1", 100);
        r.spec.route_dest = "100.64.1.0/24".into();
        let p = apply(&r, None, &[]);
        assert_eq!(p.action, Action::Error);
        assert!(
            p.problem
                .as_ref()
                .is_some_and(|x| x.message.starts_with("spec.routeDest"))
        );
    }

    #[test]
    fn in_sync_is_nothing() {
        let r = route("a", "192.168.1.0/24", "vco-1", 100);
        let p = apply(
            &r,
            Some(&owned(r.clone())),
            &[entry("192.168.1.0/24", "vco-1", 100)],
        );
        assert_eq!(p.action, Action::Nothing);
        assert!(!p.has_change() && !p.has_problem());
    }

    #[test]
    fn errors_invalid_immutable_duplicate_and_failed_reads() {
        let bad = route("a", "192.168.1.0/24", "nope", 100);
        assert_eq!(
            apply(&bad, None, &[]).problem.map(|p| p.code),
            Some("InvalidSpec".into())
        );

        let live = owned(route("a", "192.168.1.0/24", "vco-1", 100));
        let moved = route("a", "192.168.1.0/24", "vco-2", 100);
        let p = apply(&moved, Some(&live), &[]);
        assert_eq!(p.action, Action::Error);
        assert!(
            p.problem
                .as_ref()
                .is_some_and(|x| x.message.contains("spec.nextHop"))
        );
        // Not in the cloud yet: the identity may still be corrected.
        let not_yet = route("a", "192.168.1.0/24", "vco-1", 100);
        assert_eq!(apply(&moved, Some(&not_yet), &[]).action, Action::Create);

        let f = facts();
        let r = route("b", "192.168.1.0/24", "vco-1", 100);
        let p = plan_apply(
            &r,
            "ns",
            "f",
            None,
            Claims {
                older: Some("ns/a"),
                ..Claims::default()
            },
            OWN,
            Some(Ok((&f, &[]))),
        );
        assert_eq!(p.problem.map(|x| x.code), Some("DuplicateRoute".into()));

        let e = CloudError::Api(Box::new(ApiError {
            action: "DescribeVpnGateway",
            http_status: 404,
            code: "InvalidVpnGatewayInstanceId.NotFound".into(),
            message: "no gateway".into(),
            request_id: Some("R1".into()),
            host_id: None,
            recommend: None,
            retry_after: None,
            class: ErrorClass::NeedsOutsideAction,
        }));
        let p = plan_apply(&r, "ns", "f", None, Claims::default(), OWN, Some(Err(&e)));
        assert_eq!(p.action, Action::Error);
        assert!(p.has_problem());
        // Pruning a route of a deleted gateway leaves nothing to delete.
        let p = plan_prune(&owned(r.clone()), Some(Err(&e)), None, OWN);
        assert_eq!((p.action, p.calls.len()), (Action::Delete, 0));
        assert!(!p.has_problem());
        // ... but only when the answer comes from the entry's account.
        let mut in_other = owned(r);
        if let Some(s) = in_other.status.as_mut() {
            s.account_id = Some("1111111111111111".into());
        }
        let p = plan_prune(&in_other, Some(Err(&e)), Some(Ok("2222222222222222")), OWN);
        assert!(p.has_problem(), "another account's answer proves nothing");
        let p = plan_prune(&in_other, Some(Err(&e)), Some(Ok("1111111111111111")), OWN);
        assert!(!p.has_problem(), "the entry's own account");
    }

    #[test]
    fn observe_only_never_changes_anything() {
        let mut r = route("a", "192.168.1.0/24", "vco-1", 0);
        r.spec.management_policy = ManagementPolicy::ObserveOnly;
        let p = apply(&r, None, &[entry("192.168.1.0/24", "vco-1", 100)]);
        assert_eq!(p.action, Action::Nothing);
        assert_eq!(p.changes.len(), 1);
        assert!(p.calls.is_empty());
        assert_eq!(apply(&r, None, &[]).action, Action::Nothing);
    }

    #[test]
    fn prune_deletes_only_what_the_object_owns() {
        let f = facts();
        let list = [entry("192.168.1.0/24", "vco-1", 100)];
        let r = owned(route("a", "192.168.1.0/24", "vco-1", 100));
        let p = plan_prune(&r, Some(Ok((&f, &list))), None, OWN);
        assert_eq!(p.action, Action::Delete);
        assert_eq!(p.calls[0].action, "DeleteVpnPbrRouteEntry");
        assert!(p.has_change());

        let mut orphan = r.clone();
        orphan.spec.deletion_policy = DeletionPolicy::Orphan;
        assert!(
            plan_prune(&orphan, Some(Ok((&f, &list))), None, OWN)
                .calls
                .is_empty()
        );
        let stranger = route("a", "192.168.1.0/24", "vco-1", 100);
        let p = plan_prune(&stranger, Some(Ok((&f, &list))), None, OWN);
        assert!(
            p.calls.is_empty(),
            "an entry it never owned is never deleted"
        );
        assert!(
            plan_prune(&r, Some(Ok((&f, &[]))), None, OWN)
                .calls
                .is_empty()
        );
    }

    #[test]
    fn only_the_recorded_entry_is_the_objects_and_a_token_waits_for_its_replay() {
        let f = facts();
        let r = route("a", "192.168.1.0/24", "vco-1", 0);
        let list = [entry("192.168.1.0/24", "vco-1", 100)];
        // Status recorded another entry (deleted and made again by someone else since).
        let mut earlier = owned(r.clone());
        earlier.status = Some(VpnPbrRouteStatus {
            create_time: Some("2024-01-01T00:00:00.000Z".into()),
            ..Default::default()
        });
        let p = apply(&r, Some(&earlier), &list);
        assert_eq!(p.action, Action::Conflict, "made again: not the object's");
        assert!(p.calls.is_empty());
        let p = plan_prune(&earlier, Some(Ok((&f, &list))), None, OWN);
        assert!(p.calls.is_empty(), "made again: never deleted");
        // Only a create token: the operator replays it first, and only its answer decides.
        let mut token = owned(r.clone());
        token.status = Some(VpnPbrRouteStatus {
            client_token: Some("t".into()),
            ..Default::default()
        });
        let p = apply(&r, Some(&token), &list);
        assert_eq!(p.action, Action::Modify);
        assert!(
            p.notes.iter().any(|n| n.contains("replay")),
            "{:?}",
            p.notes
        );
        let p = plan_prune(&token, Some(Ok((&f, &list))), None, OWN);
        assert!(
            p.notes.iter().any(|n| n.contains("replay")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn gates_are_the_controllers_a_pause_sends_nothing_and_a_publish_conflict_waits() {
        let f = facts();
        let list = [entry("192.168.1.0/24", "vco-1", 100)];
        let live = owned(route("a", "192.168.1.0/24", "vco-1", 100));
        // The spec asks for weight 0: a change, unless the route is paused.
        let mut paused = route("a", "192.168.1.0/24", "vco-1", 0);
        paused
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(PAUSED_ANNOTATION.into(), "true".into());
        let p = apply(&paused, Some(&live), &list);
        assert_eq!(p.action, Action::Nothing, "paused: a gate, not a note");
        assert!(p.calls.is_empty() && !p.has_change());
        assert!(
            p.notes.iter().any(|n| n.contains("paused")),
            "{:?}",
            p.notes
        );
        // An older object publishing the same destination and next hop the other way.
        let mut publish = route("a", "192.168.1.0/24", "vco-1", 100);
        publish.spec.publish_vpc = true;
        let p = plan_apply(
            &publish,
            "ns",
            "f.yaml",
            Some(&live),
            Claims {
                publish_conflict: Some("ns/older"),
                ..Claims::default()
            },
            OWN,
            Some(Ok((&f, &list))),
        );
        assert_eq!(p.action, Action::Conflict);
        assert_eq!(
            p.problem.as_ref().map(|x| x.code.as_str()),
            Some("PublishConflict")
        );
        assert!(p.calls.is_empty());
    }

    /// The account gate is the operator's: a refused account is an error with its reason and
    /// no call, read or not; an account without adoption refuses an adoption; a route in its
    /// account plans as any other.
    #[test]
    fn the_accounts_refusals_are_the_operators_and_send_nothing() {
        use crate::controller::resolve::Refusal;
        let f = facts();
        let list = [entry("192.168.1.0/24", "vco-1", 100)];
        let r = route("a", "192.168.1.0/24", "vco-1", 100);
        let refusal = |reason: Reason| Refusal {
            reason,
            message: "said".into(),
        };
        let in_b = AccountGate::Open {
            name: "team-b",
            adoption: false,
        };
        type Row<'a> = (
            &'a str,
            VpnPbrRoute,
            AccountGate<'a>,
            bool,
            Action,
            Option<&'a str>,
        );
        let (required, missing, forbidden) = (
            refusal(Reason::AccountRequired),
            refusal(Reason::AccountNotFound),
            refusal(Reason::AccountForbidden),
        );
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("required, not read",     r.clone(),        AccountGate::Refused(&required),  false, Action::Error,    Some("AccountRequired")),
            ("not found, read anyway", r.clone(),        AccountGate::Refused(&missing),   true,  Action::Error,    Some("AccountNotFound")),
            ("forbidden",              r.clone(),        AccountGate::Refused(&forbidden), false, Action::Error,    Some("AccountForbidden")),
            ("adoption not allowed",   adopt(r.clone()), in_b,                             true,  Action::Error,    Some("AdoptionForbidden")),
            ("adoption allowed",       adopt(r.clone()), OWN,                              true,  Action::Adopt,    None),
            ("new entry in team-b",    route("b", "192.168.2.0/24", "vco-1", 100), in_b,   true,  Action::Create,   None),
            ("held entry in team-b",   r.clone(),        in_b,                             true,  Action::Conflict, Some("AlreadyExists")),
        ];
        for (name, desired, gate, read, action, code) in rows {
            let gateway = read.then_some(Ok((&f, list.as_slice())));
            let p = plan_apply(&desired, "ns", "f", None, Claims::default(), gate, gateway);
            assert_eq!(p.action, action, "{name}: {p:?}");
            assert_eq!(p.problem.as_ref().map(|x| x.code.as_str()), code, "{name}");
            if code.is_some() {
                assert!(p.calls.is_empty() && p.create.is_none(), "{name}: {p:?}");
            }
        }
        // A route whose status records the account keeps its entry there.
        let live = owned(r.clone());
        let mut held = live.clone();
        if let Some(s) = held.status.as_mut() {
            s.account = Some("team-b".into());
        }
        let p = plan_apply(
            &r,
            "ns",
            "f",
            Some(&held),
            Claims::default(),
            in_b,
            Some(Ok((&f, &list))),
        );
        assert_eq!(p.action, Action::Nothing, "{p:?}");
    }
}
