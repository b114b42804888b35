//! PURE: a `VpnAccount`'s status from what its reconcile found: whether its credentials work
//! (and the account they act for), how many routes use it, and, once it is deleted, which
//! routes still hold entries in it. Conditions as on routes: `Ready`, and the kstatus
//! `Reconciling` / `Stalled` only while true.

use super::reason::Reason;
use super::status::{self, CondValue, Progress, READY, RECONCILING, STALLED};
use crate::api::v1alpha1::{ConditionStatus, VpnAccountStatus};
use alicloud_vpc_client::Policy;

/// How many holders a condition message names before it only counts the rest.
const NAMED_HOLDERS: usize = 5;

/// What one reconcile of an account found.
#[derive(Clone, Debug)]
pub(crate) struct AccountReport {
    /// The account the credentials act for (GetCallerIdentity), when they worked.
    pub account_id: Option<String>,
    /// Whether the credentials worked: `Err` with the reason (the cloud's code, or ours) and
    /// a message.
    pub credentials: Result<(), (Reason, String)>,
    /// The policy of the failure `credentials` reports (the cloud's table row), which says
    /// whether it waits for someone (`Stalled`).
    pub cause: Option<Policy>,
    /// How many routes use the account.
    pub routes: i64,
    /// The account is being deleted, and these routes (`namespace/name`) still hold entries in
    /// it.
    pub deleting_held_by: Option<Vec<String>>,
}

/// The `Ready` condition of a report.
pub(crate) fn ready(report: &AccountReport) -> CondValue {
    if let Some(holders) = report.deleting_held_by.as_ref().filter(|h| !h.is_empty()) {
        let mut named = holders
            .iter()
            .take(NAMED_HOLDERS)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if holders.len() > NAMED_HOLDERS {
            named.push_str(&format!(" and {} more", holders.len() - NAMED_HOLDERS));
        }
        return CondValue::no(
            Reason::AccountInUse,
            format!(
                "deleted, and kept until no route holds an entry in it: {} route(s) do ({named}); \
                 delete them (or their entries move nowhere: an account holds its entries)",
                holders.len()
            ),
        );
    }
    match (&report.credentials, &report.account_id) {
        (Ok(()), Some(id)) => CondValue::yes(
            Reason::Available,
            format!("the credentials act for account {id}"),
        ),
        (Ok(()), None) => CondValue::new(
            ConditionStatus::Unknown,
            Reason::Creating,
            "asking which account the credentials act for",
        ),
        (Err((reason, message)), _) => CondValue::no(reason.clone(), message.clone()),
    }
}

/// Why the account's credentials fail, as its status says: the reason of `Ready=False`
/// (the cloud's code, e.g. of a refused AssumeRole, or ours), unless the account is only kept
/// for the routes that hold entries in it (`AccountInUse`). `None` while they work or are
/// still being tried.
pub(crate) fn credentials_failing(status: Option<&VpnAccountStatus>) -> Option<&str> {
    let ready = status?.conditions.iter().find(|c| c.type_ == READY)?;
    let failing = ready.status == ConditionStatus::False
        && Reason::parse(&ready.reason) != Reason::AccountInUse;
    failing.then_some(ready.reason.as_str())
}

/// The new status from the current one and a report; `now` only for conditions that flip.
pub(crate) fn build(
    current: Option<&VpnAccountStatus>,
    report: &AccountReport,
    generation: Option<i64>,
    now: &str,
) -> VpnAccountStatus {
    let previous = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let ready = ready(report);
    // Reconciling while the account is not known yet, Stalled while someone must act.
    let kstatus = match (ready.status, status::progress(&ready.reason, report.cause)) {
        (ConditionStatus::Unknown, _) => Some(RECONCILING),
        (ConditionStatus::False, Progress::NeedsSomeone) => Some(STALLED),
        _ => None,
    };
    let mut conditions = Vec::new();
    if let Some(type_) = kstatus {
        let value = CondValue::yes(ready.reason.clone(), ready.message.clone());
        conditions.push(status::condition(type_, value, previous, generation, now));
    }
    conditions.insert(
        0,
        status::condition(READY, ready, previous, generation, now),
    );
    VpnAccountStatus {
        // Kept while the credentials fail: the account they reached is still the one.
        account_id: report
            .account_id
            .clone()
            .or_else(|| current.and_then(|s| s.account_id.clone())),
        routes: report.routes,
        observed_generation: generation,
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(credentials: Result<(), (Reason, String)>, id: Option<&str>) -> AccountReport {
        AccountReport {
            account_id: id.map(str::to_owned),
            credentials,
            cause: None,
            routes: 2,
            deleting_held_by: None,
        }
    }

    fn types(s: &VpnAccountStatus) -> Vec<(String, ConditionStatus, String)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status, c.reason.clone()))
            .collect()
    }

    #[test]
    fn the_status_of_an_account() {
        let t = ConditionStatus::True;
        let f = ConditionStatus::False;
        let refused = || Err((Reason::Cloud("NoPermission".into()), "refused".into()));
        type Want = Vec<(&'static str, ConditionStatus, &'static str)>;
        let rows: Vec<(&str, AccountReport, Want)> = vec![
            (
                "credentials work",
                report(Ok(()), Some("111")),
                vec![("Ready", t, "Available")],
            ),
            (
                "not known yet",
                report(Ok(()), None),
                vec![
                    ("Ready", ConditionStatus::Unknown, "Creating"),
                    ("Reconciling", t, "Creating"),
                ],
            ),
            (
                "the cloud refuses the credentials: its code, and someone must act",
                AccountReport {
                    cause: Some(Policy::of_class(
                        alicloud_vpc_client::ErrorClass::NeedsOutsideAction,
                    )),
                    ..report(refused(), None)
                },
                vec![("Ready", f, "NoPermission"), ("Stalled", t, "NoPermission")],
            ),
            (
                "a source this operator cannot use",
                report(
                    Err((Reason::CredentialsUnavailable, "assumeRole".into())),
                    None,
                ),
                vec![
                    ("Ready", f, "CredentialsUnavailable"),
                    ("Stalled", t, "CredentialsUnavailable"),
                ],
            ),
            (
                "deleted while routes hold entries",
                AccountReport {
                    deleting_held_by: Some(vec!["ns/a".into(), "ns/b".into()]),
                    ..report(Ok(()), Some("111"))
                },
                vec![("Ready", f, "AccountInUse"), ("Stalled", t, "AccountInUse")],
            ),
            (
                "deleted, nothing held",
                AccountReport {
                    deleting_held_by: Some(Vec::new()),
                    ..report(Ok(()), Some("111"))
                },
                vec![("Ready", t, "Available")],
            ),
        ];
        for (what, r, want) in rows {
            let s = build(None, &r, Some(3), "now");
            let want: Vec<_> = want
                .into_iter()
                .map(|(a, b, c)| (a.to_owned(), b, c.to_owned()))
                .collect();
            assert_eq!(types(&s), want, "{what}");
            assert_eq!((s.routes, s.observed_generation), (2, Some(3)), "{what}");
        }
    }

    #[test]
    fn failing_credentials_are_read_from_ready() {
        let refused = |code: &str| Err((Reason::Cloud(code.into()), "refused".into()));
        let in_use = AccountReport {
            deleting_held_by: Some(vec!["ns/a".into()]),
            ..report(refused("NoPermission"), None)
        };
        let rows = [
            ("working", report(Ok(()), Some("111")), None),
            ("still asking", report(Ok(()), None), None),
            (
                "AssumeRole refused",
                report(refused("NoPermission"), None),
                Some("NoPermission"),
            ),
            (
                "no source it can use",
                report(Err((Reason::CredentialsUnavailable, "x".into())), None),
                Some("CredentialsUnavailable"),
            ),
            ("only kept for its routes", in_use, None),
        ];
        for (what, r, want) in rows {
            let s = build(None, &r, Some(1), "now");
            assert_eq!(credentials_failing(Some(&s)), want, "{what}");
        }
        assert_eq!(credentials_failing(None), None, "no status yet");
    }

    #[test]
    fn the_holders_are_named_and_the_account_id_kept() {
        let holders: Vec<String> = (0..7).map(|i| format!("ns/r{i}")).collect();
        let r = AccountReport {
            deleting_held_by: Some(holders),
            ..report(Ok(()), Some("111"))
        };
        let m = ready(&r).message;
        assert!(
            m.contains("7 route(s)") && m.contains("ns/r0") && m.contains("2 more"),
            "{m}"
        );
        let before = build(None, &report(Ok(()), Some("111")), Some(1), "t0");
        let after = build(
            Some(&before),
            &report(Err((Reason::Cloud("X".into()), "x".into())), None),
            Some(1),
            "t1",
        );
        assert_eq!(after.account_id.as_deref(), Some("111"));
        // A condition keeps its transition time while its value holds.
        let again = build(Some(&before), &report(Ok(()), Some("111")), Some(1), "t2");
        assert_eq!(again.conditions[0].last_transition_time, "t0");
    }
}
