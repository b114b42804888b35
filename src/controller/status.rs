//! Pure status building: conditions keep their transition time while their value holds, and
//! nothing time-dependent changes otherwise, so an unchanged outcome writes nothing.

use super::model::{Entry, GatewayStatus};
use super::reason::Reason;
use crate::api::v1alpha1::{Condition, ConditionStatus, ObservedRoute, VpnPbrRouteStatus};

pub(crate) const READY: &str = "Ready";
pub(crate) const SYNCED: &str = "Synced";

/// A condition's value before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CondValue {
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
}

impl CondValue {
    pub(crate) fn new(status: ConditionStatus, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
    pub(crate) fn yes(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::True, reason, message)
    }
    pub(crate) fn no(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::False, reason, message)
    }
}

/// Everything a reconcile concluded that ends up in status.
#[derive(Clone, Debug, Default)]
pub(crate) struct StatusReport {
    pub ready: Option<CondValue>,
    pub synced: Option<CondValue>,
    /// The cloud entry, when known (`None` keeps what status has).
    pub entry: Option<Entry>,
    /// The entry is known to be absent: clear the cloud fields.
    pub entry_absent: bool,
    /// The entry is not listed and a create is about to make it again: clear what was observed
    /// of it, but keep the record of the entry the object holds (`createTime`, adoption) until
    /// the new create's answer replaces it (a list that missed the entry must not cost it).
    pub entry_unlisted: bool,
    pub gateway_status: Option<GatewayStatus>,
    /// `Some(None)` clears the token.
    pub client_token: Option<Option<String>>,
    pub last_request_id: Option<String>,
    /// The entry was adopted now: record it (with the time).
    pub adopted: bool,
    /// Only observed (`ObserveOnly`): the entry's createTime is not written, since the recorded
    /// one is what makes an entry the object's (`is_recorded_entry` in decide/ownership.rs),
    /// and observing proves nothing about who made the listed entry.
    pub observed_only: bool,
    /// The account whose credentials listed the object's entry: record it.
    pub account_id: Option<String>,
}

/// Epoch milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn condition(
    type_: &str,
    value: CondValue,
    previous: &[Condition],
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == value.status)
        .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: value.status,
        reason: value.reason.as_str().to_owned(),
        message: value.message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// The new status from the current one and a report. `now` is only used for conditions whose
/// value flips.
pub(crate) fn build(
    current: Option<&VpnPbrRouteStatus>,
    report: StatusReport,
    generation: Option<i64>,
    now: &str,
) -> VpnPbrRouteStatus {
    let mut s = current.cloned().unwrap_or_default();
    let previous = std::mem::take(&mut s.conditions);
    let mut conditions = Vec::new();
    for (type_, value) in [(READY, report.ready), (SYNCED, report.synced)] {
        let value = value.or_else(|| {
            previous
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| CondValue::new(c.status, Reason::parse(&c.reason), c.message.clone()))
        });
        if let Some(v) = value {
            conditions.push(condition(type_, v, &previous, generation, now));
        }
    }
    s.conditions = conditions;
    if let Some(e) = report.entry {
        s.state = Some(e.state.as_str().to_owned());
        if !report.observed_only {
            let time = rfc3339_millis(e.create_time);
            if s.create_time != time {
                // Another entry than the one adopted (a create made it again).
                s.adopted = None;
                s.adopted_at = None;
            }
            s.create_time = time;
        }
        s.vpn_instance_id = Some(e.vpn_instance_id.clone()).filter(|v| !v.is_empty());
        s.observed = Some(ObservedRoute {
            weight: e.weight,
            priority: e.priority,
            published: e.published(),
        });
    } else if report.entry_absent {
        s.state = None;
        s.create_time = None;
        s.vpn_instance_id = None;
        s.observed = None;
        s.adopted = None;
        s.adopted_at = None;
        s.account_id = None;
    } else if report.entry_unlisted {
        s.state = None;
        s.vpn_instance_id = None;
        s.observed = None;
    }
    if let Some(a) = report.account_id {
        s.account_id = Some(a);
    }
    if let Some(g) = report.gateway_status {
        s.gateway_status = Some(g.as_str().to_owned());
    }
    if let Some(t) = report.client_token {
        s.client_token = t;
    }
    if let Some(r) = report.last_request_id {
        s.last_request_id = Some(r);
    }
    if report.adopted && s.adopted != Some(true) {
        s.adopted = Some(true);
        s.adopted_at = Some(now.to_owned());
    }
    s.observed_generation = generation;
    s
}

/// Whether `new` is worth writing over `current`: it differs in more than `gatewayStatus`.
/// That field is the gateway's, shared by every route of it, and flips with each change any of
/// them makes; written alone it would cost a write per route per change (and one per route
/// after a restart), so it is refreshed with the route's next real change.
pub(crate) fn worth_writing(current: Option<&VpnPbrRouteStatus>, new: &VpnPbrRouteStatus) -> bool {
    current.is_none_or(|c| {
        let same_but_gateway = VpnPbrRouteStatus {
            gateway_status: new.gateway_status.clone(),
            ..c.clone()
        };
        same_but_gateway != *new
    })
}

/// The `Ready` condition of a status.
pub(crate) fn ready(status: Option<&VpnPbrRouteStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
}

/// The `Synced` condition of a status.
pub(crate) fn synced(status: Option<&VpnPbrRouteStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == SYNCED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            route_source: "a".into(),
            route_dest: "b".into(),
            next_hop: "c".into(),
            weight: 100,
            priority: 10,
            state: "published".into(),
            create_time: 1_563_873_294_331,
            vpn_instance_id: "vpn-x".into(),
        }
    }

    #[test]
    fn millis_format() {
        assert_eq!(
            rfc3339_millis(1_563_873_294_331).as_deref(),
            Some("2019-07-23T09:14:54.331Z")
        );
        assert_eq!(
            rfc3339_millis(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn same_outcome_same_status() {
        let report = StatusReport {
            ready: Some(CondValue::yes(Reason::Available, "in sync")),
            synced: Some(CondValue::yes(Reason::Synced, "")),
            entry: Some(entry()),
            ..Default::default()
        };
        let a = build(None, report.clone(), Some(1), "t1");
        let b = build(Some(&a), report, Some(1), "t2");
        assert_eq!(
            a, b,
            "a repeated outcome must not change status (no self-triggered loops)"
        );
        assert_eq!(b.conditions[0].last_transition_time, "t1");
        assert_eq!(
            b.observed,
            Some(ObservedRoute {
                weight: 100,
                priority: 10,
                published: true
            })
        );
        assert_eq!(b.create_time.as_deref(), Some("2019-07-23T09:14:54.331Z"));
    }

    #[test]
    fn a_gateway_status_alone_is_not_worth_a_write() {
        let report = |gateway: &str, weight: i32| StatusReport {
            ready: Some(CondValue::yes(Reason::Available, "in sync")),
            synced: Some(CondValue::yes(Reason::Synced, "")),
            entry: Some(Entry { weight, ..entry() }),
            gateway_status: Some(gateway.into()),
            ..Default::default()
        };
        let current = build(None, report("updating", 100), Some(1), "t1");
        // (what changes, worth a write)
        let table = [
            ("nothing", report("updating", 100), false),
            ("the gateway's status alone", report("active", 100), false),
            ("the entry too", report("active", 50), true),
        ];
        for (what, r, write) in table {
            let new = build(Some(&current), r, Some(1), "t2");
            assert_eq!(worth_writing(Some(&current), &new), write, "{what}");
        }
        assert!(worth_writing(None, &current), "a first status is written");
    }

    #[test]
    fn flip_sets_transition_time_and_absent_clears() {
        let a = build(
            None,
            StatusReport {
                ready: Some(CondValue::yes(Reason::Available, "")),
                entry: Some(entry()),
                ..Default::default()
            },
            Some(1),
            "t1",
        );
        let b = build(
            Some(&a),
            StatusReport {
                ready: Some(CondValue::no(Reason::NotFound, "gone")),
                entry_absent: true,
                client_token: Some(Some("tok".into())),
                ..Default::default()
            },
            Some(2),
            "t2",
        );
        let r = ready(Some(&b)).expect("ready");
        assert_eq!(
            (
                r.status,
                r.last_transition_time.as_str(),
                r.observed_generation
            ),
            (ConditionStatus::False, "t2", Some(2))
        );
        assert_eq!(b.state, None);
        assert_eq!(b.client_token.as_deref(), Some("tok"));
    }
}
