//! PURE: which account a route acts in, and whether it may (docs/architecture.md, "Accounts").
//! The route's record (`status.account`, written with its first create or adoption) wins, so a
//! later change of the namespace default never moves an existing entry; else `spec.accountRef`;
//! else the account of an entry made before accounts were recorded (the operator's identity);
//! else the namespace's default account (annotation); else, unless an explicit account is
//! required, the operator's own identity, itself an account with a namespace selector. The
//! account then has to admit the route: its namespace, region and gateway. The executor looks
//! the objects up in its caches and acts on the answer; every rule is here.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use super::reason::Reason;
use crate::api::v1alpha1::{
    DEFAULT_ACCOUNT_ANNOTATION, OPERATOR_ACCOUNT, VpnAccount, VpnAccountSpec, VpnPbrRoute,
};

/// What the resolution needs of the route's Namespace.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NamespaceView<'a> {
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

impl<'a> NamespaceView<'a> {
    fn default_account(self) -> Option<&'a str> {
        self.annotations?
            .get(DEFAULT_ACCOUNT_ANNOTATION)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }
}

/// The operator's settings about accounts.
#[derive(Clone, Debug, Default)]
pub(crate) struct AccountOptions {
    /// A route must name an account (its own `accountRef` or its namespace's default).
    pub require_account: bool,
    /// The namespaces whose routes may use the operator's own identity (`{}`: all).
    pub operator_namespaces: LabelSelector,
}

/// The account a route acts in.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// The value `status.account` records: the VpnAccount's name, or [`OPERATOR_ACCOUNT`].
    pub name: String,
    /// The VpnAccount, `None` for the operator's own identity.
    pub account: Option<Arc<VpnAccount>>,
}

impl Resolved {
    fn operator() -> Self {
        Self {
            name: OPERATOR_ACCOUNT.to_owned(),
            account: None,
        }
    }

    /// Whether routes may adopt existing entries through this account (the operator's own
    /// identity: yes, as before accounts; a VpnAccount: its `allowAdoption`).
    pub(crate) fn allows_adoption(&self) -> bool {
        self.account.as_ref().is_none_or(|a| a.spec.allow_adoption)
    }
}

/// Why a route may not act in the account it resolves to: its Ready reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub message: String,
}

/// Where the account choice came from (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Recorded,
    AccountRef,
    NamespaceDefault,
}

impl Source {
    fn says(self) -> &'static str {
        match self {
            Self::Recorded => "the route's entry is held by",
            Self::AccountRef => "spec.accountRef names",
            Self::NamespaceDefault => "the namespace's default account",
        }
    }
}

/// Whether the route holds an entry (or a create is under way) in VpnAccount `name`: such an
/// account is not let go while the route needs it.
pub(crate) fn holds_entry_in(route: &VpnPbrRoute, name: &str) -> bool {
    recorded(route) == Some(name) && holds_entry(route)
}

/// The name of the account the route's status records, if any.
pub(crate) fn recorded(route: &VpnPbrRoute) -> Option<&str> {
    route.status.as_ref().and_then(|s| s.account.as_deref())
}

/// Whether the route holds (or may hold) a cloud entry: created, adopted, or a create in flight.
fn holds_entry(route: &VpnPbrRoute) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.create_time.is_some() || s.client_token.is_some() || s.adopted == Some(true)
    })
}

/// The account name the route uses, and where it came from; `None` for the operator's
/// identity (no VpnAccount). This is what the account finalizer and `status.routes` count.
pub(crate) fn chosen_name<'a>(
    route: &'a VpnPbrRoute,
    namespace: NamespaceView<'a>,
) -> Option<&'a str> {
    choose(route, namespace).map(|(name, _)| name)
}

fn choose<'a>(route: &'a VpnPbrRoute, namespace: NamespaceView<'a>) -> Option<(&'a str, Source)> {
    if let Some(name) = recorded(route) {
        return (name != OPERATOR_ACCOUNT).then_some((name, Source::Recorded));
    }
    if let Some(name) = route.spec.account_ref.as_deref() {
        return Some((name, Source::AccountRef));
    }
    if holds_entry(route) {
        // Made before accounts were recorded: with the operator's identity (or the route's
        // Secret), whatever the namespace says now.
        return None;
    }
    namespace
        .default_account()
        .map(|name| (name, Source::NamespaceDefault))
}

/// The account a live route acts in, or why it may not: `accounts` looks a VpnAccount up by
/// name.
pub(crate) fn resolve(
    route: &VpnPbrRoute,
    namespace: NamespaceView<'_>,
    accounts: impl Fn(&str) -> Option<Arc<VpnAccount>>,
    options: &AccountOptions,
) -> Result<Resolved, Refusal> {
    let ns = route.namespace().unwrap_or_default();
    let labels = namespace.labels.cloned().unwrap_or_default();
    let Some((name, source)) = choose(route, namespace) else {
        let legacy = recorded(route).is_some() || holds_entry(route);
        if options.require_account && !legacy {
            return Err(Refusal {
                reason: Reason::AccountRequired,
                message: format!(
                    "this operator requires an account (--require-account): set \
                     spec.accountRef, or the annotation {DEFAULT_ACCOUNT_ANNOTATION} on \
                     namespace {ns}"
                ),
            });
        }
        if !selects(&options.operator_namespaces, &labels) {
            return Err(Refusal {
                reason: Reason::AccountForbidden,
                message: format!(
                    "namespace {ns} may not use the operator's own identity (its namespace \
                     selector leaves it out); name a VpnAccount in spec.accountRef or the \
                     annotation {DEFAULT_ACCOUNT_ANNOTATION}"
                ),
            });
        }
        return Ok(Resolved::operator());
    };
    let said = format!("{} VpnAccount {name}", source.says());
    if route.spec.credentials_ref.is_some() {
        return Err(Refusal {
            reason: Reason::AccountForbidden,
            message: format!(
                "{said}, and spec.credentialsRef names other credentials: a route uses one or \
                 the other; remove spec.credentialsRef"
            ),
        });
    }
    let Some(account) = accounts(name) else {
        return Err(Refusal {
            reason: Reason::AccountNotFound,
            message: format!("{said}, which does not exist"),
        });
    };
    if account.metadata.deletion_timestamp.is_some() && source != Source::Recorded {
        return Err(Refusal {
            reason: Reason::AccountNotFound,
            message: format!("{said}, which is being deleted"),
        });
    }
    if let Some(why) = excludes(&account.spec, route, &labels) {
        return Err(Refusal {
            reason: Reason::AccountForbidden,
            message: format!("{said}, which does not admit this route: {why}"),
        });
    }
    Ok(Resolved {
        name: name.to_owned(),
        account: Some(account),
    })
}

/// The account a cleanup acts in: the recorded one (or, with none recorded, the one the route
/// named); boundaries do not hold back the deletion of what the route made. `Err` names the
/// account when it is gone.
pub(crate) fn resolve_for_cleanup(
    route: &VpnPbrRoute,
    accounts: impl Fn(&str) -> Option<Arc<VpnAccount>>,
) -> Result<Resolved, String> {
    let name = match recorded(route) {
        Some(OPERATOR_ACCOUNT) => return Ok(Resolved::operator()),
        Some(name) => name,
        None if holds_entry(route) && route.spec.account_ref.is_none() => {
            return Ok(Resolved::operator());
        }
        None => match route.spec.account_ref.as_deref() {
            Some(name) => name,
            None => return Ok(Resolved::operator()),
        },
    };
    match accounts(name) {
        Some(account) => Ok(Resolved {
            name: name.to_owned(),
            account: Some(account),
        }),
        None => Err(name.to_owned()),
    }
}

/// Why the account leaves the route out, if it does.
fn excludes(
    account: &VpnAccountSpec,
    route: &VpnPbrRoute,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let ns = route.namespace().unwrap_or_default();
    if !selects(&account.namespace_selector, labels) {
        return Some(format!("its namespaceSelector leaves namespace {ns} out"));
    }
    let region = &route.spec.region_id;
    if !account.regions.is_empty() && !account.regions.contains(region) {
        return Some(format!("region {region} is not in its regions"));
    }
    let gateway = &route.spec.vpn_gateway_id;
    if !account.vpn_gateway_ids.is_empty() && !account.vpn_gateway_ids.contains(gateway) {
        return Some(format!("gateway {gateway} is not in its vpnGatewayIds"));
    }
    None
}

/// Whether `selector` selects a namespace with `labels`. A selector that cannot be read (an
/// operator the API server let through, e.g. `In` without values) selects nothing.
pub(crate) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests;
