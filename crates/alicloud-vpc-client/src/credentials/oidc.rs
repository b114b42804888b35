//! RRSA: temporary credentials from STS `AssumeRoleWithOIDC`, exchanged for the pod's OIDC
//! token (STS `AssumeRoleWithOIDC`). The call is anonymous; the token is the proof.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};
use crate::body;
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

impl OidcConfig {
    /// Refresh this long before expiry: a third of the lifetime, at least 3 minutes (the
    /// official libraries refresh at 180 s; a larger margin survives an STS outage longer).
    fn refresh_margin(&self) -> Duration {
        (self.duration / 3).max(Duration::from_secs(180))
    }
}

/// Refreshing RRSA provider. Cheap to call: STS is asked only when the cached credentials are
/// within the refresh margin of expiry.
#[derive(Debug)]
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    cached: Mutex<Option<Credentials>>,
}

impl OidcProvider {
    pub fn new(config: OidcConfig, http: reqwest::Client) -> Self {
        Self {
            config,
            http,
            cached: Mutex::new(None),
        }
    }

    async fn current(&self) -> Result<Credentials, CredentialsError> {
        // Holding the lock across the STS call makes concurrent callers wait for one refresh
        // instead of stampeding STS.
        let mut cached = self.cached.lock().await;
        let now = jiff::Timestamp::now();
        if let Some(c) = cached.as_ref()
            && remaining(c, now) > self.config.refresh_margin()
        {
            return Ok(c.clone());
        }
        match self.assume_role().await {
            Ok(fresh) => {
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached.as_ref() {
                // STS is down but the old keys still work for a while: keep using them.
                Some(c) if remaining(c, now) > Duration::from_secs(30) => {
                    tracing::warn!(error = %e, "RRSA refresh failed; using cached credentials");
                    Ok(c.clone())
                }
                _ => Err(e),
            },
        }
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
        let timestamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        url.set_query(Some(&encode_pairs(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("Timestamp", &timestamp),
        ])));
        let duration = self.config.duration.as_secs().max(900).to_string();
        let form = encode_pairs(&[
            ("RoleArn", &self.config.role_arn),
            ("OIDCProviderArn", &self.config.oidc_provider_arn),
            ("OIDCToken", token.trim()),
            ("RoleSessionName", &self.config.role_session_name),
            ("DurationSeconds", &duration),
        ]);
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| CredentialsError::StsUnavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let content_type = body::content_type(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CredentialsError::StsUnavailable(e.without_url().to_string()))?;
        parse_sts_response(status, content_type.as_deref(), &bytes)
    }
}

impl CredentialsProvider for OidcProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.current())
    }

    fn name(&self) -> &'static str {
        "oidc"
    }
}

fn remaining(c: &Credentials, now: jiff::Timestamp) -> Duration {
    c.expiration()
        .and_then(|exp| Duration::try_from(exp.duration_since(now)).ok())
        .unwrap_or(Duration::ZERO)
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResponse {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

/// Parses an STS answer into credentials, or its error body into [`CredentialsError::Sts`].
pub(crate) fn parse_sts_response(
    status: u16,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Credentials, CredentialsError> {
    let value = body::decode(bytes, content_type);
    if !(200..300).contains(&status) {
        let fields = value
            .as_ref()
            .map(body::ErrorFields::from_value)
            .unwrap_or_default();
        return Err(CredentialsError::Sts {
            http_status: status,
            code: fields.code.unwrap_or_else(|| format!("HTTP{status}")),
            message: fields.message.unwrap_or_default(),
            request_id: fields.request_id,
        });
    }
    let value = value.map_err(|e| CredentialsError::StsUnavailable(format!("STS answer: {e}")))?;
    let parsed: StsResponse = serde_json::from_value(value)
        .map_err(|e| CredentialsError::StsUnavailable(format!("STS answer: {e}")))?;
    let c = parsed.credentials;
    let expiration: jiff::Timestamp = c.expiration.parse().map_err(|e| {
        CredentialsError::StsUnavailable(format!("STS Expiration {:?}: {e}", c.expiration))
    })?;
    Ok(Credentials::new(c.access_key_id, c.access_key_secret)
        .with_security_token(c.security_token)
        .with_expiration(expiration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sts_success() {
        let body = br#"{"RequestId":"R1","AssumedRoleUser":{"Arn":"x"},"Credentials":{"AccessKeyId":"STS.ak","AccessKeySecret":"sk","SecurityToken":"tok","Expiration":"2030-01-01T00:00:00Z"}}"#;
        let c = parse_sts_response(200, Some("application/json"), body).unwrap();
        assert_eq!(c.access_key_id(), "STS.ak");
        assert_eq!(c.security_token().map(|t| t.expose()), Some("tok"));
        assert_eq!(
            c.expiration().map(|e| e.to_string()).as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
    }

    #[test]
    fn parses_sts_error_and_garbage() {
        let body = br#"{"RequestId":"R2","Code":"AuthenticationFail.OIDCToken.Expired","Message":"expired"}"#;
        let e = parse_sts_response(400, None, body).unwrap_err();
        assert_eq!(e.code(), "AuthenticationFail.OIDCToken.Expired");
        assert_eq!(e.class(), crate::ErrorClass::NeedsOutsideAction);
        let e = parse_sts_response(200, None, b"{not json").unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Transient);
        let e = parse_sts_response(200, None, br#"{"Credentials":{}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
    }

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
