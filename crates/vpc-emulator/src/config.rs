//! The emulator's config file (YAML): access keys, regions, gateways, connections, OIDC,
//! global settings and initial faults. See `docs/emulator.md` for the documented format.

use serde::{Deserialize, Serialize};

use super::error::EmulatorError;
use super::faults::FaultSettings;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    #[serde(default)]
    pub regions: Vec<String>,
    #[serde(default)]
    pub vpn_gateways: Vec<GatewayConfig>,
    #[serde(default)]
    pub vpn_connections: Vec<ConnectionConfig>,
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    #[serde(default)]
    pub faults: FaultSettings,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timestamp_window_secs: 900,
            task_conflict_window_ms: 500,
            host_id: "vpc.aliyuncs.com".to_owned(),
            nonce_cache_max: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub id: String,
    pub secret: String,
    /// If set, requests with this key must carry this STS token.
    #[serde(default)]
    pub security_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    #[serde(default)]
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
    #[serde(default)]
    pub vswitch_id: Option<String>,
    #[serde(default)]
    pub internet_ip: Option<String>,
    #[serde(default)]
    pub spec: Option<String>,
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
    pub gateway_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub customer_gateway_id: Option<String>,
    #[serde(default)]
    pub local_subnet: Option<String>,
    #[serde(default)]
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
            serde_yaml::from_str(text).map_err(|source| EmulatorError::ConfigSyntax {
                path: path.to_owned(),
                source,
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
}
