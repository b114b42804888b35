//! A record of the host ([`HostState`]) taken before the nodes go up and compared after they
//! are down, to prove that nothing was left behind.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::procfs;

/// What the nodes may leave on the host, recorded before `up` and compared after `down`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// Processes of the node: kubelet, containerd and its shims, the control plane and the
    /// controllers started from the node's directory, and every process in a container cgroup.
    pub processes: BTreeSet<String>,
    /// Mount points under the node's directories and the kubelet's and containerd's defaults.
    pub mounts: BTreeSet<String>,
    /// `iptables`/`ip6tables` table and chain names starting with `KUBE-`.
    pub chains: BTreeSet<String>,
    /// cgroup directories named `k8s.io` or `kubepods` (and below) in any hierarchy.
    pub cgroups: BTreeSet<String>,
    /// The sysctls the kubelet sets.
    pub sysctls: Vec<(String, String)>,
    /// Host directories containerd, runc and the kubelet create by default.
    pub dirs: BTreeSet<String>,
}

const SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// The audited host directories: one list, shared with `hack/node.sh` and `hack/first-run.sh`.
const HOST_DIRS_FILE: &str = include_str!("../../../../hack/host-dirs");

/// The paths of `hack/host-dirs` (comments and blank lines skipped).
pub fn host_dirs() -> impl Iterator<Item = &'static str> {
    HOST_DIRS_FILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

const NODE_RUN_DIR: &str = "/run/vpn-pbr-node";

impl HostState {
    /// The host now, as far as the nodes in `node_dir` are concerned.
    pub fn capture(node_dir: &Path) -> Result<HostState> {
        let node_dir = node_dir.display().to_string();
        let mut processes = BTreeSet::new();
        let container_pids = cgroup_pids();
        for pid in procfs::pids()? {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            let ours = cmdline.contains(&node_dir) || cmdline.contains(NODE_RUN_DIR);
            if ours || container_pids.contains(&pid) {
                processes.insert(format!("{pid} {}", cmdline.trim()));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
            .filter(|m| {
                m.starts_with(&node_dir)
                    || m.starts_with(NODE_RUN_DIR)
                    || host_dirs().any(|d| m.starts_with(d))
            })
            .collect();
        let mut chains = BTreeSet::new();
        for tool in ["iptables", "ip6tables"] {
            for table in ["filter", "nat", "mangle"] {
                let Ok(out) = Command::new(tool).args(["-w", "-t", table, "-S"]).output() else {
                    continue;
                };
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if line.contains("KUBE-") {
                        chains.insert(format!("{tool} {table} {line}"));
                    }
                }
            }
        }
        let cgroups = container_cgroups().into_iter().collect();
        let sysctls = SYSCTLS
            .iter()
            .map(|s| {
                let v = std::fs::read_to_string(Path::new("/proc/sys").join(s))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                ((*s).to_owned(), v)
            })
            .collect();
        let dirs = host_dirs()
            .filter(|d| Path::new(d).exists())
            .map(str::to_owned)
            .collect();
        Ok(HostState {
            processes,
            mounts,
            chains,
            cgroups,
            sysctls,
            dirs,
        })
    }

    /// What is in `self` and was not in `before` (or differs from it), one line each.
    pub fn left_over_since(&self, before: &HostState) -> Vec<String> {
        let mut out = Vec::new();
        let new =
            |what: &str, now: &BTreeSet<String>, then: &BTreeSet<String>, out: &mut Vec<String>| {
                for x in now.difference(then) {
                    out.push(format!("{what}: {x}"));
                }
            };
        new("process", &self.processes, &before.processes, &mut out);
        new("mount", &self.mounts, &before.mounts, &mut out);
        new("iptables", &self.chains, &before.chains, &mut out);
        new("cgroup", &self.cgroups, &before.cgroups, &mut out);
        new("directory", &self.dirs, &before.dirs, &mut out);
        for ((key, now), (_, then)) in self.sysctls.iter().zip(&before.sysctls) {
            if now != then {
                out.push(format!("sysctl {key}: {then} before, {now} after"));
            }
        }
        out
    }
}

/// Every cgroup directory named `k8s.io` or `kubepods`, and everything below them.
fn container_cgroups() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    for h in hierarchies.flatten() {
        for name in ["k8s.io", "kubepods"] {
            let dir = h.path().join(name);
            if dir.is_dir() {
                walk_dirs(&dir, &mut out);
            }
        }
    }
    out
}

fn walk_dirs(dir: &Path, out: &mut Vec<String>) {
    out.push(dir.display().to_string());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&e.path(), out);
            }
        }
    }
}

/// Processes in the container cgroups.
fn cgroup_pids() -> BTreeSet<u32> {
    container_cgroups()
        .iter()
        .filter_map(|d| std::fs::read_to_string(Path::new(d).join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
