//! The cloud side of the commands: the same endpoint flags, rate limit and credentials chain
//! as the operator (`src/app.rs`), with the same environment variables, so a command run
//! beside the operator reaches the same cloud as the operator does.

use std::sync::Arc;

use clap::Args;

use crate::config::CloudFlags;
use crate::controller::credentials;
use crate::controller::model::CredentialsHandle;
use alicloud_vpc_client::{
    ChainOptions, CloudError, CredentialsError, CredentialsProvider, VpcClient, VpcClientFactory,
    default_chain,
};

/// How the commands reach the VPC API.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Cloud")]
pub(crate) struct CloudArgs {
    #[command(flatten)]
    pub flags: CloudFlags,

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
        if !(args.flags.api_rate.is_finite() && args.flags.api_rate > 0.0) {
            return Err(CloudSetupError::Rate(args.flags.api_rate));
        }
        let factory = VpcClientFactory::new(args.flags.client_config())?;
        let sts_url = args.flags.rrsa_sts_url()?;
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

    /// The command's own credentials (they stand for the operator's identity).
    pub(super) fn own(&self) -> CredentialsHandle {
        credentials::own_handle(&self.credentials)
    }

    /// A client for one region, with `credentials`.
    pub(super) fn client(
        &self,
        region: &str,
        credentials: &CredentialsHandle,
    ) -> Result<VpcClient, CloudError> {
        self.factory
            .client_for_account(&credentials.account, region, credentials.provider.clone())
    }
}
