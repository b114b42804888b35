//! The prompt lane: a change on an idle gateway is reconciled at once, beside the controller's
//! queue, so it does not wait behind the reconciles of another gateway's burst.
//!
//! The controller's queue is first come, first served: while a burst of thousands of routes is
//! being submitted, a route applied on a gateway nothing else uses waits behind all of them for
//! its first reconcile, and again for each wake-up after (create accepted, read back). The lane
//! takes the reconciles of a route that is the only unsettled route of its gateway while the
//! scheduler holds no change for that gateway, for a while after its change arrives. The
//! controller still gets every trigger too (its later reconcile finds the work done, and keeps
//! the requeues); both take the route's turn (turns.rs), so one reconcile of it runs at a time.
//! The lane runs at most [`PROMPT_CONCURRENCY`] reconciles and only routes alone on their
//! gateway, so a burst cannot fill it (a burst's first route of a gateway stops being alone as
//! soon as the second arrives, and is skipped when its turn in the lane comes), and it takes
//! nothing from the controller's queue but its share of the API server.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::job::{Owner, owner_key, owner_of};
use super::reconcile::object_key;
use super::scheduler::Scheduler;
use super::status::RECONCILING;
use crate::api::v1alpha1::{ConditionStatus, VpnPbrRoute};
use crate::sync::lock;

/// Reconciles the lane runs at once.
pub(crate) const PROMPT_CONCURRENCY: usize = 2;

/// How long after its change arrived a route's wake-ups still go to the lane: a create on an
/// idle gateway is read back within a few gateway update times; a route stuck longer (refused,
/// waiting on another) is the controller's alone.
const PROMPT_FOR: Duration = Duration::from_secs(120);

/// Maps are shrunk once they hold less than a quarter of their room (a burst's unsettled
/// routes leave it behind) and more than this.
const KEEP_ROOM: usize = 64;

/// What the lane knows of the routes (pure: the driver passes the time and asks the
/// scheduler).
#[derive(Default)]
pub(crate) struct Admissions {
    /// Routes not settled, by key: their gateway.
    unsettled: HashMap<String, String>,
    /// How many routes are unsettled on each gateway.
    per_gateway: HashMap<String, u32>,
    /// Routes the lane takes, until when.
    admitted: HashMap<String, Instant>,
    /// Routes sent to the lane whose reconcile has not started.
    queued: HashSet<String>,
}

impl Admissions {
    /// A watch event of a route (our own writes included: they settle it).
    pub(crate) fn note(&mut self, key: &str, gateway: &str, settled: bool) {
        let before = self.unsettled.get(key).map(String::as_str);
        if settled {
            self.gone(key);
            return;
        }
        if before == Some(gateway) {
            return;
        }
        self.leave_gateway(key);
        self.unsettled.insert(key.to_owned(), gateway.to_owned());
        *self.per_gateway.entry(gateway.to_owned()).or_default() += 1;
    }

    /// The route is gone, or settled.
    pub(crate) fn gone(&mut self, key: &str) {
        self.leave_gateway(key);
        self.admitted.remove(key);
        self.queued.remove(key);
        shrink(&mut self.unsettled);
        shrink(&mut self.admitted);
    }

    /// A watch listed its routes again (`namespace`: the one it watches; `None`: all): the
    /// routes it did not list were deleted meanwhile.
    pub(crate) fn relisted(&mut self, namespace: Option<&str>, listed: &HashSet<String>) {
        let watched = |key: &str| namespace.is_none_or(|ns| key.split('/').next() == Some(ns));
        let missing: Vec<String> = self
            .unsettled
            .keys()
            .chain(self.admitted.keys())
            .filter(|k| watched(k) && !listed.contains(*k))
            .cloned()
            .collect();
        for key in missing {
            self.gone(&key);
        }
    }

    fn leave_gateway(&mut self, key: &str) {
        let Some(gateway) = self.unsettled.remove(key) else {
            return;
        };
        if let Some(n) = self.per_gateway.get_mut(&gateway) {
            *n -= 1;
            if *n == 0 {
                self.per_gateway.remove(&gateway);
                shrink(&mut self.per_gateway);
            }
        }
    }

    /// A change of the route arrived (not the echo of our write): whether the lane takes it
    /// now. `idle`: whether the scheduler holds no change for the gateway.
    pub(crate) fn trigger(
        &mut self,
        key: &str,
        now: Instant,
        idle: impl FnOnce(&str) -> bool,
    ) -> bool {
        let Some(gateway) = self.alone_on(key).map(str::to_owned) else {
            return false;
        };
        if !self.admitted(key, now) {
            if !idle(&gateway) {
                return false;
            }
            self.admitted.insert(key.to_owned(), now + PROMPT_FOR);
        }
        self.queue(key)
    }

    /// The scheduler or the read cache woke the route: whether the lane takes it.
    pub(crate) fn wake(&mut self, key: &str, now: Instant) -> bool {
        self.alone_on(key).is_some() && self.admitted(key, now) && self.queue(key)
    }

    /// The lane's reconcile of the route is about to start: whether it still should (the
    /// route may have been joined by others on its gateway while it waited).
    pub(crate) fn start(&mut self, key: &str, now: Instant) -> bool {
        self.queued.remove(key);
        self.alone_on(key).is_some() && self.admitted(key, now)
    }

    /// The gateway of an unsettled route that is the only unsettled one there.
    fn alone_on(&self, key: &str) -> Option<&str> {
        let gateway = self.unsettled.get(key)?;
        (self.per_gateway.get(gateway) == Some(&1)).then_some(gateway.as_str())
    }

    fn admitted(&mut self, key: &str, now: Instant) -> bool {
        match self.admitted.get(key) {
            Some(until) if now < *until => true,
            Some(_) => {
                self.admitted.remove(key);
                false
            }
            None => false,
        }
    }

    /// Queues the route once: a route already waiting for the lane needs no second run.
    fn queue(&mut self, key: &str) -> bool {
        self.queued.insert(key.to_owned())
    }
}

fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > KEEP_ROOM && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// Whether nothing is left to do for the route's spec: acted on at its generation and no
/// change under way (`Reconciling` is true while one is).
pub(crate) fn settled(route: &VpnPbrRoute) -> bool {
    route.metadata.deletion_timestamp.is_none()
        && route.status.as_ref().is_some_and(|s| {
            s.observed_generation == route.metadata.generation
                && !s
                    .conditions
                    .iter()
                    .any(|c| c.type_ == RECONCILING && c.status == ConditionStatus::True)
        })
}

/// The lane as the watch, the wake-ups and its driver see it.
pub struct PromptLane {
    admissions: Mutex<Admissions>,
    /// Whether the scheduler holds no change for a gateway (by its id).
    idle: Box<dyn Fn(&str) -> bool + Send + Sync>,
    tx: mpsc::UnboundedSender<Owner>,
}

impl PromptLane {
    /// The lane and the receiver its driver ([`drive`]) runs.
    pub fn new(scheduler: Scheduler) -> (Arc<Self>, mpsc::UnboundedReceiver<Owner>) {
        Self::with_idle(move |gateway| scheduler.quiet_gateway(gateway))
    }

    fn with_idle(
        idle: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Owner>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let lane = Self {
            admissions: Mutex::default(),
            idle: Box::new(idle),
            tx,
        };
        (Arc::new(lane), rx)
    }

    /// Every watch event of a route that is present.
    pub fn note(&self, route: &VpnPbrRoute) {
        lock(&self.admissions).note(
            &object_key(route),
            &route.spec.vpn_gateway_id,
            settled(route),
        );
    }

    /// The route was deleted.
    pub fn gone(&self, route: &VpnPbrRoute) {
        lock(&self.admissions).gone(&object_key(route));
    }

    /// A watch's relist ended (see [`Admissions::relisted`]).
    pub fn relisted(&self, namespace: Option<&str>, listed: &HashSet<String>) {
        lock(&self.admissions).relisted(namespace, listed);
    }

    /// Whether the watch shows the route with a change under way and no other route of its
    /// gateway with one: its calls may go at the lone class. The queue's own view comes too
    /// late for a burst's first route of each gateway (reconciled long after the burst's other
    /// routes of the gateway arrived), which would otherwise fill the class.
    pub(crate) fn alone(&self, owner: &Owner) -> bool {
        lock(&self.admissions).alone_on(&owner_key(owner)).is_some()
    }

    /// A route's event that triggers a reconcile.
    pub fn trigger(&self, route: &VpnPbrRoute) {
        let key = object_key(route);
        let take = lock(&self.admissions).trigger(&key, Instant::now(), &self.idle);
        if take {
            debug!(route = %key, "prompt lane takes a change");
            let _ = self.tx.send(owner_of(route));
        }
    }

    /// A wake-up of a route.
    pub fn wake(&self, owner: &Owner) {
        if lock(&self.admissions).wake(&owner_key(owner), Instant::now()) {
            debug!(route = %owner, "prompt lane takes a wake-up");
            let _ = self.tx.send(owner.clone());
        }
    }

    fn start(&self, owner: &Owner) -> bool {
        let go = lock(&self.admissions).start(&owner_key(owner), Instant::now());
        debug!(route = %owner, go, "prompt lane turn");
        go
    }
}

/// Runs the lane's reconciles, [`PROMPT_CONCURRENCY`] at a time, until `shutdown`: then it takes
/// no new work, as the controllers do, and returns once the reconciles under way have ended.
pub async fn drive<F, Fut>(
    lane: Arc<PromptLane>,
    rx: mpsc::UnboundedReceiver<Owner>,
    shutdown: CancellationToken,
    run: F,
) where
    F: Fn(Owner) -> Fut,
    Fut: Future<Output = ()>,
{
    UnboundedReceiverStream::new(rx)
        .take_until(shutdown.cancelled_owned())
        .for_each_concurrent(PROMPT_CONCURRENCY, |owner| {
            let go = lane.start(&owner);
            let run = go.then(|| run(owner));
            async move {
                if let Some(run) = run {
                    run.await;
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
