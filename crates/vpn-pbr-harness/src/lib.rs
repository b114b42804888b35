//! The development harness of vpn-pbr-operator: one implementation of everything the
//! integration tests, the benchmark and the chaos run need around the operator.
//!
//! - [`tools`]: where the control-plane binaries, helm and the built programs are;
//! - [`cluster`]: a local etcd + kube-apiserver (`hack/cluster.sh`), clients, namespaces, the CRD;
//! - [`emulator`]: a `vpc-emulator` process and its admin API;
//! - [`node`]: the images and the real local nodes of the end-to-end test (`hack/node.sh`);
//! - [`operator`]: the `vpn-pbr-operator` process (restartable, with its resource use);
//! - [`command`]: running helm and kubectl;
//! - [`wait`]: polling for a condition with a deadline;
//! - [`workload`], [`bench`], [`report`]: the benchmark and the chaos run (`pbr-bench`).
//!
//! Every fallible call returns an [`anyhow::Result`] whose message says what to do (for example
//! which build command makes a missing binary); test code unwraps it.

pub mod bench;
pub mod cluster;
pub mod command;
pub mod emulator;
pub mod node;
pub mod operator;
mod procfs;
pub mod report;
pub mod tools;
pub mod wait;
pub mod workload;

pub use cluster::{ControlPlane, install_crd, namespace};
pub use emulator::Emulator;
pub use operator::{Operator, OperatorOptions};
pub use tools::{Binaries, Tools};
