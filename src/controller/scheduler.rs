//! The gateway scheduler: at most one mutation in flight per VPN gateway, in arrival order.
//!
//! A gateway refuses every change while it applies the previous one (`updating`), so sending
//! changes blindly wastes calls and time. Each gateway gets one worker task that owns its queue:
//! it sends the next mutation as soon as the gateway should be `active` again, learning the
//! gateway's update time from a few cheap status reads after its first change. Reconciles only
//! enqueue and return; the worker wakes their object (through `wake`) when the outcome is known,
//! so a waiting route holds no controller worker and nothing polls per route.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::entries::GatewayCache;
use super::model::{Accepted, GatewayKey, Mutation, Scope};
use super::port::CloudPort;
use crate::api::v1alpha1::VpnPbrRoute;
use crate::cloud::{CloudError, ErrorClass};

/// The object a job belongs to.
pub type Owner = ObjectRef<VpnPbrRoute>;

/// Margin over the learned update time before the next send, and the floor of retry delays.
const SEND_MARGIN: f64 = 1.02;
const MIN_STEP: Duration = Duration::from_millis(25);
const FIRST_PROBE: Duration = Duration::from_millis(100);
const MAX_STEP: Duration = Duration::from_secs(30);

/// Tuning of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Off: every mutation is sent at once and a busy gateway fails the job, as a naive
    /// operator would do (the benchmark's baseline).
    pub enabled: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// What a reconcile sees of its job.
#[derive(Clone, Debug)]
pub enum JobView {
    /// Queued or being sent.
    Pending,
    /// The cloud accepted it; `confirmed` once the gateway was seen `active` afterwards.
    Accepted { accepted: Accepted, confirmed: bool },
    /// The cloud refused it (never a busy gateway: that is retried here). `create` tells
    /// whether it was a create.
    Failed {
        error: Arc<CloudError>,
        create: bool,
    },
}

#[derive(Debug)]
enum JobState {
    Queued,
    InFlight,
    Accepted { accepted: Accepted, seq: u64 },
    Failed(Arc<CloudError>),
}

#[derive(Debug)]
struct Job {
    scope: Scope,
    mutation: Mutation,
    state: JobState,
}

#[derive(Debug, Default)]
struct Gateway {
    order: VecDeque<Owner>,
    jobs: HashMap<Owner, Job>,
    /// Count of accepted mutations; `confirmed` is the highest one known to be applied.
    accepted: u64,
    confirmed: u64,
    last_accept: Option<Instant>,
    /// Learned time the gateway stays `updating` after a change.
    update_time: Option<Duration>,
    status: Option<String>,
    /// A scope to probe the gateway with (any job's).
    probe_scope: Option<Scope>,
}

impl Gateway {
    fn queued_head(&self) -> Option<(Owner, Scope, Mutation)> {
        self.order.iter().find_map(|o| {
            self.jobs
                .get(o)
                .filter(|j| matches!(j.state, JobState::Queued))
                .map(|j| (o.clone(), j.scope.clone(), j.mutation.clone()))
        })
    }

    fn unconfirmed(&self) -> bool {
        self.accepted > self.confirmed
    }

    /// Marks every accepted job up to `seq` as applied and returns their owners.
    fn confirm(&mut self, seq: u64) -> Vec<Owner> {
        if seq <= self.confirmed {
            return Vec::new();
        }
        self.confirmed = seq;
        self.jobs
            .iter()
            .filter(|(_, j)| matches!(j.state, JobState::Accepted { seq: s, .. } if s <= seq))
            .map(|(o, _)| o.clone())
            .collect()
    }

    /// When the gateway should take the next change.
    fn ready_at(&self) -> Instant {
        match (self.last_accept, self.update_time) {
            (Some(at), Some(t)) if self.unconfirmed() => at + t.mul_f64(SEND_MARGIN),
            _ => Instant::now(),
        }
    }
}

struct Slot {
    state: Mutex<Gateway>,
    wake: Notify,
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    cloud: Arc<dyn CloudPort>,
    cache: GatewayCache,
    config: SchedulerConfig,
    gateways: Mutex<HashMap<GatewayKey, Arc<Slot>>>,
    wake_owner: mpsc::UnboundedSender<Owner>,
    shutdown: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps inconsistent (no multi-step
    // updates), so poisoning is ignored rather than spreading the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scheduler {
    /// `wake_owner` receives the objects whose job finished or whose gateway was confirmed.
    pub fn new(
        cloud: Arc<dyn CloudPort>,
        cache: GatewayCache,
        config: SchedulerConfig,
        wake_owner: mpsc::UnboundedSender<Owner>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                cloud,
                cache,
                config,
                gateways: Mutex::new(HashMap::new()),
                wake_owner,
                shutdown,
            }),
        }
    }

    fn slot(&self, key: &GatewayKey) -> Arc<Slot> {
        let mut map = lock(&self.inner.gateways);
        if let Some(s) = map.get(key) {
            return s.clone();
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(Gateway::default()),
            wake: Notify::new(),
        });
        map.insert(key.clone(), slot.clone());
        let worker = Worker {
            inner: self.inner.clone(),
            slot: slot.clone(),
            key: key.clone(),
        };
        tokio::spawn(worker.run());
        slot
    }

    /// Queues `mutation` for `owner`. A queued job of the same owner is replaced (the spec
    /// moved on); one in flight is left alone and its outcome reported first.
    pub fn submit(&self, owner: &Owner, scope: &Scope, mutation: Mutation) {
        let slot = self.slot(&scope.key());
        {
            let mut gw = lock(&slot.state);
            if let Some(job) = gw.jobs.get(owner) {
                if matches!(job.state, JobState::InFlight) {
                    return;
                }
                if matches!(job.state, JobState::Queued) && job.mutation == mutation {
                    return;
                }
            }
            gw.order.retain(|o| o != owner);
            gw.order.push_back(owner.clone());
            gw.probe_scope = Some(scope.clone());
            gw.jobs.insert(
                owner.clone(),
                Job {
                    scope: scope.clone(),
                    mutation,
                    state: JobState::Queued,
                },
            );
        }
        slot.wake.notify_one();
    }

    /// The owner's job on this gateway, if any.
    pub fn view(&self, owner: &Owner, key: &GatewayKey) -> Option<JobView> {
        let slot = lock(&self.inner.gateways).get(key).cloned()?;
        let gw = lock(&slot.state);
        let job = gw.jobs.get(owner)?;
        Some(match &job.state {
            JobState::Queued | JobState::InFlight => JobView::Pending,
            JobState::Accepted { accepted, seq } => JobView::Accepted {
                accepted: accepted.clone(),
                confirmed: *seq <= gw.confirmed,
            },
            JobState::Failed(e) => JobView::Failed {
                error: e.clone(),
                create: matches!(job.mutation, Mutation::Create { .. }),
            },
        })
    }

    /// Drops the owner's finished job (its outcome has been recorded) or a queued one (the
    /// object is gone). A job in flight stays until it finishes.
    pub fn forget(&self, owner: &Owner, key: &GatewayKey) {
        let Some(slot) = lock(&self.inner.gateways).get(key).cloned() else {
            return;
        };
        let mut gw = lock(&slot.state);
        if gw
            .jobs
            .get(owner)
            .is_some_and(|j| !matches!(j.state, JobState::InFlight))
        {
            gw.jobs.remove(owner);
            gw.order.retain(|o| o != owner);
        }
    }

    /// Last gateway status the scheduler saw.
    pub fn gateway_status(&self, key: &GatewayKey) -> Option<String> {
        let slot = lock(&self.inner.gateways).get(key).cloned()?;
        let gw = lock(&slot.state);
        gw.status.clone()
    }

    /// Whether the gateway has accepted changes not yet seen applied.
    pub fn gateway_settling(&self, key: &GatewayKey) -> bool {
        lock(&self.inner.gateways)
            .get(key)
            .is_some_and(|slot| lock(&slot.state).unconfirmed())
    }

    /// Mutations being sent right now (shutdown waits for them).
    pub fn in_flight(&self) -> usize {
        let map = lock(&self.inner.gateways);
        map.values()
            .map(|s| {
                lock(&s.state)
                    .jobs
                    .values()
                    .filter(|j| matches!(j.state, JobState::InFlight))
                    .count()
            })
            .sum()
    }

    /// Jobs waiting or in flight per gateway (for the queue-depth metric).
    pub fn depths(&self) -> Vec<(GatewayKey, usize)> {
        let map = lock(&self.inner.gateways);
        map.iter()
            .map(|(k, s)| {
                let gw = lock(&s.state);
                let n = gw
                    .jobs
                    .values()
                    .filter(|j| matches!(j.state, JobState::Queued | JobState::InFlight))
                    .count();
                (k.clone(), n)
            })
            .collect()
    }
}

struct Worker {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    key: GatewayKey,
}

enum Next {
    Send(Box<(Owner, Scope, Mutation)>, Instant),
    Probe(Scope, Instant),
    Idle,
}

impl Worker {
    async fn run(self) {
        let mut step = FIRST_PROBE;
        loop {
            let next = self.next();
            let sleep_until = match &next {
                Next::Send(_, at) | Next::Probe(_, at) => Some(*at),
                Next::Idle => None,
            };
            // Sleep until due, but wake early for new work or shutdown.
            let woke = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                () = self.slot.wake.notified() => true,
                () = async {
                    match sleep_until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => false,
            };
            if woke && !matches!(next, Next::Send(_, at) if at <= Instant::now()) {
                continue;
            }
            match next {
                Next::Send(job, _) => {
                    let (owner, scope, mutation) = *job;
                    step = self.send(owner, &scope, &mutation, step).await;
                }
                Next::Probe(scope, _) => step = self.probe(&scope, step).await,
                Next::Idle => {}
            }
        }
    }

    fn next(&self) -> Next {
        let gw = lock(&self.slot.state);
        if let Some((owner, scope, mutation)) = gw.queued_head() {
            let at = if self.inner.config.enabled {
                // Before the update time is known, probing decides when the gateway is free.
                if gw.unconfirmed() && gw.update_time.is_none() {
                    return Next::Probe(
                        scope,
                        gw.last_accept.unwrap_or_else(Instant::now) + FIRST_PROBE,
                    );
                }
                gw.ready_at()
            } else {
                Instant::now()
            };
            return Next::Send(Box::new((owner, scope, mutation)), at);
        }
        if let Some(scope) = gw.probe_scope.clone().filter(|_| gw.unconfirmed()) {
            return Next::Probe(scope, gw.ready_at().max(Instant::now()));
        }
        Next::Idle
    }

    fn wake(&self, owners: impl IntoIterator<Item = Owner>) {
        for o in owners {
            // The receiver lives as long as the controller; a send error means shutdown.
            let _ = self.inner.wake_owner.send(o);
        }
    }

    fn set_state(&self, owner: &Owner, state: JobState) {
        let mut gw = lock(&self.slot.state);
        if let Some(job) = gw.jobs.get_mut(owner) {
            job.state = state;
        }
    }

    async fn send(
        &self,
        owner: Owner,
        scope: &Scope,
        mutation: &Mutation,
        step: Duration,
    ) -> Duration {
        self.set_state(&owner, JobState::InFlight);
        let sent_at = Instant::now();
        let result = self.inner.cloud.mutate(scope, mutation).await;
        match result {
            Ok(accepted) => {
                self.inner
                    .cache
                    .apply(scope, mutation, accepted.entry.as_ref());
                let confirmed_owners = {
                    let mut gw = lock(&self.slot.state);
                    // This change was accepted, so every earlier one has been applied.
                    let prev = gw.accepted;
                    let mut woken = gw.confirm(prev);
                    if let (Some(last), Some(t)) = (gw.last_accept, gw.update_time) {
                        // Drift the estimate down slowly when changes go through first time.
                        let gap = sent_at.saturating_duration_since(last);
                        if gap < t.mul_f64(1.2) && prev > 0 {
                            gw.update_time = Some(t.mul_f64(0.99).max(MIN_STEP));
                        }
                    }
                    gw.accepted += 1;
                    let seq = gw.accepted;
                    gw.last_accept = Some(Instant::now());
                    gw.status = Some("updating".to_owned());
                    if let Some(job) = gw.jobs.get_mut(&owner) {
                        job.state = JobState::Accepted { accepted, seq };
                    }
                    if !self.inner.config.enabled {
                        // Without the scheduler nobody tracks the gateway: treat it as done.
                        woken.extend(gw.confirm(seq));
                    }
                    woken.push(owner.clone());
                    woken
                };
                debug!(gateway = %self.key, action = mutation.action(), "mutation accepted");
                self.wake(confirmed_owners);
                FIRST_PROBE
            }
            Err(e) if e.class() == ErrorClass::GatewayBusy && self.inner.config.enabled => {
                let delay = {
                    let mut gw = lock(&self.slot.state);
                    gw.status = Some("updating".to_owned());
                    // Busy after `gap`: the update takes longer than that.
                    let t = gw.update_time.unwrap_or(FIRST_PROBE);
                    let gap = gw
                        .last_accept
                        .map_or(t, |last| sent_at.saturating_duration_since(last));
                    gw.update_time = Some(t.max(gap.mul_f64(1.05)));
                    if let Some(job) = gw.jobs.get_mut(&owner) {
                        job.state = JobState::Queued;
                    }
                    (t.mul_f64(0.05)).max(MIN_STEP).max(step).min(MAX_STEP)
                };
                debug!(gateway = %self.key, code = e.code(), ?delay, "gateway busy; retrying");
                tokio::time::sleep(delay).await;
                (step * 2).min(MAX_STEP)
            }
            Err(e) if e.class() == ErrorClass::Throttled && self.inner.config.enabled => {
                self.set_state(&owner, JobState::Queued);
                let delay = e.retry_after().unwrap_or(step * 4).min(MAX_STEP);
                warn!(gateway = %self.key, code = e.code(), ?delay, "throttled; retrying");
                tokio::time::sleep(delay).await;
                (step * 2).min(MAX_STEP)
            }
            Err(e) => {
                if e.class() == ErrorClass::Transient {
                    // The change may or may not have happened: read the truth again.
                    self.inner.cache.invalidate(scope);
                }
                info!(gateway = %self.key, action = mutation.action(), code = e.code(), "mutation failed");
                self.set_state(&owner, JobState::Failed(Arc::new(e)));
                self.wake([owner]);
                FIRST_PROBE
            }
        }
    }

    /// Reads the gateway status to learn when a change has been applied.
    async fn probe(&self, scope: &Scope, step: Duration) -> Duration {
        let probe_at = Instant::now();
        match self.inner.cache.refresh_facts(scope).await {
            Ok(facts) => {
                let woken = {
                    let mut gw = lock(&self.slot.state);
                    gw.status = Some(facts.status.clone());
                    if facts.status == "active" {
                        if let (None, Some(last)) = (gw.update_time, gw.last_accept) {
                            gw.update_time =
                                Some(probe_at.saturating_duration_since(last).max(MIN_STEP));
                        }
                        let seq = gw.accepted;
                        gw.confirm(seq)
                    } else {
                        Vec::new()
                    }
                };
                let done = !woken.is_empty();
                self.wake(woken);
                if done {
                    FIRST_PROBE
                } else {
                    let pause = {
                        let gw = lock(&self.slot.state);
                        gw.update_time
                            .map_or(step, |t| t.mul_f64(0.05).max(MIN_STEP))
                    };
                    tokio::time::sleep(pause).await;
                    step.mul_f64(1.3).min(MAX_STEP)
                }
            }
            Err(e) => {
                warn!(gateway = %self.key, code = e.code(), "gateway status read failed");
                tokio::time::sleep(step).await;
                (step * 2).min(MAX_STEP)
            }
        }
    }
}
