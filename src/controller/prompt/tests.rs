use super::*;
use crate::controller::job::owner_of;

const A: &str = "vpn-a";
const B: &str = "vpn-b";

/// What a step is and what it must answer.
enum Step {
    /// A watch event: the route's gateway and whether it is settled.
    Note(&'static str, &'static str, bool),
    Gone(&'static str),
    /// A triggering event, with the scheduler's view of the gateway: taken or not.
    Trigger(&'static str, bool, bool),
    Wake(&'static str, bool),
    Start(&'static str, bool),
    /// Time passes.
    After(Duration),
}
use Step::*;

fn play(steps: &[Step]) {
    let mut a = Admissions::default();
    let mut now = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Note(key, gateway, settled) => a.note(key, gateway, settled),
            Gone(key) => a.gone(key),
            Trigger(key, idle, want) => {
                assert_eq!(
                    a.trigger(key, now, |_| idle),
                    want,
                    "step {i}: trigger {key}"
                );
            }
            Wake(key, want) => assert_eq!(a.wake(key, now), want, "step {i}: wake {key}"),
            Start(key, want) => assert_eq!(a.start(key, now), want, "step {i}: start {key}"),
            After(d) => now += d,
        }
    }
}

#[test]
fn a_change_alone_on_an_idle_gateway_is_taken_and_a_burst_is_not() {
    play(&[
        // A burst on gateway A: none of its routes is alone.
        Note("ns/b1", A, false),
        Note("ns/b2", A, false),
        Note("ns/b3", A, false),
        Trigger("ns/b1", true, false),
        Trigger("ns/b2", true, false),
        Wake("ns/b3", false),
        // A single change on gateway B, which the scheduler holds nothing for: taken at once.
        Note("ns/s", B, false),
        Trigger("ns/s", true, true),
        // Once: a second trigger before its reconcile starts adds nothing.
        Trigger("ns/s", true, false),
        Start("ns/s", true),
        // Its wake-ups (create accepted, read back) go to the lane too.
        Wake("ns/s", true),
        Start("ns/s", true),
        // Settled: nothing more for the lane.
        Note("ns/s", B, true),
        Wake("ns/s", false),
    ]);
}

#[test]
fn a_gateway_the_scheduler_holds_changes_for_is_not_idle() {
    play(&[
        Note("ns/s", B, false),
        Trigger("ns/s", false, false),
        Wake("ns/s", false),
    ]);
}

#[test]
fn a_routes_turn_is_skipped_once_another_route_joins_its_gateway() {
    play(&[
        // A burst's first route of a gateway is alone for a moment and taken ...
        Note("ns/b1", A, false),
        Trigger("ns/b1", true, true),
        // ... and skipped when its turn in the lane comes, the burst having arrived.
        Note("ns/b2", A, false),
        Start("ns/b1", false),
        Wake("ns/b1", false),
        // The others settle or go: alone again, its wakes go to the lane again.
        Note("ns/b2", A, true),
        Wake("ns/b1", true),
        Start("ns/b1", true),
        Gone("ns/b1"),
        Wake("ns/b1", false),
    ]);
}

#[test]
fn a_route_stuck_past_its_time_is_the_controllers_alone() {
    play(&[
        Note("ns/s", B, false),
        Trigger("ns/s", true, true),
        Start("ns/s", true),
        After(PROMPT_FOR),
        Wake("ns/s", false),
        // A new change of it (an edit) is taken again.
        Trigger("ns/s", true, true),
        Start("ns/s", true),
    ]);
}

#[test]
fn a_route_moved_to_another_gateway_counts_there_only() {
    play(&[
        Note("ns/x", A, false),
        Note("ns/y", A, false),
        Trigger("ns/y", true, false),
        // x moves to B: y is alone on A, x on B.
        Note("ns/x", B, false),
        Trigger("ns/y", true, true),
        Trigger("ns/x", true, true),
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
    assert!(
        a.trigger("ns/kept", now, |_| true),
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
    let (lane, rx) = PromptLane::with_idle(|_| true);
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let runs = ran.clone();
    tokio::spawn(drive(
        lane.clone(),
        rx,
        CancellationToken::new(),
        move |owner: Owner| {
            let runs = runs.clone();
            async move { lock(&runs).push(owner.name.clone()) }
        },
    ));
    // A burst of 1,000 new routes on gateway A (the controller's queue holds them all), then
    // a new route on gateway B.
    let new = |name: &str, gateway: &str| route_with(name, gateway, serde_json::Value::Null, false);
    for i in 0..1000 {
        let r = new(&format!("b{i}"), A);
        lane.note(&r);
        lane.trigger(&r);
    }
    let single = new("single", B);
    lane.note(&single);
    lane.trigger(&single);
    tokio::time::sleep(Duration::from_millis(1)).await;
    // The burst's first route was alone for a moment and taken, but skipped when its turn came.
    assert_eq!(
        *lock(&ran),
        ["single"],
        "only the lone change ran in the lane"
    );
    // Its wake-ups (create accepted, read back) go ahead too; the burst's do not.
    lane.wake(&owner_of(&single));
    lane.wake(&owner_of(&new("b7", A)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(*lock(&ran), ["single", "single"]);
}

#[tokio::test(start_paused = true)]
async fn the_lane_takes_no_work_after_shutdown_and_ends() {
    let (lane, rx) = PromptLane::with_idle(|_| true);
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let runs = ran.clone();
    let shutdown = CancellationToken::new();
    let driver = tokio::spawn(drive(
        lane.clone(),
        rx,
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
