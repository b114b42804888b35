//! The process-wide default chain (the order of the official SDKs' default credentials chain), with the official variable names:
//! environment keys, then RRSA, then a credentials file. The first configured source wins and
//! is kept, as the official libraries do.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{
    Credentials, CredentialsError, CredentialsFile, CredentialsProvider, OidcConfig, OidcProvider,
    StaticCredentials, sts_url,
};

/// Knobs of the default chain that are not environment variables.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Explicit STS URL (the emulator); otherwise from `ALIBABA_CLOUD_STS_REGION` and
    /// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`, else `https://sts.aliyuncs.com`.
    pub sts_url: Option<Url>,
    /// Lifetime asked of STS for RRSA credentials.
    pub oidc_duration: Duration,
    /// Home directory for `~/.alibabacloud/credentials`; `HOME` when `None`.
    pub home: Option<PathBuf>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            sts_url: None,
            oidc_duration: Duration::from_secs(3600),
            home: None,
        }
    }
}

/// The default chain from the process environment.
pub fn default_chain(
    http: reqwest::Client,
    options: &ChainOptions,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    default_chain_from(|name| std::env::var(name).ok(), http, options)
}

/// The default chain with an explicit variable lookup (tests, or a config layer).
pub fn default_chain_from(
    env: impl Fn(&str) -> Option<String>,
    http: reqwest::Client,
    options: &ChainOptions,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };

    // 1. Environment keys.
    match (
        var("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        var("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
    ) {
        (Some(id), Some(secret)) => {
            let creds = Credentials::new(id, secret);
            let creds = match var("ALIBABA_CLOUD_SECURITY_TOKEN") {
                Some(t) => creds.with_security_token(t),
                None => creds,
            };
            return Ok(Arc::new(StaticCredentials::named(creds, "env")));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CredentialsError::Invalid(
                "set both ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET".into(),
            ));
        }
        (None, None) => {}
    }

    // 2. RRSA (OIDC).
    let role = var("ALIBABA_CLOUD_ROLE_ARN");
    let provider = var("ALIBABA_CLOUD_OIDC_PROVIDER_ARN");
    let token_file = var("ALIBABA_CLOUD_OIDC_TOKEN_FILE");
    if let (Some(role_arn), Some(oidc_provider_arn), Some(token_file)) =
        (role, provider, token_file)
    {
        let sts = match &options.sts_url {
            Some(u) => u.clone(),
            None => sts_url(
                var("ALIBABA_CLOUD_STS_REGION").as_deref(),
                var("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            )?,
        };
        let role_session_name = var("ALIBABA_CLOUD_ROLE_SESSION_NAME")
            .unwrap_or_else(|| format!("vpn-pbr-operator-{}", jiff::Timestamp::now().as_second()));
        let config = OidcConfig {
            role_arn,
            oidc_provider_arn,
            token_file: PathBuf::from(token_file),
            role_session_name,
            duration: options.oidc_duration,
            sts_url: sts,
        };
        return Ok(Arc::new(OidcProvider::new(config, http)));
    }

    // 3. Credentials file: an explicit path is used even if it does not exist yet (a mount may
    // appear later; the call then fails with a clear message), the home default only if present.
    let profile = var("ALIBABA_CLOUD_PROFILE").unwrap_or_else(|| "default".to_owned());
    if let Some(path) = var("ALIBABA_CLOUD_CREDENTIALS_FILE") {
        return Ok(Arc::new(CredentialsFile::new(path, profile)));
    }
    let home = options
        .home
        .clone()
        .or_else(|| var("HOME").map(PathBuf::from));
    if let Some(home) = home {
        let path = home.join(".alibabacloud").join("credentials");
        if path.is_file() {
            return Ok(Arc::new(CredentialsFile::new(path, profile)));
        }
    }

    Err(CredentialsError::NotConfigured(
        "set ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET, or ALIBABA_CLOUD_ROLE_ARN/\
         ALIBABA_CLOUD_OIDC_PROVIDER_ARN/ALIBABA_CLOUD_OIDC_TOKEN_FILE (RRSA), or \
         ALIBABA_CLOUD_CREDENTIALS_FILE"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn chain(vars: &[(&str, &str)]) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let options = ChainOptions {
            home: Some(PathBuf::from("/nonexistent-home")),
            ..ChainOptions::default()
        };
        crate::client::ensure_crypto_provider();
        default_chain_from(
            move |n| map.get(n).cloned(),
            reqwest::Client::new(),
            &options,
        )
    }

    #[tokio::test]
    async fn env_keys_come_first() {
        let p = chain(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "AK"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "SK"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "TOK"),
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/x"),
        ])
        .unwrap();
        assert_eq!(p.name(), "env");
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id(), "AK");
        assert_eq!(c.security_token().map(|t| t.expose()), Some("TOK"));
    }

    #[test]
    fn rrsa_then_file_then_nothing() {
        let p = chain(&[
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/x"),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "acs:ram::1:oidc-provider/y",
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/token"),
        ])
        .unwrap();
        assert_eq!(p.name(), "oidc");
        let p = chain(&[("ALIBABA_CLOUD_CREDENTIALS_FILE", "/etc/creds")]).unwrap();
        assert_eq!(p.name(), "file");
        let e = chain(&[]).unwrap_err();
        assert!(matches!(e, CredentialsError::NotConfigured(_)));
        assert!(chain(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "AK")]).is_err());
    }
}
