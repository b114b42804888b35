//! Client of the Alibaba Cloud VPC API (2016-04-28): signatures, operations, errors, credentials.
//!
//! Start with a [`VpcClientFactory`] (one per process: connection pool, a rate limiter per
//! account, metrics hook), then make a cheap [`VpcClient`] per region and credentials provider:
//!
//! ```no_run
//! # async fn demo() -> Result<(), alicloud_vpc_client::CloudError> {
//! use std::sync::Arc;
//! use alicloud_vpc_client::*;
//!
//! let factory = VpcClientFactory::new(ClientConfig::default())?;
//! let creds = default_chain(factory.http_client().clone(), &ChainOptions::default())?;
//! let client = factory.client("cn-hangzhou", creds)?;
//! let gw = client
//!     .describe_vpn_gateway(&DescribeVpnGatewayRequest {
//!         vpn_gateway_id: "vpn-123".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("{} is {}", gw.vpn_gateway_id, gw.status);
//! # Ok(()) }
//! ```
//!
//! Every failure is a [`CloudError`] whose [`policy`](CloudError::policy) tells the caller what
//! to do: its class, who retries it, how fast, and whether the entry or gateway is gone (the
//! table is in `src/policy.rs`).

mod body;
mod class;
mod client;
pub mod credentials;
mod endpoint;
mod error;
mod listing;
mod observe;
pub mod operations;
mod policy;
mod rate_limit;
mod retry;
pub mod rpc;
mod send_gate;
pub use alicloud_signature as signature;

pub use class::ErrorClass;
pub use client::{
    ClientConfig, DEFAULT_ACCOUNT, DryRunPassed, PBR_PAGE_SIZE, VpcClient, VpcClientFactory,
};
pub use credentials::{
    AssumeRoleConfig, AssumeRoleProvider, ChainOptions, Credentials, CredentialsError,
    CredentialsFile, CredentialsProvider, OidcConfig, OidcProvider, SecretString,
    StaticCredentials, default_chain, default_chain_from,
};
pub use endpoint::Endpoint;
pub use error::{ApiError, CloudError, TransportFailure};
pub use listing::{LIST_PASSES, read_whole_list};
pub use observe::{CallObserver, CallRecord, ListRecord};
pub use operations::*;
pub use policy::{
    Gone, LIST_INCONSISTENT, Pace, Policy, Retrier, classify, known_codes, known_policy, policy,
};
pub use rate_limit::{
    Acquire, Priority, RateLimitConfig, RateLimiter, class_of_call, current_priority, with_priority,
};
pub use retry::RetryPolicy;
pub use send_gate::{NOT_SENT, SendGate, send_gate_open, with_send_gate};
