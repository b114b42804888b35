//! Prometheus metrics of the operator (prefix `vpn_pbr_`). Labels stay low-cardinality: no
//! object names, gateways only where the number of gateways bounds them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use alicloud_vpc_client::{CallObserver, CallRecord, ListRecord};

use super::account_status;
use super::model::Mutation;
use super::reason::Reason;
use super::status;
use crate::api::v1alpha1::{
    ConditionStatus, ManagementPolicy, VpnAccount, VpnPbrRoute, VpnPbrRouteStatus,
};
use kube::ResourceExt as _;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// `success` or an error reason.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub action: String,
    pub code: String,
    /// The account key of the limiter (`CallRecord::account`; empty: the default account):
    /// the cloud's flow control and permissions are per account.
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PriorityLabels {
    /// `mutation`, `progress` or `background` (`alicloud_vpc_client::Priority`).
    pub priority: String,
    /// The account key of the limiter (`CallRecord::account`; empty: the default account).
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReadyLabels {
    /// `true`, `false` or `unknown`.
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SyncedLabels {
    /// `true`, `false` or `unknown`.
    pub synced: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DriftLabels {
    /// The route's `managementPolicy`: `Full` (the operator changes the entry back) or
    /// `ObserveOnly` (reported in status only).
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GatewayLabels {
    pub region: String,
    pub gateway: String,
    /// The account key of the gateway's calls (`CredentialsHandle::account`; empty: the
    /// default account).
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AccountLabels {
    /// The `VpnAccount`'s name.
    pub account: String,
    /// The reason of its `Ready=False` (the cloud's code or ours).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StallLabels {
    /// The read that keeps failing: `status` (the gateway's) or `list` (its entries).
    pub read: String,
    /// The account key of the gateways' calls (empty: the default account).
    pub account: String,
}

pub struct Metrics {
    pub(crate) reconciles: Family<ResultLabels, Counter>,
    pub(crate) reconcile_duration: Histogram,
    pub(crate) cloud_calls: Family<CallLabels, Counter>,
    pub(crate) cloud_latency: Family<ActionLabels, Histogram>,
    pub(crate) rate_limit_wait: Family<PriorityLabels, Histogram>,
    pub(crate) routes: Family<ReadyLabels, Gauge>,
    pub(crate) queue_depth: Family<GatewayLabels, Gauge>,
    /// Gateways whose waiting changes say their reads keep failing.
    pub(crate) gateways_stalled: Family<StallLabels, Gauge>,
    /// Entry lists whose pages never added up to one whole list (`ListInconsistent`).
    pub(crate) list_inconsistent: Counter,
    pub(crate) routes_synced: Family<SyncedLabels, Gauge>,
    /// Routes being deleted whose cleanup waits for someone to act (`CleanupBlocked`).
    pub(crate) routes_cleanup_blocked: Gauge,
    /// 1 per `VpnAccount` whose credentials fail, by the reason (see [`Metrics::accounts_seen`]).
    account_credentials_failing: Family<AccountLabels, Gauge>,
    /// The series of `account_credentials_failing` set on the last look, to drop when they end.
    failing_accounts: Mutex<HashSet<AccountLabels>>,
    pub(crate) time_to_ready: Histogram,
    pub(crate) drift: Family<DriftLabels, Counter>,
    /// 1 while this process runs the controllers: it holds the Lease (or runs without leader
    /// election).
    pub(crate) leader: Gauge,
    /// The uids of the routes this process has seen Ready (see [`Metrics::status_written`]).
    seen_ready: Mutex<HashSet<String>>,
}

/// Registers each `name, help, metric;` in the order given (the order `/metrics` lists them).
/// A metric's clone shares its values, so the registry reads what the fields record.
macro_rules! register {
    ($registry:ident; $($name:literal, $help:literal, $metric:expr;)+) => {
        $($registry.register($name, $help, $metric.clone());)+
    };
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            cloud_calls: Family::default(),
            cloud_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            // 1 ms to over 4 min: a bound API rate queues reads behind thousands of creates.
            rate_limit_wait: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 4.0, 10))
            }),
            routes: Family::default(),
            queue_depth: Family::default(),
            gateways_stalled: Family::default(),
            list_inconsistent: Counter::default(),
            routes_synced: Family::default(),
            routes_cleanup_blocked: Gauge::default(),
            account_credentials_failing: Family::default(),
            failing_accounts: Mutex::default(),
            // 1 s to over 4.5 h: a gateway busy with thousands of changes takes hours.
            time_to_ready: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            drift: Family::default(),
            leader: Gauge::default(),
            seen_ready: Mutex::default(),
        };
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        let r = registry.sub_registry_with_prefix("vpn_pbr");
        register! { r;
            "reconciles", "Reconciles by result", m.reconciles;
            "reconcile_duration_seconds", "Reconcile duration", m.reconcile_duration;
            "cloud_calls", "Cloud API calls by action, result code and account", m.cloud_calls;
            "cloud_call_duration_seconds", "Cloud API call latency by action", m.cloud_latency;
            "cloud_rate_limit_wait_seconds",
                "Time each cloud API attempt waited for its account's client rate limiter, by \
                 priority class",
                m.rate_limit_wait;
            "routes", "VpnPbrRoute objects by readiness", m.routes;
            "gateway_queue_depth",
                "Mutations waiting or in flight per gateway (and the account of its calls)",
                m.queue_depth;
            "gateways_stalled",
                "Gateways whose waiting changes wait on reads that keep failing (3 in a row over \
                 5 s), by the read (status or list) and account",
                m.gateways_stalled;
            "list_inconsistent",
                "Entry lists given up on because their pages kept changing (ListInconsistent): \
                 nothing was concluded from them",
                m.list_inconsistent;
            "routes_synced", "VpnPbrRoute objects by their Synced condition", m.routes_synced;
            "routes_cleanup_blocked",
                "VpnPbrRoute objects being deleted whose cloud entry cannot be deleted until \
                 someone acts (CleanupBlocked)",
                m.routes_cleanup_blocked;
            "account_credentials_failing",
                "1 for each VpnAccount whose credentials fail (Ready=False: AssumeRole or \
                 GetCallerIdentity refused, its Secret unusable), by the reason",
                m.account_credentials_failing;
            "route_time_to_ready_seconds",
                "Time from a route's creation to its first Ready=True (as far as this process saw)",
                m.time_to_ready;
            "drift_detected",
                "Cloud entries found differing from the spec of a route in sync, by the route's \
                 managementPolicy (Full: changed back; ObserveOnly: reported)",
                m.drift;
            "build_info", "Always 1; the operator's version in the label", build;
            "leader",
                "1 while this replica runs the controllers (holds the leader Lease, or runs \
                 without leader election), else 0",
                m.leader;
        }
        Arc::new(m)
    }

    pub(crate) fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }
}

impl Metrics {
    /// Counts what a status write shows: a route's first `Ready=True` (the time since its
    /// creation) and the `ObserveOnly` drift it starts reporting. `now_ms`: wall clock.
    pub(crate) fn status_written(
        &self,
        route: &VpnPbrRoute,
        old: Option<&VpnPbrRouteStatus>,
        new: &VpnPbrRouteStatus,
        now_ms: i64,
    ) {
        if turns_ready(old, new)
            && let Some(uid) = route.metadata.uid.as_ref()
            && self.mark_ready(uid)
            && let Some(created) = route.metadata.creation_timestamp.as_ref()
        {
            let ms = now_ms.saturating_sub(created.0.as_millisecond()).max(0);
            #[allow(clippy::cast_precision_loss)] // milliseconds well below 2^52
            self.time_to_ready.observe(ms as f64 / 1000.0);
        }
        if starts_reporting_drift(old, new) {
            self.drift_detected(ManagementPolicy::ObserveOnly);
        }
    }

    /// Counts a change that repairs drift (see [`repairs_drift`]).
    pub(crate) fn drift_detected(&self, policy: ManagementPolicy) {
        let policy = match policy {
            ManagementPolicy::Full => "Full",
            ManagementPolicy::ObserveOnly => "ObserveOnly",
        };
        self.drift
            .get_or_create(&DriftLabels {
                policy: policy.to_owned(),
            })
            .inc();
    }

    /// Records that the route of `uid` was seen Ready; whether it was the first time.
    fn mark_ready(&self, uid: &str) -> bool {
        let mut seen = self.seen_ready.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(uid.to_owned())
    }

    /// The routes' gauges from the watch caches' copies, and what counts as seen Ready: the
    /// routes Ready now (so a restart does not count them again) and only routes that exist.
    pub(crate) fn routes_seen<'a, I>(&self, routes: I)
    where
        I: IntoIterator<Item = &'a VpnPbrRoute> + Clone,
    {
        let mut ready = RouteCounts::default();
        let mut synced = RouteCounts::default();
        let mut blocked = 0;
        let mut existing = 0;
        {
            let mut seen = self.seen_ready.lock().unwrap_or_else(|p| p.into_inner());
            for route in routes.clone() {
                let st = route.status.as_ref();
                let r = status::ready(st).map(|c| c.status);
                ready.add(r);
                synced.add(status::synced(st).map(|c| c.status));
                if route.metadata.deletion_timestamp.is_some() && cleanup_blocked(st) {
                    blocked += 1;
                }
                if let Some(uid) = route.metadata.uid.as_deref() {
                    existing += 1;
                    // Every tick sees every Ready route: only a new one is copied into the set.
                    if r == Some(ConditionStatus::True) && !seen.contains(uid) {
                        seen.insert(uid.to_owned());
                    }
                }
            }
            // Routes gone since are dropped only once the set outgrows the routes that exist:
            // the set stays bounded by them, and a tick over unchanged routes builds no table
            // (uids are never reused, so one left over a while counts nothing twice).
            if seen.len() > existing {
                let uids: HashSet<&str> = routes
                    .into_iter()
                    .filter_map(|r| r.metadata.uid.as_deref())
                    .collect();
                seen.retain(|uid| uids.contains(uid.as_str()));
            }
        }
        for (value, n) in ready.by_value() {
            self.routes
                .get_or_create(&ReadyLabels {
                    ready: value.to_owned(),
                })
                .set(n);
        }
        for (value, n) in synced.by_value() {
            self.routes_synced
                .get_or_create(&SyncedLabels {
                    synced: value.to_owned(),
                })
                .set(n);
        }
        self.routes_cleanup_blocked.set(blocked);
    }
}

impl Metrics {
    /// The accounts' gauge from the watch cache's copies: 1 for each account whose status
    /// says its credentials fail, with the reason; the series of an account that works again,
    /// changed its reason or is gone are dropped (not set to 0), so that the account names
    /// exported are only those failing now.
    pub(crate) fn accounts_seen<'a>(&self, accounts: impl IntoIterator<Item = &'a VpnAccount>) {
        let now: HashSet<AccountLabels> = accounts
            .into_iter()
            .filter_map(|a| {
                let reason = account_status::credentials_failing(a.status.as_ref())?;
                Some(AccountLabels {
                    account: a.name_any(),
                    reason: reason.to_owned(),
                })
            })
            .collect();
        let mut before = self
            .failing_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for gone in before.difference(&now) {
            self.account_credentials_failing.remove(gone);
        }
        for labels in &now {
            self.account_credentials_failing
                .get_or_create(labels)
                .set(1);
        }
        *before = now;
    }
}

/// Routes by the value of one condition.
#[derive(Default)]
struct RouteCounts {
    yes: i64,
    no: i64,
    unknown: i64,
}

impl RouteCounts {
    fn add(&mut self, value: Option<ConditionStatus>) {
        match value {
            Some(ConditionStatus::True) => self.yes += 1,
            Some(ConditionStatus::False) => self.no += 1,
            _ => self.unknown += 1,
        }
    }

    fn by_value(&self) -> [(&'static str, i64); 3] {
        [
            ("true", self.yes),
            ("false", self.no),
            ("unknown", self.unknown),
        ]
    }
}

fn is_ready(st: Option<&VpnPbrRouteStatus>) -> bool {
    status::ready(st).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Whether a status write turns `Ready` True.
fn turns_ready(old: Option<&VpnPbrRouteStatus>, new: &VpnPbrRouteStatus) -> bool {
    is_ready(Some(new)) && !is_ready(old)
}

fn synced_reason(st: Option<&VpnPbrRouteStatus>) -> Option<Reason> {
    status::synced(st).map(|c| Reason::parse(&c.reason))
}

/// Whether a status write starts reporting drift (`ObserveOnly`: `Synced=False, Drift`).
fn starts_reporting_drift(old: Option<&VpnPbrRouteStatus>, new: &VpnPbrRouteStatus) -> bool {
    synced_reason(Some(new)) == Some(Reason::Drift) && synced_reason(old) != Some(Reason::Drift)
}

/// Whether a status says its cleanup waits for someone to act.
fn cleanup_blocked(st: Option<&VpnPbrRouteStatus>) -> bool {
    [status::ready(st), status::synced(st)]
        .into_iter()
        .flatten()
        .any(|c| Reason::parse(&c.reason) == Reason::CleanupBlocked)
}

/// Whether submitting `mutation` for `route` repairs drift: the route is live and in sync at
/// its generation (`Ready` and `Synced` True for it), no change of it was under way
/// (`idle`), so the change follows from the cloud, not from the spec. A deletion never does.
pub(crate) fn repairs_drift(route: &VpnPbrRoute, idle: bool, mutation: &Mutation) -> bool {
    let st = route.status.as_ref();
    let current = |c: &crate::api::v1alpha1::Condition| {
        c.status == ConditionStatus::True && c.observed_generation == route.metadata.generation
    };
    idle && route.metadata.deletion_timestamp.is_none()
        && !matches!(mutation, Mutation::Delete { .. })
        && status::ready(st).is_some_and(current)
        && status::synced(st).is_some_and(current)
}

/// Feeds cloud call records into the metrics.
pub(crate) struct CloudCallMetrics(pub Arc<Metrics>);

impl CallObserver for CloudCallMetrics {
    fn observe(&self, call: &CallRecord<'_>) {
        self.0
            .cloud_calls
            .get_or_create(&CallLabels {
                action: call.action.to_owned(),
                code: call.code.to_owned(),
                account: call.account.to_owned(),
            })
            .inc();
        self.0
            .cloud_latency
            .get_or_create(&ActionLabels {
                action: call.action.to_owned(),
            })
            .observe(call.latency.as_secs_f64());
        self.0
            .rate_limit_wait
            .get_or_create(&PriorityLabels {
                priority: call.priority.as_str().to_owned(),
                account: call.account.to_owned(),
            })
            .observe(call.rate_limit_wait.as_secs_f64());
    }

    fn observe_list(&self, list: &ListRecord<'_>) {
        if !list.complete {
            self.0.list_inconsistent.inc();
        }
    }
}

/// Measures a reconcile; records when dropped unless `finish` was called.
pub(crate) struct ReconcileTimer {
    metrics: Arc<Metrics>,
    started: Instant,
}

impl ReconcileTimer {
    pub(crate) fn start(metrics: &Arc<Metrics>) -> Self {
        Self {
            metrics: metrics.clone(),
            started: Instant::now(),
        }
    }

    pub(crate) fn finish(self, result: &str) {
        self.metrics.reconciled(result, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alicloud_vpc_client::Priority;
    use serde_json::json;

    /// A registry and the metrics registered in it.
    fn registered() -> (Registry, Arc<Metrics>) {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        (registry, m)
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    fn has_line(text: &str, line: &str) {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }

    /// A route `uid` made at 00:00:00 of 2026-01-01 at `generation`, with `conditions`
    /// (type, status, reason, observedGeneration).
    fn route(uid: &str, generation: i64, conditions: &[(&str, &str, &str, i64)]) -> VpnPbrRoute {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(t, s, r, g)| {
                json!({"type": t, "status": s, "reason": r, "message": "",
                       "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": g})
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": "r", "namespace": "ns", "uid": uid, "generation": generation,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                     "routeSource": "10.0.0.0/24", "routeDest": "10.1.0.0/16",
                     "nextHop": "vco-1", "weight": 100, "publishVpc": false},
            "status": {"conditions": conditions}
        }))
        .expect("route")
    }

    const CREATED_MS: i64 = 1_767_225_600_000;

    /// The status write of `from` that turns its status into `to`'s, `after_s` seconds after
    /// the routes' creation.
    fn write(m: &Metrics, from: &VpnPbrRoute, to: &VpnPbrRoute, after_s: i64) {
        m.status_written(
            from,
            from.status.as_ref(),
            to.status.as_ref().unwrap(),
            CREATED_MS + after_s * 1000,
        );
    }

    #[test]
    fn a_routes_first_ready_is_timed_from_its_creation_once() {
        let (registry, m) = registered();
        let creating = route("u1", 1, &[("Ready", "False", "Creating", 1)]);
        let ready = route("u1", 1, &[("Ready", "True", "Available", 1)]);
        let failed = route("u1", 1, &[("Ready", "False", "Forbidden", 1)]);
        write(&m, &creating, &creating, 3);
        write(&m, &creating, &ready, 90);
        // Ready again after a failure: not its first Ready.
        write(&m, &ready, &failed, 100);
        write(&m, &failed, &ready, 500);
        let text = encoded(&registry);
        has_line(&text, "vpn_pbr_route_time_to_ready_seconds_count 1");
        has_line(&text, "vpn_pbr_route_time_to_ready_seconds_sum 90.0");
    }

    #[test]
    fn routes_ready_when_seen_do_not_count_as_first_ready_and_deleted_ones_are_forgotten() {
        let (registry, m) = registered();
        let ready = route("u1", 1, &[("Ready", "True", "Available", 1)]);
        let failed = route("u1", 1, &[("Ready", "False", "Forbidden", 1)]);
        // A restart: the route is Ready in the cache before any write of this process.
        m.routes_seen([&ready]);
        write(&m, &failed, &ready, 0);
        has_line(
            &encoded(&registry),
            "vpn_pbr_route_time_to_ready_seconds_count 0",
        );
        // Gone from the cache: forgotten (the set holds only routes that exist).
        m.routes_seen([]);
        assert!(m.seen_ready.lock().unwrap().is_empty());
    }

    #[test]
    fn a_tick_copies_only_the_routes_newly_seen_ready() {
        use crate::controller::fixtures::retained;
        let (_registry, m) = registered();
        let routes: Vec<_> = (0..1000)
            .map(|i| route(&format!("u{i}"), 1, &[("Ready", "True", "Available", 1)]))
            .collect();
        let ((), first) = retained(|| m.routes_seen(&routes));
        assert!(first.allocations >= 1000, "{first:?}");
        // The same routes again: no copy of a uid per route, and no table of the routes.
        let ((), again) = retained(|| m.routes_seen(&routes));
        assert!(again.allocations <= 10, "{again:?}");
        assert_eq!(m.seen_ready.lock().unwrap().len(), 1000);
    }

    #[test]
    fn observe_only_drift_counts_when_it_starts_being_reported() {
        let (registry, m) = registered();
        let synced = route("u1", 1, &[("Synced", "True", "Synced", 1)]);
        let drift = route("u1", 1, &[("Synced", "False", "Drift", 1)]);
        for (from, to) in [
            (&synced, &drift),
            (&drift, &drift),
            (&drift, &synced),
            (&synced, &drift),
        ] {
            write(&m, from, to, 0);
        }
        has_line(
            &encoded(&registry),
            r#"vpn_pbr_drift_detected_total{policy="ObserveOnly"} 2"#,
        );
    }

    #[test]
    fn a_change_repairs_drift_only_for_an_idle_route_in_sync_at_its_generation() {
        let in_sync = [
            ("Ready", "True", "Available", 2),
            ("Synced", "True", "Synced", 2),
        ];
        let id = crate::controller::model::RouteId {
            route_source: "10.0.0.0/24".into(),
            route_dest: "10.1.0.0/16".into(),
            next_hop: "vco-1".into(),
        };
        let modify = Mutation::ModifyWeight {
            route: id.clone(),
            weight: 100,
            priority: None,
            new_weight: 0,
        };
        let delete = Mutation::Delete {
            route: id,
            weight: 100,
            priority: None,
        };
        let mut deleting = route("u", 2, &in_sync);
        deleting.metadata.deletion_timestamp = deleting.metadata.creation_timestamp.clone();
        let cases: [(&str, VpnPbrRoute, bool, &Mutation, bool); 7] = [
            (
                "in sync, idle: the cloud changed",
                route("u", 2, &in_sync),
                true,
                &modify,
                true,
            ),
            (
                "a change under way",
                route("u", 2, &in_sync),
                false,
                &modify,
                false,
            ),
            (
                "spec edited since",
                route("u", 3, &in_sync),
                true,
                &modify,
                false,
            ),
            (
                "not synced (adopted, changing)",
                route(
                    "u",
                    2,
                    &[
                        ("Ready", "True", "Available", 2),
                        ("Synced", "False", "Adopted", 2),
                    ],
                ),
                true,
                &modify,
                false,
            ),
            (
                "never Ready",
                route("u", 2, &[("Ready", "False", "Creating", 2)]),
                true,
                &modify,
                false,
            ),
            ("a deletion", route("u", 2, &in_sync), true, &delete, false),
            ("being deleted", deleting, true, &modify, false),
        ];
        for (name, r, idle, mutation, want) in cases {
            assert_eq!(repairs_drift(&r, idle, mutation), want, "{name}");
        }
    }

    #[test]
    fn route_gauges_count_readiness_synced_and_blocked_cleanups() {
        let (registry, m) = registered();
        let mut blocked = route(
            "u3",
            1,
            &[
                ("Ready", "False", "CleanupBlocked", 1),
                ("Synced", "False", "CleanupBlocked", 1),
            ],
        );
        blocked.metadata.deletion_timestamp = blocked.metadata.creation_timestamp.clone();
        let routes = [
            route(
                "u1",
                1,
                &[
                    ("Ready", "True", "Available", 1),
                    ("Synced", "True", "Synced", 1),
                ],
            ),
            route(
                "u2",
                1,
                &[
                    ("Ready", "True", "Available", 1),
                    ("Synced", "False", "Throttling", 1),
                ],
            ),
            blocked,
            route("u4", 1, &[]),
        ];
        m.routes_seen(&routes);
        let text = encoded(&registry);
        for line in [
            r#"vpn_pbr_routes{ready="true"} 2"#,
            r#"vpn_pbr_routes{ready="false"} 1"#,
            r#"vpn_pbr_routes{ready="unknown"} 1"#,
            r#"vpn_pbr_routes_synced{synced="true"} 1"#,
            r#"vpn_pbr_routes_synced{synced="false"} 2"#,
            r#"vpn_pbr_routes_synced{synced="unknown"} 1"#,
            "vpn_pbr_routes_cleanup_blocked 1",
        ] {
            has_line(&text, line);
        }
    }

    /// Account `name` whose `Ready` is `status` for `reason`.
    fn account(name: &str, status: &str, reason: &str) -> VpnAccount {
        serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
            "metadata": {"name": name},
            "spec": {"credentials": {"operatorIdentity": {}}, "namespaceSelector": {}},
            "status": {"routes": 0, "conditions": [{"type": "Ready", "status": status,
                "reason": reason, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("account")
    }

    #[test]
    fn accounts_whose_credentials_fail_are_exported_while_they_do() {
        let (registry, m) = registered();
        let failing = |name: &str, reason: &str| {
            format!(
                r#"vpn_pbr_account_credentials_failing{{account="{name}",reason="{reason}"}} 1"#
            )
        };
        m.accounts_seen(&[
            account("team-a", "False", "NoPermission"),
            account("team-b", "True", "Available"),
            account("team-c", "False", "AccountInUse"),
            account("team-d", "Unknown", "Creating"),
        ]);
        let text = encoded(&registry);
        has_line(&text, &failing("team-a", "NoPermission"));
        for name in ["team-b", "team-c", "team-d"] {
            assert!(!text.contains(&format!(r#"account="{name}""#)), "{text}");
        }
        // Another reason replaces the series; an account that works again, or is gone, has none.
        m.accounts_seen(&[
            account("team-a", "False", "EntityNotExist.Role"),
            account("team-b", "False", "CredentialsUnavailable"),
        ]);
        let text = encoded(&registry);
        has_line(&text, &failing("team-a", "EntityNotExist.Role"));
        has_line(&text, &failing("team-b", "CredentialsUnavailable"));
        assert!(!text.contains("NoPermission"), "{text}");
        m.accounts_seen(&[account("team-a", "True", "Available")]);
        let text = encoded(&registry);
        // No series left: the family is not even declared then (tests/monitoring.rs sees it
        // exported by an operator with a failing account).
        assert!(
            !text.contains("vpn_pbr_account_credentials_failing"),
            "{text}"
        );
    }

    #[test]
    fn build_info_and_leader_are_exported_from_the_start() {
        let (registry, m) = registered();
        let text = encoded(&registry);
        has_line(
            &text,
            &format!(
                r#"vpn_pbr_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        );
        has_line(&text, "vpn_pbr_leader 0");
        m.leader.set(1);
        has_line(&encoded(&registry), "vpn_pbr_leader 1");
    }

    #[test]
    fn each_attempt_is_counted_and_its_limiter_wait_recorded_by_account_and_class() {
        let (registry, m) = registered();
        let observer = CloudCallMetrics(m);
        for (priority, account, wait_ms) in [
            (Priority::Mutation, "", 0),
            (Priority::Background, "", 1500),
            (Priority::Background, "", 500),
            (Priority::Background, "tenant-b", 250),
        ] {
            observer.observe(&CallRecord {
                action: "DescribeVpnPbrRouteEntries",
                account,
                region: "cn-hangzhou",
                code: "Success",
                class: None,
                http_status: Some(200),
                request_id: None,
                latency: Duration::from_millis(20),
                attempt: 1,
                priority,
                rate_limit_wait: Duration::from_millis(wait_ms),
            });
        }
        let text = encoded(&registry);
        for line in [
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_sum{priority="background",account=""} 2.0"#,
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_count{priority="background",account=""} 2"#,
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_count{priority="mutation",account=""} 1"#,
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_sum{priority="background",account="tenant-b"} 0.25"#,
            r#"vpn_pbr_cloud_calls_total{action="DescribeVpnPbrRouteEntries",code="Success",account=""} 3"#,
            r#"vpn_pbr_cloud_calls_total{action="DescribeVpnPbrRouteEntries",code="Success",account="tenant-b"} 1"#,
        ] {
            has_line(&text, line);
        }
        assert!(!text.contains(r#"priority="progress""#), "{text}");
    }

    #[test]
    fn lists_given_up_on_are_counted() {
        let (registry, m) = registered();
        let observer = CloudCallMetrics(m);
        for complete in [true, false, false] {
            observer.observe_list(&ListRecord {
                action: "DescribeVpnPbrRouteEntries",
                region: "cn-hangzhou",
                reads: 5,
                complete,
            });
        }
        has_line(&encoded(&registry), "vpn_pbr_list_inconsistent_total 2");
    }
}
