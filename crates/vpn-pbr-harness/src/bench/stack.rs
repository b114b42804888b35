//! What a run stands on: its work directory, a control plane with the CRD, and the processes
//! and objects of one run ([`Stack`]: an emulator, an operator, a watch and the routes to
//! create).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use kube::api::Api;
use kube::{Client, ResourceExt};

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

use super::scenario::Scenario;
use crate::cluster::{ControlPlane, create_namespace, install_crd};
use crate::emulator::{self, Emulator};
use crate::operator::{Operator, OperatorOptions};
use crate::tools::Binaries;
use crate::workload::{self, Tracker};

/// A fresh working directory under the system temp dir.
pub fn work_dir(prefix: &str) -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// Starts a control plane in a fresh work directory and installs the CRD.
pub async fn start_cluster(bins: &Binaries, work: &Path) -> Result<(ControlPlane, Client)> {
    let cluster = ControlPlane::start(&bins.repo, &bins.tools, &work.join("cluster"))?;
    let client = cluster.client().await?;
    install_crd(&client, &bins.repo).await?;
    Ok((cluster, client))
}

/// The processes and objects of one run.
pub(crate) struct Stack {
    pub(crate) emu: Emulator,
    pub(crate) op: Operator,
    pub(crate) api: Api<VpnPbrRoute>,
    pub(crate) tracker: Tracker,
    /// The routes to create (not created yet) and their names.
    pub(crate) objs: Vec<VpnPbrRoute>,
    pub(crate) names: Vec<String>,
    /// The stack's work directory (the operator's log and per-run tables).
    pub(crate) dir: PathBuf,
}

impl Stack {
    /// `vpn_pbr_reconciles_total` of the running operator, summed over results.
    pub(crate) async fn reconciles(&self) -> Option<f64> {
        self.op
            .metrics()
            .await
            .ok()
            .and_then(|m| sum_metric(&m, "vpn_pbr_reconciles_total"))
    }
}

fn sum_metric(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with(name)
            && line[name.len()..].starts_with(['{', ' '])
            && let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())
        {
            found = true;
            total += v;
        }
    }
    found.then_some(total)
}

/// `--log-level` and, when set, `--api-rate` operator flags.
pub(crate) fn log_and_rate(log_level: &str, api_rate: Option<f64>) -> Vec<String> {
    let mut args = vec!["--log-level".to_owned(), log_level.to_owned()];
    if let Some(rate) = api_rate {
        args.extend(["--api-rate".to_owned(), rate.to_string()]);
    }
    args
}

/// Creates namespace `ns` and work directory `dir`, starts an emulator with `gateways` +
/// `quiet_gateways` gateways of update time `update` and an operator watching `ns` (waiting
/// until it is up), and prepares `routes` route objects over the first `gateways`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_stack(
    bins: &Binaries,
    cluster: &ControlPlane,
    client: &Client,
    ns: &str,
    dir: &Path,
    gateways: usize,
    quiet_gateways: usize,
    routes: usize,
    update: Duration,
    extra: &[String],
) -> Result<Stack> {
    create_namespace(client, ns).await?;
    std::fs::create_dir_all(dir)?;
    let emu = Emulator::start(
        &bins.emulator,
        dir,
        &emulator::bench_config_yaml(
            gateways + quiet_gateways,
            u64::try_from(update.as_millis())?,
        ),
    )?;
    let mut op = Operator::start(OperatorOptions {
        bin: bins.operator.clone(),
        kubeconfig: cluster.kubeconfig.clone(),
        namespace: ns.to_owned(),
        endpoint: emu.url.clone(),
        log: dir.join("operator.log"),
        args: extra.to_vec(),
        envs: Vec::new(),
    })?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let api: Api<VpnPbrRoute> = Api::namespaced(client.clone(), ns);
    let tracker = Tracker::start(api.clone()).await?;
    let objs = (0..routes)
        .map(|i| workload::route(i, gateways))
        .collect::<Result<Vec<_>>>()?;
    let names = objs.iter().map(ResourceExt::name_any).collect();
    Ok(Stack {
        emu,
        op,
        api,
        tracker,
        objs,
        names,
        dir: dir.to_path_buf(),
    })
}

/// The stack of a scenario, in a namespace and a work subdirectory of its own.
pub(crate) async fn start_scenario(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    work: &Path,
) -> Result<Stack> {
    let ns = format!("bench-{}-{}", sc.label, std::process::id());
    let dir = work.join(&sc.label);
    start_stack(
        bins,
        cluster,
        client,
        &ns,
        &dir,
        sc.gateways,
        sc.quiet_gateways,
        sc.routes,
        sc.update,
        &sc.operator_args(),
    )
    .await
}
