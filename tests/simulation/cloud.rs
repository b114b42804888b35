//! `CloudPort` over the emulator's own world model, in-process: every call runs
//! `vpc_emulator::ops::run` on the seed's `EmuState` at the virtual time, with faults drawn
//! from the seed's generator. Mutations are judged here, at the moment they go out and the
//! moment they are applied (invariants 1 and 3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alicloud_vpc_client::{ApiError, CloudError, classify};
use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;
use vpc_emulator::ops;
use vpc_emulator::params::Params;
use vpn_pbr_operator::api::v1alpha1::DEFAULT_PRIORITY;
use vpn_pbr_operator::controller::model::{Accepted, Entry, GatewayFacts, Mutation, Scope};
use vpn_pbr_operator::controller::port::{CloudFuture, CloudPort};

use super::world::{EntryKey, Sim, State, uid};

/// The cloud as one operator process sees it; `epoch` is that process.
pub struct SimCloud {
    pub sim: Arc<Sim>,
    pub epoch: u64,
}

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

/// The request parameters the real client sends for a mutation (`src/controller/vpc.rs`).
fn mutation_params(scope: &Scope, m: &Mutation, token: String) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        p.insert(k.to_owned(), v);
    };
    put("RegionId", scope.region_id.clone());
    put("VpnGatewayId", scope.vpn_gateway_id.clone());
    let r = m.route();
    put("RouteDest", r.route_dest.clone());
    put("NextHop", r.next_hop.clone());
    if !matches!(m, Mutation::Publish { .. }) {
        put("RouteSource", r.route_source.clone());
    }
    match m {
        Mutation::Create {
            weight,
            priority,
            publish_vpc,
            description,
            overlay_mode,
            client_token,
            ..
        } => {
            put("Weight", weight.to_string());
            put("PublishVpc", publish_vpc.to_string());
            if let Some(x) = priority {
                put("Priority", x.to_string());
            }
            if let Some(x) = description {
                put("Description", x.clone());
            }
            if let Some(x) = overlay_mode {
                put("OverlayMode", x.clone());
            }
            put("ClientToken", client_token.clone());
        }
        Mutation::Delete {
            weight, priority, ..
        } => {
            put("Weight", weight.to_string());
            if let Some(x) = priority {
                put("Priority", x.to_string());
            }
        }
        Mutation::ModifyAttribute {
            weight,
            priority,
            new_weight,
            new_priority,
            ..
        } => {
            put("Weight", weight.to_string());
            put("Priority", priority.to_string());
            if let Some(x) = new_weight {
                put("NewWeight", x.to_string());
            }
            if let Some(x) = new_priority {
                put("NewPriority", x.to_string());
            }
        }
        Mutation::ModifyWeight {
            weight,
            priority,
            new_weight,
            ..
        } => {
            put("Weight", weight.to_string());
            put("NewWeight", new_weight.to_string());
            if let Some(x) = priority {
                put("Priority", x.to_string());
            }
        }
        Mutation::ModifyPriority {
            weight,
            priority,
            new_priority,
            ..
        } => {
            put("Weight", weight.to_string());
            put("Priority", priority.to_string());
            put("NewPriority", new_priority.to_string());
        }
        Mutation::Publish { publish_vpc, .. } => {
            put("RouteType", "pbr".to_owned());
            put("PublishVpc", publish_vpc.to_string());
        }
    }
    // The client pins a fresh token on every mutation that has none (client.rs).
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

/// Why the mutation may not go out at `sent` by the design's rules, if it may not: the
/// object it belongs to had been paused, invalid, `ObserveOnly` or deleted since before then.
/// Same-instant races (the change and the send at one virtual moment) are not counted: the
/// operator cannot have seen the change yet.
fn barred(st: &State, scope: &Scope, m: &Mutation, sent: Instant) -> Option<String> {
    let describe = |r: &vpn_pbr_operator::api::v1alpha1::VpnPbrRoute, since: Instant| {
        format!(
            "{} (paused={} valid={} policy={:?}/{:?} deleting={}) barred {:.3}s before the send",
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
        if let Some(obj) = st.object_by_uid(owner) {
            return obj
                .change_barred
                .filter(|t| *t < sent)
                .map(|t| describe(&obj.route, t));
        }
        return st.tombs.get(owner).and_then(|tomb| {
            (tomb.change_barred < sent)
                .then(|| format!("gone object: {}", describe(&tomb.route, tomb.change_barred)))
        });
    }
    let r = m.route();
    let key = EntryKey {
        gw: scope.vpn_gateway_id.clone(),
        src: r.route_source.clone(),
        dest: r.route_dest.clone(),
        hop: r.next_hop.clone(),
    };
    let is_delete = matches!(m, Mutation::Delete { .. });
    let claimants = st.claimants(&key);
    match claimants.as_slice() {
        [one] => {
            let obj = st.store.values().find(|o| uid(&o.route) == uid(one))?;
            let since = if is_delete {
                obj.delete_barred
            } else {
                obj.change_barred
            };
            if let Some(t) = since.filter(|t| *t < sent) {
                return Some(describe(&obj.route, t));
            }
            // Adoption by consent: an entry the object neither made nor adopted is not its to
            // change or delete.
            let owner = st.owners.get(&key);
            (owner != Some(&uid(one))).then(|| {
                format!(
                    "{NOT_OWNER}{} does not own the entry (made or adopted by {})",
                    kube::ResourceExt::name_any(&obj.route),
                    owner.map_or("nobody it knows", String::as_str)
                )
            })
        }
        [] => {
            // Nobody names the entry any more: only a change sent before its object went is
            // allowed.
            let last = st
                .tombs
                .values()
                .filter(|t| EntryKey::of(&t.route.spec) == key)
                .max_by_key(|t| t.gone_at)?;
            let since = if is_delete {
                last.delete_barred
            } else {
                last.change_barred
            };
            (since < sent).then(|| format!("gone object: {}", describe(&last.route, since)))
        }
        // Two objects name the entry: which one sent it is not known here.
        _ => None,
    }
}

impl SimCloud {
    /// One call: latency, a fault maybe, the operation at the virtual time, latency back.
    async fn call(
        &self,
        action: &'static str,
        params: BTreeMap<String, String>,
        change: Option<(&Scope, &Mutation)>,
    ) -> Result<(Value, String), CloudError> {
        let sent = Instant::now();
        let (fault, there, back, rid, verdict) = {
            let mut st = self.sim.lock();
            if st.epoch != self.epoch {
                return Err(gone_process(action));
            }
            st.stats.cloud_calls += 1;
            let rid = format!("req-{}", st.stats.cloud_calls);
            let at = sent.saturating_duration_since(self.sim.start).as_nanos();
            let request = format!("{at} #{} {action} {params:?}", self.epoch);
            st.hash.add_str(&request);
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
            let verdict = change.and_then(|(scope, m)| barred(&st, scope, m, sent));
            (fault, there, back, rid, verdict)
        };
        tokio::time::sleep(there).await;
        let t = self.sim.elapsed().as_secs_f64();
        let now_ms = self.sim.now_ms();
        let result = {
            let mut st = self.sim.lock();
            if st.epoch != self.epoch {
                // The process died while the request was on its way: it never arrived.
                return Err(gone_process(action));
            }
            let what = change.map_or_else(
                || {
                    format!(
                        "{action} {}",
                        params.get("VpnGatewayId").cloned().unwrap_or_default()
                    )
                },
                |(sc, m)| format!("{} {}", sc.vpn_gateway_id, short(m)),
            );
            let early = match fault {
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
            match early {
                Some(e) => {
                    if change.is_some() {
                        st.trace_at(t, &format!("cloud {what}: injected {}", e.code()));
                    }
                    Err(e)
                }
                None => {
                    let out = ops::run(action, &Params::new(params), &mut st.emu, now_ms);
                    match out {
                        Ok(outcome) => {
                            if let Some((scope, m)) = change {
                                accepted(
                                    &mut st,
                                    t,
                                    scope,
                                    m,
                                    outcome.created.is_some(),
                                    verdict.as_deref(),
                                    &what,
                                );
                            }
                            if fault == Fault::LostAnswer {
                                if change.is_some() {
                                    st.trace_at(t, &format!("cloud {what}: applied, answer lost"));
                                }
                                Err(api_error(
                                    action,
                                    503,
                                    "ServiceUnavailable",
                                    "answer lost",
                                    &rid,
                                ))
                            } else {
                                Ok((outcome.body, rid))
                            }
                        }
                        Err(e) => {
                            if change.is_some() {
                                st.trace_at(t, &format!("cloud {what}: {}", e.code));
                            }
                            Err(api_error(action, e.status, &e.code, &e.message, &rid))
                        }
                    }
                }
            }
        };
        tokio::time::sleep(back).await;
        result
    }
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
    let r = m.route();
    let key = EntryKey {
        gw: scope.vpn_gateway_id.clone(),
        src: r.route_source.clone(),
        dest: r.route_dest.clone(),
        hop: r.next_hop.clone(),
    };
    match m {
        Mutation::Create { client_token, .. } => {
            if let Some(owner) = st.token_owner.get(client_token).cloned() {
                *st.accepted_creates.entry(owner.clone()).or_default() += 1;
                st.owners.insert(key, owner.clone());
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
    fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let mut p = BTreeMap::new();
            p.insert("RegionId".to_owned(), scope.region_id.clone());
            p.insert("VpnGatewayId".to_owned(), scope.vpn_gateway_id.clone());
            p.insert("PageSize".to_owned(), "50".to_owned());
            let (body, _) = self.call("DescribeVpnPbrRouteEntries", p, None).await?;
            let items = body
                .pointer("/VpnPbrRouteEntries/VpnPbrRouteEntry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Ok(items
                .iter()
                .map(|v| entry_of(v, &scope.vpn_gateway_id))
                .collect())
        })
    }

    fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
        Box::pin(async move {
            let mut p = BTreeMap::new();
            p.insert("RegionId".to_owned(), scope.region_id.clone());
            p.insert("VpnGatewayId".to_owned(), scope.vpn_gateway_id.clone());
            let (body, _) = self.call("DescribeVpnGateway", p, None).await?;
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
            let token = {
                let st = self.sim.lock();
                format!("call-{}", st.stats.cloud_calls)
            };
            let params = mutation_params(scope, mutation, token);
            let (body, rid) = self
                .call(mutation.action(), params, Some((scope, mutation)))
                .await?;
            let entry = matches!(mutation, Mutation::Create { .. })
                .then(|| entry_of(&body, &scope.vpn_gateway_id));
            Ok(Accepted {
                request_id: Some(rid),
                entry,
            })
        })
    }
}
