//! The control plane of a benchmark run: `hack/cluster.sh` in a temporary directory, owned by
//! this process (its watchdog stops etcd and kube-apiserver when the process is gone).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the control-plane binaries are.
#[derive(Clone, Debug)]
pub struct Tools {
    pub kube_bin_dir: PathBuf,
    pub etcd_bin_dir: PathBuf,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("VPN_PBR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/vpn-pbr-operator")
        })
}

impl Tools {
    /// `KUBE_BIN_DIR` / `ETCD_BIN_DIR` (as `hack/tools.sh --env` exports them) or the default
    /// cache; an error naming the fix when a binary is missing.
    pub fn from_env() -> Result<Tools> {
        let kube_bin_dir = std::env::var_os("KUBE_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("k8s/v1.37.2"));
        let etcd_bin_dir = std::env::var_os("ETCD_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache_dir().join("etcd/v3.7.3"));
        for b in [
            kube_bin_dir.join("kube-apiserver"),
            etcd_bin_dir.join("etcd"),
        ] {
            if !b.is_file() {
                bail!(
                    "{} is missing: build the control-plane binaries with `make tools` \
                     (hack/k8s-bins/build.sh and hack/etcd/build.sh)",
                    b.display()
                );
            }
        }
        Ok(Tools {
            kube_bin_dir,
            etcd_bin_dir,
        })
    }
}

/// A running etcd + kube-apiserver.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    repo: PathBuf,
}

impl Cluster {
    /// Starts a plane in `dir` (created by the script, removed when this process exits).
    pub fn start(repo: &Path, tools: &Tools, dir: &Path) -> Result<Cluster> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let out = Command::new(repo.join("hack/cluster.sh"))
            .args([
                "up",
                "--no-build",
                "--owner-pid",
                &std::process::id().to_string(),
                "--dir",
            ])
            .arg(dir)
            .env("KUBE_BIN_DIR", &tools.kube_bin_dir)
            .env("ETCD_BIN_DIR", &tools.etcd_bin_dir)
            .output()
            .context("run hack/cluster.sh")?;
        if !out.status.success() {
            bail!(
                "hack/cluster.sh up failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Cluster {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir: dir.to_owned(),
            repo: repo.to_owned(),
        })
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The apiserver's log (appended to across restarts).
    pub fn apiserver_log(&self) -> PathBuf {
        self.dir.join("apiserver.log")
    }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 10 s) and starts it again with the same
    /// command line; waits until it answers (at most 90 s). etcd keeps running.
    pub async fn restart_apiserver(&self, client: &Client) -> Result<Duration> {
        let started = std::time::Instant::now();
        let pid_file = self.dir.join("apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file)?.trim().to_owned();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("read the command line of apiserver {pid}"))?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if args.is_empty() {
            bail!("empty apiserver command line");
        }
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        for _ in 0..100 {
            if !proc_dir.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if proc_dir.exists() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Detached like hack/cluster.sh starts it, so the watchdog finds it by its pid file.
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"setsid "$@" </dev/null >>"$APISERVER_LOG" 2>&1 & echo $!"#)
            .arg("bash")
            .args(&args)
            .env("APISERVER_LOG", self.apiserver_log())
            .output()
            .context("restart kube-apiserver")?;
        let new_pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if new_pid.is_empty() {
            bail!("no pid for the restarted apiserver");
        }
        std::fs::write(&pid_file, format!("{new_pid}\n"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if client.apiserver_version().await.is_ok() {
                return Ok(started.elapsed());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "kube-apiserver did not come back within 90 s; see {}",
                    self.apiserver_log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(self.repo.join("hack/cluster.sh"))
            .args(["down", "--dir"])
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
