//! The operator binary's subcommands (`import`, `plan`) against the real kube-apiserver and the
//! `vpc-emulator` binary, with the operator started and stopped around them: what
//! `tests/import_plan.rs` and `tests/plan_agrees.rs` share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tempfile::TempDir;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

use super::emulator::{KEY_ID, KEY_SECRET};
pub use super::route::spec;
use super::{Emulator, Operator, ready_is, start_emulator, start_operator, wait_route};

pub const WAIT: Duration = Duration::from_secs(60);

/// `vpn-gw-a` (priorities), `vpn-gw-b` (none) and `vpn-gw-q` (room for one route), each with
/// connections `vco-gw-<gw>-1` and `-2`.
pub fn config() -> String {
    let mut gws = String::new();
    let mut conns = String::new();
    for (gw, prio, quota) in [("a", true, 1000), ("b", false, 1000), ("q", true, 1)] {
        gws.push_str(&format!(
            "  - {{id: vpn-gw-{gw}, region: cn-hangzhou, vpc_id: vpc-test-{gw}, priority_support: {prio}, pbr_quota: {quota}, vpc_route_quota: 1000, update_duration_ms: 200}}\n"
        ));
        for n in 1..=2 {
            conns.push_str(&format!(
                "  - {{id: vco-gw-{gw}-{n}, gateway_id: vpn-gw-{gw}, remote_subnet: 192.168.0.0/16}}\n"
            ));
        }
    }
    format!(
        "settings:\n  task_conflict_window_ms: 50\naccess_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\nregions: [cn-hangzhou]\nvpn_gateways:\n{gws}vpn_connections:\n{conns}"
    )
}

/// A namespace, the emulator of [`config`], and the operator when started.
pub struct CliEnv {
    pub ns: String,
    pub emu: Emulator,
    pub op: Option<Operator>,
    pub api: Api<VpnPbrRoute>,
    pub dir: TempDir,
}

/// What a command printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliEnv {
    pub async fn start(prefix: &str) -> anyhow::Result<CliEnv> {
        let (client, ns) = super::setup(prefix).await?;
        let dir = tempfile::tempdir()?;
        let emu = start_emulator(&config(), dir.path());
        Ok(CliEnv {
            api: Api::namespaced(client, &ns),
            ns,
            emu,
            op: None,
            dir,
        })
    }

    pub fn operator(&mut self) {
        self.op = Some(start_operator(
            &self.ns,
            &self.emu.url,
            self.dir.path(),
            &[],
            &[],
        ));
    }

    pub fn stop_operator(&mut self) {
        if let Some(mut op) = self.op.take() {
            op.terminate();
        }
    }

    pub fn logs(&self) -> String {
        self.op.as_ref().map(Operator::logs).unwrap_or_default()
    }

    /// Creates routes with the official Tea SDK, as the console would.
    pub fn console(&self, routes: &Value) {
        let python = vpn_pbr_harness::tools::sdk_python().unwrap_or_else(|e| panic!("{e:#}"));
        let script = super::repo_root().join("tests/python/console_routes.py");
        let out = vpn_pbr_harness::command::run(
            Command::new(&python)
                .arg(&script)
                .arg(self.emu.url.trim_start_matches("http://"))
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET),
            Some(&routes.to_string()),
        )
        .expect("run the SDK script");
        assert!(
            out.success && out.stdout.contains("ALL OK"),
            "console_routes.py failed:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }

    /// Runs the operator binary with a subcommand, with the emulator's key and endpoint.
    pub fn cli(&self, args: &[&str]) -> Run {
        run_cli(&self.emu.url, args)
    }

    /// `plan` with `-o json`: the exit code and the report.
    pub fn plan_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["plan", "-o", "json"];
        all.extend_from_slice(args);
        let run = self.cli(&all);
        let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "plan printed no JSON ({e}), exit {}:\n{}\n{}",
                run.code, run.stdout, run.stderr
            )
        });
        assert_eq!(report["exitCode"], run.code, "{report:#}");
        (run.code, report)
    }

    pub fn kubectl_apply(&self, path: &Path) {
        let kubectl = super::binaries().tools.kubectl();
        vpn_pbr_harness::command::run_ok(
            Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(&super::plane().kubeconfig)
                .args(["apply", "-n", &self.ns, "-f"])
                .arg(path),
            None,
        )
        .expect("kubectl apply");
    }

    pub async fn ready(&self, name: &str) -> anyhow::Result<VpnPbrRoute> {
        wait_route(
            &self.api,
            name,
            "Ready=True",
            WAIT,
            |r| ready_is(r, ConditionStatus::True, None),
            || self.logs(),
        )
        .await
    }

    /// Calls of mutating actions by code (`Success` for accepted ones).
    pub async fn mutation_calls(&self) -> anyhow::Result<BTreeMap<(String, String), u64>> {
        let counters = self.emu.counters().await?;
        Ok(super::emulator::calls(&counters)
            .into_iter()
            .filter(|(action, _, _)| vpc_emulator::ops::is_mutation(action))
            .map(|(a, c, n)| ((a, c), n))
            .collect())
    }

    /// Every entry, as the emulator holds it, without the fields that change with time.
    pub async fn entries(&self) -> anyhow::Result<Vec<(String, Value)>> {
        let mut out = self.emu.entries().await?;
        out.sort_by_key(|(g, e)| (g.clone(), e.to_string()));
        Ok(out)
    }

    pub async fn create(&self, name: &str, spec: Value, annotations: Value) -> anyhow::Result<()> {
        let obj: VpnPbrRoute = serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name, "annotations": annotations}, "spec": spec
        }))?;
        self.api.create(&PostParams::default(), &obj).await?;
        Ok(())
    }
}

impl Drop for CliEnv {
    fn drop(&mut self) {
        self.stop_operator();
    }
}

/// Runs the operator binary with a subcommand against the emulator at `endpoint`, with the
/// emulator's default key as its own credentials.
pub fn run_cli(endpoint: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(super::operator_binary());
    cmd.args(args)
        .args(["--endpoint", endpoint])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET)
        .stdin(Stdio::null());
    let out = cmd.output().expect("run vpn-pbr-operator");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(KEY_SECRET) && !run.stderr.contains(KEY_SECRET),
        "the secret was printed"
    );
    run
}

/// The route `name` as YAML, with these annotations (an object; `{}` for none).
pub fn manifest(name: &str, annotations: &Value, spec: Value) -> String {
    let mut doc = json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": name}, "spec": spec
    });
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        doc["metadata"]["annotations"] = annotations.clone();
    }
    serde_saphyr::to_string(&doc).expect("yaml")
}

/// One file `<name>.yaml` per route in `dir` (made if missing), without annotations.
pub fn write_manifests(dir: &Path, docs: &[(&str, Value)]) -> PathBuf {
    let docs: Vec<(&str, Value, Value)> = docs
        .iter()
        .map(|(name, spec)| (*name, json!({}), spec.clone()))
        .collect();
    write_annotated(dir, &docs)
}

/// One file `<name>.yaml` per (name, annotations, spec) in `dir` (made if missing).
pub fn write_annotated(dir: &Path, docs: &[(&str, Value, Value)]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    for (name, annotations, spec) in docs {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            manifest(name, annotations, spec.clone()),
        )
        .expect("write");
    }
    dir.to_owned()
}

/// The route of the report with this name.
pub fn route<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no route {name} in {report:#}"))
}

/// The actions of the calls a route of the report makes.
pub fn calls(route: &Value) -> Vec<String> {
    route["calls"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["action"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
