//! One seed: build the world, play the history against a running operator (crashing it where
//! the history says), check the invariants after every step, then stop the faults and demand
//! convergence within a bound, then delete everything and check what is left in the cloud.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;
use vpc_emulator::Config;
use vpc_emulator::ops::{self, EmuState};
use vpc_emulator::params::Params;
use vpc_emulator::world::World;
use vpn_pbr_operator::api::v1alpha1::{
    ADOPT_ANNOTATION, Condition, ConditionStatus, DEFAULT_PRIORITY, DeletionPolicy,
    ManagementPolicy, VpnPbrRoute,
};
use vpn_pbr_operator::rfc3339_millis;

use super::cloud::{FILLER_SOURCE, filler};
use super::config::WorldConfig;
use super::history::{self, Console, History, Op};
use super::operator::{Cluster, RESYNC};
use super::world::{
    EPOCH_MS, EntryKey, PairWatch, REGION, Sim, State, Stats, account_id, account_of_key, consents,
    deleting, key_of, paused, secret_data, uid, valid,
};

pub struct Outcome {
    pub stats: Stats,
    pub failure: Option<String>,
    /// The whole trace, when it was kept (`verbose`).
    pub trace: Option<String>,
    /// A one-line digest of the end state, to compare runs of one seed.
    pub digest: String,
    /// The replay hash of the whole run (`world::TraceHash`).
    pub hash: u64,
}

/// The longest per-object backoff a failure before the faults stopped can still impose: the
/// throttled pace's cap plus its jitter (`crates/alicloud-vpc-client/src/policy.rs`).
const MAX_BACKOFF: Duration = Duration::from_secs(144);
/// The same for a route whose gateway was deleted (the very slow pace of
/// `InvalidVpnGatewayInstanceId.NotFound`).
const MAX_BACKOFF_GATEWAY_GONE: Duration = Duration::from_secs(720);

fn config(h: &History, world: WorldConfig) -> Config {
    let visibility = if world.lag { "on_active" } else { "immediate" };
    let mut yaml = format!(
        "regions: [cn-hangzhou]\nsettings: {{shuffle_seed: {}, visibility: {visibility}}}\nvpn_gateways:\n",
        h.seed
    );
    for (i, g) in h.gateways.iter().enumerate() {
        // One VPC per gateway: publishing never conflicts across gateways. Room for someone
        // else's entries besides the routes'.
        yaml.push_str(&format!(
            "  - {{id: {}, region: {REGION}, vpc_id: vpc-g{i}, priority_support: {}, update_duration_ms: {}, pbr_quota: 250}}\n",
            g.id, g.priority, g.update_ms
        ));
    }
    yaml.push_str("vpn_connections:\n");
    for (i, g) in h.gateways.iter().enumerate() {
        for m in 0..2 {
            yaml.push_str(&format!(
                "  - {{id: {}, gateway_id: {}}}\n",
                history::hop(i, m),
                g.id
            ));
        }
    }
    Config::parse(&yaml, "simulation").expect("the simulation's emulator config")
}

pub fn run_seed(seed: u64, verbose: bool, world: WorldConfig) -> Outcome {
    let history = history::generate(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(drive(seed, &history, verbose, world))
}

fn t(sim: &Sim) -> f64 {
    sim.elapsed().as_secs_f64()
}

fn cond<'a>(r: &'a VpnPbrRoute, type_: &str) -> Option<&'a Condition> {
    r.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

/// Ready=True at the object's current generation.
fn ready_now(r: &VpnPbrRoute) -> bool {
    cond(r, "Ready").is_some_and(|c| {
        c.status == ConditionStatus::True && c.observed_generation == r.metadata.generation
    })
}

async fn drive(seed: u64, h: &History, verbose: bool, world: WorldConfig) -> Outcome {
    let cfg = config(h, world);
    let emu = EmuState {
        world: World::from_config(&cfg, EPOCH_MS),
        tokens: Default::default(),
    };
    let sim = Arc::new(Sim::new(
        seed,
        emu,
        StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED),
        world,
        verbose,
    ));
    {
        let mut st = sim.lock();
        // Invariant 3 can be reduced to a count (`SIM_INVARIANT3=count`) while a known break
        // of it is being fixed, so the other invariants still run; it is strict by default.
        st.strict_pairs = !std::env::var("SIM_INVARIANT3").is_ok_and(|v| v == "count");
        for (i, g) in h.gateways.iter().enumerate() {
            st.accounts.insert(g.id.clone(), g.account);
            if world.pages {
                let hop = history::hop(i, 0);
                for _ in 0..g.fillers {
                    st.fillers += 1;
                    let e = filler(st.fillers, hop.clone(), EPOCH_MS);
                    if let Some(gw) = st.emu.world.gateways.get_mut(&g.id) {
                        gw.entries.push(e);
                    }
                }
            }
        }
        if world.expiry {
            st.token_ttl_ms = h.token_ttl_ms;
        }
        st.follow_lists(EPOCH_MS);
    }
    let pump = tokio::spawn(pump_watches(sim.clone()));
    let cluster = Cluster::start(&sim);
    let fail = |sim: &Sim, what: String| -> Option<String> {
        let st = sim.lock();
        let trace: Vec<&str> = st.trace.lines.iter().map(String::as_str).collect();
        Some(format!(
            "{what}\nviolations:\n  {}\n--- the last {} lines of the trace ---\n{}",
            st.violations.join("\n  "),
            trace.len(),
            trace.join("\n")
        ))
    };
    let mut failure = None;
    let mut outages = h.outages.iter();
    for (i, step) in h.steps.iter().enumerate() {
        tokio::time::sleep(step.wait).await;
        sim.trace(format!("STEP {i}: {}", step.op));
        match &step.op {
            Op::Crash => {
                if world.late {
                    // A crash while a request is on the wire (waiting a little for one).
                    for _ in 0..100 {
                        if sim.lock().in_transit > 0 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                let down = outages.next().copied().unwrap_or_default();
                cluster.crash(if world.expiry { down } else { Duration::ZERO });
                // Let the aborted tasks go before the new process starts.
                tokio::task::yield_now().await;
            }
            Op::Partition { secs } if world.leader => cluster.partition(*secs),
            _ => apply(&sim, &step.op),
        }
        end_pair_watches(&sim);
        if !sim.lock().violations.is_empty() {
            failure = fail(&sim, format!("invariant broken at step {i} ({})", step.op));
            break;
        }
    }
    if failure.is_none() {
        cluster.heal_all();
        failure = finish(&sim, &cluster, h)
            .await
            .and_then(|what| fail(&sim, what));
    }
    cluster.stop();
    pump.abort();
    let st = sim.lock();
    let all = st.entries();
    let theirs = all
        .iter()
        .filter(|(k, _)| k.src.starts_with(FILLER_SOURCE))
        .count();
    let mut digest: Vec<String> = all
        .iter()
        .filter(|(k, _)| !k.src.starts_with(FILLER_SOURCE))
        .map(|(k, e)| format!("{k}:{}:{}:{}", e.weight, e.priority, e.published))
        .collect();
    digest.sort();
    digest.push(format!("+{theirs} of someone else's"));
    Outcome {
        stats: st.stats.clone(),
        failure,
        trace: verbose.then(|| {
            st.trace
                .lines
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        }),
        digest: format!(
            "{} entries [{}] failed={}",
            digest.len(),
            digest.join(" "),
            st.violations.len()
        ),
        hash: st.hash.0,
    }
}

/// Faults stop; the world must converge; then everything is deleted and must go.
async fn finish(sim: &Arc<Sim>, cluster: &Cluster, h: &History) -> Option<String> {
    {
        let tt = t(sim);
        let mut st = sim.lock();
        st.faults = false;
        st.trace_at(tt, "FAULTS STOP; pair members unpaused");
        // A paused member of a pair can make its partner's swap impossible; the pair's
        // members are let go, the singles stay as they are (and must report it).
        let keys: Vec<_> = st
            .store
            .iter()
            .filter(|(k, o)| paused(&o.route) && k.1.contains("-p"))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            st.set_paused(&k, false);
        }
    }
    let bound = converge_bound(sim, h);
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        end_pair_watches(sim);
        if !sim.lock().violations.is_empty() {
            return Some("invariant broken while converging".to_owned());
        }
        let unmet = unmet(&sim.lock());
        if unmet.is_empty() {
            let mut st = sim.lock();
            st.stats.converge_secs = started.elapsed().as_secs_f64();
            st.stats.converge_bound_secs = bound.as_secs_f64();
            let tt = t(sim);
            st.trace_at(tt, "CONVERGED");
            break;
        }
        if started.elapsed() > bound {
            return Some(format!(
                "invariant 4: no convergence within {:.0}s of virtual time after the faults \
                 stopped:\n  {}",
                bound.as_secs_f64(),
                unmet.join("\n  ")
            ));
        }
    }
    if let Some(p) = sim.lock().pairs.first() {
        return Some(format!("pair watch {} never ended", p.label));
    }
    // Everything goes: unpaused, deleted (a route's Secret just before it).
    let names: Vec<String> = sim
        .lock()
        .store
        .keys()
        .map(|k| format!("{}/{}", k.0, k.1))
        .collect();
    for name in &names {
        let mut st = sim.lock();
        st.set_paused(&key_of(name), false);
    }
    for name in &names {
        apply(sim, &Op::Delete { name: name.clone() });
    }
    let started = Instant::now();
    let mut unblocked = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !sim.lock().violations.is_empty() {
            return Some("invariant broken while deleting everything".to_owned());
        }
        let st = sim.lock();
        let left: Vec<String> = st
            .store
            .keys()
            .map(|k| format!("{}/{}", k.0, k.1))
            .collect();
        if left.is_empty() {
            break;
        }
        let blocked: Vec<&VpnPbrRoute> = st
            .store
            .values()
            .map(|o| &o.route)
            .filter(|r| cleanup_blocked(&st, r))
            .collect();
        if !unblocked && !blocked.is_empty() && blocked.len() == left.len() {
            // What is left waits for someone else, and says so (within the bound); then
            // someone gives the operator credentials of that account, and it must go.
            let wrong: Vec<String> = blocked
                .iter()
                .filter_map(|r| is_cond(r, "Ready", ConditionStatus::False, "CleanupBlocked").err())
                .collect();
            if !wrong.is_empty() {
                if started.elapsed() <= bound {
                    continue;
                }
                return Some(format!(
                    "invariant 4: a deletion only someone else can unblock does not say so \
                     within {:.0}s:\n  {}",
                    bound.as_secs_f64(),
                    wrong.join("\n  ")
                ));
            }
            // The way out the README gives: the operator is given credentials of the entries'
            // account (its own chain, so it restarts to take them).
            let account = blocked
                .iter()
                .find_map(|r| st.accounts.get(&r.spec.vpn_gateway_id).copied());
            drop(st);
            let tt = t(sim);
            if let Some(account) = account {
                let mut st = sim.lock();
                st.operator_key = format!("sim-operator-{account}");
                st.trace_at(
                    tt,
                    &format!("the operator is given credentials of account {account} (cleanups unblocked)"),
                );
            }
            cluster.crash(Duration::ZERO);
            unblocked = true;
            continue;
        }
        if started.elapsed() > bound * if unblocked { 2 } else { 1 } {
            return Some(format!(
                "invariant 4: deleted objects not gone within {:.0}s: {left:?}",
                bound.as_secs_f64()
            ));
        }
    }
    // Invariant 2: every entry left is accounted for. Someone else's entries stay; an entry an
    // object owned (made, or adopted with consent) stays only if that object said `Orphan`
    // (or only observed), or in the one outcome the design allows: the object could not prove
    // the entry its own (its token forgotten) and said why.
    let mut st = sim.lock();
    st.prune_owners();
    let st = st;
    let mut left = Vec::new();
    for (entry, _) in st.entries() {
        if entry.src.starts_with(FILLER_SOURCE) {
            continue;
        }
        let Some(owner) = st.owners.get(&entry) else {
            continue;
        };
        let Some(tomb) = st.tombs.get(owner) else {
            left.push(format!("{entry} owned by {owner}, which is nowhere"));
            continue;
        };
        let s = &tomb.route.spec;
        if s.deletion_policy != DeletionPolicy::Delete
            || s.management_policy != ManagementPolicy::Full
        {
            continue;
        }
        if st.unprovable.get(owner) == Some(&entry) {
            if !said_why(&st, owner) {
                left.push(format!(
                    "{entry} of {} ({owner}), which could not prove it its own (token \
                     forgotten) and left it without saying why",
                    tomb.route.name_any()
                ));
            }
            continue;
        }
        left.push(format!(
            "{entry} made or adopted by {} ({owner}, deletionPolicy Delete)",
            tomb.route.name_any()
        ));
    }
    if !left.is_empty() {
        return Some(format!(
            "invariant 2: cloud entries left behind by deleted `Delete` objects that owned \
             them:\n  {}",
            left.join("\n  ")
        ));
    }
    None
}

/// How long convergence may take once the faults stop: the longest backoff still running, a
/// resync, then every live route's changes one gateway update time apart (a create, a
/// modification and a publish at most, with room for a busy answer each), plus slack.
fn converge_bound(sim: &Sim, h: &History) -> Duration {
    let world = sim.lock().world;
    // A key of the wrong account is told the gateway does not exist: the same slow pace.
    let backoff = if world.accounts
        || h.steps
            .iter()
            .any(|s| matches!(s.op, Op::DeleteGateway { .. }))
    {
        MAX_BACKOFF_GATEWAY_GONE
    } else {
        MAX_BACKOFF
    };
    let st = sim.lock();
    let work = h
        .gateways
        .iter()
        .map(|g| {
            let n = st
                .store
                .values()
                .filter(|o| o.route.spec.vpn_gateway_id == g.id)
                .count();
            // Lists that lag the gateway confirm each change later.
            let lag = if world.lag { 5000 } else { 0 };
            let per = Duration::from_millis(g.update_ms + 500 + lag);
            per * u32::try_from(n * 6).unwrap_or(u32::MAX)
        })
        .max()
        .unwrap_or_default();
    // A hand-over waits for the Lease to expire; an outage, for its end.
    let lease = Duration::from_secs(if world.leader { 30 } else { 0 });
    let outage = Duration::from_millis(st.down_until_ms.saturating_sub(sim.now_ms()));
    backoff + RESYNC + work + lease + outage + Duration::from_secs(60)
}

/// What is not yet as it must end: one line per object.
fn unmet(st: &State) -> Vec<String> {
    let mut out = Vec::new();
    for (k, obj) in &st.store {
        let r = &obj.route;
        let name = &k.1;
        if deleting(r) {
            if paused(r) {
                continue;
            }
            if cleanup_blocked(st, r) {
                // Only someone else can unblock it (its Secret is gone and the operator's
                // key does not see the gateway): it says so, and stays.
                check(
                    &mut out,
                    is_cond(r, "Ready", ConditionStatus::False, "CleanupBlocked"),
                );
            } else {
                out.push(format!("{name}: deleted but still there"));
            }
            continue;
        }
        let gen_ = r.metadata.generation;
        let st_ = r.status.as_ref();
        if st_.and_then(|s| s.observed_generation) != gen_ {
            out.push(format!(
                "{name}: observedGeneration {:?} != {gen_:?}",
                st_.and_then(|s| s.observed_generation)
            ));
            continue;
        }
        let is = |type_: &str, want: ConditionStatus, reason: &str| is_cond(r, type_, want, reason);
        if !valid(r) {
            check(&mut out, is("Ready", ConditionStatus::False, "InvalidSpec"));
            continue;
        }
        if paused(r) {
            check(&mut out, is("Synced", ConditionStatus::False, "Paused"));
            continue;
        }
        if st.older_claim(r).is_some() {
            check(
                &mut out,
                is("Ready", ConditionStatus::False, "DuplicateRoute"),
            );
            continue;
        }
        if (partner_held_by_blocked_cleanup(st, r) || partner_unprovable(st, r))
            && is("Ready", ConditionStatus::False, "VpnRouteEntry.BackupRoute").is_ok()
        {
            // Its pair's other entry is held by a deletion only someone else can unblock (its
            // account's credentials are gone), or is one its object could not prove its own
            // (and so left as it is), at a weight the cloud will not pair with this one: the
            // cloud's refusal, reported, is the outcome until someone acts.
            continue;
        }
        let visible = key_used(st, r).is_some_and(|k| st.sees(&k, &r.spec.vpn_gateway_id));
        let gw = st
            .emu
            .world
            .gateways
            .get(&r.spec.vpn_gateway_id)
            .filter(|_| visible);
        let Some(gw) = gw else {
            // Gone, or another account's (for this key it does not exist).
            check(
                &mut out,
                is(
                    "Ready",
                    ConditionStatus::False,
                    "InvalidVpnGatewayInstanceId.NotFound",
                ),
            );
            continue;
        };
        let s = &r.spec;
        let entry = st.entry(&EntryKey::of(s));
        let status = st_.cloned().unwrap_or_default();
        // `createTime` is the entry's own; an object that only observes may leave it out
        // (it is part of what makes an entry the object's), but never report another.
        let observed_matches = |e: &vpc_emulator::world::PbrEntry, time_optional: bool| {
            let time = rfc3339_millis(i64::try_from(e.create_time_ms).unwrap_or_default());
            status.observed.as_ref().is_some_and(|o| {
                i64::from(o.weight) == i64::from(e.weight)
                    && i64::from(o.priority) == i64::from(e.priority)
                    && o.published == e.published
            }) && status.state.as_deref() == Some(e.state())
                && (status.create_time == time
                    || (time_optional
                        // Observing never moves the record of the entry the object made to
                        // another: an entry made again since (its own create whose answer was
                        // lost, or someone else's) leaves the older record in place.
                        && status
                            .create_time
                            .as_ref()
                            .is_none_or(|t| time.as_ref().is_some_and(|w| t < w))))
        };
        let priority_differs = |e: &vpc_emulator::world::PbrEntry| {
            i64::from(e.priority) != i64::from(s.priority)
                && (gw.priority_support || s.priority != DEFAULT_PRIORITY)
        };
        let unprovable = st.unprovable.get(&uid(r)) == Some(&EntryKey::of(s));
        match (s.management_policy, entry) {
            (ManagementPolicy::Full, Some(_)) if unprovable && !consents(r) => {
                // The one outcome the design allows: its own entry, which it can no longer
                // prove its own (the create's answer was not recorded when the cloud refused
                // the replay of its forgotten token): it refuses the entry and says why.
                check(
                    &mut out,
                    is("Ready", ConditionStatus::False, "AlreadyExists"),
                );
                if !says_why_unprovable(st, r) {
                    out.push(format!(
                        "{name}: refuses its own entry, whose token the cloud forgot, without \
                         saying so (its message does not mention the token)"
                    ));
                }
            }
            (ManagementPolicy::ObserveOnly, None) => {
                check(&mut out, is("Ready", ConditionStatus::False, "NotFound"));
                if status.observed.is_some() {
                    out.push(format!("{name}: reports an entry the cloud does not have"));
                }
            }
            (ManagementPolicy::ObserveOnly, Some(e)) => {
                check(&mut out, is("Ready", ConditionStatus::True, "Available"));
                let drift = i64::from(e.weight) != i64::from(s.weight)
                    || e.published != s.publish_vpc
                    || priority_differs(e);
                if drift {
                    check(&mut out, is("Synced", ConditionStatus::False, "Drift"));
                } else {
                    check(&mut out, is("Synced", ConditionStatus::True, "Synced"));
                }
                if !observed_matches(e, true) {
                    out.push(format!(
                        "{name}: status {:?} does not match the cloud entry {e:?}",
                        status.observed
                    ));
                }
            }
            (ManagementPolicy::Full, None) => out.push(format!("{name}: no cloud entry")),
            (ManagementPolicy::Full, Some(_))
                if st.owners.get(&EntryKey::of(s)) != Some(&uid(r)) && !consents(r) =>
            {
                // An entry it neither made nor adopted, and no consent: refused, untouched.
                check(
                    &mut out,
                    is("Ready", ConditionStatus::False, "AlreadyExists"),
                );
            }
            (ManagementPolicy::Full, Some(e)) => {
                if st.owners.get(&EntryKey::of(s)) != Some(&uid(r)) {
                    out.push(format!("{name}: has not adopted the entry (consent given)"));
                }
                if i64::from(e.weight) != i64::from(s.weight)
                    || e.published != s.publish_vpc
                    || priority_differs(e)
                {
                    out.push(format!("{name}: cloud entry {e:?} differs from the spec"));
                }
                check(&mut out, is("Ready", ConditionStatus::True, "Available"));
                check(&mut out, is("Synced", ConditionStatus::True, "Synced"));
                if !observed_matches(e, false) {
                    out.push(format!(
                        "{name}: status {:?} does not match the cloud entry {e:?}",
                        status.observed
                    ));
                }
                if status.client_token.is_some() {
                    out.push(format!("{name}: still holds a client token"));
                }
                // The account that holds the entry, as STS names it: a cleanup concludes
                // "gone" only from that account's answers.
                let holder = if st.world.accounts {
                    st.accounts.get(&s.vpn_gateway_id).map(|a| account_id(*a))
                } else {
                    Some(vpc_emulator::config::DEFAULT_ACCOUNT_ID.to_owned())
                };
                if holder.is_some() && status.account_id != holder {
                    out.push(format!(
                        "{name}: status.accountId {:?}, the entry is in {holder:?}",
                        status.account_id
                    ));
                }
            }
        }
    }
    out
}

/// Whether the condition `type_` of `r` is `want` for `reason` at the current generation.
fn is_cond(
    r: &VpnPbrRoute,
    type_: &str,
    want: ConditionStatus,
    reason: &str,
) -> Result<(), String> {
    let gen_ = r.metadata.generation;
    match cond(r, type_) {
        Some(c) if c.status == want && c.reason == reason && c.observed_generation == gen_ => {
            Ok(())
        }
        other => Err(format!(
            "{}: {type_} is {:?}, want {want:?}/{reason}",
            r.name_any(),
            other.map(|c| (c.status, c.reason.clone(), c.observed_generation))
        )),
    }
}

/// The access key a route's calls are signed with: its Secret's, or the operator's; `None`
/// when it names a Secret that is gone (a live route then fails on the Secret).
fn key_used(st: &State, r: &VpnPbrRoute) -> Option<String> {
    let Some(s) = &r.spec.credentials_ref else {
        return Some(st.operator_key.clone());
    };
    let ns = r.metadata.namespace.clone().unwrap_or_default();
    let data = st.secrets.get(&(ns, s.name.clone()))?;
    data.get("accessKeyId")
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A deleted route whose cleanup only someone else can unblock: its Secret is gone, and the
/// operator's own key does not see its gateway.
fn cleanup_blocked(st: &State, r: &VpnPbrRoute) -> bool {
    // The cleanup has the route's key, or the operator's when its Secret is gone: if that key
    // is another account's than the gateway's, no answer it gets (not even NotFound for a
    // gateway that is gone) says anything about the entry.
    let key = key_used(st, r).unwrap_or_else(|| st.operator_key.clone());
    st.world.accounts && st.accounts.get(&r.spec.vpn_gateway_id).copied() != account_of_key(&key)
}

/// Whether an entry of `r`'s pair (same gateway, source and destination, another next hop) is
/// held by a deleted object whose cleanup is blocked.
fn partner_held_by_blocked_cleanup(st: &State, r: &VpnPbrRoute) -> bool {
    st.store.values().map(|o| &o.route).any(|o| {
        deleting(o)
            && o.spec.vpn_gateway_id == r.spec.vpn_gateway_id
            && o.spec.route_source == r.spec.route_source
            && o.spec.route_dest == r.spec.route_dest
            && o.spec.next_hop != r.spec.next_hop
            && cleanup_blocked(st, o)
    })
}

/// Whether an entry of `r`'s pair (same gateway, source and destination, another next hop)
/// is one its object could not prove its own (the one outcome of a forgotten token).
fn partner_unprovable(st: &State, r: &VpnPbrRoute) -> bool {
    let mine = EntryKey::of(&r.spec);
    st.unprovable.values().any(|k| {
        k.gw == mine.gw
            && k.src == mine.src
            && k.dest == mine.dest
            && k.hop != mine.hop
            && st.entry(k).is_some()
    })
}

/// Whether an object that cannot prove its own entry says why: its status or an event names
/// the forgotten token.
fn says_why_unprovable(st: &State, r: &VpnPbrRoute) -> bool {
    let in_status = r.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.message.to_lowercase().contains("token"))
    });
    in_status || said_why(st, &uid(r))
}

fn said_why(st: &State, uid_: &str) -> bool {
    st.events
        .get(uid_)
        .is_some_and(|v| v.iter().any(|e| e.to_lowercase().contains("token")))
}

fn check(out: &mut Vec<String>, r: Result<(), String>) {
    if let Err(e) = r {
        out.push(e);
    }
}

/// A swap is over once both members are Ready at their new generation.
fn end_pair_watches(sim: &Sim) {
    let tt = t(sim);
    let mut st = sim.lock();
    let done: Vec<(String, &str)> = st
        .pairs
        .iter()
        .filter_map(|p| {
            if p.members
                .iter()
                .all(|m| st.object_by_uid(m).is_some_and(|o| ready_now(&o.route)))
            {
                Some((p.label.clone(), "both Ready"))
            } else if p.members.iter().any(|m| st.unprovable.contains_key(m)) {
                // The one outcome a forgotten token allows (invariant 2): that member leaves
                // its entry as it is and never becomes Ready, so the swap never completes.
                Some((p.label.clone(), "a member cannot prove its entry"))
            } else {
                None
            }
        })
        .collect();
    for (l, why) in done {
        st.pairs.retain(|p| p.label != l);
        st.trace_at(tt, &format!("pair watch {l} ended: {why}"));
    }
}

/// Plays one step of the history on the world.
fn apply(sim: &Sim, op: &Op) {
    let tt = t(sim);
    let now_ms = sim.now_ms();
    let mut st = sim.lock();
    let note = |st: &mut State, what: String| st.trace_at(tt, &what);
    match op {
        Op::Create(c) => {
            let k = key_of(&c.name);
            if st.terminating.contains(&k.0) {
                return note(
                    &mut st,
                    format!("  namespace {} is terminating: refused", k.0),
                );
            }
            if let (Some(s), Some(account)) = (&c.spec.credentials_ref, c.secret) {
                st.secrets
                    .insert((k.0.clone(), s.name.clone()), secret_data(account));
            }
            if !st.create(now_ms, &c.name, c.spec.clone(), c.paused, c.adopt) {
                note(
                    &mut st,
                    format!("  {} still exists: create refused", c.name),
                );
            }
        }
        Op::Edit { name, edit } => {
            let k = key_of(name);
            let Some(obj) = st.store.get(&k) else {
                return note(&mut st, format!("  {name} does not exist"));
            };
            if let history::Edit::Dest(_) = edit {
                // The CEL rule of the CRD: identity is fixed once the route exists in the cloud.
                let fixed = obj
                    .route
                    .status
                    .as_ref()
                    .is_some_and(|s| s.create_time.is_some() || s.client_token.is_some());
                if fixed {
                    return note(
                        &mut st,
                        format!("  {name}: routeDest is immutable now: refused"),
                    );
                }
            }
            let u = uid(&obj.route);
            st.unwatch_member(&u, "member edited", tt);
            st.edit_spec(&k, |s| history::apply_edit(s, edit));
        }
        Op::Swap { a, b } => {
            let (ka, kb) = (key_of(a), key_of(b));
            let members: Vec<VpnPbrRoute> = [&ka, &kb]
                .iter()
                .filter_map(|k| st.store.get(*k).map(|o| o.route.clone()))
                .collect();
            // Watched only when both members are Ready, unpaused and in the cloud as specified.
            let watch = members.len() == 2
                && members.iter().all(|r| {
                    ready_now(r)
                        && !paused(r)
                        && !deleting(r)
                        && st
                            .known_entry(&EntryKey::of(&r.spec))
                            .is_some_and(|e| i64::from(e.weight) == i64::from(r.spec.weight))
                });
            for r in &members {
                st.unwatch_member(&uid(r), "member edited", tt);
            }
            for k in [&ka, &kb] {
                st.edit_spec(k, |s| s.weight = 100 - s.weight);
            }
            if watch {
                let s = &members[0].spec;
                st.stats.pair_swaps_watched += 1;
                st.pairs.push(PairWatch {
                    label: format!("{a}+{b}@{tt:.3}"),
                    gw: s.vpn_gateway_id.clone(),
                    src: s.route_source.clone(),
                    dest: s.route_dest.clone(),
                    members: [uid(&members[0]), uid(&members[1])],
                    since: tt,
                });
                note(&mut st, format!("  pair swap watched: {a}+{b}"));
            }
        }
        Op::Pause { name, on } => {
            let k = key_of(name);
            if let Some(u) = st.store.get(&k).map(|o| uid(&o.route)) {
                st.unwatch_member(&u, "member paused", tt);
            }
            st.set_paused(&k, *on);
        }
        Op::Adopt { name, on } => {
            st.annotate(&key_of(name), ADOPT_ANNOTATION, *on);
        }
        Op::Delete { name } => {
            let k = key_of(name);
            let Some(obj) = st.store.get(&k) else {
                return note(&mut st, format!("  {name} does not exist"));
            };
            let u = uid(&obj.route);
            if let Some(s) = obj.route.spec.credentials_ref.clone() {
                st.secrets.remove(&(k.0.clone(), s.name));
            }
            st.unwatch_member(&u, "member deleted", tt);
            st.delete(&k, now_ms);
        }
        Op::DeleteNamespace { ns } => {
            let keys: Vec<_> = st.store.keys().filter(|k| k.0 == *ns).cloned().collect();
            if !st.world.namespaces {
                // The tidy world: each route is deleted as `Delete` does it (its Secret just
                // before it), so the history's model of what exists still holds.
                drop(st);
                for k in keys {
                    apply(
                        sim,
                        &Op::Delete {
                            name: format!("{}/{}", k.0, k.1),
                        },
                    );
                }
                return;
            }
            // The namespace controller: the Secrets go at once (they have no finalizers),
            // the routes are deleted and stay while their finalizers do; nothing new is made
            // in the namespace until it is gone.
            st.stats.namespaces_deleted += 1;
            st.secrets.retain(|k, _| k.0 != *ns);
            if !keys.is_empty() {
                st.terminating.insert(ns.clone());
            }
            for k in keys {
                if let Some(u) = st.store.get(&k).map(|o| uid(&o.route)) {
                    st.unwatch_member(&u, "namespace deleted", tt);
                }
                st.delete(&k, now_ms);
            }
        }
        Op::Relist if st.world.stale => {
            let epochs: Vec<u64> = st.watches.keys().copied().collect();
            for e in epochs {
                st.relist(e);
            }
        }
        Op::Console(c) => console(&mut st, c, now_ms, tt),
        Op::DeleteGateway { gw } => {
            st.emu.world.gateways.remove(gw);
            st.unwatch_pairs(gw, None, None, "gateway deleted", tt);
            st.prune_owners();
            st.follow_lists(now_ms);
        }
        Op::Crash | Op::Nothing | Op::Partition { .. } | Op::Relist => {}
    }
}

/// A change made in the console: through the API's own rules, without faults.
fn console(st: &mut State, c: &Console, now_ms: u64, tt: f64) {
    if let Console::Create(key, weight, publish) = c {
        let p: BTreeMap<String, String> = BTreeMap::from([
            ("RegionId".to_owned(), REGION.to_owned()),
            ("VpnGatewayId".to_owned(), key.gw.clone()),
            ("RouteSource".to_owned(), key.src.clone()),
            ("RouteDest".to_owned(), key.dest.clone()),
            ("NextHop".to_owned(), key.hop.clone()),
            ("Weight".to_owned(), weight.to_string()),
            ("PublishVpc".to_owned(), publish.to_string()),
        ]);
        let out = ops::run(
            "CreateVpnPbrRouteEntry",
            &Params::new(p),
            &mut st.emu,
            now_ms,
        );
        let code = out.map_or_else(|e| e.code.into_owned(), |_| "OK".to_owned());
        st.follow_lists(now_ms);
        return st.trace_at(tt, &format!("  console create: {code}"));
    }
    let key = match c {
        Console::Create(k, ..)
        | Console::Delete(k)
        | Console::Weight(k, _)
        | Console::Priority(k, _)
        | Console::Publish(k, _) => k,
    };
    // As the service knows it (a change it accepted counts, applied or not).
    let Some(e) = st.known_entry(key) else {
        return st.trace_at(tt, "  no such entry");
    };
    let mut p: BTreeMap<String, String> = BTreeMap::from([
        ("RegionId".to_owned(), REGION.to_owned()),
        ("VpnGatewayId".to_owned(), key.gw.clone()),
        ("RouteSource".to_owned(), key.src.clone()),
        ("RouteDest".to_owned(), key.dest.clone()),
        ("NextHop".to_owned(), key.hop.clone()),
        ("Weight".to_owned(), e.weight.to_string()),
    ]);
    let action = match c {
        Console::Create(..) | Console::Delete(_) => "DeleteVpnPbrRouteEntry",
        Console::Weight(_, w) => {
            p.insert("NewWeight".to_owned(), w.to_string());
            "ModifyVpnPbrRouteEntryWeight"
        }
        Console::Priority(_, pr) => {
            p.insert("NewPriority".to_owned(), pr.to_string());
            p.insert("Priority".to_owned(), e.priority.to_string());
            "ModifyVpnPbrRouteEntryPriority"
        }
        Console::Publish(_, b) => {
            p.remove("RouteSource");
            p.insert("RouteType".to_owned(), "pbr".to_owned());
            p.insert("PublishVpc".to_owned(), b.to_string());
            "PublishVpnRouteEntry"
        }
    };
    let out = ops::run(action, &Params::new(p), &mut st.emu, now_ms);
    st.follow_lists(now_ms);
    match out {
        Ok(_) => {
            st.trace_at(tt, &format!("  console {action}: OK"));
            st.unwatch_pairs(
                &key.gw,
                Some(&key.src),
                Some(&key.dest),
                "console change",
                tt,
            );
            if let Console::Publish(..) = c {
                // Publishing flips every entry with this destination and next hop.
                st.unwatch_pairs(&key.gw, None, Some(&key.dest), "console change", tt);
            }
            st.prune_owners();
        }
        Err(e) => st.trace_at(tt, &format!("  console {action}: {}", e.code)),
    }
}

/// Delivers the watches' events when they are due (`stale`), for the whole seed.
async fn pump_watches(sim: Arc<Sim>) {
    let wake = sim.lock().watch_wake.clone();
    loop {
        let next = sim.lock().deliver_due();
        match next {
            Some(at) => {
                tokio::select! {
                    biased;
                    () = wake.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => wake.notified().await,
        }
    }
}
