//! What GitOps tools conclude from the statuses the operator writes: kstatus
//! (sigs.k8s.io/cli-utils v0.37.2, as Flux and the cli-utils appliers compute health) and Argo CD
//! with `deploy/argocd/health.lua`, both run by `hack/gitops-verdicts` (the real kstatus library;
//! the script in gopher-lua, set up as Argo CD sets up health scripts), over one object per
//! situation whose status the operator's own status builder made.
//!
//! There is a row for every reason of ours (an exhaustive match: a new reason without rows does
//! not compile) and for every code of the client's policy table (iterated from the table: a new
//! code gets its rows). The verdicts are the ones docs/gitops.md promises.
//!
//! The tool comes from `hack/gitops-verdicts/build.sh` (`make tools`; `GITOPS_VERDICTS` from
//! `source <(hack/tools.sh --env)`); without it the test fails and says so.

use std::io::Write;
use std::process::{Command, Stdio};

use alicloud_vpc_client::{ErrorClass, Pace, Policy, known_codes};
use vpn_pbr_operator::api::v1alpha1::FINALIZER;
use vpn_pbr_operator::status::{CondValue, Reason, StatusReport, build, named_reasons};

mod support;
use support::route::{route_object, spec};

/// `(kstatus, Argo CD)`.
type Verdict = (&'static str, &'static str);
const HEALTHY: Verdict = ("Current", "Healthy");
const PROGRESSING: Verdict = ("InProgress", "Progressing");
const SUSPENDED: Verdict = ("Current", "Suspended");
const REFUSED: Verdict = ("Failed", "Degraded");
const DELETING: Verdict = ("Terminating", "Progressing");
/// `ObserveOnly` and the cloud differs: nothing for the operator to do, something to look at.
const DRIFT: Verdict = ("Current", "Degraded");

/// One object: the status the builder makes from `steps` (report, generation), at
/// `generation`, being deleted or not.
struct Row {
    what: String,
    steps: Vec<(StatusReport, i64)>,
    generation: i64,
    deleting: bool,
    observe_only: bool,
    want: Verdict,
}

fn row(what: impl Into<String>, steps: Vec<StatusReport>, want: Verdict) -> Row {
    Row {
        what: what.into(),
        steps: steps.into_iter().map(|r| (r, 1)).collect(),
        generation: 1,
        deleting: false,
        observe_only: false,
        want,
    }
}

impl Row {
    fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }
    fn observe_only(mut self) -> Self {
        self.observe_only = true;
        self
    }
}

fn in_sync() -> StatusReport {
    StatusReport {
        ready: Some(CondValue::yes(
            Reason::Available,
            "the cloud entry matches the spec",
        )),
        synced: Some(CondValue::yes(Reason::Synced, "")),
        ..Default::default()
    }
}

/// Both conditions False for `reason`; `cause` as a failed reconcile gives it.
fn both_no(reason: Reason, cause: Option<Policy>) -> StatusReport {
    StatusReport {
        ready: Some(CondValue::no(reason.clone(), "m")),
        synced: Some(CondValue::no(reason, "m")),
        cause,
        ..Default::default()
    }
}

fn synced_no(reason: Reason, cause: Option<Policy>) -> StatusReport {
    StatusReport {
        synced: Some(CondValue::no(reason, "m")),
        cause,
        ..Default::default()
    }
}

/// Ready as in sync, Synced False for `reason`.
fn ready_not_synced(reason: Reason, message: &str) -> StatusReport {
    StatusReport {
        synced: Some(CondValue::no(reason, message)),
        ..in_sync()
    }
}

fn paused() -> StatusReport {
    synced_no(Reason::Paused, None)
}

fn of_class(class: ErrorClass) -> Option<Policy> {
    Some(Policy::of_class(class))
}

/// What the verdict table says of a failure with this policy: refused until someone acts when
/// the spec or something outside must change, except conflicts with a pair's other entry,
/// which clear by themselves (the busy pace); anything else passes and is retried.
fn failed_with(p: Policy) -> Verdict {
    let needs_someone = matches!(
        p.class,
        ErrorClass::NeedsSpecChange | ErrorClass::NeedsOutsideAction
    ) && p.pace != Pace::Busy;
    if needs_someone { REFUSED } else { PROGRESSING }
}

/// The one row of a reason only an `ObserveOnly` route reports.
fn observing(what: &str, report: StatusReport, verdict: Verdict) -> Vec<Row> {
    vec![row(what, vec![report], verdict).observe_only()]
}

/// The rows of a reason: the situations in which status carries it.
fn rows(reason: &Reason) -> Vec<Row> {
    let r = reason.clone();
    let refused = |what: &str| vec![row(what, vec![both_no(r.clone(), None)], REFUSED)];
    match reason {
        Reason::Available | Reason::Synced => vec![row("in sync", vec![in_sync()], HEALTHY)],
        // Events: published with the status of the outcome they announce.
        Reason::Created | Reason::Updated => {
            vec![row("created or updated, in sync", vec![in_sync()], HEALTHY)]
        }
        Reason::Deleted => {
            vec![row("deleted, the finalizer goes", vec![in_sync()], DELETING).deleting()]
        }
        Reason::Creating => vec![row(
            "a create queued, in flight or not yet listed",
            vec![both_no(Reason::Creating, None)],
            PROGRESSING,
        )],
        Reason::Updating => vec![
            Row {
                generation: 2,
                ..row(
                    "edited, the change queued (nothing written yet)",
                    vec![in_sync()],
                    PROGRESSING,
                )
            },
            Row {
                steps: vec![(in_sync(), 1), (StatusReport::default(), 2)],
                generation: 2,
                ..row(
                    "edited, the change under way (written)",
                    vec![],
                    PROGRESSING,
                )
            },
            row(
                "drift being repaired",
                vec![
                    in_sync(),
                    StatusReport {
                        changing: true,
                        ..Default::default()
                    },
                ],
                PROGRESSING,
            ),
        ],
        Reason::Paused => vec![
            row("paused in sync", vec![in_sync(), paused()], SUSPENDED),
            row(
                "paused while creating",
                vec![both_no(Reason::Creating, None), paused()],
                SUSPENDED,
            ),
            row(
                "paused while refused",
                vec![both_no(Reason::AlreadyExists, None), paused()],
                SUSPENDED,
            ),
            Row {
                steps: vec![(in_sync(), 1), (paused(), 2)],
                generation: 2,
                ..row("edited and paused", vec![], SUSPENDED)
            },
        ],
        Reason::InvalidSpec => refused("the spec breaks a rule"),
        Reason::DuplicateRoute => refused("an older object claims the entry"),
        Reason::PublishConflict => refused("publishing would change an entry not ours"),
        Reason::AlreadyExists => refused("the entry exists, no consent to adopt"),
        Reason::CredentialsSecretInvalid => refused("the credentials Secret is unusable"),
        Reason::CredentialsSecretUnlabelled => {
            refused("the credentials Secret lacks the credentials label")
        }
        Reason::InvalidObject => refused("the object lacks a field"),
        Reason::AccountRequired => refused("no account named, and one is required"),
        Reason::AccountNotFound => refused("the named account does not exist"),
        Reason::AccountForbidden => refused("the account does not admit the route"),
        Reason::AdoptionForbidden => refused("the account does not allow adoption"),
        Reason::CredentialsUnavailable => refused("the account's credentials cannot be had"),
        Reason::AccountInUse => refused("an account kept for the routes that hold it"),
        Reason::NotFound => observing(
            "ObserveOnly, no such entry",
            both_no(Reason::NotFound, None),
            REFUSED,
        ),
        Reason::Drift => observing(
            "ObserveOnly, the cloud differs",
            ready_not_synced(Reason::Drift, "weight differs"),
            DRIFT,
        ),
        Reason::Adopted => vec![
            row(
                "adopted, changing what differs",
                vec![ready_not_synced(
                    Reason::Adopted,
                    "adopted; changing weight",
                )],
                PROGRESSING,
            ),
            row("adopted, in sync", vec![in_sync()], HEALTHY),
        ],
        Reason::CleanupBlocked | Reason::AccountUnproven => vec![
            row(
                "a cleanup blocked until someone acts",
                vec![
                    in_sync(),
                    both_no(
                        Reason::CleanupBlocked,
                        of_class(ErrorClass::NeedsOutsideAction),
                    ),
                ],
                DELETING,
            )
            .deleting(),
        ],
        Reason::KubernetesApiError => vec![
            row(
                "a Kubernetes call failed for a moment",
                vec![both_no(r.clone(), of_class(ErrorClass::Transient))],
                PROGRESSING,
            ),
            row(
                "RBAC refuses the operator",
                vec![both_no(r.clone(), of_class(ErrorClass::NeedsOutsideAction))],
                REFUSED,
            ),
        ],
        Reason::Cloud(code) => cloud_rows(code, cloud_policy(code)),
    }
}

/// The policy a code's failure carries: the table's row, else the class the client gives its
/// own words and codes nobody listed.
fn cloud_policy(code: &str) -> Policy {
    known_codes()
        .find(|(c, _)| *c == code)
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            Policy::of_class(match code {
                "Timeout" | "ConnectionFailed" | "MalformedResponse" | "StsUnavailable" => {
                    ErrorClass::Transient
                }
                _ => ErrorClass::NeedsOutsideAction,
            })
        })
}

fn cloud_rows(code: &str, p: Policy) -> Vec<Row> {
    let r = Reason::Cloud(code.to_owned());
    // A stall reports the reason alone: the builder takes the table's row for it, and a code
    // the table does not name as passing.
    let listed = known_codes().any(|(c, _)| c == code);
    let stall = if listed { failed_with(p) } else { PROGRESSING };
    let mut rows = vec![
        row(
            format!("a change failed: {code}"),
            vec![both_no(r.clone(), Some(p))],
            failed_with(p),
        ),
        // The scheduler's reads for a queued create keep failing: its route says so in Synced.
        row(
            format!("a queued create whose gateway reads fail: {code}"),
            vec![both_no(Reason::Creating, None), synced_no(r.clone(), None)],
            stall,
        ),
        row(
            format!("a deletion failed: {code}"),
            vec![in_sync(), both_no(r.clone(), Some(p))],
            DELETING,
        )
        .deleting(),
    ];
    if matches!(p.class, ErrorClass::Transient | ErrorClass::Throttled) {
        // A failed read keeps a Ready route Ready (only Synced says it).
        rows.push(row(
            format!("a failed read on a Ready route: {code}"),
            vec![in_sync(), synced_no(r, Some(p))],
            HEALTHY,
        ));
    }
    rows
}

/// The object of a row, as JSON (what the tools read from the API server).
fn object(i: usize, row: &Row) -> serde_json::Value {
    let mut spec = spec(
        "vpn-gitops",
        "192.168.1.0/24",
        "10.0.0.0/16",
        "vco-gitops",
        100,
    );
    if row.observe_only {
        spec["managementPolicy"] = "ObserveOnly".into();
    }
    let mut route = route_object(&format!("route-{i}"), spec);
    route.metadata.namespace = Some("gitops".into());
    route.metadata.generation = Some(row.generation);
    route.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    let status = row.steps.iter().fold(None, |status, (report, generation)| {
        Some(build(
            status.as_ref(),
            report.clone(),
            Some(*generation),
            "2026-01-01T00:00:00Z",
        ))
    });
    route.status = status;
    let mut v = serde_json::to_value(&route).expect("route as JSON");
    if row.deleting {
        v["metadata"]["deletionTimestamp"] = "2026-01-01T00:05:00Z".into();
    }
    v
}

/// The tool's verdicts, one per object.
fn verdicts(objects: &[serde_json::Value]) -> Vec<(String, String)> {
    let tool = match std::env::var_os("GITOPS_VERDICTS") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => panic!(
            "GITOPS_VERDICTS is not set: build the tool with `hack/gitops-verdicts/build.sh` (or \
             `make tools`) and run `source <(hack/tools.sh --env)` (make test does both)"
        ),
    };
    assert!(
        tool.is_file(),
        "{} is missing: build it with `hack/gitops-verdicts/build.sh` (or `make tools`) and run \
         `source <(hack/tools.sh --env)` again",
        tool.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/health.lua");
    let mut child = Command::new(&tool)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gitops-verdicts");
    let mut input = String::new();
    for o in objects {
        input.push_str(&serde_json::to_string(o).expect("JSON line"));
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("run gitops-verdicts");
    writer.join().expect("writer").expect("write objects");
    assert!(
        out.status.success(),
        "gitops-verdicts failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| {
            let (k, a) = l.split_once('\t').expect("kstatus<TAB>argo");
            (k.to_owned(), a.to_owned())
        })
        .collect()
}

#[test]
fn gitops_tools_read_every_status_as_documented() {
    let client_words = ["Timeout", "ConnectionFailed", "CredentialsNotConfigured"];
    let reasons: Vec<Reason> = named_reasons()
        .chain(known_codes().map(|(code, _)| Reason::Cloud(code.to_owned())))
        .chain(client_words.map(|w| Reason::Cloud(w.to_owned())))
        .collect();
    let mut table = Vec::new();
    for reason in &reasons {
        let of_reason = rows(reason);
        assert!(!of_reason.is_empty(), "{reason}: no row");
        table.extend(of_reason.into_iter().map(|r| (reason.to_string(), r)));
    }
    let objects: Vec<_> = table
        .iter()
        .enumerate()
        .map(|(i, (_, r))| object(i, r))
        .collect();
    let got = verdicts(&objects);
    assert_eq!(got.len(), table.len(), "one verdict per object");
    let mut wrong = Vec::new();
    for (((reason, row), (kstatus, argo)), object) in table.iter().zip(&got).zip(&objects) {
        if (kstatus.as_str(), argo.as_str()) != row.want {
            wrong.push(format!(
                "{reason}: {}: got {kstatus}/{argo}, want {}/{}\n  status: {}",
                row.what, row.want.0, row.want.1, object["status"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows differ:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
    // The refusals the verdict table names are among the refused rows.
    for code in [
        "InvalidNextHop.NotFound",
        "InvalidVpnGatewayInstanceId.NotFound",
        "Forbidden",
        "Resource.QuotaFull",
        "QuotaExceeded.VpnRouteEntry",
        "IllegalParam.RouteDest",
    ] {
        assert_eq!(failed_with(cloud_policy(code)), REFUSED, "{code}");
    }
    for code in [
        "VpnRouteEntry.BackupRoute",
        "VpnGateway.Configuring",
        "Throttling",
        "InternalError",
        "ListInconsistent",
        "VpnRouteEntry.AlreadyExists",
        "VpnPbrRouteEntry.NotFound",
    ] {
        assert_eq!(failed_with(cloud_policy(code)), PROGRESSING, "{code}");
    }
    eprintln!(
        "{} rows ({} reasons and codes) read as documented by kstatus and Argo CD",
        table.len(),
        reasons.len()
    );
}
