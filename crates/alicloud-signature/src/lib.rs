//! Request signatures of the Alibaba Cloud RPC API.
//!
//! V1 (`SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`) is what the client sends; V3
//! (`ACS3-HMAC-SHA256`) is what the current official SDKs send by default, so the emulator
//! verifies both. Both are pure functions so users and tests can check them by hand.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Percent-encodes like the Alibaba Cloud SDKs: RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`) stay literal, every other UTF-8 byte becomes `%XY` with upper-case hex
/// (so space is `%20`, `*` is `%2A`, `/` is `%2F`).
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The canonicalized query string of signature V1: every parameter except `Signature`,
/// sorted by name in byte order, each name and value percent-encoded, joined by `&`.
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The V1 string to sign: `METHOD&%2F&percentEncode(canonical query)`.
pub fn string_to_sign_v1(method: &str, params: &BTreeMap<String, String>) -> String {
    format!(
        "{}&{}&{}",
        method,
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// Signs a parameter set with signature V1: `Base64(HMAC-SHA1(secret + "&", string to sign))`.
///
/// `params` are all request parameters (query and form), common ones included; a `Signature`
/// entry, if present, is ignored.
pub fn sign_v1(access_key_secret: &str, method: &str, params: &BTreeMap<String, String>) -> String {
    let string_to_sign = string_to_sign_v1(method, params);
    hmac_sha1_base64(&format!("{access_key_secret}&"), &string_to_sign)
}

fn hmac_sha1_base64(key: &str, data: &str) -> String {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Hex SHA-256 of a payload (the `x-acs-content-sha256` header of signature V3).
pub fn sha256_hex(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// The V3 canonical query string: keys sorted, values encoded, empty values as `key=`.
pub fn canonical_query_v3(query: &BTreeMap<String, String>) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Inputs of a V3 (`ACS3-HMAC-SHA256`) signature.
#[derive(Debug, Clone)]
pub struct V3Request<'a> {
    pub method: &'a str,
    /// Request path, `/` for RPC.
    pub path: &'a str,
    pub query: &'a BTreeMap<String, String>,
    /// Headers to sign, lower-case names; several values of one name are joined with `,`.
    pub signed_headers: &'a BTreeMap<String, Vec<String>>,
    /// Hex SHA-256 of the body.
    pub payload_hash: &'a str,
}

/// The V3 canonical request.
pub fn canonical_request_v3(req: &V3Request<'_>) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut headers = String::new();
    for (name, values) in req.signed_headers {
        let mut vals: Vec<&str> = values.iter().map(|v| v.trim()).collect();
        vals.sort_unstable();
        headers.push_str(&format!(
            "{}:{}\n",
            name.to_ascii_lowercase(),
            vals.join(",")
        ));
    }
    let names = req
        .signed_headers
        .keys()
        .map(|k| k.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(";");
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query_v3(req.query),
        headers,
        names,
        req.payload_hash
    )
}

/// The V3 string to sign: `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
pub fn string_to_sign_v3(req: &V3Request<'_>) -> String {
    format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request_v3(req).as_bytes())
    )
}

/// The V3 signature: hex HMAC-SHA256 keyed with the raw secret.
pub fn sign_v3(access_key_secret: &str, req: &V3Request<'_>) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(access_key_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(string_to_sign_v3(req).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn go_sdk_v1_vector() {
        let p = params(&[("test", "ok")]);
        assert_eq!(string_to_sign_v1("", &p), "&%2F&test%3Dok");
        assert_eq!(
            sign_v1("accessKeySecret", "", &p),
            "jHx/oHoHNrbVfhncHEvPdHXZwHU="
        );
    }

    #[test]
    fn python_sdk_v1_vector() {
        let p = params(&[("query", "test"), ("body", "test")]);
        assert_eq!(
            string_to_sign_v1("GET", &p),
            "GET&%2F&body%3Dtest%26query%3Dtest"
        );
        assert_eq!(sign_v1("secret", "GET", &p), "XlUyV4sXjOuX5FnjUz9IF9tm5rU=");
    }

    #[test]
    fn percent_encoding_edge_cases() {
        assert_eq!(percent_encode(" "), "%20");
        assert_eq!(percent_encode("*"), "%2A");
        assert_eq!(percent_encode("~"), "~");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("@"), "%40");
        assert_eq!(percent_encode("+"), "%2B");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("路由"), "%E8%B7%AF%E7%94%B1");
        assert_eq!(percent_encode("a-b_c.d"), "a-b_c.d");
    }

    #[test]
    fn go_sdk_v3_vector() {
        let q = params(&[("test", "ok"), ("empty", "")]);
        let mut h = BTreeMap::new();
        h.insert(
            "x-acs-test".to_owned(),
            vec!["http".to_owned(), "https".to_owned()],
        );
        let req = V3Request {
            method: "",
            path: "",
            query: &q,
            signed_headers: &h,
            payload_hash: "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        };
        assert_eq!(
            canonical_request_v3(&req),
            "\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
        );
        assert_eq!(
            sign_v3("secret", &req),
            "4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"
        );
        let get = V3Request {
            method: "GET",
            ..req
        };
        assert_eq!(
            sign_v3("secret", &get),
            "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
    }
}
