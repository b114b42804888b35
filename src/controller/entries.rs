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
//!
//! This file is the driver: what is cached, and every rule about it, is `cached.rs`'s pure store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cached::{Cached, Flight, Need};
use super::job::Owner;
use super::model::{Entry, GatewayFacts, GatewayKey, Mutation, Scope};
use super::port::CloudPort;
use crate::sync::lock;
use alicloud_vpc_client::{CloudError, Priority, with_priority};

pub(crate) use super::cached::Read;

struct Gateway {
    /// Serializes fetches of one gateway (the single flight).
    fetch: tokio::sync::Mutex<()>,
    cached: Mutex<Cached>,
    /// The class of the background read under way, for the call to follow when it is raised.
    class: watch::Sender<Priority>,
    /// Notified whenever a background read ends.
    done: tokio::sync::Notify,
}

impl Default for Gateway {
    fn default() -> Self {
        Self {
            fetch: tokio::sync::Mutex::default(),
            cached: Mutex::default(),
            class: watch::Sender::new(Priority::Progress),
            done: tokio::sync::Notify::new(),
        }
    }
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct GatewayCache {
    cloud: Arc<dyn CloudPort>,
    gateways: Arc<Mutex<HashMap<GatewayKey, Arc<Gateway>>>>,
    wake: mpsc::UnboundedSender<Owner>,
}

/// Ends a background read when its task ends, however it ends: its waiters are woken only
/// here and keep no timer (`reconcile.rs` `action_of`), so a read that panicked must still
/// wake them and let the next reader start another, not stay under way for ever.
struct ReadEnding {
    cache: GatewayCache,
    gw: Arc<Gateway>,
    outcome: Option<Result<bool, CloudError>>,
}

impl Drop for ReadEnding {
    fn drop(&mut self) {
        let woken = {
            let mut cached = lock(&self.gw.cached);
            match self.outcome.take() {
                Some(outcome) => cached.read_ended(outcome, Instant::now()),
                None => cached.read_abandoned(),
            }
        };
        self.gw.done.notify_waiters();
        for owner in woken {
            // The receiver is gone only when the controller stops.
            let _ = self.cache.wake.send(owner);
        }
    }
}

/// Runs `fetch` at the class of the read's waiters. When their class changes meanwhile, the
/// call is dropped and made again at the new class: a call queued in the rate limiter behind
/// every other call would hold up the pending change that now waits on it, and a lone change's
/// read that a burst's routes joined must not go ahead of other bursts' changes.
/// (Dropping is safe: a fetch stores its answer only once it has it.)
async fn at_waiters_class<T, F, Fut>(gw: &Gateway, fetch: F) -> Result<T, CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut changed = gw.class.subscribe();
    loop {
        let class = *changed.borrow_and_update();
        let change = async {
            // An `Err` only if the sender is gone, which it is not while this borrows it.
            if changed.wait_for(|c| *c != class).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // Biased (no random branch order): a simulated seed replays exactly.
        tokio::select! {
            biased;
            out = with_priority(class, fetch()) => return out,
            () = change => {}
        }
    }
}

/// What `fresh` finds, else what `fetch` reads, one fetch of the gateway at a time: a reader
/// that waited for the one before it is served what that one read. (`fetch` does nothing
/// until it is awaited; it runs at the caller's class.)
async fn single_flight<T>(
    gw: &Gateway,
    fresh: impl Fn() -> Option<T>,
    fetch: impl std::future::Future<Output = Result<T, CloudError>>,
) -> Result<T, CloudError> {
    if let Some(found) = fresh() {
        return Ok(found);
    }
    // A background read under way at a lower class than this caller's (the scheduler's
    // read-back of a lone change behind a drift check) would hold it up behind every call of
    // that class, since the rate limiter serves classes strictly: it is raised to this one.
    if let Some(class) = alicloud_vpc_client::current_priority() {
        raise(&gw.class, class);
    }
    let _flight = gw.fetch.lock().await;
    if let Some(found) = fresh() {
        return Ok(found);
    }
    fetch.await
}

/// Raises the class of the read under way to `class`, never lowers it (the scheduler may have
/// raised it above what the cache's waiters are worth).
fn raise(running: &watch::Sender<Priority>, class: Priority) {
    running.send_if_modified(|c| {
        let higher = class < *c;
        if higher {
            *c = class;
        }
        higher
    });
}

impl GatewayCache {
    /// `wake` receives the owners waiting on a read when it ends.
    pub fn new(cloud: Arc<dyn CloudPort>, wake: mpsc::UnboundedSender<Owner>) -> Self {
        Self {
            cloud,
            gateways: Arc::default(),
            wake,
        }
    }

    fn gateway(&self, key: &GatewayKey) -> Arc<Gateway> {
        lock(&self.gateways).entry(key.clone()).or_default().clone()
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
        let gw = self.gateway(&scope.key());
        let now = Instant::now();
        let need = Need::within(facts_max_age, list_max_age, now);
        let (read, flight) = lock(&gw.cached).read(owner, need, class, now);
        if flight != Flight::None {
            tracing::debug!(gateway = %scope.key(), ?class, ?flight, "gateway read");
        }
        match flight {
            Flight::None => {}
            Flight::Raise(class) => raise(&gw.class, class),
            Flight::Lower(class) => {
                gw.class.send_replace(class);
            }
            Flight::Start(class) => {
                gw.class.send_replace(class);
                tokio::spawn(self.clone().read_in_background(scope.clone(), gw));
            }
        }
        read
    }

    /// The watch shows a burst joining gateway `vpn_gateway_id` (in any account or region): a
    /// read of it under way at the lone class goes at the burst's from now on
    /// (`Cached::accompanied`).
    pub(crate) fn accompanied(&self, vpn_gateway_id: &str) {
        let gateways: Vec<Arc<Gateway>> = lock(&self.gateways)
            .iter()
            .filter(|(k, _)| k.vpn_gateway_id == vpn_gateway_id)
            .map(|(_, gw)| gw.clone())
            .collect();
        for gw in gateways {
            let flight = lock(&gw.cached).accompanied();
            if let Flight::Lower(class) = flight {
                tracing::debug!(
                    gateway = vpn_gateway_id,
                    ?class,
                    "lone read joined by a burst"
                );
                gw.class.send_replace(class);
            }
        }
    }

    /// Waits up to `within` for the first read of the gateway while it is under way, once per
    /// gateway: the first route of a gateway then goes on in the same reconcile instead of
    /// queueing again behind every other route (in a burst that delays the gateway's first
    /// change by seconds). Later readers never wait, so a dead region costs each of its
    /// gateways this wait once. Returns whether the read ended meanwhile.
    pub(crate) async fn await_first_read(&self, scope: &Scope, within: Duration) -> bool {
        let gw = self.gateway(&scope.key());
        // Created before the check, so an end between the two is not missed.
        let done = gw.done.notified();
        let mut class = gw.class.subscribe();
        let started = *class.borrow_and_update();
        if !lock(&gw.cached).may_await_first_read() {
            return false;
        }
        // A read lowered meanwhile (a burst joined the gateway) is a burst's, answered at its
        // pace: the reconcile goes on without it (it is woken when the read ends), and does
        // not hold a turn of the prompt lane's lone part meanwhile.
        let lowered = async {
            if class.wait_for(|c| *c > started).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let ended = async {
            // Biased (no random branch order): a simulated seed replays exactly.
            tokio::select! {
                biased;
                () = done => true,
                () = lowered => false,
            }
        };
        tokio::time::timeout(within, ended).await.unwrap_or(false)
    }

    /// The background read: what the waiters need and the store lacks, then the waiters are
    /// told however it ended.
    async fn read_in_background(self, scope: Scope, gw: Arc<Gateway>) {
        let mut ending = ReadEnding {
            cache: self,
            gw,
            outcome: None,
        };
        let outcome = {
            // Shared with `entries` and `facts`: one call per gateway at a time, whichever asks.
            let _serial = ending.gw.fetch.lock().await;
            ending.cache.read_needed(&ending.gw, &scope).await
        };
        ending.outcome = Some(outcome);
    }

    /// Reads what the waiters need and the store lacks. Asked again before the list, so owners
    /// that came while the facts were read are counted. Returns whether it read the list.
    async fn read_needed(&self, gw: &Gateway, scope: &Scope) -> Result<bool, CloudError> {
        if lock(&gw.cached).facts_stale() {
            at_waiters_class(gw, || self.fetch_facts(gw, scope)).await?;
        }
        let stale_list = lock(&gw.cached).list_stale();
        if stale_list {
            at_waiters_class(gw, || self.fetch_list(gw, scope)).await?;
        }
        Ok(stale_list)
    }

    /// The gateway's entries, at most `max_age` old.
    pub(crate) async fn entries(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<Arc<Vec<Entry>>, CloudError> {
        let gw = self.gateway(&scope.key());
        let fresh = || lock(&gw.cached).fresh_entries(max_age, Instant::now());
        single_flight(&gw, fresh, self.fetch_list(&gw, scope)).await
    }

    /// The gateway's facts, at most `max_age` old.
    pub(crate) async fn facts(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<GatewayFacts, CloudError> {
        let gw = self.gateway(&scope.key());
        let fresh = || lock(&gw.cached).fresh_facts(max_age, Instant::now());
        single_flight(&gw, fresh, self.fetch_facts(&gw, scope)).await
    }

    /// Reads the gateway now (the scheduler's probe).
    pub(crate) async fn refresh_facts(&self, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let gw = self.gateway(&scope.key());
        self.fetch_facts(&gw, scope).await
    }

    async fn fetch_facts(&self, gw: &Gateway, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let facts = self.cloud.gateway(scope).await?;
        lock(&gw.cached).facts_read(facts.clone(), Instant::now());
        Ok(facts)
    }

    /// Lists the entries; the caller gets the cloud's answer as is, the store keeps it with our
    /// own changes made meanwhile replayed on it (see `Cached::list_ended`).
    async fn fetch_list(&self, gw: &Gateway, scope: &Scope) -> Result<Arc<Vec<Entry>>, CloudError> {
        let started = Instant::now();
        // Lists of a gateway are serialized (`Gateway::fetch`): this one is the only one.
        let epoch = lock(&gw.cached).list_started();
        let list = self.cloud.list_entries(scope).await.map(Arc::new);
        let kept = list.as_ref().ok().cloned();
        lock(&gw.cached).list_ended(epoch, started, kept);
        list
    }

    /// Applies an accepted mutation to the cached list.
    pub(crate) fn apply(&self, scope: &Scope, mutation: &Mutation, created: Option<&Entry>) {
        let gw = self.gateway(&scope.key());
        lock(&gw.cached).apply(mutation, created);
    }

    /// Whether several routes share the gateway's reads (`Cached::shared`).
    pub(crate) fn shared(&self, scope: &Scope) -> bool {
        let gw = self.gateway(&scope.key());
        lock(&gw.cached).shared(Instant::now())
    }

    /// Forgets the cached list and a remembered failure, so the next reader lists again.
    pub(crate) fn invalidate(&self, scope: &Scope) {
        let gw = self.gateway(&scope.key());
        lock(&gw.cached).invalidate();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;
    use crate::controller::cached::FAILED_READ_TTL;
    use crate::controller::fixtures::{entry_of as entry, owner, scope_on};
    use crate::controller::model::{Accepted, Freshness};
    use crate::controller::port::CloudFuture;
    use alicloud_vpc_client::{ApiError, ErrorClass};

    const FACTS_AGE: Duration = Duration::from_secs(600);
    const LIST_AGE: Duration = Duration::from_secs(5);
    /// How long the fake takes to answer.
    const CALL: Duration = Duration::from_millis(100);

    /// A cloud that counts its reads per gateway, answers after `CALL`, never answers for the
    /// gateways in `hang`, panics for those in `panic`, and fails while `fail` is set.
    #[derive(Default)]
    struct FakeCloud {
        calls: Mutex<Vec<(&'static str, String)>>,
        /// The class each call ran at (`current_priority` inside the call).
        classes: Mutex<Vec<(&'static str, Option<Priority>)>>,
        hang: Mutex<HashSet<String>>,
        panic: Mutex<HashSet<String>>,
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
            let panics = self.panic.lock().unwrap().contains(&scope.vpn_gateway_id);
            assert!(!panics, "a read of {} panics", scope.vpn_gateway_id);
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

    fn scope(gateway: &str) -> Scope {
        scope_on(gateway, "default")
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

    /// `setup()` once owner 0's first read of vpn-a is done and its list has aged out.
    async fn aged() -> (Arc<FakeCloud>, GatewayCache, mpsc::UnboundedReceiver<Owner>) {
        let (fake, cache, mut rx) = setup();
        settle(&cache, &mut rx, "vpn-a", 0).await;
        tokio::time::sleep(LIST_AGE * 2).await;
        (fake, cache, rx)
    }

    /// `aged()` with owner 0's read of a new list under way, half-way through the call.
    async fn relisting() -> (Arc<FakeCloud>, GatewayCache, mpsc::UnboundedReceiver<Owner>) {
        let (fake, cache, rx) = aged().await;
        assert!(matches!(read(&cache, "vpn-a", 0), Read::Pending));
        tokio::time::sleep(CALL / 2).await;
        (fake, cache, rx)
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

    /// A read whose task panics still wakes its waiters, and the next reader starts another
    /// read: they keep no timer, nothing else would wake them.
    #[tokio::test(start_paused = true)]
    async fn a_read_that_panics_wakes_its_waiters_and_the_next_reader_reads_again() {
        let (fake, cache, mut rx) = setup();
        fake.panic.lock().unwrap().insert("vpn-p".into());
        assert!(matches!(read(&cache, "vpn-p", 0), Read::Pending));
        assert!(matches!(read(&cache, "vpn-p", 1), Read::Pending));
        let mut woken = Vec::new();
        while let Ok(Some(o)) = tokio::time::timeout(CALL * 10, rx.recv()).await {
            woken.push(o);
        }
        woken.sort_by_key(|o| o.name.clone());
        assert_eq!(woken, vec![owner(0), owner(1)], "both woken");
        fake.panic.lock().unwrap().clear();
        let read = settle(&cache, &mut rx, "vpn-p", 0).await;
        assert!(matches!(read, Read::Ready { .. }), "{read:?}");
        assert_eq!(
            fake.count("facts", "vpn-p"),
            2,
            "read again after the panic"
        );
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
        let (fake, cache, mut rx) = relisting().await;
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
        let (fake, cache, mut rx) = relisting().await;
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
        let (fake, cache, mut rx) = aged().await;
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
        let recheck = Freshness::Recheck.priority(false);
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
    async fn the_schedulers_read_back_raises_a_drift_check_it_waits_behind() {
        // A drift check's list is under way in the background class (at a binding API rate,
        // behind every other call); the scheduler's read-back of a lone change comes at the
        // prompt class and must not wait behind it.
        let (fake, cache, mut rx) = setup();
        let s = scope("vpn-a");
        assert!(matches!(
            cache.read(&s, &owner(0), FACTS_AGE, LIST_AGE, Priority::Background),
            Read::Pending
        ));
        tokio::time::sleep(CALL / 2).await;
        let list = with_priority(Priority::Prompt, cache.entries(&s, Duration::ZERO)).await;
        assert!(list.is_ok());
        assert_eq!(rx.recv().await, Some(owner(0)));
        assert_eq!(
            *fake.classes.lock().unwrap(),
            vec![
                ("facts", Some(Priority::Background)),
                ("facts", Some(Priority::Prompt)),
                ("list", Some(Priority::Prompt)),
                ("list", Some(Priority::Prompt))
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

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_a_lone_first_read_ends_when_a_burst_joins_the_gateway() {
        let (fake, cache, _rx) = setup();
        fake.hang.lock().unwrap().insert("vpn-a".into());
        let s = scope("vpn-a");
        assert!(matches!(
            cache.read(&s, &owner(0), FACTS_AGE, LIST_AGE, Priority::Prompt),
            Read::Pending
        ));
        let start = Instant::now();
        let joined = async {
            tokio::time::sleep(CALL / 4).await;
            cache.accompanied("vpn-a");
        };
        let (ended, ()) = tokio::join!(cache.await_first_read(&s, CALL), joined);
        assert!(!ended, "the read has not ended");
        assert_eq!(
            start.elapsed(),
            CALL / 4,
            "the wait ends when the read is lowered"
        );
    }
}
