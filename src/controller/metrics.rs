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

use alicloud_vpc_client::{CallObserver, CallRecord, ListRecord};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// `success` or an error reason.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub action: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PriorityLabels {
    /// `mutation`, `progress` or `background` (`alicloud_vpc_client::Priority`).
    pub priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReadyLabels {
    /// `true`, `false` or `unknown`.
    pub ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GatewayLabels {
    pub region: String,
    pub gateway: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StallLabels {
    /// The read that keeps failing: `status` (the gateway's) or `list` (its entries).
    pub read: String,
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
            "cloud_rate_limit_wait_seconds",
            "Time each cloud API attempt waited for the client rate limiter, by priority class",
            m.rate_limit_wait.clone(),
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
        r.register(
            "gateways_stalled",
            "Gateways whose waiting changes wait on reads that keep failing (3 in a row over 5 s), \
             by the read (status or list)",
            m.gateways_stalled.clone(),
        );
        r.register(
            "list_inconsistent",
            "Entry lists given up on because their pages kept changing (ListInconsistent): \
             nothing was concluded from them",
            m.list_inconsistent.clone(),
        );
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

/// Feeds cloud call records into the metrics.
pub(crate) struct CloudCallMetrics(pub Arc<Metrics>);

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
        self.0
            .rate_limit_wait
            .get_or_create(&PriorityLabels {
                priority: call.priority.as_str().to_owned(),
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

    #[test]
    fn the_limiter_wait_of_each_attempt_is_recorded_by_class() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let observer = CloudCallMetrics(metrics);
        for (priority, wait_ms) in [
            (Priority::Mutation, 0),
            (Priority::Background, 1500),
            (Priority::Background, 500),
        ] {
            observer.observe(&CallRecord {
                action: "DescribeVpnPbrRouteEntries",
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
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_sum{priority="background"} 2.0"#,
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_count{priority="background"} 2"#,
            r#"vpn_pbr_cloud_rate_limit_wait_seconds_count{priority="mutation"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains(r#"priority="progress""#), "{text}");
    }

    #[test]
    fn lists_given_up_on_are_counted() {
        let mut registry = Registry::default();
        let observer = CloudCallMetrics(Metrics::new(&mut registry));
        for complete in [true, false, false] {
            observer.observe_list(&ListRecord {
                action: "DescribeVpnPbrRouteEntries",
                region: "cn-hangzhou",
                reads: 5,
                complete,
            });
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.lines()
                .any(|l| l == "vpn_pbr_list_inconsistent_total 2"),
            "{text}"
        );
    }
}
