//! Which [`ErrorClass`] each cloud error code belongs to (from the error tables of the API pages).
//!
//! Exact codes come first; prefixes and the HTTP status only decide codes nobody has listed, so a
//! new code from the cloud still lands in a class that retries at a sensible pace.

use crate::class::ErrorClass;

/// The gateway is applying another change; wait for it to be `active` again.
const GATEWAY_BUSY: &[&str] = &[
    "VpnGateway.Configuring",
    "TaskConflict",
    "VpnTask.CONFLICT",
    "Appliance.Configuring",
    "VpnConnection.Configuring",
    // Terraform retries these too on VPN route operations.
    "VpnRouteEntry.Configuring",
    "IncorrectStatus.VpnGateway",
];

const THROTTLED: &[&str] = &[
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Rejected.Throttling",
];

const TRANSIENT: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "UnknownError",
    // The client sends a fresh nonce per attempt, so a reused nonce is a one-off collision.
    "SignatureNonceUsed",
];

const NEEDS_SPEC_CHANGE: &[&str] = &[
    "VpnRouteEntry.InvalidWeight",
    "IllegalParam.RouteDest",
    "OperationFailed.InvalidCidrBlock",
    "VpnPbrRouteEntryPriority.NotSupport",
    "VpnRouteEntry.BackupRoute",
    "VpnRouteEntry.Conflict",
    "VpnRouteEntry.ConflictSSL",
    "OperationFailed.RouteConflict",
];

const NEEDS_OUTSIDE_ACTION: &[&str] = &[
    "Forbidden",
    "Forbbiden.SubUser",
    "VpnGateway.FinancialLocked",
    "Resource.QuotaFull",
    "QuotaExceeded.VpnRouteEntry",
    "InvalidVpnGatewayInstanceId.NotFound",
    "InvalidNextHop.NotFound",
    // The same missing gateway or connection under other operations' names.
    "InvalidVpnGatewayId.NotFound",
    "InvalidVpnInstanceId.NotFound",
    "InvalidVpnConnectionInstanceId.NotFound",
    "INSTANCE_NOT_EXISTS",
    // Credentials, signatures and clocks: someone outside the operator must fix them.
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSignatureMethod",
    "InvalidTimeStamp.Format",
    "InvalidTimeStamp.Expired",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.Malformed",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "UnsupportedHTTPMethod",
    "InvalidApi.NotFound",
    "InvalidAction.NotFound",
    "InvalidRegionId",
    "NoPermission",
];

const ALREADY_EXISTS: &[&str] = &["VpnRouteEntry.AlreadyExists"];

/// Codes that say a route entry is gone (none documented for PBR yet; these are the names the
/// VPN route APIs use, and the emulator may return them).
const NOT_FOUND: &[&str] = &[
    "InvalidRouteEntry.NotFound",
    "VpnRouteEntry.NotFound",
    "InvalidVpnPbrRouteEntry.NotFound",
    "VpnPbrRouteEntry.NotFound",
];

/// Classifies an error answer of the cloud by its `Code` and HTTP status.
pub fn classify(http_status: u16, code: &str) -> ErrorClass {
    let exact = [
        (GATEWAY_BUSY, ErrorClass::GatewayBusy),
        (THROTTLED, ErrorClass::Throttled),
        (TRANSIENT, ErrorClass::Transient),
        (NEEDS_SPEC_CHANGE, ErrorClass::NeedsSpecChange),
        (NEEDS_OUTSIDE_ACTION, ErrorClass::NeedsOutsideAction),
        (ALREADY_EXISTS, ErrorClass::AlreadyExists),
        (NOT_FOUND, ErrorClass::NotFound),
    ];
    for (codes, class) in exact {
        if codes.contains(&code) {
            return class;
        }
    }
    if code.starts_with("Throttling") || code.contains(".Throttling") || http_status == 429 {
        return ErrorClass::Throttled;
    }
    if http_status >= 500 {
        return ErrorClass::Transient;
    }
    if code.starts_with("Forbidden")
        || code.starts_with("Forbbiden")
        || code.starts_with("QuotaExceeded")
        || code.starts_with("InvalidAccessKey")
        || code.starts_with("InvalidSecurityToken")
        || code.starts_with("Signature")
        || http_status == 401
        || http_status == 403
    {
        return ErrorClass::NeedsOutsideAction;
    }
    if code.starts_with("IllegalParam")
        || code.starts_with("InvalidParameter")
        || code.starts_with("OperationFailed.Invalid")
        || code.starts_with("VpnRouteEntry.Invalid")
    {
        return ErrorClass::NeedsSpecChange;
    }
    if code.ends_with(".NotFound") && code.contains("Route") {
        return ErrorClass::NotFound;
    }
    // Unknown 4xx: nothing the operator can change by itself, so retry slowly and show the code.
    ErrorClass::NeedsOutsideAction
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the error table on the API page of CreateVpnPbrRouteEntry, with its HTTP status.
    const SEED_TABLE: &[(u16, &str, ErrorClass)] = &[
        (400, "Resource.QuotaFull", ErrorClass::NeedsOutsideAction),
        (400, "VpnGateway.Configuring", ErrorClass::GatewayBusy),
        (
            400,
            "VpnGateway.FinancialLocked",
            ErrorClass::NeedsOutsideAction,
        ),
        (
            400,
            "VpnRouteEntry.AlreadyExists",
            ErrorClass::AlreadyExists,
        ),
        (400, "VpnRouteEntry.Conflict", ErrorClass::NeedsSpecChange),
        (
            400,
            "VpnRouteEntry.ConflictSSL",
            ErrorClass::NeedsSpecChange,
        ),
        (
            400,
            "VpnRouteEntry.BackupRoute",
            ErrorClass::NeedsSpecChange,
        ),
        (
            400,
            "VpnRouteEntry.InvalidWeight",
            ErrorClass::NeedsSpecChange,
        ),
        (
            400,
            "InvalidNextHop.NotFound",
            ErrorClass::NeedsOutsideAction,
        ),
        (400, "IllegalParam.RouteDest", ErrorClass::NeedsSpecChange),
        (
            400,
            "OperationFailed.RouteConflict",
            ErrorClass::NeedsSpecChange,
        ),
        (
            400,
            "OperationFailed.InvalidCidrBlock",
            ErrorClass::NeedsSpecChange,
        ),
        (
            400,
            "QuotaExceeded.VpnRouteEntry",
            ErrorClass::NeedsOutsideAction,
        ),
        (
            400,
            "VpnPbrRouteEntryPriority.NotSupport",
            ErrorClass::NeedsSpecChange,
        ),
        (400, "TaskConflict", ErrorClass::GatewayBusy),
        (403, "Forbbiden.SubUser", ErrorClass::NeedsOutsideAction),
        (403, "Forbidden", ErrorClass::NeedsOutsideAction),
        (
            404,
            "InvalidVpnGatewayInstanceId.NotFound",
            ErrorClass::NeedsOutsideAction,
        ),
    ];

    #[test]
    fn every_seed_code_is_classified() {
        for (status, code, class) in SEED_TABLE {
            assert_eq!(classify(*status, code), *class, "{code}");
        }
    }

    #[test]
    fn design_table_codes_are_classified() {
        for code in [
            "VpnTask.CONFLICT",
            "Appliance.Configuring",
            "VpnConnection.Configuring",
        ] {
            assert_eq!(classify(400, code), ErrorClass::GatewayBusy, "{code}");
        }
        for code in ["Throttling", "Throttling.User", "Throttling.Api"] {
            assert_eq!(classify(400, code), ErrorClass::Throttled, "{code}");
        }
        assert_eq!(classify(429, "Whatever"), ErrorClass::Throttled);
        assert_eq!(classify(500, "InternalError"), ErrorClass::Transient);
        assert_eq!(classify(503, "ServiceUnavailable"), ErrorClass::Transient);
        assert_eq!(classify(502, "BadGateway"), ErrorClass::Transient);
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId.NotFound",
            "InvalidTimeStamp.Expired",
            "InvalidSecurityToken.Expired",
        ] {
            assert_eq!(
                classify(400, code),
                ErrorClass::NeedsOutsideAction,
                "{code}"
            );
        }
    }

    #[test]
    fn unknown_codes_fall_back_by_shape() {
        assert_eq!(
            classify(400, "IllegalParam.RouteSource"),
            ErrorClass::NeedsSpecChange
        );
        assert_eq!(classify(400, "Throttling.Something"), ErrorClass::Throttled);
        assert_eq!(
            classify(404, "InvalidRouteEntry.NotFound"),
            ErrorClass::NotFound
        );
        assert_eq!(
            classify(400, "BrandNew.Code"),
            ErrorClass::NeedsOutsideAction
        );
        assert_eq!(classify(500, "BrandNew.Code"), ErrorClass::Transient);
    }
}
