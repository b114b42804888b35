//! The accounts of the commands: which `VpnAccount` a route acts in, by the operator's own
//! resolution (`controller::resolve`) over the cluster's accounts and Namespaces (read once),
//! and the credentials an account gives, built by the operator's own code
//! (`controller::credentials`). The command's credentials chain (`cli/cloud.rs`) stands for the
//! operator's identity: `operatorIdentity` is that chain, and an `assumeRole` session is
//! assumed with it (the operator's RRSA identity exists only in its Pod).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::cloud::Cloud;
use crate::api::v1alpha1::{VpnAccount, VpnPbrRoute};
use crate::controller::credentials::{KubeSecrets, Sources};
use crate::controller::error::Error;
use crate::controller::model::CredentialsHandle;
use crate::controller::resolve::{self, AccountOptions, Refusal, Resolved};
use crate::controller::roles::RoleSessions;
use crate::controller::tenancy::view;

/// The length of the role sessions a command assumes: the shortest the cloud grants, since a
/// command's run is short.
const COMMAND_SESSION: Duration = Duration::from_secs(900);

/// Why the accounts or Namespaces could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccountsError {
    #[error("reading {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("VpnAccount {0} does not exist")]
    NotFound(String),
}

/// The cluster's accounts and the Namespaces of the routes in play, as the operator's caches
/// would hold them, and the role sessions assumed with the command's own credentials.
pub(super) struct Tenants {
    client: kube::Client,
    accounts: HashMap<String, Arc<VpnAccount>>,
    namespaces: HashMap<String, Namespace>,
    options: AccountOptions,
    roles: RoleSessions,
}

impl Tenants {
    /// Reads every VpnAccount (none when its CRD is not installed: an operator without
    /// accounts) and the Namespaces `namespaces` (a missing one has no labels and no default).
    pub(super) async fn read(
        client: &kube::Client,
        namespaces: &BTreeSet<String>,
        options: AccountOptions,
        cloud: &Cloud,
    ) -> Result<Self, AccountsError> {
        let kube = |what: &str| {
            let what = what.to_owned();
            move |source| AccountsError::Kube { what, source }
        };
        let api: Api<VpnAccount> = Api::all(client.clone());
        let accounts = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
            Err(e) => return Err(kube("VpnAccounts")(e)),
        };
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let mut found = HashMap::new();
        for ns in namespaces {
            let got = ns_api
                .get_opt(ns)
                .await
                .map_err(kube(&format!("namespace {ns}")))?;
            if let Some(n) = got {
                found.insert(ns.clone(), n);
            }
        }
        Ok(Self {
            client: client.clone(),
            accounts: accounts
                .into_iter()
                .map(|a| (kube::ResourceExt::name_any(&a), Arc::new(a)))
                .collect(),
            namespaces: found,
            options,
            roles: RoleSessions::new(cloud.factory.clone(), COMMAND_SESSION),
        })
    }

    /// The account a live route acts in, or why the operator would refuse it.
    pub(super) fn resolve(&self, route: &VpnPbrRoute) -> Result<Resolved, Refusal> {
        let ns = route
            .metadata
            .namespace
            .as_deref()
            .and_then(|n| self.namespaces.get(n));
        resolve::resolve(
            route,
            view(ns),
            |n| self.accounts.get(n).cloned(),
            &self.options,
        )
    }

    /// The account a deleted route's cleanup acts in; `Err` names it when it is gone.
    pub(super) fn resolve_for_cleanup(&self, route: &VpnPbrRoute) -> Result<Resolved, String> {
        resolve::resolve_for_cleanup(route, |n| self.accounts.get(n).cloned())
    }

    /// The account named `name` (`import --account`).
    pub(super) fn named(&self, name: &str) -> Result<Resolved, AccountsError> {
        let account = self
            .accounts
            .get(name)
            .cloned()
            .ok_or_else(|| AccountsError::NotFound(name.to_owned()))?;
        Ok(Resolved {
            name: name.to_owned(),
            account: Some(account),
        })
    }

    /// The credentials of `held` (the command's own for the operator's identity), built as the
    /// operator builds them.
    pub(super) async fn credentials(
        &self,
        cloud: &Cloud,
        held: &Resolved,
    ) -> Result<CredentialsHandle, Error> {
        let secrets = KubeSecrets(self.client.clone());
        let sources = Sources {
            secrets: &secrets,
            own: &cloud.credentials,
            roles: &self.roles,
        };
        match &held.account {
            Some(account) => sources.account(account).await,
            None => Ok(sources.own_handle()),
        }
    }
}

/// The cluster of kubeconfig `file` (else as kubectl finds it: KUBECONFIG, ~/.kube/config, the
/// in-cluster service account), at `context` (else the current one).
pub(super) async fn cluster_config(
    file: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, String> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match file {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await,
        None => return kube::Config::infer().await.map_err(|e| e.to_string()),
    };
    config.map_err(|e| e.to_string())
}

/// How the credentials of an account are had, for the notes of a plan and import's stderr.
pub(super) fn how(held: &Resolved) -> String {
    let Some(account) = &held.account else {
        return "the operator's own identity (here: the command's own credentials)".to_owned();
    };
    let c = &account.spec.credentials;
    let how = if let Some(role) = &c.assume_role {
        format!(
            "assumeRole {}, assumed with the command's own credentials",
            role.role_arn
        )
    } else if let Some(s) = &c.secret_ref {
        format!("the keys of Secret {}/{}", s.namespace, s.name)
    } else {
        "operatorIdentity: the command's own credentials".to_owned()
    };
    format!("VpnAccount {} ({how})", held.name)
}
