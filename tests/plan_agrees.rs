//! `plan` and the operator agree: for each situation, what `plan -o json` predicts (its action
//! and the API calls it lists) is what the real operator then does on the `vpc-emulator` binary
//! and what the route's status says once it settles. The operator is stopped while `plan`
//! runs, so nothing moves under it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::cli::{CliEnv, calls, route, spec, write_annotated};
use support::emulator::EntryKey;
use vpn_pbr_operator::api::v1alpha1::{
    ADOPT_ANNOTATION, ConditionStatus, PAUSED_ANNOTATION, VpnPbrRoute,
};

/// How long the operator may take to settle every route of the test.
const SETTLE: Duration = Duration::from_secs(120);
/// Longer than the operator's resync in the tests (3 s): calls still to come show up by then.
const QUIET: Duration = Duration::from_secs(5);

/// One route of the test: its name, annotations and spec before (`None`: not in the cluster
/// beforehand) and as the manifests have it, and the action the situation is meant to give.
struct Case {
    name: &'static str,
    before: Option<Value>,
    annotations: Value,
    after: Value,
    meant: &'static str,
}

fn gw_a(src: &str, dst: &str, hop: &str, weight: i32) -> Value {
    spec("vpn-gw-a", src, dst, hop, weight)
}

fn gw_b(src: &str, dst: &str, hop: &str) -> Value {
    spec("vpn-gw-b", src, dst, hop, 100)
}

fn with(mut spec: Value, field: &str, value: Value) -> Value {
    spec[field] = value;
    spec
}

fn cases() -> Vec<Case> {
    let pair_active = gw_a("192.168.1.0/24", "10.1.0.0/16", "vco-gw-a-1", 100);
    let pair_standby = gw_a("192.168.1.0/24", "10.1.0.0/16", "vco-gw-a-2", 0);
    let prio = gw_a("192.168.2.0/24", "10.2.0.0/16", "vco-gw-a-1", 100);
    let same = gw_b("192.168.3.0/24", "10.3.0.0/16", "vco-gw-b-1");
    let publish = gw_a("192.168.11.0/24", "10.11.0.0/16", "vco-gw-a-1", 100);
    let remade = gw_a("192.168.12.0/24", "10.12.0.0/16", "vco-gw-a-1", 100);
    let paused = gw_a("192.168.13.0/24", "10.13.0.0/16", "vco-gw-a-1", 100);
    let pub_old = gw_a("192.168.14.0/24", "10.14.0.0/16", "vco-gw-a-1", 100);
    let dup = gw_b("192.168.16.0/24", "10.16.0.0/16", "vco-gw-b-2");
    let none = || json!({});
    let case = |name, before: Option<&Value>, annotations, after, meant| Case {
        name,
        before: before.cloned(),
        annotations,
        after,
        meant,
    };
    vec![
        case(
            "new-ok",
            None,
            none(),
            gw_b("192.168.7.0/24", "10.7.0.0/16", "vco-gw-b-1"),
            "create",
        ),
        case("same", Some(&same), none(), same.clone(), "nothing"),
        case(
            "prio",
            Some(&prio),
            none(),
            with(prio.clone(), "priority", json!(30)),
            "modify",
        ),
        case(
            "publish",
            Some(&publish),
            none(),
            with(publish.clone(), "publishVpc", json!(true)),
            "modify",
        ),
        // The pair swaps roles.
        case(
            "pair-active",
            Some(&pair_active),
            none(),
            with(pair_active.clone(), "weight", json!(0)),
            "modify",
        ),
        case(
            "pair-standby",
            Some(&pair_standby),
            none(),
            with(pair_standby.clone(), "weight", json!(100)),
            "replace",
        ),
        // Made in the console (below), named without consent.
        case(
            "stranger",
            None,
            none(),
            gw_a("192.168.5.0/24", "10.5.0.0/16", "vco-gw-a-2", 100),
            "conflict AlreadyExists",
        ),
        // Made in the console (below), named with consent.
        case(
            "adoptee",
            None,
            json!({ ADOPT_ANNOTATION: "true" }),
            gw_a("192.168.15.0/24", "10.15.0.0/16", "vco-gw-a-2", 100),
            "adopt",
        ),
        // Made by the operator, then deleted and made again outside it (below).
        case(
            "remade",
            Some(&remade),
            none(),
            remade.clone(),
            "conflict AlreadyExists",
        ),
        case(
            "paused",
            Some(&paused),
            json!({ PAUSED_ANNOTATION: "true" }),
            with(paused.clone(), "priority", json!(40)),
            "nothing",
        ),
        // Two manifests naming one entry: the younger (by name, applied second) loses.
        case("dup-a", None, none(), dup.clone(), "create"),
        case("dup-b", None, none(), dup.clone(), "error DuplicateRoute"),
        // An account the cluster does not have: refused before any call, by plan and operator.
        case(
            "no-account",
            None,
            none(),
            with(
                gw_b("192.168.18.0/24", "10.18.0.0/16", "vco-gw-b-1"),
                "accountRef",
                json!("no-such-account"),
            ),
            "error AccountNotFound",
        ),
        // Gateway, destination and next hop of pub-old, another source, published.
        case(
            "pub-old",
            Some(&pub_old),
            none(),
            pub_old.clone(),
            "nothing",
        ),
        case(
            "pub-young",
            None,
            none(),
            with(
                with(pub_old.clone(), "routeSource", json!("192.168.17.0/24")),
                "publishVpc",
                json!(true),
            ),
            "conflict PublishConflict",
        ),
    ]
}

/// What the route's status must come to, by plan's prediction.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Ready=True and Synced=True; `adopted` also `status.adopted: true`.
    Ready { adopted: bool },
    /// Ready=False with this reason.
    Refused(String),
    /// Synced=False reason Paused.
    Paused,
}

/// Plan's action, with the problem's code when it has one: `conflict AlreadyExists`.
fn predicted(r: &Value) -> String {
    let action = r["action"].as_str().unwrap_or("?");
    match r["problem"]["code"].as_str() {
        Some(code) => format!("{action} {code}"),
        None => action.to_owned(),
    }
}

fn expectation(predicted: &str, paused: bool) -> Option<Expect> {
    Some(match predicted {
        "nothing" if paused => Expect::Paused,
        "create" | "modify" | "replace" | "nothing" => Expect::Ready { adopted: false },
        "adopt" => Expect::Ready { adopted: true },
        "conflict AlreadyExists"
        | "conflict PublishConflict"
        | "error DuplicateRoute"
        | "error AccountNotFound" => {
            Expect::Refused(predicted.rsplit(' ').next().unwrap_or_default().to_owned())
        }
        _ => return None,
    })
}

/// The condition `type_` with this status (and reason), describing the current generation.
fn condition_is(
    r: &VpnPbrRoute,
    type_: &str,
    status: ConditionStatus,
    reason: Option<&str>,
) -> bool {
    let generation = r.metadata.generation;
    r.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions.iter().any(|c| {
                c.type_ == type_
                    && c.status == status
                    && reason.is_none_or(|x| c.reason == x)
                    && c.observed_generation.is_none_or(|g| Some(g) == generation)
            })
    })
}

fn settled(r: &VpnPbrRoute, e: &Expect) -> bool {
    match e {
        Expect::Ready { adopted } => {
            condition_is(r, "Ready", ConditionStatus::True, None)
                && condition_is(r, "Synced", ConditionStatus::True, None)
                && (!adopted || r.status.as_ref().and_then(|s| s.adopted) == Some(true))
        }
        Expect::Refused(reason) => condition_is(r, "Ready", ConditionStatus::False, Some(reason)),
        Expect::Paused => condition_is(r, "Synced", ConditionStatus::False, Some("Paused")),
    }
}

/// The status in one line: conditions, generation, adoption.
fn outcome(r: Option<&VpnPbrRoute>) -> String {
    let Some(r) = r else {
        return "no object".into();
    };
    let Some(s) = &r.status else {
        return "no status".into();
    };
    let conds: Vec<String> = s
        .conditions
        .iter()
        .map(|c| format!("{}={:?} {} ({})", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "{}; generation {:?} observed {:?}; adopted {:?}",
        conds.join(", "),
        r.metadata.generation,
        s.observed_generation,
        s.adopted
    )
}

/// Accepted calls by action: `after` less `before`.
fn accepted(
    before: &BTreeMap<(String, String), u64>,
    after: &BTreeMap<(String, String), u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|((_, code), _)| code == "Success")
        .map(|((action, code), n)| {
            let was = before
                .get(&(action.clone(), code.clone()))
                .copied()
                .unwrap_or(0);
            (action.clone(), n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test]
async fn plan_predicts_what_the_operator_does() -> anyhow::Result<()> {
    let cases = cases();
    let mut env = CliEnv::start("agree").await?;

    // 1. The routes the operator made and owns.
    env.operator();
    let before_dir = env.dir.path().join("before");
    let before: Vec<(&str, Value, Value)> = cases
        .iter()
        .filter_map(|c| c.before.clone().map(|s| (c.name, json!({}), s)))
        .collect();
    env.kubectl_apply(&write_annotated(&before_dir, &before));
    for (name, _, _) in &before {
        env.ready(name).await?;
    }
    env.stop_operator();
    // Entries made outside the operator: two in the console, and one the operator made,
    // deleted and made again (same key, a new CreateTime).
    for (src, dst) in [
        ("192.168.5.0/24", "10.5.0.0/16"),
        ("192.168.15.0/24", "10.15.0.0/16"),
    ] {
        let key = EntryKey::new(src, dst, "vco-gw-a-2");
        env.emu
            .console("create", "vpn-gw-a", &key, Some(100))
            .await?;
    }
    let key = EntryKey::new("192.168.12.0/24", "10.12.0.0/16", "vco-gw-a-1");
    let made = env.emu.entry("vpn-gw-a", &key).await?.expect("remade");
    env.emu.console("delete", "vpn-gw-a", &key, None).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    env.emu
        .console("create", "vpn-gw-a", &key, Some(100))
        .await?;
    let again = env
        .emu
        .entry("vpn-gw-a", &key)
        .await?
        .expect("remade again");
    assert_ne!(made["CreateTime"], again["CreateTime"], "{made} {again}");

    // 2. The plan, the operator stopped.
    let git = env.dir.path().join("git");
    let after: Vec<(&str, Value, Value)> = cases
        .iter()
        .map(|c| (c.name, c.annotations.clone(), c.after.clone()))
        .collect();
    let git_s = write_annotated(&git, &after).to_string_lossy().into_owned();
    let kubeconfig = support::plane().kubeconfig.to_string_lossy().into_owned();
    let (_, report) = env.plan_json(&["-f", &git_s, "--kubeconfig", &kubeconfig, "-n", &env.ns]);
    let mut problems = Vec::new();
    let mut expect = BTreeMap::new();
    let mut predicted_calls: BTreeMap<String, u64> = BTreeMap::new();
    for c in &cases {
        let r = route(&report, c.name);
        let p = predicted(r);
        if p != c.meant {
            problems.push(format!(
                "{}: the situation is meant to plan `{}`, plan says `{p}`",
                c.name, c.meant
            ));
        }
        let paused = c.annotations.get(PAUSED_ANNOTATION).is_some();
        if paused && !calls(r).is_empty() {
            problems.push(format!(
                "{}: paused, yet plan lists calls {:?}",
                c.name,
                calls(r)
            ));
        }
        for call in calls(r) {
            *predicted_calls.entry(call).or_default() += 1;
        }
        match expectation(&p, paused) {
            Some(e) => {
                expect.insert(c.name, e);
            }
            None => problems.push(format!(
                "{}: plan says `{p}`, not mapped by this test",
                c.name
            )),
        }
    }

    // 3. The same manifests applied, the operator started until every route settles.
    let calls_before = env.mutation_calls().await?;
    env.kubectl_apply(&git);
    env.operator();
    let deadline = tokio::time::Instant::now() + SETTLE;
    let mut last: BTreeMap<&str, Option<VpnPbrRoute>> = BTreeMap::new();
    loop {
        let mut waiting = 0;
        for (name, e) in &expect {
            let r = env.api.get_opt(name).await?;
            if !r.as_ref().is_some_and(|r| settled(r, e)) {
                waiting += 1;
            }
            last.insert(*name, r);
        }
        if waiting == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No call still to come: the counters hold still over a resync.
    let mut calls_after = env.mutation_calls().await?;
    loop {
        tokio::time::sleep(QUIET).await;
        let now = env.mutation_calls().await?;
        if now == calls_after || tokio::time::Instant::now() >= deadline {
            calls_after = now;
            break;
        }
        calls_after = now;
    }
    for name in expect.keys() {
        last.insert(*name, env.api.get_opt(name).await?);
    }
    let log = env.logs();
    env.stop_operator();

    // 4. What plan said is what the operator did.
    for (name, e) in &expect {
        let r = last.get(name).and_then(Option::as_ref);
        let planned = route(&report, name);
        println!(
            "{name}: plan `{}` {:?}; the operator: {}",
            predicted(planned),
            calls(planned),
            outcome(r)
        );
        if !r.is_some_and(|r| settled(r, e)) {
            problems.push(format!(
                "{name}: plan says `{}` (status {e:?}); the operator: {}",
                predicted(route(&report, name)),
                outcome(r)
            ));
        }
    }
    let done = accepted(&calls_before, &calls_after);
    println!("calls: plan {predicted_calls:?}; the operator {done:?}");
    if done != predicted_calls {
        problems.push(format!(
            "calls: plan predicts {predicted_calls:?}; the operator made {done:?}"
        ));
    }
    assert!(
        problems.is_empty(),
        "plan and the operator disagree:\n{}\n--- operator log (tail) ---\n{}",
        problems.join("\n"),
        support::env::tail(&log, 80)
    );
    Ok(())
}
