//! What the document says about how it was made ([`Header`]): the command, the commit, the
//! machine and the date.

use std::path::Path;
use std::process::Command;

/// What the document says about how it was made.
#[derive(Clone, Debug)]
pub struct Header {
    /// The command a reader runs (`make bench`).
    pub(crate) command: String,
    /// The `pbr-bench` command line it ran.
    pub(crate) argv: String,
    pub(crate) commit: String,
    pub(crate) machine: String,
    pub(crate) date: String,
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
