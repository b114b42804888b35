//! The chaos run: converge under cloud faults, operator kills and an apiserver restart, delete
//! everything, then check the invariants ([`ChaosOptions`] in, [`ChaosReport`] out).

mod disturb;
mod invariants;
mod report;

pub use report::ChaosReport;

use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Args;
use kube::api::{Api, DeleteParams, ListParams};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use vpn_pbr_operator::api::v1alpha1::VpnPbrRoute;

use super::secs;
use super::stack::{log_and_rate, start_cluster, start_stack, work_dir};
use crate::emulator::{self, Emulator};
use crate::tools::Binaries;
use crate::workload::{self, Tracker};
use disturb::Chaos;

/// Settings of a chaos run: also the command line of `pbr-bench chaos` (hence the defaults and
/// the help in seconds).
#[derive(Clone, Debug, Args)]
pub struct ChaosOptions {
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub routes: usize,
    /// Gateways the routes are spread over: 8 gives 125 routes per gateway, so every list of
    /// a gateway's entries takes three pages (50 a page), raced by the changes of the others.
    #[arg(short = 'g', long, default_value_t = 8)]
    pub gateways: usize,
    /// Gateway update time T, seconds.
    #[arg(short = 't', long, default_value = "2", value_parser = secs)]
    pub update: Duration,
    /// Share of cloud requests that fail.
    // All kinds: busy, throttled, 5xx, drop, slow.
    #[arg(long, default_value_t = 0.2)]
    pub fault_rate: f64,
    /// Delay of a slow answer, seconds.
    #[arg(long, default_value = "2", value_parser = secs)]
    pub slow: Duration,
    /// Kill (SIGKILL) and restart the operator every this many seconds.
    #[arg(long, default_value = "15", value_parser = secs)]
    pub kill_every: Duration,
    /// At most this many kills.
    // Unbounded when unset.
    #[arg(long)]
    pub max_kills: Option<u32>,
    /// Restart the apiserver this many seconds after the first create (negative: never).
    // The full path keeps clap from making the flag optional: its default restarts, and
    // `None` is what a negative value parses to.
    #[arg(long, default_value = "30", allow_hyphen_values = true, value_parser = secs_or_never)]
    pub apiserver_restart_at: std::option::Option<Duration>,
    /// Bound of convergence and of deletion, seconds.
    #[arg(long, default_value = "900", value_parser = secs)]
    pub timeout: Duration,
    #[arg(long)]
    pub api_rate: Option<f64>,
    #[arg(long, default_value = "info")]
    pub log_level: String,
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
}

/// `--apiserver-restart-at`: seconds, or never when negative.
fn secs_or_never(s: &str) -> Result<Option<Duration>, String> {
    match s.parse::<f64>() {
        Ok(v) if v < 0.0 => Ok(None),
        _ => secs(s).map(Some),
    }
}

/// The chaos run: converge under faults, kills and an apiserver restart, delete everything,
/// then check the invariants. Violations are in the report; `Err` means the harness itself
/// could not run.
pub async fn run_chaos(bins: &Binaries, opts: &ChaosOptions) -> Result<ChaosReport> {
    let work = work_dir("pbr-chaos")?;
    let (cluster, client) = start_cluster(bins, &work).await?;
    let ns = format!("chaos-{}", std::process::id());
    let mut stack = start_stack(
        bins,
        &cluster,
        &client,
        &ns,
        &work,
        opts.gateways,
        0,
        opts.routes,
        opts.update,
        &log_and_rate(&opts.log_level, opts.api_rate),
    )
    .await?;
    let objs = std::mem::take(&mut stack.objs);
    let (emu, api, tracker, names) = (&stack.emu, &stack.api, &stack.tracker, &stack.names);
    // Faults start now: the operator is up, no route exists yet.
    let slow_ms = u64::try_from(opts.slow.as_millis())?;
    emu.set_faults(&emulator::faults(opts.fault_rate, slow_ms))
        .await?;
    let mut chaos = Chaos::new(opts, &cluster, &client, stack.op);
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
    report.converged_in = converge(&mut chaos, tracker, names, creating).await?;
    report.ready = tracker.ready_of(names).0;
    // Before any deletion, every object must have been Ready once.
    let not_ready = names.len() - report.ready;
    if not_ready > 0 {
        chaos.violations.push(format!(
            "{not_ready} objects never reached Ready before deletion"
        ));
    }
    let calls_at_convergence = emulator::calls(&emu.counters().await?);

    report.deleted_in = delete_all(&mut chaos, api, emu, tracker).await?;

    // The invariants.
    let entries = emu.entries().await?;
    report.entries_left = entries.len();
    chaos.violations.extend(invariants::entries_left(&entries));
    report.objects_left = tracker.present();
    if report.objects_left > 0 {
        chaos.violations.push(format!(
            "{} objects still exist (finalizer not removed)",
            report.objects_left
        ));
    }
    let counters = emu.counters().await?;
    report.duplicate_creates = invariants::duplicate_creates(&counters);
    if !report.duplicate_creates.is_empty() {
        chaos.violations.push(format!(
            "{} route keys created more than once: {}",
            report.duplicate_creates.len(),
            report.duplicate_creates.join("; ")
        ));
    }
    chaos.op.kill();
    chaos.violations.extend(invariants::panics([
        ("operator", chaos.op.logs()),
        ("vpc-emulator", emu.logs()),
        (
            "kube-apiserver",
            std::fs::read_to_string(cluster.apiserver_log()).unwrap_or_default(),
        ),
    ]));
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
    drop(stack.tracker);
    drop(stack.emu);
    drop(cluster);
    Ok(report)
}

/// Waits, the disturbances going on, until every route of `names` has been Ready and the
/// creates are done, at most the run's timeout (a violation); returns when the last route
/// became Ready, from the start of the run.
async fn converge(
    chaos: &mut Chaos<'_>,
    tracker: &Tracker,
    names: &[String],
    creating: JoinHandle<Result<()>>,
) -> Result<Option<Duration>> {
    let mut converged_in = None;
    loop {
        chaos.tick().await?;
        let (ready, _) = tracker.ready_of(names);
        chaos
            .progress
            .every_10s(|| format!("{ready}/{} Ready", names.len()));
        if ready == names.len() && creating.is_finished() {
            converged_in = tracker.ready_of(names).1.map(|l| l - chaos.start);
            break;
        }
        if chaos.start.elapsed() > chaos.opts.timeout {
            chaos.violations.push(format!(
                "only {ready}/{} routes reached Ready within {:?}",
                names.len(),
                chaos.opts.timeout
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
    Ok(converged_in)
}

/// Deletes every object (retrying for a minute while the apiserver is away) and waits, the
/// disturbances going on, until no object and no cloud entry is left, at most the run's
/// timeout; returns how long that took.
async fn delete_all(
    chaos: &mut Chaos<'_>,
    api: &Api<VpnPbrRoute>,
    emu: &Emulator,
    tracker: &Tracker,
) -> Result<Option<Duration>> {
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
            chaos.progress.every_10s(|| {
                format!(
                    "{} objects, {entries_left} cloud entries left",
                    tracker.present()
                )
            });
        }
        if tracker.present() == 0 && entries_left == 0 {
            return Ok(Some(del_start.elapsed()));
        }
        if del_start.elapsed() > chaos.opts.timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: ChaosOptions,
    }

    fn parse(args: &[&str]) -> ChaosOptions {
        Cli::try_parse_from([&["chaos"], args].concat())
            .expect("parses")
            .opts
    }

    #[test]
    fn the_apiserver_restarts_after_30_s_unless_told_a_negative_time() {
        let defaults = parse(&[]);
        assert_eq!(defaults.apiserver_restart_at, Some(Duration::from_secs(30)));
        assert_eq!(defaults.kill_every, Duration::from_secs(15));
        assert_eq!(defaults.max_kills, None);
        let at = |v: &str| parse(&["--apiserver-restart-at", v]).apiserver_restart_at;
        assert_eq!(at("-1"), None);
        assert_eq!(at("2.5"), Some(Duration::from_millis(2500)));
        assert!(Cli::try_parse_from(["chaos", "--apiserver-restart-at", "x"]).is_err());
    }
}
