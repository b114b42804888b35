//! Running the tools the tests drive (helm, kubectl) and finding helm.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// helm from `HELM_BIN_DIR` (set by `make test`) or the cache `hack/helm/build.sh` fills.
pub fn helm() -> PathBuf {
    let dir = std::env::var_os("HELM_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::cache_dir().join("helm/v4.3.1"));
    let helm = dir.join("helm");
    assert!(
        helm.is_file(),
        "{} is missing: build helm with hack/helm/build.sh (or `make tools`, or run the tests \
         with `make test`, which sets HELM_BIN_DIR)",
        helm.display()
    );
    helm
}

/// Runs `cmd`, feeding `stdin`; returns (success, stdout, stderr).
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd` and returns its stdout; panics with both outputs when it fails.
pub fn run_ok(cmd: &mut Command, stdin: Option<&str>) -> String {
    let desc = format!("{cmd:?}");
    let (ok, stdout, stderr) = run(cmd, stdin);
    assert!(ok, "{desc} failed:\n{stdout}\n{stderr}");
    stdout
}
