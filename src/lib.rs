//! vpn-pbr-operator: a Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.
//!
//! # The façade
//!
//! The crate exports exactly what the binaries, the integration tests and the other workspace
//! crates use; everything else is `pub(crate)` or private, so the compiler reports what nothing
//! uses (`unreachable_pub`, `dead_code`).
//!
//! - [`api`], the CRD types (`VpnPbrRoute` and `VpnAccount`): the public API, for `src/bin/crdgen.rs` ([`api::crds`],
//!   [`api::crd_yaml`]), the tests and `vpn-pbr-harness`.
//! - For `src/main.rs`: the command line ([`cli::parse`], [`cli::Cli`]), its tools
//!   ([`cli::run`]), logging ([`telemetry::init`]) and the operator ([`app::run`]) with its flags
//!   ([`config::Config`], whose defaults `vpn-pbr-harness` also reads).
//! - At the root, for the simulation (`tests/simulation.rs`, `tests/simulation/*.rs`): the ports
//!   it implements ([`CloudPort`], [`ObjectPort`], [`Entropy`]), the pieces of an operator
//!   process it wires together as `src/controller/runner.rs` does ([`Context`], [`Scheduler`],
//!   [`GatewayCache`], [`Accounts`], [`reconcile`], ...) with the fence of `src/app.rs`
//!   ([`Fence`], [`FencedCloud`], [`watch_lease`]), the cloud's model its ports answer in
//!   ([`Mutation`], [`Entry`], ...) with the requests the real client sends for a mutation
//!   ([`MutationRequest`]), and [`duplicates`], the claim checks it uses as its oracle.
//! - For `tests/controller.rs`: [`KubeObjects`], the [`ObjectPort`] against a real API server.
//! - For `tests/gitops_health.rs`: [`status`], the status builder and the reasons it writes.
//!
//! A few more types are `pub` without a name here, because the façade's fields and signatures
//! hold them (`app::AppError`, the tools' arguments, the controller's `Error`, `RouteId`,
//! `CredentialsHandle`, `Stall`, ...); of those, and of the exported types, only
//! what the outside uses is `pub`.

#![deny(unreachable_pub)]
#![deny(dead_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod telemetry;

mod controller;
mod duration;
mod fence;
mod http;
mod shutdown;
mod sync;

// For the simulation: the ports it implements.
pub use controller::context::Entropy;
pub use controller::objects::{EventFuture, ObjectFuture, ObjectPort, SecretData, SecretObject};
pub use controller::port::{CloudFuture, CloudPort};
// For the simulation: the pieces of an operator process it wires together.
pub use controller::accounts::Accounts;
pub use controller::backoff::Backoffs;
pub use controller::context::{Context, Settings};
pub use controller::echoes::{Arrival, Echoes};
pub use controller::entries::GatewayCache;
pub use controller::job::{JobView, Owner};
pub use controller::metrics::Metrics;
pub use controller::prompt::{LaneQueues, PromptLane, drive as drive_prompt_lane};
pub use controller::reconcile::reconcile;
pub use controller::roles::RoleSessions;
pub use controller::scheduler::{Scheduler, SchedulerConfig};
pub use controller::tenancy::Tenancy;
pub use controller::verified::Verified;
pub use fence::{Fence, FencedCloud, watch_lease};
// For the simulation: what its ports answer in and are told.
pub use controller::event::EventNote;
pub use controller::model::{Accepted, Entry, GatewayFacts, Mutation, Scope};
pub use controller::status::rfc3339_millis;
pub use controller::vpc::MutationRequest;
// For `tests/controller.rs`: the objects port against a real API server.
pub use controller::objects::{EventSource, KubeObjects};

/// For `tests/gitops_health.rs`: the status builder and every reason it writes, to check what
/// GitOps tools (kstatus, Argo CD's health check) conclude from the statuses it makes.
pub mod status {
    pub use crate::controller::reason::Reason;
    pub use crate::controller::status::{CondValue, StatusReport, build};

    /// Every reason of ours: all but the cloud's codes (`Reason::Cloud`).
    pub fn named_reasons() -> impl Iterator<Item = Reason> {
        Reason::NAMED.into_iter()
    }
}

/// For the simulation: the duplicate checks it uses as its oracle, on claim caches it fills
/// itself (the truth, and each process's lagging view).
pub mod duplicates {
    pub use crate::controller::duplicates::{
        ClaimCache, ClaimIndex, older_claim_in, older_publish_conflict_in, publish_sharers_in,
    };
}
