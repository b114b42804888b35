//! The watch events of the operator's own writes to a route (its finalizer, its status). The
//! reconcile that wrote one carries on with the written copy, so the event that brings the
//! write back (its echo) has nothing new to decide on and triggers no reconcile, unless some
//! reconcile decided on an older copy meanwhile (it started before the echo reached the watch
//! cache): then the echo triggers one, so that decision is made again on the newest copy.
//! Anything else (a version the operator did not write: an edit, a relist past our write) always
//! triggers.

use std::collections::HashMap;
use std::sync::Mutex;

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
}

impl Arrival {
    /// Whether it triggers a reconcile.
    pub fn triggers(self) -> bool {
        self != Self::Echo
    }
}

/// The operator's own writes not yet seen back on the watch, by route key.
#[derive(Default)]
pub struct Echoes {
    pending: Mutex<HashMap<String, Pending>>,
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

impl Echoes {
    /// A write of ours left the route at `version`.
    pub(crate) fn wrote(&self, key: &str, version: Option<&str>) {
        let Some(version) = version else { return };
        let mut pending = lock(&self.pending);
        let p = pending.entry(key.to_owned()).or_default();
        if p.versions.len() == PENDING_AT_MOST {
            p.versions.remove(0);
        }
        p.versions.push(version.to_owned());
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
            return Arrival::NotOurs;
        };
        // Events come in the order of the writes: the ones before it were passed over (a
        // relist shows only the newest).
        p.versions.drain(..=at);
        let again = std::mem::take(&mut p.decided_on_older);
        if p.versions.is_empty() {
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
        Wrote(&'static str),
        Deciding(&'static str),
        /// A watch event at this version, and whether it must trigger a reconcile.
        Event(&'static str, bool),
        Forget,
    }
    use Step::{Deciding, Event, Forget, Wrote};

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
        ];
        for (name, steps) in cases {
            let echoes = Echoes::default();
            for (i, step) in steps.iter().enumerate() {
                match *step {
                    Wrote(v) => echoes.wrote("ns/r", Some(v)),
                    Deciding(v) => echoes.deciding("ns/r", Some(v)),
                    Event(v, want) => assert_eq!(
                        echoes.arrived("ns/r", Some(v)).triggers(),
                        want,
                        "{name}: step {i} {step:?}"
                    ),
                    Forget => echoes.forget("ns/r"),
                }
            }
        }
    }

    #[test]
    fn an_object_let_go_of_stays_let_go_of_after_its_deletion_arrives() {
        let echoes = Echoes::default();
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
        let echoes = Echoes::default();
        for v in ["1", "2", "3", "4", "5", "6"] {
            echoes.wrote("ns/r", Some(v));
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
