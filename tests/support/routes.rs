//! Waiting on `VpnPbrRoute` objects in tests.
#![allow(dead_code)]

use std::time::Duration;

use kube::api::Api;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

/// Whether the route's `Ready` condition has this status (and reason, when given).
pub fn ready_is(r: &VpnPbrRoute, status: ConditionStatus, reason: Option<&str>) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == status && reason.is_none_or(|x| c.reason == x)
        })
    })
}

/// Polls the route until `check` holds; on timeout panics with its status and `logs()`.
pub async fn wait_route(
    api: &Api<VpnPbrRoute>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&VpnPbrRoute) -> bool,
    logs: impl Fn() -> String,
) -> VpnPbrRoute {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let r = api.get_opt(name).await.ok().flatten();
        if let Some(r) = &r
            && check(r)
        {
            return r.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: timed out waiting for {what}; status {:?}\n--- operator log ---\n{}",
            r.and_then(|r| r.status),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the route is gone.
pub async fn wait_gone(api: &Api<VpnPbrRoute>, name: &str, timeout: Duration) {
    super::eventually(timeout, &format!("{name} deleted"), || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}
