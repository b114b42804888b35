//! The API operations: read parameters, apply them to the [`World`], build the response body
//! (without `RequestId`, which the server adds). Pure: the time comes in as an argument.

use serde_json::{Value, json};

use super::error::ApiError;
use super::idempotency::{Lookup, TokenStore};
use super::params::Params;
use super::world::{
    Connection, CreateEntry, DEFAULT_ACCOUNT_ID, DUAL_TUNNEL_WEIGHT, EntrySelector, Gateway,
    PbrEntry, Publish, RouteKey, Visibility, World,
};

pub use crate::actions::{ACTIONS, MUTATIONS, STS_VERSION, VPC_VERSION, is_mutation, known_action};

/// Mutable state the operations work on.
#[derive(Debug, Default)]
pub struct EmuState {
    pub world: World,
    pub tokens: TokenStore,
}

/// Result of an operation.
#[derive(Debug)]
pub struct Outcome {
    pub body: Value,
    /// Set when a create was accepted (not replayed): the route it created.
    pub created: Option<RouteKey>,
}

impl Outcome {
    fn body(body: Value) -> Self {
        Self {
            body,
            created: None,
        }
    }
}

/// Runs a VPC action as a key of the default account (which sees every gateway of a config
/// that names no accounts).
pub fn run(action: &str, p: &Params, st: &mut EmuState, now_ms: u64) -> Result<Outcome, ApiError> {
    run_as(DEFAULT_ACCOUNT_ID, action, p, st, now_ms)
}

/// Runs a VPC action as a key of `account`: gateways (with their routes and connections) of
/// other accounts do not exist for it. `action` must be one of [`ACTIONS`] except STS.
pub fn run_as(
    account: &str,
    action: &str,
    p: &Params,
    st: &mut EmuState,
    now_ms: u64,
) -> Result<Outcome, ApiError> {
    st.world.settle(now_ms);
    match action {
        "CreateVpnPbrRouteEntry" => create(account, p, st, now_ms),
        "DeleteVpnPbrRouteEntry" => {
            let region = p.required("RegionId")?;
            let sel = selector(p)?;
            mutate(account, action, p, st, now_ms, |w| {
                w.delete_entry(account, region, &sel, now_ms)?;
                Ok(json!({}))
            })
        }
        "ModifyVpnPbrRouteEntryWeight"
        | "ModifyVpnPbrRouteEntryPriority"
        | "ModifyVpnPbrRouteEntryAttribute" => {
            let region = p.required("RegionId")?;
            let sel = selector(p)?;
            let (new_weight, new_priority) = modification(action, p, &sel)?;
            mutate(account, action, p, st, now_ms, |w| {
                w.modify_entry(account, region, &sel, new_weight, new_priority, now_ms)?;
                Ok(json!({}))
            })
        }
        "PublishVpnRouteEntry" => {
            let region = p.required("RegionId")?;
            let req = Publish {
                gateway_id: p.required("VpnGatewayId")?.to_owned(),
                route_dest: p.required("RouteDest")?.to_owned(),
                next_hop: p.required("NextHop")?.to_owned(),
                route_type: p.required("RouteType")?.to_owned(),
                publish: p.required_bool("PublishVpc")?,
            };
            mutate(account, action, p, st, now_ms, |w| {
                w.publish(account, region, &req, now_ms)?;
                Ok(json!({}))
            })
        }
        "DescribeVpnPbrRouteEntries" => {
            let region = p.required("RegionId")?;
            let gateway = p.required("VpnGatewayId")?;
            let (number, size) = p.paging()?;
            st.world.gateway(account, region, gateway)?;
            st.world
                .before_list_page(gateway, u32::try_from(number).unwrap_or(u32::MAX), now_ms);
            let gw = st.world.gateway(account, region, gateway)?;
            let (shuffle, total, churn) =
                (st.world.shuffles(Some(gw)), gw.entries.len(), gw.list_churn);
            let mut order: Vec<Option<usize>> = st
                .world
                .list_order(shuffle, total)
                .into_iter()
                .map(Some)
                .collect();
            if churn && let Some(at) = churn_position(total, number, size) {
                order.insert(at, None);
            }
            let gw = st.world.gateway(account, region, gateway)?;
            let items: Vec<Value> = page(&order, number, size)
                .iter()
                .filter_map(|i| i.and_then(|i| gw.entries.get(i)))
                .map(|e| list_item(&st.world, gw, e))
                .collect();
            Ok(Outcome::body(json!({
                "TotalCount": order.len(),
                "PageNumber": number,
                "PageSize": size,
                "VpnPbrRouteEntries": {"VpnPbrRouteEntry": items},
            })))
        }
        "DescribeVpnGateway" => {
            let region = p.required("RegionId")?;
            let gateway = p.required("VpnGatewayId")?;
            let gw = st.world.gateway(account, region, gateway)?;
            Ok(Outcome::body(gateway_body(gw, now_ms)))
        }
        "DescribeVpnConnection" => {
            let region = p.required("RegionId")?;
            let id = p.required("VpnConnectionId")?;
            let c = st.world.connection(account, region, id)?;
            Ok(Outcome::body(connection_body(&st.world, c, false)))
        }
        "DescribeVpnConnections" => {
            let region = p.required("RegionId")?;
            st.world.check_region(region)?;
            let (number, size) = p.paging()?;
            let gw_filter = p.get("VpnGatewayId");
            let id_filter = p.get("VpnConnectionId");
            let selected = |w: &World, c: &Connection| {
                c.region == region
                    && w.account_of(c) == Some(account)
                    && gw_filter.is_none_or(|g| c.gateway_id == g)
                    && id_filter.is_none_or(|i| c.id == i)
            };
            let total = st
                .world
                .connections
                .values()
                .filter(|c| selected(&st.world, c))
                .count();
            let shuffle = st.world.shuffles(None);
            let order = st.world.list_order(shuffle, total);
            let all: Vec<&Connection> = st
                .world
                .connections
                .values()
                .filter(|c| selected(&st.world, c))
                .collect();
            let items: Vec<Value> = page(&order, number, size)
                .iter()
                .filter_map(|&i| all.get(i))
                .map(|c| connection_body(&st.world, c, true))
                .collect();
            Ok(Outcome::body(json!({
                "TotalCount": total,
                "PageNumber": number,
                "PageSize": size,
                "VpnConnections": {"VpnConnection": items},
            })))
        }
        _ => Err(ApiError::action_not_found()),
    }
}

fn create(account: &str, p: &Params, st: &mut EmuState, now_ms: u64) -> Result<Outcome, ApiError> {
    let region = p.required("RegionId")?;
    let req = CreateEntry {
        key: route_key(p)?,
        weight: p.required_int("Weight")?,
        publish_vpc: p.required_bool("PublishVpc")?,
        priority: p.int("Priority")?,
        description: p.get("Description").map(str::to_owned),
        overlay_mode: p.get("OverlayMode").map(str::to_owned),
    };
    // A dry run checks everything a create would and changes nothing: no entry, no token
    // remembered or replayed, no update window (the SDK's DryRun description).
    if p.bool("DryRun")? == Some(true) {
        st.world.check_create(account, region, &req, now_ms)?;
        return Err(ApiError::dry_run());
    }
    let token = account_token(account, p);
    let token = token.as_deref();
    let fingerprint = p.fingerprint();
    if let Some(t) = token
        && let Lookup::Replay(body) =
            st.tokens
                .lookup(t, "CreateVpnPbrRouteEntry", &fingerprint, now_ms)?
    {
        return Ok(Outcome::body(body));
    }
    let entry = st.world.create_entry(account, region, &req, now_ms)?;
    let gw_id = &req.key.gateway_id;
    // With `on_active` the route is not published yet when the create answers (the sample
    // answer of the API page says `normal` to a request with `PublishVpc=true`).
    let on_active = st
        .world
        .gateways
        .get(gw_id)
        .is_some_and(|g| st.world.visibility_of(g) == Visibility::OnActive);
    let state = if on_active { "normal" } else { entry.state() };
    let mut body = json!({
        "VpnInstanceId": gw_id,
        "RouteSource": entry.route_source,
        "RouteDest": entry.route_dest,
        "NextHop": entry.next_hop,
        "Weight": entry.weight,
        "Priority": entry.priority,
        "OverlayMode": entry.overlay_mode,
        "State": state,
        "CreateTime": entry.create_time_ms,
    });
    if let (Some(d), Some(obj)) = (&entry.description, body.as_object_mut()) {
        obj.insert("Description".to_owned(), json!(d));
    }
    if let Some(t) = token {
        st.tokens.remember(
            t,
            "CreateVpnPbrRouteEntry",
            fingerprint,
            body.clone(),
            now_ms,
        );
    }
    let created = RouteKey {
        gateway_id: gw_id.clone(),
        route_source: entry.route_source,
        route_dest: entry.route_dest,
        next_hop: entry.next_hop,
    };
    Ok(Outcome {
        body,
        created: Some(created),
    })
}

/// The request's `ClientToken` in the namespace of `account`: one account's token never
/// replays another account's answer.
fn account_token(account: &str, p: &Params) -> Option<String> {
    p.get("ClientToken").map(|t| format!("{account}/{t}"))
}

/// Runs a mutation under the ClientToken rules.
fn mutate(
    account: &str,
    action: &str,
    p: &Params,
    st: &mut EmuState,
    now_ms: u64,
    f: impl FnOnce(&mut World) -> Result<Value, ApiError>,
) -> Result<Outcome, ApiError> {
    let token = account_token(account, p);
    let token = token.as_deref();
    let fingerprint = p.fingerprint();
    if let Some(t) = token
        && let Lookup::Replay(body) = st.tokens.lookup(t, action, &fingerprint, now_ms)?
    {
        return Ok(Outcome::body(body));
    }
    let body = f(&mut st.world)?;
    if let Some(t) = token {
        st.tokens
            .remember(t, action, fingerprint, body.clone(), now_ms);
    }
    Ok(Outcome::body(body))
}

fn route_key(p: &Params) -> Result<RouteKey, ApiError> {
    Ok(RouteKey {
        gateway_id: p.required("VpnGatewayId")?.to_owned(),
        route_source: p.required("RouteSource")?.to_owned(),
        route_dest: p.required("RouteDest")?.to_owned(),
        next_hop: p.required("NextHop")?.to_owned(),
    })
}

/// Delete and Modify calls repeat the entry's current `Weight` (required) and may repeat its
/// current `Priority`.
/// The new weight and priority a modify action asks for: `NewWeight` of the Weight action,
/// `NewPriority` of the Priority action, either or both of the Attribute action (which also
/// needs the current `Priority`).
fn modification(
    action: &str,
    p: &Params,
    sel: &EntrySelector,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    match action {
        "ModifyVpnPbrRouteEntryWeight" => Ok((Some(p.required_int("NewWeight")?), None)),
        "ModifyVpnPbrRouteEntryPriority" => Ok((None, Some(p.required_int("NewPriority")?))),
        _ => {
            if sel.priority.is_none() {
                return Err(ApiError::missing("Priority"));
            }
            let new_weight = p.int("NewWeight")?;
            let new_priority = p.int("NewPriority")?;
            if new_weight.is_none() && new_priority.is_none() {
                // Our choice: the API says one of the two is needed but not how it refuses.
                return Err(ApiError::missing("NewWeight"));
            }
            Ok((new_weight, new_priority))
        }
    }
}

fn selector(p: &Params) -> Result<EntrySelector, ApiError> {
    Ok(EntrySelector {
        key: route_key(p)?,
        weight: p.required_int("Weight")?,
        priority: p.int("Priority")?,
    })
}

/// `list_churn`: where the route someone makes just before a list answer (and deletes just
/// after it) is listed among `total` others, so that the page asked for does not show it: last,
/// or first when the page asked for is the last. `None` when the whole list fits on one page
/// (one answer shows everything; nothing to hide).
fn churn_position(total: usize, number: usize, size: usize) -> Option<usize> {
    if total < size {
        return None;
    }
    let start = (number - 1).saturating_mul(size);
    let shows_last = (start..start.saturating_add(size)).contains(&total);
    Some(if shows_last { 0 } else { total })
}

fn page<T>(items: &[T], number: usize, size: usize) -> &[T] {
    let start = (number - 1).saturating_mul(size).min(items.len());
    let end = start.saturating_add(size).min(items.len());
    &items[start..end]
}

/// A route as the list shows it; on a dual-tunnel gateway with the master tunnel of its next
/// hop (`NextHopTunnelId`, only in the list's SDK model) and the weight that applies there.
fn list_item(world: &World, gw: &Gateway, e: &PbrEntry) -> Value {
    let mut obj = e.api_fields();
    obj.insert("VpnInstanceId".to_owned(), json!(gw.id));
    if gw.traits.dual_tunnel {
        obj.insert("Weight".to_owned(), json!(DUAL_TUNNEL_WEIGHT));
        let tunnel = world
            .connections
            .get(&e.next_hop)
            .map(|c| c.tunnel_id(1))
            .unwrap_or_default();
        obj.insert("NextHopTunnelId".to_owned(), json!(tunnel));
    }
    Value::Object(obj)
}

pub fn gateway_body(gw: &Gateway, now_ms: u64) -> Value {
    // `Tag` is a JSON *string* of system tags; `PbrPriority` tells priority support.
    let mut tags = serde_json::Map::new();
    tags.insert("VpnEnableBgp".into(), json!("true"));
    tags.insert("VisuallySsl".into(), json!("true"));
    tags.insert("VpnNewImage".into(), json!("true"));
    if gw.priority_support {
        tags.insert("PbrPriority".into(), json!("true"));
    }
    let mut body = json!({
        "VpnGatewayId": gw.id,
        "VpcId": gw.vpc_id,
        "VSwitchId": gw.vswitch_id,
        "Name": gw.name,
        "Description": "",
        "Status": World::status(gw, now_ms),
        "BusinessStatus": gw.business_status,
        "ChargeType": "POSTPAY",
        "CreateTime": gw.create_time_ms,
        "EndTime": gw.create_time_ms + 10 * 365 * 24 * 3600 * 1000,
        "Spec": gw.spec,
        "InternetIp": gw.internet_ip,
        "IpsecVpn": "enable",
        "SslVpn": "disable",
        "SslMaxConnections": 0,
        "EnableBgp": false,
        "AutoPropagate": false,
        "GatewayType": "Traditional",
        "NetworkType": "public",
        "VpnType": "Normal",
        "Tag": Value::Object(tags).to_string(),
        "Tags": {"Tag": []},
        "EniInstanceIds": {"EniInstanceId": []},
    });
    // Returned only for gateways that make dual-tunnel connections (SDK model).
    if gw.traits.dual_tunnel
        && let Some(obj) = body.as_object_mut()
    {
        obj.insert(
            "DisasterRecoveryInternetIp".to_owned(),
            json!(gw.disaster_recovery_internet_ip),
        );
        obj.insert(
            "DisasterRecoveryVSwitchId".to_owned(),
            json!(gw.disaster_recovery_vswitch_id),
        );
    }
    body
}

fn connection_body(world: &World, c: &Connection, in_list: bool) -> Value {
    let mut v = json!({
        "VpnConnectionId": c.id,
        "VpnGatewayId": c.gateway_id,
        "CustomerGatewayId": c.customer_gateway_id,
        "Name": c.name,
        "LocalSubnet": c.local_subnet,
        "RemoteSubnet": c.remote_subnet,
        "CreateTime": c.create_time_ms,
        "State": "active",
        "Status": "ipsec_sa_established",
        "AttachType": "VPNGW",
        "NetworkType": "public",
        "EffectImmediately": false,
        "EnableDpd": true,
        "EnableNatTraversal": true,
        "EnableTunnelsBgp": false,
    });
    if let Some(obj) = v.as_object_mut() {
        // The single-connection answer lists user tags under `Tags`, the list under `Tag`.
        let key = if in_list { "Tag" } else { "Tags" };
        obj.insert(key.to_owned(), json!({"Tag": []}));
        // A dual-tunnel connection lists its two tunnels; the master's id is what
        // `NextHopTunnelId` names.
        if let Some(gw) = world.gateways.get(&c.gateway_id)
            && gw.traits.dual_tunnel
        {
            let tunnel = |index: u8, role: &str, ip: &str| {
                json!({
                    "TunnelId": c.tunnel_id(index),
                    "TunnelIndex": index,
                    "Role": role,
                    "State": "active",
                    "Status": "ipsec_sa_established",
                    "CustomerGatewayId": c.customer_gateway_id,
                    "InternetIp": ip,
                    "EnableDpd": "true",
                    "EnableNatTraversal": "true",
                })
            };
            obj.insert(
                "TunnelOptionsSpecification".to_owned(),
                json!({"TunnelOptions": [
                    tunnel(1, "master", &gw.internet_ip),
                    tunnel(2, "slave", &gw.disaster_recovery_internet_ip),
                ]}),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests;
