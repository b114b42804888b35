//! The VpnPbrRoute controller.

pub mod accounts;
pub mod backoff;
pub mod context;
pub mod decide;
pub mod duplicates;
pub mod entries;
pub mod error;
pub mod estimate;
pub mod metrics;
pub mod model;
pub mod objects;
pub mod plan;
pub mod port;
pub mod reason;
pub mod reconcile;
pub mod runner;
pub mod scheduler;
pub mod status;
pub mod verified;
pub mod vpc;
