//! One reconcile of one `VpnPbrRoute`, as a thin executor (docs/architecture.md): observe the
//! object, its job and its gateway, let [`decide`] decide, act on the decision, report
//! failures. Every rule lives in `decide.rs` (and `plan.rs`); nothing here chooses.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{debug, warn};

use super::accounts::Account;
use super::context::Context;
use super::decide::{
    self, AccountGate, AccountRead, CloudRead, Decision, JobOp, Next, Observation,
};
use super::entries::Read;
use super::error::{Error, Result};
use super::job::{Owner, owner_of};
use super::metrics;
use super::model::{Freshness, Scope};
use super::status::{self, StatusReport};
use crate::api::v1alpha1::{FINALIZER, OPERATOR_ACCOUNT, VpnPbrRoute};

/// How long the first reconcile of a gateway waits for the gateway's first read (see
/// `GatewayCache::await_first_read`).
const FIRST_READ_WAIT: Duration = Duration::from_millis(500);
/// How soon a route is looked at again while the caches of accounts and namespaces fill.
const TENANCY_WAIT: Duration = Duration::from_millis(500);
/// How soon a decision made on a copy older than the object is made again on the newest.
const STALE_COPY_RETRY: Duration = Duration::from_millis(200);
/// How soon a decision whose records the fence held back is made again (the fence's own
/// retry for cloud changes, `crate::fence`).
const FENCE_RETRY: Duration = Duration::from_secs(1);

/// A failed reconcile, and why a cleanup used other credentials than the route's.
struct Failed {
    error: Error,
    credentials_fallback: Option<String>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Self {
            error,
            credentials_fallback: None,
        }
    }
}

/// Entry point for the controller: runs one reconcile, turns failures into status, events,
/// metrics and a per-object backoff, and never returns an error to the runtime (so a status
/// write of our own cannot bypass the backoff).
pub async fn reconcile(route: Arc<VpnPbrRoute>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(&route);
    // The prompt lane (prompt.rs) reconciles some routes beside the controller's queue.
    let _turn = ctx.turns.take(&key).await;
    if ctx.echoes.was_let_go(&key, route.metadata.uid.as_deref()) {
        // A copy from before we removed our finalizer: nothing is ours to do any more.
        return Ok(Action::await_change());
    }
    let timer = metrics::ReconcileTimer::start(&ctx.metrics);
    if !decide::skips_backoff(&route)
        && let Some(wait) = ctx.backoffs.wait(&key, route.metadata.generation)
    {
        timer.finish("backoff");
        return Ok(Action::requeue(wait));
    }
    if !ctx.tenancy.synced() {
        // Before the caches of accounts and namespaces are filled, a named account would look
        // missing.
        debug!(route = %key, "waiting for the caches of accounts and namespaces");
        timer.finish("backoff");
        return Ok(Action::requeue(TENANCY_WAIT));
    }
    match run(&route, &ctx).await {
        Ok(action) => {
            ctx.backoffs.reset(&key);
            timer.finish("success");
            debug!(route = %key, next = ?action, "reconciled");
            Ok(action)
        }
        Err(failed) => {
            let err = &failed.error;
            let policy = err.policy();
            ctx.verified.forget(&key);
            let delay = ctx.backoffs.failure(
                &key,
                policy.pace,
                route.metadata.generation,
                ctx.entropy.unit(),
            );
            let reason = err.reason();
            timer.finish(reason.as_str());
            warn!(route = %key, reason = %reason, class = %policy.class, retry_in = ?delay, error = %err.message(), "reconcile failed");
            if let Err(e) = report_failure(&route, &ctx, &failed).await {
                warn!(route = %key, error = %e, "could not record the failure");
            }
            Ok(Action::requeue(delay))
        }
    }
}

pub(crate) fn error_policy(_route: Arc<VpnPbrRoute>, _err: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}

pub(crate) fn object_key(route: &VpnPbrRoute) -> String {
    format!(
        "{}/{}",
        route.namespace().unwrap_or_default(),
        route.name_any()
    )
}

/// Observe, decide, act; once more after a gateway read when the first decision asks for one.
async fn run(observed: &VpnPbrRoute, ctx: &Context) -> Result<Action, Failed> {
    let owner = owner_of(observed);
    let key = object_key(observed);
    ctx.echoes
        .deciding(&key, observed.metadata.resource_version.as_deref());
    // Our own copy: a finalizer added here is seen by the second decision.
    let mut route = observed.clone();
    let older_claim = ctx.objects.older_claim(&route);
    let publish_conflict = ctx.objects.publish_conflict(&route);
    let new_token = ctx.entropy.token();
    let quiet = ctx.settings.list_max_age.min(ctx.settings.resync / 2);
    let recently_verified = ctx.verified.recent(&key, route.metadata.generation, quiet);
    let job = ctx.scheduler.job(&owner);
    // The account the route acts in (a live route: or why it may not); a deleted route's
    // cleanup acts in the account that holds its entry.
    let deleting = route.metadata.deletion_timestamp.is_some();
    let resolution = (!deleting).then(|| ctx.tenancy.resolve(&route));
    let cleanup_account = deleting.then(|| match ctx.tenancy.resolve_for_cleanup(&route) {
        Ok(held) => held.name,
        Err(gone) => gone,
    });
    let held_by = match (&resolution, &cleanup_account) {
        (Some(Ok(held)), _) => AccountGate::Open {
            name: &held.name,
            adoption: held.allows_adoption(),
        },
        (Some(Err(refusal)), _) => AccountGate::Refused(refusal),
        (None, name) => AccountGate::Open {
            name: name.as_deref().unwrap_or(OPERATOR_ACCOUNT),
            adoption: false,
        },
    };
    let first = decide::decide(&Observation {
        route: &route,
        older_claim: older_claim.as_deref(),
        publish_conflict: publish_conflict.as_deref(),
        publish_sharers: &[],
        job: job.as_ref(),
        recently_verified,
        cloud: CloudRead::NotRead,
        new_token: &new_token,
        credentials_fallback: None,
        account: AccountRead::NotRead,
        held_by,
    });
    let read_wanted = match first.next {
        Some(Next::Read(fresh)) => Some(fresh),
        _ => None,
    };
    let done = act(&mut route, ctx, &owner, None, &first).await?;
    let (Some(fresh), None) = (read_wanted, &done) else {
        return Ok(done.unwrap_or_else(Action::await_change));
    };

    let (scope, fallback) = match &resolution {
        None => ctx.cleanup_scope(&route, &key).await?,
        Some(Ok(held)) => (ctx.scope(&route, held).await?, None),
        // The gate refused the route before any read: never reached.
        Some(Err(_)) => return Ok(Action::await_change()),
    };
    // A cleanup needs the account to judge the answers it gets; otherwise it is only recorded,
    // and a route does not wait long for it (one call per credentials, then known).
    let account = ctx
        .accounts
        .lookup(&scope, (!deleting).then_some(FIRST_READ_WAIT))
        .await;
    let mut read = read_gateway(ctx, &scope, &owner, fresh);
    if matches!(read, Read::Pending) && ctx.cache.await_first_read(&scope, FIRST_READ_WAIT).await {
        if changed_meanwhile(&route, ctx).await? {
            // Paused, edited or deleted while we waited: the next reconcile decides on that.
            return Ok(Action::requeue(Duration::ZERO));
        }
        read = read_gateway(ctx, &scope, &owner, fresh);
    }
    let job = ctx.scheduler.job(&owner);
    // Only a publish that would change other entries needs the objects sharing them.
    let publish_sharers = match &read {
        Read::Ready { entries, .. } if decide::publish_touches_others(&route, entries) => {
            ctx.objects.publish_sharers(&route)
        }
        _ => Vec::new(),
    };
    let second = decide::decide(&Observation {
        route: &route,
        older_claim: older_claim.as_deref(),
        publish_conflict: publish_conflict.as_deref(),
        publish_sharers: &publish_sharers,
        job: job.as_ref(),
        recently_verified,
        cloud: match &read {
            Read::Ready { facts, entries } => CloudRead::Ready {
                facts,
                entries: entries.as_slice(),
            },
            Read::Pending => CloudRead::Pending,
            Read::Failed(e) => CloudRead::Failed(e),
        },
        new_token: &new_token,
        credentials_fallback: fallback.as_deref(),
        account: match &account {
            Account::Known(a) => AccountRead::Known(a),
            Account::Failed(e) => AccountRead::Failed(e),
            Account::Pending => AccountRead::Pending,
        },
        held_by,
    });
    if second.credentials_worked {
        ctx.credentials_worked(&key, &scope.credentials);
    }
    if refuses_an_entry(&second) && is_stale(&route, ctx).await? {
        // Refusing an entry is one-way (the object gives up what it made): never on a copy
        // older than the object's own last status write. Decide again on the newest.
        return Ok(Action::requeue(STALE_COPY_RETRY));
    }
    // A decision on the read that wants a newer one (the list is behind what the cloud has
    // just answered): nothing else would bring the route back, so it is looked at again once
    // the list it had is too old to be served.
    let read_again = matches!(second.next, Some(Next::Read(_)));
    act(&mut route, ctx, &owner, Some(&scope), &second)
        .await
        .map_err(|f| Failed {
            credentials_fallback: f.credentials_fallback.or(fallback),
            ..f
        })
        .map(|a| {
            a.unwrap_or_else(|| match read_again {
                true => Action::requeue(ctx.settings.list_max_age),
                false => Action::await_change(),
            })
        })
}

/// Whether a decision refuses the listed entry as not the object's own.
fn refuses_an_entry(d: &Decision) -> bool {
    d.refuses_an_entry()
}

/// Whether what decisions depend on (spec, annotations, deletion) changed on the API server
/// since `route` was observed; our own finalizer and status writes do not count.
async fn changed_meanwhile(route: &VpnPbrRoute, ctx: &Context) -> Result<bool, Failed> {
    Ok(newest_copy(route, ctx)
        .await?
        .is_none_or(|fresh| decisions_changed(route, &fresh)))
}

/// Annotation `kubectl apply` writes: never read by decisions, so the cache drops it
/// (runner.rs `trim`).
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `fresh` differs from the cached `seen` in what decisions read: generation (the
/// spec), annotations (the cache's copy has no `LAST_APPLIED`) and deletion.
fn decisions_changed(seen: &VpnPbrRoute, fresh: &VpnPbrRoute) -> bool {
    let read = |r: &VpnPbrRoute| -> Vec<(String, String)> {
        r.metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != LAST_APPLIED)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    fresh.metadata.generation != seen.metadata.generation
        || read(fresh) != read(seen)
        || fresh.metadata.deletion_timestamp != seen.metadata.deletion_timestamp
}

/// Whether the watch cache's copy of the route is older than the API server's.
async fn is_stale(route: &VpnPbrRoute, ctx: &Context) -> Result<bool, Failed> {
    Ok(newest_copy(route, ctx)
        .await?
        .is_some_and(|f| f.metadata.resource_version != route.metadata.resource_version))
}

/// The API server's copy of `route` (`None` when it is gone).
async fn newest_copy(route: &VpnPbrRoute, ctx: &Context) -> Result<Option<VpnPbrRoute>, Failed> {
    let ns = route.namespace().unwrap_or_default();
    ctx.objects
        .get(&ns, &route.name_any())
        .await
        .map_err(|e| Error::kube("read route", e).into())
}

/// The gateway's facts (with the scheduler's newer view of its status) and entries.
fn read_gateway(ctx: &Context, scope: &Scope, owner: &Owner, fresh: Freshness) -> Read {
    let list_max_age = match fresh {
        // The scheduler invalidated the list when the create was refused as existing.
        Freshness::Now => ctx.settings.list_max_age,
        Freshness::Recent | Freshness::Recheck => ctx.settings.list_max_age,
        Freshness::Cached | Freshness::Create => ctx.settings.resync,
    };
    // `Now` wants the gateway's own word on its status too: facts read after this moment (the
    // refusal that asked for them), not the scheduler's view (which infers `active` from time).
    let now = fresh == Freshness::Now;
    let facts_max_age = if now {
        Duration::ZERO
    } else {
        ctx.settings.facts_max_age
    };
    match ctx.cache.read(
        scope,
        owner,
        facts_max_age,
        list_max_age,
        fresh.priority(ctx.scheduler.quiet(&scope.key()) && ctx.prompt.alone(owner)),
    ) {
        Read::Ready { mut facts, entries } => {
            if let Some(status) = ctx.scheduler.gateway_status(&scope.key()).filter(|_| !now) {
                facts.status = status;
            }
            Read::Ready { facts, entries }
        }
        other => other,
    }
}

/// Carries out a decision in order: finalizer, status, job, events, finalizer removal.
/// Returns the requeue, or `None` for a decision that only prepared a read.
async fn act(
    route: &mut VpnPbrRoute,
    ctx: &Context,
    owner: &Owner,
    scope: Option<&Scope>,
    d: &Decision,
) -> Result<Option<Action>, Failed> {
    let key = object_key(route);
    // A job no longer wanted is cancelled first: a failed status write must not let it out.
    // (A finished one is dropped after its outcome is recorded, below.)
    let job = ctx.scheduler.job(owner);
    let unsent = matches!(
        job,
        Some(super::job::JobView::Queued { .. } | super::job::JobView::InFlight)
    );
    // Judged on the status the decision was made on, before this act writes the new one.
    let repairs_drift = matches!(&d.job, Some(JobOp::Submit(m))
        if metrics::repairs_drift(route, job.is_none(), m));
    if let Some(JobOp::Drop) = &d.job
        && unsent
        && !ctx.scheduler.drop_job(owner)
    {
        // On the wire: its answer wakes the route.
        debug!(route = %key, "job in flight; waiting for it");
        return Ok(Some(Action::await_change()));
    }
    if (d.add_finalizer || d.status.is_some() || d.remove_finalizer) && !ctx.may_record() {
        // The Lease may be another replica's by now (a cut-off from the apiserver ends before
        // the loss is learnt): what this replica decided, on a job or a copy from before, is
        // not recorded over what the new leader recorded since.
        debug!(route = %key, "not recording: the leader Lease is not confirmed ours");
        return Ok(Some(Action::requeue(FENCE_RETRY)));
    }
    if d.add_finalizer {
        let write = ctx.echoes.writing(&key);
        route.metadata.resource_version = match ctx.objects.add_finalizer(route).await {
            Ok(version) => {
                write.wrote(version.as_deref());
                version
            }
            // The patch's test of our copy's generation (or finalizers) failed: the object
            // changed, so nothing of this decision is done and its newest copy decides again.
            Err(e) if is_test_failed(&e) => {
                debug!(route = %key, "finalizer patch refused: the object changed; deciding again");
                return Ok(Some(Action::requeue(STALE_COPY_RETRY)));
            }
            Err(e) => return Err(Error::kube("add finalizer", e).into()),
        };
        route
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .push(FINALIZER.to_owned());
    }
    if let Some(report) = &d.status {
        match write_status(route, ctx, report.clone()).await {
            Ok(()) if route.metadata.resource_version.is_none() => {
                // The object is gone (it had no finalizer of ours, so nothing was ever sent for
                // it): nothing of this decision is for it any more, least of all a create whose
                // token no object holds.
                debug!(route = %key, "object gone before its status was written; nothing done");
                ctx.scheduler.drop_job(owner);
                return Ok(Some(Action::await_change()));
            }
            Ok(()) => {}
            Err(e) if is_conflict(&e) => {
                // Our copy is older than the object (a watch that has not yet delivered our
                // own last write): nothing else of this decision is done, the newest copy
                // decides again.
                debug!(route = %key, "status write refused: the object changed; deciding again");
                return Ok(Some(Action::requeue(STALE_COPY_RETRY)));
            }
            Err(e) => return Err(Error::kube("write status", e).into()),
        }
    }
    match &d.job {
        Some(JobOp::Drop) => {
            if !ctx.scheduler.drop_job(owner) {
                // On the wire: its outcome comes first (its answer wakes the route), nothing
                // else is done meanwhile.
                debug!(route = %key, "job in flight; waiting for it");
                return Ok(Some(Action::await_change()));
            }
        }
        Some(JobOp::Submit(mutation)) => {
            let scope = scope.ok_or(Error::MissingField("gateway scope of a change"))?;
            debug!(route = %key, action = mutation.action(), "queueing change");
            if repairs_drift {
                ctx.metrics.drift_detected(route.spec.management_policy);
            }
            ctx.scheduler.submit(
                owner,
                scope,
                mutation.clone(),
                route.metadata.generation,
                ctx.prompt.alone(owner),
            );
        }
        Some(JobOp::Keep) | None => {}
    }
    for event in &d.events {
        ctx.objects.publish(route, event).await;
    }
    if d.verified {
        ctx.verified.mark(&key, route.metadata.generation);
    }
    if d.remove_finalizer {
        ctx.objects
            .remove_finalizer(route)
            .await
            .map_err(|e| Error::kube("remove finalizer", e))?;
        ctx.forget_route(&key);
        ctx.echoes.let_go(&key, route.metadata.uid.as_deref());
    }
    if let Some(f) = &d.failure {
        return Err(Error::from(f.clone()).into());
    }
    Ok(action_of(d.next, || resync_delay(route, ctx)))
}

/// The requeue of a decision's `next`; `None` when it only prepared a read.
fn action_of(next: Option<Next>, resync: impl FnOnce() -> Duration) -> Option<Action> {
    match next {
        Some(Next::Read(_)) => None,
        Some(Next::Resync) => Some(Action::requeue(resync())),
        // No timer while the scheduler holds the job or a gateway read is under way for the
        // route: each wakes it when it moves on (the read however it ends: `entries.rs`
        // `ReadEnding`). With thousands of routes behind busy gateways each timer would be an
        // entry in the controller's delay queue and, when it fires, a reconcile that finds the
        // same job or read under way.
        Some(Next::Wake | Next::AwaitRead | Next::AwaitChange | Next::Backoff) | None => {
            Some(Action::await_change())
        }
    }
}

/// Time until the next drift check. Routes of one gateway line up on the same tick, so one
/// list call serves all of them; gateways are spread over the period. A route just made or
/// verified is not checked again at a tick that comes moments later: during a burst that
/// was a list per gateway and two reconciles per route, for entries read back minutes before.
fn resync_delay(route: &VpnPbrRoute, ctx: &Context) -> Duration {
    let period = decide::resync_period(route, ctx.settings.resync);
    let jitter = Duration::from_secs_f64(0.25 * ctx.entropy.unit());
    let now_ms = u128::try_from(ctx.entropy.wall_ms()).unwrap_or_default();
    aligned_delay(&route.spec.vpn_gateway_id, period, now_ms) + jitter
}

/// Delay until the gateway's first tick at least half a `period` away (so half a period to one
/// and a half, a period on average; from a tick, the next): ticks are `period` apart, offset
/// by a hash of the gateway id.
pub(crate) fn aligned_delay(gateway: &str, period: Duration, now_ms: u128) -> Duration {
    let period_ms = period.as_millis().max(1);
    let offset = u128::from(
        gateway
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b))),
    ) % period_ms;
    let phase = (now_ms + period_ms - offset) % period_ms;
    let wait = period_ms - phase;
    let wait = if wait < period_ms / 2 {
        wait + period_ms
    } else {
        wait
    };
    Duration::from_millis(u64::try_from(wait).unwrap_or(u64::MAX))
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// A JSON patch whose `test` op failed: the apiserver answers 422 Invalid without naming a
/// field (a validation failure names the field in its causes).
fn is_test_failed(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s)
        if s.code == 422 && s.details.as_ref().is_none_or(|d| d.causes.is_empty()))
}

/// Writes status, only when it changes, on the condition that `route` is still the object's
/// newest copy (`ObjectPort::write_status`); `route` then holds what was written.
async fn write_status(
    route: &mut VpnPbrRoute,
    ctx: &Context,
    report: StatusReport,
) -> Result<(), kube::Error> {
    let now = status_time(ctx);
    let new = status::build(
        route.status.as_ref(),
        report,
        route.metadata.generation,
        &now,
    );
    if !status::worth_writing(route.status.as_ref(), &new) {
        return Ok(());
    }
    let write = ctx.echoes.writing(&object_key(route));
    let version = ctx.objects.write_status(route, &new).await?;
    write.wrote(version.as_deref());
    ctx.metrics
        .status_written(route, route.status.as_ref(), &new, ctx.entropy.wall_ms());
    route.status = Some(new);
    route.metadata.resource_version = version;
    Ok(())
}

/// The time a status write stamps on conditions that flip: RFC 3339, seconds.
pub(crate) fn status_time(ctx: &Context) -> String {
    jiff::Timestamp::from_millisecond(ctx.entropy.wall_ms())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn report_failure(route: &VpnPbrRoute, ctx: &Context, failed: &Failed) -> Result<()> {
    if !ctx.may_record() {
        // As in `act`: no records while the Lease may be another replica's.
        return Ok(());
    }
    // Build on the newest status: the cached object may predate our own last write (the
    // client token), and a status write replaces what it leaves out.
    let ns = route.namespace().unwrap_or_default();
    let Some(mut fresh) = ctx
        .objects
        .get(&ns, &route.name_any())
        .await
        .map_err(|e| Error::kube("read route", e))?
    else {
        return Ok(());
    };
    let (mut report, event) = decide::failure(
        &fresh,
        &failed.error,
        failed.credentials_fallback.as_deref(),
    );
    // Whether the failure waits for someone (`Stalled`) is its policy's to say.
    report.cause = Some(failed.error.policy());
    write_status(&mut fresh, ctx, report)
        .await
        .map_err(|e| Error::kube("write status", e))?;
    if let Some(e) = event {
        ctx.objects.publish(&fresh, &e).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_timed_requeue_is_kept_for_a_route_the_scheduler_or_a_read_will_wake() {
        let resync = || Duration::from_secs(600);
        let rows = [
            (
                Next::Wake,
                Some(Action::await_change()),
                "the scheduler wakes it",
            ),
            (
                Next::AwaitRead,
                Some(Action::await_change()),
                "the read cache wakes it when the read ends",
            ),
            (Next::Resync, Some(Action::requeue(resync())), "drift check"),
            (
                Next::Read(Freshness::Recent),
                None,
                "decides again after the read",
            ),
            (
                Next::AwaitChange,
                Some(Action::await_change()),
                "a change brings it back",
            ),
        ];
        for (next, want, why) in rows {
            assert_eq!(action_of(Some(next), resync), want, "{next:?}: {why}");
        }
    }

    #[test]
    fn only_what_decisions_read_counts_as_changed_meanwhile() {
        let annotated = |pairs: &[(&str, &str)]| {
            let mut r: VpnPbrRoute = serde_json::from_value(serde_json::json!({
                "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
                "metadata": {"name": "r", "namespace": "ns"},
                "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                         "routeSource": "192.168.1.0/24", "routeDest": "10.0.0.0/16",
                         "nextHop": "vco-1", "weight": 100, "publishVpc": false}
            }))
            .expect("route");
            r.metadata.generation = Some(1);
            r.metadata.annotations = Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            r
        };
        // The cache's copy lacks the annotation kubectl apply writes: not a change.
        let cached = annotated(&[]);
        let applied = annotated(&[(LAST_APPLIED, "{}")]);
        assert!(!decisions_changed(&cached, &applied));
        let paused = annotated(&[
            (LAST_APPLIED, "{}"),
            (crate::api::v1alpha1::PAUSED_ANNOTATION, "true"),
        ]);
        assert!(decisions_changed(&cached, &paused));
        let mut edited = applied.clone();
        edited.metadata.generation = Some(2);
        assert!(decisions_changed(&cached, &edited));
        let mut deleted = applied;
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().expect("time"),
            ));
        assert!(decisions_changed(&cached, &deleted));
    }

    #[test]
    fn routes_of_a_gateway_share_a_tick() {
        let p = Duration::from_secs(600);
        let a = aligned_delay("vpn-a", p, 1_000_000);
        let b = aligned_delay("vpn-a", p, 1_000_000 + 1234);
        assert_eq!(a.as_millis() - b.as_millis(), 1234, "same tick");
        assert!(a >= p / 2 && a <= p + p / 2);
        assert_ne!(
            aligned_delay("vpn-b", p, 1_000_000),
            a,
            "gateways spread over the period"
        );
    }

    #[test]
    fn the_next_drift_check_is_the_gateways_first_tick_at_least_half_a_period_away() {
        let p = Duration::from_secs(600);
        let tick = 1_000_000 + aligned_delay("vpn-a", p, 1_000_000).as_millis();
        for (name, now, want) in [
            ("at its tick: the next", tick, 600_000),
            ("just before its tick: the one after", tick - 1_000, 601_000),
            ("half a period before", tick - 300_000, 300_000),
            ("more than half a period before", tick - 300_001, 300_001),
            ("just after its tick", tick + 1_000, 599_000),
        ] {
            assert_eq!(aligned_delay("vpn-a", p, now).as_millis(), want, "{name}");
        }
    }
}
