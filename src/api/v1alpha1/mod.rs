//! `VpnPbrRoute` v1alpha1: one policy-based route of an Alibaba Cloud VPN gateway.
//!
//! Every rule the apiserver can check is a schema constraint or a CEL rule here, so bad input is
//! refused at `kubectl apply`; [`validation`] checks the same rules again in the controller.

mod account;
mod status;
pub mod validation;

use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use account::{
    ACCOUNT_FINALIZER, AccountCredentials, AssumeRole, DEFAULT_ACCOUNT_ANNOTATION,
    NamespacedSecretRef, OPERATOR_ACCOUNT, OperatorIdentity, VpnAccount, VpnAccountSpec,
    VpnAccountStatus,
};
pub use status::{Condition, ConditionStatus, ObservedRoute, VpnPbrRouteStatus};

/// API group of the resource.
pub const GROUP: &str = "vpn.alicloud.dev";
/// Finalizer that guards cloud cleanup.
pub const FINALIZER: &str = "vpn.alicloud.dev/cleanup";
/// Annotation that stops every cloud call for the object while `"true"`.
pub const PAUSED_ANNOTATION: &str = "vpn.alicloud.dev/paused";
/// Annotation by which an object consents to adopt a cloud entry it did not create.
pub const ADOPT_ANNOTATION: &str = "vpn.alicloud.dev/adopt";
/// Annotation that overrides the drift-check period (e.g. `"5m"`).
pub const RESYNC_ANNOTATION: &str = "vpn.alicloud.dev/resync-interval";
/// Label a Secret carries, with the value [`CREDENTIALS_LABEL_VALUE`], to be usable as
/// credentials (a route's `credentialsRef`); an unlabelled Secret is refused, so that a route
/// cannot borrow any Secret of its namespace that happens to hold the two keys.
pub const CREDENTIALS_LABEL: &str = "vpn.alicloud.dev/credentials";
/// The value of [`CREDENTIALS_LABEL`] that makes a Secret usable.
pub const CREDENTIALS_LABEL_VALUE: &str = "true";
/// Default route priority, as the cloud applies it.
pub const DEFAULT_PRIORITY: i32 = 10;

const IMMUTABLE: &str = "is immutable; create a new VpnPbrRoute instead";

/// The rule that fixes identity field `spec.<field>` (region, gateway, source, destination, next
/// hop). Checked at the root, where the status is visible: the field may still be corrected
/// while no cloud entry exists and no create is in flight (no `createTime`, no `clientToken`),
/// and is fixed after that.
fn identity_rule(field: &str) -> Rule {
    fixed_once_created(format!("self.spec.{field} == oldSelf.spec.{field}"), field)
}

/// `unchanged` must hold for `spec.<field>` once the route has a cloud entry or a create in
/// flight, as the route's status records.
fn fixed_once_created(unchanged: String, field: &str) -> Rule {
    Rule::new(format!(
        "{unchanged} || !has(oldSelf.status) || \
         (!has(oldSelf.status.createTime) && !has(oldSelf.status.clientToken))"
    ))
    .message("is immutable once the route exists in the cloud; create a new VpnPbrRoute instead")
    .field_path(format!(".spec.{field}"))
}

/// The rule that fixes `spec.accountRef` as [`identity_rule`] fixes the identity fields: the
/// entry lives in the account, so changing it (or adding or removing it) once an entry exists
/// or a create is in flight would orphan that entry. A rule on `spec` alone cannot see the
/// status, so this one too is checked at the root. An absent reference compares as `""`.
fn account_ref_rule() -> Rule {
    let value = |obj: &str| format!("(has({obj}.spec.accountRef) ? {obj}.spec.accountRef : '')");
    fixed_once_created(
        format!("{} == {}", value("self"), value("oldSelf")),
        "accountRef",
    )
}

/// Desired state of one policy-based route. Field names follow the VPC API in lowerCamelCase.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "vpn.alicloud.dev",
    version = "v1alpha1",
    kind = "VpnPbrRoute",
    plural = "vpnpbrroutes",
    singular = "vpnpbrroute",
    namespaced,
    status = "VpnPbrRouteStatus",
    shortname = "pbr",
    category = "alicloud",
    category = "vpn",
    derive = "PartialEq",
    doc = "A policy-based route of an Alibaba Cloud VPN gateway: traffic from routeSource to routeDest is sent over the IPsec connection nextHop.",
    printcolumn(name = "Gateway", type_ = "string", json_path = ".spec.vpnGatewayId"),
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.routeSource"),
    printcolumn(name = "Dest", type_ = "string", json_path = ".spec.routeDest"),
    printcolumn(name = "NextHop", type_ = "string", json_path = ".spec.nextHop"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".spec.weight"),
    printcolumn(name = "Priority", type_ = "integer", json_path = ".spec.priority", priority = 1),
    printcolumn(name = "Publish", type_ = "boolean", json_path = ".spec.publishVpc", priority = 1),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Synced", type_ = "string", json_path = ".status.conditions[?(@.type==\"Synced\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = identity_rule("regionId"),
    validation = identity_rule("vpnGatewayId"),
    validation = identity_rule("routeSource"),
    validation = identity_rule("routeDest"),
    validation = identity_rule("nextHop"),
    validation = account_ref_rule()
)]
#[x_kube(validation = Rule::new("has(self.description) == has(oldSelf.description)")
    .message("description is immutable: it cannot be added or removed after creation")
    .field_path(".description"))]
#[serde(rename_all = "camelCase")]
pub struct VpnPbrRouteSpec {
    /// Region of the VPN gateway, for example `cn-hangzhou`. Immutable once the route exists.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$")
    )]
    pub region_id: String,

    /// ID of the VPN gateway that holds the route (`vpn-...`). Immutable once the route exists.
    #[schemars(length(min = 5, max = 64))]
    #[x_kube(validation = Rule::new("self.startsWith('vpn-')").message("must be a VPN gateway ID starting with 'vpn-'"))]
    pub vpn_gateway_id: String,

    /// Source CIDR block of the route, an IPv4 network such as `192.168.1.0/24`. Immutable once the route exists.
    #[schemars(length(min = 9, max = 18))]
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4").message("must be an IPv4 CIDR block such as 192.168.1.0/24"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self) == cidr(self).masked()").message("must be a network address: host bits must be zero"))]
    pub route_source: String,

    /// Destination CIDR block of the route, an IPv4 network. On single-tunnel gateways it must
    /// not be `0.0.0.0/0` nor overlap `100.64.0.0/10` (the controller checks that, knowing the
    /// gateway). Immutable once the route exists.
    #[schemars(length(min = 9, max = 18))]
    #[x_kube(validation = Rule::new("isCIDR(self) && cidr(self).ip().family() == 4").message("must be an IPv4 CIDR block such as 10.0.0.0/16"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self) == cidr(self).masked()").message("must be a network address: host bits must be zero"))]
    pub route_dest: String,

    /// ID of the IPsec connection that is the next hop (`vco-...`). Immutable once the route exists.
    #[schemars(length(min = 5, max = 64))]
    #[x_kube(validation = Rule::new("self.startsWith('vco-')").message("must be an IPsec connection ID starting with 'vco-'"))]
    pub next_hop: String,

    /// Weight of the route: 100 makes it the active route, 0 the standby one.
    #[x_kube(validation = Rule::new("self == 0 || self == 100").message("must be 0 (standby) or 100 (active)"))]
    pub weight: i32,

    /// Whether the route is published to the VPC route table.
    pub publish_vpc: bool,

    /// Priority of the route, 1 (highest) to 100. Needs a gateway that supports priorities.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 1, max = 100))]
    pub priority: i32,

    /// Free-text description, 1 to 100 characters, not starting with `http://` or `https://`.
    /// Immutable: the VPC API cannot change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("!self.startsWith('http://') && !self.startsWith('https://')").message("must not start with http:// or https://"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(IMMUTABLE))]
    pub description: Option<String>,

    /// Tunnel overlay mode; only `Ipsec` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_mode: Option<OverlayMode>,

    /// Secret in the same namespace with keys `accessKeyId`, `accessKeySecret` and optionally
    /// `securityToken`; when unset the operator's own credentials are used. The Secret must
    /// carry the label `vpn.alicloud.dev/credentials: "true"` (an unlabelled one is refused).
    /// A VpnAccount (`accountRef`) is the preferred way: assumeRole, or a Secret an
    /// administrator names, keeps keys out of the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<SecretRef>,

    /// Name of the `VpnAccount` (cluster-scoped) whose cloud account holds the route; when unset,
    /// the namespace's `vpn.alicloud.dev/default-account` annotation names it, else the
    /// operator's own identity is used. The account must admit the route (its namespace,
    /// region and gateway). Immutable once the route exists in the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("must name a VpnAccount; it must not be empty"))]
    pub account_ref: Option<String>,

    /// What happens to the cloud entry when this object is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Full` keeps the cloud in line with the spec; `ObserveOnly` only reads and reports drift.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}

/// Tunnel overlay mode of the route.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum OverlayMode {
    Ipsec,
}

/// Reference to a Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What happens to the cloud entry when the object is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Delete the cloud entry, then let the object go.
    #[default]
    Delete,
    /// Leave the cloud entry in place.
    Orphan,
}

/// How far the operator acts on the cloud.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ManagementPolicy {
    /// Create, update and delete the cloud entry.
    #[default]
    Full,
    /// Read the cloud entry and report it; never change it.
    ObserveOnly,
}

impl VpnPbrRouteSpec {
    /// The identity of the route in the cloud: two objects with the same key claim one entry.
    pub fn route_key(&self) -> RouteKey {
        RouteKey {
            region_id: self.region_id.clone(),
            vpn_gateway_id: self.vpn_gateway_id.clone(),
            route_source: self.route_source.clone(),
            route_dest: self.route_dest.clone(),
            next_hop: self.next_hop.clone(),
        }
    }
}

/// The fields that identify one policy-based route entry in the cloud.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub region_id: String,
    pub vpn_gateway_id: String,
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}->{}/{}",
            self.region_id, self.vpn_gateway_id, self.route_source, self.route_dest, self.next_hop
        )
    }
}
