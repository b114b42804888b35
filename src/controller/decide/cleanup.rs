//! A deleted object: its cloud entry is deleted (with `deletionPolicy: Delete`) once it is
//! proven the object's, then the finalizer goes. Absence is concluded only from a whole list
//! (or a gateway gone, as its account's credentials were told), never from a failed read.

use std::sync::Arc;

use super::gates::{closed, paused_report};
use super::outcome::keep_waiting;
use super::ownership::{
    TOKEN_REFUSED, has_token, holds_nothing, is_recorded_entry, made_by, record_account,
    recorded_account, replay,
};
use super::{
    AccountRead, CloudRead, Decision, Failure, JobOp, Next, Observation, drop_job, has_finalizer,
    paused, without_read,
};
use crate::api::v1alpha1::{DeletionPolicy, ManagementPolicy};
use crate::controller::error::Unproven;
use crate::controller::job::JobView;
use crate::controller::model::{Freshness, GatewayStatus, Mutation};
use crate::controller::plan;
use crate::controller::reason::Reason;
use alicloud_vpc_client::{CloudError, ErrorClass};

/// A deleted object: remove its cloud entry (with `deletionPolicy: Delete`), then let it go.
pub(super) fn cleanup(obs: &Observation<'_>) -> Decision {
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
        // Paused means no cloud call, deletion included; a queued change is pointless now. A
        // create's answer that came back meanwhile is recorded first (as the live route's gate
        // does): the entry the deletion removes once the pause ends is then proven the
        // object's by the record, not by a token the cloud forgets in time.
        return closed(obs, d, paused_report(), Next::AwaitChange);
    }
    let owns_nothing = holds_nothing(route);
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
        CloudRead::Failed(e) if e.is_gateway_gone() && !refused_for_status(e) => {
            return gateway_gone(obs, d, e);
        }
        CloudRead::Pending | CloudRead::Failed(_) => return without_read(d, obs.cloud),
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
        if obs.job.is_none() && has_token(route) {
            // A create may have made an entry no list shows yet (its answer recorded but not
            // confirmed, or lost, or never had before a restart; the gateway may still be
            // applying it): a list without it proves nothing. The replay repeats the answer if
            // the entry exists (listed yet or not), or makes it now; either way the scheduler
            // waits for the list to show it and it is deleted next. Never a create that landed
            // left behind.
            return replay(obs, None, facts, d);
        }
        if replay_refusal.is_some_and(|e| e.class() == ErrorClass::AlreadyExists) {
            // The cloud has just said the entry exists: this list is behind it, and proves
            // nothing. Recorded, the entry may be the object's: a list that shows it decides
            // (the refused replay is kept until then). Else nothing can prove it the object's.
            if route
                .status
                .as_ref()
                .is_some_and(|s| s.create_time.is_some())
            {
                return d.job(JobOp::Keep).next(Next::Read(Freshness::Now));
            }
            return release(d.event(
                false,
                Reason::Deleted,
                "Delete",
                format!(
                    "this object cannot prove it made the entry the cloud reports: \
                     {TOKEN_REFUSED}; left in place"
                ),
            ));
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
fn refused_for_status(e: &CloudError) -> bool {
    e.code() == "IncorrectStatus.VpnGateway"
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
