//! The RPC wire format: the signed parameter set of one request, its form body, and turning
//! an answer into a typed value or a [`CloudError`]. Pure functions, so they can be checked
//! by hand and fuzzed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::body::{self, ErrorFields};
use super::credentials::Credentials;
use super::error::{ApiError, CloudError};
use super::policy::classify;
use alicloud_signature::{percent_encode, sign_v1};

/// API version of the VPC operations.
pub const VPC_API_VERSION: &str = "2016-04-28";
/// API version of the STS operations.
pub const STS_API_VERSION: &str = "2015-04-01";

/// The per-request common parameters that are not credentials.
#[derive(Debug, Clone, Copy)]
pub struct CommonParams<'a> {
    pub action: &'a str,
    pub version: &'a str,
    /// Unique per attempt (the cloud refuses a reused nonce).
    pub nonce: &'a str,
    /// UTC `yyyy-MM-ddTHH:mm:ssZ`.
    pub timestamp: &'a str,
}

/// Now as the `Timestamp` parameter wants it: UTC `yyyy-MM-ddTHH:mm:ssZ`.
pub(crate) fn timestamp_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Builds the complete V1-signed parameter set of one request: `business` parameters plus
/// `Action`, `Version`, `Format=JSON`, `Timestamp`, `SignatureNonce`, `SignatureMethod=HMAC-SHA1`,
/// `SignatureVersion=1.0`, `AccessKeyId`, `SecurityToken` (STS credentials only) and finally
/// `Signature` over all of them with `method`.
///
/// Use it to check a signature by hand: the same inputs always give the same output.
pub fn signed_params(
    method: &str,
    common: &CommonParams<'_>,
    business: &BTreeMap<String, String>,
    credentials: &Credentials,
) -> BTreeMap<String, String> {
    let mut params = business.clone();
    let mut set = |k: &str, v: &str| {
        params.insert(k.to_owned(), v.to_owned());
    };
    set("Action", common.action);
    set("Version", common.version);
    set("Format", "JSON");
    set("Timestamp", common.timestamp);
    set("SignatureNonce", common.nonce);
    set("SignatureMethod", "HMAC-SHA1");
    set("SignatureVersion", "1.0");
    set("AccessKeyId", credentials.access_key_id());
    if let Some(token) = credentials.security_token() {
        set("SecurityToken", token.expose());
    }
    params.remove("Signature");
    let signature = sign_v1(credentials.access_key_secret().expose(), method, &params);
    params.insert("Signature".to_owned(), signature);
    params
}

/// `application/x-www-form-urlencoded` body with the SDKs' encoding (`%20` for space).
pub fn encode_form(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The wait the cloud asks for: `TimeLeft` (ms) of `x-ratelimit-user-api` / `x-ratelimit-user`
/// (`Limit:1,Remain:0,TimeLeft:2000,Reset:1234`), else `Retry-After` in seconds.
pub fn retry_after_from_headers(headers: &http::HeaderMap) -> Option<Duration> {
    for name in ["x-ratelimit-user-api", "x-ratelimit-user"] {
        let value = headers.get(name).and_then(|v| v.to_str().ok());
        let left = value.and_then(|v| {
            v.split(',')
                .filter_map(|kv| kv.split_once(':'))
                .find(|(k, _)| k.trim() == "TimeLeft")
                .and_then(|(_, ms)| ms.trim().parse::<u64>().ok())
        });
        if let Some(ms) = left {
            return Some(Duration::from_millis(ms));
        }
    }
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Turns an HTTP answer into `T` or a [`CloudError`]; never panics on any input.
///
/// Non-2xx answers become [`CloudError::Api`] with the body's `Code` (or `Http<status>` when the
/// body has none) and its class. A 2xx body that is not valid JSON/XML or lacks a required
/// field is [`CloudError::MalformedResponse`], unless it carries an error `Code`.
pub fn parse_response<T: DeserializeOwned>(
    action: &'static str,
    http_status: u16,
    content_type: Option<&str>,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> Result<T, CloudError> {
    let decoded = body::decode(bytes, content_type);
    let api_error = |fields: ErrorFields| {
        let code = fields.code.unwrap_or_else(|| format!("Http{http_status}"));
        CloudError::Api(Box::new(ApiError {
            action,
            http_status,
            class: classify(http_status, &code),
            message: fields.message.unwrap_or_default(),
            code,
            request_id: fields.request_id,
            host_id: fields.host_id,
            recommend: fields.recommend,
            retry_after,
        }))
    };
    if !(200..300).contains(&http_status) {
        let fields = decoded
            .as_ref()
            .map(ErrorFields::from_value)
            .unwrap_or_default();
        return Err(api_error(fields));
    }
    let value = decoded.map_err(|detail| CloudError::MalformedResponse {
        action,
        http_status,
        request_id: None,
        detail,
    })?;
    let fields = ErrorFields::from_value(&value);
    match serde_json::from_value::<T>(value) {
        Ok(parsed) => Ok(parsed),
        // Some gateways answer 200 with an error body; honour its code.
        Err(_) if fields.code.is_some() => Err(api_error(fields)),
        Err(e) => Err(CloudError::MalformedResponse {
            action,
            http_status,
            request_id: fields.request_id,
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use crate::operations::ActionResponse;

    #[test]
    fn signed_params_are_deterministic_and_complete() {
        let creds = Credentials::new("AKID", "secret").with_security_token("TOKEN");
        let common = CommonParams {
            action: "DescribeVpnGateway",
            version: VPC_API_VERSION,
            nonce: "n-1",
            timestamp: "2026-01-02T03:04:05Z",
        };
        let mut business = BTreeMap::new();
        business.insert("RegionId".to_owned(), "cn-hangzhou".to_owned());
        business.insert("VpnGatewayId".to_owned(), "vpn-1".to_owned());
        let a = signed_params("POST", &common, &business, &creds);
        let b = signed_params("POST", &common, &business, &creds);
        assert_eq!(a, b);
        for key in [
            "Action",
            "Version",
            "Format",
            "Timestamp",
            "SignatureNonce",
            "SignatureMethod",
            "SignatureVersion",
            "AccessKeyId",
            "SecurityToken",
            "Signature",
        ] {
            assert!(a.contains_key(key), "{key}");
        }
        let mut unsigned = a.clone();
        let sig = unsigned.remove("Signature").unwrap();
        assert_eq!(sign_v1("secret", "POST", &unsigned), sig);
        let other = Credentials::new("AKID", "secret");
        assert!(!signed_params("POST", &common, &business, &other).contains_key("SecurityToken"));
    }

    #[test]
    fn form_body_uses_percent_20() {
        let mut p = BTreeMap::new();
        p.insert("Description".to_owned(), "a b+c*~/".to_owned());
        assert_eq!(encode_form(&p), "Description=a%20b%2Bc%2A~%2F");
    }

    #[test]
    fn rate_limit_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-ratelimit-user-api",
            http::HeaderValue::from_static("Limit:1,Remain:0,TimeLeft:2000,Reset:1234"),
        );
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(2000))
        );
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", http::HeaderValue::from_static("3"));
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn error_without_code_uses_the_status() {
        let e = parse_response::<ActionResponse>("X", 503, None, None, b"<html>oops").unwrap_err();
        assert_eq!(e.code(), "Http503");
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = parse_response::<ActionResponse>(
            "X",
            200,
            None,
            None,
            br#"{"Code":"Throttling","Message":"m"}"#,
        )
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Throttled);
        let e = parse_response::<ActionResponse>("X", 200, None, None, b"{}").unwrap_err();
        assert!(matches!(e, CloudError::MalformedResponse { .. }), "{e}");
    }
}
