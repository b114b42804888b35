//! Request parameters (query string and urlencoded form body merged) and their typed
//! reading with the service's `Missing<Name>` / `InvalidParameter` errors.

use std::collections::BTreeMap;

use super::error::ApiError;

/// Parameter names that are not business parameters (excluded from the ClientToken
/// fingerprint).
const COMMON: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "SecurityToken",
    "ClientToken",
    "OwnerId",
    "OwnerAccount",
    "ResourceOwnerId",
    "ResourceOwnerAccount",
];

#[derive(Debug, Clone, Default)]
pub struct Params {
    pub map: BTreeMap<String, String>,
}

impl Params {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self { map }
    }

    /// A present, non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid_parameter(name))
            })
            .transpose()
    }

    pub fn required_int(&self, name: &str) -> Result<i64, ApiError> {
        self.int(name)?.ok_or_else(|| ApiError::missing(name))
    }

    /// Booleans case-insensitively: the Python Tea SDK sends `True`/`False`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| {
                if v.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if v.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    Err(ApiError::invalid_parameter(name))
                }
            })
            .transpose()
    }

    pub fn required_bool(&self, name: &str) -> Result<bool, ApiError> {
        self.bool(name)?.ok_or_else(|| ApiError::missing(name))
    }

    /// Business parameters as one canonical string, to compare ClientToken repeats.
    pub fn fingerprint(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.map {
            if !COMMON.contains(&k.as_str()) {
                out.push_str(k);
                out.push('=');
                out.push_str(v);
                out.push('\n');
            }
        }
        out
    }

    /// `PageNumber` (default 1, at least 1) and `PageSize` (default 10, 1..=50).
    pub fn paging(&self) -> Result<(usize, usize), ApiError> {
        let number = self.int("PageNumber")?.unwrap_or(1);
        let size = self.int("PageSize")?.unwrap_or(10);
        if number < 1 {
            return Err(ApiError::invalid_parameter("PageNumber"));
        }
        if !(1..=50).contains(&size) {
            return Err(ApiError::invalid_parameter("PageSize"));
        }
        Ok((number as usize, size as usize))
    }
}

/// Parses `a=b&c=d` (query string or form body) with `+` as space.
pub fn parse_urlencoded(input: &[u8], into: &mut BTreeMap<String, String>) {
    for (k, v) in url::form_urlencoded::parse(input) {
        into.insert(k.into_owned(), v.into_owned());
    }
}
