//! The vocabulary of conditions and events: every reason the controller writes, as one type.
//! Reasons read back from status are parsed into it, so no decision compares strings.

use std::fmt;

/// Why a condition has its value, or why an event was published.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Ready=True: the cloud entry exists and matches the spec.
    Available,
    /// Synced=True: nothing left to do.
    Synced,
    /// The create is queued or in flight.
    Creating,
    /// `Reconciling=True`: a change of the entry is under way while `Ready` stays as it was
    /// (the generation it describes, or the entry before the change).
    Updating,
    /// The spec breaks a rule; no cloud call.
    InvalidSpec,
    /// The paused annotation is set; no cloud call.
    Paused,
    /// An older object claims the same entry.
    DuplicateRoute,
    /// An older object with the same gateway, destination and next hop wants the other
    /// `publishVpc`.
    PublishConflict,
    /// `ObserveOnly`: no such entry in the cloud.
    NotFound,
    /// `ObserveOnly`: the cloud differs from the spec.
    Drift,
    /// The entry exists and this object did not make it; it adopts it only with consent.
    AlreadyExists,
    /// A deletion cannot remove the cloud entry until someone acts (credentials, permissions).
    CleanupBlocked,
    /// A cleanup has only credentials of another account than the entry's: their answers
    /// prove nothing about it (the cause under `CleanupBlocked`, and a metrics result).
    AccountUnproven,
    /// Events of changes the operator made or found.
    Created,
    Updated,
    Adopted,
    Deleted,
    /// A Kubernetes API call failed.
    KubernetesApiError,
    /// The route's credentials Secret is missing or unusable.
    CredentialsSecretInvalid,
    /// The route's credentials Secret lacks the label that makes it usable.
    CredentialsSecretUnlabelled,
    /// The object lacks a field the apiserver always sets.
    InvalidObject,
    /// No account is named (`spec.accountRef`, the namespace's default) and the operator
    /// requires one (`--require-account`).
    AccountRequired,
    /// The account the route names does not exist (or is being deleted).
    AccountNotFound,
    /// The account does not admit the route: its namespace, region or gateway.
    AccountForbidden,
    /// The route asks to adopt an entry, and its account does not allow adoption.
    AdoptionForbidden,
    /// The account's credentials cannot be had (a source this operator cannot use yet).
    CredentialsUnavailable,
    /// A deleted account that routes still hold entries in: it stays until they are gone.
    AccountInUse,
    /// A cloud call failed: the cloud's error code (or the client's word for failures without
    /// one, such as `Timeout`).
    Cloud(String),
}

impl Reason {
    pub(crate) const NAMED: [Reason; 27] = [
        Reason::PublishConflict,
        Reason::AlreadyExists,
        Reason::Available,
        Reason::Synced,
        Reason::Creating,
        Reason::Updating,
        Reason::InvalidSpec,
        Reason::Paused,
        Reason::DuplicateRoute,
        Reason::NotFound,
        Reason::Drift,
        Reason::CleanupBlocked,
        Reason::AccountUnproven,
        Reason::Created,
        Reason::Updated,
        Reason::Adopted,
        Reason::Deleted,
        Reason::KubernetesApiError,
        Reason::CredentialsSecretInvalid,
        Reason::CredentialsSecretUnlabelled,
        Reason::InvalidObject,
        Reason::AccountRequired,
        Reason::AccountNotFound,
        Reason::AccountForbidden,
        Reason::AdoptionForbidden,
        Reason::CredentialsUnavailable,
        Reason::AccountInUse,
    ];

    /// The word written to conditions and events.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Available => "Available",
            Self::Synced => "Synced",
            Self::Creating => "Creating",
            Self::Updating => "Updating",
            Self::InvalidSpec => "InvalidSpec",
            Self::Paused => "Paused",
            Self::DuplicateRoute => "DuplicateRoute",
            Self::PublishConflict => "PublishConflict",
            Self::NotFound => "NotFound",
            Self::Drift => "Drift",
            Self::AlreadyExists => "AlreadyExists",
            Self::CleanupBlocked => "CleanupBlocked",
            Self::AccountUnproven => "AccountUnproven",
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::Adopted => "Adopted",
            Self::Deleted => "Deleted",
            Self::KubernetesApiError => "KubernetesApiError",
            Self::CredentialsSecretInvalid => "CredentialsSecretInvalid",
            Self::CredentialsSecretUnlabelled => "CredentialsSecretUnlabelled",
            Self::InvalidObject => "InvalidObject",
            Self::AccountRequired => "AccountRequired",
            Self::AccountNotFound => "AccountNotFound",
            Self::AccountForbidden => "AccountForbidden",
            Self::AdoptionForbidden => "AdoptionForbidden",
            Self::CredentialsUnavailable => "CredentialsUnavailable",
            Self::AccountInUse => "AccountInUse",
            Self::Cloud(code) => code,
        }
    }

    /// A reason read back from status: one of ours, or else a cloud code.
    pub(crate) fn parse(s: &str) -> Reason {
        Self::NAMED
            .into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or_else(|| Reason::Cloud(s.to_owned()))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_reason_round_trips() {
        for r in Reason::NAMED {
            assert_eq!(Reason::parse(r.as_str()), r);
        }
        assert_eq!(
            Reason::parse("InvalidNextHop.NotFound"),
            Reason::Cloud("InvalidNextHop.NotFound".into())
        );
        assert_eq!(Reason::Cloud("Timeout".into()).to_string(), "Timeout");
    }
}
