//! What a chaos run found ([`ChaosReport`]) and its text on the console.

use std::path::PathBuf;
use std::time::Duration;

use crate::emulator::Counter;

/// The measures and the violations of a chaos run; `Display` is its console summary.
#[derive(Debug, Default)]
pub struct ChaosReport {
    pub(crate) routes: usize,
    pub(crate) ready: usize,
    pub(crate) converged_in: Option<Duration>,
    pub(crate) deleted_in: Option<Duration>,
    pub kills: u32,
    pub(crate) apiserver_restart: Option<Duration>,
    pub(crate) calls: Vec<Counter>,
    pub(crate) entries_left: usize,
    pub(crate) objects_left: usize,
    pub(crate) duplicate_creates: Vec<String>,
    pub(crate) violations: Vec<String>,
    pub(crate) work_dir: PathBuf,
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
            secs_or_dash(self.converged_in),
            secs_or_dash(self.deleted_in),
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

fn secs_or_dash(d: Option<Duration>) -> String {
    d.map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}
