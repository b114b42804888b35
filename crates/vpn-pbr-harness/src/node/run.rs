//! A run on the local nodes that must leave the host as it found it: one at a time (the
//! host-wide lock), from a host without nodes, with the host recorded before the nodes go up
//! and compared after they are down.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use super::{HostState, LocalNodes, NodeLock, host_dirs};
use crate::command::run_ok;
use crate::tools::node_dir;

/// Where a killed run's nodes are recorded (`hack/node.sh`).
const NODES_UP: &str = "/run/vpn-pbr-node/dir";

/// The host before the run, held with the lock until [`HostAudit::end`].
pub struct HostAudit {
    _lock: NodeLock,
    node_dir: PathBuf,
    before: HostState,
}

impl HostAudit {
    /// Takes the host-wide lock, takes down the nodes a killed run left, refuses to start while
    /// other nodes are up, installs the Debian packages (what they install is not something the
    /// run leaves behind) and records the host; says which audited directories are absent.
    pub fn begin(repo: &Path) -> Result<HostAudit> {
        let lock = NodeLock::acquire()?;
        if let Ok(left) = std::fs::read_to_string(NODES_UP) {
            let left = left.trim();
            run_ok(
                Command::new(repo.join("hack/node.sh"))
                    .args(["down", "--dir"])
                    .arg(left),
                None,
            )
            .with_context(|| format!("taking down the nodes a killed run left in {left}"))?;
        }
        if Path::new(NODES_UP).exists() {
            bail!("local nodes are up already (make node-down first): the test starts its own");
        }
        LocalNodes::install_packages(repo)?;
        let node_dir = node_dir();
        let before = HostState::capture(&node_dir)?;
        let absent: Vec<&str> = host_dirs().filter(|d| !before.dirs.contains(*d)).collect();
        eprintln!("host recorded; absent at the start: {}", absent.join(" "));
        Ok(HostAudit {
            _lock: lock,
            node_dir,
            before,
        })
    }

    /// Takes `nodes` down; an error listing what they left on the host, if anything.
    pub fn end(self, nodes: &mut LocalNodes) -> Result<()> {
        nodes.down()?;
        let after = HostState::capture(&self.node_dir)?;
        let left = after.left_over_since(&self.before);
        if !left.is_empty() {
            bail!("hack/node.sh down left behind:\n{}", left.join("\n"));
        }
        Ok(())
    }
}
