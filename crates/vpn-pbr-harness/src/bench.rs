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

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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

    pub fn total_calls(&self) -> u64 {
        self.calls.iter().map(|c| c.2).sum()
    }

    pub fn calls_per_route(&self) -> f64 {
        self.total_calls() as f64 / self.scenario.routes.max(1) as f64
    }

    /// Calls of one action, all codes.
    pub fn action_calls(&self, action: &str) -> u64 {
        self.calls
            .iter()
            .filter(|c| c.0 == action)
            .map(|c| c.2)
            .sum()
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

/// Runs one scenario on `cluster` in a namespace of its own, with its own emulator and
/// operator process.
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

pub async fn run_scenario(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &Scenario,
    work: &Path,
) -> Result<ScenarioResult> {
    let ns = format!("bench-{}-{}", sc.label, std::process::id());
    workload::create_namespace(client, &ns).await?;
    let dir = work.join(&sc.label);
    std::fs::create_dir_all(&dir)?;
    let mut extra = vec!["--gateway-scheduler".to_owned(), sc.scheduler.to_string()];
    extra.extend(log_and_rate(&sc.log_level, sc.api_rate));
    let Stack {
        emu,
        mut op,
        api,
        tracker,
        objs,
        names,
    } = start_stack(
        bins,
        cluster,
        client,
        &ns,
        &dir,
        sc.gateways,
        sc.routes,
        sc.update,
        &extra,
    )
    .await?;
    eprintln!(
        "[{}] creating {} routes over {} gateways (T = {:?}, scheduler {})",
        sc.label, sc.routes, sc.gateways, sc.update, sc.scheduler
    );
    let t0 = Instant::now();
    workload::create_all(&api, objs, sc.parallel).await?;
    let create_time = t0.elapsed();
    let mut last_report = Instant::now();
    let converged = tracker
        .wait(sc.timeout.saturating_sub(t0.elapsed()), |t| {
            let n = t.ready_of(&names).0;
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
    let (ready, last) = tracker.ready_of(&names);
    let wall = match (converged, last) {
        (true, Some(l)) => l.saturating_duration_since(t0),
        _ => t0.elapsed(),
    };
    let calls = emulator::calls(&emu.counters().await?);
    let cpu_at_convergence = op.usage().map(|u| u.cpu).unwrap_or_default();
    let reconciles = op
        .metrics()
        .await
        .ok()
        .and_then(|m| sum_metric(&m, "vpn_pbr_reconciles_total"));
    eprintln!(
        "[{}] {} in {:.1} s ({ready}/{} Ready), ratio {:.3}",
        sc.label,
        if converged {
            "converged"
        } else {
            "NOT converged"
        },
        wall.as_secs_f64(),
        sc.routes,
        wall.as_secs_f64() / sc.physical_limit().as_secs_f64()
    );

    // Apply -> first cloud call on idle gateways: one route at a time, round robin over the
    // gateways, each gateway's previous change at least T + 0.5 s old.
    let mut latencies_ms = Vec::new();
    let mut latency_missing = 0;
    if sc.latency_probes > 0 {
        tokio::time::sleep(sc.update + Duration::from_millis(500)).await;
        let gap = ((sc.update + Duration::from_millis(500)) / u32::try_from(sc.gateways.max(1))?)
            .max(Duration::from_millis(50));
        let mut probes = Vec::new();
        let start = Instant::now();
        for k in 0..sc.latency_probes {
            let obj = workload::route(sc.routes + k, sc.gateways)?;
            let applied = epoch_ms();
            workload::create_one(&api, &obj).await?;
            probes.push((obj, applied));
            tokio::time::sleep_until(start + gap * u32::try_from(k + 1)?).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let entries = emu.entries().await?;
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
                latency_missing = missing;
                latencies_ms = found.into_iter().flatten().collect();
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        latencies_ms.sort_by(f64::total_cmp);
        eprintln!(
            "[{}] apply -> create accepted: p50 {:?} ms, p99 {:?} ms ({} probes, {latency_missing} missing)",
            sc.label,
            percentile(&latencies_ms, 0.5),
            percentile(&latencies_ms, 0.99),
            latencies_ms.len()
        );
    }
    let usage = op.usage().unwrap_or_default();
    op.kill();
    drop(tracker);
    drop(emu);
    Ok(ScenarioResult {
        scenario: sc.clone(),
        ready,
        converged,
        wall,
        create_time,
        calls,
        usage,
        cpu_at_convergence,
        latencies_ms,
        latency_missing,
        reconciles,
        operator_log: op.log.clone(),
    })
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
