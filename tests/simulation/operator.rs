//! Operator processes: the real `Context`, `Scheduler`, `GatewayCache` and `reconcile`, wired
//! as `src/controller/runner.rs` wires them, driven by a small controller loop standing in for
//! kube-runtime's: every event of the process's watch and every wake-up triggers a reconcile
//! of the object (its copy in the watch cache), requeues are kept, at most `CONCURRENCY`
//! reconciles run at once and one at a time per object. A crash drops all of it. With
//! `leader`, two replicas elect a leader through a Lease as `src/app.rs` does, and the
//! leader's cloud changes pass the fence of `src/fence.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alicloud_vpc_client::{Credentials, StaticCredentials};
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::runtime::controller::Action;
use prometheus_client::registry::Registry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vpn_pbr_operator::{
    Accounts, Backoffs, CloudPort, Context, Echoes, Entropy, Fence, FencedCloud, GatewayCache,
    LaneQueues, Metrics, Owner, PromptLane, RoleSessions, Scheduler, SchedulerConfig, Settings,
    Tenancy, Verified, drive_prompt_lane, reconcile, watch_lease,
};

use super::cloud::SimCloud;
use super::objects::SimObjects;
use super::world::{EPOCH_MS, Key, Sim};

/// Reconciles at once (the operator's default `--concurrency`).
const CONCURRENCY: usize = 8;
/// Drift-check period: short, so resyncs happen within a history.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Leader election as `src/app.rs` sets it up: the Lease's duration, the fence's margin, how
/// often a standby looks at the Lease; and how often the leader renews it.
const LEASE: Duration = Duration::from_secs(15);
const FENCE_MARGIN: Duration = Duration::from_secs(4);
const STANDBY_POLL: Duration = Duration::from_secs(2);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// The replicas with `leader`.
const REPLICAS: usize = 2;

/// The controller's wall clock, jitter and create tokens, from the seed and the virtual clock:
/// the same seed gives the same draws in every run and every process.
struct SimEntropy {
    start: Instant,
    rng: Mutex<StdRng>,
}

impl SimEntropy {
    fn new(sim: &Sim, epoch: u64) -> Self {
        let seed = sim.seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0xC0FF_EE00;
        Self {
            start: sim.start,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entropy for SimEntropy {
    fn wall_ms(&self) -> i64 {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        i64::try_from(EPOCH_MS).unwrap_or(i64::MAX)
            + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    }

    fn unit(&self) -> f64 {
        self.rng().random()
    }

    fn token(&self) -> String {
        let v: u128 = self.rng().random();
        let h = format!("{v:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// The delay of a requeue. `Action` keeps it private; its `Debug` shows it as a `Duration`.
fn requeue_of(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    parse_debug_duration(inner)
}
fn parse_debug_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "µs" | "us" => n / 1e6,
        "ns" => n / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// One operator process.
pub struct Process {
    epoch: u64,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Its prompt lane's reconciles.
    lane_task: tokio::task::JoinHandle<()>,
    /// Its Lease watch, with `leader`.
    lease: Option<tokio::task::JoinHandle<()>>,
}

/// The virtual wall clock as a `SystemTime`.
fn wall(sim: &Sim) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(sim.now_ms())
}

fn identity(replica: usize) -> String {
    format!("replica-{replica}")
}

/// The Lease object as process `epoch` reads it; an error while it is cut off.
fn read_lease(sim: &Sim, epoch: u64) -> Result<Lease, kube::Error> {
    let st = sim.lock();
    if st.cut_off.contains(&epoch) || !st.live.contains(&epoch) {
        return Err(kube::Error::Api(Box::new(
            kube::core::Status::failure("the apiserver is unreachable", "Timeout").with_code(504),
        )));
    }
    let renew =
        jiff::Timestamp::from_millisecond(i64::try_from(st.lease.renewed_ms).unwrap_or(i64::MAX))
            .ok()
            .map(MicroTime);
    Ok(Lease {
        spec: Some(LeaseSpec {
            holder_identity: st.lease.holder.map(identity),
            renew_time: renew,
            lease_duration_seconds: i32::try_from(LEASE.as_secs()).ok(),
            ..LeaseSpec::default()
        }),
        ..Lease::default()
    })
}

impl Process {
    /// Starts a fresh process in `replica`: everything in memory is new, its watch lists the
    /// store and triggers every object. `fenced`: its cloud changes pass the fence of the
    /// Lease (leader election).
    pub fn start(sim: &Arc<Sim>, replica: usize, fenced: bool) -> Self {
        let (triggers_tx, triggers_rx) = mpsc::unbounded_channel::<Key>();
        let (wake_tx, wake_rx) = mpsc::unbounded_channel::<Owner>();
        let echoes = {
            // An event held back for a write that was not its echo wakes the route, as in
            // runner.rs.
            let wake = wake_tx.clone();
            Arc::new(Echoes::new(move |key| {
                if let Some((ns, name)) = key.split_once('/') {
                    let _ = wake.send(Owner::new(name, Some(ns)));
                }
            }))
        };
        let epoch = {
            let mut st = sim.lock();
            st.epoch += 1;
            let e = st.epoch;
            st.live.insert(e);
            st.replica_of.insert(e, replica);
            e
        };
        let sim_cloud = Arc::new(SimCloud {
            sim: sim.clone(),
            epoch,
            scheduler: OnceLock::new(),
        });
        let fence = fenced.then(Fence::new);
        let cloud: Arc<dyn CloudPort> = match &fence {
            Some(f) => Arc::new(FencedCloud::new(sim_cloud.clone(), f.clone())),
            None => sim_cloud.clone(),
        };
        let cancel = CancellationToken::new();
        let cache = GatewayCache::new(cloud.clone(), wake_tx.clone());
        let accounts = Accounts::new(cloud.clone());
        let scheduler = Scheduler::new(
            cloud,
            cache.clone(),
            SchedulerConfig::default(),
            wake_tx,
            cancel.clone(),
        );
        let _ = sim_cloud.scheduler.set(scheduler.clone());
        // The watch opens once the prompt lane can hear it (its relist is noted there too).
        let (lane, lane_rx) = PromptLane::new(scheduler.clone());
        sim.lock()
            .open_watch(epoch, triggers_tx, echoes.clone(), lane.clone());
        let mut registry = Registry::default();
        let ctx = Arc::new(Context {
            objects: Arc::new(SimObjects {
                sim: sim.clone(),
                epoch,
            }),
            cache,
            scheduler,
            metrics: Metrics::new(&mut registry),
            settings: Settings {
                resync: RESYNC,
                ..Settings::default()
            },
            backoffs: Backoffs::default(),
            verified: Verified::default(),
            echoes,
            default_credentials: Arc::new(StaticCredentials::new(Credentials::new(
                sim.lock().operator_key.clone(),
                "sim-secret",
            ))),
            last_good_credentials: Default::default(),
            accounts,
            entropy: Arc::new(SimEntropy::new(sim, epoch)),
            // No accounts in the simulated world: every route uses the operator's identity.
            tenancy: Tenancy::default(),
            roles: RoleSessions::default(),
            turns: Default::default(),
            prompt: lane.clone(),
            fence: fence.clone(),
        });
        sim.trace(format!("operator #{epoch} starts (replica {replica})"));
        let task = tokio::spawn(control_loop(
            sim.clone(),
            ctx.clone(),
            epoch,
            triggers_rx,
            wake_rx,
            lane.clone(),
        ));
        let lane_task = tokio::spawn(prompt_lane(
            sim.clone(),
            ctx,
            epoch,
            lane,
            lane_rx,
            cancel.clone(),
        ));
        let lease = fence.map(|f| {
            let (sim, stop) = (sim.clone(), cancel.clone());
            tokio::spawn(async move {
                let id = identity(replica);
                let read = || std::future::ready(read_lease(&sim, epoch));
                watch_lease(read, || wall(&sim), &id, FENCE_MARGIN, &f, stop).await;
            })
        });
        Self {
            epoch,
            cancel,
            task,
            lane_task,
            lease,
        }
    }

    /// Ends the process: nothing it holds in memory survives, and no call it makes from now
    /// on reaches the cloud or the apiserver (what is already on the wire may still land).
    pub fn kill(self, sim: &Sim) {
        {
            let mut st = sim.lock();
            st.live.remove(&self.epoch);
            st.cut_off.remove(&self.epoch);
            st.watches.remove(&self.epoch);
        }
        self.cancel.cancel();
        // Dropping the loop drops its `JoinSet`, which aborts every reconcile under way.
        self.task.abort();
        self.lane_task.abort();
        if let Some(l) = self.lease {
            l.abort();
        }
    }
}

/// The replicas. Without `leader`: one, whose process restarts at once after a crash. With
/// `leader`: two; the one holding the Lease runs the controllers, the other waits for it.
pub struct Cluster {
    sim: Arc<Sim>,
    running: Arc<Mutex<BTreeMap<usize, Process>>>,
    elector: Option<tokio::task::JoinHandle<()>>,
    /// Without `leader`: the start that ends an outage.
    restart: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    pub fn start(sim: &Arc<Sim>) -> Self {
        let leader = sim.lock().world.leader;
        let running = Arc::new(Mutex::new(BTreeMap::new()));
        if !leader {
            lock(&running).insert(0, Process::start(sim, 0, false));
            return Self {
                sim: sim.clone(),
                running,
                elector: None,
                restart: Mutex::new(None),
            };
        }
        let elector = tokio::spawn(elect(sim.clone(), running.clone()));
        Self {
            sim: sim.clone(),
            running,
            elector: Some(elector),
            restart: Mutex::new(None),
        }
    }

    /// The process that may change the cloud: the Lease holder's (or the only one).
    fn leader_replica(&self) -> usize {
        self.sim.lock().lease.holder.unwrap_or(0)
    }

    /// Kills the leader's process; its replica starts a new one (at once, or, with `leader`,
    /// at the elector's next look: the Lease is still its own). With `down` above zero the
    /// whole Deployment is down that long (a node or cluster outage): every process dies and
    /// none starts before it ends.
    pub fn crash(&self, down: Duration) {
        let r = self.leader_replica();
        let victims: Vec<Process> = {
            let mut running = lock(&self.running);
            if down.is_zero() {
                running.remove(&r).into_iter().collect()
            } else {
                std::mem::take(&mut *running).into_values().collect()
            }
        };
        let until = {
            let mut st = self.sim.lock();
            if !victims.is_empty() {
                st.stats.crashes += 1;
            }
            if !down.is_zero() {
                st.stats.outages += 1;
                st.down_until_ms = self.sim.now_ms() + millis(down);
                let t = self.sim.elapsed().as_secs_f64();
                st.trace_at(
                    t,
                    &format!("the operator is down for {:.0}s", down.as_secs_f64()),
                );
            }
            st.down_until_ms
        };
        for p in victims {
            p.kill(&self.sim);
        }
        if self.elector.is_some() {
            return;
        }
        let wait = Duration::from_millis(until.saturating_sub(self.sim.now_ms()));
        if wait.is_zero() {
            lock(&self.running)
                .entry(r)
                .or_insert_with(|| Process::start(&self.sim, r, false));
            return;
        }
        let (sim, running) = (self.sim.clone(), self.running.clone());
        let restart = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            lock(&running)
                .entry(r)
                .or_insert_with(|| Process::start(&sim, r, false));
        });
        if let Some(old) = lock(&self.restart).replace(restart) {
            old.abort();
        }
    }

    /// The leader's process loses the apiserver for `secs` (its watch, its Lease, its status
    /// writes); the cloud it still reaches. Reconnected, its watch relists.
    pub fn partition(&self, secs: u64) {
        let r = self.leader_replica();
        let Some(epoch) = lock(&self.running).get(&r).map(|p| p.epoch) else {
            return;
        };
        self.sim.lock().cut_off.insert(epoch);
        let sim = self.sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            heal(&sim, epoch);
        });
    }

    /// Every partition ends now.
    pub fn heal_all(&self) {
        let cut: Vec<u64> = self.sim.lock().cut_off.iter().copied().collect();
        for e in cut {
            heal(&self.sim, e);
        }
    }

    /// Ends every process, at the end of a seed.
    pub fn stop(self) {
        if let Some(e) = self.elector {
            e.abort();
        }
        if let Some(r) = lock(&self.restart).take() {
            r.abort();
        }
        let procs = std::mem::take(&mut *lock(&self.running));
        for p in procs.into_values() {
            p.kill(&self.sim);
        }
    }
}

fn heal(sim: &Sim, epoch: u64) {
    let t = sim.elapsed().as_secs_f64();
    let mut st = sim.lock();
    if st.cut_off.remove(&epoch) && st.live.contains(&epoch) {
        st.trace_at(t, &format!("operator #{epoch} reaches the apiserver again"));
        st.relist(epoch);
    }
}

/// Leader election, once a second: the leader renews the Lease while it reaches the apiserver;
/// a leader that reaches it and finds the Lease another's stops (`src/app.rs`: losing the
/// Lease stops the controllers); a replica without a process takes the Lease when it is free,
/// expired, or still its own (a restarted pod keeps its name) and starts one.
async fn elect(sim: Arc<Sim>, running: Arc<Mutex<BTreeMap<usize, Process>>>) {
    let mut last_look = [None::<Instant>; REPLICAS];
    loop {
        elect_once(&sim, &running, &mut last_look);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn elect_once(
    sim: &Arc<Sim>,
    running: &Mutex<BTreeMap<usize, Process>>,
    last_look: &mut [Option<Instant>; REPLICAS],
) {
    {
        let now = Instant::now();
        let now_ms = sim.now_ms();
        let t = sim.elapsed().as_secs_f64();
        let mut procs = lock(running);
        for (r, look) in last_look.iter_mut().enumerate() {
            let mut st = sim.lock();
            if let Some(p) = procs.get(&r) {
                if st.cut_off.contains(&p.epoch) {
                    continue;
                }
                if st.lease.holder == Some(r) {
                    if now_ms.saturating_sub(st.lease.renewed_ms) >= millis(RENEW_EVERY) {
                        st.lease.renewed_ms = now_ms;
                    }
                    continue;
                }
                let epoch = p.epoch;
                st.trace_at(t, &format!("operator #{epoch} lost the Lease: it stops"));
                drop(st);
                if let Some(p) = procs.remove(&r) {
                    p.kill(sim);
                }
                continue;
            }
            // A standby looks every STANDBY_POLL; no replica runs during an outage.
            if look.is_some_and(|l| now.saturating_duration_since(l) < STANDBY_POLL)
                || now_ms < st.down_until_ms
            {
                continue;
            }
            *look = Some(now);
            let expired = now_ms >= st.lease.renewed_ms.saturating_add(millis(LEASE));
            let free = st.lease.holder.is_none_or(|h| h == r) || expired;
            if !free {
                continue;
            }
            if st.lease.holder.is_some_and(|h| h != r) {
                st.stats.handovers += 1;
                st.trace_at(t, &format!("replica {r} takes the expired Lease over"));
            }
            st.lease.holder = Some(r);
            st.lease.renewed_ms = now_ms;
            drop(st);
            procs.insert(r, Process::start(sim, r, true));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn earliest(pending: &mut BTreeMap<Key, Instant>, key: Key, at: Instant) {
    pending
        .entry(key)
        .and_modify(|t| *t = (*t).min(at))
        .or_insert(at);
}

/// The prompt lane's driver (as in `runner.rs`): reconciles of the cached copy beside the
/// control loop's, each waiting for the route's turn.
async fn prompt_lane(
    sim: Arc<Sim>,
    ctx: Arc<Context>,
    epoch: u64,
    lane: Arc<PromptLane>,
    queues: LaneQueues,
    stop: CancellationToken,
) {
    drive_prompt_lane(lane, queues, stop, |owner| {
        let (sim, ctx) = (sim.clone(), ctx.clone());
        async move {
            let key = key_of_owner(&owner);
            let Some(route) = sim.lock().cached(epoch, &key) else {
                return;
            };
            let what = format!(
                "prompt reconcile {} gen={:?} rv={:?}",
                key.1, route.metadata.generation, route.metadata.resource_version
            );
            let ran = std::panic::AssertUnwindSafe(reconcile(Arc::new(route), ctx))
                .catch_unwind()
                .await;
            let t = sim.elapsed().as_secs_f64();
            let mut st = sim.lock();
            st.stats.reconciles += 1;
            st.stats.prompt_reconciles += 1;
            match ran {
                Ok(action) if st.trace.verbose => st.trace_at(t, &format!("{what} -> {action:?}")),
                Ok(_) => {}
                Err(p) => {
                    let msg = panic_message(p);
                    st.violation(t, format!("{what} panicked: {msg}"));
                }
            }
        }
    })
    .await;
}

async fn control_loop(
    sim: Arc<Sim>,
    ctx: Arc<Context>,
    epoch: u64,
    mut triggers: UnboundedReceiver<Key>,
    mut wakes: UnboundedReceiver<Owner>,
    lane: Arc<PromptLane>,
) {
    // As `src/app.rs`: the controllers start once the Lease's first read opened the fence.
    if let Some(f) = &ctx.fence {
        f.opened().await;
    }
    let mut pending: BTreeMap<Key, Instant> = BTreeMap::new();
    let mut running: BTreeSet<Key> = BTreeSet::new();
    let mut again: BTreeSet<Key> = BTreeSet::new();
    let mut ids: HashMap<tokio::task::Id, Key> = HashMap::new();
    let mut tasks: JoinSet<(Key, Option<Duration>)> = JoinSet::new();
    loop {
        let now = Instant::now();
        let due: Vec<Key> = pending
            .iter()
            .filter(|(k, t)| **t <= now && !running.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if running.len() >= CONCURRENCY {
                break;
            }
            pending.remove(&k);
            // The copy in the process's watch cache (older than the store's while the watch
            // lags); an object gone from the cache is not reconciled.
            let Some(route) = ({
                let mut st = sim.lock();
                let cached = st.cached(epoch, &k);
                let newest = st
                    .store
                    .get(&k)
                    .map(|o| o.route.metadata.resource_version.clone());
                if cached
                    .as_ref()
                    .is_some_and(|c| Some(&c.metadata.resource_version) != newest.as_ref())
                {
                    st.stats.stale_reconciles += 1;
                }
                cached
            }) else {
                continue;
            };
            running.insert(k.clone());
            let ctx = ctx.clone();
            let sim2 = sim.clone();
            let key = k.clone();
            let handle = tasks.spawn(async move {
                let what = format!(
                    "reconcile {} gen={:?} rv={:?}",
                    key.1, route.metadata.generation, route.metadata.resource_version
                );
                let action = reconcile(Arc::new(route), ctx).await;
                let t = sim2.elapsed().as_secs_f64();
                let mut st = sim2.lock();
                st.stats.reconciles += 1;
                if st.trace.verbose {
                    st.trace_at(t, &format!("{what} -> {action:?}"));
                }
                drop(st);
                // `reconcile` never fails; the runner's error policy would requeue in 30 s.
                let delay = match action {
                    Ok(a) => requeue_of(&a),
                    Err(_) => Some(Duration::from_secs(30)),
                };
                (key, delay)
            });
            ids.insert(handle.id(), k);
        }
        let next_due = (running.len() < CONCURRENCY)
            .then(|| {
                pending
                    .iter()
                    .filter(|(k, _)| !running.contains(*k))
                    .map(|(_, t)| *t)
                    .min()
            })
            .flatten();
        tokio::select! {
            biased;
            Some(res) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let now = Instant::now();
                match res {
                    Ok((id, (k, delay))) => {
                        ids.remove(&id);
                        running.remove(&k);
                        if let Some(d) = delay {
                            earliest(&mut pending, k.clone(), now + d);
                        }
                        if again.remove(&k) {
                            earliest(&mut pending, k, now);
                        }
                    }
                    Err(e) => {
                        let k = ids.remove(&e.id()).unwrap_or_default();
                        running.remove(&k);
                        if e.is_panic() {
                            let t = sim.elapsed().as_secs_f64();
                            let msg = panic_message(e.into_panic());
                            sim.lock().violation(t, format!("reconcile of {} panicked: {msg}", k.1));
                        }
                    }
                }
            }
            Some(k) = triggers.recv() => {
                let mut keys = vec![k];
                drain(&mut keys, &mut triggers, &mut wakes, &lane);
                enqueue(keys, &running, &mut again, &mut pending, now);
            }
            Some(owner) = wakes.recv() => {
                lane.wake(&owner);
                let mut keys = vec![key_of_owner(&owner)];
                drain(&mut keys, &mut triggers, &mut wakes, &lane);
                enqueue(keys, &running, &mut again, &mut pending, now);
            }
            () = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// Triggered objects: due now, or again once their running reconcile ends.
fn enqueue(
    keys: Vec<Key>,
    running: &BTreeSet<Key>,
    again: &mut BTreeSet<Key>,
    pending: &mut BTreeMap<Key, Instant>,
    now: Instant,
) {
    for k in keys {
        if running.contains(&k) {
            again.insert(k);
        } else {
            earliest(pending, k, now);
        }
    }
}

fn key_of_owner(owner: &Owner) -> Key {
    (
        owner.namespace.clone().unwrap_or_default(),
        owner.name.clone(),
    )
}

/// Everything already waiting in both channels. The controller sends wake-ups in the order of
/// its hash maps, which differs between processes; taken all at once into ordered sets, they
/// start reconciles in an order the seed alone decides.
fn drain(
    keys: &mut Vec<Key>,
    triggers: &mut UnboundedReceiver<Key>,
    wakes: &mut UnboundedReceiver<Owner>,
    lane: &PromptLane,
) {
    while let Ok(k) = triggers.try_recv() {
        keys.push(k);
    }
    while let Ok(o) = wakes.try_recv() {
        lane.wake(&o);
        keys.push(key_of_owner(&o));
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_requeue_delay_of_an_action() {
        for d in [
            Duration::from_secs(300),
            Duration::from_millis(1500),
            Duration::from_millis(812),
            Duration::from_micros(1_234_567),
        ] {
            let got = requeue_of(&Action::requeue(d)).expect("a delay");
            assert!(
                got.abs_diff(d) < Duration::from_micros(1),
                "{d:?} read as {got:?}"
            );
        }
        assert_eq!(requeue_of(&Action::await_change()), None);
    }
}
