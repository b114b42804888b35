//! `vpn-pbr-operator plan`: what the operator would do for a set of manifests, before they are
//! merged. Reads the manifests, optionally the live objects (their status tells which cloud
//! entries they own), each gateway once (facts and the whole list), decides per route with the
//! controller's own functions ([`route`]), and checks every create with a `DryRun=true` call so
//! the cloud's refusals (quota, next hop, conflicts, permissions) show now. Never mutates
//! anything: the only calls with side effects are dry runs.
//!
//! Exit code as `terraform plan -detailed-exitcode`: 0 nothing would change, 2 something
//! would, 1 an error (a manifest or the cloud could not be read, an invalid or conflicting
//! route, a create the cloud would refuse).

mod progress;
mod rehearse;
pub(super) mod render;
pub(super) mod route;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::cloud::{Cloud, CloudArgs, CloudSetupError};
use super::manifests::{self, ManifestError};
use crate::api::v1alpha1::{VpnPbrRoute, validation};
use std::sync::Arc;

use crate::controller::duplicates;
use crate::controller::model::{Entry, GatewayFacts, Mutation};
use crate::controller::port::CloudPort as _;
use crate::controller::vpc::{MutationRequest, VpcPort};
use alicloud_vpc_client::{CloudError, CreateVpnPbrRouteEntryRequest, ErrorClass};
use route::{DryRunResult, RoutePlan};

/// Exit code when something would change.
pub(super) const EXIT_CHANGES: u8 = 2;

/// Flags of `plan`.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("cluster").args(["kubeconfig", "live"]).multiple(true)))]
pub struct PlanArgs {
    /// A manifest file, a directory (read recursively: *.yaml, *.yml, *.json) or `-` for stdin;
    /// repeat for more. Multi-document YAML and `kind: List` are read; other kinds are ignored.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub(crate) files: Vec<PathBuf>,

    /// Also read the live objects from the cluster of this kubeconfig file: their status says
    /// which cloud entries they created or adopted. Without it, without --live and without
    /// KUBECONFIG in the environment every manifest is planned as a new object.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,

    /// Read the live objects from the ambient cluster configuration as kubectl finds it:
    /// KUBECONFIG, ~/.kube/config, or the in-cluster service account. KUBECONFIG set in the
    /// environment is enough on its own (as for kubectl); the other two need --live.
    #[arg(long, default_value_t = false)]
    pub(crate) live: bool,

    /// Read no cluster even when KUBECONFIG is set: every manifest is planned as a new object.
    #[arg(long, default_value_t = false, conflicts_with = "cluster")]
    pub(crate) offline: bool,

    /// Kubeconfig context to use (default: the current context). Needs the cluster.
    #[arg(long)]
    pub(crate) context: Option<String>,

    /// Namespace of manifests without one. Default: the kubeconfig context's namespace with
    /// the cluster, else `default`.
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    /// Also plan the deletion of objects in the cluster (in the namespaces of the manifests and
    /// --namespace) that no manifest names, as `kubectl apply --prune` would delete them.
    /// Needs the cluster (--kubeconfig, --live or KUBECONFIG).
    #[arg(long, default_value_t = false)]
    pub(crate) prune: bool,

    /// Output: a table for people or JSON for machines.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,

    /// How long a create's DryRun waits for a gateway that is busy applying another change.
    #[arg(long, default_value = "60s", value_parser = crate::duration::flag)]
    pub(crate) busy_timeout: Duration,

    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
}

/// Output formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Why `plan` could not give an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Setup(#[from] CloudSetupError),
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error("{0} needs the cluster: --kubeconfig FILE, --live, or KUBECONFIG in the environment")]
    NeedsCluster(&'static str),
    #[error(
        "the VpnPbrRoute CRD is not installed in the cluster (listing namespace {namespace} answered 404)"
    )]
    CrdMissing { namespace: String },
    #[error("listing VpnPbrRoutes in namespace {namespace}: {source}")]
    Kube {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Output(String),
}

/// A gateway as read once for every route of it.
#[derive(Debug)]
pub(super) struct GatewayRead {
    pub region_id: String,
    pub vpn_gateway_id: String,
    pub result: Result<(GatewayFacts, Vec<Entry>), CloudError>,
}

impl GatewayRead {
    fn view(&self) -> route::GatewayView<'_> {
        self.result
            .as_ref()
            .map(|(facts, entries)| (facts, entries.as_slice()))
    }
}

/// Which cluster `plan` reads its live objects from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClusterSource {
    /// None: every manifest is planned as a new object.
    None,
    /// The kubeconfig file of `--kubeconfig`.
    File(PathBuf),
    /// As kubectl finds it: KUBECONFIG, ~/.kube/config, the in-cluster service account.
    Ambient,
}

/// The rule, as kubectl's where it can be: `--kubeconfig` names the file; `--live`, or
/// KUBECONFIG set (non-empty) in the environment, reads the cluster kubectl would. Without
/// either, ~/.kube/config and a pod's service account are not read: they are there without
/// anyone choosing them (a laptop's current context, a CI runner's pod), and a plan that
/// suddenly read them would change. `--offline` reads none even with KUBECONFIG.
pub(super) fn cluster_source(
    args: &PlanArgs,
    env_kubeconfig: Option<&std::ffi::OsStr>,
) -> Result<ClusterSource, PlanError> {
    let source = match (&args.kubeconfig, args.live) {
        (Some(path), _) => ClusterSource::File(path.clone()),
        (None, true) => ClusterSource::Ambient,
        (None, false) if !args.offline && env_kubeconfig.is_some_and(|v| !v.is_empty()) => {
            ClusterSource::Ambient
        }
        (None, false) => ClusterSource::None,
    };
    if source == ClusterSource::None {
        if args.prune {
            return Err(PlanError::NeedsCluster("--prune"));
        }
        if args.context.is_some() {
            return Err(PlanError::NeedsCluster("--context"));
        }
    }
    Ok(source)
}

async fn kube_client(args: &PlanArgs) -> Result<Option<(kube::Client, String)>, PlanError> {
    let err = |e: &dyn std::fmt::Display| PlanError::KubeConfig(e.to_string());
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let source = cluster_source(args, std::env::var_os("KUBECONFIG").as_deref())?;
    let config = match source {
        ClusterSource::File(path) => {
            let kc = Kubeconfig::read_from(&path).map_err(|e| err(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| err(&e))?
        }
        ClusterSource::Ambient if args.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| err(&e))?,
        ClusterSource::Ambient => kube::Config::infer().await.map_err(|e| err(&e))?,
        ClusterSource::None => return Ok(None),
    };
    if args.kubeconfig.is_none() && !args.live {
        eprintln!(
            "vpn-pbr-operator plan: reading the live objects of the cluster KUBECONFIG names \
             (--offline reads none)"
        );
    }
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| err(&e))?;
    Ok(Some((client, namespace)))
}

async fn list_live(client: &kube::Client, namespace: &str) -> Result<Vec<VpnPbrRoute>, PlanError> {
    let api: Api<VpnPbrRoute> = Api::namespaced(client.clone(), namespace);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(PlanError::CrdMissing {
            namespace: namespace.to_owned(),
        }),
        Err(source) => Err(PlanError::Kube {
            namespace: namespace.to_owned(),
            source,
        }),
    }
}

/// The objects as applying the manifests would leave them (each manifest over its object in
/// the cluster; a new one created `now`), then those in the cluster that no manifest names and
/// that are not pruned: the world the controller's claim rules judge.
fn applied_world(
    desired: &[(String, &VpnPbrRoute)],
    live: &HashMap<(String, String), VpnPbrRoute>,
    others: &[&VpnPbrRoute],
    now: jiff::Timestamp,
) -> Vec<Arc<VpnPbrRoute>> {
    let applied = desired.iter().map(|(ns, r)| {
        let mut a = route::as_applied(r, ns, live.get(&(ns.clone(), r.name_any())));
        a.metadata
            .creation_timestamp
            .get_or_insert(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        Arc::new(a)
    });
    applied
        .chain(others.iter().map(|r| Arc::new((*r).clone())))
        .collect()
}

/// What the other objects of `world` claim of object `i`'s entry, by the controller's rules
/// (`controller::duplicates`).
#[derive(Debug, Default)]
struct Claimed {
    older: Option<String>,
    publish_conflict: Option<String>,
    publish_sharers: Vec<Arc<VpnPbrRoute>>,
}

impl Claimed {
    fn of(world: &[Arc<VpnPbrRoute>], i: usize) -> Self {
        let me = &world[i];
        let others: Vec<Arc<VpnPbrRoute>> = world
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o.clone())
            .collect();
        Self {
            older: duplicates::older_claim_among(me, &others),
            publish_conflict: duplicates::older_publish_conflict_among(me, &others),
            publish_sharers: duplicates::publish_sharers_among(me, others.iter().cloned()),
        }
    }

    fn view(&self) -> route::Claims<'_> {
        route::Claims {
            older: self.older.as_deref(),
            publish_conflict: self.publish_conflict.as_deref(),
            publish_sharers: &self.publish_sharers,
        }
    }
}

/// The create call of a planned create, as the controller would send it (`src/controller/vpc.rs`),
/// as a DryRun and without the token (the client makes one for each call).
fn create_request(m: &Mutation, gateway: &str) -> Option<CreateVpnPbrRouteEntryRequest> {
    let MutationRequest::Create(req) = MutationRequest::of(gateway, m) else {
        return None;
    };
    Some(CreateVpnPbrRouteEntryRequest {
        client_token: None,
        dry_run: Some(true),
        ..req
    })
}

/// The DryRun of one create; a busy gateway is asked again until `busy_timeout`.
async fn dry_run(cloud: &Cloud, p: &RoutePlan, busy_timeout: Duration) -> Option<DryRunResult> {
    let req = create_request(p.create.as_ref()?, &p.vpn_gateway_id)?;
    let refused = |e: &CloudError| DryRunResult {
        passed: false,
        code: e.code().to_owned(),
        message: e.message(),
        request_id: e.request_id().map(str::to_owned),
    };
    let client = match cloud.client(&p.region_id) {
        Ok(c) => c,
        Err(e) => return Some(refused(&e)),
    };
    let deadline = tokio::time::Instant::now() + busy_timeout;
    let mut delay = Duration::from_millis(500);
    loop {
        match client.dry_run(&req).await {
            Ok(passed) => {
                return Some(DryRunResult {
                    passed: true,
                    code: alicloud_vpc_client::DRY_RUN_OPERATION.to_owned(),
                    message: String::new(),
                    request_id: passed.request_id,
                });
            }
            Err(e)
                if e.class() == ErrorClass::GatewayBusy
                    && tokio::time::Instant::now() + delay < deadline =>
            {
                let left = deadline - tokio::time::Instant::now();
                eprintln!("{}", progress::busy(p, e.code(), delay, left));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Some(refused(&e)),
        }
    }
}

/// Runs `plan`; the exit code.
pub(super) async fn run(args: PlanArgs) -> Result<u8, PlanError> {
    let loaded = manifests::load(&args.files)?;
    let cluster = kube_client(&args).await?;
    let default_ns = args
        .namespace
        .clone()
        .or_else(|| cluster.as_ref().map(|(_, ns)| ns.clone()))
        .unwrap_or_else(|| "default".to_owned());

    // The manifests, each with its namespace; a second object of the same name is an error.
    let mut desired: Vec<(String, &VpnPbrRoute, &str)> = Vec::new();
    let mut twice: Vec<RoutePlan> = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for l in &loaded.routes {
        let ns = l
            .route
            .namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| default_ns.clone());
        if !seen.insert((ns.clone(), l.route.name_any())) {
            let mut p = route::plan_apply(
                &l.route,
                &ns,
                &l.origin,
                None,
                route::Claims::default(),
                None,
            );
            p.action = route::Action::Error;
            p.problem = Some(route::Problem {
                code: "DefinedTwice".into(),
                message: format!(
                    "{ns}/{} is defined by more than one manifest",
                    l.route.name_any()
                ),
            });
            p.calls.clear();
            p.create = None;
            twice.push(p);
            continue;
        }
        desired.push((ns, &l.route, &l.origin));
    }

    // The live objects of every namespace in play.
    let mut live: HashMap<(String, String), VpnPbrRoute> = HashMap::new();
    if let Some((client, _)) = &cluster {
        let namespaces: BTreeSet<String> = desired
            .iter()
            .map(|(ns, _, _)| ns.clone())
            .chain(std::iter::once(default_ns.clone()))
            .collect();
        for ns in namespaces {
            for r in list_live(client, &ns).await? {
                live.insert((ns.clone(), r.name_any()), r);
            }
        }
    }
    let in_files: BTreeSet<(String, String)> = desired
        .iter()
        .map(|(ns, r, _)| (ns.clone(), r.name_any()))
        .collect();
    let mut absent: Vec<&VpnPbrRoute> = live
        .iter()
        .filter(|(k, r)| !in_files.contains(*k) && r.metadata.deletion_timestamp.is_none())
        .map(|(_, r)| r)
        .collect();
    absent.sort_by_key(|r| (r.namespace(), r.name_any()));
    let (pruned, others): (Vec<&VpnPbrRoute>, Vec<&VpnPbrRoute>) = if args.prune {
        (absent, Vec::new())
    } else {
        (Vec::new(), absent)
    };
    let pairs: Vec<(String, &VpnPbrRoute)> =
        desired.iter().map(|(ns, r, _)| (ns.clone(), *r)).collect();
    let world = applied_world(&pairs, &live, &others, jiff::Timestamp::now());

    // Each gateway once: the valid manifests' and the pruned objects'.
    let cloud = Cloud::new(&args.cloud)?;
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for (_, r, _) in &desired {
        if validation::validate(&r.spec).is_ok() {
            wanted.insert((r.spec.region_id.clone(), r.spec.vpn_gateway_id.clone()));
        }
    }
    for r in &pruned {
        if route::owns_entry(r) && validation::validate(&r.spec).is_ok() {
            wanted.insert((r.spec.region_id.clone(), r.spec.vpn_gateway_id.clone()));
        }
    }
    let port = VpcPort::new(cloud.factory.clone());
    if !wanted.is_empty() {
        eprintln!("{}", progress::reading(wanted.len()));
    }
    let reads = futures::future::join_all(wanted.into_iter().map(|(region, gateway)| {
        let scope = cloud.scope(&region, &gateway);
        let port = &port;
        async move {
            let result = async {
                let facts = port.gateway(&scope).await?;
                let entries = port.list_entries(&scope).await?;
                Ok((facts, entries))
            }
            .await;
            GatewayRead {
                region_id: region,
                vpn_gateway_id: gateway,
                result,
            }
        }
    }))
    .await;
    let by_gateway: HashMap<(String, String), &GatewayRead> = reads
        .iter()
        .map(|g| ((g.region_id.clone(), g.vpn_gateway_id.clone()), g))
        .collect();
    let view = |r: &VpnPbrRoute| {
        by_gateway
            .get(&(r.spec.region_id.clone(), r.spec.vpn_gateway_id.clone()))
            .map(|g| g.view())
    };

    let mut plans: Vec<RoutePlan> = Vec::new();
    for (i, (ns, r, origin)) in desired.iter().enumerate() {
        let existing = live.get(&(ns.clone(), r.name_any()));
        plans.push(route::plan_apply(
            r,
            ns,
            origin,
            existing,
            Claimed::of(&world, i).view(),
            view(r),
        ));
    }
    plans.extend(twice);
    // The account plan's credentials act for: a gateway-gone answer proves something only
    // from the entry's account (asked once, only when something is pruned).
    let account = match pruned.first() {
        Some(r) => Some(
            port.caller_account(&cloud.scope(&r.spec.region_id, &r.spec.vpn_gateway_id))
                .await,
        ),
        None => None,
    };
    for r in &pruned {
        plans.push(route::plan_prune(
            r,
            view(r),
            account.as_ref().map(|a| a.as_deref()),
        ));
    }
    let creates = plans.iter().filter(|p| p.create.is_some()).count();
    for (i, p) in plans.iter_mut().filter(|p| p.create.is_some()).enumerate() {
        eprintln!("{}", progress::dry_run(i + 1, creates, p));
        p.dry_run = dry_run(&cloud, p, args.busy_timeout).await;
    }

    let report = render::PlanReport::new(plans, &reads, loaded.other_kinds);
    let text = match args.output {
        Format::Table => render::table(&report),
        Format::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| PlanError::Output(e.to_string()))?,
    };
    print!("{text}");
    Ok(report.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which cluster `plan` reads, per flags and KUBECONFIG: kubectl's rule where it can be.
    #[test]
    fn plan_reads_the_cluster_kubeconfig_names_as_kubectl_does() {
        use ClusterSource::{Ambient, File, None as Offline};
        use clap::Parser as _;
        let source = |flags: &[&str], env: Option<&str>| {
            let mut argv = vec!["op", "plan", "-f", "x"];
            argv.extend_from_slice(flags);
            let cli = crate::cli::Cli::try_parse_from(argv).expect("parses");
            let Some(crate::cli::Command::Plan(args)) = cli.command else {
                panic!("not plan");
            };
            cluster_source(&args, env.map(std::ffi::OsStr::new)).map_err(|e| e.to_string())
        };
        let file = || File(PathBuf::from("k"));
        type Row<'a> = (
            &'a str,
            &'a [&'a str],
            Option<&'a str>,
            Result<ClusterSource, &'a str>,
        );
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("no flag, no KUBECONFIG: none",              &[],                            None,         Ok(Offline)),
            ("KUBECONFIG alone: kubectl's cluster",       &[],                            Some("/kc"),  Ok(Ambient)),
            ("an empty KUBECONFIG is unset",              &[],                            Some(""),     Ok(Offline)),
            ("--offline: none despite KUBECONFIG",        &["--offline"],                 Some("/kc"),  Ok(Offline)),
            ("--live: kubectl's cluster",                 &["--live"],                    None,         Ok(Ambient)),
            ("--kubeconfig wins over KUBECONFIG",         &["--kubeconfig", "k"],         Some("/kc"),  Ok(file())),
            ("--prune with KUBECONFIG",                   &["--prune"],                   Some("/kc"),  Ok(Ambient)),
            ("--context with KUBECONFIG",                 &["--context", "c"],            Some("/kc"),  Ok(Ambient)),
            ("--prune without a cluster",                 &["--prune"],                   None,         Err("--prune needs the cluster")),
            ("--context without a cluster",               &["--context", "c"],            None,         Err("--context needs the cluster")),
            ("--prune --offline",                         &["--prune", "--offline"],      Some("/kc"),  Err("--prune needs the cluster")),
        ];
        for (name, flags, env, want) in rows {
            let got = source(flags, *env);
            match want {
                Ok(w) => assert_eq!(got.as_ref(), Ok(w), "{name}"),
                Err(w) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(w)),
                    "{name}: {got:?}"
                ),
            }
        }
        let parse = |flags: &[&str]| {
            let mut argv = vec!["op", "plan", "-f", "x"];
            argv.extend_from_slice(flags);
            crate::cli::Cli::try_parse_from(argv).is_ok()
        };
        assert!(!parse(&["--offline", "--live"]), "--offline with --live");
        assert!(
            !parse(&["--offline", "--kubeconfig", "k"]),
            "--offline with --kubeconfig"
        );
    }

    fn route(ns: &str, name: &str, created: Option<&str>) -> VpnPbrRoute {
        let mut r: VpnPbrRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}/{name}")},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                     "routeSource": "192.168.1.0/24", "routeDest": "10.0.0.0/16",
                     "nextHop": "vco-1", "weight": 100, "publishVpc": false}
        }))
        .expect("route");
        if let Some(t) = created {
            r.metadata.creation_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.parse().expect("time")),
            );
        }
        r
    }

    /// Who claims manifest `i`'s entry first, as the controller would judge it.
    fn older(
        desired: &[(String, &VpnPbrRoute)],
        live: &HashMap<(String, String), VpnPbrRoute>,
        others: &[&VpnPbrRoute],
        i: usize,
    ) -> Option<String> {
        let now = "2026-01-01T00:00:00Z".parse().expect("time");
        Claimed::of(&applied_world(desired, live, others, now), i).older
    }

    #[test]
    fn the_oldest_live_object_keeps_the_entry_else_the_first_by_name() {
        let a = route("ns", "a", None);
        let b = route("ns", "b", None);
        let desired = vec![("ns".to_owned(), &a), ("ns".to_owned(), &b)];
        let none = HashMap::new();
        assert_eq!(older(&desired, &none, &[], 1).as_deref(), Some("ns/a"));
        assert_eq!(older(&desired, &none, &[], 0), None);

        // b exists in the cluster: it is older than the new a.
        let mut live = HashMap::new();
        live.insert(
            ("ns".to_owned(), "b".to_owned()),
            route("ns", "b", Some("2024-01-01T00:00:00Z")),
        );
        assert_eq!(older(&desired, &live, &[], 0).as_deref(), Some("ns/b"));

        // An object in the cluster that no manifest names (and is not pruned) still claims it.
        let old = route("other", "c", Some("2023-01-01T00:00:00Z"));
        assert_eq!(
            older(&desired, &live, &[&old], 0).as_deref(),
            Some("other/c")
        );
        assert_eq!(
            older(&desired, &live, &[&old], 1).as_deref(),
            Some("other/c")
        );
    }

    #[test]
    fn the_object_holding_the_entry_keeps_it_over_an_older_one() {
        let a = route("ns", "a", None);
        let b = route("ns", "b", None);
        let desired = vec![("ns".to_owned(), &a), ("ns".to_owned(), &b)];
        let mut live = HashMap::new();
        live.insert(
            ("ns".to_owned(), "a".to_owned()),
            route("ns", "a", Some("2024-01-01T00:00:00Z")),
        );
        let mut holder = route("ns", "b", Some("2024-06-01T00:00:00Z"));
        holder.status = Some(
            serde_json::from_value(serde_json::json!({"createTime": "2024-06-01T00:00:01.000Z"}))
                .expect("status"),
        );
        live.insert(("ns".to_owned(), "b".to_owned()), holder);
        assert_eq!(older(&desired, &live, &[], 0).as_deref(), Some("ns/b"));
        assert_eq!(older(&desired, &live, &[], 1), None);
    }

    #[test]
    fn a_publish_conflict_is_planned_as_the_controller_judges_it() {
        let a = route("ns", "a", Some("2024-01-01T00:00:00Z"));
        let mut b = route("ns", "b", None);
        // Same gateway, destination and next hop, another source, the other publishVpc.
        b.spec.route_source = "192.168.2.0/24".into();
        b.spec.publish_vpc = true;
        let desired = vec![("ns".to_owned(), &a), ("ns".to_owned(), &b)];
        let mut live = HashMap::new();
        live.insert(("ns".to_owned(), "a".to_owned()), a.clone());
        let now = "2026-01-01T00:00:00Z".parse().expect("time");
        let world = applied_world(&desired, &live, &[], now);
        assert_eq!(
            Claimed::of(&world, 1).publish_conflict.as_deref(),
            Some("ns/a")
        );
        assert_eq!(
            Claimed::of(&world, 0).publish_conflict,
            None,
            "the older waits for none"
        );
        assert_eq!(Claimed::of(&world, 0).publish_sharers.len(), 1);
    }

    #[test]
    fn the_dry_run_request_is_the_controllers_create() {
        let m = Mutation::Create {
            route: crate::controller::model::RouteId {
                route_source: "192.168.1.0/24".into(),
                route_dest: "10.0.0.0/16".into(),
                next_hop: "vco-1".into(),
            },
            weight: 0,
            priority: Some(20),
            publish_vpc: true,
            description: Some("d".into()),
            overlay_mode: None,
            client_token: String::new(),
        };
        let req = create_request(&m, "vpn-a").expect("create");
        assert_eq!(req.dry_run, Some(true));
        assert_eq!(
            (req.weight, req.priority, req.publish_vpc),
            (0, Some(20), true)
        );
        assert_eq!(req.client_token, None);
        assert_eq!(req.description.as_deref(), Some("d"));
    }
}
