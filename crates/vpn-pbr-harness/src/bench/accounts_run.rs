//! Runs the multi-account scenario: an emulator of several accounts, their `VpnAccount`s (and
//! Secrets), one operator, the routes of every account created interleaved, and each account's
//! calls and finish time.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnAccount, VpnPbrRoute};

use super::accounts::{
    AccountCredentials, AccountOutcome, AccountPlan, AccountsResult, AccountsScenario,
    creation_order,
};
use super::calls::calls_since;
use super::progress::{Progress, converged_word};
use super::stack::log_and_rate;
use crate::cluster::{ControlPlane, create_namespace};
use crate::emulator::{self, CloudAccount, Emulator};
use crate::operator::{Operator, OperatorOptions};
use crate::procfs::{idle_share, machine_cpu};
use crate::tools::Binaries;
use crate::wait::eventually;
use crate::workload::{self, Tracker};

/// The `VpnAccount` of `plan` for the routes of namespace `ns`.
fn account_object(plan: &AccountPlan, ns: &str, creds: AccountCredentials) -> Result<VpnAccount> {
    let credentials = match creds {
        AccountCredentials::AssumeRole => json!({"assumeRole": {
            "roleArn": plan.cloud.role_arn(),
            "externalId": plan.cloud.external_id,
            "sessionName": "pbr-bench"}}),
        AccountCredentials::SecretRef => {
            json!({"secretRef": {"namespace": ns, "name": secret_name(plan)}})
        }
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
        "metadata": {"name": plan.name},
        // The operator's limiter of the account runs at the account's own flow control.
        "spec": {"credentials": credentials, "regions": [emulator::REGION],
            "apiRate": plan.cloud.rate,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
    }))?)
}

fn secret_name(plan: &AccountPlan) -> String {
    format!("{}-key", plan.name)
}

/// The account's key as a Secret labelled for credentials.
fn key_secret(cloud: &CloudAccount, name: &str) -> Result<Secret> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"vpn.alicloud.dev/credentials": "true"}},
        "stringData": {"accessKeyId": cloud.key.0, "accessKeySecret": cloud.key.1}
    }))?)
}

/// Whether the account says `Ready=True`.
fn account_ready(a: &VpnAccount) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

/// Creates the accounts (and their Secrets) and waits until every one is Ready.
async fn create_accounts(
    client: &Client,
    ns: &str,
    plans: &[AccountPlan],
    creds: AccountCredentials,
) -> Result<Api<VpnAccount>> {
    let accounts: Api<VpnAccount> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for plan in plans {
        if creds == AccountCredentials::SecretRef {
            secrets
                .create(
                    &PostParams::default(),
                    &key_secret(&plan.cloud, &secret_name(plan))?,
                )
                .await?;
        }
        accounts
            .create(&PostParams::default(), &account_object(plan, ns, creds)?)
            .await
            .with_context(|| format!("create VpnAccount {}", plan.name))?;
    }
    for plan in plans {
        eventually(
            Duration::from_secs(60),
            &format!("VpnAccount {} Ready", plan.name),
            || async {
                accounts
                    .get(&plan.name)
                    .await
                    .ok()
                    .filter(account_ready)
                    .map(drop)
            },
        )
        .await?;
    }
    Ok(accounts)
}

/// Deletes the run's accounts, finalizers first (the operator that would release them is
/// gone): they are cluster-scoped, and every later operator on the control plane would act on
/// them.
async fn delete_accounts(accounts: &Api<VpnAccount>, plans: &[AccountPlan]) {
    for plan in plans {
        let strip = json!({"metadata": {"finalizers": null}});
        let _ = accounts
            .patch(&plan.name, &PatchParams::default(), &Patch::Merge(&strip))
            .await;
        let _ = accounts.delete(&plan.name, &DeleteParams::default()).await;
    }
}

/// Runs the multi-account scenario on `cluster` in a namespace of its own.
pub async fn run_accounts(
    cluster: &ControlPlane,
    client: &Client,
    bins: &Binaries,
    sc: &AccountsScenario,
    work: &Path,
) -> Result<AccountsResult> {
    let ns = format!("bench-{}-{}", sc.label, std::process::id());
    let dir = work.join(&sc.label);
    std::fs::create_dir_all(&dir)?;
    create_namespace(client, &ns).await?;
    let plans = sc.accounts(&ns);
    let clouds: Vec<CloudAccount> = plans.iter().map(|p| p.cloud.clone()).collect();
    let emu = Emulator::start(
        &bins.emulator,
        &dir,
        &emulator::accounts_config_yaml(&clouds, u64::try_from(sc.update.as_millis())?),
    )?;
    let mut args = vec!["--gateway-scheduler".to_owned(), "true".to_owned()];
    args.extend(log_and_rate(&sc.log_level, Some(sc.api_rate())));
    let mut op = Operator::start(OperatorOptions {
        bin: bins.operator.clone(),
        kubeconfig: cluster.kubeconfig.clone(),
        namespace: ns.clone(),
        endpoint: emu.url.clone(),
        log: dir.join("operator.log"),
        args,
        envs: Vec::new(),
    })?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let accounts = create_accounts(client, &ns, &plans, sc.credentials).await?;
    let result = converge_accounts(client, &ns, &emu, &op, sc, plans.clone()).await;
    op.stop_within(sc.stop_grace);
    delete_accounts(&accounts, &plans).await;
    result
}

/// Creates every account's routes and waits until all are Ready; the accounts' calls are
/// counted from the first create.
async fn converge_accounts(
    client: &Client,
    ns: &str,
    emu: &Emulator,
    op: &Operator,
    sc: &AccountsScenario,
    plans: Vec<AccountPlan>,
) -> Result<AccountsResult> {
    let api: Api<VpnPbrRoute> = Api::namespaced(client.clone(), ns);
    let tracker = Tracker::start(api.clone()).await?;
    let mut names: Vec<Vec<String>> = vec![Vec::new(); plans.len()];
    let mut objs = Vec::new();
    for (k, i) in creation_order(&plans) {
        let (g, j) = plans[k].route_at(i);
        let route = workload::account_route(g, j, &plans[k].name)?;
        names[k].push(route.name_any());
        objs.push(route);
    }
    let all: Vec<String> = names.iter().flatten().cloned().collect();
    eprintln!(
        "[{}] creating {} routes in {} accounts (rates {:?}/s, {} credentials, operator --api-rate {})",
        sc.label,
        all.len(),
        plans.len(),
        sc.rates,
        sc.credentials.field(),
        sc.api_rate()
    );
    let counters_before = emu.counters().await?;
    let cpu_before = machine_cpu();
    let op_before = op.usage().unwrap_or_default();
    let t0 = Instant::now();
    workload::create_all(&api, objs, sc.parallel).await?;
    let create_time = t0.elapsed();
    let mut progress = Progress::new(&sc.label, t0);
    let converged = tracker
        .wait(sc.timeout().saturating_sub(t0.elapsed()), |t| {
            let n = t.ready_of(&all).0;
            progress.every_10s(|| format!("{n}/{} Ready", all.len()));
            n == all.len()
        })
        .await;
    let cpu_after = machine_cpu();
    let usage = op.usage().unwrap_or_default();
    let counters = emu.counters().await?;
    let since = |at: Option<Instant>| at.map(|t| t.saturating_duration_since(t0));
    let outcomes: Vec<AccountOutcome> = plans
        .into_iter()
        .zip(&names)
        .map(|(plan, names)| {
            let (ready, last) = tracker.ready_of(names);
            let id = &plan.cloud.id;
            AccountOutcome {
                calls: calls_since(
                    &emulator::account_calls(&counters_before, id),
                    &emulator::account_calls(&counters, id),
                ),
                plan,
                ready,
                finish: since(last),
            }
        })
        .collect();
    let wall = match (converged, tracker.ready_of(&all).1) {
        (true, Some(l)) => l.saturating_duration_since(t0),
        _ => t0.elapsed(),
    };
    let result = AccountsResult {
        scenario: sc.clone(),
        accounts: outcomes,
        converged,
        wall,
        create_time,
        usage,
        cpu_at_convergence: usage.cpu.saturating_sub(op_before.cpu),
        machine_idle: cpu_before
            .zip(cpu_after)
            .and_then(|(b, a)| idle_share(b, a)),
    };
    eprintln!(
        "[{}] {} in {:.1} s ({}/{} Ready), busiest account's bound {:.1} s, ratio {:.3}",
        sc.label,
        converged_word(converged),
        wall.as_secs_f64(),
        result.ready(),
        result.routes(),
        result.bound().as_secs_f64(),
        result.ratio()
    );
    Ok(result)
}
