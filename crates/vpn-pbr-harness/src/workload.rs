//! The routes of a run, created concurrently, and a watcher that records when each is Ready.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::emulator::{CONNECTIONS, REGION, connection_id, gateway_id};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

/// Route `i` of a run over `gateways` gateways: gateway `i % gateways`, a destination of its
/// own (so no two routes form an active/standby pair), weight 100, not published.
pub fn route(i: usize, gateways: usize) -> Result<VpnPbrRoute> {
    let g = i % gateways;
    let j = i / gateways;
    let spec = json!({
        "regionId": REGION,
        "vpnGatewayId": gateway_id(g),
        "routeSource": format!("172.{}.{}.0/24", 16 + g / 256, g % 256),
        "routeDest": format!("10.{}.{}.0/24", j / 256, j % 256),
        "nextHop": connection_id(g, j % CONNECTIONS),
        "weight": 100,
        "publishVpc": false,
        "priority": 10,
    });
    Ok(serde_json::from_value(json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": format!("r-{g:04}-{j:05}")}, "spec": spec
    }))?)
}

pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Creates one object, retrying for up to a minute while the apiserver is away; an object
/// that already exists (a retry of a create that went through) counts as created.
pub async fn create_one(api: &Api<VpnPbrRoute>, obj: &VpnPbrRoute) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match api.create(&PostParams::default(), obj).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "create failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(anyhow!("create {}: {e}", obj.name_any())),
        }
    }
}

/// Creates all objects with `parallel` requests in flight.
pub async fn create_all(
    api: &Api<VpnPbrRoute>,
    objs: Vec<VpnPbrRoute>,
    parallel: usize,
) -> Result<()> {
    futures::stream::iter(objs)
        .map(|o| {
            let api = api.clone();
            async move { create_one(&api, &o).await }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

pub fn is_ready(route: &VpnPbrRoute) -> bool {
    route.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

#[derive(Default)]
struct Seen {
    /// Name -> when it was first seen Ready.
    first_ready: HashMap<String, Instant>,
    /// Objects that exist now (as of the watch).
    present: HashSet<String>,
    /// Objects being rebuilt by a re-list.
    relist: Option<HashSet<String>>,
    synced: bool,
    /// Watch errors (an apiserver restart shows up here).
    errors: u64,
}

/// Watches a namespace: first Ready time of every object, and which objects exist.
pub struct Tracker {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(m: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tracker {
    /// Starts the watch and waits for its initial list (at most 30 s).
    pub async fn start(api: Api<VpnPbrRoute>) -> Result<Tracker> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                let mut st = lock(&s);
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let name = o.name_any();
                        if is_ready(&o) {
                            st.first_ready
                                .entry(name.clone())
                                .or_insert_with(Instant::now);
                        }
                        match st.relist.as_mut() {
                            Some(r) => {
                                r.insert(name);
                            }
                            None => {
                                st.present.insert(name);
                            }
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        st.present.remove(&o.name_any());
                    }
                    Ok(watcher::Event::Init) => st.relist = Some(HashSet::new()),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = st.relist.take() {
                            st.present = r;
                        }
                        st.synced = true;
                    }
                    Err(_) => st.errors += 1,
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lock(&seen).synced {
            if Instant::now() > deadline {
                task.abort();
                return Err(anyhow!("the watch did not sync within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Tracker { seen, task })
    }

    /// How many of `names` have been Ready, and the latest first-Ready time among them.
    pub fn ready_of(&self, names: &[String]) -> (usize, Option<Instant>) {
        let st = lock(&self.seen);
        let mut n = 0;
        let mut last = None;
        for name in names {
            if let Some(t) = st.first_ready.get(name) {
                n += 1;
                last = Some(last.map_or(*t, |l: Instant| l.max(*t)));
            }
        }
        (n, last)
    }

    /// Objects that exist now.
    pub fn present(&self) -> usize {
        lock(&self.seen).present.len()
    }

    pub fn errors(&self) -> u64 {
        lock(&self.seen).errors
    }

    /// Waits until `done` holds, checking every 100 ms, at most `timeout`; returns whether it
    /// held. `tick` runs on every check (kills, restarts).
    pub async fn wait<F>(&self, timeout: Duration, mut done: F) -> bool
    where
        F: FnMut(&Tracker) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
