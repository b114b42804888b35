//! The gateway scheduler: at most one mutation in flight per VPN gateway, in arrival order.
//!
//! A gateway refuses every change while it applies the previous one (`updating`), so sending
//! changes blindly wastes calls and time. Each gateway gets one worker task that runs its
//! queue (`queue.rs`, a pure state machine holding every rule): it sends the next mutation as
//! soon as the gateway should be `active` again, learning the gateway's update time from a few
//! cheap status reads after its first change. Reconciles only enqueue and return; the worker
//! wakes their object (through `wake`) when the outcome is known, so a waiting route holds no
//! controller worker and nothing polls per route.
//!
//! This file is the driver: it makes the calls the queue asks for and feeds their answers back.
//! Lock order: the gateway map or the owner index alone; a gateway's queue, then the shared
//! estimates (`regions`), never the other way round.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::entries::GatewayCache;
use super::job::{JobView, Owner};
use super::model::{GatewayKey, GatewayStatus, Mutation, Scope};
use super::port::CloudPort;
use super::queue::{Command, Event, Forgot, GatewayQueue, Peers, READ_BACK_EVERY, Regions};
use crate::sync::lock;
use alicloud_vpc_client::{DEFAULT_ACCOUNT, Priority, with_priority};

/// Tuning of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Off: every mutation is sent at once and a busy gateway fails the job, as a naive
    /// operator would do (the benchmark's baseline).
    pub(crate) enabled: bool,
    /// Applied changes read back together while the gateway binds (`--read-back-every`).
    pub(crate) read_back_every: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            read_back_every: READ_BACK_EVERY,
        }
    }
}

/// One gateway's queue and the worker's doorbell.
struct Lane {
    /// Shared by the owner index, so 10,000 routes do not hold 10,000 copies of it.
    key: Arc<GatewayKey>,
    /// The account key of its first job's credentials (for the metrics' `account` label).
    account: String,
    queue: Mutex<GatewayQueue>,
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
    lanes: Mutex<HashMap<GatewayKey, Arc<Lane>>>,
    /// What each region (and specification) learned of its gateways' update time.
    regions: Mutex<Regions>,
    next_id: AtomicU64,
    /// The gateway each owner's job is on (an owner has at most one job).
    owners: Mutex<HashMap<Owner, Arc<GatewayKey>>>,
    wake_owner: mpsc::UnboundedSender<Owner>,
    shutdown: CancellationToken,
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
                lanes: Mutex::new(HashMap::new()),
                regions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                owners: Mutex::new(HashMap::new()),
                wake_owner,
                shutdown,
            }),
        }
    }

    fn lane(&self, key: &GatewayKey) -> Option<Arc<Lane>> {
        lock(&self.inner.lanes).get(key).cloned()
    }

    /// The gateway's lane, made (with its worker) if it has none yet.
    fn lane_or_start(&self, key: &GatewayKey, account: &str) -> Arc<Lane> {
        let mut map = lock(&self.inner.lanes);
        if let Some(l) = map.get(key) {
            return l.clone();
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane {
            key: Arc::new(key.clone()),
            account: account.to_owned(),
            queue: Mutex::new(
                GatewayQueue::new(id, self.inner.config.enabled)
                    .with_read_back_every(self.inner.config.read_back_every),
            ),
            wake: Notify::new(),
        });
        map.insert(key.clone(), lane.clone());
        let worker = Worker {
            inner: self.inner.clone(),
            lane: lane.clone(),
        };
        let span = tracing::info_span!("gateway", gateway = %key);
        tokio::spawn(worker.run().instrument(span));
        lane
    }

    /// Queues `mutation` for `owner`, planned from spec `generation`. A queued job of the same
    /// owner is replaced (the plan changed); one in flight is left alone and its outcome
    /// reported first. `watched_alone`: the watch shows no other route of the gateway with a
    /// change under way (`PromptLane::alone`); only then may the change be lone.
    pub(crate) fn submit(
        &self,
        owner: &Owner,
        scope: &Scope,
        mutation: Mutation,
        generation: Option<i64>,
        watched_alone: bool,
    ) {
        let key = scope.key();
        let previous = lock(&self.inner.owners).get(owner).cloned();
        if let Some(old) = previous.filter(|k| **k != key)
            && !self.forget(owner, &old)
        {
            // Its change for the other gateway (other credentials) is still on the wire.
            return;
        }
        let lane = self.lane_or_start(&key, &scope.credentials.account);
        lock(&self.inner.owners).insert(owner.clone(), lane.key.clone());
        let shared = self.inner.cache.shared(scope);
        let alone = watched_alone && !shared;
        tracing::debug!(gateway = %key, watched_alone, shared, "change submitted");
        if lock(&lane.queue).submit(owner, scope, mutation, generation, alone) {
            lane.wake.notify_one();
        }
    }

    /// The owner's job on this gateway, if any.
    pub(crate) fn view(&self, owner: &Owner, key: &GatewayKey) -> Option<JobView> {
        let lane = self.lane(key)?;
        lock(&lane.queue).view(owner, Instant::now())
    }

    /// Drops the owner's finished job (its outcome has been recorded) or cancels a queued one
    /// (the plan no longer wants it). A job in flight stays until it finishes: returns false
    /// then, true when the owner has no job left on this gateway.
    fn forget(&self, owner: &Owner, key: &GatewayKey) -> bool {
        let Some(lane) = self.lane(key) else {
            return true;
        };
        if lock(&lane.queue).forget(owner) == Forgot::OnTheWire {
            return false;
        }
        self.inner.unindex(owner, key);
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
        let lane = self.lane(key)?;
        lock(&lane.queue).status().cloned()
    }

    /// Whether no change holds the gateway: a change planned now would be lone, and the reads
    /// it waits on go at its class (`Freshness::priority`).
    pub(crate) fn quiet(&self, key: &GatewayKey) -> bool {
        self.lane(key).is_none_or(|l| lock(&l.queue).quiet())
    }

    /// Whether no change holds any gateway of this id (in any account or region).
    pub(crate) fn quiet_gateway(&self, vpn_gateway_id: &str) -> bool {
        self.inner
            .lanes()
            .iter()
            .filter(|(k, _)| k.vpn_gateway_id == vpn_gateway_id)
            .all(|(_, l)| lock(&l.queue).quiet())
    }

    /// The watch shows a burst joining gateway `vpn_gateway_id` (`PromptLane::note`): its
    /// changes and reads that started lone go at the burst's classes from now on.
    pub(crate) fn accompanied(&self, vpn_gateway_id: &str) {
        for (key, lane) in self.inner.lanes() {
            if key.vpn_gateway_id == vpn_gateway_id {
                lock(&lane.queue).accompanied();
            }
        }
        self.inner.cache.accompanied(vpn_gateway_id);
    }

    /// Mutations being sent right now (shutdown waits for them).
    pub(crate) fn in_flight(&self) -> usize {
        self.inner
            .lanes()
            .iter()
            .map(|(_, l)| lock(&l.queue).in_flight())
            .sum()
    }

    /// Gateways whose changes wait on reads that keep failing, by account and read (for the
    /// metric): `(account, read, gateways)` for every account with a gateway and the default
    /// account, zeros included (lanes are never dropped, so no account's count goes stale).
    pub(crate) fn stalls(&self) -> Vec<(String, &'static str, usize)> {
        let now = Instant::now();
        let mut by_account = BTreeMap::from([(DEFAULT_ACCOUNT.to_owned(), (0, 0))]);
        for (_, lane) in self.inner.lanes() {
            let (s, l) = lock(&lane.queue).stalled_reads(now);
            let (status, list) = by_account.entry(lane.account.clone()).or_default();
            *status += usize::from(s);
            *list += usize::from(l);
        }
        by_account
            .into_iter()
            .flat_map(|(account, (s, l))| [(account.clone(), "status", s), (account, "list", l)])
            .collect()
    }

    /// Jobs waiting or in flight per gateway, with the account of its calls (for the
    /// queue-depth metric).
    pub(crate) fn depths(&self) -> Vec<(GatewayKey, String, usize)> {
        self.inner
            .lanes()
            .into_iter()
            .map(|(k, l)| {
                let n = lock(&l.queue).depth();
                (k, l.account.clone(), n)
            })
            .collect()
    }
}

#[cfg(test)]
impl Scheduler {
    /// A scheduler of `cloud` with default settings, and the owners it wakes (for tests).
    pub(crate) fn of_cloud(cloud: Arc<dyn CloudPort>) -> (Self, mpsc::UnboundedReceiver<Owner>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sched = Self::new(
            cloud.clone(),
            GatewayCache::new(cloud, mpsc::unbounded_channel().0),
            SchedulerConfig::default(),
            tx,
            CancellationToken::new(),
        );
        (sched, rx)
    }
}

impl Inner {
    fn lanes(&self) -> Vec<(GatewayKey, Arc<Lane>)> {
        lock(&self.lanes)
            .iter()
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect()
    }

    /// Forgets where the owner's job was, unless it moved to another gateway since.
    fn unindex(&self, owner: &Owner, key: &GatewayKey) {
        let mut owners = lock(&self.owners);
        if owners.get(owner).is_some_and(|k| **k == *key) {
            owners.remove(owner);
        }
    }
}

/// Runs one gateway's queue: makes the calls it asks for and feeds the answers back.
struct Worker {
    inner: Arc<Inner>,
    lane: Arc<Lane>,
}

impl Worker {
    fn on(&self, event: Event) -> Vec<Command> {
        let room = self.inner.cloud.rate_has_room(&self.lane.account);
        let mut queue = lock(&self.lane.queue);
        queue.rate_has_room(room);
        let mut regions = lock(&self.inner.regions);
        queue.on(event, Instant::now(), &mut regions)
    }

    async fn run(self) {
        let mut event = Event::Free;
        loop {
            let commands = self.on(event);
            event = Event::Free;
            for command in commands {
                let Some(next) = self.run_command(command).await else {
                    return;
                };
                if let Some(next) = next {
                    event = next;
                }
            }
        }
    }

    /// Runs one command; `None` on shutdown, else the event it answers with, if any.
    async fn run_command(&self, command: Command) -> Option<Option<Event>> {
        let cache = &self.inner.cache;
        let answer = match command {
            Command::SleepUntil(at) => {
                // Sleep until due, but wake early for new work or shutdown.
                // Biased (no random branch order): a simulated seed replays exactly.
                let woken = tokio::select! {
                    biased;
                    () = self.inner.shutdown.cancelled() => return None,
                    () = self.lane.wake.notified() => true,
                    () = async {
                        match at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => false,
                };
                Event::Due { woken }
            }
            Command::Pause(d) => {
                tokio::time::sleep(d).await;
                return Some(None);
            }
            Command::Send {
                scope,
                mutation,
                class,
            } => Event::Sent(call("send", class, self.inner.cloud.mutate(&scope, &mutation)).await),
            Command::ReadStatus { scope, class } => {
                let read = call("status", class, cache.refresh_facts(&scope)).await;
                Event::StatusRead(read.map(|facts| facts.status))
            }
            Command::ReadList { scope, class } => {
                Event::ListRead(call("list", class, cache.entries(&scope, Duration::ZERO)).await)
            }
            Command::LearnPeers(scope) => Event::Peers(self.peers(&scope).await),
            Command::CacheApply {
                scope,
                mutation,
                created,
            } => {
                cache.apply(&scope, &mutation, created.as_ref());
                return Some(None);
            }
            Command::CacheInvalidate(scope) => {
                cache.invalidate(&scope);
                return Some(None);
            }
            Command::Wake(owners) => {
                self.wake(owners);
                return Some(None);
            }
            Command::Release(owner) => {
                self.inner.unindex(&owner, &self.lane.key);
                self.wake([owner]);
                return Some(None);
            }
            Command::WakePeers(peers) => {
                self.wake_peers(&peers);
                return Some(None);
            }
        };
        Some(Some(answer))
    }

    fn wake(&self, owners: impl IntoIterator<Item = Owner>) {
        for o in owners {
            // The receiver lives as long as the controller; a send error means shutdown.
            let _ = self.inner.wake_owner.send(o);
        }
    }

    /// The region proved a shorter free gap: the other workers of the region plan again (a
    /// change waiting for a looser bound may go now).
    fn wake_peers(&self, peers: &Peers) {
        // In key order, not the map's: the workers wake in an order a simulated seed replays.
        let mut lanes = self.inner.lanes();
        lanes.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, lane) in lanes {
            if Arc::ptr_eq(&lane, &self.lane) {
                continue;
            }
            if lock(&lane.queue).peers() == Some(peers) {
                lane.wake.notify_one();
            }
        }
    }

    /// Whom this gateway shares its update time with: its region, account and specification,
    /// from the facts the routes read (cached; read once if not).
    async fn peers(&self, scope: &Scope) -> Peers {
        let spec = match self.inner.cache.facts(scope, Duration::MAX).await {
            Ok(facts) => facts.spec,
            Err(_) => None,
        };
        Peers::of(scope, spec)
    }
}

/// Makes a gateway call at `class`; its answer is logged for `--log-level ...::scheduler=debug`
/// (the worker's span names the gateway): what waited where shows in how long a call of each
/// class took.
async fn call<T, E>(
    call: &'static str,
    class: Priority,
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let answer = with_priority(class, request).await;
    let took_ms = start.elapsed().as_millis();
    tracing::debug!(
        call,
        ?class,
        took_ms,
        ok = answer.is_ok(),
        "gateway call answered"
    );
    answer
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
    use crate::controller::fixtures::{api_error, entry_of, owner, publish, route, scope};

    use crate::controller::job::Stall;
    use crate::controller::model::{Accepted, Entry, GatewayFacts};
    use crate::controller::port::CloudFuture;
    use crate::controller::queue::{LIST_LAG_MAX, STALL_AFTER, STALL_READS, VERIFY_TRIES};
    use alicloud_vpc_client::{
        CloudError, ErrorClass, RateLimitConfig, RateLimiter, class_of_call,
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

    fn busy_error() -> CloudError {
        api_error(
            "CreateVpnPbrRouteEntry",
            400,
            "VpnGateway.Configuring",
            ErrorClass::GatewayBusy,
            None,
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
                None,
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
                    .map(|(src, _)| entry_of(&src))
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

    #[tokio::test(start_paused = true)]
    async fn one_change_at_a_time_in_arrival_order_close_to_the_physical_limit() {
        let fake = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, mut rx) = scheduler_of(&fake);
        let n = 20;
        let start = Instant::now();
        // Every owner is woken once its change is accepted and once the gateway is confirmed.
        publish_until_confirmed(&sched, &mut rx, n, |_| {}).await;
        let took = start.elapsed();
        eprintln!("{n} changes took {took:?}");
        let accepted = fake.accepted.lock().unwrap().clone();
        assert_eq!(
            accepted,
            (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>(),
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
        publish_until_confirmed(&sched, &mut rx, n, |o| {
            let src = format!("s{}", o.name.trim_start_matches('r'));
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
        })
        .await;
        let lists = *fake.lists.lock().unwrap();
        assert!(
            (1..=5).contains(&lists),
            "{lists} list reads for {n} changes: the first change alone, then one per burst, \
             plus a few for the lag"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_cancelled_while_the_worker_waits_for_its_turn_is_never_sent() {
        let fake = FakeGateway::new(Duration::from_secs(2), None);
        let (sched, mut rx) = scheduler_of(&fake);
        sched.submit(&owner(1), &scope(), publish(1), Some(1), true);
        let woken = rx.recv().await.expect("wake");
        assert_eq!(woken, owner(1));
        // The gateway is now updating: job 2 waits for its turn, then is cancelled.
        sched.submit(&owner(2), &scope(), publish(2), Some(1), true);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(matches!(
            sched.view(&owner(2), &scope().key()),
            Some(JobView::Queued { .. })
        ));
        assert!(sched.forget(&owner(2), &scope().key()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            fake.accepted.lock().unwrap().clone(),
            vec!["s1".to_owned()],
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
        sched.submit(&owner(1), &scope(), publish(1), Some(1), true);
        sched.submit(&owner(2), &scope(), publish(2), Some(1), true);
        sched.submit(&owner(2), &scope(), publish(22), Some(1), true);
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
            vec!["s22".to_owned()]
        );
    }

    /// Gateways of one region, each with its own update time, behind the account's rate
    /// limiter if there is one (every call takes a token at its class, as the client does).
    struct FakeRegion {
        gateways: HashMap<String, Arc<FakeGateway>>,
        limiter: Option<Arc<RateLimiter>>,
        /// What it says of the account's rate (`CloudPort::rate_has_room`).
        room: bool,
    }

    impl FakeRegion {
        fn of(&self, scope: &Scope) -> &FakeGateway {
            self.gateways
                .get(&scope.vpn_gateway_id)
                .expect("known gateway")
        }

        async fn token(&self, mutation: bool) {
            if let Some(l) = &self.limiter {
                l.acquire(class_of_call(mutation)).await;
            }
        }
    }

    impl CloudPort for FakeRegion {
        fn rate_has_room(&self, _account: &str) -> bool {
            self.room
        }
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
        drive_in(gateways, &[""], per_gateway, limiter).await.0
    }

    /// Gateway `vpn-<g>` in account `accounts[g % accounts.len()]` (its own credentials).
    fn scope_in(g: usize, accounts: &[&str]) -> Scope {
        let account = accounts[g % accounts.len()];
        let mut scope = scope_of(&format!("vpn-{g}"));
        if !account.is_empty() {
            scope.credentials.key = format!("secret:{account}");
            scope.credentials.account = account.to_owned();
        }
        scope
    }

    /// [`drive_limited`] with gateway `g` in account `accounts[g % accounts.len()]`; also
    /// returns the scheduler, for what it learned.
    async fn drive_in(
        gateways: &[Arc<FakeGateway>],
        accounts: &[&str],
        per_gateway: usize,
        limiter: Option<Arc<RateLimiter>>,
    ) -> (Duration, Scheduler) {
        let (sched, mut rx, scopes) = region_scheduler(gateways, accounts, limiter, true).await;
        let start = Instant::now();
        for i in 0..per_gateway {
            for (g, scope) in scopes.iter().enumerate() {
                let n = g * 1000 + i;
                sched.submit(&owner(n), scope, publish(n), Some(1), true);
            }
        }
        let mut confirmed = 0;
        while confirmed < per_gateway * scopes.len() {
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
        (start.elapsed(), sched)
    }

    /// A scheduler over `gateways` (gateway `g` in account `accounts[g % accounts.len()]`)
    /// behind `limiter`, with each gateway's facts in its cache (reads counted from zero), its
    /// wake-ups and the gateways' scopes.
    async fn region_scheduler(
        gateways: &[Arc<FakeGateway>],
        accounts: &[&str],
        limiter: Option<Arc<RateLimiter>>,
        room: bool,
    ) -> (Scheduler, mpsc::UnboundedReceiver<Owner>, Vec<Scope>) {
        let scopes: Vec<Scope> = (0..gateways.len()).map(|g| scope_in(g, accounts)).collect();
        let ids: Vec<String> = scopes.iter().map(|s| s.vpn_gateway_id.clone()).collect();
        let region = FakeRegion {
            gateways: ids.iter().cloned().zip(gateways.iter().cloned()).collect(),
            limiter,
            room,
        };
        let cloud: Arc<dyn CloudPort> = Arc::new(region);
        let cache = GatewayCache::new(cloud.clone(), mpsc::unbounded_channel().0);
        for (scope, g) in scopes.iter().zip(gateways) {
            cache.facts(scope, Duration::MAX).await.expect("facts");
            *g.reads.lock().unwrap() = 0;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let sched = Scheduler::new(
            cloud,
            cache,
            SchedulerConfig::default(),
            tx,
            CancellationToken::new(),
        );
        (sched, rx, scopes)
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_change_on_a_quiet_gateway_goes_ahead_of_a_queued_burst() {
        // 20 busy gateways with 10 changes each at 4 calls/s: every busy gateway has a change
        // waiting at the limiter, a backlog of 5 s. A change on a 21st, quiet gateway is lone:
        // it, and the read-back its route waits for, go ahead of that backlog.
        let t = Duration::from_secs(2);
        let rate = 4.0;
        let limiter = Arc::new(RateLimiter::new(RateLimitConfig {
            max_rate: rate,
            min_rate: rate,
            burst: 1.0,
        }));
        let fakes: Vec<_> = (0..21).map(|_| FakeGateway::new(t, None)).collect();
        let (sched, mut rx, scopes) = region_scheduler(&fakes, &[""], Some(limiter), true).await;
        for i in 0..10 {
            for (g, scope) in scopes.iter().enumerate().take(20) {
                let n = g * 1000 + i;
                sched.submit(&owner(n), scope, publish(n), Some(1), true);
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (lone, key) = (owner(20_000), scopes[20].key());
        let start = Instant::now();
        sched.submit(&lone, &scopes[20], publish(20_000), Some(1), true);
        let mut accepted = None;
        loop {
            rx.recv().await.expect("wake");
            match sched.view(&lone, &key) {
                Some(JobView::Accepted { confirmed, .. }) => {
                    accepted.get_or_insert(start.elapsed());
                    if confirmed {
                        break;
                    }
                }
                _ => continue,
            }
        }
        let (accepted, confirmed) = (accepted.unwrap_or_default(), start.elapsed());
        let burst: usize = fakes[..20]
            .iter()
            .map(|g| g.accepted.lock().unwrap().len())
            .sum();
        eprintln!(
            "lone change accepted after {accepted:?}, confirmed after {confirmed:?}; {burst} of the burst's 200 changes accepted"
        );
        assert!(
            accepted <= Duration::from_millis(500),
            "accepted after {accepted:?}: it waited behind the burst"
        );
        assert!(
            confirmed <= t + Duration::from_secs(1),
            "confirmed after {confirmed:?}"
        );
        assert!(burst < 200, "the burst was over: nothing to go ahead of");
    }

    /// 40 changes on one gateway of update time `t` whose account's rate has `room`: the
    /// longest and the first route's time from acceptance to confirmation, and the lists read.
    async fn read_backs(t: Duration, room: bool) -> (Duration, Duration, usize) {
        let fake = FakeGateway::new(t, None);
        let (sched, mut rx, scopes) =
            region_scheduler(std::slice::from_ref(&fake), &[""], None, room).await;
        let (n, key) = (40, scopes[0].key());
        for i in 0..n {
            sched.submit(&owner(i), &scopes[0], publish(i), Some(1), true);
        }
        let mut accepted_at = HashMap::new();
        let (mut longest, mut first) = (Duration::ZERO, Duration::ZERO);
        let mut confirmed = 0;
        while confirmed < n {
            let o = rx.recv().await.expect("wake");
            match sched.view(&o, &key) {
                Some(JobView::Accepted {
                    confirmed: false, ..
                }) => {
                    accepted_at.entry(o).or_insert_with(Instant::now);
                }
                Some(JobView::Accepted {
                    confirmed: true, ..
                }) => {
                    let since = accepted_at.get(&o).map_or(Duration::ZERO, |a| a.elapsed());
                    longest = longest.max(since);
                    if o == owner(0) {
                        first = since;
                    }
                    sched.forget(&o, &key);
                    confirmed += 1;
                }
                _ => {}
            }
        }
        (longest, first, count(&fake.lists))
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_gateway_binds_its_changes_are_read_back_every_few() {
        // One gateway of T = 2 s, 40 changes, the API rate with room: a route's change is
        // confirmed within a few update times of its acceptance, at about one list per
        // `READ_BACK_EVERY` changes (not at the batch of 32 or the queue's end).
        let (t, n) = (Duration::from_secs(2), 40);
        let (longest, first, lists) = read_backs(t, true).await;
        eprintln!(
            "{n} changes: {lists} lists, longest acceptance -> confirmation {longest:?}, \
             first {first:?}"
        );
        // The first change is read back alone, as soon as it is known applied.
        // (The first cycle also learns the update time: its status reads end at 2.7 s.)
        assert!(first <= t * 3 / 2, "first after {first:?}");
        assert!(
            longest <= t * u32::try_from(READ_BACK_EVERY + 1).expect("small"),
            "a change waited {longest:?} for its read-back"
        );
        assert!(
            lists <= n / READ_BACK_EVERY + 3,
            "{lists} lists for {n} changes"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_api_rate_binds_applied_changes_wait_for_the_queues_end() {
        // The same 40 changes while calls wait at the account's limiter: a list would cost a
        // change its turn, so the changes are read back once, at the queue's end.
        let (longest, _, lists) = read_backs(Duration::from_secs(2), false).await;
        assert!(lists <= 2, "{lists} lists for 40 changes");
        assert!(
            longest > Duration::from_secs(60),
            "confirmed after {longest:?}"
        );
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
        // Nothing else uses the rate: applied changes are read back every few.
        assert!(lists <= 50 / READ_BACK_EVERY + 2, "{lists} lists");
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

    /// Gateways of one region and specification share what they learn only within their
    /// account: a prober's reads wait at its own account's limiter.
    #[tokio::test(start_paused = true)]
    async fn gateways_of_one_region_and_spec_learn_together_only_within_an_account() {
        let t = Duration::from_secs(2);
        let accounts = ["team-a", "team-b", ""];
        let gateways: Vec<_> = (0..6).map(|_| FakeGateway::new(t, None)).collect();
        let (_, sched) = drive_in(&gateways, &accounts, 5, None).await;
        let mut learned: Vec<(String, String, Option<String>)> = lock(&sched.inner.regions)
            .keys()
            .map(|p| (p.region_id.clone(), p.account.clone(), p.spec.clone()))
            .collect();
        learned.sort();
        let region = |account: &str| ("cn-hangzhou".to_owned(), account.to_owned(), None);
        assert_eq!(learned, [region(""), region("team-a"), region("team-b")]);
        let mut lanes = sched.inner.lanes();
        lanes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(lanes.len(), gateways.len());
        for (key, lane) in lanes {
            let g: usize = key.vpn_gateway_id["vpn-".len()..].parse().expect("vpn-<g>");
            let peers = lock(&lane.queue).peers().cloned().expect("peers learned");
            assert_eq!(peers, Peers::of(&scope_in(g, &accounts), None), "{key}");
        }
        // The metrics name each gateway's account.
        let mut depths: Vec<_> = sched
            .depths()
            .into_iter()
            .map(|(key, account, n)| (key.vpn_gateway_id, account, n))
            .collect();
        depths.sort();
        let want: Vec<_> = (0..gateways.len())
            .map(|g| (format!("vpn-{g}"), accounts[g % 3].to_owned(), 0))
            .collect();
        assert_eq!(depths, want);
        let stalls: Vec<_> = accounts
            .iter()
            .flat_map(|a| [(a.to_string(), "status", 0), (a.to_string(), "list", 0)])
            .collect();
        let mut got = sched.stalls();
        got.sort();
        let mut want = stalls;
        want.sort();
        assert_eq!(got, want);
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
        Scheduler::of_cloud(fake.clone())
    }

    /// Submits route `i`'s publication for `i` in `0..n` and waits until each is confirmed,
    /// calling `confirmed` with its owner; then forgets it.
    async fn publish_until_confirmed(
        sched: &Scheduler,
        rx: &mut mpsc::UnboundedReceiver<Owner>,
        n: usize,
        confirmed: impl Fn(&Owner),
    ) {
        for i in 0..n {
            sched.submit(&owner(i), &scope(), publish(i), Some(1), true);
        }
        let mut done = 0;
        while done < n {
            let o = rx.recv().await.expect("wake");
            if let Some(JobView::Accepted {
                confirmed: true, ..
            }) = sched.view(&o, &scope().key())
            {
                confirmed(&o);
                sched.forget(&o, &scope().key());
                done += 1;
            }
        }
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
        fake.lag("s1", Duration::from_secs(100_000));
        fake.lag("s2", Duration::from_secs(10));
        let (sched, mut rx) = scheduler_of(&fake);
        let start = Instant::now();
        sched.submit(&owner(1), &scope(), publish(1), Some(1), true);
        until_lists(&fake, VERIFY_TRIES as usize - 1).await;
        sched.submit(&owner(2), &scope(), publish(2), Some(1), true);
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
            "s2 confirmed before the list showed it, after {} reads of it",
            count(&fake.lists) - lists_before + 1
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_the_read_back_gives_up_on_is_replayed_with_its_token_first() {
        // The list never shows the create: after its read-backs the same create (the same
        // ClientToken) goes again before any other change; a new token is the
        // route's decision only after that replay was read back too.
        let fake = FakeGateway::new(Duration::from_secs(1), None);
        fake.lag("s1", Duration::from_secs(100_000));
        let (sched, mut rx) = scheduler_of(&fake);
        let create = Mutation::Create {
            route: route(1),
            weight: 100,
            priority: None,
            publish_vpc: true,
            description: None,
            overlay_mode: None,
            client_token: "tok-1".into(),
        };
        sched.submit(&owner(1), &scope(), create.clone(), Some(1), true);
        // Given up on (its read-backs, and the time a late list needs): the replay goes out.
        while fake.sent.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sched.submit(&owner(2), &scope(), publish(2), Some(1), true);
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
            sched.submit(&owner(i), &scope(), publish(i), Some(1), true);
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
        sched.submit(&owner(0), &scope(), publish(0), Some(1), true);
        sched.submit(&owner(1), &scope(), publish(1), Some(1), true);
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
        assert_eq!(
            sched.stalls(),
            [(String::new(), "status", 1), (String::new(), "list", 0)],
            "the metric counts the gateway, in its account"
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
