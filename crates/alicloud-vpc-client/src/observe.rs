//! A hook called after every attempt, so the caller can feed metrics without this module
//! depending on a metrics library.

use std::time::Duration;

use crate::class::ErrorClass;
use crate::rate_limit::Priority;

/// One attempt of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    pub action: &'static str,
    pub region: &'a str,
    /// `Success`, the cloud's error code, or a stable word (`Timeout`, ...).
    pub code: &'a str,
    /// `None` on success.
    pub class: Option<ErrorClass>,
    pub http_status: Option<u16>,
    pub request_id: Option<&'a str>,
    pub latency: Duration,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The account key of the client (`VpcClientFactory::client_for_account`; empty for
    /// `client`): whose rate limiter the attempt waited at.
    pub account: &'a str,
    /// The class the call waited in at the rate limiter (the same for every attempt).
    pub priority: Priority,
    /// How long this attempt waited for its token: where a binding API rate shows.
    pub rate_limit_wait: Duration,
}

/// One whole list read page by page (`VpcClient::list_vpn_pbr_route_entries`).
#[derive(Debug, Clone, Copy)]
pub struct ListRecord<'a> {
    pub action: &'static str,
    pub region: &'a str,
    /// Pages read, successful answers only.
    pub reads: u32,
    /// The pages proved the whole list; `false`: `CloudError::ListInconsistent`.
    pub complete: bool,
}

/// Receives a [`CallRecord`] after each attempt, and a [`ListRecord`] after each paged list
/// that got its answers. Keep it cheap: it runs on the request path.
pub trait CallObserver: Send + Sync {
    fn observe(&self, call: &CallRecord<'_>);

    /// Called once per list whose pages were all answered; nothing by default.
    fn observe_list(&self, _list: &ListRecord<'_>) {}
}

impl<F> CallObserver for F
where
    F: Fn(&CallRecord<'_>) + Send + Sync,
{
    fn observe(&self, call: &CallRecord<'_>) {
        self(call);
    }
}
