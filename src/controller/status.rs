//! Pure status building: conditions keep their transition time while their value holds, and
//! nothing time-dependent changes otherwise, so an unchanged outcome writes nothing.
//!
//! Beside `Ready` and `Synced`, the builder writes the two conditions of kstatus
//! (sigs.k8s.io/cli-utils `pkg/kstatus`, which Flux and `kubectl wait` style tools read):
//! `Reconciling=True` while a change is under way and `Stalled=True` while the route is refused
//! until someone acts, each only while true (kstatus reads an absent one as false). They are
//! derived here from `Ready`, `Synced` and the generation alone ([`progress`]), so every
//! decision gets them without saying so, and `Stalled` goes away by itself with its cause.

use super::model::{Entry, GatewayStatus};
use super::reason::Reason;
use crate::api::v1alpha1::{Condition, ConditionStatus, ObservedRoute, VpnPbrRouteStatus};
use alicloud_vpc_client::{ErrorClass, Pace, Policy, known_policy};

pub(crate) const READY: &str = "Ready";
pub(crate) const SYNCED: &str = "Synced";
pub(crate) const RECONCILING: &str = "Reconciling";
pub(crate) const STALLED: &str = "Stalled";

/// A condition's value before timestamps are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondValue {
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
    pub fn yes(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::True, reason, message)
    }
    pub fn no(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::False, reason, message)
    }
}

/// Everything a reconcile concluded that ends up in status.
#[derive(Clone, Debug, Default)]
pub struct StatusReport {
    /// `None` keeps the condition as it is, with the generation it describes.
    pub ready: Option<CondValue>,
    pub synced: Option<CondValue>,
    /// The failure these conditions report, by its row of the policy table (set with the
    /// conditions of a failed reconcile): tells a refusal that waits for someone (`Stalled`)
    /// from trouble that passes, for reasons the table does not name (`KubernetesApiError`, the
    /// client's words such as `Timeout`, a code the cloud added).
    pub cause: Option<Policy>,
    /// A change of the entry was queued at this generation while `Ready` stays as it was
    /// (an update, or a repair of drift): `Reconciling=True` says so.
    pub changing: bool,
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
    /// The `VpnAccount` (or the operator's identity) that holds the entry: record it.
    pub account: Option<String>,
}

/// Epoch milliseconds as RFC 3339 with milliseconds, UTC.
pub fn rfc3339_millis(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    Some(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

pub(crate) fn condition(
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

/// What a condition's reason says about the route's progress: the one place that sorts every
/// reason for the kstatus conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Nothing left to do.
    Done,
    /// A change is under way.
    Changing,
    /// The paused annotation: nothing is done, on purpose.
    Paused,
    /// Refused until someone acts (the spec, another object, the cloud account).
    NeedsSomeone,
    /// `ObserveOnly` reports the cloud differs; nothing is to be done about it here.
    Observed,
    /// A failure that passes by itself (retried), or that needs someone (by its policy).
    Trouble,
}

/// How `reason` sorts; `cause` is the policy of the failure a condition of this reconcile
/// reports (the table's row for a cloud code, when not given).
pub(crate) fn progress(reason: &Reason, cause: Option<Policy>) -> Progress {
    let by_policy = |p: Option<Policy>| match p {
        Some(p) if needs_someone(p) => Progress::NeedsSomeone,
        _ => Progress::Trouble,
    };
    match reason {
        Reason::Available | Reason::Synced => Progress::Done,
        // Events only, never a condition's reason: what they announce is done.
        Reason::Created | Reason::Updated | Reason::Deleted => Progress::Done,
        Reason::Creating | Reason::Updating | Reason::Adopted => Progress::Changing,
        Reason::Paused => Progress::Paused,
        Reason::InvalidSpec
        | Reason::DuplicateRoute
        | Reason::PublishConflict
        | Reason::AlreadyExists
        | Reason::NotFound
        | Reason::CleanupBlocked
        | Reason::AccountUnproven
        | Reason::CredentialsSecretInvalid
        | Reason::CredentialsSecretUnlabelled
        | Reason::InvalidObject
        | Reason::AccountRequired
        | Reason::AccountNotFound
        | Reason::AccountForbidden
        | Reason::AdoptionForbidden
        | Reason::CredentialsUnavailable
        | Reason::AccountInUse => Progress::NeedsSomeone,
        Reason::Drift => Progress::Observed,
        Reason::KubernetesApiError => by_policy(cause),
        Reason::Cloud(code) => by_policy(cause.or_else(|| known_policy(code))),
    }
}

/// Whether a failure with this policy waits for someone: the spec or something outside must
/// change. Conflicts with a pair's other entry are spec errors that clear by themselves (the
/// table gives them the busy pace), so they do not count.
fn needs_someone(p: Policy) -> bool {
    matches!(
        p.class,
        ErrorClass::NeedsSpecChange | ErrorClass::NeedsOutsideAction
    ) && p.pace != Pace::Busy
}

/// `Reconciling` and `Stalled` (each only when true) from the other conditions. A condition
/// from an older generation describes that one: it never stalls the current one.
fn kstatus_conditions(
    conditions: &[Condition],
    report: &StatusReport,
    previous: &[Condition],
    generation: Option<i64>,
) -> (Option<CondValue>, Option<CondValue>) {
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let (ready, synced) = (find(READY), find(SYNCED));
    let current = |c: &&Condition| c.observed_generation == generation;
    let value = |c: &Condition| CondValue::new(c.status, Reason::parse(&c.reason), &c.message);
    // The verdict of a condition this reconcile wrote takes its failure's policy; one kept from
    // an earlier write keeps the verdict it had then (a `Stalled` naming its reason).
    let sorts = |type_: &str, c: &Condition| {
        let reason = Reason::parse(&c.reason);
        let written = match type_ {
            READY => report.ready.is_some(),
            _ => report.synced.is_some(),
        };
        let p = progress(&reason, report.cause.filter(|_| written));
        let stalled_before = previous.iter().any(|s| {
            s.type_ == STALLED && s.status == ConditionStatus::True && s.reason == c.reason
        });
        if p == Progress::Trouble && !written && stalled_before {
            Progress::NeedsSomeone
        } else {
            p
        }
    };
    if synced.is_some_and(|c| sorts(SYNCED, c) == Progress::Paused) {
        return (None, None);
    }
    let stalled = [(READY, ready), (SYNCED, synced)]
        .into_iter()
        .filter_map(|(t, c)| c.filter(current).map(|c| (t, c)))
        .find(|(t, c)| c.status != ConditionStatus::True && sorts(t, c) == Progress::NeedsSomeone)
        .map(|(_, c)| value(c));
    if let Some(s) = stalled {
        return (None, Some(CondValue::yes(s.reason, s.message)));
    }
    let updating = |r: &Condition| {
        let message = match r.observed_generation {
            Some(g) if !current(&r) => format!(
                "applying generation {}; Ready describes generation {g}",
                generation.unwrap_or_default()
            ),
            _ => "changing the cloud entry to match the spec".to_owned(),
        };
        CondValue::yes(Reason::Updating, message)
    };
    let not_true = |c: &Condition| c.status != ConditionStatus::True;
    let reconciling = match (ready, synced) {
        // Ready describes an older generation: the current one is being applied.
        (Some(r), _) if !current(&r) => Some(updating(r)),
        // Not ready (yet): what Ready says is under way.
        (Some(r), _) if not_true(r) => Some(value(r)),
        (None, Some(s)) if not_true(s) => Some(value(s)),
        (None, _) => Some(CondValue::yes(
            Reason::Creating,
            "waiting for the first outcome",
        )),
        // Ready, and a change under way at this generation (an adoption's repair, ...).
        (Some(_), Some(s))
            if current(&s) && not_true(s) && sorts(SYNCED, s) == Progress::Changing =>
        {
            Some(value(s))
        }
        (Some(r), _) if report.changing => Some(updating(r)),
        _ => None,
    };
    (
        reconciling.map(|r| CondValue::yes(r.reason, r.message)),
        None,
    )
}

/// The new status from the current one and a report. `now` is only used for conditions whose
/// value flips. A condition the report leaves out stays as it is, generation included: it was
/// concluded for that generation (so a `Ready=True` of the previous generation does not pass
/// for the new one while its change is under way).
pub fn build(
    current: Option<&VpnPbrRouteStatus>,
    report: StatusReport,
    generation: Option<i64>,
    now: &str,
) -> VpnPbrRouteStatus {
    let mut s = current.cloned().unwrap_or_default();
    let previous = std::mem::take(&mut s.conditions);
    let kept = |type_: &str| previous.iter().find(|c| c.type_ == type_).cloned();
    let mut conditions = Vec::new();
    for (type_, value) in [(READY, &report.ready), (SYNCED, &report.synced)] {
        match value {
            Some(v) => conditions.push(condition(type_, v.clone(), &previous, generation, now)),
            None => conditions.extend(kept(type_)),
        }
    }
    // Paused: a Ready that is not True would read as "in progress"; the route is not worked
    // on, so it makes no claim (a True one stays: the entry was in sync when last seen).
    let paused = conditions
        .iter()
        .any(|c| c.type_ == SYNCED && Reason::parse(&c.reason) == Reason::Paused);
    if paused {
        conditions.retain(|c| c.type_ != READY || c.status == ConditionStatus::True);
    }
    let (reconciling, stalled) = kstatus_conditions(&conditions, &report, &previous, generation);
    for (type_, value) in [(RECONCILING, reconciling), (STALLED, stalled)] {
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
        if s.client_token.is_none() || report.client_token == Some(None) {
            // Nothing held and no create under way: the next create resolves the account anew.
            s.account = None;
        }
    } else if report.entry_unlisted {
        s.state = None;
        s.vpn_instance_id = None;
        s.observed = None;
    }
    if let Some(a) = report.account_id {
        s.account_id = Some(a);
    }
    if let Some(a) = report.account {
        s.account = Some(a);
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
        let b = after(&a, report, 1, "t2");
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
            let new = after(&current, r, 1, "t2");
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

    fn cond<'a>(s: &'a VpnPbrRouteStatus, type_: &str) -> Option<&'a Condition> {
        s.conditions.iter().find(|c| c.type_ == type_)
    }

    /// `Reconciling` and `Stalled` as `(reason, reason)`, `""` when absent.
    fn kstatus(s: &VpnPbrRouteStatus) -> (String, String) {
        let reason = |t| cond(s, t).map(|c| c.reason.clone()).unwrap_or_default();
        (reason(RECONCILING), reason(STALLED))
    }

    fn report(
        ready: Option<CondValue>,
        synced: Option<CondValue>,
        cause: Option<Policy>,
    ) -> StatusReport {
        StatusReport {
            ready,
            synced,
            cause,
            ..Default::default()
        }
    }

    fn no(reason: Reason) -> Option<CondValue> {
        Some(CondValue::no(reason, "m"))
    }

    /// The status written after `before`, at `generation`.
    fn after(
        before: &VpnPbrRouteStatus,
        report: StatusReport,
        generation: i64,
        now: &str,
    ) -> VpnPbrRouteStatus {
        build(Some(before), report, Some(generation), now)
    }

    fn in_sync() -> StatusReport {
        let yes = |r| Some(CondValue::yes(r, ""));
        report(yes(Reason::Available), yes(Reason::Synced), None)
    }

    fn both_no(reason: Reason, cause: Option<Policy>) -> StatusReport {
        report(no(reason.clone()), no(reason), cause)
    }

    fn synced_only(value: CondValue, cause: Option<Policy>) -> StatusReport {
        report(None, Some(value), cause)
    }

    fn class(c: ErrorClass) -> Option<Policy> {
        Some(Policy::of_class(c))
    }

    #[test]
    fn reconciling_and_stalled_of_each_situation() {
        let cloud = |code: &str| Reason::Cloud(code.into());
        // (situation, reports in order at generation 1, Reconciling, Stalled)
        let table: Vec<(&str, Vec<StatusReport>, &str, &str)> = vec![
            ("in sync", vec![in_sync()], "", ""),
            (
                "creating",
                vec![both_no(Reason::Creating, None)],
                "Creating",
                "",
            ),
            (
                "invalid spec",
                vec![both_no(Reason::InvalidSpec, None)],
                "",
                "InvalidSpec",
            ),
            (
                "duplicate",
                vec![both_no(Reason::DuplicateRoute, None)],
                "",
                "DuplicateRoute",
            ),
            (
                "refused next hop",
                vec![both_no(cloud("InvalidNextHop.NotFound"), None)],
                "",
                "InvalidNextHop.NotFound",
            ),
            (
                "pair conflict: clears by itself",
                vec![both_no(cloud("VpnRouteEntry.BackupRoute"), None)],
                "VpnRouteEntry.BackupRoute",
                "",
            ),
            (
                "a code the table does not name, by the failure's policy",
                vec![both_no(
                    cloud("Brand.New"),
                    class(ErrorClass::NeedsOutsideAction),
                )],
                "",
                "Brand.New",
            ),
            (
                "a transient failure of a change",
                vec![both_no(cloud("Timeout"), class(ErrorClass::Transient))],
                "Timeout",
                "",
            ),
            (
                "RBAC refused",
                vec![both_no(
                    Reason::KubernetesApiError,
                    class(ErrorClass::NeedsOutsideAction),
                )],
                "",
                "KubernetesApiError",
            ),
            (
                "RBAC refused, kept by a later write",
                vec![
                    both_no(
                        Reason::KubernetesApiError,
                        class(ErrorClass::NeedsOutsideAction),
                    ),
                    StatusReport::default(),
                ],
                "",
                "KubernetesApiError",
            ),
            (
                "a failed read on a Ready route",
                vec![
                    in_sync(),
                    synced_only(
                        CondValue::no(cloud("Throttling"), "m"),
                        class(ErrorClass::Throttled),
                    ),
                ],
                "",
                "",
            ),
            (
                "a queued create whose gateway cannot be read",
                vec![
                    both_no(Reason::Creating, None),
                    synced_only(CondValue::no(cloud("ListInconsistent"), "m"), None),
                ],
                "Creating",
                "",
            ),
            (
                "paused in sync",
                vec![
                    in_sync(),
                    synced_only(CondValue::no(Reason::Paused, "p"), None),
                ],
                "",
                "",
            ),
            (
                "paused while refused",
                vec![
                    both_no(Reason::AlreadyExists, None),
                    synced_only(CondValue::no(Reason::Paused, "p"), None),
                ],
                "",
                "",
            ),
            (
                "ObserveOnly drift",
                vec![StatusReport {
                    synced: Some(CondValue::no(Reason::Drift, "d")),
                    ..in_sync()
                }],
                "",
                "",
            ),
            (
                "ObserveOnly, no entry",
                vec![both_no(Reason::NotFound, None)],
                "",
                "NotFound",
            ),
            (
                "adopted, repairing drift",
                vec![StatusReport {
                    synced: Some(CondValue::no(Reason::Adopted, "a")),
                    ..in_sync()
                }],
                "Adopted",
                "",
            ),
            (
                "repairing drift",
                vec![
                    in_sync(),
                    StatusReport {
                        changing: true,
                        ..Default::default()
                    },
                ],
                "Updating",
                "",
            ),
            (
                "blocked cleanup",
                vec![both_no(
                    Reason::CleanupBlocked,
                    class(ErrorClass::NeedsOutsideAction),
                )],
                "",
                "CleanupBlocked",
            ),
        ];
        for (what, reports, reconciling, stalled) in table {
            let s = reports
                .into_iter()
                .fold(None, |s, r| Some(build(s.as_ref(), r, Some(1), "t")))
                .expect("a status");
            assert_eq!(
                kstatus(&s),
                (reconciling.to_owned(), stalled.to_owned()),
                "{what}: {:#?}",
                s.conditions
            );
        }
    }

    #[test]
    fn paused_keeps_only_a_ready_that_is_true() {
        let paused = || synced_only(CondValue::no(Reason::Paused, "p"), None);
        let ready = build(None, in_sync(), Some(1), "t1");
        let s = after(&ready, paused(), 1, "t2");
        assert_eq!(cond(&s, READY), cond(&ready, READY), "kept as it was");
        let refused = build(None, both_no(Reason::AlreadyExists, None), Some(1), "t1");
        let s = after(&refused, paused(), 1, "t2");
        assert_eq!(cond(&s, READY), None, "no claim while paused");
        assert_eq!(cond(&s, STALLED), None);
    }

    #[test]
    fn an_edit_keeps_ready_of_its_generation_until_confirmed() {
        let one = build(None, in_sync(), Some(1), "t1");
        // Generation 2 is being applied: a write that concludes nothing about Ready.
        let two = after(&one, StatusReport::default(), 2, "t2");
        let ready = cond(&two, READY).expect("ready");
        assert_eq!(
            (ready.status, ready.observed_generation),
            (ConditionStatus::True, Some(1))
        );
        let reconciling = cond(&two, RECONCILING).expect("reconciling");
        assert_eq!(
            (reconciling.reason.as_str(), reconciling.observed_generation),
            ("Updating", Some(2))
        );
        assert_eq!(two.observed_generation, Some(2));
        let confirmed = after(&two, in_sync(), 2, "t3");
        assert_eq!(
            cond(&confirmed, READY).and_then(|c| c.observed_generation),
            Some(2)
        );
        assert_eq!(kstatus(&confirmed), (String::new(), String::new()));
    }

    #[test]
    fn stalled_clears_with_its_cause() {
        let refused = build(None, both_no(Reason::InvalidSpec, None), Some(1), "t1");
        assert_eq!(kstatus(&refused).1, "InvalidSpec");
        // Corrected (generation 2): an old refusal stalls nothing, whatever is written.
        let corrected = after(&refused, StatusReport::default(), 2, "t2");
        assert_eq!(kstatus(&corrected), ("Updating".to_owned(), String::new()));
        let creating = after(&corrected, both_no(Reason::Creating, None), 2, "t3");
        assert_eq!(kstatus(&creating), ("Creating".to_owned(), String::new()));
        // A repeated outcome keeps the transition time (no write of its own).
        let again = after(&refused, both_no(Reason::InvalidSpec, None), 1, "t4");
        assert_eq!(again, refused);
    }
}
