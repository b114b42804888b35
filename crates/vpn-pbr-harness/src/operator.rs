//! The `vpn-pbr-operator` binary, run against a control plane and an emulator: restartable,
//! killable, with its endpoints and its resource use from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::command::stop;
use crate::emulator::{KEY_ID, KEY_SECRET};
use crate::procfs::{self, status_field};

/// How long `Operator::terminate` waits after SIGTERM: far beyond a healthy shutdown, so that
/// only a hung process is killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(120);

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peak RSS, RSS now and CPU time of one process lifetime.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
    pub cpu: Duration,
}

/// Reads VmHWM, VmRSS and utime+stime of a live process.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name| {
        status_field(&status, name)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let peak_rss_kib = kib("VmHWM:")?;
    let rss_kib = kib("VmRSS:")?;
    // utime and stime: fields 14 and 15.
    let fields = procfs::stat_fields(pid)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Usage {
        peak_rss_kib,
        rss_kib,
        cpu: Duration::from_secs_f64((utime + stime) as f64 / clock_ticks() as f64),
    })
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// How to start the operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    /// `--namespaces`.
    pub namespace: String,
    /// `--endpoint`: the emulator's URL.
    pub endpoint: String,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    /// More flags.
    pub args: Vec<String>,
    /// Environment; the emulator's access key is added unless an `ALIBABA_CLOUD_*` variable
    /// is given here.
    pub envs: Vec<(String, String)>,
}

pub struct Operator {
    opts: OperatorOptions,
    args: Vec<String>,
    child: Option<Child>,
    pub log: PathBuf,
    pub metrics_port: u16,
    /// Processes started so far.
    pub starts: u32,
    http: reqwest::Client,
}

impl Operator {
    /// Starts the operator with its metrics on a free loopback port.
    pub fn start(opts: OperatorOptions) -> Result<Operator> {
        if !opts.bin.is_file() {
            bail!(
                "{} is missing: run `cargo build --bins`",
                opts.bin.display()
            );
        }
        // Its HTTP client needs a TLS provider, whether or not a control plane installed one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics_port = free_port()?;
        let mut args: Vec<String> = vec![
            "--namespaces".into(),
            opts.namespace.clone(),
            "--endpoint".into(),
            opts.endpoint.clone(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--log-format".into(),
            "text".into(),
        ];
        args.extend(opts.args.iter().cloned());
        let mut op = Operator {
            log: opts.log.clone(),
            opts,
            args,
            child: None,
            metrics_port,
            starts: 0,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        op.spawn()?;
        Ok(op)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.opts.bin);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &self.opts.kubeconfig)
            .stdin(Stdio::null())
            // Logs go to stdout, fatal errors to stderr.
            .stdout(log.try_clone()?)
            .stderr(log);
        if !self
            .opts
            .envs
            .iter()
            .any(|(k, _)| k.starts_with("ALIBABA_CLOUD_"))
        {
            cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET);
        }
        cmd.envs(self.opts.envs.iter().map(|(k, v)| (k, v)));
        self.child = Some(cmd.spawn().context("start vpn-pbr-operator")?);
        self.starts += 1;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resource use of the running process.
    pub fn usage(&self) -> Option<Usage> {
        usage(self.pid()?)
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
    }

    /// SIGTERM and wait for the exit (SIGKILL after `TERMINATE_GRACE`: a hung operator fails
    /// its test instead of hanging it); the exit status if it exited by itself.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.stop_within(TERMINATE_GRACE)
    }

    /// SIGKILL when `grace` is zero; else SIGTERM, and SIGKILL when the process has not exited
    /// within `grace` (a heap-profiling build writes its profile as it exits). The exit status
    /// if the process exited by itself.
    pub fn stop_within(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if grace.is_zero() {
            self.kill();
            return None;
        }
        sigterm(self.child.as_ref()?);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        None
    }

    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Whether the process exited on its own (a crash), with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits until /readyz answers 200 (caches synced), or, since /readyz stays 503 while the
    /// watched namespace is empty, until the controllers have started and 1 s has passed; at
    /// most `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        let mut started_at = None;
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started_at.is_none() && self.logs().contains("controller started") {
                started_at = Some(tokio::time::Instant::now());
            }
            if started_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
                return Ok(());
            }
            if let Some(st) = self.exited() {
                bail!("operator exited ({st}); see {}", self.log.display());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "operator not ready within {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// HTTP status of GET /readyz (0 when nothing answers).
    pub async fn readyz(&self) -> u16 {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        match self.http.get(url).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// GET /metrics.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await?
            .text()
            .await?)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn sigterm(c: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "operator" that is a shell script: it ignores SIGTERM when `ignore_term`.
    fn script(dir: &std::path::Path, ignore_term: bool) -> Result<Operator> {
        use std::os::unix::fs::PermissionsExt as _;
        let bin = dir.join(if ignore_term { "hung" } else { "polite" });
        let trap = if ignore_term { "trap '' TERM" } else { "" };
        std::fs::write(&bin, format!("#!/bin/sh\n{trap}\nsleep 600 & wait\n"))?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        Operator::start(OperatorOptions {
            bin,
            kubeconfig: dir.join("kubeconfig"),
            namespace: "ns".into(),
            endpoint: "http://127.0.0.1:1".into(),
            log: dir.join("log"),
            args: Vec::new(),
            envs: Vec::new(),
        })
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_after_the_grace() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut polite = script(dir.path(), false)?;
        let mut hung = script(dir.path(), true)?;
        // Let the shells set their traps.
        std::thread::sleep(Duration::from_millis(300));
        assert!(polite.stop_within(Duration::from_secs(5)).is_some());
        let pid = hung.pid().context("pid")?;
        assert_eq!(hung.stop_within(Duration::from_millis(500)), None);
        assert!(hung.pid().is_none(), "killed and reaped");
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        Ok(())
    }
}
