//! The decision core: what one reconcile of one route does, as a pure function of what it
//! observed. No I/O, no clock, no locks, no randomness: `reconcile.rs` observes, calls
//! [`decide`], acts on the [`Decision`] and reports; failures become status through
//! [`failure`]. Every rule about the route lifecycle lives here (with `plan.rs` for the next
//! change of an existing entry) and is proven by the table tests in `decide/tests.rs` and by
//! the deterministic simulation in `tests/simulation.rs`.
//!
//! This file holds what a reconcile observes and decides (the types) and the one entry point;
//! its modules hold the steps, in the order [`decide`] takes them: `gates` (what stops a
//! reconcile before any cloud call), `outcome` (what the route's finished job proves),
//! `apply` (the create, change or in-sync report of a `Full` route), `ownership` (whose the
//! listed entry is: the record, a create's answer, a token's replay, the account; adopting or
//! refusing an entry the object did not make), `observe` (an `ObserveOnly` route), `cleanup`
//! (a deleted object) and `failure` (a failed reconcile as status and event).

mod apply;
mod cleanup;
mod failure;
mod gates;
mod observe;
mod outcome;
mod ownership;

use std::ops::ControlFlow;
use std::sync::Arc;

use kube::ResourceExt;

use super::event::EventNote;
use super::job::JobView;
use super::model::{Entry, Freshness, GatewayFacts, Mutation};
use super::plan;
use super::reason::Reason;
use super::resolve::Refusal;
use super::status::{self, CondValue, StatusReport};
use crate::api::v1alpha1::{
    ConditionStatus, FINALIZER, ManagementPolicy, PAUSED_ANNOTATION, RESYNC_ANNOTATION, VpnPbrRoute,
};
use alicloud_vpc_client::CloudError;

pub(crate) use failure::{Failure, failure};
pub(crate) use gates::publish_touches_others;
pub(crate) use ownership::owns_entry;

/// What the cloud read of this reconcile found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CloudRead<'a> {
    /// Not read yet: the decision says whether a read is needed.
    NotRead,
    /// A read of the gateway is under way; the route is woken when it ends.
    Pending,
    /// The gateway's last read failed (shared by every route of the gateway for a moment).
    Failed(&'a Arc<CloudError>),
    /// The gateway's facts and its whole entry list.
    Ready {
        facts: &'a GatewayFacts,
        entries: &'a [Entry],
    },
}

/// The account the credentials of this reconcile act for (STS `GetCallerIdentity`, asked once
/// per credentials).
#[derive(Clone, Copy, Debug)]
pub(crate) enum AccountRead<'a> {
    /// Not asked: the first decision, before the credentials are known.
    NotRead,
    /// Asked, not answered yet (only a cleanup waits for the answer).
    Pending,
    Known(&'a str),
    Failed(&'a Arc<CloudError>),
}

impl<'a> AccountRead<'a> {
    fn known(self) -> Option<&'a str> {
        match self {
            Self::Known(a) => Some(a),
            _ => None,
        }
    }
}

/// The account the route acts in, as the executor resolved it (`resolve.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum AccountGate<'a> {
    /// The route may act in account `name` (what `status.account` records); `adoption`: the
    /// account allows adopting existing entries.
    Open { name: &'a str, adoption: bool },
    /// The route may not act in the account it resolves to: no cloud call.
    Refused(&'a Refusal),
}

/// Everything one reconcile knows before it decides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Observation<'a> {
    /// Spec, metadata and status as the watch delivered them.
    pub route: &'a VpnPbrRoute,
    /// `namespace/name` of an older object naming the same cloud entry.
    pub older_claim: Option<&'a str>,
    /// `namespace/name` of an older object whose entry shares the gateway, destination and next
    /// hop but wants the other `publishVpc`.
    pub publish_conflict: Option<&'a str>,
    /// Our other objects naming an entry with this route's gateway, destination and next hop
    /// (read only when publishing would change another entry: [`publish_touches_others`]).
    pub publish_sharers: &'a [Arc<VpnPbrRoute>],
    /// This route's job in the gateway scheduler.
    pub job: Option<&'a JobView>,
    /// This generation was seen in sync a moment ago (the watch event is the echo of our own
    /// status write): no cloud read is needed.
    pub recently_verified: bool,
    pub cloud: CloudRead<'a>,
    /// A fresh idempotency token, used only if a create needs one and status has none (made by
    /// the executor so that deciding stays pure).
    pub new_token: &'a str,
    /// Why the route's own credentials are not used for this cleanup (its Secret is gone), when
    /// the operator's fall back to others.
    pub credentials_fallback: Option<&'a str>,
    /// The account of the credentials the reconcile uses.
    pub account: AccountRead<'a>,
    /// The account the route acts in (`status.account`), or why it may not.
    pub held_by: AccountGate<'a>,
}

/// What to do with the route's job in the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum JobOp {
    Keep,
    /// Its outcome is recorded, or it is queued and no longer wanted: drop it. A job already
    /// on the wire cannot be dropped; the executor then waits for it and acts on nothing else.
    Drop,
    /// Queue this change (replacing a queued one that differs).
    Submit(Mutation),
}

/// When this route should be reconciled again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the gateway, then decide again.
    Read(Freshness),
    /// Only a change of the object (or a wake-up) brings it back.
    AwaitChange,
    /// At the route's drift-check time.
    Resync,
    /// When the scheduler wakes it: it holds the route's job (kept, submitted, or on the wire
    /// while a drop waits for its answer) and wakes the route whenever the job moves on, so no
    /// timer is kept.
    Wake,
    /// When the gateway read under way ends: the read cache wakes it, however the read ends,
    /// so no timer is kept.
    AwaitRead,
    /// After the per-object backoff of the failure.
    Backoff,
}

/// What one reconcile does, in the order the executor does it: finalizer, status, job,
/// events, finalizer removal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decision {
    pub add_finalizer: bool,
    pub status: Option<StatusReport>,
    pub job: Option<JobOp>,
    pub events: Vec<EventNote>,
    pub remove_finalizer: bool,
    /// The route is in sync at this generation (the echo of the status write costs no read).
    pub verified: bool,
    /// The route's credentials worked: keep them for its cleanup.
    pub credentials_worked: bool,
    pub failure: Option<Failure>,
    pub next: Option<Next>,
}

impl Decision {
    /// Whether this decision refuses the listed entry as not the object's own (one-way: the
    /// executor confirms it on the newest copy of the object first).
    pub(crate) fn refuses_an_entry(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|r| r.ready.as_ref())
            .is_some_and(|c| c.reason == Reason::AlreadyExists)
    }

    fn next(mut self, next: Next) -> Self {
        self.next = Some(next);
        self
    }
    fn job(mut self, op: JobOp) -> Self {
        self.job = Some(op);
        self
    }
    fn status(mut self, report: StatusReport) -> Self {
        self.status = Some(report);
        self
    }
    fn fail(mut self, failure: Failure) -> Self {
        self.failure = Some(failure);
        self.next = Some(Next::Backoff);
        self
    }
    fn event(mut self, warning: bool, reason: Reason, action: &'static str, note: String) -> Self {
        self.events.push(EventNote {
            warning,
            reason,
            action,
            note,
        });
        self
    }
}

fn paused(route: &VpnPbrRoute) -> bool {
    route
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The route's drift-check period: its resync annotation, else `default`.
pub(crate) fn resync_period(
    route: &VpnPbrRoute,
    default: std::time::Duration,
) -> std::time::Duration {
    route
        .annotations()
        .get(RESYNC_ANNOTATION)
        .and_then(|v| crate::duration::parse(v))
        .unwrap_or(default)
}

/// Whether a route failing with backoff is reconciled at once anyway: a pause (which does not
/// change the generation) must cancel queued work without waiting out the backoff.
pub(crate) fn skips_backoff(route: &VpnPbrRoute) -> bool {
    paused(route)
}

fn has_finalizer(route: &VpnPbrRoute) -> bool {
    route.finalizers().iter().any(|f| f == FINALIZER)
}

fn ready_reason(route: &VpnPbrRoute) -> Option<Reason> {
    status::ready(route.status.as_ref()).map(|c| Reason::parse(&c.reason))
}

/// Whether a read of this route only re-checks it: status says it is Ready at this
/// generation, no job of it is in the scheduler, and no pause was just lifted (a resumed route
/// is something a user waits on). A failed read keeps such a route Ready (see [`failure`]), so
/// its retries are re-checks too.
fn in_steady_state(route: &VpnPbrRoute, job: Option<&JobView>) -> bool {
    let st = route.status.as_ref();
    job.is_none()
        && route.metadata.deletion_timestamp.is_none()
        && status::ready(st).is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == route.metadata.generation
        })
        && status::synced(st).is_none_or(|c| Reason::parse(&c.reason) != Reason::Paused)
}

/// Drops a job that is still queued or whose outcome is known; `Keep` when there is none.
fn drop_job(job: Option<&JobView>) -> JobOp {
    if job.is_some() {
        JobOp::Drop
    } else {
        JobOp::Keep
    }
}

/// Both conditions False for the same reason.
fn both_false(reason: Reason, message: impl Into<String>) -> StatusReport {
    let message = message.into();
    StatusReport {
        ready: Some(CondValue::no(reason.clone(), message.clone())),
        synced: Some(CondValue::no(reason, message)),
        ..Default::default()
    }
}

/// `Synced` once `entry` is compared with the spec: True (`in_sync`) when nothing differs,
/// else False for `reason`, with `differs` saying it of the fields that differ.
fn synced_as_compared(
    obs: &Observation<'_>,
    entry: &Entry,
    facts: &GatewayFacts,
    in_sync: &str,
    reason: Reason,
    differs: impl FnOnce(&str) -> String,
) -> CondValue {
    let drift = plan::drift(&obs.route.spec, entry, facts);
    if drift.fields.is_empty() {
        CondValue::yes(Reason::Synced, in_sync)
    } else {
        CondValue::no(reason, differs(&drift.fields.join(", ")))
    }
}

/// A create's answer that came back after a gate closed (the spec turned invalid, the route
/// was paused, a publish conflict): recorded all the same, so the entry it made is proven by the record, not by a
/// token the cloud forgets in time.
fn with_answer(obs: &Observation<'_>, mut report: StatusReport) -> StatusReport {
    if let Some(JobView::Accepted {
        accepted,
        create: true,
        ..
    }) = obs.job
        && let Some(e) = &accepted.entry
    {
        report.entry = Some(e.clone());
    }
    report
}

/// What a reconcile does while the gateway's read is under way (woken when it ends) or after
/// it failed (the backoff); the caller decides what an unread gateway needs.
fn without_read(d: Decision, cloud: CloudRead<'_>) -> Decision {
    match cloud {
        CloudRead::Failed(e) => d.fail(Failure::Cloud {
            op: "read",
            error: e.clone(),
        }),
        _ => d.next(Next::AwaitRead),
    }
}

/// The decision for one reconcile: a deleted object's cleanup; else the gates, then the
/// observing of an `ObserveOnly` route or the changes of a `Full` one.
pub(crate) fn decide(obs: &Observation<'_>) -> Decision {
    let route = obs.route;
    if route.metadata.deletion_timestamp.is_some() {
        return cleanup::cleanup(obs);
    }
    let full = route.spec.management_policy == ManagementPolicy::Full;
    let d = Decision {
        add_finalizer: full && !has_finalizer(route),
        ..Default::default()
    };
    match gates::gates(obs, full, d) {
        ControlFlow::Break(closed) => closed,
        ControlFlow::Continue(d) if !full => observe::observe_only(obs, d),
        ControlFlow::Continue(d) => apply::apply(obs, d),
    }
}

#[cfg(test)]
mod tests;
