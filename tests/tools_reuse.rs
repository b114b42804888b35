//! The control-plane binaries a machine already has are used instead of being built: with
//! `KUBEBUILDER_ASSETS` (as controller-runtime's envtest reads it) holding kube-apiserver, etcd
//! and kubectl of the tested version, an empty tool cache and no `go` on `PATH`,
//! `hack/tools.sh --control-plane` (what `make demo` runs) succeeds and `hack/cluster.sh up`
//! starts a control plane from them. A binary of another version is not taken for the tested one.
//!
//! Needs the binaries `make tools` builds (they stand in for the machine's own); when they are
//! missing the test fails and says how to build them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, bail, ensure};
use vpn_pbr_harness::command::describe;
use vpn_pbr_harness::tools::{Tools, repo_root};

/// `PATH` without any directory that holds `go`.
fn path_without_go() -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty() && !Path::new(d).join("go").exists())
        .collect::<Vec<_>>()
        .join(":")
}

/// `script args` with exactly `env` on top of a cleaned environment (no tool directories).
fn run(script: &str, args: &[&str], env: &BTreeMap<&str, String>) -> Result<Output> {
    let mut cmd = Command::new(repo_root().join(script));
    cmd.args(args);
    for var in [
        "KUBE_BIN_DIR",
        "ETCD_BIN_DIR",
        "HELM_BIN_DIR",
        "KUBEBUILDER_ASSETS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env);
    cmd.output().with_context(|| format!("running {script}"))
}

/// A directory of links to the cached binaries, standing in for the machine's own.
fn assets(tools: &Tools, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (src, name) in [
        (tools.kube_bin_dir.join("kube-apiserver"), "kube-apiserver"),
        (tools.kube_bin_dir.join("kubectl"), "kubectl"),
        (tools.etcd_bin_dir.join("etcd"), "etcd"),
    ] {
        let real = src
            .canonicalize()
            .with_context(|| format!("{} (build it with `make tools`)", src.display()))?;
        std::os::unix::fs::symlink(real, dir.join(name))?;
    }
    Ok(())
}

#[test]
fn control_plane_binaries_of_the_machine_are_reused_without_go() -> Result<()> {
    let tools = Tools::from_env()?;
    let tmp = tempfile::tempdir()?;
    let machine = tmp.path().join("assets");
    assets(&tools, &machine)?;
    let cache = tmp.path().join("empty-cache");
    let path = path_without_go();
    ensure!(
        !path.split(':').any(|d| Path::new(d).join("go").exists()),
        "go is still on PATH"
    );
    let env = BTreeMap::from([
        ("PATH", path),
        ("VPN_PBR_CACHE", cache.display().to_string()),
        ("KUBEBUILDER_ASSETS", machine.display().to_string()),
    ]);

    let out = run("hack/tools.sh", &["--control-plane", "--env"], &env)?;
    ensure!(
        out.status.success(),
        "hack/tools.sh failed:\n{}",
        describe(&out)
    );
    let exports = String::from_utf8_lossy(&out.stdout).to_string();
    for name in ["kube-apiserver", "kubectl", "etcd"] {
        let dir = if name == "etcd" {
            cache.join("etcd/v3.7.3")
        } else {
            cache.join("k8s/v1.37.2")
        };
        let linked: PathBuf = dir.join(name).canonicalize()?;
        ensure!(
            linked == machine.join(name).canonicalize()?,
            "{name} in the cache is {}, not the machine's",
            linked.display()
        );
        ensure!(
            exports.contains(&dir.display().to_string()),
            "exports name {}:\n{exports}",
            dir.display()
        );
    }
    ensure!(
        !cache.join("k8s/v1.37.2/kubelet").exists(),
        "--control-plane built or linked a node binary"
    );

    // A control plane from the reused binaries answers.
    let plane = tmp.path().join("cluster");
    let up = run(
        "hack/cluster.sh",
        &["up", "--dir", &plane.display().to_string()],
        &env,
    )?;
    let answered = if up.status.success() {
        Command::new(machine.join("kubectl"))
            .arg("--kubeconfig")
            .arg(plane.join("admin.kubeconfig"))
            .args(["get", "--raw", "/readyz"])
            .output()
            .map_err(anyhow::Error::from)
    } else {
        Err(anyhow::anyhow!(
            "hack/cluster.sh up failed:\n{}",
            describe(&up)
        ))
    };
    let down = run(
        "hack/cluster.sh",
        &["down", "--dir", &plane.display().to_string()],
        &env,
    )?;
    let answered = answered?;
    ensure!(
        answered.status.success() && String::from_utf8_lossy(&answered.stdout).trim() == "ok",
        "/readyz of the reused control plane:\n{}",
        describe(&answered)
    );
    ensure!(
        down.status.success(),
        "hack/cluster.sh down:\n{}",
        describe(&down)
    );
    Ok(())
}

#[test]
fn a_binary_of_another_version_is_not_reused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let machine = tmp.path().join("assets");
    std::fs::create_dir_all(&machine)?;
    let fake = machine.join("etcd");
    std::fs::write(&fake, "#!/bin/sh\necho 'etcd Version: 3.5.0'\n")?;
    let mut perms = std::fs::metadata(&fake)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms)?;
    let cache = tmp.path().join("empty-cache");
    let env = BTreeMap::from([
        ("PATH", path_without_go()),
        ("VPN_PBR_CACHE", cache.display().to_string()),
        ("KUBEBUILDER_ASSETS", machine.display().to_string()),
    ]);
    let out = run("hack/etcd/build.sh", &[], &env)?;
    // Without go it cannot build, and it must not take the 3.5.0 stand-in for 3.7.3.
    if out.status.success() {
        bail!("etcd 3.5.0 was taken for 3.7.3:\n{}", describe(&out));
    }
    ensure!(
        !cache.join("etcd/v3.7.3/etcd").exists(),
        "the cache holds an etcd:\n{}",
        describe(&out)
    );
    Ok(())
}
