//! Observed state of a `VpnPbrRoute`, written by the controller only.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What the controller last saw in the cloud and did about it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpnPbrRouteStatus {
    /// Route state as the cloud reports it: `published` or `normal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Creation time of the cloud entry, RFC 3339 with milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// Gateway ID the cloud echoes for the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpn_instance_id: Option<String>,
    /// Weight, priority and publishing as last read from the cloud.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedRoute>,
    /// Last seen gateway status (`active`, `updating`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_status: Option<String>,
    /// Idempotency token of the create in flight; written before the create call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// RequestId of the last cloud call, for support tickets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<String>,
    /// The entry existed before this object and was adopted (with the adopt annotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
    /// When the entry was adopted, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_at: Option<String>,
    /// The Alibaba Cloud account that holds the entry: the one whose credentials listed it
    /// after this object made or adopted it (STS GetCallerIdentity). A deletion takes only that
    /// account's answers as proof that the entry or its gateway is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The `VpnAccount` whose credentials hold the entry: resolved at the first create (or the
    /// adoption) and fixed since, so a later change of the namespace's default account does not
    /// move the entry; `(operator)` for the operator's own identity (or the route's
    /// `credentialsRef`). A deletion uses this account's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `Ready` and `Synced`, and the kstatus conditions `Reconciling` and `Stalled` (each only
    /// while true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Spec generation the controller last acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The cloud entry's mutable attributes as last read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRoute {
    pub weight: i32,
    pub priority: i32,
    pub published: bool,
}

/// A standard Kubernetes condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Synced`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// A cloud error code or a stable CamelCase word.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When the status last changed, RFC 3339.
    pub last_transition_time: String,
    /// Spec generation this condition describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Condition truth value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}
