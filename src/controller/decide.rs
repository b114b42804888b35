//! The decision core: what one reconcile of one route does, as a pure function of what it
//! observed. No I/O, no clock, no locks, no randomness: `reconcile.rs` observes, calls
//! [`decide`], acts on the [`Decision`] and reports; failures become status through
//! [`failure`]. Every rule about the route lifecycle lives here (with `plan.rs` for the next
//! change of an existing entry) and is proven by the table tests below and by the
//! deterministic simulation in `tests/simulation.rs`.

use std::sync::Arc;

use kube::ResourceExt;

use super::error::Error;
use super::model::{Entry, GatewayFacts, Mutation};
use super::plan::{self, Step};
use super::reason::Reason;
use super::scheduler::JobView;
use super::status::{self, CondValue, Report};
use crate::api::v1alpha1::{
    ADOPT_ANNOTATION, ConditionStatus, DeletionPolicy, FINALIZER, ManagementPolicy,
    PAUSED_ANNOTATION, RESYNC_ANNOTATION, VpnPbrRoute, validation,
};
use alicloud_vpc_client::{CloudError, ErrorClass, Priority};

/// What the cloud read of this reconcile found.
#[derive(Clone, Copy, Debug)]
pub enum CloudRead<'a> {
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

/// Everything one reconcile knows before it decides.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Spec, metadata and status as the watch delivered them.
    pub route: &'a VpnPbrRoute,
    /// `namespace/name` of an older object naming the same cloud entry.
    pub older_claim: Option<&'a str>,
    /// `namespace/name` of an older object whose entry shares the gateway, destination and next
    /// hop but wants the other `publishVpc`.
    pub publish_conflict: Option<&'a str>,
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
}

/// What to do with the route's job in the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOp {
    Keep,
    /// Its outcome is recorded, or it is queued and no longer wanted: drop it. A job already
    /// on the wire cannot be dropped; the executor then waits for it and acts on nothing else.
    Drop,
    /// Queue this change (replacing a queued one that differs).
    Submit(Mutation),
}

/// The read a decision needs before it can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Not from the cache: a create was refused as existing, so the cached list is stale.
    Now,
    /// A recent list (spec change, resync, a new object).
    Recent,
    /// Our own change was just accepted and applied to the cached list: it may be older.
    Cached,
    /// A recent list, only to re-check a route already in sync at this generation (the
    /// periodic drift check, or a restart): nothing waits on it, so its calls go after every
    /// other call when the account's API rate binds (`Priority::Background`).
    Recheck,
}

impl Freshness {
    /// The class of the cloud calls this read makes (`alicloud_vpc_client::Priority`).
    pub fn priority(self) -> Priority {
        match self {
            Self::Recheck => Priority::Background,
            Self::Now | Self::Recent | Self::Cached => Priority::Progress,
        }
    }
}

/// When this route should be reconciled again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the gateway, then decide again.
    Read(Freshness),
    /// Only a change of the object (or a wake-up) brings it back.
    AwaitChange,
    /// At the route's drift-check time.
    Resync,
    /// When the scheduler or the gateway read wakes it.
    Wake,
    /// After the per-object backoff of the failure.
    Backoff,
}

/// An event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: Reason,
    pub action: &'static str,
    pub note: String,
}

/// A failure that goes through the per-object backoff and into status.
#[derive(Clone, Debug)]
pub enum Failure {
    /// A cloud call (a read, or the route's job) failed.
    Cloud {
        op: &'static str,
        error: Arc<CloudError>,
    },
    /// The cloud refused the create: nothing is in flight, the token goes.
    CreateRefused(Arc<CloudError>),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::Cloud { op, error } => Error::Cloud { op, source: error },
            Failure::CreateRefused(e) => Error::CreateRefused(e),
        }
    }
}

/// What one reconcile does, in the order the executor does it: finalizer, status, job,
/// events, finalizer removal.
#[derive(Clone, Debug, Default)]
pub struct Decision {
    pub add_finalizer: bool,
    pub status: Option<Report>,
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
    pub fn refuses_an_entry(&self) -> bool {
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
    fn status(mut self, report: Report) -> Self {
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
pub fn resync_period(route: &VpnPbrRoute, default: std::time::Duration) -> std::time::Duration {
    route
        .annotations()
        .get(RESYNC_ANNOTATION)
        .and_then(|v| crate::duration::parse(v))
        .unwrap_or(default)
}

/// Whether a route failing with backoff is reconciled at once anyway: a pause (which does not
/// change the generation) must cancel queued work without waiting out the backoff.
pub fn skips_backoff(route: &VpnPbrRoute) -> bool {
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
fn both_false(reason: Reason, message: impl Into<String>) -> Report {
    let message = message.into();
    Report {
        ready: Some(CondValue::no(reason.clone(), message.clone())),
        synced: Some(CondValue::no(reason, message)),
        ..Default::default()
    }
}

/// The decision for one reconcile.
pub fn decide(obs: &Observation<'_>) -> Decision {
    let route = obs.route;
    if route.metadata.deletion_timestamp.is_some() {
        return cleanup(obs);
    }
    let full = route.spec.management_policy == ManagementPolicy::Full;
    let mut d = Decision {
        add_finalizer: full && !has_finalizer(route),
        ..Default::default()
    };
    // Gates: no cloud call, and no queued change may go out either.
    if let Err(errors) = validation::validate(&route.spec) {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return d
            .status(both_false(Reason::InvalidSpec, message))
            .job(drop_job(obs.job))
            .next(Next::AwaitChange);
    }
    if paused(route) {
        return d
            .status(Report {
                synced: Some(CondValue::no(
                    Reason::Paused,
                    format!("{PAUSED_ANNOTATION} is \"true\"; no cloud calls"),
                )),
                ..Default::default()
            })
            .job(drop_job(obs.job))
            .next(Next::AwaitChange);
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
        return d.status(report).job(drop_job(obs.job)).next(Next::Resync);
    }
    if let Some(older) = obs.publish_conflict.filter(|_| full) {
        let message = format!(
            "{older} has an entry with the same gateway, destination and next hop but the other \
             publishVpc; publishing acts on both, so this route waits until they agree"
        );
        if ready_reason(route) != Some(Reason::PublishConflict) {
            d = d.event(true, Reason::PublishConflict, "Publish", message.clone());
        }
        return d
            .status(both_false(Reason::PublishConflict, message))
            .job(drop_job(obs.job))
            .next(Next::Resync);
    }
    if !full {
        return observe_only(obs, d.job(drop_job(obs.job)));
    }

    // The job's outcome first: a change on the wire finishes before anything else is decided.
    // A finished job is dropped only by the decision that records its outcome.
    let mut last_request_id = None;
    let mut conflict_adopt = false;
    let mut proven_ours = false;
    let mut spent = None;
    let mut accepted_create = false;
    match obs.job {
        Some(JobView::InFlight) => return d.job(JobOp::Keep).next(Next::Wake),
        Some(JobView::Accepted {
            accepted,
            confirmed: false,
            read_back,
            ..
        }) => {
            // Accepted, applied in the background: what the answer says is recorded now (a
            // create's state and time); the list confirms it later.
            let recorded = route
                .status
                .as_ref()
                .is_some_and(|s| s.create_time.is_some());
            if let (Some(entry), false) = (&accepted.entry, recorded) {
                let mut report = both_false(
                    Reason::Creating,
                    "created; waiting for the gateway to list the entry",
                );
                report.entry = Some(entry.clone());
                report.last_request_id = accepted.request_id.clone();
                d = d.status(report);
            }
            if let Some(e) = read_back {
                d.status.get_or_insert_with(Report::default).synced = Some(read_back_wait(e, ""));
            }
            return d.job(JobOp::Keep).next(Next::Wake);
        }
        Some(JobView::Accepted {
            accepted, create, ..
        }) => {
            last_request_id = accepted.request_id.clone();
            accepted_create = *create;
        }
        Some(JobView::Failed { error, create }) => {
            if *create && error.code() == "IdempotentParameterMismatch" {
                // The cloud knows the token: our earlier create made the entry.
                proven_ours = true;
                spent = Some(error.clone());
            } else if error.class() == ErrorClass::AlreadyExists {
                // Made meanwhile (by us before a restart, or by someone else): look again.
                conflict_adopt = true;
            } else if *create && error.policy().refuses_create {
                return d
                    .job(JobOp::Drop)
                    .fail(Failure::CreateRefused(error.clone()));
            } else {
                return d.job(JobOp::Drop).fail(Failure::Cloud {
                    op: "mutation",
                    error: error.clone(),
                });
            }
        }
        Some(JobView::Queued { .. }) | None => {}
    }
    // A queued change planned from an older generation must not go out while the new one is
    // being read: drop it now, the read re-plans.
    if matches!(obs.job, Some(JobView::Queued { generation, .. }) if *generation != route.metadata.generation)
    {
        d.job = Some(JobOp::Drop);
    }
    if obs.recently_verified && obs.job.is_none() {
        return d.next(Next::Resync);
    }
    // Queued at this generation: the list it was planned from still holds (our own changes
    // are applied to it) and the scheduler wakes the route when its turn comes. Reading again
    // at every wake-up meanwhile costs a list each, and the wait is long when the account's
    // API rate binds.
    if matches!(obs.cloud, CloudRead::NotRead)
        && matches!(obs.job, Some(JobView::Queued { generation, .. }) if *generation == route.metadata.generation)
    {
        return d.job(JobOp::Keep).next(Next::Wake);
    }
    let (facts, entries) = match obs.cloud {
        CloudRead::NotRead => {
            let fresh = if conflict_adopt {
                Freshness::Now
            } else if last_request_id.is_some() {
                Freshness::Cached
            } else if in_steady_state(route, obs.job) {
                Freshness::Recheck
            } else {
                Freshness::Recent
            };
            return d.next(Next::Read(fresh));
        }
        CloudRead::Pending => return d.next(Next::Wake),
        CloudRead::Failed(e) => {
            return d.fail(Failure::Cloud {
                op: "read",
                error: e.clone(),
            });
        }
        CloudRead::Ready { facts, entries } => (facts, entries),
    };
    if conflict_adopt || proven_ours {
        d.job = Some(JobOp::Drop);
    }
    d.credentials_worked = true;
    let Some(entry) = plan::find(&route.spec, entries) else {
        if let Some(e) = spent {
            // The token made an entry that is gone now: it is spent; a new one creates.
            return d.fail(Failure::CreateRefused(e));
        }
        if accepted_create {
            // Our create was accepted and the list still lacks its entry (gone since): a
            // replay of its token would only repeat the old answer, so a new token creates.
            let mut report = both_false(
                Reason::Creating,
                "the entry of the last create is gone; creating it again",
            );
            report.entry_absent = true;
            report.client_token = Some(None);
            return d.status(report).job(JobOp::Drop).next(Next::Wake);
        }
        return create(obs, facts, d);
    };
    // A create refused as existing made nothing: its token proves nothing.
    let owns = if conflict_adopt {
        is_recorded_entry(route, entry)
    } else {
        owns_listed(route, entry)
    };
    let token_only = route.status.as_ref().is_some_and(|s| {
        s.client_token.is_some() && s.create_time.is_none() && s.adopted != Some(true)
    });
    if owns && token_only && last_request_id.is_none() && !proven_ours {
        // Ours only if our create made it: the cloud answers a replay of it with the same
        // token, and refuses it (AlreadyExists) when someone else made the entry.
        return create(obs, facts, d);
    }
    if !owns && last_request_id.is_none() && !proven_ours {
        // An entry this object did not make: it adopts it only when it says so.
        return if consents_to_adopt(route) {
            adopt(obs, entry, facts, d)
        } else {
            refuse_existing(obs, d)
        };
    }
    let partner = plan::has_partner(&route.spec, entries);
    match plan::update(&route.spec, entry, facts, partner) {
        Step::Mutate(mutation) => d.job(JobOp::Submit(mutation)).next(Next::Wake),
        Step::InSync => in_sync(obs, entry, facts, d, last_request_id),
    }
}

/// Whether the cloud entry is this object's: it created it (or has a create under way) or
/// adopted it. The create's idempotency token makes a replay after a crash ours too.
pub fn owns_entry(route: &VpnPbrRoute) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.create_time.is_some() || s.client_token.is_some() || s.adopted == Some(true)
    })
}

/// Whether the listed `entry` is the one this object made or adopted: its creation time is the
/// one status recorded (an entry deleted and made again by someone else is another entry), or,
/// before anything was recorded, the object has a create under way (its token decides).
pub fn owns_listed(route: &VpnPbrRoute, entry: &Entry) -> bool {
    is_recorded_entry(route, entry)
        || route
            .status
            .as_ref()
            .is_some_and(|s| s.create_time.is_none() && s.client_token.is_some())
}

/// Whether status recorded exactly this entry (by its creation time).
fn is_recorded_entry(route: &VpnPbrRoute, entry: &Entry) -> bool {
    let listed = status::rfc3339_millis(entry.create_time);
    route
        .status
        .as_ref()
        .and_then(|s| s.create_time.as_deref())
        .is_some_and(|t| listed.as_deref() == Some(t))
}

/// Whether the object consents to adopt an entry it did not make.
pub fn consents_to_adopt(route: &VpnPbrRoute) -> bool {
    route
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Records the adoption; a difference from the spec is changed by the next reconcile, which
/// the status write triggers.
fn adopt(obs: &Observation<'_>, entry: &Entry, facts: &GatewayFacts, d: Decision) -> Decision {
    let drift = plan::drift(&obs.route.spec, entry, facts);
    let synced = if drift.fields.is_empty() {
        CondValue::yes(Reason::Synced, "")
    } else {
        CondValue::no(
            Reason::Adopted,
            format!("adopted; changing {}", drift.fields.join(", ")),
        )
    };
    d.status(Report {
        ready: Some(CondValue::yes(
            Reason::Available,
            "adopted the existing cloud entry",
        )),
        synced: Some(synced),
        entry: Some(entry.clone()),
        gateway_status: Some(facts.status.clone()),
        adopted: true,
        client_token: Some(None),
        ..Default::default()
    })
    .job(drop_job(obs.job))
    .event(
        false,
        Reason::Adopted,
        "Adopt",
        "adopted the existing cloud entry".to_owned(),
    )
    .next(Next::Resync)
}

/// An entry exists that this object did not make and may not take: touch nothing.
fn refuse_existing(obs: &Observation<'_>, mut d: Decision) -> Decision {
    let message = format!(
        "an entry with this source, destination and next hop already exists on the gateway and \
         was not created by this object; to manage it, set the annotation {ADOPT_ANNOTATION}: \
         \"true\" (or use `vpn-pbr-operator import`)"
    );
    if ready_reason(obs.route) != Some(Reason::AlreadyExists) {
        d = d.event(true, Reason::AlreadyExists, "Adopt", message.clone());
    }
    let mut report = both_false(Reason::AlreadyExists, message);
    report.client_token = Some(None);
    d.status(report).job(drop_job(obs.job)).next(Next::Resync)
}

fn create(obs: &Observation<'_>, facts: &GatewayFacts, mut d: Decision) -> Decision {
    if let Some(rule) = plan::gateway_refuses_dest(&obs.route.spec, facts) {
        return d
            .status(both_false(
                Reason::InvalidSpec,
                format!("spec.routeDest: {rule}"),
            ))
            .job(drop_job(obs.job))
            .next(Next::AwaitChange);
    }
    // The token goes to status before the call, so a retry or a restart repeats the same
    // create and the cloud answers it without making a second entry.
    // The token of a create already queued for this object counts too: the cached copy of the
    // object may predate the status write that recorded it, and a second token would make a
    // second create.
    let queued_token = match obs.job {
        Some(JobView::Queued {
            mutation: Mutation::Create { client_token, .. },
            ..
        }) => Some(client_token.clone()),
        _ => None,
    };
    let token = match obs
        .route
        .status
        .as_ref()
        .and_then(|s| s.client_token.clone())
        .or(queued_token)
    {
        Some(t) => t,
        None => {
            let t = obs.new_token.to_owned();
            let mut report = both_false(Reason::Creating, "creating the cloud entry");
            report.entry_absent = true;
            report.client_token = Some(Some(t.clone()));
            d.status = Some(report);
            t
        }
    };
    let mutation = plan::create(&obs.route.spec, facts, &token);
    d.job(JobOp::Submit(mutation)).next(Next::Wake)
}

fn in_sync(
    obs: &Observation<'_>,
    entry: &Entry,
    facts: &GatewayFacts,
    mut d: Decision,
    last_request_id: Option<String>,
) -> Decision {
    let route = obs.route;
    let st = route.status.as_ref();
    // The recorded outcome, or a queued change no longer wanted (a revert): drop it.
    if obs.job.is_some() {
        d.job = Some(JobOp::Drop);
    }
    let was_ready = status::ready(st).is_some_and(|c| c.status == ConditionStatus::True);
    d = d.status(Report {
        ready: Some(CondValue::yes(
            Reason::Available,
            "the cloud entry matches the spec",
        )),
        synced: Some(CondValue::yes(Reason::Synced, "")),
        entry: Some(entry.clone()),
        gateway_status: Some(facts.status.clone()),
        client_token: Some(None),
        last_request_id: last_request_id.clone(),
        ..Default::default()
    });
    if let Some(id) = &last_request_id {
        d = if was_ready {
            d.event(
                false,
                Reason::Updated,
                "Sync",
                format!("cloud entry updated (RequestId {id})"),
            )
        } else {
            d.event(
                false,
                Reason::Created,
                "Sync",
                format!("cloud entry created (RequestId {id})"),
            )
        };
    } else if st.is_some_and(|s| s.create_time.is_none() && s.client_token.is_some()) {
        // Our own create, found after a restart replayed (or outlived) it.
        d = d.event(
            false,
            Reason::Created,
            "Sync",
            "cloud entry created".to_owned(),
        );
    }
    d.verified = true;
    d.next(Next::Resync)
}

fn observe_only(obs: &Observation<'_>, d: Decision) -> Decision {
    let (facts, entries) = match obs.cloud {
        CloudRead::NotRead if obs.recently_verified => return d.next(Next::Resync),
        CloudRead::NotRead if in_steady_state(obs.route, obs.job) => {
            return d.next(Next::Read(Freshness::Recheck));
        }
        CloudRead::NotRead => return d.next(Next::Read(Freshness::Recent)),
        CloudRead::Pending => return d.next(Next::Wake),
        CloudRead::Failed(e) => {
            return d.fail(Failure::Cloud {
                op: "read",
                error: e.clone(),
            });
        }
        CloudRead::Ready { facts, entries } => (facts, entries),
    };
    let mut d = d;
    d.credentials_worked = true;
    let report = match plan::find(&obs.route.spec, entries) {
        None => Report {
            ready: Some(CondValue::no(
                Reason::NotFound,
                "no such entry on the gateway (ObserveOnly: not created)",
            )),
            synced: Some(CondValue::no(
                Reason::NotFound,
                "no such entry on the gateway",
            )),
            entry_absent: true,
            gateway_status: Some(facts.status.clone()),
            ..Default::default()
        },
        Some(e) => {
            let drift = plan::drift(&obs.route.spec, e, facts);
            let synced = if drift.fields.is_empty() {
                CondValue::yes(Reason::Synced, "the cloud entry matches the spec")
            } else {
                CondValue::no(
                    Reason::Drift,
                    format!(
                        "the cloud differs in {} (ObserveOnly: not changed)",
                        drift.fields.join(", ")
                    ),
                )
            };
            Report {
                ready: Some(CondValue::yes(Reason::Available, "the cloud entry exists")),
                synced: Some(synced),
                entry: Some(e.clone()),
                gateway_status: Some(facts.status.clone()),
                observed_only: true,
                ..Default::default()
            }
        }
    };
    d.status(report).next(Next::Resync)
}

/// A deleted object: remove its cloud entry (with `deletionPolicy: Delete`), then let it go.
fn cleanup(obs: &Observation<'_>) -> Decision {
    let route = obs.route;
    let d = Decision::default();
    if !has_finalizer(route) {
        return d.next(Next::AwaitChange);
    }
    let release = |d: Decision| {
        let mut d = d;
        d.remove_finalizer = true;
        d.next(Next::AwaitChange)
    };
    // A refused duplicate never owned the entry: its older twin keeps it.
    let keep = route.spec.deletion_policy == DeletionPolicy::Orphan
        || route.spec.management_policy == ManagementPolicy::ObserveOnly
        || obs.older_claim.is_some();
    if keep {
        return release(d.job(drop_job(obs.job)));
    }
    if paused(route) {
        // Paused means no cloud call, deletion included; a queued change is pointless now.
        return d.job(drop_job(obs.job)).next(Next::AwaitChange);
    }
    let owns_nothing = route
        .status
        .as_ref()
        .is_none_or(|s| s.create_time.is_none() && s.client_token.is_none());
    // Only a create token, no entry recorded: ours only if that create made the entry.
    let token_only = route.status.as_ref().is_some_and(|s| {
        s.client_token.is_some() && s.create_time.is_none() && s.adopted != Some(true)
    });
    let mut proven_ours = false;
    let mut d = d;
    match obs.job {
        None if owns_nothing => {
            // Never created nor adopted, no create under way: nothing in the cloud is ours,
            // so the object goes without a call (even when its credentials never worked).
            return release(d);
        }
        None => {}
        Some(JobView::Queued { .. }) => {
            // A queued create or update is pointless now; the executor stops if it went out.
            d.job = Some(JobOp::Drop);
            if owns_nothing {
                return release(d);
            }
        }
        // On the wire: it finishes, but is not sent again (after a busy answer).
        Some(JobView::InFlight) => return d.job(JobOp::Drop).next(Next::Wake),
        Some(JobView::Accepted {
            confirmed: false,
            read_back,
            ..
        }) => {
            if let Some(e) = read_back {
                d = d.status(Report {
                    synced: Some(read_back_wait(e, "deleting: ")),
                    ..Default::default()
                });
            }
            return d.job(JobOp::Keep).next(Next::Wake);
        }
        // The outcome of a replayed create (the proof of ownership) stays until the read it
        // is combined with: a decision before the read must not lose it.
        Some(JobView::Accepted { create, .. }) => {
            proven_ours = *create;
            if !*create {
                d.job = Some(JobOp::Drop);
            }
        }
        Some(JobView::Failed { error, create }) if *create => {
            if error.code() == "IdempotentParameterMismatch" {
                proven_ours = true;
            } else if error.class() == ErrorClass::AlreadyExists {
                d.job = Some(JobOp::Drop);
                // The replay of our token was refused: the entry is someone else's.
                return release(d.event(
                    false,
                    Reason::Deleted,
                    "Delete",
                    "the cloud entry was not made by this object; left in place".to_owned(),
                ));
            } else if error.is_gateway_gone() {
                d.job = Some(JobOp::Drop);
                return release(d.event(
                    false,
                    Reason::Deleted,
                    "Delete",
                    format!("gateway gone ({}): nothing left to delete", error.code()),
                ));
            } else {
                // The proof could not be had now: retried after the backoff.
                return d.job(JobOp::Drop).fail(Failure::Cloud {
                    op: "delete",
                    error: error.clone(),
                });
            }
        }
        Some(JobView::Failed { error, .. }) => {
            d.job = Some(JobOp::Drop);
            if error.is_gateway_gone() {
                return release(d.event(
                    false,
                    Reason::Deleted,
                    "Delete",
                    format!("gateway gone ({}): nothing left to delete", error.code()),
                ));
            }
            if !error.is_gone() {
                return d.fail(Failure::Cloud {
                    op: "delete",
                    error: error.clone(),
                });
            }
        }
    }
    let (facts, entries) = match obs.cloud {
        CloudRead::NotRead => return d.next(Next::Read(Freshness::Recent)),
        CloudRead::Pending => return d.next(Next::Wake),
        CloudRead::Failed(e) if e.is_gateway_gone() => {
            return release(d.event(
                false,
                Reason::Deleted,
                "Delete",
                format!("gateway gone ({}): nothing left to delete", e.code()),
            ));
        }
        CloudRead::Failed(e) => {
            return d.fail(Failure::Cloud {
                op: "read",
                error: e.clone(),
            });
        }
        CloudRead::Ready { facts, entries } => (facts, entries),
    };
    if proven_ours || matches!(obs.job, Some(JobView::Failed { .. })) {
        d.job = Some(JobOp::Drop);
    }
    match plan::find(&route.spec, entries) {
        None => release(d.event(
            false,
            Reason::Deleted,
            "Delete",
            "cloud entry deleted".to_owned(),
        )),
        Some(entry) if !token_only && !proven_ours && !is_recorded_entry(route, entry) => {
            // Not the entry this object made or adopted (it was deleted and made again by
            // someone else): it stays.
            release(d.event(
                false,
                Reason::Deleted,
                "Delete",
                "the listed entry is not the one this object made; left in place".to_owned(),
            ))
        }
        Some(entry) if token_only && !proven_ours => {
            // Replaying the create with our token proves it: the cloud repeats its answer if
            // our create made the entry, and refuses it as existing if someone else did. The
            // entry exists, so the replay can create nothing.
            let token = route
                .status
                .as_ref()
                .and_then(|s| s.client_token.clone())
                .unwrap_or_default();
            // The listed attributes make a valid request whatever the spec says now.
            d.job(JobOp::Submit(plan::create_like(
                &route.spec,
                entry,
                facts,
                &token,
            )))
            .next(Next::Wake)
        }
        Some(entry) => d
            .job(JobOp::Submit(plan::delete(entry, facts)))
            .next(Next::Wake),
    }
}

/// Synced=False while an accepted change waits for a list that can confirm it: the list read
/// failed (`ListInconsistent`, a 5xx, ...), and absence is never concluded from a failed read.
fn read_back_wait(e: &CloudError, prefix: &str) -> CondValue {
    CondValue::no(
        Reason::Cloud(e.code().to_owned()),
        format!(
            "{prefix}the change was accepted; waiting for a whole entry list to confirm it: {}",
            e.message()
        ),
    )
}

/// The status and the event of a failed reconcile of `route` (the newest copy of it).
/// `credentials_fallback` says why a cleanup ran with other credentials than the route's.
pub fn failure(
    route: &VpnPbrRoute,
    err: &Error,
    credentials_fallback: Option<&str>,
) -> (Report, Option<EventNote>) {
    let deleting = route.metadata.deletion_timestamp.is_some();
    let mut message = err.message();
    // A deletion that only someone else can unblock says so, in words.
    let blocked = deleting && err.class() == ErrorClass::NeedsOutsideAction;
    let reason = if blocked {
        Reason::CleanupBlocked
    } else {
        err.reason()
    };
    if blocked {
        let via = credentials_fallback
            .map(|why| format!(" ({why}; the operator's credentials were used)"))
            .unwrap_or_default();
        message = format!(
            "cannot delete the cloud entry: {}: {message}{via}; the finalizer stays until this \
             is fixed, or set deletionPolicy: Orphan to keep the entry",
            err.reason()
        );
    } else if deleting {
        message = format!("deleting: {message}");
    }
    let request_id = match err {
        Error::Cloud { source, .. } | Error::CreateRefused(source) => {
            source.request_id().map(str::to_owned)
        }
        _ => None,
    };
    // A read that failed for a moment (throttled, 5xx, timeout) says nothing about the entry:
    // a route in sync at this generation stays Ready and only Synced says the cloud could not
    // be read, so a restart or a slow region does not flip every route of a gateway.
    let keeps_ready = !deleting
        && matches!(err, Error::Cloud { op: "read", source }
            if matches!(source.class(), ErrorClass::Transient | ErrorClass::Throttled))
        && status::ready(route.status.as_ref()).is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == route.metadata.generation
        });
    let report = Report {
        ready: (!keeps_ready).then(|| CondValue::no(reason.clone(), message.clone())),
        synced: Some(CondValue::no(reason.clone(), message.clone())),
        last_request_id: request_id,
        client_token: matches!(err, Error::CreateRefused(_)).then_some(None),
        ..Default::default()
    };
    let last_reason = if keeps_ready {
        status::synced(route.status.as_ref()).map(|c| Reason::parse(&c.reason))
    } else {
        ready_reason(route)
    };
    let event = (last_reason.as_ref() != Some(&reason)).then_some(EventNote {
        warning: true,
        reason,
        action: if deleting { "Delete" } else { "Sync" },
        note: message,
    });
    (report, event)
}

#[cfg(test)]
#[path = "decide/tests.rs"]
mod tests;
