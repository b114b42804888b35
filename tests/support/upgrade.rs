//! The upgrade guide's one command (docs/install.md, "Upgrading"): the `kubectl patch` that gives
//! a CRD the chart did not install Helm's ownership metadata, so that a release can take it
//! over. The tests run it as the guide prints it, never a copy of their own.

use std::path::Path;
use std::process::Command;

use super::command::run_ok;
use super::repo_root;

/// The release the guide's command names, and that the tests install.
pub const RELEASE: &str = "vpn-pbr-operator";
/// The namespace of that release.
pub const RELEASE_NS: &str = "vpn-pbr-system";

/// The one line of `doc` (a file of the repository) that starts with `kubectl patch crd`.
pub fn crd_adoption_command(doc: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(doc))
        .unwrap_or_else(|e| panic!("read {doc}: {e}"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("kubectl patch crd "))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{doc}: expected one `kubectl patch crd` line, found {lines:?}"
    );
    lines[0].to_owned()
}

/// Runs `command`, a shell line of a guide, with bash: `kubectl` from `kube_bin_dir` and the
/// cluster of `kubeconfig`.
pub fn run_doc_command(
    command: &str,
    kubeconfig: &Path,
    kube_bin_dir: &Path,
) -> anyhow::Result<String> {
    let path = format!(
        "{}:{}",
        kube_bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_ok(
        Command::new("bash")
            .args(["-c", command])
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", path),
        None,
    )
}
