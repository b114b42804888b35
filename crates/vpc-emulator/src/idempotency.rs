//! `ClientToken` idempotency: a successful mutation is remembered under its token; a repeat
//! with the same action and parameters gets the first result back without a second
//! mutation, a repeat with other parameters is refused. Failed calls are not remembered, so
//! a client may retry a refused call (e.g. `VpnGateway.Configuring`) with the same token.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use super::error::ApiError;

/// Tokens are forgotten after this many (oldest first), to bound memory.
const MAX_TOKENS: usize = 100_000;

#[derive(Debug, Default)]
pub struct TokenStore {
    results: HashMap<String, Remembered>,
    order: VecDeque<String>,
}

#[derive(Debug, Clone)]
struct Remembered {
    action: String,
    fingerprint: String,
    body: Value,
}

pub enum Lookup {
    New,
    Replay(Value),
}

impl TokenStore {
    pub fn lookup(&self, token: &str, action: &str, fingerprint: &str) -> Result<Lookup, ApiError> {
        match self.results.get(token) {
            None => Ok(Lookup::New),
            Some(r) if r.action == action && r.fingerprint == fingerprint => {
                Ok(Lookup::Replay(r.body.clone()))
            }
            Some(_) => Err(ApiError::idempotence_mismatch()),
        }
    }

    pub fn remember(&mut self, token: &str, action: &str, fingerprint: String, body: Value) {
        if self.order.len() >= MAX_TOKENS
            && let Some(old) = self.order.pop_front()
        {
            self.results.remove(&old);
        }
        self.order.push_back(token.to_owned());
        self.results.insert(
            token.to_owned(),
            Remembered {
                action: action.to_owned(),
                fingerprint,
                body,
            },
        );
    }

    pub fn clear(&mut self) {
        self.results.clear();
        self.order.clear();
    }
}
