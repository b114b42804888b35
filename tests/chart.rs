//! The Helm chart (`deploy/helm/vpn-pbr-operator`): `helm lint --strict`, `helm template` with
//! the default values and with every optional feature on (`ci/all-features-values.yaml`), each
//! validated by `kubectl apply --dry-run=server` against the real kube-apiserver of the test
//! harness, plus checks on the rendered objects (hardening, least-privilege RBAC, credentials
//! wiring), on refused values, on documentation, and that the chart renders the generated CRD.
//!
//! helm comes from `HELM_BIN_DIR` (exported by `make test`) or the cache that
//! `hack/helm/build.sh` fills; when it is missing the tests fail and say how to build it.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::Value;
use support::command::{run, run_ok};
use support::{ControlPlane, chart_dir, plane, repo_root};
use vpn_pbr_harness::{Tools, tools};

const RELEASE: &str = "pbr";
const CRD_FILE: &str = "vpnpbrroutes.vpn.alicloud.dev.yaml";

fn all_features_values() -> PathBuf {
    chart_dir().join("ci/all-features-values.yaml")
}

/// `helm template` of the chart into namespace `ns` with extra arguments.
fn template_cmd(ns: &str, args: &[&str]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(tools::helm()?);
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", ns])
        .args(args);
    Ok(cmd)
}

fn template(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    run_ok(&mut template_cmd(ns, args)?, None)
}

/// `helm template` that must fail; returns its stderr.
fn template_refused(args: &[&str]) -> anyhow::Result<String> {
    let out = run(&mut template_cmd("ops", args)?, None)?;
    assert!(
        !out.success,
        "helm template {args:?} should have failed, rendered:\n{}",
        out.stdout
    );
    Ok(out.stderr)
}

fn documents(yaml: &str) -> Vec<Value> {
    // Empty documents (templates that render nothing) are left out.
    serde_saphyr::from_multiple(yaml).expect("rendered YAML parses")
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind_of(d) == kind).collect()
}

fn one_of<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all_of(docs, kind);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .expect("env list")
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

fn env_str(container: &Value, name: &str) -> Option<String> {
    env_value(container, name).and_then(|e| e["value"].as_str().map(str::to_owned))
}

/// `kubectl apply --dry-run=server` of `yaml` against the test apiserver; every object must
/// be accepted (the output names each one).
fn server_dry_run(cp: &ControlPlane, yaml: &str) -> anyhow::Result<()> {
    let expected = documents(yaml).len();
    let out = run_ok(
        Command::new(Tools::from_env()?.kubectl())
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .args(["apply", "--dry-run=server", "-o", "name", "-f", "-"]),
        Some(yaml),
    )?;
    let applied = out.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(
        applied, expected,
        "server dry run applied {applied} of {expected} objects:\n{out}"
    );
    Ok(())
}

async fn install_crd_file(client: &Client, path: &Path) {
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&std::fs::read_to_string(path).expect("read CRD"))
            .expect("parse CRD");
    let name = crd.metadata.name.clone().expect("CRD name");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("vpn-pbr-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, &name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");
}

fn deployment_container(docs: &[Value]) -> &Value {
    let dep = one_of(docs, "Deployment");
    let containers = dep["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// Hardening every rendering must keep, whatever the values.
fn assert_hardened(docs: &[Value]) {
    let dep = one_of(docs, "Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(65532));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(
        pod["terminationGracePeriodSeconds"].as_u64(),
        Some(60),
        "grace > 30 s cloud call bound"
    );
    let c = deployment_container(docs);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], Value::Bool(true));
    assert_eq!(sc["runAsUser"].as_u64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null(), "no capability added");
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert!(
        c["resources"]["requests"]["memory"].is_string(),
        "memory request set"
    );
    assert!(
        c["resources"]["limits"]["memory"].is_string(),
        "memory limit set"
    );

    let port = c["ports"]
        .as_array()
        .expect("ports")
        .first()
        .expect("a port")
        .clone();
    assert_eq!(port["name"].as_str(), Some("http-metrics"));
    assert_eq!(port["containerPort"].as_u64(), Some(8080));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("http-metrics"), "{probe}");
    }
    assert_eq!(
        env_str(c, "VPN_PBR_METRICS_ADDR").as_deref(),
        Some("0.0.0.0:8080")
    );
    for downward in ["POD_NAMESPACE", "POD_NAME"] {
        let e = env_value(c, downward).unwrap_or_else(|| panic!("{downward} set"));
        assert!(
            e["valueFrom"]["fieldRef"]["fieldPath"].is_string(),
            "{downward} from the downward API"
        );
    }

    for kind in ["ClusterRole", "Role"] {
        for role in all_of(docs, kind) {
            for rule in role["rules"].as_array().expect("rules") {
                for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
                    assert!(
                        !strings(&rule[field]).iter().any(|s| s.contains('*')),
                        "wildcard in {kind} {field}: {rule:?}"
                    );
                }
                assert!(
                    rule["nonResourceURLs"].is_null(),
                    "no nonResourceURLs in {kind}"
                );
            }
        }
    }
}

/// (apiGroup, resource, verbs, resourceNames) for every rule of a role, flattened and sorted.
fn rules(role: &Value) -> Rules {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let mut verbs = strings(&rule["verbs"]);
        verbs.sort();
        let names = strings(&rule["resourceNames"]);
        for group in strings(&rule["apiGroups"]) {
            for res in strings(&rule["resources"]) {
                out.insert((group.clone(), res, verbs.clone(), names.clone()));
            }
        }
    }
    out
}

fn rule(
    group: &str,
    resource: &str,
    verbs: &[&str],
    names: &[&str],
) -> (String, String, Vec<String>, Vec<String>) {
    let mut verbs: Vec<String> = verbs.iter().map(|s| s.to_string()).collect();
    verbs.sort();
    (
        group.into(),
        resource.into(),
        verbs,
        names.iter().map(|s| s.to_string()).collect(),
    )
}

fn base_cluster_rules() -> Rules {
    // Routes and accounts alike: watched, their status and finalizer written.
    let kinds = ["vpnpbrroutes", "vpnaccounts"]
        .into_iter()
        .flat_map(|kind| {
            [
                rule(
                    "vpn.alicloud.dev",
                    kind,
                    &["get", "list", "watch", "patch", "update"],
                    &[],
                ),
                rule(
                    "vpn.alicloud.dev",
                    &format!("{kind}/status"),
                    &["get", "patch", "update"],
                    &[],
                ),
                rule(
                    "vpn.alicloud.dev",
                    &format!("{kind}/finalizers"),
                    &["update"],
                    &[],
                ),
            ]
        });
    let others = [
        // Namespaces: read for their labels and default account.
        rule("", "namespaces", &["get", "list", "watch"], &[]),
        rule("", "events", &["create", "patch"], &[]),
        rule("events.k8s.io", "events", &["create", "patch"], &[]),
        rule(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            &["get"],
            &[
                "vpnpbrroutes.vpn.alicloud.dev",
                "vpnaccounts.vpn.alicloud.dev",
            ],
        ),
    ];
    kinds.chain(others).collect()
}

type Rules = BTreeSet<(String, String, Vec<String>, Vec<String>)>;

/// `get` on Secrets: what a route's `credentialsRef` or an account's `secretRef` needs (the
/// operator reads the Secret by name with one GET).
fn secret_get_rules() -> Rules {
    [rule("", "secrets", &["get"], &[])].into_iter().collect()
}

/// The rules of every Role, by namespace (one Role per namespace).
fn roles_by_namespace(docs: &[Value]) -> std::collections::BTreeMap<String, Rules> {
    let mut out = std::collections::BTreeMap::new();
    for role in all_of(docs, "Role") {
        let ns = role["metadata"]["namespace"]
            .as_str()
            .expect("Role namespace")
            .to_owned();
        assert!(
            out.insert(ns.clone(), rules(role)).is_none(),
            "two Roles in {ns}"
        );
    }
    out
}

/// Every Role has one RoleBinding in its namespace, to the chart's ServiceAccount.
fn assert_role_bindings_match(docs: &[Value]) {
    let sa = one_of(docs, "ServiceAccount");
    let roles = all_of(docs, "Role");
    let bindings = all_of(docs, "RoleBinding");
    assert_eq!(roles.len(), bindings.len(), "one RoleBinding per Role");
    for role in roles {
        let ns = &role["metadata"]["namespace"];
        let rb = bindings
            .iter()
            .find(|b| {
                &b["metadata"]["namespace"] == ns
                    && b["roleRef"]["name"] == role["metadata"]["name"]
            })
            .unwrap_or_else(|| {
                panic!(
                    "no RoleBinding for Role {:?} in {ns:?}",
                    role["metadata"]["name"]
                )
            });
        assert_eq!(rb["roleRef"]["kind"].as_str(), Some("Role"));
        assert_eq!(rb["subjects"][0]["name"], sa["metadata"]["name"]);
        assert_eq!(rb["subjects"][0]["namespace"], sa["metadata"]["namespace"]);
    }
}

/// Creates namespace `name` unless it exists (shared by the tests of this binary).
async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    match api.create(&Default::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether any rule of `role` reaches Secrets (by name, wildcard group or wildcard resource).
fn reaches_secrets(role: &Value) -> bool {
    rules(role).iter().any(|(group, res, _, _)| {
        (group.is_empty() || group == "*") && (res == "secrets" || res == "*")
    })
}

#[test]
fn secrets_are_readable_only_in_the_listed_namespaces() -> anyhow::Result<()> {
    let configurations: &[&[&str]] = &[
        &[],
        &["--set", "watchNamespaces={team-a}"],
        &["--set", "secretNamespaces={team-a,accounts}"],
        &[
            "--set",
            "routeSecrets.enabled=true",
            "--set",
            "secretNamespaces={team-a}",
        ],
        &[
            "--set",
            "routeSecrets.enabled=true",
            "--set",
            "secretNamespaces={team-a,accounts}",
            "--set",
            "watchNamespaces={team-a,team-b}",
        ],
    ];
    for args in configurations {
        let docs = documents(&template("ops", args)?);
        // Never cluster-wide, in any configuration.
        for role in all_of(&docs, "ClusterRole") {
            assert!(!reaches_secrets(role), "{args:?}: Secrets in a ClusterRole");
        }
        assert_eq!(
            rules(one_of(&docs, "ClusterRole")),
            base_cluster_rules(),
            "{args:?}"
        );
        // A Role with `get` on Secrets in each listed namespace, and nowhere else.
        let listed: BTreeSet<&str> = args
            .windows(2)
            .filter_map(|w| w[1].strip_prefix("secretNamespaces="))
            .flat_map(|l| l.trim_matches(['{', '}']).split(','))
            .collect();
        let roles = roles_by_namespace(&docs);
        assert_eq!(
            roles.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            listed,
            "{args:?}"
        );
        for r in roles.values() {
            assert_eq!(r, &secret_get_rules(), "{args:?}");
        }
        assert_role_bindings_match(&docs);
    }

    // Route Secrets without a namespace to read them in: refused, naming the value.
    for args in [
        &["--set", "routeSecrets.enabled=true"][..],
        &[
            "--set",
            "routeSecrets.enabled=true",
            "--set",
            "watchNamespaces={team-a}",
        ],
    ] {
        let err = template_refused(args)?;
        assert!(err.contains("secretNamespaces"), "{args:?}: {err}");
    }
    Ok(())
}

#[test]
fn host_network_listens_on_the_node_address_and_rolls_one_pod_at_a_time() -> anyhow::Result<()> {
    let docs = documents(&template(
        "ops",
        &[
            "--set",
            "hostNetwork=true",
            "--set",
            "leaderElection.enabled=true",
            "--set",
            "replicaCount=2",
        ],
    )?);
    let dep = one_of(&docs, "Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], Value::Bool(true));
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirstWithHostNet"));
    // Every replica takes the port on its node: a surge pod could never be placed.
    let rolling = &dep["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(rolling["maxSurge"].as_u64(), Some(0));
    assert_eq!(rolling["maxUnavailable"].as_u64(), Some(1));
    let c = deployment_container(&docs);
    assert_eq!(
        env_value(c, "POD_IP").expect("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.podIP")
    );
    let names: Vec<&str> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).expect(n);
    assert!(
        pos("POD_IP") < pos("VPN_PBR_METRICS_ADDR"),
        "$(POD_IP) is defined before its use"
    );
    assert_eq!(
        env_str(c, "VPN_PBR_METRICS_ADDR").as_deref(),
        Some("$(POD_IP):8080")
    );
    // Off (default): the pod network, every interface of the pod.
    let docs = documents(&template("ops", &[])?);
    let pod = &one_of(&docs, "Deployment")["spec"]["template"]["spec"];
    assert!(pod["hostNetwork"].is_null());
    assert!(env_value(deployment_container(&docs), "POD_IP").is_none());
    Ok(())
}

/// The chart renders every CRD of `crds/` (both generated by `make crds`), adding only the
/// chart's labels and Helm's keep policy; it has no `crds/` directory of its own, which Helm
/// would install once and never upgrade.
#[test]
fn chart_renders_the_generated_crds_with_only_their_metadata_added() -> anyhow::Result<()> {
    assert!(
        !chart_dir().join("crds").exists(),
        "the chart has a crds/ directory again: Helm never upgrades it"
    );
    let docs = documents(&template("ops", &[])?);
    let rendered = all_of(&docs, "CustomResourceDefinition");
    let files = crd_files()?;
    assert!(files.contains(&CRD_FILE.to_owned()), "{files:?}");
    assert_eq!(
        rendered.len(),
        files.len(),
        "one rendered CRD per file of crds/"
    );
    for file in files {
        let generated: Value = serde_saphyr::from_str(&std::fs::read_to_string(
            repo_root().join("crds").join(&file),
        )?)?;
        let mut crd = rendered
            .iter()
            .find(|crd| crd["metadata"]["name"] == generated["metadata"]["name"])
            .map(|crd| (*crd).clone())
            .unwrap_or_else(|| panic!("the chart does not render the CRD of crds/{file}"));
        let meta = crd["metadata"].as_object_mut().expect("metadata");
        let labels = meta.remove("labels").unwrap_or_default();
        let annotations = meta.remove("annotations").unwrap_or_default();
        assert!(
            crd == generated,
            "the chart's CRD differs from crds/{file}: run `make crds`"
        );
        for (label, value) in [
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/instance", RELEASE),
        ] {
            assert_eq!(labels[label].as_str(), Some(value), "{file}: label {label}");
        }
        assert_eq!(
            annotations,
            serde_json::json!({"helm.sh/resource-policy": "keep"}),
            "{file}: crds.keep (default): helm uninstall leaves the CRD"
        );
    }
    Ok(())
}

/// The names of the files in the repository's `crds/`.
fn crd_files() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("crds"))? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[test]
fn crds_enabled_and_crds_keep_switch_the_crd_and_its_keep_policy() -> anyhow::Result<()> {
    let docs = documents(&template("ops", &["--set", "crds.enabled=false"])?);
    assert!(
        all_of(&docs, "CustomResourceDefinition").is_empty(),
        "crds.enabled=false renders no CRD"
    );
    one_of(&docs, "Deployment");
    let docs = documents(&template("ops", &["--set", "crds.keep=false"])?);
    let crds = all_of(&docs, "CustomResourceDefinition");
    assert_eq!(crds.len(), crd_files()?.len());
    for crd in crds {
        assert!(
            crd["metadata"]["annotations"].is_null(),
            "crds.keep=false: no keep policy, {:?}",
            crd["metadata"]
        );
    }
    Ok(())
}

/// NOTES.txt, printed after every install, names only what a user has: no chart repository
/// publishes the chart, so every file it tells `kubectl` to read is one of this repository.
#[test]
fn notes_name_only_files_of_the_repository() {
    let notes = std::fs::read_to_string(chart_dir().join("templates/NOTES.txt")).expect("NOTES");
    for word in ["helm pull", "helm repo", "--repo"] {
        assert!(!notes.contains(word), "NOTES.txt mentions {word:?}");
    }
    let files: Vec<&str> = notes
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-f")
        .map(|w| w[1])
        .collect();
    assert!(!files.is_empty(), "NOTES.txt names no file to apply");
    for f in files {
        assert!(
            repo_root().join(f).exists(),
            "NOTES.txt names {f}, which is not in the repository"
        );
    }
}

/// The `-f` arguments of the lines of `doc` that start with `prefix`.
fn file_args(doc: &str, prefix: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in doc.lines().filter(|l| l.trim_start().starts_with(prefix)) {
        let words: Vec<&str> = line.split_whitespace().collect();
        files.extend(
            words
                .windows(2)
                .filter(|w| w[0] == "-f")
                .map(|w| w[1].to_owned()),
        );
    }
    files
}

/// The install guides wait for Ready only on the routes they apply, and those all create
/// their entry: an observe-only example becomes Ready only once someone else made its route,
/// so a guide that waited for it would time out on a fresh account.
#[test]
fn install_guides_wait_only_for_the_routes_they_create() {
    for doc in ["README.md", "docs/install.md"] {
        let text = std::fs::read_to_string(repo_root().join(doc)).expect("read doc");
        let waits: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.trim_start()
                    .starts_with("kubectl wait --for=condition=Ready")
            })
            .collect();
        assert!(!waits.is_empty(), "{doc}: no `kubectl wait` for the routes");
        for w in &waits {
            assert!(
                !w.contains("--all") && !w.contains(" -A"),
                "{doc}: `{w}` waits for routes the guide did not create"
            );
        }
        let applied: BTreeSet<String> = file_args(&text, "kubectl apply -f examples")
            .into_iter()
            .collect();
        let waited: BTreeSet<String> = file_args(&text, "kubectl wait --for=condition=Ready")
            .into_iter()
            .collect();
        assert_eq!(
            applied, waited,
            "{doc}: the wait is not for the routes applied"
        );
        for f in &applied {
            let example = std::fs::read_to_string(repo_root().join(f)).expect("read example");
            assert!(
                !example.contains("ObserveOnly"),
                "{doc}: applies and waits for {f}, which only observes a route made elsewhere"
            );
        }
    }
}

#[test]
fn helm_lint_strict_passes_with_default_and_all_features_values() -> anyhow::Result<()> {
    for extra in [
        vec![],
        vec!["-f".to_owned(), all_features_values().display().to_string()],
    ] {
        let out = run_ok(
            Command::new(tools::helm()?)
                .args(["lint", "--strict"])
                .arg(chart_dir())
                .args(&extra),
            None,
        )?;
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
    Ok(())
}

#[tokio::test]
async fn default_values_pass_server_side_dry_run() -> anyhow::Result<()> {
    let (_client, ns) = support::setup("chart-default").await?;
    let yaml = template(&ns, &[])?;
    server_dry_run(plane(), &yaml)?;

    let docs = documents(&yaml);
    assert_hardened(&docs);
    let kinds: BTreeSet<&str> = docs.iter().map(kind_of).collect();
    let expected: BTreeSet<&str> = [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    .into_iter()
    .collect();
    assert_eq!(
        kinds, expected,
        "default rendering has only the core objects"
    );

    // Least privilege: exactly these rules, and no Secret access by default.
    assert_eq!(rules(one_of(&docs, "ClusterRole")), base_cluster_rules());

    let dep = one_of(&docs, "Deployment");
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(
        dep["spec"]["strategy"]["type"].as_str(),
        Some("Recreate"),
        "no lease: Recreate"
    );
    let c = deployment_container(&docs);
    assert_eq!(
        c["image"].as_str(),
        Some(format!("vpn-pbr-operator:{}", env!("CARGO_PKG_VERSION")).as_str()),
        "tag defaults to the chart's appVersion (kept equal to the crate version)"
    );
    for (name, value) in [
        ("VPN_PBR_CONCURRENCY", "8"),
        ("VPN_PBR_RESYNC", "10m"),
        ("VPN_PBR_API_RATE", "20"),
        ("VPN_PBR_LEADER_ELECTION", "false"),
        ("VPN_PBR_LEASE_NAMESPACE", ns.as_str()),
        ("VPN_PBR_LOG_FORMAT", "json"),
        ("VPN_PBR_LOG_LEVEL", "info"),
        ("VPN_PBR_ROUTE_SECRETS", "false"),
    ] {
        assert_eq!(env_str(c, name).as_deref(), Some(value), "{name}");
    }
    for absent in [
        "VPN_PBR_NAMESPACES",
        "VPN_PBR_ENDPOINT",
        "VPN_PBR_DEFAULT_REGION",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ROLE_ARN",
        "KUBECONFIG",
    ] {
        assert!(
            env_value(c, absent).is_none(),
            "{absent} not set by default"
        );
    }
    assert!(
        c["args"].is_null(),
        "no args by default: settings come from env"
    );

    let svc = one_of(&docs, "Service");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"].as_str(), Some("http-metrics"));
    assert_eq!(port["targetPort"].as_str(), Some("http-metrics"));

    let crb = one_of(&docs, "ClusterRoleBinding");
    let sa = one_of(&docs, "ServiceAccount");
    assert_eq!(crb["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(crb["subjects"][0]["namespace"].as_str(), Some(ns.as_str()));
    assert_eq!(
        dep["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    Ok(())
}

#[tokio::test]
async fn all_features_pass_server_side_dry_run() -> anyhow::Result<()> {
    let (client, ns) = support::setup("chart-all").await?;
    for crd in ["servicemonitors", "prometheusrules"] {
        install_crd_file(
            &client,
            &repo_root().join(format!("tests/fixtures/{crd}.monitoring.coreos.com.yaml")),
        )
        .await;
    }
    // The namespaces of the values file (the Secrets Roles are in secretNamespaces).
    for watched in ["network-prod", "network-staging", "network-accounts"] {
        ensure_namespace(&client, watched).await?;
    }
    let values = all_features_values().display().to_string();
    let yaml = template(&ns, &["-f", &values])?;
    server_dry_run(plane(), &yaml)?;

    let docs = documents(&yaml);
    assert_hardened(&docs);
    for kind in [
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        one_of(&docs, kind);
    }

    // Secret access is a Role in each namespace of secretNamespaces (watched or not), none in
    // the ClusterRole nor in the other watched namespace.
    assert_eq!(rules(one_of(&docs, "ClusterRole")), base_cluster_rules());
    let roles = roles_by_namespace(&docs);
    let expected_ns: BTreeSet<String> = [ns.as_str(), "network-prod", "network-accounts"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        roles.keys().cloned().collect::<BTreeSet<_>>(),
        expected_ns,
        "a Role in the release namespace and in each namespace of secretNamespaces"
    );
    for listed in ["network-prod", "network-accounts"] {
        assert_eq!(roles[listed], secret_get_rules(), "{listed}");
    }

    // Leases: a Role in the release namespace only.
    assert_eq!(
        roles[&ns],
        [rule(
            "coordination.k8s.io",
            "leases",
            &["get", "create", "update", "patch"],
            &[]
        )]
        .into_iter()
        .collect()
    );
    assert_role_bindings_match(&docs);

    let dep = one_of(&docs, "Deployment");
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(2));
    assert_eq!(
        dep["spec"]["strategy"]["type"].as_str(),
        Some("RollingUpdate")
    );
    let c = deployment_container(&docs);
    for (name, value) in [
        ("VPN_PBR_NAMESPACES", "network-prod,network-staging"),
        ("VPN_PBR_CONCURRENCY", "16"),
        ("VPN_PBR_RESYNC", "5m"),
        ("VPN_PBR_API_RATE", "12.5"),
        (
            "VPN_PBR_ENDPOINT",
            "https://vpc-vpc.cn-hangzhou.aliyuncs.com",
        ),
        ("VPN_PBR_DEFAULT_REGION", "cn-hangzhou"),
        ("VPN_PBR_LEADER_ELECTION", "true"),
        ("VPN_PBR_LEASE_NAME", "pbr-vpn-pbr-operator"),
        ("VPN_PBR_LOG_FORMAT", "text"),
        ("VPN_PBR_ROUTE_SECRETS", "true"),
        (
            "ALIBABA_CLOUD_ROLE_ARN",
            "acs:ram::1234567890123456:role/vpn-pbr-operator",
        ),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789abcdef",
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
        ),
        ("RUST_BACKTRACE", "1"),
    ] {
        assert_eq!(env_str(c, name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(strings(&c["args"]), ["--log-level=debug"]);

    // RRSA: a projected token for audience sts.aliyuncs.com mounted where the env var points.
    let pod = &dep["spec"]["template"]["spec"];
    let vol = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| !v["projected"].is_null())
        .expect("projected token volume");
    let src = &vol["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(src["audience"].as_str(), Some("sts.aliyuncs.com"));
    assert_eq!(src["path"].as_str(), Some("token"));
    let mount = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == vol["name"])
        .expect("token mounted");
    assert_eq!(
        mount["mountPath"].as_str(),
        Some("/var/run/secrets/ack.alibabacloud.com/rrsa-tokens")
    );
    assert_eq!(mount["readOnly"], Value::Bool(true));

    let sa = one_of(&docs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"].as_str(),
        Some("vpn-pbr-operator")
    );
    let sm = one_of(&docs, "ServiceMonitor");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"].as_str(),
        Some("http-metrics")
    );
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("prometheus")
    );

    let rule = one_of(&docs, "PrometheusRule");
    let dashboard = one_of(&docs, "ConfigMap");
    for (object, field, key, value) in [
        (rule, "labels", "release", "prometheus"),
        (dashboard, "labels", "grafana_dashboard", "1"),
        (dashboard, "annotations", "grafana_folder", "Network"),
    ] {
        assert_eq!(
            object["metadata"][field][key].as_str(),
            Some(value),
            "{} {field}.{key}",
            kind_of(object)
        );
    }

    // NetworkPolicy: DNS 53, apiserver and cloud API egress, ingress only to the metrics port.
    let np = one_of(&docs, "NetworkPolicy");
    let egress_ports: BTreeSet<u64> = np["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    for p in [53, 443, 6443] {
        assert!(
            egress_ports.contains(&p),
            "egress port {p} allowed: {egress_ports:?}"
        );
    }
    let ingress = np["spec"]["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"][0]["port"].as_str(),
        Some("http-metrics")
    );
    Ok(())
}

#[test]
fn existing_secret_credentials_are_wired_by_secret_key_ref() -> anyhow::Result<()> {
    let yaml = template(
        "ops",
        &["--set", "credentials.existingSecret=alicloud-creds"],
    )?;
    let docs = documents(&yaml);
    let c = deployment_container(&docs);
    for (env, key, optional) in [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "accessKeyId", false),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "accessKeySecret", false),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", "securityToken", true),
    ] {
        let e = env_value(c, env).unwrap_or_else(|| panic!("{env} set"));
        let r = &e["valueFrom"]["secretKeyRef"];
        assert_eq!(r["name"].as_str(), Some("alicloud-creds"), "{env}");
        assert_eq!(r["key"].as_str(), Some(key), "{env}");
        assert_eq!(r["optional"].as_bool().unwrap_or(false), optional, "{env}");
        assert!(e["value"].is_null(), "{env} never inlined");
    }
    assert!(
        !yaml.contains("kind: Secret"),
        "the chart never creates the credentials Secret"
    );
    Ok(())
}

#[test]
fn inconsistent_values_are_refused_with_a_clear_message() -> anyhow::Result<()> {
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicaCount=2"], "leaderElection.enabled"),
        (
            &[
                "--set",
                "credentials.existingSecret=x",
                "--set",
                "credentials.rrsa.enabled=true",
                "--set",
                "credentials.rrsa.roleArn=acs:ram::1:role/r",
                "--set",
                "credentials.rrsa.oidcProviderArn=acs:ram::1:oidc-provider/p",
            ],
            "not both",
        ),
        (&["--set", "credentials.rrsa.enabled=true"], "roleArn"),
        (
            &["--set", "monitoring.prometheusRule.enabled=true"],
            "monitoring.runbookBaseUrl",
        ),
        (&["--set", "bogusValue=1"], "bogusValue"),
        (&["--set", "secretNamespaces={a,a}"], "secretNamespaces"),
        (&["--set", "secretNamespaces={Team_A}"], "secretNamespaces"),
        (&["--set", "crds.enabled=yes"], "crds"),
        (&["--set", "logFormat=xml"], "logFormat"),
        (&["--set", "resync=ten minutes"], "resync"),
        (&["--set", "resync=0m"], "resync"),
        (&["--set", "resync=1.5m"], "resync"),
        (&["--set", "apiRate=0"], "apiRate"),
        (
            &["--set", "terminationGracePeriodSeconds=10"],
            "terminationGracePeriodSeconds",
        ),
        // The newest 1.31 refuses the CRD (docs/install.md): the floor is 1.32.
        (&["--kube-version", "1.31.14"], "kubeVersion"),
    ];
    for (args, needle) in cases {
        let err = template_refused(args)?;
        assert!(
            err.contains(needle),
            "helm template {args:?}: expected {needle:?} in:\n{err}"
        );
    }
    Ok(())
}

/// The chart installs on the oldest Kubernetes whose features it uses (docs/install.md lists
/// them, `make k8s-floor` tests it): 1.32, also as a vendor build; 1.31 is refused above.
#[test]
fn the_oldest_kubernetes_it_needs_is_admitted() -> anyhow::Result<()> {
    for v in ["1.32.0", "1.32.1-aliyun.1"] {
        let docs = documents(&template("ops", &["--kube-version", v])?);
        one_of(&docs, "Deployment");
    }
    Ok(())
}

/// Leaf paths of values.yaml (maps recurse; scalars, lists, empty maps and `resources`, a
/// Kubernetes object documented as a whole, are leaves).
fn leaf_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_object() {
        Some(m) if !m.is_empty() && prefix != "resources" => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.to_owned()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(child, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_value_is_commented_and_in_the_install_docs() {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml");
    let values: Value = serde_saphyr::from_str(&text).expect("parse values.yaml");
    let mut leaves = Vec::new();
    leaf_paths(&values, "", &mut leaves);
    let leaves: BTreeSet<String> = leaves.into_iter().collect();

    // Map each `key:` line of values.yaml to its path (skipping content inside list values) and
    // require a comment line right above every leaf.
    let lines: Vec<&str> = text.lines().collect();
    let mut stack: Vec<(usize, String, bool)> = Vec::new(); // (indent, key, value is a list)
    let mut commented = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(n, _, _)| *n >= indent) {
            stack.pop();
        }
        if trimmed.starts_with('-') || stack.iter().any(|(_, _, list)| *list) {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        let next_is_list = lines[i + 1..]
            .iter()
            .map(|l| l.trim_start())
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('-'));
        let path = stack
            .iter()
            .map(|(_, k, _)| k.as_str())
            .chain([key])
            .collect::<Vec<_>>()
            .join(".");
        if leaves.contains(&path) {
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim_start());
            if above.is_some_and(|l| l.starts_with('#')) {
                commented.insert(path.clone());
            }
        }
        stack.push((indent, key.to_owned(), next_is_list));
    }
    let uncommented: Vec<_> = leaves.difference(&commented).collect();
    assert!(
        uncommented.is_empty(),
        "values without a comment right above them: {uncommented:?}"
    );

    let docs =
        std::fs::read_to_string(repo_root().join("docs/install.md")).expect("docs/install.md");
    let missing: Vec<_> = leaves
        .iter()
        .filter(|p| !docs.contains(&format!("`{p}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "values missing from the table in docs/install.md: {missing:?}"
    );
}
