//! Wires the controllers: one per watched namespace (or one for all), sharing the gateway
//! scheduler, the gateway cache and the context.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::account_reconcile::{self, AccountContext};
use super::accounts::Accounts;
use super::backoff::Backoffs;
use super::context::{Context, Settings};
use super::duplicates::{ClaimCache, ClaimIndex};
use super::echoes::Echoes;
use super::entries::GatewayCache;
use super::job::{Owner, owner_of};
use super::metrics::{GatewayLabels, Metrics, StallLabels};
use super::objects::{EventSource, KubeObjects};
use super::port::CloudPort;
use super::prompt::{self, PromptLane};
use super::reconcile::{error_policy, object_key, reconcile};
use super::resolve::AccountOptions;
use super::roles::RoleSessions;
use super::scheduler::{Scheduler, SchedulerConfig};
use super::tenancy::{self, Tenancy};
use crate::api::v1alpha1::{DEFAULT_ACCOUNT_ANNOTATION, VpnAccount, VpnPbrRoute};
use crate::http::Health;
use alicloud_vpc_client::CredentialsProvider;

/// Routes per page of the watch's list: a page is held untrimmed until it is cached.
const LIST_PAGE: u32 = 250;

/// Everything the controllers need.
pub(crate) struct Runtime {
    pub client: kube::Client,
    pub cloud: Arc<dyn CloudPort>,
    pub default_credentials: Arc<dyn CredentialsProvider>,
    pub settings: Settings,
    pub scheduler: SchedulerConfig,
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    pub concurrency: u16,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Identity in events (pod name).
    pub instance: Option<String>,
    /// Which account a route acts in: the operator's settings.
    pub account_options: AccountOptions,
    /// The sessions of `assumeRole` accounts.
    pub roles: RoleSessions,
    /// With leader election: the Lease's fence, which records pass too (`Context::fence`).
    pub fence: Option<crate::fence::Fence>,
}

/// Runs until `shutdown`, then waits up to `drain` for cloud calls in flight; returns how many
/// were still in flight then (their requests may still land).
pub(crate) async fn run(rt: Runtime, shutdown: CancellationToken, drain: Duration) -> usize {
    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<Owner>();
    let cache = GatewayCache::new(rt.cloud.clone(), wake_tx.clone());
    let scheduler = Scheduler::new(
        rt.cloud.clone(),
        cache.clone(),
        rt.scheduler.clone(),
        wake_tx.clone(),
        shutdown.clone(),
    );

    let (prompt, prompt_rx) = PromptLane::new(scheduler.clone());

    let apis: Vec<(Option<String>, Api<VpnPbrRoute>)> = if rt.namespaces.is_empty() {
        vec![(None, Api::all(rt.client.clone()))]
    } else {
        rt.namespaces
            .iter()
            .map(|ns| (Some(ns.clone()), Api::namespaced(rt.client.clone(), ns)))
            .collect()
    };
    // The accounts and namespaces routes resolve their account from (cluster-wide).
    let (account_reader, account_writer) = reflector::store::<VpnAccount>();
    let (ns_reader, ns_writer) = reflector::store::<Namespace>();
    let tenancy = Tenancy::new(
        account_reader.clone(),
        ns_reader,
        rt.account_options.clone(),
    );
    // A route event names the account it uses: that account's route count is due.
    let (account_tx, account_rx) = mpsc::unbounded_channel::<ObjectRef<VpnAccount>>();
    let echoes = {
        // A route key is `namespace/name` (reconcile.rs `object_key`).
        let wake = wake_tx.clone();
        Arc::new(Echoes::new(move |key| {
            if let Some((ns, name)) = key.split_once('/') {
                let _ = wake.send(Owner::new(name, Some(ns)));
            }
        }))
    };
    let controllers: Vec<(Option<String>, Controller<VpnPbrRoute>, ClaimCache)> = apis
        .into_iter()
        .map(|(ns, api)| {
            // Our own reflector, so what the cache keeps can be trimmed: managed fields and
            // the last-applied annotation are never read and are most of an object's size.
            // The (re)list is paged: the "any" semantic (resourceVersion=0) makes the API server
            // answer in one piece whatever the page size, so a relist of 10,000 routes would
            // hold every object untrimmed at once (about 15 MB of JSON and more parsed).
            // The claim index sees each event just before the cache does (duplicates.rs).
            let (reader, writer) = kube::runtime::reflector::store();
            let index = ClaimIndex::default();
            let feed = index.clone();
            let (uses, account_tx) = (tenancy.clone(), account_tx.clone());
            let (gone, echoed) = (echoes.clone(), echoes.clone());
            let (noted, taken) = (prompt.clone(), prompt.clone());
            let watched = ns.clone();
            let mut listed = std::collections::HashSet::new();
            let stream = reflector(
                writer,
                watcher(api, watcher::Config::default().page_size(LIST_PAGE))
                    .default_backoff()
                    .modify(trim)
                    .inspect_ok(move |event| {
                        feed.apply_watcher_event(event);
                        match event {
                            watcher::Event::Delete(route) => {
                                gone.forget(&object_key(route));
                                noted.gone(route);
                            }
                            watcher::Event::Apply(route) => noted.note(route),
                            watcher::Event::InitApply(route) => {
                                noted.note(route);
                                listed.insert(object_key(route));
                            }
                            watcher::Event::Init => listed.clear(),
                            watcher::Event::InitDone => {
                                noted.relisted(watched.as_deref(), &listed);
                                listed = std::collections::HashSet::new();
                            }
                        }
                    }),
            )
            .applied_objects()
            .inspect_ok(move |route| {
                if let Some(name) = uses.chosen_name(route) {
                    let _ = account_tx.send(ObjectRef::new(&name));
                }
            });
            let stream = without_echoes(stream, echoed).inspect_ok(move |r| taken.trigger(r));
            let c = Controller::for_stream(stream, reader.clone())
                .with_config(controller::Config::default().concurrency(rt.concurrency));
            let cache = ClaimCache {
                store: reader,
                index,
            };
            (ns, c, cache)
        })
        .collect();
    let stores: Vec<_> = controllers.iter().map(|(_, c, _)| c.store()).collect();
    let caches: Vec<_> = controllers.iter().map(|(_, _, k)| k.clone()).collect();
    let objects = KubeObjects {
        client: rt.client.clone(),
        events: EventSource {
            controller: "vpn-pbr-operator".to_owned(),
            instance: rt.instance.clone(),
        },
        caches,
        manager: rt.settings.manager.clone(),
    };
    let ctx = Arc::new(Context {
        objects: Arc::new(objects),
        cache,
        scheduler: scheduler.clone(),
        metrics: rt.metrics.clone(),
        settings: rt.settings.clone(),
        backoffs: Backoffs::default(),
        verified: super::verified::Verified::default(),
        echoes,
        default_credentials: rt.default_credentials.clone(),
        last_good_credentials: Default::default(),
        accounts: Accounts::new(rt.cloud.clone()),
        entropy: Arc::new(super::context::SystemEntropy),
        tenancy: tenancy.clone(),
        roles: rt.roles.clone(),
        turns: Default::default(),
        prompt: prompt.clone(),
        fence: rt.fence.clone(),
    });

    // Route scheduler wake-ups to the controller that watches the object's namespace.
    let mut senders: HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<VpnPbrRoute>>> =
        HashMap::new();
    let mut runs = Vec::new();
    for (ns, c, _) in controllers {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(ns, tx);
        let token = shutdown.clone();
        let run = c
            .reconcile_on(UnboundedReceiverStream::new(rx))
            .graceful_shutdown_on(async move { token.cancelled().await })
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|res| async move {
                if let Err(e) = res {
                    debug!(error = %e, "controller event");
                }
            });
        runs.push(run);
    }
    // Accounts: their own controller; a change of one (spec, deletion) or of a Namespace
    // (labels, default account) brings back the routes it may concern.
    let accounts = reflector(
        account_writer,
        watcher(
            Api::<VpnAccount>::all(rt.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .applied_objects()
    .inspect_ok(wake_on_account(
        stores.clone(),
        tenancy.clone(),
        wake_tx.clone(),
    ));
    let account_ctx = Arc::new(AccountContext {
        client: rt.client.clone(),
        routes: ctx.clone(),
        stores: stores.clone(),
    });
    let token = shutdown.clone();
    let account_run = Controller::for_stream(accounts, account_reader)
        .with_config(controller::Config::default().debounce(ACCOUNT_DEBOUNCE))
        .reconcile_on(UnboundedReceiverStream::new(account_rx))
        .graceful_shutdown_on(async move { token.cancelled().await })
        .run(
            account_reconcile::reconcile,
            account_reconcile::error_policy,
            account_ctx,
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                debug!(error = %e, "account controller event");
            }
        });
    let namespaces = reflector(
        ns_writer,
        watcher(
            Api::<Namespace>::all(rt.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(|ns: &mut Namespace| ns.metadata.managed_fields = None),
    )
    .applied_objects()
    .inspect_ok(wake_on_namespace(stores.clone(), wake_tx.clone()))
    .for_each(|_| async {});
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = namespaces => {}
            () = token.cancelled() => {}
        }
    });
    tokio::spawn({
        let tenancy = tenancy.clone();
        async move { tenancy.await_synced().await }
    });
    tokio::spawn(dispatch(wake_rx, senders, prompt.clone()));
    let lane = tokio::spawn(prompt::drive(prompt, prompt_rx, shutdown.clone(), {
        let (stores, ctx) = (stores.clone(), ctx.clone());
        move |owner| {
            let route = stores.iter().find_map(|s| s.get(&owner));
            let ctx = ctx.clone();
            async move {
                if let Some(route) = route
                    && let Err(e) = reconcile(route, ctx).await
                {
                    debug!(error = %e, "prompt lane");
                }
            }
        }
    }));
    tokio::spawn(readiness(stores.clone(), rt.health.clone()));
    tokio::spawn(gauges(
        stores,
        tenancy.clone(),
        scheduler.clone(),
        rt.metrics.clone(),
        shutdown.clone(),
    ));

    info!(namespaces = ?rt.namespaces, concurrency = rt.concurrency, "controller started");
    rt.metrics.leader.set(1);
    futures::future::join(futures::future::join_all(runs), account_run).await;
    // The lane stops taking work with the controllers; its reconciles under way end first.
    let _ = lane.await;
    rt.metrics.leader.set(0);

    // Stop taking work; let cloud calls in flight finish within the bound.
    let deadline = tokio::time::Instant::now() + drain;
    while scheduler.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = scheduler.in_flight();
    info!(in_flight = left, "controller stopped");
    left
}

/// How long the account controller gathers route events before it counts an account's routes
/// (a burst of creates costs one count per interval, not one per route).
const ACCOUNT_DEBOUNCE: Duration = Duration::from_secs(1);

/// Wakes the routes an account may concern when its spec changes or it is being deleted (its
/// own status writes do not count).
fn wake_on_account(
    stores: Vec<reflector::Store<VpnPbrRoute>>,
    tenancy: Tenancy,
    wake: mpsc::UnboundedSender<Owner>,
) -> impl FnMut(&VpnAccount) {
    let mut seen: HashMap<String, (Option<i64>, bool)> = HashMap::new();
    move |account| {
        let name = account.name_any();
        let now = (
            account.metadata.generation,
            account.metadata.deletion_timestamp.is_some(),
        );
        if seen.insert(name.clone(), now) == Some(now) {
            return;
        }
        let concerned = |r: &VpnPbrRoute| {
            r.spec.account_ref.as_deref() == Some(name.as_str())
                || tenancy.chosen_name(r).as_deref() == Some(name.as_str())
        };
        wake_routes(&stores, &wake, concerned);
    }
}

/// Wakes the routes of a Namespace when its labels or its default account change.
fn wake_on_namespace(
    stores: Vec<reflector::Store<VpnPbrRoute>>,
    wake: mpsc::UnboundedSender<Owner>,
) -> impl FnMut(&Namespace) {
    type Seen = (
        Option<std::collections::BTreeMap<String, String>>,
        Option<String>,
    );
    let mut seen: HashMap<String, Seen> = HashMap::new();
    move |ns| {
        let name = ns.name_any();
        let now = (
            ns.metadata.labels.clone(),
            ns.annotations().get(DEFAULT_ACCOUNT_ANNOTATION).cloned(),
        );
        if seen.get(&name) == Some(&now) {
            return;
        }
        seen.insert(name.clone(), now);
        wake_routes(&stores, &wake, |r| {
            r.metadata.namespace.as_deref() == Some(name.as_str())
        });
    }
}

fn wake_routes(
    stores: &[reflector::Store<VpnPbrRoute>],
    wake: &mpsc::UnboundedSender<Owner>,
    concerned: impl Fn(&VpnPbrRoute) -> bool,
) {
    for route in stores.iter().flat_map(|s| s.state()) {
        if concerned(&route) {
            let _ = wake.send(owner_of(&route));
        }
    }
}

/// The route events that trigger a reconcile: all but the echoes of our own writes
/// (echoes.rs).
fn without_echoes<E>(
    routes: impl futures::Stream<Item = Result<VpnPbrRoute, E>>,
    echoes: Arc<Echoes>,
) -> impl futures::Stream<Item = Result<VpnPbrRoute, E>> {
    routes.try_filter(move |route| {
        let arrival = echoes.arrived(
            &object_key(route),
            route.metadata.resource_version.as_deref(),
        );
        std::future::ready(arrival.triggers())
    })
}

/// Drops what the controller never reads from a cached object, and the spare room of its
/// lists: the watch's JSON decoder grows a list by doubling (three conditions are kept in room
/// for four), and the cache keeps every object for its lifetime.
fn trim(route: &mut VpnPbrRoute) {
    route.metadata.managed_fields = None;
    if let Some(a) = route.metadata.annotations.as_mut() {
        a.remove(super::reconcile::LAST_APPLIED);
    }
    if let Some(f) = route.metadata.finalizers.as_mut() {
        f.shrink_to_fit();
    }
    if let Some(s) = route.status.as_mut() {
        s.conditions.shrink_to_fit();
    }
}

/// Sends each wake-up to the controller that watches the route's namespace, and to the prompt
/// lane when it takes the route.
async fn dispatch(
    mut rx: mpsc::UnboundedReceiver<Owner>,
    senders: HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<VpnPbrRoute>>>,
    prompt: Arc<PromptLane>,
) {
    while let Some(owner) = rx.recv().await {
        prompt.wake(&owner);
        let tx = senders.get(&None).or_else(|| senders.get(&owner.namespace));
        if let Some(tx) = tx {
            let _ = tx.send(owner.object_ref());
        }
    }
}

async fn readiness(stores: Vec<kube::runtime::reflector::Store<VpnPbrRoute>>, health: Arc<Health>) {
    for s in &stores {
        if let Err(e) = tenancy::filled(s).await {
            tracing::error!(error = %e, "route cache never filled; staying unready");
            return;
        }
    }
    health.ready.store(true, Ordering::Relaxed);
    info!("caches synced; ready");
}

async fn gauges(
    stores: Vec<kube::runtime::reflector::Store<VpnPbrRoute>>,
    tenancy: Tenancy,
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let routes: Vec<_> = stores
            .iter()
            .flat_map(kube::runtime::reflector::Store::state)
            .collect();
        metrics.routes_seen(routes.iter().map(AsRef::as_ref));
        metrics.accounts_seen(tenancy.accounts().iter().map(AsRef::as_ref));
        for (gw, account, depth) in scheduler.depths() {
            metrics
                .queue_depth
                .get_or_create(&GatewayLabels {
                    region: gw.region_id.clone(),
                    gateway: gw.vpn_gateway_id.clone(),
                    account,
                })
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        for (account, read, n) in scheduler.stalls() {
            metrics
                .gateways_stalled
                .get_or_create(&StallLabels {
                    read: read.to_owned(),
                    account,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_echo_of_our_own_write_triggers_no_reconcile() {
        let at = |version: &str| -> Result<VpnPbrRoute, ()> {
            Ok(serde_json::from_value(serde_json::json!({
                "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
                "metadata": {"name": "r", "namespace": "ns", "resourceVersion": version},
                "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                    "routeSource": "10.0.0.0/24", "routeDest": "10.1.0.0/16",
                    "nextHop": "vco-a", "weight": 100, "publishVpc": false}
            }))
            .expect("route"))
        };
        let echoes = Arc::new(Echoes::new(|_| {}));
        echoes.writing("ns/r").wrote(Some("6"));
        let events = futures::stream::iter([at("5"), at("6"), at("7")]);
        let passed: Vec<_> = without_echoes(events, echoes)
            .map_ok(|r| r.metadata.resource_version.unwrap_or_default())
            .try_collect()
            .await
            .expect("no errors");
        assert_eq!(passed, ["5", "7"], "5 and 7 are not ours; 6 is our write");
    }

    #[test]
    fn cached_objects_keep_nothing_unread_and_no_spare_room() {
        // As the watch decodes it (from bytes: lists grow as they are read): managed fields,
        // kubectl's copy, three conditions.
        let condition = |t: &str| {
            serde_json::json!({"type": t, "status": "True", "reason": "Synced",
                "message": "in sync", "lastTransitionTime": "2026-01-01T00:00:00Z"})
        };
        let json = serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u",
                "finalizers": ["vpn.alicloud.dev/cleanup"],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "vpn.alicloud.dev/adopt": "true"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                "routeSource": "10.0.0.0/24", "routeDest": "10.1.0.0/16", "nextHop": "vco-a",
                "weight": 100, "publishVpc": false},
            "status": {"conditions": [condition("Ready"), condition("Synced"),
                condition("Reconciling")]}
        });
        let mut route: VpnPbrRoute = serde_json::from_str(&json.to_string()).expect("route");
        let decoded = route.status.as_ref().map(|s| s.conditions.capacity());
        assert_eq!(
            decoded,
            Some(4),
            "the decoder leaves room (else this test proves nothing)"
        );
        trim(&mut route);
        assert_eq!(route.metadata.managed_fields, None);
        assert_eq!(
            route
                .metadata
                .annotations
                .as_ref()
                .map(|a| a.keys().collect::<Vec<_>>()),
            Some(vec![&"vpn.alicloud.dev/adopt".to_owned()]),
            "only kubectl's copy goes; the annotations the decisions read stay"
        );
        let finalizers = route.metadata.finalizers.as_ref().expect("finalizers");
        assert_eq!(finalizers.capacity(), finalizers.len());
        let conditions = &route.status.as_ref().expect("status").conditions;
        assert_eq!(conditions.len(), 3);
        assert_eq!(conditions.capacity(), 3, "no room kept for a fourth");
    }
}
