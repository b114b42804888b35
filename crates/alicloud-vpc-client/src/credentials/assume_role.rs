//! A role of another account: temporary credentials from STS `AssumeRole`, signed (V1) with the
//! keys of a base provider (any provider: static keys, a Secret, the default chain, RRSA). The
//! role's trust policy decides: it names the accounts, users or roles that may assume it, and
//! may require an `ExternalId`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::session::{self, SessionCache};
use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider, SecretString};
use crate::rpc::{CommonParams, STS_API_VERSION, encode_form, signed_params, timestamp_now};

/// The STS action this provider calls.
const ACTION: &str = "AssumeRole";

/// Which role to assume, and how.
#[derive(Clone)]
pub struct AssumeRoleConfig {
    /// `RoleArn`: `acs:ram::<account id>:role/<role name>`.
    pub role_arn: String,
    /// `RoleSessionName`: 2 to 64 letters, digits and `_.@-`; it names the session in the
    /// role account's audit trail (ActionTrail) and in `GetCallerIdentity`'s `Arn`.
    pub role_session_name: String,
    /// `ExternalId`, when the role's trust policy asks for one. Never shown by `Debug`.
    pub external_id: Option<SecretString>,
    /// `DurationSeconds`, sent as it is: the cloud accepts 900 s up to the role's
    /// `MaxSessionDuration` and answers anything else with `InvalidParameter.DurationSeconds`.
    pub duration: Duration,
    /// The STS endpoint, e.g. `VpcClientFactory::sts_url_for(region)`.
    pub sts_url: Url,
}

impl AssumeRoleConfig {
    /// Sessions of one hour (the cloud's default), no `ExternalId`.
    pub fn new(
        role_arn: impl Into<String>,
        role_session_name: impl Into<String>,
        sts_url: Url,
    ) -> Self {
        Self {
            role_arn: role_arn.into(),
            role_session_name: role_session_name.into(),
            external_id: None,
            duration: Duration::from_secs(3600),
            sts_url,
        }
    }

    /// Sends `ExternalId` (the value the role's trust policy asks for).
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(SecretString::new(external_id));
        self
    }

    /// Asks for sessions of `duration` (`DurationSeconds`, whole seconds).
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The business parameters of one `AssumeRole` call.
    fn params(&self) -> BTreeMap<String, String> {
        let mut params = BTreeMap::from([
            ("RoleArn".to_owned(), self.role_arn.clone()),
            ("RoleSessionName".to_owned(), self.role_session_name.clone()),
            (
                "DurationSeconds".to_owned(),
                self.duration.as_secs().to_string(),
            ),
        ]);
        if let Some(id) = &self.external_id {
            params.insert("ExternalId".to_owned(), id.expose().to_owned());
        }
        params
    }
}

impl fmt::Debug for AssumeRoleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleConfig")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("external_id", &self.external_id)
            .field("duration", &self.duration)
            .field("sts_url", &self.sts_url.as_str())
            .finish()
    }
}

/// Credentials of a role session, renewed before the session expires (when less than a third
/// of its lifetime remains; see `credentials/session.rs`). Concurrent callers share one
/// renewal; a refusal is [`CredentialsError::Sts`] with `action` `AssumeRole` and the cloud's
/// code. The STS call does not wait for the client's rate limiter: it is made once per session.
#[derive(Debug)]
pub struct AssumeRoleProvider {
    config: AssumeRoleConfig,
    base: Arc<dyn CredentialsProvider>,
    http: reqwest::Client,
    session: SessionCache,
}

impl AssumeRoleProvider {
    /// Assumes `config`'s role with the keys of `base`; `http` is e.g.
    /// `VpcClientFactory::http_client()`.
    pub fn new(
        config: AssumeRoleConfig,
        base: Arc<dyn CredentialsProvider>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            config,
            base,
            http,
            session: SessionCache::default(),
        }
    }

    /// The role this provider assumes.
    pub fn role_arn(&self) -> &str {
        &self.config.role_arn
    }

    /// A new session, signed with the base provider's keys. If those are a session STS refuses
    /// as expired (the base's clock behind STS's, as for any call: see `Retrier` in
    /// `src/policy.rs`), the base drops it and STS is asked once more with its new one.
    async fn assume_role(&self) -> Result<Credentials, CredentialsError> {
        let base = self.base.credentials().await?;
        match self.assume_role_with(&base).await {
            Err(e) if base.is_session() && e.is_expired_session() => {
                self.base.invalidate(&base);
                let renewed = self.base.credentials().await?;
                self.assume_role_with(&renewed).await
            }
            result => result,
        }
    }

    async fn assume_role_with(&self, base: &Credentials) -> Result<Credentials, CredentialsError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = timestamp_now();
        let common = CommonParams {
            action: ACTION,
            version: STS_API_VERSION,
            nonce: &nonce,
            timestamp: &timestamp,
        };
        // Everything in the body, as for the VPC calls: no URL carries the signature, the base
        // provider's token or the ExternalId.
        let signed = signed_params("POST", &common, &self.config.params(), base);
        let fresh = session::exchange(
            &self.http,
            ACTION,
            self.config.sts_url.clone(),
            encode_form(&signed),
        )
        .await?;
        tracing::debug!(
            role_arn = %self.config.role_arn,
            expiration = ?fresh.expiration(),
            "assumed role"
        );
        Ok(fresh)
    }
}

impl CredentialsProvider for AssumeRoleProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(
            self.session
                .get("assume-role", self.config.duration, || self.assume_role()),
        )
    }

    fn name(&self) -> &'static str {
        "assume-role"
    }

    fn invalidate(&self, used: &Credentials) {
        self.session.invalidate(self.name(), used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticCredentials;

    fn config() -> AssumeRoleConfig {
        AssumeRoleConfig::new(
            "acs:ram::2222222222222222:role/vpn",
            "vpn-pbr-operator",
            Url::parse("http://127.0.0.1:9/").unwrap(),
        )
    }

    #[test]
    fn parameters_match_the_api() {
        let p = config().params();
        assert_eq!(p["RoleArn"], "acs:ram::2222222222222222:role/vpn");
        assert_eq!(p["RoleSessionName"], "vpn-pbr-operator");
        assert_eq!(p["DurationSeconds"], "3600");
        assert!(!p.contains_key("ExternalId"));
        let p = config()
            .with_external_id("ext-1")
            .with_duration(Duration::from_secs(900))
            .params();
        assert_eq!(p["ExternalId"], "ext-1");
        assert_eq!(p["DurationSeconds"], "900");
    }

    /// A base provider of sessions: its first is refused by the fake STS as expired; each
    /// `invalidate` of its current session hands out the next.
    #[derive(Debug, Default)]
    struct BaseSessions {
        current: std::sync::atomic::AtomicU32,
    }

    impl CredentialsProvider for BaseSessions {
        fn credentials(&self) -> CredentialsFuture<'_> {
            let n = self.current.load(std::sync::atomic::Ordering::SeqCst);
            let token = if n == 0 { "expired-by-sts" } else { "valid" };
            let expiration = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
            Box::pin(async move {
                Ok(Credentials::new(format!("STS.base{n}"), "base-secret")
                    .with_security_token(token)
                    .with_expiration(expiration))
            })
        }

        fn name(&self) -> &'static str {
            "base-sessions"
        }

        fn invalidate(&self, used: &Credentials) {
            let n = self.current.load(std::sync::atomic::Ordering::SeqCst);
            if used.access_key_id() == format!("STS.base{n}") {
                self.current
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    #[tokio::test]
    async fn a_base_session_sts_refuses_as_expired_is_renewed_once() {
        let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let record = asked.clone();
        let url = crate::client::tests::serve(move |form| {
            let token = form.get("SecurityToken").cloned().unwrap_or_default();
            record.lock().unwrap().push(token.clone());
            match token.as_str() {
                "valid" => (200, r#"{"RequestId":"R1","Credentials":{"AccessKeyId":"STS.role","AccessKeySecret":"sk","SecurityToken":"tok","Expiration":"2030-01-01T00:00:00Z"}}"#),
                _ => (400, r#"{"RequestId":"R2","Code":"InvalidSecurityToken.Expired","Message":"Specified SecurityToken is expired."}"#),
            }
        })
        .await;
        let sts_url = Url::parse(&url).unwrap();
        let role = |base: Arc<dyn CredentialsProvider>| {
            let config = AssumeRoleConfig {
                sts_url: sts_url.clone(),
                ..config()
            };
            AssumeRoleProvider::new(config, base, reqwest::Client::new())
        };
        let base = Arc::new(BaseSessions::default());
        let keys = role(base.clone()).credentials().await.unwrap();
        assert_eq!(keys.access_key_id(), "STS.role");
        assert_eq!(*asked.lock().unwrap(), ["expired-by-sts", "valid"]);
        assert_eq!(base.current.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Keys that are no session (a token without an expiry): nothing to renew, STS's
        // refusal is the answer.
        asked.lock().unwrap().clear();
        let fixed = Credentials::new("AK", "base-secret").with_security_token("fixed");
        let e = role(Arc::new(StaticCredentials::new(fixed)))
            .credentials()
            .await
            .unwrap_err();
        assert_eq!(e.code(), "InvalidSecurityToken.Expired");
        assert_eq!(asked.lock().unwrap().len(), 1);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let base = Arc::new(StaticCredentials::new(Credentials::new(
            "AK",
            "base-secret",
        )));
        let provider = AssumeRoleProvider::new(
            config().with_external_id("the-external-id"),
            base,
            reqwest::Client::new(),
        );
        let shown = format!("{provider:?}");
        assert!(!shown.contains("the-external-id"), "{shown}");
        assert!(!shown.contains("base-secret"), "{shown}");
        assert!(
            shown.contains("acs:ram::2222222222222222:role/vpn"),
            "{shown}"
        );
        assert_eq!(provider.name(), "assume-role");
    }
}
