//! An `ObserveOnly` route: it reports what the gateway lists and how it differs from the
//! spec, and sends nothing. A create on the wire from before it turned to observing finishes,
//! and its answer is recorded (it proves the entry without the token, which the cloud forgets
//! in time).

use super::outcome::keep_waiting;
use super::ownership::made_by;
use super::{
    CloudRead, Decision, JobOp, Next, Observation, drop_job, in_steady_state, synced_as_compared,
    without_read,
};
use crate::controller::job::JobView;
use crate::controller::model::Freshness;
use crate::controller::plan;
use crate::controller::reason::Reason;
use crate::controller::status::{CondValue, StatusReport};

/// The decision of an `ObserveOnly` route whose gates are open.
pub(super) fn observe_only(obs: &Observation<'_>, mut d: Decision) -> Decision {
    // What was sent before the route turned to observing: a create on the wire finishes and
    // its answer is recorded (it proves the entry without the token, which the cloud forgets
    // in time); nothing else goes out.
    let mut answer = None;
    d.job = Some(drop_job(obs.job));
    match obs.job {
        None => {}
        // Dropped, it still finishes and its acceptance is recorded, but a busy answer does not
        // send it again.
        Some(JobView::InFlight) => return d.job(JobOp::Drop).next(Next::Wake),
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
        CloudRead::Pending | CloudRead::Failed(_) => return without_read(d, obs.cloud),
        CloudRead::Ready { facts, entries } => (facts, entries),
    };
    if answer.is_some() {
        d.job = Some(JobOp::Drop);
    }
    d.credentials_worked = true;
    let report = match plan::find(&obs.route.spec, entries) {
        None => StatusReport {
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
            let synced = synced_as_compared(
                obs,
                e,
                facts,
                "the cloud entry matches the spec",
                Reason::Drift,
                |fields| format!("the cloud differs in {fields} (ObserveOnly: not changed)"),
            );
            let made = made_by(answer, e);
            StatusReport {
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
