//! `ClientToken` idempotency: a successful mutation is remembered under its token; a repeat
//! with the same action and parameters gets the first result back without a second
//! mutation, a repeat with other parameters is refused. Failed calls are not remembered, so
//! a client may retry a refused call (e.g. `VpnGateway.Configuring`) with the same token.
//! With a retention (`settings.client_token_ttl_ms`) a token is forgotten that long after it
//! was first remembered: a call with it is then a new call.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use super::error::ApiError;

/// Tokens are forgotten after this many (oldest first), to bound memory.
const MAX_TOKENS: usize = 100_000;

#[derive(Debug, Default)]
pub struct TokenStore {
    results: HashMap<String, Remembered>,
    /// Tokens with the time they were remembered, oldest first.
    order: VecDeque<(String, u64)>,
    /// How long a token is remembered; `None`: until [`MAX_TOKENS`] newer ones push it out.
    ttl_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct Remembered {
    action: String,
    fingerprint: String,
    body: Value,
    at_ms: u64,
}

pub enum Lookup {
    New,
    Replay(Value),
}

impl TokenStore {
    /// A store that forgets a token `ttl_ms` after remembering it (`None`: never, by age).
    pub fn with_ttl(ttl_ms: Option<u64>) -> Self {
        Self {
            ttl_ms,
            ..Self::default()
        }
    }

    pub fn lookup(
        &self,
        token: &str,
        action: &str,
        fingerprint: &str,
        now_ms: u64,
    ) -> Result<Lookup, ApiError> {
        match self.results.get(token) {
            None => Ok(Lookup::New),
            // A forgotten token: the call is a new one, whatever it asks.
            Some(r) if self.expired(r.at_ms, now_ms) => Ok(Lookup::New),
            Some(r) if r.action == action && r.fingerprint == fingerprint => {
                Ok(Lookup::Replay(r.body.clone()))
            }
            Some(_) => Err(ApiError::idempotence_mismatch()),
        }
    }

    pub fn remember(
        &mut self,
        token: &str,
        action: &str,
        fingerprint: String,
        body: Value,
        now_ms: u64,
    ) {
        self.forget_expired(now_ms);
        if self.order.len() >= MAX_TOKENS {
            self.forget_oldest();
        }
        self.order.push_back((token.to_owned(), now_ms));
        self.results.insert(
            token.to_owned(),
            Remembered {
                action: action.to_owned(),
                fingerprint,
                body,
                at_ms: now_ms,
            },
        );
    }

    pub fn clear(&mut self) {
        self.results.clear();
        self.order.clear();
    }

    /// Whether a token remembered at `at_ms` is forgotten at `now_ms`: more than the
    /// retention ago.
    fn expired(&self, at_ms: u64, now_ms: u64) -> bool {
        self.ttl_ms
            .is_some_and(|ttl| now_ms.saturating_sub(at_ms) > ttl)
    }

    /// Drops the expired tokens, which are the oldest: memory stays bounded by the retention.
    fn forget_expired(&mut self, now_ms: u64) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| self.expired(*at, now_ms))
        {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some((token, at)) = self.order.pop_front() else {
            return;
        };
        // A token remembered again after it expired has a newer place in `order`: only its
        // own place forgets it.
        if self.results.get(&token).is_some_and(|r| r.at_ms == at) {
            self.results.remove(&token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_tokens_are_dropped_and_a_renewed_one_is_kept() {
        let mut store = TokenStore::with_ttl(Some(10));
        let replays = |store: &TokenStore, token: &str, now: u64| {
            matches!(store.lookup(token, "A", "f", now), Ok(Lookup::Replay(_)))
        };
        store.remember("a", "A", "f".into(), Value::Null, 0);
        store.remember("b", "A", "f".into(), Value::Null, 5);
        // (token, time, replayed)
        for (token, now, replayed) in [("a", 10, true), ("a", 11, false), ("b", 15, true)] {
            assert_eq!(replays(&store, token, now), replayed, "{token} at {now}");
        }
        // Remembering drops what has expired (here `a`), so memory follows the retention.
        store.remember("c", "A", "f".into(), Value::Null, 11);
        assert_eq!((store.results.len(), store.order.len()), (2, 2));
        store.remember("a", "A", "f".into(), Value::Null, 16);
        assert!(replays(&store, "a", 26) && !replays(&store, "b", 26));
        // Without a retention nothing expires.
        let mut forever = TokenStore::default();
        forever.remember("a", "A", "f".into(), Value::Null, 0);
        assert!(replays(&forever, "a", u64::MAX));
    }

    #[test]
    fn a_stale_place_of_a_renewed_token_does_not_forget_it() {
        // A clock that went back leaves the renewed token's old place behind a younger one.
        let mut store = TokenStore::with_ttl(Some(10));
        store.remember("b", "A", "f".into(), Value::Null, 50);
        store.remember("a", "A", "f".into(), Value::Null, 0);
        store.remember("a", "A", "f".into(), Value::Null, 11);
        assert_eq!(store.order.len(), 3);
        store.forget_oldest();
        store.forget_oldest();
        assert!(store.results.contains_key("a") && !store.results.contains_key("b"));
        assert!(matches!(
            store.lookup("a", "A", "f", 21),
            Ok(Lookup::Replay(_))
        ));
    }
}
