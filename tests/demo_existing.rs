//! `make demo CLUSTER=existing` on a cluster it did not make, with the repository's own local
//! control plane standing in for that cluster: the demo refuses to start (changing nothing) when
//! the cluster has the CRD at other versions, VpnPbrRoutes outside the demo's namespace, or a
//! demo namespace holding objects the demo did not make; otherwise it runs with the operator
//! watching only its namespace, and `demo-down` removes only what it made.
//!
//! Needs the control-plane binaries (`make tools`) and the workspace's debug binaries
//! (`cargo build --bins`); when they are missing the test fails and says how to build them.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use support::command::describe;
use support::{binaries, eventually, plane, repo_root};

const NS: &str = "vpn-pbr-demo-test";

/// `hack/demo.sh <cmd>` in namespace `ns` of the stand-in cluster, with the test's binaries.
fn demo(cmd: &str, ns: &str, kubeconfig: &Path, demo_dir: &Path) -> Result<Output> {
    let bins = binaries();
    let bin_dir = bins
        .operator
        .parent()
        .context("operator binary has a directory")?
        .to_owned();
    let env = BTreeMap::from([
        ("DEMO_CLUSTER", "existing".to_owned()),
        ("DEMO_NAMESPACE", ns.to_owned()),
        ("DEMO_DIR", demo_dir.display().to_string()),
        ("DEMO_BIN_DIR", bin_dir.display().to_string()),
        ("DEMO_WAIT_TIMEOUT", "120s".to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        (
            "KUBE_BIN_DIR",
            bins.tools.kube_bin_dir.display().to_string(),
        ),
        (
            "ETCD_BIN_DIR",
            bins.tools.etcd_bin_dir.display().to_string(),
        ),
    ]);
    Command::new(repo_root().join("hack/demo.sh"))
        .arg(cmd)
        .envs(env)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bins.tools.kube_bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .context("running hack/demo.sh")
}

/// `kubectl args` on the stand-in cluster; its stdout.
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let bins = binaries();
    let mut cmd = Command::new(bins.tools.kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    let out = support::command::run(&mut cmd, stdin)?;
    if !out.success {
        bail!("kubectl {}: {}{}", args.join(" "), out.stdout, out.stderr);
    }
    Ok(out.stdout)
}

/// Runs `demo down` when dropped, so a failed assertion leaves no demo process behind.
struct DownOnDrop<'a> {
    kubeconfig: &'a Path,
    dir: &'a Path,
    armed: bool,
}

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = demo("down", NS, self.kubeconfig, self.dir);
        }
    }
}

fn refused(out: &Output, why: &str) -> Result<()> {
    let all = describe(out);
    ensure!(!out.status.success(), "demo started although {why}:\n{all}");
    ensure!(
        all.contains("refusing to start") && all.contains("nothing was changed"),
        "the refusal says so ({why}):\n{all}"
    );
    Ok(())
}

/// [`refused`], with `object` named in the refusal.
fn refused_naming(out: &Output, why: &str, object: &str) -> Result<()> {
    refused(out, why)?;
    let all = describe(out);
    ensure!(all.contains(object), "the refusal names {object}:\n{all}");
    Ok(())
}

const OTHER_VERSION_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: vpnpbrroutes.vpn.alicloud.dev
spec:
  group: vpn.alicloud.dev
  scope: Namespaced
  names: {plural: vpnpbrroutes, singular: vpnpbrroute, kind: VpnPbrRoute, shortNames: [pbr]}
  versions:
  - name: v0old
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

const FOREIGN_ROUTE: &str = r#"
apiVersion: vpn.alicloud.dev/v1alpha1
kind: VpnPbrRoute
metadata: {name: not-the-demos, namespace: team-a}
spec:
  regionId: cn-hangzhou
  vpnGatewayId: vpn-demo-primary
  routeSource: 192.168.99.0/24
  routeDest: 10.99.0.0/16
  nextHop: vco-demo-primary-a
  weight: 100
  publishVpc: false
"#;

#[test]
fn the_demo_on_an_existing_cluster_refuses_foreign_state_and_removes_only_its_own() -> Result<()> {
    let plane = plane();
    let kc = &plane.kubeconfig;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("demo");
    let crd = "crd/vpnpbrroutes.vpn.alicloud.dev";

    // 1. The CRD at another version.
    kubectl(kc, &["apply", "-f", "-"], Some(OTHER_VERSION_CRD))?;
    refused(&demo("up", NS, kc, &dir)?, "the CRD is at another version")?;
    let versions = kubectl(
        kc,
        &["get", crd, "-o", "jsonpath={.spec.versions[*].name}"],
        None,
    )?;
    ensure!(versions == "v0old", "the CRD was changed: {versions}");
    kubectl(kc, &["delete", crd, "--wait=true", "--timeout=60s"], None)?;

    // 2. The demo's namespace holding an object the demo did not make (another namespace: this
    // stand-in has no namespace controller, so a namespace never finishes deleting).
    let taken = "vpn-pbr-demo-taken";
    kubectl(kc, &["create", "namespace", taken], None)?;
    kubectl(
        kc,
        &[
            "label",
            "namespace",
            taken,
            "app.kubernetes.io/managed-by=vpn-pbr-demo",
        ],
        None,
    )?;
    kubectl(
        kc,
        &[
            "-n",
            taken,
            "create",
            "configmap",
            "someone-elses",
            "--from-literal=a=b",
        ],
        None,
    )?;
    let out = demo("up", taken, kc, &dir)?;
    refused_naming(
        &out,
        "the namespace holds a foreign ConfigMap",
        "ConfigMap/someone-elses",
    )?;
    ensure!(
        kubectl(kc, &["get", "crd", "-o", "name"], None)?
            .lines()
            .all(|l| !l.contains("vpnpbrroutes")),
        "the CRD was installed although the demo refused"
    );
    // A namespace of that name not made by the demo is refused too.
    kubectl(kc, &["create", "namespace", "not-the-demos"], None)?;
    let out = demo("up", "not-the-demos", kc, &dir)?;
    refused(&out, "the namespace was not made by the demo")?;

    // 3. A VpnPbrRoute outside the demo's namespace (the CRD is the repository's: kept).
    kubectl(
        kc,
        &[
            "apply",
            "--server-side",
            "-f",
            &repo_root()
                .join("crds/vpnpbrroutes.vpn.alicloud.dev.yaml")
                .display()
                .to_string(),
        ],
        None,
    )?;
    kubectl(
        kc,
        &["wait", "--for=condition=Established", "--timeout=60s", crd],
        None,
    )?;
    kubectl(kc, &["create", "namespace", "team-a"], None)?;
    kubectl(kc, &["apply", "-f", "-"], Some(FOREIGN_ROUTE))?;
    let out = demo("up", NS, kc, &dir)?;
    refused_naming(
        &out,
        "a VpnPbrRoute exists in team-a",
        "team-a/not-the-demos",
    )?;
    kubectl(
        kc,
        &["-n", "team-a", "delete", "pbr", "not-the-demos"],
        None,
    )?;

    // 4. A clean cluster (but for the CRD it did not make): the demo runs, in its namespace only.
    let mut guard = DownOnDrop {
        kubeconfig: kc,
        dir: &dir,
        armed: true,
    };
    let out = demo("up", NS, kc, &dir)?;
    if !out.status.success() {
        let log = std::fs::read_to_string(dir.join("operator.log")).unwrap_or_default();
        bail!("demo up failed:\n{}\noperator log:\n{log}", describe(&out));
    }
    let routes = kubectl(kc, &["get", "pbr", "-A", "-o", "name"], None)?;
    ensure!(
        routes.lines().count() == 4,
        "the examples' 4 routes:\n{routes}"
    );
    // A route outside the namespace made after the start is not the demo's operator's business.
    kubectl(kc, &["apply", "-f", "-"], Some(FOREIGN_ROUTE))?;
    std::thread::sleep(Duration::from_secs(5));
    let finalizers = kubectl(
        kc,
        &[
            "-n",
            "team-a",
            "get",
            "pbr",
            "not-the-demos",
            "-o",
            "jsonpath={.metadata.finalizers}",
        ],
        None,
    )?;
    ensure!(
        finalizers.is_empty(),
        "the demo's operator took a route outside its namespace: {finalizers}"
    );

    // 5. Down: the demo's routes and namespace go; the CRD and team-a's route stay.
    guard.armed = false;
    let out = demo("down", NS, kc, &dir)?;
    ensure!(out.status.success(), "demo down:\n{}", describe(&out));
    let rt = tokio::runtime::Runtime::new()?;
    // Gone, or being deleted (this stand-in has no namespace controller to finish it).
    rt.block_on(eventually(
        Duration::from_secs(60),
        "the demo namespace deleted",
        || async {
            let all = kubectl(kc, &["get", "namespaces", "-o", "name"], None).ok()?;
            if !all.lines().any(|l| l == format!("namespace/{NS}")) {
                return Some(());
            }
            let deleting = kubectl(
                kc,
                &[
                    "get",
                    "namespace",
                    NS,
                    "-o",
                    "jsonpath={.metadata.deletionTimestamp}",
                ],
                None,
            )
            .ok()?;
            (!deleting.is_empty()).then_some(())
        },
    ))?;
    kubectl(kc, &["get", crd], None).context("the CRD the demo did not make is kept")?;
    kubectl(kc, &["-n", "team-a", "get", "pbr", "not-the-demos"], None)
        .context("team-a's route is kept")?;
    kubectl(
        kc,
        &["-n", "team-a", "delete", "pbr", "not-the-demos"],
        None,
    )?;
    Ok(())
}
