//! The install steps of README.md and docs/install.md, run as a user runs them, on real local
//! nodes.
//!
//! The steps are taken from the docs, never re-typed here. The marker is the fence's info string
//! after the language (GitHub shows the block as any `sh` block):
//!
//! ````text
//! ```sh install-step=<id>        a step, run in order; <id> is unique in its file
//! ```sh install-skip=<reason>    not run, and why (a real cloud account, a command fragment)
//! ````
//!
//! In the install sections ([`DOCS`]) every `sh`, `bash`, `shell`, `zsh` or `console` block and
//! every block without a language carries one of the two (the extractor:
//! crates/vpn-pbr-harness/src/install_steps/).
//!
//! The local nodes are not a real cluster: no registry, no cloud account, no pod network. The
//! test adapts the steps with one overlay, [`OVERLAY`]: per file and step id, text substitutions
//! (the daemonless image build imported into the nodes for `docker build`/`docker push`, the
//! emulator's key for the account's, one values file for the loopback setup added to the
//! chart's install), made in the test's copy of the text. Each must match its step exactly once,
//! so a step rewritten in the docs fails here until the overlay follows.
//!
//! - plain `cargo test`: the sections mark every shell block, and the overlay fits the steps;
//! - `#[ignore]`d, needs root (`make e2e` runs it, `make test` too): two nodes of `hack/node.sh`
//!   (as `make node-up`, without images: the steps build and import them), then README.md's
//!   steps and docs/install.md's, each in `bash -euo pipefail` from the repository root with
//!   `KUBECONFIG`, kubectl and helm; after each file every `VpnPbrRoute` is Ready, then what the
//!   steps made is removed (the routes while the operator runs, the release, its namespace, the
//!   CRD) so the next file starts without the operator. The emulator README.md starts stays:
//!   it is the cloud of both. Finally the nodes go down and the host is as before.

mod support;

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use support::{ROUTE_CRD as CRD, eventually, ready_is, repo_root};
use vpn_pbr_harness::emulator::example_access_key;
use vpn_pbr_harness::install_steps::{Overlay, Step, extract_steps};
use vpn_pbr_harness::node::{HostAudit, Images, LocalNodes, loopback};
use vpn_pbr_harness::operator::free_port;
use vpn_pbr_harness::{Tools, tools};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

/// The files and the headings of their install sections, in the order the test runs them.
const DOCS: [(&str, &[&str]); 2] = [
    ("README.md", &["Install on a real cluster"]),
    (
        "docs/install.md",
        &[
            "1. The image",
            "2. The CRD",
            "3. Cloud credentials",
            "4. Install the chart",
            "Many accounts, many teams",
        ],
    ),
];
/// The substitutions for the local nodes.
const OVERLAY: &str = "tests/fixtures/install-overlay.yaml";
/// One step's limit: a cold image build takes minutes; `kubectl rollout status` waits forever.
const STEP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const WAIT: Duration = Duration::from_secs(180);

/// The steps of `file` as the docs write them; a panic listing every marking problem.
fn doc_steps(file: &str, sections: &[&str]) -> Vec<Step> {
    let text = std::fs::read_to_string(repo_root().join(file)).expect("read the doc");
    extract_steps(&text, sections).unwrap_or_else(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("{file}: {e}")).collect();
        panic!("{}", list.join("\n"))
    })
}

fn overlay() -> Overlay {
    let text = std::fs::read_to_string(repo_root().join(OVERLAY)).expect("read the overlay");
    Overlay::parse(&text).unwrap_or_else(|e| panic!("{OVERLAY}: {e}"))
}

/// The steps of `file` with the overlay's substitutions; a panic listing every misfit.
fn local_steps(overlay: &Overlay, file: &str, sections: &[&str]) -> Vec<Step> {
    overlay
        .apply(file, &doc_steps(file, sections))
        .unwrap_or_else(|errors| {
            let list: Vec<String> = errors.iter().map(|e| format!("{OVERLAY}: {e}")).collect();
            panic!("{}", list.join("\n"))
        })
}

#[test]
fn the_install_sections_mark_every_shell_block() {
    for (file, sections) in DOCS {
        let steps = doc_steps(file, sections);
        assert!(
            steps.iter().any(|s| s.text.contains("helm ")),
            "{file}: no step installs the chart: {steps:?}"
        );
    }
}

#[test]
fn the_overlay_fits_the_steps_as_written() {
    let overlay = overlay();
    for file in overlay.files() {
        assert!(
            DOCS.iter().any(|(f, _)| *f == file),
            "{OVERLAY} names {file}, which the test does not read"
        );
    }
    for (file, sections) in DOCS {
        local_steps(&overlay, file, sections);
    }
}

fn say(t0: Instant, what: &str) {
    eprintln!(
        "[install-steps {:>6.1}s] {what}",
        t0.elapsed().as_secs_f64()
    );
}

/// `text` with every line indented, for the log.
fn indented(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// What the steps run with: the nodes, kubectl and helm, and the overlay's variables.
struct StepEnv {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl StepEnv {
    fn new(nodes: &LocalNodes, emulator_port: u16, admin_port: u16) -> anyhow::Result<StepEnv> {
        let repo = repo_root();
        let dir = tempfile::tempdir()?;
        let values = dir.path().join("loopback-values.yaml");
        let endpoint = format!("http://127.0.0.1:{emulator_port}");
        std::fs::write(&values, loopback::chart_values(nodes.api_port, &endpoint))?;
        let manifest = dir.path().join("vpc-emulator.yaml");
        std::fs::write(
            &manifest,
            loopback::emulator_manifest(
                &repo,
                &Images::reference(Images::EMULATOR),
                emulator_port,
                admin_port,
            )?,
        )?;
        let (key_id, key_secret) = example_access_key(&repo)?;
        let helm = tools::helm()?;
        let helm_dir = helm.parent().context("helm's directory")?;
        let path = std::env::join_paths(
            [Tools::from_env()?.kube_bin_dir.as_path(), helm_dir]
                .into_iter()
                .map(Path::to_path_buf)
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )?;
        let s = |p: &Path| p.display().to_string();
        let vars = vec![
            ("PATH".into(), path.to_string_lossy().into_owned()),
            ("KUBECONFIG".into(), s(&nodes.kubeconfig)),
            // kubectl's discovery cache stays with the run.
            ("KUBECACHEDIR".into(), s(&dir.path().join("kube-cache"))),
            ("NODE_DIR".into(), s(&nodes.dir)),
            ("LOOPBACK_VALUES".into(), s(&values)),
            ("EMULATOR_MANIFEST".into(), s(&manifest)),
            ("EMULATOR_KEY_ID".into(), key_id),
            ("EMULATOR_KEY_SECRET".into(), key_secret),
        ];
        Ok(StepEnv { dir, vars })
    }

    /// Runs `step` of `file` in bash from the repository root; an error with its output when it
    /// fails or outlives [`STEP_TIMEOUT`]. Background jobs of the step end with it.
    fn run(&self, file: &str, step: &Step) -> anyhow::Result<()> {
        let log_path: PathBuf = self.dir.path().join(format!("{}.log", step.id));
        let log = File::create(&log_path)?;
        let script = format!(
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
            step.text
        );
        let mut child = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo_root())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        // Whatever the step left running in its process group goes with it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .output();
        let _ = child.wait();
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        eprint!("{}", indented(&output));
        let at = format!("{file}:{} step `{}`", step.line, step.id);
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("{at} failed ({s}):\n{}\n{output}", step.text),
            None => bail!(
                "{at} still ran after {}s:\n{}\n{output}",
                STEP_TIMEOUT.as_secs(),
                step.text
            ),
        }
    }
}

/// Every route in the cluster, each Ready=True; their names.
async fn all_routes_ready(client: &Client) -> anyhow::Result<Vec<String>> {
    let routes = Api::<VpnPbrRoute>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let name = |r: &VpnPbrRoute| {
        format!(
            "{}/{}",
            r.metadata.namespace.as_deref().unwrap_or_default(),
            r.metadata.name.as_deref().unwrap_or_default()
        )
    };
    let not_ready: Vec<String> = routes
        .iter()
        .filter(|r| !ready_is(r, ConditionStatus::True, None))
        .map(|r| format!("{}: {:?}", name(r), r.status))
        .collect();
    anyhow::ensure!(!routes.is_empty(), "the steps created no VpnPbrRoute");
    anyhow::ensure!(
        not_ready.is_empty(),
        "routes not Ready after the steps:\n{}",
        not_ready.join("\n")
    );
    Ok(routes.iter().map(name).collect())
}

/// Removes what a file's steps made, except the emulator: the routes first, while the operator
/// runs to delete their cloud entries, then every release with its namespace, then the CRD.
async fn remove_installation(nodes: &LocalNodes, client: &Client) -> anyhow::Result<()> {
    let routes = Api::<VpnPbrRoute>::all(client.clone());
    for r in routes.list(&ListParams::default()).await?.items {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let name = r.metadata.name.clone().unwrap_or_default();
        Api::<VpnPbrRoute>::namespaced(client.clone(), &ns)
            .delete(&name, &DeleteParams::default())
            .await?;
    }
    eventually(WAIT, "every route deleted (cloud entries too)", || async {
        routes
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await?;
    let releases: serde_json::Value =
        serde_json::from_str(&nodes.helm(&["list", "-A", "-o", "json"])?)?;
    let namespaces = Api::<Namespace>::all(client.clone());
    for r in releases.as_array().context("helm list")? {
        let (name, ns) = (
            r["name"].as_str().context("release name")?,
            r["namespace"].as_str().context("release namespace")?,
        );
        nodes.helm(&["uninstall", name, "-n", ns, "--wait", "--timeout", "3m"])?;
        namespaces.delete(ns, &DeleteParams::default()).await?;
        eventually(WAIT, &format!("namespace {ns} gone"), || async {
            namespaces.get_opt(ns).await.ok()?.is_none().then_some(())
        })
        .await?;
    }
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.delete(CRD, &DeleteParams::default()).await?;
    eventually(WAIT, "the CRD gone", || async {
        crds.get_opt(CRD).await.ok()?.is_none().then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root; starts two local nodes, and its steps build the images: `make e2e` runs it (make test too)"]
async fn the_install_steps_of_the_docs_reach_ready_routes_on_local_nodes() -> anyhow::Result<()> {
    let overlay = overlay();
    let t0 = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let docs: Vec<(&str, Vec<Step>)> = DOCS
        .iter()
        .map(|(file, sections)| (*file, local_steps(&overlay, file, sections)))
        .collect();
    let repo = repo_root();
    let audit = HostAudit::begin(&repo)?;
    // Two nodes: the README's leader election runs one replica per node.
    let mut nodes = LocalNodes::up(&repo, 2, &[])?;
    say(t0, "2 nodes Ready (hack/node.sh up), no image imported yet");
    let env = StepEnv::new(&nodes, free_port()?, free_port()?)?;
    nodes
        .diagnosed(async {
            let client = nodes.client().await?;
            for (file, steps) in &docs {
                for step in steps {
                    say(
                        t0,
                        &format!(
                            "{file}:{} step `{}`:\n{}",
                            step.line,
                            step.id,
                            indented(&step.text)
                        ),
                    );
                    // The step blocks this thread for as long as it runs.
                    tokio::task::block_in_place(|| env.run(file, step))?;
                }
                let ready = all_routes_ready(&client).await?;
                say(
                    t0,
                    &format!("{file}: every route Ready: {}", ready.join(", ")),
                );
                remove_installation(&nodes, &client).await?;
                say(
                    t0,
                    &format!("{file}: routes, release, namespace and CRD removed"),
                );
            }
            Ok(())
        })
        .await?;
    audit.end(&mut nodes)?;
    say(
        t0,
        "nodes down; no process, mount, chain, cgroup, sysctl or directory left",
    );
    Ok(())
}
