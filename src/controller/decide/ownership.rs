//! Whose the listed entry is. It is the object's when status recorded it (its creation time),
//! when the answer of the object's create names it, or when the replay of the create token
//! status holds is answered with it; never from a token alone, nor from answers to another
//! account's credentials. An entry the object did not make is adopted only by consent, else
//! refused and left alone.

use super::{
    AccountGate, Decision, JobOp, Next, Observation, both_false, drop_job, ready_reason,
    synced_as_compared,
};
use crate::api::v1alpha1::{ADOPT_ANNOTATION, ConditionStatus, VpnPbrRoute};
use crate::controller::model::{Entry, GatewayFacts, Mutation};
use crate::controller::plan;
use crate::controller::reason::Reason;
use crate::controller::resolve;
use crate::controller::status::{self, CondValue, StatusReport};
use alicloud_vpc_client::{Pace, known_policy};
use kube::ResourceExt;

/// Whether the cloud entry is this object's: it created it (or has a create under way) or
/// adopted it. The create's idempotency token makes a replay after a crash ours too.
pub(crate) fn owns_entry(route: &VpnPbrRoute) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.create_time.is_some() || s.client_token.is_some() || s.adopted == Some(true)
    })
}

/// Whether status shows no entry and no create of this object: nothing recorded (no creation
/// time) and no token of a create that may have been sent.
pub(super) fn holds_nothing(route: &VpnPbrRoute) -> bool {
    route
        .status
        .as_ref()
        .is_none_or(|s| s.create_time.is_none() && s.client_token.is_none())
}

/// Whether status holds the token of a create (written before the call, cleared once the entry
/// is recorded in sync): the create may have been sent and made an entry, whatever status
/// recorded of it.
pub(super) fn has_token(route: &VpnPbrRoute) -> bool {
    route
        .status
        .as_ref()
        .is_some_and(|s| s.client_token.is_some())
}

/// Whether status recorded exactly this entry (by its creation time).
pub(super) fn is_recorded_entry(route: &VpnPbrRoute, entry: &Entry) -> bool {
    let listed = status::rfc3339_millis(entry.create_time);
    route
        .status
        .as_ref()
        .and_then(|s| s.create_time.as_deref())
        .is_some_and(|t| listed.as_deref() == Some(t))
}

/// Whether the object consents to adopt an entry it did not make.
pub(super) fn consents_to_adopt(route: &VpnPbrRoute) -> bool {
    route
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The account to record for the entry this object holds (or is about to create), now that a
/// list with the reconcile's credentials showed it (or the create goes out with them): theirs,
/// when status does not have it yet. An entry is visible only to its own account, so the list
/// proves it (entries made before accounts were recorded get theirs here too).
pub(super) fn account_to_record(obs: &Observation<'_>) -> Option<String> {
    let known = obs.account.known()?;
    (recorded_account(obs.route) != Some(known)).then(|| known.to_owned())
}

/// The `VpnAccount` (or the operator's identity) to record as holding the entry, when status
/// does not have it yet: resolved once, at the first create or adoption (or, for an entry made
/// before accounts were recorded, when it is next seen), and fixed since.
pub(super) fn name_to_record(obs: &Observation<'_>) -> Option<String> {
    match obs.held_by {
        AccountGate::Open { name, .. } if resolve::recorded(obs.route) != Some(name) => {
            Some(name.to_owned())
        }
        _ => None,
    }
}

/// Adds the account to record (see [`account_to_record`] and [`name_to_record`]) to the
/// decision's status report.
pub(super) fn record_account(obs: &Observation<'_>, mut d: Decision) -> Decision {
    let (id, name) = (account_to_record(obs), name_to_record(obs));
    if id.is_some() || name.is_some() {
        let report = d.status.get_or_insert_with(StatusReport::default);
        report.account_id = id.or(report.account_id.take());
        report.account = name.or(report.account.take());
    }
    d
}

/// Replays the create of the token status holds, to learn whether it made the listed entry:
/// the cloud repeats its answer (naming the entry it made) if the token is known, and refuses
/// the request as existing if not. The entry exists, so the replay can create nothing.
pub(super) fn replay(
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
pub(super) fn replay_of(
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
pub(super) fn refused_for_another_create(
    route: &VpnPbrRoute,
    facts: &GatewayFacts,
    token: &str,
) -> bool {
    refusal_recorded(route)
        && plan::create_of_token(&route.spec, token)
            .is_some_and(|sent| sent != plan::create(&route.spec, facts, token))
}

/// Whether `Ready` records the refusal of the held token's create on its merits (a code that
/// keeps the token): the last answer to that create, unless it went out again since.
pub(super) fn refusal_recorded(route: &VpnPbrRoute) -> bool {
    status::ready(route.status.as_ref()).is_some_and(|c| {
        c.status == ConditionStatus::False
            && known_policy(&c.reason).is_some_and(|p| p.refuses_create && p.pace == Pace::Busy)
    })
}

/// Whether a create's answer names the listed entry (its creation time): a replay of a token
/// whose entry was deleted and made again by someone else answers with the old one.
pub(super) fn made_by(answer: Option<&Entry>, listed: &Entry) -> bool {
    answer.is_some_and(|a| a.create_time == listed.create_time)
}

/// The account status recorded for the entry the object holds.
pub(super) fn recorded_account(route: &VpnPbrRoute) -> Option<&str> {
    route.status.as_ref().and_then(|s| s.account_id.as_deref())
}

/// Records the adoption; a difference from the spec is changed by the next reconcile, which
/// the status write triggers.
pub(super) fn adopt(
    obs: &Observation<'_>,
    entry: &Entry,
    facts: &GatewayFacts,
    d: Decision,
) -> Decision {
    let synced = synced_as_compared(obs, entry, facts, "", Reason::Adopted, |fields| {
        format!("adopted; changing {fields}")
    });
    d.status(StatusReport {
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
        account: name_to_record(obs),
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
pub(super) fn refuse_existing(
    obs: &Observation<'_>,
    create_refused: bool,
    mut d: Decision,
) -> Decision {
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
pub(super) const TOKEN_REFUSED: &str = "the cloud refused its create token as existing (someone else made \
     the entry, or an earlier create of this object made it, its answer was lost before it was \
     recorded, and the cloud no longer remembers the token)";
