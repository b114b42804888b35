//! PURE: the operator's decisions rehearsed on a quiet cluster. The controller's own
//! `decide` runs reconcile after reconcile on the route as applying (or deleting) it would leave
//! it; each change it sends is accepted as the cloud would accept it on a copy of the gateway's
//! list (a replace is a delete, then a create), its answer fed back as the scheduler feeds it,
//! until it sends nothing more. `plan` renders what this yields and keeps no rule of its own
//! about the route, so the two cannot disagree.

use std::sync::Arc;

use alicloud_vpc_client::CloudError;

use crate::api::v1alpha1::{FINALIZER, VpnPbrRoute, VpnPbrRouteStatus};
use crate::controller::decide::{
    AccountGate, AccountRead, CloudRead, JobOp, Next, Observation, decide, failure,
};
use crate::controller::error::Error;
use crate::controller::job::JobView;
use crate::controller::model::{Accepted, Entry, EntryState, Mutation};
use crate::controller::reason::Reason;
use crate::controller::status;

use super::route::GatewayView;

/// More reconciles than any route needs (a replace with its publish is four changes, each
/// followed by the decision that records it): the bound only guards the loop.
const MAX_RECONCILES: usize = 16;

/// The world one route is rehearsed in.
pub(crate) struct Stage<'a> {
    /// The object as the operator would see it once applied (or deleted).
    pub route: &'a VpnPbrRoute,
    /// The gateway as read (its facts and whole list, or the read's failure); `None`: not read.
    pub gateway: Option<GatewayView<'a>>,
    /// An older object naming the same entry (`duplicates::older_claim_among`).
    pub older_claim: Option<&'a str>,
    /// An older object that publishes the other way (`duplicates::older_publish_conflict_among`).
    pub publish_conflict: Option<&'a str>,
    pub publish_sharers: &'a [Arc<VpnPbrRoute>],
    /// The account of the credentials the gateway was read with (`GetCallerIdentity`); `None`:
    /// not asked.
    pub account: Option<Result<&'a str, &'a CloudError>>,
    /// Why the route's own credentials are not the ones used (they are plan's own).
    pub credentials_fallback: Option<&'a str>,
    /// The account the route acts in, or why the operator refuses it (`controller::resolve`).
    pub held_by: AccountGate<'a>,
    /// Creation time of the entries a create makes here (epoch milliseconds), and the time
    /// conditions are stamped with.
    pub now_ms: i64,
    pub now: &'a str,
}

/// What the operator would do, reconcile after reconcile.
#[derive(Debug, Default)]
pub(crate) struct Rehearsal {
    /// The mutations it sends, in order.
    pub calls: Vec<Mutation>,
    /// The object's status when it sends nothing more.
    pub status: Option<VpnPbrRouteStatus>,
    /// The first call replays the create token status held, on an entry already listed (its
    /// outcome is the cloud's word: here the listed entry, as if the token made it).
    pub replayed: bool,
    /// The deletion let the object go.
    pub released: bool,
    /// A failure stopped it: its reason and message (as status would show them).
    pub failed: Option<(Reason, String)>,
    /// It needs the gateway read, which the stage does not have.
    pub needs_read: bool,
}

/// Runs the operator's decisions on `stage` until they send nothing more.
pub(crate) fn rehearse(stage: &Stage<'_>) -> Rehearsal {
    let mut route = stage.route.clone();
    let (facts, mut list, read_error) = match stage.gateway {
        Some(Ok((facts, entries))) => (Some(facts), entries.to_vec(), None),
        Some(Err(e)) => (None, Vec::new(), Some(Arc::new(e.clone()))),
        None => (None, Vec::new(), None),
    };
    let mut job: Option<JobView> = None;
    let mut out = Rehearsal::default();
    let account_error = match stage.account {
        Some(Err(e)) => Some(Arc::new(e.clone())),
        _ => None,
    };
    let held_token = |r: &VpnPbrRoute| r.status.as_ref().and_then(|s| s.client_token.clone());
    for _ in 0..MAX_RECONCILES {
        let d = decide(&Observation {
            route: &route,
            older_claim: stage.older_claim,
            publish_conflict: stage.publish_conflict,
            publish_sharers: stage.publish_sharers,
            job: job.as_ref(),
            recently_verified: false,
            cloud: match (facts, &read_error) {
                (Some(facts), _) => CloudRead::Ready {
                    facts,
                    entries: &list,
                },
                (None, Some(e)) => CloudRead::Failed(e),
                (None, None) => CloudRead::NotRead,
            },
            new_token: "plan",
            credentials_fallback: stage.credentials_fallback,
            account: match (stage.account, &account_error) {
                (Some(Ok(a)), _) => AccountRead::Known(a),
                (_, Some(e)) => AccountRead::Failed(e),
                _ => AccountRead::NotRead,
            },
            held_by: stage.held_by,
        });
        if d.add_finalizer {
            route
                .metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(FINALIZER.to_owned());
        }
        let mut moved = d.status.is_some();
        if let Some(report) = d.status.clone() {
            route.status = Some(status::build(
                route.status.as_ref(),
                report,
                route.metadata.generation,
                stage.now,
            ));
        }
        if let Some(f) = d.failure.clone() {
            let err = Error::from(f);
            let (mut report, _) = failure(&route, &err, stage.credentials_fallback);
            report.cause = Some(err.policy());
            out.failed = report
                .synced
                .as_ref()
                .map(|c| (c.reason.clone(), c.message.clone()));
            route.status = Some(status::build(
                route.status.as_ref(),
                report,
                route.metadata.generation,
                stage.now,
            ));
            break;
        }
        if d.remove_finalizer {
            out.released = true;
            break;
        }
        match d.job {
            Some(JobOp::Submit(m)) => {
                let replay = matches!(&m, Mutation::Create { client_token, .. }
                    if held_token(&route).as_deref() == Some(client_token.as_str()));
                let id = m.route();
                let listed = list
                    .iter()
                    .any(|e| e.matches(&id.route_source, &id.route_dest, &id.next_hop));
                out.replayed |= out.calls.is_empty() && replay && listed;
                let entry = accept(&m, &mut list, &route.spec.vpn_gateway_id, stage.now_ms);
                job = Some(JobView::Accepted {
                    accepted: Accepted {
                        request_id: None,
                        entry,
                    },
                    confirmed: true,
                    create: matches!(m, Mutation::Create { .. }),
                    stalled: None,
                });
                out.calls.push(m);
                continue;
            }
            Some(JobOp::Drop) => {
                moved |= job.take().is_some();
            }
            Some(JobOp::Keep) | None => {}
        }
        if matches!(d.next, Some(Next::Read(_))) && facts.is_none() && read_error.is_none() {
            out.needs_read = true;
            break;
        }
        if !moved
            || !matches!(
                d.next,
                Some(Next::Read(_) | Next::Wake | Next::AwaitRead | Next::Resync)
            )
        {
            break;
        }
    }
    out.status = route.status;
    out
}

/// The cloud accepts `m` on `list`; a create answers with the entry it made (a replay, with
/// the entry its key already has: the token made it, as far as a rehearsal can tell).
fn accept(m: &Mutation, list: &mut Vec<Entry>, gateway: &str, now_ms: i64) -> Option<Entry> {
    let r = m.route();
    let listed = list
        .iter()
        .find(|e| e.matches(&r.route_source, &r.route_dest, &r.next_hop))
        .cloned();
    let Mutation::Create {
        weight,
        priority,
        publish_vpc,
        ..
    } = m
    else {
        m.apply_to(list, None);
        return None;
    };
    if listed.is_some() {
        return listed;
    }
    let made = Entry {
        route_source: r.route_source.clone(),
        route_dest: r.route_dest.clone(),
        next_hop: r.next_hop.clone(),
        weight: *weight,
        priority: priority.unwrap_or(crate::api::v1alpha1::DEFAULT_PRIORITY),
        state: if *publish_vpc {
            EntryState::Published
        } else {
            EntryState::Normal
        },
        create_time: now_ms,
        vpn_instance_id: gateway.to_owned(),
    };
    m.apply_to(list, Some(&made));
    Some(made)
}
