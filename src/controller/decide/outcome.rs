//! The outcome of the route's job, first: a change on the wire finishes before anything else
//! is decided, and a finished job is dropped only by the decision that records its outcome.
//! Also how a change that waits (its turn, or its confirmation) says why in status.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::{Decision, Failure, JobOp, Next, Observation, both_false};
use crate::controller::job::{JobView, Stall};
use crate::controller::model::Entry;
use crate::controller::reason::Reason;
use crate::controller::status::{self, CondValue, StatusReport};
use alicloud_vpc_client::{CloudError, ErrorClass, Pace};

/// What the route's finished (or queued) job says to the rest of the decision.
#[derive(Default)]
pub(super) struct Outcome<'a> {
    /// The RequestId of an accepted change: the cached read shows it, and the event names it.
    pub(super) last_request_id: Option<String>,
    /// The create was refused as existing (made meanwhile, by us before a restart or by
    /// someone else): read now, and the entry is not proven the object's.
    pub(super) conflict_adopt: bool,
    /// The cloud knows the create's token with other parameters: it made some entry, the
    /// refusal does not say which.
    pub(super) spent: Option<Arc<CloudError>>,
    /// The accepted change was a create (or the replay of its token).
    pub(super) accepted_create: bool,
    /// The entry the answer of an accepted create names.
    pub(super) answer: Option<&'a Entry>,
}

/// `Break` with the decision while the job is on the wire or waits to be applied, or after it
/// failed for good; else `Continue` with what its outcome says.
pub(super) fn outcome<'a>(
    obs: &Observation<'a>,
    mut d: Decision,
) -> ControlFlow<Decision, (Decision, Outcome<'a>)> {
    let route = obs.route;
    let mut o = Outcome::default();
    match obs.job {
        Some(JobView::InFlight) => return ControlFlow::Break(d.job(JobOp::Keep).next(Next::Wake)),
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
            return ControlFlow::Break(keep_waiting(d, stalled.as_ref(), ""));
        }
        Some(JobView::Accepted {
            accepted, create, ..
        }) => {
            o.last_request_id = accepted.request_id.clone();
            o.accepted_create = *create;
            if *create {
                o.answer = accepted.entry.as_ref();
            }
        }
        Some(JobView::Failed { error, create }) => {
            if *create && error.code() == "IdempotentParameterMismatch" {
                // The cloud knows the token with other parameters: it made some entry, but
                // the refusal does not say which, so it proves nothing about the listed one.
                o.spent = Some(error.clone());
            } else if error.class() == ErrorClass::AlreadyExists {
                // Made meanwhile (by us before a restart, or by someone else): look again.
                o.conflict_adopt = true;
            } else if *create && error.policy().refuses_create {
                if error.policy().pace == Pace::Busy {
                    // Refused for its pair's other entry (mid-flip), which changes by itself:
                    // the same create may pass later, and so may a request with its token sent
                    // by a process that died. The token stays (see `create`).
                    return ControlFlow::Break(d.job(JobOp::Drop).fail(Failure::Cloud {
                        op: "create",
                        error: error.clone(),
                    }));
                }
                // Refused for what the spec names (a next hop that does not exist, ...): the
                // token goes, so the spec's identity can be corrected.
                return ControlFlow::Break(
                    d.job(JobOp::Drop)
                        .fail(Failure::CreateRefused(error.clone())),
                );
            } else {
                return ControlFlow::Break(d.job(JobOp::Drop).fail(Failure::Cloud {
                    op: "mutation",
                    error: error.clone(),
                }));
            }
        }
        Some(JobView::Queued { .. }) | None => {}
    }
    ControlFlow::Continue((d, o))
}

/// A change that waits keeps its job (its place in the queue); when the reads it waits on keep
/// failing, Synced says so.
pub(super) fn keep_waiting(mut d: Decision, stalled: Option<&Stall>, prefix: &str) -> Decision {
    if let Some(stall) = stalled {
        let report = d.status.get_or_insert_with(StatusReport::default);
        report.synced = Some(stall_wait(stall, prefix));
        // Whether someone must act on the failing read (Stalled) or it passes by itself.
        report.cause = Some(stall.error().policy());
    }
    d.job(JobOp::Keep).next(Next::Wake)
}

/// Synced=False while a change waits on reads of its gateway that keep failing: its turn or
/// its confirmation waits on the gateway's status, or an applied change on a list that can
/// confirm it (`ListInconsistent`, a 5xx, ...). The change keeps its place, and nothing (absence
/// least of all) is concluded from a failed read.
fn stall_wait(stall: &Stall, prefix: &str) -> CondValue {
    let what = match stall {
        Stall::Queued(_) => "waiting for its turn; the gateway's status cannot be read",
        Stall::Status(_) => {
            "the change was accepted; waiting for the gateway to show it applied, and its \
             status cannot be read"
        }
        Stall::List(_) => "the change was accepted; waiting for a whole entry list to confirm it",
    };
    let e = stall.error();
    CondValue::no(
        Reason::Cloud(e.code().to_owned()),
        format!("{prefix}{what}: {}", e.message()),
    )
}
