//! The emulated cloud: gateways, their policy-based routes, IPsec connections, and the rules
//! and state machine the real service applies to them. Pure logic: every call takes the
//! current time (epoch milliseconds) so tests drive the clock.
//!
//! A gateway holds two views of its routes: `entries`, what `DescribeVpnPbrRouteEntries` shows,
//! and `pending`, accepted changes the gateway has not applied yet. With `visibility: immediate`
//! (the default) an accepted change lands in `entries` at once; with `on_active` it waits in
//! `pending` until the gateway's update window ends ([`World::settle`]). The rules always judge
//! a request against the effective routes (`entries` with `lagging` and `pending` applied): the
//! service knows what it accepted before the gateway shows it.
//!
//! With a list lag (`list_lag_ms`, `on_active` only) an applied change waits once more, in
//! `lagging`, until that long after the gateway turned `active`: `DescribeVpnGateway` already
//! says `active` while the list does not show the change yet.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use super::config::{BASE_STATUSES, DEFAULT_ACCOUNT_ID, DualTunnelWeightChange, Visibility};
use super::config::{Config, GatewayTraits, Settings};
use super::error::ApiError;

/// The switches of the world's behaviour, from the config's `settings` (a restored state file
/// takes them from the config too).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Behaviour {
    pub visibility: Visibility,
    pub shuffle_lists: bool,
    pub shuffle_seed: u64,
    pub cross_gateway_conflict: bool,
    pub dual_tunnel_weight_change: DualTunnelWeightChange,
    /// How long after a gateway turned `active` its list shows the changes it applied (0: at
    /// once); a gateway's own `list_lag_ms` overrides it.
    pub list_lag_ms: u64,
}

impl Behaviour {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            visibility: s.visibility,
            shuffle_lists: s.shuffle_lists,
            shuffle_seed: s.shuffle_seed.unwrap_or_else(rand::random),
            cross_gateway_conflict: s.cross_gateway_conflict,
            dual_tunnel_weight_change: s.dual_tunnel_weight_change,
            list_lag_ms: s.list_lag_ms.unwrap_or(0),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gateway {
    pub id: String,
    pub region: String,
    pub vpc_id: String,
    pub name: String,
    /// Configured base status; `updating` is derived from `busy_until_ms`.
    pub base_status: String,
    pub business_status: String,
    pub priority_support: bool,
    pub pbr_quota: usize,
    pub vpc_route_quota: usize,
    pub update_duration_ms: u64,
    pub busy_until_ms: u64,
    pub last_mutation_ms: Option<u64>,
    pub create_time_ms: u64,
    pub vswitch_id: String,
    pub internet_ip: String,
    pub spec: String,
    /// Policy-based routes as the Describe calls show them, oldest first.
    pub entries: Vec<PbrEntry>,
    /// Accepted changes not applied yet (only with `on_active` visibility), oldest first.
    #[serde(default)]
    pub pending: Vec<Change>,
    /// Applied changes the list does not show yet (only with a list lag), oldest first, each
    /// with the time from which it shows.
    #[serde(default)]
    pub lagging: Vec<(u64, Change)>,
    #[serde(flatten)]
    pub traits: GatewayTraits,
    /// Second IPsec address and vSwitch of a dual-tunnel gateway.
    #[serde(default)]
    pub disaster_recovery_internet_ip: String,
    #[serde(default)]
    pub disaster_recovery_vswitch_id: String,
    /// When set, at this time a `deleting` gateway is gone and any other base status is back
    /// to `active`.
    #[serde(default)]
    pub status_until_ms: Option<u64>,
    /// The account that owns the gateway: only its keys see it (and its routes and
    /// connections); to every other account it does not exist.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// Admin changes that wait for a list page: each is made (visible at once, no rules) just
    /// before the next `DescribeVpnPbrRouteEntries` of this gateway asking for that page.
    #[serde(default)]
    pub before_list_page: Vec<(u32, Change)>,
    /// Someone replaces a route around every list answer (`gateways/list_churn`).
    #[serde(default)]
    pub list_churn: bool,
}

fn default_account() -> String {
    DEFAULT_ACCOUNT_ID.to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PbrEntry {
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
    pub weight: u32,
    pub priority: u32,
    pub published: bool,
    pub description: Option<String>,
    pub overlay_mode: String,
    pub create_time_ms: u64,
}

impl PbrEntry {
    /// The route as the API's answers name it (what every answer that shows a route shows).
    pub fn api_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        [
            ("RouteSource", json!(self.route_source)),
            ("RouteDest", json!(self.route_dest)),
            ("NextHop", json!(self.next_hop)),
            ("Weight", json!(self.weight)),
            ("Priority", json!(self.priority)),
            ("State", json!(self.state())),
            ("CreateTime", json!(self.create_time_ms)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn state(&self) -> &'static str {
        if self.published {
            "published"
        } else {
            "normal"
        }
    }

    fn is(&self, id: &EntryId) -> bool {
        self.route_source == id.route_source
            && self.route_dest == id.route_dest
            && self.next_hop == id.next_hop
    }
}

/// One route of a gateway: source, destination, next hop (normalised CIDRs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryId {
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
}

/// An accepted change of a gateway's routes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Change {
    Create(PbrEntry),
    Delete(EntryId),
    /// New weight and/or priority (`None`: unchanged).
    Modify {
        id: EntryId,
        weight: Option<u32>,
        priority: Option<u32>,
    },
    /// PublishVpnRouteEntry: every entry with this destination and next hop.
    Publish {
        route_dest: String,
        next_hop: String,
        publish: bool,
    },
}

impl Change {
    /// Applies the change to a list of routes; a change whose route is gone by then (removed
    /// behind the API's back) does nothing.
    pub fn apply(&self, entries: &mut Vec<PbrEntry>) {
        match self {
            Change::Create(e) => entries.push(e.clone()),
            Change::Delete(id) => {
                if let Some(i) = entries.iter().position(|e| e.is(id)) {
                    entries.remove(i);
                }
            }
            Change::Modify {
                id,
                weight,
                priority,
            } => {
                if let Some(e) = entries.iter_mut().find(|e| e.is(id)) {
                    if let Some(w) = weight {
                        e.weight = *w;
                    }
                    if let Some(p) = priority {
                        e.priority = *p;
                    }
                }
            }
            Change::Publish {
                route_dest,
                next_hop,
                publish,
            } => {
                for e in entries
                    .iter_mut()
                    .filter(|e| &e.route_dest == route_dest && &e.next_hop == next_hop)
                {
                    e.published = *publish;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connection {
    pub id: String,
    pub gateway_id: String,
    pub region: String,
    pub name: String,
    pub customer_gateway_id: String,
    pub local_subnet: String,
    pub remote_subnet: String,
    pub create_time_ms: u64,
}

impl Connection {
    /// The ids of the two tunnels of a dual-tunnel connection (`index` 1 is the master, the one
    /// `NextHopTunnelId` names), derived from the connection id.
    pub fn tunnel_id(&self, index: u8) -> String {
        format!("tun-{}-{index}", self.id.trim_start_matches("vco-"))
    }
}

/// Everything the service knows. Serialisable for `--state-file`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct World {
    pub regions: Vec<String>,
    pub gateways: BTreeMap<String, Gateway>,
    pub connections: BTreeMap<String, Connection>,
    pub task_conflict_window_ms: u64,
    #[serde(default)]
    pub behaviour: Behaviour,
    /// Shuffled list answers so far (the shuffle's second input besides the seed).
    #[serde(default)]
    pub list_calls: u64,
}

/// Priority of entries on gateways without priority support, and the API default.
pub const DEFAULT_PRIORITY: u32 = 10;

/// The weight every entry of a dual-tunnel gateway has, whatever was sent.
pub const DUAL_TUNNEL_WEIGHT: u32 = 100;

/// Identifies one policy-based route on a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteKey {
    pub gateway_id: String,
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
}

#[derive(Debug, Clone)]
pub struct CreateEntry {
    pub key: RouteKey,
    pub weight: i64,
    pub priority: Option<i64>,
    pub publish_vpc: bool,
    pub description: Option<String>,
    pub overlay_mode: Option<String>,
}

/// PublishVpnRouteEntry parameters.
#[derive(Debug, Clone)]
pub struct Publish {
    pub gateway_id: String,
    pub route_dest: String,
    pub next_hop: String,
    /// `pbr` or `dbr`.
    pub route_type: String,
    pub publish: bool,
}

/// The current values a Delete/Modify call must repeat to address an entry.
#[derive(Debug, Clone)]
pub struct EntrySelector {
    pub key: RouteKey,
    pub weight: i64,
    pub priority: Option<i64>,
}

/// The routes a gateway will have once it has applied what it accepted and its list shows it.
pub fn effective(gw: &Gateway) -> Cow<'_, [PbrEntry]> {
    if gw.pending.is_empty() && gw.lagging.is_empty() {
        return Cow::Borrowed(&gw.entries);
    }
    let mut entries = gw.entries.clone();
    let lagging = gw.lagging.iter().map(|(_, c)| c);
    for change in lagging.chain(&gw.pending) {
        change.apply(&mut entries);
    }
    Cow::Owned(entries)
}

impl World {
    pub fn from_config(cfg: &Config, now_ms: u64) -> Self {
        let mut world = World {
            regions: cfg.regions.clone(),
            task_conflict_window_ms: cfg.settings.task_conflict_window_ms,
            behaviour: Behaviour::from_settings(&cfg.settings),
            ..World::default()
        };
        for g in &cfg.vpn_gateways {
            world.gateways.insert(
                g.id.clone(),
                Gateway {
                    id: g.id.clone(),
                    region: g.region.clone(),
                    vpc_id: g.vpc_id.clone(),
                    name: g.name.clone().unwrap_or_else(|| g.id.clone()),
                    base_status: g.status.clone(),
                    business_status: g.business_status.clone(),
                    priority_support: g.priority_support,
                    pbr_quota: g.pbr_quota,
                    vpc_route_quota: g.vpc_route_quota,
                    update_duration_ms: g.update_duration_ms,
                    busy_until_ms: 0,
                    last_mutation_ms: None,
                    create_time_ms: now_ms,
                    vswitch_id: g
                        .vswitch_id
                        .clone()
                        .unwrap_or_else(|| format!("vsw-{}", g.id)),
                    internet_ip: g
                        .internet_ip
                        .clone()
                        .unwrap_or_else(|| "203.0.113.10".to_owned()),
                    spec: g.spec.clone().unwrap_or_else(|| "10".to_owned()),
                    entries: Vec::new(),
                    pending: Vec::new(),
                    lagging: Vec::new(),
                    traits: g.traits,
                    disaster_recovery_internet_ip: g
                        .disaster_recovery_internet_ip
                        .clone()
                        .unwrap_or_else(|| "203.0.113.11".to_owned()),
                    disaster_recovery_vswitch_id: g
                        .disaster_recovery_vswitch_id
                        .clone()
                        .unwrap_or_else(|| format!("vsw-{}-dr", g.id)),
                    status_until_ms: None,
                    account_id: g.account_id.clone().unwrap_or_else(default_account),
                    before_list_page: Vec::new(),
                    list_churn: false,
                },
            );
        }
        for c in &cfg.vpn_connections {
            let region = cfg
                .vpn_gateways
                .iter()
                .find(|g| g.id == c.gateway_id)
                .map(|g| g.region.clone())
                .unwrap_or_default();
            world.connections.insert(
                c.id.clone(),
                Connection {
                    id: c.id.clone(),
                    gateway_id: c.gateway_id.clone(),
                    region,
                    name: c.name.clone().unwrap_or_else(|| c.id.clone()),
                    customer_gateway_id: c
                        .customer_gateway_id
                        .clone()
                        .unwrap_or_else(|| format!("cgw-{}", c.id.trim_start_matches("vco-"))),
                    local_subnet: c
                        .local_subnet
                        .clone()
                        .unwrap_or_else(|| "0.0.0.0/0".to_owned()),
                    remote_subnet: c
                        .remote_subnet
                        .clone()
                        .unwrap_or_else(|| "0.0.0.0/0".to_owned()),
                    create_time_ms: now_ms,
                },
            );
        }
        world
    }

    /// Brings the world to `now_ms`: a timed status ends (a `deleting` gateway is then gone,
    /// any other status is `active` again), a gateway whose update window is over applies
    /// its pending changes, and its list shows them once the list lag has passed. Every
    /// operation calls this first.
    pub fn settle(&mut self, now_ms: u64) {
        let default_lag = self.behaviour.list_lag_ms;
        let mut gone = Vec::new();
        for gw in self.gateways.values_mut() {
            if let Some(until) = gw.status_until_ms
                && now_ms >= until
            {
                gw.status_until_ms = None;
                if gw.base_status == "deleting" {
                    gone.push(gw.id.clone());
                    continue;
                }
                "active".clone_into(&mut gw.base_status);
            }
            let lag = gw.traits.list_lag_ms.unwrap_or(default_lag);
            apply_pending(gw, now_ms, lag);
            show_lagging(gw, now_ms);
        }
        for id in gone {
            self.remove_gateway(&id);
        }
    }

    /// Removes a gateway with its routes and connections; false if there was none.
    pub fn remove_gateway(&mut self, id: &str) -> bool {
        if self.gateways.remove(id).is_none() {
            return false;
        }
        self.connections.retain(|_, c| c.gateway_id != id);
        true
    }

    pub fn visibility_of(&self, gw: &Gateway) -> Visibility {
        gw.traits.visibility.unwrap_or(self.behaviour.visibility)
    }

    /// How long after `gw` turned `active` its list shows what it applied (0: at once).
    pub fn list_lag_of(&self, gw: &Gateway) -> u64 {
        gw.traits.list_lag_ms.unwrap_or(self.behaviour.list_lag_ms)
    }

    /// Makes the admin changes waiting for list page `page` of `gateway` (a made entry is made
    /// now).
    pub fn before_list_page(&mut self, gateway: &str, page: u32, now_ms: u64) {
        let Some(gw) = self.gateways.get_mut(gateway) else {
            return;
        };
        let (due, rest) = std::mem::take(&mut gw.before_list_page)
            .into_iter()
            .partition(|(p, _)| *p == page);
        gw.before_list_page = rest;
        for (_, mut change) in due {
            if let Change::Create(e) = &mut change {
                e.create_time_ms = now_ms;
            }
            change.apply(&mut gw.entries);
        }
    }

    /// Whether the route list of `gw` (or, for `None`, the connection list) is shuffled.
    pub fn shuffles(&self, gw: Option<&Gateway>) -> bool {
        gw.and_then(|g| g.traits.shuffle_lists)
            .unwrap_or(self.behaviour.shuffle_lists)
    }

    /// The order in which a list answer shows its `n` items: as stored, or (with `shuffle`)
    /// a fresh permutation on every call, determined by the seed and the number of calls.
    pub fn list_order(&mut self, shuffle: bool, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        if shuffle {
            self.list_calls = self.list_calls.wrapping_add(1);
            let mut state =
                self.behaviour.shuffle_seed ^ self.list_calls.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for i in (1..n).rev() {
                let bound = u64::try_from(i + 1).unwrap_or(u64::MAX);
                let j = usize::try_from(splitmix64(&mut state) % bound).unwrap_or(0);
                order.swap(i, j);
            }
        }
        order
    }

    pub fn check_region(&self, region: &str) -> Result<(), ApiError> {
        if self.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(ApiError::region_not_found())
        }
    }

    /// The gateway `id` of `region` as `account` sees it: one of another account (or region)
    /// does not exist for it.
    pub fn gateway(&self, account: &str, region: &str, id: &str) -> Result<&Gateway, ApiError> {
        self.check_region(region)?;
        match self.gateways.get(id) {
            Some(g) if g.region == region && g.account_id == account => Ok(g),
            _ => Err(ApiError::gateway_not_found()),
        }
    }

    fn gateway_mut(
        &mut self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<&mut Gateway, ApiError> {
        self.check_region(region)?;
        match self.gateways.get_mut(id) {
            Some(g) if g.region == region && g.account_id == account => Ok(g),
            _ => Err(ApiError::gateway_not_found()),
        }
    }

    /// The connection `id` of `region` as `account` sees it (a connection belongs to the
    /// account of its gateway).
    pub fn connection(
        &self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<&Connection, ApiError> {
        self.check_region(region)?;
        match self.connections.get(id) {
            Some(c) if c.region == region && self.account_of(c) == Some(account) => Ok(c),
            _ => Err(ApiError::connection_not_found()),
        }
    }

    /// The account of a connection: its gateway's.
    pub fn account_of(&self, c: &Connection) -> Option<&str> {
        self.gateways
            .get(&c.gateway_id)
            .map(|g| g.account_id.as_str())
    }

    /// Every rule of CreateVpnPbrRouteEntry, without changing anything: the entry the create
    /// would add, or the refusal. A `DryRun` stops here.
    pub fn check_create(
        &self,
        account: &str,
        region: &str,
        req: &CreateEntry,
        now_ms: u64,
    ) -> Result<PbrEntry, ApiError> {
        // Syntax first (no state needed), then the gateway, then its state, then the rules
        // that look at other entries.
        let source = parse_cidr(&req.key.route_source)?;
        let dest = parse_cidr(&req.key.route_dest)?;
        let weight = check_weight(req.weight)?;
        if let Some(p) = req.priority {
            check_priority_range(p, "Priority")?;
        }
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        check_overlay(req.overlay_mode.as_deref())?;
        let gw = self.gateway(account, region, &req.key.gateway_id)?;
        check_dest_limits(dest, gw.traits.dual_tunnel)?;
        check_status(gw)?;
        let entries = effective(gw);
        let id = EntryId {
            route_source: source.to_string(),
            route_dest: dest.to_string(),
            next_hop: req.key.next_hop.clone(),
        };
        let exists = entries.iter().any(|e| e.is(&id));
        // With `on_active` the service knows a create it accepted before the gateway shows
        // it, so a second create of the route is a duplicate even while the gateway is still
        // updating (the order of the two checks is our guess).
        if exists && self.visibility_of(gw) == Visibility::OnActive {
            return Err(ApiError::already_exists());
        }
        check_idle(gw, now_ms, self.task_conflict_window_ms)?;
        if req.priority.is_some() && !gw.priority_support {
            return Err(ApiError::priority_not_supported());
        }
        self.check_next_hop(gw, &req.key.next_hop)?;
        if exists {
            return Err(ApiError::already_exists());
        }
        // A dual-tunnel connection is its own active/standby pair: weights do not apply.
        if !gw.traits.dual_tunnel {
            check_backup_pair(&entries, &id.route_source, &id.route_dest, None, weight)?;
        }
        if entries.len() >= gw.pbr_quota {
            return Err(ApiError::quota_full());
        }
        if req.publish_vpc {
            self.check_publish(gw, &entries, &id.route_dest)?;
        }
        if self.behaviour.cross_gateway_conflict {
            self.check_cross_gateway(gw, &id.route_dest)?;
        }
        Ok(PbrEntry {
            route_source: id.route_source,
            route_dest: id.route_dest,
            next_hop: id.next_hop,
            weight: if gw.traits.dual_tunnel {
                DUAL_TUNNEL_WEIGHT
            } else {
                weight
            },
            priority: req
                .priority
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(DEFAULT_PRIORITY),
            published: req.publish_vpc,
            description: req.description.clone(),
            overlay_mode: "Ipsec".to_owned(),
            create_time_ms: now_ms,
        })
    }

    /// Creates an entry (CreateVpnPbrRouteEntry). Returns a copy of the new entry.
    pub fn create_entry(
        &mut self,
        account: &str,
        region: &str,
        req: &CreateEntry,
        now_ms: u64,
    ) -> Result<PbrEntry, ApiError> {
        let entry = self.check_create(account, region, req, now_ms)?;
        self.commit(
            account,
            region,
            &req.key.gateway_id,
            Change::Create(entry.clone()),
            now_ms,
        )?;
        Ok(entry)
    }

    pub fn delete_entry(
        &mut self,
        account: &str,
        region: &str,
        sel: &EntrySelector,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let (_, id) = self.prepare_change(account, region, sel, now_ms)?;
        self.commit(
            account,
            region,
            &sel.key.gateway_id,
            Change::Delete(id),
            now_ms,
        )
    }

    /// ModifyVpnPbrRouteEntryWeight / ModifyVpnPbrRouteEntryPriority /
    /// ModifyVpnPbrRouteEntryAttribute: `new_priority` on a gateway without priority support
    /// is refused; a weight change on a member of an active/standby pair is refused
    /// (the docs say: delete the partner first); on a dual-tunnel gateway a new weight has no
    /// effect (or is refused, as `settings.dual_tunnel_weight_change` says).
    pub fn modify_entry(
        &mut self,
        account: &str,
        region: &str,
        sel: &EntrySelector,
        new_weight: Option<i64>,
        new_priority: Option<i64>,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let new_weight = new_weight.map(check_weight).transpose()?;
        if let Some(p) = new_priority {
            check_priority_range(p, "NewPriority")?;
        }
        let (idx, id) = self.prepare_change(account, region, sel, now_ms)?;
        let gw = self.gateway(account, region, &sel.key.gateway_id)?;
        if new_priority.is_some() && !gw.priority_support {
            return Err(ApiError::priority_not_supported());
        }
        let new_weight = match new_weight {
            Some(_)
                if gw.traits.dual_tunnel
                    && self.behaviour.dual_tunnel_weight_change
                        == DualTunnelWeightChange::Refuse =>
            {
                return Err(ApiError::weight_not_supported());
            }
            Some(_) if gw.traits.dual_tunnel => None,
            w => w,
        };
        let entries = effective(gw);
        if let Some(w) = new_weight
            && let Some(current) = entries.get(idx)
            && w != current.weight
        {
            check_backup_pair(
                &entries,
                &current.route_source,
                &current.route_dest,
                Some(idx),
                w,
            )?;
        }
        let change = Change::Modify {
            id,
            weight: new_weight,
            priority: new_priority.and_then(|p| u32::try_from(p).ok()),
        };
        self.commit(account, region, &sel.key.gateway_id, change, now_ms)
    }

    /// PublishVpnRouteEntry with `RouteType=pbr`: flips every entry of the gateway with this
    /// destination and next hop (our choice; the real selection is undocumented).
    pub fn publish(
        &mut self,
        account: &str,
        region: &str,
        req: &Publish,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        if req.route_type != "pbr" && req.route_type != "dbr" {
            return Err(ApiError::invalid_parameter("RouteType"));
        }
        let dest = parse_cidr(&req.route_dest)?.to_string();
        let gw = self.gateway(account, region, &req.gateway_id)?;
        check_status(gw)?;
        check_idle(gw, now_ms, self.task_conflict_window_ms)?;
        let entries = effective(gw);
        // Destination-based routes are not modelled, so a `dbr` publish finds nothing.
        let found = req.route_type == "pbr"
            && entries
                .iter()
                .any(|e| e.route_dest == dest && e.next_hop == req.next_hop);
        if !found {
            return Err(ApiError::entry_not_found());
        }
        if req.publish {
            self.check_publish(gw, &entries, &dest)?;
        }
        let change = Change::Publish {
            route_dest: dest,
            next_hop: req.next_hop.clone(),
            publish: req.publish,
        };
        self.commit(account, region, &req.gateway_id, change, now_ms)
    }

    /// Records an accepted change: applied at once, or kept until the update window ends
    /// (`on_active`); the gateway is `updating` either way.
    fn commit(
        &mut self,
        account: &str,
        region: &str,
        gateway_id: &str,
        change: Change,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let default = self.behaviour.visibility;
        let gw = self.gateway_mut(account, region, gateway_id)?;
        match gw.traits.visibility.unwrap_or(default) {
            Visibility::Immediate => change.apply(&mut gw.entries),
            Visibility::OnActive => gw.pending.push(change),
        }
        mark_updating(gw, now_ms);
        Ok(())
    }

    /// Shared checks of Delete/Modify: syntax, gateway, state, then the entry (which must
    /// match the repeated current weight and, if given, priority; on a dual-tunnel gateway the
    /// weight has no effect and is not compared). Returns its index in the effective routes.
    fn prepare_change(
        &self,
        account: &str,
        region: &str,
        sel: &EntrySelector,
        now_ms: u64,
    ) -> Result<(usize, EntryId), ApiError> {
        let id = EntryId {
            route_source: parse_cidr(&sel.key.route_source)?.to_string(),
            route_dest: parse_cidr(&sel.key.route_dest)?.to_string(),
            next_hop: sel.key.next_hop.clone(),
        };
        check_weight(sel.weight)?;
        if let Some(p) = sel.priority {
            check_priority_range(p, "Priority")?;
        }
        let gw = self.gateway(account, region, &sel.key.gateway_id)?;
        check_status(gw)?;
        check_idle(gw, now_ms, self.task_conflict_window_ms)?;
        effective(gw)
            .iter()
            .position(|e| {
                e.is(&id)
                    && (gw.traits.dual_tunnel || i64::from(e.weight) == sel.weight)
                    && sel.priority.is_none_or(|p| i64::from(e.priority) == p)
            })
            .map(|i| (i, id))
            .ok_or_else(ApiError::entry_not_found)
    }

    /// The next hop must be an IPsec connection of this very gateway.
    fn check_next_hop(&self, gw: &Gateway, next_hop: &str) -> Result<(), ApiError> {
        match self.connections.get(next_hop) {
            Some(c) if c.gateway_id == gw.id => Ok(()),
            _ => Err(ApiError::next_hop_not_found()),
        }
    }

    /// Publishing `dest` from `gw` (whose effective routes are `own`) into its VPC's system
    /// route table: another gateway of the same VPC must not already publish the same block,
    /// and the gateway's share of the VPC route table is bounded.
    fn check_publish(&self, gw: &Gateway, own: &[PbrEntry], dest: &str) -> Result<(), ApiError> {
        let taken_by_other = self.others_in_vpc(gw).any(|other| {
            effective(other)
                .iter()
                .any(|e| e.published && e.route_dest == dest)
        });
        if taken_by_other {
            return Err(ApiError::route_conflict());
        }
        let mut published: Vec<&str> = own
            .iter()
            .filter(|e| e.published)
            .map(|e| e.route_dest.as_str())
            .collect();
        published.sort_unstable();
        published.dedup();
        if !published.contains(&dest) && published.len() >= gw.vpc_route_quota {
            return Err(ApiError::vpc_route_quota());
        }
        Ok(())
    }

    /// `settings.cross_gateway_conflict`: a destination another gateway of the same VPC
    /// already routes (published or not) conflicts.
    fn check_cross_gateway(&self, gw: &Gateway, dest: &str) -> Result<(), ApiError> {
        if self
            .others_in_vpc(gw)
            .any(|other| effective(other).iter().any(|e| e.route_dest == dest))
        {
            return Err(ApiError::route_entry_conflict());
        }
        Ok(())
    }

    fn others_in_vpc<'a>(&'a self, gw: &'a Gateway) -> impl Iterator<Item = &'a Gateway> + 'a {
        self.gateways
            .values()
            .filter(move |other| other.id != gw.id && other.vpc_id == gw.vpc_id)
    }

    /// `Status` as DescribeVpnGateway reports it at `now_ms`.
    pub fn status(gw: &Gateway, now_ms: u64) -> &str {
        if gw.base_status == "active" && now_ms < gw.busy_until_ms {
            "updating"
        } else {
            &gw.base_status
        }
    }
}

/// The gateway's own state, before anything else: a gateway being deleted, then a
/// financially locked one, refuse every change.
fn check_status(gw: &Gateway) -> Result<(), ApiError> {
    if gw.base_status == "deleting" {
        return Err(ApiError::incorrect_gateway_status());
    }
    if gw.business_status == "FinancialLocked" {
        return Err(ApiError::financial_locked());
    }
    Ok(())
}

/// TaskConflict (a mutation very shortly after the last accepted one), then Configuring (the
/// gateway is still updating, or not yet ready).
fn check_idle(gw: &Gateway, now_ms: u64, conflict_window_ms: u64) -> Result<(), ApiError> {
    if let Some(last) = gw.last_mutation_ms
        && now_ms < last.saturating_add(conflict_window_ms)
    {
        return Err(ApiError::task_conflict());
    }
    if World::status(gw, now_ms) != "active" {
        return Err(ApiError::configuring());
    }
    Ok(())
}

/// Once the update window is over the gateway applies its pending changes; the list shows
/// them `lag` ms after the gateway turned `active` (the end of the window), so at once without
/// a lag ([`show_lagging`] follows).
fn apply_pending(gw: &mut Gateway, now_ms: u64, lag: u64) {
    if now_ms < gw.busy_until_ms || gw.pending.is_empty() {
        return;
    }
    let shows_at = gw.busy_until_ms.saturating_add(lag);
    let pending = std::mem::take(&mut gw.pending);
    gw.lagging
        .extend(pending.into_iter().map(|change| (shows_at, change)));
}

/// The list shows the lagging changes whose time has come, oldest first (a later change never
/// shows before an earlier one).
fn show_lagging(gw: &mut Gateway, now_ms: u64) {
    let due = gw
        .lagging
        .iter()
        .take_while(|(at, _)| *at <= now_ms)
        .count();
    for (_, change) in gw.lagging.drain(..due) {
        change.apply(&mut gw.entries);
    }
}

fn mark_updating(gw: &mut Gateway, now_ms: u64) {
    gw.last_mutation_ms = Some(now_ms);
    gw.busy_until_ms = now_ms.saturating_add(gw.update_duration_ms);
}

/// An active/standby pair shares source and destination: at most one entry with weight 100
/// and one with weight 0 per (source, destination). `skip` is the entry being changed.
fn check_backup_pair(
    entries: &[PbrEntry],
    source: &str,
    dest: &str,
    skip: Option<usize>,
    weight: u32,
) -> Result<(), ApiError> {
    let partners = entries
        .iter()
        .enumerate()
        .filter(|(i, e)| Some(*i) != skip && e.route_source == source && e.route_dest == dest);
    let changing_existing = skip.is_some();
    let mut count = 0;
    for (_, e) in partners {
        count += 1;
        // Changing the weight of one member of a pair is refused outright (docs: delete the
        // partner, modify, re-create); adding a member of the same weight is refused too.
        if changing_existing || e.weight == weight {
            return Err(ApiError::backup_route());
        }
    }
    if count >= 2 {
        return Err(ApiError::backup_route());
    }
    Ok(())
}

/// SplitMix64: a small, well-mixed step for the list shuffle.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A strict IPv4 CIDR block: prefix given, no host bits set.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, ApiError> {
    let net: Ipv4Net = s.trim().parse().map_err(|_| ApiError::invalid_cidr())?;
    if net.trunc() != net {
        return Err(ApiError::invalid_cidr());
    }
    Ok(net)
}

/// Destination limits of the API description, which apply to single-tunnel gateways only:
/// no `0.0.0.0/0`, nothing inside or around `100.64.0.0/10`.
fn check_dest_limits(net: Ipv4Net, dual_tunnel: bool) -> Result<(), ApiError> {
    if dual_tunnel {
        return Ok(());
    }
    let cgnat =
        Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).map_err(|_| ApiError::internal_error())?;
    if net.prefix_len() == 0 || cgnat.contains(&net) || net.contains(&cgnat) {
        return Err(ApiError::illegal_route_dest());
    }
    Ok(())
}

fn check_weight(w: i64) -> Result<u32, ApiError> {
    match w {
        0 | 100 => Ok(w as u32),
        _ => Err(ApiError::invalid_weight()),
    }
}

fn check_priority_range(p: i64, name: &str) -> Result<(), ApiError> {
    if (1..=100).contains(&p) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(name))
    }
}

fn check_description(d: &str) -> Result<(), ApiError> {
    let len = d.chars().count();
    if !(1..=100).contains(&len) || d.starts_with("http://") || d.starts_with("https://") {
        return Err(ApiError::invalid_description());
    }
    Ok(())
}

fn check_overlay(mode: Option<&str>) -> Result<(), ApiError> {
    match mode {
        None | Some("Ipsec") => Ok(()),
        Some(_) => Err(ApiError::invalid_parameter("OverlayMode")),
    }
}
