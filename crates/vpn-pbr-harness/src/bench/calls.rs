//! Arithmetic on the emulator's call counters, lists of (action, code, n) as
//! [`emulator::calls`](crate::emulator::calls) returns them: refused calls, mutations, one
//! action's calls, the calls made since an earlier reading.

use crate::emulator::Counter;

/// Whether a call was refused: every answer but `Success` (dropped connections included).
fn is_refused(code: &str) -> bool {
    code != "Success"
}

/// The refused calls of `calls` (action, code, n), in the same order.
pub(crate) fn refusals(calls: &[Counter]) -> Vec<Counter> {
    calls
        .iter()
        .filter(|c| is_refused(&c.1) && c.2 > 0)
        .cloned()
        .collect()
}

/// Calls of the mutating actions (Create/Modify/Delete/Publish) among `calls`.
pub(crate) fn mutations(calls: &[Counter]) -> u64 {
    calls
        .iter()
        .filter(|c| vpc_emulator::ops::is_mutation(&c.0))
        .map(|c| c.2)
        .sum()
}

/// Calls of one action among `calls`, all codes.
pub(crate) fn action_calls(calls: &[Counter], action: &str) -> u64 {
    calls.iter().filter(|c| c.0 == action).map(|c| c.2).sum()
}

/// The calls of `after` not yet in `before` (both from `emulator::calls`), non-zero ones.
pub(crate) fn calls_since(before: &[Counter], after: &[Counter]) -> Vec<Counter> {
    after
        .iter()
        .filter_map(|(a, c, n)| {
            let was = before
                .iter()
                .find(|b| &b.0 == a && &b.1 == c)
                .map_or(0, |b| b.2);
            (*n > was).then(|| (a.clone(), c.clone(), n - was))
        })
        .collect()
}

/// Owned counters from literals, for the tests of this crate.
#[cfg(test)]
pub(crate) fn calls(list: &[(&str, &str, u64)]) -> Vec<Counter> {
    list.iter()
        .map(|(a, c, n)| ((*a).to_owned(), (*c).to_owned(), *n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_mutations() {
        let c = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 4),
            ("DeleteVpnPbrRouteEntry", "TaskConflict", 1),
            ("DescribeVpnGateway", "Success", 3),
            ("DescribeVpnPbrRouteEntries", "Throttling", 2),
            ("ModifyVpnPbrRouteEntryWeight", "_dropped", 1),
            ("PublishVpnRouteEntry", "Success", 0),
        ]);
        assert_eq!(
            refusals(&c),
            calls(&[
                ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 4),
                ("DeleteVpnPbrRouteEntry", "TaskConflict", 1),
                ("DescribeVpnPbrRouteEntries", "Throttling", 2),
                ("ModifyVpnPbrRouteEntryWeight", "_dropped", 1),
            ])
        );
        assert_eq!(mutations(&c), 16);
        assert_eq!(mutations(&refusals(&c)), 6);
        assert_eq!(action_calls(&c, "CreateVpnPbrRouteEntry"), 14);
    }

    #[test]
    fn calls_since_keeps_the_new_calls() {
        let before = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("DescribeVpnGateway", "Success", 3),
        ]);
        let after = calls(&[
            ("CreateVpnPbrRouteEntry", "Success", 10),
            ("DescribeVpnGateway", "Success", 5),
            ("DescribeVpnPbrRouteEntries", "Success", 2),
        ]);
        assert_eq!(
            calls_since(&before, &after),
            calls(&[
                ("DescribeVpnGateway", "Success", 2),
                ("DescribeVpnPbrRouteEntries", "Success", 2),
            ])
        );
        assert!(calls_since(&after, &after).is_empty());
    }
}
