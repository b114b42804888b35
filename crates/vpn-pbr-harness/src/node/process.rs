//! What the kernel enforces on a container's main process ([`ProcessFacts`]): ids,
//! capabilities, seccomp, the root mount, its memory cgroup.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, anyhow};

use crate::procfs::{self, status_field};

/// What the kernel enforces on a container's main process (`/proc/<pid>` and its memory cgroup).
#[derive(Clone, Debug)]
pub struct ProcessFacts {
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Effective capabilities (a bit set; 0: none).
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub no_new_privs: bool,
    /// 2: seccomp filter.
    pub seccomp: u32,
    /// The root filesystem is mounted read-only.
    pub root_read_only: bool,
    /// Memory limit and peak usage of its cgroup (cgroup v1 or v2), bytes: what the limit is
    /// enforced on.
    pub memory_limit: Option<u64>,
    pub memory_peak: Option<u64>,
    /// The process's peak resident set (`VmHWM`, shared pages of the binary included), bytes.
    pub peak_rss: u64,
}

impl ProcessFacts {
    /// The facts of the main process of container `container_id` (the id without the
    /// `containerd://` prefix), found by its cgroup.
    pub fn of_container(container_id: &str) -> Result<ProcessFacts> {
        let pid = container_pid(container_id)?;
        ProcessFacts::of_pid(pid)
    }

    pub fn of_pid(pid: u32) -> Result<ProcessFacts> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Result<String> {
            status_field(&status, name)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
        };
        let first = |s: String| -> Result<u32> {
            Ok(s.split_whitespace()
                .next()
                .ok_or_else(|| anyhow!("empty id"))?
                .parse()?)
        };
        let hex = |s: String| -> Result<u64> { Ok(u64::from_str_radix(&s, 16)?) };
        let kib = |s: String| -> Result<u64> { Ok(s.trim_end_matches("kB").trim().parse()?) };
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
        // The root mount: mount point "/" (field 5), options in field 6.
        let root_read_only = mountinfo
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(4) == Some(&"/")).then(|| f.get(5).copied().unwrap_or(""))
            })
            .next_back()
            .is_some_and(|opts| opts.split(',').any(|o| o == "ro"));
        let (memory_limit, memory_peak) = memory_of(pid);
        Ok(ProcessFacts {
            pid,
            uid: first(field("Uid:")?)?,
            gid: first(field("Gid:")?)?,
            cap_eff: hex(field("CapEff:")?)?,
            cap_bnd: hex(field("CapBnd:")?)?,
            no_new_privs: field("NoNewPrivs:")? == "1",
            seccomp: field("Seccomp:")?.parse()?,
            root_read_only,
            memory_limit,
            memory_peak,
            peak_rss: kib(field("VmHWM:")?)? * 1024,
        })
    }
}

/// The process whose cgroup path names `container_id` and whose parent does not (the
/// container's first process).
fn container_pid(container_id: &str) -> Result<u32> {
    let pids: Vec<u32> = procfs::pids()?
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(container_id))
        })
        .collect();
    let in_container: BTreeSet<u32> = pids.iter().copied().collect();
    pids.into_iter()
        .find(|pid| {
            let ppid = procfs::stat_fields(*pid).and_then(|f| f.get(1)?.parse::<u32>().ok());
            ppid.is_none_or(|p| !in_container.contains(&p))
        })
        .ok_or_else(|| anyhow!("no process in the cgroup of container {container_id}"))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Limit and peak of the process's memory cgroup.
fn memory_of(pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return (None, None);
    };
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
            return (
                read_u64(&dir.join("memory.limit_in_bytes")),
                read_u64(&dir.join("memory.max_usage_in_bytes")),
            );
        }
        if controllers.is_empty() {
            // cgroup v2 (unified only).
            let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            if dir.join("memory.max").exists() {
                return (
                    read_u64(&dir.join("memory.max")),
                    read_u64(&dir.join("memory.peak")),
                );
            }
        }
    }
    (None, None)
}
