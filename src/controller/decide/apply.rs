//! A `Full` route past the gates: after its job's outcome and a read of the gateway, the
//! create of an absent entry, the change of the entry it holds, or the report that it is in
//! sync (an entry it does not hold goes to `ownership`).

use std::ops::ControlFlow;

use super::gates::{held_by_ours, publish_conflict, publish_touches};
use super::outcome::{Outcome, keep_waiting, outcome};
use super::ownership::{
    account_to_record, adopt, consents_to_adopt, has_token, holds_nothing, is_recorded_entry,
    made_by, name_to_record, record_account, refusal_recorded, refuse_existing,
    refused_for_another_create, replay, replay_of,
};
use super::{
    CloudRead, Decision, Failure, JobOp, Next, Observation, both_false, drop_job, in_steady_state,
    without_read,
};
use crate::api::v1alpha1::ConditionStatus;
use crate::controller::job::JobView;
use crate::controller::model::{Entry, Freshness, GatewayFacts, Mutation};
use crate::controller::plan::{self, Step};
use crate::controller::reason::Reason;
use crate::controller::status::{self, CondValue, StatusReport};

/// The decision of a `Full` route whose gates are open.
pub(super) fn apply(obs: &Observation<'_>, d: Decision) -> Decision {
    let route = obs.route;
    let (mut d, outcome) = match outcome(obs, d) {
        ControlFlow::Break(d) => return d,
        ControlFlow::Continue(next) => next,
    };
    let Outcome {
        last_request_id,
        conflict_adopt,
        spent,
        accepted_create,
        answer,
    } = outcome;
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
            } else if first_create(obs) {
                Freshness::Create
            } else {
                Freshness::Recent
            };
            return d.next(Next::Read(fresh));
        }
        CloudRead::Pending | CloudRead::Failed(_) => return without_read(d, obs.cloud),
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
                d = d.status(StatusReport {
                    entry: Some(entry.clone()),
                    client_token: Some(None),
                    ..Default::default()
                });
            }
            // Ready stays as it was (an edit, or a repair of drift): Reconciling says so.
            d.status.get_or_insert_with(StatusReport::default).changing = true;
            record_account(obs, d)
                .job(JobOp::Submit(mutation))
                .next(Next::Wake)
        }
        Step::InSync => in_sync(obs, entry, facts, d, last_request_id),
    }
}

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
            if refusal_recorded(obs.route) {
                // The recorded refusal stops being this create's last word once it goes out
                // again: a process that starts after a crash with the request on the wire
                // must replay the token (its create may have landed), not replace it.
                let mut report = both_false(Reason::Creating, "sending the create again");
                report.entry_unlisted = true;
                d = d.status(report);
            }
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
            report.account = name_to_record(obs);
            d.status = Some(report);
            plan::create(&obs.route.spec, facts, &t)
        }
    };
    d.job(JobOp::Submit(mutation)).next(Next::Wake)
}

/// Whether the route is about to make its first create: it never held an entry, sent no create
/// (no token), has no job and does not ask to adopt one (adopting needs the entry listed).
fn first_create(obs: &Observation<'_>) -> bool {
    obs.job.is_none()
        && !consents_to_adopt(obs.route)
        && holds_nothing(obs.route)
        && obs
            .route
            .status
            .as_ref()
            .is_none_or(|s| s.observed.is_none() && s.adopted.is_none())
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
    d = d.status(StatusReport {
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
        account: name_to_record(obs),
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
