//! `vpc-emulator`: serves the emulated Alibaba Cloud VPC endpoint. Thin wrapper: parse the
//! command line, load the config, bind, print the address, serve until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::AsyncWriteExt as _;
use vpc_emulator::{Config, Emulator, SystemClock, admin_router, router};

#[derive(Debug, Parser)]
#[command(
    name = "vpc-emulator",
    about = "Local emulator of the Alibaba Cloud VPC API (VPN policy-based routes)"
)]
struct Cli {
    /// Address of the API (and, without --admin-listen, the admin API). Port 0 picks a free port.
    #[arg(long, env = "VPC_EMULATOR_LISTEN", default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Serve the admin API (/_emulator/) only on this address instead of --listen.
    #[arg(long, env = "VPC_EMULATOR_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// YAML config file (see docs/emulator.md).
    #[arg(long, env = "VPC_EMULATOR_CONFIG")]
    config: String,
    /// Keep the gateways and routes in this JSON file across restarts.
    #[arg(long, env = "VPC_EMULATOR_STATE_FILE")]
    state_file: Option<String>,
    /// Log format on stderr: `json` (structured, one object per line) or `text`.
    #[arg(long, env = "VPC_EMULATOR_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format == "json");
    let config = Config::load(&cli.config)?;
    let world = match &cli.state_file {
        Some(path) => Emulator::load_state(path)?,
        None => None,
    };
    if world.is_some() {
        tracing::info!(state_file = ?cli.state_file, "restored state");
    }
    let emu = Arc::new(Emulator::new(config, Arc::new(SystemClock), world));

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr()?;
    let admin = match cli.admin_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a}"))?,
        ),
        None => None,
    };
    // Contract with scripts and tests: the first stdout line names the address.
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("listening on http://{addr}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    tracing::info!(%addr, admin = ?admin.as_ref().and_then(|l| l.local_addr().ok()), "vpc-emulator started");

    let shutdown = tokio_util::sync::CancellationToken::new();
    let main_server = axum::serve(listener, router(emu.clone(), admin.is_none()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin_server = admin.map(|l| {
        axum::serve(l, admin_router(emu.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    });
    let saver = cli
        .state_file
        .clone()
        .map(|path| tokio::spawn(save_periodically(emu.clone(), path)));

    let servers = async {
        match admin_server {
            Some(a) => tokio::try_join!(main_server.into_future(), a.into_future()).map(|_| ()),
            None => main_server.await,
        }
    };
    tokio::select! {
        r = servers => r?,
        () = stop_requested() => {
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    }
    if let Some(s) = saver {
        s.abort();
    }
    if let Some(path) = &cli.state_file {
        emu.save_state(path)?;
        tracing::info!(state_file = %path, "state saved");
    }
    Ok(())
}

/// Writes the state file once a second when something changed.
async fn save_periodically(emu: Arc<Emulator>, path: String) {
    let mut saved = emu.generation();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let current = emu.generation();
        if current != saved {
            match emu.save_state(&path) {
                Ok(()) => saved = current,
                Err(e) => tracing::warn!(error = %e, "saving state failed"),
            }
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGTERM or SIGINT.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
