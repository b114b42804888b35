//! Recovery from things that happen while a route waits or goes away, with the operator binary
//! against the real kube-apiserver and the `vpc-emulator` binary: a route paused while its create
//! is queued behind others on the gateway scheduler, a route whose credentials Secret is deleted
//! just before it, a route whose gateway was deleted in the cloud, and a tenant's route whose
//! Secret went with its namespace while the operator's own key is of another account. One control plane for the
//! binary; every test has its own namespace, emulator and operator process.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::emulator::{self, EntryKey};
use support::env::{RouteEnv as Env, WAIT, tail};
use support::eventually_ok;
use support::route::{condition, create_key_secret};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, FINALIZER, VpnPbrRoute};

const PAUSED: &str = "vpn.alicloud.dev/paused";

impl Env {
    async fn annotate_paused(&self, name: &str, paused: bool) {
        let value = if paused { json!("true") } else { Value::Null };
        self.api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {PAUSED: value}}})),
            )
            .await
            .expect("set the paused annotation");
    }

    /// A Secret `name` holding the emulator's access key, in the format of a route's
    /// `credentialsRef` (README.md, the API table).
    async fn create_key_secret(&self, name: &str) {
        self.create_secret_of(name, emulator::KEY_ID, emulator::KEY_SECRET)
            .await;
    }

    /// A Secret `name` holding the access key `id` with `secret`.
    async fn create_secret_of(&self, name: &str, id: &str, secret: &str) {
        create_key_secret(&self.client, &self.ns, name, id, secret).await;
    }

    /// Gives a wrong cleanup of route `name` on `vpn-gw-a` time to happen, then checks that
    /// none did: the entry `key` stays, no delete succeeded, the finalizer holds the object.
    async fn cleanup_waits(&self, name: &str, key: &EntryKey<'_>, why: &str) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            self.emu.entry("vpn-gw-a", key).await?.is_some(),
            "{why} the cloud entry stays"
        );
        assert_eq!(
            self.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?,
            0
        );
        let still = self.api.get_opt(name).await?;
        assert!(
            still
                .as_ref()
                .is_some_and(|r| r.finalizers().iter().any(|f| f == FINALIZER)),
            "{why} the finalizer holds the object: {still:?}"
        );
        Ok(())
    }

    async fn delete_secret(&self, name: &str) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        secrets
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete secret");
    }
}

/// [`support::route::spec`] of weight 100.
fn spec(gw: &str, src: &str, dst: &str, hop: &str) -> Value {
    support::route::spec(gw, src, dst, hop, 100)
}

fn client_token(r: &VpnPbrRoute) -> Option<&str> {
    r.status.as_ref().and_then(|s| s.client_token.as_deref())
}

/// Whether a text names a credentials problem (a missing Secret, unusable or refused keys).
fn names_credentials(text: &str) -> bool {
    let t = text.to_lowercase();
    ["secret", "credential", "access key", "accesskey"]
        .iter()
        .any(|w| t.contains(w))
}

/// The routes of the paused test, in the order they are applied: all on `vpn-gw-a`.
const QUEUED: usize = 5;

fn queued_key(i: usize) -> (String, String) {
    (format!("192.168.2{i}.0/24"), format!("10.2{i}.0.0/16"))
}

#[tokio::test]
async fn paused_while_queued_is_never_created() -> anyhow::Result<()> {
    // A slow gateway: the scheduler sends one change per gateway at a time
    // (src/controller/scheduler.rs), so the creates of routes applied together queue behind
    // each other for about two seconds each.
    const UPDATE_MS: u64 = 2000;
    let env = Env::start("pausequeued", UPDATE_MS, &[], &[]).await?;
    let names: Vec<String> = (0..QUEUED).map(|i| format!("q{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let (src, dst) = queued_key(i);
        env.apply(name, spec("vpn-gw-a", &src, &dst, "vco-gw-a-1"))
            .await;
    }
    // Pause the last applied route whose create is queued (its token is in status, so it was
    // submitted) but not sent, at a moment when the gateway stays busy with an earlier create
    // for at least another second, so no create of ours can be accepted before the pause is
    // seen.
    let target = eventually_ok(WAIT, "a queued create behind a busy gateway", || async {
        let Some((status, busy_ms)) = env.emu.gateway_busy_for("vpn-gw-a").await? else {
            anyhow::bail!("vpn-gw-a is missing from the emulator");
        };
        if status != "updating" || busy_ms < 1000 {
            return Ok(None);
        }
        for (i, name) in names.iter().enumerate().rev() {
            let (src, dst) = queued_key(i);
            let key = EntryKey::new(&src, &dst, "vco-gw-a-1");
            let queued = env
                .api
                .get_opt(name)
                .await?
                .is_some_and(|r| client_token(&r).is_some());
            if queued
                && env.emu.accepted_creates("vpn-gw-a", &key).await? == 0
                && env.emu.entry("vpn-gw-a", &key).await?.is_none()
            {
                return Ok(Some(i));
            }
        }
        Ok(None)
    })
    .await?;
    let paused = names[target].clone();
    env.annotate_paused(&paused, true).await;
    let (src, dst) = queued_key(target);
    let key = EntryKey::new(&src, &dst, "vco-gw-a-1");
    assert_eq!(
        env.emu.accepted_creates("vpn-gw-a", &key).await?,
        0,
        "{paused} must still be queued when it is paused (the test's precondition)"
    );
    let others: Vec<&String> = names.iter().filter(|n| **n != paused).collect();
    assert!(
        others.len() + 1 == QUEUED,
        "the paused route is one of the queued ones"
    );
    for name in &others {
        env.ready(name).await?;
    }
    // A few more update periods: a queued create that still went out would have by now.
    tokio::time::sleep(Duration::from_millis(3 * UPDATE_MS)).await;
    let creates = env.emu.accepted_creates("vpn-gw-a", &key).await?;
    let entry = env.emu.entry("vpn-gw-a", &key).await?;
    assert!(
        creates == 0 && entry.is_none(),
        "{paused} was paused while its create was queued, yet the cloud accepted {creates} \
         create(s) (entry: {entry:?})\n--- operator log ---\n{}",
        tail(&env.op.logs(), 40)
    );
    let r = env.api.get(&paused).await?;
    let synced = condition(&r, "Synced");
    assert!(
        synced.is_some_and(|c| c.status == ConditionStatus::False && c.reason == "Paused"),
        "{paused} shows Synced=False Paused: {synced:?}"
    );
    for (i, name) in names.iter().enumerate() {
        if *name != paused {
            let (src, dst) = queued_key(i);
            assert_eq!(
                env.emu
                    .accepted_creates("vpn-gw-a", &EntryKey::new(&src, &dst, "vco-gw-a-1"))
                    .await?,
                1,
                "{name}"
            );
        }
    }

    env.annotate_paused(&paused, false).await;
    env.ready(&paused).await?;
    assert_eq!(
        env.emu.accepted_creates("vpn-gw-a", &key).await?,
        1,
        "{paused} is created exactly once after unpausing"
    );
    assert_eq!(
        env.emu.gateway_entries("vpn-gw-a").await?.len(),
        QUEUED,
        "one entry per route"
    );
    Ok(())
}

#[tokio::test]
async fn secret_deleted_just_before_the_route_still_cleans_up() -> anyhow::Result<()> {
    // The operator's own key (its environment, the default chain) is the emulator's key too.
    let env = Env::start("secretgone", 200, &["--route-secrets", "true"], &[]).await?;
    env.create_key_secret("cloud-keys").await;
    let mut s = spec("vpn-gw-a", "192.168.30.0/24", "10.30.0.0/16", "vco-gw-a-1");
    s["credentialsRef"] = json!({"name": "cloud-keys"});
    env.apply("r", s).await;
    env.ready("r").await?;
    env.delete_secret("cloud-keys").await;
    env.delete("r").await;
    env.gone_within("r", WAIT).await?;
    let key = EntryKey::new("192.168.30.0/24", "10.30.0.0/16", "vco-gw-a-1");
    assert!(
        env.emu.entry("vpn-gw-a", &key).await?.is_none(),
        "the cloud entry is deleted with the route"
    );
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 1);
    Ok(())
}

#[tokio::test]
async fn secret_deleted_and_no_usable_credentials_says_so() -> anyhow::Result<()> {
    // The operator's own key is one the emulator does not know: only the Secret can sign, and
    // a restart after the Secret is gone loses the copy of its key kept for the cleanup.
    let mut env = Env::start(
        "secretnokey",
        200,
        &["--route-secrets", "true"],
        &[
            (
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "LTAI-unknown-to-the-emulator",
            ),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-a-valid-secret"),
        ],
    )
    .await?;
    env.create_key_secret("cloud-keys").await;
    let mut s = spec("vpn-gw-a", "192.168.31.0/24", "10.31.0.0/16", "vco-gw-a-1");
    s["credentialsRef"] = json!({"name": "cloud-keys"});
    env.apply("r", s).await;
    env.ready("r").await?;
    let warnings_before = env
        .events_of("r")
        .await?
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .count();
    assert_eq!(warnings_before, 0, "no warning while the route was healthy");
    env.delete_secret("cloud-keys").await;
    env.op.restart()?;
    env.delete("r").await;
    env.wait_for(
        "r",
        "a False condition naming the credentials while deleting",
        |r| {
            r.metadata.deletion_timestamp.is_some()
                && ["Ready", "Synced"].iter().any(|t| {
                    condition(r, t).is_some_and(|c| {
                        c.status == ConditionStatus::False
                            && names_credentials(&format!("{} {}", c.reason, c.message))
                    })
                })
        },
    )
    .await?;
    let warning = eventually_ok(WAIT, "a Warning event about r", || async {
        Ok(env
            .events_of("r")
            .await?
            .into_iter()
            .find(|e| e.type_.as_deref() == Some("Warning")))
    })
    .await?;
    let note = format!(
        "{} {}",
        warning.reason.as_deref().unwrap_or_default(),
        warning.note.as_deref().unwrap_or_default()
    );
    assert!(
        names_credentials(&note),
        "the warning names the credentials: {note}"
    );
    let key = EntryKey::new("192.168.31.0/24", "10.31.0.0/16", "vco-gw-a-1");
    env.cleanup_waits("r", &key, "without usable credentials")
        .await
}

#[tokio::test]
async fn gateway_deleted_in_the_cloud_lets_the_route_go() -> anyhow::Result<()> {
    let env = Env::start("gatewaygone", 200, &[], &[]).await?;
    env.apply(
        "r",
        spec("vpn-gw-a", "192.168.32.0/24", "10.32.0.0/16", "vco-gw-a-1"),
    )
    .await;
    env.ready("r").await?;
    env.emu.delete_gateway("vpn-gw-a").await?;
    env.delete("r").await;
    env.gone_within("r", Duration::from_secs(20)).await?;
    assert_eq!(
        env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?,
        0,
        "nothing to delete: the gateway and its entries are gone"
    );
    let refused = env
        .emu
        .calls(
            "DeleteVpnPbrRouteEntry",
            "InvalidVpnGatewayInstanceId.NotFound",
        )
        .await?;
    assert!(
        refused <= 1,
        "a gone gateway ends the retries: {refused} refused deletes"
    );
    let left = env.emu.gateway_busy_for("vpn-gw-a").await?;
    assert!(left.is_none(), "vpn-gw-a stays deleted: {left:?}");
    Ok(())
}

/// The tenant's account: it owns the gateways, and its key is in the route's Secret. The
/// operator's own key (`emulator::KEY_ID`) is of the emulator's default account.
const TENANT_ACCOUNT: &str = "5000000000000001";
const TENANT_KEY: &str = "LTAI-tenant-key";
const TENANT_SECRET: &str = "tenant-secret-value";

#[tokio::test]
async fn a_tenant_namespace_deleted_leaves_its_entry_to_its_own_account() -> anyhow::Result<()> {
    // Both gateways belong to the tenant's account: the operator's own key does not see them
    // (the emulator answers InvalidVpnGatewayInstanceId.NotFound, as the cloud does).
    let tenant_key = format!(
        "  - id: {TENANT_KEY}\n    secret: {TENANT_SECRET}\n    account_id: \"{TENANT_ACCOUNT}\"\n"
    );
    let config = emulator::two_gateway_config_yaml(200, &tenant_key).replace(
        "    update_duration_ms: 200\n",
        &format!("    update_duration_ms: 200\n    account_id: \"{TENANT_ACCOUNT}\"\n"),
    );
    let mut env = Env::start_with("tenantgone", &config, &["--route-secrets", "true"], &[]).await?;
    env.create_secret_of("tenant-keys", TENANT_KEY, TENANT_SECRET)
        .await;
    let mut s = spec("vpn-gw-a", "192.168.33.0/24", "10.33.0.0/16", "vco-gw-a-1");
    s["credentialsRef"] = json!({"name": "tenant-keys"});
    env.apply("r", s).await;
    let ready = env.ready("r").await?;
    // The entry's account, as GetCallerIdentity tells it for the Secret's key.
    let ready =
        if ready.status.as_ref().and_then(|s| s.account_id.as_deref()) == Some(TENANT_ACCOUNT) {
            ready
        } else {
            env.wait_for("r", "status.accountId of the tenant", |r| {
                r.status.as_ref().and_then(|s| s.account_id.as_deref()) == Some(TENANT_ACCOUNT)
            })
            .await?
        };
    assert!(ready.finalizers().iter().any(|f| f == FINALIZER));

    // The namespace is deleted: its Secret goes first (as the namespace controller deletes it;
    // this control plane has none, so the test does its part), and the operator restarts,
    // losing the copy of the Secret's key it kept; then the route is deleted.
    env.delete_secret("tenant-keys").await;
    env.op.restart()?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.ns, &DeleteParams::default())
        .await
        .expect("delete the namespace");
    env.delete("r").await;
    let blocked = env
        .wait_for("r", "CleanupBlocked naming the tenant's account", |r| {
            r.metadata.deletion_timestamp.is_some()
                && condition(r, "Ready").is_some_and(|c| {
                    c.status == ConditionStatus::False
                        && c.reason == "CleanupBlocked"
                        && c.message.contains(&format!("account {TENANT_ACCOUNT}"))
                })
        })
        .await?;
    let message = &condition(&blocked, "Ready").expect("Ready").message;
    for piece in [
        "AccountUnproven",
        "deletionPolicy: Orphan",
        "give the operator credentials",
    ] {
        assert!(message.contains(piece), "{piece} in {message}");
    }
    // (No event can tell it: a namespace being deleted takes no new objects.)
    let key = EntryKey::new("192.168.33.0/24", "10.33.0.0/16", "vco-gw-a-1");
    env.cleanup_waits("r", &key, "without credentials of the tenant's account")
        .await?;

    // The way out that needs no credentials: keep the entry and let the object go.
    env.patch_spec("r", json!({"deletionPolicy": "Orphan"}))
        .await;
    env.gone("r").await?;
    assert!(
        env.emu.entry("vpn-gw-a", &key).await?.is_some(),
        "Orphan leaves the entry"
    );
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 0);
    Ok(())
}
