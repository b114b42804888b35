//! A small chaos run as part of `make test`: about 100 routes converge with 20 % injected cloud
//! faults, two operator kills (SIGKILL) and one apiserver restart; then every object is deleted
//! and the run checks zero cloud entries left, at most one accepted create per route key, no
//! panic in any log, and every object Ready before deletion. The full run is `make chaos`.
//! Fails (does not skip) when the control-plane binaries are missing.

mod support;

use std::time::Duration;

use vpn_pbr_harness::Binaries;
use vpn_pbr_harness::bench::{self, ChaosOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_chaos_run_converges_and_cleans_up() -> anyhow::Result<()> {
    // The operator of this package; the emulator and the tools from the workspace.
    let bins = Binaries {
        operator: support::operator_binary(),
        ..Binaries::locate()?
    };
    let opts = ChaosOptions {
        routes: 100,
        gateways: 10,
        update: Duration::from_millis(400),
        fault_rate: 0.2,
        slow: Duration::from_millis(1000),
        kill_every: Duration::from_secs(4),
        max_kills: Some(2),
        apiserver_restart_at: Some(Duration::from_secs(6)),
        timeout: Duration::from_secs(50),
        api_rate: None,
        log_level: "info,vpn_pbr_operator=debug".to_owned(),
        parallel: 16,
    };
    let report = bench::run_chaos(&bins, &opts).await?;
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.kills, 2, "{report}");
    Ok(())
}
