//! `vpn-pbr-operator`: parses the command line; without a subcommand runs the operator (see
//! `app`), with one runs that tool (see `cli`).

use std::process::ExitCode;

use vpn_pbr_operator::cli::{self, Cli};
use vpn_pbr_operator::{app, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
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
