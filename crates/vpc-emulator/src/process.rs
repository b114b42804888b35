//! Starting the `vpc-emulator` binary from another program (a test suite, a benchmark). The
//! binary prints `listening on http://ADDR` as its first line on stdout; that line is how a
//! caller that asked for port 0 learns the address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Why the emulator process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0} is missing: build it with `cargo build --bins`")]
    Missing(PathBuf),
    #[error("starting {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("vpc-emulator did not print its address (first line {line:?})")]
    NoAddress { line: String },
}

/// A running `vpc-emulator`, killed when dropped.
pub struct EmulatorProcess {
    child: Child,
    // Kept open: the emulator must not get SIGPIPE when it logs to stdout later.
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl EmulatorProcess {
    /// Starts `bin` on a free loopback port with `config`; its stderr goes to `stderr`, and
    /// `RUST_LOG` to the child when given.
    pub fn spawn(
        bin: &Path,
        config: &Path,
        stderr: Stdio,
        rust_log: Option<&str>,
    ) -> Result<Self, LaunchError> {
        if !bin.is_file() {
            return Err(LaunchError::Missing(bin.to_owned()));
        }
        let mut cmd = Command::new(bin);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
            "--config",
        ])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let spawn_err = |source| LaunchError::Spawn {
            bin: bin.to_owned(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(LaunchError::NoAddress {
                line: String::new(),
            });
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let url = match (read, line.trim().strip_prefix("listening on ")) {
            (Ok(_), Some(url)) => url.to_owned(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::NoAddress { line });
            }
        };
        Ok(Self {
            child,
            _stdout: stdout,
            url,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
