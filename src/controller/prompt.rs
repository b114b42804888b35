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
//! soon as the second arrives, and leaves the lone part when its turn there comes), and it
//! takes nothing from the controller's queue but its share of the API server.
//!
//! Beside it, the opener part takes one route of each gateway the scheduler holds nothing for,
//! however many of its routes arrive at once (the one taken alone before the burst joined it,
//! or else the first triggered), and that route's wake-ups: a burst of a thousand routes over
//! twenty gateways then has every gateway's first change on its way within the first
//! reconciles, and each first route `Ready` one read after its gateway applied it, instead of
//! behind the controller's queue of the whole burst (its first reconciles alone take seconds of
//! API server writes). It is a part of its own, at most
//! [`OPENER_CONCURRENCY`] reconciles, so that openers waiting at a busy account's rate limiter
//! never hold a lone change back; a gateway has at most one opener at a time.

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
/// Reconciles the opener part runs at once.
pub(crate) const OPENER_CONCURRENCY: usize = 8;

/// Which part of the lane takes a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// The only unsettled route of its gateway.
    Lone,
    /// One route of a gateway the scheduler held nothing for when it arrived.
    Opener,
}

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
    /// Each gateway's opener (admitted while its admission lasts).
    openers: HashMap<String, String>,
}

impl Admissions {
    /// A watch event of a route (our own writes included: they settle it). Returns whether
    /// the route is the second unsettled one of its gateway: a burst joined a route that was
    /// alone there.
    pub(crate) fn note(&mut self, key: &str, gateway: &str, settled: bool) -> bool {
        let before = self.unsettled.get(key).map(String::as_str);
        if settled {
            self.gone(key);
            return false;
        }
        if before == Some(gateway) {
            return false;
        }
        self.leave_gateway(key);
        self.unsettled.insert(key.to_owned(), gateway.to_owned());
        let n = self.per_gateway.entry(gateway.to_owned()).or_default();
        *n += 1;
        *n == 2
    }

    /// The route is gone, or settled.
    pub(crate) fn gone(&mut self, key: &str) {
        if let Some(gateway) = self.unsettled.get(key)
            && self.openers.get(gateway).is_some_and(|k| k == key)
        {
            self.openers.remove(gateway);
            shrink(&mut self.openers);
        }
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

    /// A change of the route arrived (not the echo of our write): which part of the lane takes it
    /// now, if any. `idle`: whether the scheduler holds no change for the gateway.
    pub(crate) fn trigger(
        &mut self,
        key: &str,
        now: Instant,
        idle: impl FnOnce(&str) -> bool,
    ) -> Option<Part> {
        let gateway = self.unsettled.get(key)?.clone();
        if self.alone_on(key).is_some() {
            if !self.admitted(key, now) {
                if !idle(&gateway) {
                    return None;
                }
                self.admitted.insert(key.to_owned(), now + PROMPT_FOR);
                // The gateway's first change in the lane stays there as its opener once a
                // burst joins it: its create goes first, and its read-back is the one the
                // gateway's first `Ready` waits for.
                self.openers.insert(gateway, key.to_owned());
            }
            return self.queue(key).then_some(Part::Lone);
        }
        if !self.opens(key, &gateway, now) {
            let other = self.openers.get(&gateway).cloned();
            if other.is_some_and(|o| self.admitted(&o, now)) || !idle(&gateway) {
                return None;
            }
            self.openers.insert(gateway, key.to_owned());
            self.admitted.insert(key.to_owned(), now + PROMPT_FOR);
        }
        self.queue(key).then_some(Part::Opener)
    }

    /// The scheduler or the read cache woke the route: which part of the lane takes it, if any.
    pub(crate) fn wake(&mut self, key: &str, now: Instant) -> Option<Part> {
        let part = self.part_of(key, now)?;
        self.queue(key).then_some(part)
    }

    /// The lane's reconcile of the route is about to start in `part`: whether it still should
    /// (the route may have been joined by others on its gateway while it waited), and, for a
    /// route that became its gateway's opener meanwhile, `Opener`: it goes to that part
    /// instead, so that the lone part never waits on a burst's calls.
    pub(crate) fn start(&mut self, key: &str, part: Part, now: Instant) -> Option<Part> {
        self.queued.remove(key);
        match self.part_of(key, now)? {
            l if l == part => Some(l),
            Part::Opener => self.queue(key).then_some(Part::Opener),
            Part::Lone => None,
        }
    }

    /// The part of the lane the route is in now: alone on its gateway and admitted, or its gateway's
    /// opener.
    fn part_of(&mut self, key: &str, now: Instant) -> Option<Part> {
        let gateway = self.unsettled.get(key)?.clone();
        if self.alone_on(key).is_some() && self.admitted(key, now) {
            return Some(Part::Lone);
        }
        self.opens(key, &gateway, now).then_some(Part::Opener)
    }

    /// Whether the route is its gateway's opener, still admitted.
    fn opens(&mut self, key: &str, gateway: &str, now: Instant) -> bool {
        self.openers.get(gateway).is_some_and(|k| k == key) && self.admitted(key, now)
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
    /// Tells the scheduler that a burst joined a gateway (by its id) where a route was alone.
    accompanied: Box<dyn Fn(&str) + Send + Sync>,
    lone: mpsc::UnboundedSender<Owner>,
    openers: mpsc::UnboundedSender<Owner>,
}

/// The work of the lane's two parts, which its driver ([`drive`]) runs.
pub struct LaneQueues {
    lone: mpsc::UnboundedReceiver<Owner>,
    openers: mpsc::UnboundedReceiver<Owner>,
}

impl PromptLane {
    /// The lane and the queues its driver ([`drive`]) runs.
    pub fn new(scheduler: Scheduler) -> (Arc<Self>, LaneQueues) {
        let joined = scheduler.clone();
        Self::with(
            move |gateway| scheduler.quiet_gateway(gateway),
            move |gateway| joined.accompanied(gateway),
        )
    }

    fn with(
        idle: impl Fn(&str) -> bool + Send + Sync + 'static,
        accompanied: impl Fn(&str) + Send + Sync + 'static,
    ) -> (Arc<Self>, LaneQueues) {
        let (lone, lone_rx) = mpsc::unbounded_channel();
        let (openers, openers_rx) = mpsc::unbounded_channel();
        let lane = Self {
            admissions: Mutex::default(),
            idle: Box::new(idle),
            accompanied: Box::new(accompanied),
            lone,
            openers,
        };
        let queues = LaneQueues {
            lone: lone_rx,
            openers: openers_rx,
        };
        (Arc::new(lane), queues)
    }

    fn send(&self, part: Part, owner: Owner) {
        let tx = match part {
            Part::Lone => &self.lone,
            Part::Opener => &self.openers,
        };
        let _ = tx.send(owner);
    }

    /// Every watch event of a route that is present.
    pub fn note(&self, route: &VpnPbrRoute) {
        let gateway = &route.spec.vpn_gateway_id;
        let joined = lock(&self.admissions).note(&object_key(route), gateway, settled(route));
        if joined {
            // Outside the lock: the scheduler takes its own.
            (self.accompanied)(gateway);
        }
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
        if let Some(part) = take {
            debug!(route = %key, ?part, "prompt lane takes a change");
            self.send(part, owner_of(route));
        }
    }

    /// A wake-up of a route.
    pub fn wake(&self, owner: &Owner) {
        let take = lock(&self.admissions).wake(&owner_key(owner), Instant::now());
        if let Some(part) = take {
            debug!(route = %owner, ?part, "prompt lane takes a wake-up");
            self.send(part, owner.clone());
        }
    }

    /// Whether the route's reconcile starts now in `part` (or moves to the opener part).
    fn start(&self, owner: &Owner, part: Part) -> bool {
        let now_in = lock(&self.admissions).start(&owner_key(owner), part, Instant::now());
        let go = now_in == Some(part);
        debug!(route = %owner, ?part, go, "prompt lane turn");
        if let Some(moved) = now_in.filter(|l| *l != part) {
            self.send(moved, owner.clone());
        }
        go
    }
}

/// Runs the lane's reconciles, [`PROMPT_CONCURRENCY`] lone and [`OPENER_CONCURRENCY`] openers
/// at a time, until `shutdown`: then it takes no new work, as the controllers do, and returns
/// once the reconciles under way have ended.
pub async fn drive<F, Fut>(
    lane: Arc<PromptLane>,
    queues: LaneQueues,
    shutdown: CancellationToken,
    run: F,
) where
    F: Fn(Owner) -> Fut,
    Fut: Future<Output = ()>,
{
    let (lane, run) = (&*lane, &run);
    futures::join!(
        serve(lane, Part::Lone, queues.lone, shutdown.clone(), run),
        serve(lane, Part::Opener, queues.openers, shutdown, run),
    );
}

/// Runs one part's reconciles until `shutdown`.
async fn serve<F, Fut>(
    lane: &PromptLane,
    part: Part,
    rx: mpsc::UnboundedReceiver<Owner>,
    shutdown: CancellationToken,
    run: &F,
) where
    F: Fn(Owner) -> Fut,
    Fut: Future<Output = ()>,
{
    let at_once = match part {
        Part::Lone => PROMPT_CONCURRENCY,
        Part::Opener => OPENER_CONCURRENCY,
    };
    UnboundedReceiverStream::new(rx)
        .take_until(shutdown.cancelled_owned())
        .for_each_concurrent(at_once, |owner| {
            let go = lane.start(&owner, part);
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
