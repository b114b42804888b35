//! The fence's timing on a paused clock: the deadline the Lease gives, mutations refused after
//! it, a call in flight abandoned at it, a lost or unreadable Lease, and the gateway scheduler
//! keeping a fenced job queued until the fence opens again.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::*;
use crate::controller::fixtures::{publish, scope};
use crate::controller::job::{JobView, Owner};
use crate::controller::scheduler::Scheduler;
use alicloud_vpc_client::NOT_SENT;

const ME: &str = "vpn-pbr-operator-0";
const MARGIN: Duration = Duration::from_secs(4);

fn lease(holder: &str, renewed: SystemTime, duration_secs: i32) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            renew_time: Some(MicroTime(
                jiff::Timestamp::try_from(renewed).expect("timestamp"),
            )),
            lease_duration_seconds: Some(duration_secs),
            ..LeaseSpec::default()
        }),
        ..Lease::default()
    }
}

/// A cloud whose mutations take `call` each; counts the mutations that started. With
/// `release`, a mutation leaves (like the client: through the send gate) only at that instant,
/// the moment a wait in the rate limiter would end.
struct SlowCloud {
    call: Duration,
    release: Option<Instant>,
    started: AtomicUsize,
    sent_at: StdMutex<Vec<Instant>>,
}

impl SlowCloud {
    fn new(call: Duration) -> Arc<Self> {
        Arc::new(Self {
            call,
            release: None,
            started: AtomicUsize::new(0),
            sent_at: StdMutex::new(Vec::new()),
        })
    }

    fn due_at(release: Instant) -> Arc<Self> {
        Arc::new(Self {
            call: Duration::ZERO,
            release: Some(release),
            started: AtomicUsize::new(0),
            sent_at: StdMutex::new(Vec::new()),
        })
    }
}

impl CloudPort for SlowCloud {
    fn list_entries<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn gateway<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
        // Never asked in these tests.
        Box::pin(async {
            Err(fenced(
                "DescribeVpnGateway",
                ErrorClass::Transient,
                "unused",
            ))
        })
    }
    fn mutate<'a>(&'a self, _: &'a Scope, m: &'a Mutation) -> CloudFuture<'a, Accepted> {
        Box::pin(async move {
            if let Some(release) = self.release {
                tokio::time::sleep_until(release).await;
                if !alicloud_vpc_client::send_gate_open() {
                    return Err(CloudError::Api(Box::new(ApiError {
                        action: m.action(),
                        http_status: 0,
                        code: NOT_SENT.to_owned(),
                        message: "kept by the send gate".to_owned(),
                        request_id: None,
                        host_id: None,
                        recommend: None,
                        retry_after: None,
                        class: ErrorClass::Throttled,
                    })));
                }
            }
            self.started.fetch_add(1, Ordering::SeqCst);
            self.sent_at.lock().unwrap().push(Instant::now());
            tokio::time::sleep(self.call).await;
            Ok(Accepted {
                request_id: Some("rid".into()),
                entry: None,
            })
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_lease_gives_renew_time_plus_duration_minus_the_margin() {
    let wall = SystemTime::now();
    let now = Instant::now();
    // Renewed 2 s ago for 15 s: the leader stops 15 - 4 - 2 = 9 s from now.
    let l = lease(ME, wall - Duration::from_secs(2), 15);
    assert_eq!(
        lease_deadline(&l, ME, MARGIN, wall, now),
        Some(now + Duration::from_secs(9))
    );
    // Held by another replica, expired, or within the margin: no deadline.
    let other = lease("vpn-pbr-operator-1", wall, 15);
    assert_eq!(lease_deadline(&other, ME, MARGIN, wall, now), None);
    let old = lease(ME, wall - Duration::from_secs(12), 15);
    assert_eq!(lease_deadline(&old, ME, MARGIN, wall, now), None);
    assert_eq!(
        lease_deadline(&Lease::default(), ME, MARGIN, wall, now),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_fence_permits_until_its_deadline_and_follows_a_moved_one() {
    let fence = Fence::new();
    assert!(!fence.permits(), "closed until a deadline is set");
    let start = Instant::now();
    fence.open_until(start + Duration::from_secs(5));
    assert!(fence.permits());
    let waiter = {
        let f = fence.clone();
        tokio::spawn(async move {
            f.closed().await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A renewal seen at 3 s moves the deadline to 8 s.
    fence.open_until(start + Duration::from_secs(8));
    let closed_at = waiter.await.expect("waiter");
    assert_eq!(closed_at - start, Duration::from_secs(8));
    assert!(!fence.permits());
    fence.open_until(Instant::now() + Duration::from_secs(1));
    fence.close();
    assert!(!fence.permits());
}

#[tokio::test(start_paused = true)]
async fn no_mutation_leaves_after_the_deadline_and_a_call_in_flight_is_abandoned_at_it() {
    let slow = SlowCloud::new(Duration::from_secs(10));
    let fence = Fence::new();
    let cloud = FencedCloud::new(slow.clone(), fence.clone());
    let s = scope();

    // Closed: refused without a call, as a throttle the scheduler retries.
    let e = cloud.mutate(&s, &publish(1)).await.expect_err("fenced");
    assert_eq!(e.code(), FENCED);
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert_eq!(slow.started.load(Ordering::SeqCst), 0);

    // Open for 3 s; the call takes 10 s: abandoned at the deadline, outcome unknown.
    let start = Instant::now();
    fence.open_until(start + Duration::from_secs(3));
    let e = cloud.mutate(&s, &publish(2)).await.expect_err("abandoned");
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
    assert_eq!(e.code(), FENCED);
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(slow.started.load(Ordering::SeqCst), 1);

    // Reads are never fenced.
    assert!(cloud.list_entries(&s).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_read_its_lease_stops_before_another_can_take_it() {
    let fence = Fence::new();
    let stop = CancellationToken::new();
    let start = Instant::now();
    let wall_start = SystemTime::now();
    // The Lease reads well for 5 s (renewed at 0 s, duration 15 s), then the apiserver is
    // unreachable: every read fails.
    let reads = Arc::new(AtomicUsize::new(0));
    let task = {
        let fence = fence.clone();
        let stop = stop.clone();
        let reads = reads.clone();
        tokio::spawn(async move {
            watch_lease(
                move || {
                    reads.fetch_add(1, Ordering::SeqCst);
                    let elapsed = Instant::now() - start;
                    async move {
                        if elapsed < Duration::from_secs(5) {
                            Ok(lease(ME, wall_start, 15))
                        } else {
                            Err(kube::Error::Service(Box::new(std::io::Error::other(
                                "unreachable",
                            ))))
                        }
                    }
                },
                move || wall_start + (Instant::now() - start),
                ME,
                MARGIN,
                &fence,
                stop,
            )
            .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(fence.permits());
    fence.closed().await;
    let stopped = Instant::now() - start;
    // Another replica may take the Lease at renewTime + 15 s; this one stopped 4 s before.
    assert_eq!(stopped, Duration::from_secs(11));
    assert!(reads.load(Ordering::SeqCst) > 5, "kept reading");
    stop.cancel();
    task.await.expect("watch task");
    assert!(!fence.permits());
}

#[tokio::test(start_paused = true)]
async fn a_lease_held_by_another_replica_closes_the_fence_at_once() {
    let fence = Fence::new();
    fence.open_until(Instant::now() + Duration::from_secs(10));
    let stop = CancellationToken::new();
    let s = stop.clone();
    let f = fence.clone();
    let task = tokio::spawn(async move {
        watch_lease(
            || async { Ok(lease("vpn-pbr-operator-1", SystemTime::now(), 15)) },
            SystemTime::now,
            ME,
            MARGIN,
            &f,
            s,
        )
        .await;
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!fence.permits());
    stop.cancel();
    task.await.expect("watch task");
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_keeps_a_fenced_job_queued_and_sends_it_once_the_fence_opens() {
    let slow = SlowCloud::new(Duration::from_millis(5));
    let fence = Fence::new();
    let cloud: Arc<dyn CloudPort> = Arc::new(FencedCloud::new(slow.clone(), fence.clone()));
    let (sched, mut rx) = Scheduler::of_cloud(cloud);
    let owner = Owner::new("r1", Some("ns"));
    sched.submit(&owner, &scope(), publish(1), Some(1), true);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        slow.started.load(Ordering::SeqCst),
        0,
        "nothing sent while fenced"
    );
    assert!(matches!(
        sched.view(&owner, &scope().key()),
        Some(JobView::Queued { .. })
    ));
    let opened = Instant::now();
    fence.open_until(opened + Duration::from_secs(10));
    let woken = rx.recv().await.expect("wake");
    assert_eq!(woken, owner);
    assert!(matches!(
        sched.view(&owner, &scope().key()),
        Some(JobView::Accepted { .. })
    ));
    let sent = slow.sent_at.lock().unwrap()[0];
    assert!(
        sent - opened <= Duration::from_secs(2),
        "sent {:?} after the fence opened",
        sent - opened
    );
}

#[tokio::test(start_paused = true)]
async fn a_mutation_due_to_leave_at_the_deadline_is_never_sent() {
    let fence = Fence::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    fence.open_until(deadline);
    // The request is due to leave in the very tick the deadline passes (its wait in the rate
    // limiter ends then): the timer and the send race.
    let due = SlowCloud::due_at(deadline);
    let cloud = FencedCloud::new(due.clone(), fence.clone());
    let result = cloud.mutate(&scope(), &publish(1)).await;
    assert_eq!(
        due.started.load(Ordering::SeqCst),
        0,
        "sent after the deadline"
    );
    let e = result.expect_err("not sent");
    assert_eq!(e.code(), FENCED);
    assert_eq!(
        e.class(),
        ErrorClass::Throttled,
        "never sent, so safe to send again"
    );
    assert!(!fence.abandoned(), "nothing was in flight");
}

#[tokio::test(start_paused = true)]
async fn a_call_abandoned_in_flight_is_remembered() {
    let slow = SlowCloud::new(Duration::from_secs(10));
    let fence = Fence::new();
    let cloud = FencedCloud::new(slow.clone(), fence.clone());
    fence.open_until(Instant::now() + Duration::from_secs(3));
    assert!(!fence.abandoned());
    cloud
        .mutate(&scope(), &publish(1))
        .await
        .expect_err("abandoned");
    assert!(fence.abandoned(), "its request may still land");
}

#[tokio::test(start_paused = true)]
async fn the_controllers_wait_for_the_first_opening_and_a_past_deadline_does_not_count() {
    let fence = Fence::new();
    let start = Instant::now();
    // A deadline already passed (a Lease read long ago) is no opening.
    fence.open_until(start);
    let waiter = {
        let f = fence.clone();
        tokio::spawn(async move {
            f.opened().await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiter.is_finished(), "still closed: no wait may end");
    fence.open_until(Instant::now() + Duration::from_secs(10));
    let opened_at = waiter.await.expect("waiter");
    assert_eq!(opened_at - start, Duration::from_secs(2));
    // Open now: at once.
    tokio::time::timeout(Duration::ZERO, fence.opened())
        .await
        .expect("an open fence is open at once");
}
