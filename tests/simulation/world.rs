//! The simulated world one seed runs in: the emulator's VPC state, the Kubernetes object store,
//! the watch caches of the operator processes, and the books the invariants are checked
//! against. One lock for all of it, so a cloud call and the object store it is judged against
//! are seen at the same instant.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::watcher;
use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use vpc_emulator::ops::EmuState;
use vpc_emulator::world::{PbrEntry, effective};
use vpn_pbr_operator::api::v1alpha1::{
    ADOPT_ANNOTATION, DeletionPolicy, ManagementPolicy, PAUSED_ANNOTATION, VpnPbrRoute,
    VpnPbrRouteSpec, validation,
};
use vpn_pbr_operator::duplicates;
use vpn_pbr_operator::{Arrival, Echoes, Mutation, PromptLane, Scope, SecretData};

use super::config::WorldConfig;
use super::lists::Listed;

/// Virtual wall clock at the start of every seed (2026-01-01T00:00:00Z), so the emulator's
/// times and the objects' creation timestamps do not depend on the real date.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
pub const NS: &str = "sim";
/// The namespaces objects live in (one of them may be deleted).
pub const NAMESPACES: [&str; 2] = [NS, "team"];
pub const REGION: &str = "cn-hangzhou";

/// `namespace/name` of an object.
pub type Key = (String, String);

/// The key of `ns/name` (a name without a namespace is in [`NS`]).
pub fn key_of(full: &str) -> Key {
    match full.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (NS.to_owned(), full.to_owned()),
    }
}

/// The access key of the operator's own credentials at the start (`operator_key` of another
/// account: `sim-operator-<account>`), and of the keys routes name in their Secrets, one per
/// account.
pub const OPERATOR_KEY: &str = "sim-operator";
/// The account the operator's own key belongs to.
pub const OPERATOR_ACCOUNT: u8 = 1;

pub fn route_key(account: u8) -> String {
    format!("sim-key-{account}")
}

/// The account of an access key (STS `GetCallerIdentity` answers `account_id` of it).
pub fn account_of_key(access_key_id: &str) -> Option<u8> {
    if access_key_id == OPERATOR_KEY {
        return Some(OPERATOR_ACCOUNT);
    }
    access_key_id
        .strip_prefix("sim-key-")
        .or_else(|| access_key_id.strip_prefix("sim-operator-"))?
        .parse()
        .ok()
}

/// The account ID STS names for `account`.
pub fn account_id(account: u8) -> String {
    format!("sim-account-{account}")
}

/// The data of a route's Secret with a key of `account`.
pub fn secret_data(account: u8) -> SecretData {
    BTreeMap::from([
        ("accessKeyId".to_owned(), route_key(account).into_bytes()),
        (
            "accessKeySecret".to_owned(),
            format!("sim-secret-{account}").into_bytes(),
        ),
    ])
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

impl EntryKey {
    /// The entry a mutation on `scope`'s gateway acts on.
    pub fn of_mutation(scope: &Scope, m: &Mutation) -> Self {
        let r = m.route();
        Self {
            gw: scope.vpn_gateway_id.clone(),
            src: r.route_source.clone(),
            dest: r.route_dest.clone(),
            hop: r.next_hop.clone(),
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
    /// Of them, run by the prompt lane beside the control loop's queue.
    pub prompt_reconciles: u64,
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
    /// Lists of more than one page, and those whose pages saw the gateway change between them.
    pub lists_paged: u64,
    pub lists_raced: u64,
    /// Lists that showed an older state than the gateway had already reached.
    pub lists_behind: u64,
    /// Calls answered `InvalidVpnGatewayInstanceId.NotFound` because the key is of another
    /// account than the gateway.
    pub cross_account: u64,
    /// Status writes built on an older copy than the stored object (their base was stale):
    /// refused by the resourceVersion precondition, or applied when a write carries none.
    pub stale_writes: u64,
    /// Reconciles of a copy older than the stored object.
    pub stale_reconciles: u64,
    /// Watch events that were the echo of the process's own write: skipped, or triggering a
    /// reconcile again because one decided on an older copy meanwhile (`echoes.rs`).
    pub echoes_skipped: u64,
    pub echoes_again: u64,
    /// Events that arrived while a write of the route was in flight (held back until it
    /// answered).
    pub echoes_held: u64,
    pub relists: u64,
    /// Requests that landed after their process had died, and those that landed after the
    /// next process had sent a request of its own.
    pub late_landings: u64,
    pub late_after_successor: u64,
    /// Mutations whose token the cloud had forgotten.
    pub tokens_expired: u64,
    pub outages: u64,
    pub unprovable: u64,
    /// Leader hand-overs (the standby took the Lease over).
    pub handovers: u64,
    pub namespaces_deleted: u64,
}

/// One operator process's view of the routes: its watch cache and claim index, fed the store's
/// events after a delay (in order), and where its events trigger reconciles.
pub struct Watch {
    writer: Writer<VpnPbrRoute>,
    pub cache: duplicates::ClaimCache,
    queue: VecDeque<(Instant, watcher::Event<VpnPbrRoute>)>,
    pub triggers: UnboundedSender<Key>,
    /// The process's own writes not yet back: their echo triggers nothing (as in `runner.rs`).
    pub echoes: Arc<Echoes>,
    /// The process's prompt lane: hears every event, takes the triggers of lone changes.
    pub lane: Arc<PromptLane>,
    /// Per object uid, since when this process's watch has shown it barred from creating or
    /// changing its entry, and from deleting it (what the process can know, not the store).
    pub bars: BTreeMap<String, Bars>,
}

/// Since when an object may not change (create, modify) or delete its entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bars {
    pub change: Option<Instant>,
    pub delete: Option<Instant>,
}

impl Bars {
    fn follow(&mut self, r: &VpnPbrRoute, now: Instant) {
        bar(&mut self.change, change_allowed(r), now);
        bar(&mut self.delete, delete_allowed(r), now);
    }

    fn gone(&mut self, now: Instant) {
        self.change.get_or_insert(now);
        self.delete.get_or_insert(now);
    }
}

/// The Lease of leader election (`src/app.rs`): who holds it and when it was last renewed.
#[derive(Debug, Default, Clone)]
pub struct Lease {
    /// The replica holding it.
    pub holder: Option<usize>,
    /// Epoch milliseconds of the last renewal.
    pub renewed_ms: u64,
}

/// What happened, line by line.
pub struct Trace {
    pub lines: VecDeque<String>,
    /// Keep the whole trace (and trace every reconcile), not just its last `TRACE_KEEP` lines.
    pub verbose: bool,
}

impl Trace {
    fn push(&mut self, line: String) {
        if !self.verbose && self.lines.len() >= TRACE_KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

pub struct State {
    /// The operator processes alive now; calls of any other are refused.
    pub live: BTreeSet<u64>,
    /// The last process started.
    pub epoch: u64,
    /// Processes cut off from the apiserver (their Kubernetes calls fail).
    pub cut_off: BTreeSet<u64>,
    pub emu: EmuState,
    pub faults: bool,
    /// Fault decisions (cloud and Kubernetes), seeded.
    pub rng: StdRng,
    pub world: WorldConfig,
    pub store: BTreeMap<Key, Obj>,
    pub secrets: BTreeMap<Key, SecretData>,
    /// The store as it is now, with its claim index (what the invariants judge against).
    truth_writer: Writer<VpnPbrRoute>,
    pub truth: duplicates::ClaimCache,
    /// Each live process's watch.
    pub watches: BTreeMap<u64, Watch>,
    /// Wakes the watch pump when an event is queued.
    pub watch_wake: Arc<Notify>,
    next_rv: u64,
    next_uid: u64,
    /// Every client token seen in a status write, and the uid of the object that wrote it.
    pub token_owner: BTreeMap<String, String>,
    /// When each token was first written to a status (its create may go out from then on).
    pub token_written: BTreeMap<String, Instant>,
    /// Entries that exist in the cloud and the uid of the object that owns them: its create
    /// made them, or it adopted them with consent (README.md, "Behaviour worth knowing").
    pub owners: BTreeMap<EntryKey, String>,
    /// Every (object uid, entry) an object ever made or adopted.
    pub owned: BTreeSet<(String, EntryKey)>,
    /// Accepted (not replayed) creates per object uid.
    pub accepted_creates: BTreeMap<String, u32>,
    pub tombs: BTreeMap<String, Tomb>,
    pub violations: Vec<String>,
    pub trace: Trace,
    pub pairs: Vec<PairWatch>,
    /// Whether a broken invariant 3 fails the seed (else it is only traced and counted).
    pub strict_pairs: bool,
    pub stats: Stats,
    /// The account of each gateway.
    pub accounts: BTreeMap<String, u8>,
    /// The operator's own access key (its credentials chain), read when a process starts. At
    /// the end of the history a cleanup blocked by a missing Secret is unblocked as the README
    /// says: the operator is given credentials of the entry's account (and restarted).
    pub operator_key: String,
    /// What lists show of each gateway.
    pub listed: BTreeMap<String, Listed>,
    /// When the cloud first remembered each token, and how long it remembers one.
    pub token_seen: BTreeMap<String, u64>,
    pub token_ttl_ms: u64,
    /// The process whose call the cloud first accepted with each token.
    pub token_epoch: BTreeMap<String, u64>,
    /// No operator process runs before this (epoch milliseconds; with `expiry`, an outage).
    pub down_until_ms: u64,
    /// Tokens the cloud forgot, as the renamed token sent in their place.
    pub forgotten: BTreeMap<String, String>,
    /// Objects whose own entry cannot be proven theirs: the create's answer was never recorded
    /// and the cloud forgot its token before the replay (the one outcome the design allows).
    pub unprovable: BTreeMap<String, EntryKey>,
    /// Events per object uid (`Reason: note`).
    pub events: BTreeMap<String, Vec<String>>,
    /// Namespaces being deleted.
    pub terminating: BTreeSet<String>,
    /// Cloud requests on the wire now.
    pub in_transit: usize,
    /// When each process sent its first and its last request.
    pub first_send: BTreeMap<u64, Instant>,
    /// The first and last mutation each process sent (the fence's invariant).
    pub first_mutation: BTreeMap<u64, Instant>,
    pub last_mutation: BTreeMap<u64, Instant>,
    pub lease: Lease,
    /// The replica each process runs in.
    pub replica_of: BTreeMap<u64, usize>,
    /// Filler entries made so far (someone else's, for the pages).
    pub fillers: u32,
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
    pub fn new(seed: u64, emu: EmuState, rng: StdRng, world: WorldConfig, verbose: bool) -> Self {
        let (store, truth_writer) = reflector::store();
        let truth = duplicates::ClaimCache {
            store,
            index: duplicates::ClaimIndex::default(),
        };
        Self {
            state: Mutex::new(State {
                live: BTreeSet::new(),
                epoch: 0,
                cut_off: BTreeSet::new(),
                emu,
                faults: true,
                rng,
                world,
                store: BTreeMap::new(),
                secrets: BTreeMap::new(),
                truth_writer,
                truth,
                watches: BTreeMap::new(),
                watch_wake: Arc::new(Notify::new()),
                next_rv: 1,
                next_uid: 1,
                token_owner: BTreeMap::new(),
                token_written: BTreeMap::new(),
                owners: BTreeMap::new(),
                owned: BTreeSet::new(),
                accepted_creates: BTreeMap::new(),
                tombs: BTreeMap::new(),
                violations: Vec::new(),
                trace: Trace {
                    lines: VecDeque::new(),
                    verbose,
                },
                pairs: Vec::new(),
                strict_pairs: true,
                stats: Stats::default(),
                accounts: BTreeMap::new(),
                operator_key: OPERATOR_KEY.to_owned(),
                listed: BTreeMap::new(),
                token_seen: BTreeMap::new(),
                token_ttl_ms: u64::MAX,
                down_until_ms: 0,
                token_epoch: BTreeMap::new(),
                forgotten: BTreeMap::new(),
                unprovable: BTreeMap::new(),
                events: BTreeMap::new(),
                terminating: BTreeSet::new(),
                in_transit: 0,
                first_send: BTreeMap::new(),
                first_mutation: BTreeMap::new(),
                last_mutation: BTreeMap::new(),
                lease: Lease::default(),
                replica_of: BTreeMap::new(),
                fillers: 0,
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

/// One watch event into a process's cache and claim index (the index first, as `runner.rs`
/// feeds it), and the reconcile it triggers.
fn deliver(w: &mut Watch, stats: &mut Stats, event: &watcher::Event<VpnPbrRoute>) {
    w.cache.index.apply_watcher_event(event);
    w.writer.apply_watcher_event(event);
    let now = Instant::now();
    match event {
        watcher::Event::Apply(r) => {
            w.bars.entry(uid(r)).or_default().follow(r, now);
            w.lane.note(r);
        }
        watcher::Event::Delete(r) => {
            w.bars.entry(uid(r)).or_default().gone(now);
            w.lane.gone(r);
        }
        _ => {}
    }
    let key = |r: &VpnPbrRoute| (r.namespace().unwrap_or_default(), r.name_any());
    let triggers = match event {
        watcher::Event::Apply(r) => {
            let arrival = w.echoes.arrived(
                &format!("{}/{}", key(r).0, key(r).1),
                r.metadata.resource_version.as_deref(),
            );
            count(stats, arrival)
        }
        watcher::Event::Delete(r) => {
            w.echoes.forget(&format!("{}/{}", key(r).0, key(r).1));
            true
        }
        _ => false,
    };
    if let (true, watcher::Event::Apply(r) | watcher::Event::Delete(r)) = (triggers, event) {
        // A closed channel means the process is gone.
        let _ = w.triggers.send(key(r));
        if let watcher::Event::Apply(r) = event {
            w.lane.trigger(r);
        }
    }
}

/// Counts what an event was to the process's echoes; whether it triggers a reconcile.
fn count(stats: &mut Stats, arrival: Arrival) -> bool {
    match arrival {
        Arrival::Echo => stats.echoes_skipped += 1,
        Arrival::EchoAfterOlderDecision => stats.echoes_again += 1,
        Arrival::HeldBack => stats.echoes_held += 1,
        Arrival::NotOurs => {}
    }
    arrival.triggers()
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
        self.trace.push(format!("[{t:9.3}] {line}"));
    }

    pub fn violation(&mut self, t: f64, what: String) {
        self.trace_at(t, &format!("VIOLATION {what}"));
        self.violations.push(format!("t={t:.3}s {what}"));
    }

    /// Stores a new version of an object (bumping its resourceVersion); every process's
    /// watch delivers it (at once, or late with `stale`) and triggers a reconcile.
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
        self.publish_event(event);
    }

    /// The resourceVersion of the stored object.
    pub fn resource_version(&self, key: &Key) -> Option<String> {
        self.store
            .get(key)
            .and_then(|o| o.route.metadata.resource_version.clone())
    }

    /// Removes an object for good (its last finalizer went, or it never had one).
    pub fn remove(&mut self, key: &Key) {
        if let Some(obj) = self.store.remove(key) {
            self.hash.add_str(&format!("remove {}/{}", key.0, key.1));
            let now = Instant::now();
            self.publish_event(watcher::Event::Delete(obj.route.clone()));
            // A namespace being deleted is gone with its last object.
            if !self.store.keys().any(|k| k.0 == key.0) {
                self.terminating.remove(&key.0);
            }
            self.tombs.insert(
                uid(&obj.route),
                Tomb {
                    route: obj.route,
                    gone_at: now,
                    change_barred: obj.change_barred.unwrap_or(now),
                    delete_barred: obj.delete_barred.unwrap_or(now),
                },
            );
        }
    }

    /// A store event: into the truth at once, into each process's watch at once or, with
    /// `stale`, after a random delay (a watch is ordered: never before an earlier event).
    fn publish_event(&mut self, event: watcher::Event<VpnPbrRoute>) {
        self.truth.index.apply_watcher_event(&event);
        self.truth_writer.apply_watcher_event(&event);
        let now = Instant::now();
        let epochs: Vec<u64> = self.watches.keys().copied().collect();
        for epoch in epochs {
            let lag = if self.world.stale {
                // Mostly prompt, sometimes seconds behind (a slow or reconnecting watch).
                match self.rng.random_range(0..100) {
                    0..60 => Duration::from_millis(self.rng.random_range(0..30)),
                    60..90 => Duration::from_millis(self.rng.random_range(30..500)),
                    _ => Duration::from_millis(self.rng.random_range(500..4000)),
                }
            } else {
                Duration::ZERO
            };
            let cut = self.cut_off.contains(&epoch);
            let Some(w) = self.watches.get_mut(&epoch) else {
                continue;
            };
            if lag.is_zero() && w.queue.is_empty() && !cut {
                deliver(w, &mut self.stats, &event);
            } else {
                let after = w.queue.back().map_or(now, |(at, _)| *at);
                w.queue.push_back(((now + lag).max(after), event.clone()));
            }
        }
        if self.world.stale {
            self.watch_wake.notify_one();
        }
    }

    /// Delivers the watch events that are due (not to processes cut off from the apiserver);
    /// returns when the next one is due.
    pub fn deliver_due(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for (epoch, w) in &mut self.watches {
            if self.cut_off.contains(epoch) {
                continue;
            }
            while let Some((at, _)) = w.queue.front() {
                if *at > now {
                    next = Some(next.map_or(*at, |n| n.min(*at)));
                    break;
                }
                if let Some((_, event)) = w.queue.pop_front() {
                    deliver(w, &mut self.stats, &event);
                }
            }
        }
        next
    }

    /// A new process's watch: it lists the store (its cache starts fresh) and triggers every
    /// object once.
    pub fn open_watch(
        &mut self,
        epoch: u64,
        triggers: UnboundedSender<Key>,
        echoes: Arc<Echoes>,
        lane: Arc<PromptLane>,
    ) {
        let (store, writer) = reflector::store();
        let mut w = Watch {
            writer,
            cache: duplicates::ClaimCache {
                store,
                index: duplicates::ClaimIndex::default(),
            },
            queue: VecDeque::new(),
            triggers,
            echoes,
            lane,
            bars: BTreeMap::new(),
        };
        let mut stats = std::mem::take(&mut self.stats);
        self.relist_into(&mut w, &mut stats);
        self.stats = stats;
        self.watches.insert(epoch, w);
    }

    /// The watch of `epoch` starts again: whatever it had not delivered is replaced by a
    /// fresh list of the store (objects deleted meanwhile leave the cache), and every object
    /// is triggered.
    pub fn relist(&mut self, epoch: u64) {
        if let Some(mut w) = self.watches.remove(&epoch) {
            w.queue.clear();
            let mut stats = std::mem::take(&mut self.stats);
            self.relist_into(&mut w, &mut stats);
            self.stats = stats;
            self.watches.insert(epoch, w);
            self.stats.relists += 1;
        }
    }

    fn relist_into(&self, w: &mut Watch, stats: &mut Stats) {
        let mut events = vec![watcher::Event::Init];
        events.extend(
            self.store
                .values()
                .map(|o| watcher::Event::InitApply(o.route.clone())),
        );
        events.push(watcher::Event::InitDone);
        let now = Instant::now();
        let listed: BTreeSet<String> = self.store.values().map(|o| uid(&o.route)).collect();
        for (u, b) in &mut w.bars {
            if !listed.contains(u) {
                b.gone(now);
            }
        }
        for e in &events {
            w.cache.index.apply_watcher_event(e);
            w.writer.apply_watcher_event(e);
            if let watcher::Event::InitApply(r) = e {
                w.bars.entry(uid(r)).or_default().follow(r, now);
                w.lane.note(r);
            }
        }
        let keys: HashSet<String> = self
            .store
            .keys()
            .map(|k| format!("{}/{}", k.0, k.1))
            .collect();
        w.lane.relisted(None, &keys);
        for (k, o) in &self.store {
            let version = o.route.metadata.resource_version.as_deref();
            let arrival = w.echoes.arrived(&format!("{}/{}", k.0, k.1), version);
            if count(stats, arrival) {
                // A closed channel means the process is gone.
                let _ = w.triggers.send(k.clone());
                w.lane.trigger(&o.route);
            }
        }
    }

    /// Since when process `epoch` has seen the object `uid_` barred (its watch's view); the
    /// store's view for a process without a watch.
    pub fn bars_seen(&self, epoch: u64, uid_: &str) -> Bars {
        if let Some(b) = self.watches.get(&epoch).and_then(|w| w.bars.get(uid_)) {
            return *b;
        }
        if let Some(o) = self.object_by_uid(uid_) {
            return Bars {
                change: o.change_barred,
                delete: o.delete_barred,
            };
        }
        self.tombs.get(uid_).map_or_else(Bars::default, |t| Bars {
            change: Some(t.change_barred),
            delete: Some(t.delete_barred),
        })
    }

    /// The copy of an object the process `epoch` has in its watch cache.
    pub fn cached(&self, epoch: u64, key: &Key) -> Option<VpnPbrRoute> {
        let w = self.watches.get(&epoch)?;
        let at = ObjectRef::new(&key.1).within(&key.0);
        w.cache.store.get(&at).map(|r| (*r).clone())
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
        // A terminating namespace takes no new objects.
        if self.store.contains_key(&key) || self.terminating.contains(&key.0) {
            return false;
        }
        let mut route = VpnPbrRoute::new(&key.1, spec);
        route.metadata.namespace = Some(key.0.clone());
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

    /// An older object claiming the same entry, as the operator computes it, on the store as
    /// it is now (what the invariants judge).
    pub fn older_claim(&self, route: &VpnPbrRoute) -> Option<String> {
        duplicates::older_claim_in(route, std::slice::from_ref(&self.truth))
    }

    /// The same, on the watch cache of process `epoch`.
    pub fn older_claim_seen(&self, epoch: u64, route: &VpnPbrRoute) -> Option<String> {
        let w = self.watches.get(&epoch)?;
        duplicates::older_claim_in(route, std::slice::from_ref(&w.cache))
    }

    /// An older object that wants the other `publishVpc` for the same destination and next
    /// hop, on the watch cache of process `epoch`.
    pub fn publish_conflict_seen(&self, epoch: u64, route: &VpnPbrRoute) -> Option<String> {
        let w = self.watches.get(&epoch)?;
        duplicates::older_publish_conflict_in(route, std::slice::from_ref(&w.cache))
    }

    /// Our other objects with the same gateway, destination and next hop, on the watch cache
    /// of process `epoch`.
    pub fn publish_sharers_seen(&self, epoch: u64, route: &VpnPbrRoute) -> Vec<Arc<VpnPbrRoute>> {
        self.watches.get(&epoch).map_or_else(Vec::new, |w| {
            duplicates::publish_sharers_in(route, std::slice::from_ref(&w.cache))
        })
    }

    pub fn object_by_uid(&self, uid_: &str) -> Option<&Obj> {
        self.store.values().find(|o| uid(&o.route) == uid_)
    }

    /// Entries of the cloud right now, as the service knows them (accepted changes included,
    /// applied or not).
    pub fn entries(&self) -> Vec<(EntryKey, PbrEntry)> {
        self.emu
            .world
            .gateways
            .values()
            .flat_map(|g| {
                effective(g)
                    .iter()
                    .map(|e| {
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
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// An entry as the service knows it (a change it accepted counts, applied or not).
    pub fn known_entry(&self, key: &EntryKey) -> Option<PbrEntry> {
        let g = self.emu.world.gateways.get(&key.gw)?;
        effective(g)
            .iter()
            .find(|e| {
                e.route_source == key.src && e.route_dest == key.dest && e.next_hop == key.hop
            })
            .cloned()
    }

    /// An entry as the gateway has applied it (what traffic and, once they catch up, lists see).
    pub fn entry(&self, key: &EntryKey) -> Option<&PbrEntry> {
        self.emu.world.gateways.get(&key.gw).and_then(|g| {
            g.entries.iter().find(|e| {
                e.route_source == key.src && e.route_dest == key.dest && e.next_hop == key.hop
            })
        })
    }

    /// Lists follow the gateways: a state they have not shown yet shows after a random delay
    /// (`lag`), or at once.
    pub fn follow_lists(&mut self, now_ms: u64) {
        self.emu.world.settle(now_ms);
        let lag = self.world.lag;
        let ids: Vec<String> = self.emu.world.gateways.keys().cloned().collect();
        self.listed.retain(|gw, _| ids.contains(gw));
        for gw in ids {
            let Some(g) = self.emu.world.gateways.get(&gw) else {
                continue;
            };
            let l = self.listed.entry(gw.clone()).or_default();
            if !l.is_new(&g.entries) {
                l.advance(now_ms);
                continue;
            }
            let lag_ms = if lag {
                match self.rng.random_range(0..100) {
                    0..50 => self.rng.random_range(0..300),
                    50..85 => self.rng.random_range(300..1500),
                    _ => self.rng.random_range(1500..5000),
                }
            } else {
                0
            };
            // Borrowed again: drawing the delay needed the generator.
            if let (Some(g), Some(l)) = (self.emu.world.gateways.get(&gw), self.listed.get_mut(&gw))
            {
                l.follow(&g.entries, now_ms, lag_ms);
            }
        }
    }

    /// Whether the key `access_key_id` sees the gateway `gw` (its account's, or, before the
    /// accounts feature, any).
    pub fn sees(&self, access_key_id: &str, gw: &str) -> bool {
        if !self.world.accounts {
            return true;
        }
        let Some(owner) = self.accounts.get(gw) else {
            // A gateway nobody has: every key is told it does not exist.
            return true;
        };
        account_of_key(access_key_id) == Some(*owner)
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
                effective(g)
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
