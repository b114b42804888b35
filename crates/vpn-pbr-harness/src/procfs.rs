//! Reading `/proc`: the ids of the processes, and the fields of a process's `stat` and
//! `status` files.

/// The ids of the processes now (the numeric entries of `/proc`).
pub(crate) fn pids() -> std::io::Result<Vec<u32>> {
    Ok(std::fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// The fields of `/proc/<pid>/stat` after the command name, which may hold spaces and
/// parentheses: the first is `state` (field 3 of proc(5)).
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The value of the line `name` (with its colon) of a `/proc/<pid>/status` text, trimmed.
pub(crate) fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// The machine's CPU time so far, from the `cpu` line of a `/proc/stat` text: (idle, total), in
/// clock ticks; idle counts `idle` and `iowait`.
pub(crate) fn cpu_idle_total(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((idle, ticks.iter().sum()))
}

/// The machine's (idle, total) CPU ticks now.
pub(crate) fn machine_cpu() -> Option<(u64, u64)> {
    cpu_idle_total(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The share of CPU time left idle between two readings of [`machine_cpu`].
pub(crate) fn idle_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1).filter(|t| *t > 0)?;
    Some(after.0.saturating_sub(before.0) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_listed_with_its_parent() {
        let me = std::process::id();
        assert!(pids().expect("read /proc").contains(&me));
        let fields = stat_fields(me).expect("stat");
        // state, then the parent's id.
        assert_eq!(fields[0].len(), 1, "{fields:?}");
        assert!(fields[1].parse::<u32>().is_ok(), "{fields:?}");
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).expect("status");
        assert_eq!(status_field(&status, "Pid:"), Some(me.to_string().as_str()));
    }

    #[test]
    fn idle_share_between_two_readings() {
        // user nice system idle iowait irq softirq steal
        let before = cpu_idle_total("cpu  100 0 50 800 50 0 0 0\ncpu0 1 2 3 4\n");
        let after = cpu_idle_total("cpu  400 0 150 1300 100 0 0 0\n");
        assert_eq!((before, after), (Some((850, 1000)), Some((1400, 1950))));
        let share = idle_share((850, 1000), (1400, 1950));
        assert!(
            share.is_some_and(|s| (s - 550.0 / 950.0).abs() < 1e-9),
            "{share:?}"
        );
        assert_eq!(idle_share((1, 5), (1, 5)), None);
        assert_eq!(cpu_idle_total("intr 5\n"), None);
        assert!(machine_cpu().is_some());
    }
}
