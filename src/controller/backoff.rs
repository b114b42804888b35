//! Per-object retry delays: exponential with jitter, reset on success, by error class.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

use alicloud_vpc_client::ErrorClass;

/// Base and cap of the delay for one error class.
pub fn bounds(class: ErrorClass) -> (Duration, Duration) {
    let s = Duration::from_secs;
    match class {
        ErrorClass::GatewayBusy => (Duration::from_millis(500), s(30)),
        ErrorClass::Throttled => (s(2), s(120)),
        ErrorClass::Transient | ErrorClass::NotFound | ErrorClass::AlreadyExists => (s(1), s(60)),
        // A spec change triggers a reconcile anyway; meanwhile retry slowly, since
        // conflicts (an active/standby pair mid-flip) may clear on their own.
        ErrorClass::NeedsSpecChange => (s(10), s(300)),
        ErrorClass::NeedsOutsideAction => (s(30), s(600)),
    }
}

/// The delay before attempt `attempt` (0-based), with ±20 % jitter.
pub fn delay(class: ErrorClass, attempt: u32) -> Duration {
    let (base, cap) = bounds(class);
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    exp.mul_f64(rand::rng().random_range(0.8..1.2))
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
    /// Records a failure and returns the delay before the next try.
    pub fn failure(&self, key: &str, class: ErrorClass, generation: Option<i64>) -> Duration {
        let mut map = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = map.entry(key.to_owned()).or_insert(State {
            attempts: 0,
            not_before: Instant::now(),
            generation,
        });
        let d = delay(class, st.attempts);
        st.attempts = st.attempts.saturating_add(1);
        st.not_before = Instant::now() + d;
        st.generation = generation;
        d
    }

    /// How long the object must still wait, if it is backing off for this generation.
    pub fn wait(&self, key: &str, generation: Option<i64>) -> Option<Duration> {
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
    pub fn reset(&self, key: &str) {
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
            .map(|_| b.failure("a", ErrorClass::Transient, Some(1)))
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
        assert!(b.failure("a", ErrorClass::Transient, None) <= Duration::from_millis(1200));
    }

    #[test]
    fn classes_differ() {
        assert!(bounds(ErrorClass::NeedsOutsideAction).0 > bounds(ErrorClass::Transient).0);
        assert!(bounds(ErrorClass::GatewayBusy).1 < bounds(ErrorClass::NeedsOutsideAction).1);
    }
}
