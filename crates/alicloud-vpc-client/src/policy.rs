//! The retry policy of a failed cloud call, in one table: for each error code the cloud returns
//! (from the error tables of the API pages), what kind of failure it is, who tries again, how
//! fast, whether it settles a create, and whether the thing the call was about is gone.
//!
//! The columns of `TABLE` (one [`Policy`] per code):
//!
//! * `class` — the [`ErrorClass`] callers act on and conditions show.
//! * `retried_by` — who tries again ([`Retrier`]): the client itself within one call (throttled
//!   and transient failures), the client once with a new session (an STS session the cloud
//!   says has expired), the caller once the gateway is free again (a gateway busy with another
//!   change: the gateway, not a delay, says when), or the caller after a delay (everything
//!   else).
//! * `pace` — how long the caller waits before trying again ([`Pace::bounds`]: base and cap of
//!   an exponential delay). Conflicts with a partner entry (an active/standby pair mid-flip) are
//!   spec errors that clear on their own, so they keep the busy pace.
//! * `refuses_create` — a create answered with this code is final: it made nothing and waits for
//!   the spec (or the entry's pair) to change. A refusal for what the spec names releases the
//!   create's `ClientToken`, so the identity fields can be corrected; one for the pair's other
//!   entry (busy pace: it changes by itself) keeps it while the spec asks for the same create,
//!   since a request with it from a process that died may still land.
//! * `gone` — the route entry ([`Gone::Entry`]) or the whole gateway ([`Gone::Gateway`]) no longer
//!   exists; cleanup treats both as deleted.
//!
//! Exact codes come first; prefixes and the HTTP status only decide codes nobody has listed (see
//! [`policy`]), which then get their class's usual row ([`Policy::of_class`]), so a new code from
//! the cloud still lands in a class that retries at a sensible pace.

use std::time::Duration;

use crate::class::ErrorClass;

// Short names keep the table's columns on one line each.
use ErrorClass as C;
use Gone as G;
use Pace as P;
use Retrier as R;

/// Who tries a failed call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retrier {
    /// The client, within the same call (when the call is safe to repeat).
    Client,
    /// The client, once within the same call, with a new session: the cloud says the STS
    /// session the call was signed with has expired although its provider, by this process's
    /// clock, still hands it out (the clock is behind the cloud's). The provider drops that
    /// session (`CredentialsProvider::invalidate`) and the call is sent again (when it is safe
    /// to repeat and attempts are left: `RetryPolicy::next`). Refused so again, or not signed
    /// with a session: the caller, after a delay at the row's pace.
    ClientWithNewSession,
    /// The caller, once the gateway is `active` again: it applies one change at a time, so
    /// the retry is paced per gateway, not per call.
    CallerWhenFree,
    /// The caller, after a delay at the row's pace.
    Caller,
}

/// How fast a failed call is tried again: the bounds of an exponential delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pace {
    /// A gateway busy with another change, or a conflict that clears on its own: 0.5 s .. 30 s.
    Busy,
    /// The API or account is rate-limited: 2 s .. 120 s.
    Throttled,
    /// No answer or a server error: 1 s .. 60 s.
    Transient,
    /// The request is wrong; only a changed request helps: 10 s .. 300 s.
    Slow,
    /// Someone outside the caller must act: 30 s .. 600 s.
    VerySlow,
}

impl Pace {
    /// Base (first delay) and cap of the exponential delay.
    pub const fn bounds(self) -> (Duration, Duration) {
        let s = Duration::from_secs;
        match self {
            Self::Busy => (Duration::from_millis(500), s(30)),
            Self::Throttled => (s(2), s(120)),
            Self::Transient => (s(1), s(60)),
            Self::Slow => (s(10), s(300)),
            Self::VerySlow => (s(30), s(600)),
        }
    }
}

/// Whether an error says the thing a call was about no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gone {
    No,
    /// The route entry does not exist.
    Entry,
    /// The gateway (or its region) does not exist, or is being deleted.
    Gateway,
}

/// Everything a caller needs to know about one failure (see the module docs for the columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    pub class: ErrorClass,
    pub retried_by: Retrier,
    pub pace: Pace,
    pub refuses_create: bool,
    pub gone: Gone,
}

impl Policy {
    /// The usual row of a class: what an unlisted code of that class, or a failure without a
    /// code (timeouts, credentials), gets.
    pub const fn of_class(class: ErrorClass) -> Self {
        let (retried_by, pace, refuses_create, gone) = match class {
            C::GatewayBusy => (Retrier::CallerWhenFree, Pace::Busy, false, Gone::No),
            C::Throttled => (Retrier::Client, Pace::Throttled, false, Gone::No),
            C::Transient => (Retrier::Client, Pace::Transient, false, Gone::No),
            C::NeedsSpecChange => (Retrier::Caller, Pace::Slow, true, Gone::No),
            C::NeedsOutsideAction => (Retrier::Caller, Pace::VerySlow, true, Gone::No),
            // Adopt the entry; if that fails, look again soon.
            C::AlreadyExists => (Retrier::Caller, Pace::Transient, false, Gone::No),
            C::NotFound => (Retrier::Caller, Pace::Transient, true, Gone::Entry),
        };
        Self {
            class,
            retried_by,
            pace,
            refuses_create,
            gone,
        }
    }
}

const fn row(
    code: &'static str,
    class: ErrorClass,
    retried_by: Retrier,
    pace: Pace,
    refuses_create: bool,
    gone: Gone,
) -> (&'static str, Policy) {
    (
        code,
        Policy {
            class,
            retried_by,
            pace,
            refuses_create,
            gone,
        },
    )
}

/// The code of `CloudError::ListInconsistent` (the client's, not the cloud's).
pub const LIST_INCONSISTENT: &str = "ListInconsistent";

/// Every code this client knows. Columns: code, class, retried by, pace, refuses create, gone.
#[rustfmt::skip]
const TABLE: &[(&str, Policy)] = &[
    // The gateway is applying another change; wait for it to be `active` again.
    row("VpnGateway.Configuring",                     C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),
    row("TaskConflict",                               C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),
    row("VpnTask.CONFLICT",                           C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),
    row("Appliance.Configuring",                      C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),
    row("VpnConnection.Configuring",                  C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),
    // Terraform retries this one too on VPN route operations.
    row("VpnRouteEntry.Configuring",                  C::GatewayBusy,        R::CallerWhenFree, P::Busy,      false, G::No),

    row("Throttling",                                 C::Throttled,          R::Client,         P::Throttled, false, G::No),
    row("Throttling.User",                            C::Throttled,          R::Client,         P::Throttled, false, G::No),
    row("Throttling.Api",                             C::Throttled,          R::Client,         P::Throttled, false, G::No),
    row("Rejected.Throttling",                        C::Throttled,          R::Client,         P::Throttled, false, G::No),

    row("InternalError",                              C::Transient,          R::Client,         P::Transient, false, G::No),
    row("ServiceUnavailable",                         C::Transient,          R::Client,         P::Transient, false, G::No),
    row("UnknownError",                               C::Transient,          R::Client,         P::Transient, false, G::No),
    // The client sends a fresh nonce per attempt, so a reused nonce is a one-off collision.
    row("SignatureNonceUsed",                         C::Transient,          R::Client,         P::Transient, false, G::No),
    // The client's own code (`CloudError::ListInconsistent`): the pages of a list never made
    // one whole list (entries changing between page reads). The client has read it again
    // already; the reader tries later. Never evidence that an entry is gone.
    row(LIST_INCONSISTENT,                            C::Transient,          R::Client,         P::Transient, false, G::No),

    row("VpnRouteEntry.InvalidWeight",                C::NeedsSpecChange,    R::Caller,         P::Slow,      true,  G::No),
    row("IllegalParam.RouteDest",                     C::NeedsSpecChange,    R::Caller,         P::Slow,      true,  G::No),
    row("OperationFailed.InvalidCidrBlock",           C::NeedsSpecChange,    R::Caller,         P::Slow,      true,  G::No),
    row("VpnPbrRouteEntryPriority.NotSupport",        C::NeedsSpecChange,    R::Caller,         P::Slow,      true,  G::No),
    // Conflicts with a partner entry (an active/standby pair mid-flip) clear on their own.
    row("VpnRouteEntry.BackupRoute",                  C::NeedsSpecChange,    R::Caller,         P::Busy,      true,  G::No),
    row("VpnRouteEntry.Conflict",                     C::NeedsSpecChange,    R::Caller,         P::Busy,      true,  G::No),
    row("VpnRouteEntry.ConflictSSL",                  C::NeedsSpecChange,    R::Caller,         P::Busy,      true,  G::No),
    row("OperationFailed.RouteConflict",              C::NeedsSpecChange,    R::Caller,         P::Busy,      true,  G::No),

    row("Forbidden",                                  C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("Forbbiden.SubUser",                          C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("VpnGateway.FinancialLocked",                 C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("Resource.QuotaFull",                         C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("QuotaExceeded.VpnRouteEntry",                C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidNextHop.NotFound",                    C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidVpnConnectionInstanceId.NotFound",    C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    // The gateway is missing, under each operation's name for it.
    row("InvalidVpnGatewayInstanceId.NotFound",       C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    row("InvalidVpnGatewayId.NotFound",               C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    row("InvalidVpnInstanceId.NotFound",              C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    row("INSTANCE_NOT_EXISTS",                        C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    row("InvalidRegionId.NotFound",                   C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    // The gateway is being deleted: waiting for it to be `active` again would never end.
    row("IncorrectStatus.VpnGateway",                 C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::Gateway),
    // Credentials, signatures and clocks: someone outside the caller must fix them.
    row("InvalidAccessKeyId.NotFound",                C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidAccessKeyId.Inactive",                C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidAccessKeyId",                         C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("SignatureDoesNotMatch",                      C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("IncompleteSignature",                        C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidSignatureMethod",                     C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidTimeStamp.Format",                    C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidTimeStamp.Expired",                   C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    // The session expired by the cloud's clock before it did by ours: renew it and try again.
    // (`MismatchWithAccessKey` and `Malformed` are tokens that are not the key's, or no token:
    // a new session of the same provider does not mend those.)
    row("InvalidSecurityToken.Expired",               C::NeedsOutsideAction, R::ClientWithNewSession, P::VerySlow, true, G::No),
    row("InvalidSecurityToken.Malformed",             C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidSecurityToken.MismatchWithAccessKey", C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("UnsupportedHTTPMethod",                      C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidApi.NotFound",                        C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidAction.NotFound",                     C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("InvalidRegionId",                            C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),
    row("NoPermission",                               C::NeedsOutsideAction, R::Caller,         P::VerySlow,  true,  G::No),

    // The answer to a `DryRun=true` call that would have succeeded (`VpcClient::dry_run` turns
    // it into `Ok`). Never retried: sending it again asks the same question; nothing was made.
    row("DryRunOperation",                            C::NeedsSpecChange,    R::Caller,         P::Slow,      true,  G::No),

    // Created meanwhile (by us before a restart, or by someone else): adopt it.
    row("VpnRouteEntry.AlreadyExists",                C::AlreadyExists,      R::Caller,         P::Transient, false, G::No),

    // The entry is gone (none documented for PBR yet; these are the names the VPN route APIs
    // use, and the emulator may return them).
    row("InvalidRouteEntry.NotFound",                 C::NotFound,           R::Caller,         P::Transient, true,  G::Entry),
    row("VpnRouteEntry.NotFound",                     C::NotFound,           R::Caller,         P::Transient, true,  G::Entry),
    row("InvalidVpnPbrRouteEntry.NotFound",           C::NotFound,           R::Caller,         P::Transient, true,  G::Entry),
    row("VpnPbrRouteEntry.NotFound",                  C::NotFound,           R::Caller,         P::Transient, true,  G::Entry),
];

/// Every code the table names, with its row, in the table's order: for tables of what each
/// known code leads to (a new code gets its row there too).
pub fn known_codes() -> impl Iterator<Item = (&'static str, Policy)> {
    TABLE.iter().copied()
}

/// The policy of a code the table names (`None` for any other text, e.g. a condition reason
/// that is not a cloud code).
pub fn known_policy(code: &str) -> Option<Policy> {
    TABLE
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, p)| *p)
}

/// The policy for an error answer of the cloud, by its `Code` and HTTP status.
pub fn policy(http_status: u16, code: &str) -> Policy {
    TABLE
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| Policy::of_class(fallback_class(http_status, code)))
}

/// The class of an error answer of the cloud, by its `Code` and HTTP status.
pub fn classify(http_status: u16, code: &str) -> ErrorClass {
    policy(http_status, code).class
}

/// The class of a code nobody has listed, by its shape and the HTTP status.
fn fallback_class(http_status: u16, code: &str) -> ErrorClass {
    if code.starts_with("Throttling") || code.contains(".Throttling") || http_status == 429 {
        return ErrorClass::Throttled;
    }
    if http_status >= 500 {
        return ErrorClass::Transient;
    }
    if code.starts_with("Forbidden")
        || code.starts_with("Forbbiden")
        || code.starts_with("QuotaExceeded")
        || code.starts_with("InvalidAccessKey")
        || code.starts_with("InvalidSecurityToken")
        || code.starts_with("Signature")
        || http_status == 401
        || http_status == 403
    {
        return ErrorClass::NeedsOutsideAction;
    }
    if code.starts_with("IllegalParam")
        || code.starts_with("InvalidParameter")
        || code.starts_with("OperationFailed.Invalid")
        || code.starts_with("VpnRouteEntry.Invalid")
    {
        return ErrorClass::NeedsSpecChange;
    }
    if code.ends_with(".NotFound") && code.contains("Route") {
        return ErrorClass::NotFound;
    }
    // Unknown 4xx: nothing the caller can change by itself, so retry slowly and show the code.
    ErrorClass::NeedsOutsideAction
}

impl ErrorClass {
    /// Whether the client itself may retry a call that failed this way (when the call is safe
    /// to repeat). Busy gateways are left to the caller, which tries again once the gateway is
    /// free.
    pub fn is_retryable_by_client(self) -> bool {
        Policy::of_class(self).retried_by == Retrier::Client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CLASSES: [ErrorClass; 7] = [
        ErrorClass::GatewayBusy,
        ErrorClass::Throttled,
        ErrorClass::Transient,
        ErrorClass::NeedsSpecChange,
        ErrorClass::NeedsOutsideAction,
        ErrorClass::AlreadyExists,
        ErrorClass::NotFound,
    ];

    #[test]
    fn every_row_is_what_policy_returns() {
        for (code, row) in TABLE {
            // At any status, so a duplicate or a fallback cannot shadow the row.
            for status in [400, 403, 404, 429, 500] {
                assert_eq!(policy(status, code), *row, "{code} at {status}");
            }
        }
    }

    #[test]
    fn codes_are_listed_once() {
        for (i, (code, _)) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|(other, _)| other != code),
                "{code} is listed twice"
            );
        }
    }

    #[test]
    fn every_row_agrees_with_its_class_on_retrier_and_create() {
        for (code, row) in TABLE {
            let usual = Policy::of_class(row.class);
            // After the client's one try with a new session, the caller's, as for the class.
            if row.retried_by != Retrier::ClientWithNewSession {
                assert_eq!(row.retried_by, usual.retried_by, "{code}");
            }
            assert_eq!(row.refuses_create, usual.refuses_create, "{code}");
            assert_eq!(
                row.gone == Gone::Entry,
                row.class == ErrorClass::NotFound,
                "{code}"
            );
        }
    }

    #[test]
    fn usual_row_of_each_class() {
        let expected: [(ErrorClass, Retrier, Pace, bool, Gone); 7] = [
            (C::GatewayBusy, R::CallerWhenFree, P::Busy, false, G::No),
            (C::Throttled, R::Client, P::Throttled, false, G::No),
            (C::Transient, R::Client, P::Transient, false, G::No),
            (C::NeedsSpecChange, R::Caller, P::Slow, true, G::No),
            (C::NeedsOutsideAction, R::Caller, P::VerySlow, true, G::No),
            (C::AlreadyExists, R::Caller, P::Transient, false, G::No),
            (C::NotFound, R::Caller, P::Transient, true, G::Entry),
        ];
        assert_eq!(expected.map(|e| e.0), ALL_CLASSES);
        for (class, retried_by, pace, refuses_create, gone) in expected {
            assert_eq!(
                Policy::of_class(class),
                Policy {
                    class,
                    retried_by,
                    pace,
                    refuses_create,
                    gone
                },
                "{class}"
            );
        }
    }

    #[test]
    fn pace_bounds() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (pace, bounds) in [
            (Pace::Busy, (ms(500), s(30))),
            (Pace::Throttled, (s(2), s(120))),
            (Pace::Transient, (s(1), s(60))),
            (Pace::Slow, (s(10), s(300))),
            (Pace::VerySlow, (s(30), s(600))),
        ] {
            assert_eq!(pace.bounds(), bounds, "{pace:?}");
        }
    }

    #[test]
    fn exceptions_to_the_usual_row() {
        // Each group is its class's usual row but for the pace (conflicts with a partner entry
        // clear on their own) or what is gone (the gateway, under each operation's name for it).
        let exceptions: [(u16, &[&str], ErrorClass, Pace, Gone); 2] = [
            (
                400,
                &[
                    "VpnRouteEntry.BackupRoute",
                    "VpnRouteEntry.Conflict",
                    "VpnRouteEntry.ConflictSSL",
                    "OperationFailed.RouteConflict",
                ],
                C::NeedsSpecChange,
                P::Busy,
                G::No,
            ),
            (
                404,
                &[
                    "InvalidVpnGatewayInstanceId.NotFound",
                    "InvalidVpnGatewayId.NotFound",
                    "InvalidVpnInstanceId.NotFound",
                    "INSTANCE_NOT_EXISTS",
                    "IncorrectStatus.VpnGateway",
                    "InvalidRegionId.NotFound",
                ],
                C::NeedsOutsideAction,
                P::VerySlow,
                G::Gateway,
            ),
        ];
        for (status, codes, class, pace, gone) in exceptions {
            let want = Policy {
                pace,
                gone,
                ..Policy::of_class(class)
            };
            for code in codes {
                assert_eq!(policy(status, code), want, "{code}");
            }
        }
    }

    #[test]
    fn only_an_expired_session_is_renewed() {
        let renewed: Vec<_> = known_codes()
            .filter(|(_, p)| p.retried_by == Retrier::ClientWithNewSession)
            .map(|(code, _)| code)
            .collect();
        assert_eq!(renewed, ["InvalidSecurityToken.Expired"]);
        // Otherwise the usual row of its class: the caller's, slowly, if renewing did not help.
        assert_eq!(
            Policy {
                retried_by: Retrier::Caller,
                ..policy(400, "InvalidSecurityToken.Expired")
            },
            Policy::of_class(C::NeedsOutsideAction)
        );
        // Its siblings and look-alikes: a token that is not the key's or not a token, a key
        // without one, a request timestamp out of the window, an unknown token code.
        for code in [
            "InvalidSecurityToken.MismatchWithAccessKey",
            "InvalidSecurityToken.Malformed",
            "MissingSecurityToken",
            "InvalidTimeStamp.Expired",
            "InvalidSecurityToken.Revoked",
        ] {
            assert_eq!(policy(400, code).retried_by, Retrier::Caller, "{code}");
        }
    }

    #[test]
    fn a_passed_dry_run_is_never_retried() {
        let p = policy(400, "DryRunOperation");
        assert_eq!(p.retried_by, Retrier::Caller);
        assert!(!p.class.is_retryable_by_client());
        assert!(p.refuses_create, "a dry run creates nothing");
        assert_eq!(p.gone, Gone::No);
    }

    /// The lists the old `classify` had, with the class each code had there.
    const OLD_LISTS: &[(ErrorClass, &[&str])] = &[
        (
            ErrorClass::GatewayBusy,
            &[
                "VpnGateway.Configuring",
                "TaskConflict",
                "VpnTask.CONFLICT",
                "Appliance.Configuring",
                "VpnConnection.Configuring",
                "VpnRouteEntry.Configuring",
            ],
        ),
        (
            ErrorClass::Throttled,
            &[
                "Throttling",
                "Throttling.User",
                "Throttling.Api",
                "Rejected.Throttling",
            ],
        ),
        (
            ErrorClass::Transient,
            &[
                "InternalError",
                "ServiceUnavailable",
                "UnknownError",
                "SignatureNonceUsed",
            ],
        ),
        (
            ErrorClass::NeedsSpecChange,
            &[
                "VpnRouteEntry.InvalidWeight",
                "IllegalParam.RouteDest",
                "OperationFailed.InvalidCidrBlock",
                "VpnPbrRouteEntryPriority.NotSupport",
                "VpnRouteEntry.BackupRoute",
                "VpnRouteEntry.Conflict",
                "VpnRouteEntry.ConflictSSL",
                "OperationFailed.RouteConflict",
            ],
        ),
        (
            ErrorClass::NeedsOutsideAction,
            &[
                "Forbidden",
                "Forbbiden.SubUser",
                "VpnGateway.FinancialLocked",
                "Resource.QuotaFull",
                "QuotaExceeded.VpnRouteEntry",
                "InvalidVpnGatewayInstanceId.NotFound",
                "InvalidNextHop.NotFound",
                "InvalidVpnGatewayId.NotFound",
                "InvalidVpnInstanceId.NotFound",
                "InvalidVpnConnectionInstanceId.NotFound",
                "INSTANCE_NOT_EXISTS",
                "InvalidAccessKeyId.NotFound",
                "InvalidAccessKeyId.Inactive",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "IncompleteSignature",
                "InvalidSignatureMethod",
                "InvalidTimeStamp.Format",
                "InvalidTimeStamp.Expired",
                "InvalidSecurityToken.Expired",
                "InvalidSecurityToken.Malformed",
                "InvalidSecurityToken.MismatchWithAccessKey",
                "UnsupportedHTTPMethod",
                "InvalidApi.NotFound",
                "InvalidAction.NotFound",
                "InvalidRegionId",
                "NoPermission",
                // Not listed before, but classified so by the fallback.
                "InvalidRegionId.NotFound",
            ],
        ),
        (ErrorClass::AlreadyExists, &["VpnRouteEntry.AlreadyExists"]),
        (
            ErrorClass::NotFound,
            &[
                "InvalidRouteEntry.NotFound",
                "VpnRouteEntry.NotFound",
                "InvalidVpnPbrRouteEntry.NotFound",
                "VpnPbrRouteEntry.NotFound",
            ],
        ),
    ];

    #[test]
    fn old_codes_keep_their_class() {
        let mut seen = 0;
        for (class, codes) in OLD_LISTS {
            for code in *codes {
                assert_eq!(classify(400, code), *class, "{code}");
                seen += 1;
            }
        }
        // The old lists (with the one new gateway code) plus the moved busy code, the dry-run
        // answer and the client's inconsistent list are the table.
        assert_eq!(seen + 3, TABLE.len());
        // The one deliberate change: a gateway being deleted is no longer "busy".
        assert_eq!(
            classify(400, "IncorrectStatus.VpnGateway"),
            ErrorClass::NeedsOutsideAction
        );
    }

    /// Every row of the error table on the API page of CreateVpnPbrRouteEntry, by HTTP status.
    const SEED_TABLE: &[(u16, &[(&str, ErrorClass)])] = &[
        (
            400,
            &[
                ("Resource.QuotaFull", C::NeedsOutsideAction),
                ("VpnGateway.Configuring", C::GatewayBusy),
                ("VpnGateway.FinancialLocked", C::NeedsOutsideAction),
                ("VpnRouteEntry.AlreadyExists", C::AlreadyExists),
                ("VpnRouteEntry.Conflict", C::NeedsSpecChange),
                ("VpnRouteEntry.ConflictSSL", C::NeedsSpecChange),
                ("VpnRouteEntry.BackupRoute", C::NeedsSpecChange),
                ("VpnRouteEntry.InvalidWeight", C::NeedsSpecChange),
                ("InvalidNextHop.NotFound", C::NeedsOutsideAction),
                ("IllegalParam.RouteDest", C::NeedsSpecChange),
                ("OperationFailed.RouteConflict", C::NeedsSpecChange),
                ("OperationFailed.InvalidCidrBlock", C::NeedsSpecChange),
                ("QuotaExceeded.VpnRouteEntry", C::NeedsOutsideAction),
                ("VpnPbrRouteEntryPriority.NotSupport", C::NeedsSpecChange),
                ("TaskConflict", C::GatewayBusy),
            ],
        ),
        (
            403,
            &[
                ("Forbbiden.SubUser", C::NeedsOutsideAction),
                ("Forbidden", C::NeedsOutsideAction),
            ],
        ),
        (
            404,
            &[(
                "InvalidVpnGatewayInstanceId.NotFound",
                C::NeedsOutsideAction,
            )],
        ),
    ];

    #[test]
    fn every_seed_code_is_classified() {
        for (status, rows) in SEED_TABLE {
            for (code, class) in *rows {
                assert_eq!(classify(*status, code), *class, "{code}");
            }
        }
    }

    #[test]
    fn unknown_codes_fall_back_by_status_and_shape() {
        let cases: &[(u16, &str, ErrorClass)] = &[
            // Throttling by prefix, infix or 429, before any status rule.
            (400, "Throttling.Something", C::Throttled),
            (500, "Throttling.Something", C::Throttled),
            (400, "Flow.Throttling", C::Throttled),
            (429, "Whatever", C::Throttled),
            // Any 5xx.
            (500, "BrandNew.Code", C::Transient),
            (502, "BadGateway", C::Transient),
            (503, "IllegalParam.Foo", C::Transient),
            // Permissions, quota, credentials, signatures, 401/403.
            (400, "Forbidden.Something", C::NeedsOutsideAction),
            (400, "Forbbiden.Other", C::NeedsOutsideAction),
            (400, "QuotaExceeded.Something", C::NeedsOutsideAction),
            (400, "InvalidAccessKeySecret", C::NeedsOutsideAction),
            (400, "InvalidSecurityToken.New", C::NeedsOutsideAction),
            (400, "SignatureExpired", C::NeedsOutsideAction),
            (401, "IllegalParam.Foo", C::NeedsOutsideAction),
            (403, "VpnRouteEntry.InvalidFoo", C::NeedsOutsideAction),
            // Request shape.
            (400, "IllegalParam.RouteSource", C::NeedsSpecChange),
            (400, "InvalidParameter", C::NeedsSpecChange),
            (400, "OperationFailed.InvalidFoo", C::NeedsSpecChange),
            (400, "VpnRouteEntry.InvalidSource", C::NeedsSpecChange),
            // A route-ish thing not found.
            (404, "InvalidPbrRoute.NotFound", C::NotFound),
            (400, "RouteTable.NotFound", C::NotFound),
            // Anything else.
            (404, "InvalidThing.NotFound", C::NeedsOutsideAction),
            (400, "BrandNew.Code", C::NeedsOutsideAction),
            (404, "Http404", C::NeedsOutsideAction),
        ];
        for (status, code, class) in cases {
            assert!(
                TABLE.iter().all(|(known, _)| known != code),
                "{code} is listed"
            );
            assert_eq!(policy(*status, code), Policy::of_class(*class), "{code}");
        }
    }
}
