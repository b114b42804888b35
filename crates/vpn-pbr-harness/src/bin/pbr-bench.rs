//! `pbr-bench`: the benchmark (`bench`) and the chaos run (`chaos`) of docs/benchmarks.md; see
//! the `vpn_pbr_harness::bench` module and docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use vpn_pbr_harness::{
    Binaries, Tools,
    bench::{
        self, AccountCredentials, AccountsScenario, ChaosOptions, Scenario, SettleCriterion, secs,
    },
    report::{self, Header, Results},
};

#[derive(Parser)]
#[command(
    name = "pbr-bench",
    about = "Benchmark and chaos runs of vpn-pbr-operator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    bins: BinArgs,
}

#[derive(Args)]
struct BinArgs {
    /// Operator binary.
    #[arg(long, global = true, default_value = "target/release/vpn-pbr-operator")]
    operator: PathBuf,
    /// Emulator binary.
    #[arg(long, global = true, default_value = "target/release/vpc-emulator")]
    emulator: PathBuf,
    /// Repository root (hack/cluster.sh, crds/).
    #[arg(long, global = true, default_value = ".")]
    repo: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// The runs of docs/benchmarks.md: main (scheduler), baseline and economy convergence,
    /// scale, large, restart, accounts; `--only` picks some of them.
    Bench(Box<BenchArgs>),
    /// Faults, kills and an apiserver restart during convergence; then delete and check.
    Chaos(ChaosOptions),
}

/// The runs of `pbr-bench bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Run {
    /// N routes over G gateways with the gateway scheduler, plus latency probes.
    Main,
    /// The same with `--gateway-scheduler false`.
    Baseline,
    /// The main run's workload with `--read-back-every` at its economy end
    /// (--economy-read-back-every): calls per route, time to Ready.
    Economy,
    /// --scale-routes over --scale-gateways at the default API rate: binding bound, memory, CPU,
    /// single changes on --scale-quiet-gateways during the burst.
    Scale,
    /// --large-routes over --large-gateways at --large-api-rate: binding bound, memory.
    Large,
    /// --restart-routes Ready routes, operator stopped (SIGTERM) and started again.
    Restart,
    /// Several accounts (--accounts-rates), each bound by its own API rate.
    Accounts,
}

#[derive(Args)]
struct BenchArgs {
    /// Runs to make, comma-separated (default: all, in this order): main, baseline, economy,
    /// scale, large, restart, accounts.
    #[arg(long, value_delimiter = ',', default_values = ["main", "baseline", "economy", "scale", "large", "restart", "accounts"])]
    only: Vec<Run>,
    /// Routes (N) of the main, baseline and economy runs.
    #[arg(short = 'n', long, default_value_t = 1000)]
    routes: usize,
    /// Gateways (G) of the main, baseline and economy runs.
    #[arg(short = 'g', long, default_value_t = 20)]
    gateways: usize,
    /// Gateway update time T of every run, seconds.
    #[arg(short = 't', long, default_value = "2", value_parser = secs)]
    update: Duration,
    /// Give up on the baseline's convergence after this many seconds.
    #[arg(long, default_value = "240", value_parser = secs)]
    baseline_timeout: Duration,
    /// Economy run: the operator's --read-back-every (1..=1000; its economy end by default:
    /// fewest list calls, routes Ready later).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    economy_read_back_every: u16,
    /// Routes of the scale run.
    #[arg(long, default_value_t = 10_000)]
    scale_routes: usize,
    /// Gateways of the scale run.
    #[arg(long, default_value_t = 500)]
    scale_gateways: usize,
    /// --api-rate of the scale run (default: the operator's default).
    #[arg(long)]
    scale_api_rate: Option<f64>,
    /// Scale run: gateways beyond --scale-gateways that no route of the burst uses; while the
    /// burst converges the harness creates one route at a time on them (round robin) and
    /// measures apply -> create accepted and apply -> Ready of each. 0: none.
    #[arg(long, default_value_t = 20)]
    scale_quiet_gateways: usize,
    /// Scale run: create one such single change every this many seconds, from the first
    /// create of the burst until it has converged.
    #[arg(long, default_value = "10", value_parser = secs)]
    scale_single_every: Duration,
    /// Concurrent creates of the scale and large runs (the harness must not be its bottleneck).
    #[arg(long, default_value_t = 64)]
    scale_parallel: usize,
    /// Routes of the large run.
    #[arg(long, default_value_t = 50_000)]
    large_routes: usize,
    /// Gateways of the large run.
    #[arg(long, default_value_t = 2500)]
    large_gateways: usize,
    /// --api-rate of the large run (higher than the default, to keep the run short).
    #[arg(long, default_value_t = 100.0)]
    large_api_rate: f64,
    /// Scale and large runs: read the operator's RSS again this many seconds after
    /// convergence (after the burst settled).
    #[arg(long, default_value = "30", value_parser = secs)]
    settle_wait: Duration,
    /// Routes of the restart run.
    #[arg(long, default_value_t = 5000)]
    restart_routes: usize,
    /// Gateways of the restart run.
    #[arg(long, default_value_t = 100)]
    restart_gateways: usize,
    /// --api-rate of both operators of the restart run (only to set up faster).
    #[arg(long, default_value_t = 100.0)]
    restart_api_rate: f64,
    /// Restart run: settled once no cloud call came for this many seconds (and every route
    /// was reconciled).
    #[arg(long, default_value = "5", value_parser = secs)]
    restart_quiet: Duration,
    /// Restart run: give up waiting for the operator to settle after this many seconds.
    #[arg(long, default_value = "300", value_parser = secs)]
    restart_timeout: Duration,
    /// Accounts run: each account's API rate in the emulator's flow control, comma-separated
    /// (one account each).
    #[arg(long, value_delimiter = ',', default_values = ["10", "20", "40"])]
    accounts_rates: Vec<f64>,
    /// Accounts run: each account gets rate x this many routes (the same bound for all; long
    /// enough that the start, learning each account's gateway update time, and the end, the
    /// last changes' update and read-back, are a small part).
    #[arg(long, default_value_t = 60.0)]
    accounts_seconds: f64,
    /// Accounts run: routes per gateway in every account.
    #[arg(long, default_value_t = 10)]
    accounts_routes_per_gateway: usize,
    /// Accounts run: the VpnAccounts' credentials.
    #[arg(long, value_enum, default_value = "assume-role")]
    accounts_credentials: AccountCredentials,
    /// Accounts run: the operator's --api-rate (default: the highest account rate).
    #[arg(long)]
    accounts_api_rate: Option<f64>,
    /// Routes created one at a time on idle gateways after the main and baseline runs, for
    /// apply -> first call.
    #[arg(long, default_value_t = 100)]
    latency_probes: usize,
    /// Concurrent creates of the main, baseline, economy and restart runs.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Give up on convergence after this many times the lower bound (the physical limit, or
    /// one call per route at the API rate when longer), plus 60 s.
    #[arg(long, default_value_t = 4.0)]
    timeout_factor: f64,
    /// Operator --log-level.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Write the results to this Markdown file (docs/benchmarks.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command shown in the document.
    #[arg(long, default_value = "make bench")]
    command: String,
    /// Exit non-zero when a benchmark target is missed.
    #[arg(long)]
    strict: bool,
    /// End the main, baseline, economy, scale and large runs with SIGTERM and wait this many
    /// seconds for the operator to exit (a `heap-profile` build writes dhat-heap.json then); 0:
    /// SIGKILL.
    #[arg(long, default_value = "0", value_parser = secs)]
    stop_grace: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let bins = Binaries {
        operator: std::fs::canonicalize(&cli.bins.operator)?,
        emulator: std::fs::canonicalize(&cli.bins.emulator)?,
        repo: std::fs::canonicalize(&cli.bins.repo)?,
        tools: Tools::from_env()?,
    };
    let run = async {
        match cli.cmd {
            Cmd::Bench(a) => bench_cmd(&bins, *a).await,
            Cmd::Chaos(a) => chaos_cmd(&bins, a).await,
        }
    };
    tokio::select! {
        out = run => out,
        // Returning drops the run: its operator, emulator and control plane stop with it
        // (else a later run on the machine competes with them).
        signal = stop_signal() => anyhow::bail!("stopped by {signal}; its processes were stopped"),
    }
}

/// The first SIGTERM or SIGINT.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

async fn chaos_cmd(bins: &Binaries, opts: ChaosOptions) -> Result<()> {
    let rep = bench::run_chaos(bins, &opts).await?;
    println!("{rep}");
    if !rep.passed() {
        std::process::exit(1);
    }
    Ok(())
}

async fn bench_cmd(bins: &Binaries, a: BenchArgs) -> Result<()> {
    let work = bench::work_dir("pbr-bench")?;
    eprintln!("work dir (logs): {}", work.display());
    let (cluster, client) = bench::start_cluster(bins, &work).await?;
    let scenario = |label: &str, routes: usize, gateways: usize| {
        let mut sc = Scenario {
            label: label.to_owned(),
            routes,
            gateways,
            update: a.update,
            scheduler: true,
            api_rate: None,
            read_back_every: None,
            latency_probes: 0,
            quiet_gateways: 0,
            single_every: a.scale_single_every,
            timeout: Duration::ZERO,
            log_level: a.log_level.clone(),
            parallel: a.parallel,
            stop_grace: a.stop_grace,
            settle_wait: Duration::ZERO,
        };
        sc.timeout = sc.lower_bound().mul_f64(a.timeout_factor) + Duration::from_secs(60);
        sc
    };
    // The scale and large runs: many routes, created many at a time, RSS read after settling.
    let big = |label: &str, routes: usize, gateways: usize, api_rate: Option<f64>| {
        let mut sc = scenario(label, routes, gateways);
        sc.api_rate = api_rate;
        sc.parallel = a.scale_parallel;
        sc.settle_wait = a.settle_wait;
        sc.timeout = sc.lower_bound().mul_f64(a.timeout_factor) + Duration::from_secs(60);
        sc
    };
    let mut res = Results::default();
    for run in &a.only {
        match run {
            Run::Main => {
                let mut sc = scenario("scheduler", a.routes, a.gateways);
                sc.latency_probes = a.latency_probes;
                res.main = Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?);
            }
            Run::Baseline => {
                let mut sc = scenario("baseline", a.routes, a.gateways);
                sc.scheduler = false;
                sc.latency_probes = a.latency_probes;
                sc.timeout = a.baseline_timeout;
                res.baseline =
                    Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?);
            }
            Run::Economy => {
                let mut sc = scenario("economy", a.routes, a.gateways);
                sc.read_back_every = Some(a.economy_read_back_every);
                res.economy = Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?);
            }
            Run::Scale => {
                let mut sc = big("scale", a.scale_routes, a.scale_gateways, a.scale_api_rate);
                sc.quiet_gateways = a.scale_quiet_gateways;
                res.scale = Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?);
            }
            Run::Large => {
                let sc = big(
                    "large",
                    a.large_routes,
                    a.large_gateways,
                    Some(a.large_api_rate),
                );
                res.large = Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?);
            }
            Run::Restart => {
                let mut sc = scenario("restart", a.restart_routes, a.restart_gateways);
                sc.api_rate = Some(a.restart_api_rate);
                sc.timeout = sc.lower_bound().mul_f64(a.timeout_factor) + Duration::from_secs(60);
                let crit = SettleCriterion {
                    min_reconciles: a.restart_routes as f64,
                    quiet: a.restart_quiet,
                    timeout: a.restart_timeout,
                };
                res.restart =
                    Some(bench::run_restart(&cluster, &client, bins, &sc, crit, &work).await?);
            }
            Run::Accounts => {
                let sc = AccountsScenario {
                    label: "accounts".to_owned(),
                    rates: a.accounts_rates.clone(),
                    seconds: a.accounts_seconds,
                    routes_per_gateway: a.accounts_routes_per_gateway,
                    update: a.update,
                    credentials: a.accounts_credentials,
                    api_rate: a.accounts_api_rate,
                    parallel: a.parallel,
                    log_level: a.log_level.clone(),
                    timeout_factor: a.timeout_factor,
                    stop_grace: a.stop_grace,
                };
                res.accounts =
                    Some(bench::run_accounts(&cluster, &client, bins, &sc, &work).await?);
            }
        }
    }
    let header = Header::now(&a.command, &bins.repo);
    println!("{}", report::render(&header, &res, None));
    if let Some(out) = &a.out {
        report::write(out, &header, &res)?;
        eprintln!("wrote {}", out.display());
    }
    drop(cluster);
    if a.strict && !res.all_met() {
        eprintln!("a benchmark target was missed");
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn bench_flags_parse() {
        Cli::command().debug_assert();
        const ALL: &[Run] = &[
            Run::Main,
            Run::Baseline,
            Run::Economy,
            Run::Scale,
            Run::Large,
            Run::Restart,
            Run::Accounts,
        ];
        // flags after `bench` -> (runs, economy's --read-back-every); none: refused
        type Parsed = Option<(&'static [Run], u16)>;
        let table: [(&[&str], Parsed); 5] = [
            (&[], Some((ALL, 1000))),
            (
                &["--only", "economy", "--economy-read-back-every", "16"],
                Some((&[Run::Economy], 16)),
            ),
            (&["--economy-read-back-every", "1"], Some((ALL, 1))),
            (&["--economy-read-back-every", "0"], None),
            (&["--economy-read-back-every", "1001"], None),
        ];
        for (flags, want) in table {
            let got = Cli::try_parse_from(["pbr-bench", "bench"].iter().chain(flags))
                .ok()
                .and_then(|cli| match cli.cmd {
                    Cmd::Bench(a) => Some((a.only, a.economy_read_back_every)),
                    Cmd::Chaos(_) => None,
                });
            assert_eq!(
                got.as_ref().map(|(only, n)| (only.as_slice(), *n)),
                want,
                "{flags:?}"
            );
        }
    }
}
