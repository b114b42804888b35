//! A failed reconcile: the failures that go through the per-object backoff, and the status and
//! event each becomes.

use std::sync::Arc;

use super::ready_reason;
use crate::api::v1alpha1::{ConditionStatus, VpnPbrRoute};
use crate::controller::error::{Error, Unproven};
use crate::controller::event::EventNote;
use crate::controller::reason::Reason;
use crate::controller::status::{self, CondValue, StatusReport};
use alicloud_vpc_client::{CloudError, ErrorClass};

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

/// The status and the event of a failed reconcile of `route` (the newest copy of it).
/// `credentials_fallback` says why a cleanup ran with other credentials than the route's.
pub(crate) fn failure(
    route: &VpnPbrRoute,
    err: &Error,
    credentials_fallback: Option<&str>,
) -> (StatusReport, Option<EventNote>) {
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
    let report = StatusReport {
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
