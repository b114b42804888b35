//! Command-line flags of the operator; every flag has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alicloud_vpc_client::{ClientConfig, CredentialsError, Endpoint, RateLimitConfig};
use clap::{Args, Parser, ValueEnum};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::controller::resolve::AccountOptions;

/// Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.
#[derive(Parser, Debug, Clone)]
#[command(name = "vpn-pbr-operator", version, about)]
pub struct Config {
    /// Kubeconfig file; in-cluster configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub(crate) kubeconfig: Option<PathBuf>,

    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(
        long,
        env = "VPN_PBR_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub(crate) namespaces: Vec<String>,

    /// Reconciles running at once.
    #[arg(long, env = "VPN_PBR_CONCURRENCY", default_value_t = 8)]
    pub(crate) concurrency: u16,

    /// Drift-check period of routes that are in sync (e.g. 30s, 10m, 1h); the
    /// `vpn.alicloud.dev/resync-interval` annotation overrides it per route.
    #[arg(long, env = "VPN_PBR_RESYNC", default_value = "10m", value_parser = crate::duration::flag)]
    pub(crate) resync: Duration,

    #[command(flatten)]
    pub(crate) cloud: CloudFlags,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "VPN_PBR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub(crate) metrics_addr: SocketAddr,

    /// Run only while holding a Lease (for more than one replica).
    #[arg(long, env = "VPN_PBR_LEADER_ELECTION", default_value_t = false)]
    pub(crate) leader_election: bool,

    /// Namespace of the Lease; defaults to POD_NAMESPACE, else `default`.
    #[arg(long, env = "VPN_PBR_LEASE_NAMESPACE")]
    pub(crate) lease_namespace: Option<String>,

    /// Name of the Lease.
    #[arg(long, env = "VPN_PBR_LEASE_NAME", default_value = "vpn-pbr-operator")]
    pub(crate) lease_name: String,

    /// Log format.
    #[arg(long, env = "VPN_PBR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or filter (e.g. `info`, `debug`, `vpn_pbr_operator=debug,kube=warn`).
    #[arg(long, env = "VPN_PBR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Allow routes to name a Secret with their own credentials (needs RBAC to read Secrets).
    #[arg(long, env = "VPN_PBR_ROUTE_SECRETS", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) route_secrets: bool,

    #[command(flatten)]
    pub(crate) accounts: AccountFlags,

    /// Length of the sessions of `assumeRole` accounts (STS `DurationSeconds`, e.g. 1h, 12h):
    /// the cloud grants 15m up to the role's MaxSessionDuration and refuses anything else
    /// (`InvalidParameter.DurationSeconds`, on the account's Ready). A session is renewed once
    /// a third of it remains.
    #[arg(long, env = "VPN_PBR_ROLE_SESSION_DURATION", default_value = "1h", value_parser = crate::duration::flag)]
    pub(crate) role_session_duration: Duration,

    /// The gateway scheduler (one change in flight per gateway). Turning it off makes every
    /// route retry on its own, like a naive operator; only for benchmarks.
    #[arg(long, env = "VPN_PBR_GATEWAY_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) gateway_scheduler: bool,

    /// While a gateway's own update time paces its changes (the account's API rate has room),
    /// its applied changes are read back (one list call) every this many changes, so each
    /// route turns Ready a few update times after its change. Higher: fewer list calls, later
    /// Ready. While the API rate binds, read-backs wait for a batch of 32 or the queue's end.
    #[arg(long, env = "VPN_PBR_READ_BACK_EVERY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) read_back_every: u16,

    /// How long to wait for the VpnPbrRoute CRD at start before giving up.
    #[arg(long, env = "VPN_PBR_CRD_WAIT", default_value = "30s", value_parser = crate::duration::flag)]
    pub(crate) crd_wait: Duration,

    /// How long in-flight cloud calls may take to finish at shutdown.
    #[arg(long, env = "VPN_PBR_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = crate::duration::flag)]
    pub(crate) shutdown_timeout: Duration,
}

/// Which account a route may fall back to: the same flags (and environment variables) for the
/// operator and `plan`, so that a plan refuses what the operator would.
#[derive(Args, Debug, Clone)]
pub(crate) struct AccountFlags {
    /// Refuse a route that names no account (no `spec.accountRef`, no
    /// `vpn.alicloud.dev/default-account` annotation on its namespace) instead of using the
    /// operator's own identity for it.
    #[arg(long, env = "VPN_PBR_REQUIRE_ACCOUNT", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) require_account: bool,

    /// The namespaces whose routes may use the operator's own identity (routes that name no
    /// account), as a Kubernetes label selector in JSON (e.g.
    /// `{"matchLabels":{"team":"platform"}}`); `{}` admits every namespace.
    #[arg(long, env = "VPN_PBR_OPERATOR_NAMESPACE_SELECTOR", default_value = "{}", value_parser = label_selector)]
    pub(crate) operator_namespace_selector: LabelSelector,
}

impl AccountFlags {
    /// The resolution's options of these flags.
    pub(crate) fn options(&self) -> AccountOptions {
        AccountOptions {
            require_account: self.require_account,
            operator_namespaces: self.operator_namespace_selector.clone(),
        }
    }
}

/// A label selector flag: JSON, checked to be one the operator can apply.
fn label_selector(s: &str) -> Result<LabelSelector, String> {
    let selector: LabelSelector =
        serde_json::from_str(s).map_err(|e| format!("not a label selector in JSON: {e}"))?;
    kube::core::Selector::try_from(selector.clone()).map_err(|e| e.to_string())?;
    Ok(selector)
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How the VPC and STS APIs are reached: the same flags (and environment variables) for the
/// operator and its commands (`import`, `plan`), so that a command run beside the operator
/// reaches the same cloud.
#[derive(Args, Debug, Clone)]
pub(crate) struct CloudFlags {
    /// VPC API endpoint URL for every region (plain http allowed, e.g. the emulator). Default:
    /// https://vpc.<region>.aliyuncs.com.
    #[arg(long, env = "VPN_PBR_ENDPOINT")]
    pub(crate) endpoint: Option<url::Url>,

    /// Use the VPC-internal endpoints (https://vpc-vpc.<region>.aliyuncs.com).
    #[arg(long, env = "VPN_PBR_VPC_INTERNAL_ENDPOINT", default_value_t = false)]
    pub(crate) vpc_internal_endpoint: bool,

    /// STS endpoint URL for RRSA (AssumeRoleWithOIDC) and GetCallerIdentity (the account of
    /// credentials). Default for RRSA: https://sts.aliyuncs.com, or the region's endpoint with
    /// ALIBABA_CLOUD_STS_REGION; for GetCallerIdentity: the --endpoint URL when given, else the
    /// region's https://sts.<region>.aliyuncs.com (sts-vpc. with
    /// --vpc-internal-endpoint).
    #[arg(long, env = "VPN_PBR_STS_ENDPOINT")]
    pub(crate) sts_endpoint: Option<url::Url>,

    /// Region of the STS endpoint used for RRSA (`sts.<region>.aliyuncs.com`, or `sts-vpc.` with
    /// --vpc-internal-endpoint) when --sts-endpoint is not given.
    #[arg(long, env = "VPN_PBR_DEFAULT_REGION")]
    pub(crate) default_region: Option<String>,

    /// Cloud API calls per second across the process; lowered automatically while throttled.
    /// When the rate binds, waiting calls get it by class: the status reads that time a
    /// gateway's next change first, then changes, then reads a change or reconcile waits on,
    /// then background reads (resync, drift checks); arrival order within a class.
    #[arg(long, env = "VPN_PBR_API_RATE", default_value_t = 20.0)]
    pub(crate) api_rate: f64,
}

impl CloudFlags {
    /// The client configuration of these flags (the client's defaults for the rest).
    pub(crate) fn client_config(&self) -> ClientConfig {
        let endpoint = match (&self.endpoint, self.vpc_internal_endpoint) {
            (Some(url), _) => Endpoint::Url(url.clone()),
            (None, true) => Endpoint::VpcInternal,
            (None, false) => Endpoint::Public,
        };
        let defaults = ClientConfig::default();
        ClientConfig {
            endpoint,
            sts_endpoint: self.caller_identity_endpoint(),
            rate_limit: RateLimitConfig {
                max_rate: self.api_rate,
                ..defaults.rate_limit
            },
            ..defaults
        }
    }

    /// Where `GetCallerIdentity` goes: `--sts-endpoint`, else the one `--endpoint` URL (the
    /// emulator answers both), else the route region's STS endpoint (inside the VPC with
    /// `--vpc-internal-endpoint`).
    fn caller_identity_endpoint(&self) -> Endpoint {
        match (&self.sts_endpoint, &self.endpoint) {
            (Some(url), _) | (None, Some(url)) => Endpoint::Url(url.clone()),
            (None, None) if self.vpc_internal_endpoint => Endpoint::VpcInternal,
            (None, None) => Endpoint::Public,
        }
    }

    /// RRSA's STS endpoint: `--sts-endpoint`, else the default region's (inside the VPC with
    /// `--vpc-internal-endpoint`), else `None` (the credentials chain's own default).
    pub(crate) fn rrsa_sts_url(&self) -> Result<Option<url::Url>, CredentialsError> {
        Ok(match (&self.sts_endpoint, &self.default_region) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(region)) => Some(alicloud_vpc_client::credentials::sts_url(
                Some(region),
                self.vpc_internal_endpoint,
            )?),
            (None, None) => None,
        })
    }
}

impl Config {
    /// Cloud API calls per second (`--api-rate`).
    pub fn api_rate(&self) -> f64 {
        self.cloud.api_rate
    }

    /// Watched namespaces with empty entries dropped.
    pub(crate) fn watched_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let c = Config::try_parse_from(["op"]).expect("defaults");
        assert_eq!(c.resync, Duration::from_secs(600));
        assert_eq!(c.role_session_duration, Duration::from_secs(3600));
        assert!(c.gateway_scheduler && !c.route_secrets && !c.leader_election);
        assert_eq!(c.read_back_every, 4);
        assert!(Config::try_parse_from(["op", "--read-back-every", "0"]).is_err());
        assert!(c.watched_namespaces().is_empty());
        let c = Config::try_parse_from([
            "op",
            "--namespaces",
            "a,b",
            "--resync",
            "30s",
            "--gateway-scheduler",
            "false",
        ])
        .expect("flags");
        assert_eq!(c.watched_namespaces(), vec!["a", "b"]);
        assert_eq!(c.resync, Duration::from_secs(30));
        assert!(!c.gateway_scheduler);
        assert!(Config::try_parse_from(["op", "--resync", "soon"]).is_err());
        assert!(
            !c.accounts.require_account
                && c.accounts.operator_namespace_selector == LabelSelector::default()
        );
        let c = Config::try_parse_from([
            "op",
            "--require-account",
            "true",
            "--operator-namespace-selector",
            r#"{"matchLabels":{"team":"platform"}}"#,
        ])
        .expect("account flags");
        assert!(c.accounts.require_account);
        assert!(
            c.accounts
                .operator_namespace_selector
                .match_labels
                .is_some()
        );
        for bad in [
            "team=platform",
            r#"{"matchExpressions":[{"key":"a","operator":"Bogus"}]}"#,
        ] {
            assert!(
                Config::try_parse_from(["op", "--operator-namespace-selector", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
