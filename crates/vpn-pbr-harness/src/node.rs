//! Real nodes for the end-to-end test: the images built from the repository's Dockerfile
//! (`hack/image/build.sh`), the local nodes of `hack/node.sh` (kubelet + containerd on this
//! machine, owned by this process: its watchdog takes them down when the process is gone), what
//! the kernel says about a container's process, and a record of the host to prove that `down`
//! left nothing behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::command::run_ok;
use crate::tools::{Tools, cache_dir};

/// The images of the Dockerfile as docker-archive tarballs, and their names.
#[derive(Clone, Debug)]
pub struct Images {
    pub operator_tar: PathBuf,
    pub emulator_tar: PathBuf,
    /// `vpn-pbr-operator`
    pub operator_repository: String,
    /// `vpc-emulator`
    pub emulator_repository: String,
    /// The workspace version, the tag of both.
    pub tag: String,
}

impl Images {
    /// Runs `hack/image/build.sh` (cargo and buildah; incremental): the images of the current
    /// sources.
    pub fn build(repo: &Path) -> Result<Images> {
        let out = run_ok(&mut Command::new(repo.join("hack/image/build.sh")), None)
            .context("hack/image/build.sh (builds the images from the Dockerfile)")?;
        let mut lines = out.lines().map(PathBuf::from);
        let (Some(operator_tar), Some(emulator_tar)) = (lines.next(), lines.next()) else {
            bail!("hack/image/build.sh printed no tarballs:\n{out}");
        };
        Ok(Images {
            operator_tar,
            emulator_tar,
            operator_repository: "vpn-pbr-operator".into(),
            emulator_repository: "vpc-emulator".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
        })
    }
}

/// A host-wide lock: one set of local nodes per machine (they share its network, sysctls and
/// iptables), so concurrent end-to-end runs wait for each other.
pub struct NodeLock {
    _file: File,
}

impl NodeLock {
    pub fn acquire() -> Result<NodeLock> {
        std::fs::create_dir_all(cache_dir())?;
        let path = cache_dir().join("e2e.lock");
        let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        file.lock()
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(NodeLock { _file: file })
    }
}

/// Nodes started by `hack/node.sh up`, taken down by [`LocalNodes::down`] or on drop.
pub struct LocalNodes {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// The apiserver's port on 127.0.0.1 (pods on the host network use it directly).
    pub api_port: u16,
    pub nodes: usize,
    repo: PathBuf,
    up: bool,
}

impl LocalNodes {
    /// `hack/node.sh packages`: the Debian packages the nodes and the image builds need, so
    /// that installing them happens before the host is captured, not during the run.
    pub fn install_packages(repo: &Path) -> Result<()> {
        run_ok(
            Command::new(repo.join("hack/node.sh")).arg("packages"),
            None,
        )
        .context("hack/node.sh packages (installs containerd, runc, buildah, ...)")?;
        Ok(())
    }

    /// `hack/node.sh up --nodes <nodes>` with `images` imported into every node, owned by this
    /// process.
    pub fn up(repo: &Path, nodes: usize, images: &[&Path]) -> Result<LocalNodes> {
        let dir = crate::tools::node_dir();
        let mut cmd = Command::new(repo.join("hack/node.sh"));
        cmd.args(["up", "--nodes", &nodes.to_string(), "--owner-pid"])
            .arg(std::process::id().to_string())
            .arg("--dir")
            .arg(&dir);
        for image in images {
            cmd.arg("--image").arg(image);
        }
        let out = match run_ok(&mut cmd, None) {
            Ok(out) => out,
            Err(e) => {
                // Whatever started is stopped now, not only when this process exits.
                let _ = run_ok(
                    Command::new(repo.join("hack/node.sh"))
                        .arg("down")
                        .arg("--dir")
                        .arg(&dir),
                    None,
                );
                return Err(e).context("hack/node.sh up");
            }
        };
        let api_port = out
            .lines()
            .find_map(|l| l.strip_prefix("export API_PORT="))
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| anyhow!("hack/node.sh up printed no API_PORT:\n{out}"))?;
        Ok(LocalNodes {
            kubeconfig: dir.join("cluster/admin.kubeconfig"),
            dir,
            api_port,
            nodes,
            repo: repo.to_owned(),
            up: true,
        })
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The apiserver's audit log (service-account requests, metadata level).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("cluster/audit.log")
    }

    /// `kubectl --kubeconfig <admin>` with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(Tools::from_env()?.kubectl());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        Ok(cmd)
    }

    /// Runs kubectl and returns its stdout; an error with both outputs when it fails.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        run_ok(&mut self.kubectl(args)?, stdin)
    }

    /// `helm --kubeconfig <admin>` with `args`.
    pub fn helm(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new(crate::tools::helm()?)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args),
            None,
        )
    }

    /// What to look at when something did not become Ready: nodes, pods, recent events, and the
    /// end of each kubelet's log.
    pub fn diagnostics(&self) -> String {
        let mut out = String::from("--- diagnostics of the local nodes ---\n");
        for args in [
            &["get", "nodes", "-o", "wide"][..],
            &["get", "pods", "-A", "-o", "wide"],
            &["describe", "pods", "-A"],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"],
        ] {
            out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            match self.kubectl(args).and_then(|mut c| Ok(c.output()?)) {
                Ok(o) => {
                    out.push_str(&String::from_utf8_lossy(&o.stdout));
                    out.push_str(&String::from_utf8_lossy(&o.stderr));
                }
                Err(e) => out.push_str(&format!("{e:#}\n")),
            }
        }
        for i in 0..self.nodes {
            let log = self.dir.join(format!("n{i}/kubelet.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {} (last 40 lines)\n", log.display()));
            out.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
            out.push('\n');
        }
        out
    }

    /// `hack/node.sh down`: stops everything and restores the host.
    pub fn down(&mut self) -> Result<()> {
        if !self.up {
            return Ok(());
        }
        self.up = false;
        run_ok(
            Command::new(self.repo.join("hack/node.sh"))
                .arg("down")
                .arg("--dir")
                .arg(&self.dir),
            None,
        )
        .context("hack/node.sh down")?;
        Ok(())
    }
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("{e:#}");
        }
    }
}

/// `kubectl port-forward` in the background; stopped on drop.
pub struct PortForward {
    child: Child,
    /// The local port on 127.0.0.1.
    pub port: u16,
}

impl PortForward {
    /// `kubectl port-forward <target> :<remote>` in `namespace` (for example `svc/name`).
    pub fn start(
        nodes: &LocalNodes,
        namespace: &str,
        target: &str,
        remote: u16,
    ) -> Result<PortForward> {
        let mut child = nodes
            .kubectl(&[
                "-n",
                namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
                &format!(":{remote}"),
            ])?
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("kubectl port-forward")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "Forwarding from 127.0.0.1:41234 -> 8080"
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                    && let Some(port) = rest.split_whitespace().next()
                {
                    let _ = tx.send(port.parse::<u16>().ok());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Ok(PortForward { child, port }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("kubectl port-forward {target} printed no local port")
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
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
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|c| c.contains(container_id))
        {
            pids.push(pid);
        }
    }
    let in_container: BTreeSet<u32> = pids.iter().copied().collect();
    pids.into_iter()
        .find(|pid| {
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                });
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
const HOST_DIRS_FILE: &str = include_str!("../../../hack/host-dirs");

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
        for entry in std::fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
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
