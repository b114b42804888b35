//! What the STS-backed providers (RRSA's `AssumeRoleWithOIDC`, `AssumeRole`) share: the STS
//! exchange itself, one cached session per provider, renewed before it expires by one caller
//! for all (single flight), and the rule of when ([`renewal`], pure); a session the cloud
//! refused as expired is dropped ([`SessionCache::invalidate`]) and renewed by the next caller.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{Credentials, CredentialsError};
use crate::body;

/// What to do with a cached session `remaining` before its expiry, of a `lifetime` in all
/// (the length asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Use it as it is.
    NotYet,
    /// Renew it now; `usable`: if renewing fails, its keys still work long enough to sign a
    /// call with (STS down for a moment need not fail calls).
    Due { usable: bool },
}

/// Renew once less than a third of the session's lifetime remains. The margin scales with the
/// lifetime because sessions range from a few seconds (test-only) to 12 h: the official
/// libraries' fixed 3 minutes would renew a 5-second session on every call, and a third of a
/// real session (at least 900 s, so at least 5 min) outlasts an STS outage longer. A session
/// whose renewal failed is kept while more than a tenth of its lifetime (at most 30 s) remains.
pub(crate) fn renewal(remaining: Duration, lifetime: Duration) -> Renewal {
    if remaining > lifetime / 3 {
        return Renewal::NotYet;
    }
    let grace = (lifetime / 10).min(Duration::from_secs(30));
    Renewal::Due {
        usable: remaining > grace,
    }
}

/// How long `credentials` still work at `now` (zero without an expiry).
fn remaining(credentials: &Credentials, now: jiff::Timestamp) -> Duration {
    credentials
        .expiration()
        .and_then(|exp| Duration::try_from(exp.duration_since(now)).ok())
        .unwrap_or(Duration::ZERO)
}

/// One provider's session, renewed by [`SessionCache::get`].
#[derive(Debug, Default)]
pub(crate) struct SessionCache {
    /// The current session; locked only to read or replace it, never across an await.
    session: Mutex<Option<Credentials>>,
    /// Held by [`get`](Self::get) across the STS call, so concurrent callers wait for one
    /// renewal instead of stampeding STS.
    renewing: tokio::sync::Mutex<()>,
}

impl SessionCache {
    fn slot(&self) -> MutexGuard<'_, Option<Credentials>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached credentials, or new ones from `renew` when [`renewal`] says so (or the
    /// session was dropped). `lifetime` is the session length the provider asks STS for
    /// (`DurationSeconds`); `what` names the provider in the warning logged when a failed
    /// renewal falls back to the old keys.
    pub(crate) async fn get<F, Fut>(
        &self,
        what: &'static str,
        lifetime: Duration,
        renew: F,
    ) -> Result<Credentials, CredentialsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Credentials, CredentialsError>>,
    {
        let _renewing = self.renewing.lock().await;
        let cached = self.slot().clone();
        let fallback = match cached {
            None => None,
            Some(c) => match renewal(remaining(&c, jiff::Timestamp::now()), lifetime) {
                Renewal::NotYet => return Ok(c),
                Renewal::Due { usable } => usable.then_some(c),
            },
        };
        match renew().await {
            Ok(fresh) => {
                *self.slot() = Some(fresh.clone());
                Ok(fresh)
            }
            // Not the old keys if the cloud refused them meanwhile.
            Err(e) => match fallback.filter(|old| self.slot().as_ref() == Some(old)) {
                Some(old) => {
                    tracing::warn!(provider = what, error = %e, "STS renewal failed; using the session's keys until it is renewed");
                    Ok(old)
                }
                None => Err(e),
            },
        }
    }

    /// Drops the cached session if it is `used` (the cloud refused it as expired), so the next
    /// [`get`](Self::get) renews it; a report about an older session is ignored, so one that
    /// arrives late never drops the session that replaced it.
    pub(crate) fn invalidate(&self, what: &'static str, used: &Credentials) {
        let mut session = self.slot();
        if session.as_ref() == Some(used) {
            *session = None;
            tracing::warn!(
                provider = what,
                expiration = ?used.expiration(),
                "the cloud refused the session as expired before its Expiration by this \
                 process's clock (is the clock behind?); renewing it"
            );
        }
    }
}

/// Posts the `application/x-www-form-urlencoded` `form` to STS at `url` and reads the session
/// from the answer. `action` names the call in errors.
pub(crate) async fn exchange(
    http: &reqwest::Client,
    action: &'static str,
    url: Url,
    form: String,
) -> Result<Credentials, CredentialsError> {
    let unavailable =
        |e: reqwest::Error| CredentialsError::StsUnavailable(e.without_url().to_string());
    let response = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form)
        .send()
        .await
        .map_err(unavailable)?;
    let status = response.status().as_u16();
    let content_type = body::content_type(response.headers());
    let bytes = response.bytes().await.map_err(unavailable)?;
    parse_sts_response(action, status, content_type.as_deref(), &bytes)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsResponse {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

/// Parses an STS answer into credentials, or its error body into [`CredentialsError::Sts`].
pub(crate) fn parse_sts_response(
    action: &'static str,
    status: u16,
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<Credentials, CredentialsError> {
    let value = body::decode(bytes, content_type);
    if !(200..300).contains(&status) {
        let fields = value
            .as_ref()
            .map(body::ErrorFields::from_value)
            .unwrap_or_default();
        return Err(CredentialsError::Sts {
            action,
            http_status: status,
            code: fields.code.unwrap_or_else(|| format!("HTTP{status}")),
            message: fields.message.unwrap_or_default(),
            request_id: fields.request_id,
        });
    }
    let value = value.map_err(|e| CredentialsError::StsUnavailable(format!("STS answer: {e}")))?;
    let parsed: StsResponse = serde_json::from_value(value)
        .map_err(|e| CredentialsError::StsUnavailable(format!("STS answer: {e}")))?;
    let c = parsed.credentials;
    let expiration: jiff::Timestamp = c.expiration.parse().map_err(|e| {
        CredentialsError::StsUnavailable(format!("STS Expiration {:?}: {e}", c.expiration))
    })?;
    Ok(Credentials::new(c.access_key_id, c.access_key_secret)
        .with_security_token(c.security_token)
        .with_expiration(expiration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn renewal_table() {
        use Renewal::*;
        let due = |usable| Due { usable };
        let no = NotYet;
        // (lifetime, [(remaining, expected)]); one lifetime a line.
        #[rustfmt::skip]
        let table: [(Duration, &[(Duration, Renewal)]); 6] = [
            // A real one-hour session: renewed in its last 20 minutes; kept on failure to 30 s.
            (s(3600), &[(s(3600), no), (s(1201), no), (s(1200), due(true)), (s(31), due(true)), (s(30), due(false)), (s(0), due(false))]),
            // The shortest real session: renewed in its last 5 minutes.
            (s(900), &[(s(301), no), (s(300), due(true)), (s(30), due(false))]),
            // 12 h, the longest: the grace stays at 30 s.
            (s(43200), &[(s(14401), no), (s(14400), due(true)), (s(31), due(true)), (s(30), due(false))]),
            // Test-only sessions of a few seconds: the margin scales down with them.
            (s(6), &[(s(3), no), (s(2), due(true)), (ms(601), due(true)), (ms(600), due(false))]),
            (s(1), &[(ms(334), no), (ms(333), due(true)), (ms(101), due(true)), (ms(100), due(false))]),
            // Nothing left (no expiry known, or already expired): renew, nothing to fall back on.
            (s(0), &[(s(0), due(false))]),
        ];
        for (lifetime, rows) in table {
            for &(remaining, expected) in rows {
                assert_eq!(
                    renewal(remaining, lifetime),
                    expected,
                    "lifetime {lifetime:?}, remaining {remaining:?}"
                );
            }
        }
    }

    fn session(secs: i64) -> Credentials {
        let exp = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
        Credentials::new("STS.ak", "sk")
            .with_security_token("tok")
            .with_expiration(exp)
    }

    #[tokio::test]
    async fn one_renewal_serves_every_concurrent_caller() {
        let cache = Arc::new(SessionCache::default());
        let calls = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get("test", s(3600), || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(ms(20)).await;
                            Ok(session(3600))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().access_key_id(), "STS.ak");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_usable_keys_and_reports_otherwise() {
        let refused = || async {
            Err(CredentialsError::Sts {
                action: "AssumeRole",
                http_status: 403,
                code: "NoPermission".into(),
                message: String::new(),
                request_id: None,
            })
        };
        let hour = s(3600);
        let cache = SessionCache::default();
        let e = cache.get("test", hour, refused).await.unwrap_err();
        assert_eq!(e.code(), "NoPermission");
        // 2000 s left of an hour: renewal is not due, nobody asks STS.
        let fresh = || async { Ok(session(2000)) };
        cache.get("test", hour, fresh).await.unwrap();
        let again = cache.get("test", hour, refused).await.unwrap();
        assert_eq!(again.access_key_id(), "STS.ak");
        // Due for renewal, but with more than its grace left: kept when renewal fails.
        *cache.slot() = Some(session(50));
        assert!(
            cache.get("test", hour, refused).await.is_ok(),
            "kept: 50 s left"
        );
        // Too little left to sign with: the refusal is the answer.
        *cache.slot() = Some(session(10));
        let e = cache.get("test", hour, refused).await.unwrap_err();
        assert_eq!(e.code(), "NoPermission", "10 s left is too little");
    }

    #[tokio::test]
    async fn invalidate_drops_only_the_session_it_names() {
        let hour = s(3600);
        let cache = SessionCache::default();
        let renewals = AtomicU32::new(0);
        let expiration = session(3600).expiration().unwrap();
        let numbered = |n: u32, token: &str| {
            Credentials::new(format!("STS.ak{n}"), "sk")
                .with_security_token(token)
                .with_expiration(expiration)
        };
        let get = || {
            cache.get("test", hour, || async {
                let n = renewals.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(numbered(n, "tok"))
            })
        };
        let first = get().await.unwrap();
        // Another session's keys, or this key id with another token: not this session.
        cache.invalidate("test", &numbered(9, "tok"));
        cache.invalidate("test", &numbered(1, "other"));
        assert_eq!(get().await.unwrap(), first);
        assert_eq!(
            renewals.load(Ordering::SeqCst),
            1,
            "still the first session"
        );
        cache.invalidate("test", &first);
        let second = get().await.unwrap();
        assert_ne!(second, first);
        assert_eq!(renewals.load(Ordering::SeqCst), 2, "renewed once");
        // A late report about the first session keeps the second.
        cache.invalidate("test", &first);
        assert_eq!(get().await.unwrap(), second);
        assert_eq!(renewals.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_renewal_never_falls_back_to_a_refused_session() {
        let cache = SessionCache::default();
        // Due for renewal with more than its grace left: usable if renewal fails...
        let old = session(50);
        *cache.slot() = Some(old.clone());
        // ...unless the cloud refused it while STS was being asked.
        let e = cache
            .get("test", s(3600), || async {
                cache.invalidate("test", &old);
                Err(CredentialsError::StsUnavailable("down".into()))
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), "StsUnavailable");
        assert!(cache.slot().is_none());
    }

    #[test]
    fn parses_sts_success() {
        let body = br#"{"RequestId":"R1","AssumedRoleUser":{"Arn":"x"},"Credentials":{"AccessKeyId":"STS.ak","AccessKeySecret":"sk","SecurityToken":"tok","Expiration":"2030-01-01T00:00:00Z"}}"#;
        let c = parse_sts_response("AssumeRole", 200, Some("application/json"), body).unwrap();
        assert_eq!(c.access_key_id(), "STS.ak");
        assert_eq!(c.security_token().map(|t| t.expose()), Some("tok"));
        assert_eq!(
            c.expiration().map(|e| e.to_string()).as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
    }

    #[test]
    fn parses_sts_error_and_garbage() {
        let body = br#"{"RequestId":"R2","Code":"AuthenticationFail.OIDCToken.Expired","Message":"expired"}"#;
        let e = parse_sts_response("AssumeRoleWithOIDC", 400, None, body).unwrap_err();
        assert_eq!(e.code(), "AuthenticationFail.OIDCToken.Expired");
        assert_eq!(e.class(), crate::ErrorClass::NeedsOutsideAction);
        assert!(e.to_string().starts_with("STS AssumeRoleWithOIDC "), "{e}");
        let e = parse_sts_response("AssumeRole", 200, None, b"{not json").unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Transient);
        let e = parse_sts_response("AssumeRole", 200, None, br#"{"Credentials":{}}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
    }
}
