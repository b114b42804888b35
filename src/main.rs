//! `vpn-pbr-operator`: parses the command line; without a subcommand runs the operator (see
//! `app`), with one runs that tool (see `cli`).

use std::process::ExitCode;

use vpn_pbr_operator::cli::{self, Cli};
use vpn_pbr_operator::{app, telemetry};

// Only with `--features heap-profile`: dhat counts every allocation (see docs/benchmarks.md).
#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> ExitCode {
    // One thread runs every task. The operator mostly waits on the cloud and the API server
    // (about 4 ms of CPU per route at 10,000 routes); with a thread per core, most wake-ups
    // crossed threads and the context switches cost more CPU than the work they woke
    // (docs/benchmarks.md, CPU profile).
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("vpn-pbr-operator: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    // Dropped when `main` returns, after the graceful SIGTERM shutdown of `app::run`; the drop
    // writes dhat-heap.json in the working directory.
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::new_heap();
    let Cli { operator, command } = cli::parse();
    // kube and reqwest both use rustls; pick the one crypto provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(command) = command {
        return cli::run(command).await;
    }
    let config = operator;
    if let Err(e) = telemetry::init(config.log_format, &config.log_level) {
        eprintln!("vpn-pbr-operator: {e}");
        return ExitCode::from(2);
    }
    match app::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("vpn-pbr-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
