//! Fault injection: per-action error rates (busy, throttled, 5xx, dropped connection, slow
//! response) and a global request-rate limit answered with `Throttling.User`.
//! Decisions are pure given the time and a random number, so tests are deterministic.
//!
//! Faults only fire where the real API could answer them: a busy code (`BUSY_CODES` in
//! `error.rs`) comes from a gateway applying a change, so the real API answers it only to
//! mutations; settings that ask for one on a read (or on `*`, which includes the reads) are
//! refused by [`FaultSettings::validate`].

use serde::{Deserialize, Serialize};

use super::actions::{MUTATIONS, is_mutation};
use super::error::{ApiError, BUSY_CODES};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Requests per second (all API actions together) above which `Throttling.User` is
    /// answered. `null`/absent: unlimited.
    pub rate_limit_per_second: Option<f64>,
    /// Evaluated in order; the first rule that fires decides.
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
    pub code: Option<String>,
    /// Overrides the HTTP status of the error kinds.
    pub status: Option<u16>,
    pub message: Option<String>,
    /// Delay of `slow` (default 2000 ms).
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 400 `VpnGateway.Configuring`, or `code`: one of `TaskConflict`,
    /// `Appliance.Configuring`, `VpnTask.CONFLICT`, `VpnConnection.Configuring`. Mutations only.
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
            r.validate_busy()?;
        }
        if let Some(l) = self.rate_limit_per_second
            && (l.is_nan() || l <= 0.0)
        {
            return Err("rate_limit_per_second must be positive".to_owned());
        }
        Ok(())
    }
}

impl FaultRule {
    /// A busy answer (kind `busy`, or any kind with a busy `code`) only on a mutation action,
    /// and kind `busy` only with a busy code.
    fn validate_busy(&self) -> Result<(), String> {
        let busy_code = self
            .code
            .as_deref()
            .is_some_and(|c| BUSY_CODES.iter().any(|(b, _)| *b == c));
        if self.kind == FaultKind::Busy
            && let Some(code) = &self.code
            && !busy_code
        {
            let codes: Vec<&str> = BUSY_CODES.iter().map(|(c, _)| *c).collect();
            return Err(format!(
                "fault of kind busy on {} has code {code}; a busy code is one of {} (use kind error for other codes)",
                self.action,
                codes.join(", ")
            ));
        }
        if (self.kind == FaultKind::Busy || busy_code) && !is_mutation(&self.action) {
            let what = if self.action == "*" {
                "* (which includes the reads)".to_owned()
            } else {
                self.action.clone()
            };
            return Err(format!(
                "a busy fault on {what} is refused: the real API answers busy codes only to mutations; name one of {} per rule",
                MUTATIONS.join(", ")
            ));
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
        FaultKind::Busy => rule
            .code
            .as_deref()
            .and_then(ApiError::busy)
            .unwrap_or_else(ApiError::configuring),
        FaultKind::Throttled => ApiError::throttling(),
        FaultKind::ServerError => ApiError::internal_error(),
        FaultKind::Unavailable => ApiError::service_unavailable(),
        FaultKind::Error | FaultKind::Drop | FaultKind::Slow => {
            ApiError::new(400, "InjectedFault", "Injected fault.")
        }
    };
    let mut err = base;
    if let Some(code) = &rule.code
        && kind != FaultKind::Busy
    {
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
    fn busy_only_on_mutations() {
        // (action, kind, code, accepted)
        let table: &[(&str, FaultKind, Option<&str>, bool)] = &[
            ("CreateVpnPbrRouteEntry", FaultKind::Busy, None, true),
            (
                "DeleteVpnPbrRouteEntry",
                FaultKind::Busy,
                Some("TaskConflict"),
                true,
            ),
            (
                "PublishVpnRouteEntry",
                FaultKind::Busy,
                Some("Appliance.Configuring"),
                true,
            ),
            (
                "ModifyVpnPbrRouteEntryWeight",
                FaultKind::Busy,
                Some("VpnTask.CONFLICT"),
                true,
            ),
            (
                "ModifyVpnPbrRouteEntryAttribute",
                FaultKind::Busy,
                Some("VpnConnection.Configuring"),
                true,
            ),
            (
                "CreateVpnPbrRouteEntry",
                FaultKind::Busy,
                Some("Throttling"),
                false,
            ),
            ("*", FaultKind::Busy, None, false),
            ("DescribeVpnGateway", FaultKind::Busy, None, false),
            (
                "DescribeVpnPbrRouteEntries",
                FaultKind::Busy,
                Some("TaskConflict"),
                false,
            ),
            (
                "DescribeVpnPbrRouteEntries",
                FaultKind::Error,
                Some("VpnGateway.Configuring"),
                false,
            ),
            ("*", FaultKind::Error, Some("TaskConflict"), false),
            (
                "CreateVpnPbrRouteEntry",
                FaultKind::Error,
                Some("VpnTask.CONFLICT"),
                true,
            ),
            ("*", FaultKind::Error, Some("VpnRouteEntry.Conflict"), true),
            ("*", FaultKind::Throttled, None, true),
            ("*", FaultKind::ServerError, None, true),
            ("*", FaultKind::Unavailable, None, true),
            ("*", FaultKind::Drop, None, true),
            ("*", FaultKind::Slow, None, true),
        ];
        for (action, kind, code, accepted) in table {
            let mut r = rule(action, 0.5, *kind);
            r.code = code.map(str::to_owned);
            let settings = FaultSettings {
                rate_limit_per_second: None,
                rules: vec![r],
            };
            let got = settings.validate();
            assert_eq!(
                got.is_ok(),
                *accepted,
                "{action} {kind:?} {code:?}: {got:?}"
            );
            if let Err(m) = got {
                assert!(m.contains(action) || m.contains("busy code"), "{m}");
            }
        }
    }

    #[test]
    fn busy_codes_have_their_own_messages() {
        for (code, message) in BUSY_CODES {
            let mut r = rule("DeleteVpnPbrRouteEntry", 1.0, FaultKind::Busy);
            r.code = Some((*code).to_owned());
            let mut e = FaultEngine::new(FaultSettings {
                rate_limit_per_second: None,
                rules: vec![r],
            });
            match e.decide("DeleteVpnPbrRouteEntry", 0, || 0.0) {
                FaultOutcome::Fail(err) => {
                    assert_eq!(
                        (err.status, err.code.as_ref(), err.message.as_ref()),
                        (400, *code, *message)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn overrides_and_5xx() {
        let mut r = rule("CreateVpnPbrRouteEntry", 1.0, FaultKind::Busy);
        r.code = Some("TaskConflict".into());
        let mut e = FaultEngine::new(FaultSettings {
            rate_limit_per_second: None,
            rules: vec![r],
        });
        match e.decide("CreateVpnPbrRouteEntry", 0, || 0.0) {
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
