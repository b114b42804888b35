//! What the integration tests of this package share: one control plane per test binary (every
//! test has a namespace of its own) and the paths of the programs under test. Everything else
//! comes from the workspace's harness crate (`crates/vpn-pbr-harness`).
#![allow(dead_code, unused_imports)] // each test binary uses a part of it

pub mod cli;
pub mod env;
pub mod route;
pub mod upgrade;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub use vpn_pbr_harness::wait::{eventually, ready_is, wait_gone, wait_route};
use vpn_pbr_harness::{Binaries, tools};
pub use vpn_pbr_harness::{ControlPlane, Emulator, Operator, OperatorOptions, command, emulator};

/// The control plane of this test binary, started on first use; stopped by its watchdog when
/// the binary exits.
pub fn plane() -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        ControlPlane::start_default().unwrap_or_else(|e| panic!("control plane: {e:#}"))
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    tools::repo_root()
}

/// What a test holds while its processes run: the lock that keeps it alone among the tests of
/// its binary that share `serial`, and the directory of its processes' files. Kept as the last
/// field of a test's world, so both outlive the processes.
pub struct Alone {
    dir: tempfile::TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Alone {
    /// Waits until no other holder of `serial` runs, then makes the directory.
    pub async fn start(serial: &'static tokio::sync::Mutex<()>) -> anyhow::Result<Alone> {
        let guard = serial.lock().await;
        Ok(Alone {
            dir: tempfile::tempdir()?,
            _serial: guard,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The operator's Helm chart, relative to the repository root.
pub const CHART: &str = "deploy/helm/vpn-pbr-operator";

/// The operator's Helm chart.
pub fn chart_dir() -> PathBuf {
    repo_root().join(CHART)
}

/// The name of the `VpnPbrRoute` CRD (tests/api_crd.rs checks it is the type's).
pub const ROUTE_CRD: &str = "vpnpbrroutes.vpn.alicloud.dev";

/// The operator binary of this package.
pub fn operator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpn-pbr-operator"))
}

/// The workspace's programs and tools; fails with the command that builds what is missing.
pub fn binaries() -> Binaries {
    Binaries::locate().unwrap_or_else(|e| panic!("{e:#}"))
}

/// An emulator with `config`, its files in a fresh temporary directory.
pub fn start_emulator(config: &str, dir: &Path) -> Emulator {
    Emulator::start(&binaries().emulator, dir, config)
        .unwrap_or_else(|e| panic!("vpc-emulator: {e:#}"))
}

/// The operator watching `namespace` against `endpoint`, logging under `dir`, with the
/// integration tests' defaults (3 s resync, debug logs) before `extra`.
pub fn start_operator(
    namespace: &str,
    endpoint: &str,
    dir: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Operator {
    // Defaults that a flag in `extra` overrides (the operator takes each flag once).
    let mut args: Vec<String> = [
        ["--resync", "3s"],
        ["--log-level", "info,vpn_pbr_operator=debug"],
    ]
    .iter()
    .filter(|[flag, _]| !extra.contains(flag))
    .flatten()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let log = dir.join(format!("operator-{}.log", std::process::id()));
    Operator::start(OperatorOptions {
        bin: operator_binary(),
        kubeconfig: plane().kubeconfig.clone(),
        namespace: namespace.to_owned(),
        endpoint: endpoint.to_owned(),
        log,
        args,
        envs: envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
    .unwrap_or_else(|e| panic!("vpn-pbr-operator: {e:#}"))
}

/// An admin client of the shared plane with the CRD installed, and a fresh namespace.
pub async fn setup(prefix: &str) -> anyhow::Result<(kube::Client, String)> {
    let client = plane().client().await?;
    vpn_pbr_harness::install_crd(&client, &repo_root()).await?;
    let ns = vpn_pbr_harness::namespace(&client, prefix).await?;
    Ok((client, ns))
}

/// [`setup`] with two fresh namespaces, named after `prefix-<first>` and `prefix-<second>`.
pub async fn setup_two(
    prefix: &str,
    first: &str,
    second: &str,
) -> anyhow::Result<(kube::Client, String, String)> {
    let (client, one) = setup(&format!("{prefix}-{first}")).await?;
    let two = vpn_pbr_harness::namespace(&client, &format!("{prefix}-{second}")).await?;
    Ok((client, one, two))
}

/// Who holds the Lease `lease` of `ns`, when it can be read and is held.
pub async fn lease_holder(client: &kube::Client, ns: &str, lease: &str) -> Option<String> {
    kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), ns)
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

/// [`eventually`] for a check that can fail: polls until `check` returns `Ok(Some(_))`; its
/// first error ends the wait with that error.
pub async fn eventually_ok<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    eventually(timeout, what, || {
        let fut = check();
        async move { fut.await.transpose() }
    })
    .await?
}

/// Deletes Namespace `ns` and does what the namespace controller would (this control plane
/// runs none): deletes its Secrets first (they have no finalizer, so a route's cleanup finds
/// them gone) and its routes, waits up to `timeout` until the routes are gone (every
/// finalizer let go), then finalizes the Namespace and waits until it is gone.
pub async fn delete_namespace(
    client: &kube::Client,
    ns: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let (delete, all) = (DeleteParams::default(), ListParams::default());
    namespaces.delete(ns, &delete).await?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .delete_collection(&delete, &all)
        .await?;
    let routes: Api<VpnPbrRoute> = Api::namespaced(client.clone(), ns);
    routes.delete_collection(&delete, &all).await?;
    eventually_ok(timeout, &format!("the routes of {ns} gone"), || {
        let routes = routes.clone();
        let all = all.clone();
        async move { Ok(routes.list(&all).await?.items.is_empty().then_some(())) }
    })
    .await?;
    // What the namespace controller does once the content is gone.
    let mut finalized = namespaces.get(ns).await?;
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = None;
    }
    namespaces
        .replace_subresource("finalize", ns, &PostParams::default(), &finalized)
        .await?;
    eventually_ok(timeout, &format!("namespace {ns} gone"), || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) }
    })
    .await
}
