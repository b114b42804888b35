//! Leader fencing by time: a leader sends cloud mutations only while its Lease is certainly
//! still its own.
//!
//! The Lease says who holds it and until when: `renewTime + leaseDurationSeconds`, on the
//! holder's clock. Another replica takes it over once that moment has passed on its own clock.
//! A leader that can no longer renew (the apiserver is unreachable from its node, its requests
//! time out) does not learn that it lost the Lease until it reaches the apiserver again, so it
//! cannot wait for that news: it stops by itself. [`watch_lease`] reads the Lease while leading
//! and moves the [`Fence`]'s deadline to `renewTime + leaseDurationSeconds - margin` each time
//! the Lease shows this replica renewed it; [`FencedCloud`] refuses every mutation once the
//! deadline has passed, and abandons a call still running at that moment (its retries
//! included), so every request it makes to the cloud leaves before the deadline. The margin
//! covers clock skew between nodes and the time a request needs to reach the cloud.
//!
//! The deadline is checked where a request really leaves: the client asks the fence through a
//! send gate (`alicloud_vpc_client::with_send_gate`) after the rate limiter, the credentials and
//! the signature, just before writing, so a mutation whose deadline passed while it waited is
//! never sent (a check before the call, or a timer racing the send, could not promise that).
//!
//! A fenced mutation fails with code [`FENCED`] and class `Throttled`: the gateway scheduler puts
//! the job back in its queue and tries again a second later, so a leader that renews again
//! (a short apiserver hiccup) carries on where it stopped, and one that lost the Lease stops its
//! controllers when it learns it (`app.rs`). A call abandoned in flight fails as `Transient`:
//! it may or may not have reached the cloud, so the route reads the truth again. Such a request
//! may still land after the abandonment, so the fence remembers it ([`Fence::abandoned`]) and
//! the leader then leaves its Lease to expire instead of releasing it early (`app.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::controller::model::{Accepted, Entry, GatewayFacts, Mutation, Scope};
use crate::controller::port::{CloudFuture, CloudPort};
use alicloud_vpc_client::{ApiError, CloudError, ErrorClass, SendGate, with_send_gate};

/// The code of a mutation refused or abandoned because the Lease may no longer be ours.
pub(crate) const FENCED: &str = "LeaderFenced";

/// How often the leader reads its Lease.
pub(crate) const LEASE_POLL: Duration = Duration::from_secs(1);

/// Until when this replica may send mutations; closed until the first deadline is set.
#[derive(Clone, Debug)]
pub struct Fence {
    deadline: Arc<watch::Sender<Option<Instant>>>,
    /// A call was abandoned in flight: its request may still land.
    abandoned: Arc<AtomicBool>,
}

impl Default for Fence {
    fn default() -> Self {
        Self::new()
    }
}

impl Fence {
    /// A closed fence.
    pub fn new() -> Self {
        Self {
            deadline: Arc::new(watch::Sender::new(None)),
            abandoned: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a mutation was abandoned in flight (it may still reach the cloud).
    pub(crate) fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    /// Records that a request may still land although its caller gave up on it.
    pub(crate) fn note_abandoned(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }

    /// The moment mutations stop, if any is set.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    /// Whether a mutation may be sent now.
    pub(crate) fn permits(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() < d)
    }

    /// Lets mutations through until `until` (earlier or later than before: the Lease decides).
    pub(crate) fn open_until(&self, until: Instant) {
        self.deadline.send_replace(Some(until));
    }

    /// Stops mutations now.
    pub(crate) fn close(&self) {
        self.deadline.send_replace(None);
    }

    /// Resolves once mutations are permitted (at once if they are now).
    pub async fn opened(&self) {
        let mut rx = self.deadline.subscribe();
        loop {
            if rx.borrow_and_update().is_some_and(|d| Instant::now() < d) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves once mutations are not permitted (at once if they are not now); a deadline
    /// moved while waiting is followed.
    pub(crate) async fn closed(&self) {
        let mut rx = self.deadline.subscribe();
        loop {
            let deadline = *rx.borrow_and_update();
            match deadline {
                Some(d) if Instant::now() < d => {
                    tokio::select! {
                        biased;
                        () = tokio::time::sleep_until(d) => {}
                        _ = rx.changed() => {}
                    }
                }
                _ => return,
            }
        }
    }
}

/// The deadline the Lease `lease` gives `identity`: `renewTime + leaseDurationSeconds -
/// margin`, moved from the wall clock (`wall_now`) to the monotonic one (`now`). `None` when
/// the Lease is not held by `identity`, says nothing about its expiry, or ends within the margin.
pub(crate) fn lease_deadline(
    lease: &Lease,
    identity: &str,
    margin: Duration,
    wall_now: SystemTime,
    now: Instant,
) -> Option<Instant> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds?).ok()?);
    let fenced_at = renewed.checked_add(duration)?.checked_sub(margin)?;
    let left = fenced_at.duration_since(wall_now).ok()?;
    Some(now + left)
}

/// Reads the Lease every `LEASE_POLL` until `stop`, keeping `fence` on the deadline the Lease
/// gives `identity`. A failed read leaves the deadline where it is, so it passes unless a later
/// read shows a renewal; a Lease held by someone else closes the fence at once.
/// `wall` is the wall clock (`SystemTime::now`; tests pass one that follows the paused clock).
pub async fn watch_lease<F, Fut>(
    mut read: F,
    wall: impl Fn() -> SystemTime,
    identity: &str,
    margin: Duration,
    fence: &Fence,
    stop: CancellationToken,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Lease, kube::Error>>,
{
    let mut was_open = false;
    loop {
        match read().await {
            Ok(lease) => match lease_deadline(&lease, identity, margin, wall(), Instant::now()) {
                Some(d) => fence.open_until(d),
                None => fence.close(),
            },
            Err(e) => debug!(error = %e, "reading the lease failed; the fence deadline stays"),
        }
        let open = fence.permits();
        if open != was_open {
            if open {
                info!("fence open: cloud changes allowed until the lease could expire");
            } else {
                warn!(
                    "fence closed: the lease may expire or belong to another replica; no cloud changes until it is renewed"
                );
            }
            was_open = open;
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                fence.close();
                return;
            }
            () = tokio::time::sleep(LEASE_POLL) => {}
        }
    }
}

/// [`watch_lease`] on the Lease `name` in `namespace`.
pub(crate) async fn watch_lease_object(
    client: kube::Client,
    namespace: String,
    name: String,
    identity: String,
    margin: Duration,
    fence: Fence,
    stop: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    watch_lease(
        || {
            let leases = leases.clone();
            let name = name.clone();
            // A read that hangs must not hold the fence open: bound it well below the margin.
            async move {
                match tokio::time::timeout(LEASE_POLL * 2, leases.get(&name)).await {
                    Ok(r) => r,
                    Err(_) => Err(kube::Error::Service(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "lease read timed out",
                    )))),
                }
            }
        },
        SystemTime::now,
        &identity,
        margin,
        &fence,
        stop,
    )
    .await;
}

/// A [`CloudPort`] whose mutations pass only while `fence` permits them.
pub struct FencedCloud {
    inner: Arc<dyn CloudPort>,
    fence: Fence,
}

impl FencedCloud {
    pub fn new(inner: Arc<dyn CloudPort>, fence: Fence) -> Self {
        Self { inner, fence }
    }
}

fn fenced(action: &'static str, class: ErrorClass, message: &str) -> CloudError {
    CloudError::Api(Box::new(ApiError {
        action,
        http_status: 0,
        code: FENCED.to_owned(),
        message: message.to_owned(),
        request_id: None,
        host_id: None,
        recommend: None,
        retry_after: Some(Duration::from_secs(1)),
        class,
    }))
}

impl CloudPort for FencedCloud {
    fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
        self.inner.list_entries(scope)
    }

    fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
        self.inner.gateway(scope)
    }

    fn caller_account<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, String> {
        self.inner.caller_account(scope)
    }

    fn mutate<'a>(&'a self, scope: &'a Scope, mutation: &'a Mutation) -> CloudFuture<'a, Accepted> {
        Box::pin(async move {
            let action = mutation.action();
            if !self.fence.permits() {
                return Err(fenced(
                    action,
                    ErrorClass::Throttled,
                    "not sent: the leader lease is not confirmed renewed",
                ));
            }
            let gate = {
                let fence = self.fence.clone();
                SendGate::new(move || fence.permits())
            };
            let result = tokio::select! {
                biased;
                result = with_send_gate(gate, self.inner.mutate(scope, mutation)) => result,
                () = self.fence.closed() => {
                    self.fence.note_abandoned();
                    Err(fenced(
                        action,
                        ErrorClass::Transient,
                        "abandoned: the leader lease was not renewed in time; the change may or may not have been applied",
                    ))
                }
            };
            match result {
                // Kept from leaving at the last moment: as safe as refused before the call.
                Err(e) if e.is_not_sent() => Err(fenced(
                    action,
                    ErrorClass::Throttled,
                    "not sent: the leader lease was not confirmed renewed when the request was due to leave",
                )),
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests;
