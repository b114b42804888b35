//! The decision core: what one reconcile of one route does, as a pure function of what it
//! observed. No I/O, no clock, no locks, no randomness: `reconcile.rs` observes, calls
//! [`decide`], acts on the [`Decision`] and reports; failures become status through
//! [`failure`]. Every rule about the route lifecycle lives here (with `plan.rs` for the next
//! change of an existing entry) and is proven by the table tests below and by the
//! deterministic simulation in `tests/simulation.rs`.

use std::sync::Arc;

use kube::ResourceExt;

use super::error::{Error, Unproven};
use super::event::EventNote;
use super::job::{JobView, Stall};
use super::model::{Entry, Freshness, GatewayFacts, GatewayStatus, Mutation};
use super::plan::{self, Step};
use super::reason::Reason;
use super::status::{self, CondValue, Report};
use crate::api::v1alpha1::{
    ADOPT_ANNOTATION, ConditionStatus, DeletionPolicy, FINALIZER, ManagementPolicy,
    PAUSED_ANNOTATION, RESYNC_ANNOTATION, VpnPbrRoute, validation,
};
use alicloud_vpc_client::{CloudError, ErrorClass, Pace, known_policy};

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
    /// When the scheduler or the gateway read wakes it.
    Wake,
    /// After the per-object backoff of the failure.
    Backoff,
}

/// A failure that goes through the per-object backoff and into status.
#[derive(Clone, Debug)]
pub(crate) enum Failure {
    /// A cloud call (a read, or the route's job) failed.
    Cloud {
        op: &'static str,
        error: Arc<CloudError>,
    },
    /// The create was refused for what the spec names, or its token is spent (it made an
    /// entry that is gone): the token goes.
    CreateRefused(Arc<CloudError>),
    /// A cleanup's answers come from another account than the entry's: they prove nothing.
    AccountUnproven(Unproven),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::Cloud { op, error } => Error::Cloud { op, source: error },
            Failure::CreateRefused(e) => Error::CreateRefused(e),
            Failure::AccountUnproven(u) => Error::AccountUnproven(u),
        }
    }
}

/// What one reconcile does, in the order the executor does it: finalizer, status, job,
/// events, finalizer removal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decision {
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
fn both_false(reason: Reason, message: impl Into<String>) -> Report {
    let message = message.into();
    Report {
        ready: Some(CondValue::no(reason.clone(), message.clone())),
        synced: Some(CondValue::no(reason, message)),
        ..Default::default()
    }
}

/// A create's answer that came back after a gate closed (the spec turned invalid, the route
/// was paused, a publish conflict): recorded all the same, so the entry it made is proven by the record, not by a
/// token the cloud forgets in time.
fn with_answer(obs: &Observation<'_>, mut report: Report) -> Report {
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

/// The decision for one reconcile.
pub(crate) fn decide(obs: &Observation<'_>) -> Decision {
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
            .status(with_answer(obs, both_false(Reason::InvalidSpec, message)))
            .job(drop_job(obs.job))
            .next(Next::AwaitChange);
    }
    if paused(route) {
        return d
            .status(with_answer(
                obs,
                Report {
                    synced: Some(CondValue::no(
                        Reason::Paused,
                        format!("{PAUSED_ANNOTATION} is \"true\"; no cloud calls"),
                    )),
                    ..Default::default()
                },
            ))
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
        return publish_conflict(obs, message, d);
    }
    if !full {
        return observe_only(obs, d);
    }

    // The job's outcome first: a change on the wire finishes before anything else is decided.
    // A finished job is dropped only by the decision that records its outcome.
    let mut last_request_id = None;
    let mut conflict_adopt = false;
    let mut spent = None;
    let mut accepted_create = false;
    // The answer of a create (or of the replay of its token) names the entry it made.
    let mut answer = None;
    match obs.job {
        Some(JobView::InFlight) => return d.job(JobOp::Keep).next(Next::Wake),
        Some(JobView::Accepted {
            accepted,
            confirmed: false,
            stalled,
            ..
        }) => {
            // Accepted, applied in the background: what the answer says is recorded now (a
            // create's state and time, replacing the record of an entry made before); the list
            // confirms it later.
            let recorded = |e: &Entry| {
                route.status.as_ref().and_then(|s| s.create_time.as_deref())
                    == status::rfc3339_millis(e.create_time).as_deref()
            };
            if let Some(entry) = accepted.entry.as_ref().filter(|e| !recorded(e)) {
                let mut report = both_false(
                    Reason::Creating,
                    "created; waiting for the gateway to list the entry",
                );
                report.entry = Some(entry.clone());
                report.last_request_id = accepted.request_id.clone();
                d = d.status(report);
            }
            return keep_waiting(d, stalled.as_ref(), "");
        }
        Some(JobView::Accepted {
            accepted, create, ..
        }) => {
            last_request_id = accepted.request_id.clone();
            accepted_create = *create;
            if *create {
                answer = accepted.entry.as_ref();
            }
        }
        Some(JobView::Failed { error, create }) => {
            if *create && error.code() == "IdempotentParameterMismatch" {
                // The cloud knows the token with other parameters: it made some entry, but
                // the refusal does not say which, so it proves nothing about the listed one.
                spent = Some(error.clone());
            } else if error.class() == ErrorClass::AlreadyExists {
                // Made meanwhile (by us before a restart, or by someone else): look again.
                conflict_adopt = true;
            } else if *create && error.policy().refuses_create {
                if error.policy().pace == Pace::Busy {
                    // Refused for its pair's other entry (mid-flip), which changes by itself:
                    // the same create may pass later, and so may a request with its token sent
                    // by a process that died. The token stays (see `create`).
                    return d.job(JobOp::Drop).fail(Failure::Cloud {
                        op: "create",
                        error: error.clone(),
                    });
                }
                // Refused for what the spec names (a next hop that does not exist, ...): the
                // token goes, so the spec's identity can be corrected.
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
        && let Some(JobView::Queued {
            generation,
            stalled,
            ..
        }) = obs.job
        && *generation == route.metadata.generation
    {
        return keep_waiting(d, stalled.as_ref(), "");
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
    if conflict_adopt || spent.is_some() {
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
            // What status recorded of the old entry stays until the new answer replaces it.
            return create(obs, facts, d, Token::Fresh);
        }
        return create(obs, facts, d, Token::Kept);
    };
    let recorded = is_recorded_entry(route, entry);
    // The entry status recorded, or the one our create's answer names. A create refused as
    // existing, or a token known with other parameters, proves nothing.
    let owns = recorded || (accepted_create && made_by(answer, entry));
    if !owns && has_token(route) && !conflict_adopt && spent.is_none() && !accepted_create {
        return replay(obs, Some(entry), facts, d);
    }
    if !owns {
        // An entry this object did not make (or a spent token's answer names another one): it
        // adopts it only when it says so.
        return if consents_to_adopt(route) {
            adopt(obs, entry, facts, d)
        } else {
            refuse_existing(obs, conflict_adopt, d)
        };
    }
    let partner = plan::has_partner(&route.spec, entries);
    match plan::update(&route.spec, entry, facts, partner) {
        Step::Mutate(Mutation::Publish { .. })
            if let Some(other) = publish_touches(route, entries)
                .find(|e| !held_by_ours(route, obs.publish_sharers, e)) =>
        {
            let message = format!(
                "publishing acts on every entry with this destination and next hop, and would \
                 change the entry {} -> {} that no VpnPbrRoute of this operator holds; this \
                 route waits until it agrees or is gone",
                other.route_source, other.route_dest
            );
            publish_conflict(obs, message, d)
        }
        Step::Mutate(mutation) => {
            if !recorded {
                // Proven by the answer only: recorded first, so the change rests on the record.
                d = d.status(Report {
                    entry: Some(entry.clone()),
                    client_token: Some(None),
                    ..Default::default()
                });
            }
            record_account(obs, d)
                .job(JobOp::Submit(mutation))
                .next(Next::Wake)
        }
        Step::InSync => in_sync(obs, entry, facts, d, last_request_id),
    }
}

/// The account to record for the entry this object holds (or is about to create), now that a
/// list with the reconcile's credentials showed it (or the create goes out with them): theirs,
/// when status does not have it yet. An entry is visible only to its own account, so the list
/// proves it (entries made before accounts were recorded get theirs here too).
fn account_to_record(obs: &Observation<'_>) -> Option<String> {
    let known = obs.account.known()?;
    let recorded = obs
        .route
        .status
        .as_ref()
        .and_then(|s| s.account_id.as_deref());
    (recorded != Some(known)).then(|| known.to_owned())
}

/// Adds the account to record (see [`account_to_record`]) to the decision's status report.
fn record_account(obs: &Observation<'_>, mut d: Decision) -> Decision {
    if let Some(account) = account_to_record(obs) {
        d.status.get_or_insert_with(Report::default).account_id = Some(account);
    }
    d
}

/// Replays the create of the token status holds, to learn whether it made the listed entry:
/// the cloud repeats its answer (naming the entry it made) if the token is known, and refuses
/// the request as existing if not. The entry exists, so the replay can create nothing.
fn replay(
    obs: &Observation<'_>,
    entry: Option<&Entry>,
    facts: &GatewayFacts,
    d: Decision,
) -> Decision {
    let token = obs
        .route
        .status
        .as_ref()
        .and_then(|s| s.client_token.as_deref())
        .unwrap_or_default();
    d.job(JobOp::Submit(replay_of(obs.route, entry, facts, token)))
        .next(Next::Wake)
}

/// The create `token` was sent with: the cloud answers a replay only to the same parameters.
/// The token names them (`plan::create_token`); for one that does not, the listed entry's
/// attributes, else the spec, stand for them.
fn replay_of(
    route: &VpnPbrRoute,
    listed: Option<&Entry>,
    facts: &GatewayFacts,
    token: &str,
) -> Mutation {
    plan::create_of_token(&route.spec, token).unwrap_or_else(|| match listed {
        Some(e) => plan::create_like(&route.spec, e, facts, token),
        None => plan::create(&route.spec, facts, token),
    })
}

/// Whether the cloud refused the create of `token` for its pair's other entry (the Ready reason
/// is such a code: the refusals that keep the token) and the spec now asks for another create
/// (corrected): that create needs a token of its own.
fn refused_for_another_create(route: &VpnPbrRoute, facts: &GatewayFacts, token: &str) -> bool {
    let refused = status::ready(route.status.as_ref()).is_some_and(|c| {
        c.status == ConditionStatus::False
            && known_policy(&c.reason).is_some_and(|p| p.refuses_create && p.pace == Pace::Busy)
    });
    refused
        && plan::create_of_token(&route.spec, token)
            .is_some_and(|sent| sent != plan::create(&route.spec, facts, token))
}

/// Whether status holds the token of a create that may have been sent (it goes to status
/// before the call): the create may have made an entry, whatever status recorded of it.
fn holds_create_token(route: &VpnPbrRoute) -> bool {
    route
        .status
        .as_ref()
        .is_some_and(|s| s.client_token.is_some())
}

/// Whether a create's answer names the listed entry (its creation time): a replay of a token
/// whose entry was deleted and made again by someone else answers with the old one.
fn made_by(answer: Option<&Entry>, listed: &Entry) -> bool {
    answer.is_some_and(|a| a.create_time == listed.create_time)
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
fn publish_touches<'e>(
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
fn held_by_ours(route: &VpnPbrRoute, sharers: &[Arc<VpnPbrRoute>], entry: &Entry) -> bool {
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
fn publish_conflict(obs: &Observation<'_>, message: String, mut d: Decision) -> Decision {
    if ready_reason(obs.route) != Some(Reason::PublishConflict) {
        d = d.event(true, Reason::PublishConflict, "Publish", message.clone());
    }
    d.status(with_answer(
        obs,
        both_false(Reason::PublishConflict, message),
    ))
    .job(drop_job(obs.job))
    .next(Next::Resync)
}

/// Whether the cloud entry is this object's: it created it (or has a create under way) or
/// adopted it. The create's idempotency token makes a replay after a crash ours too.
pub(crate) fn owns_entry(route: &VpnPbrRoute) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.create_time.is_some() || s.client_token.is_some() || s.adopted == Some(true)
    })
}

/// Whether status holds the token of a create (written before the call, cleared once the entry
/// is recorded in sync).
fn has_token(route: &VpnPbrRoute) -> bool {
    route
        .status
        .as_ref()
        .is_some_and(|s| s.client_token.is_some())
}

/// Whether status recorded exactly this entry (by its creation time).
pub(crate) fn is_recorded_entry(route: &VpnPbrRoute, entry: &Entry) -> bool {
    let listed = status::rfc3339_millis(entry.create_time);
    route
        .status
        .as_ref()
        .and_then(|s| s.create_time.as_deref())
        .is_some_and(|t| listed.as_deref() == Some(t))
}

/// Whether the object consents to adopt an entry it did not make.
pub(crate) fn consents_to_adopt(route: &VpnPbrRoute) -> bool {
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
        account_id: account_to_record(obs),
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

/// An entry exists that this object did not make and may not take: touch nothing. When its
/// create was refused as existing, the message says what that leaves open: a create of this
/// object whose answer was lost may have made the entry, long enough ago that the cloud
/// forgot its token, and no record proves it either way.
fn refuse_existing(obs: &Observation<'_>, create_refused: bool, mut d: Decision) -> Decision {
    let adopt = format!(
        "to manage it, set the annotation {ADOPT_ANNOTATION}: \"true\" (or use \
         `vpn-pbr-operator import`)"
    );
    let message = if !create_refused
        && let Some(c) = status::ready(obs.route.status.as_ref())
        && c.reason == Reason::AlreadyExists.as_str()
    {
        // Already refused: what was said then (why a create was refused) still holds.
        c.message.clone()
    } else if create_refused {
        format!(
            "an entry with this source, destination and next hop already exists on the gateway \
             and this object cannot prove it made it: {TOKEN_REFUSED}; if it is this route's, \
             {adopt}"
        )
    } else {
        format!(
            "an entry with this source, destination and next hop already exists on the gateway \
             and was not created by this object; {adopt}"
        )
    };
    if ready_reason(obs.route) != Some(Reason::AlreadyExists) {
        d = d.event(true, Reason::AlreadyExists, "Adopt", message.clone());
    }
    let mut report = both_false(Reason::AlreadyExists, message);
    report.client_token = Some(None);
    d.status(report).job(drop_job(obs.job)).next(Next::Resync)
}

/// Why a create refused as existing proves nothing either way.
const TOKEN_REFUSED: &str = "the cloud refused its create token as existing (someone else made \
     the entry, or an earlier create of this object made it, its answer was lost before it was \
     recorded, and the cloud no longer remembers the token)";

/// Which token a create carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    /// The one status (or a queued create) holds, else a new one.
    Kept,
    /// A new one: the held one is spent (its create was accepted, its entry is gone).
    Fresh,
}

fn create(obs: &Observation<'_>, facts: &GatewayFacts, mut d: Decision, token: Token) -> Decision {
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
    let held = obs
        .route
        .status
        .as_ref()
        .and_then(|s| s.client_token.clone())
        .or(queued_token)
        .filter(|_| token == Token::Kept)
        .filter(|t| !refused_for_another_create(obs.route, facts, t));
    let mutation = match held {
        // The create that token was made for (it may have been sent): the spec changes after.
        Some(t) => {
            // A token status has, without the account (written while it was not known yet).
            if obs
                .route
                .status
                .as_ref()
                .is_some_and(|s| s.client_token.is_some())
            {
                d = record_account(obs, d);
            }
            replay_of(obs.route, None, facts, &t)
        }
        None => {
            let planned = plan::create(&obs.route.spec, facts, "");
            let t = plan::create_token(&planned, obs.new_token);
            let mut report = both_false(Reason::Creating, "creating the cloud entry");
            // The entry this object holds (if any) stays recorded until the answer replaces
            // it: a list that missed it must not cost the object its entry.
            report.entry_unlisted = true;
            report.client_token = Some(Some(t.clone()));
            // The create goes out with these credentials: what it makes is in their account.
            report.account_id = obs.account.known().map(str::to_owned);
            d.status = Some(report);
            plan::create(&obs.route.spec, facts, &t)
        }
    };
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
        account_id: account_to_record(obs),
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

fn observe_only(obs: &Observation<'_>, mut d: Decision) -> Decision {
    // What was sent before the route turned to observing: a create on the wire finishes and
    // its answer is recorded (it proves the entry without the token, which the cloud forgets
    // in time); nothing else goes out.
    let mut answer = None;
    d.job = Some(drop_job(obs.job));
    match obs.job {
        None => {}
        Some(JobView::InFlight) => return d.job(JobOp::Keep).next(Next::Wake),
        Some(JobView::Accepted {
            confirmed: false,
            create: true,
            stalled,
            ..
        }) => return keep_waiting(d, stalled.as_ref(), ""),
        Some(JobView::Accepted {
            accepted,
            create: true,
            ..
        }) => {
            answer = accepted.entry.as_ref();
            d.job = Some(JobOp::Keep);
        }
        Some(_) => {}
    }
    let (facts, entries) = match obs.cloud {
        CloudRead::NotRead if answer.is_some() => return d.next(Next::Read(Freshness::Cached)),
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
    if answer.is_some() {
        d.job = Some(JobOp::Drop);
    }
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
            // What status recorded of an entry the object made stays: one list proves nothing.
            entry_unlisted: true,
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
            let made = made_by(answer, e);
            Report {
                ready: Some(CondValue::yes(Reason::Available, "the cloud entry exists")),
                synced: Some(synced),
                entry: Some(e.clone()),
                gateway_status: Some(facts.status.clone()),
                observed_only: !made,
                client_token: made.then_some(None),
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
    // What the outcome of a replayed create says (see `decide`): kept until the read it is
    // combined with, so a decision before the read does not lose it.
    let mut replayed = false;
    let mut answer = None;
    let mut replay_refusal = None;
    // A change refused for the gateway's status: its status read decides (see `refused_for_status`).
    let mut status_refusal = None;
    let mut d = d;
    match obs.job {
        None if owns_nothing => {
            // Never created nor adopted, no create under way: nothing in the cloud is ours,
            // so the object goes without a call (even when its credentials never worked).
            return release(d);
        }
        None => {}
        // The deletion waits for its turn (dropped and planned again after a read, it would go
        // to the back of the gateway's queue at every reconcile), or an accepted change for the
        // gateway to apply it.
        Some(
            JobView::Queued {
                mutation: Mutation::Delete { .. },
                stalled,
                ..
            }
            | JobView::Accepted {
                confirmed: false,
                stalled,
                ..
            },
        ) => return keep_waiting(d, stalled.as_ref(), "deleting: "),
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
            accepted, create, ..
        }) => {
            if *create {
                replayed = true;
                answer = accepted.entry.as_ref();
            } else {
                d.job = Some(JobOp::Drop);
            }
        }
        Some(JobView::Failed { error, create }) if *create => {
            if refused_for_status(error) {
                status_refusal = Some(error);
            } else if error.is_gateway_gone() {
                return gateway_gone(obs, d, error);
            } else if error.code() == "IdempotentParameterMismatch"
                || error.class() == ErrorClass::AlreadyExists
                || error.policy().refuses_create
            {
                // The replay was refused: the token proves no entry (only a recorded one is
                // still the object's). A create refused on its merits (e.g.
                // `VpnRouteEntry.BackupRoute`) made nothing: had the token made an entry, the
                // cloud would have repeated that answer.
                replayed = true;
                replay_refusal = Some(error);
            } else {
                // The proof could not be had now: retried after the backoff.
                return d.job(JobOp::Drop).fail(Failure::Cloud {
                    op: "delete",
                    error: error.clone(),
                });
            }
        }
        Some(JobView::Failed { error, .. }) if refused_for_status(error) => {
            status_refusal = Some(error);
        }
        Some(JobView::Failed { error, .. }) => {
            if error.is_gateway_gone() {
                return gateway_gone(obs, d, error);
            }
            d.job = Some(JobOp::Drop);
            if !error.is_gone() {
                return d.fail(Failure::Cloud {
                    op: "delete",
                    error: error.clone(),
                });
            }
        }
    }
    // Credentials of another account than the entry's can neither delete it nor tell
    // anything about it: nothing is sent with them.
    let recorded = recorded_account(route);
    if let (Some(entry), Some(used)) = (recorded, obs.account.known())
        && entry != used
    {
        return d.fail(Failure::AccountUnproven(Unproven {
            entry_account: Some(entry.to_owned()),
            used_account: Some(used.to_owned()),
            answer: None,
        }));
    }
    let (facts, entries) = match obs.cloud {
        // The gateway's own word on its status: not the cache's, nor the scheduler's guess.
        CloudRead::NotRead if status_refusal.is_some() => {
            return d.next(Next::Read(Freshness::Now));
        }
        CloudRead::NotRead => return d.next(Next::Read(Freshness::Recent)),
        CloudRead::Pending => return d.next(Next::Wake),
        CloudRead::Failed(e) if e.is_gateway_gone() && !refused_for_status(e) => {
            return gateway_gone(obs, d, e);
        }
        CloudRead::Failed(e) => {
            return d.fail(Failure::Cloud {
                op: "read",
                error: e.clone(),
            });
        }
        CloudRead::Ready { facts, entries } => (facts, entries),
    };
    if replayed || matches!(obs.job, Some(JobView::Failed { .. })) {
        d.job = Some(JobOp::Drop);
    }
    if let Some(error) = status_refusal {
        if facts.status != GatewayStatus::Deleting {
            // The gateway is not being deleted: the entry may well be there still.
            return d.fail(Failure::Cloud {
                op: "delete",
                error: error.clone(),
            });
        }
        return release(d.event(
            false,
            Reason::Deleted,
            "Delete",
            format!(
                "gateway being deleted ({}): nothing left to delete",
                error.code()
            ),
        ));
    }
    let Some(entry) = plan::find(&route.spec, entries) else {
        if obs.job.is_none() && holds_create_token(route) {
            // A create may have made an entry no list shows yet (its answer recorded but not
            // confirmed, or lost, or never had before a restart; the gateway may still be
            // applying it): a list without it proves nothing. The replay repeats the answer if
            // the entry exists (listed yet or not), or makes it now; either way the scheduler
            // waits for the list to show it and it is deleted next. Never a create that landed
            // left behind.
            return replay(obs, None, facts, d);
        }
        return release(d.event(
            false,
            Reason::Deleted,
            "Delete",
            "cloud entry deleted".to_owned(),
        ));
    };
    if is_recorded_entry(route, entry) || made_by(answer, entry) {
        // The list shows the entry to these credentials: their account is recorded (an entry
        // made before accounts were), so a later answer can be judged by it.
        return record_account(obs, d)
            .job(JobOp::Submit(plan::delete(entry, facts)))
            .next(Next::Wake);
    }
    match route
        .status
        .as_ref()
        .and_then(|s| s.client_token.as_deref())
    {
        // A create token, and not the entry status recorded: ours only if that create made it.
        Some(_) if !replayed => replay(obs, Some(entry), facts, d),
        // Not the entry this object made or adopted (it was deleted and made again by someone
        // else, or the replay did not prove it): it stays.
        _ => {
            let why = match replay_refusal {
                Some(e) if e.class() == ErrorClass::AlreadyExists => {
                    format!("this object cannot prove it made the listed entry: {TOKEN_REFUSED}")
                }
                Some(e) => format!(
                    "the listed entry is not the one this object made (the replay of its create \
                     token was refused: {})",
                    e.code()
                ),
                None => "the listed entry is not the one this object made".to_owned(),
            };
            release(d.event(
                false,
                Reason::Deleted,
                "Delete",
                format!("{why}; left in place"),
            ))
        }
    }
}

/// Whether the gateway refused a change for its status (`IncorrectStatus.VpnGateway`): a
/// gateway being deleted answers so, but the code alone does not say which status it has, so
/// only a status read that says `deleting` proves nothing is left to delete.
pub(crate) fn refused_for_status(e: &CloudError) -> bool {
    e.code() == "IncorrectStatus.VpnGateway"
}

fn recorded_account(route: &VpnPbrRoute) -> Option<&str> {
    route.status.as_ref().and_then(|s| s.account_id.as_deref())
}

/// A cleanup got a gateway-gone answer (`error`, from its read or its job): the entry went
/// with its gateway only if the answer came from the entry's account. That is proven when
/// the credentials act for the account status recorded, or, with none recorded, when they are
/// the route's own; credentials of another (or an unknown) account prove nothing, and the
/// cleanup is blocked until someone acts.
fn gateway_gone(obs: &Observation<'_>, mut d: Decision, error: &Arc<CloudError>) -> Decision {
    let recorded = recorded_account(obs.route);
    let proves = match (recorded, obs.account) {
        // The first decision: the credentials (and their account) are not known yet. A
        // failed job stays for the decision after the read.
        (_, AccountRead::NotRead | AccountRead::Pending) => {
            return d.job(JobOp::Keep).next(Next::Read(Freshness::Recent));
        }
        (Some(entry), AccountRead::Known(used)) => entry == used,
        (None, _) => obs.credentials_fallback.is_none(),
        (Some(_), AccountRead::Failed(e)) => {
            // Whose answer it is cannot be told now: asked again after the backoff.
            return d.job(drop_job(obs.job)).fail(Failure::Cloud {
                op: "caller identity",
                error: e.clone(),
            });
        }
    };
    d.job = Some(drop_job(obs.job));
    if proves {
        d.remove_finalizer = true;
        return d
            .event(
                false,
                Reason::Deleted,
                "Delete",
                format!("gateway gone ({}): nothing left to delete", error.code()),
            )
            .next(Next::AwaitChange);
    }
    d.fail(Failure::AccountUnproven(Unproven {
        entry_account: recorded.map(str::to_owned),
        used_account: obs.account.known().map(str::to_owned),
        answer: Some(error.code().to_owned()),
    }))
}

/// A change that waits keeps its job (its place in the queue); when the reads it waits on keep
/// failing, Synced says so.
fn keep_waiting(mut d: Decision, stalled: Option<&Stall>, prefix: &str) -> Decision {
    if let Some(stall) = stalled {
        d.status.get_or_insert_with(Report::default).synced = Some(stall_wait(stall, prefix));
    }
    d.job(JobOp::Keep).next(Next::Wake)
}

/// Synced=False while a change waits on reads of its gateway that keep failing: its turn or
/// its confirmation waits on the gateway's status, or an applied change on a list that can
/// confirm it (`ListInconsistent`, a 5xx, ...). The change keeps its place, and nothing (absence
/// least of all) is concluded from a failed read.
fn stall_wait(stall: &Stall, prefix: &str) -> CondValue {
    let (e, what) = match stall {
        Stall::Queued(e) => (
            e,
            "waiting for its turn; the gateway's status cannot be read",
        ),
        Stall::Status(e) => (
            e,
            "the change was accepted; waiting for the gateway to show it applied, and its \
             status cannot be read",
        ),
        Stall::List(e) => (
            e,
            "the change was accepted; waiting for a whole entry list to confirm it",
        ),
    };
    CondValue::no(
        Reason::Cloud(e.code().to_owned()),
        format!("{prefix}{what}: {}", e.message()),
    )
}

/// The status and the event of a failed reconcile of `route` (the newest copy of it).
/// `credentials_fallback` says why a cleanup ran with other credentials than the route's.
pub(crate) fn failure(
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
