//! The watch events of the operator's own writes to a route (its finalizer, its status). The
//! reconcile that wrote one carries on with the written copy, so the event that brings the
//! write back (its echo) has nothing new to decide on and triggers no reconcile, unless some
//! reconcile decided on an older copy meanwhile (it started before the echo reached the watch
//! cache): then the echo triggers one, so that decision is made again on the newest copy.
//! Anything else (a version the operator did not write: an edit, a relist past our write) always
//! triggers.
//!
//! The echo can come before the write's own answer (the watch and the write are separate
//! requests, and either may be read first), when its version is not yet known. An event that
//! arrives while a write of the route is in flight is therefore held back until the write
//! answers: it was the echo if the answer names its version; anything else held back (an edit
//! that came meanwhile, a write lost on the wire) wakes the route then, so nothing is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use smallvec::SmallVec;

use crate::sync::lock;

/// Writes of one route whose echo has not arrived, oldest first. More than this and the oldest
/// is forgotten (its echo then triggers a reconcile, as any unknown version does).
const PENDING_AT_MOST: usize = 4;

#[derive(Default)]
struct Pending {
    versions: SmallVec<[String; 2]>,
    /// A reconcile decided on a copy without these writes.
    decided_on_older: bool,
    /// Writes sent that have not answered.
    in_flight: u8,
    /// Versions that arrived while a write was in flight, in order: judged when it answers.
    held: SmallVec<[String; 1]>,
}

impl Pending {
    fn is_idle(&self) -> bool {
        self.versions.is_empty() && self.in_flight == 0 && self.held.is_empty()
    }
}

/// What a watch event of a route is to the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A version the operator did not write (or no longer awaits).
    NotOurs,
    /// The echo of our own write, nothing decided on an older copy since.
    Echo,
    /// The echo of our own write after a decision on an older copy.
    EchoAfterOlderDecision,
    /// A version that arrived while a write of ours is in flight: the write's answer tells
    /// whether it was its echo, and wakes the route if it was not.
    HeldBack,
}

impl Arrival {
    /// Whether it triggers a reconcile.
    pub fn triggers(self) -> bool {
        matches!(self, Self::NotOurs | Self::EchoAfterOlderDecision)
    }
}

/// Wakes a route, by key, for a reconcile (an event held back that was not our echo).
type Wake = Box<dyn Fn(&str) + Send + Sync>;

/// The operator's own writes not yet seen back on the watch, by route key.
pub struct Echoes {
    pending: Mutex<HashMap<String, Pending>>,
    wake: Wake,
    /// Objects whose finalizer we removed, by key: their uid. The echo of that write is the
    /// object's deletion; until it arrives, and after it for a reconcile that took its copy
    /// before and waited for the route's turn (turns.rs), a reconcile still gets the copy that
    /// had the finalizer, and deciding on it would act for an object already let go of (a
    /// replayed create or delete with nobody left to own what it does). Kept past the
    /// deletion, the last [`LET_GO_KEPT`] of them.
    let_go: Mutex<LetGo>,
}

/// How many objects let go of are remembered after their deletion arrived: a copy of one is
/// only held by a reconcile waiting for the route's turn, never for long.
const LET_GO_KEPT: usize = 1024;

/// The objects let go of, by key: their uid, oldest first (a key let go of again moves last).
type LetGo = IndexMap<String, Option<String>>;

/// A write of a route on its way: [`Write::wrote`] with its answer, or dropped when it got none
/// (failed, or the reconcile ended first).
pub(crate) struct Write {
    echoes: Arc<Echoes>,
    key: String,
    answered: bool,
}

impl Write {
    /// The write left the route at `version` (`None`: the object is gone).
    pub(crate) fn wrote(mut self, version: Option<&str>) {
        self.answered = true;
        self.echoes.answered(&self.key, version);
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        if !self.answered {
            self.echoes.answered(&self.key, None);
        }
    }
}

impl Echoes {
    /// No writes awaited; `wake` reconciles a route by key.
    pub fn new(wake: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            pending: Mutex::default(),
            wake: Box::new(wake),
            let_go: Mutex::default(),
        }
    }

    /// A write of the route is sent: events of it are held back until it answers.
    pub(crate) fn writing(self: &Arc<Self>, key: &str) -> Write {
        let mut pending = lock(&self.pending);
        let p = pending.entry(key.to_owned()).or_default();
        p.in_flight = p.in_flight.saturating_add(1);
        Write {
            echoes: self.clone(),
            key: key.to_owned(),
            answered: false,
        }
    }

    /// A write answered: it left the route at `version` (`None`: no version known).
    fn answered(&self, key: &str, version: Option<&str>) {
        let mut pending = lock(&self.pending);
        let Some(p) = pending.get_mut(key) else {
            // Forgotten meanwhile: the route is gone.
            return;
        };
        p.in_flight = p.in_flight.saturating_sub(1);
        let mut wake = false;
        match version.and_then(|v| p.held.iter().position(|h| h == v)) {
            // Its echo came first: the versions before it were held back for nothing newer
            // than a copy some reconcile had; they wake the route all the same, below.
            Some(at) => {
                p.held.remove(at);
                wake = std::mem::take(&mut p.decided_on_older);
            }
            None => {
                if let Some(v) = version {
                    if p.versions.len() == PENDING_AT_MOST {
                        p.versions.remove(0);
                    }
                    p.versions.push(v.to_owned());
                }
            }
        }
        if p.in_flight == 0 && !p.held.is_empty() {
            // Not ours: an edit or a relist that came while the write was on its way.
            p.held.clear();
            wake = true;
        }
        if p.is_idle() {
            pending.remove(key);
        }
        drop(pending);
        if wake {
            (self.wake)(key);
        }
    }

    /// A reconcile decides on the copy of the route at `version`.
    pub(crate) fn deciding(&self, key: &str, version: Option<&str>) {
        if let Some(p) = lock(&self.pending).get_mut(key)
            && !version.is_some_and(|v| p.versions.iter().any(|w| w == v))
        {
            p.decided_on_older = true;
        }
    }

    /// What the watch event of the route at `version` is.
    pub fn arrived(&self, key: &str, version: Option<&str>) -> Arrival {
        let mut pending = lock(&self.pending);
        let Some(p) = pending.get_mut(key) else {
            return Arrival::NotOurs;
        };
        let Some(at) = version.and_then(|v| p.versions.iter().position(|w| w == v)) else {
            let Some(v) = version.filter(|_| p.in_flight > 0) else {
                return Arrival::NotOurs;
            };
            p.held.push(v.to_owned());
            return Arrival::HeldBack;
        };
        // Events come in the order of the writes: the ones before it were passed over (a
        // relist shows only the newest).
        p.versions.drain(..=at);
        let again = std::mem::take(&mut p.decided_on_older);
        if p.is_idle() {
            pending.remove(key);
        }
        if again {
            Arrival::EchoAfterOlderDecision
        } else {
            Arrival::Echo
        }
    }

    /// The route is gone: no echo of it is awaited (an object let go of stays so: a reconcile
    /// may still hold a copy from before its deletion).
    pub fn forget(&self, key: &str) {
        lock(&self.pending).remove(key);
    }

    /// We removed our finalizer from the object `uid` (its deletion is the echo).
    pub(crate) fn let_go(&self, key: &str, uid: Option<&str>) {
        let mut let_go = lock(&self.let_go);
        // A new object of the same name replaces the old one, and is now the newest.
        let_go.shift_remove(key);
        let_go.insert(key.to_owned(), uid.map(str::to_owned));
        while let_go.len() > LET_GO_KEPT {
            let_go.shift_remove_index(0);
        }
    }

    /// Whether a copy of the object `uid` is one we let go of (a new object of the same name
    /// is not).
    pub(crate) fn was_let_go(&self, key: &str, uid: Option<&str>) -> bool {
        lock(&self.let_go)
            .get(key)
            .is_some_and(|u| u.as_deref() == uid)
    }

    #[cfg(test)]
    fn awaited(&self) -> usize {
        lock(&self.pending).values().map(|p| p.versions.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What happens to one route, in order.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// A write sent and answered at this version.
        Wrote(&'static str),
        /// A write sent; its answer comes with `Answer` or `Lost`.
        Send,
        /// The oldest write on its way answers at this version.
        Answer(&'static str),
        /// The oldest write on its way gets no answer (failed, or its reconcile ended).
        Lost,
        Deciding(&'static str),
        /// A watch event at this version, and whether it must trigger a reconcile.
        Event(&'static str, bool),
        /// How many times the route was woken since the last check.
        Woken(usize),
        Forget,
    }
    use Step::{Answer, Deciding, Event, Forget, Lost, Send, Woken, Wrote};

    /// Echoes whose wake-ups are counted.
    fn counted() -> (Arc<Echoes>, Arc<Mutex<Vec<String>>>) {
        let woken = Arc::new(Mutex::new(Vec::new()));
        let seen = woken.clone();
        let echoes = Echoes::new(move |key| lock(&seen).push(key.to_owned()));
        (Arc::new(echoes), woken)
    }

    #[test]
    fn echoes_of_our_writes_trigger_only_when_a_decision_was_made_on_an_older_copy() {
        let cases: &[(&str, &[Step])] = &[
            ("an edit triggers", &[Event("1", true)]),
            (
                "the echo of our status write does not",
                &[Deciding("1"), Wrote("2"), Event("2", false)],
            ),
            (
                "finalizer then status: neither echo triggers",
                &[Wrote("2"), Wrote("3"), Event("2", false), Event("3", false)],
            ),
            (
                "a relist that shows only the last write",
                &[Wrote("2"), Wrote("3"), Event("3", false), Event("3", true)],
            ),
            (
                "a decision on the copy before our write: the echo triggers it again, once",
                &[
                    Wrote("2"),
                    Wrote("3"),
                    Deciding("1"),
                    Event("2", true),
                    Event("3", false),
                ],
            ),
            (
                "a decision on the written copy (the cache had it first) does not",
                &[Wrote("2"), Deciding("2"), Event("2", false)],
            ),
            (
                "an edit between our writes triggers; our later echo does not",
                &[Wrote("2"), Event("3", true), Wrote("4"), Event("4", false)],
            ),
            (
                "a route forgotten (deleted) awaits nothing",
                &[Wrote("2"), Forget, Event("2", true)],
            ),
            (
                "a decision with nothing awaited marks nothing",
                &[Deciding("1"), Wrote("2"), Event("2", false)],
            ),
            (
                "the echo before the write's answer neither triggers nor wakes",
                &[
                    Send,
                    Event("2", false),
                    Answer("2"),
                    Woken(0),
                    Event("2", true),
                ],
            ),
            (
                "the answer before the echo: as before",
                &[Send, Answer("2"), Woken(0), Event("2", false)],
            ),
            (
                "an edit that came while the write was on its way wakes the route once it answers",
                &[
                    Send,
                    Event("2", false),
                    Woken(0),
                    Answer("3"),
                    Woken(1),
                    Event("3", false),
                ],
            ),
            (
                "the echo and an edit after it, both before the answer: the edit wakes",
                &[
                    Send,
                    Event("2", false),
                    Event("3", false),
                    Answer("2"),
                    Woken(1),
                ],
            ),
            (
                "a write lost on its way: what came meanwhile wakes the route",
                &[Send, Event("2", false), Lost, Woken(1), Event("3", true)],
            ),
            (
                "a lost write with nothing held back wakes nothing",
                &[Send, Lost, Woken(0), Event("2", true)],
            ),
            (
                "finalizer then status, both echoes first: nothing triggers or wakes",
                &[
                    Send,
                    Event("2", false),
                    Answer("2"),
                    Send,
                    Event("3", false),
                    Answer("3"),
                    Woken(0),
                ],
            ),
            (
                "an early echo after a decision on an older copy wakes the route, once",
                &[
                    Send,
                    Deciding("1"),
                    Event("2", false),
                    Answer("2"),
                    Woken(1),
                    Event("2", true),
                ],
            ),
        ];
        for (name, steps) in cases {
            let (echoes, woken) = counted();
            let mut on_the_way = std::collections::VecDeque::new();
            for (i, step) in steps.iter().enumerate() {
                let at = format!("{name}: step {i} {step:?}");
                match *step {
                    Wrote(v) => echoes.writing("ns/r").wrote(Some(v)),
                    Send => on_the_way.push_back(echoes.writing("ns/r")),
                    Answer(v) => on_the_way.pop_front().expect(&at).wrote(Some(v)),
                    Lost => drop(on_the_way.pop_front().expect(&at)),
                    Deciding(v) => echoes.deciding("ns/r", Some(v)),
                    Event(v, want) => {
                        assert_eq!(echoes.arrived("ns/r", Some(v)).triggers(), want, "{at}")
                    }
                    Woken(n) => {
                        let keys = std::mem::take(&mut *lock(&woken));
                        assert_eq!(keys.len(), n, "{at}");
                        assert!(keys.iter().all(|k| k == "ns/r"), "{at}");
                    }
                    Forget => echoes.forget("ns/r"),
                }
            }
        }
    }

    #[test]
    fn an_object_let_go_of_stays_let_go_of_after_its_deletion_arrives() {
        let (echoes, _) = counted();
        echoes.let_go("ns/r", Some("uid-1"));
        assert!(echoes.was_let_go("ns/r", Some("uid-1")));
        assert!(
            !echoes.was_let_go("ns/r", Some("uid-2")),
            "a new object of the same name"
        );
        assert!(!echoes.was_let_go("ns/other", Some("uid-1")));
        // Its deletion arrived while a reconcile waited for the route's turn with a copy from
        // before: that copy is still let go of.
        echoes.forget("ns/r");
        assert!(
            echoes.was_let_go("ns/r", Some("uid-1")),
            "a copy from before its deletion"
        );
        // A new object of the same name let go of replaces it; the oldest are forgotten past
        // LET_GO_KEPT.
        echoes.let_go("ns/r", Some("uid-2"));
        assert!(!echoes.was_let_go("ns/r", Some("uid-1")));
        for i in 0..LET_GO_KEPT {
            echoes.let_go(&format!("ns/other-{i}"), Some("uid"));
        }
        assert!(
            !echoes.was_let_go("ns/r", Some("uid-2")),
            "the oldest forgotten"
        );
        assert!(echoes.was_let_go("ns/other-0", Some("uid")));
        assert_eq!(lock(&echoes.let_go).len(), LET_GO_KEPT);
    }

    #[test]
    fn writes_whose_echo_never_comes_are_bounded_per_route() {
        let (echoes, _) = counted();
        for v in ["1", "2", "3", "4", "5", "6"] {
            echoes.writing("ns/r").wrote(Some(v));
        }
        assert_eq!(echoes.awaited(), PENDING_AT_MOST);
        assert_eq!(
            echoes.arrived("ns/r", Some("1")),
            Arrival::NotOurs,
            "the oldest was forgotten"
        );
        assert_eq!(echoes.arrived("ns/r", Some("6")), Arrival::Echo);
        assert_eq!(echoes.awaited(), 0, "an echo clears what it passed over");
        assert_eq!(
            echoes.arrived("other/r", Some("6")),
            Arrival::NotOurs,
            "one route's writes only"
        );
    }
}
