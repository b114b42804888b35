//! What the document says about how it was made ([`Header`]): the command, the commit, the
//! machine and the date.

use std::fmt;
use std::path::Path;
use std::process::Command;

/// What the document says about how it was made; shown as the document's first list items.
#[derive(Clone, Debug)]
pub struct Header {
    /// The command a reader runs (`make bench`).
    command: String,
    /// The `pbr-bench` command line it ran.
    argv: String,
    commit: String,
    machine: String,
    date: String,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "- Command: `{}` (ran `{}`)", self.command, self.argv)?;
        writeln!(f, "- Commit: {}", self.commit)?;
        writeln!(
            f,
            "- Machine: {} (shared with other builds at the time)",
            self.machine
        )?;
        writeln!(f, "- Date: {}", self.date)
    }
}

impl Header {
    /// The header of a run made now, in the repository `repo`.
    pub fn now(command: &str, repo: &Path) -> Header {
        Header {
            command: command.to_owned(),
            argv: std::env::args()
                .enumerate()
                .map(|(i, a)| if i == 0 { "pbr-bench".to_owned() } else { a })
                .collect::<Vec<_>>()
                .join(" "),
            commit: commit(repo),
            machine: machine(),
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
        }
    }

    /// A fixed header, for the tests of the report.
    #[cfg(test)]
    pub(super) fn fixed() -> Header {
        Header {
            command: "make bench".to_owned(),
            argv: "pbr-bench bench --out docs/benchmarks.md".to_owned(),
            commit: "abc1234".to_owned(),
            machine: "test machine".to_owned(),
            date: "2026-01-01 00:00 UTC".to_owned(),
        }
    }
}

/// The short commit of `repo`, with `+ uncommitted changes` when the tree is dirty.
fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c} + uncommitted changes")
        }
        Some(c) => c,
        None => "unknown".to_owned(),
    }
}

/// The machine, in one line: CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {kernel}")
}
