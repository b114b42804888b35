//! The controller layer's error type.

use super::reason::Reason;
use crate::api::v1alpha1::{CREDENTIALS_LABEL, CREDENTIALS_LABEL_VALUE};
use alicloud_vpc_client::{CloudError, ErrorClass, Policy};

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
    /// The route's Secret lacks the credentials label: the operator does not read its keys.
    #[error(
        "credentials Secret {name} is not labelled {label}={value}, so it is not used; label \
         it: kubectl label secret -n {namespace} {name} {label}={value}",
        label = CREDENTIALS_LABEL,
        value = CREDENTIALS_LABEL_VALUE
    )]
    SecretUnlabelled { namespace: String, name: String },
    /// A `VpnAccount`'s credentials cannot be had, or the account is gone.
    #[error("VpnAccount {name}: {why}")]
    Account {
        name: String,
        reason: Reason,
        why: String,
    },
    /// The object lacks something the apiserver always sets (namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// A cleanup has only credentials of another account than the entry's (or of one it cannot
    /// tell): their answers prove nothing about the entry.
    #[error("{0}")]
    AccountUnproven(Unproven),
}

/// Why a cleanup cannot take the answers it has as proof about the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unproven {
    /// The account status recorded for the entry, if any.
    pub(crate) entry_account: Option<String>,
    /// The account of the credentials the cleanup has, if known.
    pub(crate) used_account: Option<String>,
    /// The cloud's answer that would otherwise end the cleanup (a gateway-gone code).
    pub(crate) answer: Option<String>,
}

impl std::fmt::Display for Unproven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = match &self.used_account {
            Some(a) => format!("account {a}"),
            None => "an account that could not be told".to_owned(),
        };
        let answered = self
            .answer
            .as_ref()
            .map(|code| format!(" (they answered {code})"))
            .unwrap_or_default();
        match &self.entry_account {
            Some(entry) => write!(
                f,
                "the cloud entry is in account {entry}, and the credentials this cleanup has act \
                 for {used}, whose answers say nothing about account {entry}{answered}; give the \
                 operator credentials of account {entry} (a Secret cannot be restored in a \
                 namespace being deleted)"
            ),
            None => write!(
                f,
                "the credentials this cleanup has are not the route's own and act for \
                 {used}{answered}, and the account of the cloud entry was never recorded, so \
                 that proves nothing about it; give the operator credentials of the entry's \
                 account (a Secret cannot be restored in a namespace being deleted)"
            ),
        }
    }
}

impl Error {
    pub(crate) fn kube(op: &'static str, source: kube::Error) -> Self {
        Self::Kube {
            op,
            source: Box::new(source),
        }
    }

    /// What to do about it, in the cloud's terms: class, who retries, at what pace. Cloud
    /// failures take their row of the client's table (`crates/alicloud-vpc-client/src/policy.rs`);
    /// the others take the usual row of the class they amount to.
    pub(crate) fn policy(&self) -> Policy {
        match self {
            Self::Kube { source, .. } => match source.as_ref() {
                // RBAC or the service account token: someone must fix the deployment.
                kube::Error::Api(s) if s.code == 403 || s.code == 401 => {
                    Policy::of_class(ErrorClass::NeedsOutsideAction)
                }
                _ => Policy::of_class(ErrorClass::Transient),
            },
            Self::Cloud { source, .. } | Self::CreateRefused(source) => source.policy(),
            Self::Secret { .. }
            | Self::SecretUnlabelled { .. }
            | Self::Account { .. }
            | Self::MissingField(_)
            | Self::AccountUnproven(_) => Policy::of_class(ErrorClass::NeedsOutsideAction),
        }
    }

    /// What to do about it, in the cloud's terms.
    pub(crate) fn class(&self) -> ErrorClass {
        self.policy().class
    }

    /// A stable reason for conditions, events and metrics: the cloud's code where there is one.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            Self::Kube { .. } => Reason::KubernetesApiError,
            Self::Cloud { source, .. } | Self::CreateRefused(source) => {
                Reason::Cloud(source.code().to_owned())
            }
            Self::Secret { .. } => Reason::CredentialsSecretInvalid,
            Self::SecretUnlabelled { .. } => Reason::CredentialsSecretUnlabelled,
            Self::Account { reason, .. } => reason.clone(),
            Self::MissingField(_) => Reason::InvalidObject,
            Self::AccountUnproven(_) => Reason::AccountUnproven,
        }
    }

    /// A short message for conditions and events (never a secret).
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Kube { op, source } => format!("kubernetes {op}: {source}"),
            Self::Cloud { source, .. } | Self::CreateRefused(source) => {
                let mut m = match source.missing_permission() {
                    Some(action) => format!(
                        "the RAM identity is not allowed to call {action}; grant it in the RAM \
                         policy ({})",
                        source.message()
                    ),
                    None => source.message(),
                };
                if let Some(id) = source.request_id() {
                    m.push_str(&format!(" (RequestId {id})"));
                }
                m
            }
            other => other.to_string(),
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use alicloud_vpc_client::{ApiError, Gone, Pace, classify};

    use super::*;

    fn kube_api(code: u16) -> Error {
        let status = kube::core::Status::failure("denied", "Forbidden").with_code(code);
        Error::kube("get", kube::Error::Api(Box::new(status)))
    }

    fn cloud(code: &str) -> Arc<CloudError> {
        Arc::new(CloudError::Api(Box::new(ApiError {
            action: "CreateVpnPbrRouteEntry",
            http_status: 400,
            code: code.to_owned(),
            message: String::new(),
            request_id: None,
            host_id: None,
            recommend: None,
            retry_after: None,
            class: classify(400, code),
        })))
    }

    #[test]
    fn an_unlabelled_secret_names_itself_and_the_label_to_add() {
        let e = Error::SecretUnlabelled {
            namespace: "team-a".into(),
            name: "creds".into(),
        };
        assert_eq!(e.reason(), Reason::CredentialsSecretUnlabelled);
        assert_eq!(
            e.message(),
            "credentials Secret creds is not labelled vpn.alicloud.dev/credentials=true, so it is \
             not used; label it: kubectl label secret -n team-a creds \
             vpn.alicloud.dev/credentials=true"
        );
    }

    #[test]
    fn policy_of_each_variant() {
        let cases = [
            (
                kube_api(403),
                ErrorClass::NeedsOutsideAction,
                Pace::VerySlow,
            ),
            (
                kube_api(401),
                ErrorClass::NeedsOutsideAction,
                Pace::VerySlow,
            ),
            (kube_api(409), ErrorClass::Transient, Pace::Transient),
            (
                Error::Secret {
                    name: "creds".into(),
                    reason: "missing".into(),
                },
                ErrorClass::NeedsOutsideAction,
                Pace::VerySlow,
            ),
            (
                Error::SecretUnlabelled {
                    namespace: "team-a".into(),
                    name: "creds".into(),
                },
                ErrorClass::NeedsOutsideAction,
                Pace::VerySlow,
            ),
            (
                Error::MissingField("uid"),
                ErrorClass::NeedsOutsideAction,
                Pace::VerySlow,
            ),
            (
                Error::Cloud {
                    op: "mutation",
                    source: cloud("VpnGateway.Configuring"),
                },
                ErrorClass::GatewayBusy,
                Pace::Busy,
            ),
            // A conflict that clears on its own: a spec error retried at the busy pace.
            (
                Error::CreateRefused(cloud("VpnRouteEntry.Conflict")),
                ErrorClass::NeedsSpecChange,
                Pace::Busy,
            ),
            (
                Error::CreateRefused(cloud("IllegalParam.RouteDest")),
                ErrorClass::NeedsSpecChange,
                Pace::Slow,
            ),
        ];
        for (err, class, pace) in cases {
            let p = err.policy();
            assert_eq!((p.class, p.pace), (class, pace), "{err:?}");
            assert_eq!(err.class(), class, "{err:?}");
        }
    }

    #[test]
    fn cloud_errors_keep_their_whole_row() {
        let source = cloud("IncorrectStatus.VpnGateway");
        let err = Error::Cloud {
            op: "delete",
            source: source.clone(),
        };
        assert_eq!(err.policy(), source.policy());
        assert_eq!(err.policy().gone, Gone::Gateway);
    }

    #[test]
    fn a_permission_refusal_names_the_ram_action() {
        let source = Arc::new(CloudError::Api(Box::new(ApiError {
            action: "DeleteVpnPbrRouteEntry",
            http_status: 403,
            code: "Forbidden".to_owned(),
            message: "User not authorized to operate on the specified resource.".to_owned(),
            request_id: Some("req-7".to_owned()),
            host_id: None,
            recommend: None,
            retry_after: None,
            class: classify(403, "Forbidden"),
        })));
        let err = Error::Cloud {
            op: "delete",
            source,
        };
        let m = err.message();
        assert!(m.contains("vpc:DeleteVpnPbrRouteEntry"), "{m}");
        assert!(m.contains("req-7"), "{m}");
        assert_eq!(err.reason().as_str(), "Forbidden");
        assert!(
            cloud("InvalidNextHop.NotFound")
                .missing_permission()
                .is_none()
        );
    }
}
