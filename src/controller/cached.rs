//! What the read cache holds of one gateway, as a pure store: the last entry list and facts with
//! the time each was read, the replay of our own accepted changes on a list that raced them,
//! the background read's waiters and its last failure. No locks, tasks or clock reads: the
//! driver (`entries.rs`) calls it with the time, under its lock, and makes the calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::job::Owner;
use super::model::{Entry, GatewayFacts, Mutation};
use alicloud_vpc_client::{CloudError, Priority};

/// How long a failed read answers for its gateway: the routes of a dead gateway then cost one
/// call per this time, not one each.
pub(crate) const FAILED_READ_TTL: Duration = Duration::from_secs(2);

/// How long a read that answered several routes of a gateway marks it as shared: a burst's
/// routes arrive over the time its objects take to create, and none of its changes is lone.
pub(crate) const SHARED_FOR: Duration = Duration::from_secs(60);

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
    /// A read of this gateway is under way (started now or earlier); the owner is woken when
    /// it ends.
    Pending,
    /// The last read of this gateway failed less than the failure TTL ago: every reader gets
    /// the same error without a new call.
    Failed(Arc<CloudError>),
}

/// What the driver does about a read that is not served from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flight {
    /// Nothing: served, or the read under way already runs at this class or higher.
    None,
    /// Start the background read, at this class.
    Start(Priority),
    /// The read under way runs at a lower class: raise it to this one.
    Raise(Priority),
    /// The read under way was a lone change's (`Priority::Prompt`) and now another route waits
    /// on it too (a burst on the gateway): lower it to this class.
    Lower(Priority),
}

/// The oldest facts and list a reader accepts (`None`: any cached value).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Need {
    facts: Option<Instant>,
    list: Option<Instant>,
}

impl Need {
    pub(crate) fn within(facts_max_age: Duration, list_max_age: Duration, now: Instant) -> Self {
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

/// The value read at most `max_age` before `now`.
fn fresh<T: Clone>(value: &Option<(Instant, T)>, max_age: Duration, now: Instant) -> Option<T> {
    value
        .as_ref()
        .filter(|(at, _)| now.saturating_duration_since(*at) <= max_age)
        .map(|(_, v)| v.clone())
}

/// One gateway's cached reads.
#[derive(Default)]
pub(crate) struct Cached {
    entries: Option<(Instant, Arc<Vec<Entry>>)>,
    facts: Option<(Instant, GatewayFacts)>,
    /// Bumped by `apply` and `invalidate`: a list that started before is kept only with the
    /// changes applied since replayed on it (`replay`), and not at all after an invalidation.
    epoch: u64,
    /// The changes applied while a list call is under way (`listing`), each with the epoch it
    /// made; empty otherwise.
    applied: VecDeque<(u64, Mutation, Option<Entry>)>,
    listing: bool,
    /// The last background read failed, and when it ended.
    failed: Option<(Instant, Arc<CloudError>)>,
    /// A background read is under way, at this class (the highest among its waiters).
    reading: Option<Priority>,
    /// Owners waiting for the background read, with what each asked for.
    waiters: HashMap<Owner, Waiter>,
    /// Owners the last background read answered: their next `read` is served from it even if
    /// it aged meanwhile (a list slower than its maximum age would else never satisfy anyone).
    answered: HashSet<Owner>,
    /// How many owners with a change the last background read answered, and when it ended.
    served: Option<(usize, Instant)>,
    /// Background reads that ended, and whether a reconcile already waited for the first one.
    reads: u64,
    first_awaited: bool,
}

/// What an owner waiting for the background read asked for.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    need: Need,
    /// The class of its read: `Priority::Background` is a re-check of a route in sync (the
    /// drift check), which plans no change.
    class: Priority,
}

impl Waiter {
    /// Whether the owner reads for a change (not for a re-check): only such readers make a
    /// gateway's reads a burst's. A settled route re-checked while a single change comes on its
    /// gateway leaves that change lone.
    fn changing(&self) -> bool {
        self.class != Priority::Background
    }
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

    /// A reconcile's read for `owner`: what the store has within `need`, or the recent
    /// failure, or `Pending` with `owner` registered to be woken when the background read ends
    /// (which the driver starts or raises to `class`, as the `Flight` says).
    pub(crate) fn read(
        &mut self,
        owner: &Owner,
        need: Need,
        class: Priority,
        now: Instant,
    ) -> (Read, Flight) {
        let answered = self.answered.remove(owner);
        if (answered || self.meets(need))
            && let Some(ready) = self.ready()
        {
            return (ready, Flight::None);
        }
        if let Some((at, e)) = &self.failed
            && now.saturating_duration_since(*at) < FAILED_READ_TTL
        {
            return (Read::Failed(e.clone()), Flight::None);
        }
        self.waiters
            .entry(owner.clone())
            .and_modify(|w| {
                w.need = w.need.and(need);
                w.class = w.class.min(class);
            })
            .or_insert(Waiter { need, class });
        // `Prompt` is a lone change's class: a read that several changes wait on is a burst's.
        let shared = self.changing_waiters() > 1;
        let class = if class == Priority::Prompt && shared {
            Priority::Progress
        } else {
            class
        };
        let flight = match self.reading {
            // Lower is higher (`Mutation` < `Progress` < `Background`).
            Some(running) if class < running => Flight::Raise(class),
            Some(Priority::Prompt) if shared => Flight::Lower(Priority::Progress),
            Some(_) => Flight::None,
            None => Flight::Start(class),
        };
        if let Flight::Start(c) | Flight::Raise(c) | Flight::Lower(c) = flight {
            self.reading = Some(c);
        }
        (Read::Pending, flight)
    }

    /// Whether several routes with a change share the gateway's reads: more than one waits on
    /// the read under way, or the last read answered several less than `SHARED_FOR` ago. A
    /// change planned then is part of a burst on the gateway, not a lone one.
    pub(crate) fn shared(&self, now: Instant) -> bool {
        self.changing_waiters() > 1
            || self
                .served
                .is_some_and(|(n, at)| n > 1 && now.saturating_duration_since(at) < SHARED_FOR)
    }

    /// The watch shows another route with a change on the gateway (a burst's routes arrive
    /// faster than their reconciles): a read under way at the lone class is a burst's now, and
    /// goes at `Progress` like one, so that a change alone on another gateway is not held up
    /// behind it.
    pub(crate) fn accompanied(&mut self) -> Flight {
        if self.reading != Some(Priority::Prompt) {
            return Flight::None;
        }
        self.reading = Some(Priority::Progress);
        Flight::Lower(Priority::Progress)
    }

    /// Whether a reconcile may wait for the read under way: only for the gateway's first read,
    /// and only once (see `GatewayCache::await_first_read`).
    pub(crate) fn may_await_first_read(&mut self) -> bool {
        if self.reading.is_none() || self.reads > 0 || self.first_awaited {
            return false;
        }
        self.first_awaited = true;
        true
    }

    /// Whether the waiters need fresher facts than the store has.
    pub(crate) fn facts_stale(&self) -> bool {
        !meets(self.facts.as_ref().map(|f| f.0), self.strictest().facts)
    }

    /// Whether the waiters need a fresher list than the store has.
    pub(crate) fn list_stale(&self) -> bool {
        !meets(self.entries.as_ref().map(|e| e.0), self.strictest().list)
    }

    /// The background read ended at `now`: with `Ok(listed)` (whether it read the list) or an
    /// error. Returns the waiters, to wake.
    pub(crate) fn read_ended(
        &mut self,
        outcome: Result<bool, CloudError>,
        now: Instant,
    ) -> Vec<Owner> {
        self.reading = None;
        self.reads += 1;
        self.served = Some((self.changing_waiters(), now));
        let waiters = std::mem::take(&mut self.waiters);
        self.answered.clear();
        match outcome {
            Ok(listed) => {
                self.failed = None;
                for (owner, Waiter { need, .. }) in &waiters {
                    // Every waiter asked before this list's answer: it is as recent as a list
                    // they would start now could be, however long it waited for its turn (at a
                    // binding API rate, longer than any maximum age).
                    let need = if listed {
                        Need {
                            list: None,
                            ..*need
                        }
                    } else {
                        *need
                    };
                    if self.meets(need) {
                        self.answered.insert(owner.clone());
                    }
                }
            }
            Err(e) => self.failed = Some((now, Arc::new(e))),
        }
        waiters.into_keys().collect()
    }

    /// The background read ended without an outcome (its task panicked): nothing is learnt,
    /// the next reader starts another read. Returns the waiters, to wake.
    pub(crate) fn read_abandoned(&mut self) -> Vec<Owner> {
        self.reading = None;
        std::mem::take(&mut self.waiters).into_keys().collect()
    }

    /// The entries, if read at most `max_age` before `now`.
    pub(crate) fn fresh_entries(&self, max_age: Duration, now: Instant) -> Option<Arc<Vec<Entry>>> {
        fresh(&self.entries, max_age, now)
    }

    /// The facts, if read at most `max_age` before `now`.
    pub(crate) fn fresh_facts(&self, max_age: Duration, now: Instant) -> Option<GatewayFacts> {
        fresh(&self.facts, max_age, now)
    }

    /// Facts read at `now`.
    pub(crate) fn facts_read(&mut self, facts: GatewayFacts, now: Instant) {
        self.facts = Some((now, facts));
    }

    /// A list call starts (lists of a gateway are serialized: one at a time): returns the
    /// epoch it starts at, for `list_ended`.
    pub(crate) fn list_started(&mut self) -> u64 {
        self.listing = true;
        // Kept for an earlier list that did not end (its call was dropped): not this one's.
        self.applied.clear();
        self.epoch
    }

    /// The list call that started at `epoch` (at `started`) ended, with the cloud's answer if
    /// it got one. The answer is kept with the changes applied meanwhile replayed on it: at a
    /// binding API rate it waits behind them. After an invalidation it may predate what made
    /// the cache wrong and is not kept.
    pub(crate) fn list_ended(
        &mut self,
        epoch: u64,
        started: Instant,
        list: Option<Arc<Vec<Entry>>>,
    ) {
        if let Some(kept) = list.and_then(|list| self.replay(epoch, list)) {
            self.entries = Some((started, kept));
        }
        self.listing = false;
        self.applied.clear();
    }

    /// `list`, read from a call that started at `epoch`, with the changes applied since
    /// replayed on it; `None` if they are not all known (an invalidation, or too many).
    fn replay(&self, epoch: u64, mut list: Arc<Vec<Entry>>) -> Option<Arc<Vec<Entry>>> {
        let since = self.epoch.wrapping_sub(epoch);
        let since = usize::try_from(since)
            .ok()
            .filter(|n| *n <= self.applied.len())?;
        let changes = self.applied.range(self.applied.len() - since..);
        let mut expected = epoch;
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

    /// Applies an accepted change to the cached list; a list under way may predate it, so it
    /// is kept for replaying there.
    pub(crate) fn apply(&mut self, mutation: &Mutation, created: Option<&Entry>) {
        if let Some((_, list)) = self.entries.as_mut() {
            mutation.apply_to(Arc::make_mut(list), created);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.listing {
            if self.applied.len() == REPLAY_MAX {
                self.applied.pop_front();
            }
            self.applied
                .push_back((self.epoch, mutation.clone(), created.cloned()));
        }
    }

    /// Forgets the list and a remembered failure, so the next reader lists again.
    pub(crate) fn invalidate(&mut self) {
        self.entries = None;
        self.failed = None;
        self.answered.clear();
        self.epoch = self.epoch.wrapping_add(1);
        self.applied.clear();
    }

    /// What the waiters of the read under way ask for, all together.
    fn strictest(&self) -> Need {
        self.waiters
            .values()
            .fold(Need::default(), |a, b| a.and(b.need))
    }

    /// How many owners wait for the read under way to plan a change.
    fn changing_waiters(&self) -> usize {
        self.waiters.values().filter(|w| w.changing()).count()
    }
}

#[cfg(test)]
mod tests;
