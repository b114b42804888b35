//! The sessions of `assumeRole` accounts: one `AssumeRoleProvider` (client crate) per role,
//! external ID and session name, kept for the life of the process so that its session is
//! renewed, not asked for again at every reconcile; assumed with the operator's own identity.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::model::CredentialsHandle;
use crate::api::v1alpha1::AssumeRole;
use crate::sync::lock;
use alicloud_vpc_client::{
    AssumeRoleConfig, AssumeRoleProvider, CredentialsProvider, VpcClientFactory,
};

/// The session name when the account names none (seen in the role account's ActionTrail).
const SESSION_NAME: &str = "vpn-pbr-operator";

/// The role sessions of the process (none where no STS is configured: the simulation).
#[derive(Clone, Default)]
pub struct RoleSessions {
    factory: Option<VpcClientFactory>,
    /// The length of each session (`DurationSeconds`).
    duration: Duration,
    sessions: Arc<Mutex<HashMap<String, CredentialsHandle>>>,
}

impl RoleSessions {
    /// Sessions of `duration` whose AssumeRole calls go through `factory`'s HTTP pool to its
    /// STS endpoint.
    pub(crate) fn new(factory: VpcClientFactory, duration: Duration) -> Self {
        Self {
            factory: Some(factory),
            duration,
            sessions: Arc::default(),
        }
    }

    /// The credentials of a session of `role` (of account `account`), assumed with `base` at the
    /// STS endpoint of `region`. `Err` says why there is none (no STS configured, or an endpoint that cannot
    /// be made).
    pub(crate) fn session(
        &self,
        role: &AssumeRole,
        account: &str,
        region: &str,
        base: &Arc<dyn CredentialsProvider>,
    ) -> Result<CredentialsHandle, String> {
        let factory = self
            .factory
            .as_ref()
            .ok_or_else(|| "no STS endpoint is configured for assumeRole".to_owned())?;
        let session = role.session_name.as_deref().unwrap_or(SESSION_NAME);
        let key = key(role, session);
        // One session per account object: two naming the same role keep their own limiters.
        let slot = format!("{account}\n{key}");
        if let Some(handle) = lock(&self.sessions).get(&slot) {
            return Ok(handle.clone());
        }
        let sts = factory.sts_url_for(region).map_err(|e| e.to_string())?;
        let mut config =
            AssumeRoleConfig::new(&role.role_arn, session, sts).with_duration(self.duration);
        if let Some(id) = &role.external_id {
            config = config.with_external_id(id);
        }
        let provider = AssumeRoleProvider::new(config, base.clone(), factory.http_client().clone());
        let handle = CredentialsHandle {
            key: key.clone(),
            account: account.to_owned(),
            api_rate: None,
            provider: Arc::new(provider),
        };
        Ok(lock(&self.sessions).entry(slot).or_insert(handle).clone())
    }
}

/// The credentials key of a role session: role, session name and a hash of the external ID
/// (it is not a secret, but it has no place in logs either).
fn key(role: &AssumeRole, session: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    role.external_id.hash(&mut h);
    format!("role:{}/{session}#{:x}", role.role_arn, h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(external_id: Option<&str>, session: Option<&str>) -> AssumeRole {
        AssumeRole {
            role_arn: "acs:ram::2222222222222222:role/vpn".into(),
            external_id: external_id.map(str::to_owned),
            session_name: session.map(str::to_owned),
        }
    }

    #[test]
    fn one_key_per_role_external_id_and_session() {
        let k = |r: &AssumeRole| key(r, r.session_name.as_deref().unwrap_or(SESSION_NAME));
        let plain = k(&role(None, None));
        assert_eq!(plain, k(&role(None, None)));
        assert_ne!(plain, k(&role(Some("ext-1"), None)));
        assert_ne!(k(&role(Some("ext-1"), None)), k(&role(Some("ext-2"), None)));
        assert_ne!(plain, k(&role(None, Some("other"))));
        assert!(!k(&role(Some("ext-1"), None)).contains("ext-1"));
    }

    #[test]
    fn without_sts_there_is_no_session() {
        let base: Arc<dyn CredentialsProvider> =
            Arc::new(alicloud_vpc_client::StaticCredentials::new(
                alicloud_vpc_client::Credentials::new("id", "secret"),
            ));
        let got = RoleSessions::default().session(&role(None, None), "acct", "cn-hangzhou", &base);
        assert!(got.is_err());
    }
}
