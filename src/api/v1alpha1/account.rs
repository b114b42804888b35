//! `VpnAccount` v1alpha1: how the operator reaches one Alibaba Cloud account, and who may use
//! it. Cluster-scoped, in the style of Crossplane's ProviderConfig: routes name one with
//! `spec.accountRef`, a namespace names its default with the [`DEFAULT_ACCOUNT_ANNOTATION`],
//! else the operator's own identity is used (docs/architecture.md, "Accounts").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Condition;

/// Annotation on a Namespace naming the `VpnAccount` its routes use when they set no
/// `spec.accountRef`.
pub const DEFAULT_ACCOUNT_ANNOTATION: &str = "vpn.alicloud.dev/default-account";
/// What a route's `status.account` says for the operator's own identity (no `VpnAccount`); not
/// a valid object name, so no account can be mistaken for it.
pub const OPERATOR_ACCOUNT: &str = "(operator)";
/// Finalizer that keeps an account while routes hold entries in it.
pub const ACCOUNT_FINALIZER: &str = "vpn.alicloud.dev/account-in-use";

/// How to reach one Alibaba Cloud account, which namespaces may use it, and for what.
// Each `printcolumn(...)` repeats `type_ = ...`; the lint takes the repeats for duplicates
// once rustfmt puts one on lines of its own.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(group = "vpn.alicloud.dev", version = "v1alpha1", kind = "VpnAccount")]
#[kube(
    plural = "vpnaccounts",
    singular = "vpnaccount",
    status = "VpnAccountStatus"
)]
#[kube(category = "alicloud", category = "vpn", derive = "PartialEq")]
#[kube(
    doc = "An Alibaba Cloud account the operator can act in: its credentials (the operator's own identity, an STS AssumeRole, or a Secret), the namespaces that may use it and the regions and gateways it may touch."
)]
#[kube(printcolumn(
    name = "Ready",
    type_ = "string",
    json_path = ".status.conditions[?(@.type==\"Ready\")].status"
))]
#[kube(printcolumn(name = "Account ID", type_ = "string", json_path = ".status.accountId"))]
#[kube(printcolumn(name = "Routes", type_ = "integer", json_path = ".status.routes"))]
#[kube(printcolumn(
    name = "Age",
    type_ = "date",
    json_path = ".metadata.creationTimestamp"
))]
#[x_kube(validation = Rule::new("!has(self.apiRate) || !has(self.credentials.operatorIdentity)")
    .message("apiRate does not apply to operatorIdentity: those calls are the operator's own account's, limited by the operator's --api-rate")
    .field_path(".apiRate"))]
#[serde(rename_all = "camelCase")]
pub struct VpnAccountSpec {
    /// Where the credentials come from: exactly one source.
    pub credentials: AccountCredentials,

    /// The namespaces whose routes may use this account, by their labels. `{}` admits every
    /// namespace; required, so that opening an account to all is written down.
    pub namespace_selector: LabelSelector,

    /// Regions routes may use through this account (e.g. `cn-hangzhou`); empty admits any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^[a-z0-9]+(-[a-z0-9]+)*$'))").message("each entry must be a region ID such as cn-hangzhou"))]
    pub regions: Vec<String>,

    /// VPN gateways routes may use through this account (`vpn-...`); empty admits any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 64)))]
    #[x_kube(validation = Rule::new("self.all(g, g.startsWith('vpn-') && size(g) >= 5)").message("each entry must be a VPN gateway ID starting with 'vpn-'"))]
    pub vpn_gateway_ids: Vec<String>,

    /// Whether routes may adopt existing cloud entries through this account (they still need
    /// their own adopt annotation). Off by default: adoption takes over an entry someone else
    /// made, which the account's owner must allow.
    #[serde(default)]
    pub allow_adoption: bool,

    /// Cloud API calls per second through this account, at most; lowered automatically while
    /// the cloud throttles, and handed out in the operator's order (the reads that time a
    /// gateway's change, then changes, then reads a change waits on, then background reads).
    /// The cloud's flow control is per account, so each account has its own limit and its own
    /// limiter: set the account's share of its cloud quota here when other tools call the same
    /// account, or when its quota differs from the operator's. Unset: the operator's
    /// `--api-rate`. A change applies to the waiting calls at once. Not with
    /// `operatorIdentity` (those calls are the operator's own account's, under `--api-rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 10000.0").message("must be a number of calls per second above 0 and at most 10000"))]
    pub api_rate: Option<f64>,
}

/// The one source of an account's credentials. Each source is a field so that the rule
/// "exactly one" can name what was given, and so that a source can grow options later.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("[has(self.operatorIdentity), has(self.assumeRole), has(self.secretRef)].filter(x, x).size() == 1").message("exactly one credential source must be set: operatorIdentity, assumeRole or secretRef"))]
#[serde(rename_all = "camelCase")]
pub struct AccountCredentials {
    /// The operator's own identity: RRSA (its ServiceAccount's OIDC token) or the default
    /// credentials chain. Written `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_identity: Option<OperatorIdentity>,

    /// An STS AssumeRole into a role of the account, made with the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,

    /// Static AccessKey credentials in a Secret, for those who must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<NamespacedSecretRef>,
}

/// The operator's own identity; no options yet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct OperatorIdentity {}

/// An STS AssumeRole into `roleArn`, made with the operator's own identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// ARN of the RAM role: `acs:ram::<accountId>:role/<roleName>`.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^acs:ram::[0-9]+:role/[A-Za-z0-9.-]{1,64}$')").message("must be a RAM role ARN: acs:ram::<accountId>:role/<roleName>"))]
    pub role_arn: String,

    /// The external ID the role's trust policy requires (`sts:ExternalId`), inline. It is not
    /// a secret (Alibaba Cloud's and AWS's guidance: it guards against a confused deputy, and
    /// anyone who can read the trust policy sees it), so it is written here rather than read
    /// from a Secret: the cluster-scoped account stays self-contained and the operator needs no
    /// Secret access for it. Teams that still treat it as one can keep `VpnAccount` readable
    /// only by administrators (it is cluster-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    #[x_kube(validation = Rule::new("size(self) >= 2 && self.matches('^[A-Za-z0-9=,.@:/_-]+$')").message("must be 2 to 1224 characters: letters, digits and =,.@:/-_"))]
    pub external_id: Option<String>,

    /// Session name of the assumed role (`RoleSessionName`, seen in ActionTrail); the operator
    /// picks one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9.@_-]{2,64}$')").message("must be 2 to 64 characters: letters, digits and .@-_"))]
    pub session_name: Option<String>,
}

/// A Secret in a namespace the account names, with keys `accessKeyId`, `accessKeySecret` and
/// optionally `securityToken` (as a route's `credentialsRef`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct NamespacedSecretRef {
    /// Namespace of the Secret.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("must name the Secret's namespace; it must not be empty"))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("must name the Secret; it must not be empty"))]
    pub name: String,
}

/// What the controller last learnt about the account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnAccountStatus {
    /// The account the credentials reach, as STS GetCallerIdentity answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// How many routes use this account (hold an entry in it, or name it).
    #[serde(default)]
    pub routes: i64,
    /// Spec generation the controller last acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and the kstatus conditions `Reconciling` and `Stalled` (each only while true),
    /// as on routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
