//! RAM role trust policies, in the documented shape only: statements that allow
//! `sts:AssumeRole` to RAM principals (an account ID, `acs:ram::<id>:root`, a RAM user ARN or a
//! role ARN), with an optional `StringEquals` condition on `sts:ExternalId`. No general policy
//! language: anything else is refused when the config is loaded.

use serde::{Deserialize, Serialize};

use super::auth::Principal;
use super::config::is_account_id;

/// One value or a list of them, as RAM policies allow for `Action`, principals and conditions.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v.as_slice(),
        };
        slice.iter().map(String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    #[serde(rename = "Statement")]
    pub statement: Vec<TrustStatement>,
    #[serde(rename = "Version", default = "policy_version")]
    pub version: String,
}

fn policy_version() -> String {
    "1".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustStatement {
    #[serde(rename = "Action")]
    pub action: OneOrMany,
    #[serde(rename = "Effect")]
    pub effect: String,
    #[serde(rename = "Principal")]
    pub principal: TrustPrincipal,
    #[serde(rename = "Condition", default)]
    pub condition: Option<TrustCondition>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustPrincipal {
    #[serde(rename = "RAM")]
    pub ram: OneOrMany,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustCondition {
    #[serde(rename = "StringEquals")]
    pub string_equals: ExternalIdCondition,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalIdCondition {
    #[serde(rename = "sts:ExternalId")]
    pub external_id: OneOrMany,
}

/// A trusted principal, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trusted<'a> {
    /// `<id>` or `acs:ram::<id>:root`: any RAM user or role session of the account.
    Account(&'a str),
    /// `acs:ram::<id>:user/<name>`.
    User(&'a str, &'a str),
    /// `acs:ram::<id>:role/<name>`: sessions of that role (role chaining).
    Role(&'a str, &'a str),
}

fn parse_principal(p: &str) -> Option<Trusted<'_>> {
    if is_account_id(p) {
        return Some(Trusted::Account(p));
    }
    let rest = p.strip_prefix("acs:ram::")?;
    let (account, resource) = rest.split_once(':')?;
    if !is_account_id(account) {
        return None;
    }
    match resource.split_once('/') {
        None if resource == "root" => Some(Trusted::Account(account)),
        Some(("user", name)) if !name.is_empty() => Some(Trusted::User(account, name)),
        Some(("role", name)) if !name.is_empty() => Some(Trusted::Role(account, name)),
        _ => None,
    }
}

impl TrustPolicy {
    /// Load-time check: only what [`TrustPolicy::allows`] understands.
    pub fn validate(&self) -> Result<(), String> {
        if self.statement.is_empty() {
            return Err("trust_policy has no Statement".to_owned());
        }
        for s in &self.statement {
            if s.effect != "Allow" {
                return Err(format!(
                    "trust_policy Effect {:?}: the emulator understands Allow only",
                    s.effect
                ));
            }
            if !s.action.iter().any(|a| a == "sts:AssumeRole") {
                return Err("trust_policy statement does not allow sts:AssumeRole".to_owned());
            }
            for p in s.principal.ram.iter() {
                if parse_principal(p).is_none() {
                    return Err(format!(
                        "trust_policy principal {p:?}: use an account ID, acs:ram::<id>:root, acs:ram::<id>:user/<name> or acs:ram::<id>:role/<name>"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a caller of `account` who is `who` may assume the role, given the `ExternalId`
    /// of the call.
    pub fn allows(&self, account: &str, who: &Principal, external_id: Option<&str>) -> bool {
        self.statement.iter().any(|s| {
            let trusted =
                s.principal
                    .ram
                    .iter()
                    .filter_map(parse_principal)
                    .any(|t| match (t, who) {
                        (Trusted::Account(a), _) => a == account,
                        (Trusted::User(a, n), Principal::RamUser { name }) => {
                            a == account && n == name
                        }
                        (Trusted::Role(a, n), Principal::AssumedRole { role_arn, .. }) => {
                            *role_arn == format!("acs:ram::{a}:role/{n}")
                        }
                        _ => false,
                    });
            let condition_met = match &s.condition {
                None => true,
                Some(c) => external_id
                    .is_some_and(|e| c.string_equals.external_id.iter().any(|want| want == e)),
            };
            trusted && condition_met
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(principals: &[&str], external_id: Option<&str>) -> TrustPolicy {
        TrustPolicy {
            statement: vec![TrustStatement {
                action: OneOrMany::One("sts:AssumeRole".to_owned()),
                effect: "Allow".to_owned(),
                principal: TrustPrincipal {
                    ram: OneOrMany::Many(principals.iter().map(|p| (*p).to_owned()).collect()),
                },
                condition: external_id.map(|e| TrustCondition {
                    string_equals: ExternalIdCondition {
                        external_id: OneOrMany::One(e.to_owned()),
                    },
                }),
            }],
            version: "1".to_owned(),
        }
    }

    #[test]
    fn principals_and_external_id() {
        let user = |name: &str| Principal::RamUser {
            name: name.to_owned(),
        };
        let session = Principal::AssumedRole {
            role_arn: "acs:ram::111:role/hub".to_owned(),
            role_id: "3".to_owned(),
            session: "s".to_owned(),
        };
        // (principals, external id of the policy, caller account, caller, call's id, allowed)
        type Row<'a> = (
            &'a [&'a str],
            Option<&'a str>,
            &'a str,
            Principal,
            Option<&'a str>,
            bool,
        );
        let table: Vec<Row<'_>> = vec![
            (&["111"], None, "111", user("u"), None, true),
            (&["111"], None, "222", user("u"), None, false),
            (
                &["acs:ram::111:root"],
                None,
                "111",
                session.clone(),
                None,
                true,
            ),
            (&["acs:ram::111:user/u"], None, "111", user("u"), None, true),
            (
                &["acs:ram::111:user/u"],
                None,
                "111",
                user("v"),
                None,
                false,
            ),
            (
                &["acs:ram::111:user/u"],
                None,
                "111",
                session.clone(),
                None,
                false,
            ),
            (
                &["acs:ram::111:role/hub"],
                None,
                "111",
                session.clone(),
                None,
                true,
            ),
            (
                &["acs:ram::111:role/hub"],
                None,
                "111",
                user("hub"),
                None,
                false,
            ),
            (&["111"], Some("x-1"), "111", user("u"), Some("x-1"), true),
            (&["111"], Some("x-1"), "111", user("u"), Some("x-2"), false),
            (&["111"], Some("x-1"), "111", user("u"), None, false),
            // Without a condition an ExternalId is not checked (as RAM).
            (&["111"], None, "111", user("u"), Some("x-2"), true),
        ];
        for (principals, want_id, account, who, id, allowed) in table {
            let p = policy(principals, want_id);
            assert!(p.validate().is_ok(), "{principals:?}");
            assert_eq!(
                p.allows(account, &who, id),
                allowed,
                "{principals:?} {want_id:?} {account} {who:?} {id:?}"
            );
        }
        for bad in [
            "acs:ram::*:root",
            "acs:ram::111:group/g",
            "alice",
            "acs:ram::111:user/",
        ] {
            assert!(policy(&[bad], None).validate().is_err(), "{bad}");
        }
        let mut deny = policy(&["111"], None);
        deny.statement[0].effect = "Deny".to_owned();
        assert!(deny.validate().is_err());
    }
}
