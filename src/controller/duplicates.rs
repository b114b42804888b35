//! Duplicate claims: two objects that name the same cloud entry. The older one (by creation
//! time, then namespace/name) keeps it; the younger is refused.
//!
//! The checks run on every reconcile, so they do not scan the watch cache: [`ClaimIndex`]
//! maps each route's cloud identity to the routes naming it and is fed the same watch events
//! as the cache. A check looks up only the routes sharing its key and judges them on the
//! cache's copy (the index says who to look at, the cache what they are now).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use smallvec::SmallVec;

use super::decide::owns_entry;
use super::job::{Owner, owner_of};
use crate::api::v1alpha1::{RouteKey, VpnPbrRoute, VpnPbrRouteSpec};

/// A watch cache of routes and the claim index fed by the same events.
#[derive(Clone)]
pub struct ClaimCache {
    pub store: Store<VpnPbrRoute>,
    pub index: ClaimIndex,
}

/// Routes by cloud identity: the entry's key (gateway, source, destination, next hop), and the
/// key `PublishVpnRouteEntry` acts on (gateway, destination, next hop). Keys are kept as
/// hashes: a collision only adds a candidate, which the check then rejects on its fields.
#[derive(Clone, Default)]
pub struct ClaimIndex(Arc<RwLock<Index>>);

#[derive(Default)]
struct Index {
    hasher: RandomState,
    live: Buckets,
    /// A relist under way (watcher `Init` .. `InitDone`): like the reflector's store, the index
    /// swaps it in whole at `InitDone`, so routes deleted while the watch was down go too.
    relist: Option<Buckets>,
}

/// One owner per route, shared by its entry in `keys` and its two buckets (a route's name and
/// namespace are stored once, not three times).
type Ref = Owner;

#[derive(Default)]
struct Buckets {
    /// Each route's two keys, to find its buckets again when it changes or goes.
    keys: HashMap<Ref, (u64, u64)>,
    claim: HashMap<u64, Bucket>,
    publish: HashMap<u64, Bucket>,
}

/// The routes under one key. Nearly every key has one route, kept inline (a `Vec`'s first push
/// allocates room for four).
type Bucket = SmallVec<[Ref; 1]>;

impl Buckets {
    fn insert(&mut self, at: Owner, keys: (u64, u64)) {
        match self.keys.get(&at) {
            Some(old) if *old == keys => return,
            Some(_) => self.remove(&at),
            None => {}
        }
        add(&mut self.claim, keys.0, &at);
        add(&mut self.publish, keys.1, &at);
        self.keys.insert(at, keys);
    }

    fn remove(&mut self, at: &Owner) {
        let Some((claim, publish)) = self.keys.remove(at) else {
            return;
        };
        take(&mut self.claim, claim, at);
        take(&mut self.publish, publish, at);
    }
}

fn add(buckets: &mut HashMap<u64, Bucket>, key: u64, at: &Ref) {
    buckets.entry(key).or_default().push(at.clone());
}

fn take(buckets: &mut HashMap<u64, Bucket>, key: u64, at: &Owner) {
    if let Some(bucket) = buckets.get_mut(&key) {
        bucket.retain(|r| r != at);
        if bucket.is_empty() {
            buckets.remove(&key);
        } else {
            // Back inline once one route is left.
            bucket.shrink_to_fit();
        }
    }
}

impl Index {
    fn claim_key(&self, s: &VpnPbrRouteSpec) -> u64 {
        self.hasher.hash_one((
            &s.region_id,
            &s.vpn_gateway_id,
            &s.route_source,
            &s.route_dest,
            &s.next_hop,
        ))
    }

    fn publish_key(&self, s: &VpnPbrRouteSpec) -> u64 {
        self.hasher
            .hash_one((&s.region_id, &s.vpn_gateway_id, &s.route_dest, &s.next_hop))
    }

    fn keys(&self, route: &VpnPbrRoute) -> (u64, u64) {
        (self.claim_key(&route.spec), self.publish_key(&route.spec))
    }
}

impl ClaimIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows one watch event, as `reflector::store::Writer::apply_watcher_event` does for the
    /// cache. Fed before the cache, so a route is in the index by the time the cache shows it.
    pub fn apply_watcher_event(&self, event: &watcher::Event<VpnPbrRoute>) {
        let mut index = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(route) => {
                let keys = index.keys(route);
                index.live.insert(owner_of(route), keys);
            }
            watcher::Event::Delete(route) => index.live.remove(&owner_of(route)),
            watcher::Event::Init => index.relist = Some(Buckets::default()),
            watcher::Event::InitApply(route) => {
                let keys = index.keys(route);
                index
                    .relist
                    .get_or_insert_with(Buckets::default)
                    .insert(owner_of(route), keys);
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = index.relist.take() {
                    index.live = fresh;
                }
            }
        }
    }

    /// The routes indexed under a claim key and a publish key (candidates, not yet checked).
    fn candidates(&self, route: &VpnPbrRoute, publish: bool) -> Vec<Ref> {
        let index = self.read();
        let found = if publish {
            index.live.publish.get(&index.publish_key(&route.spec))
        } else {
            index.live.claim.get(&index.claim_key(&route.spec))
        };
        found.map_or_else(Vec::new, |b| b.to_vec())
    }

    /// How many routes the index holds (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.read().live.keys.len()
    }
}

/// The routes of the caches indexed under the route's key, as the caches hold them now.
fn sharing_key<'a>(
    route: &'a VpnPbrRoute,
    caches: &'a [ClaimCache],
    publish: bool,
) -> impl Iterator<Item = Arc<VpnPbrRoute>> + 'a {
    caches.iter().flat_map(move |c| {
        c.index
            .candidates(route, publish)
            .into_iter()
            .filter_map(|at| c.store.get(&at))
    })
}

/// The `namespace/name` of an older object claiming the same route, if any, among the
/// controllers' caches (the oldest, when there are several).
pub fn older_claim_in(route: &VpnPbrRoute, caches: &[ClaimCache]) -> Option<String> {
    older_claim_among(route, sharing_key(route, caches, false))
}

/// The `namespace/name` of an older object whose entry shares this route's gateway,
/// destination and next hop but wants the other `publishVpc`. `PublishVpnRouteEntry` acts on
/// every entry with that destination and next hop, so the two would flip each other.
pub fn older_publish_conflict_in(route: &VpnPbrRoute, caches: &[ClaimCache]) -> Option<String> {
    older_publish_conflict_among(route, sharing_key(route, caches, true))
}

/// Our other objects naming an entry with this route's gateway, destination and next hop
/// (whatever their source), as the caches hold them now.
pub fn publish_sharers_in(route: &VpnPbrRoute, caches: &[ClaimCache]) -> Vec<Arc<VpnPbrRoute>> {
    publish_sharers_among(route, sharing_key(route, caches, true))
}

/// [`older_claim_in`] among `others` (any objects: the rule checks every field).
pub(crate) fn older_claim_among<R: AsRef<VpnPbrRoute>>(
    route: &VpnPbrRoute,
    others: impl IntoIterator<Item = R>,
) -> Option<String> {
    let key = route.spec.route_key();
    let mine = rank(route);
    others
        .into_iter()
        .filter(|o| is_older_claim(o.as_ref(), route, &key, &mine))
        .min_by_key(|o| rank(o.as_ref()))
        .map(|o| name_of(o.as_ref()))
}

/// [`older_publish_conflict_in`] among `others`.
pub(crate) fn older_publish_conflict_among<R: AsRef<VpnPbrRoute>>(
    route: &VpnPbrRoute,
    others: impl IntoIterator<Item = R>,
) -> Option<String> {
    let mine = rank(route);
    others
        .into_iter()
        .filter(|o| {
            let o = o.as_ref();
            shares_publish_key(o, route)
                && o.spec.publish_vpc != route.spec.publish_vpc
                && o.metadata.deletion_timestamp.is_none()
                && rank(o) < mine
        })
        .min_by_key(|o| rank(o.as_ref()))
        .map(|o| name_of(o.as_ref()))
}

/// [`publish_sharers_in`] among `others`.
pub(crate) fn publish_sharers_among<R: Into<Arc<VpnPbrRoute>> + AsRef<VpnPbrRoute>>(
    route: &VpnPbrRoute,
    others: impl IntoIterator<Item = R>,
) -> Vec<Arc<VpnPbrRoute>> {
    others
        .into_iter()
        .filter(|o| shares_publish_key(o.as_ref(), route))
        .map(Into::into)
        .collect()
}

/// Field by field (the index finds candidates by hash): another object whose entry shares
/// the route's gateway, destination and next hop.
fn shares_publish_key(o: &VpnPbrRoute, route: &VpnPbrRoute) -> bool {
    let (s, t) = (&route.spec, &o.spec);
    t.route_dest == s.route_dest
        && t.next_hop == s.next_hop
        && t.vpn_gateway_id == s.vpn_gateway_id
        && t.region_id == s.region_id
        && o.metadata.uid != route.metadata.uid
}

fn name_of(o: &VpnPbrRoute) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

type Rank = (Hold, Option<jiff::Timestamp>, String, String);

/// How strongly an object holds its entry, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Hold {
    /// Status recorded the entry: the answer of its accepted create, or the adoption.
    Recorded,
    /// Only a create token: its create may not even have been sent.
    Token,
    Nothing,
}

/// What the object's status holds of its entry.
pub(crate) fn hold(r: &VpnPbrRoute) -> Hold {
    match r.status.as_ref() {
        Some(s) if s.create_time.is_some() || s.adopted == Some(true) => Hold::Recorded,
        _ if owns_entry(r) => Hold::Token,
        _ => Hold::Nothing,
    }
}

/// The object that holds the entry comes first (the one whose create was accepted before one
/// that only wrote a token), then the older: creation times have one-second resolution, so two
/// objects made in the same second would otherwise be ordered by name, and the one that made
/// the entry could lose it.
fn rank(r: &VpnPbrRoute) -> Rank {
    (
        hold(r),
        r.creation_timestamp().map(|t| t.0),
        r.namespace().unwrap_or_default(),
        r.name_any(),
    )
}

fn is_older_claim(o: &VpnPbrRoute, route: &VpnPbrRoute, key: &RouteKey, mine: &Rank) -> bool {
    // Field by field: the index found the candidates by hash, so a collision is rejected here.
    let s = &o.spec;
    s.route_dest == key.route_dest
        && s.route_source == key.route_source
        && s.next_hop == key.next_hop
        && s.vpn_gateway_id == key.vpn_gateway_id
        && s.region_id == key.region_id
        && o.metadata.uid != route.metadata.uid
        // An older object being deleted still holds the entry until its cleanup is done.
        && rank(o) < *mine
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;

    fn route(name: &str, created: &str, dest: &str) -> VpnPbrRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": created},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a", "routeSource": "10.0.0.0/24",
                     "routeDest": dest, "nextHop": "vco-a", "weight": 100, "publishVpc": false}
        }))
        .expect("route")
    }

    /// A cache and its index, fed like `runner.rs` feeds them.
    struct Fed {
        writer: Writer<VpnPbrRoute>,
        cache: ClaimCache,
    }

    impl Fed {
        fn new() -> Self {
            let (store, writer) = kube::runtime::reflector::store();
            Self {
                writer,
                cache: ClaimCache {
                    store,
                    index: ClaimIndex::default(),
                },
            }
        }

        fn event(&mut self, e: &Event<VpnPbrRoute>) {
            self.cache.index.apply_watcher_event(e);
            self.writer.apply_watcher_event(e);
        }

        fn apply(&mut self, routes: &[&VpnPbrRoute]) {
            for r in routes {
                self.event(&Event::Apply((*r).clone()));
            }
        }

        fn caches(&self) -> [ClaimCache; 1] {
            [self.cache.clone()]
        }

        /// The routes indexed under `route`'s claim and publish keys.
        fn indexed(&self, route: &VpnPbrRoute) -> (Vec<String>, Vec<String>) {
            let names = |publish| {
                let mut v: Vec<String> = self
                    .cache
                    .index
                    .candidates(route, publish)
                    .into_iter()
                    .map(|r| r.name.clone())
                    .collect();
                v.sort();
                v
            };
            (names(false), names(true))
        }
    }

    /// `old` and, a day later, `young` claiming 10.1.0.0/16, and `other` (older than both)
    /// another destination, fed to a new cache.
    fn claims() -> (Fed, [VpnPbrRoute; 3]) {
        let mut fed = Fed::new();
        let old = route("old", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        let young = route("young", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        let other = route("other", "2025-01-01T00:00:00Z", "10.2.0.0/16");
        fed.apply(&[&old, &young, &other]);
        (fed, [old, young, other])
    }

    #[test]
    fn the_younger_claim_loses() {
        let (fed, [old, young, other]) = claims();
        let caches = fed.caches();
        assert_eq!(older_claim_in(&young, &caches).as_deref(), Some("ns/old"));
        assert_eq!(older_claim_in(&old, &caches), None);
        assert_eq!(older_claim_in(&other, &caches), None);
    }

    #[test]
    fn the_owner_wins_over_the_older_and_a_deleting_owner_still_claims() {
        let mut fed = Fed::new();
        let old = route("old", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        let mut owner = route("owner", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        owner.status =
            Some(serde_json::from_value(serde_json::json!({"clientToken": "t"})).expect("status"));
        owner.metadata.deletion_timestamp = old.metadata.creation_timestamp.clone();
        let third = route("third", "2025-01-01T00:00:00Z", "10.1.0.0/16");
        fed.apply(&[&old, &owner, &third]);
        let caches = fed.caches();
        assert_eq!(older_claim_in(&owner, &caches), None);
        // Of two older claims, the first by rank is named: the owner.
        assert_eq!(older_claim_in(&old, &caches).as_deref(), Some("ns/owner"));
        assert_eq!(older_claim_in(&third, &caches).as_deref(), Some("ns/owner"));
    }

    #[test]
    fn the_creator_wins_over_an_older_object_that_only_wrote_a_token() {
        let mut fed = Fed::new();
        let mut token = route("token", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        token.status =
            Some(serde_json::from_value(serde_json::json!({"clientToken": "t"})).expect("status"));
        let mut creator = route("creator", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        creator.status = Some(
            serde_json::from_value(serde_json::json!({"createTime": "2026-01-02T00:00:01.000Z"}))
                .expect("status"),
        );
        let none = route("none", "2025-01-01T00:00:00Z", "10.1.0.0/16");
        fed.apply(&[&token, &creator, &none]);
        let caches = fed.caches();
        assert_eq!(
            older_claim_in(&creator, &caches),
            None,
            "the creator keeps it"
        );
        assert_eq!(
            older_claim_in(&token, &caches).as_deref(),
            Some("ns/creator")
        );
        assert_eq!(
            older_claim_in(&none, &caches).as_deref(),
            Some("ns/creator")
        );
        // Of two that only wrote a token, the older; a token beats an object with nothing.
        let mut young_token = route("young-token", "2026-01-03T00:00:00Z", "10.1.0.0/16");
        young_token.status = token.status.clone();
        fed.event(&Event::Delete(creator.clone()));
        fed.apply(&[&young_token]);
        assert_eq!(
            older_claim_in(&young_token, &caches).as_deref(),
            Some("ns/token")
        );
        assert_eq!(older_claim_in(&none, &caches).as_deref(), Some("ns/token"));
    }

    #[test]
    fn the_younger_of_two_disagreeing_publishers_loses() {
        let mut fed = Fed::new();
        let old = route("old", "2026-01-01T00:00:00Z", "10.1.0.0/16");
        let mut young = route("young", "2026-01-02T00:00:00Z", "10.1.0.0/16");
        young.spec.route_source = "10.9.0.0/24".into();
        young.spec.publish_vpc = true;
        let mut agrees = young.clone();
        agrees.metadata.name = Some("agrees".into());
        agrees.metadata.uid = Some("agrees".into());
        agrees.spec.publish_vpc = false;
        fed.apply(&[&old, &young, &agrees]);
        let caches = fed.caches();
        assert_eq!(
            older_publish_conflict_in(&young, &caches).as_deref(),
            Some("ns/old")
        );
        assert_eq!(older_publish_conflict_in(&old, &caches), None);
        assert_eq!(older_publish_conflict_in(&agrees, &caches), None);
    }

    #[test]
    fn the_index_follows_adds_key_changes_deletes_and_relists() {
        let (mut fed, [old, young, other]) = claims();
        let both = vec!["old".to_owned(), "young".to_owned()];
        assert_eq!(fed.indexed(&young), (both.clone(), both));
        assert_eq!(fed.indexed(&other).0, vec!["other".to_owned()]);
        assert_eq!(fed.cache.index.len(), 3);

        // The old route moves to the other destination: it leaves its buckets for the new ones.
        let mut moved = old.clone();
        moved.spec.route_dest = "10.2.0.0/16".into();
        fed.apply(&[&moved]);
        let caches = fed.caches();
        assert_eq!(fed.indexed(&young).0, vec!["young".to_owned()]);
        assert_eq!(fed.indexed(&young).1, vec!["young".to_owned()]);
        assert_eq!(
            fed.indexed(&other).0,
            vec!["old".to_owned(), "other".to_owned()]
        );
        assert_eq!(older_claim_in(&young, &caches), None);
        assert_eq!(older_claim_in(&moved, &caches).as_deref(), Some("ns/other"));
        // An update that keeps the key (status) changes nothing in the index.
        let mut owned = moved.clone();
        owned.status =
            Some(serde_json::from_value(serde_json::json!({"clientToken": "t"})).expect("status"));
        fed.apply(&[&owned]);
        assert_eq!(fed.cache.index.len(), 3);
        assert_eq!(older_claim_in(&other, &caches).as_deref(), Some("ns/old"));

        fed.event(&Event::Delete(owned.clone()));
        assert_eq!(fed.indexed(&other).0, vec!["other".to_owned()]);
        assert_eq!(older_claim_in(&other, &caches), None);
        assert_eq!(fed.cache.index.len(), 2);

        // A relist drops what was deleted while the watch was down, at its end (as the cache).
        fed.event(&Event::Init);
        fed.event(&Event::InitApply(young.clone()));
        assert_eq!(
            fed.cache.index.len(),
            2,
            "the old view serves until the relist ends"
        );
        fed.event(&Event::InitDone);
        assert_eq!(fed.cache.index.len(), 1);
        assert!(fed.indexed(&other).0.is_empty());
        assert_eq!(fed.indexed(&young).0, vec!["young".to_owned()]);
    }

    #[test]
    fn a_key_holds_one_ref_and_a_route_is_stored_once() {
        use crate::controller::fixtures::retained;
        const N: i64 = 2000;
        let routes: Vec<VpnPbrRoute> = (0..N)
            .map(|i| {
                route(
                    &format!("r{i}"),
                    "2026-01-01T00:00:00Z",
                    &format!("10.{}.{}.0/24", i / 256, i % 256),
                )
            })
            .collect();
        let index = ClaimIndex::default();
        let ((), heap) = retained(|| {
            for r in &routes {
                index.apply_watcher_event(&Event::Apply(r.clone()));
            }
        });
        assert_eq!(index.len(), N as usize);
        // Each route under its own claim key and publish key: one ref (a block, with its name
        // and namespace: three) shared by its entry in `keys` and both buckets; no Vec per key
        // (a Vec's first push reserves four refs). The maps' tables are a few blocks more.
        assert!(
            heap.blocks <= 3 * N + 64,
            "{} blocks for {N} routes",
            heap.blocks
        );
        assert!(heap.bytes <= 320 * N, "{} bytes for {N} routes", heap.bytes);
        // Removing them frees it all.
        let ((), gone) = retained(|| {
            for r in &routes {
                index.apply_watcher_event(&Event::Delete(r.clone()));
            }
        });
        assert_eq!(index.len(), 0);
        assert!(gone.blocks <= -3 * N, "{gone:?}");
    }

    #[test]
    fn ten_thousand_routes_cost_a_check_only_their_key() {
        let mut fed = Fed::new();
        let routes: Vec<VpnPbrRoute> = (0..10_000)
            .map(|i| {
                let mut r = route(&format!("r{i}"), "2026-01-01T00:00:00Z", "10.1.0.0/16");
                r.spec.route_source = format!("10.{}.{}.0/24", i / 256, i % 256);
                r
            })
            .collect();
        for r in &routes {
            fed.event(&Event::Apply(r.clone()));
        }
        for r in routes.iter().step_by(97) {
            assert_eq!(fed.indexed(r).0.len(), 1, "only itself under its entry key");
            assert_eq!(older_claim_in(r, &fed.caches()), None);
        }
        // The publish key is shared by all (same gateway, destination and next hop).
        assert_eq!(fed.indexed(&routes[0]).1.len(), 10_000);
    }
}
