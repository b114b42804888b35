//! How often and how fast the client itself retries a failed call.

use std::time::Duration;

use crate::policy::Retrier;

/// Client-side retries, for throttled and transient failures only; busy gateways and errors
/// that need a person are handed to the caller at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first one included; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: exponential with "equal jitter" (half fixed, half
    /// random) so many clients do not retry in lockstep; at least what the cloud asked for.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let half = exp / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        let computed = half + jitter;
        match asked {
            // Honour the cloud's hint, but never park a call for more than 30 s.
            Some(a) => computed.max(a.min(Duration::from_secs(30))),
            None => computed,
        }
    }
}

/// A failed attempt, as far as trying it again goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failed {
    /// Who tries again, by the code's row in `src/policy.rs`.
    pub(crate) retried_by: Retrier,
    /// Which attempt of the call this was; the first is 1.
    pub(crate) attempt: u32,
    /// The call is safe to send again (a read, or a mutation with its `ClientToken`).
    pub(crate) repeatable: bool,
    /// It was signed with an STS session (a token and an expiry), which its provider renews.
    pub(crate) session: bool,
    /// The call's session was renewed once already.
    pub(crate) renewed: bool,
}

/// What the client does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Hands the error to the caller.
    Return,
    /// Tries again after [`RetryPolicy::delay`].
    Retry,
    /// Drops the session the attempt was signed with (`CredentialsProvider::invalidate`); then
    /// tries again at once with a new one if `retry`, else hands the error to the caller.
    Renew { retry: bool },
}

impl RetryPolicy {
    /// The rule after a failed attempt. A session refused as expired is dropped even when no
    /// attempt is left, so the next call does not sign with it; the call itself is sent again
    /// with a new one only once, since a session STS has just made cannot have expired unless
    /// the fault is elsewhere.
    pub(crate) fn next(&self, failed: Failed) -> Next {
        let attempts_left = failed.repeatable && failed.attempt < self.max_attempts;
        match failed.retried_by {
            Retrier::Client if attempts_left => Next::Retry,
            Retrier::ClientWithNewSession if failed.session => Next::Renew {
                retry: attempts_left && !failed.renewed,
            },
            _ => Next::Return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let d = p.delay(attempt, None);
            assert!(d <= p.max_delay, "{d:?}");
        }
        let d1 = p.delay(1, None);
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
        assert!(p.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert!(p.delay(1, Some(Duration::from_secs(600))) <= Duration::from_secs(30));
    }

    #[test]
    fn what_follows_a_failed_attempt() {
        use Retrier::{Caller, CallerWhenFree, Client, ClientWithNewSession as Renewing};
        let p = RetryPolicy::default();
        let failed = |retried_by, attempt, repeatable, session, renewed| Failed {
            retried_by,
            attempt,
            repeatable,
            session,
            renewed,
        };
        let (renew, drop_only) = (Next::Renew { retry: true }, Next::Renew { retry: false });
        // (retried by, attempt, repeatable, signed with a session, renewed already) -> next.
        #[rustfmt::skip]
        let table = [
            (failed(Client, 1, true, false, false),          Next::Retry),
            (failed(Client, 2, true, true, true),            Next::Retry),
            (failed(Client, 3, true, false, false),          Next::Return),
            (failed(Client, 1, false, false, false),         Next::Return),
            (failed(Caller, 1, true, true, false),           Next::Return),
            (failed(CallerWhenFree, 1, true, true, false),   Next::Return),
            // An expired session: dropped, and the call sent once more with a new one...
            (failed(Renewing, 1, true, true, false),         renew),
            (failed(Renewing, 2, true, true, false),         renew),
            // ...unless renewed already, out of attempts, or not safe to repeat: dropped only.
            (failed(Renewing, 2, true, true, true),          drop_only),
            (failed(Renewing, 3, true, true, false),         drop_only),
            (failed(Renewing, 1, false, true, false),        drop_only),
            // Keys that are no session (static keys, a Secret's token): nothing to renew.
            (failed(Renewing, 1, true, false, false),        Next::Return),
        ];
        for (failed, expected) in table {
            assert_eq!(p.next(failed), expected, "{failed:?}");
        }
        let once = RetryPolicy {
            max_attempts: 1,
            ..p
        };
        assert_eq!(once.next(failed(Renewing, 1, true, true, false)), drop_only);
        assert_eq!(
            once.next(failed(Client, 1, true, false, false)),
            Next::Return
        );
    }
}
