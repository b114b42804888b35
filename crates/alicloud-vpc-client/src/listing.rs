//! When the pages of a list prove the whole list (pure; `VpcClient::list_vpn_pbr_route_entries`
//! does the reading).
//!
//! Pages are separate calls: between two of them entries may be made, deleted or moved (the API
//! documents no order), so an entry can show on two pages and another on none, and a union of
//! pages can match `TotalCount` while it misses a live entry and holds a deleted one. The rule:
//!
//! * An entry (source, destination, next hop and creation time: an entry deleted and made again
//!   is another entry) exists from the moment it is made until it is deleted, once. So an entry
//!   listed by an answer no later than read `k` and by an answer no earlier than read `k` existed
//!   at the moment of read `k`: it is *proven present* then.
//! * When the entries proven present at read `k` are as many as that answer's `TotalCount`,
//!   they are the whole list at that moment: nothing else existed then. The latest such read
//!   is the list.
//!
//! No order is assumed: pages that repeat or skip entries only cost more reads. A list of one
//! page proves itself (one answer is one moment). A stable multi-page list of `n` pages is
//! proven by its pages and the first `n - 1` again (the last page of the first pass is the
//! moment). Entries that keep changing between reads prove nothing; the reader gives up after a
//! bound and says so (`CloudError::ListInconsistent`) instead of guessing.

use std::collections::{HashMap, HashSet};

use crate::error::CloudError;
use crate::operations::{
    DescribeVpnPbrRouteEntriesRequest, DescribeVpnPbrRouteEntriesResponse, Operation,
    VpnPbrRouteEntry, VpnPbrRouteEntryList,
};

/// Reads of a list, as a multiple of its pages, before it is given up on as inconsistent. A
/// stable list needs two passes; a cloud that shows its entries in a new order on every call
/// (the emulator's `shuffle_lists`) about 15 for a few hundred entries, with a margin here.
pub const LIST_PASSES: u32 = 24;
/// Guard against a server whose `TotalCount` never matches what it returns.
const MAX_LIST_READS: u32 = 1000;

/// Reads pages of `page_size` with `read_page(page_number)` (in order, again from the first
/// after the last) until they prove the whole list at the moment of one read: the list, or
/// [`CloudError::ListInconsistent`] after [`LIST_PASSES`] times its pages, or the first read's
/// error. `VpcClient::list_vpn_pbr_route_entries` reads the cloud with it; the simulation
/// (tests/simulation/cloud.rs) its simulated cloud, so both conclude by the same rule.
pub async fn read_whole_list<F, Fut>(
    page_size: u32,
    mut read_page: F,
) -> Result<VpnPbrRouteEntryList, CloudError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<DescribeVpnPbrRouteEntriesResponse, CloudError>>,
{
    let mut pages = Pages::new(page_size);
    let mut request_ids = Vec::new();
    loop {
        let page = pages.next_page();
        let resp = read_page(page).await?;
        request_ids.push(resp.request_id.clone());
        let total_count = resp.total_count;
        pages.record(page, resp);
        let reads = u32::try_from(pages.reads()).unwrap_or(u32::MAX);
        if let Some(proven) = pages.proven() {
            return Ok(VpnPbrRouteEntryList {
                entries: proven.entries,
                total_count: proven.total_count,
                request_ids,
                reads,
            });
        }
        if reads
            >= pages
                .pages()
                .saturating_mul(LIST_PASSES)
                .min(MAX_LIST_READS)
        {
            return Err(CloudError::ListInconsistent {
                action: DescribeVpnPbrRouteEntriesRequest::ACTION,
                reads,
                total_count,
                proven: u32::try_from(pages.best()).unwrap_or(u32::MAX),
                request_id: request_ids.pop(),
            });
        }
    }
}

/// An entry as one thing in time.
type Identity = (String, String, String, Option<i64>);

fn identity(e: &VpnPbrRouteEntry) -> Identity {
    (
        e.fields.route_source.clone(),
        e.fields.route_dest.clone(),
        e.fields.next_hop.clone(),
        e.fields.create_time,
    )
}

/// The reads in which an entry was listed (first and last), and its latest listing.
#[derive(Debug)]
struct Sighting {
    first: usize,
    last: usize,
    entry: VpnPbrRouteEntry,
}

/// The whole list at the moment of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proven {
    /// The read (0-based) whose moment the list is.
    pub at: usize,
    pub total_count: u32,
    pub entries: Vec<VpnPbrRouteEntry>,
}

/// The pages read so far of one list.
#[derive(Debug)]
pub(crate) struct Pages {
    page_size: u32,
    /// `TotalCount` of each read, in order.
    totals: Vec<u32>,
    seen: HashMap<Identity, Sighting>,
    next: u32,
    /// The page size the server answers with (it may cap ours).
    answered_size: u32,
}

impl Pages {
    pub(crate) fn new(page_size: u32) -> Self {
        Self {
            page_size,
            totals: Vec::new(),
            seen: HashMap::new(),
            next: 1,
            answered_size: page_size,
        }
    }

    /// The page to read next: the pages in order, and again from the first after the last.
    pub(crate) fn next_page(&self) -> u32 {
        self.next
    }

    pub(crate) fn reads(&self) -> usize {
        self.totals.len()
    }

    /// Pages of the largest list seen (at least one).
    pub(crate) fn pages(&self) -> u32 {
        let largest = self.totals.iter().copied().max().unwrap_or(0);
        largest.div_ceil(self.answered_size.max(1)).max(1)
    }

    /// Records the answer to `page`.
    pub(crate) fn record(&mut self, page: u32, resp: DescribeVpnPbrRouteEntriesResponse) {
        let read = self.totals.len();
        self.totals.push(resp.total_count);
        let size = resp
            .page_size
            .filter(|s| (1..=self.page_size).contains(s))
            .unwrap_or(self.page_size);
        self.answered_size = size;
        let listed = u32::try_from(resp.vpn_pbr_route_entries.len()).unwrap_or(u32::MAX);
        let last_page = listed < size || page.saturating_mul(size) >= resp.total_count;
        self.next = if last_page { 1 } else { page + 1 };
        for e in resp.vpn_pbr_route_entries {
            self.seen
                .entry(identity(&e))
                .and_modify(|s| {
                    s.last = read;
                    s.entry = e.clone();
                })
                .or_insert(Sighting {
                    first: read,
                    last: read,
                    entry: e,
                });
        }
    }

    /// The whole list at the latest read whose moment the pages prove (see the module docs).
    pub(crate) fn proven(&self) -> Option<Proven> {
        let n = self.totals.len();
        // Entries proven present at read k: first <= k <= last, counted for every k at once.
        let mut delta = vec![0i64; n + 1];
        for s in self.seen.values() {
            delta[s.first] += 1;
            delta[s.last + 1] -= 1;
        }
        let mut present = Vec::with_capacity(n);
        let mut running = 0i64;
        for d in &delta[..n] {
            running += d;
            present.push(running);
        }
        (0..n).rev().find_map(|k| {
            if present[k] != i64::from(self.totals[k]) {
                return None;
            }
            let mut entries: Vec<&Sighting> = self
                .seen
                .values()
                .filter(|s| s.first <= k && k <= s.last)
                .collect();
            // One entry per (source, destination, next hop) at any moment, or the answers
            // contradict each other.
            let mut keys = HashSet::new();
            if !entries.iter().all(|s| {
                keys.insert((
                    &s.entry.fields.route_source,
                    &s.entry.fields.route_dest,
                    &s.entry.fields.next_hop,
                ))
            }) {
                return None;
            }
            // Listed order: by first sighting (stable for a stable cloud).
            entries.sort_by_key(|s| s.first);
            Some(Proven {
                at: k,
                total_count: self.totals[k],
                entries: entries.into_iter().map(|s| s.entry.clone()).collect(),
            })
        })
    }

    /// The most entries proven present at any one read (for the error message).
    pub(crate) fn best(&self) -> usize {
        (0..self.totals.len())
            .map(|k| {
                self.seen
                    .values()
                    .filter(|s| s.first <= k && k <= s.last)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::EntryFields;

    fn entry(i: usize, created: i64) -> VpnPbrRouteEntry {
        VpnPbrRouteEntry {
            fields: EntryFields {
                vpn_instance_id: Some("vpn-1".into()),
                route_source: format!("192.168.{}.0/24", i % 250),
                route_dest: format!("10.{}.0.0/24", i / 250),
                next_hop: "vco-1".into(),
                weight: 100,
                priority: Some(10),
                create_time: Some(created),
                description: None,
            },
            next_hop_tunnel_id: None,
            state: "normal".into(),
        }
    }

    /// A cloud list: entries in listed order, paged by offset.
    struct Cloud(Vec<VpnPbrRouteEntry>);

    impl Cloud {
        fn of(n: usize) -> Self {
            Self((0..n).map(|i| entry(i, 1)).collect())
        }
        fn page(&self, page: u32, size: u32) -> DescribeVpnPbrRouteEntriesResponse {
            let size = size as usize;
            let start = ((page as usize - 1) * size).min(self.0.len());
            let end = (start + size).min(self.0.len());
            DescribeVpnPbrRouteEntriesResponse {
                request_id: format!("P{page}"),
                total_count: u32::try_from(self.0.len()).unwrap(),
                page_number: Some(page),
                page_size: Some(u32::try_from(size).unwrap()),
                vpn_pbr_route_entries: self.0[start..end].to_vec(),
            }
        }
    }

    /// Reads `cloud` until proven or `max` reads, calling `between(read, cloud)` before each.
    fn read(
        cloud: &mut Cloud,
        max: usize,
        mut between: impl FnMut(usize, &mut Cloud),
    ) -> (Option<Proven>, usize) {
        let mut pages = Pages::new(50);
        while pages.reads() < max {
            between(pages.reads(), cloud);
            let p = pages.next_page();
            pages.record(p, cloud.page(p, 50));
            if let Some(proof) = pages.proven() {
                return (Some(proof), pages.reads());
            }
        }
        (None, pages.reads())
    }

    /// Proves a cloud of `n` entries that `change` alters once, before read `at`; the proof and
    /// the cloud as it is after.
    fn proven_changed_once(n: usize, at: usize, change: impl Fn(&mut Cloud)) -> (Proven, Cloud) {
        let mut cloud = Cloud::of(n);
        let (proof, _) = read(&mut cloud, 100, |r, c| {
            if r == at {
                change(c);
            }
        });
        (proof.expect("proven after the change"), cloud)
    }

    fn sources(entries: &[VpnPbrRouteEntry]) -> HashSet<String> {
        entries
            .iter()
            .map(|e| format!("{}>{}", e.fields.route_source, e.fields.route_dest))
            .collect()
    }

    #[test]
    fn reads_a_stable_list_in_its_pages_and_all_but_the_last_again() {
        for (n, reads) in [
            (0, 1),
            (1, 1),
            (50, 1),
            (51, 3),
            (120, 5),
            (140, 5),
            (500, 19),
        ] {
            let mut cloud = Cloud::of(n);
            let want = sources(&cloud.0);
            let (proof, used) = read(&mut cloud, 100, |_, _| {});
            let proof = proof.unwrap_or_else(|| panic!("{n} entries not proven"));
            assert_eq!(used, reads, "{n} entries");
            assert_eq!(sources(&proof.entries), want, "{n} entries");
            assert_eq!(proof.total_count as usize, n);
        }
    }

    #[test]
    fn a_delete_between_pages_never_hides_a_live_entry() {
        // Page 1 lists 0..50; 10 is deleted; page 2 then starts at 51: 50 is on no page of the
        // first pass, and the union of that pass matches the new TotalCount.
        let (proof, cloud) = proven_changed_once(101, 1, |c| {
            c.0.remove(10);
        });
        let got = sources(&proof.entries);
        assert_eq!(got, sources(&cloud.0), "the list after the delete");
        assert!(
            got.contains("192.168.50.0/24>10.0.0.0/24"),
            "the moved entry"
        );
        assert!(
            !got.contains("192.168.10.0/24>10.0.0.0/24"),
            "the deleted one"
        );
    }

    #[test]
    fn an_entry_deleted_and_made_again_is_another_entry() {
        let (proof, _) = proven_changed_once(60, 2, |c| {
            c.0.remove(0);
            c.0.push(entry(0, 2));
        });
        let made_again: Vec<_> = proof
            .entries
            .iter()
            .filter(|e| e.fields.route_source == "192.168.0.0/24")
            .collect();
        assert_eq!(made_again.len(), 1);
        assert_eq!(made_again[0].fields.create_time, Some(2), "the newer one");
    }

    #[test]
    fn an_entry_that_no_page_shows_proves_nothing() {
        // Someone makes an entry before every read, where the page read does not show it, and
        // deletes it after: every TotalCount counts one entry that no read can prove.
        let cloud = Cloud::of(120);
        let mut pages = Pages::new(50);
        while pages.reads() < 60 {
            let p = pages.next_page();
            let mut resp = cloud.page(p, 50);
            resp.total_count += 1;
            pages.record(p, resp);
            assert_eq!(pages.proven(), None, "read {}", pages.reads());
        }
        assert_eq!(pages.best(), 120);
    }

    #[test]
    fn pages_in_a_new_order_on_every_read_are_proven_in_more_reads() {
        // A new order on every call: each page is some 50 of the 140.
        let mut cloud = Cloud::of(140);
        let want = sources(&cloud.0);
        let mut state = 7u64;
        let (proof, used) = read(&mut cloud, 300, |_, c| {
            for i in (1..c.0.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let j = usize::try_from((state >> 33) % (i as u64 + 1)).unwrap();
                c.0.swap(i, j);
            }
        });
        let proof = proof.expect("proven");
        assert_eq!(sources(&proof.entries), want);
        assert!(used > 5, "{used} reads");
    }

    #[test]
    fn a_server_that_caps_the_page_size_is_paged_at_its_size() {
        let cloud = Cloud::of(45);
        let mut pages = Pages::new(50);
        let mut reads = 0;
        let proof = loop {
            let p = pages.next_page();
            pages.record(p, cloud.page(p, 20));
            reads += 1;
            if let Some(proof) = pages.proven() {
                break proof;
            }
            assert!(reads < 20, "never proven");
        };
        assert_eq!(proof.entries.len(), 45);
        assert_eq!(reads, 5, "3 pages, then the first 2 again");
        assert_eq!(pages.pages(), 3);
    }
}
