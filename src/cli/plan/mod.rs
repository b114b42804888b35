//! `vpn-pbr-operator plan`: what the operator would do for a set of manifests, before they are
//! merged. Reads the manifests, optionally the live objects (their status tells which cloud
//! entries they own), each gateway once per credentials (facts and the whole list), decides per
//! route with the controller's own functions ([`route`]) in the account the operator would
//! resolve for it (with the cluster: `cli/accounts.rs`; its reads and DryRun go with that
//! account's credentials), and checks every create with a `DryRun=true` call so the cloud's
//! refusals (quota, next hop, conflicts, permissions) show now. Never mutates anything: the only
//! calls with side effects are dry runs.
//!
//! Exit code as `terraform plan -detailed-exitcode`: 0 nothing would change, 2 something
//! would, 1 an error (a manifest or the cloud could not be read, an invalid or conflicting
//! route, a create the cloud would refuse).

mod progress;
mod rehearse;
pub(super) mod render;
pub(super) mod route;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::accounts::{self, AccountsError, Tenants};
use super::cloud::{Cloud, CloudArgs, CloudSetupError};
use super::manifests::{self, ManifestError};
use crate::api::v1alpha1::{VpnPbrRoute, validation};
use crate::config::AccountFlags;
use crate::controller::decide::AccountGate;
use crate::controller::model::{CredentialsHandle, Scope};
use crate::controller::reason::Reason;
use crate::controller::resolve::{Refusal, Resolved};
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
    pub(crate) accounts: AccountFlags,

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
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error("{0}")]
    Output(String),
}

/// A gateway as read once for every route of it.
#[derive(Debug)]
pub(super) struct GatewayRead {
    pub region_id: String,
    pub vpn_gateway_id: String,
    /// The key of the credentials it was read with (a gateway is read once per credentials).
    pub credentials: String,
    /// The VpnAccount whose credentials read it (`None`: the command's own).
    pub account: Option<String>,
    pub result: Result<(GatewayFacts, Vec<Entry>), CloudError>,
}

impl GatewayRead {
    fn view(&self) -> route::GatewayView<'_> {
        self.result
            .as_ref()
            .map(|(facts, entries)| (facts, entries.as_slice()))
    }
}

/// A gateway read: region, gateway and the key of the credentials.
type ReadKey = (String, String, String);

fn read_key(r: &VpnPbrRoute, c: &CredentialsHandle) -> ReadKey {
    (
        r.spec.region_id.clone(),
        r.spec.vpn_gateway_id.clone(),
        c.key.clone(),
    )
}

/// The account a route is planned in, and the credentials its reads and DryRun go with.
enum Acting {
    /// Without the cluster: the command's own credentials (the operator's identity, as before
    /// accounts).
    Own,
    /// As the operator resolves it, with the credentials the operator's code builds for it
    /// (or why they cannot be had: the reason and message the route would show).
    In(Resolved, Result<CredentialsHandle, (Reason, String)>),
    /// The operator refuses the route before any call.
    Refused(Refusal),
}

impl Acting {
    fn gate(&self) -> AccountGate<'_> {
        match self {
            Self::Own => route::OWN,
            Self::In(held, _) => AccountGate::Open {
                name: &held.name,
                adoption: held.allows_adoption(),
            },
            Self::Refused(r) => AccountGate::Refused(r),
        }
    }

    /// The credentials of the route's calls; `None`: it makes none.
    fn credentials<'a>(&'a self, own: &'a CredentialsHandle) -> Option<&'a CredentialsHandle> {
        match self {
            Self::Own => Some(own),
            Self::In(_, Ok(c)) => Some(c),
            Self::In(_, Err(_)) | Self::Refused(_) => None,
        }
    }

    /// The VpnAccount whose credentials the calls go with (`None`: the command's own).
    fn account(&self) -> Option<String> {
        match self {
            Self::In(held, _) if held.account.is_some() => Some(held.name.clone()),
            _ => None,
        }
    }

    /// The plan with the account: the name status would record, how its credentials are had,
    /// and, for a route that needed the gateway, why they cannot be.
    fn annotate(&self, mut p: RoutePlan, r: &VpnPbrRoute) -> RoutePlan {
        match self {
            Self::Own if r.spec.account_ref.is_some() => p.notes.push(
                "accountRef: without the cluster its VpnAccount is not read; planned with the \
                 command's own credentials"
                    .into(),
            ),
            Self::Own | Self::Refused(_) => {}
            Self::In(held, credentials) => {
                p.account = Some(held.name.clone());
                if held.account.is_some() {
                    p.notes.push(format!("account: {}", accounts::how(held)));
                }
                let unread = p
                    .problem
                    .as_ref()
                    .is_some_and(|x| x.code == route::NOT_READ);
                if let (Err((reason, message)), true) = (credentials, unread) {
                    return p.error(reason.as_str(), message.clone());
                }
            }
        }
        p
    }
}

/// The accounts of the routes in play, each account's credentials built once.
struct Accounts<'a> {
    tenants: Option<&'a Tenants>,
    cloud: &'a Cloud,
    built: HashMap<String, Result<CredentialsHandle, (Reason, String)>>,
}

impl<'a> Accounts<'a> {
    fn new(tenants: Option<&'a Tenants>, cloud: &'a Cloud) -> Self {
        Self {
            tenants,
            cloud,
            built: HashMap::new(),
        }
    }

    /// The account a live route acts in (as applied: a recorded account is kept), or, for a
    /// pruned one, the account its cleanup acts in (the one that holds its entry).
    async fn of(&mut self, route: &VpnPbrRoute, pruned: bool) -> Acting {
        let Some(tenants) = self.tenants else {
            return Acting::Own;
        };
        let resolved = if pruned {
            tenants.resolve_for_cleanup(route).map_err(|gone| {
                let why = format!(
                    "VpnAccount {gone}, which holds the cloud entry, does not exist: the \
                     cleanup waits for it"
                );
                let held = Resolved {
                    name: gone,
                    account: None,
                };
                Acting::In(held, Err((Reason::AccountNotFound, why)))
            })
        } else {
            tenants.resolve(route).map_err(Acting::Refused)
        };
        match resolved {
            Ok(held) => {
                let credentials = self.credentials(tenants, &held).await;
                Acting::In(held, credentials)
            }
            Err(acting) => acting,
        }
    }

    async fn credentials(
        &mut self,
        tenants: &Tenants,
        held: &Resolved,
    ) -> Result<CredentialsHandle, (Reason, String)> {
        if let Some(built) = self.built.get(&held.name) {
            return built.clone();
        }
        let built = tenants
            .credentials(self.cloud, held)
            .await
            .map_err(|e| (e.reason(), e.message()));
        self.built.insert(held.name.clone(), built.clone());
        built
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
    let source = cluster_source(args, std::env::var_os("KUBECONFIG").as_deref())?;
    let file = match &source {
        ClusterSource::File(path) => Some(path.as_path()),
        ClusterSource::Ambient => None,
        ClusterSource::None => return Ok(None),
    };
    let config = accounts::cluster_config(file, args.context.as_deref())
        .await
        .map_err(|e| err(&e))?;
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
async fn dry_run(
    cloud: &Cloud,
    credentials: &CredentialsHandle,
    p: &RoutePlan,
    busy_timeout: Duration,
) -> Option<DryRunResult> {
    let req = create_request(p.create.as_ref()?, &p.vpn_gateway_id)?;
    let refused = |e: &CloudError| DryRunResult {
        passed: false,
        code: e.code().to_owned(),
        message: e.message(),
        request_id: e.request_id().map(str::to_owned),
    };
    let client = match cloud.client(&p.region_id, credentials) {
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
                route::OWN,
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

    // The account of each route, as the operator resolves it (with the cluster's accounts).
    let cloud = Cloud::new(&args.cloud)?;
    let own = cloud.own();
    let tenants = match &cluster {
        Some((client, _)) => {
            let namespaces: BTreeSet<String> = desired
                .iter()
                .map(|(ns, _, _)| ns.clone())
                .chain(pruned.iter().filter_map(|r| r.namespace()))
                .collect();
            let options = args.accounts.options();
            Some(Tenants::read(client, &namespaces, options, &cloud).await?)
        }
        None => None,
    };
    let mut accounts = Accounts::new(tenants.as_ref(), &cloud);
    let mut acting_apply = Vec::with_capacity(desired.len());
    for applied in world.iter().take(desired.len()) {
        acting_apply.push(accounts.of(applied, false).await);
    }
    let mut acting_prune = Vec::with_capacity(pruned.len());
    for r in &pruned {
        acting_prune.push(accounts.of(r, true).await);
    }

    // Each gateway once per credentials: the valid manifests' and the pruned objects'.
    let mut wanted: BTreeMap<ReadKey, (CredentialsHandle, Option<String>)> = BTreeMap::new();
    let mut want = |r: &VpnPbrRoute, a: &Acting| {
        if let Some(c) = a.credentials(&own) {
            wanted.insert(read_key(r, c), (c.clone(), a.account()));
        }
    };
    for ((_, r, _), a) in desired.iter().zip(&acting_apply) {
        if validation::validate(&r.spec).is_ok() {
            want(r, a);
        }
    }
    for (r, a) in pruned.iter().zip(&acting_prune) {
        if route::owns_entry(r) && validation::validate(&r.spec).is_ok() {
            want(r, a);
        }
    }
    let port = VpcPort::new(cloud.factory.clone());
    if !wanted.is_empty() {
        eprintln!("{}", progress::reading(wanted.len()));
    }
    let reads =
        futures::future::join_all(wanted.into_iter().map(|(key, (credentials, account))| {
            let (region, gateway, _) = key;
            let port = &port;
            async move {
                let scope = Scope {
                    region_id: region,
                    vpn_gateway_id: gateway,
                    credentials,
                };
                let result = async {
                    let facts = port.gateway(&scope).await?;
                    let entries = port.list_entries(&scope).await?;
                    Ok((facts, entries))
                }
                .await;
                GatewayRead {
                    region_id: scope.region_id,
                    vpn_gateway_id: scope.vpn_gateway_id,
                    credentials: scope.credentials.key,
                    account,
                    result,
                }
            }
        }))
        .await;
    let by_gateway: HashMap<ReadKey, &GatewayRead> = reads
        .iter()
        .map(|g| {
            let key = (
                g.region_id.clone(),
                g.vpn_gateway_id.clone(),
                g.credentials.clone(),
            );
            (key, g)
        })
        .collect();
    let view = |r: &VpnPbrRoute, a: &Acting| {
        let c = a.credentials(&own)?;
        by_gateway.get(&read_key(r, c)).map(|g| g.view())
    };

    let mut plans: Vec<RoutePlan> = Vec::new();
    // The credentials each create's DryRun goes with, by route.
    let mut signed: HashMap<String, CredentialsHandle> = HashMap::new();
    for (i, ((ns, r, origin), a)) in desired.iter().zip(&acting_apply).enumerate() {
        let existing = live.get(&(ns.clone(), r.name_any()));
        let claimed = Claimed::of(&world, i);
        let p = route::plan_apply(
            r,
            ns,
            origin,
            existing,
            claimed.view(),
            a.gate(),
            view(r, a),
        );
        let p = a.annotate(p, r);
        if let Some(c) = a.credentials(&own) {
            signed.insert(p.key(), c.clone());
        }
        plans.push(p);
    }
    plans.extend(twice);
    // The account of the credentials each pruned route is read with: a gateway-gone answer
    // proves something only from the entry's account (asked once per credentials).
    let mut callers: HashMap<String, Result<String, CloudError>> = HashMap::new();
    for (r, a) in pruned.iter().zip(&acting_prune) {
        let caller = match a.credentials(&own) {
            Some(c) => {
                if !callers.contains_key(&c.key) {
                    let scope = Scope {
                        region_id: r.spec.region_id.clone(),
                        vpn_gateway_id: r.spec.vpn_gateway_id.clone(),
                        credentials: c.clone(),
                    };
                    callers.insert(c.key.clone(), port.caller_account(&scope).await);
                }
                callers.get(&c.key)
            }
            None => None,
        };
        let p = route::plan_prune(
            r,
            view(r, a),
            caller.map(|c| c.as_ref().map(String::as_str)),
            a.gate(),
        );
        plans.push(a.annotate(p, r));
    }
    let creates = plans.iter().filter(|p| p.create.is_some()).count();
    for (i, p) in plans.iter_mut().filter(|p| p.create.is_some()).enumerate() {
        eprintln!("{}", progress::dry_run(i + 1, creates, p));
        let credentials = signed.get(&p.key()).unwrap_or(&own);
        p.dry_run = dry_run(&cloud, credentials, p, args.busy_timeout).await;
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

    /// What a route's account adds to its plan: the name status would record, how the
    /// credentials are had, and why they cannot be when the gateway was needed.
    #[test]
    fn the_account_of_a_route_is_shown_and_credentials_that_fail_are_its_problem() {
        let account: crate::api::v1alpha1::VpnAccount = serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
            "metadata": {"name": "team-b"},
            "spec": {"credentials": {"assumeRole": {"roleArn": "acs:ram::2222222222222222:role/vpn"}},
                     "namespaceSelector": {}}
        }))
        .expect("account");
        let team_b = || Resolved {
            name: "team-b".into(),
            account: Some(Arc::new(account.clone())),
        };
        let operator = Resolved {
            name: crate::api::v1alpha1::OPERATOR_ACCOUNT.into(),
            account: None,
        };
        let unavailable = || Err((Reason::CredentialsUnavailable, "no STS".to_owned()));
        let mut named = route("ns", "r", None);
        named.spec.account_ref = Some("team-b".into());
        let mut invalid = route("ns", "r", None);
        invalid.spec.next_hop = "nope".into();
        let unread = |r: &VpnPbrRoute| {
            route::plan_apply(
                r,
                "ns",
                "f",
                None,
                route::Claims::default(),
                route::OWN,
                None,
            )
        };
        let own = || {
            let key: Arc<dyn alicloud_vpc_client::CredentialsProvider> =
                Arc::new(alicloud_vpc_client::StaticCredentials::new(
                    alicloud_vpc_client::Credentials::new("id", "secret"),
                ));
            Ok(crate::controller::credentials::own_handle(&key))
        };
        let note = |p: &RoutePlan, word: &str| p.notes.iter().any(|n| n.contains(word));

        let p = Acting::Own.annotate(unread(&named), &named);
        assert!(p.account.is_none() && note(&p, "not read"), "{p:?}");
        let p = Acting::In(operator, own()).annotate(unread(&named), &named);
        assert_eq!(p.account.as_deref(), Some("(operator)"));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let p = Acting::In(team_b(), own()).annotate(unread(&named), &named);
        assert!(
            note(&p, "assumeRole acs:ram::2222222222222222:role/vpn"),
            "{:?}",
            p.notes
        );
        let p = Acting::In(team_b(), unavailable()).annotate(unread(&named), &named);
        assert_eq!(
            p.problem.as_ref().map(|x| x.code.as_str()),
            Some("CredentialsUnavailable")
        );
        // A gate before the read decides first, as in the operator.
        let p = Acting::In(team_b(), unavailable()).annotate(unread(&invalid), &invalid);
        assert_eq!(
            p.problem.as_ref().map(|x| x.code.as_str()),
            Some("InvalidSpec")
        );
    }
}
