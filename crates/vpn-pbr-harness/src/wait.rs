//! Waiting for something to hold, with a deadline, and waiting on `VpnPbrRoute` objects.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::Api;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

/// Polls `check` every 100 ms until it returns `Some`; an error naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the route's `Ready` condition has this status (and reason, when given).
pub fn ready_is(r: &VpnPbrRoute, status: ConditionStatus, reason: Option<&str>) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == status && reason.is_none_or(|x| c.reason == x)
        })
    })
}

/// Polls the route until `check` holds; on timeout the error carries its status and `logs()`.
pub async fn wait_route(
    api: &Api<VpnPbrRoute>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&VpnPbrRoute) -> bool,
    logs: impl Fn() -> String,
) -> Result<VpnPbrRoute> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = api.get_opt(name).await.ok().flatten();
        if let Some(r) = &r
            && check(r)
        {
            return Ok(r.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{name}: timed out waiting for {what}; status {:?}\n--- operator log ---\n{}",
                r.and_then(|r| r.status),
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the route is gone.
pub async fn wait_gone(api: &Api<VpnPbrRoute>, name: &str, timeout: Duration) -> Result<()> {
    eventually(timeout, &format!("{name} deleted"), || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await
}
