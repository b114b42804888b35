//! The gates: an invalid spec, a pause, an account that does not admit the route (or its
//! adoption), an older object claiming the same entry, or a publish
//! that would act on an entry with the other `publishVpc` stop a reconcile before any cloud
//! call, and no queued change of it may go out either. Also which entries a publish touches
//! (`PublishVpnRouteEntry` selects by destination and next hop only).

use std::ops::ControlFlow;
use std::sync::Arc;

use super::ownership::{consents_to_adopt, is_recorded_entry, owns_entry};
use super::{
    AccountGate, Decision, Next, Observation, both_false, drop_job, paused, ready_reason,
    with_answer,
};
use crate::api::v1alpha1::{
    ADOPT_ANNOTATION, ManagementPolicy, PAUSED_ANNOTATION, VpnPbrRoute, validation,
};
use crate::controller::model::Entry;
use crate::controller::plan;
use crate::controller::reason::Reason;
use crate::controller::status::{CondValue, StatusReport};

/// `Break` with the decision of the gate that closed, or `Continue` with `d` when all are open.
/// `full`: the route manages its entry (only then may it publish).
pub(super) fn gates(
    obs: &Observation<'_>,
    full: bool,
    mut d: Decision,
) -> ControlFlow<Decision, Decision> {
    let route = obs.route;
    if let Err(errors) = validation::validate(&route.spec) {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let report = both_false(Reason::InvalidSpec, message);
        return ControlFlow::Break(closed(obs, d, report, Next::AwaitChange));
    }
    if paused(route) {
        return ControlFlow::Break(closed(obs, d, paused_report(), Next::AwaitChange));
    }
    // The account must admit the route before anything is read with its credentials; a
    // change of the account or the namespace brings the route back (they are watched).
    let refusal = match obs.held_by {
        AccountGate::Refused(r) => Some((r.reason.clone(), r.message.clone())),
        AccountGate::Open {
            name,
            adoption: false,
        } if consents_to_adopt(route) && !owns_entry(route) => Some((
            Reason::AdoptionForbidden,
            format!(
                "the route asks to adopt an existing entry ({ADOPT_ANNOTATION}), and its \
                 account {name} does not allow adoption (spec.allowAdoption of the VpnAccount)"
            ),
        )),
        AccountGate::Open { .. } => None,
    };
    if let Some((reason, message)) = refusal {
        if ready_reason(route) != Some(reason.clone()) {
            d = d.event(true, reason.clone(), "Account", message.clone());
        }
        let report = both_false(reason, message);
        return ControlFlow::Break(closed(obs, d, report, Next::AwaitChange));
    }
    if let Some(winner) = obs.older_claim {
        let message = format!("route already claimed by {winner}");
        if ready_reason(route) != Some(Reason::DuplicateRoute) {
            d = d.event(true, Reason::DuplicateRoute, "Claim", message.clone());
        }
        // The older object holds the entry: whatever this one made or started is not its own
        // any more (it never changes or deletes the entry).
        let mut report = both_false(Reason::DuplicateRoute, message);
        report.entry_absent = true;
        report.client_token = Some(None);
        return ControlFlow::Break(d.status(report).job(drop_job(obs.job)).next(Next::Resync));
    }
    if let Some(older) = obs.publish_conflict.filter(|_| full) {
        let message = format!(
            "{older} has an entry with the same gateway, destination and next hop but the other \
             publishVpc; publishing acts on both, so this route waits until they agree"
        );
        return ControlFlow::Break(publish_conflict(obs, message, d));
    }
    ControlFlow::Continue(d)
}

/// Synced=False while the route is paused: no cloud calls (a deletion's included).
pub(super) fn paused_report() -> StatusReport {
    StatusReport {
        synced: Some(CondValue::no(
            Reason::Paused,
            format!("{PAUSED_ANNOTATION} is \"true\"; no cloud calls"),
        )),
        ..Default::default()
    }
}

/// A closed gate: `report` (with the answer of a create that came back meanwhile), the job
/// dropped, and back at `next`.
pub(super) fn closed(
    obs: &Observation<'_>,
    d: Decision,
    report: StatusReport,
    next: Next,
) -> Decision {
    d.status(with_answer(obs, report))
        .job(drop_job(obs.job))
        .next(next)
}

/// Whether publishing this route's entry would change another listed entry (same destination
/// and next hop, another source, the other state): only then does the decision need the
/// objects sharing them ([`Observation::publish_sharers`]).
pub(crate) fn publish_touches_others(route: &VpnPbrRoute, entries: &[Entry]) -> bool {
    let spec = &route.spec;
    spec.management_policy == ManagementPolicy::Full
        && plan::find(spec, entries).is_some_and(|e| e.published() != spec.publish_vpc)
        && publish_touches(route, entries).next().is_some()
}

/// The other entries `PublishVpnRouteEntry` for this route would change: it selects by
/// destination and next hop only.
pub(super) fn publish_touches<'e>(
    route: &VpnPbrRoute,
    entries: &'e [Entry],
) -> impl Iterator<Item = &'e Entry> {
    let spec = &route.spec;
    entries.iter().filter(move |e| {
        e.route_dest == spec.route_dest
            && e.next_hop == spec.next_hop
            && e.route_source != spec.route_source
            && e.published() != spec.publish_vpc
    })
}

/// Whether another object of ours holds `entry`: it names it, manages it and status recorded
/// it (a token alone proves nothing yet).
pub(super) fn held_by_ours(
    route: &VpnPbrRoute,
    sharers: &[Arc<VpnPbrRoute>],
    entry: &Entry,
) -> bool {
    sharers.iter().any(|o| {
        o.metadata.uid != route.metadata.uid
            && o.spec.management_policy == ManagementPolicy::Full
            && o.spec.region_id == route.spec.region_id
            && o.spec.vpn_gateway_id == route.spec.vpn_gateway_id
            && entry.matches(&o.spec.route_source, &o.spec.route_dest, &o.spec.next_hop)
            && is_recorded_entry(o, entry)
    })
}

/// The route waits: publishing would change an entry it may not (someone else's, or one of
/// ours whose object wants the other state).
pub(super) fn publish_conflict(
    obs: &Observation<'_>,
    message: String,
    mut d: Decision,
) -> Decision {
    if ready_reason(obs.route) != Some(Reason::PublishConflict) {
        d = d.event(true, Reason::PublishConflict, "Publish", message.clone());
    }
    let report = both_false(Reason::PublishConflict, message);
    closed(obs, d, report, Next::Resync)
}
