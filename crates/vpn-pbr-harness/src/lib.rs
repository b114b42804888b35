//! The development harness of vpn-pbr-operator: one implementation of everything the
//! integration tests, the benchmark and the chaos run need around the operator.
//!
//! - [`tools`]: where the control-plane binaries, helm and the built programs are;
//! - [`cluster`]: a local etcd + kube-apiserver (`hack/cluster.sh`), clients, namespaces, the CRD;
//! - [`emulator`]: a `vpc-emulator` process and its admin API;
//! - [`install_steps`]: the marked install steps of the docs and the overlay for the local
//!   nodes;
//! - [`node`]: the images and the real local nodes of the end-to-end test (`hack/node.sh`), a
//!   container's process facts, the record of the host;
//! - [`operator`]: the `vpn-pbr-operator` process (restartable, with its resource use);
//! - [`command`]: running helm and kubectl;
//! - [`wait`]: polling for a condition with a deadline;
//! - [`bench`](mod@bench), [`report`]: the benchmark and the chaos run, and docs/benchmarks.md
//!   (`pbr-bench`);
//! - private: `workload` (the routes of a run and the watch that sees them Ready) and `procfs`
//!   (reading `/proc`).
//!
//! Each module exports what the binary `pbr-bench` and the tests use; the rest is `pub(crate)`
//! (`unreachable_pub` is denied), so the compiler reports what nothing uses.
//!
//! Every fallible call returns an [`anyhow::Result`] whose message says what to do (for example
//! which build command makes a missing binary); test code unwraps it.

#![deny(unreachable_pub)]

pub mod bench;
pub mod cluster;
pub mod command;
pub mod emulator;
pub mod install_steps;
pub mod node;
pub mod operator;
pub mod report;
pub mod tools;
pub mod wait;

mod procfs;
mod workload;

pub use cluster::{ControlPlane, install_crd, namespace};
pub use emulator::Emulator;
pub use operator::{Operator, OperatorOptions};
pub use tools::{Binaries, Tools};
