//! Durations as the flags and annotations write them: `90s`, `5m`, `1h`, `1h30m`.

use std::time::Duration;

/// Parses durations like `90s`, `5m`, `1h`, `1h30m`.
pub(crate) fn parse(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    if !num.is_empty() || total == 0 {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// [`parse`] for a command-line flag (clap's `value_parser`): the error says what is expected.
pub(crate) fn flag(s: &str) -> Result<Duration, String> {
    parse(s).ok_or_else(|| format!("invalid duration {s:?}: use e.g. 30s, 10m, 1h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("5"), None);
        assert_eq!(parse("x"), None);
        assert_eq!(parse("0s"), None);
    }
}
