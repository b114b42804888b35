//! Typed requests and responses of the VPC operations this client covers.
//!
//! Field names are the cloud's (`RouteSource`, `VpnInstanceId`, ...) in snake_case. `RegionId`
//! is not a field: the [`VpcClient`](super::VpcClient) is per region and adds it. Mutations
//! take an optional `ClientToken`; when it is `None` the client generates one per call and
//! reuses it for that call's retries. Unknown response fields are ignored; a missing required
//! field is a [`CloudError::MalformedResponse`](super::CloudError::MalformedResponse).
//! The structs are declared through `requests!` and `responses!`, which state these rules once.

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

/// Declares API structs as written, adding what they all share: every field is public and
/// PascalCase on the wire, and every `Option` field gets the attributes `$option` (given by
/// [`requests!`] and [`responses!`]). Other fields keep only the attributes written on them.
macro_rules! api_structs {
    // Every field is done: the struct.
    (@field [$($derive:tt)*] $option:tt [$($doc:tt)*] $name:ident [$($done:tt)*]) => {
        $($doc)*
        #[derive($($derive)*)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name { $($done)* }
    };
    // An `Option` field.
    (@field $derive:tt [$($option:tt)*] $doc:tt $name:ident [$($done:tt)*]
        $(#[$attr:meta])* $field:ident: Option<$ty:ty>, $($rest:tt)*) => {
        api_structs!(@field $derive [$($option)*] $doc $name
            [$($done)* $(#[$attr])* $($option)* pub $field: Option<$ty>,] $($rest)*);
    };
    // Any other field.
    (@field $derive:tt $option:tt $doc:tt $name:ident [$($done:tt)*]
        $(#[$attr:meta])* $field:ident: $ty:ty, $($rest:tt)*) => {
        api_structs!(@field $derive $option $doc $name
            [$($done)* $(#[$attr])* pub $field: $ty,] $($rest)*);
    };
    ($derive:tt $option:tt $($(#[$doc:meta])* pub struct $name:ident { $($fields:tt)* })*) => {
        $(api_structs!(@field $derive $option [$(#[$doc])*] $name [] $($fields)*);)*
    };
}

/// Requests: their fields are the form parameters; a `None` is not sent.
macro_rules! requests {
    ($($structs:tt)*) => {
        api_structs!(
            [Debug, Clone, Default, PartialEq, Eq, Serialize]
            [#[serde(skip_serializing_if = "Option::is_none")]]
            $($structs)*
        );
    };
}

/// Answers: unknown fields are ignored; an `Option` field may be absent and is read leniently
/// (`de::opt`: XML sends every leaf as a string, JSON numbers and booleans as such).
macro_rules! responses {
    ($($structs:tt)*) => {
        api_structs!(
            [Debug, Clone, PartialEq, Eq, Deserialize]
            [#[serde(default, deserialize_with = "de::opt")]]
            $($structs)*
        );
    };
}

requests! {
    /// The entry a request names: the gateway and the entry's source, destination and next hop,
    /// which every entry operation repeats.
    pub struct EntryKey {
        vpn_gateway_id: String,
        route_source: String,
        route_dest: String,
        next_hop: String,
    }

    /// `CreateVpnPbrRouteEntry` (the API page of that name).
    pub struct CreateVpnPbrRouteEntryRequest {
        #[serde(flatten)]
        entry: EntryKey,
        /// 100 active, 0 standby.
        weight: u32,
        publish_vpc: bool,
        priority: Option<u32>,
        description: Option<String>,
        overlay_mode: Option<String>,
        client_token: Option<String>,
        /// `true`: the cloud only checks the request (parameters, permissions, quota, next hop,
        /// conflicts) and answers HTTP 400 `DryRunOperation` when it would have succeeded;
        /// nothing is created. Use [`VpcClient::dry_run`](super::VpcClient::dry_run), which
        /// turns that answer into `Ok`.
        dry_run: Option<bool>,
    }
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

responses! {
    /// The fields an entry has both in the answer of `CreateVpnPbrRouteEntry` and in a listing.
    pub struct EntryFields {
        /// The gateway id (the cloud calls it `VpnInstanceId` here).
        vpn_instance_id: Option<String>,
        route_source: String,
        route_dest: String,
        next_hop: String,
        #[serde(deserialize_with = "de::uint")]
        weight: u32,
        priority: Option<u32>,
        /// Not in the documented list answer; kept when a server lists it.
        description: Option<String>,
        /// Epoch milliseconds.
        create_time: Option<i64>,
    }

    /// Answer of `CreateVpnPbrRouteEntry`.
    pub struct CreateVpnPbrRouteEntryResponse {
        request_id: String,
        #[serde(flatten)]
        fields: EntryFields,
        overlay_mode: Option<String>,
        /// `published` or `normal`.
        state: Option<String>,
    }

    /// Answer of the operations that return only a `RequestId`.
    pub struct ActionResponse {
        request_id: String,
    }
}

requests! {
    /// `DeleteVpnPbrRouteEntry`: repeat the entry's current weight (and priority, if sent).
    pub struct DeleteVpnPbrRouteEntryRequest {
        #[serde(flatten)]
        entry: EntryKey,
        weight: u32,
        priority: Option<u32>,
        overlay_mode: Option<String>,
        client_token: Option<String>,
    }

    /// `DescribeVpnPbrRouteEntries`, one page.
    /// [`VpcClient::list_vpn_pbr_route_entries`](crate::VpcClient::list_vpn_pbr_route_entries)
    /// reads all pages.
    pub struct DescribeVpnPbrRouteEntriesRequest {
        vpn_gateway_id: String,
        page_number: Option<u32>,
        /// At most 50.
        page_size: Option<u32>,
    }
}

responses! {
    /// One page of `DescribeVpnPbrRouteEntries`.
    pub struct DescribeVpnPbrRouteEntriesResponse {
        request_id: String,
        #[serde(deserialize_with = "de::uint")]
        total_count: u32,
        page_number: Option<u32>,
        page_size: Option<u32>,
        /// `VpnPbrRouteEntries.VpnPbrRouteEntry[]`; an absent or empty wrapper is an empty list.
        #[serde(default, deserialize_with = "de::wrapped_list")]
        vpn_pbr_route_entries: Vec<VpnPbrRouteEntry>,
    }

    /// A policy-based route as the cloud lists it.
    pub struct VpnPbrRouteEntry {
        #[serde(flatten)]
        fields: EntryFields,
        /// Only on dual-tunnel gateways.
        next_hop_tunnel_id: Option<String>,
        /// `published` or `normal`.
        state: String,
    }
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

requests! {
    /// `ModifyVpnPbrRouteEntryWeight`: `weight` is the current one, `new_weight` the wanted one.
    pub struct ModifyVpnPbrRouteEntryWeightRequest {
        #[serde(flatten)]
        entry: EntryKey,
        weight: u32,
        new_weight: u32,
        priority: Option<u32>,
        overlay_mode: Option<String>,
        client_token: Option<String>,
    }

    /// `ModifyVpnPbrRouteEntryPriority`: `priority` is the current one (optional),
    /// `new_priority` the wanted one.
    pub struct ModifyVpnPbrRouteEntryPriorityRequest {
        #[serde(flatten)]
        entry: EntryKey,
        weight: u32,
        new_priority: u32,
        priority: Option<u32>,
        client_token: Option<String>,
    }

    /// `ModifyVpnPbrRouteEntryAttribute`: current `weight` and `priority`, and at least one of
    /// `new_weight` / `new_priority`.
    pub struct ModifyVpnPbrRouteEntryAttributeRequest {
        #[serde(flatten)]
        entry: EntryKey,
        weight: u32,
        priority: u32,
        new_weight: Option<u32>,
        new_priority: Option<u32>,
        client_token: Option<String>,
    }

    /// `PublishVpnRouteEntry`; for policy-based routes `route_type` is [`ROUTE_TYPE_PBR`].
    /// There is no `RouteSource` parameter.
    pub struct PublishVpnRouteEntryRequest {
        vpn_gateway_id: String,
        route_dest: String,
        next_hop: String,
        route_type: String,
        publish_vpc: bool,
        client_token: Option<String>,
    }
}

/// `RouteType` of policy-based routes.
pub const ROUTE_TYPE_PBR: &str = "pbr";

requests! {
    /// `DescribeVpnGateway`.
    pub struct DescribeVpnGatewayRequest {
        vpn_gateway_id: String,
        include_reservation_data: Option<bool>,
    }
}

responses! {
    /// Answer of `DescribeVpnGateway` (the fields this client reads).
    pub struct DescribeVpnGatewayResponse {
        request_id: String,
        vpn_gateway_id: String,
        /// `init`, `provisioning`, `active`, `updating`, `deleting`.
        status: String,
        /// `Normal` or `FinancialLocked`.
        business_status: Option<String>,
        vpc_id: Option<String>,
        #[serde(rename = "VSwitchId")]
        v_switch_id: Option<String>,
        name: Option<String>,
        description: Option<String>,
        spec: Option<String>,
        gateway_type: Option<String>,
        network_type: Option<String>,
        vpn_type: Option<String>,
        internet_ip: Option<String>,
        disaster_recovery_internet_ip: Option<String>,
        /// Set only on dual-tunnel gateways (with `DisasterRecoveryInternetIp`).
        #[serde(rename = "DisasterRecoveryVSwitchId")]
        disaster_recovery_v_switch_id: Option<String>,
        ipsec_vpn: Option<String>,
        enable_bgp: Option<bool>,
        charge_type: Option<String>,
        create_time: Option<i64>,
        end_time: Option<i64>,
        /// System tags as a JSON string (`PbrPriority`, `VpnVersion`, ...).
        tag: Option<String>,
    }
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

requests! {
    /// `DescribeVpnConnection`.
    pub struct DescribeVpnConnectionRequest {
        vpn_connection_id: String,
    }
}

responses! {
    /// Answer of `DescribeVpnConnection` (the fields this client reads).
    pub struct DescribeVpnConnectionResponse {
        request_id: String,
        vpn_connection_id: String,
        /// Absent for connections attached to a transit router.
        vpn_gateway_id: Option<String>,
        customer_gateway_id: Option<String>,
        name: Option<String>,
        local_subnet: Option<String>,
        remote_subnet: Option<String>,
        /// `active`, `init`, `attached`, `updating`, ...
        state: Option<String>,
        /// IPsec negotiation status (`ipsec_sa_established`, ...).
        status: Option<String>,
        attach_type: Option<String>,
        network_type: Option<String>,
        create_time: Option<i64>,
    }
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

requests! {
    /// STS `GetCallerIdentity`: who the credentials are and which account they act for. It
    /// takes no parameters and needs no RAM permission (its API page).
    pub struct GetCallerIdentityRequest {}
}

responses! {
    /// Answer of `GetCallerIdentity`.
    pub struct GetCallerIdentityResponse {
        request_id: String,
        /// The Alibaba Cloud account the credentials act for: the one whose resources they see.
        #[serde(deserialize_with = "de::string")]
        account_id: String,
        /// `Account`, `RAMUser` or `AssumedRoleUser`.
        identity_type: Option<String>,
        arn: Option<String>,
        principal_id: Option<String>,
        /// The account's or the RAM user's ID (not for a role).
        user_id: Option<String>,
        /// The RAM role's ID (only for a role).
        role_id: Option<String>,
    }
}

impl Operation for GetCallerIdentityRequest {
    const ACTION: &'static str = "GetCallerIdentity";
    const MUTATING: bool = false;
    const API: Api = Api::Sts;
    type Response = GetCallerIdentityResponse;
}
