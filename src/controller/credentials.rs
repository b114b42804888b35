//! The credentials of a `VpnAccount` or of a credentials Secret, built one way for the operator
//! (`Context`, with its own identity and the watch-free Secret reads of `ObjectPort`) and for
//! the commands (`plan`, `import`: their own credentials chain stands for the operator's
//! identity, since RRSA exists only in the operator's Pod, and they read Secrets from the API
//! server). One copy of the rules: a Secret without the credentials label is never read for
//! keys, an `assumeRole` session is assumed with `own` at the STS endpoint of the account's
//! first region.

use std::sync::Arc;

use kube::api::Api;

use super::error::{Error, Result};
use super::model::CredentialsHandle;
use super::objects::{ObjectFuture, ObjectPort, SecretObject};
use super::reason::Reason;
use super::roles::RoleSessions;
use crate::api::v1alpha1::VpnAccount;
use alicloud_vpc_client::{Credentials, CredentialsProvider, DEFAULT_ACCOUNT, StaticCredentials};

/// The region of the STS endpoint for an account that names no region.
pub(crate) const STS_REGION: &str = "cn-hangzhou";

/// The key of the process's own credentials (the operator's identity, or a command's chain).
pub(crate) const OWN_CREDENTIALS: &str = "default";

/// The process's own credentials as a handle.
pub(crate) fn own_handle(own: &Arc<dyn CredentialsProvider>) -> CredentialsHandle {
    CredentialsHandle {
        key: OWN_CREDENTIALS.to_owned(),
        account: DEFAULT_ACCOUNT.to_owned(),
        api_rate: None,
        provider: own.clone(),
    }
}

/// Where Secrets are read from (`ObjectPort::secret`'s contract: `None` when it is missing).
pub(crate) trait SecretSource: Send + Sync {
    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>>;
}

impl SecretSource for dyn ObjectPort {
    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>> {
        ObjectPort::secret(self, namespace, name)
    }
}

/// Secrets read from the API server, one GET each (the commands, which keep no cache).
pub(crate) struct KubeSecrets(pub kube::Client);

impl SecretSource for KubeSecrets {
    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>> {
        super::objects::read_secret(Api::namespaced(self.0.clone(), namespace), name)
    }
}

/// What credentials are built from: Secrets, the process's own credentials and the role
/// sessions (assumed with the own credentials).
pub(crate) struct Sources<'a, S: ?Sized> {
    pub secrets: &'a S,
    pub own: &'a Arc<dyn CredentialsProvider>,
    pub roles: &'a RoleSessions,
}

impl<S: SecretSource + ?Sized> Sources<'_, S> {
    /// The process's own credentials.
    pub(crate) fn own_handle(&self) -> CredentialsHandle {
        own_handle(self.own)
    }

    /// The credentials of a `VpnAccount`: the own identity, its Secret, or a role session.
    pub(crate) async fn account(&self, account: &VpnAccount) -> Result<CredentialsHandle> {
        let handle = self.account_source(account).await?;
        Ok(at_account_rate(handle, Some(account)))
    }

    async fn account_source(&self, account: &VpnAccount) -> Result<CredentialsHandle> {
        let name = kube::ResourceExt::name_any(account);
        let source = &account.spec.credentials;
        if source.operator_identity.is_some() {
            return Ok(self.own_handle());
        }
        if let Some(secret) = &source.secret_ref {
            return self
                .secret(&secret.namespace, &secret.name)
                .await
                .map(|handle| CredentialsHandle {
                    account: name.clone(),
                    ..handle
                })
                .map_err(|e| Error::Account {
                    name,
                    reason: e.reason(),
                    why: e.message(),
                });
        }
        let Some(role) = &source.assume_role else {
            return Err(Error::Account {
                name,
                reason: Reason::CredentialsUnavailable,
                why: "no credential source is set".to_owned(),
            });
        };
        let region = account
            .spec
            .regions
            .first()
            .map_or(STS_REGION, String::as_str);
        self.roles
            .session(role, &name, region, self.own)
            .map_err(|why| Error::Account {
                name,
                reason: Reason::CredentialsUnavailable,
                why,
            })
    }

    /// The credentials in Secret `ns/name` (a route's `credentialsRef`, an account's
    /// `secretRef`); only a Secret with the credentials label is read for keys.
    pub(crate) async fn secret(&self, ns: &str, name: &str) -> Result<CredentialsHandle> {
        let fail = |reason: String| Error::Secret {
            name: name.to_owned(),
            reason,
        };
        let secret = self
            .secrets
            .secret(ns, name)
            .await
            .map_err(|e| Error::kube("read credentials Secret", e))?
            .ok_or_else(|| fail("not found".to_owned()))?;
        if !secret.is_credentials() {
            return Err(Error::SecretUnlabelled {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            });
        }
        let creds = Credentials::from_secret_data(
            secret.data.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(CredentialsHandle {
            key: format!("secret:{ns}/{name}#{}", creds.access_key_id()),
            account: DEFAULT_ACCOUNT.to_owned(),
            api_rate: None,
            provider: Arc::new(StaticCredentials::new(creds)),
        })
    }
}

/// `handle` at the API rate `account` sets for its own limiter. Credentials under the default
/// limiter (the operator's own identity) keep `--api-rate`: the CRD refuses `apiRate` with
/// `operatorIdentity`, and one account's setting must not change the operator's limiter.
pub(crate) fn at_account_rate(
    handle: CredentialsHandle,
    account: Option<&VpnAccount>,
) -> CredentialsHandle {
    let api_rate = account
        .and_then(|a| a.spec.api_rate)
        .filter(|_| handle.account != DEFAULT_ACCOUNT);
    CredentialsHandle { api_rate, ..handle }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(api_rate: Option<f64>) -> VpnAccount {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
            "metadata": {"name": "team-a"},
            "spec": {"credentials": {"secretRef": {"namespace": "ns", "name": "keys"}},
                "namespaceSelector": {}, "apiRate": api_rate}
        }))
        .expect("account")
    }

    /// The account's rate goes with its own limiter's credentials only, and is always the
    /// account's as it is now.
    #[test]
    fn an_accounts_rate_goes_with_its_own_limiter_only() {
        let handle = |account: &str, api_rate: Option<f64>| CredentialsHandle {
            api_rate,
            account: account.to_owned(),
            ..crate::controller::fixtures::scope().credentials
        };
        let cases = [
            ("team-a", None, Some(account(Some(8.0))), Some(8.0)),
            ("team-a", Some(8.0), Some(account(Some(2.0))), Some(2.0)),
            ("team-a", Some(8.0), Some(account(None)), None),
            ("team-a", Some(8.0), None, None),
            (DEFAULT_ACCOUNT, None, Some(account(Some(8.0))), None),
        ];
        for (key, had, account, want) in cases {
            let got = at_account_rate(handle(key, had), account.as_ref());
            assert_eq!(
                (got.account.as_str(), got.api_rate),
                (key, want),
                "{key:?} {had:?}"
            );
        }
    }
}
