//! The emulator's config file (YAML): access keys, regions, gateways, connections, OIDC,
//! global settings and initial faults. See `docs/emulator.md` for the documented format.

use serde::{Deserialize, Serialize};

use super::auth::pattern_is_known;
use super::error::{EmulatorError, ForbiddenCode};
use super::faults::FaultSettings;
use super::trust::TrustPolicy;

/// When an accepted change shows in the Describe calls.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// At once (the tidy cloud).
    #[default]
    Immediate,
    /// Once the gateway is `active` again: the API pages say the change "is still being
    /// performed in the background" while the gateway is `updating`.
    OnActive,
}

/// What a weight change does on a dual-tunnel gateway.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DualTunnelWeightChange {
    /// Accepted without effect, as the SDK's description of ModifyVpnPbrRouteEntryWeight says.
    #[default]
    Accept,
    /// Refused with `VpnPbrRouteEntryWeight.NotSupport` (a code of our own).
    Refuse,
}

/// Base statuses a gateway can be configured or put in (`updating` is derived).
pub const BASE_STATUSES: &[&str] = &["active", "init", "provisioning", "deleting"];

/// The account of a key, gateway or role that names none: one account for a config that does
/// not care about accounts.
pub const DEFAULT_ACCOUNT_ID: &str = "1234567890123456";

/// Whether `id` looks like an Alibaba Cloud account ID: decimal digits (the cloud's are 16).
pub fn is_account_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The account of a RAM ARN (`acs:ram::<account>:role/<name>`), if it names one.
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("acs"), Some("ram"), Some(_), Some(account)) if is_account_id(account) => {
            Some(account)
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub settings: Settings,
    pub access_keys: Vec<AccessKeyConfig>,
    pub regions: Vec<String>,
    pub vpn_gateways: Vec<GatewayConfig>,
    pub vpn_connections: Vec<ConnectionConfig>,
    pub oidc: Option<OidcConfig>,
    /// Accounts with their own settings: RAM roles (for `AssumeRole`) and rate limit.
    pub accounts: Vec<AccountConfig>,
    pub faults: FaultSettings,
}

impl Config {
    /// The role `name` of `account`, if configured.
    pub fn role(&self, account: &str, name: &str) -> Option<&RoleConfig> {
        self.accounts
            .iter()
            .find(|a| a.id == account)
            .and_then(|a| a.roles.iter().find(|r| r.name == name))
    }

    /// The accounts with their own rate limit, and that limit.
    pub fn account_rate_limits(&self) -> std::collections::HashMap<String, f64> {
        self.accounts
            .iter()
            .filter_map(|a| a.rate_limit_per_second.map(|l| (a.id.clone(), l)))
            .collect()
    }
}

/// A RAM role of an account: `acs:ram::<account>:role/<name>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    /// The longest session `AssumeRole` grants (RAM: 3600..=43200).
    #[serde(default = "default_max_session")]
    pub max_session_duration_secs: u64,
    /// Who may assume the role (RAM's trust policy document, in its documented shape).
    pub trust_policy: TrustPolicy,
    /// The actions the role's sessions may call (as `access_keys[].allowed_actions`).
    pub allowed_actions: Option<Vec<String>>,
}

/// An account's own settings; an account named nowhere here has none (no roles, the default
/// rate limit).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    /// Its RAM roles, which `AssumeRole` may give sessions of.
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
    /// Requests per second of this account's keys (its sessions too); absent:
    /// `faults.rate_limit_per_second`.
    pub rate_limit_per_second: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Allowed clock skew of `Timestamp` / `x-acs-date`, either direction.
    pub timestamp_window_secs: u64,
    /// A mutation arriving this soon after the last accepted one on the same gateway gets
    /// `TaskConflict` instead of `VpnGateway.Configuring`.
    pub task_conflict_window_ms: u64,
    /// `HostId` of error bodies.
    pub host_id: String,
    /// Upper bound of remembered nonces (oldest are forgotten first).
    pub nonce_cache_max: usize,
    /// When an accepted change shows in the Describe calls: `immediate` or `on_active` (once
    /// the gateway is `active` again). A gateway's own `visibility` overrides it.
    pub visibility: Visibility,
    /// List answers (routes, connections) in a new order on every call.
    pub shuffle_lists: bool,
    /// Seed of that order (the same seed gives the same sequence of orders); absent: random.
    pub shuffle_seed: Option<u64>,
    /// A create whose destination another gateway of the same VPC already routes gets
    /// `VpnRouteEntry.Conflict`.
    pub cross_gateway_conflict: bool,
    /// A weight change on a dual-tunnel gateway: `accept` (no effect) or `refuse`.
    pub dual_tunnel_weight_change: DualTunnelWeightChange,
    /// How long a `ClientToken` is remembered after the call that first used it; absent:
    /// until 100 000 newer tokens push it out. A call with a forgotten token is a new call.
    pub client_token_ttl_ms: Option<u64>,
    /// With `on_active`: how long after the gateway is `active` again the route list shows an
    /// applied change; absent or 0: at once. A gateway's own `list_lag_ms` overrides it.
    pub list_lag_ms: Option<u64>,
    /// TEST ONLY: the shortest session `AssumeRole` and `AssumeRoleWithOIDC` grant, below the
    /// real minimum of 900 s, so tests can see sessions expire. Absent: 900.
    pub test_min_session_seconds: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timestamp_window_secs: 900,
            task_conflict_window_ms: 500,
            host_id: "vpc.aliyuncs.com".to_owned(),
            nonce_cache_max: 1_000_000,
            visibility: Visibility::Immediate,
            shuffle_lists: false,
            shuffle_seed: None,
            cross_gateway_conflict: false,
            dual_tunnel_weight_change: DualTunnelWeightChange::Accept,
            client_token_ttl_ms: None,
            list_lag_ms: None,
            test_min_session_seconds: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret: String,
    /// If set, requests with this key must carry this STS token.
    pub security_token: Option<String>,
    /// The actions this key may call (a RAM policy): names like `CreateVpnPbrRouteEntry` or
    /// `vpc:CreateVpnPbrRouteEntry`, `*` at the end as a wildcard (`vpc:Describe*`). Absent:
    /// every action. Others get HTTP 403.
    pub allowed_actions: Option<Vec<String>>,
    /// The code of that 403: `Forbidden` or `Forbbiden.SubUser`.
    #[serde(default)]
    pub forbidden_code: ForbiddenCode,
    /// The account the key belongs to (a RAM user of it): the key sees only this account's
    /// gateways, and `GetCallerIdentity` answers it. Default [`DEFAULT_ACCOUNT_ID`].
    pub account_id: Option<String>,
}

/// A gateway's own list behaviour, overriding the settings, and its kind: as configured, and
/// as the world keeps them.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct GatewayTraits {
    /// Overrides `settings.visibility` for this gateway.
    pub visibility: Option<Visibility>,
    /// Overrides `settings.shuffle_lists` for this gateway's route list.
    pub shuffle_lists: Option<bool>,
    /// Overrides `settings.list_lag_ms` for this gateway (which must be `on_active`).
    pub list_lag_ms: Option<u64>,
    /// Dual-tunnel IPsec connections: `NextHopTunnelId` on routes, weights without effect,
    /// `0.0.0.0/0` and `100.64.0.0/10` allowed, disaster-recovery address and vSwitch.
    pub dual_tunnel: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub name: Option<String>,
    /// `active`, `init`, `provisioning`, `updating`, `deleting`; `updating` is derived at
    /// run time, so configure `active` normally.
    #[serde(default = "default_status")]
    pub status: String,
    /// `Normal` or `FinancialLocked`.
    #[serde(default = "default_business_status")]
    pub business_status: String,
    /// Whether the gateway accepts `Priority` on policy-based routes.
    #[serde(default)]
    pub priority_support: bool,
    /// Maximum number of policy-based routes on this gateway (`Resource.QuotaFull`).
    #[serde(default = "default_pbr_quota")]
    pub pbr_quota: usize,
    /// Maximum number of distinct destinations this gateway may publish to the VPC route
    /// table (`QuotaExceeded.VpnRouteEntry`).
    #[serde(default = "default_vpc_route_quota")]
    pub vpc_route_quota: usize,
    /// How long the gateway stays `updating` after an accepted mutation.
    #[serde(default = "default_update_ms")]
    pub update_duration_ms: u64,
    pub vswitch_id: Option<String>,
    pub internet_ip: Option<String>,
    pub spec: Option<String>,
    #[serde(flatten)]
    pub traits: GatewayTraits,
    pub disaster_recovery_internet_ip: Option<String>,
    pub disaster_recovery_vswitch_id: Option<String>,
    /// The account that owns the gateway; keys of other accounts do not see it. Default
    /// [`DEFAULT_ACCOUNT_ID`].
    pub account_id: Option<String>,
}

fn default_status() -> String {
    "active".to_owned()
}
fn default_business_status() -> String {
    "Normal".to_owned()
}
fn default_pbr_quota() -> usize {
    100
}
fn default_vpc_route_quota() -> usize {
    100
}
fn default_update_ms() -> u64 {
    3000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub id: String,
    pub name: Option<String>,
    pub gateway_id: String,
    pub customer_gateway_id: Option<String>,
    pub local_subnet: Option<String>,
    pub remote_subnet: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub provider_arn: String,
    pub roles: Vec<OidcRole>,
    /// If not empty, only these OIDC tokens are accepted; otherwise any non-empty token.
    #[serde(default)]
    pub accepted_tokens: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRole {
    pub arn: String,
    #[serde(default = "default_max_session")]
    pub max_session_duration_secs: u64,
    /// The actions the role's temporary keys may call (as `access_keys[].allowed_actions`).
    pub allowed_actions: Option<Vec<String>>,
}

fn default_max_session() -> u64 {
    3600
}

impl Config {
    pub fn load(path: &str) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, EmulatorError> {
        let cfg: Config =
            serde_saphyr::from_str(text).map_err(|source| EmulatorError::ConfigSyntax {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |m: String| Err(EmulatorError::Config(m));
        for gw in &self.vpn_gateways {
            if !self.regions.contains(&gw.region) {
                return bad(format!(
                    "gateway {} is in unlisted region {}",
                    gw.id, gw.region
                ));
            }
            if !BASE_STATUSES.contains(&gw.status.as_str()) {
                return bad(format!(
                    "gateway {} has status {}; use one of {}",
                    gw.id,
                    gw.status,
                    BASE_STATUSES.join(", ")
                ));
            }
            if gw.business_status != "Normal" && gw.business_status != "FinancialLocked" {
                return bad(format!(
                    "gateway {} has business_status {}; use Normal or FinancialLocked",
                    gw.id, gw.business_status
                ));
            }
            // A list lags the applying of pending changes, which only `on_active` has.
            let visibility = gw.traits.visibility.unwrap_or(self.settings.visibility);
            if gw.traits.list_lag_ms.is_some_and(|ms| ms > 0) && visibility != Visibility::OnActive
            {
                return bad(format!(
                    "gateway {} has list_lag_ms but visibility immediate; list_lag_ms needs visibility: on_active",
                    gw.id
                ));
            }
        }
        let accounts = self
            .access_keys
            .iter()
            .map(|k| (format!("access key {}", k.id), &k.account_id))
            .chain(
                self.vpn_gateways
                    .iter()
                    .map(|g| (format!("gateway {}", g.id), &g.account_id)),
            );
        for (owner, account) in accounts {
            if let Some(a) = account.as_deref().filter(|a| !is_account_id(a)) {
                return bad(format!(
                    "{owner}: account_id {a:?} is not an account ID (decimal digits)"
                ));
            }
        }
        self.validate_accounts()?;
        let policies = self
            .access_keys
            .iter()
            .map(|k| (format!("access key {}", k.id), &k.allowed_actions))
            .chain(self.oidc.iter().flat_map(|o| {
                o.roles
                    .iter()
                    .map(|r| (format!("role {}", r.arn), &r.allowed_actions))
            }))
            .chain(self.accounts.iter().flat_map(|a| {
                a.roles.iter().map(|r| {
                    (
                        format!("role acs:ram::{}:role/{}", a.id, r.name),
                        &r.allowed_actions,
                    )
                })
            }));
        for (owner, allowed) in policies {
            for pattern in allowed.iter().flatten() {
                if !pattern_is_known(pattern) {
                    return bad(format!(
                        "{owner}: allowed action {pattern} names no action the emulator answers"
                    ));
                }
            }
        }
        for c in &self.vpn_connections {
            if !c.id.starts_with("vco-") {
                return bad(format!("connection id {} must start with vco-", c.id));
            }
            if !self.vpn_gateways.iter().any(|g| g.id == c.gateway_id) {
                return bad(format!(
                    "connection {} names unknown gateway {}",
                    c.id, c.gateway_id
                ));
            }
        }
        let faults = &self.faults;
        if let Err(m) = faults.validate() {
            return bad(m);
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), EmulatorError> {
        let bad = |m: String| Err(EmulatorError::Config(m));
        if let Some(s) = self.settings.test_min_session_seconds
            && !(1..=900).contains(&s)
        {
            return bad(format!("test_min_session_seconds {s} is not in 1..=900"));
        }
        for (i, a) in self.accounts.iter().enumerate() {
            if !is_account_id(&a.id) {
                return bad(format!(
                    "accounts: id {:?} is not an account ID (decimal digits)",
                    a.id
                ));
            }
            if self.accounts[..i].iter().any(|b| b.id == a.id) {
                return bad(format!("accounts: {} is listed twice", a.id));
            }
            if let Some(l) = a.rate_limit_per_second
                && (l.is_nan() || l <= 0.0)
            {
                return bad(format!(
                    "account {}: rate_limit_per_second must be positive",
                    a.id
                ));
            }
            for (j, r) in a.roles.iter().enumerate() {
                let arn = format!("acs:ram::{}:role/{}", a.id, r.name);
                if r.name.is_empty() || r.name.contains(['/', ':']) {
                    return bad(format!(
                        "{arn}: the role name may not be empty or hold / or :"
                    ));
                }
                if a.roles[..j].iter().any(|o| o.name == r.name) {
                    return bad(format!("{arn} is listed twice"));
                }
                if !(3600..=43200).contains(&r.max_session_duration_secs) {
                    return bad(format!(
                        "{arn}: max_session_duration_secs must be in 3600..=43200 (RAM's range)"
                    ));
                }
                if let Err(m) = r.trust_policy.validate() {
                    return bad(format!("{arn}: {m}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "regions: [cn-hangzhou]\nvpn_gateways:\n  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1}\n";

    #[test]
    fn load_time_checks() {
        // (YAML appended to BASE, Ok or a piece of the error message)
        let table: &[(&str, Result<(), &str>)] = &[
            ("", Ok(())),
            (
                "settings: {visibility: on_active, shuffle_lists: true, shuffle_seed: 3, cross_gateway_conflict: true, dual_tunnel_weight_change: refuse, client_token_ttl_ms: 60000, list_lag_ms: 2000}\n",
                Ok(()),
            ),
            ("settings: {visibility: later}\n", Err("visibility")),
            (
                "settings: {client_token_ttl_ms: -1}\n",
                Err("client_token_ttl_ms"),
            ),
            ("settings: {list_lag_ms: soon}\n", Err("list_lag_ms")),
            (
                "access_keys:\n  - {id: k, secret: s, allowed_actions: [\"vpc:Describe*\", CreateVpnPbrRouteEntry], forbidden_code: Forbbiden.SubUser}\n",
                Ok(()),
            ),
            (
                "access_keys:\n  - {id: k, secret: s, allowed_actions: [\"vpc:CreateVpnGateway\"]}\n",
                Err("names no action"),
            ),
            (
                "access_keys:\n  - {id: k, secret: s, forbidden_code: Denied}\n",
                Err("forbidden_code"),
            ),
            (
                "access_keys:\n  - {id: k, secret: s, account_id: \"2222222222222222\"}\n",
                Ok(()),
            ),
            (
                "access_keys:\n  - {id: k, secret: s, account_id: tenant-a}\n",
                Err("access key k: account_id \"tenant-a\""),
            ),
            (
                "accounts:\n  - id: \"2\"\n    rate_limit_per_second: 5\n    roles:\n      - name: r\n        max_session_duration_secs: 43200\n        allowed_actions: [\"vpc:*\"]\n        trust_policy: {Statement: [{Action: sts:AssumeRole, Effect: Allow, Principal: {RAM: \"acs:ram::1:root\"}, Condition: {StringEquals: {sts:ExternalId: [a1, a2]}}}], Version: \"1\"}\n",
                Ok(()),
            ),
            ("accounts:\n  - {id: acct}\n", Err("not an account ID")),
            (
                "accounts:\n  - {id: \"2\"}\n  - {id: \"2\"}\n",
                Err("listed twice"),
            ),
            (
                "accounts:\n  - {id: \"2\", rate_limit_per_second: 0}\n",
                Err("must be positive"),
            ),
            (
                "accounts:\n  - {id: \"2\", roles: [{name: r, max_session_duration_secs: 900, trust_policy: {Statement: [{Action: sts:AssumeRole, Effect: Allow, Principal: {RAM: \"1\"}}]}}]}\n",
                Err("3600..=43200"),
            ),
            (
                "accounts:\n  - {id: \"2\", roles: [{name: r, trust_policy: {Statement: [{Action: sts:AssumeRole, Effect: Allow, Principal: {Service: ecs.aliyuncs.com}}]}}]}\n",
                Err("Service"),
            ),
            (
                "accounts:\n  - {id: \"2\", roles: [{name: r, trust_policy: {Statement: [{Action: sts:AssumeRole, Effect: Allow, Principal: {RAM: \"1\"}, Condition: {StringLike: {sts:ExternalId: x}}}]}}]}\n",
                Err("StringLike"),
            ),
            (
                "accounts:\n  - {id: \"2\", roles: [{name: r, allowed_actions: [CreateVpnGateway], trust_policy: {Statement: [{Action: sts:AssumeRole, Effect: Allow, Principal: {RAM: \"1\"}}]}}]}\n",
                Err("acs:ram::2:role/r: allowed action CreateVpnGateway"),
            ),
            ("settings: {test_min_session_seconds: 1}\n", Ok(())),
            (
                "settings: {test_min_session_seconds: 901}\n",
                Err("test_min_session_seconds"),
            ),
            (
                "faults:\n  rules: [{action: DescribeVpnGateway, rate: 0.1, kind: busy}]\n",
                Err("only to mutations"),
            ),
            (
                "faults:\n  rules: [{action: \"*\", rate: 0.1, kind: busy, code: TaskConflict}]\n",
                Err("includes the reads"),
            ),
            (
                "faults:\n  rules: [{action: DeleteVpnPbrRouteEntry, rate: 0.1, kind: busy, code: VpnTask.CONFLICT}]\n",
                Ok(()),
            ),
        ];
        for (extra, want) in table {
            let got = Config::parse(&format!("{BASE}{extra}"), "t").map(drop);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(piece)) => assert!(e.to_string().contains(piece), "{extra}: {e}"),
                (got, want) => panic!("{extra}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            account_of_arn("acs:ram::2222222222222222:role/operator"),
            Some("2222222222222222")
        );
        assert_eq!(account_of_arn("acs:ram::*:role/operator"), None);
        // A gateway's own list lag needs its visibility to be `on_active` (its own or the
        // setting's); 0 is no lag.
        for (settings, gateway, ok) in [
            ("{}", "visibility: on_active, list_lag_ms: 500", true),
            ("{visibility: on_active}", "list_lag_ms: 500", true),
            ("{}", "list_lag_ms: 0", true),
            ("{}", "list_lag_ms: 500", false),
            (
                "{visibility: on_active}",
                "visibility: immediate, list_lag_ms: 500",
                false,
            ),
        ] {
            let yaml = format!(
                "settings: {settings}\nregions: [r]\nvpn_gateways:\n  - {{id: g, region: r, vpc_id: v, {gateway}}}\n"
            );
            let got = Config::parse(&yaml, "t");
            assert_eq!(got.is_ok(), ok, "{settings} {gateway}: {got:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains("gateway g has list_lag_ms"), "{e}");
            }
        }
        for (status, ok) in [
            ("deleting", true),
            ("provisioning", true),
            ("updating", false),
        ] {
            let yaml = format!(
                "regions: [r]\nvpn_gateways:\n  - {{id: g, region: r, vpc_id: v, status: {status}}}\n"
            );
            assert_eq!(Config::parse(&yaml, "t").is_ok(), ok, "{status}");
        }
    }
}
