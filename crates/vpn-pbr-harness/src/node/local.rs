//! The local nodes of `hack/node.sh` (kubelet + containerd on this machine, owned by this
//! process), the host-wide lock that lets one set run at a time, and kubectl and helm against
//! them.

use std::fs::File;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow};
use futures::FutureExt as _;
use kube::Client;
use kube::config::Kubeconfig;

use crate::cluster::client_from;
use crate::command::run_ok;
use crate::tools::{Tools, cache_dir};

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
        run_ok(node_sh(repo).arg("packages"), None)
            .context("hack/node.sh packages (installs containerd, runc, buildah, ...)")?;
        Ok(())
    }

    /// `hack/node.sh up --nodes <nodes>` with `images` imported into every node, owned by this
    /// process.
    pub fn up(repo: &Path, nodes: usize, images: &[&Path]) -> Result<LocalNodes> {
        let dir = crate::tools::node_dir();
        let mut cmd = node_sh(repo);
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
                let _ = node_down(repo, &dir);
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
        client_from(Kubeconfig::read_from(&self.kubeconfig)?).await
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

    /// Runs `scenario` on the nodes; when it fails or panics, prints what the nodes looked like
    /// first (they go down after).
    pub async fn diagnosed(&self, scenario: impl Future<Output = Result<()>>) -> Result<()> {
        match AssertUnwindSafe(scenario).catch_unwind().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                eprintln!("{}", self.diagnostics());
                Err(e)
            }
            Err(panic) => {
                eprintln!("{}", self.diagnostics());
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// `hack/node.sh down`: stops everything and restores the host.
    pub fn down(&mut self) -> Result<()> {
        if !self.up {
            return Ok(());
        }
        self.up = false;
        node_down(&self.repo, &self.dir).context("hack/node.sh down")?;
        Ok(())
    }
}

/// `hack/node.sh` of `repo`.
fn node_sh(repo: &Path) -> Command {
    Command::new(repo.join("hack/node.sh"))
}

/// `hack/node.sh down` of the nodes in `dir`.
fn node_down(repo: &Path, dir: &Path) -> Result<String> {
    run_ok(node_sh(repo).arg("down").arg("--dir").arg(dir), None)
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("{e:#}");
        }
    }
}
