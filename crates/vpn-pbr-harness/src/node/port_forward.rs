//! `kubectl port-forward` to a service of the local nodes, in the background.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::local::LocalNodes;
use crate::command::stop;

/// `kubectl port-forward` in the background; stopped on drop.
pub struct PortForward {
    child: Child,
    /// The local port on 127.0.0.1.
    pub port: u16,
}

impl PortForward {
    /// `kubectl port-forward <target> :<remote>` in `namespace` (for example `svc/name`).
    pub fn start(
        nodes: &LocalNodes,
        namespace: &str,
        target: &str,
        remote: u16,
    ) -> Result<PortForward> {
        let mut child = nodes
            .kubectl(&[
                "-n",
                namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
                target,
                &format!(":{remote}"),
            ])?
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("kubectl port-forward")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "Forwarding from 127.0.0.1:41234 -> 8080"
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:")
                    && let Some(port) = rest.split_whitespace().next()
                {
                    let _ = tx.send(port.parse::<u16>().ok());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Ok(PortForward { child, port }),
            _ => {
                stop(&mut child);
                bail!("kubectl port-forward {target} printed no local port")
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
