//! A `vpc-emulator` process with the benchmark's gateways, and its admin API.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

pub const KEY_ID: &str = "LTAI-bench-key";
pub const KEY_SECRET: &str = "bench-secret-value";
pub const REGION: &str = "cn-hangzhou";
/// IPsec connections per gateway.
pub const CONNECTIONS: usize = 4;

pub fn gateway_id(g: usize) -> String {
    format!("vpn-bench{g:04}")
}

pub fn connection_id(g: usize, c: usize) -> String {
    format!("vco-bench{g:04}-{c}")
}

/// `gateways` gateways with priority support, `CONNECTIONS` connections each, update time
/// `update_ms`, quotas far above the workload and a small TaskConflict window.
pub fn config_yaml(gateways: usize, update_ms: u64) -> String {
    let mut s = format!(
        "settings:\n  task_conflict_window_ms: 50\naccess_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\nregions: [{REGION}]\nvpn_gateways:\n"
    );
    for g in 0..gateways {
        let _ = write!(
            s,
            "  - id: {}\n    region: {REGION}\n    vpc_id: vpc-bench{g:04}\n    priority_support: true\n    pbr_quota: 100000\n    vpc_route_quota: 100000\n    update_duration_ms: {update_ms}\n",
            gateway_id(g)
        );
    }
    s.push_str("vpn_connections:\n");
    for g in 0..gateways {
        for c in 0..CONNECTIONS {
            let _ = write!(
                s,
                "  - id: {}\n    gateway_id: {}\n    remote_subnet: 192.168.0.0/16\n",
                connection_id(g, c),
                gateway_id(g)
            );
        }
    }
    s
}

pub struct Emulator {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub url: String,
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Emulator {
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Result<Emulator> {
        if !bin.is_file() {
            bail!("{} is missing: run `cargo build --bins`", bin.display());
        }
        let path = dir.join("emulator.yaml");
        std::fs::write(&path, config)?;
        let log = dir.join("emulator.log");
        let mut child = Command::new(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "text",
                "--config",
            ])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start vpc-emulator")?;
        let mut stdout = BufReader::new(child.stdout.take().context("emulator stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!(
                "unexpected first line from vpc-emulator: {line:?}; see {}",
                log.display()
            );
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Emulator {
            url: url.to_owned(),
            child,
            _stdout: stdout,
            log,
            http,
        })
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}/_emulator/{path}", self.url);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("admin {url}"))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("admin {url}"))?;
        if !status.is_success() {
            bail!("admin {url}: {status} {text}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("admin {url}: not JSON: {text:.200}"))
    }

    pub async fn state(&self) -> Result<Value> {
        self.admin(reqwest::Method::GET, "state", None).await
    }

    pub async fn counters(&self) -> Result<Value> {
        self.admin(reqwest::Method::GET, "counters", None).await
    }

    pub async fn set_faults(&self, faults: &Value) -> Result<()> {
        self.admin(reqwest::Method::PUT, "faults", Some(faults))
            .await
            .map(drop)
    }

    /// Every entry of every gateway: (gateway, entry).
    pub async fn entries(&self) -> Result<Vec<(String, Value)>> {
        let state = self.state().await?;
        let mut out = Vec::new();
        for g in state["gateways"].as_array().into_iter().flatten() {
            let id = g["VpnGatewayId"].as_str().unwrap_or_default().to_owned();
            for e in g["Entries"].as_array().into_iter().flatten() {
                out.push((id.clone(), e.clone()));
            }
        }
        Ok(out)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fault rules that fail `rate` of all requests in total, spread evenly over busy, throttled,
/// 5xx (500 and 503), dropped connections and slow answers (`slow_ms`). Rules are tried in
/// order and the first that fires decides, so each rate is conditional on the earlier ones
/// not firing.
pub fn faults(rate: f64, slow_ms: u64) -> Value {
    let kinds: [(&str, Option<u64>); 6] = [
        ("busy", None),
        ("throttled", None),
        ("server_error", None),
        ("unavailable", None),
        ("drop", None),
        ("slow", Some(slow_ms)),
    ];
    let share = rate / kinds.len() as f64;
    let mut rules = Vec::new();
    for (i, (kind, delay)) in kinds.iter().enumerate() {
        let left = 1.0 - share * i as f64;
        let mut rule =
            serde_json::json!({"action": "*", "rate": (share / left).min(1.0), "kind": kind});
        if let Some(d) = delay {
            rule["delay_ms"] = Value::from(*d);
        }
        rules.push(rule);
    }
    serde_json::json!({"rate_limit_per_second": null, "rules": rules})
}

/// `calls` of the counters as (action, code, n), sorted.
pub fn calls(counters: &Value) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for (action, codes) in counters["calls"].as_object().into_iter().flatten() {
        for (code, n) in codes.as_object().into_iter().flatten() {
            out.push((action.clone(), code.clone(), n.as_u64().unwrap_or(0)));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_flatten_sorted() {
        let c = serde_json::json!({"calls": {"B": {"Success": 2}, "A": {"Throttling": 1, "Success": 3}}});
        assert_eq!(
            calls(&c),
            vec![
                ("A".into(), "Success".into(), 3),
                ("A".into(), "Throttling".into(), 1),
                ("B".into(), "Success".into(), 2)
            ]
        );
    }

    #[test]
    fn fault_rules_add_up_to_the_rate() {
        let f = faults(0.2, 1000);
        let pass: f64 = f["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| 1.0 - r["rate"].as_f64().expect("rate"))
            .product();
        assert!((1.0 - pass - 0.2).abs() < 1e-9, "{f}");
    }

    #[test]
    fn config_has_every_gateway_and_connection() {
        let y: serde_yaml::Value = serde_yaml::from_str(&config_yaml(3, 2000)).expect("yaml");
        assert_eq!(y["vpn_gateways"].as_sequence().map(Vec::len), Some(3));
        assert_eq!(
            y["vpn_connections"].as_sequence().map(Vec::len),
            Some(3 * CONNECTIONS)
        );
    }
}
