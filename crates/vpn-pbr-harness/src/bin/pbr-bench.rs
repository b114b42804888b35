//! `pbr-bench`: the benchmark (`bench`) and the chaos run (`chaos`) of docs/benchmarks.md; see
//! the `vpn_pbr_harness::bench` module and docs/benchmarks.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use vpn_pbr_harness::{
    Binaries, Tools,
    bench::{self, ChaosOptions, Scenario},
    report,
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
    /// Convergence time, calls, latency and memory, with the scheduler and the baseline.
    Bench(BenchArgs),
    /// Faults, kills and an apiserver restart during convergence; then delete and check.
    Chaos(ChaosArgs),
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?}: seconds expected"))
}

#[derive(Args)]
struct BenchArgs {
    /// Routes (N).
    #[arg(short = 'n', long, default_value_t = 1000)]
    routes: usize,
    /// Gateways (G).
    #[arg(short = 'g', long, default_value_t = 20)]
    gateways: usize,
    /// Gateway update time T, seconds.
    #[arg(short = 't', long, default_value = "2", value_parser = secs)]
    update: Duration,
    /// Skip the baseline (--gateway-scheduler false) run.
    #[arg(long)]
    no_baseline: bool,
    /// Routes of the memory run (0: none).
    #[arg(long, default_value_t = 5000)]
    memory_routes: usize,
    /// Gateways of the memory run.
    #[arg(long, default_value_t = 100)]
    memory_gateways: usize,
    /// --api-rate of the memory run.
    #[arg(long, default_value_t = 100.0)]
    memory_api_rate: f64,
    /// Routes created one at a time on idle gateways, for apply -> first call.
    #[arg(long, default_value_t = 100)]
    latency_probes: usize,
    /// Concurrent creates.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Give up on convergence after this many times the physical limit (plus 60 s).
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
}

#[derive(Args)]
struct ChaosArgs {
    #[arg(short = 'n', long, default_value_t = 1000)]
    routes: usize,
    #[arg(short = 'g', long, default_value_t = 20)]
    gateways: usize,
    /// Gateway update time T, seconds.
    #[arg(short = 't', long, default_value = "2", value_parser = secs)]
    update: Duration,
    /// Share of cloud requests that fail.
    #[arg(long, default_value_t = 0.2)]
    fault_rate: f64,
    /// Delay of a slow answer, seconds.
    #[arg(long, default_value = "2", value_parser = secs)]
    slow: Duration,
    /// Kill (SIGKILL) and restart the operator every this many seconds.
    #[arg(long, default_value = "15", value_parser = secs)]
    kill_every: Duration,
    /// At most this many kills.
    #[arg(long)]
    max_kills: Option<u32>,
    /// Restart the apiserver this many seconds after the first create (negative: never).
    #[arg(long, default_value_t = 30.0, allow_hyphen_values = true)]
    apiserver_restart_at: f64,
    /// Bound of convergence and of deletion, seconds.
    #[arg(long, default_value = "900", value_parser = secs)]
    timeout: Duration,
    #[arg(long)]
    api_rate: Option<f64>,
    #[arg(long, default_value = "info")]
    log_level: String,
    #[arg(long, default_value_t = 32)]
    parallel: usize,
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
    match cli.cmd {
        Cmd::Bench(a) => bench_cmd(&bins, a).await,
        Cmd::Chaos(a) => {
            let opts = ChaosOptions {
                routes: a.routes,
                gateways: a.gateways,
                update: a.update,
                fault_rate: a.fault_rate,
                slow: a.slow,
                kill_every: a.kill_every,
                max_kills: a.max_kills,
                apiserver_restart_at: (a.apiserver_restart_at >= 0.0)
                    .then(|| Duration::from_secs_f64(a.apiserver_restart_at)),
                timeout: a.timeout,
                api_rate: a.api_rate,
                log_level: a.log_level,
                parallel: a.parallel,
            };
            let rep = bench::run_chaos(&bins, &opts).await?;
            println!("{rep}");
            if !rep.passed() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn bench_cmd(bins: &Binaries, a: BenchArgs) -> Result<()> {
    let work = bench::work_dir("pbr-bench")?;
    eprintln!("work dir (logs): {}", work.display());
    let (cluster, client) = bench::start_cluster(bins, &work).await?;
    let scenario = |label: &str, routes: usize, gateways: usize, scheduler: bool| {
        let mut sc = Scenario {
            label: label.to_owned(),
            routes,
            gateways,
            update: a.update,
            scheduler,
            api_rate: None,
            latency_probes: a.latency_probes,
            timeout: Duration::ZERO,
            log_level: a.log_level.clone(),
            parallel: a.parallel,
        };
        sc.timeout = sc.physical_limit().mul_f64(a.timeout_factor) + Duration::from_secs(60);
        sc
    };
    let main = bench::run_scenario(
        &cluster,
        &client,
        bins,
        &scenario("scheduler", a.routes, a.gateways, true),
        &work,
    )
    .await?;
    let baseline = if a.no_baseline {
        None
    } else {
        Some(
            bench::run_scenario(
                &cluster,
                &client,
                bins,
                &scenario("baseline", a.routes, a.gateways, false),
                &work,
            )
            .await?,
        )
    };
    let memory = if a.memory_routes == 0 {
        None
    } else {
        let mut sc = scenario("memory", a.memory_routes, a.memory_gateways, true);
        sc.api_rate = Some(a.memory_api_rate);
        sc.latency_probes = 0;
        Some(bench::run_scenario(&cluster, &client, bins, &sc, &work).await?)
    };
    let doc = report::render(&a.command, &main, baseline.as_ref(), memory.as_ref(), None);
    println!("{doc}");
    if let Some(out) = &a.out {
        report::write(out, &a.command, &main, baseline.as_ref(), memory.as_ref())?;
        eprintln!("wrote {}", out.display());
    }
    drop(cluster);
    if a.strict {
        let p99 = main.percentile(0.99).unwrap_or(f64::INFINITY);
        let rss_ok = memory
            .as_ref()
            .is_none_or(|m| (m.usage.peak_rss_kib as f64 / 1024.0) < report::TARGET_RSS_MIB);
        if !(main.converged
            && main.ratio() <= report::TARGET_RATIO
            && main.calls_per_route() <= report::TARGET_CALLS_PER_ROUTE
            && p99 < report::TARGET_P99_MS
            && rss_ok)
        {
            eprintln!("a benchmark target was missed");
            std::process::exit(1);
        }
    }
    Ok(())
}
