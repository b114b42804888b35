//! Per-gateway read cache: one entry list and one status read serve every route of a gateway.
//!
//! Lists are fetched once per gateway (single flight: concurrent readers wait for the one call)
//! and kept for a short time; accepted mutations are applied to the cached list, so a route sees
//! its own change without another list call.
//!
//! `read` is the non-blocking face: it never awaits the cloud, so a reconcile of a slow or dead
//! gateway gives its worker back at once instead of holding it through timeouts and retries. The
//! read runs in a spawned task and the controller wakes the routes that waited for it.
//!
//! The read's calls take the highest class (`alicloud_vpc_client::Priority`) among the routes
//! waiting for it: a drift check nobody waits on is `Background`, and a route with a pending
//! change that joins it raises it (a call still waiting at the lower class is started again).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::job::Owner;
use super::model::{Entry, GatewayFacts, GatewayKey, Mutation, Scope};
use super::port::CloudPort;
use crate::sync::lock;
use alicloud_vpc_client::{CloudError, Priority, with_priority};

/// How long a failed read answers for its gateway: the routes of a dead gateway then cost one
/// call per this time, not one each.
pub(crate) const FAILED_READ_TTL: Duration = Duration::from_secs(2);

/// Our own changes remembered per gateway to replay on a list that was under way when they
/// were accepted; a list that missed more is dropped and read again.
const REPLAY_MAX: usize = 64;

/// What a non-blocking read found.
#[derive(Clone, Debug)]
pub(crate) enum Read {
    /// Facts and entries, each within its maximum age.
    Ready {
        facts: GatewayFacts,
        entries: Arc<Vec<Entry>>,
    },
    /// A read of this gateway is under way (started now or earlier); `owner` is woken when it
    /// ends.
    Pending,
    /// The last read of this gateway failed less than the failure TTL ago: every reader gets
    /// the same error without a new call.
    Failed(Arc<CloudError>),
}

/// The oldest facts and list a reader accepts (`None`: any cached value).
#[derive(Clone, Copy, Debug, Default)]
struct Need {
    facts: Option<Instant>,
    list: Option<Instant>,
}

impl Need {
    fn within(facts_max_age: Duration, list_max_age: Duration) -> Self {
        let now = Instant::now();
        Self {
            facts: now.checked_sub(facts_max_age),
            list: now.checked_sub(list_max_age),
        }
    }

    /// The stricter of two needs, field by field.
    fn and(self, other: Self) -> Self {
        Self {
            facts: self.facts.max(other.facts),
            list: self.list.max(other.list),
        }
    }
}

/// Whether a value read at `at` is recent enough for `since`.
fn meets(at: Option<Instant>, since: Option<Instant>) -> bool {
    at.is_some_and(|at| since.is_none_or(|since| at >= since))
}

#[derive(Default)]
struct Cached {
    entries: Option<(Instant, Arc<Vec<Entry>>)>,
    facts: Option<(Instant, GatewayFacts)>,
    /// Bumped by `apply` and `invalidate`: a list that started before is kept only with the
    /// changes applied since replayed on it (`replay`), and not at all after an invalidation.
    generation: u64,
    /// The changes applied while a list call is under way (`listing`), each with the
    /// generation it made; empty otherwise.
    applied: VecDeque<(u64, Mutation, Option<Entry>)>,
    listing: bool,
    /// The last background read failed, and when it ended.
    failed: Option<(Instant, Arc<CloudError>)>,
    /// A background read is under way.
    reading: bool,
    /// Owners waiting for the background read, with what each asked for.
    waiters: HashMap<Owner, Need>,
    /// Owners the last background read answered: their next `read` is served from it even if
    /// it aged meanwhile (a list slower than its maximum age would else never satisfy anyone).
    answered: HashSet<Owner>,
    /// Background reads that ended, and whether a reconcile already waited for the first one.
    reads: u64,
    first_awaited: bool,
}

impl Cached {
    fn meets(&self, need: Need) -> bool {
        meets(self.facts.as_ref().map(|f| f.0), need.facts)
            && meets(self.entries.as_ref().map(|e| e.0), need.list)
    }

    fn ready(&self) -> Option<Read> {
        match (&self.facts, &self.entries) {
            (Some((_, facts)), Some((_, entries))) => Some(Read::Ready {
                facts: facts.clone(),
                entries: entries.clone(),
            }),
            _ => None,
        }
    }

    /// `list`, read from a call that started at `generation`, with the changes applied since
    /// replayed on it; `None` if they are not all known (an invalidation, or too many).
    fn replay(&self, generation: u64, mut list: Arc<Vec<Entry>>) -> Option<Arc<Vec<Entry>>> {
        let since = self.generation.wrapping_sub(generation);
        let since = usize::try_from(since)
            .ok()
            .filter(|n| *n <= self.applied.len())?;
        let changes = self.applied.range(self.applied.len() - since..);
        let mut expected = generation;
        for (made, mutation, created) in changes {
            expected = expected.wrapping_add(1);
            if *made != expected {
                return None;
            }
            // Idempotent: a change the list already shows is applied again harmlessly.
            mutation.apply_to(Arc::make_mut(&mut list), created.as_ref());
        }
        Some(list)
    }

    /// What the waiters of the read under way ask for, all together.
    fn strictest(&self) -> Need {
        self.waiters
            .values()
            .fold(Need::default(), |a, b| a.and(*b))
    }
}

struct Slot {
    /// Serializes fetches of one gateway (the single flight).
    fetch: tokio::sync::Mutex<()>,
    data: Mutex<Cached>,
    /// The class of the background read under way: the highest among its waiters.
    class: watch::Sender<Priority>,
    /// Notified whenever a background read ends.
    done: tokio::sync::Notify,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            fetch: tokio::sync::Mutex::default(),
            data: Mutex::default(),
            class: watch::Sender::new(Priority::Progress),
            done: tokio::sync::Notify::new(),
        }
    }
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct GatewayCache {
    cloud: Arc<dyn CloudPort>,
    slots: Arc<Mutex<HashMap<GatewayKey, Arc<Slot>>>>,
    wake: mpsc::UnboundedSender<Owner>,
}

/// The cached value if it is at most `max_age` old.
fn fresh<T>(
    slot: &Slot,
    max_age: Duration,
    pick: impl Fn(&Cached) -> Option<(Instant, T)>,
) -> Option<T> {
    pick(&lock(&slot.data))
        .filter(|(at, _)| at.elapsed() <= max_age)
        .map(|(_, v)| v)
}

/// Runs `fetch` at the class of the read's waiters. When a waiter of a higher class joins
/// meanwhile, the call is dropped and made again at that class: a call queued in the rate
/// limiter behind every other call would hold up the pending change that now waits on it.
/// (Dropping is safe: a fetch stores its answer only once it has it.)
async fn at_waiters_class<T, F, Fut>(slot: &Slot, fetch: F) -> Result<T, CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut raised = slot.class.subscribe();
    loop {
        let class = *raised.borrow_and_update();
        let raise = async {
            // An `Err` only if the slot is gone, which it is not while this borrows it.
            if raised.wait_for(|c| *c < class).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // Biased (no random branch order): a simulated seed replays exactly.
        tokio::select! {
            biased;
            out = with_priority(class, fetch()) => return out,
            () = raise => {}
        }
    }
}

/// Ends a background read however its task ends (done, panicked, cancelled): records the
/// outcome, clears the flag and wakes the waiters, so a gateway is never left "reading".
struct Flight {
    slot: Arc<Slot>,
    wake: mpsc::UnboundedSender<Owner>,
    /// `None` if the task did not get to an answer; else whether it read the list.
    outcome: Option<Result<bool, CloudError>>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let woken = {
            let mut data = lock(&self.slot.data);
            data.reading = false;
            data.reads += 1;
            let waiters = std::mem::take(&mut data.waiters);
            data.answered.clear();
            match self.outcome.take() {
                Some(Ok(listed)) => {
                    data.failed = None;
                    for (owner, need) in &waiters {
                        // Every waiter asked before this list's answer: it is as recent as a
                        // list they would start now could be, however long it waited for its
                        // turn (at a binding API rate, longer than any maximum age).
                        let need = if listed {
                            Need {
                                list: None,
                                ..*need
                            }
                        } else {
                            *need
                        };
                        if data.meets(need) {
                            data.answered.insert(owner.clone());
                        }
                    }
                }
                Some(Err(e)) => data.failed = Some((Instant::now(), Arc::new(e))),
                None => {}
            }
            waiters
        };
        self.slot.done.notify_waiters();
        for owner in woken.into_keys() {
            // The receiver is gone only when the controller stops.
            let _ = self.wake.send(owner);
        }
    }
}

/// Marks a list call of the slot under way; when it ends however (answer, error, dropped
/// future) the changes kept for replaying on it are forgotten.
struct Listing<'a>(&'a Slot);

impl Drop for Listing<'_> {
    fn drop(&mut self) {
        let mut data = lock(&self.0.data);
        data.listing = false;
        data.applied.clear();
    }
}

impl GatewayCache {
    /// `wake` receives the owners waiting on a read when it ends.
    pub fn new(cloud: Arc<dyn CloudPort>, wake: mpsc::UnboundedSender<Owner>) -> Self {
        Self {
            cloud,
            slots: Arc::default(),
            wake,
        }
    }

    fn slot(&self, key: &GatewayKey) -> Arc<Slot> {
        lock(&self.slots).entry(key.clone()).or_default().clone()
    }

    /// Never awaits the cloud: serves fresh data, or the recent failure, or starts ONE
    /// background read per gateway (facts if older than `facts_max_age`, then the list if older
    /// than `list_max_age`) and registers `owner` to be woken when it finishes. `class` is what
    /// this owner's read is worth; the read runs at the highest class among its waiters.
    ///
    /// Must be called inside a Tokio runtime (the read is spawned).
    pub(crate) fn read(
        &self,
        scope: &Scope,
        owner: &Owner,
        facts_max_age: Duration,
        list_max_age: Duration,
        class: Priority,
    ) -> Read {
        let slot = self.slot(&scope.key());
        let need = Need::within(facts_max_age, list_max_age);
        {
            let mut data = lock(&slot.data);
            let answered = data.answered.remove(owner);
            if (answered || data.meets(need))
                && let Some(ready) = data.ready()
            {
                return ready;
            }
            if let Some((at, e)) = &data.failed
                && at.elapsed() < FAILED_READ_TTL
            {
                return Read::Failed(e.clone());
            }
            data.waiters
                .entry(owner.clone())
                .and_modify(|n| *n = n.and(need))
                .or_insert(need);
            if data.reading {
                // Lower is higher (`Mutation` < `Progress` < `Background`).
                slot.class.send_if_modified(|c| {
                    let raise = class < *c;
                    if raise {
                        *c = class;
                    }
                    raise
                });
                return Read::Pending;
            }
            data.reading = true;
            slot.class.send_replace(class);
        }
        let flight = Flight {
            slot: slot.clone(),
            wake: self.wake.clone(),
            outcome: None,
        };
        tokio::spawn(self.clone().read_in_background(scope.clone(), flight));
        Read::Pending
    }

    /// Waits up to `within` for the first read of the gateway while it is under way, once per
    /// gateway: the first route of a gateway then goes on in the same reconcile instead of
    /// queueing again behind every other route (in a burst that delays the gateway's first
    /// change by seconds). Later readers never wait, so a dead region costs each of its
    /// gateways this wait once. Returns whether the read ended meanwhile.
    pub(crate) async fn await_first_read(&self, scope: &Scope, within: Duration) -> bool {
        let slot = self.slot(&scope.key());
        // Created before the check, so an end between the two is not missed.
        let done = slot.done.notified();
        {
            let mut data = lock(&slot.data);
            if !data.reading || data.reads > 0 || data.first_awaited {
                return false;
            }
            data.first_awaited = true;
        }
        tokio::time::timeout(within, done).await.is_ok()
    }

    async fn read_in_background(self, scope: Scope, mut flight: Flight) {
        let slot = flight.slot.clone();
        // Shared with `entries` and `facts`: one call per gateway at a time, whichever asks.
        let _serial = slot.fetch.lock().await;
        flight.outcome = Some(self.read_needed(&slot, &scope).await);
        // `flight` is dropped here: outcome recorded, waiters woken.
    }

    /// Reads what the waiters need and the cache lacks. Asked again before the list, so owners
    /// that came while the facts were read are counted. Returns whether it read the list.
    async fn read_needed(&self, slot: &Slot, scope: &Scope) -> Result<bool, CloudError> {
        let stale_facts = {
            let data = lock(&slot.data);
            !meets(data.facts.as_ref().map(|f| f.0), data.strictest().facts)
        };
        if stale_facts {
            at_waiters_class(slot, || self.fetch_facts(slot, scope)).await?;
        }
        let stale_list = {
            let data = lock(&slot.data);
            !meets(data.entries.as_ref().map(|e| e.0), data.strictest().list)
        };
        if stale_list {
            at_waiters_class(slot, || self.fetch_list(slot, scope)).await?;
        }
        Ok(stale_list)
    }

    /// The gateway's entries, at most `max_age` old.
    pub(crate) async fn entries(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<Arc<Vec<Entry>>, CloudError> {
        let slot = self.slot(&scope.key());
        let pick = |c: &Cached| c.entries.clone();
        if let Some(e) = fresh(&slot, max_age, pick) {
            return Ok(e);
        }
        let _flight = slot.fetch.lock().await;
        if let Some(e) = fresh(&slot, max_age, pick) {
            return Ok(e);
        }
        self.fetch_list(&slot, scope).await
    }

    /// The gateway's facts, at most `max_age` old.
    pub(crate) async fn facts(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<GatewayFacts, CloudError> {
        let slot = self.slot(&scope.key());
        let pick = |c: &Cached| c.facts.clone();
        if let Some(f) = fresh(&slot, max_age, pick) {
            return Ok(f);
        }
        let _flight = slot.fetch.lock().await;
        if let Some(f) = fresh(&slot, max_age, pick) {
            return Ok(f);
        }
        self.fetch_facts(&slot, scope).await
    }

    /// Reads the gateway now (the scheduler's probe).
    pub(crate) async fn refresh_facts(&self, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let slot = self.slot(&scope.key());
        self.fetch_facts(&slot, scope).await
    }

    async fn fetch_facts(&self, slot: &Slot, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let facts = self.cloud.gateway(scope).await?;
        lock(&slot.data).facts = Some((Instant::now(), facts.clone()));
        Ok(facts)
    }

    async fn fetch_list(&self, slot: &Slot, scope: &Scope) -> Result<Arc<Vec<Entry>>, CloudError> {
        let started = Instant::now();
        let generation = {
            let mut data = lock(&slot.data);
            data.listing = true;
            data.generation
        };
        // Lists of a gateway are serialized (`Slot::fetch`): this one is the only one.
        let _listing = Listing(slot);
        let list = Arc::new(self.cloud.list_entries(scope).await?);
        let mut data = lock(&slot.data);
        // Changed meanwhile: this list may predate our own changes (at a binding API rate it
        // waits behind them), which are replayed on it; after an invalidation it may predate
        // what made the cache wrong and is not kept. The caller gets the cloud's answer as is.
        if let Some(kept) = data.replay(generation, list.clone()) {
            data.entries = Some((started, kept));
        }
        Ok(list)
    }

    /// Applies an accepted mutation to the cached list.
    pub(crate) fn apply(&self, scope: &Scope, mutation: &Mutation, created: Option<&Entry>) {
        let slot = self.slot(&scope.key());
        let mut data = lock(&slot.data);
        if let Some((_, list)) = data.entries.as_mut() {
            mutation.apply_to(Arc::make_mut(list), created);
        }
        // A list under way may predate this change: it is replayed there.
        data.generation = data.generation.wrapping_add(1);
        let generation = data.generation;
        if data.listing {
            if data.applied.len() == REPLAY_MAX {
                data.applied.pop_front();
            }
            data.applied
                .push_back((generation, mutation.clone(), created.cloned()));
        }
    }

    /// Forgets the cached list and a remembered failure, so the next reader lists again.
    pub(crate) fn invalidate(&self, scope: &Scope) {
        let slot = self.slot(&scope.key());
        let mut data = lock(&slot.data);
        data.entries = None;
        data.failed = None;
        data.answered.clear();
        data.generation = data.generation.wrapping_add(1);
        data.applied.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use kube::runtime::reflector::ObjectRef;
    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;
    use crate::controller::model::{Accepted, CredentialsHandle, Freshness};
    use crate::controller::port::CloudFuture;
    use alicloud_vpc_client::{ApiError, CredentialsProvider, ErrorClass, StaticCredentials};

    const FACTS_AGE: Duration = Duration::from_secs(600);
    const LIST_AGE: Duration = Duration::from_secs(5);
    /// How long the fake takes to answer.
    const CALL: Duration = Duration::from_millis(100);

    /// A cloud that counts its reads per gateway, answers after `CALL`, never answers for the
    /// gateways in `hang`, and fails while `fail` is set.
    #[derive(Default)]
    struct FakeCloud {
        calls: Mutex<Vec<(&'static str, String)>>,
        /// The class each call ran at (`current_priority` inside the call).
        classes: Mutex<Vec<(&'static str, Option<Priority>)>>,
        hang: Mutex<HashSet<String>>,
        fail: AtomicBool,
        /// Added to every answer's time (a call queued behind others).
        slow: Mutex<Duration>,
    }

    impl FakeCloud {
        fn count(&self, op: &str, gateway: &str) -> usize {
            let calls = self.calls.lock().unwrap();
            calls
                .iter()
                .filter(|(o, g)| *o == op && g == gateway)
                .count()
        }

        async fn answer(&self, op: &'static str, scope: &Scope) -> Result<(), CloudError> {
            self.classes
                .lock()
                .unwrap()
                .push((op, alicloud_vpc_client::current_priority()));
            self.calls
                .lock()
                .unwrap()
                .push((op, scope.vpn_gateway_id.clone()));
            if self.hang.lock().unwrap().contains(&scope.vpn_gateway_id) {
                std::future::pending::<()>().await;
            }
            let slow = *self.slow.lock().unwrap();
            tokio::time::sleep(CALL + slow).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(CloudError::Api(Box::new(ApiError {
                    action: op,
                    http_status: 503,
                    code: "ServiceUnavailable".into(),
                    message: "down".into(),
                    request_id: None,
                    host_id: None,
                    recommend: None,
                    retry_after: None,
                    class: ErrorClass::Transient,
                })));
            }
            Ok(())
        }
    }

    impl CloudPort for FakeCloud {
        fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
            Box::pin(async move {
                self.answer("list", scope).await?;
                Ok(vec![entry("10.1.0.0/16")])
            })
        }
        fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
            Box::pin(async move {
                self.answer("facts", scope).await?;
                Ok(GatewayFacts {
                    status: "active".into(),
                    supports_priority: true,
                    dual_tunnel: false,
                    spec: None,
                })
            })
        }
        fn mutate<'a>(&'a self, _: &'a Scope, _: &'a Mutation) -> CloudFuture<'a, Accepted> {
            Box::pin(async { unreachable!("the cache never mutates") })
        }
    }

    fn entry(source: &str) -> Entry {
        Entry {
            route_source: source.into(),
            route_dest: "10.0.0.0/16".into(),
            next_hop: "vco-a".into(),
            weight: 100,
            priority: 10,
            state: "published".into(),
            create_time: 0,
            vpn_instance_id: "vpn-a".into(),
        }
    }

    fn scope(gateway: &str) -> Scope {
        let provider: Arc<dyn CredentialsProvider> = Arc::new(StaticCredentials::new(
            alicloud_vpc_client::Credentials::new("id", "secret"),
        ));
        Scope {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: gateway.into(),
            credentials: CredentialsHandle {
                key: "default".into(),
                provider,
            },
        }
    }

    fn owner(i: usize) -> Owner {
        ObjectRef::new(&format!("r{i}")).within("ns")
    }

    fn setup() -> (Arc<FakeCloud>, GatewayCache, mpsc::UnboundedReceiver<Owner>) {
        let fake = Arc::new(FakeCloud::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let cache = GatewayCache::new(fake.clone(), tx);
        (fake, cache, rx)
    }

    fn read(cache: &GatewayCache, gateway: &str, i: usize) -> Read {
        cache.read(
            &scope(gateway),
            &owner(i),
            FACTS_AGE,
            LIST_AGE,
            Priority::Progress,
        )
    }

    /// Reads of one owner until the cache answers, waiting for its wake-up in between.
    async fn settle(
        cache: &GatewayCache,
        rx: &mut mpsc::UnboundedReceiver<Owner>,
        gateway: &str,
        i: usize,
    ) -> Read {
        loop {
            match read(cache, gateway, i) {
                Read::Pending => assert_eq!(rx.recv().await, Some(owner(i))),
                done => return done,
            }
        }
    }

    /// Every wake-up sent so far, once the background tasks had a chance to run.
    async fn drain(rx: &mut mpsc::UnboundedReceiver<Owner>) -> Vec<Owner> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut woken = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(o) => woken.push(o),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return woken,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_hundred_readers_share_one_read_and_are_each_woken_once() {
        let (fake, cache, mut rx) = setup();
        for i in 0..100 {
            assert!(matches!(read(&cache, "vpn-a", i), Read::Pending));
        }
        // The rest arrive while the facts are being read, and again while the list is.
        tokio::time::sleep(CALL / 2).await;
        for i in 100..150 {
            assert!(matches!(read(&cache, "vpn-a", i), Read::Pending));
        }
        tokio::time::sleep(CALL).await;
        for i in 150..200 {
            assert!(matches!(read(&cache, "vpn-a", i), Read::Pending));
        }
        // An owner that asks twice is still woken once.
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));

        let mut woken = Vec::new();
        while woken.len() < 200 {
            woken.push(rx.recv().await.unwrap());
        }
        woken.extend(drain(&mut rx).await);
        let unique: HashSet<Owner> = woken.iter().cloned().collect();
        assert_eq!(woken.len(), 200, "each owner woken exactly once");
        assert_eq!(unique, (0..200).map(owner).collect::<HashSet<_>>());
        assert_eq!(fake.count("facts", "vpn-a"), 1);
        assert_eq!(fake.count("list", "vpn-a"), 1);
        for i in 0..200 {
            let Read::Ready { facts, entries } = read(&cache, "vpn-a", i) else {
                panic!("owner {i} not served after its wake-up");
            };
            assert_eq!(facts.status.as_str(), "active");
            assert_eq!(*entries, vec![entry("10.1.0.0/16")]);
        }
        assert_eq!(
            fake.calls.lock().unwrap().len(),
            2,
            "no call after the read"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_gateway_does_not_hold_up_another() {
        let (fake, cache, mut rx) = setup();
        fake.hang.lock().unwrap().insert("vpn-dead".into());
        let before = Instant::now();
        assert!(matches!(read(&cache, "vpn-dead", 1), Read::Pending));
        assert!(matches!(read(&cache, "vpn-a", 2), Read::Pending));
        assert_eq!(before.elapsed(), Duration::ZERO, "read never waits");

        assert_eq!(rx.recv().await, Some(owner(2)));
        assert!(matches!(read(&cache, "vpn-a", 2), Read::Ready { .. }));
        // The dead gateway still has its one read under way: no second call, nobody woken.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(matches!(read(&cache, "vpn-dead", 3), Read::Pending));
        assert_eq!(fake.count("facts", "vpn-dead"), 1);
        assert!(drain(&mut rx).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_answers_everyone_until_its_ttl_ends() {
        let (fake, cache, mut rx) = setup();
        fake.fail.store(true, Ordering::SeqCst);
        let Read::Failed(first) = settle(&cache, &mut rx, "vpn-a", 0).await else {
            panic!("the failure is not reported");
        };
        for i in 1..200 {
            let Read::Failed(e) = read(&cache, "vpn-a", i) else {
                panic!("owner {i} was not given the failure");
            };
            assert!(Arc::ptr_eq(&e, &first), "the same failure, not a new call");
        }
        assert_eq!(
            fake.calls.lock().unwrap().len(),
            1,
            "one call for 200 readers"
        );

        tokio::time::sleep(FAILED_READ_TTL).await;
        fake.fail.store(false, Ordering::SeqCst);
        assert!(matches!(read(&cache, "vpn-a", 1), Read::Pending));
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 1).await,
            Read::Ready { .. }
        ));
        assert_eq!(fake.count("facts", "vpn-a"), 2, "a new read after the TTL");
        // The success cleared the failure for everyone.
        assert!(matches!(read(&cache, "vpn-a", 2), Read::Ready { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_data_is_served_without_a_call_and_aged_parts_are_read_again() {
        let (fake, cache, mut rx) = setup();
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 0).await,
            Read::Ready { .. }
        ));
        tokio::time::sleep(LIST_AGE / 2).await;
        assert!(matches!(read(&cache, "vpn-a", 1), Read::Ready { .. }));
        assert_eq!(fake.calls.lock().unwrap().len(), 2);

        // The list aged, the facts did not: only the list is read again.
        tokio::time::sleep(LIST_AGE).await;
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 1).await,
            Read::Ready { .. }
        ));
        assert_eq!(fake.count("facts", "vpn-a"), 1);
        assert_eq!(fake.count("list", "vpn-a"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_forces_a_new_list_and_forgets_a_failure() {
        let (fake, cache, mut rx) = setup();
        settle(&cache, &mut rx, "vpn-a", 0).await;
        cache.invalidate(&scope("vpn-a"));
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 0).await,
            Read::Ready { .. }
        ));
        assert_eq!(fake.count("list", "vpn-a"), 2);
        assert_eq!(fake.count("facts", "vpn-a"), 1);

        fake.fail.store(true, Ordering::SeqCst);
        cache.invalidate(&scope("vpn-a"));
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 0).await,
            Read::Failed(_)
        ));
        fake.fail.store(false, Ordering::SeqCst);
        cache.invalidate(&scope("vpn-a"));
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 0).await,
            Read::Ready { .. }
        ));
        assert_eq!(
            fake.count("list", "vpn-a"),
            4,
            "no failure served after invalidate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_that_started_before_invalidate_is_not_kept() {
        let (fake, cache, mut rx) = setup();
        settle(&cache, &mut rx, "vpn-a", 0).await;
        tokio::time::sleep(LIST_AGE * 2).await;
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        tokio::time::sleep(CALL / 2).await;
        cache.invalidate(&scope("vpn-a"));
        assert_eq!(rx.recv().await, Some(owner(0)));
        // The woken owner finds no list and reads again.
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        assert!(matches!(
            settle(&cache, &mut rx, "vpn-a", 0).await,
            Read::Ready { .. }
        ));
        assert_eq!(fake.count("list", "vpn-a"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_that_started_before_our_changes_is_kept_with_them_applied() {
        // At a binding API rate a list waits in the rate limiter while the gateway's changes
        // are accepted: dropping it would read again and again without ever answering.
        let (fake, cache, mut rx) = setup();
        settle(&cache, &mut rx, "vpn-a", 0).await;
        tokio::time::sleep(LIST_AGE * 2).await;
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        tokio::time::sleep(CALL / 2).await;
        let s = scope("vpn-a");
        let create = |src: &str| Mutation::Create {
            route: crate::controller::model::RouteId {
                route_source: src.into(),
                route_dest: "10.0.0.0/16".into(),
                next_hop: "vco-a".into(),
            },
            weight: 100,
            priority: Some(10),
            publish_vpc: false,
            description: None,
            overlay_mode: None,
            client_token: src.into(),
        };
        cache.apply(&s, &create("10.2.0.0/16"), Some(&entry("10.2.0.0/16")));
        cache.apply(&s, &create("10.3.0.0/16"), Some(&entry("10.3.0.0/16")));
        assert_eq!(rx.recv().await, Some(owner(0)));
        let Read::Ready { entries, .. } = read(&cache, "vpn-a", 0) else {
            panic!("the list read before the changes answers its reader")
        };
        assert_eq!(
            *entries,
            vec![
                entry("10.1.0.0/16"),
                entry("10.2.0.0/16"),
                entry("10.3.0.0/16")
            ]
        );
        assert_eq!(fake.count("list", "vpn-a"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_that_join_a_list_under_way_are_answered_by_it() {
        // A list call that waits longer than the list's maximum age (behind other calls at a
        // binding API rate) answers the readers that came meanwhile: else each of them would
        // read again, and wait again.
        let (fake, cache, mut rx) = setup();
        settle(&cache, &mut rx, "vpn-a", 0).await;
        tokio::time::sleep(LIST_AGE * 2).await;
        *fake.slow.lock().unwrap() = LIST_AGE * 6;
        for i in 0..3 {
            assert!(matches!(read(&cache, "vpn-a", i), Read::Pending));
            tokio::time::sleep(LIST_AGE * 2).await;
        }
        let mut woken = Vec::new();
        while woken.len() < 3 {
            woken.push(rx.recv().await.expect("wake"));
        }
        for i in 0..3 {
            assert!(
                matches!(read(&cache, "vpn-a", i), Read::Ready { .. }),
                "reader {i} answered"
            );
        }
        assert_eq!(fake.count("list", "vpn-a"), 2, "one list for the three");
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_slower_than_its_maximum_age_still_answers_its_waiters() {
        let (fake, cache, mut rx) = setup();
        let scope = scope("vpn-a");
        let tight = CALL / 2;
        assert!(matches!(
            cache.read(&scope, &owner(0), FACTS_AGE, tight, Priority::Progress),
            Read::Pending
        ));
        assert_eq!(rx.recv().await, Some(owner(0)));
        assert!(matches!(
            cache.read(&scope, &owner(0), FACTS_AGE, tight, Priority::Progress),
            Read::Ready { .. }
        ));
        // Served once; the next read asks for a list within the age again.
        assert!(matches!(
            cache.read(&scope, &owner(0), FACTS_AGE, tight, Priority::Progress),
            Read::Pending
        ));
        assert_eq!(rx.recv().await, Some(owner(0)));
        assert_eq!(fake.count("list", "vpn-a"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_async_readers_still_work_beside_read() {
        let (fake, cache, mut rx) = setup();
        let s = scope("vpn-a");
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        // Waits for the background read (same single flight) and is served by it.
        let entries = cache.entries(&s, LIST_AGE).await.unwrap();
        assert_eq!(*entries, vec![entry("10.1.0.0/16")]);
        assert_eq!(
            cache.facts(&s, FACTS_AGE).await.unwrap().status.as_str(),
            "active"
        );
        assert_eq!(fake.calls.lock().unwrap().len(), 2);
        assert_eq!(rx.recv().await, Some(owner(0)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drift_check_reads_in_the_background_class() {
        let (fake, cache, mut rx) = setup();
        let s = scope("vpn-a");
        let recheck = Freshness::Recheck.priority();
        assert!(matches!(
            cache.read(&s, &owner(0), FACTS_AGE, LIST_AGE, recheck),
            Read::Pending
        ));
        assert_eq!(rx.recv().await, Some(owner(0)));
        assert_eq!(
            *fake.classes.lock().unwrap(),
            vec![
                ("facts", Some(Priority::Background)),
                ("list", Some(Priority::Background))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_change_joining_a_drift_check_raises_its_class() {
        let (fake, cache, mut rx) = setup();
        let s = scope("vpn-a");
        assert!(matches!(
            cache.read(&s, &owner(0), FACTS_AGE, LIST_AGE, Priority::Background),
            Read::Pending
        ));
        // Another drift check joins: nothing changes.
        tokio::time::sleep(CALL / 4).await;
        assert!(matches!(
            cache.read(&s, &owner(1), FACTS_AGE, LIST_AGE, Priority::Background),
            Read::Pending
        ));
        tokio::time::sleep(CALL / 4).await;
        assert_eq!(fake.count("facts", "vpn-a"), 1);
        // A route with a pending change joins while the facts are read: the call is made again
        // at its class, and the list after it too.
        assert!(matches!(
            cache.read(&s, &owner(2), FACTS_AGE, LIST_AGE, Priority::Progress),
            Read::Pending
        ));
        let mut woken = HashSet::new();
        while woken.len() < 3 {
            woken.insert(rx.recv().await.unwrap());
        }
        assert_eq!(
            *fake.classes.lock().unwrap(),
            vec![
                ("facts", Some(Priority::Background)),
                ("facts", Some(Priority::Progress)),
                ("list", Some(Priority::Progress))
            ]
        );
        // The next read starts at its own class again.
        tokio::time::sleep(LIST_AGE * 2).await;
        assert!(matches!(
            cache.read(&s, &owner(3), FACTS_AGE, LIST_AGE, Priority::Background),
            Read::Pending
        ));
        assert_eq!(rx.recv().await, Some(owner(3)));
        assert_eq!(
            fake.classes.lock().unwrap().last(),
            Some(&("list", Some(Priority::Background)))
        );
    }
    #[tokio::test(start_paused = true)]
    async fn only_the_first_read_of_a_gateway_is_awaited_and_only_once() {
        let (fake, cache, _rx) = setup();
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        // The first reader waits for the first read (facts, then list) and finds it ready.
        assert!(cache.await_first_read(&scope("vpn-a"), CALL * 3).await);
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Ready { .. }));
        // Later reads of the gateway are never awaited.
        tokio::time::sleep(LIST_AGE * 2).await;
        assert!(matches!(read(&cache, "vpn-a", 1), Read::Pending));
        assert!(!cache.await_first_read(&scope("vpn-a"), CALL * 3).await);
        // A first read that hangs is awaited once, for the bound only.
        fake.hang.lock().unwrap().insert("vpn-b".into());
        assert!(matches!(read(&cache, "vpn-b", 0), Read::Pending));
        let start = Instant::now();
        assert!(!cache.await_first_read(&scope("vpn-b"), CALL).await);
        assert_eq!(start.elapsed(), CALL);
        assert!(matches!(read(&cache, "vpn-b", 1), Read::Pending));
        let start = Instant::now();
        assert!(!cache.await_first_read(&scope("vpn-b"), CALL).await);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a second reader does not wait"
        );
    }
}
