//! Table tests of the read cache's store, call by call: each case is a script of the calls a
//! reconcile and the driver make at virtual instants, each with what it must answer. The races
//! the driver meets are steps like any other: readers joining a read under way, our own change
//! accepted while a list is on the wire, an invalidation meanwhile.

use std::time::Duration;

use super::*;
use crate::controller::fixtures::{Joined, api_error, create, entry, facts, owner};
use alicloud_vpc_client::ErrorClass;

const FACTS_AGE: Duration = Duration::from_secs(600);
const LIST_AGE: Duration = Duration::from_secs(5);

/// One step of a script.
enum Step {
    /// The clock moves to this many milliseconds after the start.
    At(u64),
    /// Route `i` reads at `class`: what it gets, and what the driver must do about the flight.
    Read(usize, Priority, &'static str, Flight),
    /// The driver's background read ended: the owners to wake.
    Ended(Result<bool, CloudError>, &'static [&'static str]),
    /// What the waiters need that the store lacks: (facts, list).
    Stale(bool, bool),
    /// The driver read the facts.
    Facts,
    /// A list call starts.
    ListStarted,
    /// The list call ends with these routes (or no answer); then the cached list.
    ListEnded(Option<&'static [usize]>, &'static str),
    /// Our own create of route `i` was accepted (its answer named the entry).
    Apply(usize),
    Invalidate,
    /// Whether a reconcile may wait for the read under way.
    MayAwait(bool),
    /// Whether several routes share the gateway's reads.
    Shared(bool),
    /// The watch shows a second route with a change on the gateway: what the driver must do.
    Accompanied(Flight),
}

fn unavailable() -> CloudError {
    api_error(
        "DescribeVpnPbrRouteEntries",
        503,
        "ServiceUnavailable",
        ErrorClass::Transient,
        None,
    )
}

/// A list in a few words: the sources it holds, in order.
fn sources(list: &[Entry]) -> String {
    let s: Vec<&str> = list.iter().map(|e| e.route_source.as_str()).collect();
    format!("[{}]", s.join(","))
}

fn shown(read: &Read) -> String {
    match read {
        Read::Ready { entries, .. } => format!("ready {}", sources(entries)),
        Read::Pending => "pending".into(),
        Read::Failed(e) => format!("failed {}", e.code()),
    }
}

struct Run {
    cached: Cached,
    start: Instant,
    now: Instant,
    /// The epoch and start of the list call under way.
    listing: Option<(u64, Instant)>,
}

impl Run {
    fn script(name: &str, steps: Vec<Step>) {
        let start = Instant::now();
        let mut run = Self {
            cached: Cached::default(),
            start,
            now: start,
            listing: None,
        };
        for (n, step) in steps.into_iter().enumerate() {
            run.step(name, n, step);
        }
    }

    fn step(&mut self, name: &str, n: usize, step: Step) {
        let at = format!("{name}: step {n}");
        match step {
            Step::At(ms) => self.now = self.start + Duration::from_millis(ms),
            Step::Read(i, class, want, flight) => {
                let need = Need::within(FACTS_AGE, LIST_AGE, self.now);
                let (read, got) = self.cached.read(&owner(i), need, class, self.now);
                assert_eq!((shown(&read).as_str(), got), (want, flight), "{at} (r{i})");
            }
            Step::Ended(outcome, want) => {
                let mut woken: Vec<String> = self
                    .cached
                    .read_ended(outcome, self.now)
                    .into_iter()
                    .map(|o| o.name.clone())
                    .collect();
                woken.sort();
                assert_eq!(woken, want, "{at}");
            }
            Step::Stale(facts, list) => {
                let got = (self.cached.facts_stale(), self.cached.list_stale());
                assert_eq!(got, (facts, list), "{at}");
            }
            Step::Facts => self.cached.facts_read(facts(), self.now),
            Step::ListStarted => self.listing = Some((self.cached.list_started(), self.now)),
            Step::ListEnded(routes, want) => {
                let (epoch, started) = self.listing.take().expect("a list under way");
                let list = routes.map(|r| Arc::new(r.iter().map(|i| entry(*i)).collect()));
                self.cached.list_ended(epoch, started, list);
                let got = self
                    .cached
                    .fresh_entries(Duration::MAX, self.now)
                    .map_or("none".into(), |l| sources(&l));
                assert_eq!(got, want, "{at}");
            }
            Step::Apply(i) => self.cached.apply(&create(i), Some(&entry(i))),
            Step::Invalidate => self.cached.invalidate(),
            Step::MayAwait(want) => {
                assert_eq!(self.cached.may_await_first_read(), want, "{at}");
            }
            Step::Shared(want) => assert_eq!(self.cached.shared(self.now), want, "{at}"),
            Step::Accompanied(want) => assert_eq!(self.cached.accompanied(), want, "{at}"),
        }
    }
}

/// Route `i` reads at `class`, finds nothing and starts the background read at that class.
fn starts(i: usize, class: Priority) -> Step {
    Step::Read(i, class, "pending", Flight::Start(class))
}

/// Route `i` reads at `class`, finds nothing and raises the read under way to that class.
fn raises(i: usize, class: Priority) -> Step {
    Step::Read(i, class, "pending", Flight::Raise(class))
}

/// A first background read of facts and list (route 1 waiting) that shows `routes`.
fn first_read(routes: &'static [usize], list: &'static str) -> Vec<Step> {
    use Step::*;
    vec![
        starts(1, Priority::Progress),
        Stale(true, true),
        Facts,
        Stale(false, true),
        ListStarted,
        ListEnded(Some(routes), list),
        Ended(Ok(true), &["r1"]),
    ]
}

#[test]
fn one_background_read_serves_every_reader_of_a_gateway() {
    use Step::*;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "readers join the read under way; a higher class raises it, a lower one does not",
            vec![
                starts(1, Priority::Background),
                Read(2, Priority::Background, "pending", Flight::None),
                raises(3, Priority::Progress),
                Read(4, Priority::Background, "pending", Flight::None),
                Facts,
                ListStarted,
                ListEnded(Some(&[1]), "[s1]"),
                Ended(Ok(true), &["r1", "r2", "r3", "r4"]),
                Read(2, Priority::Progress, "ready [s1]", Flight::None),
            ],
        ),
        (
            "a list slower than its maximum age still answers the readers that waited for it, \
             once each; others read again",
            [
                first_read(&[1], "[s1]"),
                vec![
                    At(60_000),
                    Read(1, Priority::Progress, "ready [s1]", Flight::None),
                    starts(1, Priority::Progress),
                    Read(2, Priority::Progress, "pending", Flight::None),
                    // The facts are young enough: only the list is read.
                    Stale(false, true),
                ],
            ]
            .joined(),
        ),
        (
            "a failed read answers every reader with its error for a while, then is tried again",
            vec![
                starts(1, Priority::Progress),
                Ended(Err(unavailable()), &["r1"]),
                At(1_000),
                Read(
                    1,
                    Priority::Progress,
                    "failed ServiceUnavailable",
                    Flight::None,
                ),
                Read(
                    2,
                    Priority::Progress,
                    "failed ServiceUnavailable",
                    Flight::None,
                ),
                At(2_000),
                starts(2, Priority::Progress),
            ],
        ),
        (
            "a reconcile may wait for the gateway's first read, once",
            vec![
                MayAwait(false),
                starts(1, Priority::Progress),
                MayAwait(true),
                MayAwait(false),
            ],
        ),
        (
            "no reconcile waits for a later read",
            [
                first_read(&[], "[]"),
                vec![At(60_000), starts(2, Priority::Progress), MayAwait(false)],
            ]
            .joined(),
        ),
    ];
    for (name, steps) in cases {
        Run::script(name, steps);
    }
}

#[test]
fn our_own_changes_show_at_once_and_survive_a_list_that_raced_them() {
    use Step::*;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "an accepted change shows in the cached list without a list call",
            [
                first_read(&[1], "[s1]"),
                vec![
                    Apply(2),
                    Read(1, Priority::Progress, "ready [s1,s2]", Flight::None),
                ],
            ]
            .joined(),
        ),
        (
            "a list that was on the wire when our change was accepted keeps it (replayed)",
            [
                first_read(&[1], "[s1]"),
                vec![ListStarted, Apply(2), ListEnded(Some(&[1]), "[s1,s2]")],
            ]
            .joined(),
        ),
        (
            "a list that already shows the change is kept as is",
            vec![ListStarted, Apply(2), ListEnded(Some(&[2]), "[s2]")],
        ),
        (
            "after an invalidation a list that started before is not kept",
            [
                first_read(&[1], "[s1]"),
                vec![
                    ListStarted,
                    Apply(2),
                    Invalidate,
                    ListEnded(Some(&[1]), "none"),
                ],
            ]
            .joined(),
        ),
        (
            "a list call that got no answer keeps what was cached",
            [
                first_read(&[1], "[s1]"),
                vec![ListStarted, Apply(2), ListEnded(None, "[s1,s2]")],
            ]
            .joined(),
        ),
        (
            "changes kept for a list that did not end are not replayed on the next",
            vec![
                ListStarted,
                Apply(2),
                // Its call was dropped; the next list starts after the change.
                ListStarted,
                ListEnded(Some(&[1]), "[s1]"),
            ],
        ),
    ];
    for (name, steps) in cases {
        Run::script(name, steps);
    }
}

#[test]
fn a_list_that_missed_more_changes_than_are_kept_is_dropped() {
    use Step::*;
    let mut steps = vec![ListStarted];
    steps.extend((0..=REPLAY_MAX).map(|i| Apply(i + 10)));
    steps.push(ListEnded(Some(&[1]), "none"));
    Run::script("too many changes under one list", steps);
}

#[test]
fn a_lone_changes_read_that_other_routes_join_is_a_bursts() {
    use Step::*;
    // One route of a quiet gateway reads at `Prompt`; a second route joining makes it a
    // burst's read: lowered to `Progress` (a third changes nothing more), and the gateway
    // counts as shared for `SHARED_FOR` after the read answered both.
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "lowered once shared",
            vec![
                starts(1, Priority::Prompt),
                Shared(false),
                Read(
                    2,
                    Priority::Prompt,
                    "pending",
                    Flight::Lower(Priority::Progress),
                ),
                Read(3, Priority::Progress, "pending", Flight::None),
                Shared(true),
                Facts,
                ListStarted,
                ListEnded(Some(&[]), "[]"),
                Ended(Ok(true), &["r1", "r2", "r3"]),
                Shared(true),
                At(60_000),
                Shared(false),
            ],
        ),
        (
            "a read that answered one route leaves the gateway unshared",
            vec![
                starts(1, Priority::Prompt),
                Facts,
                ListStarted,
                ListEnded(Some(&[]), "[]"),
                Ended(Ok(true), &["r1"]),
                Shared(false),
            ],
        ),
    ];
    for (name, steps) in cases {
        Run::script(name, steps);
    }
}

/// The read under way lists an empty gateway and wakes `woken`; then whether the gateway's
/// reads count as shared.
fn empty_list_answers(woken: &'static [&'static str], shared: bool) -> Vec<Step> {
    use Step::*;
    vec![
        Facts,
        ListStarted,
        ListEnded(Some(&[]), "[]"),
        Ended(Ok(true), woken),
        Shared(shared),
    ]
}

#[test]
fn a_drift_check_waiting_on_the_gateway_leaves_a_single_change_lone() {
    use Step::*;
    // A settled route's drift check (`Background`) reads the gateway when a single change
    // arrives there: the change's read raises it to `Prompt` and stays lone, during the read
    // and after it answered both. Only a second change makes the gateway's reads a burst's.
    let one_change = vec![
        starts(1, Priority::Background),
        Read(2, Priority::Background, "pending", Flight::None),
        raises(3, Priority::Prompt),
        Shared(false),
    ];
    let two_changes = vec![
        starts(1, Priority::Background),
        raises(2, Priority::Prompt),
        Read(
            3,
            Priority::Prompt,
            "pending",
            Flight::Lower(Priority::Progress),
        ),
        Shared(true),
    ];
    let woken = &["r1", "r2", "r3"];
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "one change beside drift checks",
            one_change
                .into_iter()
                .chain(empty_list_answers(woken, false))
                .collect(),
        ),
        (
            "a second change beside a drift check is a burst",
            two_changes
                .into_iter()
                .chain(empty_list_answers(woken, true))
                .collect(),
        ),
        (
            "a drift check that then reads for a change counts",
            vec![
                starts(1, Priority::Background),
                raises(1, Priority::Progress),
                Read(2, Priority::Prompt, "pending", Flight::None),
                Shared(true),
            ],
        ),
    ];
    for (name, steps) in cases {
        Run::script(name, steps);
    }
}

#[test]
fn a_lone_read_whose_gateway_the_watch_shows_in_a_burst_goes_at_the_bursts_class() {
    use Step::*;
    // A burst spread over many gateways: each gateway's first route looks alone until its
    // second arrives, and its read started at `Prompt`. The watch shows the second long before
    // its reconcile joins the read; from then on the read is the burst's, and a change alone on
    // another gateway goes ahead of it.
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "a lone read is lowered once",
            vec![
                starts(1, Priority::Prompt),
                Accompanied(Flight::Lower(Priority::Progress)),
                Accompanied(Flight::None),
                // The second route's reconcile joins at the burst's class: nothing to change.
                Read(2, Priority::Progress, "pending", Flight::None),
            ],
        ),
        (
            "a burst's read stays where it is",
            vec![starts(1, Priority::Progress), Accompanied(Flight::None)],
        ),
        (
            "a drift check stays in the background",
            vec![starts(1, Priority::Background), Accompanied(Flight::None)],
        ),
        (
            "no read under way: nothing to lower",
            vec![Accompanied(Flight::None)],
        ),
        (
            "the scheduler's raise of a read-back is not the watch's to undo",
            vec![
                starts(1, Priority::Progress),
                raises(1, Priority::Mutation),
                Accompanied(Flight::None),
            ],
        ),
    ];
    for (name, steps) in cases {
        Run::script(name, steps);
    }
}
