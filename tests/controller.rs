//! The operator binary against the real kube-apiserver and the `vpc-emulator` binary: the whole
//! route lifecycle. One control plane for the binary; every test has its own namespace,
//! emulator and operator process.

mod support;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::emulator::{self, EntryKey};
use support::env::{RouteEnv as Env, WAIT, tail};
use support::route::{
    condition, create_key_secret_labelled, label_key_secret, millis_rfc3339, ready_observing,
    route_object, spec, synced_because,
};
use support::{eventually, eventually_ok, ready_is, start_emulator, start_operator};
use vpn_pbr_operator::api::v1alpha1::{
    CREDENTIALS_LABEL, CREDENTIALS_LABEL_VALUE, ConditionStatus, FINALIZER, VpnPbrRoute,
};

/// A route of these tests: its gateway and entry key, which make both its spec and the entry the
/// emulator holds for it.
#[derive(Clone, Copy)]
struct Route<'a> {
    gw: &'a str,
    key: EntryKey<'a>,
}

impl<'a> Route<'a> {
    fn new(gw: &'a str, src: &'a str, dst: &'a str, hop: &'a str) -> Self {
        Route {
            gw,
            key: EntryKey::new(src, dst, hop),
        }
    }

    /// The same route over another connection of its gateway.
    fn via(self, hop: &'a str) -> Self {
        Route::new(self.gw, self.key.source, self.key.dest, hop)
    }

    fn spec(self, weight: i32) -> Value {
        let k = self.key;
        spec(self.gw, k.source, k.dest, k.next_hop, weight)
    }

    /// [`Route::spec`] with `field` set to `value`.
    fn spec_with(self, weight: i32, field: &str, value: Value) -> Value {
        let mut spec = self.spec(weight);
        spec[field] = value;
        spec
    }

    /// Applies the route as `name` with `weight` and waits until it is Ready.
    async fn ready_as(self, env: &Env, name: &str, weight: i32) -> anyhow::Result<VpnPbrRoute> {
        env.apply(name, self.spec(weight)).await;
        env.ready(name).await
    }

    async fn entry(self, env: &Env) -> anyhow::Result<Option<Value>> {
        env.emu.entry(self.gw, &self.key).await
    }

    async fn creates(self, env: &Env) -> anyhow::Result<u64> {
        env.emu.accepted_creates(self.gw, &self.key).await
    }

    /// Changes the entry behind the operator's back (`create`, `modify` or `delete`).
    async fn console(self, env: &Env, op: &str, weight: Option<u32>) -> anyhow::Result<()> {
        env.emu.console(op, self.gw, &self.key, weight).await
    }
}

#[tokio::test]
async fn create_becomes_ready_with_the_clouds_state_and_create_time() -> anyhow::Result<()> {
    let env = Env::start("create", 300, &[], &[]).await?;
    env.apply(
        "r1",
        json!({
            "regionId": "cn-hangzhou", "vpnGatewayId": "vpn-gw-a", "routeSource": "192.168.1.0/24",
            "routeDest": "10.1.0.0/16", "nextHop": "vco-gw-a-1", "weight": 100, "priority": 20,
            "publishVpc": true, "description": "created by test"
        }),
    )
    .await;
    let route = Route::new("vpn-gw-a", "192.168.1.0/24", "10.1.0.0/16", "vco-gw-a-1");
    let r = env.ready("r1").await?;
    let entry = route.entry(&env).await?.expect("entry in emulator");
    let st = r.status.expect("status");
    assert_eq!(st.state.as_deref(), entry["State"].as_str());
    assert_eq!(st.state.as_deref(), Some("published"));
    assert_eq!(
        st.create_time,
        Some(millis_rfc3339(
            entry["CreateTime"].as_i64().expect("CreateTime")
        ))
    );
    assert_eq!(entry["Priority"], 20);
    assert_eq!(entry["Description"], "created by test");
    assert_eq!(st.vpn_instance_id.as_deref(), Some("vpn-gw-a"));
    assert_eq!(st.client_token, None, "token cleared once the entry exists");
    assert!(st.last_request_id.is_some());
    assert_eq!(st.observed_generation, r.metadata.generation);
    assert!(
        r.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"vpn.alicloud.dev/cleanup".to_owned())
    );
    let synced = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Synced")
        .expect("Synced");
    assert_eq!(synced.status, ConditionStatus::True);
    env.wait_event("Created").await?;
    assert_eq!(route.creates(&env).await?, 1);
    eventually(WAIT, "/readyz 200 once the caches are synced", || async {
        (env.op.readyz().await == 200).then_some(())
    })
    .await?;
    let metrics = env.op.metrics().await?;
    assert!(
        metrics.contains(
            "vpn_pbr_cloud_calls_total{action=\"CreateVpnPbrRouteEntry\",code=\"Success\",account=\"\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("vpn_pbr_reconciles_total{result=\"success\"}"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn the_operator_runs_its_tasks_on_one_thread() -> anyhow::Result<()> {
    // src/main.rs: a thread per core made most wake-ups cross threads, and the context
    // switches cost more CPU than the work they woke (docs/benchmarks.md, CPU profile).
    let route = Route::new("vpn-gw-a", "192.168.2.0/24", "10.2.0.0/16", "vco-gw-a-1");
    let env = start_ready("thread", 200, &[("r", route.spec(100))]).await?;
    let pid = env.op.pid().expect("operator running");
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .map(|t| std::fs::read_to_string(t?.path().join("comm")))
        .collect::<Result<_, _>>()?;
    assert_eq!(threads.len(), 1, "the operator's threads: {threads:?}");
    Ok(())
}

#[tokio::test]
async fn busy_gateway_ends_ready_with_exactly_one_create_each() -> anyhow::Result<()> {
    let env = Env::start("busy", 400, &[], &[]).await?;
    env.emu
        .set_faults(&json!({"rules": [{"action": "CreateVpnPbrRouteEntry", "rate": 0.5, "kind": "busy", "code": "TaskConflict"}]}))
        .await?;
    env.emu.busy("vpn-gw-a", 4000).await?;
    let sources: Vec<String> = (0..4).map(|i| format!("192.168.{i}.0/24")).collect();
    let routes: Vec<Route> = sources
        .iter()
        .map(|src| Route::new("vpn-gw-a", src, "10.2.0.0/16", "vco-gw-a-1"))
        .collect();
    for (i, route) in routes.iter().enumerate() {
        env.apply(&format!("r{i}"), route.spec(100)).await;
    }
    for (i, route) in routes.iter().enumerate() {
        env.ready(&format!("r{i}")).await?;
        assert_eq!(route.creates(&env).await?, 1);
    }
    let busy = env
        .emu
        .calls("CreateVpnPbrRouteEntry", "VpnGateway.Configuring")
        .await?
        + env
            .emu
            .calls("CreateVpnPbrRouteEntry", "TaskConflict")
            .await?;
    assert!(busy > 0, "the test must have hit a busy gateway");
    Ok(())
}

#[tokio::test]
async fn weight_priority_and_publishing_change_in_place() -> anyhow::Result<()> {
    let env = Env::start("update", 200, &[], &[]).await?;
    let route = Route::new("vpn-gw-a", "192.168.3.0/24", "10.3.0.0/16", "vco-gw-a-1");
    let before = route.ready_as(&env, "r", 100).await?;
    env.patch_spec(
        "r",
        json!({"weight": 0, "priority": 30, "publishVpc": true}),
    )
    .await;
    let gen_ = before.metadata.generation.unwrap_or(1) + 1;
    env.wait_for("r", "observed weight 0, priority 30, published", move |r| {
        ready_observing(r, Some(gen_), |o| {
            o.weight == 0 && o.priority == 30 && o.published
        })
    })
    .await?;
    let e = route.entry(&env).await?.expect("entry");
    assert_eq!(
        (
            e["Weight"].as_i64(),
            e["Priority"].as_i64(),
            e["State"].as_str()
        ),
        (Some(0), Some(30), Some("published"))
    );
    assert_eq!(
        route.creates(&env).await?,
        1,
        "changed in place, not recreated"
    );
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 0);
    env.wait_event("Updated").await?;
    // The description is immutable: refused by the apiserver.
    let err = env
        .api
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"description": "new"}})),
        )
        .await;
    assert!(
        matches!(err, Err(kube::Error::Api(ref s)) if s.code == 422),
        "{err:?}"
    );
    Ok(())
}

/// [`Env::start`] (no extra flags, no environment) with `routes` applied and Ready.
async fn start_ready(
    prefix: &str,
    update_ms: u64,
    routes: &[(&str, Value)],
) -> anyhow::Result<Env> {
    let env = Env::start(prefix, update_ms, &[], &[]).await?;
    env.apply_ready(routes).await?;
    Ok(env)
}

/// [`Env::start`] (no extra flags, 200 ms updates) on a cloud that holds `route`'s entry with
/// `weight` already, made behind the operator's back.
async fn start_with_entry(prefix: &str, route: Route<'_>, weight: u32) -> anyhow::Result<Env> {
    let env = Env::start(prefix, 200, &[], &[]).await?;
    route.console(&env, "create", Some(weight)).await?;
    Ok(env)
}

#[tokio::test]
async fn out_of_band_changes_are_repaired_at_resync() -> anyhow::Result<()> {
    let del = Route::new("vpn-gw-b", "192.168.4.0/24", "10.4.0.0/16", "vco-gw-b-1");
    let wgt = Route::new("vpn-gw-b", "192.168.5.0/24", "10.5.0.0/16", "vco-gw-b-2");
    let routes = [("del", del.spec(100)), ("wgt", wgt.spec(100))];
    let env = start_ready("drift", 100, &routes).await?;
    del.console(&env, "delete", None).await?;
    wgt.console(&env, "modify", Some(0)).await?;
    eventually_ok(WAIT, "entry recreated and weight corrected", || async {
        let recreated = del.entry(&env).await?.is_some();
        let weight = wgt.entry(&env).await?.map(|e| e["Weight"].clone());
        Ok((recreated && weight == Some(json!(100))).then_some(()))
    })
    .await?;
    assert_eq!(del.creates(&env).await?, 2);
    Ok(())
}

#[tokio::test]
async fn delete_removes_the_entry_and_orphan_keeps_it() -> anyhow::Result<()> {
    let gone = Route::new("vpn-gw-a", "192.168.6.0/24", "10.6.0.0/16", "vco-gw-a-1");
    let kept = Route::new("vpn-gw-a", "192.168.7.0/24", "10.7.0.0/16", "vco-gw-a-1");
    let orphan = kept.spec_with(100, "deletionPolicy", json!("Orphan"));
    let env = start_ready("delete", 200, &[("gone", gone.spec(100)), ("kept", orphan)]).await?;
    env.delete("gone").await;
    env.delete("kept").await;
    env.gone("gone").await?;
    env.gone("kept").await?;
    assert!(
        gone.entry(&env).await?.is_none(),
        "Delete policy removes the entry"
    );
    assert!(kept.entry(&env).await?.is_some(), "Orphan keeps the entry");
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 1);
    env.wait_event("Deleted").await?;
    Ok(())
}

#[tokio::test]
async fn existing_entry_is_adopted_and_a_bad_next_hop_is_fixed_by_editing() -> anyhow::Result<()> {
    let existing = Route::new("vpn-gw-a", "192.168.8.0/24", "10.8.0.0/16", "vco-gw-a-1");
    let env = start_with_entry("adopt", existing, 100).await?;
    // Without consent: refused, and neither changed nor deleted with its object.
    env.apply("uninvited", existing.spec(0)).await;
    env.wait_for("uninvited", "Ready=False AlreadyExists", |r| {
        ready_is(r, ConditionStatus::False, Some("AlreadyExists"))
    })
    .await?;
    let warning = env.wait_event("AlreadyExists").await?;
    assert!(
        warning
            .note
            .as_deref()
            .is_some_and(|n| n.contains("vpn.alicloud.dev/adopt")),
        "the warning says how to adopt: {warning:?}"
    );
    env.delete_and_wait("uninvited").await?;
    let entry = existing.entry(&env).await?.expect("entry kept");
    assert_eq!(entry["Weight"], 100, "not changed");
    assert_eq!(env.emu.calls("DeleteVpnPbrRouteEntry", "Success").await?, 0);
    assert_eq!(
        env.emu
            .calls("ModifyVpnPbrRouteEntryAttribute", "Success")
            .await?,
        0
    );

    // With consent: adopted, recorded in status, no create.
    let mut obj = route_object("adopted", existing.spec(100));
    obj.annotations_mut()
        .insert("vpn.alicloud.dev/adopt".into(), "true".into());
    env.api.create(&PostParams::default(), &obj).await?;
    let r = env.ready("adopted").await?;
    env.wait_event("Adopted").await?;
    let st = r.status.expect("status");
    assert_eq!(st.adopted, Some(true));
    assert!(st.adopted_at.is_some());
    assert_eq!(existing.creates(&env).await?, 0, "adopted, not created");

    let bad = Route::new(
        "vpn-gw-a",
        "192.168.9.0/24",
        "10.9.0.0/16",
        "vco-does-not-exist",
    );
    env.apply("badhop", bad.spec(100)).await;
    env.wait_for("badhop", "Ready=False InvalidNextHop.NotFound", |r| {
        ready_is(r, ConditionStatus::False, Some("InvalidNextHop.NotFound"))
    })
    .await?;
    let warning = env.wait_event("InvalidNextHop.NotFound").await?;
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    env.patch_spec("badhop", json!({"nextHop": "vco-gw-a-2"}))
        .await;
    env.ready("badhop").await?;
    assert!(bad.via("vco-gw-a-2").entry(&env).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn paused_routes_make_no_cloud_calls_and_duplicates_are_refused() -> anyhow::Result<()> {
    let env = Env::start("paused", 200, &[], &[]).await?;
    let route = Route::new("vpn-gw-b", "192.168.10.0/24", "10.10.0.0/16", "vco-gw-b-1");
    route.ready_as(&env, "first", 100).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.apply("second", route.spec(100)).await;
    env.wait_for("second", "DuplicateRoute", |r| {
        ready_is(r, ConditionStatus::False, Some("DuplicateRoute"))
    })
    .await?;
    env.wait_event("DuplicateRoute").await?;
    assert!(
        ready_is(
            &env.api.get("first").await.expect("first"),
            ConditionStatus::True,
            None
        ),
        "the older claim keeps the route"
    );
    env.delete_and_wait("second").await?;

    env.api
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"vpn.alicloud.dev/paused": "true"}}}),
            ),
        )
        .await
        .expect("pause");
    env.wait_for("first", "Synced=False Paused", |r| {
        synced_because(r, "Paused")
    })
    .await?;
    let before = env.emu.total_calls().await?;
    env.patch_spec("first", json!({"weight": 0})).await;
    route.console(&env, "delete", None).await?;
    tokio::time::sleep(Duration::from_secs(7)).await; // two resync periods
    assert_eq!(
        env.emu.total_calls().await?,
        before,
        "no cloud call while paused"
    );
    env.api
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"vpn.alicloud.dev/paused": null}}})),
        )
        .await
        .expect("unpause");
    eventually_ok(WAIT, "recreated with weight 0 after unpause", || async {
        Ok(route.entry(&env).await?.filter(|e| e["Weight"] == 0))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn killed_after_storing_the_client_token_creates_exactly_once() -> anyhow::Result<()> {
    let env = Env::start("crash", 200, &[], &[]).await?;
    // Creates answer slowly, so the operator dies while the call is in flight.
    env.emu
        .set_faults(&json!({"rules": [{"action": "CreateVpnPbrRouteEntry", "rate": 1.0, "kind": "slow", "delay_ms": 1500}]}))
        .await?;
    let route = Route::new("vpn-gw-a", "192.168.11.0/24", "10.11.0.0/16", "vco-gw-a-1");
    env.apply("r", route.spec(100)).await;
    let r = env
        .wait_for("r", "clientToken in status", |r| {
            r.status.as_ref().is_some_and(|s| s.client_token.is_some())
        })
        .await?;
    let token = r.status.and_then(|s| s.client_token);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut op = env.op;
    op.kill();
    env.emu.set_faults(&json!({"rules": []})).await?;
    op.restart()?;
    let env = Env { op, ..env };
    let after = env.api.get("r").await.expect("route");
    assert!(
        after
            .status
            .as_ref()
            .and_then(|s| s.client_token.clone())
            .is_none_or(|t| Some(t) == token),
        "the stored token is reused, never replaced"
    );
    env.ready("r").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(route.creates(&env).await?, 1);
    assert_eq!(env.emu.gateway_entries("vpn-gw-a").await?.len(), 1);
    Ok(())
}

/// An operator that allows route Secrets and has no credentials of its own (only a route's
/// Secret can sign), and the Secret `cloud-keys` with the emulator's key written as `secret`,
/// with the credentials label when `labelled`.
async fn secret_only_env(prefix: &str, secret: &str, labelled: bool) -> anyhow::Result<Env> {
    let env = Env::start(
        prefix,
        200,
        &["--route-secrets", "true"],
        &[("ALIBABA_CLOUD_PROFILE", "none")],
    )
    .await?;
    create_key_secret_labelled(
        &env.client,
        &env.ns,
        "cloud-keys",
        emulator::KEY_ID,
        secret,
        labelled,
    )
    .await;
    Ok(env)
}

#[tokio::test]
async fn credentials_from_a_routes_secret() -> anyhow::Result<()> {
    let env = secret_only_env("secret", &format!("{}\n", emulator::KEY_SECRET), true).await?;
    let with_secret = Route::new("vpn-gw-a", "192.168.12.0/24", "10.12.0.0/16", "vco-gw-a-1");
    let keys = json!({"name": "cloud-keys"});
    env.apply(
        "with-secret",
        with_secret.spec_with(100, "credentialsRef", keys),
    )
    .await;
    let without = Route::new("vpn-gw-a", "192.168.13.0/24", "10.13.0.0/16", "vco-gw-a-1");
    env.apply("without", without.spec(100)).await;
    env.ready("with-secret").await?;
    env.wait_for("without", "Ready=False for missing credentials", |r| {
        ready_is(r, ConditionStatus::False, Some("CredentialsNotConfigured"))
    })
    .await?;
    // Never created in the cloud: deleting it needs no (impossible) cloud call.
    env.delete_and_wait("without").await?;
    let logs = env.op.logs();
    assert!(
        !logs.contains(emulator::KEY_SECRET),
        "the secret must never be logged"
    );
    Ok(())
}

/// A Secret without the credentials label is refused before anything reaches the cloud, and is
/// used once labelled.
#[tokio::test]
async fn an_unlabelled_secret_is_refused_until_it_is_labelled() -> anyhow::Result<()> {
    let env = secret_only_env("unlabelled", emulator::KEY_SECRET, false).await?;
    let route = Route::new("vpn-gw-a", "192.168.14.0/24", "10.14.0.0/16", "vco-gw-a-1");
    env.apply(
        "r",
        route.spec_with(100, "credentialsRef", json!({"name": "cloud-keys"})),
    )
    .await;
    let refused = env
        .wait_for("r", "Ready=False CredentialsSecretUnlabelled", |r| {
            ready_is(
                r,
                ConditionStatus::False,
                Some("CredentialsSecretUnlabelled"),
            )
        })
        .await?;
    let ready = condition(&refused, "Ready").expect("Ready");
    for needle in [
        "cloud-keys",
        &format!("{CREDENTIALS_LABEL}={CREDENTIALS_LABEL_VALUE}"),
        &format!("kubectl label secret -n {} cloud-keys", env.ns),
    ] {
        assert!(
            ready.message.contains(needle),
            "{needle}: {}",
            ready.message
        );
    }
    let status = serde_json::to_string(&refused.status)?;
    for data in [emulator::KEY_ID, emulator::KEY_SECRET] {
        assert!(!status.contains(data), "the Secret's data is not in status");
    }
    assert_eq!(
        env.emu.total_calls().await?,
        0,
        "nothing reaches the cloud with an unlabelled Secret"
    );

    label_key_secret(&env.client, &env.ns, "cloud-keys").await;
    // Secrets are not watched: the refusal is retried at the pace of its class (minutes), or
    // at once when the route changes, as here.
    env.patch(
        "r",
        json!({"metadata": {"annotations": {"example.com/nudge": "1"}}}),
    )
    .await;
    env.ready("r").await?;
    assert_eq!(route.creates(&env).await?, 1);
    assert!(
        !env.op.logs().contains(emulator::KEY_SECRET),
        "the secret must never be logged"
    );
    Ok(())
}

#[tokio::test]
async fn rrsa_credentials_through_assume_role_with_oidc() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.test-oidc-token.sig").expect("token");
    let (client, ns) = support::setup("rrsa").await?;
    let emu = start_emulator(&emulator::two_gateway_config_yaml(200, ""), dir.path());
    let sts = emu.url.clone();
    let token_path = token_file.to_string_lossy().to_string();
    let op = start_operator(
        &ns,
        &emu.url,
        dir.path(),
        &["--sts-endpoint", &sts],
        &[
            ("ALIBABA_CLOUD_ROLE_ARN", emulator::ROLE_ARN),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                emulator::OIDC_PROVIDER_ARN,
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_path),
        ],
    );
    let env = Env {
        api: Api::namespaced(client.clone(), &ns),
        client,
        ns,
        emu,
        op,
        dir,
    };
    Route::new("vpn-gw-a", "192.168.14.0/24", "10.14.0.0/16", "vco-gw-a-1")
        .ready_as(&env, "r", 100)
        .await?;
    assert!(env.emu.calls("AssumeRoleWithOIDC", "Success").await? >= 1);
    Ok(())
}

#[tokio::test]
async fn active_standby_pair_converges_and_a_flip_moves_the_active_role() -> anyhow::Result<()> {
    let active = Route::new("vpn-gw-a", "192.168.15.0/24", "10.15.0.0/16", "vco-gw-a-1");
    let standby = active.via("vco-gw-a-2");
    let routes = [("active", active.spec(100)), ("standby", standby.spec(0))];
    let env = start_ready("pair", 200, &routes).await?;
    // Flip: the standby becomes active and the active one standby.
    env.patch_spec("active", json!({"weight": 0})).await;
    env.patch_spec("standby", json!({"weight": 100})).await;
    eventually_ok(WAIT, "roles flipped in the cloud", || async {
        let (Some(a), Some(b)) = (active.entry(&env).await?, standby.entry(&env).await?) else {
            return Ok(None);
        };
        Ok((a["Weight"] == 0 && b["Weight"] == 100).then_some(()))
    })
    .await?;
    for (name, weight) in [("standby", 100), ("active", 0)] {
        env.wait_for(name, &format!("observed weight {weight}"), |r| {
            ready_observing(r, None, |o| o.weight == weight)
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn observe_only_reports_drift_without_changing_the_cloud() -> anyhow::Result<()> {
    let route = Route::new("vpn-gw-b", "192.168.16.0/24", "10.16.0.0/16", "vco-gw-b-1");
    let env = start_with_entry("observe", route, 0).await?;
    let observe_only = route.spec_with(100, "managementPolicy", json!("ObserveOnly"));
    env.apply("watched", observe_only).await;
    env.wait_for("watched", "Synced=False Drift", |r| {
        synced_because(r, "Drift")
    })
    .await?;
    for action in [
        "CreateVpnPbrRouteEntry",
        "ModifyVpnPbrRouteEntryWeight",
        "ModifyVpnPbrRouteEntryAttribute",
    ] {
        assert_eq!(env.emu.calls(action, "Success").await?, 0, "{action}");
    }
    env.delete_and_wait("watched").await?;
    assert!(route.entry(&env).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() -> anyhow::Result<()> {
    let env = Env::start("sigterm", 200, &[], &[]).await?;
    Route::new("vpn-gw-a", "192.168.17.0/24", "10.17.0.0/16", "vco-gw-a-1")
        .ready_as(&env, "r", 100)
        .await?;
    let mut op = env.op;
    let status = op.terminate().expect("exit status");
    assert!(
        status.success(),
        "exit {status:?}\n{}",
        tail(&op.logs(), 40)
    );
    assert!(!op.logs().contains("panicked"));
    Ok(())
}

/// A status write rests on the copy of the object it was built from: one built on a copy older
/// than the object's last write (a watch cache that lags our own write) would replace the
/// whole status and drop what that write recorded (a create token, an entry's createTime).
#[tokio::test]
async fn a_status_write_from_an_older_copy_is_refused_and_drops_nothing() -> anyhow::Result<()> {
    use vpn_pbr_operator::ObjectPort;
    use vpn_pbr_operator::api::v1alpha1::VpnPbrRouteStatus;

    let (api, older, objects) = copy_older_than_a_token_write("stale-status").await?;
    // Built on the copy from before that write: it knows nothing of the token.
    let stale = VpnPbrRouteStatus {
        gateway_status: Some("active".into()),
        ..Default::default()
    };
    let refused = objects.write_status(&older, &stale).await;
    let now = api.get("r").await?;
    assert_eq!(
        now.status.as_ref().and_then(|s| s.client_token.as_deref()),
        Some("tok-1"),
        "the newer write's token survives"
    );
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 409),
        "refused as a conflict: {refused:?}"
    );
    // Built on the newest copy, the same write goes through.
    let merged = VpnPbrRouteStatus {
        gateway_status: Some("active".into()),
        ..now.status.clone().unwrap_or_default()
    };
    objects.write_status(&now, &merged).await?;
    let after = api.get("r").await?;
    let st = after.status.unwrap_or_default();
    assert_eq!(
        (st.client_token.as_deref(), st.gateway_status.as_deref()),
        (Some("tok-1"), Some("active"))
    );
    Ok(())
}

/// The finalizer patch rests on the copy it was built from too: its answer's resourceVersion
/// becomes the copy's, so a copy older than the object (a watch that lags a spec edit or our own
/// status write) must not get it, or a status write on that copy would pass its precondition.
#[tokio::test]
async fn a_finalizer_patch_on_an_older_copy_is_refused() -> anyhow::Result<()> {
    use vpn_pbr_operator::ObjectPort;

    let (api, older, objects) = copy_older_than_a_token_write("stale-finalizer").await?;
    let refused = objects.add_finalizer(&older).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s))
            if s.code == 422 && s.details.as_ref().is_none_or(|d| d.causes.is_empty())),
        "refused by the patch's test of the copy: {refused:?}"
    );
    let now = api.get("r").await?;
    assert!(now.finalizers().is_empty(), "nothing was added");
    let version = objects.add_finalizer(&now).await?;
    let after = api.get("r").await?;
    assert_eq!(after.finalizers(), [FINALIZER]);
    assert_eq!(version, after.metadata.resource_version);
    Ok(())
}

/// A route in a fresh namespace `ns_prefix`, the copy read at its creation, and the objects port
/// after that port wrote a create token to its status: the copy is then older than the object.
async fn copy_older_than_a_token_write(
    ns_prefix: &str,
) -> anyhow::Result<(Api<VpnPbrRoute>, VpnPbrRoute, vpn_pbr_operator::KubeObjects)> {
    use vpn_pbr_operator::api::v1alpha1::VpnPbrRouteStatus;
    use vpn_pbr_operator::{EventSource, KubeObjects, ObjectPort};

    let (client, ns) = support::setup(ns_prefix).await?;
    let api: Api<VpnPbrRoute> = Api::namespaced(client.clone(), &ns);
    let mut route = route_object(
        "r",
        spec(
            "vpn-gw-a",
            "192.168.30.0/24",
            "10.30.0.0/16",
            "vco-gw-a-1",
            100,
        ),
    );
    route.metadata.namespace = Some(ns.clone());
    let older = api.create(&PostParams::default(), &route).await?;
    let objects = KubeObjects {
        client,
        events: EventSource {
            controller: "test".into(),
            instance: None,
        },
        caches: Vec::new(),
        manager: "vpn-pbr-operator".into(),
    };
    let with_token = VpnPbrRouteStatus {
        client_token: Some("tok-1".into()),
        ..Default::default()
    };
    objects.write_status(&older, &with_token).await?;
    Ok((api, older, objects))
}
