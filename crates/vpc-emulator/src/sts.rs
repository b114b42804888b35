//! STS: `AssumeRoleWithOIDC`, an anonymous call that trades an OIDC token for temporary keys,
//! `AssumeRole`, a signed call that trades the caller's keys for a session of a role its trust
//! policy allows (the emulator then accepts both kinds of temporary keys like configured
//! ones, as the role's account, until they expire), and `GetCallerIdentity`, which tells a
//! signed caller who it is and which account it acts for.

use serde_json::{Value, json};

use super::auth::{KeyEntry, Principal};
use super::config::{Config, DEFAULT_ACCOUNT_ID, OidcConfig, account_of_arn, is_account_id};
use super::error::ApiError;
use super::params::Params;

/// Issued credentials: the key id, its store entry, and the response body.
pub struct Issued {
    pub access_key_id: String,
    pub key: KeyEntry,
    pub body: Value,
}

/// The real minimum of `DurationSeconds` (15 min).
const MIN_SESSION_SECS: u64 = 900;

/// Checks the call against the configured provider and role and issues temporary keys.
/// `min_secs` is the shortest session granted; `random` yields fresh random hex strings.
pub fn assume_role_with_oidc(
    p: &Params,
    oidc: Option<&OidcConfig>,
    min_secs: Option<u64>,
    now_ms: u64,
    random: impl FnMut() -> String,
) -> Result<Issued, ApiError> {
    let role_arn = p.required("RoleArn")?;
    let provider_arn = p.required("OIDCProviderArn")?;
    let token = p.required("OIDCToken")?;
    let session = p.get("RoleSessionName").unwrap_or("emulator-session");
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
    let duration = duration_secs(p, min_secs, role.max_session_duration_secs)?;
    if !oidc.accepted_tokens.is_empty() && !oidc.accepted_tokens.iter().any(|t| t == token) {
        return Err(ApiError::new(
            400,
            "AuthenticationFail.OIDCToken.Invalid",
            "The OIDC token is invalid.",
        ));
    }
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let account = account_of_arn(role_arn).unwrap_or(DEFAULT_ACCOUNT_ID);
    let mut issued = issue(
        Session {
            account,
            role_name,
            session,
            secs: duration,
            allowed_actions: role.allowed_actions.clone(),
        },
        now_ms,
        random,
    )?;
    if let Some(body) = issued.body.as_object_mut() {
        body.insert(
            "OIDCTokenInfo".to_owned(),
            json!({"Subject": "system:serviceaccount", "Issuer": "emulator", "ClientIds": role_name}),
        );
    }
    Ok(issued)
}

/// `AssumeRole`: a signed caller of `caller_account` who is `caller` asks for a session of a
/// configured role; the role's trust policy decides. A session policy (`Policy`) is refused:
/// the emulator does not evaluate policies, and ignoring one would grant more than asked.
pub fn assume_role(
    p: &Params,
    config: &Config,
    caller_account: &str,
    caller: &Principal,
    now_ms: u64,
    random: impl FnMut() -> String,
) -> Result<Issued, ApiError> {
    let role_arn = p.required("RoleArn")?;
    let session = p.required("RoleSessionName")?;
    let (account, role_name) = parse_role_arn(role_arn).ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is wrongly formed.",
        )
    })?;
    let session_ok = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
    if !session_ok {
        return Err(ApiError::new(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    if p.get("Policy").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::new(
            400,
            "InvalidParameter.PolicyGrammar",
            "The parameter Policy has not passed grammar check. (The emulator does not evaluate session policies; call without Policy.)",
        ));
    }
    let external_id = p.get("ExternalId").filter(|v| !v.is_empty());
    let external_id_ok = external_id.is_none_or(|e| {
        (2..=1224).contains(&e.len())
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
    });
    if !external_id_ok {
        return Err(ApiError::new(
            400,
            "InvalidParameter.ExternalId",
            "The parameter ExternalId is wrongly formed.",
        ));
    }
    let role = config.role(account, role_name).ok_or_else(|| {
        ApiError::new(
            404,
            "EntityNotExist.Role",
            format!("The specified Role not exists: {role_arn}."),
        )
    })?;
    // An untrusted caller and a wrong or missing ExternalId get the same answer: STS does not
    // tell which condition failed.
    if !role
        .trust_policy
        .allows(caller_account, caller, external_id)
    {
        return Err(ApiError::new(
            403,
            "NoPermission",
            "You are not authorized to do this action. You should be authorized by RAM.",
        ));
    }
    let secs = duration_secs(
        p,
        config.settings.test_min_session_seconds,
        role.max_session_duration_secs,
    )?;
    issue(
        Session {
            account,
            role_name,
            session,
            secs,
            allowed_actions: role.allowed_actions.clone(),
        },
        now_ms,
        random,
    )
}

/// `acs:ram::<account>:role/<name>` split into account and role name.
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, name) = rest.split_once(":role/")?;
    (is_account_id(account) && !name.is_empty() && !name.contains('/')).then_some((account, name))
}

/// `DurationSeconds` (default 3600) if within `min_secs` (default 900) and the role's maximum.
fn duration_secs(p: &Params, min_secs: Option<u64>, max_secs: u64) -> Result<u64, ApiError> {
    let min = min_secs.unwrap_or(MIN_SESSION_SECS);
    let asked = p.int("DurationSeconds")?.unwrap_or(3600);
    u64::try_from(asked)
        .ok()
        .filter(|d| (min..=max_secs).contains(d))
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidParameter.DurationSeconds",
                format!("The Min/Max value of DurationSeconds is 15min/{max_secs}s."),
            )
        })
}

/// What a new session is of.
struct Session<'a> {
    account: &'a str,
    role_name: &'a str,
    session: &'a str,
    secs: u64,
    allowed_actions: Option<Vec<String>>,
}

/// New temporary keys for a session of a role: they act for the role's account.
fn issue(
    s: Session<'_>,
    now_ms: u64,
    mut random: impl FnMut() -> String,
) -> Result<Issued, ApiError> {
    let Session {
        account,
        role_name,
        session,
        secs,
        allowed_actions,
    } = s;
    let role_arn = format!("acs:ram::{account}:role/{role_name}");
    let access_key_id = format!("STS.{}", random());
    let secret = random();
    let security_token = format!("CAIS{}{}", random(), random());
    let expires_ms = now_ms + secs * 1000;
    let expiration = jiff::Timestamp::from_millisecond(expires_ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .map_err(|_| ApiError::internal_error())?;
    // A role's ID is stable (derived from its ARN), like the cloud's.
    let role_id = format!("3{}", &numeric_id(&role_arn)[1..]);
    let body = json!({
        "AssumedRoleUser": {
            "Arn": format!("{role_arn}/{session}"),
            "AssumedRoleId": format!("{role_id}:{session}"),
        },
        "Credentials": {
            "AccessKeyId": access_key_id,
            "AccessKeySecret": secret,
            "SecurityToken": security_token,
            "Expiration": expiration,
        },
    });
    Ok(Issued {
        key: KeyEntry {
            allowed_actions,
            account_id: account.to_owned(),
            principal: Principal::AssumedRole {
                role_arn,
                role_id,
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
        let issued = assume_role_with_oidc(&Params::new(params), Some(&oidc), None, 0, || {
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
