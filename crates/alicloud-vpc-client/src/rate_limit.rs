//! A client-wide token bucket that halves its rate when the cloud throttles and creeps back up
//! while calls succeed (additive increase, multiplicative decrease).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate limiter settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Calls per second when nothing is throttled.
    pub max_rate: f64,
    /// Floor the rate never drops below.
    pub min_rate: f64,
    /// Calls allowed at once after an idle period.
    pub burst: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // VPC flow control is per account and action and not published. Start generous (a
        // thousand-route rollout needs tens of calls per second) and let throttling answers
        // halve the rate: the limiter finds the account's real ceiling by itself.
        Self {
            max_rate: 100.0,
            min_rate: 1.0,
            burst: 50.0,
        }
    }
}

#[derive(Debug)]
struct State {
    tokens: f64,
    rate: f64,
    last: Instant,
}

/// The shared limiter; every client made by one factory draws from it.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    state: Mutex<State>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        let max_rate = config.max_rate.max(0.001);
        let config = RateLimitConfig {
            max_rate,
            min_rate: config.min_rate.clamp(0.001, max_rate),
            burst: config.burst.max(1.0),
        };
        Self {
            state: Mutex::new(State {
                tokens: config.burst,
                rate: max_rate,
                last: Instant::now(),
            }),
            config,
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic elsewhere while holding the lock leaves plain numbers behind; keep going.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(guard.last).as_secs_f64();
        guard.tokens = (guard.tokens + elapsed * guard.rate).min(self.config.burst);
        guard.last = now;
        f(&mut guard)
    }

    /// Waits for a token. Tokens are reserved (the balance may go negative), so waiters are
    /// served in arrival order without polling.
    pub async fn acquire(&self) {
        let wait = self.with_state(|s| {
            s.tokens -= 1.0;
            if s.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.tokens / s.rate)
            }
        });
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// The cloud throttled us: halve the rate and drop any saved-up burst.
    pub fn on_throttled(&self) {
        self.with_state(|s| {
            s.rate = (s.rate / 2.0).max(self.config.min_rate);
            s.tokens = s.tokens.min(0.0);
        });
    }

    /// A call got through: recover a twentieth of the full rate.
    pub fn on_success(&self) {
        self.with_state(|s| {
            s.rate = (s.rate + self.config.max_rate / 20.0).min(self.config.max_rate);
        });
    }

    /// The current rate in calls per second.
    pub fn current_rate(&self) -> f64 {
        self.with_state(|s| s.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_halves_and_success_recovers() {
        let l = RateLimiter::new(RateLimitConfig {
            max_rate: 16.0,
            min_rate: 1.0,
            burst: 4.0,
        });
        l.on_throttled();
        assert!((l.current_rate() - 8.0).abs() < 1e-9);
        for _ in 0..10 {
            l.on_throttled();
        }
        assert!((l.current_rate() - 1.0).abs() < 1e-9);
        for _ in 0..100 {
            l.on_success();
        }
        assert!((l.current_rate() - 16.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn acquire_paces_calls() {
        let l = RateLimiter::new(RateLimitConfig {
            max_rate: 100.0,
            min_rate: 1.0,
            burst: 1.0,
        });
        let start = Instant::now();
        for _ in 0..11 {
            l.acquire().await;
        }
        // One from the burst, ten at 100/s.
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    }
}
