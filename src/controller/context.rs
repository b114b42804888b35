//! Shared state of the controller: clients, caches, the scheduler, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::accounts::Accounts;
use super::backoff::Backoffs;
use super::credentials::{self, OWN_CREDENTIALS, Sources};
use super::entries::GatewayCache;
use super::error::{Error, Result};
use super::metrics::Metrics;
use super::model::{CredentialsHandle, Scope};
use super::objects::ObjectPort;
use super::reason::Reason;
use super::resolve::Resolved;
use super::roles::RoleSessions;
use super::scheduler::Scheduler;
use super::tenancy::Tenancy;
use crate::api::v1alpha1::{VpnAccount, VpnPbrRoute};
use crate::sync::lock;
use alicloud_vpc_client::CredentialsProvider;

/// Where the controller takes the wall clock, random draws and idempotency tokens from: the
/// real ones in the operator (`SystemEntropy`), a seeded one in the simulation
/// (tests/simulation.rs), so that one seed replays exactly.
pub trait Entropy: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// A uniform draw in `[0, 1)` (jitter).
    fn unit(&self) -> f64;
    /// A fresh create token (`ClientToken`).
    fn token(&self) -> String;
}

/// The wall clock, the thread's random generator and random UUIDs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn wall_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }

    fn unit(&self) -> f64 {
        rand::Rng::random(&mut rand::rng())
    }

    fn token(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

pub(crate) use super::credentials::STS_REGION;

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Drift-check period of an in-sync route (jittered, aligned per gateway).
    pub resync: Duration,
    /// How old a shared entry list may be when a route reads it.
    pub list_max_age: Duration,
    /// How old cached gateway facts (priority support) may be.
    pub facts_max_age: Duration,
    /// Whether routes may name a Secret with their own credentials.
    pub route_secrets: bool,
    /// Field manager of status writes.
    pub manager: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            list_max_age: Duration::from_secs(5),
            facts_max_age: Duration::from_secs(600),
            route_secrets: true,
            manager: "vpn-pbr-operator".to_owned(),
        }
    }
}

pub struct Context {
    /// Routes, their status, finalizers, events and credential Secrets.
    pub objects: Arc<dyn ObjectPort>,
    pub cache: GatewayCache,
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub backoffs: Backoffs,
    pub verified: super::verified::Verified,
    /// Our writes to routes whose watch events are not yet back (they trigger no reconcile).
    pub echoes: Arc<super::echoes::Echoes>,
    /// The operator-wide credentials (default chain).
    pub default_credentials: Arc<dyn CredentialsProvider>,
    /// The credentials each route last used successfully, for its cleanup when its Secret is
    /// gone (in memory: after a restart the operator's own chain is the fallback).
    pub last_good_credentials: Mutex<HashMap<String, CredentialsHandle>>,
    /// The account each set of credentials acts for (one STS call per credentials).
    pub accounts: Accounts,
    /// The wall clock, jitter and create tokens (`SystemEntropy` outside the simulation).
    pub entropy: Arc<dyn Entropy>,
    /// The accounts and namespaces routes resolve their account from.
    pub tenancy: Tenancy,
    /// The sessions of `assumeRole` accounts.
    pub roles: RoleSessions,
    /// One reconcile of a route at a time, across the controller and the prompt lane.
    pub turns: super::turns::Turns,
    /// What the watch shows of the routes with a change under way (which ones are alone on
    /// their gateway).
    pub prompt: Arc<super::prompt::PromptLane>,
    /// With leader election: the Lease's fence (`crate::fence`). Records (status, finalizers)
    /// are written only while it permits cloud changes: a replica that may have lost the Lease
    /// must not record what it decided on state the new leader has moved past.
    pub fence: Option<crate::fence::Fence>,
}

impl Context {
    /// Whether records may be written now: no leader election, or the Lease certainly ours.
    pub(crate) fn may_record(&self) -> bool {
        self.fence.as_ref().is_none_or(crate::fence::Fence::permits)
    }

    /// What credentials are built from: the Secrets, the operator's own identity and its role
    /// sessions.
    fn sources(&self) -> Sources<'_, dyn ObjectPort> {
        Sources {
            secrets: &*self.objects,
            own: &self.default_credentials,
            roles: &self.roles,
        }
    }

    /// The operator-wide credentials.
    fn default_handle(&self) -> CredentialsHandle {
        self.sources().own_handle()
    }

    /// Where and with which credentials the route's calls go, in the account it acts in.
    pub(crate) async fn scope(&self, route: &VpnPbrRoute, held: &Resolved) -> Result<Scope> {
        let credentials = match (&held.account, &route.spec.credentials_ref) {
            (Some(account), _) => self.account_credentials(account).await?,
            (None, None) => self.default_handle(),
            (None, Some(r)) => self.secret_credentials(route, &r.name).await?,
        };
        Ok(Self::scope_with(route, credentials))
    }

    /// The credentials of a `VpnAccount` (the operator's own identity, its Secret or its role
    /// session), at the account's API rate.
    pub(crate) async fn account_credentials(
        &self,
        account: &VpnAccount,
    ) -> Result<CredentialsHandle> {
        self.sources().account(account).await
    }

    /// The scope of a route being deleted, in the account that holds its entry: its own
    /// credentials, or, when they cannot be had, the ones it last used successfully, else (for
    /// the operator's identity only) the operator's. The second value says why the route's own
    /// were not used. A `VpnAccount` that is gone, or whose credentials fail with nothing
    /// remembered, blocks the cleanup, naming the account.
    pub(crate) async fn cleanup_scope(
        &self,
        route: &VpnPbrRoute,
        key: &str,
    ) -> Result<(Scope, Option<String>)> {
        let held = self
            .tenancy
            .resolve_for_cleanup(route)
            .map_err(|name| Error::Account {
                why: "the account that holds the cloud entry does not exist any more; \
                      restore the VpnAccount"
                    .to_owned(),
                name,
                reason: Reason::AccountNotFound,
            })?;
        match self.scope(route, &held).await {
            Ok(scope) => Ok((scope, None)),
            Err(
                e @ (Error::Secret { .. } | Error::SecretUnlabelled { .. } | Error::Account { .. }),
            ) => {
                let remembered = lock(&self.last_good_credentials).get(key).cloned();
                if remembered.is_none() && held.account.is_some() {
                    return Err(e);
                }
                let why = match &remembered {
                    Some(_) => format!("{e}; using the credentials it last used"),
                    None => e.to_string(),
                };
                // The rate is the account's as it is now, not as it was when they worked.
                let credentials = remembered.map_or_else(
                    || self.default_handle(),
                    |handle| credentials::at_account_rate(handle, held.account.as_deref()),
                );
                Ok((Self::scope_with(route, credentials), Some(why)))
            }
            Err(e) => Err(e),
        }
    }

    fn scope_with(route: &VpnPbrRoute, credentials: CredentialsHandle) -> Scope {
        Scope {
            region_id: route.spec.region_id.clone(),
            vpn_gateway_id: route.spec.vpn_gateway_id.clone(),
            credentials,
        }
    }

    /// Records that the route's calls worked with these credentials. The operator's own are
    /// the fallback anyway, so they are not kept: a map entry per route costs memory at
    /// 10,000 routes and tells nothing then.
    pub(crate) fn credentials_worked(&self, key: &str, credentials: &CredentialsHandle) {
        let mut map = lock(&self.last_good_credentials);
        if credentials.key == OWN_CREDENTIALS {
            map.remove(key);
        } else if map.get(key).is_none_or(|c| c.key != credentials.key) {
            map.insert(key.to_owned(), credentials.clone());
        }
    }

    /// Forgets what was kept for a route that is gone.
    pub(crate) fn forget_route(&self, key: &str) {
        lock(&self.last_good_credentials).remove(key);
        self.backoffs.reset(key);
        self.verified.forget(key);
        self.echoes.forget(key);
    }

    async fn secret_credentials(
        &self,
        route: &VpnPbrRoute,
        name: &str,
    ) -> Result<CredentialsHandle> {
        if !self.settings.route_secrets {
            return Err(Error::Secret {
                name: name.to_owned(),
                reason: "route Secrets are disabled (--route-secrets=false)".to_owned(),
            });
        }
        let ns = route
            .metadata
            .namespace
            .as_deref()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        self.sources().secret(ns, name).await
    }
}
