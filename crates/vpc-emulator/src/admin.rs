//! The unsigned admin API under `/_emulator/`: state dump, counters, reset, out-of-band
//! changes (drift) and fault settings. Paths and bodies are documented in `docs/emulator.md`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::FaultSettings;
use super::service::{Emulator, lock};
use super::world::{BASE_STATUSES, Change, EntryId, PbrEntry, World, parse_cidr};

type Reply = (StatusCode, Json<Value>);

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/state", get(state))
        .route("/counters", get(counters))
        .route("/reset", post(reset))
        .route("/entries/create", post(entry_create))
        .route("/entries/delete", post(entry_delete))
        .route("/entries/modify", post(entry_modify))
        .route("/gateways/delete", post(gateway_delete))
        .route("/gateways/lock", post(gateway_lock))
        .route("/gateways/busy", post(gateway_busy))
        .route("/gateways/status", post(gateway_status))
        .route("/gateways/list_churn", post(gateway_list_churn))
        .route("/faults", get(faults_get).put(faults_put).post(faults_put))
}

fn ok(v: Value) -> Reply {
    (StatusCode::OK, Json(v))
}

fn err(status: StatusCode, msg: impl Into<String>) -> Reply {
    (status, Json(json!({"error": msg.into()})))
}

async fn state(State(emu): State<Arc<Emulator>>) -> Reply {
    let now = emu.clock.now_ms();
    let mut st = lock(&emu.state);
    st.world.settle(now);
    let gateways: Vec<Value> = st
        .world
        .gateways
        .values()
        .map(|g| {
            json!({
                "VpnGatewayId": g.id,
                "RegionId": g.region,
                "VpcId": g.vpc_id,
                "Status": World::status(g, now),
                "BusinessStatus": g.business_status,
                "PbrPriority": g.priority_support,
                "PbrQuota": g.pbr_quota,
                "VpcRouteQuota": g.vpc_route_quota,
                "UpdateDurationMs": g.update_duration_ms,
                "BusyUntil": g.busy_until_ms,
                "StatusUntil": g.status_until_ms,
                "Visibility": st.world.visibility_of(g),
                "ListLagMs": st.world.list_lag_of(g),
                "DualTunnel": g.traits.dual_tunnel,
                "AccountId": g.account_id,
                "Entries": g.entries.iter().map(entry_json).collect::<Vec<_>>(),
                "PendingChanges": g.pending.iter().map(change_json).collect::<Vec<_>>(),
                "LaggingChanges": g.lagging.iter().map(lagging_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let connections: Vec<Value> = st
        .world
        .connections
        .values()
        .map(|c| json!({"VpnConnectionId": c.id, "VpnGatewayId": c.gateway_id, "RegionId": c.region}))
        .collect();
    ok(json!({"now_ms": now, "gateways": gateways, "connections": connections}))
}

fn entry_json(e: &PbrEntry) -> Value {
    let mut m = e.api_fields();
    m.insert("Description".to_owned(), json!(e.description));
    m.insert("OverlayMode".to_owned(), json!(e.overlay_mode));
    Value::Object(m)
}

/// A pending change, with the API's field names (`Change`: Create, Delete, Modify, Publish).
fn change_json(c: &Change) -> Value {
    match c {
        Change::Create(e) => {
            let mut v = entry_json(e);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("Change".to_owned(), json!("Create"));
            }
            v
        }
        Change::Delete(id) => json!({
            "Change": "Delete", "RouteSource": id.route_source, "RouteDest": id.route_dest,
            "NextHop": id.next_hop,
        }),
        Change::Modify {
            id,
            weight,
            priority,
        } => json!({
            "Change": "Modify", "RouteSource": id.route_source, "RouteDest": id.route_dest,
            "NextHop": id.next_hop, "Weight": weight, "Priority": priority,
        }),
        Change::Publish {
            route_dest,
            next_hop,
            publish,
        } => json!({
            "Change": "Publish", "RouteDest": route_dest, "NextHop": next_hop,
            "State": if *publish { "published" } else { "normal" },
        }),
    }
}

/// An applied change the list does not show yet, with the time from which it shows.
fn lagging_json((shows_at, c): &(u64, Change)) -> Value {
    let mut v = change_json(c);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ListedFrom".to_owned(), json!(shows_at));
    }
    v
}

async fn counters(State(emu): State<Arc<Emulator>>) -> Reply {
    ok(lock(&emu.counters).to_json())
}

async fn reset(State(emu): State<Arc<Emulator>>) -> Reply {
    emu.reset();
    tracing::info!("admin: reset");
    ok(json!({"ok": true}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EntryBody {
    vpn_gateway_id: String,
    route_source: String,
    route_dest: String,
    next_hop: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    priority: Option<u32>,
    /// `published` or `normal`.
    #[serde(default)]
    state: Option<String>,
    /// `entries/create` and `entries/delete`: not now, but just before the next list answer of
    /// the gateway for this page (`DescribeVpnPbrRouteEntries`, `PageNumber`).
    #[serde(default)]
    before_list_page: Option<u32>,
}

fn normalise(cidr: &str) -> Result<String, Reply> {
    parse_cidr(cidr)
        .map(|n| n.to_string())
        .map_err(|_| err(StatusCode::BAD_REQUEST, format!("bad CIDR {cidr}")))
}

fn published(state: Option<&str>) -> Result<Option<bool>, Reply> {
    match state {
        None => Ok(None),
        Some("published") => Ok(Some(true)),
        Some("normal") => Ok(Some(false)),
        Some(other) => Err(err(
            StatusCode::BAD_REQUEST,
            format!("State must be published or normal, not {other}"),
        )),
    }
}

/// Applies `f` to the entry named by `body`, bypassing every rule and the state machine.
fn with_entry(
    emu: &Emulator,
    body: &EntryBody,
    f: impl FnOnce(&mut Vec<PbrEntry>, usize),
) -> Reply {
    let (src, dst) = match (normalise(&body.route_source), normalise(&body.route_dest)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let now = emu.clock.now_ms();
    let mut st = lock(&emu.state);
    st.world.settle(now);
    let Some(gw) = st.world.gateways.get_mut(&body.vpn_gateway_id) else {
        return err(StatusCode::NOT_FOUND, "no such gateway");
    };
    let Some(idx) = gw
        .entries
        .iter()
        .position(|e| e.route_source == src && e.route_dest == dst && e.next_hop == body.next_hop)
    else {
        return err(StatusCode::NOT_FOUND, "no such entry");
    };
    f(&mut gw.entries, idx);
    drop(st);
    emu.touch();
    ok(json!({"ok": true}))
}

async fn entry_delete(State(emu): State<Arc<Emulator>>, Json(body): Json<EntryBody>) -> Reply {
    tracing::info!(gateway = %body.vpn_gateway_id, before_list_page = ?body.before_list_page, "admin: delete entry");
    let Some(page) = body.before_list_page else {
        return with_entry(&emu, &body, |entries, i| {
            entries.remove(i);
        });
    };
    let (src, dst) = match (normalise(&body.route_source), normalise(&body.route_dest)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let id = EntryId {
        route_source: src,
        route_dest: dst,
        next_hop: body.next_hop.clone(),
    };
    with_gateway(&emu, &body.vpn_gateway_id, |gw, _| {
        gw.before_list_page.push((page, Change::Delete(id)));
    })
}

async fn entry_modify(State(emu): State<Arc<Emulator>>, Json(body): Json<EntryBody>) -> Reply {
    let publish = match published(body.state.as_deref()) {
        Ok(p) => p,
        Err(e) => return e,
    };
    tracing::info!(gateway = %body.vpn_gateway_id, "admin: modify entry");
    with_entry(&emu, &body, |entries, i| {
        let e = &mut entries[i];
        if let Some(w) = body.weight {
            e.weight = w;
        }
        if let Some(p) = body.priority {
            e.priority = p;
        }
        if let Some(p) = publish {
            e.published = p;
        }
    })
}

async fn entry_create(State(emu): State<Arc<Emulator>>, Json(body): Json<EntryBody>) -> Reply {
    let (src, dst) = match (normalise(&body.route_source), normalise(&body.route_dest)) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let publish = match published(body.state.as_deref()) {
        Ok(p) => p.unwrap_or(false),
        Err(e) => return e,
    };
    tracing::info!(gateway = %body.vpn_gateway_id, before_list_page = ?body.before_list_page, "admin: create entry");
    with_gateway(&emu, &body.vpn_gateway_id, |gw, now| {
        let entry = PbrEntry {
            route_source: src,
            route_dest: dst,
            next_hop: body.next_hop.clone(),
            weight: body.weight.unwrap_or(100),
            priority: body.priority.unwrap_or(super::world::DEFAULT_PRIORITY),
            published: publish,
            description: None,
            overlay_mode: "Ipsec".to_owned(),
            create_time_ms: now,
        };
        match body.before_list_page {
            Some(page) => gw.before_list_page.push((page, Change::Create(entry))),
            None => gw.entries.push(entry),
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct GatewayBody {
    vpn_gateway_id: String,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    duration_ms: Option<u64>,
    /// `gateways/status`: the base status to put the gateway in.
    #[serde(default)]
    status: Option<String>,
    /// `gateways/delete`: show `deleting` this long before the gateway is gone.
    #[serde(default)]
    deleting_ms: Option<u64>,
    /// `gateways/list_churn`: on (default) or off.
    #[serde(default)]
    on: Option<bool>,
}

fn with_gateway(
    emu: &Emulator,
    id: &str,
    f: impl FnOnce(&mut super::world::Gateway, u64),
) -> Reply {
    let now = emu.clock.now_ms();
    let mut st = lock(&emu.state);
    st.world.settle(now);
    let Some(gw) = st.world.gateways.get_mut(id) else {
        return err(StatusCode::NOT_FOUND, "no such gateway");
    };
    f(gw, now);
    drop(st);
    emu.touch();
    ok(json!({"ok": true}))
}

async fn gateway_delete(State(emu): State<Arc<Emulator>>, Json(body): Json<GatewayBody>) -> Reply {
    tracing::info!(gateway = %body.vpn_gateway_id, deleting_ms = ?body.deleting_ms, "admin: delete gateway");
    if let Some(ms) = body.deleting_ms {
        return with_gateway(&emu, &body.vpn_gateway_id, |gw, now| {
            "deleting".clone_into(&mut gw.base_status);
            gw.status_until_ms = Some(now.saturating_add(ms));
        });
    }
    let now = emu.clock.now_ms();
    let mut st = lock(&emu.state);
    st.world.settle(now);
    if !st.world.remove_gateway(&body.vpn_gateway_id) {
        return err(StatusCode::NOT_FOUND, "no such gateway");
    }
    drop(st);
    emu.touch();
    ok(json!({"ok": true}))
}

/// Puts the gateway in a base status (`active`, `init`, `provisioning`, `deleting`); with
/// `DurationMs`, for that long: then a `deleting` gateway is gone, any other is `active`.
async fn gateway_status(State(emu): State<Arc<Emulator>>, Json(body): Json<GatewayBody>) -> Reply {
    let Some(status) = body.status.clone() else {
        return err(StatusCode::BAD_REQUEST, "Status is required");
    };
    if !BASE_STATUSES.contains(&status.as_str()) {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "Status must be one of {}, not {status}",
                BASE_STATUSES.join(", ")
            ),
        );
    }
    tracing::info!(gateway = %body.vpn_gateway_id, %status, duration_ms = ?body.duration_ms, "admin: gateway status");
    with_gateway(&emu, &body.vpn_gateway_id, |gw, now| {
        gw.base_status = status;
        gw.status_until_ms = body.duration_ms.map(|d| now.saturating_add(d));
    })
}

async fn gateway_lock(State(emu): State<Arc<Emulator>>, Json(body): Json<GatewayBody>) -> Reply {
    let locked = body.locked.unwrap_or(true);
    tracing::info!(gateway = %body.vpn_gateway_id, locked, "admin: lock gateway");
    with_gateway(&emu, &body.vpn_gateway_id, |gw, _| {
        gw.business_status = if locked { "FinancialLocked" } else { "Normal" }.to_owned();
    })
}

/// Around every list answer of the gateway someone makes a route where the page asked for does
/// not show it, and deletes it after (`ops::churn_position`): no multi-page list of it adds up.
async fn gateway_list_churn(
    State(emu): State<Arc<Emulator>>,
    Json(body): Json<GatewayBody>,
) -> Reply {
    let on = body.on.unwrap_or(true);
    tracing::info!(gateway = %body.vpn_gateway_id, on, "admin: list churn");
    with_gateway(&emu, &body.vpn_gateway_id, |gw, _| gw.list_churn = on)
}

async fn gateway_busy(State(emu): State<Arc<Emulator>>, Json(body): Json<GatewayBody>) -> Reply {
    let duration = body.duration_ms.unwrap_or(5000);
    with_gateway(&emu, &body.vpn_gateway_id, |gw, now| {
        gw.busy_until_ms = now + duration;
    })
}

async fn faults_get(State(emu): State<Arc<Emulator>>) -> Reply {
    let settings = lock(&emu.faults).settings().clone();
    ok(serde_json::to_value(settings).unwrap_or(Value::Null))
}

async fn faults_put(
    State(emu): State<Arc<Emulator>>,
    Json(settings): Json<FaultSettings>,
) -> Reply {
    if let Err(m) = settings.validate() {
        return err(StatusCode::BAD_REQUEST, m);
    }
    tracing::info!(rules = settings.rules.len(), rate_limit = ?settings.rate_limit_per_second, "admin: faults replaced");
    lock(&emu.faults).replace(settings);
    ok(json!({"ok": true}))
}
