//! `CloudPort` over the emulator's own world model, in-process: every call runs
//! `vpc_emulator::ops::run` on the seed's `EmuState` at the virtual time, with faults drawn
//! from the seed's generator, as the cloud of the realistic world (`config.rs`) answers it:
//! each key sees only its account's gateways, lists come in pages that lag the gateway and
//! race its changes, tokens are forgotten, and a request on the wire lands even when its
//! process died. Mutations are judged here, at the moment they go out and the moment they are
//! applied (invariants 1 and 3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alicloud_vpc_client::{
    ApiError, CloudError, DescribeVpnPbrRouteEntriesResponse, EntryFields, VpnPbrRouteEntry,
    classify, read_whole_list,
};
use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;
use vpc_emulator::ops;
use vpc_emulator::params::Params;
use vpc_emulator::world::{PbrEntry, World};
use vpn_pbr_operator::api::v1alpha1::{DEFAULT_PRIORITY, VpnPbrRoute};
use vpn_pbr_operator::{
    Accepted, CloudFuture, CloudPort, Entry, GatewayFacts, JobView, Mutation, MutationRequest,
    Owner, Scheduler, Scope, rfc3339_millis,
};

use super::world::{EntryKey, Sim, State, account_id, account_of_key, uid};

/// The cloud as one operator process sees it; `epoch` is that process.
pub struct SimCloud {
    pub sim: Arc<Sim>,
    pub epoch: u64,
    /// The process's scheduler: whose job is on the wire tells who sent a mutation.
    pub scheduler: OnceLock<Scheduler>,
}

/// The list's page size (the client's `PBR_PAGE_SIZE`).
const PAGE_SIZE: u32 = alicloud_vpc_client::PBR_PAGE_SIZE;

/// Source addresses of the entries someone else has on the gateways (`pages`).
pub const FILLER_SOURCE: &str = "172.20.";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    Busy(&'static str),
    Throttled,
    Server(u16, &'static str),
    /// Applied, but the answer is lost (what the client reports after its retries ran out).
    LostAnswer,
}

fn api_error(
    action: &'static str,
    status: u16,
    code: &str,
    message: &str,
    rid: &str,
) -> CloudError {
    CloudError::Api(Box::new(ApiError {
        action,
        http_status: status,
        code: code.to_owned(),
        message: message.to_owned(),
        request_id: Some(rid.to_owned()),
        host_id: None,
        recommend: None,
        retry_after: None,
        class: classify(status, code),
    }))
}

fn gone_process(action: &'static str) -> CloudError {
    api_error(
        action,
        503,
        "ServiceUnavailable",
        "the operator process is gone",
        "dead",
    )
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn n(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

/// An entry as a page of `DescribeVpnPbrRouteEntries` carries it.
fn wire_entry(e: &PbrEntry, gw: &str) -> VpnPbrRouteEntry {
    VpnPbrRouteEntry {
        fields: EntryFields {
            vpn_instance_id: Some(gw.to_owned()),
            route_source: e.route_source.clone(),
            route_dest: e.route_dest.clone(),
            next_hop: e.next_hop.clone(),
            weight: e.weight,
            priority: Some(e.priority),
            create_time: i64::try_from(e.create_time_ms).ok(),
            description: e.description.clone(),
        },
        next_hop_tunnel_id: None,
        state: e.state().into(),
    }
}

fn entry_of(v: &Value, gw: &str) -> Entry {
    Entry {
        route_source: s(v, "RouteSource"),
        route_dest: s(v, "RouteDest"),
        next_hop: s(v, "NextHop"),
        weight: n(v, "Weight")
            .and_then(|w| i32::try_from(w).ok())
            .unwrap_or(0),
        priority: n(v, "Priority")
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(DEFAULT_PRIORITY),
        state: s(v, "State").into(),
        create_time: n(v, "CreateTime").unwrap_or(0),
        vpn_instance_id: Some(s(v, "VpnInstanceId"))
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| gw.to_owned()),
    }
}

/// The request parameters the real client sends for a mutation: the request the operator
/// makes of it (`src/controller/vpc.rs`), with the `RegionId` and (where it has none) the
/// `ClientToken` the client adds.
fn mutation_params(scope: &Scope, m: &Mutation, token: String) -> BTreeMap<String, String> {
    let request = serde_json::to_value(MutationRequest::of(&scope.vpn_gateway_id, m));
    let Ok(Value::Object(fields)) = request else {
        panic!("a request serializes to an object: {request:?}");
    };
    let mut p: BTreeMap<String, String> = fields
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect();
    p.insert("RegionId".to_owned(), scope.region_id.clone());
    p.entry("ClientToken".to_owned()).or_insert(token);
    p
}

fn short(m: &Mutation) -> String {
    let r = m.route();
    let what = match m {
        Mutation::Create { weight, .. } => format!("create w={weight}"),
        Mutation::Delete { weight, .. } => format!("delete w={weight}"),
        Mutation::ModifyAttribute {
            new_weight,
            new_priority,
            ..
        } => format!("modify w->{new_weight:?} p->{new_priority:?}"),
        Mutation::ModifyWeight { new_weight, .. } => format!("modify w->{new_weight}"),
        Mutation::ModifyPriority { new_priority, .. } => format!("modify p->{new_priority}"),
        Mutation::Publish { publish_vpc, .. } => format!("publish {publish_vpc}"),
    };
    format!("{what} {}->{}/{}", r.route_source, r.route_dest, r.next_hop)
}

/// Marks a verdict of ownership (not of the object's state).
const NOT_OWNER: &str = "not the owner: ";

/// The object whose job sent a mutation: the one whose job on this process's scheduler is on
/// the wire (a gateway has at most one), among the objects (live or gone) naming the entry.
fn sender<'a>(
    st: &'a State,
    scheduler: Option<&Scheduler>,
    key: &EntryKey,
) -> Result<&'a VpnPbrRoute, String> {
    let names: BTreeSet<(String, String)> = st
        .store
        .values()
        .map(|o| &o.route)
        .chain(st.tombs.values().map(|t| &t.route))
        .filter(|r| EntryKey::of(&r.spec) == *key)
        .map(|r| {
            (
                r.metadata.namespace.clone().unwrap_or_default(),
                kube::ResourceExt::name_any(r),
            )
        })
        .collect();
    let Some(scheduler) = scheduler else {
        return Err("no scheduler to ask".to_owned());
    };
    let on_wire: Vec<&(String, String)> = names
        .iter()
        .filter(|(ns, name)| {
            matches!(
                scheduler.job(&Owner::new(name, Some(ns))),
                Some(JobView::InFlight)
            )
        })
        .collect();
    let [(ns, name)] = on_wire.as_slice() else {
        return Err(format!(
            "{} objects naming {key} have a job on the wire ({names:?})",
            on_wire.len()
        ));
    };
    let named = |r: &VpnPbrRoute| {
        r.metadata.namespace.as_deref() == Some(ns.as_str())
            && kube::ResourceExt::name_any(r) == *name
            && EntryKey::of(&r.spec) == *key
    };
    if let Some(o) = st.store.values().find(|o| named(&o.route)) {
        return Ok(&o.route);
    }
    st.tombs
        .values()
        .filter(|t| named(&t.route))
        .max_by_key(|t| t.gone_at)
        .map(|t| &t.route)
        .ok_or_else(|| format!("{ns}/{name} is nowhere"))
}

/// Why the mutation may not go out at `sent` by the design's rules, if it may not: the
/// object it belongs to had been paused, invalid, `ObserveOnly` or deleted since before then
/// as far as the sending process could know (its watch had shown it), or the entry is not its
/// own. The sender is known: a create's token names its object, and any other change is the
/// one job on the wire for the gateway, whoever else names the entry. Same-instant races (the
/// change and the send at one virtual moment) are not counted: the operator cannot have seen
/// the change yet.
fn barred(
    st: &State,
    epoch: u64,
    scheduler: Option<&Scheduler>,
    scope: &Scope,
    m: &Mutation,
    sent: Instant,
) -> Option<String> {
    let describe = |r: &VpnPbrRoute, since: Instant| {
        format!(
            "{} (paused={} valid={} policy={:?}/{:?} deleting={}) barred {:.3}s before the send \
             (as process #{epoch} saw it)",
            kube::ResourceExt::name_any(r),
            super::world::paused(r),
            super::world::valid(r),
            r.spec.management_policy,
            r.spec.deletion_policy,
            super::world::deleting(r),
            sent.saturating_duration_since(since).as_secs_f64()
        )
    };
    if let Mutation::Create { client_token, .. } = m {
        let Some(owner) = st.token_owner.get(client_token) else {
            return Some(format!(
                "create with token {client_token} that no object wrote to its status"
            ));
        };
        let route = st
            .object_by_uid(owner)
            .map(|o| &o.route)
            .or_else(|| st.tombs.get(owner).map(|t| &t.route))?;
        let since = st.bars_seen(epoch, owner).change;
        // A cleanup replays the create of a token written while the object could still create
        // (its entry may exist unlisted): the replay answers with that entry or makes it, and
        // the entry is deleted next (src/controller/decide.rs, `cleanup`).
        let replay_of_own = super::world::deleting(route)
            && st
                .token_written
                .get(client_token)
                .zip(since)
                .is_some_and(|(written, barred)| *written <= barred);
        if replay_of_own {
            return None;
        }
        return since.filter(|t| *t < sent).map(|t| describe(route, t));
    }
    let key = EntryKey::of_mutation(scope, m);
    let route = match sender(st, scheduler, &key) {
        Ok(s) => s,
        Err(why) => return Some(format!("a change no object's job accounts for: {why}")),
    };
    let bars = st.bars_seen(epoch, &uid(route));
    let since = if matches!(m, Mutation::Delete { .. }) {
        bars.delete
    } else {
        bars.change
    };
    if let Some(t) = since.filter(|t| *t < sent) {
        return Some(describe(route, t));
    }
    // Adoption by consent: an entry the object neither made nor adopted is not its to change
    // or delete. An entry of its own deleted outside a moment before the send (the change was
    // decided on a list that still showed it) is no one's: the change lands nowhere, or on the
    // object's own next entry, never on someone else's (that one has an owner).
    let owner = st.owners.get(&key);
    let its_own_gone = owner.is_none() && st.owned.contains(&(uid(route), key.clone()));
    (owner != Some(&uid(route)) && !its_own_gone).then(|| {
        format!(
            "{NOT_OWNER}{} does not own the entry (made or adopted by {})",
            kube::ResourceExt::name_any(route),
            owner.map_or("nobody it knows", String::as_str)
        )
    })
}

/// What a call brought back.
enum Answer {
    Body(Value),
    /// A page of a list: its entries, `TotalCount`, and the version of the list it was cut
    /// from.
    Page(Vec<PbrEntry>, usize, u64),
}

/// A call on its way: what it is, and what was decided when it left.
struct Request {
    action: &'static str,
    params: BTreeMap<String, String>,
    change: Option<(Scope, Mutation)>,
    /// The access key it is signed with.
    key: String,
    fault: Fault,
    there: Duration,
    rid: String,
    verdict: Option<String>,
}

impl SimCloud {
    /// One call: latency, a fault maybe, the operation at the virtual time, latency back. The
    /// way there is the network's, not the process's: with `late`, a request already sent
    /// lands even if its process dies meanwhile.
    async fn call(
        &self,
        action: &'static str,
        params: BTreeMap<String, String>,
        change: Option<(&Scope, &Mutation)>,
        key: &str,
    ) -> Result<(Answer, String), CloudError> {
        let sent = Instant::now();
        let (req, back, late) = {
            let mut st = self.sim.lock();
            if !st.live.contains(&self.epoch) {
                return Err(gone_process(action));
            }
            st.stats.cloud_calls += 1;
            let rid = format!("req-{}", st.stats.cloud_calls);
            let at = sent.saturating_duration_since(self.sim.start).as_nanos();
            let request = format!("{at} #{} {action} {params:?}", self.epoch);
            st.hash.add_str(&request);
            st.first_send.entry(self.epoch).or_insert(sent);
            let faults = st.faults;
            let rng = &mut st.rng;
            let mut there = Duration::from_millis(rng.random_range(5..40));
            let mut back = Duration::from_millis(rng.random_range(5..40));
            let mut fault = Fault::None;
            if faults {
                let roll: f64 = rng.random();
                fault = match roll {
                    x if x < 0.05 && change.is_some() => Fault::Busy(if rng.random_bool(0.5) {
                        "VpnGateway.Configuring"
                    } else {
                        "TaskConflict"
                    }),
                    x if x < 0.08 => Fault::Throttled,
                    x if x < 0.12 => {
                        if rng.random_bool(0.5) {
                            Fault::Server(503, "ServiceUnavailable")
                        } else {
                            Fault::Server(500, "InternalError")
                        }
                    }
                    x if x < 0.16 => Fault::LostAnswer,
                    x if x < 0.20 => {
                        // A slow answer: the call reaches the cloud late, and/or comes back late.
                        there += Duration::from_millis(rng.random_range(0..4000));
                        back += Duration::from_millis(rng.random_range(0..4000));
                        Fault::None
                    }
                    _ => Fault::None,
                };
            }
            if fault != Fault::None {
                st.stats.faults += 1;
            }
            let verdict = change.and_then(|(scope, m)| {
                barred(&st, self.epoch, self.scheduler.get(), scope, m, sent)
            });
            if change.is_some() {
                let t = sent.saturating_duration_since(self.sim.start).as_secs_f64();
                fence_check(&mut st, self.epoch, sent, t);
            }
            st.in_transit += 1;
            let late = st.world.late;
            let req = Request {
                action,
                params,
                change: change.map(|(s, m)| (s.clone(), m.clone())),
                key: key.to_owned(),
                fault,
                there,
                rid,
                verdict,
            };
            (req, back, late)
        };
        let result = if late {
            // Its own task: aborting the process does not stop what is on the wire.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (sim, epoch) = (self.sim.clone(), self.epoch);
            tokio::spawn(async move {
                let _ = tx.send(land(&sim, epoch, req, true).await);
            });
            rx.await.unwrap_or_else(|_| Err(gone_process(action)))
        } else {
            land(&self.sim, self.epoch, req, false).await
        };
        tokio::time::sleep(back).await;
        result
    }

    /// The access key the scope's calls are signed with.
    async fn key(scope: &Scope) -> Result<String, CloudError> {
        let c = scope.credentials.provider.credentials().await?;
        Ok(c.access_key_id().to_owned())
    }

    /// One page of the entry list.
    async fn page(
        &self,
        scope: &Scope,
        key: &str,
        number: u32,
    ) -> Result<(Vec<PbrEntry>, usize, u64), CloudError> {
        let mut p = BTreeMap::new();
        p.insert("RegionId".to_owned(), scope.region_id.clone());
        p.insert("VpnGatewayId".to_owned(), scope.vpn_gateway_id.clone());
        p.insert("PageNumber".to_owned(), number.to_string());
        p.insert("PageSize".to_owned(), PAGE_SIZE.to_string());
        match self
            .call("DescribeVpnPbrRouteEntries", p, None, key)
            .await?
        {
            (Answer::Page(items, total, version), _) => Ok((items, total, version)),
            (Answer::Body(_), _) => Err(gone_process("DescribeVpnPbrRouteEntries")),
        }
    }

    /// Between two page reads of one list the world may move on (`pages`): a change lands
    /// that lists did not show yet, or someone else adds or removes an entry.
    fn between_pages(&self, gw: &str) {
        let now_ms = self.sim.now_ms();
        let t = self.sim.elapsed().as_secs_f64();
        let mut st = self.sim.lock();
        if !st.world.pages || !st.rng.random_bool(0.3) {
            return;
        }
        if st.rng.random_bool(0.5)
            && let Some(l) = st.listed.get_mut(gw)
            && l.reveal()
        {
            st.trace_at(t, &format!("lists of {gw} catch up between two page reads"));
            return;
        }
        let add = st.rng.random_bool(0.5);
        filler_churn(&mut st, gw, add, now_ms, t);
    }
}

/// Someone else adds (or removes) an entry of theirs on `gw`, and it shows at once.
pub fn filler_churn(st: &mut State, gw: &str, add: bool, now_ms: u64, t: f64) {
    let Some(g) = st.emu.world.gateways.get(gw) else {
        return;
    };
    let hop = g
        .entries
        .iter()
        .find(|e| e.route_source.starts_with(FILLER_SOURCE))
        .map(|e| e.next_hop.clone());
    let (Some(hop), true) = (hop, add) else {
        // Remove one of theirs (the one the list order puts first is as good as any).
        let gone: Vec<PbrEntry> = g
            .entries
            .iter()
            .filter(|e| e.route_source.starts_with(FILLER_SOURCE))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let victim = gone[st.rng.random_range(0..gone.len())].clone();
        let same = move |e: &PbrEntry| {
            e.route_source == victim.route_source
                && e.route_dest == victim.route_dest
                && e.next_hop == victim.next_hop
        };
        if let Some(g) = st.emu.world.gateways.get_mut(gw) {
            g.entries.retain(|e| !same(e));
        }
        if let Some(l) = st.listed.get_mut(gw) {
            l.edit_all(|v| v.retain(|e| !same(e)));
        }
        return st.trace_at(
            t,
            &format!("someone else removes an entry of theirs on {gw}"),
        );
    };
    st.fillers += 1;
    let e = filler(st.fillers, hop, now_ms);
    if let Some(g) = st.emu.world.gateways.get_mut(gw) {
        g.entries.push(e.clone());
    }
    if let Some(l) = st.listed.get_mut(gw) {
        l.edit_all(|v| v.push(e.clone()));
    }
    st.trace_at(t, &format!("someone else adds an entry of theirs on {gw}"));
}

/// Someone else's entry number `n` (a /32 each, unpublished, never named by a route).
pub fn filler(n: u32, next_hop: String, now_ms: u64) -> PbrEntry {
    PbrEntry {
        route_source: format!("{FILLER_SOURCE}{}.{}/32", n / 250, n % 250 + 1),
        route_dest: format!("172.21.{}.{}/32", n / 250, n % 250 + 1),
        next_hop,
        weight: 100,
        priority: 10,
        published: false,
        description: None,
        overlay_mode: "Ipsec".to_owned(),
        create_time_ms: now_ms,
    }
}

/// The fence's invariant (`src/fence.rs`): once a replica that took the Lease over has sent a
/// change, no process of the replica it took it from sends one.
fn fence_check(st: &mut State, epoch: u64, sent: Instant, t: f64) {
    let me = st.replica_of.get(&epoch).copied();
    let later: Vec<u64> = st
        .first_mutation
        .iter()
        .filter(|(e, at)| **e > epoch && **at < sent && st.replica_of.get(*e).copied() != me)
        .map(|(e, _)| *e)
        .collect();
    if let Some(e) = later.first() {
        st.violation(
            t,
            format!(
                "fence: process #{epoch} sent a change after process #{e} of the replica that \
                 took the Lease over had sent its first"
            ),
        );
    }
    st.first_mutation.entry(epoch).or_insert(sent);
    st.last_mutation.insert(epoch, sent);
}

/// The request reaches the cloud (or not) and is answered.
async fn land(
    sim: &Sim,
    epoch: u64,
    mut req: Request,
    late: bool,
) -> Result<(Answer, String), CloudError> {
    tokio::time::sleep(req.there).await;
    let died = !sim.lock().live.contains(&epoch);
    if died {
        if !late {
            // The process died while the request was on its way: it never arrived.
            sim.lock().in_transit -= 1;
            return Err(gone_process(req.action));
        }
        // Stuck in the network while its process died: it lands a while later, typically
        // after the next process acted.
        let extra = Duration::from_millis(sim.lock().rng.random_range(200..4000));
        tokio::time::sleep(extra).await;
    }
    let t = sim.elapsed().as_secs_f64();
    let now_ms = sim.now_ms();
    let mut st = sim.lock();
    st.in_transit -= 1;
    let action = req.action;
    let change = req.change.as_ref().map(|(s, m)| (s, m));
    let gw = req.params.get("VpnGatewayId").cloned().unwrap_or_default();
    let what = change.map_or_else(
        || format!("{action} {gw}"),
        |(sc, m)| format!("{} {}", sc.vpn_gateway_id, short(m)),
    );
    if !st.live.contains(&epoch) {
        st.stats.late_landings += 1;
        let now = Instant::now();
        if st.first_send.iter().any(|(e, at)| *e > epoch && *at < now) {
            st.stats.late_after_successor += 1;
        }
        st.trace_at(
            t,
            &format!("a request of dead process #{epoch} lands: {what}"),
        );
    }
    let rid = req.rid.clone();
    let early = match req.fault {
        Fault::Busy(code) if change.is_some() => Some(api_error(
            action,
            400,
            code,
            "The specified service is configuring.",
            &rid,
        )),
        Fault::Throttled => Some(api_error(
            action,
            400,
            "Throttling",
            "Request was denied due to request throttling.",
            &rid,
        )),
        Fault::Server(status, code) => Some(api_error(
            action,
            status,
            code,
            "injected server error",
            &rid,
        )),
        _ => None,
    };
    if let Some(e) = early {
        if change.is_some() {
            st.trace_at(t, &format!("cloud {what}: injected {}", e.code()));
        }
        return Err(e);
    }
    // Another account's gateway does not exist for this key.
    if !gw.is_empty() && st.emu.world.gateways.contains_key(&gw) && !st.sees(&req.key, &gw) {
        st.stats.cross_account += 1;
        if change.is_some() || st.trace.verbose {
            st.trace_at(
                t,
                &format!("cloud {what}: another account's gateway: NotFound"),
            );
        }
        let e = vpc_emulator::error::ApiError::gateway_not_found();
        return Err(api_error(action, e.status, &e.code, &e.message, &rid));
    }
    if action == "DescribeVpnPbrRouteEntries" {
        return serve_page(&mut st, &req.params, now_ms, &rid).map(|a| (a, rid.clone()));
    }
    // The cloud forgets a token some time after it first remembered it (`expiry`).
    let token = req.params.get("ClientToken").cloned();
    if let Some(tok) = &token
        && st.world.expiry
        && st
            .token_seen
            .get(tok)
            .is_some_and(|seen| now_ms.saturating_sub(*seen) > st.token_ttl_ms)
    {
        let n = st.forgotten.len();
        let renamed = st
            .forgotten
            .entry(tok.clone())
            .or_insert_with(|| format!("{tok}~forgotten-{n}"))
            .clone();
        st.stats.tokens_expired += 1;
        if change.is_some() {
            st.trace_at(t, &format!("cloud {what}: the cloud forgot token {tok}"));
        }

        req.params.insert("ClientToken".to_owned(), renamed);
    }
    let out = ops::run(
        action,
        &Params::new(req.params.clone()),
        &mut st.emu,
        now_ms,
    );
    st.follow_lists(now_ms);
    match out {
        Ok(outcome) => {
            if let Some(tok) = &token {
                st.token_seen.entry(tok.clone()).or_insert(now_ms);
                st.token_epoch.entry(tok.clone()).or_insert(epoch);
            }
            if let Some((scope, m)) = change {
                accepted(
                    &mut st,
                    t,
                    scope,
                    m,
                    outcome.created.is_some(),
                    req.verdict.as_deref(),
                    &what,
                );
            }
            if req.fault == Fault::LostAnswer {
                if change.is_some() {
                    st.trace_at(t, &format!("cloud {what}: applied, answer lost"));
                }
                return Err(api_error(
                    action,
                    503,
                    "ServiceUnavailable",
                    "answer lost",
                    &rid,
                ));
            }
            Ok((Answer::Body(outcome.body), rid))
        }
        Err(e) => {
            if let Some((scope, m)) = change {
                st.trace_at(t, &format!("cloud {what}: {}", e.code));
                if e.code == "InvalidRouteEntry.AlreadyExists" || e.code.ends_with("AlreadyExists")
                {
                    unprovable(&mut st, t, scope, m, token.as_deref());
                }
            }
            Err(api_error(action, e.status, &e.code, &e.message, &rid))
        }
    }
}

/// A create refused as existing after the cloud forgot its token: if that very token's create
/// made the entry and its answer was never recorded, the object cannot prove the entry is its
/// own any more (the one outcome the
/// design allows: the route refuses the entry and says why).
fn unprovable(st: &mut State, t: f64, scope: &Scope, m: &Mutation, token: Option<&str>) {
    let (Mutation::Create { client_token, .. }, Some(tok)) = (m, token) else {
        return;
    };
    if !st.forgotten.contains_key(tok) {
        return;
    }
    let key = EntryKey::of_mutation(scope, m);
    let Some(owner) = st.token_owner.get(client_token).cloned() else {
        return;
    };
    // The answer was recorded before the crash: the object proves the entry by its
    // `createTime`, which is the listed entry's, whatever the cloud remembers of the token.
    let recorded = st.entry(&key).is_some_and(|e| {
        let time = rfc3339_millis(i64::try_from(e.create_time_ms).unwrap_or_default());
        st.object_by_uid(&owner)
            .and_then(|o| o.route.status.as_ref())
            .is_some_and(|s| s.create_time.is_some() && s.create_time == time)
    });
    if st.owners.get(&key) == Some(&owner) && !recorded {
        // Excused only after a crash: the process that sent the create died before it could
        // record the answer. A live one replays within seconds; the cloud remembers hours.
        if let Some(e) = st.token_epoch.get(tok).copied()
            && st.live.contains(&e)
        {
            st.violations.push(format!(
                "{owner} lost the proof of {key}: process #{e}, which sent its create, is still \
                 running and came back after the cloud forgot the token"
            ));
        }
        st.trace_at(
            t,
            &format!("{owner} can no longer prove {key} its own (its token was forgotten)"),
        );
        st.stats.unprovable += 1;
        st.unprovable.insert(owner, key);
    }
}

/// A page of `DescribeVpnPbrRouteEntries`, from what lists show of the gateway.
fn serve_page(
    st: &mut State,
    p: &BTreeMap<String, String>,
    now_ms: u64,
    rid: &str,
) -> Result<Answer, CloudError> {
    let action = "DescribeVpnPbrRouteEntries";
    let region = p.get("RegionId").map_or("", String::as_str);
    let gw = p.get("VpnGatewayId").map_or("", String::as_str);
    st.emu.world.settle(now_ms);
    st.follow_lists(now_ms);
    let status = match st
        .emu
        .world
        .gateway(vpc_emulator::world::DEFAULT_ACCOUNT_ID, region, gw)
    {
        Ok(g) => World::status(g, now_ms).to_owned(),
        Err(e) => return Err(api_error(action, e.status, &e.code, &e.message, rid)),
    };
    let number = p
        .get("PageNumber")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let size = p
        .get("PageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(PAGE_SIZE as usize);
    let applied = st
        .emu
        .world
        .gateways
        .get(gw)
        .map(|g| g.entries.clone())
        .unwrap_or_default();
    let mut listed = st.listed.remove(gw).unwrap_or_default();
    // The order is the cloud's, and not stable between calls.
    if st.world.pages && st.rng.random_bool(0.15) {
        listed.reorder(&mut st.rng);
    }
    if number == 1 && status == "active" && !listed.shows(&applied) {
        st.stats.lists_behind += 1;
    }
    let (items, total) = listed.page(number, size, &mut st.rng);
    let version = listed.version;
    st.listed.insert(gw.to_owned(), listed);
    Ok(Answer::Page(items, total, version))
}
/// Books an accepted mutation and checks it.
fn accepted(
    st: &mut State,
    t: f64,
    scope: &Scope,
    m: &Mutation,
    created: bool,
    verdict: Option<&str>,
    what: &str,
) {
    st.stats.mutations_accepted += 1;
    let replay = matches!(m, Mutation::Create { .. }) && !created;
    st.trace_at(
        t,
        &format!(
            "cloud {what}: OK{}",
            if replay { " (token replay)" } else { "" }
        ),
    );
    if replay {
        return;
    }
    if let Some(why) = verdict {
        let (rule, why) = if let Some(why) = why.strip_prefix(NOT_OWNER) {
            (
                "invariant 1: change of an entry the object neither made nor adopted with consent",
                why,
            )
        } else if matches!(m, Mutation::Create { .. }) {
            (
                "invariant 1: create accepted for an object that may not create",
                why,
            )
        } else {
            (
                "invariant 1: change accepted for an object that may not change the cloud",
                why,
            )
        };
        st.violation(t, format!("{rule}: {} ({why})", short(m)));
    }
    let key = EntryKey::of_mutation(scope, m);
    match m {
        Mutation::Create { client_token, .. } => {
            if let Some(owner) = st.token_owner.get(client_token).cloned() {
                // A new entry of its own (the one it could not prove was deleted since): what
                // it holds now it can prove again.
                if st.unprovable.get(&owner) == Some(&key) {
                    st.unprovable.remove(&owner);
                }
                *st.accepted_creates.entry(owner.clone()).or_default() += 1;
                st.owners.insert(key.clone(), owner.clone());
                st.owned.insert((owner.clone(), key));
                st.prune_owners();
                let made: Vec<String> = st
                    .owners
                    .iter()
                    .filter(|(_, o)| **o == owner)
                    .map(|(k, _)| k.to_string())
                    .collect();
                if made.len() > 1 {
                    st.violation(
                        t,
                        format!(
                            "invariant 1: object {owner} owns {} cloud entries: {made:?}",
                            made.len()
                        ),
                    );
                }
            }
        }
        Mutation::Delete { .. } => {
            st.owners.remove(&key);
        }
        _ => {}
    }
    st.check_pairs(t, what);
}

impl CloudPort for SimCloud {
    /// STS `GetCallerIdentity`: the account of the scope's key (with `accounts` off, every key
    /// acts for the one account that sees every gateway).
    fn caller_account<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, String> {
        Box::pin(async move {
            let key = Self::key(scope).await?;
            let accounts = self.sim.lock().world.accounts;
            if !accounts {
                return Ok(vpc_emulator::config::DEFAULT_ACCOUNT_ID.to_owned());
            }
            account_of_key(&key).map(account_id).ok_or_else(|| {
                api_error(
                    "GetCallerIdentity",
                    404,
                    "InvalidAccessKeyId.NotFound",
                    "Specified access key is not found.",
                    "sts",
                )
            })
        })
    }

    fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let key = Self::key(scope).await?;
            let gw = &scope.vpn_gateway_id;
            // The client's own reader (`read_whole_list`, crates/alicloud-vpc-client/src/listing.rs):
            // a list is whole or `ListInconsistent`, by the same rule as against the cloud.
            let versions = std::sync::Mutex::new(BTreeSet::new());
            let mut first = true;
            let list = read_whole_list(PAGE_SIZE, |number| {
                let between = !std::mem::replace(&mut first, false);
                let (key, versions) = (&key, &versions);
                async move {
                    if between {
                        self.between_pages(gw);
                    }
                    let (items, total, version) = self.page(scope, key, number).await?;
                    versions
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(version);
                    Ok(DescribeVpnPbrRouteEntriesResponse {
                        request_id: format!("list-{gw}-{number}"),
                        total_count: u32::try_from(total).unwrap_or(u32::MAX),
                        page_number: Some(number),
                        page_size: Some(PAGE_SIZE),
                        vpn_pbr_route_entries: items.iter().map(|e| wire_entry(e, gw)).collect(),
                    })
                }
            })
            .await;
            let raced = versions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
                > 1;
            let reads = match &list {
                Ok(l) => l.reads,
                Err(CloudError::ListInconsistent { reads, .. }) => *reads,
                Err(_) => 0,
            };
            if reads > 1 {
                let mut st = self.sim.lock();
                st.stats.lists_paged += 1;
                if raced {
                    st.stats.lists_raced += 1;
                }
            }
            Ok(list?
                .entries
                .into_iter()
                .map(|e| Entry::listed(e, gw))
                .collect())
        })
    }

    fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
        Box::pin(async move {
            let key = Self::key(scope).await?;
            let mut p = BTreeMap::new();
            p.insert("RegionId".to_owned(), scope.region_id.clone());
            p.insert("VpnGatewayId".to_owned(), scope.vpn_gateway_id.clone());
            let (Answer::Body(body), _) = self.call("DescribeVpnGateway", p, None, &key).await?
            else {
                return Err(gone_process("DescribeVpnGateway"));
            };
            Ok(GatewayFacts {
                status: s(&body, "Status").into(),
                supports_priority: s(&body, "Tag").contains("PbrPriority"),
                dual_tunnel: !s(&body, "DisasterRecoveryInternetIp").is_empty(),
                spec: Some(s(&body, "Spec")).filter(|v| !v.is_empty()),
            })
        })
    }

    fn mutate<'a>(&'a self, scope: &'a Scope, mutation: &'a Mutation) -> CloudFuture<'a, Accepted> {
        Box::pin(async move {
            let key = Self::key(scope).await?;
            let token = {
                let st = self.sim.lock();
                format!("call-{}", st.stats.cloud_calls)
            };
            let params = mutation_params(scope, mutation, token);
            let (Answer::Body(body), rid) = self
                .call(mutation.action(), params, Some((scope, mutation)), &key)
                .await?
            else {
                return Err(gone_process(mutation.action()));
            };
            let entry = matches!(mutation, Mutation::Create { .. })
                .then(|| entry_of(&body, &scope.vpn_gateway_id));
            Ok(Accepted {
                request_id: Some(rid),
                entry,
            })
        })
    }
}
