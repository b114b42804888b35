//! Typed requests and responses of the VPC operations this client covers.
//!
//! Field names are the cloud's (`RouteSource`, `VpnInstanceId`, ...) in snake_case. `RegionId`
//! is not a field: the [`VpcClient`](super::VpcClient) is per region and adds it. Mutations
//! take an optional `ClientToken`; when it is `None` the client generates one per call and
//! reuses it for that call's retries. Unknown response fields are ignored; a missing required
//! field is a [`CloudError::MalformedResponse`](super::CloudError::MalformedResponse).

use serde::{Deserialize, Serialize};

use super::body::de;

/// An operation: its action name, whether it changes anything, and its answer.
pub trait Operation: Serialize {
    const ACTION: &'static str;
    /// Mutations are retried only with a `ClientToken`, which the client guarantees.
    const MUTATING: bool;
    /// The product the operation belongs to (where it is sent, and its version).
    const API: Api = Api::Vpc;
    type Response: serde::de::DeserializeOwned;
}

/// The product of an operation: VPC (regional, takes `RegionId`) or STS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Vpc,
    Sts,
}

impl Api {
    /// The `Version` parameter of the product's RPC API.
    pub fn version(self) -> &'static str {
        match self {
            Self::Vpc => crate::rpc::VPC_API_VERSION,
            Self::Sts => crate::rpc::STS_API_VERSION,
        }
    }
}

macro_rules! operation {
    ($req:ty, $action:literal, $mutating:literal, $resp:ty) => {
        impl Operation for $req {
            const ACTION: &'static str = $action;
            const MUTATING: bool = $mutating;
            type Response = $resp;
        }
    };
}

/// The entry a request names: the gateway and the entry's source, destination and next hop,
/// which every entry operation repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EntryKey {
    pub vpn_gateway_id: String,
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
}

/// `CreateVpnPbrRouteEntry` (the API page of that name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateVpnPbrRouteEntryRequest {
    #[serde(flatten)]
    pub entry: EntryKey,
    /// 100 active, 0 standby.
    pub weight: u32,
    pub publish_vpc: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// `true`: the cloud only checks the request (parameters, permissions, quota, next hop,
    /// conflicts) and answers HTTP 400 `DryRunOperation` when it would have succeeded; nothing
    /// is created. Use [`VpcClient::dry_run`](super::VpcClient::dry_run), which turns that
    /// answer into `Ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// The code of the answer to a `DryRun=true` call that would have succeeded (HTTP 400).
pub const DRY_RUN_OPERATION: &str = "DryRunOperation";

/// A mutation that takes the API's `DryRun` parameter.
///
/// Of the operations here only `CreateVpnPbrRouteEntry` has it: the API reference and the
/// official SDK's request models list `DryRun` for that one and for none of
/// `DeleteVpnPbrRouteEntry`, `ModifyVpnPbrRouteEntryWeight`, `ModifyVpnPbrRouteEntryPriority`,
/// `ModifyVpnPbrRouteEntryAttribute` or `PublishVpnRouteEntry`.
pub trait DryRunnable: Operation + Clone {
    /// Sets (or clears) `DryRun`.
    fn set_dry_run(&mut self, dry_run: Option<bool>);
}

impl DryRunnable for CreateVpnPbrRouteEntryRequest {
    fn set_dry_run(&mut self, dry_run: Option<bool>) {
        self.dry_run = dry_run;
    }
}

/// The fields an entry has both in the answer of `CreateVpnPbrRouteEntry` and in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EntryFields {
    /// The gateway id (the cloud calls it `VpnInstanceId` here).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub vpn_instance_id: Option<String>,
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
    #[serde(deserialize_with = "de::uint")]
    pub weight: u32,
    #[serde(default, deserialize_with = "de::opt_uint")]
    pub priority: Option<u32>,
    /// Not in the documented list answer; kept when a server lists it.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    /// Epoch milliseconds.
    #[serde(default, deserialize_with = "de::opt_int")]
    pub create_time: Option<i64>,
}

/// Answer of `CreateVpnPbrRouteEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateVpnPbrRouteEntryResponse {
    pub request_id: String,
    #[serde(flatten)]
    pub fields: EntryFields,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub overlay_mode: Option<String>,
    /// `published` or `normal`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub state: Option<String>,
}

/// Answer of the operations that return only a `RequestId`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActionResponse {
    pub request_id: String,
}

/// `DeleteVpnPbrRouteEntry`: repeat the entry's current weight (and priority, if sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteVpnPbrRouteEntryRequest {
    #[serde(flatten)]
    pub entry: EntryKey,
    pub weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `DescribeVpnPbrRouteEntries`, one page.
/// [`VpcClient::list_vpn_pbr_route_entries`](crate::VpcClient::list_vpn_pbr_route_entries)
/// reads all pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnPbrRouteEntriesRequest {
    pub vpn_gateway_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_number: Option<u32>,
    /// At most 50.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

/// One page of `DescribeVpnPbrRouteEntries`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnPbrRouteEntriesResponse {
    pub request_id: String,
    #[serde(deserialize_with = "de::uint")]
    pub total_count: u32,
    #[serde(default, deserialize_with = "de::opt_uint")]
    pub page_number: Option<u32>,
    #[serde(default, deserialize_with = "de::opt_uint")]
    pub page_size: Option<u32>,
    /// `VpnPbrRouteEntries.VpnPbrRouteEntry[]`; an absent or empty wrapper is an empty list.
    #[serde(default, deserialize_with = "de::wrapped_list")]
    pub vpn_pbr_route_entries: Vec<VpnPbrRouteEntry>,
}

/// A policy-based route as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpnPbrRouteEntry {
    #[serde(flatten)]
    pub fields: EntryFields,
    /// Only on dual-tunnel gateways.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub next_hop_tunnel_id: Option<String>,
    /// `published` or `normal`.
    pub state: String,
}

impl VpnPbrRouteEntry {
    /// Whether the entry is advertised to the VPC (`State == "published"`).
    pub fn is_published(&self) -> bool {
        self.state.eq_ignore_ascii_case("published")
    }
}

/// Every entry of a gateway, read page by page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpnPbrRouteEntryList {
    pub entries: Vec<VpnPbrRouteEntry>,
    pub total_count: u32,
    /// RequestId of each page, in order.
    pub request_ids: Vec<String>,
    /// Page reads it took (a stable list of `n` pages takes `2n - 1`).
    pub reads: u32,
}

/// `ModifyVpnPbrRouteEntryWeight`: `weight` is the current one, `new_weight` the wanted one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyVpnPbrRouteEntryWeightRequest {
    #[serde(flatten)]
    pub entry: EntryKey,
    pub weight: u32,
    pub new_weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `ModifyVpnPbrRouteEntryPriority`: `priority` is the current one (optional), `new_priority`
/// the wanted one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyVpnPbrRouteEntryPriorityRequest {
    #[serde(flatten)]
    pub entry: EntryKey,
    pub weight: u32,
    pub new_priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `ModifyVpnPbrRouteEntryAttribute`: current `weight` and `priority`, and at least one of
/// `new_weight` / `new_priority`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyVpnPbrRouteEntryAttributeRequest {
    #[serde(flatten)]
    pub entry: EntryKey,
    pub weight: u32,
    pub priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `PublishVpnRouteEntry`; for policy-based routes `route_type` is [`ROUTE_TYPE_PBR`].
/// There is no `RouteSource` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVpnRouteEntryRequest {
    pub vpn_gateway_id: String,
    pub route_dest: String,
    pub next_hop: String,
    pub route_type: String,
    pub publish_vpc: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// `RouteType` of policy-based routes.
pub const ROUTE_TYPE_PBR: &str = "pbr";

/// `DescribeVpnGateway`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnGatewayRequest {
    pub vpn_gateway_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_reservation_data: Option<bool>,
}

/// Answer of `DescribeVpnGateway` (the fields this client reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnGatewayResponse {
    pub request_id: String,
    pub vpn_gateway_id: String,
    /// `init`, `provisioning`, `active`, `updating`, `deleting`.
    pub status: String,
    /// `Normal` or `FinancialLocked`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub business_status: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub vpc_id: Option<String>,
    #[serde(default, rename = "VSwitchId", deserialize_with = "de::opt_string")]
    pub v_switch_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub spec: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub gateway_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub network_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub vpn_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub internet_ip: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub disaster_recovery_internet_ip: Option<String>,
    /// Set only on dual-tunnel gateways (with `DisasterRecoveryInternetIp`).
    #[serde(
        default,
        rename = "DisasterRecoveryVSwitchId",
        deserialize_with = "de::opt_string"
    )]
    pub disaster_recovery_v_switch_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub ipsec_vpn: Option<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable_bgp: Option<bool>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub charge_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_int")]
    pub create_time: Option<i64>,
    #[serde(default, deserialize_with = "de::opt_int")]
    pub end_time: Option<i64>,
    /// System tags as a JSON string (`PbrPriority`, `VpnVersion`, ...).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub tag: Option<String>,
}

impl DescribeVpnGatewayResponse {
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("active")
    }

    /// Whether the gateway takes PBR priorities (system tag `PbrPriority` is `true`). Decides
    /// between `ModifyVpnPbrRouteEntryAttribute` and the Weight/Priority operations.
    pub fn supports_pbr_priority(&self) -> bool {
        self.system_tag("PbrPriority")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether this is a dual-tunnel gateway (two tunnels per IPsec connection): only those
    /// report a disaster-recovery address or vSwitch. There a PBR route's weight does not take
    /// effect and cannot be modified.
    pub fn is_dual_tunnel(&self) -> bool {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        set(&self.disaster_recovery_internet_ip) || set(&self.disaster_recovery_v_switch_id)
    }

    /// One system tag from the `Tag` JSON string; `None` if absent or the string is not JSON.
    pub fn system_tag(&self, key: &str) -> Option<String> {
        let tags: serde_json::Value = serde_json::from_str(self.tag.as_deref()?).ok()?;
        match tags.get(key)? {
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// `DescribeVpnConnection`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnConnectionRequest {
    pub vpn_connection_id: String,
}

/// Answer of `DescribeVpnConnection` (the fields this client reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpnConnectionResponse {
    pub request_id: String,
    pub vpn_connection_id: String,
    /// Absent for connections attached to a transit router.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub vpn_gateway_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub customer_gateway_id: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub local_subnet: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub remote_subnet: Option<String>,
    /// `active`, `init`, `attached`, `updating`, ...
    #[serde(default, deserialize_with = "de::opt_string")]
    pub state: Option<String>,
    /// IPsec negotiation status (`ipsec_sa_established`, ...).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub attach_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub network_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_int")]
    pub create_time: Option<i64>,
}

operation!(
    CreateVpnPbrRouteEntryRequest,
    "CreateVpnPbrRouteEntry",
    true,
    CreateVpnPbrRouteEntryResponse
);
operation!(
    DeleteVpnPbrRouteEntryRequest,
    "DeleteVpnPbrRouteEntry",
    true,
    ActionResponse
);
operation!(
    DescribeVpnPbrRouteEntriesRequest,
    "DescribeVpnPbrRouteEntries",
    false,
    DescribeVpnPbrRouteEntriesResponse
);
operation!(
    ModifyVpnPbrRouteEntryWeightRequest,
    "ModifyVpnPbrRouteEntryWeight",
    true,
    ActionResponse
);
operation!(
    ModifyVpnPbrRouteEntryPriorityRequest,
    "ModifyVpnPbrRouteEntryPriority",
    true,
    ActionResponse
);
operation!(
    ModifyVpnPbrRouteEntryAttributeRequest,
    "ModifyVpnPbrRouteEntryAttribute",
    true,
    ActionResponse
);
operation!(
    PublishVpnRouteEntryRequest,
    "PublishVpnRouteEntry",
    true,
    ActionResponse
);
operation!(
    DescribeVpnGatewayRequest,
    "DescribeVpnGateway",
    false,
    DescribeVpnGatewayResponse
);
operation!(
    DescribeVpnConnectionRequest,
    "DescribeVpnConnection",
    false,
    DescribeVpnConnectionResponse
);

/// STS `GetCallerIdentity`: who the credentials are and which account they act for. It takes
/// no parameters and needs no RAM permission (its API page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GetCallerIdentityRequest {}

/// Answer of `GetCallerIdentity`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityResponse {
    pub request_id: String,
    /// The Alibaba Cloud account the credentials act for: the one whose resources they see.
    #[serde(deserialize_with = "de::string")]
    pub account_id: String,
    /// `Account`, `RAMUser` or `AssumedRoleUser`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub identity_type: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub arn: Option<String>,
    #[serde(default, deserialize_with = "de::opt_string")]
    pub principal_id: Option<String>,
    /// The account's or the RAM user's ID (not for a role).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub user_id: Option<String>,
    /// The RAM role's ID (only for a role).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub role_id: Option<String>,
}

impl Operation for GetCallerIdentityRequest {
    const ACTION: &'static str = "GetCallerIdentity";
    const MUTATING: bool = false;
    const API: Api = Api::Sts;
    type Response = GetCallerIdentityResponse;
}
