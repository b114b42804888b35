//! The VpnPbrRoute controller.

pub mod backoff;
pub mod entries;
pub mod error;
pub mod model;
pub mod plan;
pub mod port;
pub mod scheduler;
pub mod status;
pub mod context;
pub mod duplicates;
pub mod metrics;
pub mod reconcile;
pub mod vpc;
pub mod runner;
