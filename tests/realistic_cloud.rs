//! The operator binary against the real kube-apiserver and the `vpc-emulator` binary set up as
//! the realistic cloud (docs/emulator.md: `visibility: on_active`, so an accepted change shows
//! in the lists only once its gateway is `active` again, and `shuffle_lists: true`, so every
//! list comes in a new order): many routes over several gateways, dual-tunnel gateways,
//! disagreeing publishers, a key without the delete permission and a gateway being deleted.
//! One control plane for the binary; every test has its own namespace, emulator (with its own
//! config) and operator process.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use support::emulator::{self, EntryKey};
use support::env::{RouteEnv as Env, WAIT};
use support::route::{condition, millis_rfc3339};
use support::{eventually_ok, ready_is};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, FINALIZER, VpnPbrRoute};

const REGION: &str = emulator::REGION;

/// One gateway of a test's emulator config; its IPsec connections are `vco-<name>-1` and `-2`
/// (`name` is the id without `vpn-`).
struct Gateway {
    id: &'static str,
    priority: bool,
    dual_tunnel: bool,
    update_ms: u64,
}

impl Gateway {
    fn single(id: &'static str, priority: bool, update_ms: u64) -> Gateway {
        Gateway {
            id,
            priority,
            dual_tunnel: false,
            update_ms,
        }
    }
}

/// The connection `n` (1 or 2) of `gateway`.
fn hop(gateway: &str, n: usize) -> String {
    format!("vco-{}-{n}", gateway.trim_start_matches("vpn-"))
}

/// The realistic cloud (docs/emulator.md, "Config file"): changes visible once the gateway is
/// `active`, shuffled lists, a small TaskConflict window; every gateway in a VPC of its own with
/// quotas above the workload. The harness's key is the only key; `allowed_actions` (YAML flow
/// list) restricts it.
fn realistic_config(gateways: &[Gateway], allowed_actions: Option<&str>) -> String {
    let mut s = format!(
        "settings:\n  task_conflict_window_ms: 50\n  visibility: on_active\n  shuffle_lists: true\n\
         access_keys:\n  - id: {}\n    secret: {}\n",
        emulator::KEY_ID,
        emulator::KEY_SECRET
    );
    if let Some(actions) = allowed_actions {
        let _ = writeln!(s, "    allowed_actions: {actions}");
    }
    let _ = write!(s, "regions: [{REGION}]\nvpn_gateways:\n");
    for g in gateways {
        let _ = write!(
            s,
            "  - id: {id}\n    region: {REGION}\n    vpc_id: vpc-{name}\n    priority_support: {prio}\n    \
             dual_tunnel: {dual}\n    pbr_quota: 1000\n    vpc_route_quota: 1000\n    \
             update_duration_ms: {ms}\n",
            id = g.id,
            name = g.id.trim_start_matches("vpn-"),
            prio = g.priority,
            dual = g.dual_tunnel,
            ms = g.update_ms,
        );
    }
    s.push_str("vpn_connections:\n");
    for g in gateways {
        for n in 1..=2 {
            let _ = write!(
                s,
                "  - id: {}\n    gateway_id: {}\n    remote_subnet: 192.168.0.0/16\n",
                hop(g.id, n),
                g.id
            );
        }
    }
    s
}

impl Env {
    /// A namespace, an emulator with `config` and an operator with the drift-check period
    /// `resync`, ready.
    async fn start_ready(prefix: &str, config: &str, resync: &str) -> anyhow::Result<Env> {
        let mut env = Env::start_with(prefix, config, &["--resync", resync], &[]).await?;
        env.op.wait_ready(WAIT).await?;
        Ok(env)
    }

    /// [`Env::start_ready`] on a cloud of `gateway` alone, with `allowed_actions` and a 3 s
    /// drift-check period.
    async fn start_single(
        prefix: &str,
        gateway: Gateway,
        allowed_actions: Option<&str>,
    ) -> anyhow::Result<Env> {
        let config = realistic_config(&[gateway], allowed_actions);
        Self::start_ready(prefix, &config, "3s").await
    }

    /// [`Env::start_single`] on gateway `id` without the priority tag (every action allowed),
    /// and the gateway's first connection.
    async fn start_plain(
        prefix: &str,
        id: &'static str,
        update_ms: u64,
    ) -> anyhow::Result<(Env, String)> {
        let env = Self::start_single(prefix, Gateway::single(id, false, update_ms), None).await?;
        Ok((env, hop(id, 1)))
    }

    /// Waits for a Warning event about `name` with this reason.
    async fn warning(&self, name: &str, reason: &str) -> anyhow::Result<Event> {
        eventually_ok(
            WAIT,
            &format!("a Warning event {reason} about {name}"),
            || async {
                Ok(self.events_of(name).await?.into_iter().find(|e| {
                    e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason)
                }))
            },
        )
        .await
    }

    /// A POST to the emulator's admin API (docs/emulator.md, "Admin API").
    async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let url = format!("{}/_emulator/{path}", self.emu.url);
        let resp = reqwest::Client::new().post(&url).json(&body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        anyhow::ensure!(status.is_success(), "admin {url}: {status} {text}");
        Ok(())
    }

    /// Calls of `action`, every answer code together.
    async fn calls_any(&self, action: &str) -> anyhow::Result<u64> {
        Ok(self.emu.counters().await?["calls"][action]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, n)| n.as_u64())
            .sum())
    }

    /// Calls of every action answered with `code`.
    async fn calls_with_code(&self, code: &str) -> anyhow::Result<u64> {
        Ok(emulator::calls(&self.emu.counters().await?)
            .iter()
            .filter(|(_, c, _)| c == code)
            .map(|(_, _, n)| n)
            .sum())
    }
}

fn spec(gw: &str, src: &str, dst: &str, hop: &str, weight: i32, publish: bool) -> Value {
    json!({
        "regionId": REGION, "vpnGatewayId": gw, "routeSource": src, "routeDest": dst,
        "nextHop": hop, "weight": weight, "publishVpc": publish
    })
}

fn state(r: &VpnPbrRoute) -> Option<&str> {
    r.status.as_ref().and_then(|s| s.state.as_deref())
}

/// `Ready` as `status/reason` for failure messages.
fn ready_summary(r: &VpnPbrRoute) -> String {
    condition(r, "Ready").map_or_else(
        || "no Ready condition".to_owned(),
        |c| format!("{:?}/{}: {}", c.status, c.reason, c.message),
    )
}

/// A route of the many-routes test and the cloud entry it names.
struct Planned {
    name: String,
    gateway: &'static str,
    source: String,
    dest: String,
    hop: String,
    spec: Value,
}

/// The emulator's accepted creates (docs/emulator.md, `GET /_emulator/counters`) by (gateway,
/// source, destination, next hop).
fn accepted_creates(counters: &Value) -> HashMap<(String, String, String, String), u64> {
    counters["accepted_creates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (
                (
                    s("VpnGatewayId"),
                    s("RouteSource"),
                    s("RouteDest"),
                    s("NextHop"),
                ),
                c["Count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn two_hundred_routes_over_four_gateways_converge_with_one_create_each() -> anyhow::Result<()>
{
    const ROUTES: usize = 200;
    let gateways = [
        Gateway::single("vpn-many-a", true, 200),
        Gateway::single("vpn-many-b", true, 300),
        Gateway::single("vpn-many-c", false, 250),
        Gateway::single("vpn-many-d", false, 300),
    ];
    // A longer resync than the integration tests' 3 s: the test is about convergence, not
    // drift checks.
    let env = Env::start_ready("manyroutes", &realistic_config(&gateways, None), "30s").await?;
    let planned: Vec<Planned> = (0..ROUTES)
        .map(|i| {
            let g = &gateways[i % gateways.len()];
            let source = format!("192.168.{}.0/24", i % 7);
            // Distinct destinations: no active/standby pairs, no shared published destination.
            let dest = format!("10.{}.{}.0/24", 100 + i / 250, i % 250);
            let hop = hop(g.id, 1 + (i / gateways.len()) % 2);
            let weight = if i % 3 == 0 { 0 } else { 100 };
            let mut s = spec(g.id, &source, &dest, &hop, weight, i % 5 == 0);
            if g.priority {
                s["priority"] = json!(10 + 10 * (i % 4));
            }
            Planned {
                name: format!("r{i:03}"),
                gateway: g.id,
                source,
                dest,
                hop,
                spec: s,
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let apply = async {
        futures::stream::iter(&planned)
            .map(|p| env.apply(&p.name, p.spec.clone()))
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        started.elapsed()
    };
    // Every clientToken each object had while converging, from a watch (so no version is
    // missed), for the failure messages: the token is stored before its create is sent and a
    // retry replays it (README.md), so a second token is a create planned anew.
    let tokens: Arc<Mutex<HashMap<String, BTreeSet<String>>>> = Arc::default();
    let recorder = tokio::spawn({
        let tokens = tokens.clone();
        let stream = watcher(env.api.clone(), watcher::Config::default()).applied_objects();
        async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Ok(r) = item
                    && let Some(t) = r.status.as_ref().and_then(|s| s.client_token.clone())
                {
                    let mut tokens = tokens.lock().unwrap_or_else(PoisonError::into_inner);
                    tokens.entry(r.name_any()).or_default().insert(t);
                }
            }
        }
    });
    let converge = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            // A failed list (the apiserver under load) is only a missed poll.
            let routes = match env.api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("list routes: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(_) => Vec::new(),
            };
            let ready = routes
                .iter()
                .filter(|r| ready_is(r, ConditionStatus::True, None))
                .count();
            if routes.len() == ROUTES && ready == ROUTES {
                return Ok(routes);
            }
            // The operator's own entry taken for someone else's never recovers (README.md,
            // "Behaviour worth knowing"): no need to wait for the deadline.
            let refused = routes
                .iter()
                .any(|r| ready_is(r, ConditionStatus::False, Some("AlreadyExists")));
            if refused || tokio::time::Instant::now() >= deadline {
                return Err(routes);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let (applied_in, converged) = tokio::join!(apply, converge);
    recorder.abort();
    let tokens = tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let routes = match converged {
        Ok(routes) => routes,
        Err(routes) => {
            // The routes that failed (any reason but Creating) in full, and a few still waiting.
            let counters = env.emu.counters().await?;
            let not_ready: Vec<&VpnPbrRoute> = routes
                .iter()
                .filter(|r| !ready_is(r, ConditionStatus::True, None))
                .collect();
            let (failed, waiting): (Vec<&VpnPbrRoute>, Vec<&VpnPbrRoute>) = not_ready
                .iter()
                .partition(|r| condition(r, "Ready").is_some_and(|c| c.reason != "Creating"));
            let mut lines = Vec::new();
            for r in failed.iter().chain(waiting.iter().take(5)) {
                let p = planned
                    .iter()
                    .find(|p| p.name == r.name_any())
                    .expect("planned");
                let creates = env
                    .emu
                    .accepted_creates(p.gateway, &EntryKey::new(&p.source, &p.dest, &p.hop))
                    .await?;
                lines.push(format!(
                    "{} on {}: {}; accepted creates {creates}; clientTokens {:?}",
                    p.name,
                    p.gateway,
                    ready_summary(r),
                    tokens.get(&p.name)
                ));
            }
            anyhow::bail!(
                "not all {ROUTES} routes Ready after {:?} ({} objects, {} not Ready, {} failed):\n\
                 {}\nCreateVpnPbrRouteEntry answers: {}\n--- operator log ---\n{}",
                started.elapsed(),
                routes.len(),
                not_ready.len(),
                failed.len(),
                lines.join("\n"),
                counters["calls"]["CreateVpnPbrRouteEntry"],
                env.log_tail()
            );
        }
    };
    eprintln!(
        "{ROUTES} routes applied in {applied_in:?}, all Ready after {:?}; {} with more than one \
         clientToken",
        started.elapsed(),
        tokens.values().filter(|t| t.len() > 1).count()
    );

    let counters = env.emu.counters().await?;
    let creates = accepted_creates(&counters);
    assert_eq!(
        creates.len(),
        ROUTES,
        "accepted creates name exactly the {ROUTES} entries: {creates:?}"
    );
    let entries = env.emu.entries().await?;
    assert_eq!(entries.len(), ROUTES, "one cloud entry per route");
    let by_name: HashMap<String, &VpnPbrRoute> = routes.iter().map(|r| (r.name_any(), r)).collect();
    let mut wrong = Vec::new();
    for p in &planned {
        let id = (
            p.gateway.to_owned(),
            p.source.clone(),
            p.dest.clone(),
            p.hop.clone(),
        );
        let n = creates.get(&id).copied().unwrap_or(0);
        if n != 1 {
            wrong.push(format!(
                "{}: {n} accepted creates; clientTokens {:?}",
                p.name,
                tokens.get(&p.name)
            ));
        }
        let key = EntryKey::new(&p.source, &p.dest, &p.hop);
        let Some((_, entry)) = entries.iter().find(|(g, e)| {
            g == p.gateway
                && e["RouteSource"] == key.source
                && e["RouteDest"] == key.dest
                && e["NextHop"] == key.next_hop
        }) else {
            wrong.push(format!("{}: no cloud entry", p.name));
            continue;
        };
        let r = by_name[&p.name];
        let st = r.status.as_ref().expect("status of a Ready route");
        if st.state.as_deref() != entry["State"].as_str() {
            wrong.push(format!(
                "{}: status.state {:?}, cloud State {}",
                p.name, st.state, entry["State"]
            ));
        }
        let want_time = entry["CreateTime"].as_i64().map(millis_rfc3339);
        if st.create_time != want_time {
            wrong.push(format!(
                "{}: status.createTime {:?}, cloud CreateTime {want_time:?}",
                p.name, st.create_time
            ));
        }
        let want_state = if p.spec["publishVpc"] == true {
            "published"
        } else {
            "normal"
        };
        if entry["State"] != want_state {
            wrong.push(format!(
                "{}: cloud State {} for publishVpc {}",
                p.name, entry["State"], p.spec["publishVpc"]
            ));
        }
        if entry["Weight"] != p.spec["weight"] {
            wrong.push(format!(
                "{}: cloud Weight {} for weight {}",
                p.name, entry["Weight"], p.spec["weight"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} route(s) wrong:\n{}\ncalls: {:?}",
        wrong.len(),
        wrong.join("\n"),
        emulator::calls(&counters)
    );
    Ok(())
}

#[tokio::test]
async fn dual_tunnel_weight_zero_routes_stay_ready_without_weight_calls() -> anyhow::Result<()> {
    const GW: &str = "vpn-dual";
    let gateways = [Gateway {
        id: GW,
        priority: true,
        dual_tunnel: true,
        update_ms: 300,
    }];
    // The integration tests' resync (3 s, tests/support/mod.rs): three drift checks in ~10 s.
    let env = Env::start_ready("dualtunnel", &realistic_config(&gateways, None), "3s").await?;
    let hop1 = hop(GW, 1);
    let hop2 = hop(GW, 2);
    let routes = [
        (
            "standby-a",
            "192.168.60.0/24",
            "10.60.0.0/16",
            &hop1,
            0,
            None,
        ),
        (
            "standby-b",
            "192.168.61.0/24",
            "10.61.0.0/16",
            &hop2,
            0,
            Some(20),
        ),
        (
            "active",
            "192.168.62.0/24",
            "10.62.0.0/16",
            &hop1,
            100,
            None,
        ),
    ];
    for (name, src, dst, hop, weight, prio) in &routes {
        let mut s = spec(GW, src, dst, hop, *weight, false);
        if let Some(p) = prio {
            s["priority"] = json!(p);
        }
        env.apply(name, s).await;
    }
    for (name, ..) in &routes {
        env.ready(name).await?;
    }
    // The documented behaviour (docs/emulator.md, "Dual-tunnel gateways"): the weight does not
    // take effect and is listed as 100.
    for (name, src, dst, hop, _, prio) in &routes {
        let entry = env
            .emu
            .entry(GW, &EntryKey::new(src, dst, hop))
            .await?
            .unwrap_or_else(|| panic!("{name}: no cloud entry"));
        assert_eq!(entry["Weight"], 100, "{name}: {entry}");
        assert_eq!(entry["Priority"], prio.unwrap_or(10), "{name}: {entry}");
    }

    // At least three resyncs, and at least two of them with a fresh list (a resync re-reads a
    // list older than 5 s, src/controller/context.rs), so the spec's weight 0 has been compared
    // with a listed 100 again and again.
    let lists_before = env.calls_any("DescribeVpnPbrRouteEntries").await?;
    let waited = tokio::time::Instant::now();
    loop {
        for (name, ..) in &routes {
            let r = env.api.get(name).await?;
            assert!(
                ready_is(&r, ConditionStatus::True, None),
                "{name} left Ready on a dual-tunnel gateway: {}\n--- operator log ---\n{}",
                ready_summary(&r),
                env.log_tail()
            );
        }
        let lists = env.calls_any("DescribeVpnPbrRouteEntries").await? - lists_before;
        if waited.elapsed() >= Duration::from_secs(11) && lists >= 2 {
            eprintln!(
                "Ready for {:?} after Ready, {lists} list reads",
                waited.elapsed()
            );
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(25),
            "the resyncs read the gateway's list: {lists} list calls in {:?}",
            waited.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counters = env.emu.counters().await?;
    for action in [
        "ModifyVpnPbrRouteEntryWeight",
        "ModifyVpnPbrRouteEntryAttribute",
        "DeleteVpnPbrRouteEntry",
    ] {
        assert_eq!(
            env.calls_any(action).await?,
            0,
            "no {action} for routes whose only difference is the dual-tunnel weight; calls: {:?}",
            emulator::calls(&counters)
        );
    }
    for (name, src, dst, hop, ..) in &routes {
        assert_eq!(
            env.emu
                .accepted_creates(GW, &EntryKey::new(src, dst, hop))
                .await?,
            1,
            "{name}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn disagreeing_publishers_the_younger_waits_and_nothing_flips() -> anyhow::Result<()> {
    const GW: &str = "vpn-pub";
    let (dest, old_src, young_src) = ("10.70.0.0/16", "192.168.70.0/24", "192.168.71.0/24");
    let (env, hop) = Env::start_plain("publishers", GW, 300).await?;
    env.apply("older", spec(GW, old_src, dest, &hop, 100, true))
        .await;
    let older = env
        .wait_for("older", "Ready=True with state published", |r| {
            ready_is(r, ConditionStatus::True, None) && state(r) == Some("published")
        })
        .await?;
    assert_eq!(state(&older), Some("published"));
    let publishes = env.calls_any("PublishVpnRouteEntry").await?;
    eprintln!("PublishVpnRouteEntry calls once the older is Ready: {publishes}");

    env.apply("younger", spec(GW, young_src, dest, &hop, 100, false))
        .await;
    let younger = env
        .wait_for("younger", "Ready=False PublishConflict", |r| {
            ready_is(r, ConditionStatus::False, Some("PublishConflict"))
        })
        .await?;
    let message = &condition(&younger, "Ready").expect("Ready").message;
    assert!(
        message.contains("older"),
        "names the older object: {message}"
    );
    env.warning("younger", "PublishConflict").await?;

    // A few resyncs (3 s each): nothing flips.
    let young_key = EntryKey::new(young_src, dest, &hop);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let o = env.api.get("older").await?;
        assert!(
            ready_is(&o, ConditionStatus::True, None) && state(&o) == Some("published"),
            "the older stays Ready and published: {} state {:?}\n--- operator log ---\n{}",
            ready_summary(&o),
            state(&o),
            env.log_tail()
        );
        let listed = env
            .emu
            .entry(GW, &EntryKey::new(old_src, dest, &hop))
            .await?
            .map(|e| e["State"].clone());
        assert_eq!(
            listed,
            Some(json!("published")),
            "the older's entry stays published in the cloud"
        );
        let y = env.api.get("younger").await?;
        assert!(
            ready_is(&y, ConditionStatus::False, Some("PublishConflict")),
            "the younger keeps waiting: {}",
            ready_summary(&y)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        env.calls_any("PublishVpnRouteEntry").await?,
        publishes,
        "no publish call since the older was Ready: calls {:?}",
        emulator::calls(&env.emu.counters().await?)
    );
    assert_eq!(
        env.emu.accepted_creates(GW, &young_key).await?,
        0,
        "the younger waits: no create"
    );
    env.patch_spec("younger", json!({"publishVpc": true})).await;
    let younger = env
        .wait_for("younger", "Ready=True once both publish", |r| {
            ready_is(r, ConditionStatus::True, None)
        })
        .await?;
    assert_eq!(state(&younger), Some("published"));
    let entry = env
        .emu
        .entry(GW, &young_key)
        .await?
        .expect("younger's entry");
    assert_eq!(entry["State"], "published");
    assert_eq!(env.emu.accepted_creates(GW, &young_key).await?, 1);
    let o = env.api.get("older").await?;
    assert!(
        ready_is(&o, ConditionStatus::True, None) && state(&o) == Some("published"),
        "the older is still Ready and published: {}",
        ready_summary(&o)
    );
    Ok(())
}

#[tokio::test]
async fn a_key_without_delete_permission_says_which_action_is_missing() -> anyhow::Result<()> {
    const GW: &str = "vpn-ram";
    // Every action the operator calls except the delete (pattern syntax: docs/emulator.md,
    // "Request checks").
    let policy = r#"["vpc:Describe*", "vpc:CreateVpnPbrRouteEntry", "vpc:ModifyVpnPbrRouteEntry*", "vpc:PublishVpnRouteEntry"]"#;
    let env = Env::start_single("nodelete", Gateway::single(GW, true, 300), Some(policy)).await?;
    let hop = hop(GW, 1);
    let (src, dst) = ("192.168.80.0/24", "10.80.0.0/16");
    env.apply("r", spec(GW, src, dst, &hop, 100, true)).await;
    env.ready("r").await?;
    env.delete("r").await;
    let r = env
        .wait_for(
            "r",
            "Ready=False CleanupBlocked naming vpc:DeleteVpnPbrRouteEntry",
            |r| {
                r.metadata.deletion_timestamp.is_some()
                    && condition(r, "Ready").is_some_and(|c| {
                        c.status == ConditionStatus::False
                            && c.reason == "CleanupBlocked"
                            && c.message.contains("vpc:DeleteVpnPbrRouteEntry")
                    })
            },
        )
        .await?;
    let synced = condition(&r, "Synced");
    assert!(
        synced.is_some_and(|c| c.status == ConditionStatus::False && c.reason == "CleanupBlocked"),
        "Synced says the same: {synced:?}"
    );
    let warning = env.warning("r", "CleanupBlocked").await?;
    let note = warning.note.unwrap_or_default();
    assert!(
        note.contains("vpc:DeleteVpnPbrRouteEntry"),
        "the warning names the missing action: {note}"
    );
    assert!(
        env.emu.calls("DeleteVpnPbrRouteEntry", "Forbidden").await? >= 1,
        "the delete was refused by the cloud"
    );
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 0);
    let key = EntryKey::new(src, dst, &hop);
    assert!(
        env.emu.entry(GW, &key).await?.is_some(),
        "the entry stays in the cloud"
    );
    let still = env.api.get_opt("r").await?;
    assert!(
        still
            .as_ref()
            .is_some_and(|r| r.finalizers().iter().any(|f| f == FINALIZER)),
        "the finalizer holds the object: {still:?}"
    );

    // The way out the condition names: keep the entry and let the object go.
    env.patch_spec("r", json!({"deletionPolicy": "Orphan"}))
        .await;
    env.gone("r")
        .await
        .context("after deletionPolicy: Orphan")?;
    assert!(
        env.emu.entry(GW, &key).await?.is_some(),
        "Orphan keeps the entry"
    );
    Ok(())
}

#[tokio::test]
async fn a_deleting_gateway_ends_retries_and_lets_deletions_finish() -> anyhow::Result<()> {
    const GW: &str = "vpn-del";
    let (env, hop) = Env::start_plain("gwdeleting", GW, 300).await?;
    let (src, dst) = ("192.168.90.0/24", "10.90.0.0/16");
    env.apply("r", spec(GW, src, dst, &hop, 100, false)).await;
    env.ready("r").await?;
    // Deleting with no end (docs/emulator.md, admin `gateways/status`): mutations get
    // IncorrectStatus.VpnGateway, reads work and list the entry.
    env.admin_post(
        "gateways/status",
        json!({"VpnGatewayId": GW, "Status": "deleting"}),
    )
    .await?;
    env.delete("r").await;
    env.gone_within("r", Duration::from_secs(20)).await?;
    // Time for a retry that should not happen.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refused = env.calls_with_code("IncorrectStatus.VpnGateway").await?;
    eprintln!("mutations refused with IncorrectStatus.VpnGateway: {refused}");
    assert!(
        refused <= 2,
        "a deleting gateway ends the retries: {refused} refused mutations; calls {:?}",
        emulator::calls(&env.emu.counters().await?)
    );
    assert_eq!(
        env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?,
        0,
        "no delete could succeed, none was needed"
    );
    let (status, _) = env
        .emu
        .gateway_busy_for(GW)
        .await?
        .expect("the gateway still exists");
    assert_eq!(status, "deleting");
    Ok(())
}

/// `names` as listed, each with its `Ready` summary and accepted creates, for failure messages.
async fn describe_routes(env: &Env, planned: &[Planned], names: &[String]) -> String {
    let mut lines = Vec::new();
    for name in names.iter().take(12) {
        let p = planned.iter().find(|p| p.name == *name).expect("planned");
        let summary = match env.api.get_opt(name).await {
            Ok(Some(r)) => ready_summary(&r),
            Ok(None) => "gone".to_owned(),
            Err(e) => format!("unreadable: {e}"),
        };
        let creates = env
            .emu
            .accepted_creates(p.gateway, &EntryKey::new(&p.source, &p.dest, &p.hop))
            .await
            .unwrap_or(u64::MAX);
        lines.push(format!("{name}: {summary}; accepted creates {creates}"));
    }
    lines.join("\n")
}

#[tokio::test]
async fn a_third_of_140_routes_on_one_gateway_deleted_while_the_rest_resync() -> anyhow::Result<()>
{
    // One gateway with three pages of routes, listed in a new order on every call, while its
    // routes are deleted (each delete moves the pages) and the others re-check it every 3 s:
    // a route must never take a list that lacks its entry for its entry being gone
    // (docs/architecture.md, "Evidence of absence").
    const GW: &str = "vpn-pages";
    const ROUTES: usize = 140;
    let env = Env::start_single("pages", Gateway::single(GW, false, 100), None).await?;
    let planned: Vec<Planned> = (0..ROUTES)
        .map(|i| {
            let source = format!("192.168.{}.0/24", i % 7);
            let dest = format!("10.{}.{}.0/24", 120 + i / 250, i % 250);
            let hop = hop(GW, 1 + i % 2);
            Planned {
                name: format!("p{i:03}"),
                gateway: GW,
                spec: spec(GW, &source, &dest, &hop, 100, false),
                source,
                dest,
                hop,
            }
        })
        .collect();
    let started = std::time::Instant::now();
    futures::stream::iter(&planned)
        .map(|p| env.apply(&p.name, p.spec.clone()))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let routes = env.api.list(&ListParams::default()).await?.items;
        let not_ready: Vec<String> = routes
            .iter()
            .filter(|r| !ready_is(r, ConditionStatus::True, None))
            .map(ResourceExt::name_any)
            .collect();
        if routes.len() == ROUTES && not_ready.is_empty() {
            break;
        }
        let refused: Vec<String> = routes
            .iter()
            .filter(|r| ready_is(r, ConditionStatus::False, Some("AlreadyExists")))
            .map(ResourceExt::name_any)
            .collect();
        if !refused.is_empty() || tokio::time::Instant::now() >= deadline {
            let shown = if refused.is_empty() {
                &not_ready
            } else {
                &refused
            };
            anyhow::bail!(
                "not all {ROUTES} routes Ready after {:?}, {} refused as AlreadyExists:\n{}\n\
                 --- operator log ---\n{}",
                started.elapsed(),
                refused.len(),
                describe_routes(&env, &planned, shown).await,
                env.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{ROUTES} routes on one gateway Ready after {:?}",
        started.elapsed()
    );

    let deleted: Vec<&Planned> = planned.iter().step_by(3).collect();
    let kept: Vec<&Planned> = planned
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, p)| p)
        .collect();
    // Every version of every kept route from here on, from a watch (no version is missed):
    // each must stay Ready.
    let left_ready: Arc<Mutex<Vec<String>>> = Arc::default();
    let watch = tokio::spawn({
        let left_ready = left_ready.clone();
        let kept: BTreeSet<String> = kept.iter().map(|p| p.name.clone()).collect();
        let stream = watcher(env.api.clone(), watcher::Config::default()).applied_objects();
        async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Ok(r) = item
                    && kept.contains(&r.name_any())
                    && !ready_is(&r, ConditionStatus::True, None)
                {
                    let mut v = left_ready.lock().unwrap_or_else(PoisonError::into_inner);
                    v.push(format!("{}: {}", r.name_any(), ready_summary(&r)));
                }
            }
        }
    });
    let lists_before = env.calls_any("DescribeVpnPbrRouteEntries").await?;
    let deleting = std::time::Instant::now();
    // Spread over about 25 s, so that many lists of the kept routes' drift checks run while
    // the deletions move the pages.
    for p in &deleted {
        env.delete(&p.name).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let routes = env.api.list(&ListParams::default()).await?.items;
        if routes.len() == kept.len() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let left: Vec<String> = routes
                .iter()
                .map(ResourceExt::name_any)
                .filter(|n| deleted.iter().any(|p| p.name == *n))
                .collect();
            anyhow::bail!(
                "{} deleted routes still there after {:?}:\n{}\n--- operator log ---\n{}",
                left.len(),
                deleting.elapsed(),
                describe_routes(&env, &planned, &left).await,
                env.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{} routes deleted in {:?}; {} list reads meanwhile",
        deleted.len(),
        deleting.elapsed(),
        env.calls_any("DescribeVpnPbrRouteEntries").await? - lists_before
    );
    // More drift checks of the kept routes (a list every 3 to 5 s).
    tokio::time::sleep(Duration::from_secs(15)).await;
    watch.abort();

    let left_ready = left_ready
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        left_ready.is_empty(),
        "{} versions of kept routes not Ready:\n{}\n--- operator log ---\n{}",
        left_ready.len(),
        left_ready.join("\n"),
        env.log_tail()
    );
    let counters = env.emu.counters().await?;
    let creates = accepted_creates(&counters);
    let twice: Vec<String> = planned
        .iter()
        .filter(|p| {
            creates
                .get(&(
                    GW.to_owned(),
                    p.source.clone(),
                    p.dest.clone(),
                    p.hop.clone(),
                ))
                .copied()
                != Some(1)
        })
        .map(|p| p.name.clone())
        .collect();
    assert!(
        twice.is_empty(),
        "routes not created exactly once: {twice:?}"
    );
    let listed: BTreeSet<(String, String, String)> = env
        .emu
        .gateway_entries(GW)
        .await?
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("RouteSource"), s("RouteDest"), s("NextHop"))
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = kept
        .iter()
        .map(|p| (p.source.clone(), p.dest.clone(), p.hop.clone()))
        .collect();
    assert_eq!(
        listed.difference(&want).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "entries left behind by deleted routes"
    );
    assert_eq!(
        want.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "kept routes without their entry"
    );
    eprintln!(
        "DescribeVpnPbrRouteEntries calls in all: {}",
        env.calls_any("DescribeVpnPbrRouteEntries").await?
    );
    Ok(())
}

#[tokio::test]
async fn a_list_that_never_adds_up_holds_a_deletion_and_keeps_routes_ready() -> anyhow::Result<()> {
    // Two pages of routes, and someone replacing a route around every list answer
    // (docs/emulator.md, `gateways/list_churn`): no list is proven whole, so nothing may be
    // concluded from one (README.md, troubleshooting `ListInconsistent`).
    const GW: &str = "vpn-churn";
    const ROUTES: usize = 52;
    let (env, hop) = Env::start_plain("churn", GW, 100).await?;
    let name = |i: usize| format!("c{i:02}");
    let key = |i: usize| {
        (
            format!("192.168.{}.0/24", i % 7),
            format!("10.130.{i}.0/24"),
        )
    };
    for i in 0..ROUTES {
        let (src, dst) = key(i);
        env.apply(&name(i), spec(GW, &src, &dst, &hop, 100, false))
            .await;
    }
    for i in 0..ROUTES {
        env.ready(&name(i)).await?;
    }
    env.admin_post("gateways/list_churn", json!({"VpnGatewayId": GW}))
        .await?;
    env.delete(&name(0)).await;
    let inconsistent = |r: &VpnPbrRoute| {
        condition(r, "Synced")
            .is_some_and(|c| c.status == ConditionStatus::False && c.reason == "ListInconsistent")
    };
    let waiting = env
        .wait_for(
            &name(0),
            "the deletion waits: Synced=False ListInconsistent",
            |r| r.metadata.deletion_timestamp.is_some() && inconsistent(r),
        )
        .await?;
    let message = &condition(&waiting, "Synced").expect("Synced").message;
    assert!(message.starts_with("deleting: "), "{message}");
    assert!(
        waiting.finalizers().iter().any(|f| f == FINALIZER),
        "the finalizer holds the object"
    );
    // The others' drift checks fail the same way, and they stay Ready.
    env.wait_for(
        &name(1),
        "a drift check says ListInconsistent",
        inconsistent,
    )
    .await?;
    for i in 1..ROUTES {
        let r = env.api.get(&name(i)).await?;
        assert!(
            ready_is(&r, ConditionStatus::True, None),
            "{} left Ready: {}",
            name(i),
            ready_summary(&r)
        );
    }
    // The delete may have gone out (from a list proven before the churn began), but nothing
    // confirms it: the object keeps waiting, and says so.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = env.api.get(&name(0)).await?;
    assert!(
        inconsistent(&still) && still.finalizers().iter().any(|f| f == FINALIZER),
        "the deletion still waits: {:?}",
        condition(&still, "Synced")
    );
    let (src0, dst0) = key(0);
    let key0 = EntryKey::new(&src0, &dst0, &hop);
    let metrics = env.op.metrics().await?;
    let given_up = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vpn_pbr_list_inconsistent_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        given_up >= 1.0,
        "vpn_pbr_list_inconsistent_total {given_up}"
    );

    // Once the list holds still, the deletion ends and the others are in sync again.
    env.admin_post(
        "gateways/list_churn",
        json!({"VpnGatewayId": GW, "On": false}),
    )
    .await?;
    env.gone(&name(0)).await?;
    assert!(env.emu.entry(GW, &key0).await?.is_none(), "entry deleted");
    env.wait_for(&name(1), "Synced=True again", |r| {
        condition(r, "Synced").is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await?;
    for i in 0..ROUTES {
        let (src, dst) = key(i);
        assert_eq!(
            env.emu
                .accepted_creates(GW, &EntryKey::new(&src, &dst, &hop))
                .await?,
            1,
            "{}",
            name(i)
        );
    }
    Ok(())
}
