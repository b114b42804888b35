//! Real nodes for the end-to-end test: the images built from the repository's Dockerfile
//! (`hack/image/build.sh`), the local nodes of `hack/node.sh` (kubelet + containerd on this
//! machine, owned by this process: its watchdog takes them down when the process is gone), what
//! the kernel says about a container's process, and a record of the host to prove that `down`
//! left nothing behind.
//!
//! - `images`: the images of the Dockerfile;
//! - `local`: the nodes, the host-wide lock, kubectl and helm against them;
//! - `process`: what the kernel enforces on a container's process;
//! - `host`: the record of the host before and after;
//! - `run`: a run that leaves the host as it found it (lock, record, compare);
//! - `loopback`: the chart values and the emulator manifest for the nodes' loopback network.

mod host;
mod images;
mod local;
pub mod loopback;
mod process;
mod run;

pub use host::{HostState, host_dirs};
pub use images::Images;
pub use local::{LocalNodes, NodeLock};
pub use process::ProcessFacts;
pub use run::HostAudit;
