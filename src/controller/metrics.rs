//! Prometheus metrics of the operator (prefix `vpn_pbr_`). Labels stay low-cardinality: no
//! object names, gateways only where the number of gateways bounds them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use alicloud_vpc_client::{CallObserver, CallRecord};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or an error reason.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub action: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true`, `false` or `unknown`.
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub region: String,
    pub gateway: String,
}

pub struct Metrics {
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub cloud_calls: Family<CallLabels, Counter>,
    pub cloud_latency: Family<ActionLabels, Histogram>,
    pub routes: Family<ReadyLabels, Gauge>,
    pub queue_depth: Family<GatewayLabels, Gauge>,
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
            routes: Family::default(),
            queue_depth: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("vpn_pbr");
        r.register("reconciles", "Reconciles by result", m.reconciles.clone());
        r.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            m.reconcile_duration.clone(),
        );
        r.register(
            "cloud_calls",
            "Cloud API calls by action and result code",
            m.cloud_calls.clone(),
        );
        r.register(
            "cloud_call_duration_seconds",
            "Cloud API call latency by action",
            m.cloud_latency.clone(),
        );
        r.register(
            "routes",
            "VpnPbrRoute objects by readiness",
            m.routes.clone(),
        );
        r.register(
            "gateway_queue_depth",
            "Mutations waiting or in flight per gateway",
            m.queue_depth.clone(),
        );
        Arc::new(m)
    }

    pub fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }
}

/// Feeds cloud call records into the metrics.
pub struct CloudCallMetrics(pub Arc<Metrics>);

impl CallObserver for CloudCallMetrics {
    fn observe(&self, call: &CallRecord<'_>) {
        self.0
            .cloud_calls
            .get_or_create(&CallLabels {
                action: call.action.to_owned(),
                code: call.code.to_owned(),
            })
            .inc();
        self.0
            .cloud_latency
            .get_or_create(&ActionLabels {
                action: call.action.to_owned(),
            })
            .observe(call.latency.as_secs_f64());
    }
}

/// Measures a reconcile; records when dropped unless `finish` was called.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    started: Instant,
}

impl ReconcileTimer {
    pub fn start(metrics: &Arc<Metrics>) -> Self {
        Self {
            metrics: metrics.clone(),
            started: Instant::now(),
        }
    }

    pub fn finish(self, result: &str) {
        self.metrics.reconciled(result, self.started.elapsed());
    }
}
