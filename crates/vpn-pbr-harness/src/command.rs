//! Running the command-line tools a test drives (helm, kubectl) and keeping their output, and
//! stopping a child process.

use std::io::Write;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// What a finished command printed.
#[derive(Clone, Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd`, feeding `stdin` when given.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<Output> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).context("write stdin")?;
    }
    let out = child.wait_with_output().context("wait")?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cmd` and returns its stdout; an error with both outputs when it fails.
pub fn run_ok(cmd: &mut Command, stdin: Option<&str>) -> Result<String> {
    let desc = format!("{cmd:?}");
    let out = run(cmd, stdin)?;
    if !out.success {
        bail!("{desc} failed:\n{}\n{}", out.stdout, out.stderr);
    }
    Ok(out.stdout)
}

/// A finished process's status and both outputs, for a failure message.
pub fn describe(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SIGKILL `child` and reap it; a child that is gone already is fine.
pub(crate) fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
