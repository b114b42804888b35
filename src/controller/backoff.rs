//! Per-object retry delays: exponential with jitter, reset on success, at the pace the error's
//! row of the client's policy table (`crates/alicloud-vpc-client/src/policy.rs`) gives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use alicloud_vpc_client::Pace;

/// Base and cap of the delay at one pace.
pub(crate) fn bounds(pace: Pace) -> (Duration, Duration) {
    pace.bounds()
}

/// The delay before attempt `attempt` (0-based), with ±20 % jitter; `unit` is a uniform draw
/// in `[0, 1)` (the context's `Entropy`, so a simulated seed replays exactly).
pub(crate) fn delay(pace: Pace, attempt: u32, unit: f64) -> Duration {
    let (base, cap) = bounds(pace);
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    exp.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

#[derive(Debug)]
struct State {
    attempts: u32,
    not_before: Instant,
    generation: Option<i64>,
}

/// Failures per object key. A failing object is not retried before its delay, even when its
/// own status write wakes it; a new spec generation retries at once.
#[derive(Default)]
pub struct Backoffs {
    attempts: Mutex<HashMap<String, State>>,
}

impl Backoffs {
    /// Records a failure and returns the delay before the next try (`unit`: the jitter's
    /// uniform draw in `[0, 1)`).
    pub(crate) fn failure(
        &self,
        key: &str,
        pace: Pace,
        generation: Option<i64>,
        unit: f64,
    ) -> Duration {
        let mut map = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = map.entry(key.to_owned()).or_insert(State {
            attempts: 0,
            not_before: Instant::now(),
            generation,
        });
        let d = delay(pace, st.attempts, unit);
        st.attempts = st.attempts.saturating_add(1);
        st.not_before = Instant::now() + d;
        st.generation = generation;
        d
    }

    /// How long the object must still wait, if it is backing off for this generation.
    pub(crate) fn wait(&self, key: &str, generation: Option<i64>) -> Option<Duration> {
        let map = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = map.get(key)?;
        if st.generation != generation {
            return None;
        }
        let left = st.not_before.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Forgets failures (success, or the object is gone).
    pub(crate) fn reset(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let b = Backoffs::default();
        let d: Vec<Duration> = (0..12)
            .map(|i| b.failure("a", Pace::Transient, Some(1), f64::from(i % 2)))
            .collect();
        assert!(b.wait("a", Some(1)).is_some());
        assert!(
            b.wait("a", Some(2)).is_none(),
            "a new generation retries at once"
        );
        assert!(d[0] >= Duration::from_millis(800) && d[0] <= Duration::from_millis(1200));
        assert!(d[3] >= Duration::from_millis(6400));
        assert!(d[11] <= Duration::from_secs(72));
        b.reset("a");
        assert!(b.wait("a", Some(1)).is_none());
        assert!(b.failure("a", Pace::Transient, None, 0.99) <= Duration::from_millis(1200));
    }

    #[test]
    fn first_delay_and_cap_per_pace() {
        let ms = Duration::from_millis;
        // (pace, first delay without jitter, cap)
        for (pace, first, cap) in [
            (Pace::Busy, ms(500), ms(30_000)),
            (Pace::Throttled, ms(2_000), ms(120_000)),
            (Pace::Transient, ms(1_000), ms(60_000)),
            (Pace::Slow, ms(10_000), ms(300_000)),
            (Pace::VerySlow, ms(30_000), ms(600_000)),
        ] {
            assert_eq!(bounds(pace), (first, cap), "{pace:?}");
            assert_eq!(delay(pace, 0, 0.0), first.mul_f64(0.8), "{pace:?}");
            assert_eq!(delay(pace, 0, 0.5), first, "{pace:?}");
            assert_eq!(delay(pace, 40, 1.0), cap.mul_f64(1.2), "{pace:?}");
        }
    }
}
