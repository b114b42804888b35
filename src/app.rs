//! The operator process: clients, CRD check, leader election, HTTP endpoints, controllers,
//! shutdown. `main` only parses flags and calls [`run`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::compat;
use crate::api::v1alpha1::{VpnAccount, VpnPbrRoute};
use crate::config::Config;
use crate::controller::context::Settings;
use crate::controller::metrics::{CloudCallMetrics, Metrics};
use crate::controller::port::CloudPort;
use crate::controller::roles::RoleSessions;
use crate::controller::runner::{self, Runtime};
use crate::controller::scheduler::SchedulerConfig;
use crate::controller::vpc::VpcPort;
use crate::fence::{Fence, FencedCloud};
use crate::http::{self, Health};
use alicloud_vpc_client::credentials::CredentialsFuture;
use alicloud_vpc_client::{
    ChainOptions, CredentialsError, CredentialsProvider, VpcClientFactory, default_chain,
};

const CRD_NAME: &str = "vpnpbrroutes.vpn.alicloud.dev";
const ACCOUNT_CRD_NAME: &str = "vpnaccounts.vpn.alicloud.dev";

/// Leader election: the Lease lasts 15 s from each renewal and the leader renews it 6 s before
/// it ends; it stops sending cloud changes 4 s before it ends unless it saw the renewal
/// (`fence`), so a replica that takes an expired Lease over never overlaps with the old leader.
const LEASE_SECONDS: u64 = 15;
const LEASE_RENEW_BEFORE_SECONDS: u64 = 6;
const FENCE_MARGIN: Duration = Duration::from_secs(4);
/// How often a standby checks whether the leader released the lease.
const STANDBY_POLL: Duration = Duration::from_secs(2);

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error(
        "the VpnPbrRoute CRD ({CRD_NAME}) is not installed; install it with `kubectl apply --server-side -f crds/`"
    )]
    CrdMissing,
    #[error(
        "the installed VpnPbrRoute CRD ({CRD_NAME}) is older than this operator, it lacks: {0}; upgrade the CRD first: `helm upgrade` with this release's chart, which carries it (a CRD made before chart 0.4.0 needs one command before that upgrade), or `kubectl apply --server-side -f crds/` of this release (docs/install.md, \"Upgrading\")"
    )]
    CrdOutdated(String),
    #[error(
        "cannot read the VpnPbrRoute CRD ({CRD_NAME}) to check that it serves what this operator needs: {0}; grant `get` on customresourcedefinitions named {CRD_NAME} (the chart's ClusterRole does)"
    )]
    CrdUnreadable(String),
    #[error(
        "the VpnAccount CRD ({ACCOUNT_CRD_NAME}) {0}; install or upgrade it with this release's chart or `kubectl apply --server-side -f crds/`"
    )]
    AccountCrd(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cloud client: {0}")]
    Cloud(#[from] alicloud_vpc_client::CloudError),
    #[error("metrics server on {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("leader election: {0}")]
    Lease(String),
}

/// Stands in for the default chain when nothing is configured: routes without a Secret then
/// fail visibly (`CredentialsNotConfigured`) while routes with one still work.
#[derive(Debug)]
struct Unconfigured(CredentialsError);

impl CredentialsProvider for Unconfigured {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
    fn name(&self) -> &'static str {
        "none"
    }
}

async fn kube_client(config: &Config) -> Result<kube::Client, AppError> {
    let kc = match &config.kubeconfig {
        Some(path) => {
            let kc =
                Kubeconfig::read_from(path).map_err(|e| AppError::KubeConfig(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| AppError::KubeConfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| AppError::KubeConfig(e.to_string()))?,
    };
    kube::Client::try_from(kc).map_err(|e| AppError::KubeConfig(e.to_string()))
}

/// Waits until the CRD is served, up to `wait`.
async fn wait_for_crd(client: &kube::Client, wait: Duration) -> Result<(), AppError> {
    let deadline = tokio::time::Instant::now() + wait;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let routes: Api<VpnPbrRoute> = Api::all(client.clone());
    loop {
        // Listing the resource is what the controller needs; it works with namespaced RBAC too.
        match routes.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Api(s)) if s.code == 403 => {
                // No cluster-wide list right: ask for the CRD itself instead.
                match crds.get_opt(CRD_NAME).await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AppError::CrdMissing);
        }
        warn!("waiting for the VpnPbrRoute CRD");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Refuses an installed CRD that lacks what this binary writes or shows (`api::compat`): the
/// apiserver would silently drop the status fields it does not know.
async fn check_crd(client: &kube::Client) -> Result<(), AppError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = match crds.get(CRD_NAME).await {
        Ok(crd) => crd,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(AppError::CrdUnreadable(s.message));
        }
        Err(e) => return Err(e.into()),
    };
    let missing = compat::missing(&VpnPbrRoute::crd(), &installed);
    if !missing.is_empty() {
        return Err(AppError::CrdOutdated(compat::describe(&missing)));
    }
    // Accounts are watched from the start: their CRD must serve what this binary reads.
    let accounts = match crds.get_opt(ACCOUNT_CRD_NAME).await {
        Ok(Some(crd)) => crd,
        Ok(None) => return Err(AppError::AccountCrd("is not installed".to_owned())),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(AppError::AccountCrd(format!(
                "cannot be read ({}); grant `get` on customresourcedefinitions named {ACCOUNT_CRD_NAME}",
                s.message
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let missing = compat::missing(&VpnAccount::crd(), &accounts);
    if !missing.is_empty() {
        return Err(AppError::AccountCrd(format!(
            "is older than this operator, it lacks: {}",
            compat::describe(&missing)
        )));
    }
    info!("the installed CRDs serve every field this operator uses");
    Ok(())
}

fn cloud_factory(config: &Config, metrics: &Arc<Metrics>) -> Result<VpcClientFactory, AppError> {
    let client_config = config.cloud.client_config();
    Ok(VpcClientFactory::new(client_config)?
        .with_observer(Arc::new(CloudCallMetrics(metrics.clone()))))
}

fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), AppError> {
    let shutdown = shutdown_signal();
    let client = kube_client(&config).await?;

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let health = Arc::new(Health::default());
    let (addr, http_task) = http::serve(
        config.metrics_addr,
        registry,
        health.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|source| AppError::Http {
        addr: config.metrics_addr,
        source,
    })?;
    info!(%addr, "serving /metrics, /healthz, /readyz");

    wait_for_crd(&client, config.crd_wait).await?;
    check_crd(&client).await?;

    let factory = cloud_factory(&config, &metrics)?;
    let sts_url = config
        .cloud
        .rrsa_sts_url()
        .map_err(|e| AppError::Cloud(e.into()))?;
    let chain_options = ChainOptions {
        sts_url,
        ..ChainOptions::default()
    };
    let default_credentials: Arc<dyn CredentialsProvider> = match default_chain(
        factory.http_client().clone(),
        &chain_options,
    ) {
        Ok(p) => {
            info!(source = p.name(), "default credentials");
            p
        }
        Err(e) => {
            warn!(error = %e, "no default credentials; only routes with credentialsRef can work");
            Arc::new(Unconfigured(e))
        }
    };

    // assumeRole accounts: sessions through the same HTTP pool and STS endpoint.
    let roles = RoleSessions::new(factory.clone(), config.role_session_duration);
    let instance = std::env::var("POD_NAME").ok();
    // With leader election every cloud change passes the fence of the lease.
    let fence = Fence::new();
    let cloud: Arc<dyn CloudPort> = if config.leader_election {
        Arc::new(FencedCloud::new(
            Arc::new(VpcPort::new(factory)),
            fence.clone(),
        ))
    } else {
        Arc::new(VpcPort::new(factory))
    };
    let runtime = Runtime {
        client: client.clone(),
        cloud,
        default_credentials,
        settings: Settings {
            resync: config.resync,
            route_secrets: config.route_secrets,
            ..Settings::default()
        },
        scheduler: SchedulerConfig {
            enabled: config.gateway_scheduler,
            read_back_every: usize::from(config.read_back_every),
        },
        namespaces: config.watched_namespaces(),
        concurrency: config.concurrency,
        metrics,
        health: health.clone(),
        instance: instance.clone(),
        roles,
        account_options: config.accounts.options(),
        fence: config.leader_election.then(|| fence.clone()),
    };

    if config.leader_election {
        lead_then_run(
            &config,
            client,
            runtime,
            health,
            shutdown.clone(),
            instance,
            fence,
        )
        .await?;
    } else {
        let _ = runner::run(runtime, shutdown.clone(), config.shutdown_timeout).await;
    }
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    Ok(())
}

async fn lead_then_run(
    config: &Config,
    client: kube::Client,
    runtime: Runtime,
    health: Arc<Health>,
    shutdown: CancellationToken,
    instance: Option<String>,
    fence: Fence,
) -> Result<(), AppError> {
    let namespace = config
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let identity = instance.unwrap_or_else(|| format!("vpn-pbr-operator-{}", uuid::Uuid::new_v4()));
    let manager = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(LEASE_RENEW_BEFORE_SECONDS)
        .build()
        .await
        .map_err(|e| AppError::Lease(e.to_string()))?;
    let (mut leader, mut lease_task) = manager.watch().await;
    // A standby replica is healthy and ready: it only waits for the lease.
    health
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    info!(lease = %config.lease_name, %namespace, %identity, "waiting for the lease");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                drop(leader);
                let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
                return Ok(());
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    return Err(AppError::Lease("lease watcher stopped".to_owned()));
                }
            }
            () = tokio::time::sleep(STANDBY_POLL) => {
                // The lease manager looks again only when the holder's lease would expire; a
                // lease released by a leader that shut down is free now: restart the manager,
                // whose first look takes it.
                let released = leases.get_opt(&config.lease_name).await.ok().flatten().is_some_and(|l| {
                    l.spec.and_then(|s| s.holder_identity).is_none_or(|h| h.is_empty())
                });
                if released {
                    drop(leader);
                    let manager = lease_task
                        .await
                        .map_err(|e| AppError::Lease(e.to_string()))?
                        .map_err(|e| AppError::Lease(e.to_string()))?;
                    (leader, lease_task) = manager.watch().await;
                }
            }
        }
    }
    info!("acquired the lease; starting");
    health
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    // Losing the lease stops the controllers like a shutdown does.
    let run_token = shutdown.child_token();
    let lost = run_token.clone();
    let mut watch = leader.clone();
    let lost_watch = tokio::spawn(async move {
        loop {
            if watch.changed().await.is_err() || !*watch.borrow() {
                break;
            }
        }
        if !lost.is_cancelled() {
            error!("lost the lease; stopping");
            lost.cancel();
        }
    });
    // Cloud changes only while the lease is confirmed ours (see `fence`).
    let leader_fence = fence.clone();
    tokio::spawn(crate::fence::watch_lease_object(
        client,
        namespace.clone(),
        config.lease_name.clone(),
        identity.clone(),
        FENCE_MARGIN,
        fence,
        run_token.clone(),
    ));
    // Records pass the fence too (`Context::fence`): the controllers start once the Lease's
    // first read opened it, so the first reconciles are not held back.
    tokio::select! {
        () = leader_fence.opened() => {}
        () = run_token.cancelled() => {}
    }
    let left_in_flight = runner::run(runtime, run_token, config.shutdown_timeout).await;
    lost_watch.abort();
    let _ = lost_watch.await;
    match lease_at_exit(leader_fence.abandoned(), left_in_flight) {
        LeaseAtExit::Release => {
            // Dropping the last receiver (the watcher above holds a clone) makes the lease task
            // release the lease, so a standby takes over at once instead of when it expires.
            drop(leader);
            match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
                Ok(Ok(Ok(_))) => info!("released the lease"),
                _ => warn!("could not release the lease; a standby takes it when it expires"),
            }
        }
        LeaseAtExit::LetExpire => {
            // Stopping the lease task without a release: the Lease stays ours until it expires.
            lease_task.abort();
            warn!(
                left_in_flight,
                "a cloud request abandoned in flight may still land: the lease is left to expire, not released"
            );
        }
    }
    Ok(())
}

/// What the leader does with its Lease when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaseAtExit {
    /// Release it: a standby takes over at once.
    Release,
    /// Keep it until it expires: a request of ours may still reach the cloud, and a standby
    /// sending meanwhile could overlap with it.
    LetExpire,
}

/// Release only when no request can still land: none was abandoned by the fence and none was
/// left in flight when the shutdown timeout ended the drain.
fn lease_at_exit(abandoned_in_flight: bool, left_in_flight: usize) -> LeaseAtExit {
    if abandoned_in_flight || left_in_flight > 0 {
        LeaseAtExit::LetExpire
    } else {
        LeaseAtExit::Release
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_released_only_when_no_request_can_still_land() {
        let rows = [
            // (abandoned by the fence, left in flight at the end of the drain, expected)
            (false, 0, LeaseAtExit::Release),
            (true, 0, LeaseAtExit::LetExpire),
            (false, 1, LeaseAtExit::LetExpire),
            (true, 3, LeaseAtExit::LetExpire),
        ];
        for (abandoned, left, want) in rows {
            assert_eq!(lease_at_exit(abandoned, left), want, "{abandoned} {left}");
        }
    }
}
