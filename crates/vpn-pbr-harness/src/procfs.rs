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
}
