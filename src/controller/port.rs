//! The cloud operations the controller needs, behind a trait so the scheduler and the
//! reconciler can be tested with a fake and run against the real client.

use std::future::Future;
use std::pin::Pin;

use super::model::{Accepted, Entry, GatewayFacts, Mutation, Scope};
use alicloud_vpc_client::CloudError;

pub type CloudFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CloudError>> + Send + 'a>>;

/// Reads and writes of one gateway's policy-based routes.
pub trait CloudPort: Send + Sync + 'static {
    /// Every entry of the gateway (all pages).
    fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>>;
    /// Status and capabilities of the gateway.
    fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts>;
    /// Sends one mutation.
    fn mutate<'a>(&'a self, scope: &'a Scope, mutation: &'a Mutation) -> CloudFuture<'a, Accepted>;
    /// Whether `account`'s API rate has room now: at most one call waits at its rate limiter
    /// (Pacing and Background aside). A gateway then reads its applied changes back every few
    /// changes: the list costs no other call its turn. Ports without a limiter say yes.
    fn rate_has_room(&self, _account: &str) -> bool {
        true
    }
    /// The account the scope's credentials act for (STS `GetCallerIdentity`). Ports that do
    /// not know accounts (test fakes) say so, and nothing is concluded from their answers.
    fn caller_account<'a>(&'a self, _scope: &'a Scope) -> CloudFuture<'a, String> {
        Box::pin(async {
            Err(CloudError::Config(
                "this cloud port does not tell the account of credentials".to_owned(),
            ))
        })
    }
}
