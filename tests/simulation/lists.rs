//! What `DescribeVpnPbrRouteEntries` shows of one gateway, as the cloud serves it: behind the
//! gateway (a state of its entries shows a random delay after it was reached), in pages of an
//! order that is the cloud's own (not the order of creation) and changes now and then.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use rand::rngs::StdRng;
use vpc_emulator::world::PbrEntry;

/// An entry's identity on its gateway: source, destination, next hop.
type Id = (String, String, String);

fn id(e: &PbrEntry) -> Id {
    (
        e.route_source.clone(),
        e.route_dest.clone(),
        e.next_hop.clone(),
    )
}

#[derive(Debug, Default)]
pub struct Listed {
    /// What a list shows now.
    shown: Vec<PbrEntry>,
    /// Newer states of the gateway's entries and the virtual time (epoch ms) from which lists
    /// show them, oldest first.
    coming: VecDeque<(u64, Vec<PbrEntry>)>,
    /// Each entry's place in list answers (ascending), kept until the next reorder.
    order: BTreeMap<Id, u64>,
    /// Counts the changes of `shown`: a list whose pages saw two versions raced a change.
    pub version: u64,
}

impl Listed {
    /// Whether `entries` is a state lists have not been told of yet.
    pub fn is_new(&self, entries: &[PbrEntry]) -> bool {
        self.coming
            .back()
            .map_or(&self.shown, |(_, e)| e)
            .as_slice()
            != entries
    }

    /// Whether lists show exactly `entries` now.
    pub fn shows(&self, entries: &[PbrEntry]) -> bool {
        self.shown.as_slice() == entries
    }

    /// Follows the gateway's applied entries: a state not seen yet shows `lag_ms` from now,
    /// never before a state reached earlier.
    pub fn follow(&mut self, entries: &[PbrEntry], now_ms: u64, lag_ms: u64) {
        if self.is_new(entries) {
            let after = self.coming.back().map_or(0, |(at, _)| *at);
            self.coming
                .push_back((now_ms.saturating_add(lag_ms).max(after), entries.to_vec()));
        }
        self.advance(now_ms);
    }

    /// Shows every state whose time has come.
    pub fn advance(&mut self, now_ms: u64) {
        while self.coming.front().is_some_and(|(at, _)| *at <= now_ms) {
            if let Some((_, e)) = self.coming.pop_front() {
                self.show(e);
            }
        }
    }

    /// Shows the newest state now (a change lands between two page reads); false if there was
    /// none waiting.
    pub fn reveal(&mut self) -> bool {
        match self.coming.pop_back() {
            Some((_, e)) => {
                self.coming.clear();
                self.show(e);
                true
            }
            None => false,
        }
    }

    fn show(&mut self, entries: Vec<PbrEntry>) {
        if entries != self.shown {
            self.shown = entries;
            self.version += 1;
        }
    }

    /// Changes every state, shown and coming, the same way (someone else's change that
    /// landed: it is in every later state too).
    pub fn edit_all(&mut self, f: impl Fn(&mut Vec<PbrEntry>)) {
        f(&mut self.shown);
        for (_, e) in &mut self.coming {
            f(e);
        }
        self.version += 1;
    }

    /// A new order for every entry (the cloud's order is not stable between calls).
    pub fn reorder(&mut self, rng: &mut StdRng) {
        for v in self.order.values_mut() {
            *v = rng.random();
        }
    }

    /// Page `number` (from 1) of `size` entries in the current order, and the total.
    pub fn page(&mut self, number: usize, size: usize, rng: &mut StdRng) -> (Vec<PbrEntry>, usize) {
        for e in &self.shown {
            self.order.entry(id(e)).or_insert_with(|| rng.random());
        }
        let mut sorted: Vec<(u64, &PbrEntry)> = self
            .shown
            .iter()
            .map(|e| (self.order.get(&id(e)).copied().unwrap_or_default(), e))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a.1).cmp(&id(b.1))));
        let start = number.saturating_sub(1).saturating_mul(size);
        let items = sorted
            .iter()
            .skip(start)
            .take(size)
            .map(|(_, e)| (*e).clone())
            .collect();
        (items, self.shown.len())
    }
}
