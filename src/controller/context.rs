//! Shared state of the controller: clients, caches, the scheduler, metrics and settings.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::backoff::Backoffs;
use super::entries::GatewayCache;
use super::error::{Error, Result};
use super::metrics::Metrics;
use super::model::{CredentialsHandle, Scope};
use super::scheduler::Scheduler;
use crate::api::v1alpha1::VpnPbrRoute;
use alicloud_vpc_client::{Credentials, CredentialsProvider, StaticCredentials};

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
    pub client: kube::Client,
    pub cache: GatewayCache,
    pub scheduler: Scheduler,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub backoffs: Backoffs,
    pub verified: super::verified::Verified,
    /// The controllers' caches of every watched route (one per watched namespace set).
    pub stores: Vec<Store<VpnPbrRoute>>,
    /// The operator-wide credentials (default chain).
    pub default_credentials: Arc<dyn CredentialsProvider>,
}

impl Context {
    /// Where and with which credentials the route's calls go.
    pub async fn scope(&self, route: &VpnPbrRoute) -> Result<Scope> {
        let credentials = match &route.spec.credentials_ref {
            None => CredentialsHandle {
                key: "default".to_owned(),
                provider: self.default_credentials.clone(),
            },
            Some(r) => self.secret_credentials(route, &r.name).await?,
        };
        Ok(Scope {
            region_id: route.spec.region_id.clone(),
            vpn_gateway_id: route.spec.vpn_gateway_id.clone(),
            credentials,
        })
    }

    async fn secret_credentials(
        &self,
        route: &VpnPbrRoute,
        name: &str,
    ) -> Result<CredentialsHandle> {
        let fail = |reason: String| Error::Secret {
            name: name.to_owned(),
            reason,
        };
        if !self.settings.route_secrets {
            return Err(fail(
                "route Secrets are disabled (--route-secrets=false)".to_owned(),
            ));
        }
        let ns = route
            .metadata
            .namespace
            .as_deref()
            .ok_or(Error::MissingField("metadata.namespace"))?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| Error::kube("read credentials Secret", e))?
            .ok_or_else(|| fail("not found".to_owned()))?;
        let data = secret.data.unwrap_or_default();
        let creds =
            Credentials::from_secret_data(data.iter().map(|(k, v)| (k.as_str(), v.0.as_slice())))
                .map_err(|e| fail(e.to_string()))?;
        Ok(CredentialsHandle {
            key: format!("secret:{ns}/{name}#{}", creds.access_key_id()),
            provider: Arc::new(StaticCredentials::new(creds)),
        })
    }
}
