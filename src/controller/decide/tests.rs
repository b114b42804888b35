//! Table tests of the decision core: every row of the README's reason table and every branch
//! of `decide` and `failure`.

use std::sync::Arc;

use alicloud_vpc_client::{ApiError, CloudError, Priority, classify};
use serde_json::json;

use super::*;
use crate::api::v1alpha1::{ADOPT_ANNOTATION, OPERATOR_ACCOUNT};
use crate::controller::error::Error;
use crate::controller::fixtures;
use crate::controller::job::Stall;
use crate::controller::model::Accepted;
use crate::controller::plan;

fn route(extra: serde_json::Value) -> VpnPbrRoute {
    let mut v = json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u1", "generation": 2,
                     "finalizers": [FINALIZER]},
        "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a", "routeSource": "10.0.0.0/24",
                 "routeDest": "10.1.0.0/16", "nextHop": "vco-1", "weight": 100, "publishVpc": false}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("route")
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn entry(weight: i32, state: &str) -> Entry {
    Entry {
        state: state.into(),
        create_time: 1_700_000_000_000,
        ..fixtures::normal_entry("10.0.0.0/24", "10.1.0.0/16", "vco-1", weight)
    }
}

/// `createTime` of `entry(..)` as status records it.
const T0: &str = "2023-11-14T22:13:20.000Z";

/// `route(json!({}))` once its entry exists: status records the entry's `createTime`.
fn existing() -> VpnPbrRoute {
    route(json!({"status": {"createTime": T0}}))
}

fn facts() -> GatewayFacts {
    fixtures::gateway(true)
}

fn cloud_error(status: u16, code: &str) -> Arc<CloudError> {
    Arc::new(CloudError::Api(Box::new(ApiError {
        action: "CreateVpnPbrRouteEntry",
        http_status: status,
        code: code.into(),
        message: "m".into(),
        request_id: Some("req-1".into()),
        host_id: None,
        recommend: None,
        retry_after: None,
        class: classify(status, code),
    })))
}

fn create_mutation(token: &str) -> Mutation {
    plan::create(&route(json!({})).spec, &facts(), token)
}

/// `mutation` queued at the routes' generation (2), not stalled.
fn queued(mutation: Mutation) -> JobView {
    JobView::Queued {
        mutation,
        generation: Some(2),
        stalled: None,
    }
}

/// A create the cloud refused with `code` (HTTP 400).
fn failed_create(code: &str) -> JobView {
    JobView::Failed {
        error: cloud_error(400, code),
        create: true,
    }
}

/// The token a new create of `route(json!({}))` writes: it names the create.
fn fresh_token() -> String {
    plan::create_token(&create_mutation(""), "tok-new")
}

/// An observation of `r` with nothing read, no job, no claim.
fn obs(r: &VpnPbrRoute) -> Observation<'_> {
    Observation {
        route: r,
        older_claim: None,
        publish_conflict: None,
        publish_sharers: &[],
        job: None,
        recently_verified: false,
        cloud: CloudRead::NotRead,
        new_token: "tok-new",
        credentials_fallback: None,
        account: AccountRead::Known(ACCOUNT),
        held_by: AccountGate::Open {
            name: OPERATOR_ACCOUNT,
            adoption: true,
        },
    }
}

fn reasons(d: &Decision) -> (Option<String>, Option<String>) {
    let s = d.status.as_ref();
    (
        s.and_then(|r| r.ready.as_ref())
            .map(|c| c.reason.to_string()),
        s.and_then(|r| r.synced.as_ref())
            .map(|c| c.reason.to_string()),
    )
}

fn event_reasons(d: &Decision) -> Vec<String> {
    d.events.iter().map(|e| e.reason.to_string()).collect()
}

const DELETING: &str = "2026-01-01T00:00:00Z";

#[test]
fn gates_make_no_call_and_drop_queued_work() {
    let queued = queued(create_mutation("t"));
    let invalid = route(json!({"spec": {"weight": 50}}));
    let paused = route(json!({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}));
    let observe = route(json!({"spec": {"managementPolicy": "ObserveOnly"}}));
    let plain = route(json!({}));
    struct Row<'a> {
        name: &'a str,
        obs: Observation<'a>,
        ready: Option<&'a str>,
        synced: Option<&'a str>,
        next: Next,
    }
    let rows = [
        Row {
            name: "invalid spec",
            obs: Observation {
                job: Some(&queued),
                ..obs(&invalid)
            },
            ready: Some("InvalidSpec"),
            synced: Some("InvalidSpec"),
            next: Next::AwaitChange,
        },
        Row {
            name: "paused",
            obs: Observation {
                job: Some(&queued),
                ..obs(&paused)
            },
            ready: None,
            synced: Some("Paused"),
            next: Next::AwaitChange,
        },
        Row {
            name: "duplicate",
            obs: Observation {
                job: Some(&queued),
                older_claim: Some("ns/older"),
                ..obs(&plain)
            },
            ready: Some("DuplicateRoute"),
            synced: Some("DuplicateRoute"),
            next: Next::Resync,
        },
        Row {
            name: "observe only, before the read",
            obs: Observation {
                job: Some(&queued),
                ..obs(&observe)
            },
            ready: None,
            synced: None,
            next: Next::Read(Freshness::Recent),
        },
    ];
    for row in rows {
        let d = decide(&row.obs);
        assert_eq!(
            reasons(&d),
            (row.ready.map(Into::into), row.synced.map(Into::into)),
            "{}",
            row.name
        );
        assert_eq!(
            d.job,
            Some(JobOp::Drop),
            "{}: queued work is dropped",
            row.name
        );
        assert_eq!(d.next, Some(row.next), "{}", row.name);
        assert!(d.failure.is_none(), "{}", row.name);
    }
    let dup = decide(&Observation {
        older_claim: Some("ns/older"),
        ..obs(&plain)
    });
    assert_eq!(
        event_reasons(&dup),
        ["DuplicateRoute"],
        "new duplicate: a warning"
    );
    let already = route(
        json!({"status": {"conditions": [{"type": "Ready", "status": "False",
        "reason": "DuplicateRoute", "message": "m", "lastTransitionTime": "t"}]}}),
    );
    let again = decide(&Observation {
        older_claim: Some("ns/older"),
        ..obs(&already)
    });
    assert!(again.events.is_empty(), "no repeated warning");
}

#[test]
fn finalizer_is_added_for_full_management_only() {
    let bare = route(json!({"metadata": {"finalizers": null}}));
    assert!(decide(&obs(&bare)).add_finalizer);
    let observe = route(json!({"metadata": {"finalizers": null},
        "spec": {"managementPolicy": "ObserveOnly"}}));
    assert!(!decide(&obs(&observe)).add_finalizer);
    assert!(!decide(&obs(&route(json!({})))).add_finalizer);
}

#[test]
fn absent_entry_is_created_with_a_token_written_first() {
    let r = route(json!({}));
    let d = with_entries(&r, &[]);
    assert_eq!(
        reasons(&d),
        (Some("Creating".into()), Some("Creating".into()))
    );
    let report = d.status.as_ref().expect("status");
    assert_eq!(report.client_token, Some(Some(fresh_token())));
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation(&fresh_token()))));
    assert_eq!(d.next, Some(Next::Wake));
    assert!(d.credentials_worked);

    // A token in status is reused, and nothing is written again.
    let with_token = route(
        json!({"status": {"clientToken": "tok-old", "accountId": ACCOUNT,
        "account": OPERATOR_ACCOUNT}}),
    );
    let d = with_entries(&with_token, &[]);
    assert!(d.status.is_none());
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation("tok-old"))));
}

#[test]
fn the_read_comes_first_and_its_outcome_decides() {
    let r = route(json!({}));
    assert_eq!(decide(&obs(&r)).next, Some(Next::Read(Freshness::Create)));
    let pending = decide(&Observation {
        cloud: CloudRead::Pending,
        ..obs(&r)
    });
    assert_eq!(
        pending.next,
        Some(Next::AwaitRead),
        "no job of its own: the read wakes it when it ends"
    );
    assert!(pending.status.is_none() && pending.job.is_none());
    let err = cloud_error(503, "ServiceUnavailable");
    let failed = decide(&Observation {
        cloud: CloudRead::Failed(&err),
        ..obs(&r)
    });
    assert!(matches!(
        failed.failure,
        Some(Failure::Cloud { op: "read", .. })
    ));
    assert_eq!(failed.next, Some(Next::Backoff));
    // Seen in sync a moment ago, no job: no read at all.
    let quiet = decide(&Observation {
        recently_verified: true,
        ..obs(&r)
    });
    assert_eq!(quiet.next, Some(Next::Resync));
}

#[test]
fn in_sync_reports_available_and_the_right_event() {
    let e = [entry(100, "normal")];
    let ready = |r: &VpnPbrRoute, job: Option<&JobView>| with_job_and_entries(r, job, &e);
    // A create's answer names the entry it made.
    let accepted = JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-9".into()),
            entry: Some(e[0].clone()),
        },
        confirmed: true,
        create: true,
        stalled: None,
    };
    let ours = route(json!({"status": {"clientToken": "t"}}));
    let was_ready = route(json!({"status": {"createTime": T0,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Available",
        "message": "", "lastTransitionTime": "t"}]}}));
    // Only a token, no recorded entry: the create is replayed to prove the entry is ours.
    let replay = ready(&ours, None);
    assert!(
        matches!(&replay.job, Some(JobOp::Submit(Mutation::Create { client_token, .. })) if client_token == "t"),
        "{:?}",
        replay.job
    );
    let rows: [(&str, &VpnPbrRoute, Option<&JobView>, &[&str]); 3] = [
        ("our create accepted", &ours, Some(&accepted), &["Created"]),
        (
            "our change accepted",
            &was_ready,
            Some(&accepted),
            &["Updated"],
        ),
        ("resync, nothing new", &was_ready, None, &[]),
    ];
    for (name, r, job, events) in rows {
        let d = ready(r, job);
        assert_eq!(
            reasons(&d),
            (Some("Available".into()), Some("Synced".into())),
            "{name}"
        );
        assert_eq!(event_reasons(&d), events, "{name}");
        assert!(d.verified, "{name}");
        assert_eq!(d.next, Some(Next::Resync), "{name}");
        assert_eq!(
            d.job,
            job.map(|_| JobOp::Drop),
            "{name}: a recorded outcome is dropped"
        );
        let report = d.status.expect("status");
        assert_eq!(report.client_token, Some(None), "{name}: token cleared");
        assert_eq!(report.entry, Some(e[0].clone()));
    }
}

#[test]
fn a_queued_change_follows_the_spec() {
    let r = existing();
    // Queued for weight 0 at generation 1; the spec (generation 2) is back at 100.
    let stale = JobView::Queued {
        mutation: Mutation::ModifyAttribute {
            route: plan::route_id(&r.spec),
            weight: 100,
            priority: 10,
            new_weight: Some(0),
            new_priority: None,
        },
        generation: Some(1),
        stalled: None,
    };
    let before_read = with_job(&r, &stale);
    assert_eq!(
        before_read.job,
        Some(JobOp::Drop),
        "stale: dropped before the read"
    );
    assert_eq!(before_read.next, Some(Next::Read(Freshness::Recent)));
    let current = queued(create_mutation("t"));
    let waiting = with_job(&r, &current);
    assert_eq!(
        (waiting.job, waiting.next),
        (Some(JobOp::Keep), Some(Next::Wake)),
        "current: kept, waiting for its turn without a read"
    );
    let e = [entry(100, "normal")];
    let reverted = with_job_and_entries(&r, Some(&stale), &e);
    assert_eq!(
        reverted.job,
        Some(JobOp::Drop),
        "in sync: the queued change goes"
    );
    let e0 = [entry(0, "normal")];
    let changed = with_job_and_entries(&r, Some(&stale), &e0);
    assert!(
        matches!(
            &changed.job,
            Some(JobOp::Submit(Mutation::ModifyAttribute {
                new_weight: Some(100),
                ..
            }))
        ),
        "replaced by the change the spec wants: {:?}",
        changed.job
    );
    let inflight = decide(&Observation {
        job: Some(&JobView::InFlight),
        ..obs(&route(
            json!({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}),
        ))
    });
    assert_eq!(
        inflight.job,
        Some(JobOp::Drop),
        "paused asks to drop; the executor waits if it is on the wire"
    );
}

#[test]
fn job_outcomes() {
    let r = route(json!({}));
    let unconfirmed = JobView::Accepted {
        accepted: Accepted {
            request_id: None,
            entry: None,
        },
        confirmed: false,
        create: true,
        stalled: None,
    };
    for job in [&JobView::InFlight, &unconfirmed] {
        let d = with_job(&r, job);
        assert_eq!((d.job, d.next), (Some(JobOp::Keep), Some(Next::Wake)));
    }
    // A create's answer is recorded while the list has yet to show it.
    let answered = JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-3".into()),
            entry: Some(entry(100, "normal")),
        },
        confirmed: false,
        create: true,
        stalled: None,
    };
    let d = with_job(&r, &answered);
    assert_eq!(
        (d.job.clone(), d.next),
        (Some(JobOp::Keep), Some(Next::Wake))
    );
    assert_eq!(
        reasons(&d),
        (Some("Creating".into()), Some("Creating".into()))
    );
    let report = d.status.expect("status");
    assert_eq!(report.entry, Some(entry(100, "normal")));
    assert_eq!(report.last_request_id.as_deref(), Some("req-3"));
    let refused = failed_create("InvalidNextHop.NotFound");
    let d = with_job(&r, &refused);
    assert!(
        matches!(d.failure, Some(Failure::CreateRefused(_))),
        "refused for what the spec names: its token goes, so the spec can be corrected"
    );
    assert_eq!(d.job, Some(JobOp::Drop));
    let busy_modify = JobView::Failed {
        error: cloud_error(400, "VpnRouteEntry.BackupRoute"),
        create: false,
    };
    let d = with_job(&r, &busy_modify);
    assert!(matches!(
        d.failure,
        Some(Failure::Cloud { op: "mutation", .. })
    ));
    let exists = failed_create("VpnRouteEntry.AlreadyExists");
    let d = with_job(&r, &exists);
    assert_eq!(
        d.next,
        Some(Next::Read(Freshness::Now)),
        "look again, not cached"
    );
    let e = [entry(100, "normal")];
    let d = with_job_and_entries(&r, Some(&exists), &e);
    assert_eq!(
        event_reasons(&d),
        ["AlreadyExists"],
        "someone else's: not taken"
    );
    assert_eq!(d.job, Some(JobOp::Drop));
}

/// The decision for `r` with the gateway listing `entries`.
fn with_entries(r: &VpnPbrRoute, entries: &[Entry]) -> Decision {
    with_job_and_entries(r, None, entries)
}

/// The decision for `r` with `job` and nothing read.
fn with_job(r: &VpnPbrRoute, job: &JobView) -> Decision {
    decide(&Observation {
        job: Some(job),
        ..obs(r)
    })
}

/// The decision for `r` with `job` (if any) and the gateway listing `entries`.
fn with_job_and_entries(r: &VpnPbrRoute, job: Option<&JobView>, entries: &[Entry]) -> Decision {
    let f = facts();
    decide(&Observation {
        job,
        cloud: CloudRead::Ready { facts: &f, entries },
        ..obs(r)
    })
}

#[test]
fn an_entry_made_elsewhere_is_adopted_only_by_consent() {
    let same = [entry(100, "normal")];
    let other = [entry(0, "normal")];
    let plain = route(json!({}));
    let consent = route(json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}));

    let d = with_entries(&plain, &same);
    assert_eq!(
        reasons(&d),
        (Some("AlreadyExists".into()), Some("AlreadyExists".into()))
    );
    assert!(!matches!(d.job, Some(JobOp::Submit(_))));
    assert!(d.status.as_ref().is_some_and(|r| r.entry.is_none()));
    assert!(
        d.status
            .as_ref()
            .and_then(|r| r.ready.as_ref())
            .is_some_and(|c| c.message.contains(ADOPT_ANNOTATION)),
        "the message says how to adopt"
    );
    assert_eq!(event_reasons(&d), ["AlreadyExists"]);
    assert!(
        !matches!(with_entries(&plain, &other).job, Some(JobOp::Submit(_))),
        "refused even when it differs: nothing is changed"
    );

    let d = with_entries(&consent, &same);
    assert_eq!(
        reasons(&d),
        (Some("Available".into()), Some("Synced".into()))
    );
    assert_eq!(event_reasons(&d), ["Adopted"]);
    let report = d.status.expect("status");
    assert!(report.adopted && report.entry.is_some());
    let d = with_entries(&consent, &other);
    assert_eq!(
        reasons(&d),
        (Some("Available".into()), Some("Adopted".into())),
        "adopted first, changed by the next reconcile"
    );
    assert!(!matches!(d.job, Some(JobOp::Submit(_))));
    // Once adopted it is the object's own: changes go through.
    let adopted = route(json!({"status": {"adopted": true, "createTime": T0}}));
    assert!(matches!(
        with_entries(&adopted, &other).job,
        Some(JobOp::Submit(_))
    ));
    // A refused object owns nothing: its deletion leaves the entry alone.
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let d = decide(&obs(&deleting));
    assert!(d.remove_finalizer && d.job.is_none());
}

#[test]
fn differences_become_one_change() {
    let r = route(json!({"spec": {"publishVpc": true},
        "status": {"createTime": T0, "accountId": ACCOUNT}}));
    let e = [entry(100, "normal")];
    let d = with_entries(&r, &e);
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Publish {
            publish_vpc: true,
            ..
        }))
    ));
    // Only Reconciling changes: Ready and Synced stay as they are until the change is known.
    let report = d.status.expect("a change under way");
    assert!(report.changing && report.ready.is_none() && report.synced.is_none());
}

#[test]
fn observe_only_reports_and_never_changes() {
    let f = facts();
    let r = route(json!({"spec": {"managementPolicy": "ObserveOnly", "weight": 0}}));
    let rows: [(&[Entry], (&str, &str)); 3] = [
        (&[], ("NotFound", "NotFound")),
        (&[entry(100, "normal")], ("Available", "Drift")),
        (&[entry(0, "normal")], ("Available", "Synced")),
    ];
    for (entries, (ready, synced)) in rows {
        let d = decide(&Observation {
            cloud: CloudRead::Ready { facts: &f, entries },
            ..obs(&r)
        });
        assert_eq!(reasons(&d), (Some(ready.into()), Some(synced.into())));
        assert_eq!(d.job, Some(JobOp::Keep));
        assert_eq!(d.next, Some(Next::Resync));
    }
}

#[test]
fn cleanup_branches() {
    let e = [entry(100, "normal")];
    let del = |extra: serde_json::Value| {
        let mut base = json!({"metadata": {"deletionTimestamp": DELETING},
            "status": {"createTime": T0}});
        merge(&mut base, extra);
        route(base)
    };
    let owned = del(json!({}));
    let orphan = del(json!({"spec": {"deletionPolicy": "Orphan"}}));
    let never = del(json!({"status": {"createTime": null}}));
    let paused = del(json!({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}));
    let queued = queued(create_mutation("t"));
    // Orphan, ObserveOnly, a duplicate and a route that owns nothing go without a call.
    for (name, r, claim) in [
        ("orphan", &orphan, None),
        ("duplicate", &owned, Some("ns/older")),
        ("owns nothing", &never, None),
    ] {
        let d = decide(&Observation {
            older_claim: claim,
            job: Some(&queued),
            ..obs(r)
        });
        assert!(d.remove_finalizer, "{name}");
        assert_eq!(d.job, Some(JobOp::Drop), "{name}");
    }
    let d = with_job(&paused, &queued);
    assert!(!d.remove_finalizer && d.next == Some(Next::AwaitChange));
    assert_eq!(
        d.job,
        Some(JobOp::Drop),
        "paused: queued work goes, no call"
    );
    // Owned: read, then delete, then release once the list no longer has it.
    assert_eq!(
        decide(&obs(&owned)).next,
        Some(Next::Read(Freshness::Recent))
    );
    let d = with_entries(&owned, &e);
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Delete { .. }))
    ));
    let d = with_entries(&owned, &[]);
    assert!(d.remove_finalizer);
    assert_eq!(event_reasons(&d), ["Deleted"]);
    // A gateway that is gone leaves nothing to delete (one being deleted: see
    // `a_gateway_refusing_for_its_status_is_gone_only_when_it_reads_deleting`).
    for code in [
        "InvalidVpnGatewayInstanceId.NotFound",
        "InvalidRegionId.NotFound",
    ] {
        let err = cloud_error(400, code);
        let d = decide(&Observation {
            cloud: CloudRead::Failed(&err),
            ..obs(&owned)
        });
        assert!(d.remove_finalizer, "{code}");
        let failed_job = JobView::Failed {
            error: err.clone(),
            create: false,
        };
        let d = with_job(&owned, &failed_job);
        assert!(d.remove_finalizer, "{code} from the delete itself");
    }
    let forbidden = JobView::Failed {
        error: cloud_error(403, "Forbidden"),
        create: false,
    };
    let d = with_job(&owned, &forbidden);
    assert!(!d.remove_finalizer);
    assert!(matches!(
        d.failure,
        Some(Failure::Cloud { op: "delete", .. })
    ));
    let d = with_job(&owned, &JobView::InFlight);
    assert_eq!(
        (d.job, d.next),
        (Some(JobOp::Drop), Some(Next::Wake)),
        "on the wire: it finishes but is not sent again"
    );
    let without_finalizer = del(json!({"metadata": {"finalizers": null}}));
    let d = decide(&obs(&without_finalizer));
    assert!(!d.remove_finalizer && d.next == Some(Next::AwaitChange));
}

#[test]
fn failures_become_status_and_one_warning() {
    let r = route(json!({}));
    let refused = Error::CreateRefused(cloud_error(400, "InvalidNextHop.NotFound"));
    let (report, event) = failure(&r, &refused, None);
    let ready = report.ready.expect("ready");
    assert_eq!(ready.reason.as_str(), "InvalidNextHop.NotFound");
    assert!(ready.message.contains("req-1"), "RequestId in the message");
    assert_eq!(
        report.client_token,
        Some(None),
        "a refused create releases the token"
    );
    assert_eq!(
        event.expect("warning").reason.as_str(),
        "InvalidNextHop.NotFound"
    );
    // The same failure again: no second warning.
    let again = route(
        json!({"status": {"conditions": [{"type": "Ready", "status": "False",
        "reason": "InvalidNextHop.NotFound", "message": "m", "lastTransitionTime": "t"}]}}),
    );
    assert!(failure(&again, &refused, None).1.is_none());
    // A deletion only someone else can unblock says so.
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let forbidden = Error::Cloud {
        op: "delete",
        source: cloud_error(403, "Forbidden"),
    };
    let (report, event) = failure(
        &deleting,
        &forbidden,
        Some("credentials Secret creds: not found"),
    );
    let ready = report.ready.expect("ready");
    assert_eq!(ready.reason, Reason::CleanupBlocked);
    assert!(ready.message.contains("Forbidden"), "{}", ready.message);
    assert!(ready.message.contains("Secret creds"), "{}", ready.message);
    let event = event.expect("warning");
    assert!(event.warning && event.action == "Delete");
    // A transient failure while deleting keeps its code.
    let busy = Error::Cloud {
        op: "read",
        source: cloud_error(503, "ServiceUnavailable"),
    };
    let ready = failure(&deleting, &busy, None).0.ready.expect("ready");
    assert_eq!(ready.reason.as_str(), "ServiceUnavailable");
    assert!(ready.message.starts_with("deleting: "));
}

#[test]
fn a_failed_read_keeps_a_route_in_sync_ready() {
    let ready_at = |generation: i64| {
        route(
            json!({"metadata": {"generation": 2}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "Available", "message": "",
             "lastTransitionTime": "t", "observedGeneration": generation},
            {"type": "Synced", "status": "True", "reason": "Synced", "message": "",
             "lastTransitionTime": "t", "observedGeneration": generation}]}}),
        )
    };
    let read = |status: u16, code: &str| Error::Cloud {
        op: "read",
        source: cloud_error(status, code),
    };
    let in_sync = ready_at(2);
    let deleting = route(
        json!({"metadata": {"generation": 2, "deletionTimestamp": DELETING},
        "status": in_sync.status.clone()}),
    );
    // (what, route, error, Ready kept)
    let table = [
        (
            "a 5xx read",
            &in_sync,
            read(503, "ServiceUnavailable"),
            true,
        ),
        (
            "a throttled read",
            &in_sync,
            read(400, "Throttling.User"),
            true,
        ),
        ("a refused read", &in_sync, read(403, "Forbidden"), false),
        (
            "a failed change",
            &in_sync,
            Error::Cloud {
                op: "mutation",
                source: cloud_error(503, "ServiceUnavailable"),
            },
            false,
        ),
        (
            "an older generation",
            &ready_at(1),
            read(503, "ServiceUnavailable"),
            false,
        ),
        (
            "a deletion",
            &deleting,
            read(503, "ServiceUnavailable"),
            false,
        ),
    ];
    for (what, r, err, kept) in table {
        let (report, event) = failure(r, &err, None);
        assert_eq!(report.ready.is_none(), kept, "{what}: Ready kept");
        let synced = report.synced.expect("synced");
        assert_eq!(synced.status, ConditionStatus::False, "{what}");
        assert!(event.is_some(), "{what}: a new reason is told once");
    }
    // The same failed read again: no second warning (Synced has the reason already).
    let mut again = in_sync.clone();
    let (report, _) = failure(&in_sync, &read(503, "ServiceUnavailable"), None);
    again.status = Some(status::build(again.status.as_ref(), report, Some(2), "t2"));
    assert!(
        failure(&again, &read(503, "ServiceUnavailable"), None)
            .1
            .is_none()
    );
    assert_eq!(
        status::ready(again.status.as_ref()).map(|c| c.status),
        Some(ConditionStatus::True)
    );
}

#[test]
fn a_single_tunnel_gateway_refuses_the_default_route_before_any_create() {
    let r = route(json!({"spec": {"routeDest": "0.0.0.0/0"}}));
    let d = with_entries(&r, &[]);
    assert_eq!(
        reasons(&d),
        (Some("InvalidSpec".into()), Some("InvalidSpec".into()))
    );
    assert!(
        d.status
            .as_ref()
            .and_then(|s| s.ready.as_ref())
            .is_some_and(|c| c.message.starts_with("spec.routeDest")),
        "names the field"
    );
    assert!(!matches!(d.job, Some(JobOp::Submit(_))));
    let f = GatewayFacts {
        dual_tunnel: true,
        spec: None,
        ..facts()
    };
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        ..obs(&r)
    });
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Create { .. }))
    ));
}

#[test]
fn the_younger_of_two_disagreeing_publishers_waits() {
    let r = existing();
    let queued = queued(Mutation::Publish {
        route: plan::route_id(&r.spec),
        publish_vpc: false,
    });
    let d = decide(&Observation {
        publish_conflict: Some("ns/older"),
        job: Some(&queued),
        ..obs(&r)
    });
    assert_eq!(
        reasons(&d),
        (
            Some("PublishConflict".into()),
            Some("PublishConflict".into())
        )
    );
    assert_eq!(d.job, Some(JobOp::Drop), "nothing flips");
    assert_eq!(event_reasons(&d), ["PublishConflict"]);
    assert_eq!(d.next, Some(Next::Resync));
}

#[test]
fn an_entry_made_again_by_someone_else_is_not_the_objects() {
    // Status recorded an entry created at another time: the listed one is someone else's.
    let mut later = entry(100, "normal");
    later.create_time += 60_000;
    let r = existing();
    let d = with_entries(&r, std::slice::from_ref(&later));
    assert_eq!(
        reasons(&d),
        (Some("AlreadyExists".into()), Some("AlreadyExists".into()))
    );
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"createTime": T0}}));
    let d = with_entries(&deleting, std::slice::from_ref(&later));
    assert!(d.remove_finalizer, "released");
    assert!(
        !matches!(d.job, Some(JobOp::Submit(_))),
        "and left in place"
    );
    // The recorded one is deleted.
    let d = with_entries(&deleting, &[entry(100, "normal")]);
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Delete { .. }))
    ));
}

#[test]
fn a_create_already_queued_keeps_its_token_on_an_older_copy() {
    // The cached copy predates the status write with the token; the queued create has it.
    let r = route(json!({}));
    let queued = queued(create_mutation("tok-queued"));
    let d = with_job_and_entries(&r, Some(&queued), &[]);
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation("tok-queued"))));
    assert!(d.status.is_none(), "no second token is written");
}

#[test]
fn only_a_route_in_sync_at_its_generation_is_read_in_the_background() {
    let at = |generation: i64, ready: &str, synced: &str, extra: serde_json::Value| {
        let mut r = route(json!({"status": {"createTime": T0, "conditions": [
            {"type": "Ready", "status": ready, "reason": "Available", "message": "",
             "lastTransitionTime": "t", "observedGeneration": generation},
            {"type": "Synced", "status": "True", "reason": synced, "message": "",
             "lastTransitionTime": "t", "observedGeneration": generation}]}}));
        let mut v = serde_json::to_value(&r).expect("json");
        merge(&mut v, extra);
        r = serde_json::from_value(v).expect("route");
        r
    };
    let none = json!({});
    let steady = at(2, "True", "Synced", none.clone());
    let queued = queued(create_mutation("t"));
    let observe = at(
        2,
        "True",
        "Synced",
        json!({"spec": {"managementPolicy": "ObserveOnly"}}),
    );
    // (what, route, job, the read it asks for)
    let table = [
        (
            "in sync at its generation",
            &steady,
            None,
            Freshness::Recheck,
        ),
        (
            "a transient read failure kept it Ready",
            &at(2, "True", "Throttling.User", none.clone()),
            None,
            Freshness::Recheck,
        ),
        ("ObserveOnly, in sync", &observe, None, Freshness::Recheck),
        (
            "a new generation",
            &at(1, "True", "Synced", none.clone()),
            None,
            Freshness::Recent,
        ),
        (
            "not Ready",
            &at(2, "False", "Synced", none.clone()),
            None,
            Freshness::Recent,
        ),
        (
            "a pause just lifted",
            &at(2, "True", "Paused", none.clone()),
            None,
            Freshness::Recent,
        ),
        (
            "never held an entry: any proven list shows its absence well enough",
            &route(json!({})),
            None,
            Freshness::Create,
        ),
        (
            "never held an entry, a create refused before",
            &route(json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "VpnRouteEntry.BackupRoute",
                 "message": "", "lastTransitionTime": "t", "observedGeneration": 1}]}})),
            None,
            Freshness::Create,
        ),
        (
            "asks to adopt: the entry must be listed",
            &route(json!({"metadata": {"annotations": {"vpn.alicloud.dev/adopt": "true"}}})),
            None,
            Freshness::Recent,
        ),
        (
            "sent a create (its token): whether it made the entry is read",
            &route(json!({"status": {"clientToken": "tok"}})),
            None,
            Freshness::Recent,
        ),
    ];
    for (what, r, job, fresh) in table {
        let d = decide(&Observation { job, ..obs(r) });
        assert_eq!(d.next, Some(Next::Read(fresh)), "{what}");
    }
    // A change queued at this generation waits for its turn without reading again; one
    // queued from an older generation is dropped and the new one read for.
    let d = with_job(&steady, &queued);
    assert_eq!((d.job, d.next), (Some(JobOp::Keep), Some(Next::Wake)));
    let older = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(1),
        stalled: None,
    };
    let d = with_job(&steady, &older);
    assert_eq!(
        (d.job, d.next),
        (Some(JobOp::Drop), Some(Next::Read(Freshness::Recent)))
    );
    assert_eq!(Freshness::Recheck.priority(false), Priority::Background);
    assert_eq!(Freshness::Recent.priority(false), Priority::Progress);
}

/// The entry of `entry(100, "normal")` made again later (another creation time).
fn remade() -> Entry {
    let mut e = entry(100, "normal");
    e.create_time += 60_000;
    e
}

/// The status `d` leaves on `r`.
fn status_after(r: &VpnPbrRoute, d: &Decision) -> crate::api::v1alpha1::VpnPbrRouteStatus {
    let report = d.status.clone().unwrap_or_default();
    status::build(r.status.as_ref(), report, r.metadata.generation, "t")
}

fn accepted_create(entry: Option<Entry>, confirmed: bool) -> JobView {
    JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-c".into()),
            entry,
        },
        confirmed,
        create: true,
        stalled: None,
    }
}

#[test]
fn a_re_create_keeps_the_recorded_entry_until_its_answer_replaces_it() {
    let fresh = fresh_token();
    let held = route(json!({"status": {"createTime": T0, "clientToken": "tok-old"}}));
    let in_sync_once = existing();
    let renewing = route(json!({"status": {"createTime": T0, "clientToken": fresh}}));
    let gone_after_accept = accepted_create(Some(entry(100, "normal")), true);
    let answer_of_new = accepted_create(Some(remade()), false);
    let refused_as_existing = failed_create("VpnRouteEntry.AlreadyExists");
    let remade_list = [remade()];
    let recorded_list = [entry(100, "normal")];
    struct Row<'a> {
        name: &'a str,
        route: &'a VpnPbrRoute,
        job: Option<&'a JobView>,
        entries: &'a [Entry],
        /// The job op expected: a create with this token, `None` for no create.
        creates_with: Option<&'a str>,
        ready: Option<&'a str>,
        /// `createTime` and `clientToken` of the status the decision leaves.
        create_time: Option<String>,
        token: Option<&'a str>,
    }
    let t1 = status::rfc3339_millis(remade().create_time);
    // A create with a new token that keeps the recorded createTime.
    let re_creates = || Row {
        name: "",
        route: &held,
        job: None,
        entries: &[],
        creates_with: Some(&fresh),
        ready: Some("Creating"),
        create_time: Some(T0.into()),
        token: Some(&fresh),
    };
    let rows = [
        Row {
            name: "the entry was deleted outside: the create that makes it again keeps createTime",
            route: &in_sync_once,
            ..re_creates()
        },
        Row {
            name: "our create's entry was never listed: a new token, createTime kept",
            job: Some(&gone_after_accept),
            ..re_creates()
        },
        Row {
            name: "the new create's answer replaces the recorded createTime",
            route: &renewing,
            job: Some(&answer_of_new),
            entries: &[],
            creates_with: None,
            ready: Some("Creating"),
            create_time: t1.clone(),
            token: Some(&fresh),
        },
        Row {
            name: "after a crash, the entry of the new create is proven by replaying its token",
            route: &renewing,
            job: None,
            entries: &remade_list,
            creates_with: Some(&fresh),
            ready: None,
            create_time: Some(T0.into()),
            token: Some(&fresh),
        },
        Row {
            name: "the new create refused as existing: the list shows the recorded entry, still ours",
            route: &renewing,
            job: Some(&refused_as_existing),
            entries: &recorded_list,
            creates_with: None,
            ready: Some("Available"),
            create_time: Some(T0.into()),
            token: None,
        },
    ];
    for row in rows {
        let d = with_job_and_entries(row.route, row.job, row.entries);
        let created = match &d.job {
            Some(JobOp::Submit(Mutation::Create { client_token, .. })) => {
                Some(client_token.as_str())
            }
            _ => None,
        };
        assert_eq!(created, row.creates_with, "{}: {:?}", row.name, d.job);
        assert_eq!(reasons(&d).0.as_deref(), row.ready, "{}", row.name);
        let st = status_after(row.route, &d);
        assert_eq!(st.create_time, row.create_time, "{}: createTime", row.name);
        assert_eq!(st.client_token.as_deref(), row.token, "{}: token", row.name);
    }
}

/// What a decision about a listed entry did with it.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// `AlreadyExists`, nothing sent.
    Refused,
    Adopted,
    /// In sync and recorded as the object's own.
    Ours,
    /// The finalizer goes, the entry stays.
    LeftInPlace,
    Deletes,
    /// The create is replayed (with this description and weight).
    Replays(Option<String>, i32),
    Other,
}

fn verdict(d: &Decision) -> Verdict {
    match (&d.job, reasons(d).0.as_deref()) {
        (Some(JobOp::Submit(Mutation::Delete { .. })), _) => Verdict::Deletes,
        (
            Some(JobOp::Submit(Mutation::Create {
                description,
                weight,
                ..
            })),
            _,
        ) => Verdict::Replays(description.clone(), *weight),
        (Some(JobOp::Submit(_)), _) => Verdict::Other,
        _ if d.remove_finalizer => Verdict::LeftInPlace,
        (_, Some("AlreadyExists")) => Verdict::Refused,
        _ if event_reasons(d) == ["Adopted"] => Verdict::Adopted,
        (_, Some("Available")) => Verdict::Ours,
        _ => Verdict::Other,
    }
}

/// (row, route, job, listed, verdict)
type Row<'a> = (
    &'a str,
    &'a VpnPbrRoute,
    Option<&'a JobView>,
    &'a [Entry],
    Verdict,
);

#[test]
fn a_replayed_token_proves_only_the_entry_it_made() {
    let with = |extra: serde_json::Value| {
        let mut base = json!({"status": {"clientToken": "t"}});
        merge(&mut base, extra);
        route(base)
    };
    let token_only = with(json!({}));
    let consent = with(json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}));
    let deleting = with(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let deleting_renewed =
        with(json!({"metadata": {"deletionTimestamp": DELETING}, "status": {"createTime": T0}}));
    let edited = with(json!({"spec": {"description": "d", "weight": 0}}));
    let deleting_edited = with(json!({"metadata": {"deletionTimestamp": DELETING},
        "spec": {"description": "d", "weight": 50}}));
    let answered_first = accepted_create(Some(entry(100, "normal")), true);
    let mismatch = failed_create("IdempotentParameterMismatch");
    let refused = failed_create("VpnRouteEntry.AlreadyExists");
    let first = [entry(100, "normal")];
    let made_again = [remade()];
    let rows: [Row<'_>; 11] = [
        (
            "a replay answered with the listed entry's creation time: ours",
            &token_only,
            Some(&answered_first),
            &first,
            Verdict::Ours,
        ),
        (
            "a replay answered with another creation time: the token is spent, the entry foreign",
            &token_only,
            Some(&answered_first),
            &made_again,
            Verdict::Refused,
        ),
        (
            "a spent token and the adopt annotation: adopted",
            &consent,
            Some(&answered_first),
            &made_again,
            Verdict::Adopted,
        ),
        (
            "IdempotentParameterMismatch says the token made some entry, not which",
            &token_only,
            Some(&mismatch),
            &first,
            Verdict::Refused,
        ),
        (
            "cleanup: a replay answered with the listed entry's creation time deletes it",
            &deleting,
            Some(&answered_first),
            &first,
            Verdict::Deletes,
        ),
        (
            "cleanup: a replay answered with another creation time leaves the entry",
            &deleting,
            Some(&answered_first),
            &made_again,
            Verdict::LeftInPlace,
        ),
        (
            "cleanup: IdempotentParameterMismatch leaves the entry",
            &deleting,
            Some(&mismatch),
            &first,
            Verdict::LeftInPlace,
        ),
        (
            "cleanup: a refused replay proves nothing against the recorded entry",
            &deleting_renewed,
            Some(&refused),
            &first,
            Verdict::Deletes,
        ),
        (
            "cleanup: a refused replay of a token alone leaves the entry",
            &deleting,
            Some(&refused),
            &first,
            Verdict::LeftInPlace,
        ),
        (
            "the replay repeats the create as sent: the listed attributes, the description",
            &edited,
            None,
            &first,
            Verdict::Replays(Some("d".into()), 100),
        ),
        (
            "cleanup: the replay repeats the create as sent, whatever the spec says now",
            &deleting_edited,
            None,
            &first,
            Verdict::Replays(Some("d".into()), 100),
        ),
    ];
    for (name, r, job, entries, want) in rows {
        let d = with_job_and_entries(r, job, entries);
        assert_eq!(verdict(&d), want, "{name}: {d:?}");
        if want == Verdict::Ours {
            let st = status_after(r, &d);
            assert_eq!(st.create_time.as_deref(), Some(T0), "{name}: recorded");
            assert_eq!(st.client_token, None, "{name}: token cleared");
        }
    }
}

/// (row, listed, our objects sharing the destination and next hop, publishes)
type PublishRow<'a> = (&'a str, &'a [Entry], &'a [Arc<VpnPbrRoute>], bool);

#[test]
fn publishing_touches_only_entries_we_hold() {
    let f = facts();
    let r = route(json!({"spec": {"publishVpc": true}, "status": {"createTime": T0}}));
    // Another source, same destination and next hop: `PublishVpnRouteEntry` changes it too.
    let other = |state: &str| {
        let mut e = remade();
        e.route_source = "10.9.0.0/24".into();
        e.state = state.into();
        e
    };
    let holder = |extra: serde_json::Value| {
        let mut base = json!({"metadata": {"name": "holder", "uid": "u2"},
            "spec": {"routeSource": "10.9.0.0/24", "publishVpc": true}});
        merge(&mut base, extra);
        Arc::new(route(base))
    };
    let recorded = [holder(
        json!({"status": {"createTime": status::rfc3339_millis(remade().create_time)}}),
    )];
    let token_only = [holder(json!({"status": {"clientToken": "t"}}))];
    let observing = [holder(json!({"spec": {"managementPolicy": "ObserveOnly"},
        "status": {"createTime": status::rfc3339_millis(remade().create_time)}}))];
    let foreign = [entry(100, "normal"), other("normal")];
    let already = [entry(100, "normal"), other("published")];
    let rows: [PublishRow<'_>; 5] = [
        (
            "it would change an entry no object of ours holds: PublishConflict",
            &foreign,
            &[],
            false,
        ),
        (
            "the other entry is held by one of ours: several routes share a destination",
            &foreign,
            &recorded,
            true,
        ),
        (
            "the other entry is already in the wanted state: nothing else changes",
            &already,
            &[],
            true,
        ),
        (
            "a token alone does not hold the other entry",
            &foreign,
            &token_only,
            false,
        ),
        (
            "an ObserveOnly object does not hold the other entry",
            &foreign,
            &observing,
            false,
        ),
    ];
    for (name, entries, sharers, publishes) in rows {
        let d = decide(&Observation {
            publish_sharers: sharers,
            cloud: CloudRead::Ready { facts: &f, entries },
            ..obs(&r)
        });
        let published = matches!(
            d.job,
            Some(JobOp::Submit(Mutation::Publish {
                publish_vpc: true,
                ..
            }))
        );
        assert_eq!(published, publishes, "{name}: {:?}", d.job);
        assert_eq!(
            publish_touches_others(&r, entries),
            name != "the other entry is already in the wanted state: nothing else changes",
            "{name}: the sharers are read"
        );
        if !publishes {
            assert_eq!(
                reasons(&d),
                (
                    Some("PublishConflict".into()),
                    Some("PublishConflict".into())
                ),
                "{name}"
            );
            assert_eq!(event_reasons(&d), ["PublishConflict"], "{name}");
        }
    }
}

#[test]
fn a_queued_deletion_keeps_its_place() {
    let f = facts();
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"createTime": T0}}));
    let delete = queued(plan::delete(&entry(100, "normal"), &f));
    let create = queued(create_mutation("t"));
    // (row, job, the job op, next)
    let rows = [
        (
            "a queued delete waits for its turn, unread and in place",
            &delete,
            JobOp::Keep,
            Next::Wake,
        ),
        (
            "a queued create is pointless now",
            &create,
            JobOp::Drop,
            Next::Read(Freshness::Recent),
        ),
    ];
    for (name, job, op, next) in rows {
        let d = with_job(&deleting, job);
        assert_eq!((d.job, d.next), (Some(op), Some(next)), "{name}");
    }
}

#[test]
fn a_gateway_refusing_for_its_status_is_gone_only_when_it_reads_deleting() {
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"createTime": T0}}));
    let incorrect = cloud_error(400, "IncorrectStatus.VpnGateway");
    let refused_delete = JobView::Failed {
        error: incorrect.clone(),
        create: false,
    };
    let refused_replay = JobView::Failed {
        error: incorrect.clone(),
        create: true,
    };
    let at = |status: &str| GatewayFacts {
        status: status.into(),
        ..facts()
    };
    let (gone, active) = (at("deleting"), at("active"));
    let listed = [entry(100, "normal")];
    // (row, job, the read, released)
    let rows: [(&str, &JobView, Option<&GatewayFacts>, bool); 5] = [
        (
            "the delete refused: the gateway is read first",
            &refused_delete,
            None,
            false,
        ),
        (
            "the gateway reads deleting: nothing left to delete",
            &refused_delete,
            Some(&gone),
            true,
        ),
        (
            "the gateway reads active: the refusal proves nothing",
            &refused_delete,
            Some(&active),
            false,
        ),
        (
            "a replay refused, the gateway reads active",
            &refused_replay,
            Some(&active),
            false,
        ),
        (
            "a replay refused, the gateway reads deleting",
            &refused_replay,
            Some(&gone),
            true,
        ),
    ];
    for (name, job, read, released) in rows {
        let d = decide(&Observation {
            job: Some(job),
            cloud: read.map_or(CloudRead::NotRead, |facts| CloudRead::Ready {
                facts,
                entries: &listed,
            }),
            ..obs(&deleting)
        });
        assert_eq!(d.remove_finalizer, released, "{name}: {d:?}");
        match read {
            None => assert_eq!(
                (d.job, d.next),
                (None, Some(Next::Read(Freshness::Now))),
                "{name}: the refusal is kept for the read of the gateway's status"
            ),
            Some(_) if !released => {
                assert!(
                    matches!(d.failure, Some(Failure::Cloud { op: "delete", .. })),
                    "{name}: retried after the backoff"
                );
                assert_eq!(d.job, Some(JobOp::Drop), "{name}");
            }
            Some(_) => assert_eq!(event_reasons(&d), ["Deleted"], "{name}"),
        }
    }
    // A read refused for the gateway's status cannot tell either.
    let d = decide(&Observation {
        cloud: CloudRead::Failed(&incorrect),
        ..obs(&deleting)
    });
    assert!(!d.remove_finalizer && d.failure.is_some());
}

#[test]
fn a_create_not_listed_yet_is_replayed_before_it_counts_as_deleted() {
    let deleting = |status: serde_json::Value| {
        route(json!({"metadata": {"deletionTimestamp": DELETING}, "status": status}))
    };
    // The create's answer was recorded (with what it said of the entry); no list showed it yet.
    let answered = deleting(
        json!({"createTime": T0, "clientToken": "t", "state": "normal",
        "observed": {"weight": 100, "priority": 10, "published": false}}),
    );
    // A create that makes the entry again: its token beside the older record, nothing observed.
    let renewing = deleting(json!({"createTime": T0, "clientToken": "t2"}));
    // A create whose answer was lost (or never came before a crash): only its token.
    let unanswered = deleting(json!({"clientToken": "t3"}));
    let replayed = accepted_create(Some(entry(100, "normal")), true);
    let refused = failed_create("VpnRouteEntry.AlreadyExists");
    // (row, route, job, what it does)
    let invalid = failed_create("VpnRouteEntry.BackupRoute");
    enum Then {
        /// Sends the create again with this token.
        Replays(&'static str),
        Released,
        /// Keeps the refused replay and reads the list again.
        Waits,
    }
    use Then::*;
    let rows: [(&str, &VpnPbrRoute, Option<&JobView>, Then); 7] = [
        (
            "after a restart: the token is replayed, the scheduler waits for the list",
            &answered,
            None,
            Replays("t"),
        ),
        (
            "the replayed create's entry never listed: deleted",
            &answered,
            Some(&replayed),
            Released,
        ),
        (
            "the replay refused as existing: the entry is there, a list that shows it decides",
            &answered,
            Some(&refused),
            Waits,
        ),
        (
            "a create that makes the entry again may have landed unlisted: replayed",
            &renewing,
            None,
            Replays("t2"),
        ),
        (
            "a create whose answer was lost may have landed unlisted: replayed",
            &unanswered,
            None,
            Replays("t3"),
        ),
        (
            "the unanswered create's replay refused: nothing proven ours, released",
            &unanswered,
            Some(&refused),
            Released,
        ),
        (
            "the unanswered create's replay refused on its merits: it made nothing, released",
            &unanswered,
            Some(&invalid),
            Released,
        ),
    ];
    for (name, r, job, replays) in rows {
        let d = with_job_and_entries(r, job, &[]);
        match replays {
            Replays(token) => {
                assert!(!d.remove_finalizer, "{name}: not released");
                assert_eq!(
                    d.job,
                    Some(JobOp::Submit(create_mutation(token))),
                    "{name}: the create as it was sent"
                );
            }
            Released => {
                assert!(d.remove_finalizer, "{name}: released");
                assert_eq!(event_reasons(&d), ["Deleted"], "{name}");
            }
            Waits => {
                assert!(!d.remove_finalizer, "{name}: not released");
                assert_eq!(
                    (d.job, d.next),
                    (Some(JobOp::Keep), Some(Next::Read(Freshness::Now))),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn a_replay_repeats_the_request_its_token_names() {
    let sent = create_mutation("");
    let token = plan::create_token(&sent, "abc");
    // Since the create: the spec was edited, and the entry changed outside.
    let mut changed = entry(100, "normal");
    changed.priority = 19;
    let listed = [changed];
    let edited = |extra: serde_json::Value| {
        let mut base = json!({"spec": {"weight": 0}, "status": {"clientToken": token}});
        merge(&mut base, extra);
        route(base)
    };
    let applying = edited(json!({}));
    let deleting = edited(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let replay = plan::create_of_token(&applying.spec, &token).expect("token");
    for (name, r) in [("apply", &applying), ("cleanup", &deleting)] {
        let d = with_entries(r, &listed);
        assert_eq!(d.job, Some(JobOp::Submit(replay.clone())), "{name}");
        let Some(JobOp::Submit(Mutation::Create {
            weight, priority, ..
        })) = &d.job
        else {
            panic!("{name}: a replay");
        };
        assert_eq!((*weight, *priority), (100, Some(10)), "{name}: as sent");
    }
    // A new create's token names it.
    let d = with_entries(&route(json!({})), &[]);
    let written = d.status.and_then(|s| s.client_token).flatten();
    assert_eq!(written, Some(plan::create_token(&sent, "tok-new")));
}

/// The account of the credentials in `obs`.
const ACCOUNT: &str = "1111111111111111";

/// A deletion judges a gateway-gone answer by whose it is: only an answer of the entry's
/// account (status `accountId`) ends the cleanup; credentials of another account, or of an
/// unknown one standing in for the route's own, prove nothing and block it.
#[test]
fn a_cleanup_concludes_gone_only_from_the_entrys_account() {
    const OTHER: &str = "2222222222222222";
    let f = facts();
    let e = [entry(100, "normal")];
    let not_found = cloud_error(404, "InvalidVpnGatewayInstanceId.NotFound");
    let failed_lookup = cloud_error(503, "ServiceUnavailable");
    let del = |account: Option<&str>| {
        route(json!({"metadata": {"deletionTimestamp": DELETING},
            "status": {"createTime": T0, "accountId": account}}))
    };
    let in_a = del(Some(ACCOUNT));
    let unrecorded = del(None);
    let secret_gone = Some("credentials Secret creds: not found");
    let failed_delete = JobView::Failed {
        error: not_found.clone(),
        create: false,
    };
    let gone_read = CloudRead::Failed(&not_found);
    let listed = CloudRead::Ready {
        facts: &f,
        entries: &e,
    };
    enum Want {
        /// The finalizer goes: the entry went with its gateway.
        Gone,
        /// Blocked: the entry's account (if recorded) and the credentials' (if known).
        Blocked(Option<&'static str>, Option<&'static str>),
        /// Retried after the backoff: the account of the credentials could not be told.
        Retried,
        /// The failed job is kept and the gateway read, with the credentials' account.
        ReadFirst,
    }
    struct Row<'a> {
        name: &'a str,
        obs: Observation<'a>,
        want: Want,
    }
    let rows = [
        Row {
            name: "fallback credentials of another account + NotFound: blocked, naming the account",
            obs: Observation {
                cloud: gone_read,
                account: AccountRead::Known(OTHER),
                credentials_fallback: secret_gone,
                ..obs(&in_a)
            },
            want: Want::Blocked(Some(ACCOUNT), Some(OTHER)),
        },
        Row {
            name: "a failed delete answered NotFound by another account: blocked",
            obs: Observation {
                job: Some(&failed_delete),
                account: AccountRead::Known(OTHER),
                credentials_fallback: secret_gone,
                ..obs(&in_a)
            },
            want: Want::Blocked(Some(ACCOUNT), Some(OTHER)),
        },
        Row {
            name: "credentials of another account send nothing, whatever they read",
            obs: Observation {
                cloud: listed,
                account: AccountRead::Known(OTHER),
                credentials_fallback: secret_gone,
                ..obs(&in_a)
            },
            want: Want::Blocked(Some(ACCOUNT), Some(OTHER)),
        },
        Row {
            name: "the recorded account's credentials (a fallback) + NotFound: gone",
            obs: Observation {
                cloud: gone_read,
                credentials_fallback: secret_gone,
                ..obs(&in_a)
            },
            want: Want::Gone,
        },
        Row {
            name: "the recorded account's credentials, a failed delete NotFound: gone",
            obs: Observation {
                job: Some(&failed_delete),
                ..obs(&in_a)
            },
            want: Want::Gone,
        },
        Row {
            name: "no recorded account + NotFound from fallback credentials: not gone",
            obs: Observation {
                cloud: gone_read,
                credentials_fallback: secret_gone,
                ..obs(&unrecorded)
            },
            want: Want::Blocked(None, Some(ACCOUNT)),
        },
        Row {
            name: "no recorded account + a failed delete NotFound with fallback credentials",
            obs: Observation {
                job: Some(&failed_delete),
                credentials_fallback: secret_gone,
                ..obs(&unrecorded)
            },
            want: Want::Blocked(None, Some(ACCOUNT)),
        },
        Row {
            name: "no recorded account + NotFound from fallback credentials of an unknown account",
            obs: Observation {
                cloud: gone_read,
                credentials_fallback: secret_gone,
                account: AccountRead::Failed(&failed_lookup),
                ..obs(&unrecorded)
            },
            want: Want::Blocked(None, None),
        },
        Row {
            name: "no recorded account + NotFound from the route's own credentials: gone",
            obs: Observation {
                cloud: gone_read,
                ..obs(&unrecorded)
            },
            want: Want::Gone,
        },
        Row {
            name: "a recorded account, the credentials' account unknown + NotFound: retried",
            obs: Observation {
                cloud: gone_read,
                credentials_fallback: secret_gone,
                account: AccountRead::Failed(&failed_lookup),
                ..obs(&in_a)
            },
            want: Want::Retried,
        },
        Row {
            name: "the first decision: a failed delete NotFound waits for the account",
            obs: Observation {
                job: Some(&failed_delete),
                account: AccountRead::NotRead,
                ..obs(&in_a)
            },
            want: Want::ReadFirst,
        },
    ];
    for row in rows {
        let d = decide(&row.obs);
        let name = row.name;
        match row.want {
            Want::Gone => {
                assert!(d.remove_finalizer, "{name}: released");
                assert_eq!(event_reasons(&d), ["Deleted"], "{name}");
                assert!(d.failure.is_none(), "{name}");
            }
            Want::Blocked(entry, used) => {
                assert!(!d.remove_finalizer, "{name}: the finalizer stays");
                assert!(
                    !matches!(d.job, Some(JobOp::Submit(_))),
                    "{name}: nothing sent: {:?}",
                    d.job
                );
                let Some(Failure::AccountUnproven(u)) = &d.failure else {
                    panic!("{name}: {:?}", d.failure);
                };
                assert_eq!(u.entry_account.as_deref(), entry, "{name}");
                assert_eq!(u.used_account.as_deref(), used, "{name}");
                // The status says CleanupBlocked, names the account and the ways out.
                let err = Error::from(Failure::AccountUnproven(u.clone()));
                let (report, event) = failure(row.obs.route, &err, row.obs.credentials_fallback);
                let ready = report.ready.expect("ready");
                assert_eq!(ready.reason, Reason::CleanupBlocked, "{name}");
                let m = &ready.message;
                for piece in ["deletionPolicy: Orphan", "give the operator credentials"] {
                    assert!(m.contains(piece), "{name}: {piece} in {m}");
                }
                if let Some(a) = entry {
                    assert!(m.contains(&format!("account {a}")), "{name}: {m}");
                }
                assert!(event.is_some_and(|e| e.warning), "{name}: one warning");
                assert_eq!(err.reason(), Reason::AccountUnproven, "{name}: the metric");
            }
            Want::Retried => {
                assert!(!d.remove_finalizer, "{name}");
                assert!(
                    matches!(
                        d.failure,
                        Some(Failure::Cloud {
                            op: "caller identity",
                            ..
                        })
                    ),
                    "{name}: {:?}",
                    d.failure
                );
            }
            Want::ReadFirst => {
                assert!(!d.remove_finalizer, "{name}");
                assert_eq!(d.job, Some(JobOp::Keep), "{name}");
                assert_eq!(d.next, Some(Next::Read(Freshness::Recent)), "{name}");
            }
        }
    }
}

/// The account is recorded at the first list that shows the object's entry to its
/// credentials (an entry made before accounts were recorded gets it then), and only once.
#[test]
fn the_account_is_recorded_when_a_list_shows_the_entry() {
    let f = facts();
    let e = [entry(100, "normal")];
    let listed = CloudRead::Ready {
        facts: &f,
        entries: &e,
    };
    let made = |extra: serde_json::Value| {
        let mut base = json!({"status": {"createTime": T0}});
        merge(&mut base, extra);
        route(base)
    };
    let in_sync = made(json!({}));
    let drifted = made(json!({"spec": {"publishVpc": true}}));
    let recorded = made(json!({"status": {"accountId": ACCOUNT}}));
    let deleting = made(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let adopting = route(json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}));
    let recorded_account = |d: &Decision| d.status.as_ref().and_then(|r| r.account_id.clone());
    // The create goes out with these credentials: its token is written with their account.
    let fresh = route(json!({}));
    let token_only = route(json!({"status": {"clientToken": "tok-old"}}));
    for (what, r) in [("a new create", &fresh), ("a create token", &token_only)] {
        let d = with_entries(r, &[]);
        assert!(
            matches!(d.job, Some(JobOp::Submit(Mutation::Create { .. }))),
            "{what}"
        );
        assert_eq!(recorded_account(&d).as_deref(), Some(ACCOUNT), "{what}");
    }
    let (ours, pending) = (AccountRead::Known(ACCOUNT), AccountRead::Pending);
    let lookup_failed = cloud_error(503, "ServiceUnavailable");
    let failed = AccountRead::Failed(&lookup_failed);
    // (what, route, account of the credentials, account recorded)
    let rows: [(&str, &VpnPbrRoute, AccountRead<'_>, Option<&str>); 7] = [
        ("in sync", &in_sync, ours, Some(ACCOUNT)),
        ("a change is queued", &drifted, ours, Some(ACCOUNT)),
        ("adopted", &adopting, ours, Some(ACCOUNT)),
        ("being deleted", &deleting, ours, Some(ACCOUNT)),
        ("already recorded", &recorded, ours, None),
        ("the account not known yet", &in_sync, pending, None),
        ("the account lookup failed", &in_sync, failed, None),
    ];
    for (what, r, account, want) in rows {
        let d = decide(&Observation {
            cloud: listed,
            account,
            ..obs(r)
        });
        assert_eq!(recorded_account(&d).as_deref(), want, "{what}");
        let built = status::build(
            r.status.as_ref(),
            d.status.unwrap_or_default(),
            Some(2),
            "t",
        );
        let expect = want.or(r.status.as_ref().and_then(|s| s.account_id.as_deref()));
        assert_eq!(built.account_id.as_deref(), expect, "{what}: in status");
    }
    // An entry known absent takes its account with it (a new one records its own).
    let gone = status::build(
        recorded.status.as_ref(),
        StatusReport {
            entry_absent: true,
            ..Default::default()
        },
        Some(2),
        "t",
    );
    assert_eq!(gone.account_id, None);
}

#[test]
fn an_accepted_change_waiting_for_a_whole_list_says_why() {
    // The list read-back of an applied change failed (its pages never added up): the route
    // waits, keeps its job and says so in Synced; nothing is concluded from the failed read.
    let inconsistent = Arc::new(CloudError::ListInconsistent {
        action: "DescribeVpnPbrRouteEntries",
        reads: 48,
        total_count: 53,
        proven: 52,
        request_id: None,
    });
    let waiting = JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-4".into()),
            entry: None,
        },
        confirmed: false,
        create: false,
        stalled: Some(Stall::List(inconsistent)),
    };
    let live = route(json!({}));
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING}}));
    for (r, prefix) in [(&live, "the change"), (&deleting, "deleting: the change")] {
        let d = with_job(r, &waiting);
        assert_eq!((&d.job, d.next), (&Some(JobOp::Keep), Some(Next::Wake)));
        assert!(!d.remove_finalizer);
        let report = d.status.expect("status says why");
        assert!(report.ready.is_none(), "Ready is left as it was");
        let synced = report.synced.expect("Synced");
        assert_eq!(synced.reason, Reason::Cloud("ListInconsistent".into()));
        assert!(synced.message.starts_with(prefix), "{}", synced.message);
    }
}

#[test]
fn a_change_whose_reads_keep_failing_keeps_its_place_and_says_why() {
    // The scheduler's own reads of the gateway keep failing: a change waiting for its turn, an
    // accepted change waiting for the gateway to show it applied, and one waiting for a whole
    // list each keep their job (their place in the queue) and say why in Synced, deletions
    // included; without a stall, a waiting change writes nothing.
    let unavailable = cloud_error(503, "ServiceUnavailable");
    let live = route(json!({}));
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING}}));
    let delete = Mutation::Delete {
        route: plan::route_id(&live.spec),
        weight: 100,
        priority: Some(10),
    };
    let accepted = |stalled| JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-4".into()),
            entry: None,
        },
        confirmed: false,
        create: false,
        stalled,
    };
    let queued = |mutation, stalled| JobView::Queued {
        mutation,
        generation: Some(2),
        stalled,
    };
    let rows = [
        (
            "create waiting for its turn",
            &live,
            queued(
                create_mutation("t"),
                Some(Stall::Queued(unavailable.clone())),
            ),
            "waiting for its turn",
        ),
        (
            "deletion waiting for its turn",
            &deleting,
            queued(delete.clone(), Some(Stall::Queued(unavailable.clone()))),
            "deleting: waiting for its turn",
        ),
        (
            "accepted, gateway status unread",
            &live,
            accepted(Some(Stall::Status(unavailable.clone()))),
            "the change was accepted; waiting for the gateway to show it applied",
        ),
        (
            "accepted deletion, gateway status unread",
            &deleting,
            accepted(Some(Stall::Status(unavailable.clone()))),
            "deleting: the change was accepted; waiting for the gateway",
        ),
        (
            "accepted, list unread",
            &live,
            accepted(Some(Stall::List(unavailable.clone()))),
            "the change was accepted; waiting for a whole entry list",
        ),
    ];
    for (name, r, job, prefix) in &rows {
        let d = with_job(r, job);
        assert_eq!(
            (&d.job, d.next),
            (&Some(JobOp::Keep), Some(Next::Wake)),
            "{name}: keeps its place"
        );
        assert!(!d.remove_finalizer, "{name}");
        let report = d
            .status
            .unwrap_or_else(|| panic!("{name}: status says why"));
        assert!(report.ready.is_none(), "{name}: Ready is left as it was");
        let synced = report.synced.unwrap_or_else(|| panic!("{name}: Synced"));
        assert_eq!(
            synced.reason,
            Reason::Cloud("ServiceUnavailable".into()),
            "{name}"
        );
        assert!(
            synced.message.starts_with(prefix),
            "{name}: {}",
            synced.message
        );
    }
    // Not stalled: the same waits write no status (a long queue is not a stall).
    for (name, r, job) in [
        ("queued", &live, queued(create_mutation("t"), None)),
        ("queued deletion", &deleting, queued(delete, None)),
        ("accepted", &live, accepted(None)),
    ] {
        let d = with_job(r, &job);
        assert_eq!(
            (&d.job, d.next),
            (&Some(JobOp::Keep), Some(Next::Wake)),
            "{name}"
        );
        assert!(d.status.is_none(), "{name}: {:?}", d.status);
    }
}

#[test]
fn a_refused_create_keeps_its_token_until_the_spec_asks_for_another_create() {
    // A create refused on its merits (VpnRouteEntry.BackupRoute: its pair's other entry has the
    // same weight) may have a request with the same token still on its way (sent by a process
    // that died): the token stays and the same create is tried again, so whichever lands is
    // the object's. Only a spec that now asks for another create (the weight was corrected)
    // gets a new token.
    let token = plan::create_token(&create_mutation(""), "abc");
    let refused_status = |spec: serde_json::Value| {
        route(json!({"spec": spec, "status": {"clientToken": token,
            "conditions": [{"type": "Ready", "status": "False",
            "reason": "VpnRouteEntry.BackupRoute", "message": "m", "lastTransitionTime": "t"}]}}))
    };
    let same = refused_status(json!({}));
    let refused = failed_create("VpnRouteEntry.BackupRoute");
    let d = with_job(&same, &refused);
    let err = Error::from(d.failure.expect("the refusal is reported"));
    let (report, _) = failure(&same, &err, None);
    assert_eq!(report.client_token, None, "the token is kept");
    // The next try: the same create, with the same token.
    let d = with_entries(&same, &[]);
    assert_eq!(
        d.job,
        Some(JobOp::Submit(create_mutation(&token))),
        "the same create again"
    );
    // The refusal is no longer the create's last word once it goes out again: status says so
    // before the call, so a process that starts after a crash with the request on the wire
    // replays the token (its create may have landed) instead of replacing it.
    let s = status_after(&same, &d);
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready");
    assert_eq!(ready.map(|c| c.reason.as_str()), Some("Creating"));
    assert_eq!(s.client_token.as_deref(), Some(token.as_str()));
    // The weight corrected: a new create, with a new token.
    let corrected = refused_status(json!({"weight": 0}));
    let d = with_entries(&corrected, &[]);
    let Some(JobOp::Submit(Mutation::Create {
        client_token,
        weight,
        ..
    })) = &d.job
    else {
        panic!("a create: {:?}", d.job);
    };
    assert_eq!(*weight, 0);
    assert_ne!(client_token, &token, "a new token for the corrected create");
    // A create not refused (its answer lost: Ready says Creating) keeps its token whatever the
    // spec asks now: it may have made the entry, which its replay then proves.
    let unanswered = route(
        json!({"spec": {"weight": 0}, "status": {"clientToken": token,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Creating",
        "message": "m", "lastTransitionTime": "t"}]}}),
    );
    let d = with_entries(&unanswered, &[]);
    assert_eq!(
        d.job,
        Some(JobOp::Submit(create_mutation(&token))),
        "the create as it was sent, with its token"
    );
}

#[test]
fn a_create_answered_as_the_route_turns_observe_only_is_recorded_and_nothing_else_is_sent() {
    let observing = |status: serde_json::Value| {
        route(json!({"spec": {"managementPolicy": "ObserveOnly"}, "status": status}))
    };
    // The create went out before the edit to ObserveOnly; its answer came back after it.
    let sent = observing(json!({"clientToken": "t"}));
    let answered = accepted_create(Some(entry(100, "normal")), true);
    let listed = [entry(100, "normal")];
    let d = with_job_and_entries(&sent, Some(&answered), &listed);
    let s = status_after(&sent, &d);
    assert_eq!(
        s.create_time.as_deref(),
        Some(T0),
        "the answer names the listed entry: recorded, so it is proven without the token"
    );
    assert_eq!(s.client_token, None, "the token has served");
    assert_eq!(d.job, Some(JobOp::Drop));
    // Read first: the answer is kept for the decision after the read.
    let d = with_job(&sent, &answered);
    assert!(matches!(d.next, Some(Next::Read(_))), "{:?}", d.next);
    assert_ne!(d.job, Some(JobOp::Drop), "the answer waits for the read");
    // Not confirmed yet: it waits for the read-back, keeping the token.
    let waiting = accepted_create(Some(entry(100, "normal")), false);
    let d = with_job_and_entries(&sent, Some(&waiting), &[]);
    assert_ne!(d.job, Some(JobOp::Drop), "the read-back goes on");
    assert_eq!(status_after(&sent, &d).client_token.as_deref(), Some("t"));
    // A queued change is not sent for a route that only observes; one on the wire finishes.
    let queued = queued(create_mutation("t"));
    let d = with_job_and_entries(&sent, Some(&queued), &[]);
    assert_eq!(d.job, Some(JobOp::Drop), "queued: dropped");
    let d = with_job(&sent, &JobView::InFlight);
    assert_eq!(d.next, Some(Next::Wake), "in flight: its answer is awaited");
    assert_eq!(
        d.job,
        Some(JobOp::Drop),
        "in flight: not sent again after a busy answer (its acceptance is still recorded)"
    );
    // Observing never moves an ownership record to another entry.
    let recorded = observing(json!({"createTime": T0}));
    let d = with_entries(&recorded, &[remade()]);
    assert_eq!(
        status_after(&recorded, &d).create_time.as_deref(),
        Some(T0),
        "an entry made again by someone else is not the recorded one"
    );
    let d = with_entries(&recorded, &[]);
    assert_eq!(reasons(&d).0.as_deref(), Some("NotFound"));
    assert_eq!(
        status_after(&recorded, &d).create_time.as_deref(),
        Some(T0),
        "a list without the entry does not cost the record"
    );
}

#[test]
fn a_create_answered_behind_a_gate_is_recorded() {
    // The create went out; before its answer came back the spec turned invalid, or the route
    // was paused. The answer is the proof of the entry: recorded, not left to the token.
    let answered = accepted_create(Some(entry(100, "normal")), true);
    let unconfirmed = accepted_create(Some(entry(100, "normal")), false);
    let invalid = route(json!({"spec": {"weight": 50}, "status": {"clientToken": "t"}}));
    let paused = route(json!({
        "metadata": {"annotations": {PAUSED_ANNOTATION: "true"}},
        "status": {"clientToken": "t"}
    }));
    // Paused, then deleted before the answer was recorded (the status writes of the answer
    // refused meanwhile: a watch behind our own writes): the cleanup waits for the pause to
    // end, and the entry it will delete then must still be provably the object's.
    let paused_deleted = route(json!({
        "metadata": {"annotations": {PAUSED_ANNOTATION: "true"}, "deletionTimestamp": DELETING,
            "finalizers": [FINALIZER]},
        "status": {"clientToken": "t"}
    }));
    for (name, r) in [
        ("invalid spec", &invalid),
        ("paused", &paused),
        ("paused, then deleted", &paused_deleted),
    ] {
        for job in [&answered, &unconfirmed] {
            let d = with_job(r, job);
            assert_eq!(d.job, Some(JobOp::Drop), "{name}");
            assert_eq!(
                status_after(r, &d).create_time.as_deref(),
                Some(T0),
                "{name}: the answer is recorded"
            );
        }
    }
}

#[test]
fn a_change_of_a_recorded_entry_says_a_change_is_under_way() {
    let f = facts();
    let r = existing();
    // Drifted to weight 0 (or edited): the entry is the object's, its weight is changed back.
    let e = [entry(0, "normal")];
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e,
        },
        ..obs(&r)
    });
    assert!(
        matches!(
            &d.job,
            Some(JobOp::Submit(Mutation::ModifyAttribute { .. }))
        ),
        "{:?}",
        d.job
    );
    let report = d.status.expect("a status that says so");
    assert!(
        report.changing,
        "Reconciling=True while the change is under way"
    );
}

#[test]
fn a_stalled_change_reports_the_policy_of_the_read_that_keeps_failing() {
    let r = existing();
    for (status, code) in [(503, "ServiceUnavailable"), (403, "Forbidden.RAM")] {
        let error = cloud_error(status, code);
        let stalled = JobView::Queued {
            mutation: create_mutation("t"),
            generation: Some(2),
            stalled: Some(Stall::Queued(error.clone())),
        };
        let d = with_job(&r, &stalled);
        let report = d.status.expect("Synced says why");
        // Stalled=True only for a refusal someone must act on (the status builder reads it).
        assert_eq!(report.cause, Some(error.policy()), "{code}");
    }
}

#[test]
fn a_cleanup_whose_replay_is_refused_as_existing_never_calls_the_entry_deleted() {
    // The cloud just said the entry exists: a list that does not show it yet proves nothing.
    let refused = failed_create("VpnRouteEntry.AlreadyExists");
    let observe = |r: &VpnPbrRoute| with_job_and_entries(r, Some(&refused), &[]);
    // Held by its token only: it cannot prove the entry its own, and says so.
    let token_only = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"clientToken": "t"}}));
    let d = observe(&token_only);
    assert!(d.remove_finalizer, "released");
    let note = &d.events.first().expect("an event").note;
    assert!(
        note.contains("cannot prove") && note.contains("left in place"),
        "{note}"
    );
    // Its answer recorded: the entry is the object's; it waits for a list that shows it.
    let recorded = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"clientToken": "t", "createTime": T0}}));
    let d = observe(&recorded);
    assert!(!d.remove_finalizer, "not released: the entry is its own");
    assert!(d.events.iter().all(|e| !e.note.contains("deleted")));
    assert_eq!(d.next, Some(Next::Read(Freshness::Now)));
}

#[test]
fn an_account_that_does_not_admit_the_route_stops_it_before_any_read() {
    let refusal = crate::controller::resolve::Refusal {
        reason: Reason::AccountForbidden,
        message: "VpnAccount b does not admit namespace ns".into(),
    };
    let queued = JobView::Queued {
        mutation: create_mutation("tok"),
        generation: Some(2),
        stalled: None,
    };
    let plain = route(json!({}));
    let adopting = route(json!({"metadata": {"annotations": {ADOPT_ANNOTATION: "true"}}}));
    let adopted = route(json!({
        "metadata": {"annotations": {ADOPT_ANNOTATION: "true"}},
        "status": {"adopted": true, "createTime": "2024-01-01T00:00:00.000Z", "account": "b"}
    }));
    let closed = AccountGate::Open {
        name: "b",
        adoption: false,
    };
    // (what, observation, the Ready reason, or None: the gate is open)
    let rows = [
        (
            "refused by the account",
            Observation {
                held_by: AccountGate::Refused(&refusal),
                job: Some(&queued),
                ..obs(&plain)
            },
            Some("AccountForbidden"),
        ),
        (
            "an adoption the account does not allow",
            Observation {
                held_by: closed,
                ..obs(&adopting)
            },
            Some("AdoptionForbidden"),
        ),
        (
            "an entry adopted before: the account's rule is for new adoptions",
            Observation {
                held_by: closed,
                ..obs(&adopted)
            },
            None,
        ),
        (
            "no adoption asked for",
            Observation {
                held_by: closed,
                ..obs(&plain)
            },
            None,
        ),
    ];
    for (what, o, want) in rows {
        let d = decide(&o);
        match want {
            Some(reason) => {
                assert_eq!(
                    reasons(&d),
                    (Some(reason.into()), Some(reason.into())),
                    "{what}"
                );
                assert_eq!(event_reasons(&d), [reason], "{what}");
                assert_eq!(d.next, Some(Next::AwaitChange), "{what}: no read");
                assert!(!matches!(d.job, Some(JobOp::Submit(_))), "{what}");
                if o.job.is_some() {
                    assert_eq!(d.job, Some(JobOp::Drop), "{what}: queued work dropped");
                }
            }
            None => assert!(
                matches!(d.next, Some(Next::Read(_))),
                "{what}: {:?}",
                d.next
            ),
        }
    }
    // Refused again: no second event.
    let refused_before = route(json!({"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "AccountForbidden", "message": "m",
        "lastTransitionTime": "t", "observedGeneration": 2}]}}));
    let d = decide(&Observation {
        held_by: AccountGate::Refused(&refusal),
        ..obs(&refused_before)
    });
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn the_account_is_recorded_with_the_first_create_and_kept() {
    let f = facts();
    let plain = route(json!({}));
    let held = AccountGate::Open {
        name: "team-a",
        adoption: false,
    };
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        held_by: held,
        ..obs(&plain)
    });
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Create { .. }))
    ));
    let report = d.status.expect("status");
    assert_eq!(report.account.as_deref(), Some("team-a"));
    assert_eq!(report.account_id.as_deref(), Some(ACCOUNT));
    // In sync with the account recorded: nothing to record again.
    let recorded = route(json!({"status": {"account": "team-a", "accountId": ACCOUNT,
        "createTime": crate::controller::status::rfc3339_millis(entry(100, "normal").create_time)}}));
    let listed = [entry(100, "normal")];
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &listed,
        },
        held_by: held,
        ..obs(&recorded)
    });
    assert_eq!(
        reasons(&d),
        (Some("Available".into()), Some("Synced".into()))
    );
    assert!(d.status.expect("status").account.is_none());
}
