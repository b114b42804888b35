//! The real `vpn-pbr-operator` binary, run against the test control plane and an emulator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn operator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpn-pbr-operator"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Operator {
    child: Option<Child>,
    pub metrics_port: u16,
    pub log: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    kubeconfig: PathBuf,
}

impl Operator {
    /// Starts the operator watching `namespace`, talking to `endpoint`, with the emulator's key
    /// in the environment unless `envs` says otherwise.
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        endpoint: &str,
        log_dir: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let metrics_port = free_port();
        let mut args: Vec<String> = vec![
            "--namespaces".into(),
            namespace.into(),
            "--endpoint".into(),
            endpoint.into(),
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--resync".into(),
            "3s".into(),
            "--log-level".into(),
            "info,vpn_pbr_operator=debug".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut op = Self {
            child: None,
            metrics_port,
            log: log_dir.join(format!("operator-{metrics_port}.log")),
            args,
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            kubeconfig: kubeconfig.to_owned(),
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let bin = operator_binary();
        assert!(
            bin.is_file(),
            "{} missing: run `cargo build --bins`",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log);
        let has_creds = self
            .envs
            .iter()
            .any(|(k, _)| k.starts_with("ALIBABA_CLOUD_"));
        if !has_creds {
            cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", super::emulator::KEY_ID)
                .env(
                    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                    super::emulator::KEY_SECRET,
                );
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start vpn-pbr-operator"));
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().ok()
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// HTTP status of GET /readyz (0 when nothing answers).
    pub async fn readyz(&self) -> u16 {
        match reqwest::get(format!("http://127.0.0.1:{}/readyz", self.metrics_port)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// GET /metrics as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
