//! Fault injection: per-action error rates (busy, throttled, 5xx, dropped connection, slow
//! response) and a request-rate limit per account answered with `Throttling.User`.
//! Decisions are pure given the time and a random number, so tests are deterministic.
//!
//! Faults only fire where the real API could answer them: a busy code (`BUSY_CODES` in
//! `error.rs`) comes from a gateway applying a change, so the real API answers it only to
//! mutations; settings that ask for one on a read (or on `*`, which includes the reads) are
//! refused by [`FaultSettings::validate`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::actions::{MUTATIONS, is_mutation};
use super::error::{ApiError, BUSY_CODES};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Requests per second of one account (all its API actions together) above which
    /// `Throttling.User` is answered; each account has its own bucket, and an account's own
    /// `rate_limit_per_second` (config `accounts`) overrides this. `null`/absent: unlimited.
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

/// Fault settings plus one token bucket per account for the rate limit.
#[derive(Debug)]
pub struct FaultEngine {
    settings: FaultSettings,
    /// Accounts with their own limit (overriding `settings.rate_limit_per_second`).
    account_limits: HashMap<String, f64>,
    buckets: HashMap<String, Bucket>,
}

/// A token bucket with a burst of one second's worth of requests.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_refill_ms: u64,
}

impl Bucket {
    /// Takes a token at `now_ms`; if none is left, the time until one is (ms).
    fn take(&mut self, limit: f64, now_ms: u64) -> Result<(), u64> {
        let elapsed = now_ms.saturating_sub(self.last_refill_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * limit).min(limit.max(1.0));
        self.last_refill_ms = now_ms;
        if self.tokens < 1.0 {
            return Err(((1.0 - self.tokens) / limit * 1000.0).ceil() as u64);
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

impl FaultEngine {
    pub fn new(settings: FaultSettings, account_limits: HashMap<String, f64>) -> Self {
        Self {
            settings,
            account_limits,
            buckets: HashMap::new(),
        }
    }

    pub fn settings(&self) -> &FaultSettings {
        &self.settings
    }

    /// New fault settings; the accounts' own limits stay, every bucket starts full again.
    pub fn replace(&mut self, settings: FaultSettings) {
        self.settings = settings;
        self.buckets.clear();
    }

    /// Decides the fate of a request of `action` by a key of `account` at `now_ms`; `roll`
    /// yields uniform numbers in [0, 1), one per matching rule.
    pub fn decide(
        &mut self,
        account: &str,
        action: &str,
        now_ms: u64,
        mut roll: impl FnMut() -> f64,
    ) -> FaultOutcome {
        let limit = self
            .account_limits
            .get(account)
            .copied()
            .or(self.settings.rate_limit_per_second);
        if let Some(limit) = limit {
            let bucket = self
                .buckets
                .entry(account.to_owned())
                .or_insert_with(|| Bucket {
                    tokens: limit.max(1.0),
                    last_refill_ms: now_ms,
                });
            if let Err(time_left_ms) = bucket.take(limit, now_ms) {
                return FaultOutcome::RateLimited {
                    error: ApiError::throttling_user(),
                    limit,
                    time_left_ms,
                };
            }
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
        let mut e = FaultEngine::new(
            FaultSettings {
                rate_limit_per_second: None,
                rules: vec![
                    rule("CreateVpnPbrRouteEntry", 0.5, FaultKind::Busy),
                    rule("*", 1.0, FaultKind::Slow),
                ],
            },
            HashMap::new(),
        );
        match e.decide("1", "CreateVpnPbrRouteEntry", 0, || 0.1) {
            FaultOutcome::Fail(err) => assert_eq!(
                (err.status, err.code.as_ref()),
                (400, "VpnGateway.Configuring")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.decide("1", "CreateVpnPbrRouteEntry", 0, || 0.9),
            FaultOutcome::Delay(2000)
        );
        assert_eq!(
            e.decide("1", "DescribeVpnGateway", 0, || 0.0),
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
            let settings = FaultSettings {
                rate_limit_per_second: None,
                rules: vec![r],
            };
            let mut e = FaultEngine::new(settings, HashMap::new());
            match e.decide("1", "DeleteVpnPbrRouteEntry", 0, || 0.0) {
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
        let mut e = FaultEngine::new(
            FaultSettings {
                rate_limit_per_second: None,
                rules: vec![r],
            },
            HashMap::new(),
        );
        match e.decide("1", "CreateVpnPbrRouteEntry", 0, || 0.0) {
            FaultOutcome::Fail(err) => assert_eq!(err.code, "TaskConflict"),
            other => panic!("{other:?}"),
        }
        e.replace(FaultSettings {
            rate_limit_per_second: None,
            rules: vec![rule("*", 1.0, FaultKind::Unavailable)],
        });
        match e.decide("1", "X", 0, || 0.0) {
            FaultOutcome::Fail(err) => assert_eq!(err.status, 503),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limit_is_per_account() {
        let own: HashMap<String, f64> = [("9".to_owned(), 1.0)].into();
        let mut e = FaultEngine::new(
            FaultSettings {
                rate_limit_per_second: Some(2.0),
                rules: vec![],
            },
            own,
        );
        let limited = |o: &FaultOutcome| matches!(o, FaultOutcome::RateLimited { .. });
        assert_eq!(e.decide("1", "A", 1000, || 0.0), FaultOutcome::Proceed);
        assert_eq!(e.decide("1", "A", 1000, || 0.0), FaultOutcome::Proceed);
        assert!(limited(&e.decide("1", "A", 1000, || 0.0)));
        // Another account has its own bucket: account 1's burst does not slow it.
        assert_eq!(e.decide("2", "A", 1000, || 0.0), FaultOutcome::Proceed);
        assert_eq!(e.decide("2", "A", 1000, || 0.0), FaultOutcome::Proceed);
        // Account 9's own limit (1/s) overrides the default.
        assert_eq!(e.decide("9", "A", 1000, || 0.0), FaultOutcome::Proceed);
        match e.decide("9", "A", 1000, || 0.0) {
            FaultOutcome::RateLimited {
                limit,
                time_left_ms,
                ..
            } => assert_eq!((limit, time_left_ms), (1.0, 1000)),
            other => panic!("{other:?}"),
        }
        // Refills with time.
        assert_eq!(e.decide("1", "A", 1500, || 0.0), FaultOutcome::Proceed);
        assert_eq!(e.decide("9", "A", 2000, || 0.0), FaultOutcome::Proceed);
    }
}
