//! Upgrading to the chart that carries the CRD, against a real kube-apiserver (a control plane
//! of this test binary's own: it changes the cluster's one `VpnPbrRoute` CRD):
//!
//! - a CRD older than the operator (the one of `crds/` without `status.accountId` and the
//!   `Synced` printer column), applied with `kubectl apply --server-side` as the guides said
//!   before chart 0.4.0, beside a release that does not hold it (`crds.enabled=false`);
//! - the real operator binary refuses to start on it, naming what it lacks and how to upgrade;
//! - `helm upgrade` refuses to take the CRD over until the one command of docs/install.md
//!   ("Upgrading") gives it Helm's ownership metadata; then, since kubectl owns its fields,
//!   `helm upgrade --force-conflicts` takes it over and upgrades it, as the guide says;
//! - the operator starts on the upgraded CRD, and `helm uninstall` leaves it (`crds.keep`).
//!
//! tests/e2e.rs upgrades the other way in: from the chart of an older commit, whose `crds/`
//! Helm itself installed.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use serde_json::Value;
use support::command::{Output, run, run_ok};
use support::upgrade::{RELEASE, RELEASE_NS, crd_adoption_command, run_doc_command};
use support::{
    ROUTE_CRD as CRD, chart_dir, emulator, plane, repo_root, start_emulator, start_operator,
};
use vpn_pbr_harness::{Tools, tools};

/// The CRD of `crds/` without `status.accountId` and the `Synced` printer column: the CRD of a
/// release before them.
fn older_crd_yaml() -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo_root().join(format!("crds/{CRD}.yaml")))?;
    let mut crd: Value = serde_saphyr::from_str(&text)?;
    let version = &mut crd["spec"]["versions"][0];
    let status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        .as_object_mut()
        .expect("status properties");
    assert!(status.remove("accountId").is_some(), "crds/ has accountId");
    let columns = version["additionalPrinterColumns"]
        .as_array_mut()
        .expect("printer columns");
    let before = columns.len();
    columns.retain(|c| c["name"] != "Synced");
    assert_eq!(columns.len(), before - 1, "crds/ has the Synced column");
    Ok(serde_saphyr::to_string(&crd)?)
}

fn chart() -> String {
    chart_dir().display().to_string()
}

/// `helm <verb> RELEASE <chart> -n RELEASE_NS` with `extra`, against the test's plane.
fn helm(verb: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(tools::helm()?);
    cmd.arg("--kubeconfig")
        .arg(&plane().kubeconfig)
        .args([verb, RELEASE, &chart(), "-n", RELEASE_NS])
        .args(extra);
    run(&mut cmd, None)
}

fn helm_ok(verb: &str, extra: &[&str]) -> anyhow::Result<()> {
    let out = helm(verb, extra)?;
    anyhow::ensure!(
        out.success,
        "helm {verb} {extra:?} failed:\n{}{}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

/// `helm upgrade` with `extra` that must fail saying `why`.
fn helm_refused(extra: &[&str], why: &str) -> anyhow::Result<()> {
    let out = helm("upgrade", extra)?;
    anyhow::ensure!(
        !out.success && out.stderr.contains(why),
        "helm upgrade {extra:?} should have failed with {why:?}:\n{}{}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

/// Whether `path` (property names) is in the schema of the CRD's first version.
fn has_field(crd: &Value, path: &[&str]) -> bool {
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for p in path {
        node = &node["properties"][*p];
    }
    !node.is_null()
}

fn has_column(crd: &Value, name: &str) -> bool {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .is_some_and(|cols| cols.iter().any(|c| c["name"] == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_crd_stops_the_operator_until_the_release_takes_it_over_and_upgrades_it()
-> anyhow::Result<()> {
    let cp = plane();
    let client = cp.client().await?;
    let tools = Tools::from_env()?;
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        run_ok(
            Command::new(tools.kubectl())
                .arg("--kubeconfig")
                .arg(&cp.kubeconfig)
                .args(args),
            stdin,
        )
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = || async { anyhow::Ok(serde_json::to_value(crds.get(CRD).await?)?) };

    // The older CRD, as the guides before chart 0.4.0 applied it, beside a release without it.
    kubectl(
        &["apply", "--server-side", "-f", "-"],
        Some(&older_crd_yaml()?),
    )?;
    kubectl(
        &["wait", "--for=condition=Established", &format!("crd/{CRD}")],
        None,
    )?;
    helm_ok(
        "install",
        &["--create-namespace", "--set", "crds.enabled=false"],
    )?;

    // The operator refuses it, naming what is missing and how to upgrade.
    let ns = vpn_pbr_harness::namespace(&client, "crd-upgrade").await?;
    let dir = tempfile::tempdir()?;
    let emu = start_emulator(&emulator::two_gateway_config_yaml(200, ""), dir.path());
    let mut op = start_operator(&ns, &emu.url, dir.path(), &[], &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = op.exited() {
            break status;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the operator still runs on the older CRD:\n{}",
            op.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let logs = op.logs();
    assert!(!status.success(), "exit status {status}:\n{logs}");
    for needle in [
        "is older than this operator",
        "field status.accountId",
        "printer column Synced",
        "helm upgrade",
        "kubectl apply --server-side -f crds/",
    ] {
        assert!(logs.contains(needle), "{needle:?} not in the log:\n{logs}");
    }

    // Helm refuses to take over a CRD without its ownership metadata.
    helm_refused(
        &["--set", "crds.enabled=true"],
        "invalid ownership metadata",
    )?;
    // The guide's one command; then kubectl's fields conflict with Helm's server-side apply
    // until the upgrade forces them, as the guide says.
    run_doc_command(
        &crd_adoption_command("docs/install.md"),
        &cp.kubeconfig,
        &tools.kube_bin_dir,
    )?;
    helm_refused(&["--set", "crds.enabled=true"], "conflict with \"kubectl\"")?;
    helm_ok(
        "upgrade",
        &["--set", "crds.enabled=true", "--force-conflicts"],
    )?;
    let crd = installed().await?;
    assert!(
        has_field(&crd, &["status", "accountId"]) && has_column(&crd, "Synced"),
        "the CRD was not upgraded: {crd}"
    );
    let meta = &crd["metadata"];
    assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(meta["annotations"]["meta.helm.sh/release-name"], RELEASE);
    assert_eq!(meta["annotations"]["helm.sh/resource-policy"], "keep");

    // The operator starts on it.
    op.restart()?;
    op.wait_ready(Duration::from_secs(60)).await?;
    assert!(
        op.logs().contains("serve every field this operator uses"),
        "{}",
        op.logs()
    );
    op.terminate();

    // helm uninstall leaves the CRD (crds.keep).
    let mut uninstall = Command::new(tools::helm()?);
    uninstall.arg("--kubeconfig").arg(&cp.kubeconfig).args([
        "uninstall",
        RELEASE,
        "-n",
        RELEASE_NS,
        "--wait",
    ]);
    run_ok(&mut uninstall, None)?;
    assert!(
        crds.get_opt(CRD).await?.is_some(),
        "helm uninstall kept the CRD"
    );
    Ok(())
}

/// Every guide with an upgrade step gives the same command as docs/install.md.
#[test]
fn every_guide_gives_the_same_crd_adoption_command() {
    let command = crd_adoption_command("docs/install.md");
    for doc in ["README.md", "docs/migration.md"] {
        assert_eq!(crd_adoption_command(doc), command, "{doc}");
    }
}
