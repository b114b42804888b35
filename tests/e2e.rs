//! End to end, as a user sees it: the images built from the repository's Dockerfile
//! (`hack/image/build.sh`, buildah, nothing pulled), two real nodes on this machine
//! (`hack/node.sh`: kubelet + containerd, host network, everything on loopback), the emulator
//! running as a Pod from its image, and then:
//!
//! - the chart of an older commit of this repository ([`OLD_CHART_COMMIT`]) is installed with
//!   helm: Helm installs its CRD from the chart's `crds/`, a CRD without `status.accountId`, and
//!   the operator of the current image refuses it (its log names the field); the examples
//!   (`examples/*.yaml`) are applied against that CRD;
//! - the one command of docs/install.md ("Upgrading"), read from the file, gives the CRD Helm's
//!   ownership metadata, and `helm upgrade` to the current chart upgrades the CRD (it has
//!   `status.accountId` now) and the operator;
//! - the operator Pod becomes Ready through its real probes and `kubectl logs` shows it working;
//! - the examples become Ready, with events, their routes record `status.accountId`, and
//!   `/metrics` answers at the operator Pod's address (its node's loopback address on the host
//!   network: an Endpoints address cannot be loopback, so the Service has no endpoints to curl on
//!   these nodes);
//! - `helm upgrade` to 2 replicas with leader election; deleting the leader Pod hands the Lease
//!   over within 30 s and a route applied meanwhile becomes Ready;
//! - the apiserver's audit log has no 403 for the chart's ServiceAccount;
//! - the kernel runs the operator as UID 65532, without capabilities, with no_new_privs,
//!   seccomp, a read-only root filesystem and the chart's memory limit, and it stayed below it;
//! - with the Prometheus Operator's own ServiceMonitor and PrometheusRule CRDs applied
//!   (`hack/prometheus-crds/build.sh`), `helm upgrade` with the ServiceMonitor, the alerts and
//!   the dashboard on: the apiserver accepts the three objects and they read back as rendered;
//! - `helm uninstall` removes the Pods and the monitoring objects and keeps the CRD, the routes
//!   and their cloud entries;
//! - `hack/node.sh down` leaves no process, mount, iptables chain, cgroup, sysctl change or
//!   directory of the nodes behind.
//!
//! Needs root (the nodes change the host). `make e2e` runs it (`make test` too); on its own:
//! `cargo test --test e2e -- --ignored` after `make tools`. It builds what it needs (images,
//! node binaries) through the repository's scripts and fails, saying how, when a tool is missing.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use support::route::{create_key_secret, route_object, spec};
use support::upgrade::{RELEASE, RELEASE_NS, crd_adoption_command, run_doc_command};
use support::{CHART, ROUTE_CRD as CRD, repo_root};
use vpn_pbr_harness::Tools;
use vpn_pbr_harness::command::run_ok;
use vpn_pbr_harness::emulator::example_access_key;
use vpn_pbr_harness::node::{HostAudit, Images, LocalNodes, ProcessFacts, loopback};
use vpn_pbr_harness::operator::free_port;
use vpn_pbr_harness::tools;
use vpn_pbr_harness::wait::eventually;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

const ROUTES_NS: &str = "routes";
const EMULATOR_NS: &str = "vpc-emulator";
const SELECTOR: &str = "app.kubernetes.io/instance=vpn-pbr-operator";
/// The commit whose chart is installed first: the parent of the commit that added
/// `status.accountId` (019f2e2), chart 0.2.0, whose CRD sits in the chart's `crds/` and lacks
/// that field.
const OLD_CHART_COMMIT: &str = "6b629c674512618fd0188e990110272343065356";
/// The routes of `examples/` that create their entry (the fourth only observes one).
const CREATED: [&str; 3] = [
    "office-to-app-active",
    "office-to-app-standby",
    "datacenter-published",
];
/// The chart's default memory limit (values.yaml `resources.limits.memory`).
const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(180);
/// The route `examples/observe-only.yaml` observes: it exists in the cloud before the examples.
const OBSERVED: &str = r#"{"VpnGatewayId":"vpn-demo-secondary","RouteSource":"172.17.0.0/16","RouteDest":"10.30.0.0/16","NextHop":"vco-demo-secondary-a","Weight":100}"#;

fn step(t0: Instant, what: &str) {
    eprintln!("[e2e {:>6.1}s] {what}", t0.elapsed().as_secs_f64());
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// The operator's pods.
async fn operator_pods(client: &Client) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), RELEASE_NS);
    Ok(pods
        .list(&ListParams::default().labels(SELECTOR))
        .await?
        .items)
}

fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Waits until exactly `n` operator pods exist and are Ready; returns them.
async fn ready_pods(client: &Client, n: usize) -> anyhow::Result<Vec<Pod>> {
    eventually(WAIT, &format!("{n} Ready operator pod(s)"), || async {
        let pods = operator_pods(client).await.ok()?;
        (pods.len() == n && pods.iter().all(pod_ready)).then_some(pods)
    })
    .await
}

/// The operator Pod that leads the release.
async fn lease_holder(client: &Client) -> Option<String> {
    support::lease_holder(client, RELEASE_NS, RELEASE).await
}

async fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Every route of `ns` Ready=True.
async fn all_routes_ready(client: &Client, n: usize) -> anyhow::Result<()> {
    let routes: Api<VpnPbrRoute> = Api::namespaced(client.clone(), ROUTES_NS);
    eventually(WAIT, &format!("{n} Ready routes"), || async {
        let list = routes.list(&ListParams::default()).await.ok()?.items;
        (list.len() == n
            && list
                .iter()
                .all(|r| support::ready_is(r, ConditionStatus::True, None)))
        .then_some(())
    })
    .await
}

/// The chart of [`OLD_CHART_COMMIT`], taken from the repository's history into `dir`.
fn old_chart(dir: &Path) -> anyhow::Result<String> {
    let tar = dir.join("old-chart.tar");
    run_ok(
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(["archive", "--format=tar", "-o"])
            .arg(&tar)
            .args([OLD_CHART_COMMIT, CHART]),
        None,
    )
    .context("the old chart from git (a clone with the history is needed)")?;
    run_ok(
        Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(dir),
        None,
    )?;
    Ok(dir.join(CHART).display().to_string())
}

/// Whether the installed VpnPbrRoute CRD has `status.accountId`.
async fn crd_has_account_id(client: &Client) -> anyhow::Result<bool> {
    let crd = serde_json::to_value(
        Api::<CustomResourceDefinition>::all(client.clone())
            .get(CRD)
            .await?,
    )?;
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    Ok(!status["properties"]["accountId"].is_null())
}

/// The output of `kubectl get <what> -o json` in the release namespace.
fn get_json(nodes: &LocalNodes, what: &[&str]) -> anyhow::Result<Value> {
    let args = [&["-n", RELEASE_NS, "get"], what, &["-o", "json"]].concat();
    Ok(serde_json::from_str(&nodes.kubectl_ok(&args, None)?)?)
}

/// The security facts of a running operator pod, from the kernel.
fn assert_hardened_process(pod: &Pod) -> anyhow::Result<ProcessFacts> {
    let status = pod.status.as_ref().expect("pod status");
    let c = &status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0];
    let id = c
        .container_id
        .as_deref()
        .and_then(|i| i.strip_prefix("containerd://"))
        .expect("a containerd container id");
    let facts = ProcessFacts::of_container(id)?;
    let name = pod_name(pod);
    assert_eq!(facts.uid, 65532, "{name}: runs as UID 65532");
    assert_eq!(facts.gid, 65532, "{name}: runs as GID 65532");
    assert_eq!(facts.cap_eff, 0, "{name}: no effective capability");
    assert_eq!(facts.cap_bnd, 0, "{name}: every capability dropped");
    assert!(facts.no_new_privs, "{name}: no privilege escalation");
    assert_eq!(facts.seccomp, 2, "{name}: seccomp filter (RuntimeDefault)");
    assert!(facts.root_read_only, "{name}: read-only root filesystem");
    assert_eq!(
        facts.memory_limit,
        Some(MEMORY_LIMIT),
        "{name}: the chart's memory limit"
    );
    let peak = facts.memory_peak.expect("memory peak");
    assert!(
        peak < MEMORY_LIMIT,
        "{name}: peak memory {peak} B of its cgroup under the limit"
    );
    assert!(
        facts.peak_rss < MEMORY_LIMIT,
        "{name}: peak RSS {} B under the limit",
        facts.peak_rss
    );
    assert_eq!(c.restart_count, 0, "{name}: never restarted");
    Ok(facts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root; builds the images and two local nodes: run with `make e2e` (make test does)"]
async fn the_helm_installed_operator_runs_as_a_pod_on_real_nodes() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t0 = Instant::now();
    let repo = repo_root();
    let audit = HostAudit::begin(&repo)?;

    // 1. The images, from the Dockerfile.
    let images = Images::build(&repo)?;
    step(t0, "images built (hack/image/build.sh)");

    // 2. Two nodes with the images imported (nothing can be pulled).
    let mut nodes = LocalNodes::up(&repo, 2, &[&images.operator_tar, &images.emulator_tar])?;
    step(t0, "2 nodes Ready (hack/node.sh up)");
    // A failed step or assertion prints what the nodes looked like before they go down.
    nodes.diagnosed(scenario(&nodes, t0)).await?;

    // 13. Down, and nothing left behind.
    audit.end(&mut nodes)?;
    step(
        t0,
        "nodes down; no process, mount, chain, cgroup, sysctl or directory left",
    );
    Ok(())
}

/// Steps 3 to 12, on the nodes.
async fn scenario(nodes: &LocalNodes, t0: Instant) -> anyhow::Result<()> {
    let repo = repo_root();
    let client = nodes.client().await?;

    // 3. The emulator as a Pod, its config in a ConfigMap.
    let (emu_port, admin_port) = (free_port()?, free_port()?);
    create_namespace(&client, EMULATOR_NS).await?;
    nodes.kubectl_ok(
        &[
            "-n",
            EMULATOR_NS,
            "create",
            "configmap",
            "vpc-emulator-config",
            &format!(
                "--from-file=config.yaml={}",
                repo.join("deploy/emulator/config.example.yaml").display()
            ),
        ],
        None,
    )?;
    nodes.kubectl_ok(
        &["-n", EMULATOR_NS, "apply", "-f", "-"],
        Some(&loopback::emulator_manifest(
            &repo,
            &Images::reference(Images::EMULATOR),
            emu_port,
            admin_port,
        )?),
    )?;
    nodes.kubectl_ok(
        &[
            "-n",
            EMULATOR_NS,
            "rollout",
            "status",
            "deploy/vpc-emulator",
            "--timeout=180s",
        ],
        None,
    )?;
    let admin = format!("http://127.0.0.1:{admin_port}/_emulator");
    assert_eq!(http_get(&format!("{admin}/health")).await?.0, 200);
    step(t0, "emulator Pod Ready");

    // 4. Credentials, then the chart of an older commit: Helm installs its CRD from the chart's
    //    crds/, without status.accountId, and the operator of the current image refuses it.
    create_namespace(&client, RELEASE_NS).await?;
    let (key_id, key_secret) = example_access_key(&repo)?;
    create_key_secret(
        &client,
        RELEASE_NS,
        "alicloud-credentials",
        &key_id,
        &key_secret,
    )
    .await;
    let dir = tempfile::tempdir()?;
    // The local nodes' values, then this test's (the settings of the README's install section).
    let loopback_values = dir.path().join("loopback-values.yaml");
    std::fs::write(
        &loopback_values,
        loopback::chart_values(nodes.api_port, &format!("http://127.0.0.1:{emu_port}")),
    )?;
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        format!(
            r#"image:
  repository: {repository}
  tag: "{tag}"
credentials:
  existingSecret: alicloud-credentials
defaultRegion: cn-hangzhou
"#,
            repository = Images::OPERATOR,
            tag = Images::TAG,
        ),
    )?;
    let loopback_values = loopback_values.display().to_string();
    let values = values.display().to_string();
    let chart = repo.join(CHART).display().to_string();
    // `helm upgrade` of the current chart with these values, `set` and a `timeout` wait.
    let helm_chart = |verb: &str, set: &[&str], timeout: &str| {
        let release = [
            verb,
            RELEASE,
            chart.as_str(),
            "-n",
            RELEASE_NS,
            "-f",
            loopback_values.as_str(),
            "-f",
            values.as_str(),
        ];
        nodes.helm(&[&release[..], set, &["--wait", "--timeout", timeout]].concat())
    };
    // The old chart's operator never becomes Ready here: no --wait.
    let old = old_chart(dir.path())?;
    nodes.helm(&[
        "install",
        RELEASE,
        &old,
        "-n",
        RELEASE_NS,
        "-f",
        &loopback_values,
        "-f",
        &values,
    ])?;
    nodes.kubectl_ok(
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{CRD}"),
            "--timeout=60s",
        ],
        None,
    )?;
    assert!(
        !crd_has_account_id(&client).await?,
        "the CRD of {OLD_CHART_COMMIT} should lack status.accountId"
    );
    let refusal = eventually(WAIT, "the operator refuses the older CRD", || async {
        let logs = |previous: &str| {
            nodes
                .kubectl_ok(
                    &[
                        "-n",
                        RELEASE_NS,
                        "logs",
                        &format!("deploy/{RELEASE}"),
                        previous,
                    ],
                    None,
                )
                .unwrap_or_default()
        };
        let logs = logs("--previous=false") + &logs("--previous=true");
        (logs.contains("is older than this operator") && logs.contains("field status.accountId"))
            .then_some(logs)
    })
    .await?;
    assert!(
        operator_pods(&client).await?.iter().all(|p| !pod_ready(p)),
        "an operator Pod is Ready on the older CRD:\n{refusal}"
    );
    step(
        t0,
        "chart of an older commit installed; the operator refuses its CRD",
    );

    // 5. The examples, applied against the older CRD.
    let resp = reqwest::Client::new()
        .post(format!("{admin}/entries/create"))
        .header("Content-Type", "application/json")
        .body(OBSERVED)
        .send()
        .await?;
    assert!(resp.status().is_success(), "observed entry created");
    create_namespace(&client, ROUTES_NS).await?;
    nodes.kubectl_ok(
        &[
            "-n",
            ROUTES_NS,
            "apply",
            "--server-side",
            "-f",
            &repo.join("examples").display().to_string(),
        ],
        None,
    )?;

    // 6. The guide's one command, then helm upgrade to the current chart: the CRD is upgraded.
    run_doc_command(
        &crd_adoption_command("docs/install.md"),
        &nodes.kubeconfig,
        &Tools::from_env()?.kube_bin_dir,
    )?;
    helm_chart("upgrade", &[], "4m")?;
    assert!(
        crd_has_account_id(&client).await?,
        "helm upgrade upgraded the CRD"
    );
    let crd = serde_json::to_value(
        Api::<CustomResourceDefinition>::all(client.clone())
            .get(CRD)
            .await?,
    )?;
    assert_eq!(
        crd["metadata"]["annotations"]["meta.helm.sh/release-name"], RELEASE,
        "the release holds the CRD"
    );
    let pods = ready_pods(&client, 1).await?;
    let image = Images::reference(Images::OPERATOR);
    assert_eq!(
        pods[0].spec.as_ref().expect("spec").containers[0]
            .image
            .as_deref(),
        Some(image.as_str()),
        "the image built from the Dockerfile"
    );
    step(
        t0,
        "adopted the CRD, helm upgrade to the current chart: CRD upgraded, operator Pod Ready",
    );
    let logs = nodes.kubectl_ok(
        &["-n", RELEASE_NS, "logs", &format!("deploy/{RELEASE}")],
        None,
    )?;
    assert!(
        logs.contains("serve every field this operator uses")
            && logs.contains("controller started"),
        "kubectl logs shows the operator at work:\n{logs}"
    );

    // 7. The examples become Ready and keep status.accountId (the older CRD would have
    //    pruned it); events and metrics.
    all_routes_ready(&client, 4).await?;
    let routes: Api<VpnPbrRoute> = Api::namespaced(client.clone(), ROUTES_NS);
    for name in CREATED {
        let account = routes
            .get(name)
            .await?
            .status
            .and_then(|s| s.account_id)
            .unwrap_or_default();
        assert!(!account.is_empty(), "{name}: status.accountId recorded");
    }
    step(t0, "examples Ready, with status.accountId");
    let events: Value = serde_json::from_str(
        &nodes.kubectl_ok(&["-n", ROUTES_NS, "get", "events", "-o", "json"], None)?,
    )?;
    let reasons: Vec<(String, String)> = events["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == "VpnPbrRoute")
        .map(|e| {
            (
                e["involvedObject"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for name in CREATED {
        assert!(
            reasons.iter().any(|(n, r)| n == name && r == "Created"),
            "event Created for {name} in {reasons:?}"
        );
    }
    {
        // On these nodes a Pod on the host network has its node's loopback address, and the
        // chart binds the metrics port there (not on every interface). `kubectl port-forward`
        // would not reach it on the second node: the kubelet dials localhost in the node's
        // network namespace, which is 127.0.0.1 whatever the node's address.
        let pod = ready_pods(&client, 1).await?.remove(0);
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .context("the operator Pod's address")?;
        anyhow::ensure!(ip.starts_with("127."), "a loopback Pod address, got {ip}");
        let base = format!("http://{ip}:8080");
        // What the last try saw, for the failure message.
        let last = std::sync::Mutex::new(String::from("no answer yet"));
        let metrics = eventually(
            Duration::from_secs(120),
            "4 Ready routes in /metrics",
            || {
                let url = format!("{base}/metrics");
                let last = &last;
                async move {
                    let got = http_get(&url).await;
                    *last.lock().expect("last") = match &got {
                        Ok((status, body)) => format!(
                            "HTTP {status}: {}",
                            body.lines()
                                .filter(|l| l.starts_with("vpn_pbr_routes"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Err(e) => format!("{url}: {e:#}"),
                    };
                    let (status, body) = got.ok()?;
                    (status == 200 && body.contains("vpn_pbr_routes{ready=\"true\"} 4"))
                        .then_some(body)
                }
            },
        )
        .await
        .with_context(|| format!("last seen: {}", last.lock().expect("last")))?;
        assert!(metrics.contains("vpn_pbr_"), "operator metrics");
        assert_eq!(http_get(&format!("{base}/readyz")).await?.0, 200);
    }
    step(t0, "events and /metrics at the operator Pod's address");

    // 8. Two replicas with leader election; the leader's Pod is deleted.
    let two_replicas = [
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=true",
    ];
    helm_chart("upgrade", &two_replicas, "4m")?;
    let pods = ready_pods(&client, 2).await?;
    let leader = eventually(WAIT, "a lease holder among the pods", || async {
        let h = lease_holder(&client).await?;
        pods.iter().any(|p| pod_name(p) == h).then_some(h)
    })
    .await?;
    let nodes_of: Vec<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_ne!(nodes_of[0], nodes_of[1], "one replica per node");
    step(t0, &format!("2 replicas, leader {leader}"));
    let deleted_at = Instant::now();
    nodes.kubectl_ok(
        &["-n", RELEASE_NS, "delete", "pod", &leader, "--wait=false"],
        None,
    )?;
    // A route applied during the hand-over.
    let handover = route_object(
        "applied-during-handover",
        spec(
            "vpn-demo-primary",
            "192.168.20.0/24",
            "10.40.0.0/16",
            "vco-demo-primary-a",
            100,
        ),
    );
    Api::<VpnPbrRoute>::namespaced(client.clone(), ROUTES_NS)
        .create(&PostParams::default(), &handover)
        .await?;
    // The standby, or the Pod that replaces the deleted one, whichever looks first.
    let new_leader = eventually(
        Duration::from_secs(30),
        "another pod takes the lease",
        || async {
            let h = lease_holder(&client).await?;
            let alive = operator_pods(&client).await.ok()?;
            (h != leader && alive.iter().any(|p| pod_name(p) == h && pod_ready(p))).then_some(h)
        },
    )
    .await?;
    let handover_secs = deleted_at.elapsed().as_secs_f64();
    step(
        t0,
        &format!("lease handed over to {new_leader} {handover_secs:.1}s after the delete"),
    );
    all_routes_ready(&client, 5).await?;
    step(
        t0,
        &format!(
            "route applied during the hand-over Ready {:.1}s after the delete",
            deleted_at.elapsed().as_secs_f64()
        ),
    );
    let pods = ready_pods(&client, 2).await?;

    // 9. Security and resources as the kernel enforces them.
    for pod in &pods {
        let facts = assert_hardened_process(pod)?;
        step(
            t0,
            &format!(
                "{}: uid {}, CapEff {:x}, seccomp {}, ro root; cgroup peak {:.1} MiB, peak RSS {:.1} MiB, limit {} MiB",
                pod_name(pod),
                facts.uid,
                facts.cap_eff,
                facts.seccomp,
                facts.memory_peak.unwrap_or(0) as f64 / 1048576.0,
                facts.peak_rss as f64 / 1048576.0,
                MEMORY_LIMIT / 1048576
            ),
        );
    }

    // 10. The audit log: the ServiceAccount was never refused.
    let user = format!("system:serviceaccount:{RELEASE_NS}:{RELEASE}");
    let audit = std::fs::read_to_string(nodes.audit_log())?;
    let mine: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .collect();
    assert!(
        mine.len() >= 20,
        "only {} audit events from {user}",
        mine.len()
    );
    let forbidden: Vec<String> = mine
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(
        forbidden.is_empty(),
        "{} requests of {user} were forbidden:\n{}",
        forbidden.len(),
        forbidden.join("\n")
    );
    step(
        t0,
        &format!("{} audit events of {user}, no 403", mine.len()),
    );

    // 11. The monitoring objects, against the Prometheus Operator's own CRDs.
    for plural in ["servicemonitors", "prometheusrules"] {
        let file = tools::prometheus_crd(plural)?.display().to_string();
        nodes.kubectl_ok(&["apply", "--server-side", "-f", &file], None)?;
        nodes.kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                &format!("crd/{plural}.monitoring.coreos.com"),
                "--timeout=60s",
            ],
            None,
        )?;
    }
    let monitoring = [
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "monitoring.prometheusRule.enabled=true",
        "--set",
        "monitoring.runbookBaseUrl=https://git.example.com/network/vpn-pbr-operator/-/blob/v0.1.0",
        "--set",
        "monitoring.dashboard.enabled=true",
    ];
    helm_chart(
        "upgrade",
        &[&two_replicas[..], &monitoring[..]].concat(),
        "4m",
    )?;
    let sm = get_json(nodes, &["servicemonitor", RELEASE])?;
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http-metrics", "{sm}");
    let rule = get_json(nodes, &["prometheusrule", RELEASE])?;
    let alerts = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(alerts > 0, "the PrometheusRule holds the alerts: {rule}");
    let dashboard = get_json(nodes, &["configmap", &format!("{RELEASE}-dashboard")])?;
    assert!(
        dashboard["data"]
            .as_object()
            .is_some_and(|d| d.keys().any(|k| k.ends_with(".json"))),
        "the dashboard ConfigMap holds the dashboard"
    );
    step(
        t0,
        &format!(
            "ServiceMonitor, PrometheusRule ({alerts} alerts) and dashboard accepted and read back"
        ),
    );

    // 12. helm uninstall: the Pods and the monitoring objects go; the CRD, the routes and their
    //     cloud entries stay.
    nodes.helm(&[
        "uninstall",
        RELEASE,
        "-n",
        RELEASE_NS,
        "--wait",
        "--timeout",
        "3m",
    ])?;
    eventually(WAIT, "no operator pod", || async {
        operator_pods(&client).await.ok()?.is_empty().then_some(())
    })
    .await?;
    for kind in ["servicemonitors", "prometheusrules"] {
        let left = nodes.kubectl_ok(&["-n", RELEASE_NS, "get", kind, "-o", "name"], None)?;
        assert!(left.trim().is_empty(), "helm uninstall left {left}");
    }
    assert!(
        Api::<CustomResourceDefinition>::all(client.clone())
            .get_opt(CRD)
            .await?
            .is_some(),
        "the CRD stays"
    );
    let routes = Api::<VpnPbrRoute>::namespaced(client.clone(), ROUTES_NS)
        .list(&ListParams::default())
        .await?
        .items;
    assert_eq!(routes.len(), 5, "the routes stay");
    let (_, state) = http_get(&format!("{admin}/state")).await?;
    let state: Value = serde_json::from_str(&state)?;
    let entries: usize = state["gateways"]
        .as_array()
        .expect("gateways")
        .iter()
        .map(|g| g["Entries"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(entries, 5, "the cloud entries stay");
    step(t0, "uninstalled: CRD, routes and cloud entries kept");

    Ok(())
}
