//! STS: `AssumeRoleWithOIDC`, an anonymous call that trades an OIDC token for temporary keys
//! (which the emulator then accepts like configured ones), and `GetCallerIdentity`, which tells
//! a signed caller who it is and which account it acts for.

use serde_json::{Value, json};

use super::auth::{KeyEntry, Principal};
use super::config::{DEFAULT_ACCOUNT_ID, OidcConfig, account_of_arn};
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
        key: KeyEntry {
            allowed_actions: role.allowed_actions.clone(),
            // A role's sessions act for the account in the role's ARN.
            account_id: account_of_arn(role_arn)
                .unwrap_or(DEFAULT_ACCOUNT_ID)
                .to_owned(),
            principal: Principal::AssumedRole {
                role_arn: role_arn.to_owned(),
                role_id: format!("3{role_id}"),
                session: session.to_owned(),
            },
            ..KeyEntry::new(
                secret,
                Some(security_token),
                Some(expires_ms),
                &access_key_id,
            )
        },
        access_key_id,
        body,
    })
}

/// `GetCallerIdentity` of the (authenticated) key: its account, and who it is (without
/// `RequestId`, which the server adds). The fields are the API page's; the IDs of users are
/// our own, derived from the key so that they stay the same across calls.
pub fn caller_identity(access_key_id: &str, key: &KeyEntry) -> Value {
    let account = &key.account_id;
    match &key.principal {
        Principal::RamUser { name } => {
            let user_id = numeric_id(access_key_id);
            json!({
                "IdentityType": "RAMUser",
                "AccountId": account,
                "UserId": user_id,
                "PrincipalId": user_id,
                "Arn": format!("acs:ram::{account}:user/{name}"),
            })
        }
        Principal::AssumedRole {
            role_arn,
            role_id,
            session,
        } => {
            let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
            json!({
                "IdentityType": "AssumedRoleUser",
                "AccountId": account,
                "RoleId": role_id,
                "PrincipalId": format!("{role_id}:{session}"),
                "Arn": format!("acs:ram::{account}:assumed-role/{role_name}/{session}"),
            })
        }
    }
}

/// A 16-digit ID derived from `seed` (FNV-1a), like the cloud's numeric user IDs.
fn numeric_id(seed: &str) -> String {
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("2{:015}", hash % 1_000_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::OidcRole;

    #[test]
    fn a_roles_sessions_act_for_the_account_of_its_arn() {
        let role = "acs:ram::2222222222222222:role/operator";
        let oidc = OidcConfig {
            provider_arn: "acs:ram::2222222222222222:oidc-provider/p".to_owned(),
            roles: vec![OidcRole {
                arn: role.to_owned(),
                max_session_duration_secs: 3600,
                allowed_actions: None,
            }],
            accepted_tokens: vec![],
        };
        let params: BTreeMap<String, String> = [
            ("RoleArn", role),
            ("OIDCProviderArn", oidc.provider_arn.as_str()),
            ("OIDCToken", "token"),
            ("RoleSessionName", "s1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let issued = assume_role_with_oidc(&Params::new(params), Some(&oidc), 0, || {
            "0123456789abcdef0123".to_owned()
        })
        .expect("issued");
        assert_eq!(issued.key.account_id, "2222222222222222");
        let who = caller_identity(&issued.access_key_id, &issued.key);
        assert_eq!(who["AccountId"], "2222222222222222");
        assert_eq!(who["IdentityType"], "AssumedRoleUser");
        assert_eq!(
            who["Arn"],
            "acs:ram::2222222222222222:assumed-role/operator/s1"
        );
    }
}
