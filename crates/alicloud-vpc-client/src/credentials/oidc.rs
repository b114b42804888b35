//! RRSA: temporary credentials from STS `AssumeRoleWithOIDC`, exchanged for the pod's OIDC
//! token (STS `AssumeRoleWithOIDC`). The call is anonymous; the token is the proof.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::session::{self, SessionCache};
use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};
use alicloud_signature::percent_encode;

/// The STS endpoint: `sts.aliyuncs.com`, `sts.<region>.aliyuncs.com` when a region is given,
/// `sts-vpc.<region>.aliyuncs.com` when the VPC-internal endpoint is asked for.
pub fn sts_url(region: Option<&str>, vpc_internal: bool) -> Result<Url, CredentialsError> {
    let host = match (region, vpc_internal) {
        (Some(r), true) => format!("sts-vpc.{r}.aliyuncs.com"),
        (Some(r), false) => format!("sts.{r}.aliyuncs.com"),
        (None, _) => "sts.aliyuncs.com".to_owned(),
    };
    Url::parse(&format!("https://{host}/"))
        .map_err(|e| CredentialsError::Invalid(format!("STS endpoint {host}: {e}")))
}

/// What RRSA needs; the official variables are read by [`super::default_chain`].
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    /// Re-read on every refresh: the kubelet rotates the projected token.
    pub token_file: PathBuf,
    pub role_session_name: String,
    /// Requested lifetime (`DurationSeconds`, at least 900 s).
    pub duration: Duration,
    pub sts_url: Url,
}

/// Refreshing RRSA provider. Cheap to call: STS is asked only when the cached session is due
/// for renewal ([`session::renewal`]).
#[derive(Debug)]
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    session: SessionCache,
}

impl OidcProvider {
    pub fn new(config: OidcConfig, http: reqwest::Client) -> Self {
        Self {
            config,
            http,
            session: SessionCache::default(),
        }
    }

    /// The session length asked for: the configured one, at least the cloud's minimum.
    fn duration(&self) -> Duration {
        self.config.duration.max(Duration::from_secs(900))
    }

    async fn current(&self) -> Result<Credentials, CredentialsError> {
        let lifetime = self.duration();
        self.session
            .get("oidc", lifetime, || self.assume_role())
            .await
    }

    async fn assume_role(&self) -> Result<Credentials, CredentialsError> {
        let token = tokio::fs::read_to_string(&self.config.token_file)
            .await
            .map_err(|e| {
                CredentialsError::Invalid(format!(
                    "OIDC token file {}: {e}",
                    self.config.token_file.display()
                ))
            })?;
        let mut url = self.config.sts_url.clone();
        let timestamp = crate::rpc::timestamp_now();
        url.set_query(Some(&encode_pairs(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("Timestamp", &timestamp),
        ])));
        let duration = self.duration().as_secs().to_string();
        let form = encode_pairs(&[
            ("RoleArn", &self.config.role_arn),
            ("OIDCProviderArn", &self.config.oidc_provider_arn),
            ("OIDCToken", token.trim()),
            ("RoleSessionName", &self.config.role_session_name),
            ("DurationSeconds", &duration),
        ]);
        session::exchange(&self.http, "AssumeRoleWithOIDC", url, form).await
    }
}

impl CredentialsProvider for OidcProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.current())
    }

    fn name(&self) -> &'static str {
        "oidc"
    }

    fn invalidate(&self, used: &Credentials) {
        self.session.invalidate(self.name(), used);
    }
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_endpoints() {
        assert_eq!(
            sts_url(None, false).unwrap().as_str(),
            "https://sts.aliyuncs.com/"
        );
        assert_eq!(
            sts_url(Some("cn-beijing"), false).unwrap().as_str(),
            "https://sts.cn-beijing.aliyuncs.com/"
        );
        assert_eq!(
            sts_url(Some("cn-beijing"), true).unwrap().as_str(),
            "https://sts-vpc.cn-beijing.aliyuncs.com/"
        );
    }
}
