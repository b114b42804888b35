//! Table tests of the gateway queue, driven event by event: each case is a script of calls
//! (a reconcile's `submit`, `forget`, `view`) and driver events at virtual instants, each with
//! the commands (or answer) it must give. The races the driver meets are steps like any other:
//! a job replaced or dropped while the driver sleeps, dropped while on the wire, new work
//! waking the driver before its step is due.

use std::time::Duration;

use super::*;
use crate::controller::fixtures::{Joined, api_error, create, entry, owner, publish, scope};

/// One step of a script.
enum Step {
    /// The clock moves to this many milliseconds after the start.
    At(u64),
    /// A reconcile submits route `i`'s change; whether the driver must plan again.
    Submit(usize, Mutation, bool),
    /// The same, while other routes share the gateway's reads (a burst on it).
    SubmitShared(usize, Mutation, bool),
    /// A reconcile forgets route `i`'s job.
    Forget(usize, Forgot),
    /// What route `i`'s reconcile sees of its job.
    View(usize, &'static str),
    /// A driver event and the commands it must give.
    On(Event, &'static [&'static str]),
    /// The watch shows a burst joining the gateway.
    Accompanied,
}

fn accepted() -> Event {
    Event::Sent(Ok(Accepted {
        request_id: Some("rid".into()),
        entry: None,
    }))
}

/// An accepted create whose answer named its entry.
fn accepted_with(i: usize) -> Event {
    Event::Sent(Ok(Accepted {
        request_id: Some("rid".into()),
        entry: Some(entry(i)),
    }))
}

fn error(code: &str, http_status: u16, class: ErrorClass, retry_after: Option<u64>) -> CloudError {
    let retry_after = retry_after.map(Duration::from_millis);
    api_error(
        "CreateVpnPbrRouteEntry",
        http_status,
        code,
        class,
        retry_after,
    )
}

fn busy() -> CloudError {
    error("VpnGateway.Configuring", 400, ErrorClass::GatewayBusy, None)
}

fn unavailable() -> CloudError {
    error("ServiceUnavailable", 503, ErrorClass::Transient, None)
}

fn gateway_gone() -> CloudError {
    error(
        "InvalidVpnGatewayInstanceId.NotFound",
        404,
        ErrorClass::NeedsOutsideAction,
        None,
    )
}

fn peers() -> Event {
    Event::Peers(Peers::of(&scope(), None))
}

fn status(s: &str) -> Event {
    Event::StatusRead(Ok(GatewayStatus::from(s)))
}

fn listed(routes: &[usize]) -> Event {
    Event::ListRead(Ok(Arc::new(routes.iter().map(|i| entry(*i)).collect())))
}

/// A list showing route `i`'s entry as made at `create_time` (its answer says 1).
fn listed_made(i: usize, create_time: i64) -> Event {
    let mut e = entry(i);
    e.create_time = create_time;
    Event::ListRead(Ok(Arc::new(vec![e])))
}

fn free() -> Event {
    Event::Free
}

fn due() -> Event {
    Event::Due { woken: false }
}

fn woken() -> Event {
    Event::Due { woken: true }
}

/// A change in a few words: the action and the route's source.
fn change(m: &Mutation) -> String {
    let what = match m {
        Mutation::Create { .. } => "create",
        Mutation::Publish { .. } => "publish",
        Mutation::Delete { .. } => "delete",
        Mutation::ModifyAttribute { .. }
        | Mutation::ModifyWeight { .. }
        | Mutation::ModifyPriority { .. } => "modify",
    };
    format!("{what} {}", m.route().route_source)
}

/// A queue and its world, with the clock at `now`.
struct Run {
    queue: GatewayQueue,
    regions: Regions,
    start: Instant,
    now: Instant,
}

impl Run {
    fn new(paced: bool) -> Self {
        let start = Instant::now();
        Self {
            queue: GatewayQueue::new(0, paced),
            regions: Regions::new(),
            start,
            now: start,
        }
    }

    fn ms(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.start).as_millis()
    }

    fn render(&self, c: &Command) -> String {
        match c {
            Command::SleepUntil(Some(at)) => format!("sleep until {}", self.ms(*at)),
            Command::SleepUntil(None) => "sleep until woken".into(),
            Command::Pause(d) => format!("pause {}", d.as_millis()),
            Command::Send {
                mutation, class, ..
            } => match class {
                Priority::Mutation => format!("send {}", change(mutation)),
                _ => format!("send {} at {class:?}", change(mutation)),
            },
            Command::ReadStatus { class, .. } => format!("read status at {class:?}"),
            Command::ReadList { class, .. } => match class {
                Priority::Progress => "read list".into(),
                _ => format!("read list at {class:?}"),
            },
            Command::LearnPeers(_) => "learn peers".into(),
            Command::CacheApply { mutation, .. } => format!("cache {}", change(mutation)),
            Command::CacheInvalidate(_) => "cache invalidate".into(),
            Command::Wake(owners) => {
                let names: Vec<&str> = owners.iter().map(|o| o.name.as_str()).collect();
                format!("wake {}", names.join(","))
            }
            Command::Release(o) => format!("release {}", o.name),
            Command::WakePeers(_) => "wake peers".into(),
        }
    }

    fn view(&self, i: usize) -> String {
        let Some(view) = self.queue.view(&owner(i), self.now) else {
            return "none".into();
        };
        let stalled = |s: &Option<Stall>| match s {
            Some(Stall::Queued(e)) => format!(", stalled on status {}", e.code()),
            Some(Stall::Status(e)) => format!(", stalled on status {}", e.code()),
            Some(Stall::List(e)) => format!(", stalled on list {}", e.code()),
            None => String::new(),
        };
        match view {
            JobView::Queued {
                mutation,
                stalled: s,
                ..
            } => format!("queued {}{}", change(&mutation), stalled(&s)),
            JobView::InFlight => "in flight".into(),
            JobView::Accepted {
                confirmed,
                stalled: s,
                ..
            } => format!(
                "{}{}",
                if confirmed { "confirmed" } else { "accepted" },
                stalled(&s)
            ),
            JobView::Failed { error, .. } => format!("failed {}", error.code()),
        }
    }

    /// Runs the script; a step that gives other than it says fails with the case's name.
    fn script(&mut self, name: &str, steps: Vec<Step>) {
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::At(ms) => self.now = self.start + Duration::from_millis(ms),
                Step::Submit(i, m, plan) => {
                    let got = self.queue.submit(&owner(i), &scope(), m, Some(1), true);
                    assert_eq!(got, plan, "{name}: step {n} (submit r{i})");
                }
                Step::SubmitShared(i, m, plan) => {
                    let got = self.queue.submit(&owner(i), &scope(), m, Some(1), false);
                    assert_eq!(got, plan, "{name}: step {n} (submit r{i})");
                }
                Step::Forget(i, want) => {
                    assert_eq!(self.queue.forget(&owner(i)), want, "{name}: step {n}");
                }
                Step::View(i, want) => assert_eq!(self.view(i), want, "{name}: step {n} (r{i})"),
                Step::Accompanied => self.queue.accompanied(),
                Step::On(event, want) => {
                    let shown = format!("{event:?}");
                    let commands = self.queue.on(event, self.now, &mut self.regions);
                    let got: Vec<String> = commands.iter().map(|c| self.render(c)).collect();
                    assert_eq!(got, want, "{name}: step {n} ({shown:.60})");
                }
            }
        }
    }
}

/// Route 1's create submitted to a new queue, the driver planning to send it at once.
fn first_planned() -> Vec<Step> {
    use Step::*;
    vec![Submit(1, create(1), true), On(free(), &["sleep until 0"])]
}

/// Route 1's create submitted to a new queue and sent at 0.
fn first_sent() -> Vec<Step> {
    [
        first_planned(),
        vec![Step::On(due(), &["send create s1 at Prompt"])],
    ]
    .joined()
}

/// Route 1's create sent and accepted at 0 with `answer` on a new queue.
fn first_accepted(answer: Event) -> Vec<Step> {
    use Step::*;
    [
        first_sent(),
        vec![
            On(answer, &["cache create s1", "learn peers"]),
            On(peers(), &["wake r1"]),
        ],
    ]
    .joined()
}

/// The commands a step must give.
type Commands = &'static [&'static str];

/// One round of the driver at `at`: free, it plans `plan`; due, it gives `does`; `answer`
/// then gives `gives`.
fn round(at: u64, plan: Commands, does: Commands, answer: Event, gives: Commands) -> Vec<Step> {
    use Step::*;
    vec![At(at), On(free(), plan), On(due(), does), On(answer, gives)]
}

/// Free, the driver plans (`plan`) a read of the gateway's status at `at`; it reads `s` 10 ms
/// later, which gives `gives`.
fn status_read(plan: Commands, at: u64, s: &str, gives: Commands) -> Vec<Step> {
    use Step::*;
    vec![
        On(free(), plan),
        At(at),
        On(due(), &["read status at Pacing"]),
        At(at + 10),
        On(status(s), gives),
    ]
}

/// The read-back at `at` (planned as `plan`) that shows route 1: confirmed, its owner woken.
fn shown(at: u64, plan: Commands) -> Vec<Step> {
    [
        round(
            at,
            plan,
            &["read list at Prompt"],
            listed(&[1]),
            &["wake r1"],
        ),
        vec![Step::View(1, "confirmed")],
    ]
    .joined()
}

#[test]
fn a_change_goes_when_its_turn_comes_and_counts_once_the_list_shows_it() {
    use Step::*;
    let cases: Vec<(&str, bool, Vec<Step>)> = vec![
        (
            "one change: sent at once, its owner woken with the answer, the gateway read until \
             it is active, then one list confirms it",
            true,
            [
                first_accepted(accepted()),
                vec![View(1, "accepted")],
                // Nothing is known of the update time: a first read soon after. Busy proves
                // only a lower bound: nothing for the region's other gateways.
                status_read(&["sleep until 100"], 100, "updating", &[]),
                vec![View(1, "accepted")],
                status_read(&["sleep until 300"], 300, "active", &["wake peers"]),
                vec![
                    // Applied, not yet listed: one list read at once.
                    On(free(), &["sleep until 310"]),
                    On(due(), &["read list at Prompt"]),
                    On(listed(&[1]), &["wake r1"]),
                    View(1, "confirmed"),
                    On(free(), &["sleep until woken"]),
                ],
            ]
            .joined(),
        ),
        (
            "a second change waits until the gateway is seen active, and the peers are learned once",
            true,
            [
                first_accepted(accepted()),
                vec![Submit(2, create(2), true)],
                status_read(&["sleep until 100"], 100, "active", &["wake peers"]),
                vec![
                    // Change 1 is applied: change 2 goes before the list is read (one list
                    // then confirms both).
                    On(free(), &["sleep until 110"]),
                    On(due(), &["send create s2"]),
                    On(accepted(), &["cache create s2", "wake r2"]),
                    View(1, "accepted"),
                    View(2, "accepted"),
                ],
            ]
            .joined(),
        ),
        (
            "a burst's first change of the gateway is read back alone, at the lone class",
            true,
            [
                vec![
                    SubmitShared(1, create(1), true),
                    SubmitShared(2, create(2), true),
                    SubmitShared(3, create(3), true),
                    On(free(), &["sleep until 0"]),
                    On(due(), &["send create s1"]),
                    On(accepted(), &["cache create s1", "learn peers"]),
                    On(peers(), &["wake r1"]),
                ],
                status_read(&["sleep until 100"], 100, "active", &["wake peers"]),
                vec![
                    On(free(), &["sleep until 110"]),
                    On(due(), &["send create s2"]),
                    On(accepted(), &["cache create s2", "wake r2"]),
                    On(free(), &["sleep until 110"]),
                    On(due(), &["read list at Prompt"]),
                    On(listed(&[1]), &["wake r1"]),
                    View(1, "confirmed"),
                ],
            ]
            .joined(),
        ),
        (
            "without pacing changes go back to back and count as applied at once",
            false,
            vec![
                Submit(1, create(1), true),
                Submit(2, create(2), true),
                On(free(), &["sleep until 0"]),
                On(due(), &["send create s1 at Prompt"]),
                On(accepted(), &["cache create s1", "learn peers"]),
                On(peers(), &["wake r1"]),
                On(free(), &["sleep until 0"]),
                On(due(), &["send create s2"]),
                On(Event::Sent(Err(busy())), &["wake r2"]),
                View(2, "failed VpnGateway.Configuring"),
                On(free(), &["sleep until 0"]),
                On(due(), &["read list at Prompt"]),
                On(listed(&[1]), &["wake r1"]),
                View(1, "confirmed"),
            ],
        ),
    ];
    for (name, paced, steps) in cases {
        Run::new(paced).script(name, steps);
    }
}

#[test]
fn what_a_reconcile_does_while_the_driver_sleeps_or_calls_is_taken_as_it_stands() {
    use Step::*;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "a job replaced while the driver sleeps goes as it stands",
            [
                first_planned(),
                vec![
                    Submit(1, publish(1), true),
                    On(due(), &["send publish s1 at Prompt"]),
                ],
            ]
            .joined(),
        ),
        (
            "the same change submitted again only takes the newer generation: no new plan",
            vec![
                Submit(1, create(1), true),
                Submit(1, create(1), false),
                View(1, "queued create s1"),
            ],
        ),
        (
            "a job dropped while the driver sleeps is never sent",
            [
                first_planned(),
                vec![
                    Forget(1, Forgot::Gone),
                    On(due(), &[]),
                    View(1, "none"),
                    On(free(), &["sleep until woken"]),
                ],
            ]
            .joined(),
        ),
        (
            "new work wakes the driver: a due send goes, any other step is planned again",
            [
                first_accepted(accepted()),
                vec![
                    On(free(), &["sleep until 100"]),
                    At(50),
                    Submit(2, create(2), true),
                    On(woken(), &["sleep until 100"]),
                    At(100),
                    Submit(3, create(3), true),
                    On(woken(), &["sleep until 100"]),
                    On(due(), &["read status at Pacing"]),
                ],
            ]
            .joined(),
        ),
        (
            "woken when a send is due: it goes",
            [
                first_planned(),
                vec![
                    Submit(2, create(2), true),
                    On(woken(), &["send create s1 at Prompt"]),
                ],
            ]
            .joined(),
        ),
        (
            "a job on the wire is neither replaced nor dropped: its answer is recorded first",
            [
                first_sent(),
                vec![
                    Submit(1, publish(1), false),
                    Forget(1, Forgot::OnTheWire),
                    View(1, "in flight"),
                    On(accepted(), &["cache create s1", "learn peers"]),
                    On(peers(), &["wake r1"]),
                    // Accepted and not yet listed: still its outcome first.
                    Submit(1, publish(1), false),
                    View(1, "accepted"),
                    Forget(1, Forgot::Gone),
                    View(1, "none"),
                ],
            ]
            .joined(),
        ),
        (
            "a job dropped while on the wire and refused as busy is released, not queued again",
            [
                first_sent(),
                vec![
                    Forget(1, Forgot::OnTheWire),
                    On(Event::Sent(Err(busy())), &["release r1", "pause 200"]),
                    View(1, "none"),
                    On(free(), &["sleep until woken"]),
                ],
            ]
            .joined(),
        ),
    ];
    for (name, steps) in cases {
        Run::new(true).script(name, steps);
    }
}

#[test]
fn refusals_are_retried_by_their_rule_or_handed_to_the_route() {
    use Step::*;
    // Route 1's create sent again and refused with `e`.
    let refused = |e: CloudError, commands: &'static [&'static str]| {
        vec![
            On(free(), &["sleep until 0"]),
            On(due(), &["send create s1 at Prompt"]),
            On(Event::Sent(Err(e)), commands),
        ]
    };
    let throttled = |ms: Option<u64>| error("Throttling.User", 400, ErrorClass::Throttled, ms);
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "busy with a change not ours: the same job again after a pause doubling up to 5 s",
            [
                vec![Submit(1, create(1), true)],
                refused(busy(), &["pause 200"]),
                refused(busy(), &["pause 400"]),
                refused(busy(), &["pause 800"]),
                refused(busy(), &["pause 1600"]),
                refused(busy(), &["pause 3200"]),
                refused(busy(), &["pause 5000"]),
                refused(busy(), &["pause 5000"]),
                vec![View(1, "queued create s1")],
            ]
            .joined(),
        ),
        (
            "throttled: the pause the cloud asks for (at most 30 s), else the doubling one",
            [
                vec![Submit(1, create(1), true)],
                refused(throttled(Some(3000)), &["pause 3000"]),
                refused(throttled(Some(90_000)), &["pause 30000"]),
                refused(throttled(None), &["pause 800"]),
                vec![View(1, "queued create s1")],
            ]
            .joined(),
        ),
        (
            "a transient failure may have happened: the cache is read again, the route decides",
            [
                first_sent(),
                vec![
                    On(
                        Event::Sent(Err(unavailable())),
                        &["cache invalidate", "wake r1"],
                    ),
                    View(1, "failed ServiceUnavailable"),
                    On(free(), &["sleep until woken"]),
                ],
            ]
            .joined(),
        ),
        (
            "a refusal for good goes to the route, the cache stays",
            [
                first_sent(),
                vec![
                    On(
                        Event::Sent(Err(error(
                            "InvalidNextHop.NotFound",
                            400,
                            ErrorClass::NeedsSpecChange,
                            None,
                        ))),
                        &["wake r1"],
                    ),
                    View(1, "failed InvalidNextHop.NotFound"),
                ],
            ]
            .joined(),
        ),
        (
            "the gateway gone: every accepted change is as done as it will be, its owner woken",
            [
                first_accepted(accepted()),
                vec![
                    On(free(), &["sleep until 100"]),
                    At(100),
                    On(due(), &["read status at Pacing"]),
                    On(Event::StatusRead(Err(gateway_gone())), &["wake r1"]),
                    View(1, "confirmed"),
                    On(free(), &["sleep until woken"]),
                ],
            ]
            .joined(),
        ),
    ];
    for (name, steps) in cases {
        Run::new(true).script(name, steps);
    }
}

/// Route 1's create accepted at 0 and its gateway seen active at 110: due for a read-back.
fn applied(answer: Event) -> Vec<Step> {
    [
        first_accepted(answer),
        status_read(&["sleep until 100"], 100, "active", &["wake peers"]),
    ]
    .joined()
}

/// One read-back at `at` that does not show route 1, and the next one it plans.
fn missed(at: u64, next: Commands) -> Vec<Step> {
    round(at, next, &["read list at Prompt"], listed(&[]), &[])
}

#[test]
fn a_change_the_list_does_not_show_is_read_for_at_the_gateways_pace_then_replayed_or_handed_back() {
    use Step::*;
    // Five reads that miss it, at the gateway's pace (its update time, at least 200 ms) times
    // the reads missed; not yet for `LIST_LAG_MAX` (it may be late): then one more at 30 s.
    let misses = || {
        [
            missed(110, &["sleep until 110"]),
            missed(310, &["sleep until 310"]),
            missed(710, &["sleep until 710"]),
            missed(1310, &["sleep until 1310"]),
            missed(2110, &["sleep until 2110"]),
            vec![
                View(1, "accepted"),
                At(30_000),
                On(free(), &["sleep until 30000"]),
                On(due(), &["read list at Prompt"]),
            ],
        ]
        .joined()
    };
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "shown late: confirmed by the read that shows it",
            [
                applied(accepted()),
                missed(110, &["sleep until 110"]),
                shown(310, &["sleep until 310"]),
            ]
            .joined(),
        ),
        (
            "a create whose answer did not name its entry is sent again with its token, first",
            [
                applied(accepted()),
                misses(),
                vec![
                    // Queued while the list was read: the replay still goes first.
                    Submit(2, publish(2), true),
                    On(listed(&[]), &[]),
                    View(1, "queued create s1"),
                    On(free(), &["sleep until 30000"]),
                    On(due(), &["send create s1 at Prompt"]),
                ],
            ]
            .joined(),
        ),
        (
            "a create answered with its entry counts only once the list shows that entry: an \
             older one under its key (deleted, but still listed by a lagging list) is not it",
            [
                applied(accepted_with(1)),
                round(
                    110,
                    &["sleep until 110"],
                    &["read list at Prompt"],
                    listed_made(1, 0),
                    &[],
                ),
                vec![View(1, "accepted")],
                shown(310, &["sleep until 310"]),
            ]
            .joined(),
        ),
        (
            "a create answered with its entry is not replayed (the replay would only repeat \
             that answer): its route re-plans from the list",
            [
                applied(accepted_with(1)),
                misses(),
                vec![On(listed(&[]), &["wake r1"]), View(1, "confirmed")],
            ]
            .joined(),
        ),
    ];
    for (name, steps) in cases {
        Run::new(true).script(name, steps);
    }
}

#[test]
fn reads_that_keep_failing_are_said_once_per_code_and_cleared_by_a_success() {
    use Step::*;
    let fail = |at: u64, plan: Commands, told: Commands| {
        round(
            at,
            plan,
            &["read list at Prompt"],
            Event::ListRead(Err(unavailable())),
            told,
        )
    };
    let steps = [
        applied(accepted()),
        // Retried after a doubling pause; the route is told once the reads failed `STALL_READS`
        // times over at least `STALL_AFTER`, and not again for the same code.
        fail(110, &["sleep until 110"], &[]),
        fail(310, &["sleep until 310"], &[]),
        fail(710, &["sleep until 710"], &[]),
        fail(1510, &["sleep until 1510"], &[]),
        fail(3110, &["sleep until 3110"], &[]),
        vec![View(1, "accepted")],
        fail(6310, &["sleep until 6310"], &["wake r1"]),
        vec![View(1, "accepted, stalled on list ServiceUnavailable")],
        fail(12_710, &["sleep until 12710"], &[]),
        shown(25_510, &["sleep until 25510"]),
    ]
    .joined();
    Run::new(true).script("list reads failing", steps);
}

#[test]
fn status_reads_that_keep_failing_hold_the_queue_and_say_so() {
    use Step::*;
    // The read it planned (at 100) is overdue: made at once.
    let fail = |at: u64, pause: Commands| {
        round(
            at,
            &["sleep until 100"],
            &["read status at Pacing"],
            Event::StatusRead(Err(unavailable())),
            pause,
        )
    };
    let steps = [
        first_accepted(accepted()),
        vec![Submit(2, create(2), true), On(free(), &["sleep until 100"])],
        vec![At(100), On(due(), &["read status at Pacing"])],
        vec![On(Event::StatusRead(Err(unavailable())), &["pause 200"])],
        fail(300, &["pause 400"]),
        fail(700, &["pause 800"]),
        fail(1500, &["pause 1600"]),
        fail(3100, &["pause 3200"]),
        vec![View(2, "queued create s2")],
        // Past `STALL_READS` and `STALL_AFTER`: the change waiting to be known applied and the
        // one waiting for its turn are told, in key order.
        fail(6300, &["wake r1,r2", "pause 6400"]),
        vec![
            View(1, "accepted, stalled on status ServiceUnavailable"),
            View(2, "queued create s2, stalled on status ServiceUnavailable"),
        ],
        fail(12_700, &["pause 12800"]),
        vec![
            At(25_500),
            On(free(), &["sleep until 100"]),
            On(due(), &["read status at Pacing"]),
            On(status("active"), &["wake peers"]),
            View(2, "queued create s2"),
            On(free(), &["sleep until 25500"]),
            On(due(), &["send create s2"]),
        ],
    ]
    .joined();
    Run::new(true).script("status reads failing", steps);
}

/// Which gateways share what they learn of their update time: one region, account and
/// specification.
#[test]
fn peers_are_one_region_account_and_spec() {
    let of = |region: &str, account: &str, spec: Option<&str>| {
        let mut s = scope();
        s.region_id = region.to_owned();
        s.credentials.account = account.to_owned();
        Peers::of(&s, spec.map(str::to_owned))
    };
    let base = of("cn-hangzhou", "team-a", Some("5M"));
    // (what, region, account, spec, shares with `base`)
    let rows = [
        ("all the same", "cn-hangzhou", "team-a", Some("5M"), true),
        ("other account", "cn-hangzhou", "team-b", Some("5M"), false),
        ("the operator's own", "cn-hangzhou", "", Some("5M"), false),
        ("another region", "cn-shanghai", "team-a", Some("5M"), false),
        ("another spec", "cn-hangzhou", "team-a", Some("10M"), false),
        ("no spec known", "cn-hangzhou", "team-a", None, false),
    ];
    for (what, region, account, spec, shared) in rows {
        assert_eq!(of(region, account, spec) == base, shared, "{what}");
    }
    let mut regions = Regions::new();
    regions.entry(base.clone()).or_default();
    regions
        .entry(of("cn-hangzhou", "team-b", Some("5M")))
        .or_default();
    regions.entry(base).or_default();
    assert_eq!(regions.len(), 2, "two accounts learn apart");
}

/// Route 2's create on a new gateway (id 1) of a region that proved 310 ms free: accepted at
/// 1000, its read-back due once that bound has passed.
fn lone_change_due() -> Vec<Step> {
    use Step::*;
    vec![
        At(1000),
        Submit(2, create(2), true),
        On(free(), &["sleep until 1000"]),
        On(due(), &["send create s2 at Prompt"]),
        On(accepted(), &["cache create s2", "learn peers"]),
        On(peers(), &["wake r2"]),
        // The region's bound plus the margin: the change counts as applied without a status
        // read, as on a gateway that learned its own bound, and the read-back goes at once.
        On(free(), &["sleep until 1315"]),
        At(1315),
        On(due(), &[]),
        On(free(), &["sleep until 1315"]),
        On(due(), &["read list at Prompt"]),
        At(1325),
    ]
}

#[test]
fn a_gateway_that_knows_only_its_regions_bound_trusts_it_and_reads_its_last_change_back() {
    use Step::*;
    // Gateway 0 learns the region's update time: free 310 ms after its change.
    let mut learned = Run::new(true);
    let learn = [
        first_accepted(accepted()),
        status_read(&["sleep until 100"], 100, "updating", &[]),
        status_read(&["sleep until 300"], 300, "active", &["wake peers"]),
    ]
    .joined();
    learned.script("the region learns", learn);
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            // Gateway 1 of the same region knows only that bound: no status read, the list
            // that shows its change confirms it.
            "the read-back confirms",
            vec![
                On(listed(&[2]), &["wake r2"]),
                View(2, "confirmed"),
                On(free(), &["sleep until woken"]),
            ],
        ),
        (
            // A list that does not show it yet (the cloud lists a change late) proves
            // nothing: the list is read again a moment later, and only one that shows it
            // makes the route's change confirmed.
            "a list that does not show it",
            vec![
                On(listed(&[]), &[]),
                View(2, "accepted"),
                On(free(), &["sleep until 1525"]),
                At(1525),
                On(due(), &["read list at Prompt"]),
                On(listed(&[2]), &["wake r2"]),
                View(2, "confirmed"),
            ],
        ),
    ];
    for (name, steps) in cases {
        let mut run = Run {
            queue: GatewayQueue::new(1, true),
            regions: learned.regions.clone(),
            start: learned.start,
            now: learned.now,
        };
        run.script(name, [lone_change_due(), steps].joined());
    }
}

#[test]
fn a_change_of_a_gateway_whose_reads_several_routes_share_is_not_lone() {
    use Step::*;
    // A burst's first change finds the gateway's queue empty too, but its read answered the
    // burst's other routes: it goes as a mutation, behind no lone change of another gateway.
    let shared = vec![
        SubmitShared(1, create(1), true),
        On(free(), &["sleep until 0"]),
        On(due(), &["send create s1"]),
        On(accepted(), &["cache create s1", "learn peers"]),
        On(peers(), &["wake r1"]),
    ];
    Run::new(true).script("a burst's first change", shared);
    Run::new(true).script("a lone change", first_sent());
}

/// A queued job holds one block of its own: its route's owner is shared with the reconcile that
/// submitted it (the queue's order and its map hold counts of one allocation, not copies of the
/// name and namespace), and its scope is the gateway's (not a copy of the region, gateway and
/// credentials strings per job).
#[test]
fn a_queued_job_shares_its_owner_and_the_gateways_scope() {
    use crate::controller::fixtures::retained;
    const N: usize = 2000;
    let owners: Vec<Owner> = (0..N).map(owner).collect();
    let creates: Vec<Mutation> = (0..N).map(create).collect();
    let scope = scope();
    let mut queue = GatewayQueue::new(0, true);
    let ((), heap) = retained(|| {
        for (o, m) in owners.iter().zip(creates) {
            assert!(queue.submit(o, &scope, m, Some(1), true));
        }
    });
    assert_eq!(queue.jobs.len(), N);
    // Per job its box; the shared scope and the tables are a few blocks more (each copied
    // owner would add its two strings twice, each copied scope three strings).
    let n = i64::try_from(N).unwrap();
    assert!(heap.blocks <= n + 64, "{heap:?} for {N} jobs");
    assert!(heap.bytes <= 300 * n, "{heap:?} for {N} jobs");
    // Other credentials on the same gateway get a scope of their own.
    let other = crate::controller::fixtures::scope_on("vpn-a", "secret:ns/s#id2");
    assert!(queue.submit(&owner(N), &other, create(N), Some(1), true));
    let job = |i: usize| &queue.jobs[&owner(i)].scope;
    assert!(Arc::ptr_eq(job(0), job(N - 1)));
    assert_eq!(job(N).credentials.key, "secret:ns/s#id2");
}

#[test]
fn a_queued_job_carries_no_room_for_an_answer_it_does_not_have() {
    // A backlog holds thousands of queued jobs (8,752 at the 10,000-route run's peak): the
    // answer of an accepted change (its entry and request id) is boxed apart.
    let job = std::mem::size_of::<Job>();
    let answer = std::mem::size_of::<Accepted>();
    assert!(
        job + answer <= 400,
        "a job is {job} bytes, an answer {answer}: the answer is carried inline"
    );
}

#[test]
fn a_lone_change_that_a_burst_joins_before_it_leaves_goes_at_the_bursts_class() {
    use Step::*;
    // A burst spread over many gateways: each gateway's first change was submitted alone (its
    // second route had not arrived yet). Once the watch shows the burst on the gateway, the
    // change waiting there is the burst's: it goes at `Mutation`, behind a change alone on
    // another gateway. One already on the wire keeps its class.
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "queued: sent at the burst's class",
            vec![
                Submit(1, create(1), true),
                Accompanied,
                On(free(), &["sleep until 0"]),
                On(due(), &["send create s1"]),
            ],
        ),
        (
            "not joined: sent at the lone class",
            vec![
                Submit(1, create(1), true),
                On(free(), &["sleep until 0"]),
                On(due(), &["send create s1 at Prompt"]),
            ],
        ),
    ];
    for (name, steps) in cases {
        Run::new(true).script(name, steps);
    }
}
