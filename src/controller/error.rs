//! The controller layer's error type.

use alicloud_vpc_client::{CloudError, ErrorClass};

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes {op}")]
    Kube {
        op: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    /// A cloud call failed.
    #[error("cloud {op}")]
    Cloud {
        op: &'static str,
        #[source]
        source: std::sync::Arc<CloudError>,
    },
    /// The cloud refused a create outright (nothing is in flight any more).
    #[error("cloud refused the create")]
    CreateRefused(#[source] std::sync::Arc<CloudError>),
    /// The route's Secret is missing or unusable.
    #[error("credentials Secret {name}: {reason}")]
    Secret { name: String, reason: String },
    /// The object lacks something the apiserver always sets (namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),
}

impl Error {
    pub fn kube(op: &'static str, source: kube::Error) -> Self {
        Self::Kube {
            op,
            source: Box::new(source),
        }
    }

    /// What to do about it, in the cloud's terms.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Kube { source, .. } => match source.as_ref() {
                kube::Error::Api(s) if s.code == 403 || s.code == 401 => {
                    ErrorClass::NeedsOutsideAction
                }
                _ => ErrorClass::Transient,
            },
            Self::Cloud { source, .. } | Self::CreateRefused(source) => source.class(),
            Self::Secret { .. } | Self::MissingField(_) => ErrorClass::NeedsOutsideAction,
        }
    }

    /// The class that picks the retry delay: conflicts with a partner entry (an active/standby
    /// pair mid-flip) clear without a spec change, so they retry like a busy gateway.
    pub fn backoff_class(&self) -> ErrorClass {
        const CLEARS_ITSELF: [&str; 4] = [
            "VpnRouteEntry.BackupRoute",
            "VpnRouteEntry.Conflict",
            "OperationFailed.RouteConflict",
            "VpnRouteEntry.ConflictSSL",
        ];
        if CLEARS_ITSELF.contains(&self.reason().as_str()) {
            ErrorClass::GatewayBusy
        } else {
            self.class()
        }
    }

    /// A stable reason for conditions, events and metrics: the cloud's code where there is one.
    pub fn reason(&self) -> String {
        match self {
            Self::Kube { .. } => "KubernetesApiError".to_owned(),
            Self::Cloud { source, .. } | Self::CreateRefused(source) => source.code().to_owned(),
            Self::Secret { .. } => "CredentialsSecretInvalid".to_owned(),
            Self::MissingField(_) => "InvalidObject".to_owned(),
        }
    }

    /// A short message for conditions and events (never a secret).
    pub fn message(&self) -> String {
        match self {
            Self::Kube { op, source } => format!("kubernetes {op}: {source}"),
            Self::Cloud { source, .. } | Self::CreateRefused(source) => {
                let mut m = source.message();
                if let Some(id) = source.request_id() {
                    m.push_str(&format!(" (RequestId {id})"));
                }
                m
            }
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
