//! `vpc-emulator`: a local, stateful stand-in for the Alibaba Cloud VPC endpoint (and the
//! STS `AssumeRoleWithOIDC`, `AssumeRole` and `GetCallerIdentity` calls) that the official SDKs cannot tell
//! apart from the real one for the operations this operator uses, with several accounts (each
//! key acts for one; it sees only that account's gateways). See `docs/emulator.md`.
//!
//! Layout: pure logic in [`world`] (entities, rules, state machine), [`ops`] (operations),
//! [`auth`] (signatures, timestamps, nonces), [`faults`], [`idempotency`], [`params`],
//! [`render`], [`sts`], [`trust`]; I/O in [`server`] (HTTP) and [`admin`] (admin API).

pub mod actions;
pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod counters;
pub mod error;
pub mod faults;
pub mod idempotency;
pub mod ops;
pub mod params;
pub mod process;
pub mod render;
pub mod server;
pub mod service;
pub mod sts;
pub mod trust;
pub mod world;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::{ApiError, EmulatorError};
pub use server::{admin_router, router};
pub use service::Emulator;
