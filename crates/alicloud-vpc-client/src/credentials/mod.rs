//! Credentials for signing calls: static keys, a route's Secret, the default chain
//! (environment, RRSA/OIDC, credentials file), a role of another account (`AssumeRole`), all
//! behind [`CredentialsProvider`] so refreshing
//! providers are transparent to the client.
//!
//! Secret values live in [`SecretString`], whose `Debug` and `Display` never show them.

mod assume_role;
mod chain;
mod file;
mod oidc;
mod session;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use assume_role::{AssumeRoleConfig, AssumeRoleProvider};
pub use chain::{ChainOptions, default_chain, default_chain_from};
pub use file::CredentialsFile;
pub use oidc::{OidcConfig, OidcProvider, sts_url};

use crate::class::ErrorClass;

/// A string that must not be shown: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; only for signing and outgoing requests.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One set of keys: an AccessKey pair, plus an STS token for temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: SecretString,
    security_token: Option<SecretString>,
    expiration: Option<jiff::Timestamp>,
}

impl Credentials {
    /// Long-lived AccessKey pair.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: SecretString::new(access_key_secret),
            security_token: None,
            expiration: None,
        }
    }

    /// Adds an STS security token (sent as `SecurityToken`).
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(SecretString::new(token));
        self
    }

    /// Records when temporary credentials stop working.
    pub fn with_expiration(mut self, expiration: jiff::Timestamp) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// Builds credentials from a Kubernetes Secret's data: keys `accessKeyId`,
    /// `accessKeySecret` and optional `securityToken`. Values are trimmed, because a trailing
    /// newline from `echo ... | kubectl create secret` would break every signature.
    pub fn from_secret_data<'a, I>(entries: I) -> Result<Self, CredentialsError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut map: BTreeMap<&str, &[u8]> = entries.into_iter().collect();
        let mut take = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match map.remove(key) {
                None => Ok(None),
                Some(bytes) => {
                    let s = std::str::from_utf8(bytes)
                        .map_err(|_| {
                            CredentialsError::Invalid(format!("Secret key {key} is not UTF-8"))
                        })?
                        .trim();
                    Ok((!s.is_empty()).then(|| s.to_owned()))
                }
            }
        };
        let id = take("accessKeyId")?
            .ok_or_else(|| CredentialsError::Invalid("Secret has no accessKeyId".into()))?;
        let secret = take("accessKeySecret")?
            .ok_or_else(|| CredentialsError::Invalid("Secret has no accessKeySecret".into()))?;
        let token = take("securityToken")?;
        let creds = Self::new(id, secret);
        Ok(match token {
            Some(t) => creds.with_security_token(t),
            None => creds,
        })
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn access_key_secret(&self) -> &SecretString {
        &self.access_key_secret
    }

    pub fn security_token(&self) -> Option<&SecretString> {
        self.security_token.as_ref()
    }

    pub fn expiration(&self) -> Option<jiff::Timestamp> {
        self.expiration
    }

    /// Temporary keys of an STS session (a token and an expiry), which a provider can renew.
    pub(crate) fn is_session(&self) -> bool {
        self.security_token.is_some() && self.expiration.is_some()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &self.access_key_secret)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "***"),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKeyId {} (secret ***", self.access_key_id)?;
        if self.security_token.is_some() {
            f.write_str(", STS token ***")?;
        }
        f.write_str(")")
    }
}

/// Why credentials could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    /// Nothing in the default chain is configured.
    #[error("no credentials found: {0}")]
    NotConfigured(String),
    /// Configured, but unusable (empty key, unreadable file, bad format).
    #[error("invalid credentials: {0}")]
    Invalid(String),
    /// STS refused `action` (`AssumeRoleWithOIDC`, `AssumeRole`) with the cloud's `code`: e.g.
    /// `NoPermission` (the role does not trust the caller, or the `ExternalId` is wrong),
    /// `EntityNotExist.Role`, `InvalidParameter.DurationSeconds`.
    #[error("STS {action} {code} (HTTP {http_status}): {message}")]
    Sts {
        action: &'static str,
        http_status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// STS could not be reached or sent garbage; retrying later may work.
    #[error("STS unavailable: {0}")]
    StsUnavailable(String),
}

impl CredentialsError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::StsUnavailable(_) => ErrorClass::Transient,
            Self::Sts {
                http_status, code, ..
            } => match crate::policy::classify(*http_status, code) {
                c @ (ErrorClass::Throttled | ErrorClass::Transient) => c,
                _ => ErrorClass::NeedsOutsideAction,
            },
            Self::NotConfigured(_) | Self::Invalid(_) => ErrorClass::NeedsOutsideAction,
        }
    }

    /// STS refused the keys the call was signed with as an expired session: by the policy
    /// table (`src/policy.rs`), a new session of the signing provider may be accepted.
    pub(crate) fn is_expired_session(&self) -> bool {
        matches!(self, Self::Sts { http_status, code, .. }
            if crate::policy::policy(*http_status, code).retried_by
                == crate::policy::Retrier::ClientWithNewSession)
    }

    pub fn code(&self) -> &str {
        match self {
            Self::NotConfigured(_) => "CredentialsNotConfigured",
            Self::Invalid(_) => "CredentialsInvalid",
            Self::Sts { code, .. } => code,
            Self::StsUnavailable(_) => "StsUnavailable",
        }
    }
}

/// A boxed future, so providers can be used as `Arc<dyn CredentialsProvider>`.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialsError>> + Send + 'a>>;

/// Hands out the credentials to sign the next call with. Providers that refresh (RRSA) or
/// reload (credentials file) do it inside `credentials`, so callers always get current keys.
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    fn credentials(&self) -> CredentialsFuture<'_>;

    /// Short name for logs (`static`, `env`, `oidc`, `file`, `assume-role`).
    fn name(&self) -> &'static str;

    /// The cloud refused `used`, credentials this provider handed out, as expired
    /// (`InvalidSecurityToken.Expired`) while the provider still thought them valid: its clock
    /// is behind the cloud's. A provider that renews sessions drops `used` so the next
    /// [`credentials`](Self::credentials) renews; a report about a session it has replaced
    /// already changes nothing. The default does nothing (keys it cannot renew).
    fn invalidate(&self, _used: &Credentials) {}
}

/// Fixed credentials: static keys, keys from the environment, or a route's Secret.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    credentials: Credentials,
    name: &'static str,
}

impl StaticCredentials {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            name: "static",
        }
    }

    pub(crate) fn named(credentials: Credentials, name: &'static str) -> Self {
        Self { credentials, name }
    }
}

impl CredentialsProvider for StaticCredentials {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let creds = self.credentials.clone();
        Box::pin(async move { Ok(creds) })
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let c = Credentials::new("LTAIexample", "topsecret").with_security_token("tokentoken");
        let shown = format!(
            "{c:?} {c} {:?} {}",
            c.access_key_secret(),
            c.access_key_secret()
        );
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("tokentoken"), "{shown}");
        assert!(shown.contains("LTAIexample"));
        let p = StaticCredentials::new(c);
        assert!(!format!("{p:?}").contains("topsecret"));
    }

    #[test]
    fn from_secret_data_reads_and_trims() {
        let data: Vec<(&str, &[u8])> = vec![
            ("accessKeyId", b"AK\n"),
            ("accessKeySecret", b" SK "),
            ("securityToken", b"TOK"),
            ("other", b"x"),
        ];
        let c = Credentials::from_secret_data(data).unwrap();
        assert_eq!(c.access_key_id(), "AK");
        assert_eq!(c.access_key_secret().expose(), "SK");
        assert_eq!(c.security_token().map(SecretString::expose), Some("TOK"));
    }

    #[test]
    fn from_secret_data_requires_both_keys() {
        let data: Vec<(&str, &[u8])> = vec![("accessKeyId", b"AK")];
        let err = Credentials::from_secret_data(data).unwrap_err();
        assert!(err.to_string().contains("accessKeySecret"));
        assert_eq!(err.class(), ErrorClass::NeedsOutsideAction);
        let empty: Vec<(&str, &[u8])> = vec![("accessKeyId", b"AK"), ("accessKeySecret", b"\n")];
        assert!(Credentials::from_secret_data(empty).is_err());
    }
}
