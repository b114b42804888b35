//! `vpn-pbr-operator`: parses flags and runs the operator (see `app`).

use std::process::ExitCode;

use clap::Parser;
use vpn_pbr_operator::{app, config::Config, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    // kube and reqwest both use rustls; pick the one crypto provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
