//! The one error type of the cloud layer.

use std::fmt;
use std::time::Duration;

use crate::class::ErrorClass;
use crate::credentials::CredentialsError;
use crate::policy::{Gone, LIST_INCONSISTENT, Policy, policy};

/// An error answer of the cloud: HTTP status plus the body's `Code`, `Message`, `RequestId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub action: &'static str,
    pub http_status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub host_id: Option<String>,
    pub recommend: Option<String>,
    /// How long the cloud asked us to wait (from the `x-ratelimit-*` headers), if it said.
    pub retry_after: Option<Duration>,
    pub class: ErrorClass,
}

/// Every failure of the cloud layer. Cheap to clone, so one failed gateway read can be handed
/// to every route waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// The cloud answered with an error code.
    #[error(
        "{action}: {code} (HTTP {status}): {message}{rid}",
        action = .0.action,
        code = .0.code,
        status = .0.http_status,
        message = .0.message,
        rid = RequestIdSuffix(.0.request_id.as_deref())
    )]
    Api(Box<ApiError>),

    /// No answer: connect failure, timeout, broken connection. The URL is stripped from the
    /// source because it is not needed and must never carry signed parameters into logs.
    #[error("{action}: {what}: {source}")]
    Transport {
        action: &'static str,
        what: TransportFailure,
        #[source]
        source: std::sync::Arc<reqwest::Error>,
    },

    /// The cloud answered, but the body is not what the API promises (bad JSON/XML, a required
    /// field missing, a wrong type).
    #[error("{action}: malformed response (HTTP {http_status}): {detail}{rid}", rid = RequestIdSuffix(request_id.as_deref()))]
    MalformedResponse {
        action: &'static str,
        http_status: u16,
        request_id: Option<String>,
        detail: String,
    },

    /// The pages of a list never added up to one whole list: entries kept changing or moving
    /// between the page reads (`src/listing.rs`). Nothing may be concluded from what was read
    /// (an entry not listed is not known to be gone); read again later.
    #[error(
        "{action}: the pages did not add up to one whole list in {reads} reads (TotalCount \
         {total_count}, at most {proven} entries proven at one moment): entries changed or \
         moved between the pages; waiting to read the list again, nothing is concluded from a \
         partial one{rid}",
        rid = RequestIdSuffix(request_id.as_deref())
    )]
    ListInconsistent {
        action: &'static str,
        reads: u32,
        total_count: u32,
        proven: u32,
        /// RequestId of the last page read.
        request_id: Option<String>,
    },

    /// Credentials could not be obtained (nothing configured, STS refused, file unreadable).
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),

    /// The region id cannot be part of an endpoint host name (it comes from a route's spec).
    #[error("invalid region id {0:?}")]
    InvalidRegion(String),

    /// The client was configured wrongly (bad endpoint URL, TLS setup failure).
    #[error("cloud client configuration: {0}")]
    Config(String),
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    Timeout,
    Connect,
    Other,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connection failed",
            Self::Other => "request failed",
        })
    }
}

struct RequestIdSuffix<'a>(Option<&'a str>);

impl fmt::Display for RequestIdSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " [RequestId {id}]"),
            None => Ok(()),
        }
    }
}

impl CloudError {
    pub(crate) fn transport(action: &'static str, source: reqwest::Error) -> Self {
        let what = if source.is_timeout() {
            TransportFailure::Timeout
        } else if source.is_connect() {
            TransportFailure::Connect
        } else {
            TransportFailure::Other
        };
        Self::Transport {
            action,
            what,
            source: std::sync::Arc::new(source.without_url()),
        }
    }

    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(e) => e.class,
            Self::Transport { .. } | Self::MalformedResponse { .. } => ErrorClass::Transient,
            Self::ListInconsistent { .. } => policy(200, LIST_INCONSISTENT).class,
            Self::Credentials(e) => e.class(),
            Self::InvalidRegion(_) => ErrorClass::NeedsSpecChange,
            Self::Config(_) => ErrorClass::NeedsOutsideAction,
        }
    }

    /// The cloud's error code, or a stable PascalCase word for failures without one
    /// (`Timeout`, `ConnectionFailed`, `MalformedResponse`, `CredentialsUnavailable`, ...).
    /// Suitable as a condition reason and a metrics label.
    pub fn code(&self) -> &str {
        match self {
            Self::Api(e) => &e.code,
            Self::Transport { what, .. } => match what {
                TransportFailure::Timeout => "Timeout",
                TransportFailure::Connect => "ConnectionFailed",
                TransportFailure::Other => "RequestFailed",
            },
            Self::MalformedResponse { .. } => "MalformedResponse",
            Self::ListInconsistent { .. } => LIST_INCONSISTENT,
            Self::Credentials(e) => e.code(),
            Self::InvalidRegion(_) => "InvalidRegionId",
            Self::Config(_) => "ClientConfiguration",
        }
    }

    /// The cloud's message (for conditions and events), or this error's text.
    pub fn message(&self) -> String {
        match self {
            Self::Api(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The RAM action a permission refusal (HTTP 403 `Forbidden*`) is about, as a policy names
    /// it (`vpc:DeleteVpnPbrRouteEntry`); `None` for other failures.
    pub fn missing_permission(&self) -> Option<String> {
        match self {
            Self::Api(e) if e.http_status == 403 || e.code.starts_with("Forb") => {
                let service = if e.action == "AssumeRoleWithOIDC" {
                    "sts"
                } else {
                    "vpc"
                };
                Some(format!("{service}:{}", e.action))
            }
            _ => None,
        }
    }

    /// The RequestId the cloud gave this answer, for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(e) => e.request_id.as_deref(),
            Self::MalformedResponse { request_id, .. }
            | Self::ListInconsistent { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => Some(e.http_status),
            Self::MalformedResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// How long the cloud asked us to wait before the next call, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// The API answer, if the cloud answered with an error code.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Who retries, how fast, whether a create is settled, whether something is gone: the row of
    /// `src/policy.rs` for the cloud's code, or the usual row of this error's class.
    pub fn policy(&self) -> Policy {
        match self {
            Self::Api(e) => {
                let row = policy(e.http_status, &e.code);
                // An answer built by hand may carry another class than its code's; the stored
                // class wins, so `class()` and `policy().class` always agree.
                if row.class == e.class {
                    row
                } else {
                    Policy::of_class(e.class)
                }
            }
            // Its own row: a code of the client's, not of the cloud.
            Self::ListInconsistent { .. } => policy(200, LIST_INCONSISTENT),
            // Timeouts, garbled answers, credentials (transient, throttled or needing a person),
            // a bad region (a spec error; not a gone gateway) and configuration.
            other => Policy::of_class(other.class()),
        }
    }

    /// True when the thing the call was about is gone: the entry or the gateway itself.
    /// Cleanup treats both as "deleted".
    pub fn is_gone(&self) -> bool {
        self.policy().gone != Gone::No
    }

    /// True when the route entry does not exist.
    pub fn is_entry_gone(&self) -> bool {
        self.policy().gone == Gone::Entry
    }

    /// True when the gateway (or its region) does not exist, or is being deleted.
    pub fn is_gateway_gone(&self) -> bool {
        self.policy().gone == Gone::Gateway
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Pace, Retrier};

    fn api(http_status: u16, code: &str, class: ErrorClass) -> CloudError {
        CloudError::Api(Box::new(ApiError {
            action: "DeleteVpnPbrRouteEntry",
            http_status,
            code: code.to_owned(),
            message: String::new(),
            request_id: None,
            host_id: None,
            recommend: None,
            retry_after: None,
            class,
        }))
    }

    #[test]
    fn policy_of_each_variant() {
        let malformed = CloudError::MalformedResponse {
            action: "X",
            http_status: 200,
            request_id: None,
            detail: String::new(),
        };
        let cases: Vec<(CloudError, ErrorClass, Retrier, Pace, Gone)> = vec![
            (
                api(400, "VpnRouteEntry.Conflict", ErrorClass::NeedsSpecChange),
                ErrorClass::NeedsSpecChange,
                Retrier::Caller,
                Pace::Busy,
                Gone::No,
            ),
            (
                malformed,
                ErrorClass::Transient,
                Retrier::Client,
                Pace::Transient,
                Gone::No,
            ),
            (
                CloudError::Credentials(CredentialsError::StsUnavailable("down".into())),
                ErrorClass::Transient,
                Retrier::Client,
                Pace::Transient,
                Gone::No,
            ),
            (
                CloudError::Credentials(CredentialsError::NotConfigured("none".into())),
                ErrorClass::NeedsOutsideAction,
                Retrier::Caller,
                Pace::VerySlow,
                Gone::No,
            ),
            (
                CloudError::Credentials(CredentialsError::Sts {
                    action: "AssumeRole",
                    http_status: 400,
                    code: "Throttling.User".into(),
                    message: String::new(),
                    request_id: None,
                }),
                ErrorClass::Throttled,
                Retrier::Client,
                Pace::Throttled,
                Gone::No,
            ),
            (
                CloudError::ListInconsistent {
                    action: "DescribeVpnPbrRouteEntries",
                    reads: 72,
                    total_count: 140,
                    proven: 139,
                    request_id: None,
                },
                ErrorClass::Transient,
                Retrier::Client,
                Pace::Transient,
                Gone::No,
            ),
            (
                CloudError::InvalidRegion("cn hangzhou".into()),
                ErrorClass::NeedsSpecChange,
                Retrier::Caller,
                Pace::Slow,
                Gone::No,
            ),
            (
                CloudError::Config("bad url".into()),
                ErrorClass::NeedsOutsideAction,
                Retrier::Caller,
                Pace::VerySlow,
                Gone::No,
            ),
        ];
        for (err, class, retried_by, pace, gone) in cases {
            let p = err.policy();
            assert_eq!(
                (p.class, p.retried_by, p.pace, p.gone),
                (class, retried_by, pace, gone),
                "{err}"
            );
            assert_eq!(err.class(), p.class, "{err}");
        }
    }

    #[test]
    fn a_stored_class_wins_over_the_code() {
        let e = api(400, "VpnRouteEntry.Conflict", ErrorClass::GatewayBusy);
        assert_eq!(e.policy(), Policy::of_class(ErrorClass::GatewayBusy));
    }

    #[test]
    fn gone_entry_or_gateway() {
        let cases = [
            (404, "VpnPbrRouteEntry.NotFound", true, false),
            (404, "InvalidPbrRoute.NotFound", true, false),
            (404, "InvalidVpnGatewayInstanceId.NotFound", false, true),
            (400, "INSTANCE_NOT_EXISTS", false, true),
            (400, "IncorrectStatus.VpnGateway", false, true),
            (404, "InvalidRegionId.NotFound", false, true),
            (400, "InvalidNextHop.NotFound", false, false),
            (400, "VpnGateway.Configuring", false, false),
        ];
        for (status, code, entry, gateway) in cases {
            let e = api(status, code, crate::policy::classify(status, code));
            assert_eq!(e.is_entry_gone(), entry, "{code}");
            assert_eq!(e.is_gateway_gone(), gateway, "{code}");
            assert_eq!(e.is_gone(), entry || gateway, "{code}");
        }
        assert!(!CloudError::InvalidRegion("x y".into()).is_gone());
    }
}
