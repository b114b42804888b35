//! The `VpnAccount` reconciler (a driver; the status rules are in `account_status.rs`): asks
//! which account the credentials act for (STS GetCallerIdentity, shared with the routes through
//! `accounts.rs`), counts the routes that use the account, and keeps a finalizer so that an
//! account that routes hold entries in is not deleted under them.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::account_status::{self, AccountReport};
use super::accounts::Account;
use super::context::{Context, STS_REGION};
use super::error::{Error, Result};
use super::model::Scope;
use super::reconcile::{object_key, status_time};
use super::resolve;
use crate::api::v1alpha1::{ACCOUNT_FINALIZER, VpnAccount, VpnPbrRoute};

/// How often an account is looked at again without a change (its Secret may have changed).
const RECHECK: Duration = Duration::from_secs(300);
/// How soon after a failure (the accounts' lookup remembers a failure for 30 s).
const RETRY: Duration = Duration::from_secs(30);

/// What the account reconciler shares.
pub(crate) struct AccountContext {
    pub client: kube::Client,
    /// The routes' context: credentials, the accounts' lookups, the caches of accounts and
    /// namespaces.
    pub routes: Arc<Context>,
    /// The watch caches of every watched route.
    pub stores: Vec<Store<VpnPbrRoute>>,
}

impl AccountContext {
    fn routes(&self) -> impl Iterator<Item = Arc<VpnPbrRoute>> + '_ {
        self.stores.iter().flat_map(Store::state)
    }
}

/// One reconcile of one account; failures become its status, never a runtime error.
pub(crate) async fn reconcile(
    account: Arc<VpnAccount>,
    ctx: Arc<AccountContext>,
) -> Result<Action> {
    let name = account.name_any();
    let api: Api<VpnAccount> = Api::all(ctx.client.clone());
    let deleting = account.metadata.deletion_timestamp.is_some();
    let has_finalizer = account.finalizers().iter().any(|f| f == ACCOUNT_FINALIZER);
    if !deleting && !has_finalizer {
        let mut finalizers = account.finalizers().to_vec();
        finalizers.push(ACCOUNT_FINALIZER.to_owned());
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": finalizers,
                "resourceVersion": account.metadata.resource_version,
            }})),
        )
        .await
        .map_err(|e| Error::kube("add account finalizer", e))?;
    }
    let tenancy = &ctx.routes.tenancy;
    let routes = i64::try_from(
        ctx.routes()
            .filter(|r| tenancy.chosen_name(r).as_deref() == Some(name.as_str()))
            .count(),
    )
    .unwrap_or(i64::MAX);
    let held_by = deleting.then(|| {
        let mut holders: Vec<String> = ctx
            .routes()
            .filter(|r| resolve::holds_entry_in(r, &name))
            .map(|r| object_key(&r))
            .collect();
        holders.sort();
        holders
    });
    let (account_id, credentials, cause) = match ctx.routes.account_credentials(&account).await {
        Err(e) => (None, Err((e.reason(), e.message())), Some(e.policy())),
        Ok(credentials) => {
            let scope = Scope {
                region_id: account
                    .spec
                    .regions
                    .first()
                    .cloned()
                    .unwrap_or_else(|| STS_REGION.to_owned()),
                vpn_gateway_id: String::new(),
                credentials,
            };
            match ctx.routes.accounts.lookup(&scope, None).await {
                Account::Known(id) => (Some(id), Ok(()), None),
                Account::Failed(e) => {
                    let err = Error::Cloud {
                        op: "caller identity",
                        source: e,
                    };
                    (None, Err((err.reason(), err.message())), Some(err.policy()))
                }
                Account::Pending => (None, Ok(()), None),
            }
        }
    };
    let failed = credentials.is_err();
    let report = AccountReport {
        account_id,
        credentials,
        cause,
        routes,
        deleting_held_by: held_by.clone(),
    };
    write_status(&api, &account, &report, &ctx).await?;
    if deleting && has_finalizer && held_by.as_ref().is_some_and(Vec::is_empty) {
        remove_finalizer(&api, &account).await?;
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(if failed { RETRY } else { RECHECK }))
}

async fn write_status(
    api: &Api<VpnAccount>,
    account: &VpnAccount,
    report: &AccountReport,
    ctx: &AccountContext,
) -> Result<()> {
    let now = status_time(&ctx.routes);
    let status = account_status::build(
        account.status.as_ref(),
        report,
        account.metadata.generation,
        &now,
    );
    if account.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": VpnAccount::api_version(&()),
        "kind": VpnAccount::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &account.name_any(),
            &PatchParams::apply(&ctx.routes.settings.manager).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("write account status", e)),
    }
}

async fn remove_finalizer(api: &Api<VpnAccount>, account: &VpnAccount) -> Result<()> {
    let Some(i) = account
        .finalizers()
        .iter()
        .position(|f| f == ACCOUNT_FINALIZER)
    else {
        return Ok(());
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": format!("/metadata/finalizers/{i}"), "value": ACCOUNT_FINALIZER },
        { "op": "remove", "path": format!("/metadata/finalizers/{i}") }
    ]))
    .map_err(|e| Error::kube("remove account finalizer", kube::Error::SerdeError(e)))?;
    match api
        .patch(
            &account.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("remove account finalizer", e)),
    }
}

pub(crate) fn error_policy(
    account: Arc<VpnAccount>,
    err: &Error,
    _: Arc<AccountContext>,
) -> Action {
    warn!(account = %account.name_any(), reason = %err.reason(), error = %err.message(), "account reconcile failed");
    Action::requeue(RETRY)
}
