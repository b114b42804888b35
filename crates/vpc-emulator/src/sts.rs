//! STS `AssumeRoleWithOIDC`: an anonymous call that trades an OIDC token for temporary
//! keys, which the emulator then accepts like configured ones.

use serde_json::{Value, json};

use super::auth::KeyEntry;
use super::config::OidcConfig;
use super::error::ApiError;
use super::params::Params;

/// Issued credentials: the key id, its store entry, and the response body.
pub struct Issued {
    pub access_key_id: String,
    pub key: KeyEntry,
    pub body: Value,
}

/// Checks the call against the configured provider and role and issues temporary keys.
/// `random` yields fresh random hex strings.
pub fn assume_role_with_oidc(
    p: &Params,
    oidc: Option<&OidcConfig>,
    now_ms: u64,
    mut random: impl FnMut() -> String,
) -> Result<Issued, ApiError> {
    let role_arn = p.required("RoleArn")?;
    let provider_arn = p.required("OIDCProviderArn")?;
    let token = p.required("OIDCToken")?;
    let session = p.get("RoleSessionName").unwrap_or("emulator-session");
    let duration = p.int("DurationSeconds")?.unwrap_or(3600);
    let oidc = oidc.ok_or_else(|| {
        ApiError::new(
            404,
            "EntityNotExist.OIDCProvider",
            "The specified OIDC provider does not exist.",
        )
    })?;
    if oidc.provider_arn != provider_arn {
        return Err(ApiError::new(
            404,
            "EntityNotExist.OIDCProvider",
            "The specified OIDC provider does not exist.",
        ));
    }
    let role = oidc
        .roles
        .iter()
        .find(|r| r.arn == role_arn)
        .ok_or_else(|| {
            ApiError::new(404, "EntityNotExist.Role", "The specified Role not exists.")
        })?;
    if duration < 900 || u64::try_from(duration).is_ok_and(|d| d > role.max_session_duration_secs) {
        return Err(ApiError::new(
            400,
            "InvalidParameter.DurationSeconds",
            "The Min/Max value of DurationSeconds is 15min/max session duration.",
        ));
    }
    if !oidc.accepted_tokens.is_empty() && !oidc.accepted_tokens.iter().any(|t| t == token) {
        return Err(ApiError::new(
            400,
            "AuthenticationFail.OIDCToken.Invalid",
            "The OIDC token is invalid.",
        ));
    }
    let access_key_id = format!("STS.{}", random());
    let secret = random();
    let security_token = format!("CAIS{}{}", random(), random());
    let expires_ms = now_ms + (duration as u64) * 1000;
    let expiration = jiff::Timestamp::from_millisecond(expires_ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .map_err(|_| ApiError::internal_error())?;
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let role_id = random();
    let role_id = role_id.get(..16).unwrap_or(&role_id);
    let body = json!({
        "AssumedRoleUser": {
            "Arn": format!("{role_arn}/{session}"),
            "AssumedRoleId": format!("3{role_id}:{session}"),
        },
        "OIDCTokenInfo": {"Subject": "system:serviceaccount", "Issuer": "emulator", "ClientIds": role_name},
        "Credentials": {
            "AccessKeyId": access_key_id,
            "AccessKeySecret": secret,
            "SecurityToken": security_token,
            "Expiration": expiration,
        },
    });
    Ok(Issued {
        access_key_id,
        key: KeyEntry {
            allowed_actions: role.allowed_actions.clone(),
            ..KeyEntry::new(secret, Some(security_token), Some(expires_ms))
        },
        body,
    })
}
