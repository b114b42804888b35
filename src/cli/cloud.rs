//! The cloud side of the commands: the same endpoint flags, rate limit and credentials chain
//! as the operator (`src/app.rs`), with the same environment variables, so a command run
//! beside the operator reaches the same cloud as the operator does.

use std::sync::Arc;

use clap::Args;

use crate::controller::model::{CredentialsHandle, Scope};
use alicloud_vpc_client::{
    ChainOptions, ClientConfig, CloudError, CredentialsError, CredentialsProvider, Endpoint,
    RateLimitConfig, VpcClient, VpcClientFactory, default_chain,
};

/// How the commands reach the VPC API.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Cloud")]
pub(crate) struct CloudArgs {
    /// VPC API endpoint URL for every region (plain http allowed, e.g. the emulator). Default:
    /// https://vpc.<region>.aliyuncs.com.
    #[arg(long, env = "VPN_PBR_ENDPOINT")]
    pub endpoint: Option<url::Url>,

    /// Use the VPC-internal endpoints (https://vpc-vpc.<region>.aliyuncs.com).
    #[arg(long, env = "VPN_PBR_VPC_INTERNAL_ENDPOINT", default_value_t = false)]
    pub vpc_internal_endpoint: bool,

    /// STS endpoint URL for RRSA (AssumeRoleWithOIDC) and GetCallerIdentity. Default for RRSA:
    /// https://sts.aliyuncs.com, or the region's endpoint with ALIBABA_CLOUD_STS_REGION; for
    /// GetCallerIdentity: the --endpoint URL when given, else the region's STS endpoint.
    #[arg(long, env = "VPN_PBR_STS_ENDPOINT")]
    pub sts_endpoint: Option<url::Url>,

    /// Region of the STS endpoint used for RRSA when --sts-endpoint is not given.
    #[arg(long, env = "VPN_PBR_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Cloud API calls per second; lowered automatically while throttled.
    #[arg(long, env = "VPN_PBR_API_RATE", default_value_t = 20.0)]
    pub api_rate: f64,

    /// Log level or filter of the messages on stderr (e.g. `warn`, `debug`).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

/// Why the cloud client could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloudSetupError {
    #[error("cloud client: {0}")]
    Client(#[from] CloudError),
    #[error("credentials (the operator's chain): {0}")]
    Credentials(#[from] CredentialsError),
    #[error("--api-rate must be a positive number, not {0}")]
    Rate(f64),
}

/// A client factory and the operator's default credentials chain.
#[derive(Clone)]
pub(super) struct Cloud {
    pub factory: VpcClientFactory,
    pub credentials: Arc<dyn CredentialsProvider>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("factory", &self.factory)
            .field("credentials", &self.credentials.name())
            .finish()
    }
}

impl Cloud {
    /// The factory and credentials the operator would use with the same flags.
    pub(super) fn new(args: &CloudArgs) -> Result<Self, CloudSetupError> {
        if !(args.api_rate.is_finite() && args.api_rate > 0.0) {
            return Err(CloudSetupError::Rate(args.api_rate));
        }
        let endpoint = match (&args.endpoint, args.vpc_internal_endpoint) {
            (Some(url), _) => Endpoint::Url(url.clone()),
            (None, true) => Endpoint::VpcInternal,
            (None, false) => Endpoint::Public,
        };
        let defaults = ClientConfig::default();
        let factory = VpcClientFactory::new(ClientConfig {
            endpoint,
            sts_endpoint: crate::config::sts_endpoint(
                args.sts_endpoint.as_ref(),
                args.endpoint.as_ref(),
                args.vpc_internal_endpoint,
            ),
            rate_limit: RateLimitConfig {
                max_rate: args.api_rate,
                ..defaults.rate_limit
            },
            ..defaults
        })?;
        let sts_url = match (&args.sts_endpoint, &args.default_region) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(region)) => Some(alicloud_vpc_client::credentials::sts_url(
                Some(region),
                args.vpc_internal_endpoint,
            )?),
            (None, None) => None,
        };
        let options = ChainOptions {
            sts_url,
            ..ChainOptions::default()
        };
        let credentials = default_chain(factory.http_client().clone(), &options)?;
        tracing::info!(source = credentials.name(), "credentials");
        Ok(Self {
            factory,
            credentials,
        })
    }

    /// A client for one region.
    pub(super) fn client(&self, region: &str) -> Result<VpcClient, CloudError> {
        self.factory.client(region, self.credentials.clone())
    }

    /// The controller's scope of one gateway, with these credentials.
    pub(super) fn scope(&self, region: &str, gateway: &str) -> Scope {
        Scope {
            region_id: region.to_owned(),
            vpn_gateway_id: gateway.to_owned(),
            credentials: CredentialsHandle {
                key: "default".to_owned(),
                provider: self.credentials.clone(),
            },
        }
    }
}
