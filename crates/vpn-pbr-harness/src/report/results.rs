//! The runs of one `pbr-bench bench` ([`Results`]) and the benchmark targets of
//! docs/benchmarks.md they are held to ([`Target`]).

use super::format::{mib, ms, rate, secs};
use crate::bench::{AccountsResult, RestartResult, ScenarioResult};

/// The benchmark targets (docs/benchmarks.md).
const TARGET_RATIO: f64 = 1.05;
const TARGET_CALLS_PER_ROUTE: f64 = 1.2;
const TARGET_REFUSED_MUTATIONS_PER_ROUTE: f64 = 0.05;
const TARGET_P99_MS: f64 = 200.0;
const TARGET_SCALE_RATIO: f64 = 1.10;
/// Peak RSS of the scale run (10,000 routes by default).
const TARGET_RSS_MIB: f64 = 48.0;
/// Operator CPU time per route until convergence, in the scale run.
const TARGET_CPU_MS_PER_ROUTE: f64 = 2.0;
/// The large run (50,000 routes on 2,500 gateways by default, at a higher API rate).
const TARGET_LARGE_RATIO: f64 = 1.05;
const TARGET_LARGE_RSS_MIB: f64 = 160.0;
const TARGET_READS_PER_GATEWAY: f64 = 2.0;
const TARGET_ACCOUNTS_RATIO: f64 = 1.10;

/// The runs of one `pbr-bench bench`; each may be skipped (`--only`).
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// N=1000, G=20 with the gateway scheduler.
    pub main: Option<ScenarioResult>,
    /// The same with `--gateway-scheduler false`.
    pub baseline: Option<ScenarioResult>,
    /// N=10,000, G=500 at the default API rate.
    pub scale: Option<ScenarioResult>,
    /// N=50,000, G=2,500 at a higher API rate.
    pub large: Option<ScenarioResult>,
    pub restart: Option<RestartResult>,
    /// Several accounts with their own API rates.
    pub accounts: Option<AccountsResult>,
}

/// One benchmark target and its measurement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) measured: String,
    pub(crate) met: bool,
}

impl Results {
    /// The targets of the runs that were made.
    pub(crate) fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let mut push = |name: String, measured: String, met: bool| {
            out.push(Target {
                name,
                measured,
                met,
            });
        };
        let base = |f: &dyn Fn(&ScenarioResult) -> String| {
            self.baseline
                .as_ref()
                .map_or(String::new(), |b| format!(" (baseline {})", f(b)))
        };
        if let Some(m) = &self.main {
            let sc = &m.scenario;
            push(
                format!(
                    "wall / physical limit <= {TARGET_RATIO} at N={}, G={}, T={}",
                    sc.routes,
                    sc.gateways,
                    secs(sc.update)
                ),
                format!(
                    "{:.3}{}",
                    m.ratio(),
                    base(&|b| if b.converged {
                        format!("{:.3}", b.ratio())
                    } else {
                        "not converged".to_owned()
                    })
                ),
                m.converged && m.ratio() <= TARGET_RATIO,
            );
            push(
                format!("cloud calls per converged route <= {TARGET_CALLS_PER_ROUTE}"),
                format!(
                    "{:.2}{}",
                    m.calls_per_route(),
                    base(&|b| format!("{:.2}", b.calls_per_route()))
                ),
                m.converged && m.calls_per_route() <= TARGET_CALLS_PER_ROUTE,
            );
            let refused = |r: &ScenarioResult| r.per_route(r.refused_mutations());
            push(
                format!("refused mutations per route <= {TARGET_REFUSED_MUTATIONS_PER_ROUTE}"),
                format!(
                    "{:.3}{}",
                    refused(m),
                    base(&|b| format!("{:.3}", refused(b)))
                ),
                refused(m) <= TARGET_REFUSED_MUTATIONS_PER_ROUTE,
            );
            if sc.latency_probes > 0 {
                let p99 = m.percentile(0.99);
                push(
                    format!("apply -> first cloud call p99 < {TARGET_P99_MS} ms, idle gateway"),
                    format!("{} (upper bound)", ms(p99)),
                    p99.is_some_and(|p| p < TARGET_P99_MS),
                );
            }
        }
        if let Some(s) = &self.scale {
            for t in big_run_targets(s, TARGET_SCALE_RATIO, TARGET_RSS_MIB) {
                push(t.name, t.measured, t.met);
            }
            let cpu = s.cpu_ms_per_route();
            push(
                format!(
                    "operator CPU per route <= {TARGET_CPU_MS_PER_ROUTE} ms at N={}",
                    s.scenario.routes
                ),
                format!("{cpu:.2} ms ({:.2}x)", cpu / TARGET_CPU_MS_PER_ROUTE),
                s.converged && cpu <= TARGET_CPU_MS_PER_ROUTE,
            );
        }
        if let Some(l) = &self.large {
            for t in big_run_targets(l, TARGET_LARGE_RATIO, TARGET_LARGE_RSS_MIB) {
                push(t.name, t.measured, t.met);
            }
        }
        if let Some(r) = &self.restart {
            let sc = &r.setup.scenario;
            let of = format!("restart with {} Ready routes", sc.routes);
            let settled = if r.settle.settled {
                ""
            } else {
                " (not settled)"
            };
            push(
                format!("{of}: cloud mutations = 0"),
                format!("{}{settled}", r.mutations()),
                r.settle.settled && r.mutations() == 0,
            );
            push(
                format!("{of}: reads per gateway <= {TARGET_READS_PER_GATEWAY}"),
                format!("{:.2}{settled}", r.reads_per_gateway()),
                r.settle.settled && r.reads_per_gateway() <= TARGET_READS_PER_GATEWAY,
            );
            push(
                format!("{of}: Ready flips = 0"),
                r.flips.updates.to_string(),
                r.flips.updates == 0,
            );
        }
        if let Some(a) = &self.accounts {
            push(
                format!(
                    "wall / busiest account's bound <= {TARGET_ACCOUNTS_RATIO} with {} accounts",
                    a.accounts.len()
                ),
                if a.converged {
                    format!("{:.3}", a.ratio())
                } else {
                    format!("not converged ({}/{})", a.ready(), a.routes())
                },
                a.converged && a.ratio() <= TARGET_ACCOUNTS_RATIO,
            );
        }
        out
    }

    /// Whether every target of the runs made is met.
    pub fn all_met(&self) -> bool {
        self.targets().iter().all(|t| t.met)
    }
}

/// The targets of a run of many routes: its wall time to the binding bound, and its peak RSS
/// (with the RSS after settling, for the record), each with its ratio to the bound.
fn big_run_targets(s: &ScenarioResult, ratio: f64, rss_mib: f64) -> Vec<Target> {
    let sc = &s.scenario;
    let rss = mib(s.usage.peak_rss_kib);
    let settled = s.settled_rss_kib.map_or(String::new(), |k| {
        format!(
            "; {:.1} MiB {} after convergence",
            mib(k),
            secs(sc.settle_wait)
        )
    });
    vec![
        Target {
            name: format!(
                "wall / binding bound <= {ratio} at N={}, G={}, API rate {}",
                sc.routes,
                sc.gateways,
                rate(sc.api_rate())
            ),
            measured: if s.converged {
                format!("{:.3}", s.binding_ratio())
            } else {
                format!("not converged ({}/{})", s.ready, sc.routes)
            },
            met: s.converged && s.binding_ratio() <= ratio,
        },
        Target {
            name: format!("peak RSS <= {rss_mib} MiB with {} routes", sc.routes),
            measured: format!("{rss:.1} MiB ({:.2}x){settled}", rss / rss_mib),
            met: rss <= rss_mib,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::calls;
    use crate::report::fixtures::{restart, run};
    use crate::workload::Flips;

    #[test]
    fn targets_of_every_run() {
        let mut main = run("scheduler", 1000, 20, 104.0);
        main.calls = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 1000),
            ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 60),
            ("DescribeVpnPbrRouteEntries", "Success", 100),
        ]);
        let mut baseline = run("baseline", 1000, 20, 240.0);
        baseline.converged = false;
        baseline.ready = 996;
        // 10,000 routes, 12,000 calls at 20/s: the API binds at 600 s.
        let mut scale = run("scale", 10_000, 500, 650.0);
        scale.calls = calls(&[("CreateVpnPbrRouteEntry", "Success", 12_000)]);
        scale.usage.peak_rss_kib = 100 * 1024;
        // 50,000 routes, 62,500 calls at 100/s: the API binds at 625 s.
        let mut large = run("large", 50_000, 2500, 650.0);
        large.scenario.api_rate = Some(100.0);
        large.scenario.settle_wait = std::time::Duration::from_secs(30);
        large.calls = calls(&[("CreateVpnPbrRouteEntry", "Success", 62_500)]);
        large.settled_rss_kib = Some(20 * 1024);
        let res = Results {
            main: Some(main),
            baseline: Some(baseline),
            scale: Some(scale),
            large: Some(large),
            restart: Some(restart(Flips::default(), &[])),
            accounts: None,
        };
        let got: Vec<(String, bool)> = res
            .targets()
            .into_iter()
            .map(|t| (t.measured, t.met))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1.040 (baseline not converged)".to_owned(), true),
                ("1.16 (baseline 1.09)".to_owned(), true),
                ("0.060 (baseline 0.020)".to_owned(), false),
                ("1.083".to_owned(), true),
                ("100.0 MiB (2.08x)".to_owned(), false),
                ("0.30 ms (0.15x)".to_owned(), true),
                ("1.040".to_owned(), true),
                (
                    "30.0 MiB (0.19x); 20.0 MiB 30.0 s after convergence".to_owned(),
                    true
                ),
                ("0".to_owned(), true),
                ("2.20".to_owned(), false),
                ("0".to_owned(), true),
            ]
        );
        assert!(!res.all_met());
    }

    #[test]
    fn restart_targets_need_a_settled_operator() {
        let mut r = restart(Flips::default(), &[]);
        r.calls.truncate(1);
        r.settle.settled = false;
        let res = Results {
            restart: Some(r),
            ..Results::default()
        };
        assert!(res.targets().iter().take(2).all(|t| !t.met));
    }
}
