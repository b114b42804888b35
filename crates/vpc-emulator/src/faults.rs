//! Fault injection: per-action error rates (busy, throttled, 5xx, dropped connection, slow
//! response) and a global request-rate limit answered with `Throttling.User`.
//! Decisions are pure given the time and a random number, so tests are deterministic.

use serde::{Deserialize, Serialize};

use super::error::ApiError;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Requests per second (all API actions together) above which `Throttling.User` is
    /// answered. `null`/absent: unlimited.
    #[serde(default)]
    pub rate_limit_per_second: Option<f64>,
    /// Evaluated in order; the first rule that fires decides.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// API action name, or `*` for every action.
    pub action: String,
    /// Probability in [0, 1] that the rule fires for a matching request.
    pub rate: f64,
    pub kind: FaultKind,
    /// Overrides the error code of `busy`, `throttled`, `server_error`, `error`.
    #[serde(default)]
    pub code: Option<String>,
    /// Overrides the HTTP status of the error kinds.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
    /// Delay of `slow` (default 2000 ms).
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 400 `VpnGateway.Configuring` (or `code`, e.g. `TaskConflict`).
    Busy,
    /// 400 `Throttling`.
    Throttled,
    /// 500 `InternalError`.
    ServerError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// Any `status` + `code` + `message`.
    Error,
    /// The connection is closed without a complete response.
    Drop,
    /// The request is served normally after `delay_ms`.
    Slow,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultOutcome {
    Proceed,
    Fail(ApiError),
    /// Rate limited: error plus the time left until a token is available (ms).
    RateLimited {
        error: ApiError,
        limit: f64,
        time_left_ms: u64,
    },
    Drop,
    Delay(u64),
}

impl FaultSettings {
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.rules {
            if !(0.0..=1.0).contains(&r.rate) {
                return Err(format!(
                    "fault rate {} of {} is not in [0, 1]",
                    r.rate, r.action
                ));
            }
            if r.kind == FaultKind::Error && r.code.is_none() {
                return Err(format!("fault of kind error on {} needs a code", r.action));
            }
        }
        if let Some(l) = self.rate_limit_per_second
            && (l.is_nan() || l <= 0.0)
        {
            return Err("rate_limit_per_second must be positive".to_owned());
        }
        Ok(())
    }
}

/// Fault settings plus the token bucket of the rate limit.
#[derive(Debug)]
pub struct FaultEngine {
    settings: FaultSettings,
    tokens: f64,
    last_refill_ms: u64,
}

impl FaultEngine {
    pub fn new(settings: FaultSettings) -> Self {
        let tokens = settings.rate_limit_per_second.unwrap_or(0.0);
        Self {
            settings,
            tokens,
            last_refill_ms: 0,
        }
    }

    pub fn settings(&self) -> &FaultSettings {
        &self.settings
    }

    pub fn replace(&mut self, settings: FaultSettings) {
        *self = Self::new(settings);
    }

    /// Decides the fate of a request of `action` at `now_ms`; `roll` yields uniform numbers
    /// in [0, 1), one per matching rule.
    pub fn decide(
        &mut self,
        action: &str,
        now_ms: u64,
        mut roll: impl FnMut() -> f64,
    ) -> FaultOutcome {
        if let Some(limit) = self.settings.rate_limit_per_second {
            // Token bucket with a burst of one second's worth of requests.
            let elapsed = now_ms.saturating_sub(self.last_refill_ms) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * limit).min(limit.max(1.0));
            self.last_refill_ms = now_ms;
            if self.tokens < 1.0 {
                let time_left_ms = ((1.0 - self.tokens) / limit * 1000.0).ceil() as u64;
                return FaultOutcome::RateLimited {
                    error: ApiError::throttling_user(),
                    limit,
                    time_left_ms,
                };
            }
            self.tokens -= 1.0;
        }
        if self.settings.rules.is_empty() {
            return FaultOutcome::Proceed;
        }
        for rule in &self.settings.rules {
            if rule.action != "*" && rule.action != action {
                continue;
            }
            if roll() >= rule.rate {
                continue;
            }
            return match rule.kind {
                FaultKind::Drop => FaultOutcome::Drop,
                FaultKind::Slow => FaultOutcome::Delay(rule.delay_ms.unwrap_or(2000)),
                kind => FaultOutcome::Fail(error_of(kind, rule)),
            };
        }
        FaultOutcome::Proceed
    }
}

fn error_of(kind: FaultKind, rule: &FaultRule) -> ApiError {
    let base = match kind {
        FaultKind::Busy => ApiError::configuring(),
        FaultKind::Throttled => ApiError::throttling(),
        FaultKind::ServerError => ApiError::internal_error(),
        FaultKind::Unavailable => ApiError::service_unavailable(),
        FaultKind::Error | FaultKind::Drop | FaultKind::Slow => {
            ApiError::new(400, "InjectedFault", "Injected fault.")
        }
    };
    let mut err = base;
    if let Some(code) = &rule.code {
        err.code = code.clone().into();
        // A custom code without a message gets a neutral one rather than the wrong text.
        if rule.message.is_none() && kind == FaultKind::Error {
            err.message = format!("Injected fault {code}.").into();
        }
    }
    if let Some(status) = rule.status {
        err.status = status;
    }
    if let Some(m) = &rule.message {
        err.message = m.clone().into();
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: &str, rate: f64, kind: FaultKind) -> FaultRule {
        FaultRule {
            action: action.into(),
            rate,
            kind,
            code: None,
            status: None,
            message: None,
            delay_ms: None,
        }
    }

    #[test]
    fn rules_fire_by_action_and_rate() {
        let mut e = FaultEngine::new(FaultSettings {
            rate_limit_per_second: None,
            rules: vec![
                rule("CreateVpnPbrRouteEntry", 0.5, FaultKind::Busy),
                rule("*", 1.0, FaultKind::Slow),
            ],
        });
        match e.decide("CreateVpnPbrRouteEntry", 0, || 0.1) {
            FaultOutcome::Fail(err) => assert_eq!(
                (err.status, err.code.as_ref()),
                (400, "VpnGateway.Configuring")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.decide("CreateVpnPbrRouteEntry", 0, || 0.9),
            FaultOutcome::Delay(2000)
        );
        assert_eq!(
            e.decide("DescribeVpnGateway", 0, || 0.0),
            FaultOutcome::Delay(2000)
        );
    }

    #[test]
    fn overrides_and_5xx() {
        let mut r = rule("*", 1.0, FaultKind::Busy);
        r.code = Some("TaskConflict".into());
        let mut e = FaultEngine::new(FaultSettings {
            rate_limit_per_second: None,
            rules: vec![r],
        });
        match e.decide("X", 0, || 0.0) {
            FaultOutcome::Fail(err) => assert_eq!(err.code, "TaskConflict"),
            other => panic!("{other:?}"),
        }
        e.replace(FaultSettings {
            rate_limit_per_second: None,
            rules: vec![rule("*", 1.0, FaultKind::Unavailable)],
        });
        match e.decide("X", 0, || 0.0) {
            FaultOutcome::Fail(err) => assert_eq!(err.status, 503),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limit_refills() {
        let mut e = FaultEngine::new(FaultSettings {
            rate_limit_per_second: Some(2.0),
            rules: vec![],
        });
        assert_eq!(e.decide("A", 1000, || 0.0), FaultOutcome::Proceed);
        assert_eq!(e.decide("A", 1000, || 0.0), FaultOutcome::Proceed);
        assert!(matches!(
            e.decide("A", 1000, || 0.0),
            FaultOutcome::RateLimited { .. }
        ));
        assert_eq!(e.decide("A", 1500, || 0.0), FaultOutcome::Proceed);
    }
}
