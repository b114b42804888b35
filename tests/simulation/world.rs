//! The simulated world one seed runs in: the emulator's VPC state, the Kubernetes object store,
//! and the books the invariants are checked against. One lock for all of it, so a cloud call
//! and the object store it is judged against are seen at the same instant.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use rand::rngs::StdRng;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use vpc_emulator::ops::EmuState;
use vpn_pbr_operator::api::v1alpha1::{
    ADOPT_ANNOTATION, DeletionPolicy, ManagementPolicy, PAUSED_ANNOTATION, VpnPbrRoute,
    VpnPbrRouteSpec, validation,
};
use vpn_pbr_operator::controller::duplicates;

/// Virtual wall clock at the start of every seed (2026-01-01T00:00:00Z), so the emulator's
/// times and the objects' creation timestamps do not depend on the real date.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
pub const NS: &str = "sim";
pub const REGION: &str = "cn-hangzhou";

/// `namespace/name` of an object.
pub type Key = (String, String);

pub fn key_of(name: &str) -> Key {
    (NS.to_owned(), name.to_owned())
}

/// One policy-based route entry of the cloud.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub gw: String,
    pub src: String,
    pub dest: String,
    pub hop: String,
}

impl EntryKey {
    pub fn of(spec: &VpnPbrRouteSpec) -> Self {
        Self {
            gw: spec.vpn_gateway_id.clone(),
            src: spec.route_source.clone(),
            dest: spec.route_dest.clone(),
            hop: spec.next_hop.clone(),
        }
    }
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}->{}/{}", self.gw, self.src, self.dest, self.hop)
    }
}

/// An object of the store, with when it last stopped being allowed to make cloud changes.
pub struct Obj {
    pub route: VpnPbrRoute,
    /// Since when a create or modification for it may not go out (`None`: it may).
    pub change_barred: Option<Instant>,
    /// Since when a delete of its entry may not go out.
    pub delete_barred: Option<Instant>,
}

/// An object that is gone from the store.
pub struct Tomb {
    pub route: VpnPbrRoute,
    pub gone_at: Instant,
    /// Since when nothing may change its entry any more (its deletion, or its removal).
    pub change_barred: Instant,
    pub delete_barred: Instant,
    /// An older object claimed its entry when it went (duplicates.rs): it never owned it.
    pub claimed_by_older: bool,
}

/// An active/standby pair whose weights were swapped while both members were Ready: the
/// cloud must keep one of its entries at every moment (README.md, "Behaviour worth knowing").
pub struct PairWatch {
    pub label: String,
    pub gw: String,
    pub src: String,
    pub dest: String,
    pub members: [String; 2],
    /// Virtual seconds at the swap.
    pub since: f64,
}

#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub reconciles: u64,
    pub cloud_calls: u64,
    pub mutations_accepted: u64,
    pub faults: u64,
    pub crashes: u64,
    pub status_conflicts: u64,
    pub pair_swaps_watched: u64,
    /// Watched swaps that left the pair without an entry (only counted when not strict).
    pub pair_swaps_broken: u64,
    /// Virtual seconds from "faults stop" to convergence, and the bound it had.
    pub converge_secs: f64,
    pub converge_bound_secs: f64,
}

pub struct State {
    /// The running operator instance; calls of an older (crashed) one are refused.
    pub epoch: u64,
    pub emu: EmuState,
    pub faults: bool,
    /// Fault decisions (cloud and Kubernetes), seeded.
    pub rng: StdRng,
    pub store: BTreeMap<Key, Obj>,
    pub secrets: BTreeMap<Key, BTreeMap<String, Vec<u8>>>,
    /// The operator's watch cache, fed like a reflector (duplicates are computed over it by
    /// the real `duplicates::older_claim_in`).
    mirror: Writer<VpnPbrRoute>,
    /// The cache and its claim index, fed the same events (as `runner.rs` feeds them).
    pub reader: duplicates::ClaimCache,
    next_rv: u64,
    next_uid: u64,
    /// Where store changes go: the running controller loop.
    pub triggers: Option<UnboundedSender<Key>>,
    /// Every client token seen in a status write, and the uid of the object that wrote it.
    pub token_owner: BTreeMap<String, String>,
    /// Entries that exist in the cloud and the uid of the object that owns them: its create
    /// made them, or it adopted them with consent (README.md, "Behaviour worth knowing").
    pub owners: BTreeMap<EntryKey, String>,
    /// Accepted (not replayed) creates per object uid.
    pub accepted_creates: BTreeMap<String, u32>,
    pub tombs: BTreeMap<String, Tomb>,
    pub violations: Vec<String>,
    pub trace: VecDeque<String>,
    /// Keep the whole trace (and trace every reconcile), not just its end.
    pub verbose: bool,
    pub pairs: Vec<PairWatch>,
    /// Whether a broken invariant 3 fails the seed (else it is only traced and counted).
    pub strict_pairs: bool,
    pub stats: Stats,
    /// The replay hash: every cloud request (action, parameters, virtual time) and every object
    /// write, in order. Two runs of one seed must end with the same value.
    pub hash: TraceHash,
}

/// FNV-1a over what a run did: the same bytes in the same order give the same value in every
/// process (unlike `std`'s randomly keyed hasher).
#[derive(Clone, Copy, Debug)]
pub struct TraceHash(pub u64);

impl Default for TraceHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl TraceHash {
    pub fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }

    pub fn add_str(&mut self, s: &str) {
        self.add(s.as_bytes());
    }
}

/// How many trace lines a failure report shows.
const TRACE_KEEP: usize = 400;

pub struct Sim {
    state: Mutex<State>,
    pub start: Instant,
    /// The seed: every random draw of the run (the controller's included) derives from it.
    pub seed: u64,
}

impl Sim {
    pub fn new(seed: u64, emu: EmuState, rng: StdRng, verbose: bool) -> Self {
        let (store, mirror) = reflector::store();
        let reader = duplicates::ClaimCache {
            store,
            index: duplicates::ClaimIndex::default(),
        };
        Self {
            state: Mutex::new(State {
                epoch: 0,
                emu,
                faults: true,
                rng,
                store: BTreeMap::new(),
                secrets: BTreeMap::new(),
                mirror,
                reader,
                next_rv: 1,
                next_uid: 1,
                triggers: None,
                token_owner: BTreeMap::new(),
                owners: BTreeMap::new(),
                accepted_creates: BTreeMap::new(),
                tombs: BTreeMap::new(),
                violations: Vec::new(),
                trace: VecDeque::new(),
                verbose,
                pairs: Vec::new(),
                strict_pairs: true,
                stats: Stats::default(),
                hash: TraceHash::default(),
            }),
            start: Instant::now(),
            seed,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Epoch milliseconds of the virtual clock (the emulator's `now_ms`).
    pub fn now_ms(&self) -> u64 {
        EPOCH_MS + u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn trace(&self, line: impl AsRef<str>) {
        let t = self.elapsed().as_secs_f64();
        self.lock().trace_at(t, line.as_ref());
    }
}

pub fn paused(r: &VpnPbrRoute) -> bool {
    r.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

pub fn consents(r: &VpnPbrRoute) -> bool {
    r.annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|v| v == "true")
}

pub fn valid(r: &VpnPbrRoute) -> bool {
    validation::validate(&r.spec).is_ok()
}

pub fn deleting(r: &VpnPbrRoute) -> bool {
    r.metadata.deletion_timestamp.is_some()
}

pub fn uid(r: &VpnPbrRoute) -> String {
    r.metadata.uid.clone().unwrap_or_default()
}

/// Whether the design lets a create or a modification of the object's entry go out now.
fn change_allowed(r: &VpnPbrRoute) -> bool {
    !deleting(r) && !paused(r) && valid(r) && r.spec.management_policy == ManagementPolicy::Full
}

/// Whether the design lets a delete of the object's entry go out now: the cleanup of a
/// `Delete` object, or the delete half of a weight change inside a pair.
fn delete_allowed(r: &VpnPbrRoute) -> bool {
    if paused(r) || r.spec.management_policy != ManagementPolicy::Full {
        return false;
    }
    if deleting(r) {
        r.spec.deletion_policy == DeletionPolicy::Delete
    } else {
        valid(r)
    }
}

fn bar(flag: &mut Option<Instant>, allowed: bool, now: Instant) {
    match (allowed, flag.is_some()) {
        (true, _) => *flag = None,
        (false, false) => *flag = Some(now),
        (false, true) => {}
    }
}

impl State {
    pub fn trace_at(&mut self, t: f64, line: &str) {
        let line = format!("[{t:9.3}] {line}");
        if !self.verbose && self.trace.len() >= TRACE_KEEP {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    pub fn violation(&mut self, t: f64, what: String) {
        self.trace_at(t, &format!("VIOLATION {what}"));
        self.violations.push(format!("t={t:.3}s {what}"));
    }

    fn trigger(&self, key: &Key) {
        if let Some(tx) = &self.triggers {
            // A closed channel means the operator is down; the restart triggers everything.
            let _ = tx.send(key.clone());
        }
    }

    /// Stores a new version of an object (bumping its resourceVersion), updates the
    /// operator's watch cache and triggers a reconcile.
    pub fn put(&mut self, key: &Key, mut route: VpnPbrRoute) {
        let now = Instant::now();
        route.metadata.resource_version = Some(self.next_rv.to_string());
        self.next_rv += 1;
        let obj = self.store.entry(key.clone()).or_insert_with(|| Obj {
            route: route.clone(),
            change_barred: None,
            delete_barred: None,
        });
        obj.route = route;
        self.hash.add_str(&format!("put {}/{}", key.0, key.1));
        self.hash
            .add(&serde_json::to_vec(&obj.route).unwrap_or_default());
        bar(&mut obj.change_barred, change_allowed(&obj.route), now);
        bar(&mut obj.delete_barred, delete_allowed(&obj.route), now);
        let event = watcher::Event::Apply(obj.route.clone());
        self.reader.index.apply_watcher_event(&event);
        self.mirror.apply_watcher_event(&event);
        self.trigger(key);
    }

    /// Removes an object for good (its last finalizer went, or it never had one).
    pub fn remove(&mut self, key: &Key) {
        if let Some(obj) = self.store.remove(key) {
            self.hash.add_str(&format!("remove {}/{}", key.0, key.1));
            let now = Instant::now();
            let claimed_by_older = self.older_claim(&obj.route).is_some();
            let event = watcher::Event::Delete(obj.route.clone());
            self.reader.index.apply_watcher_event(&event);
            self.mirror.apply_watcher_event(&event);
            self.tombs.insert(
                uid(&obj.route),
                Tomb {
                    route: obj.route,
                    gone_at: now,
                    change_barred: obj.change_barred.unwrap_or(now),
                    delete_barred: obj.delete_barred.unwrap_or(now),
                    claimed_by_older,
                },
            );
        }
    }

    /// Creates an object as the apiserver does: uid, generation 1, creation timestamp.
    pub fn create(
        &mut self,
        now_ms: u64,
        name: &str,
        spec: VpnPbrRouteSpec,
        paused: bool,
        adopt: bool,
    ) -> bool {
        let key = key_of(name);
        if self.store.contains_key(&key) {
            return false;
        }
        let mut route = VpnPbrRoute::new(name, spec);
        route.metadata.namespace = Some(NS.to_owned());
        route.metadata.uid = Some(format!("uid-{}", self.next_uid));
        self.next_uid += 1;
        route.metadata.generation = Some(1);
        // Whole seconds, as the apiserver keeps them: objects made in the same second are
        // ranked by name (duplicates.rs).
        let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        route.metadata.creation_timestamp = jiff::Timestamp::from_second(secs).ok().map(Time);
        let ann = route.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if paused {
            ann.insert(PAUSED_ANNOTATION.to_owned(), "true".to_owned());
        }
        if adopt {
            ann.insert(ADOPT_ANNOTATION.to_owned(), "true".to_owned());
        }
        self.put(&key, route);
        true
    }

    /// A user's change of the spec: the generation moves only when the spec changes.
    pub fn edit_spec(&mut self, key: &Key, f: impl FnOnce(&mut VpnPbrRouteSpec)) -> bool {
        let Some(obj) = self.store.get(key) else {
            return false;
        };
        let mut route = obj.route.clone();
        f(&mut route.spec);
        if route.spec == obj.route.spec {
            return true;
        }
        route.metadata.generation = Some(route.metadata.generation.unwrap_or(0) + 1);
        self.put(key, route);
        true
    }

    pub fn set_paused(&mut self, key: &Key, on: bool) -> bool {
        self.annotate(key, PAUSED_ANNOTATION, on)
    }

    /// Sets (`"true"`) or removes an annotation; the generation does not move.
    pub fn annotate(&mut self, key: &Key, name: &str, on: bool) -> bool {
        let Some(obj) = self.store.get(key) else {
            return false;
        };
        let mut route = obj.route.clone();
        let ann = route.metadata.annotations.get_or_insert_with(BTreeMap::new);
        if on {
            ann.insert(name.to_owned(), "true".to_owned());
        } else {
            ann.remove(name);
        }
        self.put(key, route);
        true
    }

    /// `kubectl delete`: with finalizers the object is marked (and, as the apiserver does for
    /// a graceful deletion, its generation moves); without, it is gone at once.
    pub fn delete(&mut self, key: &Key, now_ms: u64) -> bool {
        let Some(obj) = self.store.get(key) else {
            return false;
        };
        if deleting(&obj.route) {
            return true;
        }
        if obj.route.finalizers().is_empty() {
            self.remove(key);
            return true;
        }
        let mut route = obj.route.clone();
        let secs = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        route.metadata.deletion_timestamp = jiff::Timestamp::from_second(secs).ok().map(Time);
        route.metadata.generation = Some(route.metadata.generation.unwrap_or(0) + 1);
        self.put(key, route);
        true
    }

    /// The objects whose identity fields name `entry`, oldest first.
    pub fn claimants(&self, entry: &EntryKey) -> Vec<&VpnPbrRoute> {
        let mut v: Vec<&VpnPbrRoute> = self
            .store
            .values()
            .map(|o| &o.route)
            .filter(|r| EntryKey::of(&r.spec) == *entry)
            .collect();
        v.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
        v
    }

    /// An older object claiming the same entry, as the operator computes it.
    pub fn older_claim(&self, route: &VpnPbrRoute) -> Option<String> {
        duplicates::older_claim_in(route, std::slice::from_ref(&self.reader))
    }

    /// An older object that wants the other `publishVpc` for the same destination and next hop.
    pub fn publish_conflict(&self, route: &VpnPbrRoute) -> Option<String> {
        duplicates::older_publish_conflict_in(route, std::slice::from_ref(&self.reader))
    }

    pub fn object_by_uid(&self, uid_: &str) -> Option<&Obj> {
        self.store.values().find(|o| uid(&o.route) == uid_)
    }

    /// Entries of the cloud right now.
    pub fn entries(&self) -> Vec<(EntryKey, vpc_emulator::world::PbrEntry)> {
        self.emu
            .world
            .gateways
            .values()
            .flat_map(|g| {
                g.entries.iter().map(|e| {
                    (
                        EntryKey {
                            gw: g.id.clone(),
                            src: e.route_source.clone(),
                            dest: e.route_dest.clone(),
                            hop: e.next_hop.clone(),
                        },
                        e.clone(),
                    )
                })
            })
            .collect()
    }

    pub fn entry(&self, key: &EntryKey) -> Option<&vpc_emulator::world::PbrEntry> {
        self.emu.world.gateways.get(&key.gw).and_then(|g| {
            g.entries.iter().find(|e| {
                e.route_source == key.src && e.route_dest == key.dest && e.next_hop == key.hop
            })
        })
    }

    /// Forgets owners of entries that are no longer in the cloud.
    pub fn prune_owners(&mut self) {
        let live: std::collections::BTreeSet<EntryKey> =
            self.entries().into_iter().map(|(k, _)| k).collect();
        self.owners.retain(|k, _| live.contains(k));
    }

    /// Ends the watch of every pair touched by something other than the operator.
    pub fn unwatch_pairs(
        &mut self,
        gw: &str,
        src: Option<&str>,
        dest: Option<&str>,
        why: &str,
        t: f64,
    ) {
        let mut ended = Vec::new();
        self.pairs.retain(|p| {
            let hit =
                p.gw == gw && src.is_none_or(|s| s == p.src) && dest.is_none_or(|d| d == p.dest);
            if hit {
                ended.push(p.label.clone());
            }
            !hit
        });
        for l in ended {
            self.trace_at(t, &format!("pair watch {l} ended: {why}"));
        }
    }

    /// Ends the watch of the pairs `uid_` belongs to.
    pub fn unwatch_member(&mut self, uid_: &str, why: &str, t: f64) {
        let mut ended = Vec::new();
        self.pairs.retain(|p| {
            let hit = p.members.iter().any(|m| m == uid_);
            if hit {
                ended.push(p.label.clone());
            }
            !hit
        });
        for l in ended {
            self.trace_at(t, &format!("pair watch {l} ended: {why}"));
        }
    }

    /// Invariant 3: a watched pair keeps at least one entry at every moment.
    pub fn check_pairs(&mut self, t: f64, after: &str) {
        let mut broken = Vec::new();
        let mut started = Vec::new();
        for p in &self.pairs {
            let n = self.emu.world.gateways.get(&p.gw).map_or(0, |g| {
                g.entries
                    .iter()
                    .filter(|e| e.route_source == p.src && e.route_dest == p.dest)
                    .count()
            });
            if n == 0 {
                broken.push(p.label.clone());
                started.push(p.since);
            }
        }
        if !broken.is_empty() {
            for (l, since) in broken.iter().zip(started) {
                self.stats.pair_swaps_broken += 1;
                let what = format!(
                    "invariant 3: an active/standby pair has no entry in the cloud during a \
                     weight swap: {l}, {:.3}s into it (after {after})",
                    t - since
                );
                if self.strict_pairs {
                    self.violation(t, what);
                } else {
                    self.trace_at(t, &format!("(not strict) {what}"));
                }
            }
            // Reported once per swap.
            self.pairs.retain(|p| !broken.contains(&p.label));
        }
    }
}
