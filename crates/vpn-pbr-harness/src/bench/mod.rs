//! The benchmark and the chaos run: start a control plane, `vpc-emulator` and the operator
//! binary, create routes, and measure or check the targets of docs/benchmarks.md. The binary
//! `pbr-bench` is a thin command line over this module; `tests/chaos_small.rs` runs a small
//! chaos run through it.
//!
//! - `scenario`: a measured workload and the lower bounds of its wall time;
//! - `stack`: the work directory, the control plane, the processes and objects of one run;
//! - `converge`, `latency`: a scenario run, and its apply -> create probes;
//! - `single`, `ready_lag`, `entries`: the single changes during a burst, each route's time to
//!   Ready, and the emulator's entries matched to the routes that made them;
//! - `progress`: the progress lines on stderr;
//! - `result`, `calls`: what a run measured, and arithmetic on the emulator's call counters;
//! - `settle`, `restart`: when an operator has settled, and the restart run;
//! - `chaos`: the chaos run, its disturbances, invariants and report;
//! - `accounts`, `accounts_run`: the multi-account run (each account's own API rate and
//!   bound), and running it.

use std::time::Duration;

mod accounts;
mod accounts_run;
mod calls;
mod chaos;
mod converge;
mod entries;
mod latency;
mod progress;
mod ready_lag;
mod restart;
mod result;
mod scenario;
mod settle;
mod single;
mod stack;

#[cfg(test)]
pub(crate) use accounts::AccountOutcome;
pub use accounts::{AccountCredentials, AccountsResult, AccountsScenario};
pub use accounts_run::run_accounts;
pub use chaos::{ChaosOptions, ChaosReport, run_chaos};
pub use converge::run_scenario;
#[cfg(test)]
pub(crate) use restart::Stopped;
pub use restart::{RestartResult, run_restart};
pub use result::ScenarioResult;
pub use scenario::Scenario;
pub use settle::SettleCriterion;
#[cfg(test)]
pub(crate) use settle::Settled;
pub use stack::{start_cluster, work_dir};

pub(crate) use result::Latencies;
pub(crate) use scenario::Binding;

/// A command line's duration in seconds (fractions allowed, not negative).
pub fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?}: seconds expected"))
}

#[cfg(test)]
pub(crate) use calls::calls;
#[cfg(test)]
pub(crate) use ready_lag::ReadyLag;
#[cfg(test)]
pub(crate) use scenario::unavoidable_calls;
#[cfg(test)]
pub(crate) use single::SingleChanges;
