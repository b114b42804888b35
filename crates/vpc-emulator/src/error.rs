//! Errors: [`ApiError`] is what the emulated service answers (code, HTTP status, message);
//! [`EmulatorError`] is what stops the emulator itself (config, I/O).

use std::borrow::Cow;

use serde_json::{Value, json};

/// An error answered to an API client, rendered as the service's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    /// `AccessDeniedDetail` of the body (permission errors only).
    pub access_denied_detail: Option<Box<Value>>,
}

/// The busy codes a gateway (or its connections) answers a mutation with: the seed page's
/// two, and the three Terraform retries besides them on every PBR mutation (their messages
/// are our guesses).
pub const BUSY_CODES: &[(&str, &str)] = &[
    (
        "VpnGateway.Configuring",
        "The specified service is configuring.",
    ),
    (
        "TaskConflict",
        "The operation is too frequent, please wait a moment and try again.",
    ),
    (
        "Appliance.Configuring",
        "The specified appliance is configuring.",
    ),
    (
        "VpnTask.CONFLICT",
        "The task conflicts with another task of the VPN gateway.",
    ),
    (
        "VpnConnection.Configuring",
        "The specified vpn connection is configuring.",
    ),
];

/// Who a 403 answer blames: `Forbidden` (an account's RAM identity without the permission) or
/// `Forbbiden.SubUser` (sic; a RAM user created by another account), both from the seed page.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub enum ForbiddenCode {
    #[default]
    Forbidden,
    #[serde(rename = "Forbbiden.SubUser")]
    SubUser,
}

impl ApiError {
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            access_denied_detail: None,
        }
    }

    // --- Gateway (POP) errors of the API reference ---

    pub fn missing(name: &str) -> Self {
        Self::new(
            400,
            format!("Missing{name}"),
            format!("{name} is mandatory for this action."),
        )
    }

    pub fn invalid_parameter(name: &str) -> Self {
        Self::new(
            400,
            "InvalidParameter",
            format!("Specified parameter {name} is not valid."),
        )
    }

    pub fn action_not_found() -> Self {
        Self::new(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )
    }

    pub fn invalid_version() -> Self {
        Self::new(
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        )
    }

    pub fn access_key_not_found() -> Self {
        Self::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    }

    pub fn timestamp_format() -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    }

    pub fn timestamp_expired() -> Self {
        Self::new(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        )
    }

    pub fn nonce_used() -> Self {
        Self::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )
    }

    pub fn signature_method() -> Self {
        Self::new(
            400,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
        )
    }

    pub fn signature_version() -> Self {
        Self::new(
            400,
            "InvalidSignatureVersion",
            "Specified signature version is not valid.",
        )
    }

    pub fn incomplete_signature() -> Self {
        Self::new(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    }

    /// The message carries the server's string to sign after `server string to sign is:`;
    /// the classic SDKs compare it with their own to tell a wrong secret from a wrong encoder.
    pub fn signature_mismatch(string_to_sign: &str) -> Self {
        Self::new(
            400,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
        )
    }

    pub fn security_token_mismatch() -> Self {
        Self::new(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )
    }

    pub fn security_token_missing() -> Self {
        Self::new(
            400,
            "MissingSecurityToken",
            "SecurityToken is mandatory for this action.",
        )
    }

    pub fn security_token_expired() -> Self {
        Self::new(
            400,
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired.",
        )
    }

    pub fn throttling() -> Self {
        Self::new(
            400,
            "Throttling",
            "Request was denied due to request throttling.",
        )
    }

    pub fn throttling_user() -> Self {
        Self::new(
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        )
    }

    pub fn internal_error() -> Self {
        Self::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
        )
    }

    pub fn service_unavailable() -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    }

    // --- Operation errors (the API pages' error tables) ---

    pub fn region_not_found() -> Self {
        Self::new(
            404,
            "InvalidRegionId.NotFound",
            "The specified RegionId does not exist in our records.",
        )
    }

    pub fn gateway_not_found() -> Self {
        Self::new(
            404,
            "InvalidVpnGatewayInstanceId.NotFound",
            "The specified vpn gateway instance id does not exist.",
        )
    }

    pub fn connection_not_found() -> Self {
        Self::new(
            404,
            "InvalidVpnConnectionInstanceId.NotFound",
            "The specified vpn connection instance id does not exist.",
        )
    }

    pub fn configuring() -> Self {
        Self::new(
            400,
            "VpnGateway.Configuring",
            "The specified service is configuring.",
        )
    }

    /// One of [`BUSY_CODES`] (HTTP 400); `None` for another code.
    pub fn busy(code: &str) -> Option<Self> {
        BUSY_CODES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, m)| Self::new(400, *c, *m))
    }

    /// A request whose identity lacks the permission of `action` (HTTP 403). The message is
    /// the seed page's, followed by the RAM action it lacks; `AccessDeniedDetail` names it
    /// too, as RAM's permission errors do (the SDKs read that field).
    pub fn forbidden(code: ForbiddenCode, action: &str) -> Self {
        let (code, text) = match code {
            ForbiddenCode::Forbidden => (
                "Forbidden",
                "User not authorized to operate on the specified resource.",
            ),
            ForbiddenCode::SubUser => (
                "Forbbiden.SubUser",
                "User not authorized to operate on the specified resource as your account is created by another user.",
            ),
        };
        let mut err = Self::new(403, code, format!("{text} Action: vpc:{action}"));
        err.access_denied_detail = Some(Box::new(json!({
            "AuthAction": format!("vpc:{action}"),
            "AuthPrincipalType": "SubUser",
            "NoPermissionType": "ImplicitDeny",
            "PolicyType": "AccountLevelIdentityBasedPolicy",
        })));
        err
    }

    /// A valid `DryRun=true` request (HTTP 400, the code the SDK's DryRun description names;
    /// the message is the one other Alibaba Cloud APIs answer).
    pub fn dry_run() -> Self {
        Self::new(
            400,
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        )
    }

    /// A gateway being deleted. The code is Terraform's (it treats it as "gateway gone"); HTTP
    /// status and message are our guesses.
    pub fn incorrect_gateway_status() -> Self {
        Self::new(
            400,
            "IncorrectStatus.VpnGateway",
            "The status of the specified VPN gateway does not allow this operation.",
        )
    }

    /// The seed page's code for a route that conflicts with an existing route; when it is
    /// answered (another gateway of the VPC routes the destination) is our choice.
    pub fn route_entry_conflict() -> Self {
        Self::new(
            400,
            "VpnRouteEntry.Conflict",
            "The specified route entry has conflict.",
        )
    }

    /// Invented (modelled on `VpnPbrRouteEntryPriority.NotSupport`): a weight change on a
    /// dual-tunnel gateway with `dual_tunnel_weight_change: refuse`.
    pub fn weight_not_supported() -> Self {
        Self::new(
            400,
            "VpnPbrRouteEntryWeight.NotSupport",
            "The weight of a policy-based route cannot be modified on a VPN gateway in dual-tunnel mode.",
        )
    }

    pub fn financial_locked() -> Self {
        Self::new(
            400,
            "VpnGateway.FinancialLocked",
            "The specified service is financial locked.",
        )
    }

    pub fn task_conflict() -> Self {
        Self::new(
            400,
            "TaskConflict",
            "The operation is too frequent, please wait a moment and try again.",
        )
    }

    pub fn already_exists() -> Self {
        Self::new(
            400,
            "VpnRouteEntry.AlreadyExists",
            "The specified route entry is already exist.",
        )
    }

    pub fn backup_route() -> Self {
        Self::new(
            400,
            "VpnRouteEntry.BackupRoute",
            "Validate backup route entry failed.",
        )
    }

    pub fn invalid_weight() -> Self {
        Self::new(
            400,
            "VpnRouteEntry.InvalidWeight",
            "Invalid route entry weight value.",
        )
    }

    pub fn next_hop_not_found() -> Self {
        Self::new(
            400,
            "InvalidNextHop.NotFound",
            "The specified NextHop does not exist.",
        )
    }

    pub fn illegal_route_dest() -> Self {
        Self::new(
            400,
            "IllegalParam.RouteDest",
            "The specified RouteDest is invalid",
        )
    }

    pub fn invalid_cidr() -> Self {
        Self::new(
            400,
            "OperationFailed.InvalidCidrBlock",
            "Operation failed because the specified network block is invalid.",
        )
    }

    pub fn route_conflict() -> Self {
        Self::new(
            400,
            "OperationFailed.RouteConflict",
            "Operation failed because there is already a route in VPC route table to another VPN on the same network block.",
        )
    }

    pub fn vpc_route_quota() -> Self {
        Self::new(
            400,
            "QuotaExceeded.VpnRouteEntry",
            "The number of route entries to the VPN gateway in the VPC routing table has reached the quota limit.",
        )
    }

    pub fn quota_full() -> Self {
        Self::new(400, "Resource.QuotaFull", "The quota of resource is full")
    }

    pub fn priority_not_supported() -> Self {
        Self::new(
            400,
            "VpnPbrRouteEntryPriority.NotSupport",
            "Current version of the VPN does not support setting custom pbr route entry priority.",
        )
    }

    /// Invented (no source documents the code for a missing PBR entry); TF uses this code
    /// for the destination-based route table.
    pub fn entry_not_found() -> Self {
        Self::new(
            404,
            "InvalidRouteEntry.NotFound",
            "The specified route entry does not exist.",
        )
    }

    /// Invented code; the limits are documented.
    pub fn invalid_description() -> Self {
        Self::new(
            400,
            "InvalidDescription.Malformed",
            "The specified description is wrongly formed.",
        )
    }

    /// Our choice, borrowed from other Alibaba Cloud products.
    pub fn idempotence_mismatch() -> Self {
        Self::new(
            400,
            "IdempotentParameterMismatch",
            "The request uses the same client token as a previous, but non-identical request.",
        )
    }
}

/// Errors that stop the emulator (startup, config, state file).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config {path}: {source}")]
    ConfigSyntax {
        path: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("state file {path}: {source}")]
    StateFile {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
