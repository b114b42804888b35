use super::*;
use crate::controller::job::owner_of;

const A: &str = "vpn-a";
const B: &str = "vpn-b";

/// What a step is and what it must answer.
enum Step {
    /// A watch event: the route's gateway and whether it is settled.
    Note(&'static str, &'static str, bool),
    /// A watch event of an unsettled route: whether a burst joined a route alone on its
    /// gateway (the scheduler is told).
    Joins(&'static str, &'static str, bool),
    Gone(&'static str),
    /// A triggering event, with the scheduler's view of the gateway (idle or not): the lane
    /// that takes it.
    Trigger(&'static str, bool, Option<Part>),
    Wake(&'static str, Option<Part>),
    /// The route's turn in a part of the lane: the part it runs in (or moves to).
    Start(&'static str, Part, Option<Part>),
    /// Time passes.
    After(Duration),
}
use Step::*;

const NO: Option<Part> = None;
const LONE: Option<Part> = Some(Part::Lone);
const OPENS: Option<Part> = Some(Part::Opener);

fn play(steps: &[Step]) {
    let mut a = Admissions::default();
    let mut now = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Note(key, gateway, settled) => {
                a.note(key, gateway, settled);
            }
            Joins(key, gateway, want) => {
                assert_eq!(a.note(key, gateway, false), want, "step {i}: note {key}");
            }
            Gone(key) => a.gone(key),
            Trigger(key, idle, want) => {
                assert_eq!(
                    a.trigger(key, now, |_| idle),
                    want,
                    "step {i}: trigger {key}"
                );
            }
            Wake(key, want) => assert_eq!(a.wake(key, now), want, "step {i}: wake {key}"),
            Start(key, part, want) => {
                assert_eq!(a.start(key, part, now), want, "step {i}: start {key}");
            }
            After(d) => now += d,
        }
    }
}

#[test]
fn a_change_alone_on_an_idle_gateway_is_lone_and_a_burst_sends_one_opener() {
    play(&[
        // A burst on gateway A: none of its routes is alone; the first triggered while the
        // scheduler holds nothing for A opens it, the others are the controller's.
        Note("ns/b1", A, false),
        Note("ns/b2", A, false),
        Note("ns/b3", A, false),
        Trigger("ns/b1", true, OPENS),
        Trigger("ns/b2", true, NO),
        Wake("ns/b3", NO),
        Start("ns/b1", Part::Opener, OPENS),
        // The opener's wake-ups (create accepted, read back) go to the lane too.
        Wake("ns/b1", OPENS),
        Start("ns/b1", Part::Opener, OPENS),
        // Settled: the gateway may be opened again, but only while the scheduler holds
        // nothing for it.
        Note("ns/b1", A, true),
        Wake("ns/b1", NO),
        Trigger("ns/b2", false, NO),
        Trigger("ns/b2", true, OPENS),
        // A single change on gateway B, which the scheduler holds nothing for: taken at once.
        Note("ns/s", B, false),
        Trigger("ns/s", true, LONE),
        // Once: a second trigger before its reconcile starts adds nothing.
        Trigger("ns/s", true, NO),
        Start("ns/s", Part::Lone, LONE),
        // Its wake-ups (create accepted, read back) go to the lane too.
        Wake("ns/s", LONE),
        Start("ns/s", Part::Lone, LONE),
        // Settled: nothing more for the lane.
        Note("ns/s", B, true),
        Wake("ns/s", NO),
    ]);
}

#[test]
fn a_gateway_the_scheduler_holds_changes_for_is_not_idle() {
    play(&[
        Note("ns/s", B, false),
        Trigger("ns/s", false, NO),
        Wake("ns/s", NO),
        Note("ns/b1", A, false),
        Note("ns/b2", A, false),
        Trigger("ns/b1", false, NO),
        Wake("ns/b1", NO),
    ]);
}

#[test]
fn a_gateway_has_one_opener_until_it_settles_goes_or_its_time_is_up() {
    play(&[
        Note("ns/a1", A, false),
        Note("ns/a2", A, false),
        Note("ns/c1", B, false),
        Note("ns/c2", B, false),
        // One opener per gateway, each gateway its own.
        Trigger("ns/a1", true, OPENS),
        Trigger("ns/c2", true, OPENS),
        Start("ns/a1", Part::Opener, OPENS),
        Start("ns/c2", Part::Opener, OPENS),
        Trigger("ns/a2", true, NO),
        Trigger("ns/c1", true, NO),
        // Deleted: the gateway may be opened again.
        Gone("ns/a1"),
        Note("ns/a3", A, false),
        Trigger("ns/a2", true, OPENS),
        Start("ns/a2", Part::Opener, OPENS),
        // Past its time the opener is the controller's alone, and another may open.
        After(PROMPT_FOR),
        Wake("ns/c2", NO),
        Start("ns/c2", Part::Opener, NO),
        Trigger("ns/c1", true, OPENS),
    ]);
}

#[test]
fn a_route_taken_alone_moves_to_the_opener_part_once_a_burst_joins_its_gateway() {
    play(&[
        // A burst's first route of a gateway is alone for a moment and taken ...
        Note("ns/b1", A, false),
        Trigger("ns/b1", true, LONE),
        // ... the burst arrives: b1 opens the gateway, and the next is the controller's ...
        Note("ns/b2", A, false),
        Trigger("ns/b2", true, NO),
        // ... and at its turn in the lone part b1 moves to the opener part.
        Start("ns/b1", Part::Lone, OPENS),
        Start("ns/b1", Part::Opener, OPENS),
        Wake("ns/b1", OPENS),
        Start("ns/b1", Part::Opener, OPENS),
        // The others settle or go: alone again, its wakes go to the lone part again.
        Note("ns/b2", A, true),
        Wake("ns/b1", LONE),
        Start("ns/b1", Part::Lone, LONE),
        Gone("ns/b1"),
        Wake("ns/b1", NO),
    ]);
}

#[test]
fn a_route_stuck_past_its_time_is_the_controllers_alone() {
    play(&[
        Note("ns/s", B, false),
        Trigger("ns/s", true, LONE),
        Start("ns/s", Part::Lone, LONE),
        After(PROMPT_FOR),
        Wake("ns/s", NO),
        // A new change of it (an edit) is taken again.
        Trigger("ns/s", true, LONE),
        Start("ns/s", Part::Lone, LONE),
    ]);
}

#[test]
fn a_route_moved_to_another_gateway_counts_there_only() {
    play(&[
        Note("ns/x", A, false),
        Note("ns/y", A, false),
        Trigger("ns/y", true, OPENS),
        Start("ns/y", Part::Opener, OPENS),
        // x moves to B: y is alone on A, x on B.
        Note("ns/x", B, false),
        Trigger("ns/y", true, LONE),
        Trigger("ns/x", true, LONE),
    ]);
}

#[test]
fn a_route_deleted_while_the_watch_was_down_is_forgotten_at_the_relist() {
    let mut a = Admissions::default();
    a.note("ns/gone", A, false);
    a.note("ns/kept", A, false);
    a.note("other/x", A, false);
    let listed = HashSet::from(["ns/kept".to_owned()]);
    // The watch of namespace ns says nothing of other namespaces.
    a.relisted(Some("ns"), &listed);
    assert_eq!(a.per_gateway.get(A), Some(&2));
    a.relisted(None, &listed);
    let now = Instant::now();
    assert_eq!(
        a.trigger("ns/kept", now, |_| true),
        LONE,
        "alone once the others are gone"
    );
}

#[test]
fn a_burst_leaves_no_room_behind() {
    let mut a = Admissions::default();
    for i in 0..10_000 {
        a.note(&format!("ns/r{i}"), A, false);
    }
    for i in 0..10_000 {
        a.note(&format!("ns/r{i}"), A, true);
    }
    assert!(
        a.unsettled.capacity() <= KEEP_ROOM * 2,
        "{}",
        a.unsettled.capacity()
    );
    assert!(a.per_gateway.is_empty());
}

/// A route on `gateway` at generation 2 with `status`, being deleted or not.
fn route_with(name: &str, gateway: &str, status: serde_json::Value, deleting: bool) -> VpnPbrRoute {
    let mut metadata = serde_json::json!({"name": name, "namespace": "ns", "generation": 2});
    if deleting {
        metadata["deletionTimestamp"] = "2026-12-07T00:00:00Z".into();
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": metadata,
        "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": gateway, "routeSource": "10.0.0.0/24",
                 "routeDest": "10.1.0.0/24", "nextHop": "vco-1", "weight": 100, "publishVpc": false},
        "status": status,
    }))
    .expect("route")
}

#[test]
fn settled_means_acted_on_at_this_generation_with_no_change_under_way() {
    let reconciling = |status: &str| {
        serde_json::json!({"observedGeneration": 2, "conditions": [{"type": "Reconciling",
            "status": status, "reason": "Creating", "lastTransitionTime": "2026-12-07T00:00:00Z"}]})
    };
    for (status, deleting, want, why) in [
        (serde_json::Value::Null, false, false, "never acted on"),
        (reconciling("True"), false, false, "a change under way"),
        (
            serde_json::json!({"observedGeneration": 1}),
            false,
            false,
            "an older generation",
        ),
        (
            serde_json::json!({"observedGeneration": 2}),
            false,
            true,
            "acted on, nothing under way",
        ),
        (reconciling("False"), false, true, "Reconciling false"),
        (
            serde_json::json!({"observedGeneration": 2}),
            true,
            false,
            "being deleted",
        ),
    ] {
        assert_eq!(
            settled(&route_with("r", A, status, deleting)),
            want,
            "{why}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_single_change_is_reconciled_ahead_of_a_queued_burst() {
    let (lane, queues) = PromptLane::with(|_| true, |_| {});
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let runs = ran.clone();
    tokio::spawn(drive(
        lane.clone(),
        queues,
        CancellationToken::new(),
        move |owner: Owner| {
            let runs = runs.clone();
            async move {
                lock(&runs).push(owner.name.clone());
                // The bursts' openers wait at a busy account's rate limiter for good.
                if owner.name.starts_with('b') {
                    std::future::pending::<()>().await;
                }
            }
        },
    ));
    // Bursts of 1,000 new routes on gateways A and C (the controller's queue holds them all),
    // then a new route on gateway B.
    const C: &str = "vpn-c";
    let new = |name: &str, gateway: &str| route_with(name, gateway, serde_json::Value::Null, false);
    for i in 0..1000 {
        for (prefix, gateway) in [("ba", A), ("bc", C)] {
            let r = new(&format!("{prefix}{i}"), gateway);
            lane.note(&r);
            lane.trigger(&r);
        }
    }
    let single = new("single", B);
    lane.note(&single);
    lane.trigger(&single);
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Each burst's first route was alone for a moment and taken; at its turn its gateway's
    // burst had arrived, and it moved to the opener part. The openers fill their part of the
    // lane and the lone change still runs.
    let mut got = lock(&ran).clone();
    got.sort();
    assert_eq!(got, ["ba0", "bc0", "single"]);
    // Its wake-ups (create accepted, read back) go ahead too; the burst's do not.
    lane.wake(&owner_of(&single));
    lane.wake(&owner_of(&new("ba7", A)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let singles = lock(&ran).iter().filter(|n| *n == "single").count();
    assert_eq!((singles, lock(&ran).len()), (2, 4));
}

#[tokio::test(start_paused = true)]
async fn the_lane_takes_no_work_after_shutdown_and_ends() {
    let (lane, queues) = PromptLane::with(|_| true, |_| {});
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let runs = ran.clone();
    let shutdown = CancellationToken::new();
    let driver = tokio::spawn(drive(
        lane.clone(),
        queues,
        shutdown.clone(),
        move |owner: Owner| {
            let runs = runs.clone();
            async move { lock(&runs).push(owner.name.clone()) }
        },
    ));
    let new = |name: &str| route_with(name, B, serde_json::Value::Null, false);
    let before = new("before");
    lane.note(&before);
    lane.trigger(&before);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(*lock(&ran), ["before"]);
    shutdown.cancel();
    let after = new("after");
    lane.note(&after);
    lane.trigger(&after);
    tokio::time::timeout(Duration::from_secs(1), driver)
        .await
        .expect("the driver ends at shutdown")
        .expect("no panic");
    assert_eq!(*lock(&ran), ["before"], "nothing taken after shutdown");
}

#[test]
fn the_scheduler_hears_once_when_a_burst_joins_a_route_alone_on_its_gateway() {
    play(&[
        // A burst spread over gateways: each gateway's first route is alone until its second
        // arrives, which is told once per gateway.
        Joins("ns/a1", A, false),
        Joins("ns/b1", B, false),
        Joins("ns/a2", A, true),
        Joins("ns/a3", A, false),
        Joins("ns/b2", B, true),
        // Another event of a route already counted tells nothing.
        Joins("ns/a2", A, false),
        // Settled routes leave; a new route alone, then joined again, is told again.
        Note("ns/b1", B, true),
        Note("ns/b2", B, true),
        Joins("ns/b3", B, false),
        Joins("ns/b4", B, true),
        // A route that moves to another gateway joins the one there.
        Note("ns/a1", A, true),
        Note("ns/a3", A, true),
        Joins("ns/b3", A, true),
    ]);
}
