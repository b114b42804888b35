//! Call counters for the admin API: calls by action and result code, and accepted creates
//! per route (to check that a client never creates the same route twice).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::world::RouteKey;

/// Result code counted for successful calls.
pub const SUCCESS: &str = "Success";

#[derive(Debug, Default)]
pub struct Counters {
    calls: HashMap<&'static str, HashMap<Cow<'static, str>, u64>>,
    creates: BTreeMap<(String, String, String, String), u64>,
}

impl Counters {
    /// Counts one call; allocates only the first time a code is seen for an action.
    pub fn record(&mut self, action: &'static str, code: &str) {
        let per_code = self.calls.entry(action).or_default();
        match per_code.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                per_code.insert(Cow::Owned(code.to_owned()), 1);
            }
        }
    }

    pub fn record_create(&mut self, key: &RouteKey) {
        *self
            .creates
            .entry((
                key.gateway_id.clone(),
                key.route_source.clone(),
                key.route_dest.clone(),
                key.next_hop.clone(),
            ))
            .or_default() += 1;
    }

    pub fn clear(&mut self) {
        self.calls.clear();
        self.creates.clear();
    }

    /// `{"calls": {action: {code: n}}, "accepted_creates": [{VpnGatewayId, RouteSource,
    /// RouteDest, NextHop, Count}]}`
    pub fn to_json(&self) -> Value {
        let calls: BTreeMap<&str, BTreeMap<&str, u64>> = self
            .calls
            .iter()
            .map(|(a, m)| (*a, m.iter().map(|(c, n)| (c.as_ref(), *n)).collect()))
            .collect();
        let creates: Vec<Value> = self
            .creates
            .iter()
            .map(|((g, s, d, h), n)| {
                json!({"VpnGatewayId": g, "RouteSource": s, "RouteDest": d, "NextHop": h, "Count": n})
            })
            .collect();
        json!({"calls": calls, "accepted_creates": creates})
    }
}
