//! Learning how long a gateway stays `updating` after a change, from what the API answers.
//!
//! Every answer bounds the update time `T`, measured from the previous accepted change: a
//! gateway found busy (or `updating`) after a gap proves `T` is longer, one found free proves it
//! is at most that gap. The next change goes out halfway between the bounds until they are
//! close, then at the proven upper bound, so a steady gateway is used within about 1 % of its
//! physical limit at the cost of a few refused calls while learning.

use std::time::Duration;

/// Gap of the first status read after a change when nothing is known yet.
pub const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Growth of status-read gaps while the update time is unknown.
const PROBE_GROWTH: f64 = 1.5;
/// Cycles in a row with a busy answer after a proven-free gap before the update time is
/// learned anew. One such answer is noise (someone else's change, a transient conflict);
/// several in a row mean the gateway got slower.
const RELEARN_AFTER: u32 = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Longest gap after which the gateway was still busy.
    lower: Duration,
    /// Shortest gap after which the gateway was free; `None` until one is seen.
    upper: Option<Duration>,
    /// Whether this cycle (since the last accepted change) saw a contradicting busy answer.
    contradicted: bool,
    /// Contradicted cycles in a row.
    contradicted_cycles: u32,
}

/// How a busy answer fits what is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// Within the known bounds: the change simply needs longer; retry at the next gap.
    Consistent,
    /// After a gap already proven free: not explained by our last change; back off.
    Contradicting,
}

impl Estimate {
    /// The gateway was busy `gap` after the last accepted change.
    pub fn busy(&mut self, gap: Duration) -> Busy {
        if self.upper.is_some_and(|u| gap >= u) {
            self.contradicted = true;
            return Busy::Contradicting;
        }
        self.lower = self.lower.max(gap);
        Busy::Consistent
    }

    /// The gateway was free `gap` after the last accepted change.
    pub fn free(&mut self, gap: Duration) {
        if self.contradicted {
            self.contradicted = false;
            self.contradicted_cycles += 1;
            if self.contradicted_cycles >= RELEARN_AFTER {
                // Busy after proven-free gaps cycle after cycle: the gateway got slower.
                *self = Self {
                    lower: self.upper.unwrap_or_default(),
                    upper: Some(gap),
                    ..Self::default()
                };
            }
            // A noisy cycle proves nothing about the update time.
            return;
        }
        self.contradicted_cycles = 0;
        let upper = self.upper.map_or(gap, |u| u.min(gap));
        self.upper = Some(upper);
        if self.lower >= upper {
            // The gateway got faster: forget the old lower bound.
            self.lower = upper.mul_f64(0.5);
        }
    }

    /// Whether some free gap is known.
    pub fn known(&self) -> bool {
        self.upper.is_some()
    }

    /// Gap after which to send the next change: halfway between the bounds while they are far
    /// apart, else the proven upper bound plus a margin for timing jitter (the gap is measured
    /// from our side of the network). `None` while no free gap is known (probe instead).
    pub fn send_gap(&self) -> Option<Duration> {
        let upper = self.upper?;
        let tolerance = tolerance(upper);
        if upper.saturating_sub(self.lower) > tolerance {
            Some(self.lower + (upper - self.lower) / 2)
        } else {
            Some(upper + tolerance)
        }
    }

    /// Pause before sending again after a busy answer that contradicts what is known (the
    /// `n`-th in this cycle, from 0): short, since such answers are mostly timing jitter.
    pub fn noise_pause(&self, n: u32) -> Duration {
        let base = self.upper.map_or(FIRST_PROBE, |u| tolerance(u) * 2);
        base.saturating_mul(1u32 << n.min(10))
            .min(Duration::from_secs(30))
    }

    /// Gap after which to send again after a busy answer: the proven upper bound.
    pub fn retry_gap(&self) -> Option<Duration> {
        self.upper
    }

    /// Gap of the next status read: the upper bound when known, else a growing step.
    pub fn probe_gap(&self) -> Duration {
        self.upper
            .unwrap_or_else(|| FIRST_PROBE.max(self.lower.mul_f64(PROBE_GROWTH)))
    }
}

/// How close the bounds must be before the estimate is used as is.
fn tolerance(upper: Duration) -> Duration {
    Duration::from_millis(10).max(upper.mul_f64(0.01))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Simulates a gateway with update time `t`, answering at the estimate's suggestions.
    fn converge(t: Duration) -> (Estimate, usize) {
        let mut e = Estimate::default();
        let mut wasted = 0;
        // Probes until the first free answer.
        loop {
            let g = e.probe_gap();
            if g >= t {
                e.free(g);
                break;
            }
            assert_eq!(e.busy(g), Busy::Consistent);
            wasted += 1;
        }
        for _ in 0..30 {
            let g = e.send_gap().expect("known");
            if g >= t {
                e.free(g);
            } else {
                assert_eq!(e.busy(g), Busy::Consistent);
                wasted += 1;
            }
        }
        (e, wasted)
    }

    #[test]
    fn converges_within_two_percent_with_few_wasted_calls() {
        for t in [ms(300), ms(2000), ms(7300), ms(45_000)] {
            let (e, wasted) = converge(t);
            let g = e.send_gap().expect("known");
            assert!(
                g >= t && g.as_secs_f64() <= t.as_secs_f64() * 1.021 + 0.020,
                "{t:?}: {g:?}"
            );
            assert!(wasted <= 20, "{t:?}: {wasted} wasted calls");
        }
    }

    #[test]
    fn noise_does_not_move_the_estimate() {
        let (mut e, _) = converge(ms(2000));
        let before = e.send_gap();
        // A busy answer after a proven-free gap, then success a little later: noise.
        assert_eq!(e.busy(ms(2020)), Busy::Contradicting);
        e.free(ms(2300));
        assert_eq!(e.send_gap(), before);
    }

    #[test]
    fn follows_a_gateway_that_gets_slower_or_faster() {
        let (mut e, _) = converge(ms(2000));
        let proven = e.send_gap().expect("known");
        for _ in 0..RELEARN_AFTER {
            assert_eq!(e.busy(proven), Busy::Contradicting);
            e.free(ms(3000));
        }
        let g = e.send_gap().expect("known");
        assert!(g > proven && g <= ms(3000), "{g:?}");
        e.free(ms(1000));
        assert!(e.send_gap().expect("known") <= ms(1000));
    }

    #[test]
    fn probes_grow_until_known() {
        let mut e = Estimate::default();
        assert_eq!(e.probe_gap(), FIRST_PROBE);
        assert_eq!(e.send_gap(), None);
        assert_eq!(e.busy(ms(100)), Busy::Consistent);
        assert_eq!(e.probe_gap(), ms(150));
        e.free(ms(150));
        assert!(e.known());
        assert_eq!(e.probe_gap(), ms(150));
    }
}
