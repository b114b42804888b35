//! A `vpc-emulator` process per test, with helpers for its admin API.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub const KEY_ID: &str = "LTAI-test-key";
pub const KEY_SECRET: &str = "test-secret-value";
pub const ROLE_ARN: &str = "acs:ram::1234567890123456:role/vpn-pbr-operator";
pub const OIDC_PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test";

/// Gateways of the test config: `vpn-gw-a` (priority support) and `vpn-gw-b` (none), each
/// with connections `vco-<gw>-1` and `vco-<gw>-2`.
pub fn config_yaml(update_ms: u64, extra_keys: &str) -> String {
    let mut gws = String::new();
    let mut conns = String::new();
    for (gw, prio) in [("a", true), ("b", false)] {
        gws.push_str(&format!(
            "  - id: vpn-gw-{gw}\n    region: cn-hangzhou\n    vpc_id: vpc-test-{gw}\n    priority_support: {prio}\n    pbr_quota: 1000\n    vpc_route_quota: 1000\n    update_duration_ms: {update_ms}\n"
        ));
        for n in 1..=2 {
            conns.push_str(&format!(
                "  - id: vco-gw-{gw}-{n}\n    gateway_id: vpn-gw-{gw}\n    remote_subnet: 192.168.0.0/16\n"
            ));
        }
    }
    format!(
        "settings:\n  task_conflict_window_ms: 50\naccess_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\n{extra_keys}regions: [cn-hangzhou]\nvpn_gateways:\n{gws}vpn_connections:\n{conns}oidc:\n  provider_arn: {OIDC_PROVIDER_ARN}\n  roles:\n    - arn: {ROLE_ARN}\n      max_session_duration_secs: 3600\n  accepted_tokens: []\n"
    )
}

pub struct Emulator {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

pub fn emulator_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpc-emulator"))
}

impl Emulator {
    pub fn start(config: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("emulator.yaml");
        std::fs::write(&path, config).expect("write config");
        let bin = emulator_binary();
        assert!(
            bin.is_file(),
            "{} missing: run `cargo build --bins`",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "text",
                "--config",
            ])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vpc-emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from vpc-emulator: {line:?}"))
            .to_owned();
        Self {
            child,
            url,
            dir,
            http: reqwest::Client::new(),
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_emulator/{path}", self.url);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "admin {url}: {status} {v}");
        v
    }

    pub async fn state(&self) -> Value {
        self.admin(reqwest::Method::GET, "state", None).await
    }

    pub async fn counters(&self) -> Value {
        self.admin(reqwest::Method::GET, "counters", None).await
    }

    /// Entries of a gateway.
    pub async fn entries(&self, gateway: &str) -> Vec<Value> {
        self.state().await["gateways"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["VpnGatewayId"] == gateway)
            .and_then(|g| g["Entries"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The entry with this source, destination and next hop.
    pub async fn entry(&self, gateway: &str, source: &str, dest: &str, hop: &str) -> Option<Value> {
        self.entries(gateway)
            .await
            .into_iter()
            .find(|e| e["RouteSource"] == source && e["RouteDest"] == dest && e["NextHop"] == hop)
    }

    /// Successful calls of an action.
    pub async fn calls(&self, action: &str, code: &str) -> u64 {
        self.counters().await["calls"][action][code]
            .as_u64()
            .unwrap_or(0)
    }

    /// Every call, all actions and codes.
    pub async fn total_calls(&self) -> u64 {
        self.counters().await["calls"]
            .as_object()
            .map(|m| {
                m.values()
                    .flat_map(|c| c.as_object().into_iter().flat_map(|o| o.values()))
                    .filter_map(Value::as_u64)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Accepted creates of one route key.
    pub async fn accepted_creates(
        &self,
        gateway: &str,
        source: &str,
        dest: &str,
        hop: &str,
    ) -> u64 {
        self.counters().await["accepted_creates"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["VpnGatewayId"] == gateway
                    && c["RouteSource"] == source
                    && c["RouteDest"] == dest
                    && c["NextHop"] == hop
            })
            .and_then(|c| c["Count"].as_u64())
            .unwrap_or(0)
    }

    pub async fn delete_entry(&self, gateway: &str, source: &str, dest: &str, hop: &str) {
        self.admin(reqwest::Method::POST, "entries/delete", Some(json!({"VpnGatewayId": gateway, "RouteSource": source, "RouteDest": dest, "NextHop": hop}))).await;
    }

    pub async fn create_entry(
        &self,
        gateway: &str,
        source: &str,
        dest: &str,
        hop: &str,
        weight: u32,
    ) {
        self.admin(reqwest::Method::POST, "entries/create", Some(json!({"VpnGatewayId": gateway, "RouteSource": source, "RouteDest": dest, "NextHop": hop, "Weight": weight}))).await;
    }

    pub async fn modify_entry(
        &self,
        gateway: &str,
        source: &str,
        dest: &str,
        hop: &str,
        weight: u32,
    ) {
        self.admin(reqwest::Method::POST, "entries/modify", Some(json!({"VpnGatewayId": gateway, "RouteSource": source, "RouteDest": dest, "NextHop": hop, "Weight": weight}))).await;
    }

    pub async fn busy(&self, gateway: &str, duration_ms: u64) {
        self.admin(
            reqwest::Method::POST,
            "gateways/busy",
            Some(json!({"VpnGatewayId": gateway, "DurationMs": duration_ms})),
        )
        .await;
    }

    pub async fn faults(&self, faults: Value) {
        self.admin(reqwest::Method::PUT, "faults", Some(faults))
            .await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
