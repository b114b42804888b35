//! The monitoring kit of the chart (`monitoring.*` values): the PrometheusRule's alerts pass
//! `promtool check rules` and the unit tests of `tests/monitoring/alerts.test.yaml` (every alert
//! has one where it fires and one where it does not), each alert links to its section of
//! `docs/runbooks.md`, every expression of the Grafana dashboard parses, and every metric the
//! alerts and the dashboard use is one a real operator process exports.
//!
//! The chart is rendered with `tests/monitoring/values.yaml`. helm and promtool come from
//! `HELM_BIN_DIR` / `PROMTOOL_BIN_DIR` (exported by `make test`) or the caches that
//! `hack/helm/build.sh` and `hack/promtool/build.sh` fill; when one is missing the tests fail
//! and say how to build it.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::command::run_ok;
use support::emulator::EntryKey;
use support::env::{RouteEnv as Env, WAIT};
use support::route::spec;
use support::{chart_dir, eventually_ok, repo_root};
use vpn_pbr_harness::tools;
use vpn_pbr_operator::api::v1alpha1::VpnAccount;

const RELEASE_NS: &str = "vpn-pbr-system";

fn values_file() -> PathBuf {
    repo_root().join("tests/monitoring/values.yaml")
}

fn promtool() -> PathBuf {
    tools::promtool().unwrap_or_else(|e| panic!("{e:#}"))
}

/// The chart's objects with the monitoring values.
fn rendered() -> Vec<Value> {
    let helm = tools::helm().unwrap_or_else(|e| panic!("{e:#}"));
    let yaml = run_ok(
        Command::new(helm)
            .args(["template", "pbr"])
            .arg(chart_dir())
            .args(["--namespace", RELEASE_NS, "-f"])
            .arg(values_file()),
        None,
    )
    .unwrap_or_else(|e| panic!("helm template: {e:#}"));
    // Empty documents (templates that render nothing) are left out.
    serde_saphyr::from_multiple(&yaml).expect("rendered YAML parses")
}

fn one_of(docs: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0].clone()
}

/// The alerting rules of the PrometheusRule.
fn alerts(docs: &[Value]) -> Vec<Value> {
    one_of(docs, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// The dashboard JSON of the ConfigMap, with the ConfigMap's labels.
fn dashboard(docs: &[Value]) -> (Value, Value) {
    let cm = one_of(docs, "ConfigMap");
    let text = cm["data"]["vpn-pbr-operator.json"]
        .as_str()
        .expect("dashboard in the ConfigMap");
    let json = serde_json::from_str(text).expect("dashboard JSON parses");
    (json, cm["metadata"]["labels"].clone())
}

/// Every query of the dashboard's panels (rows' panels too), with its panel's title.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let title = p["title"].as_str().unwrap_or_default().to_owned();
                out.push((title, t["expr"].as_str().expect("expr").to_owned()));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// A dashboard query as Prometheus sees it: Grafana's variables replaced by values.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "5m")
        .replace("$namespace", RELEASE_NS)
}

/// `promtool args` in `dir`; its output, or a panic with it.
fn promtool_ok(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// `rules.yaml` in `dir`: a rules file of these groups.
fn write_rules(dir: &Path, groups: &Value) {
    let text = serde_saphyr::to_string(&json!({ "groups": groups })).expect("rules YAML");
    std::fs::write(dir.join("rules.yaml"), text).expect("write rules.yaml");
}

/// The `vpn_pbr_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("vpn_pbr_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let docs = rendered();
    let rule = one_of(&docs, "PrometheusRule");
    let dir = tempfile::tempdir().expect("temp dir");
    let groups = serde_json::to_value(&rule["spec"]["groups"]).expect("groups as JSON");
    write_rules(dir.path(), &groups);
    std::fs::copy(
        repo_root().join("tests/monitoring/alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .expect("copy the unit tests");
    let checked = promtool_ok(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts(&docs).len())),
        "{checked}"
    );
    let tested = promtool_ok(dir.path(), &["test", "rules", "alerts.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() {
    let names: BTreeSet<String> = alerts(&rendered())
        .iter()
        .map(|r| r["alert"].as_str().expect("an alerting rule").to_owned())
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    let text = std::fs::read_to_string(repo_root().join("tests/monitoring/alerts.test.yaml"))
        .expect("alerts.test.yaml");
    let tests: Value = serde_saphyr::from_str(&text).expect("parse alerts.test.yaml");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().expect("tests") {
        for check in t["alert_rule_test"].as_array().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            assert!(names.contains(&name), "a test of an unknown alert {name}");
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                fires.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    assert_eq!(fires, names, "alerts without a test where they fire");
    assert_eq!(
        silent, names,
        "alerts without a test where they stay silent"
    );
}

/// GitHub's anchor of a Markdown heading (lower case, spaces to dashes, punctuation dropped).
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_links_to_its_section_of_the_runbooks() {
    let base = "https://docs.example.com/vpn-pbr-operator/docs/runbooks.md#";
    let runbooks =
        std::fs::read_to_string(repo_root().join("docs/runbooks.md")).expect("docs/runbooks.md");
    let sections: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let mut linked = BTreeSet::new();
    for rule in alerts(&rendered()) {
        let name = rule["alert"].as_str().expect("alert");
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let section = url
            .strip_prefix(base)
            .unwrap_or_else(|| panic!("{name}: {url} is not under {base}"));
        assert_eq!(section, anchor(name), "{name} links to its own section");
        assert!(
            sections.contains(section),
            "{name}: no section #{section} in docs/runbooks.md ({sections:?})"
        );
        for key in ["summary", "description"] {
            assert!(rule["annotations"][key].as_str().is_some(), "{name} {key}");
        }
        linked.insert(section.to_owned());
    }
    assert_eq!(linked, sections, "every runbook section is an alert's");
}

#[test]
fn every_dashboard_query_parses_and_the_sidecar_label_is_set() {
    let (dash, labels) = dashboard(&rendered());
    assert_eq!(labels["grafana_dashboard"].as_str(), Some("1"));
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 15, "{queries:?}");
    // promtool parses each query as the expression of a recording rule.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(
            |(i, (_, q))| json!({ "record": format!("dashboard_query_{i}"), "expr": as_promql(q) }),
        )
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    write_rules(
        dir.path(),
        &json!([{ "name": "dashboard", "rules": rules }]),
    );
    let checked = promtool_ok(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{checked}"
    );
    for (title, q) in &queries {
        assert!(
            q.contains("namespace=~\"$namespace\""),
            "{title}: {q} selects the dashboard's namespace"
        );
    }
}

/// The metric names an operator's `/metrics` text exports: its samples, histograms by their
/// base name, and the families it declares (`# TYPE`), a counter by its `_total` sample.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "counter" {
                names.insert(format!("{name}_total"));
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// A referenced name as exported: a histogram's series by the histogram.
fn base_name(name: &str, exported: &BTreeSet<String>) -> String {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|b| exported.contains(*b)))
        .unwrap_or(name)
        .to_owned()
}

#[tokio::test]
async fn every_metric_of_the_alerts_and_the_dashboard_is_exported_by_the_operator()
-> anyhow::Result<()> {
    let docs = rendered();
    let mut referenced = BTreeSet::new();
    for rule in alerts(&docs) {
        referenced.extend(metric_names(rule["expr"].as_str().expect("expr")));
    }
    for (_, q) in dashboard_queries(&dashboard(&docs).0) {
        referenced.extend(metric_names(&q));
    }

    // A route made Ready, then changed and deleted behind the operator's back: the operator
    // repairs both (drift), and an account whose role cannot be assumed (the emulator's account
    // has no such role), so every family has a sample.
    let env = Env::start("monitoring", 100, &[], &[]).await?;
    let broken = format!("{}-no-role", env.ns);
    let accounts: Api<DynamicObject> =
        Api::all_with(env.client.clone(), &ApiResource::erase::<VpnAccount>(&()));
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
                "metadata": {"name": broken},
                "spec": {"credentials": {"assumeRole": {
                    "roleArn": "acs:ram::1234567890123456:role/missing"}},
                    "namespaceSelector": {}}
            }))?,
        )
        .await?;
    let failing = format!(
        r#"vpn_pbr_account_credentials_failing{{account="{broken}",reason="EntityNotExist.Role"}} 1"#
    );
    let (wgt, del) = (
        EntryKey::new("192.168.5.0/24", "10.5.0.0/16", "vco-gw-b-1"),
        EntryKey::new("192.168.6.0/24", "10.6.0.0/16", "vco-gw-b-1"),
    );
    let route = |k: &EntryKey<'_>| spec("vpn-gw-b", k.source, k.dest, k.next_hop, 100);
    env.apply_ready(&[("wgt", route(&wgt)), ("del", route(&del))])
        .await?;
    env.emu.console("modify", "vpn-gw-b", &wgt, Some(0)).await?;
    env.emu.console("delete", "vpn-gw-b", &del, None).await?;
    let drift = r#"vpn_pbr_drift_detected_total{policy="Full"} 2"#;
    let failing = failing.as_str();
    let last = std::sync::Mutex::new(String::new());
    let text = eventually_ok(
        WAIT,
        "both repairs counted as drift, the account failing",
        || async {
            let text = env.op.metrics().await?;
            let repaired = env
                .emu
                .entry("vpn-gw-b", &wgt)
                .await?
                .map(|e| e["Weight"].clone())
                == Some(json!(100))
                && env.emu.entry("vpn-gw-b", &del).await?.is_some();
            let found = text.lines().any(|l| l == drift);
            let failing = text.lines().any(|l| l == failing);
            *last.lock().expect("last") = format!("repaired: {repaired}\n{text}");
            Ok((repaired && found && failing).then_some(text))
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\n--- last /metrics ---\n{}\n--- operator log ---\n{}",
            last.lock().expect("last"),
            env.log_tail()
        )
    })?;

    let exported = exported_names(&text);
    let missing: Vec<_> = referenced
        .iter()
        .filter(|n| !exported.contains(&base_name(n, &exported)))
        .collect();
    assert!(
        missing.is_empty(),
        "used by the alerts or the dashboard, not exported: {missing:?}\n{text}"
    );
    for line in [
        "vpn_pbr_leader 1".to_owned(),
        format!(
            r#"vpn_pbr_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
        "vpn_pbr_route_time_to_ready_seconds_count 2".to_owned(),
        "vpn_pbr_routes_cleanup_blocked 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // The gauges follow the routes on their tick: both back in sync.
    eventually_ok(WAIT, "both routes counted Synced", || async {
        let text = env.op.metrics().await?;
        Ok(text
            .lines()
            .any(|l| l == r#"vpn_pbr_routes_synced{synced="true"} 2"#)
            .then_some(()))
    })
    .await?;
    Ok(())
}
