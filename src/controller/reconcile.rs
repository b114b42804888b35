//! One reconcile of one `VpnPbrRoute` (docs/architecture.md): I/O only; decisions live in `plan`,
//! `status` and `duplicates`.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use rand::Rng;
use serde_json::json;
use tracing::{debug, info, warn};

use super::context::Context;
use super::duplicates;
use super::error::{Error, Result};
use super::model::{Entry, GatewayFacts, Mutation, Scope};
use super::plan::{self, Step};
use super::scheduler::JobView;
use super::status::{self, CondValue, Report};
use crate::api::v1alpha1::{
    ConditionStatus, DeletionPolicy, FINALIZER, ManagementPolicy, PAUSED_ANNOTATION,
    RESYNC_ANNOTATION, VpnPbrRoute, VpnPbrRouteStatus, validation,
};
use alicloud_vpc_client::{CloudError, ErrorClass};

/// How long a route waiting on the scheduler sleeps at most; the scheduler wakes it earlier.
const WAIT_FOR_SCHEDULER: Duration = Duration::from_secs(300);

/// Entry point for the controller: runs one reconcile, turns failures into status, events,
/// metrics and a per-object backoff, and never returns an error to the runtime (so a status
/// write of our own cannot bypass the backoff).
pub async fn reconcile(route: Arc<VpnPbrRoute>, ctx: Arc<Context>) -> Result<Action> {
    let timer = super::metrics::ReconcileTimer::start(&ctx.metrics);
    let key = object_key(&route);
    if let Some(wait) = ctx.backoffs.wait(&key, route.metadata.generation) {
        timer.finish("backoff");
        return Ok(Action::requeue(wait));
    }
    match run(&route, &ctx).await {
        Ok(action) => {
            ctx.backoffs.reset(&key);
            timer.finish("success");
            Ok(action)
        }
        Err(err) => {
            let class = err.class();
            ctx.verified.forget(&key);
            let delay = ctx
                .backoffs
                .failure(&key, err.policy().pace, route.metadata.generation);
            timer.finish(&err.reason());
            warn!(route = %key, reason = %err.reason(), class = %class, retry_in = ?delay, error = %err.message(), "reconcile failed");
            if let Err(e) = report_failure(&route, &ctx, &err).await {
                warn!(route = %key, error = %e, "could not record the failure");
            }
            Ok(Action::requeue(delay))
        }
    }
}

/// The runtime calls this only for errors `reconcile` did not absorb (none today).
pub fn error_policy(_route: Arc<VpnPbrRoute>, _err: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

pub fn object_key(route: &VpnPbrRoute) -> String {
    format!(
        "{}/{}",
        route.namespace().unwrap_or_default(),
        route.name_any()
    )
}

async fn run(route: &VpnPbrRoute, ctx: &Context) -> Result<Action> {
    if route.metadata.deletion_timestamp.is_some() {
        return cleanup(route, ctx).await;
    }
    let full = route.spec.management_policy == ManagementPolicy::Full;
    if full && !route.finalizers().iter().any(|f| f == FINALIZER) {
        add_finalizer(route, ctx).await?;
    }
    if let Err(errors) = validation::validate(&route.spec) {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        write_status(
            route,
            ctx,
            Report {
                ready: Some(CondValue::no("InvalidSpec", message.clone())),
                synced: Some(CondValue::no("InvalidSpec", message)),
                ..Default::default()
            },
        )
        .await?;
        return Ok(Action::await_change());
    }
    if paused(route) {
        write_status(
            route,
            ctx,
            Report {
                synced: Some(CondValue::no(
                    "Paused",
                    format!("{PAUSED_ANNOTATION} is \"true\"; no cloud calls"),
                )),
                ..Default::default()
            },
        )
        .await?;
        return Ok(Action::await_change());
    }
    if let Some(winner) = duplicates::older_claim_in(route, &ctx.stores) {
        let message = format!("route already claimed by {winner}");
        let newly =
            status::ready(route.status.as_ref()).is_none_or(|c| c.reason != "DuplicateRoute");
        write_status(
            route,
            ctx,
            Report {
                ready: Some(CondValue::no("DuplicateRoute", message.clone())),
                synced: Some(CondValue::no("DuplicateRoute", message.clone())),
                ..Default::default()
            },
        )
        .await?;
        if newly {
            publish(
                ctx,
                route,
                EventType::Warning,
                "DuplicateRoute",
                "Claim",
                message,
            )
            .await;
        }
        return Ok(Action::requeue(ctx.settings.resync));
    }

    let owner = ObjectRef::from_obj(route);
    let key = object_key(route);
    let quiet = ctx.settings.list_max_age.min(ctx.settings.resync / 2);
    if ctx.verified.recent(&key, route.metadata.generation, quiet) && !ctx.scheduler.has_job(&owner)
    {
        // Nothing changed since it was seen in sync a moment ago (this is the echo of our own
        // status write): no cloud read until the next resync.
        return Ok(Action::requeue(resync_delay(route, ctx)));
    }
    let scope = ctx.scope(route).await?;
    let gw_key = scope.key();
    let mut last_request_id = None;
    let mut adopted_after_conflict = false;
    match ctx.scheduler.view(&owner, &gw_key) {
        Some(JobView::Pending) => return Ok(Action::requeue(WAIT_FOR_SCHEDULER)),
        Some(JobView::Accepted {
            confirmed: false, ..
        }) => return Ok(Action::requeue(WAIT_FOR_SCHEDULER)),
        Some(JobView::Accepted {
            accepted,
            confirmed: true,
        }) => {
            ctx.scheduler.forget(&owner, &gw_key);
            last_request_id = accepted.request_id.clone();
        }
        Some(JobView::Failed { error: err, create }) => {
            ctx.scheduler.forget(&owner, &gw_key);
            if err.class() == ErrorClass::AlreadyExists {
                // Created meanwhile (by us before a restart, or by someone else): adopt it.
                ctx.cache.invalidate(&scope);
                adopted_after_conflict = true;
            } else if create
                && matches!(
                    err.class(),
                    ErrorClass::NeedsSpecChange
                        | ErrorClass::NeedsOutsideAction
                        | ErrorClass::NotFound
                )
            {
                // The cloud refused the create: nothing is in flight, so the token goes and
                // the identity fields may be corrected.
                return Err(Error::CreateRefused(err));
            } else {
                return Err(Error::Cloud {
                    op: "mutation",
                    source: err,
                });
            }
        }
        None => {}
    }

    let facts = ctx
        .cache
        .facts(&scope, ctx.settings.facts_max_age)
        .await
        .map_err(|e| cloud("DescribeVpnGateway", e))?;
    // Woken because our own change went through: the cached list already holds it, so it
    // serves for longer; other reconciles (resync, spec change) want a recent read.
    let max_age = if last_request_id.is_some() {
        ctx.settings.resync
    } else {
        ctx.settings.list_max_age
    };
    let entries = ctx
        .cache
        .entries(&scope, max_age)
        .await
        .map_err(|e| cloud("DescribeVpnPbrRouteEntries", e))?;
    let entry = plan::find(&route.spec, &entries).cloned();
    let gateway_status = ctx
        .scheduler
        .gateway_status(&gw_key)
        .unwrap_or_else(|| facts.status.clone());

    if !full {
        return observe_only(route, ctx, entry, &facts, gateway_status).await;
    }

    let Some(entry) = entry else {
        return create(route, ctx, &scope, &facts).await;
    };
    let adopted = adopted_after_conflict
        || (route
            .status
            .as_ref()
            .is_none_or(|s| s.create_time.is_none())
            && last_request_id.is_none());
    let partner = plan::has_partner(&route.spec, &entries);
    match plan::update(&route.spec, &entry, &facts, partner) {
        Step::Mutate(mutation) => {
            debug!(route = %object_key(route), action = mutation.action(), "queueing change");
            ctx.scheduler.submit(&owner, &scope, mutation);
            Ok(Action::requeue(WAIT_FOR_SCHEDULER))
        }
        Step::InSync => {
            if ctx.scheduler.gateway_settling(&gw_key) && last_request_id.is_none() && !adopted {
                // Someone else's change is being applied; our own entry is fine as listed.
                debug!(route = %object_key(route), "in sync while gateway settles");
            }
            let was_ready = status::ready(route.status.as_ref())
                .is_some_and(|c| c.status == ConditionStatus::True);
            write_status(
                route,
                ctx,
                Report {
                    ready: Some(CondValue::yes(
                        "Available",
                        "the cloud entry matches the spec",
                    )),
                    synced: Some(CondValue::yes("Synced", "")),
                    entry: Some(entry.clone()),
                    gateway_status: Some(gateway_status),
                    client_token: Some(None),
                    last_request_id: last_request_id.clone(),
                    ..Default::default()
                },
            )
            .await?;
            if adopted {
                info!(route = %object_key(route), "adopted existing cloud entry");
                publish(
                    ctx,
                    route,
                    EventType::Normal,
                    "Adopted",
                    "Adopt",
                    "adopted the existing cloud entry".to_owned(),
                )
                .await;
            } else if let Some(id) = &last_request_id {
                let (reason, note) = if was_ready {
                    ("Updated", format!("cloud entry updated (RequestId {id})"))
                } else {
                    ("Created", format!("cloud entry created (RequestId {id})"))
                };
                publish(ctx, route, EventType::Normal, reason, "Sync", note).await;
            }
            ctx.verified.mark(&key, route.metadata.generation);
            Ok(Action::requeue(resync_delay(route, ctx)))
        }
    }
}

async fn create(
    route: &VpnPbrRoute,
    ctx: &Context,
    scope: &Scope,
    facts: &GatewayFacts,
) -> Result<Action> {
    // The token goes to status before the call, so a retry or a restart repeats the same
    // create and the cloud answers it without making a second entry.
    let token = match route.status.as_ref().and_then(|s| s.client_token.clone()) {
        Some(t) => t,
        None => {
            let t = uuid::Uuid::new_v4().to_string();
            write_status(
                route,
                ctx,
                Report {
                    ready: Some(CondValue::no("Creating", "creating the cloud entry")),
                    synced: Some(CondValue::no("Creating", "creating the cloud entry")),
                    entry_absent: true,
                    client_token: Some(Some(t.clone())),
                    ..Default::default()
                },
            )
            .await?;
            t
        }
    };
    let mutation = plan::create(&route.spec, facts, &token);
    ctx.scheduler
        .submit(&ObjectRef::from_obj(route), scope, mutation);
    Ok(Action::requeue(WAIT_FOR_SCHEDULER))
}

async fn observe_only(
    route: &VpnPbrRoute,
    ctx: &Context,
    entry: Option<Entry>,
    facts: &GatewayFacts,
    gateway_status: String,
) -> Result<Action> {
    let report = match entry {
        None => Report {
            ready: Some(CondValue::no(
                "NotFound",
                "no such entry on the gateway (ObserveOnly: not created)",
            )),
            synced: Some(CondValue::no("NotFound", "no such entry on the gateway")),
            entry_absent: true,
            gateway_status: Some(gateway_status),
            ..Default::default()
        },
        Some(e) => {
            let drift = plan::drift(&route.spec, &e, facts);
            let synced = if drift.fields.is_empty() {
                CondValue::yes("Synced", "the cloud entry matches the spec")
            } else {
                CondValue::no(
                    "Drift",
                    format!(
                        "the cloud differs in {} (ObserveOnly: not changed)",
                        drift.fields.join(", ")
                    ),
                )
            };
            Report {
                ready: Some(CondValue::yes("Available", "the cloud entry exists")),
                synced: Some(synced),
                entry: Some(e),
                gateway_status: Some(gateway_status),
                ..Default::default()
            }
        }
    };
    write_status(route, ctx, report).await?;
    Ok(Action::requeue(resync_delay(route, ctx)))
}

async fn cleanup(route: &VpnPbrRoute, ctx: &Context) -> Result<Action> {
    let owner = ObjectRef::from_obj(route);
    if !route.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    // A refused duplicate never owned the entry: its older twin keeps it.
    let keep = route.spec.deletion_policy == DeletionPolicy::Orphan
        || route.spec.management_policy == ManagementPolicy::ObserveOnly
        || duplicates::older_claim_in(route, &ctx.stores).is_some();
    if keep {
        return remove_finalizer(route, ctx).await;
    }
    if paused(route) {
        // Paused means no cloud call, deletion included: unpause to let the delete happen.
        return Ok(Action::await_change());
    }
    let owns_nothing = route
        .status
        .as_ref()
        .is_none_or(|s| s.create_time.is_none() && s.client_token.is_none());
    if owns_nothing && !ctx.scheduler.has_job(&owner) {
        // Never created nor adopted, no create under way: nothing in the cloud is ours, so
        // the object goes without a call (even when its credentials never worked).
        return remove_finalizer(route, ctx).await;
    }
    let scope = ctx.scope(route).await?;
    let gw_key = scope.key();
    match ctx.scheduler.view(&owner, &gw_key) {
        Some(JobView::Pending) => {
            // A queued create or update is pointless now; one in flight is let finish.
            ctx.scheduler.forget(&owner, &gw_key);
            if ctx.scheduler.view(&owner, &gw_key).is_some() {
                return Ok(Action::requeue(WAIT_FOR_SCHEDULER));
            }
        }
        Some(JobView::Accepted {
            confirmed: false, ..
        }) => return Ok(Action::requeue(WAIT_FOR_SCHEDULER)),
        Some(JobView::Accepted { .. }) => ctx.scheduler.forget(&owner, &gw_key),
        Some(JobView::Failed { error: err, .. }) => {
            ctx.scheduler.forget(&owner, &gw_key);
            if !err.is_gone() {
                return Err(Error::Cloud {
                    op: "delete",
                    source: err,
                });
            }
        }
        None => {}
    }
    let facts = match ctx.cache.facts(&scope, ctx.settings.facts_max_age).await {
        Ok(f) => f,
        Err(e) if e.is_gone() => return remove_finalizer(route, ctx).await,
        Err(e) => return Err(cloud("DescribeVpnGateway", e)),
    };
    let entries = match ctx.cache.entries(&scope, ctx.settings.list_max_age).await {
        Ok(e) => e,
        Err(e) if e.is_gone() => return remove_finalizer(route, ctx).await,
        Err(e) => return Err(cloud("DescribeVpnPbrRouteEntries", e)),
    };
    match plan::find(&route.spec, &entries) {
        None => {
            publish(
                ctx,
                route,
                EventType::Normal,
                "Deleted",
                "Delete",
                "cloud entry deleted".to_owned(),
            )
            .await;
            remove_finalizer(route, ctx).await
        }
        Some(entry) => {
            let mutation: Mutation = plan::delete(entry, &facts);
            ctx.scheduler.submit(&owner, &scope, mutation);
            Ok(Action::requeue(WAIT_FOR_SCHEDULER))
        }
    }
}

fn cloud(op: &'static str, e: CloudError) -> Error {
    Error::Cloud {
        op,
        source: Arc::new(e),
    }
}

fn paused(route: &VpnPbrRoute) -> bool {
    route
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Parses durations like `90s`, `5m`, `1h`, `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    if !num.is_empty() || total == 0 {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// Time until the next drift check. Routes of one gateway line up on the same tick, so one
/// list call serves all of them; gateways are spread over the period.
fn resync_delay(route: &VpnPbrRoute, ctx: &Context) -> Duration {
    let period = route
        .annotations()
        .get(RESYNC_ANNOTATION)
        .and_then(|v| parse_duration(v))
        .unwrap_or(ctx.settings.resync);
    let jitter = Duration::from_millis(rand::rng().random_range(0..250));
    aligned_delay(&route.spec.vpn_gateway_id, period, now_millis()) + jitter
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Delay until the gateway's next tick: ticks are `period` apart, offset by a hash of the
/// gateway id.
pub fn aligned_delay(gateway: &str, period: Duration, now_ms: u128) -> Duration {
    let period_ms = period.as_millis().max(1);
    let offset = u128::from(
        gateway
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))),
    ) % period_ms;
    let phase = (now_ms + period_ms - offset) % period_ms;
    let wait = period_ms - phase;
    Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX))
}

async fn add_finalizer(route: &VpnPbrRoute, ctx: &Context) -> Result<()> {
    let api = api(route, ctx)?;
    let patch = if route.metadata.finalizers.is_none() {
        json!([{ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] }])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": route.finalizers() },
            { "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER }
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|_| Error::MissingField("finalizer patch"))?;
    api.patch(
        &route.name_any(),
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await
    .map_err(|e| Error::kube("add finalizer", e))?;
    Ok(())
}

async fn remove_finalizer(route: &VpnPbrRoute, ctx: &Context) -> Result<Action> {
    let api = api(route, ctx)?;
    let Some(i) = route.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(Action::await_change());
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER },
        { "op": "remove", "path": format!("/metadata/finalizers/{i}") }
    ]))
    .map_err(|_| Error::MissingField("finalizer patch"))?;
    match api
        .patch(
            &route.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(Error::kube("remove finalizer", e)),
    }
    ctx.backoffs.reset(&object_key(route));
    ctx.verified.forget(&object_key(route));
    Ok(Action::await_change())
}

fn api(route: &VpnPbrRoute, ctx: &Context) -> Result<Api<VpnPbrRoute>> {
    let ns = route
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    Ok(Api::namespaced(ctx.client.clone(), &ns))
}

/// Writes status with server-side apply, only when it changes.
async fn write_status(route: &VpnPbrRoute, ctx: &Context, report: Report) -> Result<()> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let new = status::build(
        route.status.as_ref(),
        report,
        route.metadata.generation,
        &now,
    );
    if route.status.as_ref() == Some(&new) {
        return Ok(());
    }
    apply_status(route, ctx, &new).await
}

async fn apply_status(
    route: &VpnPbrRoute,
    ctx: &Context,
    status: &VpnPbrRouteStatus,
) -> Result<()> {
    let api = api(route, ctx)?;
    let patch = json!({
        "apiVersion": VpnPbrRoute::api_version(&()),
        "kind": VpnPbrRoute::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &route.name_any(),
            &PatchParams::apply(&ctx.settings.manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to report on.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("write status", e)),
    }
}

async fn report_failure(route: &VpnPbrRoute, ctx: &Context, err: &Error) -> Result<()> {
    // Build on the newest status: the cached object may predate our own last write (the
    // client token), and server-side apply would drop what this write leaves out.
    let fresh = match api(route, ctx)?.get_opt(&route.name_any()).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(()),
        Err(e) => return Err(Error::kube("read route", e)),
    };
    let route = &fresh;
    let reason = err.reason();
    let message = err.message();
    let request_id = match err {
        Error::Cloud { source, .. } | Error::CreateRefused(source) => {
            source.request_id().map(str::to_owned)
        }
        _ => None,
    };
    let client_token: Option<Option<String>> =
        matches!(err, Error::CreateRefused(_)).then_some(None);
    let previous = status::ready(route.status.as_ref()).map(|c| c.reason.clone());
    let ready = if route.metadata.deletion_timestamp.is_some() {
        CondValue::no(reason.clone(), format!("deleting: {message}"))
    } else {
        CondValue::no(reason.clone(), message.clone())
    };
    write_status(
        route,
        ctx,
        Report {
            ready: Some(ready),
            synced: Some(CondValue::no(reason.clone(), message.clone())),
            last_request_id: request_id,
            client_token,
            ..Default::default()
        },
    )
    .await?;
    if previous.as_deref() != Some(reason.as_str()) {
        publish(ctx, route, EventType::Warning, &reason, "Sync", message).await;
    }
    Ok(())
}

async fn publish(
    ctx: &Context,
    route: &VpnPbrRoute,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.chars().take(128).collect(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &route.object_ref(&())).await {
        warn!(route = %object_key(route), error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("0s"), None);
    }

    #[test]
    fn routes_of_a_gateway_share_a_tick() {
        let p = Duration::from_secs(600);
        let a = aligned_delay("vpn-a", p, 1_000_000);
        let b = aligned_delay("vpn-a", p, 1_000_000 + 1234);
        assert_eq!(a.as_millis() - b.as_millis(), 1234, "same tick");
        assert!(a <= p && a > Duration::ZERO);
        assert_ne!(
            aligned_delay("vpn-b", p, 1_000_000),
            a,
            "gateways spread over the period"
        );
    }
}
