//! The benchmark and the chaos run: start a control plane, `vpc-emulator` and the operator
//! binary, create routes, and measure or check the targets of docs/benchmarks.md. The binary
//! `pbr-bench` is a thin command line over this module; `tests/chaos_small.rs` runs a small
//! chaos run through it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

use crate::cluster::{ControlPlane, install_crd};
use crate::emulator::{self, Emulator};
use crate::operator::{Operator, OperatorOptions, Usage};
use crate::tools::Binaries;
use crate::workload::{self, Flips, Tracker};

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

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The operator's default `--api-rate` (src/config.rs); a test checks that they agree.
pub const OPERATOR_API_RATE: f64 = 20.0;

/// One measured workload.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub label: String,
    pub routes: usize,
    pub gateways: usize,
    /// The gateways' update time T.
    pub update: Duration,
    /// `--gateway-scheduler`.
    pub scheduler: bool,
    /// `--api-rate` (operator default when unset).
    pub api_rate: Option<f64>,
    /// Routes created one at a time on idle gateways after convergence.
    pub latency_probes: usize,
    /// Give up waiting for convergence after this long.
    pub timeout: Duration,
    /// `--log-level` of the operator.
    pub log_level: String,
    /// Concurrent creates.
    pub parallel: usize,
}

impl Scenario {
    /// `max over gateways of (routes on it x T)`.
    pub fn physical_limit(&self) -> Duration {
        self.update * u32::try_from(self.routes.div_ceil(self.gateways.max(1))).unwrap_or(u32::MAX)
    }

    /// The `--api-rate` the operator runs with.
    pub fn api_rate(&self) -> f64 {
        self.api_rate.unwrap_or(OPERATOR_API_RATE)
    }

    /// A lower bound of the wall time known before the run: the physical limit, or one call
    /// per route at the API rate when that is longer.
    pub fn lower_bound(&self) -> Duration {
        BindingBound::new(self.physical_limit(), self.routes as u64, self.api_rate()).bound()
    }

    /// The operator's flags.
    fn operator_args(&self) -> Vec<String> {
        let mut args = vec!["--gateway-scheduler".to_owned(), self.scheduler.to_string()];
        args.extend(log_and_rate(&self.log_level, self.api_rate));
        args
    }
}

/// Which of the two bounds of a run's wall time is the larger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The busiest gateway's routes x T.
    Gateways,
    /// Cloud calls / API rate.
    Api,
}

/// The two lower bounds of a run's wall time: no gateway takes more than one change per T, and
/// the operator makes at most `--api-rate` calls per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BindingBound {
    /// The busiest gateway's routes x T (the physical limit).
    pub gateways: Duration,
    /// Cloud calls until convergence / API rate.
    pub api: Duration,
}

impl BindingBound {
    pub fn new(physical_limit: Duration, calls: u64, api_rate: f64) -> BindingBound {
        BindingBound {
            gateways: physical_limit,
            api: Duration::try_from_secs_f64(calls as f64 / api_rate).unwrap_or(Duration::MAX),
        }
    }

    pub fn bound(&self) -> Duration {
        self.gateways.max(self.api)
    }

    pub fn binding(&self) -> Binding {
        if self.api > self.gateways {
            Binding::Api
        } else {
            Binding::Gateways
        }
    }
}

/// Whether a call was refused: every answer but `Success` (dropped connections included).
pub fn is_refused(code: &str) -> bool {
    code != "Success"
}

/// The refused calls of `calls` (action, code, n), in the same order.
pub fn refusals(calls: &[(String, String, u64)]) -> Vec<(String, String, u64)> {
    calls
        .iter()
        .filter(|c| is_refused(&c.1) && c.2 > 0)
        .cloned()
        .collect()
}

/// Calls of the mutating actions (Create/Modify/Delete/Publish) among `calls`.
pub fn mutations(calls: &[(String, String, u64)]) -> u64 {
    calls
        .iter()
        .filter(|c| vpc_emulator::ops::is_mutation(&c.0))
        .map(|c| c.2)
        .sum()
}

/// Calls of one action among `calls`, all codes.
pub fn action_calls(calls: &[(String, String, u64)], action: &str) -> u64 {
    calls.iter().filter(|c| c.0 == action).map(|c| c.2).sum()
}

/// The calls of `after` not yet in `before` (both from [`emulator::calls`]), non-zero ones.
pub fn calls_since(
    before: &[(String, String, u64)],
    after: &[(String, String, u64)],
) -> Vec<(String, String, u64)> {
    after
        .iter()
        .filter_map(|(a, c, n)| {
            let was = before
                .iter()
                .find(|b| &b.0 == a && &b.1 == c)
                .map_or(0, |b| b.2);
            (*n > was).then(|| (a.clone(), c.clone(), n - was))
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    /// Routes seen Ready (of `routes`).
    pub ready: usize,
    pub converged: bool,
    /// First create to the last route Ready (or to the timeout).
    pub wall: Duration,
    /// Time the harness took to create the objects.
    pub create_time: Duration,
    /// Emulator counters at convergence: (action, code, n).
    pub calls: Vec<(String, String, u64)>,
    /// Operator usage at the end of the run (peak RSS covers the whole run).
    pub usage: Usage,
    /// CPU time at convergence.
    pub cpu_at_convergence: Duration,
    /// Apply -> accepted create (upper bound of apply -> first cloud call), ms, sorted.
    pub latencies_ms: Vec<f64>,
    /// Probes whose entry never showed up.
    pub latency_missing: usize,
    /// vpn_pbr_reconciles_total summed over labels, at convergence.
    pub reconciles: Option<f64>,
    pub operator_log: PathBuf,
}

impl ScenarioResult {
    pub fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.scenario.physical_limit().as_secs_f64()
    }

    pub fn binding_bound(&self) -> BindingBound {
        BindingBound::new(
            self.scenario.physical_limit(),
            self.total_calls(),
            self.scenario.api_rate(),
        )
    }

    pub fn binding_ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.binding_bound().bound().as_secs_f64()
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.iter().map(|c| c.2).sum()
    }

    /// Calls per route that reached Ready.
    pub fn calls_per_route(&self) -> f64 {
        self.total_calls() as f64 / self.ready.max(1) as f64
    }

    /// `n` divided by the routes of the run.
    pub fn per_route(&self, n: u64) -> f64 {
        n as f64 / self.scenario.routes.max(1) as f64
    }

    pub fn refusals(&self) -> Vec<(String, String, u64)> {
        refusals(&self.calls)
    }

    pub fn refused_calls(&self) -> u64 {
        self.refusals().iter().map(|c| c.2).sum()
    }

    /// Refused calls of the mutating actions.
    pub fn refused_mutations(&self) -> u64 {
        mutations(&self.refusals())
    }

    /// Operator CPU time until convergence per route, ms.
    pub fn cpu_ms_per_route(&self) -> f64 {
        self.cpu_at_convergence.as_secs_f64() * 1000.0 / self.scenario.routes.max(1) as f64
    }

    /// Calls of one action, all codes.
    pub fn action_calls(&self, action: &str) -> u64 {
        action_calls(&self.calls, action)
    }

    pub fn percentile(&self, q: f64) -> Option<f64> {
        percentile(&self.latencies_ms, q)
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
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

/// `vpn_pbr_reconciles_total` of the running operator, summed over results.
async fn reconciles(op: &Operator) -> Option<f64> {
    op.metrics()
        .await
        .ok()
        .and_then(|m| sum_metric(&m, "vpn_pbr_reconciles_total"))
}

/// The processes and objects of one run.
struct Stack {
    emu: Emulator,
    op: Operator,
    api: Api<VpnPbrRoute>,
    tracker: Tracker,
    /// The routes to create (not created yet) and their names.
    objs: Vec<VpnPbrRoute>,
    names: Vec<String>,
}

/// `--log-level` and, when set, `--api-rate` operator flags.
fn log_and_rate(log_level: &str, api_rate: Option<f64>) -> Vec<String> {
    let mut args = vec!["--log-level".to_owned(), log_level.to_owned()];
    if let Some(rate) = api_rate {
        args.extend(["--api-rate".to_owned(), rate.to_string()]);
    }
    args
}

/// Starts an emulator with `gateways` gateways of update time `update` and an operator watching
/// `ns` (waiting until it is up), and prepares `routes` route objects.
#[allow(clippy::too_many_arguments)]
async fn start_stack(
    bins: &Binaries,
    cluster: &ControlPlane,
    client: &Client,
    ns: &str,
    dir: &Path,
    gateways: usize,
    routes: usize,
    update: Duration,
    extra: &[String],
) -> Result<Stack> {
    let emu = Emulator::start(
        &bins.emulator,
        dir,
        &emulator::bench_config_yaml(gateways, u64::try_from(update.as_millis())?),
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
    })
}

/// The stack of a scenario, in a namespace and a work subdirectory of its own.
async fn start_scenario(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    work: &Path,
) -> Result<Stack> {
    let ns = format!("bench-{}-{}", sc.label, std::process::id());
    workload::create_namespace(client, &ns).await?;
    let dir = work.join(&sc.label);
    std::fs::create_dir_all(&dir)?;
    start_stack(
        bins,
        cluster,
        client,
        &ns,
        &dir,
        sc.gateways,
        sc.routes,
        sc.update,
        &sc.operator_args(),
    )
    .await
}

/// Creates every route of the stack and waits until all are Ready (or the scenario's timeout),
/// then takes the emulator's counters and the operator's CPU time and reconciles: a result
/// without latencies, with the usage at convergence.
async fn converge(stack: &mut Stack, sc: &Scenario) -> Result<ScenarioResult> {
    eprintln!(
        "[{}] creating {} routes over {} gateways (T = {:?}, scheduler {}, api rate {}/s, {} at a time)",
        sc.label,
        sc.routes,
        sc.gateways,
        sc.update,
        sc.scheduler,
        sc.api_rate(),
        sc.parallel
    );
    let names = &stack.names;
    let t0 = Instant::now();
    workload::create_all(&stack.api, std::mem::take(&mut stack.objs), sc.parallel).await?;
    let create_time = t0.elapsed();
    let mut last_report = Instant::now();
    let converged = stack
        .tracker
        .wait(sc.timeout.saturating_sub(t0.elapsed()), |t| {
            let n = t.ready_of(names).0;
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "[{}] {:>5.0} s: {n}/{} Ready",
                    sc.label,
                    t0.elapsed().as_secs_f64(),
                    names.len()
                );
                last_report = Instant::now();
            }
            n == names.len()
        })
        .await;
    let (ready, last) = stack.tracker.ready_of(names);
    let wall = match (converged, last) {
        (true, Some(l)) => l.saturating_duration_since(t0),
        _ => t0.elapsed(),
    };
    let calls = emulator::calls(&stack.emu.counters().await?);
    let usage = stack.op.usage().unwrap_or_default();
    let result = ScenarioResult {
        scenario: sc.clone(),
        ready,
        converged,
        wall,
        create_time,
        calls,
        usage,
        cpu_at_convergence: usage.cpu,
        latencies_ms: Vec::new(),
        latency_missing: 0,
        reconciles: reconciles(&stack.op).await,
        operator_log: stack.op.log.clone(),
    };
    eprintln!(
        "[{}] {} in {:.1} s ({ready}/{} Ready), ratio {:.3}, binding bound {:.1} s ({:?})",
        sc.label,
        if converged {
            "converged"
        } else {
            "NOT converged"
        },
        wall.as_secs_f64(),
        sc.routes,
        result.ratio(),
        result.binding_bound().bound().as_secs_f64(),
        result.binding_bound().binding()
    );
    Ok(result)
}

/// Apply -> first cloud call on idle gateways: one route at a time, round robin over the
/// gateways, each gateway's previous change at least T + 0.5 s old. Returns the sorted
/// latencies (ms) and the probes whose entry never showed up.
async fn probe_latency(stack: &Stack, sc: &Scenario) -> Result<(Vec<f64>, usize)> {
    tokio::time::sleep(sc.update + Duration::from_millis(500)).await;
    let gap = ((sc.update + Duration::from_millis(500)) / u32::try_from(sc.gateways.max(1))?)
        .max(Duration::from_millis(50));
    let mut probes = Vec::new();
    let start = Instant::now();
    for k in 0..sc.latency_probes {
        let obj = workload::route(sc.routes + k, sc.gateways)?;
        let applied = epoch_ms();
        workload::create_one(&stack.api, &obj).await?;
        probes.push((obj, applied));
        tokio::time::sleep_until(start + gap * u32::try_from(k + 1)?).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = stack.emu.entries().await?;
        let created: HashMap<(String, String, String, String), u64> = entries
            .iter()
            .map(|(gw, e)| {
                (
                    (
                        gw.clone(),
                        e["RouteSource"].as_str().unwrap_or_default().to_owned(),
                        e["RouteDest"].as_str().unwrap_or_default().to_owned(),
                        e["NextHop"].as_str().unwrap_or_default().to_owned(),
                    ),
                    e["CreateTime"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let found: Vec<Option<f64>> = probes
            .iter()
            .map(|(o, applied)| {
                let key = (
                    o.spec.vpn_gateway_id.clone(),
                    o.spec.route_source.clone(),
                    o.spec.route_dest.clone(),
                    o.spec.next_hop.clone(),
                );
                created.get(&key).map(|t| t.saturating_sub(*applied) as f64)
            })
            .collect();
        let missing = found.iter().filter(|f| f.is_none()).count();
        if missing == 0 || Instant::now() > deadline {
            let mut latencies_ms: Vec<f64> = found.into_iter().flatten().collect();
            latencies_ms.sort_by(f64::total_cmp);
            eprintln!(
                "[{}] apply -> create accepted: p50 {:?} ms, p99 {:?} ms ({} probes, {missing} missing)",
                sc.label,
                percentile(&latencies_ms, 0.5),
                percentile(&latencies_ms, 0.99),
                latencies_ms.len()
            );
            return Ok((latencies_ms, missing));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs one scenario on `cluster` in a namespace of its own, with its own emulator and
/// operator process.
pub async fn run_scenario(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    work: &Path,
) -> Result<ScenarioResult> {
    let mut stack = start_scenario(cluster, client, bins, sc, work).await?;
    let mut result = converge(&mut stack, sc).await?;
    if sc.latency_probes > 0 {
        (result.latencies_ms, result.latency_missing) = probe_latency(&stack, sc).await?;
    }
    // Peak RSS over the whole run, probes included.
    result.usage = stack.op.usage().unwrap_or(result.usage);
    stack.op.kill();
    Ok(result)
}

/// When an operator counts as settled: it has made `min_reconciles` reconciles and the
/// emulator has answered no call for `quiet`.
#[derive(Clone, Copy, Debug)]
pub struct SettleCriterion {
    pub min_reconciles: f64,
    pub quiet: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Settled {
    settled: bool,
    /// From `since` to the later of the last cloud call seen and the `min_reconciles`-th
    /// reconcile (polled every 500 ms: the counters list every accepted create), or to the timeout.
    after: Duration,
    reconciles: Option<f64>,
}

/// Polls the emulator's call counters and the operator's reconciles until `crit` holds.
async fn settle(
    stack: &mut Stack,
    label: &str,
    since: Instant,
    crit: SettleCriterion,
) -> Result<Settled> {
    let mut last_total = None;
    let mut last_change = Instant::now();
    let mut reconciled_at: Option<Instant> = None;
    let mut last_report = Instant::now();
    loop {
        if let Some(st) = stack.op.exited() {
            return Err(anyhow!(
                "[{label}] the operator exited ({st}); see {}",
                stack.op.log.display()
            ));
        }
        let now = Instant::now();
        let total = stack.emu.total_calls().await?;
        if last_total != Some(total) {
            last_total = Some(total);
            last_change = now;
        }
        let n = reconciles(&stack.op).await;
        if reconciled_at.is_none() && n.is_some_and(|n| n >= crit.min_reconciles) {
            reconciled_at = Some(now);
        }
        let busy_until = reconciled_at.map(|r| r.max(last_change));
        if let Some(b) = busy_until
            && now.saturating_duration_since(b) >= crit.quiet
        {
            return Ok(Settled {
                settled: true,
                after: b.saturating_duration_since(since),
                reconciles: n,
            });
        }
        if now.saturating_duration_since(since) > crit.timeout {
            return Ok(Settled {
                settled: false,
                after: now.saturating_duration_since(since),
                reconciles: n,
            });
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[{label}] {:>5.0} s: {total} cloud calls, {} reconciles",
                now.saturating_duration_since(since).as_secs_f64(),
                n.unwrap_or(0.0)
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The restart run: what a fresh operator does to routes that are all Ready already.
#[derive(Clone, Debug)]
pub struct RestartResult {
    /// Convergence of the first operator (the setup).
    pub setup: ScenarioResult,
    pub criterion: SettleCriterion,
    /// The SIGTERMed operator's exit status and how long it took to exit.
    pub stop_status: String,
    pub stop_took: Duration,
    pub settled: bool,
    /// From the new operator's start to settled (see `settle`).
    pub settle_time: Duration,
    /// The new operator's reconciles when settled.
    pub reconciles: Option<f64>,
    /// Calls of the new operator: the emulator's counters since the old one exited.
    pub calls: Vec<(String, String, u64)>,
    /// Updates with Ready not True seen from before the stop until settled.
    pub flips: Flips,
    /// The new operator's usage until settled.
    pub usage: Usage,
}

impl RestartResult {
    pub fn mutations(&self) -> u64 {
        mutations(&self.calls)
    }

    /// DescribeVpnGateway and DescribeVpnPbrRouteEntries calls.
    pub fn reads(&self) -> (u64, u64) {
        (
            action_calls(&self.calls, "DescribeVpnGateway"),
            action_calls(&self.calls, "DescribeVpnPbrRouteEntries"),
        )
    }

    pub fn reads_per_gateway(&self) -> f64 {
        let (g, l) = self.reads();
        (g + l) as f64 / self.setup.scenario.gateways.max(1) as f64
    }
}

/// The restart run: converge `sc`, wait until the operator is idle, stop it with SIGTERM,
/// start a fresh one with the same flags and measure until it has settled (`crit`).
pub async fn run_restart(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    crit: SettleCriterion,
    work: &Path,
) -> Result<RestartResult> {
    let mut stack = start_scenario(cluster, client, bins, sc, work).await?;
    let setup = converge(&mut stack, sc).await?;
    if !setup.converged {
        stack.op.kill();
        return Err(anyhow!(
            "[{}] only {}/{} routes Ready after {:?}: nothing to restart on",
            sc.label,
            setup.ready,
            sc.routes,
            setup.wall
        ));
    }
    // The first operator's read-backs must be over, or the new one would be charged for them.
    let idle = settle(
        &mut stack,
        &sc.label,
        Instant::now(),
        SettleCriterion {
            min_reconciles: 0.0,
            ..crit
        },
    )
    .await?;
    if !idle.settled {
        return Err(anyhow!(
            "[{}] the first operator kept calling the cloud for {:?} after convergence",
            sc.label,
            crit.timeout
        ));
    }
    stack.tracker.count_flips();
    eprintln!("[{}] stopping the operator (SIGTERM)", sc.label);
    let stopping = Instant::now();
    let stop_status = stack
        .op
        .terminate()
        .map_or("not running".to_owned(), |s| s.to_string());
    let stop_took = stopping.elapsed();
    let before = emulator::calls(&stack.emu.counters().await?);
    let started = Instant::now();
    stack.op.restart()?;
    eprintln!(
        "[{}] operator exited ({stop_status}) after {:.1} s; new operator started",
        sc.label,
        stop_took.as_secs_f64()
    );
    let settled = settle(&mut stack, &sc.label, started, crit).await?;
    let calls = calls_since(&before, &emulator::calls(&stack.emu.counters().await?));
    let usage = stack.op.usage().unwrap_or_default();
    stack.op.kill();
    let result = RestartResult {
        setup,
        criterion: crit,
        stop_status,
        stop_took,
        settled: settled.settled,
        settle_time: settled.after,
        reconciles: settled.reconciles,
        calls,
        flips: stack.tracker.flips(),
        usage,
    };
    eprintln!(
        "[{}] {} after {:.1} s: {} mutations, {:.2} reads per gateway, {} Ready flips",
        sc.label,
        if result.settled {
            "settled"
        } else {
            "NOT settled"
        },
        result.settle_time.as_secs_f64(),
        result.mutations(),
        result.reads_per_gateway(),
        result.flips.updates
    );
    Ok(result)
}

/// Starts a control plane in a fresh work directory and installs the CRD.
pub async fn start_cluster(bins: &Binaries, work: &Path) -> Result<(ControlPlane, Client)> {
    let cluster = ControlPlane::start(&bins.repo, &bins.tools, &work.join("cluster"))?;
    let client = cluster.client().await?;
    install_crd(&client, &bins.repo).await?;
    Ok((cluster, client))
}

/// Settings of a chaos run.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    pub routes: usize,
    pub gateways: usize,
    pub update: Duration,
    /// Share of all cloud requests that fail (busy, throttled, 5xx, drop, slow).
    pub fault_rate: f64,
    /// Delay of a slow answer.
    pub slow: Duration,
    /// SIGKILL and restart the operator this often.
    pub kill_every: Duration,
    /// At most this many kills (unbounded when unset).
    pub max_kills: Option<u32>,
    /// Restart the apiserver once, this long after the first create.
    pub apiserver_restart_at: Option<Duration>,
    /// Bound of each phase (convergence, deletion).
    pub timeout: Duration,
    pub api_rate: Option<f64>,
    pub log_level: String,
    pub parallel: usize,
}

#[derive(Debug, Default)]
pub struct ChaosReport {
    pub routes: usize,
    pub ready: usize,
    pub converged_in: Option<Duration>,
    pub deleted_in: Option<Duration>,
    pub kills: u32,
    pub apiserver_restart: Option<Duration>,
    pub calls: Vec<(String, String, u64)>,
    pub entries_left: usize,
    pub objects_left: usize,
    pub duplicate_creates: Vec<String>,
    pub violations: Vec<String>,
    pub work_dir: PathBuf,
}

impl ChaosReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chaos: {} routes, {}/{} Ready, converged in {}, deleted in {}, {} operator kills, apiserver restart {}",
            self.routes,
            self.ready,
            self.routes,
            self.converged_in
                .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.deleted_in
                .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            self.kills,
            self.apiserver_restart
                .map_or("none".to_owned(), |d| format!(
                    "took {:.1} s",
                    d.as_secs_f64()
                )),
        )?;
        writeln!(
            f,
            "entries left: {}, objects left: {}, route keys created more than once: {}",
            self.entries_left,
            self.objects_left,
            self.duplicate_creates.len()
        )?;
        writeln!(f, "cloud calls (action code n):")?;
        for (a, c, n) in &self.calls {
            writeln!(f, "  {a} {c} {n}")?;
        }
        if self.violations.is_empty() {
            writeln!(f, "PASS: no violation")?;
        } else {
            for v in &self.violations {
                writeln!(f, "VIOLATION: {v}")?;
            }
        }
        write!(f, "logs: {}", self.work_dir.display())
    }
}

struct Chaos<'a> {
    opts: &'a ChaosOptions,
    cluster: &'a ControlPlane,
    client: &'a Client,
    op: Operator,
    start: Instant,
    next_kill: Instant,
    kills: u32,
    apiserver_restart: Option<Duration>,
    apiserver_due: Option<Instant>,
    violations: Vec<String>,
}

impl Chaos<'_> {
    /// One step of the disturbances: kill when due, restart the apiserver when due, notice an
    /// operator that died on its own.
    async fn tick(&mut self) -> Result<()> {
        if let Some(st) = self.op.exited() {
            self.violations
                .push(format!("the operator exited on its own ({st})"));
            self.op.restart()?;
        }
        let now = Instant::now();
        if now >= self.next_kill && self.opts.max_kills.is_none_or(|m| self.kills < m) {
            self.op.restart()?;
            self.kills += 1;
            self.next_kill = now + self.opts.kill_every;
            eprintln!(
                "[chaos] {:>5.0} s: operator killed (SIGKILL) and restarted ({})",
                self.start.elapsed().as_secs_f64(),
                self.kills
            );
        }
        if self.apiserver_due.is_some_and(|at| now >= at) {
            self.apiserver_due = None;
            eprintln!(
                "[chaos] {:>5.0} s: restarting kube-apiserver",
                self.start.elapsed().as_secs_f64()
            );
            let took = self.cluster.restart_apiserver(self.client).await?;
            self.apiserver_restart = Some(took);
            eprintln!(
                "[chaos] kube-apiserver back after {:.1} s",
                took.as_secs_f64()
            );
        }
        Ok(())
    }
}

/// The chaos run: converge under faults, kills and an apiserver restart, delete everything,
/// then check the invariants. Violations are in the report; `Err` means the harness itself
/// could not run.
pub async fn run_chaos(bins: &Binaries, opts: &ChaosOptions) -> Result<ChaosReport> {
    let work = work_dir("pbr-chaos")?;
    let (cluster, client) = start_cluster(bins, &work).await?;
    let ns = format!("chaos-{}", std::process::id());
    workload::create_namespace(&client, &ns).await?;
    let Stack {
        emu,
        op,
        api,
        tracker,
        objs,
        names,
    } = start_stack(
        bins,
        &cluster,
        &client,
        &ns,
        &work,
        opts.gateways,
        opts.routes,
        opts.update,
        &log_and_rate(&opts.log_level, opts.api_rate),
    )
    .await?;
    // Faults start now: the operator is up, no route exists yet.
    let slow_ms = u64::try_from(opts.slow.as_millis())?;
    emu.set_faults(&emulator::faults(opts.fault_rate, slow_ms))
        .await?;
    let start = Instant::now();
    let mut chaos = Chaos {
        opts,
        cluster: &cluster,
        client: &client,
        op,
        start,
        next_kill: start + opts.kill_every,
        kills: 0,
        apiserver_restart: None,
        apiserver_due: opts.apiserver_restart_at.map(|d| start + d),
        violations: Vec::new(),
    };
    let mut report = ChaosReport {
        routes: opts.routes,
        work_dir: work.clone(),
        ..Default::default()
    };
    eprintln!(
        "[chaos] {} routes over {} gateways (T = {:?}), {:.0}% faults, kill every {:?}",
        opts.routes,
        opts.gateways,
        opts.update,
        opts.fault_rate * 100.0,
        opts.kill_every
    );
    let creating = {
        let api = api.clone();
        let parallel = opts.parallel;
        tokio::spawn(async move { workload::create_all(&api, objs, parallel).await })
    };
    let mut last_report = Instant::now();
    loop {
        chaos.tick().await?;
        let (ready, _) = tracker.ready_of(&names);
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[chaos] {:>5.0} s: {ready}/{} Ready",
                start.elapsed().as_secs_f64(),
                names.len()
            );
            last_report = Instant::now();
        }
        if ready == names.len() && creating.is_finished() {
            report.converged_in = tracker.ready_of(&names).1.map(|l| l - start);
            break;
        }
        if start.elapsed() > opts.timeout {
            chaos.violations.push(format!(
                "only {ready}/{} routes reached Ready within {:?}",
                names.len(),
                opts.timeout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match creating.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => chaos
            .violations
            .push(format!("creating the routes failed: {e}")),
        Err(e) => chaos.violations.push(format!("create task: {e}")),
    }
    report.ready = tracker.ready_of(&names).0;
    // Before any deletion, every object must have been Ready once.
    let not_ready = names.len() - report.ready;
    if not_ready > 0 {
        chaos.violations.push(format!(
            "{not_ready} objects never reached Ready before deletion"
        ));
    }
    let calls_at_convergence = emulator::calls(&emu.counters().await?);

    eprintln!("[chaos] deleting every object");
    let del_start = Instant::now();
    let deadline = del_start + Duration::from_secs(60);
    loop {
        match api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
        {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("[chaos] delete collection: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow!("delete every object: {e}")),
        }
    }
    let mut last_check = Instant::now() - Duration::from_secs(2);
    let mut entries_left = usize::MAX;
    loop {
        chaos.tick().await?;
        if last_check.elapsed() >= Duration::from_secs(1) {
            entries_left = emu.entries().await?.len();
            last_check = Instant::now();
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "[chaos] {:>5.0} s: {} objects, {entries_left} cloud entries left",
                    start.elapsed().as_secs_f64(),
                    tracker.present()
                );
                last_report = Instant::now();
            }
        }
        if tracker.present() == 0 && entries_left == 0 {
            report.deleted_in = Some(del_start.elapsed());
            break;
        }
        if del_start.elapsed() > opts.timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The invariants.
    let entries = emu.entries().await?;
    report.entries_left = entries.len();
    if !entries.is_empty() {
        let sample: Vec<String> = entries
            .iter()
            .take(5)
            .map(|(gw, e)| {
                format!(
                    "{gw} {} {} {}",
                    e["RouteSource"], e["RouteDest"], e["NextHop"]
                )
            })
            .collect();
        chaos.violations.push(format!(
            "{} entries left in the cloud after deletion (e.g. {})",
            entries.len(),
            sample.join("; ")
        ));
    }
    report.objects_left = tracker.present();
    if report.objects_left > 0 {
        chaos.violations.push(format!(
            "{} objects still exist (finalizer not removed)",
            report.objects_left
        ));
    }
    let counters = emu.counters().await?;
    for c in counters["accepted_creates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if c["Count"].as_u64().unwrap_or(0) > 1 {
            report.duplicate_creates.push(format!(
                "{} {} {} {} x{}",
                c["VpnGatewayId"], c["RouteSource"], c["RouteDest"], c["NextHop"], c["Count"]
            ));
        }
    }
    if !report.duplicate_creates.is_empty() {
        chaos.violations.push(format!(
            "{} route keys created more than once: {}",
            report.duplicate_creates.len(),
            report.duplicate_creates.join("; ")
        ));
    }
    chaos.op.kill();
    for (what, text) in [
        ("operator", chaos.op.logs()),
        ("vpc-emulator", emu.logs()),
        (
            "kube-apiserver",
            std::fs::read_to_string(cluster.apiserver_log()).unwrap_or_default(),
        ),
    ] {
        let panics = text
            .lines()
            .filter(|l| l.contains("panicked at") || l.contains("panic:"))
            .count();
        if panics > 0 {
            chaos
                .violations
                .push(format!("{panics} panic lines in the {what} log"));
        }
    }
    report.kills = chaos.kills;
    report.apiserver_restart = chaos.apiserver_restart;
    if opts.apiserver_restart_at.is_some() && report.apiserver_restart.is_none() {
        chaos
            .violations
            .push("the apiserver restart did not happen (the run ended first)".to_owned());
    }
    report.violations = chaos.violations;
    report.calls = emulator::calls(&counters);
    let _ = calls_at_convergence;
    drop(tracker);
    drop(emu);
    drop(cluster);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn calls(list: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
        list.iter()
            .map(|(a, c, n)| ((*a).to_owned(), (*c).to_owned(), *n))
            .collect()
    }

    fn scenario(routes: usize, gateways: usize, api_rate: Option<f64>) -> Scenario {
        Scenario {
            label: "t".to_owned(),
            routes,
            gateways,
            update: Duration::from_secs(2),
            scheduler: true,
            api_rate,
            latency_probes: 0,
            timeout: Duration::from_secs(1),
            log_level: "info".to_owned(),
            parallel: 1,
        }
    }

    #[test]
    fn default_api_rate_is_the_operators() {
        let config = vpn_pbr_operator::config::Config::try_parse_from(["vpn-pbr-operator"])
            .expect("defaults parse");
        assert!((config.api_rate - OPERATOR_API_RATE).abs() < f64::EPSILON);
    }

    #[test]
    fn binding_bound_is_the_larger_bound() {
        // (routes, gateways, calls, rate) -> (gateway bound s, API bound s, binding)
        let table = [
            // The main run: 50 routes per gateway x 2 s vs 1900 calls at 20/s.
            ((1000, 20, 1900, None), (100.0, 95.0, Binding::Gateways)),
            // The scale run: 20 routes per gateway x 2 s vs 12000 calls at 20/s.
            ((10_000, 500, 12_000, None), (40.0, 600.0, Binding::Api)),
            // A tie binds on the gateways.
            ((100, 10, 200, Some(10.0)), (20.0, 20.0, Binding::Gateways)),
            // Uneven spread: the busiest gateway has 4 routes.
            ((7, 2, 0, Some(100.0)), (8.0, 0.0, Binding::Gateways)),
        ];
        for ((routes, gateways, n, rate), (gw, api, binding)) in table {
            let sc = scenario(routes, gateways, rate);
            let b = BindingBound::new(sc.physical_limit(), n, sc.api_rate());
            assert_eq!(
                b.gateways,
                Duration::from_secs_f64(gw),
                "{routes}/{gateways}"
            );
            assert_eq!(b.api, Duration::from_secs_f64(api), "{routes}/{gateways}");
            assert_eq!(b.binding(), binding, "{routes}/{gateways}");
            assert_eq!(b.bound(), b.gateways.max(b.api));
        }
        // A rate of zero does not panic: the API bound is unbounded.
        let b = BindingBound::new(Duration::from_secs(1), 5, 0.0);
        assert_eq!((b.api, b.binding()), (Duration::MAX, Binding::Api));
        // Before the run: one call per route at the rate, or the physical limit.
        assert_eq!(
            scenario(10_000, 500, None).lower_bound(),
            Duration::from_secs(500)
        );
        assert_eq!(
            scenario(1000, 20, None).lower_bound(),
            Duration::from_secs(100)
        );
    }

    #[test]
    fn refusals_and_mutations() {
        let c = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 4),
            ("DeleteVpnPbrRouteEntry", "TaskConflict", 1),
            ("DescribeVpnGateway", "Success", 3),
            ("DescribeVpnPbrRouteEntries", "Throttling", 2),
            ("ModifyVpnPbrRouteEntryWeight", "_dropped", 1),
            ("PublishVpnRouteEntry", "Success", 0),
        ]);
        assert_eq!(
            refusals(&c),
            calls(&[
                ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 4),
                ("DeleteVpnPbrRouteEntry", "TaskConflict", 1),
                ("DescribeVpnPbrRouteEntries", "Throttling", 2),
                ("ModifyVpnPbrRouteEntryWeight", "_dropped", 1),
            ])
        );
        assert_eq!(mutations(&c), 16);
        assert_eq!(mutations(&refusals(&c)), 6);
        assert_eq!(action_calls(&c, "CreateVpnPbrRouteEntry"), 14);
    }

    #[test]
    fn calls_since_keeps_the_new_calls() {
        let before = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("DescribeVpnGateway", "Success", 3),
        ]);
        let after = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("DescribeVpnGateway", "Success", 5),
            ("DescribeVpnPbrRouteEntries", "Success", 2),
        ]);
        assert_eq!(
            calls_since(&before, &after),
            calls(&[
                ("DescribeVpnGateway", "Success", 2),
                ("DescribeVpnPbrRouteEntries", "Success", 2),
            ])
        );
        assert!(calls_since(&after, &after).is_empty());
    }
}
