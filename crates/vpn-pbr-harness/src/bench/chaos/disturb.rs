//! The disturbances of a chaos run ([`Chaos`]): operator kills on a period, one apiserver
//! restart, and the violations noticed on the way.

use std::time::Duration;

use anyhow::Result;
use kube::Client;
use tokio::time::Instant;

use super::ChaosOptions;
use crate::bench::progress::Progress;
use crate::cluster::ControlPlane;
use crate::operator::Operator;

/// The running disturbances and what they found: the operator they kill, the clock of the
/// run, and the violations seen so far.
pub(super) struct Chaos<'a> {
    pub(super) opts: &'a ChaosOptions,
    cluster: &'a ControlPlane,
    client: &'a Client,
    pub(super) op: Operator,
    /// When the run started (faults on, no route yet).
    pub(super) start: Instant,
    next_kill: Instant,
    pub(super) kills: u32,
    pub(super) apiserver_restart: Option<Duration>,
    apiserver_due: Option<Instant>,
    pub(super) violations: Vec<String>,
    pub(super) progress: Progress,
}

impl<'a> Chaos<'a> {
    /// Disturbances from now on.
    pub(super) fn new(
        opts: &'a ChaosOptions,
        cluster: &'a ControlPlane,
        client: &'a Client,
        op: Operator,
    ) -> Chaos<'a> {
        let start = Instant::now();
        Chaos {
            opts,
            cluster,
            client,
            op,
            start,
            next_kill: start + opts.kill_every,
            kills: 0,
            apiserver_restart: None,
            apiserver_due: opts.apiserver_restart_at.map(|d| start + d),
            violations: Vec::new(),
            progress: Progress::new("chaos", start),
        }
    }

    /// One step of the disturbances: kill when due, restart the apiserver when due, notice an
    /// operator that died on its own.
    pub(super) async fn tick(&mut self) -> Result<()> {
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
            self.progress.say(&format!(
                "operator killed (SIGKILL) and restarted ({})",
                self.kills
            ));
        }
        if self.apiserver_due.is_some_and(|at| now >= at) {
            self.apiserver_due = None;
            self.progress.say("restarting kube-apiserver");
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
