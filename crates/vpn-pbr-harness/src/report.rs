//! docs/benchmarks.md: the results of `make bench` as tables, with the command, the machine and
//! the commit; the targets and whether each is met.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::bench::{Binding, RestartResult, ScenarioResult};

/// The benchmark targets (docs/benchmarks.md).
pub const TARGET_RATIO: f64 = 1.05;
pub const TARGET_CALLS_PER_ROUTE: f64 = 1.2;
pub const TARGET_REFUSED_MUTATIONS_PER_ROUTE: f64 = 0.05;
pub const TARGET_P99_MS: f64 = 200.0;
pub const TARGET_SCALE_RATIO: f64 = 1.10;
pub const TARGET_RSS_MIB: f64 = 96.0;
pub const TARGET_READS_PER_GATEWAY: f64 = 2.0;

const ANALYSIS_START: &str = "<!-- analysis:start -->";
const ANALYSIS_END: &str = "<!-- analysis:end -->";

/// The runs of one `pbr-bench bench`; each may be skipped (`--only`).
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// N=1000, G=20 with the gateway scheduler.
    pub main: Option<ScenarioResult>,
    /// The same with `--gateway-scheduler false`.
    pub baseline: Option<ScenarioResult>,
    /// N=10,000, G=500 at the default API rate.
    pub scale: Option<ScenarioResult>,
    pub restart: Option<RestartResult>,
}

/// One benchmark target and its measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub measured: String,
    pub met: bool,
}

impl Results {
    /// The targets of the runs that were made.
    pub fn targets(&self) -> Vec<Target> {
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
            let sc = &s.scenario;
            push(
                format!(
                    "wall / binding bound <= {TARGET_SCALE_RATIO} at N={}, G={}, default API rate",
                    sc.routes, sc.gateways
                ),
                if s.converged {
                    format!("{:.3}", s.binding_ratio())
                } else {
                    format!("not converged ({}/{})", s.ready, sc.routes)
                },
                s.converged && s.binding_ratio() <= TARGET_SCALE_RATIO,
            );
            let rss = mib(s.usage.peak_rss_kib);
            push(
                format!("peak RSS < {TARGET_RSS_MIB} MiB with {} routes", sc.routes),
                format!("{rss:.1} MiB"),
                rss < TARGET_RSS_MIB,
            );
        }
        if let Some(r) = &self.restart {
            let sc = &r.setup.scenario;
            let of = format!("restart with {} Ready routes", sc.routes);
            let settled = if r.settled { "" } else { " (not settled)" };
            push(
                format!("{of}: cloud mutations = 0"),
                format!("{}{settled}", r.mutations()),
                r.settled && r.mutations() == 0,
            );
            push(
                format!("{of}: reads per gateway <= {TARGET_READS_PER_GATEWAY}"),
                format!("{:.2}{settled}", r.reads_per_gateway()),
                r.settled && r.reads_per_gateway() <= TARGET_READS_PER_GATEWAY,
            );
            push(
                format!("{of}: Ready flips = 0"),
                r.flips.updates.to_string(),
                r.flips.updates == 0,
            );
        }
        out
    }

    /// Whether every target of the runs made is met.
    pub fn all_met(&self) -> bool {
        self.targets().iter().all(|t| t.met)
    }
}

/// What the document says about how it was made.
#[derive(Clone, Debug)]
pub struct Header {
    /// The command a reader runs (`make bench`).
    pub command: String,
    /// The `pbr-bench` command line it ran.
    pub argv: String,
    pub commit: String,
    pub machine: String,
    pub date: String,
}

impl Header {
    /// The header of a run made now, in the repository `repo`.
    pub fn now(command: &str, repo: &Path) -> Header {
        Header {
            command: command.to_owned(),
            argv: std::env::args()
                .enumerate()
                .map(|(i, a)| if i == 0 { "pbr-bench".to_owned() } else { a })
                .collect::<Vec<_>>()
                .join(" "),
            commit: commit(repo),
            machine: machine(),
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
        }
    }
}

/// The short commit of `repo`, with `+ uncommitted changes` when the tree is dirty.
pub fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c} + uncommitted changes")
        }
        Some(c) => c,
        None => "unknown".to_owned(),
    }
}

/// The machine, in one line: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {kernel}")
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.0} ms"))
}

fn rate(r: f64) -> String {
    format!("{r}/s")
}

fn binding(b: Binding) -> &'static str {
    match b {
        Binding::Gateways => "gateways bind",
        Binding::Api => "API rate binds",
    }
}

/// The rows of one run's column: (row, value); `None` where the run has no such value.
fn rows(r: &ScenarioResult) -> Vec<(&'static str, Option<String>)> {
    let sc = &r.scenario;
    let bound = r.binding_bound();
    vec![
        (
            "routes / gateways / update time T / API rate",
            Some(format!(
                "{} / {} / {} / {}",
                sc.routes,
                sc.gateways,
                secs(sc.update),
                rate(sc.api_rate())
            )),
        ),
        (
            "physical limit (busiest gateway's routes x T)",
            Some(secs(sc.physical_limit())),
        ),
        (
            "API bound (cloud calls until convergence / API rate)",
            Some(secs(bound.api)),
        ),
        (
            "binding bound (the larger)",
            Some(format!(
                "{} ({})",
                secs(bound.bound()),
                binding(bound.binding())
            )),
        ),
        (
            "wall time, first create to last Ready",
            Some(if r.converged {
                secs(r.wall)
            } else {
                format!(
                    "not converged: {}/{} Ready after {}",
                    r.ready,
                    sc.routes,
                    secs(r.wall)
                )
            }),
        ),
        (
            "ratio to the physical limit",
            Some(format!("**{:.3}**", r.ratio())),
        ),
        (
            "ratio to the binding bound",
            Some(format!("**{:.3}**", r.binding_ratio())),
        ),
        (
            "harness create time (all objects)",
            Some(format!(
                "{} ({} at a time)",
                secs(r.create_time),
                sc.parallel
            )),
        ),
        (
            "cloud API calls until convergence",
            Some(r.total_calls().to_string()),
        ),
        (
            "cloud calls per converged route",
            Some(format!("**{:.2}**", r.calls_per_route())),
        ),
        (
            "refused calls (per route)",
            Some(format!(
                "{} ({:.3})",
                r.refused_calls(),
                r.per_route(r.refused_calls())
            )),
        ),
        (
            "refused mutations (per route)",
            Some(format!(
                "{} (**{:.3}**)",
                r.refused_mutations(),
                r.per_route(r.refused_mutations())
            )),
        ),
        (
            "reconciles until convergence",
            Some(r.reconciles.map_or("-".to_owned(), |n| format!("{n:.0}"))),
        ),
        (
            "apply -> create accepted, p50 / p99 / max",
            (sc.latency_probes > 0).then(|| {
                format!(
                    "{} / **{}** / {} (n = {}{})",
                    ms(r.percentile(0.5)),
                    ms(r.percentile(0.99)),
                    ms(r.latencies_ms.last().copied()),
                    r.latencies_ms.len(),
                    if r.latency_missing > 0 {
                        format!(", {} missing", r.latency_missing)
                    } else {
                        String::new()
                    }
                )
            }),
        ),
        (
            "operator peak RSS (VmHWM)",
            Some(format!("**{:.1} MiB**", mib(r.usage.peak_rss_kib))),
        ),
        (
            "operator CPU time (user + system)",
            Some(format!(
                "{} ({} at convergence)",
                secs(r.usage.cpu),
                secs(r.cpu_at_convergence)
            )),
        ),
        (
            "operator CPU time per route, until convergence",
            Some(format!("**{:.2} ms**", r.cpu_ms_per_route())),
        ),
    ]
}

/// A table with one column per run (`heads`); rows no run has a value for are left out.
fn runs_table(s: &mut String, heads: &[String], runs: &[&ScenarioResult]) {
    let cols: Vec<_> = runs.iter().map(|r| rows(r)).collect();
    let _ = writeln!(
        s,
        "| |{}",
        heads.iter().map(|h| format!(" {h} |")).collect::<String>()
    );
    let _ = writeln!(s, "|---|{}", "---|".repeat(heads.len()));
    let Some(first) = cols.first() else {
        return;
    };
    for (i, (row, _)) in first.iter().enumerate() {
        if cols.iter().all(|c| c[i].1.is_none()) {
            continue;
        }
        let _ = write!(s, "| {row} |");
        for c in &cols {
            let _ = write!(s, " {} |", c[i].1.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
}

/// Calls by action and code, one column per run; `refused` keeps only the refused ones and
/// adds the count per route.
fn calls_table(s: &mut String, runs: &[&ScenarioResult], refused: bool) {
    let calls = |r: &ScenarioResult| {
        if refused {
            r.refusals()
        } else {
            r.calls.clone()
        }
    };
    let keys: BTreeSet<(String, String)> = runs
        .iter()
        .flat_map(|r| calls(r).into_iter().map(|c| (c.0, c.1)))
        .collect();
    if keys.is_empty() {
        let _ = writeln!(s, "None.\n");
        return;
    }
    let _ = write!(s, "| action | code |");
    for r in runs {
        let _ = write!(s, " {} |", r.scenario.label);
    }
    let _ = writeln!(s, "\n|---|---|{}", "---:|".repeat(runs.len()));
    for (a, c) in &keys {
        let _ = write!(s, "| {a} | {c} |");
        for r in runs {
            let n = r
                .calls
                .iter()
                .find(|x| &x.0 == a && &x.1 == c)
                .map_or(0, |x| x.2);
            if refused {
                let _ = write!(s, " {n} ({:.3}) |", r.per_route(n));
            } else {
                let _ = write!(s, " {n} |");
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
}

fn restart_section(s: &mut String, r: &RestartResult) {
    let sc = &r.setup.scenario;
    let crit = &r.criterion;
    let _ = writeln!(s, "## Restart run\n");
    let _ = writeln!(
        s,
        "{} routes over {} gateways, T = {}, set up with `--api-rate {}` (only to converge \
         faster; the new operator runs with the same flags). Once every route was Ready and \
         the cloud had answered no call for {}, the operator was stopped with SIGTERM, the \
         emulator's counters were taken, and a fresh operator was started. **Settled**: the \
         new operator's `vpn_pbr_reconciles_total` reached {} (its initial list queues every \
         route once) and the emulator answered no call for {} after that and after its last \
         call; the time to settle runs from the new start to the later of the two (polled \
         every 500 ms). **Ready flips**: new versions of any route with its Ready condition \
         not True (False, Unknown or none), seen by a watch running from before the stop \
         until settled.\n",
        sc.routes,
        sc.gateways,
        secs(sc.update),
        sc.api_rate(),
        secs(crit.quiet),
        crit.min_reconciles,
        secs(crit.quiet),
    );
    let (gw_reads, list_reads) = r.reads();
    let calls = if r.calls.is_empty() {
        "none".to_owned()
    } else {
        r.calls
            .iter()
            .map(|(a, c, n)| format!("{a} {c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let flips = if r.flips.updates == 0 {
        "**0**".to_owned()
    } else {
        format!(
            "**{}** on {} routes: {}",
            r.flips.updates,
            r.flips.routes,
            r.flips
                .by_reason
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let table = [
        (
            "routes / gateways / update time T / API rate",
            format!(
                "{} / {} / {} / {}",
                sc.routes,
                sc.gateways,
                secs(sc.update),
                rate(sc.api_rate())
            ),
        ),
        (
            "setup: first create to last Ready",
            format!(
                "{} ({} cloud calls)",
                secs(r.setup.wall),
                r.setup.total_calls()
            ),
        ),
        (
            "old operator stop (SIGTERM)",
            format!("{} after {}", r.stop_status, secs(r.stop_took)),
        ),
        (
            "time to settle",
            if r.settled {
                secs(r.settle_time)
            } else {
                format!("**not settled** after {}", secs(r.settle_time))
            },
        ),
        (
            "reconciles by the new operator",
            r.reconciles.map_or("-".to_owned(), |n| format!("{n:.0}")),
        ),
        ("cloud calls of the new operator (action code n)", calls),
        ("mutations", format!("**{}**", r.mutations())),
        (
            "reads per gateway",
            format!(
                "**{:.2}** ({gw_reads} DescribeVpnGateway + {list_reads} \
                 DescribeVpnPbrRouteEntries over {} gateways)",
                r.reads_per_gateway(),
                sc.gateways
            ),
        ),
        ("Ready flips (updates with Ready not True)", flips),
        (
            "new operator peak RSS / CPU time until settled",
            format!(
                "{:.1} MiB / {}",
                mib(r.usage.peak_rss_kib),
                secs(r.usage.cpu)
            ),
        ),
    ];
    let _ = writeln!(s, "| | |\n|---|---|");
    for (row, val) in table {
        let _ = writeln!(s, "| {row} | {val} |");
    }
    let _ = writeln!(s);
}

/// The whole document. `previous` is the current file: its analysis block is kept.
pub fn render(header: &Header, res: &Results, previous: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `make bench` (`target/release/pbr-bench bench`, `crates/vpn-pbr-harness`); the analysis \
         block at the end is kept across regenerations.\n"
    );
    let _ = writeln!(s, "- Command: `{}` (ran `{}`)", header.command, header.argv);
    let _ = writeln!(s, "- Commit: {}", header.commit);
    let _ = writeln!(
        s,
        "- Machine: {} (shared with other builds at the time)",
        header.machine
    );
    let _ = writeln!(s, "- Date: {}", header.date);
    let _ = write!(
        s,
        "- Setup: one local etcd + kube-apiserver (`hack/cluster.sh`), release `vpc-emulator` \
         (every gateway with priority support, 4 IPsec connections, `update_duration_ms` = T, \
         `task_conflict_window_ms` 50), release `vpn-pbr-operator` (defaults: concurrency 8, \
         resync 10m, API rate 20/s unless stated), one namespace and fresh emulator + operator \
         per run. Routes: weight 100, not published, each with its own destination, spread \
         round robin over the gateways. Wall time runs from the first create to the last \
         route seen `Ready=True` by a watch. Calls are the emulator's counters (every request, \
         refused ones included) at convergence; refused = every answer but `Success`, \
         mutations = Create/Modify/Delete/Publish actions. Binding bound = the larger of the \
         physical limit (busiest gateway's routes x T) and the cloud calls until convergence \
         divided by the operator's API rate."
    );
    let probes = res.main.as_ref().map_or(0, |m| m.scenario.latency_probes);
    if probes > 0 {
        let _ = write!(
            s,
            " Apply -> create accepted: {probes} routes created one at a time after \
             convergence, round robin over idle gateways (previous change at least T + 0.5 s \
             old); the latency is the emulator's `CreateTime` of the new entry minus the \
             harness clock just before the create request, an upper bound of apply -> first \
             cloud call (it includes the finalizer and token status writes and the list read \
             before the create)."
        );
    }
    let _ = writeln!(s, "\n");

    let mut heads = Vec::new();
    let mut conv: Vec<&ScenarioResult> = Vec::new();
    if let Some(m) = &res.main {
        heads.push("gateway scheduler (`--gateway-scheduler true`)".to_owned());
        conv.push(m);
    }
    if let Some(b) = &res.baseline {
        heads.push("baseline (`--gateway-scheduler false`)".to_owned());
        conv.push(b);
    }
    if !conv.is_empty() {
        let _ = writeln!(s, "## Convergence: gateway scheduler vs. naive retries\n");
        runs_table(&mut s, &heads, &conv);
    }
    if let Some(sc) = &res.scale {
        let _ = writeln!(s, "## Scale run\n");
        let _ = writeln!(
            s,
            "The operator at its default `--api-rate` ({}); the harness creates the objects {} \
             at a time, and only the operator's peak RSS counts.\n",
            rate(sc.scenario.api_rate()),
            sc.scenario.parallel
        );
        runs_table(&mut s, &["gateway scheduler".to_owned()], &[sc]);
    }
    let runs: Vec<&ScenarioResult> = conv.iter().copied().chain(res.scale.as_ref()).collect();
    if !runs.is_empty() {
        let _ = writeln!(
            s,
            "### Cloud calls by action and code (until convergence)\n"
        );
        calls_table(&mut s, &runs, false);
        let _ = writeln!(
            s,
            "### Refused calls by action and code: count (per route)\n"
        );
        calls_table(&mut s, &runs, true);
    }
    if let Some(r) = &res.restart {
        restart_section(&mut s, r);
    }

    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(s, "| target | measured | |\n|---|---|---|");
    for t in res.targets() {
        let _ = writeln!(s, "| {} | {} | {} |", t.name, t.measured, verdict(t.met));
    }
    let _ = writeln!(s);

    let analysis = previous
        .and_then(|p| {
            let a = p.find(ANALYSIS_START)?;
            let b = p.find(ANALYSIS_END)?;
            (b > a).then(|| p[a..b + ANALYSIS_END.len()].to_owned())
        })
        .unwrap_or_else(|| format!("{ANALYSIS_START}\n## Analysis\n\n(none yet)\n{ANALYSIS_END}"));
    let _ = writeln!(s, "{analysis}");
    s
}

/// Writes the document, keeping the analysis block of the file it replaces.
pub fn write(path: &Path, header: &Header, res: &Results) -> std::io::Result<()> {
    let previous = std::fs::read_to_string(path).ok();
    std::fs::write(path, render(header, res, previous.as_deref()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::bench::{Scenario, SettleCriterion};
    use crate::operator::Usage;
    use crate::workload::Flips;

    fn calls(list: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
        list.iter()
            .map(|(a, c, n)| ((*a).to_owned(), (*c).to_owned(), *n))
            .collect()
    }

    fn run(label: &str, routes: usize, gateways: usize, wall: f64) -> ScenarioResult {
        ScenarioResult {
            scenario: Scenario {
                label: label.to_owned(),
                routes,
                gateways,
                update: Duration::from_secs(2),
                scheduler: true,
                api_rate: None,
                latency_probes: 0,
                timeout: Duration::from_secs(600),
                log_level: "info".to_owned(),
                parallel: 32,
            },
            ready: routes,
            converged: true,
            wall: Duration::from_secs_f64(wall),
            create_time: Duration::from_secs(3),
            calls: calls(&[
                ("CreateVpnPbrRouteEntry", "Success", routes as u64),
                ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 20),
                ("DescribeVpnGateway", "Success", 60),
                ("DescribeVpnPbrRouteEntries", "Throttling", 10),
            ]),
            usage: Usage {
                peak_rss_kib: 30 * 1024,
                cpu: Duration::from_secs(4),
            },
            cpu_at_convergence: Duration::from_secs(3),
            latencies_ms: Vec::new(),
            latency_missing: 0,
            reconciles: Some(2000.0),
        }
    }

    fn header() -> Header {
        Header {
            command: "make bench".to_owned(),
            argv: "pbr-bench bench --out docs/benchmarks.md".to_owned(),
            commit: "abc1234".to_owned(),
            machine: "test machine".to_owned(),
            date: "2026-01-01 00:00 UTC".to_owned(),
        }
    }

    fn restart(flips: Flips, extra_calls: &[(&str, &str, u64)]) -> RestartResult {
        let mut c = calls(&[
            ("DescribeVpnGateway", "Success", 10),
            ("DescribeVpnPbrRouteEntries", "Success", 12),
        ]);
        c.extend(calls(extra_calls));
        RestartResult {
            setup: run("restart", 200, 10, 50.0),
            criterion: SettleCriterion {
                min_reconciles: 200.0,
                quiet: Duration::from_secs(5),
                timeout: Duration::from_secs(300),
            },
            stop_status: "exit status: 0".to_owned(),
            stop_took: Duration::from_millis(300),
            settled: true,
            settle_time: Duration::from_secs(4),
            reconciles: Some(200.0),
            calls: c,
            flips,
            usage: Usage::default(),
        }
    }

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
        let res = Results {
            main: Some(main),
            baseline: Some(baseline),
            scale: Some(scale),
            restart: Some(restart(Flips::default(), &[])),
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
                ("100.0 MiB".to_owned(), false),
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
        r.settled = false;
        let res = Results {
            restart: Some(r),
            ..Results::default()
        };
        assert!(res.targets().iter().take(2).all(|t| !t.met));
    }

    #[test]
    fn render_has_the_new_sections() {
        let mut main = run("scheduler", 1000, 20, 104.0);
        main.scenario.latency_probes = 3;
        main.latencies_ms = vec![10.0, 20.0, 30.0];
        let flips = Flips {
            updates: 3,
            routes: 2,
            by_reason: BTreeMap::from([("Unknown/Restarting".to_owned(), 3)]),
        };
        let res = Results {
            main: Some(main),
            baseline: None,
            scale: Some(run("scale", 10_000, 500, 650.0)),
            restart: Some(restart(flips, &[("CreateVpnPbrRouteEntry", "Success", 1)])),
        };
        let previous = "old\n<!-- analysis:start -->\nkept text\n<!-- analysis:end -->\n";
        let doc = render(&header(), &res, Some(previous));
        for want in [
            "- Command: `make bench` (ran `pbr-bench bench --out docs/benchmarks.md`)",
            "- Commit: abc1234",
            "| | gateway scheduler (`--gateway-scheduler true`) |\n|---|---|",
            "| binding bound (the larger) | 100.0 s (gateways bind) |",
            "| apply -> create accepted, p50 / p99 / max | 20 ms / **30 ms** / 30 ms (n = 3) |",
            "| refused mutations (per route) | 20 (**0.020**) |",
            "| operator CPU time per route, until convergence | **3.00 ms** |",
            "## Scale run",
            // 10,000 + 20 + 60 + 10 calls at 20/s.
            "| binding bound (the larger) | 504.5 s (API rate binds) |",
            "| harness create time (all objects) | 3.0 s (32 at a time) |",
            "| operator CPU time per route, until convergence | **0.30 ms** |",
            "| action | code | scheduler | scale |",
            "### Refused calls by action and code: count (per route)",
            "| CreateVpnPbrRouteEntry | VpnGateway.Configuring | 20 (0.020) | 20 (0.002) |",
            "| DescribeVpnPbrRouteEntries | Throttling | 10 (0.010) | 10 (0.001) |",
            "## Restart run",
            "| mutations | **1** |",
            "| reads per gateway | **2.20** (10 DescribeVpnGateway + 12 DescribeVpnPbrRouteEntries over 10 gateways) |",
            "| Ready flips (updates with Ready not True) | **3** on 2 routes: Unknown/Restarting 3 |",
            "| time to settle | 4.0 s |",
            "| restart with 200 Ready routes: cloud mutations = 0 | 1 | **missed** |",
            "\n<!-- analysis:start -->\nkept text\n<!-- analysis:end -->\n",
        ] {
            assert!(doc.contains(want), "missing {want:?} in\n{doc}");
        }
        // No baseline: no baseline column; no latency probes in the scale run: no latency row.
        assert!(!doc.contains("baseline (`--gateway-scheduler false`)"));
        let scale = &doc[doc.find("## Scale run").unwrap_or(0)..];
        let scale = &scale[..scale.find("###").unwrap_or(scale.len())];
        assert!(!scale.contains("apply -> create"), "{scale}");
    }

    #[test]
    fn render_without_runs_keeps_the_analysis_placeholder() {
        let doc = render(&header(), &Results::default(), None);
        assert!(doc.contains("## Targets"));
        assert!(!doc.contains("## Convergence"));
        assert!(
            doc.ends_with("(none yet)\n<!-- analysis:end -->\n"),
            "{doc}"
        );
    }
}
