//! Table tests of the decision core: every row of the README's reason table and every branch
//! of `decide` and `failure`.

use std::sync::Arc;

use alicloud_vpc_client::{ApiError, CloudError, classify};
use serde_json::json;

use super::*;
use crate::controller::model::Accepted;

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
        route_source: "10.0.0.0/24".into(),
        route_dest: "10.1.0.0/16".into(),
        next_hop: "vco-1".into(),
        weight,
        priority: 10,
        state: state.into(),
        create_time: 1_700_000_000_000,
        vpn_instance_id: "vpn-a".into(),
    }
}

fn facts() -> GatewayFacts {
    GatewayFacts {
        status: "active".into(),
        supports_priority: true,
        dual_tunnel: false,
        spec: None,
    }
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

/// An observation of `r` with nothing read, no job, no claim.
fn obs(r: &VpnPbrRoute) -> Observation<'_> {
    Observation {
        route: r,
        older_claim: None,
        publish_conflict: None,
        job: None,
        recently_verified: false,
        cloud: CloudRead::NotRead,
        new_token: "tok-new",
        credentials_fallback: None,
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
    let queued = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(2),
    };
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
    let f = facts();
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        ..obs(&r)
    });
    assert_eq!(
        reasons(&d),
        (Some("Creating".into()), Some("Creating".into()))
    );
    let report = d.status.as_ref().expect("status");
    assert_eq!(report.client_token, Some(Some("tok-new".into())));
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation("tok-new"))));
    assert_eq!(d.next, Some(Next::Wake));
    assert!(d.credentials_worked);

    // A token in status is reused, and nothing is written again.
    let with_token = route(json!({"status": {"clientToken": "tok-old"}}));
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        ..obs(&with_token)
    });
    assert!(d.status.is_none());
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation("tok-old"))));
}

#[test]
fn the_read_comes_first_and_its_outcome_decides() {
    let r = route(json!({}));
    assert_eq!(decide(&obs(&r)).next, Some(Next::Read(Freshness::Recent)));
    let pending = decide(&Observation {
        cloud: CloudRead::Pending,
        ..obs(&r)
    });
    assert_eq!(pending.next, Some(Next::Wake));
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
    let f = facts();
    let e = [entry(100, "normal")];
    let ready = |r: &VpnPbrRoute, job: Option<&JobView>| {
        decide(&Observation {
            job,
            cloud: CloudRead::Ready {
                facts: &f,
                entries: &e,
            },
            ..obs(r)
        })
    };
    let accepted = JobView::Accepted {
        accepted: Accepted {
            request_id: Some("req-9".into()),
            entry: None,
        },
        confirmed: true,
        create: true,
        read_back: None,
    };
    let ours = route(json!({"status": {"clientToken": "t"}}));
    let was_ready = route(json!({"status": {"createTime": "2023-11-14T22:13:20.000Z",
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
    let f = facts();
    let r = route(json!({"status": {"createTime": "2023-11-14T22:13:20.000Z"}}));
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
    };
    let before_read = decide(&Observation {
        job: Some(&stale),
        ..obs(&r)
    });
    assert_eq!(
        before_read.job,
        Some(JobOp::Drop),
        "stale: dropped before the read"
    );
    assert_eq!(before_read.next, Some(Next::Read(Freshness::Recent)));
    let current = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(2),
    };
    let waiting = decide(&Observation {
        job: Some(&current),
        ..obs(&r)
    });
    assert_eq!(
        (waiting.job, waiting.next),
        (Some(JobOp::Keep), Some(Next::Wake)),
        "current: kept, waiting for its turn without a read"
    );
    let e = [entry(100, "normal")];
    let reverted = decide(&Observation {
        job: Some(&stale),
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e,
        },
        ..obs(&r)
    });
    assert_eq!(
        reverted.job,
        Some(JobOp::Drop),
        "in sync: the queued change goes"
    );
    let e0 = [entry(0, "normal")];
    let changed = decide(&Observation {
        job: Some(&stale),
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e0,
        },
        ..obs(&r)
    });
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
        read_back: None,
    };
    for job in [&JobView::InFlight, &unconfirmed] {
        let d = decide(&Observation {
            job: Some(job),
            ..obs(&r)
        });
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
        read_back: None,
    };
    let d = decide(&Observation {
        job: Some(&answered),
        ..obs(&r)
    });
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
    let refused = JobView::Failed {
        error: cloud_error(400, "InvalidNextHop.NotFound"),
        create: true,
    };
    let d = decide(&Observation {
        job: Some(&refused),
        ..obs(&r)
    });
    assert!(matches!(d.failure, Some(Failure::CreateRefused(_))));
    assert_eq!(d.job, Some(JobOp::Drop));
    let busy_modify = JobView::Failed {
        error: cloud_error(400, "VpnRouteEntry.BackupRoute"),
        create: false,
    };
    let d = decide(&Observation {
        job: Some(&busy_modify),
        ..obs(&r)
    });
    assert!(matches!(
        d.failure,
        Some(Failure::Cloud { op: "mutation", .. })
    ));
    let exists = JobView::Failed {
        error: cloud_error(400, "VpnRouteEntry.AlreadyExists"),
        create: true,
    };
    let d = decide(&Observation {
        job: Some(&exists),
        ..obs(&r)
    });
    assert_eq!(
        d.next,
        Some(Next::Read(Freshness::Now)),
        "look again, not cached"
    );
    let f = facts();
    let e = [entry(100, "normal")];
    let d = decide(&Observation {
        job: Some(&exists),
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e,
        },
        ..obs(&r)
    });
    assert_eq!(
        event_reasons(&d),
        ["AlreadyExists"],
        "someone else's: not taken"
    );
    assert_eq!(d.job, Some(JobOp::Drop));
}

/// The decision for `r` with the gateway listing `entries`.
fn with_entries(r: &VpnPbrRoute, entries: &[Entry]) -> Decision {
    let f = facts();
    decide(&Observation {
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
    let adopted =
        route(json!({"status": {"adopted": true, "createTime": "2023-11-14T22:13:20.000Z"}}));
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
    let f = facts();
    let r = route(json!({"spec": {"publishVpc": true},
        "status": {"createTime": "2023-11-14T22:13:20.000Z"}}));
    let e = [entry(100, "normal")];
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e,
        },
        ..obs(&r)
    });
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Publish {
            publish_vpc: true,
            ..
        }))
    ));
    assert!(d.status.is_none());
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
    let f = facts();
    let e = [entry(100, "normal")];
    let del = |extra: serde_json::Value| {
        let mut base = json!({"metadata": {"deletionTimestamp": DELETING},
            "status": {"createTime": "2023-11-14T22:13:20.000Z"}});
        merge(&mut base, extra);
        route(base)
    };
    let owned = del(json!({}));
    let orphan = del(json!({"spec": {"deletionPolicy": "Orphan"}}));
    let never = del(json!({"status": {"createTime": null}}));
    let paused = del(json!({"metadata": {"annotations": {PAUSED_ANNOTATION: "true"}}}));
    let queued = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(2),
    };
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
    let d = decide(&Observation {
        job: Some(&queued),
        ..obs(&paused)
    });
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
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &e,
        },
        ..obs(&owned)
    });
    assert!(matches!(
        d.job,
        Some(JobOp::Submit(Mutation::Delete { .. }))
    ));
    let d = decide(&Observation {
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        ..obs(&owned)
    });
    assert!(d.remove_finalizer);
    assert_eq!(event_reasons(&d), ["Deleted"]);
    // A gateway that is gone (or being deleted) leaves nothing to delete.
    for code in [
        "InvalidVpnGatewayInstanceId.NotFound",
        "IncorrectStatus.VpnGateway",
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
        let d = decide(&Observation {
            job: Some(&failed_job),
            ..obs(&owned)
        });
        assert!(d.remove_finalizer, "{code} from the delete itself");
    }
    let forbidden = JobView::Failed {
        error: cloud_error(403, "Forbidden"),
        create: false,
    };
    let d = decide(&Observation {
        job: Some(&forbidden),
        ..obs(&owned)
    });
    assert!(!d.remove_finalizer);
    assert!(matches!(
        d.failure,
        Some(Failure::Cloud { op: "delete", .. })
    ));
    let d = decide(&Observation {
        job: Some(&JobView::InFlight),
        ..obs(&owned)
    });
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
    let r = route(json!({"status": {"createTime": "2023-11-14T22:13:20.000Z"}}));
    let queued = JobView::Queued {
        mutation: Mutation::Publish {
            route: plan::route_id(&r.spec),
            publish_vpc: false,
        },
        generation: Some(2),
    };
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
    let r = route(json!({"status": {"createTime": "2023-11-14T22:13:20.000Z"}}));
    let d = with_entries(&r, std::slice::from_ref(&later));
    assert_eq!(
        reasons(&d),
        (Some("AlreadyExists".into()), Some("AlreadyExists".into()))
    );
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING},
        "status": {"createTime": "2023-11-14T22:13:20.000Z"}}));
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
    let f = facts();
    let queued = JobView::Queued {
        mutation: create_mutation("tok-queued"),
        generation: Some(2),
    };
    let d = decide(&Observation {
        job: Some(&queued),
        cloud: CloudRead::Ready {
            facts: &f,
            entries: &[],
        },
        ..obs(&r)
    });
    assert_eq!(d.job, Some(JobOp::Submit(create_mutation("tok-queued"))));
    assert!(d.status.is_none(), "no second token is written");
}

#[test]
fn only_a_route_in_sync_at_its_generation_is_read_in_the_background() {
    let at = |generation: i64, ready: &str, synced: &str, extra: serde_json::Value| {
        let mut r = route(json!({"status": {"conditions": [
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
    let queued = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(2),
    };
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
        ("never read", &route(json!({})), None, Freshness::Recent),
    ];
    for (what, r, job, fresh) in table {
        let d = decide(&Observation { job, ..obs(r) });
        assert_eq!(d.next, Some(Next::Read(fresh)), "{what}");
    }
    // A change queued at this generation waits for its turn without reading again; one
    // queued from an older generation is dropped and the new one read for.
    let d = decide(&Observation {
        job: Some(&queued),
        ..obs(&steady)
    });
    assert_eq!((d.job, d.next), (Some(JobOp::Keep), Some(Next::Wake)));
    let older = JobView::Queued {
        mutation: create_mutation("t"),
        generation: Some(1),
    };
    let d = decide(&Observation {
        job: Some(&older),
        ..obs(&steady)
    });
    assert_eq!(
        (d.job, d.next),
        (Some(JobOp::Drop), Some(Next::Read(Freshness::Recent)))
    );
    assert_eq!(Freshness::Recheck.priority(), Priority::Background);
    assert_eq!(Freshness::Recent.priority(), Priority::Progress);
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
        read_back: Some(inconsistent),
    };
    let live = route(json!({}));
    let deleting = route(json!({"metadata": {"deletionTimestamp": DELETING}}));
    for (r, prefix) in [(&live, "the change"), (&deleting, "deleting: the change")] {
        let d = decide(&Observation {
            job: Some(&waiting),
            ..obs(r)
        });
        assert_eq!((&d.job, d.next), (&Some(JobOp::Keep), Some(Next::Wake)));
        assert!(!d.remove_finalizer);
        let report = d.status.expect("status says why");
        assert!(report.ready.is_none(), "Ready is left as it was");
        let synced = report.synced.expect("Synced");
        assert_eq!(synced.reason, Reason::Cloud("ListInconsistent".into()));
        assert!(synced.message.starts_with(prefix), "{}", synced.message);
    }
}
