//! One test's world: a namespace, an emulator and an operator of its own, and the waits and
//! reads the route tests share.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tempfile::TempDir;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

use super::route::route_object;
use super::{
    Emulator, Operator, emulator, eventually_ok, ready_is, setup, start_emulator, start_operator,
    wait_gone, wait_route,
};

/// How long a test waits for the operator at most.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct RouteEnv {
    pub client: Client,
    pub ns: String,
    pub emu: Emulator,
    pub op: Operator,
    pub api: Api<VpnPbrRoute>,
    /// The emulator's config and log and the operator's log; removed after both processes.
    pub dir: TempDir,
}

impl RouteEnv {
    /// The two-gateway cloud of `emulator::two_gateway_config_yaml` with update time
    /// `update_ms`.
    pub async fn start(
        prefix: &str,
        update_ms: u64,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<RouteEnv> {
        let config = emulator::two_gateway_config_yaml(update_ms, "");
        Self::start_with(prefix, &config, extra, envs).await
    }

    /// An emulator with `config`, an operator with `extra` flags and `envs`.
    pub async fn start_with(
        prefix: &str,
        config: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<RouteEnv> {
        let (client, ns) = setup(prefix).await?;
        let dir = tempfile::tempdir()?;
        let emu = start_emulator(config, dir.path());
        let op = start_operator(&ns, &emu.url, dir.path(), extra, envs);
        let api = Api::namespaced(client.clone(), &ns);
        Ok(RouteEnv {
            client,
            ns,
            emu,
            op,
            api,
            dir,
        })
    }

    pub async fn apply(&self, name: &str, spec: Value) {
        self.api
            .create(&PostParams::default(), &route_object(name, spec))
            .await
            .unwrap_or_else(|e| panic!("create route {name}: {e}"));
    }

    /// Applies the routes, then waits until each is Ready.
    pub async fn apply_ready(&self, routes: &[(&str, Value)]) -> anyhow::Result<()> {
        for (name, spec) in routes {
            self.apply(name, spec.clone()).await;
        }
        for (name, _) in routes {
            self.ready(name).await?;
        }
        Ok(())
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.patch(name, json!({ "spec": spec })).await;
    }

    /// A merge patch of the route.
    pub async fn patch(&self, name: &str, patch: Value) {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch route {name}: {e}"));
    }

    pub async fn delete(&self, name: &str) {
        self.api
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete route {name}: {e}"));
    }

    /// Deletes the route and waits until it is gone.
    pub async fn delete_and_wait(&self, name: &str) -> anyhow::Result<()> {
        self.delete(name).await;
        self.gone(name).await
    }

    /// Waits until `check` holds for the object, with the operator log in the failure message.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&VpnPbrRoute) -> bool,
    ) -> anyhow::Result<VpnPbrRoute> {
        wait_route(&self.api, name, what, WAIT, check, || self.log_tail()).await
    }

    pub async fn ready(&self, name: &str) -> anyhow::Result<VpnPbrRoute> {
        self.wait_for(name, "Ready=True", |r| {
            ready_is(r, ConditionStatus::True, None)
        })
        .await
    }

    pub async fn gone(&self, name: &str) -> anyhow::Result<()> {
        self.gone_within(name, WAIT).await
    }

    /// Waits until the object is gone; on timeout the error carries its status and the log.
    pub async fn gone_within(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        if let Err(e) = wait_gone(&self.api, name, timeout).await {
            let status = self.api.get_opt(name).await?.and_then(|r| r.status);
            anyhow::bail!(
                "{e}; status {status:?}\n--- operator log ---\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Events of the namespace with this reason.
    pub async fn events(&self, reason: &str) -> anyhow::Result<Vec<Event>> {
        Ok(self
            .all_events()
            .await?
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect())
    }

    /// Events about the route `name`.
    pub async fn events_of(&self, name: &str) -> anyhow::Result<Vec<Event>> {
        Ok(self
            .all_events()
            .await?
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some(name))
            })
            .collect())
    }

    async fn all_events(&self) -> anyhow::Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(events.list(&ListParams::default()).await?.items)
    }

    /// Waits for an event with this reason.
    pub async fn wait_event(&self, reason: &str) -> anyhow::Result<Event> {
        eventually_ok(WAIT, &format!("event {reason}"), || async {
            Ok(self.events(reason).await?.into_iter().next())
        })
        .await
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        tail(&self.op.logs(), 60)
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
