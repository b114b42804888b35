//! The progress lines of a run on stderr, `[label] <seconds> s: what`; the periodic ones at
//! most every 10 s, so that a long wait shows it is alive without flooding the log.

use std::time::Duration;

use tokio::time::Instant;

/// The progress lines of one run or phase: its label, its start, and when the last periodic
/// line went out.
pub(crate) struct Progress {
    label: String,
    since: Instant,
    last: Instant,
}

impl Progress {
    /// Lines labelled `label`, counting the seconds from `since`; the first periodic line in
    /// 10 s.
    pub(crate) fn new(label: &str, since: Instant) -> Progress {
        Progress {
            label: label.to_owned(),
            since,
            last: Instant::now(),
        }
    }

    /// Prints `what` now.
    pub(crate) fn say(&self, what: &str) {
        eprintln!("{}", self.line(what));
    }

    fn line(&self, what: &str) -> String {
        format!(
            "[{}] {:>5.0} s: {what}",
            self.label,
            self.since.elapsed().as_secs_f64()
        )
    }

    /// Prints `what()` when the last periodic line is more than 10 s old.
    pub(crate) fn every_10s(&mut self, what: impl FnOnce() -> String) {
        if self.last.elapsed() > Duration::from_secs(10) {
            self.say(&what());
            self.last = Instant::now();
        }
    }
}

/// How a run's last line says whether it converged.
pub(crate) fn converged_word(converged: bool) -> &'static str {
    if converged {
        "converged"
    } else {
        "NOT converged"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_label_and_the_seconds() {
        let p = Progress::new("chaos", Instant::now());
        assert_eq!(p.line("3/10 Ready"), "[chaos]     0 s: 3/10 Ready");
    }
}
