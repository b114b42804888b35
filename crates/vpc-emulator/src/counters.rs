//! Call counters for the admin API: calls by action and result code (in all and per account),
//! and accepted creates per route (to check that a client never creates the same route twice).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::world::RouteKey;

/// Result code counted for successful calls.
pub const SUCCESS: &str = "Success";

/// Calls by action and result code.
type ByAction = HashMap<&'static str, HashMap<Cow<'static, str>, u64>>;

#[derive(Debug, Default)]
pub struct Counters {
    calls: ByAction,
    /// The same, per account of the calling key (calls refused before a key is known are in
    /// `calls` only): each account has its own flow control, so a client's share of calls is
    /// judged per account.
    accounts: HashMap<String, ByAction>,
    creates: BTreeMap<(String, String, String, String), u64>,
}

/// Counts one call; allocates only the first time a code is seen for an action.
fn bump(calls: &mut ByAction, action: &'static str, code: &str) {
    let per_code = calls.entry(action).or_default();
    match per_code.get_mut(code) {
        Some(n) => *n += 1,
        None => {
            per_code.insert(Cow::Owned(code.to_owned()), 1);
        }
    }
}

/// `{action: {code: n}}`, sorted.
fn to_map(calls: &ByAction) -> BTreeMap<&str, BTreeMap<&str, u64>> {
    calls
        .iter()
        .map(|(a, m)| (*a, m.iter().map(|(c, n)| (c.as_ref(), *n)).collect()))
        .collect()
}

impl Counters {
    /// Counts one call, also under `account` (the calling key's) when it is known.
    pub fn record(&mut self, action: &'static str, code: &str, account: Option<&str>) {
        bump(&mut self.calls, action, code);
        if let Some(account) = account {
            bump(
                self.accounts.entry(account.to_owned()).or_default(),
                action,
                code,
            );
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
        self.accounts.clear();
        self.creates.clear();
    }

    /// `{"calls": {action: {code: n}}, "accounts": {account: {action: {code: n}}},
    /// "accepted_creates": [{VpnGatewayId, RouteSource, RouteDest, NextHop, Count}]}`
    pub fn to_json(&self) -> Value {
        let calls = to_map(&self.calls);
        let accounts: BTreeMap<&str, _> = self
            .accounts
            .iter()
            .map(|(id, c)| (id.as_str(), to_map(c)))
            .collect();
        let creates: Vec<Value> = self
            .creates
            .iter()
            .map(|((g, s, d, h), n)| {
                json!({"VpnGatewayId": g, "RouteSource": s, "RouteDest": d, "NextHop": h, "Count": n})
            })
            .collect();
        json!({"calls": calls, "accounts": accounts, "accepted_creates": creates})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_in_all_and_per_account() {
        let mut c = Counters::default();
        c.record("CreateVpnPbrRouteEntry", SUCCESS, Some("2222"));
        c.record("CreateVpnPbrRouteEntry", "Throttling.User", Some("2222"));
        c.record("DescribeVpnGateway", SUCCESS, Some("3333"));
        // Refused before a key was known: in the totals only.
        c.record("DescribeVpnGateway", "InvalidAccessKeyId.NotFound", None);
        assert_eq!(
            c.to_json(),
            json!({
                "calls": {
                    "CreateVpnPbrRouteEntry": {"Success": 1, "Throttling.User": 1},
                    "DescribeVpnGateway": {"Success": 1, "InvalidAccessKeyId.NotFound": 1}
                },
                "accounts": {
                    "2222": {"CreateVpnPbrRouteEntry": {"Success": 1, "Throttling.User": 1}},
                    "3333": {"DescribeVpnGateway": {"Success": 1}}
                },
                "accepted_creates": []
            })
        );
        c.clear();
        assert_eq!(c.to_json()["accounts"], json!({}));
    }
}
