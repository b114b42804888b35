//! An account's token bucket (`VpcClientFactory` keeps one per account key) that halves its
//! rate when the cloud throttles and creeps back up while calls succeed (additive increase,
//! multiplicative decrease), and that hands its tokens out by [`Priority`]: when the account's
//! API rate is what binds, the calls that make progress go first.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Rate limiter settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Calls per second when nothing is throttled.
    pub max_rate: f64,
    /// Floor the rate never drops below.
    pub min_rate: f64,
    /// Calls allowed at once after an idle period.
    pub burst: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // VPC flow control is per account and action and not published. Start generous (a
        // thousand-route rollout needs tens of calls per second) and let throttling answers
        // halve the rate: the limiter finds the account's real ceiling by itself.
        Self {
            max_rate: 100.0,
            min_rate: 1.0,
            burst: 50.0,
        }
    }
}

/// The class of a call at the rate limiter. A waiting call of a higher class always gets the
/// next token before any waiting call of a lower class; within a class calls are served in
/// arrival order. The order is strict: while the calls of higher classes use the whole rate,
/// `Background` calls wait (they are deferrable by definition); below the rate, the spare
/// tokens serve them.
///
/// Mutating operations are always [`Mutation`](Self::Mutation); reads are
/// [`Progress`](Self::Progress) unless run inside [`with_priority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A status read that times a gateway's next change: its answer is only worth its moment
    /// (a read that waits behind a backlog tells when the backlog ended, not when the gateway
    /// did), and there are few of them (a gateway's update time is learned once per region).
    Pacing,
    /// The calls of a lone change: a change submitted to a gateway with no other change
    /// queued, on the wire or unconfirmed (one route a user applied on a quiet gateway), and
    /// the reads it waits on. It goes ahead of a burst of changes queued on other gateways,
    /// which would otherwise hold it up for as long as their backlog at the API rate. A
    /// gateway has at most one lone change at a time, so the class cannot hold a burst back
    /// for longer than the quiet gateways' own changes take.
    Prompt,
    /// A change sent to the cloud: the next mutation of an idle gateway is what converges
    /// routes, and a gateway left idle wastes its own (slow) update pipeline.
    Mutation,
    /// A read that a waiting change or caller needs now (gateway status, the entry list
    /// that confirms or plans a change). The default of reads.
    Progress,
    /// A read nobody waits for: periodic resync, drift checks, warm-up.
    Background,
}

impl Priority {
    /// Every class, highest first.
    pub const ALL: [Priority; 5] = [
        Self::Pacing,
        Self::Prompt,
        Self::Mutation,
        Self::Progress,
        Self::Background,
    ];

    /// A stable lowercase word for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pacing => "pacing",
            Self::Prompt => "prompt",
            Self::Mutation => "mutation",
            Self::Progress => "progress",
            Self::Background => "background",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `future` with its reads at `priority`, e.g. `with_priority(Priority::Background,
/// resync)` for work nobody waits for. A scope raises mutations but never lowers them (see
/// [`class_of_call`]). The scope is task-local: a task spawned inside does not inherit it (wrap the spawned
/// future itself).
pub async fn with_priority<F: Future>(priority: Priority, future: F) -> F::Output {
    PRIORITY.scope(priority, future).await
}

/// The class set by the innermost [`with_priority`] around the running task, if any.
pub fn current_priority() -> Option<Priority> {
    PRIORITY.try_with(|p| *p).ok()
}

/// The class of a call made now: a read takes the innermost [`with_priority`] scope's class
/// (else [`Priority::Progress`]); a mutation is [`Priority::Mutation`] unless the scope is a
/// higher class (a lone change's create, [`Priority::Prompt`]): a scope meant for reads
/// nobody waits for must not hold back a change.
pub fn class_of_call(mutating: bool) -> Priority {
    let scope = current_priority();
    if mutating {
        scope
            .filter(|p| *p < Priority::Mutation)
            .unwrap_or(Priority::Mutation)
    } else {
        scope.unwrap_or(Priority::Progress)
    }
}

/// Token balances this close below a whole token count as one: the refill is computed in
/// floating point, and a waiter woken exactly when its token is due must not sleep again.
const EPSILON: f64 = 1e-9;

#[derive(Debug)]
struct State {
    tokens: f64,
    rate: f64,
    /// The rate while nothing is throttled, and the floor (see [`RateLimiter::set_max_rate`]).
    max_rate: f64,
    min_rate: f64,
    /// Tokens saved up at most: the configured burst, but never more than one second at the
    /// maximum rate (the cloud's flow control counts calls per second, so a larger burst at a
    /// low rate is throttled).
    burst: f64,
    last: Instant,
    /// Waiters by (class, arrival): the first key is the one the next token goes to. Each
    /// holds the waker of its latest poll.
    waiters: BTreeMap<(Priority, u64), Waker>,
    next_seq: u64,
}

impl State {
    fn wake_head(&self) {
        if let Some(waker) = self.waiters.values().next() {
            waker.wake_by_ref();
        }
    }
}

/// One account's limiter; every client a factory makes for that account key draws from it.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    state: Mutex<State>,
}

/// The rate while nothing is throttled and the floor, for `max_rate` calls per second: the
/// configured floor, unless the maximum is lower.
fn bounds(config: &RateLimitConfig, max_rate: f64) -> (f64, f64) {
    let max_rate = max_rate.max(0.001);
    (max_rate, config.min_rate.clamp(0.001, max_rate))
}

/// The burst at `max_rate`: the configured one, at most one second's worth (at least one call).
fn burst_at(config: &RateLimitConfig, max_rate: f64) -> f64 {
    config.burst.min(max_rate).max(1.0)
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        let (max_rate, min_rate) = bounds(&config, config.max_rate);
        let config = RateLimitConfig {
            max_rate,
            min_rate,
            burst: config.burst.max(1.0),
        };
        Self {
            state: Mutex::new(State {
                tokens: burst_at(&config, max_rate),
                rate: max_rate,
                max_rate,
                min_rate,
                burst: burst_at(&config, max_rate),
                last: Instant::now(),
                waiters: BTreeMap::new(),
                next_seq: 0,
            }),
            config,
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic elsewhere while holding the lock leaves plain numbers behind; keep going.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(guard.last).as_secs_f64();
        guard.tokens = (guard.tokens + elapsed * guard.rate).min(guard.burst);
        guard.last = now;
        f(&mut guard)
    }

    /// Waits for a token at `priority`. Only the first waiter (highest class, then oldest)
    /// sleeps, until its token is due; the others sleep without a timer until they are first.
    /// Dropping the future gives its place up.
    pub fn acquire(&self, priority: Priority) -> Acquire<'_> {
        Acquire {
            limiter: self,
            priority,
            key: None,
            sleep: None,
        }
    }

    /// Sets the rate while nothing is throttled (an account's own limit; the configured
    /// floor and burst stay). A limiter running at its old maximum moves to the new one; a
    /// throttled one keeps its rate, at most the new maximum, and recovers towards it. The
    /// waiting calls keep their places: the first one's timer follows the new rate.
    pub fn set_max_rate(&self, max_rate: f64) {
        let (max_rate, min_rate) = bounds(&self.config, max_rate);
        self.with_state(|s| {
            if s.max_rate == max_rate {
                return;
            }
            s.rate = if s.rate >= s.max_rate {
                max_rate
            } else {
                s.rate.clamp(min_rate, max_rate)
            };
            (s.max_rate, s.min_rate) = (max_rate, min_rate);
            s.burst = burst_at(&self.config, max_rate);
            s.tokens = s.tokens.min(s.burst);
            s.wake_head();
        });
    }

    /// The rate while nothing is throttled, in calls per second.
    pub fn max_rate(&self) -> f64 {
        self.with_state(|s| s.max_rate)
    }

    /// The cloud throttled us: halve the rate and drop any saved-up burst.
    pub fn on_throttled(&self) {
        // The first waiter's timer now fires early; it then sees the missing token and sleeps
        // again, so nobody needs waking here.
        self.with_state(|s| {
            s.rate = (s.rate / 2.0).max(s.min_rate);
            s.tokens = s.tokens.min(0.0);
        });
    }

    /// A call got through: recover a twentieth of the full rate.
    pub fn on_success(&self) {
        self.with_state(|s| {
            let rate = (s.rate + s.max_rate / 20.0).min(s.max_rate);
            if rate != s.rate {
                s.rate = rate;
                // The first waiter's token is due earlier now: let it move its timer.
                s.wake_head();
            }
        });
    }

    /// The current rate in calls per second.
    pub fn current_rate(&self) -> f64 {
        self.with_state(|s| s.rate)
    }

    /// Calls of the classes `from` to `to` (inclusive) waiting for a token now, counted up to
    /// `cap`: asking whether more than a few wait does not walk a long queue (this is asked
    /// before every step of every gateway's queue).
    pub fn waiting_capped(&self, from: Priority, to: Priority, cap: usize) -> usize {
        self.with_state(|s| {
            s.waiters
                .range((from, 0)..=(to, u64::MAX))
                .take(cap)
                .count()
        })
    }

    /// Calls of `priority` waiting for a token now.
    pub fn waiting(&self, priority: Priority) -> usize {
        self.waiting_capped(priority, priority, usize::MAX)
    }
}

/// What a poll of [`Acquire`] found.
enum Turn {
    Granted,
    /// Not first: woken when it is.
    Queued,
    /// First, and the token is due then.
    DueAt(Instant),
}

/// The future of [`RateLimiter::acquire`].
#[must_use = "a token is taken only when awaited"]
pub struct Acquire<'a> {
    limiter: &'a RateLimiter,
    priority: Priority,
    /// The place in the queue, from the first poll until the token is granted.
    key: Option<(Priority, u64)>,
    /// The first waiter's timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("priority", &self.priority)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Acquire<'_> {
    fn turn(&mut self, waker: &Waker) -> Turn {
        let priority = self.priority;
        let key_slot = &mut self.key;
        self.limiter.with_state(|s| {
            let key = *key_slot.get_or_insert_with(|| {
                s.next_seq += 1;
                (priority, s.next_seq)
            });
            s.waiters.insert(key, waker.clone());
            if s.waiters.keys().next() != Some(&key) {
                return Turn::Queued;
            }
            if s.tokens >= 1.0 - EPSILON {
                s.tokens -= 1.0;
                s.waiters.remove(&key);
                *key_slot = None;
                // The next waiter may have a token already (burst) or must start its timer.
                s.wake_head();
                return Turn::Granted;
            }
            // Aimed a hair early: the timer rounds up to the next millisecond, and a deadline
            // just past a whole one would cost a millisecond per token.
            let missing = (1.0 - EPSILON - s.tokens).max(0.0);
            Turn::DueAt(s.last + Duration::from_secs_f64(missing / s.rate))
        })
    }
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match this.turn(cx.waker()) {
                Turn::Granted => {
                    this.sleep = None;
                    return Poll::Ready(());
                }
                Turn::Queued => {
                    this.sleep = None;
                    return Poll::Pending;
                }
                Turn::DueAt(deadline) => {
                    let sleep = match &mut this.sleep {
                        Some(sleep) => {
                            sleep.as_mut().reset(deadline);
                            sleep
                        }
                        None => this
                            .sleep
                            .insert(Box::pin(tokio::time::sleep_until(deadline))),
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Already due: take it now.
                }
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.limiter.with_state(|s| {
                let was_first = s.waiters.keys().next() == Some(&key);
                s.waiters.remove(&key);
                if was_first {
                    s.wake_head();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limiter(max_rate: f64, burst: f64) -> Arc<RateLimiter> {
        Arc::new(RateLimiter::new(RateLimitConfig {
            max_rate,
            min_rate: 1.0,
            burst,
        }))
    }

    /// Takes every token the bucket holds now.
    async fn drain(l: &RateLimiter) {
        while l.with_state(|s| s.tokens >= 1.0 - EPSILON) {
            l.acquire(Priority::Mutation).await;
        }
    }

    /// Lets spawned tasks run until `n` waiters are queued (no time passes: the clock is
    /// paused and nothing sleeps in these yields).
    async fn until_waiting(l: &RateLimiter, n: usize) {
        for _ in 0..1000 {
            let queued: usize = Priority::ALL.iter().map(|p| l.waiting(*p)).sum();
            if queued == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("never {n} waiters");
    }

    /// Who got a token, and when.
    type Granted = Mutex<Vec<(&'static str, Instant)>>;

    /// Spawns one waiter per `(priority, label)`, in that order, each queued before the next
    /// one starts; they record `(label, grant time)` as they get their token.
    async fn spawn_waiters(
        l: &Arc<RateLimiter>,
        waiters: &[(Priority, &'static str)],
    ) -> (Arc<Granted>, Vec<tokio::task::JoinHandle<()>>) {
        let granted: Arc<Granted> = Arc::default();
        let mut handles = Vec::new();
        let already: usize = Priority::ALL.iter().map(|p| l.waiting(*p)).sum();
        for (i, (priority, label)) in waiters.iter().copied().enumerate() {
            let (limiter, granted) = (l.clone(), granted.clone());
            handles.push(tokio::spawn(async move {
                limiter.acquire(priority).await;
                granted.lock().unwrap().push((label, Instant::now()));
            }));
            until_waiting(l, already + i + 1).await;
        }
        (granted, handles)
    }

    /// A leaked place would block the queue for ever: fail instead of hanging.
    async fn within_a_minute<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("still waiting after a minute")
    }

    #[test]
    fn throttling_halves_and_success_recovers() {
        let l = limiter(16.0, 4.0);
        l.on_throttled();
        assert!((l.current_rate() - 8.0).abs() < 1e-9);
        for _ in 0..10 {
            l.on_throttled();
        }
        assert!((l.current_rate() - 1.0).abs() < 1e-9);
        for _ in 0..100 {
            l.on_success();
        }
        assert!((l.current_rate() - 16.0).abs() < 1e-9);
    }

    #[test]
    fn a_new_maximum_moves_a_full_rate_and_caps_a_throttled_one() {
        let l = limiter(16.0, 4.0);
        let rates = |l: &RateLimiter| (l.max_rate(), l.current_rate());
        l.set_max_rate(4.0);
        assert_eq!(rates(&l), (4.0, 4.0));
        l.set_max_rate(32.0);
        assert_eq!(
            rates(&l),
            (32.0, 32.0),
            "unthrottled: straight to the new maximum"
        );
        l.on_throttled();
        l.set_max_rate(64.0);
        assert_eq!(rates(&l), (64.0, 16.0), "throttled: keeps its rate");
        l.set_max_rate(8.0);
        assert_eq!(rates(&l), (8.0, 8.0), "never above the maximum");
        for _ in 0..100 {
            l.on_success();
        }
        assert_eq!(rates(&l), (8.0, 8.0));
        // Below the configured floor, the floor follows the maximum down and back up.
        l.set_max_rate(0.5);
        l.on_throttled();
        assert_eq!(rates(&l), (0.5, 0.5));
        l.set_max_rate(16.0);
        for _ in 0..10 {
            l.on_throttled();
        }
        assert_eq!(rates(&l), (16.0, 1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_maximum_paces_the_waiting_calls_in_their_order() {
        use Priority::*;
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let (granted, handles) =
            spawn_waiters(&l, &[(Background, "b"), (Progress, "p"), (Mutation, "m")]).await;
        let start = Instant::now();
        l.set_max_rate(2.0);
        within_a_minute(async {
            for h in handles {
                h.await.unwrap();
            }
        })
        .await;
        let granted = granted.lock().unwrap().clone();
        let got: Vec<_> = granted
            .iter()
            .map(|(label, at)| (*label, (*at - start).as_millis()))
            .collect();
        assert_eq!(got, [("m", 500), ("p", 1000), ("b", 1500)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_is_at_most_one_second_at_the_rate() {
        // Calls granted at once after an idle period.
        async fn at_once(l: &RateLimiter) -> usize {
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed().is_zero() {
                l.acquire(Priority::Progress).await;
                n += 1;
            }
            n - 1
        }
        let l = limiter(10.0, 50.0);
        assert_eq!(at_once(&l).await, 10);
        // A lower rate set later lowers the burst too; a higher one restores the configured.
        l.set_max_rate(4.0);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(at_once(&l).await, 4);
        l.set_max_rate(200.0);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(at_once(&l).await, 50);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_paces_calls() {
        let l = limiter(100.0, 1.0);
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire(Priority::Progress).await;
        }
        // One from the burst, ten at 100/s.
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_drained_bucket_serves_pacing_then_lone_changes_then_mutations_then_progress_then_background_each_in_order()
     {
        use Priority::*;
        let l = limiter(10.0, 3.0);
        drain(&l).await;
        let (granted, handles) = spawn_waiters(
            &l,
            &[
                (Background, "b1"),
                (Progress, "p1"),
                (Mutation, "m1"),
                (Pacing, "t1"),
                (Prompt, "l1"),
                (Background, "b2"),
                (Mutation, "m2"),
                (Progress, "p2"),
                (Mutation, "m3"),
                (Background, "b3"),
            ],
        )
        .await;
        let start = Instant::now();
        for h in handles {
            h.await.unwrap();
        }
        let granted = granted.lock().unwrap().clone();
        let order: Vec<_> = granted.iter().map(|(label, _)| *label).collect();
        assert_eq!(
            order,
            ["t1", "l1", "m1", "m2", "m3", "p1", "p2", "b1", "b2", "b3"]
        );
        // One token every 100 ms, none earlier.
        for (i, (label, at)) in granted.iter().enumerate() {
            let due = Duration::from_millis(100 * (i as u64 + 1));
            assert_eq!(at.duration_since(start), due, "{label}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_mutation_overtakes_reads_already_waiting() {
        use Priority::*;
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let (granted, mut handles) =
            spawn_waiters(&l, &[(Background, "b1"), (Progress, "p1")]).await;
        // The background read is not first any more once a progress read waits; half a token
        // later a mutation arrives and still goes before both.
        tokio::time::advance(Duration::from_millis(50)).await;
        let (more, more_handles) = spawn_waiters(&l, &[(Mutation, "m1")]).await;
        handles.extend(more_handles);
        for h in handles {
            h.await.unwrap();
        }
        let mut all = more.lock().unwrap().clone();
        all.extend(granted.lock().unwrap().iter().copied());
        all.sort_by_key(|(_, at)| *at);
        let order: Vec<_> = all.iter().map(|(label, _)| *label).collect();
        assert_eq!(order, ["m1", "p1", "b1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn mutations_below_the_rate_leave_tokens_for_background_reads() {
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let start = Instant::now();
        let mutations = {
            let l = l.clone();
            tokio::spawn(async move {
                // One mutation every 200 ms: half the rate, for 10 s.
                for _ in 0..50 {
                    l.acquire(Priority::Mutation).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        until_waiting(&l, 1).await;
        let (granted, handles) = spawn_waiters(
            &l,
            &[(Priority::Background, "b1"), (Priority::Background, "b2")],
        )
        .await;
        for h in handles {
            h.await.unwrap();
        }
        let last = granted.lock().unwrap().last().map(|(_, at)| *at).unwrap();
        assert!(
            last.duration_since(start) <= Duration::from_millis(600),
            "background reads waited {:?} beside mutations at half the rate",
            last.duration_since(start)
        );
        assert!(!mutations.is_finished(), "served while mutations went on");
        mutations.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_capped_counts_a_range_of_classes_up_to_its_cap() {
        use Priority::*;
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let (_granted, handles) = spawn_waiters(
            &l,
            &[
                (Pacing, "s"),
                (Mutation, "m1"),
                (Mutation, "m2"),
                (Progress, "p1"),
                (Background, "b1"),
            ],
        )
        .await;
        assert_eq!(l.waiting_capped(Prompt, Progress, 10), 3);
        assert_eq!(l.waiting_capped(Prompt, Progress, 2), 2);
        assert_eq!(l.waiting_capped(Pacing, Background, 100), 5);
        assert_eq!(l.waiting_capped(Background, Background, 100), 1);
        assert_eq!(l.waiting_capped(Prompt, Prompt, 100), 0);
        for h in handles {
            h.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_gives_its_place_up() {
        use Priority::*;
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let (granted, mut handles) =
            spawn_waiters(&l, &[(Mutation, "m1"), (Progress, "p1"), (Progress, "p2")]).await;
        let start = Instant::now();
        // Cancel the first waiter (its timer running) and one queued behind the next.
        handles.remove(0).abort();
        handles.remove(1).abort();
        let survivor = handles.remove(0);
        within_a_minute(survivor).await.unwrap();
        assert_eq!(
            granted.lock().unwrap().as_slice(),
            [("p1", start + Duration::from_millis(100))],
            "the first token went to the only waiter left"
        );
        for p in Priority::ALL {
            assert_eq!(l.waiting(p), 0, "{p}");
        }
        // Nothing was reserved for the cancelled ones: the next call waits one token only.
        let again = Instant::now();
        within_a_minute(l.acquire(Background)).await;
        assert_eq!(again.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_around_acquire_releases_the_place() {
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let timed_out =
            tokio::time::timeout(Duration::from_millis(30), l.acquire(Priority::Mutation)).await;
        assert!(timed_out.is_err());
        assert_eq!(l.waiting(Priority::Mutation), 0);
        // The token that was due for the dropped call at 100 ms goes to the next one.
        let start = Instant::now();
        within_a_minute(l.acquire(Priority::Background)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(70));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_slows_waiters_and_success_speeds_them_up() {
        let l = limiter(10.0, 1.0);
        drain(&l).await;
        let (granted, handles) = spawn_waiters(&l, &[(Priority::Progress, "p1")]).await;
        let start = Instant::now();
        // Rate 5/s: the token is due 200 ms after the throttle, not 100 ms.
        l.on_throttled();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            granted.lock().unwrap().is_empty(),
            "granted at the old rate"
        );
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(
            granted.lock().unwrap()[0].1.duration_since(start),
            Duration::from_millis(200)
        );

        let (granted, handles) = spawn_waiters(&l, &[(Priority::Progress, "p2")]).await;
        let start = Instant::now();
        // Back at 10/s right away: the waiter's timer is moved earlier.
        for _ in 0..20 {
            l.on_success();
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(
            granted.lock().unwrap()[0].1.duration_since(start),
            Duration::from_millis(100)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_never_exceeded() {
        let (rate, burst, n) = (20.0, 5.0, 60);
        let l = limiter(rate, burst);
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let l = l.clone();
                tokio::spawn(async move {
                    l.acquire(Priority::ALL[i % Priority::ALL.len()]).await;
                    Instant::now()
                })
            })
            .collect();
        let mut granted = Vec::new();
        for h in handles {
            granted.push(h.await.unwrap().duration_since(start));
        }
        granted.sort();
        // The k-th grant (1-based) comes no earlier than (k - burst) / rate.
        for (i, at) in granted.iter().enumerate() {
            let k = i as f64 + 1.0;
            let floor = Duration::from_secs_f64(((k - burst) / rate).max(0.0));
            assert!(*at >= floor, "grant {k} at {at:?}, before {floor:?}");
        }
        assert_eq!(
            granted.last().copied(),
            Some(Duration::from_secs_f64((n as f64 - burst) / rate))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_scope_sets_the_class_of_reads() {
        assert_eq!(current_priority(), None);
        let inner = with_priority(Priority::Background, async {
            let outer = current_priority();
            let nested = with_priority(Priority::Progress, async { current_priority() }).await;
            (outer, nested, current_priority())
        })
        .await;
        assert_eq!(
            inner,
            (
                Some(Priority::Background),
                Some(Priority::Progress),
                Some(Priority::Background)
            )
        );
        assert_eq!(current_priority(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scope_raises_mutations_but_never_lowers_them() {
        use Priority::*;
        // (scope, mutating) -> class
        let table = [
            (None, false, Progress),
            (None, true, Mutation),
            (Some(Background), false, Background),
            (Some(Background), true, Mutation),
            (Some(Progress), true, Mutation),
            (Some(Prompt), false, Prompt),
            (Some(Prompt), true, Prompt),
            (Some(Pacing), true, Pacing),
        ];
        for (scope, mutating, want) in table {
            let got = match scope {
                Some(p) => with_priority(p, async { class_of_call(mutating) }).await,
                None => class_of_call(mutating),
            };
            assert_eq!(got, want, "{scope:?} mutating={mutating}");
        }
    }
}
