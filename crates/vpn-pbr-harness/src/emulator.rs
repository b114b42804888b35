//! A `vpc-emulator` process, its admin API (`/_emulator/`, see docs/emulator.md), and the
//! configs the tests and the benchmark give it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use vpc_emulator::process::EmulatorProcess;

/// The access key every harness config accepts (the operator gets it from its environment).
pub const KEY_ID: &str = "LTAI-test-key";
pub const KEY_SECRET: &str = "test-secret-value";
pub const ROLE_ARN: &str = "acs:ram::1234567890123456:role/vpn-pbr-operator";
pub const OIDC_PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test";
pub const REGION: &str = "cn-hangzhou";
/// IPsec connections per gateway.
pub const CONNECTIONS: usize = 4;

/// The first access key of `deploy/emulator/config.example.yaml` of `repo` (the emulator config
/// the examples name): its id and secret.
pub fn example_access_key(repo: &Path) -> Result<(String, String)> {
    let path = repo.join("deploy/emulator/config.example.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let config: Value = serde_saphyr::from_str(&text)?;
    let key = &config["access_keys"][0];
    match (key["id"].as_str(), key["secret"].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
        _ => bail!("{}: no access_keys[0] with id and secret", path.display()),
    }
}

pub fn gateway_id(g: usize) -> String {
    format!("vpn-bench{g:04}")
}

pub fn connection_id(g: usize, c: usize) -> String {
    format!("vco-bench{g:04}-{c}")
}

/// `gateways` gateways with priority support, `CONNECTIONS` connections each, update time
/// `update_ms`, quotas far above the workload and a small TaskConflict window, in the realistic
/// cloud: changes show in the lists once the gateway is `active` again, lists are shuffled.
pub fn bench_config_yaml(gateways: usize, update_ms: u64) -> String {
    let mut s = bench_settings_yaml("");
    push_bench_gateways(&mut s, &[(0..gateways, None)], update_ms);
    s
}

/// The settings and access keys of the benchmark's configs: the operator's key and
/// `extra_keys` (YAML items of `access_keys`), region [`REGION`].
fn bench_settings_yaml(extra_keys: &str) -> String {
    format!(
        "settings:\n  task_conflict_window_ms: 50\n  visibility: on_active\n  shuffle_lists: true\naccess_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\n{extra_keys}regions: [{REGION}]\n"
    )
}

/// `vpn_gateways` and `vpn_connections` as [`bench_config_yaml`] makes them: gateways
/// [`gateway_id`]`(g)` for every `g` of each range, owned by its account (`None`: the default
/// one), each in a VPC of its own.
fn push_bench_gateways(
    s: &mut String,
    groups: &[(std::ops::Range<usize>, Option<&str>)],
    update_ms: u64,
) {
    s.push_str("vpn_gateways:\n");
    for (range, account) in groups {
        for g in range.clone() {
            let _ = write!(
                s,
                "  - id: {}\n    region: {REGION}\n    vpc_id: vpc-bench{g:04}\n    priority_support: true\n    pbr_quota: 100000\n    vpc_route_quota: 100000\n    update_duration_ms: {update_ms}\n",
                gateway_id(g)
            );
            if let Some(a) = account {
                let _ = writeln!(s, "    account_id: \"{a}\"");
            }
        }
    }
    s.push_str("vpn_connections:\n");
    for g in groups.iter().flat_map(|(range, _)| range.clone()) {
        for c in 0..CONNECTIONS {
            let _ = write!(
                s,
                "  - id: {}\n    gateway_id: {}\n    remote_subnet: 192.168.0.0/16\n",
                connection_id(g, c),
                gateway_id(g)
            );
        }
    }
}

/// The account of the emulator's default keys (the operator's [`KEY_ID`]).
pub const DEFAULT_ACCOUNT_ID: &str = "1234567890123456";
/// The RAM role every account of [`accounts_config_yaml`] has for the operator.
pub const BENCH_ROLE: &str = "vpn-pbr-operator";

/// One cloud account of [`accounts_config_yaml`].
#[derive(Clone, Debug, PartialEq)]
pub struct CloudAccount {
    /// Account ID (decimal digits).
    pub id: String,
    /// Its flow control: API calls per second (all its keys and sessions together).
    pub rate: f64,
    /// Its gateways, by [`gateway_id`] index.
    pub gateways: std::ops::Range<usize>,
    /// Its own access key (id, secret), for credentials in a Secret.
    pub key: (String, String),
    /// The external ID role [`BENCH_ROLE`] wants from the default account.
    pub external_id: String,
}

impl CloudAccount {
    /// The ARN of its role [`BENCH_ROLE`].
    pub fn role_arn(&self) -> String {
        format!("acs:ram::{}:role/{BENCH_ROLE}", self.id)
    }
}

/// The benchmark's cloud ([`bench_config_yaml`]) split over `accounts`: each with its own rate
/// limit, key, gateways and role [`BENCH_ROLE`], which the default account (the operator's key)
/// may assume with the account's external ID.
pub fn accounts_config_yaml(accounts: &[CloudAccount], update_ms: u64) -> String {
    let mut keys = String::new();
    let mut roles = String::from("accounts:\n");
    for a in accounts {
        let _ = write!(
            keys,
            "  - id: {}\n    secret: {}\n    account_id: \"{}\"\n",
            a.key.0, a.key.1, a.id
        );
        let _ = write!(
            roles,
            "  - id: \"{}\"\n    rate_limit_per_second: {}\n    roles:\n      - name: {BENCH_ROLE}\n        max_session_duration_secs: 3600\n        trust_policy:\n          Statement:\n            - Action: sts:AssumeRole\n              Effect: Allow\n              Principal: {{RAM: [\"acs:ram::{DEFAULT_ACCOUNT_ID}:root\"]}}\n              Condition: {{StringEquals: {{\"sts:ExternalId\": \"{}\"}}}}\n          Version: \"1\"\n",
            a.id, a.rate, a.external_id
        );
    }
    let mut s = bench_settings_yaml(&keys);
    s.push_str(&roles);
    let groups: Vec<_> = accounts
        .iter()
        .map(|a| (a.gateways.clone(), Some(a.id.as_str())))
        .collect();
    push_bench_gateways(&mut s, &groups, update_ms);
    s
}

/// The integration tests' gateways: `vpn-gw-a` (priority support) and `vpn-gw-b` (none), each
/// with connections `vco-gw-<gw>-1` and `-2`; `extra_keys` is YAML appended to `access_keys`.
/// The cloud is the realistic one: a change shows in the lists only once the gateway is
/// `active` again, and lists come in a new order on every call.
pub fn two_gateway_config_yaml(update_ms: u64, extra_keys: &str) -> String {
    let mut gws = String::new();
    let mut conns = String::new();
    for (gw, prio) in [("a", true), ("b", false)] {
        let _ = write!(
            gws,
            "  - id: vpn-gw-{gw}\n    region: cn-hangzhou\n    vpc_id: vpc-test-{gw}\n    priority_support: {prio}\n    pbr_quota: 1000\n    vpc_route_quota: 1000\n    update_duration_ms: {update_ms}\n"
        );
        for n in 1..=2 {
            let _ = write!(
                conns,
                "  - id: vco-gw-{gw}-{n}\n    gateway_id: vpn-gw-{gw}\n    remote_subnet: 192.168.0.0/16\n"
            );
        }
    }
    format!(
        "settings:\n  task_conflict_window_ms: 50\n  visibility: on_active\n  shuffle_lists: true\naccess_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\n{extra_keys}regions: [cn-hangzhou]\nvpn_gateways:\n{gws}vpn_connections:\n{conns}oidc:\n  provider_arn: {OIDC_PROVIDER_ARN}\n  roles:\n    - arn: {ROLE_ARN}\n      max_session_duration_secs: 3600\n  accepted_tokens: []\n"
    )
}

/// A running emulator (killed when dropped) and a client of its admin API.
pub struct Emulator {
    process: EmulatorProcess,
    pub url: String,
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts `bin` with `config` written to `dir`; its log goes to `dir/emulator.log`.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Result<Emulator> {
        let path = dir.join("emulator.yaml");
        std::fs::write(&path, config)?;
        let log = dir.join("emulator.log");
        let process = EmulatorProcess::spawn(
            bin,
            &path,
            Stdio::from(std::fs::File::create(&log)?),
            Some("warn"),
        )
        .with_context(|| format!("start vpc-emulator (log: {})", log.display()))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Emulator {
            url: process.url().to_owned(),
            process,
            log,
            http,
        })
    }

    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
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

    /// Entries of one gateway.
    pub async fn gateway_entries(&self, gateway: &str) -> Result<Vec<Value>> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .filter(|(g, _)| g == gateway)
            .map(|(_, e)| e)
            .collect())
    }

    /// The entry with this source, destination and next hop.
    pub async fn entry(&self, gateway: &str, key: &EntryKey<'_>) -> Result<Option<Value>> {
        Ok(self
            .gateway_entries(gateway)
            .await?
            .into_iter()
            .find(|e| key.matches(e)))
    }

    /// Calls of `action` answered with `code` (`Success` for accepted ones).
    pub async fn calls(&self, action: &str, code: &str) -> Result<u64> {
        Ok(self.counters().await?["calls"][action][code]
            .as_u64()
            .unwrap_or(0))
    }

    /// Every call, all actions and codes.
    pub async fn total_calls(&self) -> Result<u64> {
        Ok(calls(&self.counters().await?).iter().map(|c| c.2).sum())
    }

    /// Accepted creates of one entry of `gateway`.
    pub async fn accepted_creates(&self, gateway: &str, key: &EntryKey<'_>) -> Result<u64> {
        Ok(self.counters().await?["accepted_creates"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["VpnGatewayId"] == gateway && key.matches(c))
            .and_then(|c| c["Count"].as_u64())
            .unwrap_or(0))
    }

    /// Changes an entry behind the operator's back, as the console would: `op` is `create`,
    /// `modify` (with `weight`) or `delete`.
    pub async fn console(
        &self,
        op: &str,
        gateway: &str,
        key: &EntryKey<'_>,
        weight: Option<u32>,
    ) -> Result<()> {
        let mut body = json!({"VpnGatewayId": gateway, "RouteSource": key.source,
            "RouteDest": key.dest, "NextHop": key.next_hop});
        if let Some(w) = weight {
            body["Weight"] = Value::from(w);
        }
        self.admin(reqwest::Method::POST, &format!("entries/{op}"), Some(&body))
            .await
            .map(drop)
    }

    /// Keeps `gateway` in `updating` for `duration_ms`.
    pub async fn busy(&self, gateway: &str, duration_ms: u64) -> Result<()> {
        let body = json!({"VpnGatewayId": gateway, "DurationMs": duration_ms});
        self.admin(reqwest::Method::POST, "gateways/busy", Some(&body))
            .await
            .map(drop)
    }

    /// Deletes `gateway` with its entries and connections, as someone releasing it in the
    /// console would; the cloud then answers `InvalidVpnGatewayInstanceId.NotFound` for it.
    pub async fn delete_gateway(&self, gateway: &str) -> Result<()> {
        let body = json!({"VpnGatewayId": gateway});
        self.admin(reqwest::Method::POST, "gateways/delete", Some(&body))
            .await
            .map(drop)
    }

    /// The gateway's status (`active`, `updating`, ...) and how long it stays busy, in
    /// milliseconds from now (0 when it is not updating); `None` when there is no such gateway.
    pub async fn gateway_busy_for(&self, gateway: &str) -> Result<Option<(String, u64)>> {
        let state = self.state().await?;
        let now = state["now_ms"].as_u64().unwrap_or(0);
        Ok(state["gateways"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["VpnGatewayId"] == gateway)
            .map(|g| {
                let status = g["Status"].as_str().unwrap_or_default().to_owned();
                let until = g["BusyUntil"].as_u64().unwrap_or(0);
                (status, until.saturating_sub(now))
            }))
    }
}

/// Which entry of a gateway: source, destination, next hop.
#[derive(Clone, Copy, Debug)]
pub struct EntryKey<'a> {
    pub source: &'a str,
    pub dest: &'a str,
    pub next_hop: &'a str,
}

impl<'a> EntryKey<'a> {
    pub fn new(source: &'a str, dest: &'a str, next_hop: &'a str) -> Self {
        Self {
            source,
            dest,
            next_hop,
        }
    }

    fn matches(&self, e: &Value) -> bool {
        e["RouteSource"] == self.source
            && e["RouteDest"] == self.dest
            && e["NextHop"] == self.next_hop
    }
}

/// Fault rules that fail `rate` of all mutations, spread evenly over busy, throttled, 5xx (500
/// and 503), dropped connections and slow answers (`slow_ms`). The real API answers busy codes
/// only to mutations (the emulator refuses a busy rule on a read), so the busy rules name each
/// mutation action and come first, and the other kinds apply to every action (`*`): a read
/// fails with the other five kinds only, at about five sixths of `rate`. Rules are tried in
/// order and the first that fires decides, so each rate is conditional on the earlier ones not
/// firing.
pub fn faults(rate: f64, slow_ms: u64) -> Value {
    let kinds: [(&str, Option<u64>); 5] = [
        ("throttled", None),
        ("server_error", None),
        ("unavailable", None),
        ("drop", None),
        ("slow", Some(slow_ms)),
    ];
    let share = rate / (kinds.len() + 1) as f64;
    let mut rules: Vec<Value> = vpc_emulator::ops::MUTATIONS
        .iter()
        .map(|action| json!({"action": action, "rate": share.min(1.0), "kind": "busy"}))
        .collect();
    for (i, (kind, delay)) in kinds.iter().enumerate() {
        // For a mutation, `i + 1` shares are taken by the rules before this one.
        let left = 1.0 - share * (i + 1) as f64;
        let mut rule = json!({"action": "*", "rate": (share / left).min(1.0), "kind": kind});
        if let Some(d) = delay {
            rule["delay_ms"] = Value::from(*d);
        }
        rules.push(rule);
    }
    json!({"rate_limit_per_second": null, "rules": rules})
}

/// One call counter of the emulator: (action, code, n).
pub type Counter = (String, String, u64);

/// `calls` of the counters, sorted.
pub fn calls(counters: &Value) -> Vec<Counter> {
    flat_calls(&counters["calls"])
}

/// The calls of one account (the calling key's) in the counters, as [`calls`].
pub fn account_calls(counters: &Value, account: &str) -> Vec<Counter> {
    flat_calls(&counters["accounts"][account])
}

/// `{action: {code: n}}` as counters, sorted.
fn flat_calls(by_action: &Value) -> Vec<Counter> {
    let mut out = Vec::new();
    for (action, codes) in by_action.as_object().into_iter().flatten() {
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
        let c = serde_json::json!({"accounts": {"22": {"A": {"Throttling.User": 4}}}});
        assert_eq!(
            account_calls(&c, "22"),
            vec![("A".into(), "Throttling.User".into(), 4)]
        );
        assert!(account_calls(&c, "33").is_empty());
    }

    /// The chance that some rule of `f` fires for `action`.
    fn fail_rate(f: &Value, action: &str) -> f64 {
        let pass: f64 = f["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["action"] == "*" || r["action"] == action)
            .map(|r| 1.0 - r["rate"].as_f64().expect("rate"))
            .product();
        1.0 - pass
    }

    #[test]
    fn fault_rules_add_up_to_the_rate() {
        let f = faults(0.2, 1000);
        // (action, expected failure rate)
        let table = [
            ("CreateVpnPbrRouteEntry", 0.2),
            ("DeleteVpnPbrRouteEntry", 0.2),
            ("PublishVpnRouteEntry", 0.2),
            ("DescribeVpnPbrRouteEntries", 1.0 - 0.8 / (1.0 - 0.2 / 6.0)),
            ("DescribeVpnGateway", 1.0 - 0.8 / (1.0 - 0.2 / 6.0)),
        ];
        for (action, want) in table {
            assert!((fail_rate(&f, action) - want).abs() < 1e-9, "{action}: {f}");
        }
    }

    #[test]
    fn busy_rules_only_on_mutations() {
        let f = faults(0.3, 500);
        let rules = f["rules"].as_array().expect("rules");
        for r in rules {
            if r["kind"] == "busy" {
                let action = r["action"].as_str().expect("action");
                assert!(vpc_emulator::ops::is_mutation(action), "{r}");
            } else {
                assert_eq!(r["action"], "*", "{r}");
            }
        }
        assert_eq!(
            rules.iter().filter(|r| r["kind"] == "busy").count(),
            vpc_emulator::ops::MUTATIONS.len()
        );
        // The emulator accepts the mix.
        let settings: vpc_emulator::faults::FaultSettings =
            serde_json::from_value(f).expect("fault settings");
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn accounts_config_loads_with_each_accounts_rate_gateways_and_role() {
        let account = |n: usize, rate: f64, gateways| CloudAccount {
            id: format!("20000000000000{n:02}"),
            rate,
            gateways,
            key: (format!("LTAI-bench-{n}"), format!("secret-{n}")),
            external_id: format!("ext-{n}"),
        };
        let accounts = [account(1, 10.0, 0..2), account(2, 2.5, 2..5)];
        let yaml = accounts_config_yaml(&accounts, 2000);
        // The emulator itself accepts it (trust policy, account IDs, rates).
        vpc_emulator::config::Config::parse(&yaml, "accounts.yaml").expect("a valid config");
        let y: Value = serde_saphyr::from_str(&yaml).expect("yaml");
        assert_eq!(y["accounts"][1]["rate_limit_per_second"], 2.5);
        assert_eq!(
            y["accounts"][0]["roles"][0]["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]
                ["sts:ExternalId"],
            "ext-1"
        );
        let owners: Vec<_> = y["vpn_gateways"]
            .as_array()
            .expect("gateways")
            .iter()
            .map(|g| g["account_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let one = "2000000000000001".to_owned();
        let two = "2000000000000002".to_owned();
        assert_eq!(owners, [one.clone(), one, two.clone(), two.clone(), two]);
        assert_eq!(y["access_keys"][2]["account_id"], "2000000000000002");
        assert_eq!(
            accounts[1].role_arn(),
            "acs:ram::2000000000000002:role/vpn-pbr-operator"
        );
    }

    #[test]
    fn config_has_every_gateway_and_connection() {
        let y: serde_json::Value =
            serde_saphyr::from_str(&bench_config_yaml(3, 2000)).expect("yaml");
        assert_eq!(y["vpn_gateways"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            y["vpn_connections"].as_array().map(Vec::len),
            Some(3 * CONNECTIONS)
        );
    }
}
