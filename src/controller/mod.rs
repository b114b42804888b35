//! The VpnPbrRoute controller.

pub(crate) mod account_reconcile;
pub(crate) mod account_status;
pub(crate) mod accounts;
pub(crate) mod backoff;
pub(crate) mod cached;
pub(crate) mod context;
pub(crate) mod credentials;
pub(crate) mod decide;
pub(crate) mod duplicates;
pub(crate) mod echoes;
pub(crate) mod entries;
pub(crate) mod error;
pub(crate) mod estimate;
pub(crate) mod event;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod job;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod objects;
pub(crate) mod plan;
pub(crate) mod port;
pub(crate) mod prompt;
pub(crate) mod queue;
pub(crate) mod reason;
pub(crate) mod reconcile;
pub(crate) mod resolve;
pub(crate) mod roles;
pub(crate) mod runner;
pub(crate) mod scheduler;
pub(crate) mod status;
pub(crate) mod tenancy;
pub(crate) mod turns;
pub(crate) mod verified;
pub(crate) mod vpc;
