//! Accounts (`VpnAccount`) against the real kube-apiserver, the operator binary and the
//! `vpc-emulator` with two cloud accounts: routes of two namespaces reach their own accounts, a
//! namespace an account does not admit is refused before any cloud call, an account in use is
//! kept until its routes are gone, `--require-account` refuses a route without one, a deleted
//! namespace's routes delete their entries each in its own account (its Secret gone first), and
//! role sessions renew while routes come and change.
//!
//! `VpnAccount` is cluster-scoped and every operator reconciles every account, so the tests of
//! this binary run one at a time (`serial`), each with accounts named after its namespaces.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use support::emulator::{EntryKey, KEY_ID, KEY_SECRET, calls};
use support::env::{WAIT, tail};
use support::route::{route_object, spec};
use support::{
    Alone, Emulator, Operator, eventually, eventually_ok, start_emulator, start_operator,
    wait_route,
};
use vpn_pbr_operator::api::v1alpha1::{
    ACCOUNT_FINALIZER, Condition, ConditionStatus, DEFAULT_ACCOUNT_ANNOTATION, VpnAccount,
    VpnPbrRoute,
};

/// The emulator's default account (the operator's own key acts for it).
const ACCOUNT_A: &str = "1234567890123456";
/// The second account: its key and its gateway.
const ACCOUNT_B: &str = "2222222222222222";
const KEY_B: &str = "LTAI-team-b-key";
const SECRET_B: &str = "team-b-secret";
/// A role of account B that the default account may assume with [`EXTERNAL_ID`].
const ROLE: &str = "vpn-pbr-operator";
const EXTERNAL_ID: &str = "ext-tenant-b";

/// `vpn-gw-a` in the default account, `vpn-gw-b` in account B, each with connection
/// `vco-gw-<x>-1`; the operator's key acts for the default account, `KEY_B` for account B, role
/// [`ROLE`] of account B trusts the default account with [`EXTERNAL_ID`], and role [`ROLE`] of
/// the default account trusts that account itself (no external ID).
fn two_account_config() -> String {
    account_config("")
}

/// [`two_account_config`] with `settings` (YAML lines, indented) added to its settings.
fn account_config(settings: &str) -> String {
    let gateway = |gw: &str, account: &str| {
        format!(
            "  - id: vpn-gw-{gw}\n    region: cn-hangzhou\n    vpc_id: vpc-test-{gw}\n    priority_support: true\n    pbr_quota: 100\n    vpc_route_quota: 100\n    update_duration_ms: 100\n{account}"
        )
    };
    let role = |account: &str, condition: &str| {
        format!(
            "  - id: \"{account}\"\n    roles:\n      - name: {ROLE}\n        max_session_duration_secs: 3600\n        trust_policy:\n          Statement:\n            - Action: sts:AssumeRole\n              Effect: Allow\n              Principal: {{RAM: [\"acs:ram::{ACCOUNT_A}:root\"]}}\n{condition}          Version: \"1\"\n"
        )
    };
    let external_id = format!(
        "              Condition: {{StringEquals: {{\"sts:ExternalId\": \"{EXTERNAL_ID}\"}}}}\n"
    );
    format!(
        "settings:\n  task_conflict_window_ms: 50\n{settings}access_keys:\n  - id: {KEY_ID}\n    secret: {KEY_SECRET}\n  - id: {KEY_B}\n    secret: {SECRET_B}\n    account_id: \"{ACCOUNT_B}\"\nregions: [cn-hangzhou]\naccounts:\n{}{}vpn_gateways:\n{}{}vpn_connections:\n  - id: vco-gw-a-1\n    gateway_id: vpn-gw-a\n    remote_subnet: 192.168.0.0/16\n  - id: vco-gw-b-1\n    gateway_id: vpn-gw-b\n    remote_subnet: 192.168.0.0/16\n",
        role(ACCOUNT_A, ""),
        role(ACCOUNT_B, &external_id),
        gateway("a", ""),
        gateway("b", &format!("    account_id: \"{ACCOUNT_B}\"\n")),
    )
}

/// One test at a time: every operator acts on every (cluster-scoped) account.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test's world: namespaces `a` and `b` (labelled `team=a` / `team=b`), an emulator of two
/// accounts and an operator watching both namespaces.
struct World {
    client: Client,
    ns_a: String,
    ns_b: String,
    emu: Emulator,
    op: Operator,
    accounts: Api<VpnAccount>,
    alone: Alone,
}

impl World {
    /// Names of this test's accounts (after its namespaces: accounts are cluster-scoped).
    fn acct_a(&self) -> String {
        format!("{}-acct", self.ns_a)
    }

    fn acct_b(&self) -> String {
        format!("{}-acct", self.ns_b)
    }

    async fn start(prefix: &str, extra: &[&str]) -> anyhow::Result<World> {
        Self::start_with(prefix, &two_account_config(), extra).await
    }

    /// [`start`](Self::start) with an emulator of `config`.
    async fn start_with(prefix: &str, config: &str, extra: &[&str]) -> anyhow::Result<World> {
        let alone = Alone::start(&SERIAL).await?;
        let (client, ns_a, ns_b) = support::setup_two(prefix, "a", "b").await?;
        for (ns, team) in [(&ns_a, "a"), (&ns_b, "b")] {
            label(&client, ns, team).await?;
        }
        let emu = start_emulator(config, alone.path());
        let watched = format!("{ns_a},{ns_b}");
        let op = start_operator(&watched, &emu.url, alone.path(), extra, &[]);
        Ok(World {
            accounts: Api::all(client.clone()),
            client,
            ns_a,
            ns_b,
            emu,
            op,
            alone,
        })
    }

    /// The directory of this test's files.
    fn alone_dir(&self) -> &std::path::Path {
        self.alone.path()
    }

    fn routes(&self, ns: &str) -> Api<VpnPbrRoute> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Account `name` for namespaces labelled `team=<team>`, with `credentials`.
    async fn account(&self, name: &str, team: &str, credentials: Value) -> anyhow::Result<()> {
        let account: VpnAccount = serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
            "metadata": {"name": name},
            "spec": {"credentials": credentials,
                "namespaceSelector": {"matchLabels": {"team": team}}}
        }))?;
        self.accounts
            .create(&PostParams::default(), &account)
            .await?;
        Ok(())
    }

    /// Account `acct_b` for namespaces labelled `team=b`, with account B's key in a Secret of
    /// namespace b; waits until it is Ready.
    async fn account_b(&self) -> anyhow::Result<VpnAccount> {
        self.secret_b(&self.ns_b).await?;
        let secret = json!({"secretRef": {"namespace": self.ns_b, "name": "team-b-key"}});
        self.account(&self.acct_b(), "b", secret).await?;
        self.account_is(&self.acct_b(), ConditionStatus::True, "Available")
            .await
    }

    /// Account `acct_a` (the operator's identity, for namespaces labelled `team=a`), and
    /// route `r` of namespace a naming it with source `source`, Ready.
    async fn route_ready_in_account_a(&self, source: &str) -> anyhow::Result<()> {
        let a = &self.acct_a();
        self.account(a, "a", json!({"operatorIdentity": {}}))
            .await?;
        self.account_is(a, ConditionStatus::True, "Available")
            .await?;
        self.apply(&self.ns_a, "r", route_naming("a", source, a))
            .await?;
        self.route_is(&self.ns_a, "r", ConditionStatus::True, "Available")
            .await
            .map(drop)
    }

    /// Account B's key as a Secret of `ns`, for an account's `secretRef`.
    async fn secret_b(&self, ns: &str) -> anyhow::Result<()> {
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "team-b-key",
                "labels": {"vpn.alicloud.dev/credentials": "true"}},
            "stringData": {"accessKeyId": KEY_B, "accessKeySecret": SECRET_B}
        }))?;
        Api::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await?;
        Ok(())
    }

    async fn apply(&self, ns: &str, name: &str, spec: Value) -> anyhow::Result<()> {
        self.routes(ns)
            .create(&PostParams::default(), &route_object(name, spec))
            .await?;
        Ok(())
    }

    /// Waits until route `ns/name` is Ready=`status` with `reason`.
    async fn route_is(
        &self,
        ns: &str,
        name: &str,
        status: ConditionStatus,
        reason: &str,
    ) -> anyhow::Result<VpnPbrRoute> {
        self.ready_is(self.routes(ns), name, status, reason, |r: &VpnPbrRoute| {
            r.status.as_ref().map(|s| s.conditions.clone())
        })
        .await
    }

    /// Waits until account `name` says `Ready` `status` with `reason`.
    async fn account_is(
        &self,
        name: &str,
        status: ConditionStatus,
        reason: &str,
    ) -> anyhow::Result<VpnAccount> {
        self.ready_is(
            self.accounts.clone(),
            name,
            status,
            reason,
            |a: &VpnAccount| a.status.as_ref().map(|s| s.conditions.clone()),
        )
        .await
    }

    /// The operator log's last lines, warnings first (a reconcile's debug lines can fill it).
    fn log_tail(&self) -> String {
        let logs = self.op.logs();
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        format!(
            "{}\n...\n{}",
            tail(&warnings.join("\n"), 20),
            tail(&logs, 20)
        )
    }

    /// Waits until object `name` of `api` is Ready=`status` with `reason`.
    async fn ready_is<K>(
        &self,
        api: Api<K>,
        name: &str,
        status: ConditionStatus,
        reason: &str,
        conditions: impl Fn(&K) -> Option<Vec<Condition>>,
    ) -> anyhow::Result<K>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let what = format!("{name} Ready {status:?} {reason}");
        eventually_ok(WAIT, &what, || {
            let api = api.clone();
            let conditions = &conditions;
            async move {
                let obj = api.get(name).await?;
                let ready = conditions(&obj)
                    .into_iter()
                    .flatten()
                    .find(|c| c.type_ == "Ready")
                    .is_some_and(|c| c.status == status && c.reason == reason);
                Ok(ready.then_some(obj))
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\noperator log:\n{}", self.log_tail()))
    }

    /// The emulator's VPC calls: all but STS's (`GetCallerIdentity`, which the account
    /// reconciler makes for every account whatever the routes do, and `AssumeRole`).
    async fn vpc_calls(&self) -> anyhow::Result<Vec<(String, String, u64)>> {
        Ok(calls(&self.emu.counters().await?)
            .into_iter()
            .filter(|(action, _, _)| action != "GetCallerIdentity" && action != "AssumeRole")
            .collect())
    }

    /// Deletes route `ns/name` and waits until it is gone (its cleanup done).
    async fn delete_route(&self, ns: &str, name: &str) -> anyhow::Result<()> {
        self.routes(ns)
            .delete(name, &DeleteParams::default())
            .await?;
        support::wait_gone(&self.routes(ns), name, WAIT).await
    }

    /// Waits until account `name` is gone (its finalizer let go).
    async fn account_gone(&self, name: &str) -> anyhow::Result<()> {
        let api = self.accounts.clone();
        eventually(WAIT, &format!("account {name} gone"), || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await
    }

    /// Deletes the accounts of this test, waiting for them to go (their finalizer included).
    async fn delete_accounts(&self, names: &[&str]) -> anyhow::Result<()> {
        for name in names {
            let _ = self.accounts.delete(name, &DeleteParams::default()).await;
        }
        for name in names {
            self.account_gone(name).await?;
        }
        Ok(())
    }
}

/// Merges `metadata` (labels, annotations) into Namespace `ns`.
async fn patch_namespace(client: &Client, ns: &str, metadata: Value) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await?;
    Ok(())
}

async fn label(client: &Client, ns: &str, team: &str) -> anyhow::Result<()> {
    patch_namespace(client, ns, json!({"labels": {"team": team}})).await
}

async fn annotate_default(client: &Client, ns: &str, account: &str) -> anyhow::Result<()> {
    patch_namespace(
        client,
        ns,
        json!({"annotations": {DEFAULT_ACCOUNT_ANNOTATION: account}}),
    )
    .await
}

/// The credentials of an account that assumes role [`ROLE`] of `account`, with `external_id`.
fn assume_role(account: &str, external_id: Option<&str>) -> Value {
    let mut role = json!({"roleArn": format!("acs:ram::{account}:role/{ROLE}")});
    if let Some(id) = external_id {
        role["externalId"] = json!(id);
    }
    json!({ "assumeRole": role })
}

/// [`route_on`] naming `account` in its `accountRef`.
fn route_naming(gw: &str, source: &str, account: &str) -> Value {
    let mut spec = route_on(gw, source);
    spec["accountRef"] = json!(account);
    spec
}

fn route_on(gw: &str, source: &str) -> Value {
    spec(
        &format!("vpn-gw-{gw}"),
        source,
        "10.1.0.0/16",
        &format!("vco-gw-{gw}-1"),
        100,
    )
}

#[tokio::test]
async fn routes_of_two_namespaces_reach_their_own_accounts() -> anyhow::Result<()> {
    let w = World::start("acct-two", &[]).await?;
    let (a, b) = (w.acct_a(), w.acct_b());
    w.account(&a, "a", json!({"operatorIdentity": {}})).await?;
    let acct_b = w.account_b().await?;
    let acct_a = w.account_is(&a, ConditionStatus::True, "Available").await?;
    assert_eq!(
        acct_a.status.and_then(|s| s.account_id).as_deref(),
        Some(ACCOUNT_A)
    );
    assert_eq!(
        acct_b.status.and_then(|s| s.account_id).as_deref(),
        Some(ACCOUNT_B)
    );

    // Namespace a names its account on the route; namespace b by its default.
    w.apply(&w.ns_a, "r", route_naming("a", "192.168.1.0/24", &a))
        .await?;
    annotate_default(&w.client, &w.ns_b, &b).await?;
    w.apply(&w.ns_b, "r", route_on("b", "192.168.2.0/24"))
        .await?;
    let ra = w
        .route_is(&w.ns_a, "r", ConditionStatus::True, "Available")
        .await?;
    let rb = w
        .route_is(&w.ns_b, "r", ConditionStatus::True, "Available")
        .await?;
    let held = |r: &VpnPbrRoute| {
        let s = r.status.clone().unwrap_or_default();
        (s.account, s.account_id)
    };
    assert_eq!(held(&ra), (Some(a.clone()), Some(ACCOUNT_A.to_owned())));
    assert_eq!(held(&rb), (Some(b.clone()), Some(ACCOUNT_B.to_owned())));
    assert_eq!(w.emu.gateway_entries("vpn-gw-a").await?.len(), 1);
    assert_eq!(w.emu.gateway_entries("vpn-gw-b").await?.len(), 1);
    let routes_of = |name: String| {
        let api = w.accounts.clone();
        async move {
            eventually_ok(WAIT, &format!("{name} counts its route"), || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let a = api.get(&name).await?;
                    Ok((a.status.map(|s| s.routes) == Some(1)).then_some(()))
                }
            })
            .await
        }
    };
    routes_of(a.clone()).await?;
    routes_of(b.clone()).await?;

    // A later change of the default does not move the entry: the record holds.
    annotate_default(&w.client, &w.ns_b, &a).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rb = w
        .route_is(&w.ns_b, "r", ConditionStatus::True, "Available")
        .await?;
    assert_eq!(held(&rb), (Some(b.clone()), Some(ACCOUNT_B.to_owned())));

    // Deleting a route deletes its entry with its own account's credentials.
    w.delete_route(&w.ns_b, "r").await?;
    assert!(w.emu.gateway_entries("vpn-gw-b").await?.is_empty());
    w.delete_route(&w.ns_a, "r").await?;
    w.delete_accounts(&[&a, &b]).await
}

#[tokio::test]
async fn a_namespace_an_account_does_not_admit_reaches_nothing() -> anyhow::Result<()> {
    let w = World::start("acct-refuse", &[]).await?;
    let b = w.acct_b();
    w.account_b().await?;
    // Namespace a names account b, which admits only team b: on the route, then by default.
    w.apply(&w.ns_a, "named", route_naming("b", "192.168.3.0/24", &b))
        .await?;
    annotate_default(&w.client, &w.ns_a, &b).await?;
    w.apply(&w.ns_a, "by-default", route_on("b", "192.168.4.0/24"))
        .await?;
    for name in ["named", "by-default"] {
        let r = w
            .route_is(&w.ns_a, name, ConditionStatus::False, "AccountForbidden")
            .await?;
        let s = r.status.unwrap_or_default();
        let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled");
        assert!(
            stalled.is_some_and(|c| c.status == ConditionStatus::True),
            "{name}: {:?}",
            s.conditions
        );
        assert!(
            s.account.is_none() && s.client_token.is_none(),
            "{name}: {s:?}"
        );
    }
    let events: Api<Event> = Api::namespaced(w.client.clone(), &w.ns_a);
    let warned = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("AccountForbidden"))
        .count();
    assert!(
        warned >= 2,
        "a Warning event for each route says why: {warned}"
    );
    // Nothing reached the cloud for them (GetCallerIdentity is the account's own check).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.vpc_calls().await?, Vec::new());
    assert!(w.emu.entries().await?.is_empty());
    for name in ["named", "by-default"] {
        w.delete_route(&w.ns_a, name).await?;
    }
    assert_eq!(w.vpc_calls().await?, Vec::new(), "nor for their deletion");
    w.delete_accounts(&[&b]).await
}

#[tokio::test]
async fn an_account_in_use_is_kept_until_its_routes_are_gone() -> anyhow::Result<()> {
    let w = World::start("acct-inuse", &[]).await?;
    let a = w.acct_a();
    w.route_ready_in_account_a("192.168.5.0/24").await?;
    let with_finalizer = w.accounts.get(&a).await?;
    assert!(
        with_finalizer
            .finalizers()
            .iter()
            .any(|f| f == ACCOUNT_FINALIZER)
    );

    w.accounts.delete(&a, &DeleteParams::default()).await?;
    let kept = w
        .account_is(&a, ConditionStatus::False, "AccountInUse")
        .await?;
    let message = kept
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains(&format!("{}/r", w.ns_a)), "{message}");
    // The route it holds keeps working, and is deleted with the account's credentials.
    w.route_is(&w.ns_a, "r", ConditionStatus::True, "Available")
        .await?;
    // A new route may not start using an account being deleted.
    w.apply(&w.ns_a, "late", route_naming("a", "192.168.6.0/24", &a))
        .await?;
    w.route_is(&w.ns_a, "late", ConditionStatus::False, "AccountNotFound")
        .await?;
    w.delete_route(&w.ns_a, "r").await?;
    assert!(w.emu.gateway_entries("vpn-gw-a").await?.is_empty());
    // The account goes with its last route.
    w.account_gone(&a).await?;
    w.delete_route(&w.ns_a, "late").await?;
    Ok(())
}

#[tokio::test]
async fn the_explicit_account_option_refuses_a_route_without_one() -> anyhow::Result<()> {
    let w = World::start("acct-require", &["--require-account", "true"]).await?;
    w.apply(&w.ns_a, "bare", route_on("a", "192.168.7.0/24"))
        .await?;
    let r = w
        .route_is(&w.ns_a, "bare", ConditionStatus::False, "AccountRequired")
        .await?;
    let message = ready_message(&r);
    assert!(message.contains("--require-account"), "{message}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.vpc_calls().await?, Vec::new());
    // Named by the namespace's default: it goes ahead.
    let a = w.acct_a();
    w.account(&a, "a", json!({"operatorIdentity": {}})).await?;
    annotate_default(&w.client, &w.ns_a, &a).await?;
    let r = w
        .route_is(&w.ns_a, "bare", ConditionStatus::True, "Available")
        .await?;
    assert_eq!(
        r.status.and_then(|s| s.account).as_deref(),
        Some(a.as_str())
    );
    w.delete_route(&w.ns_a, "bare").await?;
    w.delete_accounts(&[&a]).await
}

#[tokio::test]
async fn an_assumed_role_reaches_its_account_and_a_refused_one_nothing() -> anyhow::Result<()> {
    let w = World::start("acct-role", &[]).await?;
    let (good, bad) = (w.acct_a(), format!("{}-refused", w.acct_a()));
    w.account(&good, "a", assume_role(ACCOUNT_B, Some(EXTERNAL_ID)))
        .await?;
    w.account(&bad, "a", assume_role(ACCOUNT_B, Some("not-the-one")))
        .await?;
    let account = w
        .account_is(&good, ConditionStatus::True, "Available")
        .await?;
    assert_eq!(
        account.status.and_then(|s| s.account_id).as_deref(),
        Some(ACCOUNT_B)
    );
    // The trust policy refuses the wrong external ID: the cloud's code, and someone must act.
    let refused = w
        .account_is(&bad, ConditionStatus::False, "NoPermission")
        .await?;
    let conditions = refused.status.map(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == ConditionStatus::True),
        "{conditions:?}"
    );
    // A route through the refused role sends nothing to the VPC API.
    w.apply(
        &w.ns_a,
        "refused",
        route_naming("b", "192.168.8.0/24", &bad),
    )
    .await?;
    w.route_is(&w.ns_a, "refused", ConditionStatus::False, "NoPermission")
        .await?;
    assert_eq!(w.vpc_calls().await?, Vec::new());
    // Through the trusted role the route lands in account B's gateway.
    w.apply(&w.ns_a, "r", route_naming("b", "192.168.9.0/24", &good))
        .await?;
    let route = w
        .route_is(&w.ns_a, "r", ConditionStatus::True, "Available")
        .await?;
    let s = route.status.unwrap_or_default();
    assert_eq!(
        (s.account.as_deref(), s.account_id.as_deref()),
        (Some(good.as_str()), Some(ACCOUNT_B))
    );
    assert_eq!(w.emu.gateway_entries("vpn-gw-b").await?.len(), 1);
    w.delete_route(&w.ns_a, "r").await?;
    assert!(w.emu.gateway_entries("vpn-gw-b").await?.is_empty());
    w.delete_route(&w.ns_a, "refused").await?;
    w.delete_accounts(&[&good, &bad]).await
}

fn ready_message(r: &VpnPbrRoute) -> String {
    r.status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_account_examples_are_accepted() -> anyhow::Result<()> {
    let (client, ns) = support::setup("acct-examples").await?;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut kinds = Vec::new();
    let dir = support::repo_root().join("examples/accounts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
    files.sort_by_key(std::fs::DirEntry::path);
    for file in files {
        let text = std::fs::read_to_string(file.path())?;
        for mut obj in serde_saphyr::from_multiple::<Value>(&text)? {
            let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
            let what = format!("{}: {kind}", file.path().display());
            match kind.as_str() {
                "VpnAccount" => {
                    let a: VpnAccount = serde_json::from_value(obj)?;
                    w_create(Api::<VpnAccount>::all(client.clone()), &dry, &a, &what).await?;
                }
                "VpnPbrRoute" => {
                    // Into this test's namespace: a dry run needs it to exist.
                    obj["metadata"]["namespace"] = json!(ns);
                    let r: VpnPbrRoute = serde_json::from_value(obj)?;
                    w_create(Api::namespaced(client.clone(), &ns), &dry, &r, &what).await?;
                }
                "Namespace" => {
                    let n: Namespace = serde_json::from_value(obj)?;
                    w_create(Api::<Namespace>::all(client.clone()), &dry, &n, &what).await?;
                }
                other => anyhow::bail!("{what}: unexpected kind {other}"),
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["Namespace", "VpnAccount", "VpnPbrRoute"]);
    Ok(())
}

async fn w_create<K>(api: Api<K>, pp: &PostParams, obj: &K, what: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(pp, obj)
        .await
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

#[tokio::test]
async fn a_cleanup_without_its_account_is_blocked_naming_it() -> anyhow::Result<()> {
    let w = World::start("acct-gone", &[]).await?;
    let a = w.acct_a();
    w.route_ready_in_account_a("192.168.10.0/24").await?;
    // The account is forced away (its finalizer taken off by hand): the route's entry stays,
    // and its deletion says which account it needs.
    let drop_finalizers = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    w.accounts.delete(&a, &DeleteParams::default()).await?;
    w.accounts
        .patch(&a, &PatchParams::default(), &drop_finalizers)
        .await?;
    w.account_gone(&a).await?;
    w.routes(&w.ns_a)
        .delete("r", &DeleteParams::default())
        .await?;
    let blocked = w
        .route_is(&w.ns_a, "r", ConditionStatus::False, "CleanupBlocked")
        .await?;
    let message = ready_message(&blocked);
    assert!(
        message.contains(&format!("VpnAccount {a}")) && message.contains("AccountNotFound"),
        "{message}"
    );
    assert_eq!(w.emu.gateway_entries("vpn-gw-a").await?.len(), 1);
    w.routes(&w.ns_a)
        .patch("r", &PatchParams::default(), &drop_finalizers)
        .await?;
    support::wait_gone(&w.routes(&w.ns_a), "r", WAIT).await
}

/// The sources of the entries of `gateway`, sorted.
async fn sources(emu: &Emulator, gateway: &str) -> anyhow::Result<Vec<String>> {
    let mut sources: Vec<String> = emu
        .gateway_entries(gateway)
        .await?
        .iter()
        .filter_map(|e| e["RouteSource"].as_str().map(str::to_owned))
        .collect();
    sources.sort();
    Ok(sources)
}

#[tokio::test]
async fn a_deleted_namespace_deletes_its_entries_in_their_own_account() -> anyhow::Result<()> {
    let w = World::start("acct-nsdel", &[]).await?;
    let (a, b) = (w.acct_a(), w.acct_b());
    let (a_in_b, b_in_a) = (format!("{a}-in-b"), format!("{b}-in-a"));
    // Namespace a reaches both accounts through roles: the default account's (vpn-gw-a) and
    // account B's (vpn-gw-b); namespace b reaches account B with the key of a Secret of its own
    // and the default account through its role.
    w.account(&a, "a", assume_role(ACCOUNT_A, None)).await?;
    w.account(&a_in_b, "a", assume_role(ACCOUNT_B, Some(EXTERNAL_ID)))
        .await?;
    w.account(&b_in_a, "b", assume_role(ACCOUNT_A, None))
        .await?;
    w.account_b().await?;
    // (namespace, route, gateway, source, account, the account's id)
    let routes = [
        (&w.ns_a, "own", "a", "192.168.20.0/24", &a, ACCOUNT_A),
        (&w.ns_a, "in-b", "b", "192.168.21.0/24", &a_in_b, ACCOUNT_B),
        (&w.ns_b, "r1", "b", "192.168.22.0/24", &b, ACCOUNT_B),
        (&w.ns_b, "r2", "b", "192.168.23.0/24", &b, ACCOUNT_B),
        (&w.ns_b, "r3", "a", "192.168.24.0/24", &b_in_a, ACCOUNT_A),
    ];
    for (ns, name, gw, source, account, _) in &routes {
        w.apply(ns, name, route_naming(gw, source, account)).await?;
    }
    for (ns, name, _, _, account, id) in &routes {
        let r = w
            .route_is(ns, name, ConditionStatus::True, "Available")
            .await?;
        let s = r.status.unwrap_or_default();
        assert_eq!(
            (s.account.as_deref(), s.account_id.as_deref()),
            (Some(account.as_str()), Some(*id)),
            "{ns}/{name}"
        );
    }
    assert_eq!(
        sources(&w.emu, "vpn-gw-a").await?,
        ["192.168.20.0/24", "192.168.24.0/24"]
    );
    assert_eq!(
        sources(&w.emu, "vpn-gw-b").await?,
        ["192.168.21.0/24", "192.168.22.0/24", "192.168.23.0/24"]
    );

    // Namespace b goes, its Secret (account b's key) first: its routes' cleanups still delete
    // their entries, each in its own account, and nothing else.
    support::delete_namespace(&w.client, &w.ns_b, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\noperator log:\n{}", w.log_tail()))?;
    assert_eq!(sources(&w.emu, "vpn-gw-a").await?, ["192.168.20.0/24"]);
    assert_eq!(sources(&w.emu, "vpn-gw-b").await?, ["192.168.21.0/24"]);
    let counters = w.emu.counters().await?;
    assert_eq!(
        counters["calls"]["DeleteVpnPbrRouteEntry"]["Success"].as_u64(),
        Some(3),
        "{counters}"
    );
    // No call went to a gateway with a key of another account.
    let missed: Vec<_> = calls(&counters)
        .into_iter()
        .filter(|(_, code, _)| code.contains("NotFound"))
        .collect();
    assert_eq!(missed, Vec::new());
    // Namespace a's routes are untouched.
    for (ns, name, ..) in &routes[..2] {
        w.route_is(ns, name, ConditionStatus::True, "Available")
            .await?;
    }
    for (ns, name, ..) in &routes[..2] {
        w.delete_route(ns, name).await?;
    }
    assert!(w.emu.entries().await?.is_empty());
    w.delete_accounts(&[&a, &a_in_b, &b, &b_in_a]).await
}

#[tokio::test]
async fn role_sessions_are_renewed_while_routes_come_and_change() -> anyhow::Result<()> {
    // Sessions of 3 s (the emulator grants them only with its test setting): the test outlives
    // several of them while it creates and changes routes.
    const SESSION_SECS: u64 = 3;
    let config = account_config(&format!("  test_min_session_seconds: {SESSION_SECS}\n"));
    let session = format!("{SESSION_SECS}s");
    let w = World::start_with(
        "acct-renew",
        &config,
        &["--role-session-duration", &session],
    )
    .await?;
    let a = w.acct_a();
    w.account(&a, "a", assume_role(ACCOUNT_B, Some(EXTERNAL_ID)))
        .await?;
    w.account_is(&a, ConditionStatus::True, "Available").await?;
    let sessions = || async { w.emu.calls("AssumeRole", "Success").await };
    let first = sessions().await?;
    // Each round adds a route and flips the first one's weight, then waits out two sessions.
    let source = |round: usize| format!("192.168.{}.0/24", 40 + round);
    let rounds = 3;
    for round in 0..rounds {
        let name = format!("r{round}");
        w.apply(&w.ns_a, &name, route_naming("b", &source(round), &a))
            .await?;
        let weight = if round % 2 == 0 { 100 } else { 0 };
        if round > 0 {
            w.routes(&w.ns_a)
                .patch(
                    "r0",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"weight": weight}})),
                )
                .await?;
        }
        // Every route is Ready at its generation, and the cloud holds what it says.
        for r in 0..=round {
            let name = format!("r{r}");
            let what = format!("{name} Ready at its generation in round {round}");
            wait_route(&w.routes(&w.ns_a), &name, &what, WAIT, in_sync, || {
                w.log_tail()
            })
            .await?;
        }
        let first_source = source(0);
        let key = EntryKey::new(&first_source, "10.1.0.0/16", "vco-gw-b-1");
        let entry = w.emu.entry("vpn-gw-b", &key).await?;
        assert_eq!(
            entry.and_then(|e| e["Weight"].as_u64()),
            Some(weight),
            "round {round}"
        );
        assert_eq!(
            w.emu.gateway_entries("vpn-gw-b").await?.len(),
            round + 1,
            "round {round}"
        );
        tokio::time::sleep(Duration::from_secs(2 * SESSION_SECS + 1)).await;
    }
    // The session was renewed, every call was accepted with a live one, and nothing warned.
    let renewed = sessions().await?;
    assert!(
        renewed > first && renewed >= 2,
        "AssumeRole: {first} before the routes, {renewed} after"
    );
    let refused: Vec<_> = calls(&w.emu.counters().await?)
        .into_iter()
        .filter(|(_, code, _)| code != "Success" && !is_busy(code))
        .collect();
    assert_eq!(refused, Vec::new(), "{}", w.log_tail());
    let events: Api<Event> = Api::namespaced(w.client.clone(), &w.ns_a);
    let warnings: Vec<_> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason, e.note))
        .collect();
    assert_eq!(warnings, Vec::new());
    w.account_is(&a, ConditionStatus::True, "Available").await?;
    for round in 0..rounds {
        w.delete_route(&w.ns_a, &format!("r{round}")).await?;
    }
    assert!(w.emu.entries().await?.is_empty());
    w.delete_accounts(&[&a]).await
}

/// A route Ready and Synced at its generation.
fn in_sync(r: &VpnPbrRoute) -> bool {
    let Some(s) = &r.status else { return false };
    let true_at = |type_: &str| {
        s.conditions.iter().any(|c| {
            c.type_ == type_
                && c.status == ConditionStatus::True
                && c.observed_generation == r.metadata.generation
        })
    };
    true_at("Ready") && true_at("Synced")
}

/// A code a gateway answers while it applies the previous change (the scheduler's pacing
/// meets one now and then; it refuses nothing for good).
fn is_busy(code: &str) -> bool {
    vpc_emulator::error::BUSY_CODES
        .iter()
        .any(|(busy, _)| *busy == code)
}

/// A manifest of route `name` in namespace `ns`, as YAML.
fn manifest_in(ns: &str, name: &str, spec: Value) -> String {
    let doc = json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": name, "namespace": ns}, "spec": spec
    });
    format!("---\n{}", serde_saphyr::to_string(&doc).expect("yaml"))
}

/// The route of a plan report with this name.
fn planned<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no route {name} in {report:#}"))
}

/// `plan` resolves each route's account as the operator does: a namespace whose default is an
/// assumeRole account of account B is planned in B (the role assumed with plan's own key, the
/// gateway read and the create checked with the session), a route that recorded the operator's
/// identity keeps it, and the routes the operator would refuse (or whose account's Secret lacks
/// the credentials label) show its reason with no read.
#[tokio::test]
async fn plan_resolves_each_routes_account_as_the_operator_does() -> anyhow::Result<()> {
    let w = World::start("acct-plan", &[]).await?;
    let acct_b = w.acct_b();
    let role = json!({"assumeRole": {
        "roleArn": format!("acs:ram::{ACCOUNT_B}:role/{ROLE}"), "externalId": EXTERNAL_ID}});
    w.account(&acct_b, "b", role).await?;
    // Made before namespace b had a default: it acts in (and records) the operator's identity.
    let old = route_on("a", "192.168.20.0/24");
    w.apply(&w.ns_b, "old", old.clone()).await?;
    let made = w
        .route_is(&w.ns_b, "old", ConditionStatus::True, "Available")
        .await?;
    assert_eq!(
        made.status.and_then(|s| s.account).as_deref(),
        Some("(operator)")
    );
    annotate_default(&w.client, &w.ns_b, &acct_b).await?;
    // An account of namespace a whose Secret lacks the credentials label: never read for keys.
    let unlabelled = format!("{}-unlabelled", w.ns_a);
    support::route::create_key_secret_labelled(
        &w.client, &w.ns_a, "no-label", KEY_B, SECRET_B, false,
    )
    .await;
    let secret = json!({"secretRef": {"namespace": w.ns_a, "name": "no-label"}});
    w.account(&unlabelled, "a", secret).await?;

    let missing = format!("{}-missing", w.ns_a);
    let manifests = [
        manifest_in(&w.ns_b, "old", old),
        manifest_in(&w.ns_b, "in-b", route_on("b", "192.168.21.0/24")),
        // Namespace a is labelled team=a, which account b does not select.
        manifest_in(
            &w.ns_a,
            "forbidden",
            route_naming("b", "192.168.22.0/24", &acct_b),
        ),
        manifest_in(
            &w.ns_a,
            "missing",
            route_naming("b", "192.168.23.0/24", &missing),
        ),
        manifest_in(
            &w.ns_a,
            "unlabelled",
            route_naming("b", "192.168.24.0/24", &unlabelled),
        ),
    ];
    let file = w.alone_dir().join("routes.yaml");
    std::fs::write(&file, manifests.concat())?;
    let assumed = |counters: &Value| {
        calls(counters)
            .into_iter()
            .filter(|(action, code, _)| action == "AssumeRole" && code == "Success")
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    let before = assumed(&w.emu.counters().await?);
    let kubeconfig = support::plane().kubeconfig.to_string_lossy().into_owned();
    let run = support::cli::run_cli(
        &w.emu.url,
        &[
            "plan",
            "-o",
            "json",
            "-f",
            &file.to_string_lossy(),
            "--kubeconfig",
            &kubeconfig,
        ],
    );
    let report: Value = serde_json::from_str(&run.stdout)
        .map_err(|e| anyhow::anyhow!("{e}: {}\n{}", run.stdout, run.stderr))?;
    assert_eq!(run.code, 1, "refused routes are errors: {report:#}");

    let old = planned(&report, "old");
    assert_eq!(
        (&old["action"], &old["account"]),
        (&json!("nothing"), &json!("(operator)")),
        "a recorded account is kept: {old:#}"
    );
    let in_b = planned(&report, "in-b");
    assert_eq!(
        (&in_b["action"], &in_b["account"]),
        (&json!("create"), &json!(acct_b)),
        "{in_b:#}"
    );
    assert_eq!(in_b["dryRun"]["passed"], true, "{in_b:#}");
    assert!(in_b["notes"].to_string().contains("assumeRole"), "{in_b:#}");
    for (name, reason) in [
        ("forbidden", "AccountForbidden"),
        ("missing", "AccountNotFound"),
        ("unlabelled", "CredentialsSecretUnlabelled"),
    ] {
        let r = planned(&report, name);
        assert_eq!(
            (&r["action"], &r["problem"]["code"]),
            (&json!("error"), &json!(reason)),
            "{r:#}"
        );
        assert!(
            r.get("dryRun").is_none() && r.get("calls").is_none(),
            "{r:#}"
        );
    }
    // Read: vpn-gw-a with plan's own key (for `old`), vpn-gw-b with the session of account B
    // (invisible to plan's own key); nothing for the refused routes of vpn-gw-b, nor for the
    // one whose account's Secret is unlabelled.
    let gateways: Vec<(Value, Value, Value)> = report["gateways"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            (
                g["vpnGatewayId"].clone(),
                g["account"].clone(),
                g["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        gateways,
        vec![
            (json!("vpn-gw-a"), Value::Null, json!("active")),
            (json!("vpn-gw-b"), json!(acct_b), json!("active")),
        ],
        "{report:#}"
    );
    assert!(
        assumed(&w.emu.counters().await?) > before,
        "plan assumed no role"
    );

    assert!(
        !run.stdout.contains(SECRET_B) && !run.stderr.contains(SECRET_B),
        "the Secret's key was printed"
    );

    w.delete_route(&w.ns_b, "old").await?;
    w.delete_accounts(&[&acct_b, &unlabelled]).await
}

/// `import --account` reads the entries through the VpnAccount (here its Secret of account B's
/// key, read as the operator reads it) and writes `spec.accountRef`; without it the command's
/// own key does not even see account B's gateway.
#[tokio::test]
async fn import_reads_through_the_named_account_and_writes_account_ref() -> anyhow::Result<()> {
    let w = World::start("acct-import", &[]).await?;
    w.account_b().await?;
    let acct_b = w.acct_b();
    w.apply(&w.ns_b, "r", route_naming("b", "192.168.30.0/24", &acct_b))
        .await?;
    w.route_is(&w.ns_b, "r", ConditionStatus::True, "Available")
        .await?;

    let kubeconfig = support::plane().kubeconfig.to_string_lossy().into_owned();
    // Import of vpn-gw-b into namespace `ns`, then `extra`.
    let import = |ns: &str, extra: &[&str]| {
        let mut args = vec![
            "import",
            "--region",
            "cn-hangzhou",
            "--gateway",
            "vpn-gw-b",
            "--namespace",
            ns,
        ];
        args.extend_from_slice(extra);
        support::cli::run_cli(&w.emu.url, &args)
    };
    let through_b = [
        "--account",
        acct_b.as_str(),
        "--kubeconfig",
        kubeconfig.as_str(),
    ];
    let run = import("imported", &through_b);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains(SECRET_B) && !run.stderr.contains(SECRET_B),
        "the account's secret was printed"
    );
    let docs: Vec<&str> = run
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(docs.len(), 1, "{}", run.stdout);
    let imported: VpnPbrRoute = serde_saphyr::from_str(docs[0])?;
    assert_eq!(imported.spec.account_ref.as_deref(), Some(acct_b.as_str()));
    assert_eq!(imported.spec.route_source, "192.168.30.0/24");
    assert_eq!(
        imported
            .annotations()
            .get("vpn.alicloud.dev/adopt")
            .map(String::as_str),
        Some("true")
    );
    // The account does not allow adoption, nor select namespace `imported` (no team=b label):
    // both said, so the manifests are not applied in vain.
    assert!(
        run.stderr.contains("does not allow adoption"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "would refuse the routes of vpn-gw-b in namespace imported: AccountForbidden"
        ),
        "{}",
        run.stderr
    );
    // Into namespace b, which the account selects: no refusal.
    let run = import(&w.ns_b, &through_b);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("would refuse"), "{}", run.stderr);
    // Without --account: the command's own key (account A), which has no such gateway.
    let run = import("imported", &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("vpn-gw-b"), "{}", run.stderr);
    // A name the cluster does not have is an error, not a silent fallback.
    let run = import(
        "imported",
        &["--account", "no-such-account", "--kubeconfig", &kubeconfig],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("VpnAccount no-such-account does not exist"),
        "{}",
        run.stderr
    );

    w.delete_route(&w.ns_b, "r").await?;
    w.delete_accounts(&[&acct_b]).await
}
