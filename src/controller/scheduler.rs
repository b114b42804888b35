//! The gateway scheduler: at most one mutation in flight per VPN gateway, in arrival order.
//!
//! A gateway refuses every change while it applies the previous one (`updating`), so sending
//! changes blindly wastes calls and time. Each gateway gets one worker task that owns its queue:
//! it sends the next mutation as soon as the gateway should be `active` again, learning the
//! gateway's update time from a few cheap status reads after its first change. Reconciles only
//! enqueue and return; the worker wakes their object (through `wake`) when the outcome is known,
//! so a waiting route holds no controller worker and nothing polls per route.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::entries::GatewayCache;
use super::estimate::{Estimate, Plan, Shared};
use super::job::{JobView, Stall};
use super::model::{Accepted, GatewayKey, GatewayStatus, Mutation, Scope};
use super::port::CloudPort;
use crate::api::v1alpha1::VpnPbrRoute;
use crate::sync::lock;
use alicloud_vpc_client::{CloudError, ErrorClass, Priority, Retrier, with_priority};

/// The object a job belongs to.
pub type Owner = ObjectRef<VpnPbrRoute>;

/// Retry delays after errors that say nothing about the update time (throttling, a gateway
/// busy with someone else's change, failed status reads): doubling from the first to the last.
const FIRST_STEP: Duration = Duration::from_millis(200);
const MAX_STEP: Duration = Duration::from_secs(30);

/// The longest wait between tries while the gateway is busy with a change not ours.
const FOREIGN_BUSY_MAX_STEP: Duration = Duration::from_secs(5);

/// While other changes of its gateway wait to be sent, applied changes are read back (one
/// list call) only once the oldest has waited this long and at least `VERIFY_BATCH` of them
/// are unlisted; otherwise once the queue is empty. Each such read costs a call that a long
/// burst would rather spend on changes: a minute is about thirty changes at a 2 s update time,
/// and the batch keeps read-backs below one call in thirty changes when the account's API
/// rate, not the gateway, paces the changes (they then come far apart).
const VERIFY_AT_MOST: Duration = Duration::from_secs(60);
const VERIFY_BATCH: usize = 32;
/// List reads that may miss an applied change (each change counts its own) before it is given
/// up on: a create whose answer did not name its entry is then replayed once with its own token
/// (the cloud repeats its answer if the entry exists, unlisted or not); any other change, a
/// create answered with its entry (a replay would repeat that answer) and a replayed create go
/// back to their route, which re-plans from the list.
const VERIFY_TRIES: u32 = 5;
/// The least time after a change was accepted before its read-back gives up on the list:
/// the cloud lists changes some time after the gateway is `active` again (late visibility), so
/// reads at the gateway's pace alone could give up on a change that is merely not listed yet.
const LIST_LAG_MAX: Duration = Duration::from_secs(30);

/// The gateway's own reads (its status, or the entry list for applied changes) that fail in a
/// row, over at least `STALL_AFTER`, before the changes waiting on them say so: a one-off
/// failure is retried within a second and is not worth a status write per route. Both bounds
/// count failed reads and time since the first of them, never time in the queue (10,000
/// changes on one gateway legitimately wait for minutes).
const STALL_READS: u32 = 3;
const STALL_AFTER: Duration = Duration::from_secs(5);

/// Tuning of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Off: every mutation is sent at once and a busy gateway fails the job, as a naive
    /// operator would do (the benchmark's baseline).
    pub(crate) enabled: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// The gateway's reads of one kind that failed in a row, until one succeeds.
#[derive(Debug, Default)]
struct FailedReads {
    count: u32,
    since: Option<Instant>,
    last: Option<Arc<CloudError>>,
    /// The code the waiting routes were told last: told again only for a new one.
    told: Option<String>,
}

impl FailedReads {
    /// Records a failed read at `now`; true when the changes waiting on it should say so now
    /// (the bounds were just passed, or the failure has a new code).
    fn failed(&mut self, e: CloudError, now: Instant) -> bool {
        self.count += 1;
        self.since.get_or_insert(now);
        let code = e.code().to_owned();
        self.last = Some(Arc::new(e));
        if self.stalled(now).is_none() || self.told.as_deref() == Some(code.as_str()) {
            return false;
        }
        self.told = Some(code);
        true
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// The last error, once the reads failed past both bounds.
    fn stalled(&self, now: Instant) -> Option<Arc<CloudError>> {
        let long = self
            .since
            .is_some_and(|s| now.saturating_duration_since(s) >= STALL_AFTER);
        self.last
            .clone()
            .filter(|_| self.count >= STALL_READS && long)
    }
}

#[derive(Debug)]
enum JobState {
    Queued,
    InFlight,
    Accepted {
        accepted: Accepted,
        seq: u64,
        at: Instant,
        /// Seen in the entry list (or given up on: the route then re-plans from the list).
        listed: bool,
        /// List reads since it was applied that did not show it.
        tries: u32,
    },
    Failed(Arc<CloudError>),
}

#[derive(Debug)]
struct Job {
    scope: Scope,
    mutation: Mutation,
    generation: Option<i64>,
    state: JobState,
    /// The owner no longer wants it, but it was on the wire: not sent again.
    cancelled: bool,
    /// A create sent again with its token after the list never showed it.
    replayed: bool,
}

#[derive(Debug, Default)]
struct Gateway {
    order: VecDeque<Owner>,
    /// Boxed: a job is large and the map keeps spare slots (10,000 routes hold one each).
    jobs: HashMap<Owner, Box<Job>>,
    /// Count of accepted mutations; `confirmed` is the highest one known to be applied.
    accepted: u64,
    confirmed: u64,
    last_accept: Option<Instant>,
    /// What is known of the time the gateway stays `updating` after a change.
    estimate: Estimate,
    /// This gateway among those sharing what they learn, and whom it shares with (known
    /// after its first accepted change).
    id: u64,
    peers: Option<Peers>,
    status: Option<GatewayStatus>,
    /// A scope to probe the gateway with (any job's).
    probe_scope: Option<Scope>,
    /// When to read the list again for applied changes it did not show yet.
    verify_after: Option<Instant>,
    /// Status reads (probes) and list reads (read-backs) failing in a row.
    status_reads: FailedReads,
    list_reads: FailedReads,
}

impl Gateway {
    fn queued_head(&self) -> Option<(Owner, Scope)> {
        self.order.iter().find_map(|o| {
            self.jobs
                .get(o)
                .filter(|j| matches!(j.state, JobState::Queued))
                .map(|j| (o.clone(), j.scope.clone()))
        })
    }

    fn unconfirmed(&self) -> bool {
        self.accepted > self.confirmed
    }

    /// Marks every accepted change up to `seq` as applied by the gateway. Their owners wait
    /// for the list to show it (see `verify_at`).
    fn confirm(&mut self, seq: u64) {
        self.confirmed = self.confirmed.max(seq);
    }

    /// The gateway is gone: every accepted change is as done as it will ever be. Returns the
    /// owners to wake (they read the gateway and see it gone).
    fn settle_all(&mut self) -> Vec<Owner> {
        self.confirmed = self.accepted;
        let mut woken = Vec::new();
        for (owner, job) in &mut self.jobs {
            if let JobState::Accepted { ref mut listed, .. } = job.state
                && !*listed
            {
                *listed = true;
                woken.push(owner.clone());
            }
        }
        woken
    }

    /// Changes that wait on the gateway's status: those queued behind a change not known to
    /// be applied yet, and that change.
    fn waiting_on_status(&self) -> Vec<Owner> {
        let confirmed = self.confirmed;
        let owners = self
            .jobs
            .iter()
            .filter(|(_, j)| match j.state {
                JobState::Queued => true,
                JobState::Accepted { seq, .. } => seq > confirmed,
                _ => false,
            })
            .map(|(o, _)| o.clone())
            .collect();
        in_key_order(owners)
    }

    /// Why the job of `seq` (accepted) or a queued job waits, when its reads keep failing.
    fn stall(&self, job: &JobState, now: Instant) -> Option<Stall> {
        match *job {
            JobState::Queued => self.status_reads.stalled(now).map(Stall::Queued),
            JobState::Accepted { seq, .. } if seq > self.confirmed => {
                self.status_reads.stalled(now).map(Stall::Status)
            }
            JobState::Accepted { listed: false, .. } => {
                self.list_reads.stalled(now).map(Stall::List)
            }
            _ => None,
        }
    }

    /// Applied changes the list has not shown yet.
    fn unlisted(&self) -> impl Iterator<Item = (&Owner, &Job)> {
        self.jobs
            .iter()
            .map(|(o, j)| (o, &**j))
            .filter(|(_, j)| {
                matches!(j.state, JobState::Accepted { seq, listed: false, .. } if seq <= self.confirmed)
            })
    }

    /// When to read the list to confirm applied changes: once no change waits to be sent (one
    /// list then confirms a whole burst), or when a batch of them has waited long enough (see
    /// `VERIFY_AT_MOST`).
    fn verify_at(&self, now: Instant) -> Option<(Scope, Instant)> {
        // The oldest, not the map's first: its scope (credentials) is one a simulated seed replays.
        let (_, first) = self.unlisted().min_by_key(|(_, j)| match j.state {
            JobState::Accepted { seq, .. } => seq,
            _ => u64::MAX,
        })?;
        let at = if self.queued_head().is_none() {
            if self.unconfirmed() {
                // The last change is about to be known applied: one list then shows them all.
                return None;
            }
            now
        } else if self.unlisted().count() >= VERIFY_BATCH {
            let oldest = self
                .unlisted()
                .filter_map(|(_, j)| match j.state {
                    JobState::Accepted { at, .. } => Some(at),
                    _ => None,
                })
                .min()
                .unwrap_or(now);
            oldest + VERIFY_AT_MOST
        } else {
            // Planned again after each change: it becomes due with the batch or the queue's end.
            return None;
        };
        let at = self.verify_after.map_or(at, |after| at.max(after));
        Some((first.scope.clone(), at))
    }

    /// Time since the last accepted change, while it is not known to be applied.
    fn pending_gap(&self, now: Instant) -> Option<Duration> {
        self.last_accept
            .filter(|_| self.unconfirmed())
            .map(|at| now.saturating_duration_since(at))
    }

    /// What to do about the last accepted change while it is not known applied, as an
    /// instant: `None` when nothing is pending (a change can go at once).
    fn plan(
        &mut self,
        shared: &Mutex<HashMap<Peers, Shared>>,
        now: Instant,
    ) -> Option<(Plan, Instant)> {
        let at = self.last_accept.filter(|_| self.unconfirmed())?;
        let gap = now.saturating_duration_since(at);
        let peers = self.peers.clone().unwrap_or_default();
        let mut map = lock(shared);
        let plan = self
            .estimate
            .plan(map.entry(peers).or_default(), self.id, gap, now);
        let g = match plan {
            Plan::Send(g) | Plan::Read(g) | Plan::Wait(g) => g,
        };
        Some((plan, at + g))
    }
}

/// Gateways that share what they learn of their update time: one region and specification
/// (the specification `None` when the gateway's answer had none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Peers {
    region_id: String,
    spec: Option<String>,
}

struct Slot {
    /// Shared by the owner index, so 10,000 routes do not hold 10,000 copies of it.
    key: Arc<GatewayKey>,
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
    /// What each region (and specification) learned of its gateways' update time.
    shared: Mutex<HashMap<Peers, Shared>>,
    next_id: AtomicU64,
    /// The gateway each owner's job is on (an owner has at most one job).
    owners: Mutex<HashMap<Owner, Arc<GatewayKey>>>,
    wake_owner: mpsc::UnboundedSender<Owner>,
    shutdown: CancellationToken,
}

/// Whether an accepted create's answer named the entry it made.
fn answered_with_entry(state: &JobState) -> bool {
    matches!(state, JobState::Accepted { accepted, .. } if accepted.entry.is_some())
}

/// Owners in key order, not a map's: a simulated seed replays the wake-ups exactly.
fn in_key_order(mut owners: Vec<Owner>) -> Vec<Owner> {
    owners.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    owners
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
                shared: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                owners: Mutex::new(HashMap::new()),
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
            key: Arc::new(key.clone()),
            state: Mutex::new(Gateway {
                id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                ..Gateway::default()
            }),
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

    /// Queues `mutation` for `owner`, planned from spec `generation`. A queued job of the same
    /// owner is replaced (the plan changed); one in flight is left alone and its outcome
    /// reported first.
    pub(crate) fn submit(
        &self,
        owner: &Owner,
        scope: &Scope,
        mutation: Mutation,
        generation: Option<i64>,
    ) {
        let key = scope.key();
        let previous = lock(&self.inner.owners).get(owner).cloned();
        if let Some(old) = previous.filter(|k| **k != key)
            && !self.forget(owner, &old)
        {
            // Its change for the other gateway (other credentials) is still on the wire.
            return;
        }
        let slot = self.slot(&key);
        lock(&self.inner.owners).insert(owner.clone(), slot.key.clone());
        {
            let mut gw = lock(&slot.state);
            if let Some(job) = gw.jobs.get(owner) {
                // On the wire, or accepted and not yet seen in the list: its outcome is
                // recorded first (a decision made meanwhile on an older copy must not replace it).
                if matches!(
                    job.state,
                    JobState::InFlight | JobState::Accepted { listed: false, .. }
                ) {
                    return;
                }
                if matches!(job.state, JobState::Queued) && job.mutation == mutation {
                    if let Some(job) = gw.jobs.get_mut(owner) {
                        job.generation = generation;
                    }
                    return;
                }
            }
            gw.order.retain(|o| o != owner);
            gw.order.push_back(owner.clone());
            gw.probe_scope = Some(scope.clone());
            gw.jobs.insert(
                owner.clone(),
                Box::new(Job {
                    scope: scope.clone(),
                    mutation,
                    generation,
                    state: JobState::Queued,
                    cancelled: false,
                    replayed: false,
                }),
            );
        }
        slot.wake.notify_one();
    }

    /// The owner's job on this gateway, if any.
    pub(crate) fn view(&self, owner: &Owner, key: &GatewayKey) -> Option<JobView> {
        let slot = lock(&self.inner.gateways).get(key).cloned()?;
        let gw = lock(&slot.state);
        let job = gw.jobs.get(owner)?;
        let stalled = gw.stall(&job.state, Instant::now());
        Some(match &job.state {
            JobState::Queued => JobView::Queued {
                mutation: job.mutation.clone(),
                generation: job.generation,
                stalled,
            },
            JobState::InFlight => JobView::InFlight,
            JobState::Accepted {
                accepted,
                seq,
                listed,
                ..
            } => JobView::Accepted {
                accepted: accepted.clone(),
                confirmed: *seq <= gw.confirmed && *listed,
                create: matches!(job.mutation, Mutation::Create { .. }),
                stalled,
            },
            JobState::Failed(e) => JobView::Failed {
                error: e.clone(),
                create: matches!(job.mutation, Mutation::Create { .. }),
            },
        })
    }

    /// Drops the owner's finished job (its outcome has been recorded) or cancels a queued one
    /// (the plan no longer wants it). A job in flight stays until it finishes: returns false
    /// then, true when the owner has no job left on this gateway.
    pub(crate) fn forget(&self, owner: &Owner, key: &GatewayKey) -> bool {
        let Some(slot) = lock(&self.inner.gateways).get(key).cloned() else {
            return true;
        };
        {
            let mut gw = lock(&slot.state);
            match gw.jobs.get_mut(owner) {
                Some(j) if matches!(j.state, JobState::InFlight) => {
                    j.cancelled = true;
                    return false;
                }
                Some(_) => {
                    gw.jobs.remove(owner);
                    gw.order.retain(|o| o != owner);
                }
                None => {}
            }
        }
        let mut owners = lock(&self.inner.owners);
        if owners.get(owner).is_some_and(|k| **k == *key) {
            owners.remove(owner);
        }
        true
    }

    /// The owner's job, wherever it is.
    pub fn job(&self, owner: &Owner) -> Option<JobView> {
        let key = lock(&self.inner.owners).get(owner).cloned()?;
        self.view(owner, &key)
    }

    /// [`Scheduler::forget`] on whichever gateway holds the owner's job.
    pub(crate) fn drop_job(&self, owner: &Owner) -> bool {
        let key = lock(&self.inner.owners).get(owner).cloned();
        key.is_none_or(|k| self.forget(owner, &k))
    }

    /// Last gateway status the scheduler saw.
    pub(crate) fn gateway_status(&self, key: &GatewayKey) -> Option<GatewayStatus> {
        let slot = lock(&self.inner.gateways).get(key).cloned()?;
        let gw = lock(&slot.state);
        gw.status.clone()
    }

    /// Mutations being sent right now (shutdown waits for them).
    pub(crate) fn in_flight(&self) -> usize {
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

    /// Gateways whose changes wait on reads that keep failing, by the read (for the metric).
    pub(crate) fn stalls(&self) -> [(&'static str, usize); 2] {
        let now = Instant::now();
        let (mut status, mut list) = (0, 0);
        for slot in lock(&self.inner.gateways).values() {
            let gw = lock(&slot.state);
            let waiting = |stall: fn(&Stall) -> bool| {
                gw.jobs
                    .values()
                    .any(|j| gw.stall(&j.state, now).as_ref().is_some_and(stall))
            };
            status += usize::from(waiting(|s| {
                matches!(s, Stall::Queued(_) | Stall::Status(_))
            }));
            list += usize::from(waiting(|s| matches!(s, Stall::List(_))));
        }
        [("status", status), ("list", list)]
    }

    /// Jobs waiting or in flight per gateway (for the queue-depth metric).
    pub(crate) fn depths(&self) -> Vec<(GatewayKey, usize)> {
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
    Send(Box<(Owner, Scope)>, Instant),
    Probe(Scope, Instant),
    Verify(Scope, Instant),
    /// Nothing waits to be sent: the last change counts as applied at this instant (the
    /// proven update time has passed), without a read.
    Settle(Instant),
    /// Plan again at this instant (another gateway of the region is probing for this one).
    Wait(Instant),
    Idle,
}

impl Worker {
    async fn run(self) {
        let mut step = FIRST_STEP;
        loop {
            let next = self.next();
            let sleep_until = match &next {
                Next::Send(_, at)
                | Next::Probe(_, at)
                | Next::Verify(_, at)
                | Next::Settle(at)
                | Next::Wait(at) => Some(*at),
                Next::Idle => None,
            };
            // Sleep until due, but wake early for new work or shutdown.
            // Biased (no random branch order): a simulated seed replays exactly.
            let woke = tokio::select! {
                biased;
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
                    let (owner, scope) = *job;
                    step = self.send(owner, &scope, step).await;
                }
                Next::Probe(scope, _) => step = self.probe(&scope, step).await,
                Next::Verify(scope, _) => step = self.verify(&scope, step).await,
                Next::Settle(_) => {
                    let mut gw = lock(&self.slot.state);
                    let seq = gw.accepted;
                    gw.confirm(seq);
                    gw.status = Some(GatewayStatus::Active);
                    // Nothing waits on a status read any more.
                    gw.status_reads.succeeded();
                }
                Next::Wait(_) | Next::Idle => {}
            }
        }
    }

    fn next(&self) -> Next {
        let mut gw = lock(&self.slot.state);
        let now = Instant::now();
        let enabled = self.inner.config.enabled;
        let change = if let Some((owner, scope)) = gw.queued_head() {
            let job = Box::new((owner, scope.clone()));
            match gw.plan(&self.inner.shared, now).filter(|_| enabled) {
                None => Next::Send(job, now),
                Some((Plan::Send(_), at)) => Next::Send(job, at),
                Some((Plan::Read(_), at)) => Next::Probe(scope, at),
                Some((Plan::Wait(_), at)) => Next::Wait(at),
            }
        } else if let Some(scope) = gw.probe_scope.clone().filter(|_| enabled) {
            match gw.plan(&self.inner.shared, now) {
                None => Next::Idle,
                Some((Plan::Send(_), at)) => Next::Settle(at),
                Some((Plan::Read(_), at)) => Next::Probe(scope, at),
                Some((Plan::Wait(_), at)) => Next::Wait(at),
            }
        } else {
            Next::Idle
        };
        // A due list read of applied changes goes before a change that is not due yet.
        match (gw.verify_at(now), &change) {
            (Some((scope, at)), Next::Idle) => Next::Verify(scope, at),
            (
                Some((scope, at)),
                Next::Send(_, t) | Next::Probe(_, t) | Next::Settle(t) | Next::Wait(t),
            ) if at < *t => Next::Verify(scope, at),
            _ => change,
        }
    }

    fn wake(&self, owners: impl IntoIterator<Item = Owner>) {
        for o in owners {
            // The receiver lives as long as the controller; a send error means shutdown.
            let _ = self.inner.wake_owner.send(o);
        }
    }

    /// A job that came back busy or throttled waits for its next turn, unless its owner
    /// dropped it while it was on the wire: then it goes, and the owner is told.
    fn requeue(&self, owner: &Owner) {
        let dropped = {
            let mut gw = lock(&self.slot.state);
            match gw.jobs.get_mut(owner) {
                Some(j) if j.cancelled => {
                    gw.jobs.remove(owner);
                    gw.order.retain(|o| o != owner);
                    true
                }
                Some(j) => {
                    j.state = JobState::Queued;
                    false
                }
                None => false,
            }
        };
        if dropped {
            let mut owners = lock(&self.inner.owners);
            if owners.get(owner).is_some_and(|k| **k == self.key) {
                owners.remove(owner);
            }
            drop(owners);
            self.wake([owner.clone()]);
        }
    }

    fn set_state(&self, owner: &Owner, state: JobState) {
        let mut gw = lock(&self.slot.state);
        if let Some(job) = gw.jobs.get_mut(owner) {
            job.state = state;
        }
    }

    /// Sends the owner's queued job as it stands now: while this worker slept, the job may
    /// have been replaced or cancelled, and only what is still queued goes on the wire.
    async fn send(&self, owner: Owner, scope: &Scope, step: Duration) -> Duration {
        let (mutation, gap) = {
            let mut gw = lock(&self.slot.state);
            let Some(job) = gw
                .jobs
                .get_mut(&owner)
                .filter(|j| matches!(j.state, JobState::Queued))
            else {
                return step;
            };
            job.state = JobState::InFlight;
            let mutation = job.mutation.clone();
            (mutation, gw.pending_gap(Instant::now()))
        };
        let mutation = &mutation;
        let result = self.inner.cloud.mutate(scope, mutation).await;
        // The call may have waited in the rate limiter: the gateway was free when the change
        // arrived, at the latest when the answer came, and busy at the earliest when we sent.
        let answered = Instant::now();
        match result {
            Ok(accepted) => {
                self.inner
                    .cache
                    .apply(scope, mutation, accepted.entry.as_ref());
                let peers = self.peers(scope).await;
                {
                    let mut gw = lock(&self.slot.state);
                    // Changes move again: the next waits on a status read of its own.
                    gw.status_reads.succeeded();
                    let free_gap = gw.pending_gap(answered);
                    let peers = gw.peers.get_or_insert(peers).clone();
                    gw.estimate
                        .accepted(free_gap, lock(&self.inner.shared).entry(peers).or_default());
                    // This change was accepted, so every earlier one has been applied.
                    let prev = gw.accepted;
                    gw.confirm(prev);
                    gw.accepted += 1;
                    let seq = gw.accepted;
                    let now = Instant::now();
                    gw.last_accept = Some(now);
                    gw.status = Some(GatewayStatus::Updating);
                    if let Some(job) = gw.jobs.get_mut(&owner) {
                        job.state = JobState::Accepted {
                            accepted,
                            seq,
                            at: now,
                            listed: false,
                            tries: 0,
                        };
                    }
                    if !self.inner.config.enabled {
                        // Without the scheduler nobody tracks the gateway: treat it as done.
                        gw.confirm(seq);
                    }
                }
                debug!(gateway = %self.key, action = mutation.action(), "mutation accepted");
                // The route records what the answer says (a create's time) while it waits.
                self.wake([owner]);
                FIRST_STEP
            }
            Err(e)
                if e.policy().retried_by == Retrier::CallerWhenFree
                    && self.inner.config.enabled =>
            {
                self.requeue(&owner);
                debug!(gateway = %self.key, code = e.code(), ?gap, "gateway busy");
                {
                    let mut gw = lock(&self.slot.state);
                    gw.status = Some(GatewayStatus::Updating);
                    // Busy with our own last change: the estimate plans a read next, never
                    // another send before the gateway is seen free.
                    if let Some(g) = gap {
                        gw.estimate.refused(g);
                        return FIRST_STEP;
                    }
                }
                // Busy with a change we did not make: back off. It takes about one update
                // time, so the wait doubles only up to a few of them.
                tokio::time::sleep(step).await;
                (step * 2).min(FOREIGN_BUSY_MAX_STEP)
            }
            Err(e) if e.class() == ErrorClass::Throttled && self.inner.config.enabled => {
                self.requeue(&owner);
                let delay = e.retry_after().unwrap_or(step).min(MAX_STEP);
                warn!(gateway = %self.key, code = e.code(), ?delay, "throttled; retrying");
                tokio::time::sleep(delay).await;
                (step * 2).min(MAX_STEP)
            }
            Err(e) => {
                if matches!(e.class(), ErrorClass::Transient | ErrorClass::AlreadyExists) {
                    // The change may or may not have happened: read the truth again.
                    self.inner.cache.invalidate(scope);
                }
                info!(gateway = %self.key, action = mutation.action(), code = e.code(), "mutation failed");
                self.set_state(&owner, JobState::Failed(Arc::new(e)));
                self.wake([owner]);
                FIRST_STEP
            }
        }
    }

    /// Whom this gateway shares its update time with: its region and specification, from
    /// the facts the routes read (cached; read once if not).
    /// The region proved a shorter free gap: the other workers of the region plan again (a
    /// change waiting for a looser bound may go now).
    fn wake_peers(&self, peers: &Peers) {
        // In key order, not the map's: the workers wake in an order a simulated seed replays.
        let mut slots: Vec<(GatewayKey, Arc<Slot>)> = lock(&self.inner.gateways)
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        slots.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, slot) in slots {
            if Arc::ptr_eq(&slot, &self.slot) {
                continue;
            }
            if lock(&slot.state).peers.as_ref() == Some(peers) {
                slot.wake.notify_one();
            }
        }
    }

    async fn peers(&self, scope: &Scope) -> Peers {
        if let Some(p) = lock(&self.slot.state).peers.clone() {
            return p;
        }
        let spec = match self.inner.cache.facts(scope, Duration::MAX).await {
            Ok(facts) => facts.spec,
            Err(_) => None,
        };
        Peers {
            region_id: scope.region_id.clone(),
            spec,
        }
    }

    /// Reads the gateway status to learn whether the last change has been applied.
    async fn probe(&self, scope: &Scope, step: Duration) -> Duration {
        let gap = lock(&self.slot.state).pending_gap(Instant::now());
        // Ahead of every other call: an answer delayed by a backlog times the backlog.
        let read = with_priority(Priority::Pacing, self.inner.cache.refresh_facts(scope)).await;
        // As for a send: `active` holds at the latest when the answer came, `updating` at the
        // earliest when we asked (the read may have waited in the rate limiter).
        let answered = Instant::now();
        match read {
            Ok(facts) => {
                let active = facts.status == GatewayStatus::Active;
                let mut gw = lock(&self.slot.state);
                gw.status_reads.succeeded();
                let answered_gap = gw.pending_gap(answered);
                gw.status = Some(facts.status.clone());
                let mut tightened = None;
                if let (Some(asked), Some(answered)) = (gap, answered_gap) {
                    let peers = gw.peers.clone().unwrap_or_default();
                    let mut shared = lock(&self.inner.shared);
                    let region = shared.entry(peers.clone()).or_default();
                    let before = region.upper();
                    // A busy answer past every gap we know is paced by the estimate (it
                    // plans the next read after a growing pause).
                    gw.estimate.read(asked, answered, active, region);
                    if region.upper() != before {
                        tightened = Some(peers);
                    }
                }
                if active {
                    let seq = gw.accepted;
                    gw.confirm(seq);
                }
                drop(gw);
                if let Some(peers) = tightened {
                    self.wake_peers(&peers);
                }
                FIRST_STEP
            }
            Err(e) if e.is_gateway_gone() => {
                // Nothing will ever be applied there: let the owners see the gateway gone.
                let woken = lock(&self.slot.state).settle_all();
                self.wake(woken);
                FIRST_STEP
            }
            Err(e) => {
                warn!(gateway = %self.key, code = e.code(), "gateway status read failed");
                let woken = {
                    let mut gw = lock(&self.slot.state);
                    if gw.status_reads.failed(e, Instant::now()) {
                        gw.waiting_on_status()
                    } else {
                        Vec::new()
                    }
                };
                self.wake(woken);
                tokio::time::sleep(step).await;
                (step * 2).min(MAX_STEP)
            }
        }
    }

    /// Reads the entry list and confirms the applied changes it shows; a change it does not
    /// show yet is read for again later. After `VERIFY_TRIES` reads of its own that missed it, a
    /// create whose answer did not name its entry is sent again with its token (once), ahead of
    /// the queue; any other change, or that replay, goes back to its route, which re-plans from
    /// the list.
    async fn verify(&self, scope: &Scope, step: Duration) -> Duration {
        let list = match self.inner.cache.entries(scope, Duration::ZERO).await {
            Ok(list) => list,
            Err(e) if e.is_gateway_gone() => {
                let woken = lock(&self.slot.state).settle_all();
                self.wake(woken);
                return FIRST_STEP;
            }
            Err(e) => {
                warn!(gateway = %self.key, code = e.code(), "entry list read failed");
                let woken = {
                    let mut gw = lock(&self.slot.state);
                    let now = Instant::now();
                    gw.verify_after = Some(now + step);
                    // The routes waiting for it say why once it persists, and again only for a
                    // new reason (not per retry).
                    if gw.list_reads.failed(e, now) {
                        in_key_order(gw.unlisted().map(|(o, _)| o.clone()).collect())
                    } else {
                        Vec::new()
                    }
                };
                self.wake(woken);
                return (step * 2).min(MAX_STEP);
            }
        };
        let (woken, replay) = {
            let now = Instant::now();
            let mut gw = lock(&self.slot.state);
            gw.list_reads.succeeded();
            let confirmed = gw.confirmed;
            let mut woken = Vec::new();
            let mut replay = Vec::new();
            // The most reads any change still missing has had: the next read waits longer.
            let mut missing = 0;
            for (owner, job) in &mut gw.jobs {
                let with_entry = answered_with_entry(&job.state);
                let JobState::Accepted {
                    seq,
                    at,
                    ref mut listed,
                    ref mut tries,
                    ..
                } = job.state
                else {
                    continue;
                };
                if seq > confirmed || *listed {
                    continue;
                }
                if job.mutation.reflected_in(&list) {
                    *listed = true;
                    woken.push(owner.clone());
                    continue;
                }
                *tries += 1;
                if *tries < VERIFY_TRIES || now.saturating_duration_since(at) < LIST_LAG_MAX {
                    missing = missing.max(*tries);
                } else if matches!(job.mutation, Mutation::Create { .. })
                    && !job.replayed
                    && !with_entry
                {
                    // Never a new token first: the same create again, which the cloud answers
                    // as before if its entry exists (listed yet or not). A create answered with
                    // its entry is not: the replay would only repeat that answer.
                    job.replayed = true;
                    job.state = JobState::Queued;
                    replay.push(owner.clone());
                } else {
                    *listed = true;
                    woken.push(owner.clone());
                }
            }
            // A replay goes before every change queued meanwhile.
            for owner in &replay {
                gw.order.retain(|o| o != owner);
                gw.order.push_front(owner.clone());
            }
            if missing > 0 {
                // The cloud lists changes a little after the gateway is active again: read at
                // the gateway's pace, never in a tight loop.
                let pause = gw.estimate.pace().max(FIRST_STEP) * missing;
                gw.verify_after = Some(Instant::now() + pause.min(MAX_STEP));
            } else {
                gw.verify_after = None;
            }
            (woken, replay)
        };
        if !replay.is_empty() {
            debug!(gateway = %self.key, creates = replay.len(), "read-back gave up; replaying the creates with their tokens");
        }
        self.wake(woken);
        FIRST_STEP
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::controller::model::{CredentialsHandle, Entry, GatewayFacts, RouteId};
    use crate::controller::port::CloudFuture;
    use alicloud_vpc_client::{
        ApiError, CredentialsProvider, RateLimitConfig, RateLimiter, StaticCredentials,
        current_priority,
    };

    /// A gateway that stays `updating` for `update` after each accepted change and refuses
    /// changes meanwhile, like the real one.
    struct FakeGateway {
        update: Duration,
        busy_until: StdMutex<Option<Instant>>,
        in_flight: StdMutex<usize>,
        max_in_flight: StdMutex<usize>,
        accepted: StdMutex<Vec<String>>,
        calls: StdMutex<usize>,
        /// When each accepted change shows in the list, and how many lists were read.
        visible_at: StdMutex<Vec<(String, Instant)>>,
        list_lag: Duration,
        /// How long a status read waits before the gateway answers (a call queued in the
        /// account's rate limiter).
        read_wait: Duration,
        lists: StdMutex<usize>,
        /// Status reads, and changes refused as busy.
        reads: StdMutex<usize>,
        refused: StdMutex<usize>,
        /// A lag of its own for the change of one route source (instead of `list_lag`).
        lag_of: StdMutex<HashMap<String, Duration>>,
        /// Every accepted mutation, in order.
        sent: StdMutex<Vec<Mutation>>,
        /// Status and list reads answer 503 while set.
        reads_fail: StdMutex<bool>,
    }

    impl FakeGateway {
        fn new(update: Duration, busy_until: Option<Instant>) -> Arc<Self> {
            Arc::new(Self {
                update,
                busy_until: StdMutex::new(busy_until),
                in_flight: StdMutex::new(0),
                max_in_flight: StdMutex::new(0),
                accepted: StdMutex::new(Vec::new()),
                calls: StdMutex::new(0),
                visible_at: StdMutex::new(Vec::new()),
                list_lag: Duration::ZERO,
                read_wait: Duration::ZERO,
                lists: StdMutex::new(0),
                reads: StdMutex::new(0),
                refused: StdMutex::new(0),
                lag_of: StdMutex::new(HashMap::new()),
                sent: StdMutex::new(Vec::new()),
                reads_fail: StdMutex::new(false),
            })
        }

        /// The change of route source `src` shows in the list `lag` after the gateway is
        /// active again.
        fn lag(&self, src: &str, lag: Duration) {
            self.lag_of.lock().unwrap().insert(src.into(), lag);
        }

        /// Changes show in the list `lag` after the gateway is active again.
        fn lagging(update: Duration, lag: Duration) -> Arc<Self> {
            let mut g = Arc::into_inner(Self::new(update, None)).expect("fresh");
            g.list_lag = lag;
            Arc::new(g)
        }
    }

    fn api_error(
        action: &'static str,
        http_status: u16,
        code: &str,
        class: ErrorClass,
    ) -> CloudError {
        CloudError::Api(Box::new(ApiError {
            action,
            http_status,
            code: code.into(),
            message: format!("{code} (a fake answer)"),
            request_id: None,
            host_id: None,
            recommend: None,
            retry_after: None,
            class,
        }))
    }

    fn busy_error() -> CloudError {
        api_error(
            "CreateVpnPbrRouteEntry",
            400,
            "VpnGateway.Configuring",
            ErrorClass::GatewayBusy,
        )
    }

    /// The answer of a read while `reads_fail` is set.
    fn unavailable(fake: &FakeGateway, action: &'static str) -> Result<(), CloudError> {
        if *fake.reads_fail.lock().unwrap() {
            return Err(api_error(
                action,
                503,
                "ServiceUnavailable",
                ErrorClass::Transient,
            ));
        }
        Ok(())
    }

    impl CloudPort for FakeGateway {
        /// Accepted changes are listed (published) once applied and `list_lag` has passed.
        fn list_entries<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
            Box::pin(async move {
                *self.lists.lock().unwrap() += 1;
                unavailable(self, "DescribeVpnPbrRouteEntries")?;
                let now = Instant::now();
                let visible = self.visible_at.lock().unwrap().clone();
                Ok(visible
                    .into_iter()
                    .filter(|(_, at)| *at <= now)
                    .map(|(src, _)| Entry {
                        route_source: src,
                        route_dest: "10.0.0.0/16".into(),
                        next_hop: "vco-a".into(),
                        weight: 100,
                        priority: 10,
                        state: "published".into(),
                        create_time: 1,
                        vpn_instance_id: "vpn-a".into(),
                    })
                    .collect())
            })
        }
        fn gateway<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
            Box::pin(async move {
                *self.calls.lock().unwrap() += 1;
                *self.reads.lock().unwrap() += 1;
                tokio::time::sleep(self.read_wait).await;
                unavailable(self, "DescribeVpnGateway")?;
                let busy = self
                    .busy_until
                    .lock()
                    .unwrap()
                    .is_some_and(|t| Instant::now() < t);
                Ok(GatewayFacts {
                    status: if busy { "updating" } else { "active" }.into(),
                    supports_priority: true,
                    dual_tunnel: false,
                    spec: None,
                })
            })
        }
        fn mutate<'a>(&'a self, _: &'a Scope, m: &'a Mutation) -> CloudFuture<'a, Accepted> {
            Box::pin(async move {
                *self.calls.lock().unwrap() += 1;
                {
                    let mut n = self.in_flight.lock().unwrap();
                    *n += 1;
                    let mut max = self.max_in_flight.lock().unwrap();
                    *max = (*max).max(*n);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                *self.in_flight.lock().unwrap() -= 1;
                let mut busy = self.busy_until.lock().unwrap();
                if busy.is_some_and(|t| Instant::now() < t) {
                    *self.refused.lock().unwrap() += 1;
                    return Err(busy_error());
                }
                *busy = Some(Instant::now() + self.update);
                let src = m.route().route_source.clone();
                self.accepted.lock().unwrap().push(src.clone());
                self.sent.lock().unwrap().push(m.clone());
                let lag = self
                    .lag_of
                    .lock()
                    .unwrap()
                    .get(&src)
                    .copied()
                    .unwrap_or(self.list_lag);
                self.visible_at
                    .lock()
                    .unwrap()
                    .push((src, Instant::now() + self.update + lag));
                Ok(Accepted {
                    request_id: Some("rid".into()),
                    entry: None,
                })
            })
        }
    }

    fn scope() -> Scope {
        let provider: Arc<dyn CredentialsProvider> = Arc::new(StaticCredentials::new(
            alicloud_vpc_client::Credentials::new("id", "secret"),
        ));
        Scope {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: "vpn-a".into(),
            credentials: CredentialsHandle {
                key: "default".into(),
                provider,
            },
        }
    }

    fn owner(i: usize) -> Owner {
        ObjectRef::new(&format!("r{i}")).within("ns")
    }

    fn publish(i: usize) -> Mutation {
        Mutation::Publish {
            route: RouteId {
                route_source: format!("src{i}"),
                route_dest: "10.0.0.0/16".into(),
                next_hop: "vco-a".into(),
            },
            publish_vpc: true,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_change_at_a_time_in_arrival_order_close_to_the_physical_limit() {
        let fake = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, mut rx) = scheduler_of(&fake);
        let n = 20;
        let start = Instant::now();
        for i in 0..n {
            sched.submit(&owner(i), &scope(), publish(i), Some(1));
        }
        // Every owner is woken once its change is accepted and once the gateway is confirmed.
        let mut confirmed = 0;
        while confirmed < n {
            let o = rx.recv().await.expect("wake");
            if let Some(JobView::Accepted {
                confirmed: true, ..
            }) = sched.view(&o, &scope().key())
            {
                sched.forget(&o, &scope().key());
                confirmed += 1;
            }
        }
        let took = start.elapsed();
        eprintln!("{n} changes took {took:?}");
        let accepted = fake.accepted.lock().unwrap().clone();
        assert_eq!(
            accepted,
            (0..n).map(|i| format!("src{i}")).collect::<Vec<_>>(),
            "arrival order"
        );
        assert_eq!(
            *fake.max_in_flight.lock().unwrap(),
            1,
            "one change in flight per gateway"
        );
        let limit = Duration::from_secs(2) * u32::try_from(n).unwrap();
        assert!(
            took.as_secs_f64() / limit.as_secs_f64() < 1.15,
            "took {took:?} for a limit of {limit:?}"
        );
        let calls = *fake.calls.lock().unwrap();
        assert!(calls <= n * 2, "{calls} calls for {n} changes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_confirmed_only_once_the_list_shows_it_with_one_list_per_burst() {
        let update = Duration::from_secs(2);
        let lag = Duration::from_secs(3);
        let fake = FakeGateway::lagging(update, lag);
        let (sched, mut rx) = scheduler_of(&fake);
        let n = 5;
        for i in 0..n {
            sched.submit(&owner(i), &scope(), publish(i), Some(1));
        }
        let mut confirmed = 0;
        while confirmed < n {
            let o = rx.recv().await.expect("wake");
            if let Some(JobView::Accepted {
                confirmed: true, ..
            }) = sched.view(&o, &scope().key())
            {
                let src = format!("src{}", o.name.trim_start_matches('r'));
                let visible = fake
                    .visible_at
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(s, _)| *s == src)
                    .map(|(_, at)| *at)
                    .expect("accepted");
                assert!(
                    visible <= Instant::now(),
                    "{src} confirmed before it was listed"
                );
                sched.forget(&o, &scope().key());
                confirmed += 1;
            }
        }
        let lists = *fake.lists.lock().unwrap();
        assert!(
            (1..=4).contains(&lists),
            "{lists} list reads for {n} changes: one per burst plus a few for the lag"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_cancelled_while_the_worker_waits_for_its_turn_is_never_sent() {
        let fake = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, mut rx) = scheduler_of(&fake);
        sched.submit(&owner(1), &scope(), publish(1), Some(1));
        let woken = rx.recv().await.expect("wake");
        assert_eq!(woken, owner(1));
        // The gateway is now updating: job 2 waits for its turn, then is cancelled.
        sched.submit(&owner(2), &scope(), publish(2), Some(1));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(
            sched.view(&owner(2), &scope().key()),
            Some(JobView::Queued { .. })
        ));
        assert!(sched.forget(&owner(2), &scope().key()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            fake.accepted.lock().unwrap().clone(),
            vec!["src1".to_owned()],
            "only the job still queued at its turn goes on the wire"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_job_is_replaced_and_a_forgotten_one_dropped() {
        let fake = FakeGateway::new(
            Duration::from_secs(1),
            Some(Instant::now() + Duration::from_secs(3)),
        );
        let (sched, mut rx) = scheduler_of(&fake);
        sched.submit(&owner(1), &scope(), publish(1), Some(1));
        sched.submit(&owner(2), &scope(), publish(2), Some(1));
        sched.submit(&owner(2), &scope(), publish(22), Some(1));
        sched.forget(&owner(1), &scope().key());
        loop {
            let o = rx.recv().await.expect("wake");
            if matches!(
                sched.view(&o, &scope().key()),
                Some(JobView::Accepted { .. })
            ) {
                break;
            }
        }
        assert_eq!(
            fake.accepted.lock().unwrap().clone(),
            vec!["src22".to_owned()]
        );
    }

    /// Gateways of one region, each with its own update time, behind the account's rate
    /// limiter if there is one (every call takes a token at its class, as the client does).
    struct FakeRegion {
        gateways: HashMap<String, Arc<FakeGateway>>,
        limiter: Option<Arc<RateLimiter>>,
    }

    impl FakeRegion {
        fn of(&self, scope: &Scope) -> &FakeGateway {
            self.gateways
                .get(&scope.vpn_gateway_id)
                .expect("known gateway")
        }

        async fn token(&self, mutation: bool) {
            if let Some(l) = &self.limiter {
                let class = if mutation {
                    Priority::Mutation
                } else {
                    current_priority().unwrap_or(Priority::Progress)
                };
                l.acquire(class).await;
            }
        }
    }

    impl CloudPort for FakeRegion {
        fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
            Box::pin(async move {
                self.token(false).await;
                self.of(scope).list_entries(scope).await
            })
        }
        fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
            Box::pin(async move {
                self.token(false).await;
                self.of(scope).gateway(scope).await
            })
        }
        fn mutate<'a>(&'a self, scope: &'a Scope, m: &'a Mutation) -> CloudFuture<'a, Accepted> {
            Box::pin(async move {
                self.token(true).await;
                self.of(scope).mutate(scope, m).await
            })
        }
    }

    fn scope_of(gateway: &str) -> Scope {
        Scope {
            vpn_gateway_id: gateway.into(),
            ..scope()
        }
    }

    /// Sends `per_gateway` changes to each gateway through one scheduler and waits until
    /// every one is confirmed; returns the time it took. Status reads made before (the
    /// routes' own read of the gateway) are not counted.
    async fn drive(gateways: &[Arc<FakeGateway>], per_gateway: usize) -> Duration {
        drive_limited(gateways, per_gateway, None).await
    }

    /// [`drive`] with every call taking a token of `limiter` first.
    async fn drive_limited(
        gateways: &[Arc<FakeGateway>],
        per_gateway: usize,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Duration {
        let ids: Vec<String> = (0..gateways.len()).map(|g| format!("vpn-{g}")).collect();
        let region = FakeRegion {
            gateways: ids.iter().cloned().zip(gateways.iter().cloned()).collect(),
            limiter,
        };
        let cloud: Arc<dyn CloudPort> = Arc::new(region);
        let cache = GatewayCache::new(cloud.clone(), mpsc::unbounded_channel().0);
        for (id, g) in ids.iter().zip(gateways) {
            cache
                .facts(&scope_of(id), Duration::MAX)
                .await
                .expect("facts");
            *g.reads.lock().unwrap() = 0;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sched = Scheduler::new(
            cloud,
            cache,
            SchedulerConfig::default(),
            tx,
            CancellationToken::new(),
        );
        let start = Instant::now();
        for i in 0..per_gateway {
            for (g, id) in ids.iter().enumerate() {
                let n = g * 1000 + i;
                sched.submit(&owner(n), &scope_of(id), publish(n), Some(1));
            }
        }
        let mut confirmed = 0;
        while confirmed < per_gateway * ids.len() {
            let o = rx.recv().await.expect("wake");
            let Some(key) = lock(&sched.inner.owners).get(&o).cloned() else {
                continue;
            };
            if let Some(JobView::Accepted {
                confirmed: true, ..
            }) = sched.view(&o, &key)
            {
                sched.forget(&o, &key);
                confirmed += 1;
            }
        }
        start.elapsed()
    }

    fn count(m: &StdMutex<usize>) -> usize {
        *m.lock().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn fifty_changes_learn_the_update_time_with_reads_not_refusals() {
        let t = Duration::from_secs(2);
        let fake = FakeGateway::new(t, None);
        let took = drive(std::slice::from_ref(&fake), 50).await;
        let (reads, refused, lists) =
            (count(&fake.reads), count(&fake.refused), count(&fake.lists));
        eprintln!("50 changes: {took:?}, {reads} reads, {refused} refused, {lists} lists");
        assert!(took <= (t * 50).mul_f64(1.05), "took {took:?}");
        assert!(refused <= 2, "{refused} refused");
        assert!(reads <= 12, "{reads} reads");
        assert!(lists <= 8, "{lists} lists");
        assert_eq!(count(&fake.max_in_flight), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_held_up_by_the_rate_limiter_do_not_teach_a_short_update_time() {
        let t = Duration::from_secs(2);
        let mut g = Arc::into_inner(FakeGateway::new(t, None)).expect("fresh");
        g.read_wait = Duration::from_secs(3);
        let fake = Arc::new(g);
        drive(std::slice::from_ref(&fake), 10).await;
        assert_eq!(count(&fake.refused), 0, "a free answer dated too early");
    }

    #[tokio::test(start_paused = true)]
    async fn gateways_of_a_region_learn_together_with_fewer_reads() {
        let t = Duration::from_secs(2);
        let alone = FakeGateway::new(t, None);
        drive(std::slice::from_ref(&alone), 25).await;
        let alone_reads = count(&alone.reads);

        let gateways: Vec<_> = (0..20).map(|_| FakeGateway::new(t, None)).collect();
        let took = drive(&gateways, 25).await;
        let reads: usize = gateways.iter().map(|g| count(&g.reads)).sum();
        let refused: usize = gateways.iter().map(|g| count(&g.refused)).sum();
        eprintln!(
            "20 gateways x 25 changes: {took:?}, {reads} reads ({alone_reads} alone), {refused} refused"
        );
        assert!(
            reads * 2 <= alone_reads * 20,
            "{reads} reads together, {alone_reads} for one gateway alone"
        );
        assert_eq!(refused, 0);
        assert!(took <= (t * 25).mul_f64(1.08), "took {took:?}");
        for g in &gateways {
            assert_eq!(count(&g.max_in_flight), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_a_binding_api_rate_changes_use_the_whole_rate_and_few_reads() {
        // 40 gateways of T = 2 s could take 20 changes a second; the account allows 4 calls a
        // second, so the rate binds: the changes should go at that rate, with few reads.
        let t = Duration::from_secs(2);
        let (gateways, per_gateway, rate) = (40, 20, 4.0);
        let limiter = Arc::new(RateLimiter::new(RateLimitConfig {
            max_rate: rate,
            min_rate: rate,
            burst: 1.0,
        }));
        let fakes: Vec<_> = (0..gateways).map(|_| FakeGateway::new(t, None)).collect();
        let took = drive_limited(&fakes, per_gateway, Some(limiter)).await;
        let sum = |f: fn(&FakeGateway) -> &StdMutex<usize>| -> usize {
            fakes.iter().map(|g| count(f(g))).sum()
        };
        let (reads, lists, refused) = (sum(|g| &g.reads), sum(|g| &g.lists), sum(|g| &g.refused));
        let changes = gateways * per_gateway;
        let calls = changes + reads + lists + refused;
        let bound = Duration::from_secs_f64(calls as f64 / rate);
        eprintln!(
            "{changes} changes at {rate}/s: {took:?} (bound {bound:?}), {reads} reads, \
             {lists} lists, {refused} refused"
        );
        assert_eq!(refused, 0);
        assert!(
            took <= bound.mul_f64(1.05),
            "took {took:?}, bound {bound:?}"
        );
        assert!(
            reads + lists <= changes / 5,
            "{reads} reads and {lists} lists for {changes} changes"
        );
    }

    /// A scheduler over `fake` and the receiver of its wake-ups.
    fn scheduler_of(fake: &Arc<FakeGateway>) -> (Scheduler, mpsc::UnboundedReceiver<Owner>) {
        let cloud: Arc<dyn CloudPort> = fake.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let sched = Scheduler::new(
            cloud.clone(),
            GatewayCache::new(cloud, mpsc::unbounded_channel().0),
            SchedulerConfig::default(),
            tx,
            CancellationToken::new(),
        );
        (sched, rx)
    }

    /// Waits until `owner`'s change is confirmed (listed, or given up on), at most an hour of
    /// the test's paused clock.
    async fn until_confirmed(
        sched: &Scheduler,
        rx: &mut mpsc::UnboundedReceiver<Owner>,
        owner: &Owner,
    ) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !matches!(
            sched.view(owner, &scope().key()),
            Some(JobView::Accepted {
                confirmed: true,
                ..
            })
        ) {
            let woken = tokio::time::timeout_at(deadline, rx.recv()).await;
            assert!(woken.is_ok(), "{owner} not confirmed within an hour");
        }
    }

    async fn until_lists(fake: &FakeGateway, n: usize) {
        while count(&fake.lists) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn read_backs_are_counted_per_change_not_per_gateway() {
        // A change the list never shows uses up its own read-backs; a later change on the same
        // gateway gets all of its own, and is confirmed only once the list shows it.
        let fake = FakeGateway::new(Duration::from_secs(1), None);
        fake.lag("src1", Duration::from_secs(100_000));
        fake.lag("src2", Duration::from_secs(10));
        let (sched, mut rx) = scheduler_of(&fake);
        let start = Instant::now();
        sched.submit(&owner(1), &scope(), publish(1), Some(1));
        until_lists(&fake, VERIFY_TRIES as usize - 1).await;
        sched.submit(&owner(2), &scope(), publish(2), Some(1));
        until_confirmed(&sched, &mut rx, &owner(1)).await;
        assert!(
            count(&fake.lists) >= VERIFY_TRIES as usize,
            "the unlisted change is given up on after its own read-backs"
        );
        assert!(
            Instant::now() - start >= LIST_LAG_MAX,
            "and not before a list could show a late change"
        );
        let lists_before = count(&fake.lists);
        until_confirmed(&sched, &mut rx, &owner(2)).await;
        let src2_visible = fake.visible_at.lock().unwrap()[1].1;
        assert!(
            src2_visible <= Instant::now(),
            "src2 confirmed before the list showed it, after {} reads of it",
            count(&fake.lists) - lists_before + 1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_the_read_back_gives_up_on_is_replayed_with_its_token_first() {
        // The list never shows the create: after its read-backs the same create (the same
        // ClientToken) goes again before any other change; a new token is the
        // route's decision only after that replay was read back too.
        let fake = FakeGateway::new(Duration::from_secs(1), None);
        fake.lag("src1", Duration::from_secs(100_000));
        let (sched, mut rx) = scheduler_of(&fake);
        let create = Mutation::Create {
            route: RouteId {
                route_source: "src1".into(),
                route_dest: "10.0.0.0/16".into(),
                next_hop: "vco-a".into(),
            },
            weight: 100,
            priority: None,
            publish_vpc: true,
            description: None,
            overlay_mode: None,
            client_token: "tok-1".into(),
        };
        sched.submit(&owner(1), &scope(), create.clone(), Some(1));
        // Given up on (its read-backs, and the time a late list needs): the replay goes out.
        while fake.sent.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sched.submit(&owner(2), &scope(), publish(2), Some(1));
        until_confirmed(&sched, &mut rx, &owner(1)).await;
        let sent = fake.sent.lock().unwrap().clone();
        assert_eq!(
            sent.first().zip(sent.get(1)),
            Some((&create, &create)),
            "the same create again, before the change queued meanwhile: {sent:?}"
        );
        assert_eq!(sent.get(2), Some(&publish(2)), "{sent:?}");
        let tokens = sent
            .iter()
            .filter(|m| matches!(m, Mutation::Create { .. }))
            .count();
        assert_eq!(tokens, 2, "never a third create from the scheduler");
        assert!(
            count(&fake.lists) >= 2 * VERIFY_TRIES as usize,
            "the replay has read-backs of its own"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_changes_say_so_once_the_gateways_reads_keep_failing() {
        // A long queue with healthy reads is no stall.
        let stalled = |sched: &Scheduler, i: usize| match sched.view(&owner(i), &scope().key()) {
            Some(JobView::Queued { stalled, .. } | JobView::Accepted { stalled, .. }) => stalled,
            _ => None,
        };
        let healthy = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, _rx) = scheduler_of(&healthy);
        for i in 0..10 {
            sched.submit(&owner(i), &scope(), publish(i), Some(1));
        }
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for i in 0..10 {
                assert!(
                    stalled(&sched, i).is_none(),
                    "r{i} stalled in a healthy queue"
                );
            }
        }

        // The gateway's status reads fail: the second change waits for the first to be known
        // applied. Past both bounds (failed reads, and time since the first of them), the
        // changes waiting on those reads say why and keep their place; once reads work again
        // they go on in their order.
        let fake = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, mut rx) = scheduler_of(&fake);
        *fake.reads_fail.lock().unwrap() = true;
        let failing_since = Instant::now();
        sched.submit(&owner(0), &scope(), publish(0), Some(1));
        sched.submit(&owner(1), &scope(), publish(1), Some(1));
        let told = tokio::time::timeout(Duration::from_secs(600), async {
            loop {
                let woken = rx.recv().await.expect("scheduler alive");
                if woken == owner(1) && stalled(&sched, 1).is_some() {
                    break;
                }
            }
        })
        .await;
        assert!(
            told.is_ok(),
            "the queued change never said it waits on failing reads"
        );
        let failed = count(&fake.reads);
        assert!(
            failed >= STALL_READS as usize,
            "told after {failed} failed reads"
        );
        assert!(Instant::now() - failing_since >= STALL_AFTER);
        assert!(
            matches!(stalled(&sched, 1), Some(Stall::Queued(e)) if e.code() == "ServiceUnavailable"),
            "{:?}",
            stalled(&sched, 1)
        );
        assert!(
            matches!(stalled(&sched, 0), Some(Stall::Status(_))),
            "the accepted change waits on the same reads: {:?}",
            stalled(&sched, 0)
        );

        *fake.reads_fail.lock().unwrap() = false;
        until_confirmed(&sched, &mut rx, &owner(1)).await;
        assert!(stalled(&sched, 1).is_none());
        let sent = fake.sent.lock().unwrap().clone();
        assert_eq!(
            sent,
            [publish(0), publish(1)],
            "in arrival order, each once"
        );
    }
}
