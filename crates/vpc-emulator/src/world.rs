//! The emulated cloud: gateways, their policy-based routes, IPsec connections, and the rules
//! and state machine the real service applies to them. Pure logic: every call takes the
//! current time (epoch milliseconds) so tests drive the clock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::config::Config;
use super::error::ApiError;

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
    /// Policy-based routes, oldest first (the order `DescribeVpnPbrRouteEntries` lists them).
    pub entries: Vec<PbrEntry>,
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
    pub fn state(&self) -> &'static str {
        if self.published {
            "published"
        } else {
            "normal"
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

/// Everything the service knows. Serialisable for `--state-file`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct World {
    pub regions: Vec<String>,
    pub gateways: BTreeMap<String, Gateway>,
    pub connections: BTreeMap<String, Connection>,
    pub task_conflict_window_ms: u64,
}

/// Priority of entries on gateways without priority support, and the API default.
pub const DEFAULT_PRIORITY: u32 = 10;

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
    pub publish_vpc: bool,
    pub priority: Option<i64>,
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

impl World {
    pub fn from_config(cfg: &Config, now_ms: u64) -> Self {
        let mut world = World {
            regions: cfg.regions.clone(),
            task_conflict_window_ms: cfg.settings.task_conflict_window_ms,
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

    pub fn check_region(&self, region: &str) -> Result<(), ApiError> {
        if self.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(ApiError::region_not_found())
        }
    }

    pub fn gateway(&self, region: &str, id: &str) -> Result<&Gateway, ApiError> {
        self.check_region(region)?;
        match self.gateways.get(id) {
            Some(g) if g.region == region => Ok(g),
            _ => Err(ApiError::gateway_not_found()),
        }
    }

    fn gateway_mut(&mut self, region: &str, id: &str) -> Result<&mut Gateway, ApiError> {
        self.check_region(region)?;
        match self.gateways.get_mut(id) {
            Some(g) if g.region == region => Ok(g),
            _ => Err(ApiError::gateway_not_found()),
        }
    }

    pub fn connection(&self, region: &str, id: &str) -> Result<&Connection, ApiError> {
        self.check_region(region)?;
        match self.connections.get(id) {
            Some(c) if c.region == region => Ok(c),
            _ => Err(ApiError::connection_not_found()),
        }
    }

    /// Creates an entry (CreateVpnPbrRouteEntry). Returns a copy of the new entry.
    pub fn create_entry(
        &mut self,
        region: &str,
        req: &CreateEntry,
        now_ms: u64,
    ) -> Result<PbrEntry, ApiError> {
        // Syntax first (no state needed), then the gateway, then its state, then the rules
        // that look at other entries.
        let source = parse_cidr(&req.key.route_source)?;
        let dest = parse_dest(&req.key.route_dest)?;
        let weight = check_weight(req.weight)?;
        if let Some(p) = req.priority {
            check_priority_range(p, "Priority")?;
        }
        if let Some(d) = &req.description {
            check_description(d)?;
        }
        check_overlay(req.overlay_mode.as_deref())?;
        let window = self.task_conflict_window_ms;
        let gw = self.gateway(region, &req.key.gateway_id)?;
        check_mutable(gw, now_ms, window)?;
        if req.priority.is_some() && !gw.priority_support {
            return Err(ApiError::priority_not_supported());
        }
        self.check_next_hop(gw, &req.key.next_hop)?;
        let (source, dest) = (source.to_string(), dest.to_string());
        if gw.entries.iter().any(|e| {
            e.route_source == source && e.route_dest == dest && e.next_hop == req.key.next_hop
        }) {
            return Err(ApiError::already_exists());
        }
        check_backup_pair(gw, &source, &dest, None, weight)?;
        if gw.entries.len() >= gw.pbr_quota {
            return Err(ApiError::quota_full());
        }
        if req.publish_vpc {
            self.check_publish(gw, &dest)?;
        }
        let entry = PbrEntry {
            route_source: source,
            route_dest: dest,
            next_hop: req.key.next_hop.clone(),
            weight,
            priority: req.priority.map_or(DEFAULT_PRIORITY, |p| p as u32),
            published: req.publish_vpc,
            description: req.description.clone(),
            overlay_mode: "Ipsec".to_owned(),
            create_time_ms: now_ms,
        };
        let gw = self.gateway_mut(region, &req.key.gateway_id)?;
        gw.entries.push(entry.clone());
        mark_updating(gw, now_ms);
        Ok(entry)
    }

    pub fn delete_entry(
        &mut self,
        region: &str,
        sel: &EntrySelector,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let idx = self.prepare_change(region, sel, now_ms)?;
        let gw = self.gateway_mut(region, &sel.key.gateway_id)?;
        gw.entries.remove(idx);
        mark_updating(gw, now_ms);
        Ok(())
    }

    /// ModifyVpnPbrRouteEntryWeight / ModifyVpnPbrRouteEntryPriority /
    /// ModifyVpnPbrRouteEntryAttribute: `new_priority` on a gateway without priority support
    /// is refused; a weight change on a member of an active/standby pair is refused
    /// (the docs say: delete the partner first).
    pub fn modify_entry(
        &mut self,
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
        let idx = self.prepare_change(region, sel, now_ms)?;
        let gw = self.gateway(region, &sel.key.gateway_id)?;
        if new_priority.is_some() && !gw.priority_support {
            return Err(ApiError::priority_not_supported());
        }
        let current = &gw.entries[idx];
        if let Some(w) = new_weight
            && w != current.weight
        {
            check_backup_pair(gw, &current.route_source, &current.route_dest, Some(idx), w)?;
        }
        let gw = self.gateway_mut(region, &sel.key.gateway_id)?;
        let entry = &mut gw.entries[idx];
        if let Some(w) = new_weight {
            entry.weight = w;
        }
        if let Some(p) = new_priority {
            entry.priority = p as u32;
        }
        mark_updating(gw, now_ms);
        Ok(())
    }

    /// PublishVpnRouteEntry with `RouteType=pbr`: flips every entry of the gateway with this
    /// destination and next hop (our choice; the real selection is undocumented).
    pub fn publish(&mut self, region: &str, req: &Publish, now_ms: u64) -> Result<(), ApiError> {
        let Publish {
            gateway_id,
            route_dest,
            next_hop,
            route_type,
            publish,
        } = req;
        let (gateway_id, route_dest, next_hop, route_type, publish) = (
            gateway_id.as_str(),
            route_dest.as_str(),
            next_hop.as_str(),
            route_type.as_str(),
            *publish,
        );
        if route_type != "pbr" && route_type != "dbr" {
            return Err(ApiError::invalid_parameter("RouteType"));
        }
        let dest = parse_cidr(route_dest)?.to_string();
        let window = self.task_conflict_window_ms;
        let gw = self.gateway(region, gateway_id)?;
        check_mutable(gw, now_ms, window)?;
        // Destination-based routes are not modelled, so a `dbr` publish finds nothing.
        let matching: Vec<usize> = gw
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| route_type == "pbr" && e.route_dest == dest && e.next_hop == next_hop)
            .map(|(i, _)| i)
            .collect();
        if matching.is_empty() {
            return Err(ApiError::entry_not_found());
        }
        if publish {
            self.check_publish(gw, &dest)?;
        }
        let gw = self.gateway_mut(region, gateway_id)?;
        for i in matching {
            gw.entries[i].published = publish;
        }
        mark_updating(gw, now_ms);
        Ok(())
    }

    /// Shared checks of Delete/Modify: syntax, gateway, state, then the entry (which must
    /// match the repeated current weight and, if given, priority). Returns its index.
    fn prepare_change(
        &self,
        region: &str,
        sel: &EntrySelector,
        now_ms: u64,
    ) -> Result<usize, ApiError> {
        let source = parse_cidr(&sel.key.route_source)?.to_string();
        let dest = parse_cidr(&sel.key.route_dest)?.to_string();
        check_weight(sel.weight)?;
        if let Some(p) = sel.priority {
            check_priority_range(p, "Priority")?;
        }
        let gw = self.gateway(region, &sel.key.gateway_id)?;
        check_mutable(gw, now_ms, self.task_conflict_window_ms)?;
        gw.entries
            .iter()
            .position(|e| {
                e.route_source == source
                    && e.route_dest == dest
                    && e.next_hop == sel.key.next_hop
                    && i64::from(e.weight) == sel.weight
                    && sel.priority.is_none_or(|p| i64::from(e.priority) == p)
            })
            .ok_or_else(ApiError::entry_not_found)
    }

    /// The next hop must be an IPsec connection of this very gateway.
    fn check_next_hop(&self, gw: &Gateway, next_hop: &str) -> Result<(), ApiError> {
        match self.connections.get(next_hop) {
            Some(c) if c.gateway_id == gw.id => Ok(()),
            _ => Err(ApiError::next_hop_not_found()),
        }
    }

    /// Publishing `dest` from `gw` into its VPC's system route table: another gateway of the
    /// same VPC must not already publish the same block, and the gateway's share of the VPC
    /// route table is bounded.
    fn check_publish(&self, gw: &Gateway, dest: &str) -> Result<(), ApiError> {
        let taken_by_other = self.gateways.values().any(|other| {
            other.id != gw.id
                && other.vpc_id == gw.vpc_id
                && other
                    .entries
                    .iter()
                    .any(|e| e.published && e.route_dest == dest)
        });
        if taken_by_other {
            return Err(ApiError::route_conflict());
        }
        let mut published: Vec<&str> = gw
            .entries
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

    /// `Status` as DescribeVpnGateway reports it at `now_ms`.
    pub fn status(gw: &Gateway, now_ms: u64) -> &str {
        if gw.base_status == "active" && now_ms < gw.busy_until_ms {
            "updating"
        } else {
            &gw.base_status
        }
    }
}

/// Order of the state checks: financial lock, then TaskConflict (a mutation very shortly
/// after the last accepted one), then Configuring (the gateway is still updating).
fn check_mutable(gw: &Gateway, now_ms: u64, conflict_window_ms: u64) -> Result<(), ApiError> {
    if gw.business_status == "FinancialLocked" {
        return Err(ApiError::financial_locked());
    }
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

fn mark_updating(gw: &mut Gateway, now_ms: u64) {
    gw.last_mutation_ms = Some(now_ms);
    gw.busy_until_ms = now_ms.saturating_add(gw.update_duration_ms);
}

/// An active/standby pair shares source and destination: at most one entry with weight 100
/// and one with weight 0 per (source, destination). `skip` is the entry being changed.
fn check_backup_pair(
    gw: &Gateway,
    source: &str,
    dest: &str,
    skip: Option<usize>,
    weight: u32,
) -> Result<(), ApiError> {
    let mut partners = gw
        .entries
        .iter()
        .enumerate()
        .filter(|(i, e)| Some(*i) != skip && e.route_source == source && e.route_dest == dest);
    let changing_existing = skip.is_some();
    let mut count = 0;
    for (_, e) in partners.by_ref() {
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

/// A strict IPv4 CIDR block: prefix given, no host bits set.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, ApiError> {
    let net: Ipv4Net = s.trim().parse().map_err(|_| ApiError::invalid_cidr())?;
    if net.trunc() != net {
        return Err(ApiError::invalid_cidr());
    }
    Ok(net)
}

/// Destination rules from the API description: no `0.0.0.0/0`, nothing inside or around
/// `100.64.0.0/10`.
fn parse_dest(s: &str) -> Result<Ipv4Net, ApiError> {
    let net = parse_cidr(s)?;
    let cgnat =
        Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10).map_err(|_| ApiError::internal_error())?;
    if net.prefix_len() == 0 || cgnat.contains(&net) || net.contains(&cgnat) {
        return Err(ApiError::illegal_route_dest());
    }
    Ok(net)
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
