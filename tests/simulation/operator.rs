//! One operator process: the real `Context`, `Scheduler`, `GatewayCache` and `reconcile`, wired
//! as `src/controller/runner.rs` wires them, driven by a small controller loop standing in for
//! kube-runtime's: every object change and every wake-up triggers a reconcile of the object
//! (with its current version), requeues are kept, at most `CONCURRENCY` reconciles run at once
//! and one at a time per object. A crash drops all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alicloud_vpc_client::{Credentials, StaticCredentials};
use kube::runtime::controller::Action;
use prometheus_client::registry::Registry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vpn_pbr_operator::controller::backoff::Backoffs;
use vpn_pbr_operator::controller::context::{Context, Entropy, Settings};
use vpn_pbr_operator::controller::entries::GatewayCache;
use vpn_pbr_operator::controller::metrics::Metrics;
use vpn_pbr_operator::controller::port::CloudPort;
use vpn_pbr_operator::controller::reconcile::reconcile;
use vpn_pbr_operator::controller::scheduler::{Owner, Scheduler, SchedulerConfig};
use vpn_pbr_operator::controller::verified::Verified;

use super::cloud::SimCloud;
use super::objects::SimObjects;
use super::world::{EPOCH_MS, Key, Sim};

/// Reconciles at once (the operator's default `--concurrency`).
const CONCURRENCY: usize = 8;
/// Drift-check period: short, so resyncs happen within a history.
pub const RESYNC: Duration = Duration::from_secs(30);

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

pub struct Operator {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
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

impl Operator {
    /// Starts a fresh process over the object store: everything in memory is new, and every
    /// object is triggered once (the initial list of a watch).
    pub fn start(sim: &Arc<Sim>) -> Self {
        let (triggers_tx, triggers_rx) = mpsc::unbounded_channel::<Key>();
        let epoch = {
            let mut st = sim.lock();
            st.epoch += 1;
            for k in st.store.keys() {
                let _ = triggers_tx.send(k.clone());
            }
            st.triggers = Some(triggers_tx);
            st.epoch
        };
        let cloud: Arc<dyn CloudPort> = Arc::new(SimCloud {
            sim: sim.clone(),
            epoch,
        });
        let (wake_tx, wake_rx) = mpsc::unbounded_channel::<Owner>();
        let cancel = CancellationToken::new();
        let cache = GatewayCache::new(cloud.clone(), wake_tx.clone());
        let scheduler = Scheduler::new(
            cloud,
            cache.clone(),
            SchedulerConfig::default(),
            wake_tx,
            cancel.clone(),
        );
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
            default_credentials: Arc::new(StaticCredentials::new(Credentials::new(
                "sim-operator",
                "sim-secret",
            ))),
            last_good_credentials: Default::default(),
            entropy: Arc::new(SimEntropy::new(sim, epoch)),
        });
        sim.trace(format!("operator #{epoch} starts"));
        let task = tokio::spawn(control_loop(sim.clone(), ctx, triggers_rx, wake_rx));
        Self { cancel, task }
    }

    /// Kills the process: nothing it holds in memory survives, and no call it makes from now
    /// on reaches the cloud or the apiserver (its epoch is over).
    pub fn crash(self, sim: &Sim) {
        sim.lock().stats.crashes += 1;
        self.stop(sim);
    }

    /// Ends the process the same way, at the end of a seed.
    pub fn stop(self, sim: &Sim) {
        {
            let mut st = sim.lock();
            st.epoch += 1;
            st.triggers = None;
        }
        self.cancel.cancel();
        // Dropping the loop drops its `JoinSet`, which aborts every reconcile under way.
        self.task.abort();
    }
}

fn earliest(pending: &mut BTreeMap<Key, Instant>, key: Key, at: Instant) {
    pending
        .entry(key)
        .and_modify(|t| *t = (*t).min(at))
        .or_insert(at);
}

async fn control_loop(
    sim: Arc<Sim>,
    ctx: Arc<Context>,
    mut triggers: UnboundedReceiver<Key>,
    mut wakes: UnboundedReceiver<Owner>,
) {
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
            // Always the object's current version; a removed object is not reconciled.
            let Some(route) = sim.lock().store.get(&k).map(|o| o.route.clone()) else {
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
                if st.verbose {
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
                drain(&mut keys, &mut triggers, &mut wakes);
                for k in keys {
                    if running.contains(&k) {
                        again.insert(k);
                    } else {
                        earliest(&mut pending, k, now);
                    }
                }
            }
            Some(owner) = wakes.recv() => {
                let mut keys = vec![key_of_owner(&owner)];
                drain(&mut keys, &mut triggers, &mut wakes);
                for k in keys {
                    if running.contains(&k) {
                        again.insert(k);
                    } else {
                        earliest(&mut pending, k, now);
                    }
                }
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
) {
    while let Ok(k) = triggers.try_recv() {
        keys.push(k);
    }
    while let Ok(o) = wakes.try_recv() {
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
