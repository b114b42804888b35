//! The classes of failure a caller acts on; `policy.rs` maps error codes onto them.

use std::fmt;

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The gateway is applying another change: wait until it is `active`, back off with jitter.
    GatewayBusy,
    /// The API or account is rate-limited: back off; the client already slowed its limiter.
    Throttled,
    /// HTTP 5xx, timeouts, connection failures, garbled answers: retry with backoff.
    Transient,
    /// The request itself is wrong for the cloud: retry only when the spec changes (or slowly).
    NeedsSpecChange,
    /// Permissions, quota, billing, credentials, a missing gateway: someone else must act.
    NeedsOutsideAction,
    /// The entry already exists: adopt it.
    AlreadyExists,
    /// The entry does not exist.
    NotFound,
}

impl ErrorClass {
    /// A stable PascalCase word for metrics labels and condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayBusy => "GatewayBusy",
            Self::Throttled => "Throttled",
            Self::Transient => "Transient",
            Self::NeedsSpecChange => "NeedsSpecChange",
            Self::NeedsOutsideAction => "NeedsOutsideAction",
            Self::AlreadyExists => "AlreadyExists",
            Self::NotFound => "NotFound",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttled_and_transient_are_retried_by_the_client() {
        for (class, by_client) in [
            (ErrorClass::GatewayBusy, false),
            (ErrorClass::Throttled, true),
            (ErrorClass::Transient, true),
            (ErrorClass::NeedsSpecChange, false),
            (ErrorClass::NeedsOutsideAction, false),
            (ErrorClass::AlreadyExists, false),
            (ErrorClass::NotFound, false),
        ] {
            assert_eq!(class.is_retryable_by_client(), by_client, "{class}");
        }
    }
}
