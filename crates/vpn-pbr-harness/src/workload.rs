//! The routes of a run, created concurrently, and a watcher that records when each is Ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::time::Instant;

use crate::emulator::{CONNECTIONS, REGION, connection_id, gateway_id};
use crate::wait::ready_is;
use vpn_pbr_operator::api::v1alpha1::{Condition, ConditionStatus, VpnPbrRoute};

/// Route `i` of a run over `gateways` gateways: gateway `i % gateways`, a destination of its
/// own (so no two routes form an active/standby pair), weight 100, not published.
pub(crate) fn route(i: usize, gateways: usize) -> Result<VpnPbrRoute> {
    route_on(i % gateways, i / gateways)
}

/// Route `j` of gateway `g`, as [`route`] makes them.
pub(crate) fn route_on(g: usize, j: usize) -> Result<VpnPbrRoute> {
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

/// Creates one object, retrying for up to a minute while the apiserver is away; an object
/// that already exists (a retry of a create that went through) counts as created.
pub(crate) async fn create_one(api: &Api<VpnPbrRoute>, obj: &VpnPbrRoute) -> Result<()> {
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

/// Route `j` of gateway `g` ([`route_on`]) in account `account` (`spec.accountRef`).
pub(crate) fn account_route(g: usize, j: usize, account: &str) -> Result<VpnPbrRoute> {
    let mut route = route_on(g, j)?;
    route.spec.account_ref = Some(account.to_owned());
    Ok(route)
}

/// Creates all objects with `parallel` requests in flight.
pub(crate) async fn create_all(
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

/// The route's `Ready` condition, if it has one.
pub(crate) fn ready_condition(route: &VpnPbrRoute) -> Option<&Condition> {
    route
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Updates seen with `Ready` not `True` (False, Unknown or no condition) while counting.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Flips {
    pub(crate) updates: u64,
    /// Routes with at least one such update.
    pub(crate) routes: usize,
    /// Updates by `status/reason` of the Ready condition (`none` without one).
    pub(crate) by_reason: BTreeMap<String, u64>,
}

/// The resource version last seen of every object, to tell a new version from the same one
/// delivered again (a watch re-list after a reconnect replays every object), and the flips
/// counted since `arm`.
#[derive(Debug, Default)]
pub(crate) struct UpdateLog {
    versions: HashMap<String, String>,
    flipped: HashSet<String>,
    flips: Option<Flips>,
}

impl UpdateLog {
    /// Starts counting flips (from zero).
    pub(crate) fn arm(&mut self) {
        self.flips = Some(Flips::default());
        self.flipped.clear();
    }

    /// One object version seen by the watch, with its Ready condition (status and reason).
    pub(crate) fn observe(
        &mut self,
        name: &str,
        version: &str,
        ready: Option<(ConditionStatus, &str)>,
    ) {
        if self.versions.get(name).is_some_and(|v| v == version) {
            return;
        }
        self.versions.insert(name.to_owned(), version.to_owned());
        let Some(flips) = self.flips.as_mut() else {
            return;
        };
        let key = match ready {
            Some((ConditionStatus::True, _)) => return,
            Some((status, reason)) => format!("{status:?}/{reason}"),
            None => "none".to_owned(),
        };
        flips.updates += 1;
        *flips.by_reason.entry(key).or_default() += 1;
        if self.flipped.insert(name.to_owned()) {
            flips.routes += 1;
        }
    }

    pub(crate) fn flips(&self) -> Option<&Flips> {
        self.flips.as_ref()
    }
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
    updates: UpdateLog,
}

/// Watches a namespace: first Ready time of every object, and which objects exist.
pub(crate) struct Tracker {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(m: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tracker {
    /// Starts the watch and waits for its initial list (at most 30 s).
    pub(crate) async fn start(api: Api<VpnPbrRoute>) -> Result<Tracker> {
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
                        st.updates.observe(
                            &name,
                            o.resource_version().as_deref().unwrap_or_default(),
                            ready_condition(&o).map(|c| (c.status, c.reason.as_str())),
                        );
                        if ready_is(&o, ConditionStatus::True, None) {
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
                    // The watcher retries with its backoff (an apiserver restart shows up here).
                    Err(_) => {}
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
    pub(crate) fn ready_of(&self, names: &[String]) -> (usize, Option<Instant>) {
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

    /// When each of `names` was first seen Ready (`None`: not yet).
    pub(crate) fn first_ready(&self, names: &[String]) -> Vec<Option<Instant>> {
        let st = lock(&self.seen);
        names
            .iter()
            .map(|n| st.first_ready.get(n).copied())
            .collect()
    }

    /// Objects that exist now.
    pub(crate) fn present(&self) -> usize {
        lock(&self.seen).present.len()
    }

    /// Starts counting updates with Ready not True (see [`UpdateLog`]).
    pub(crate) fn count_flips(&self) {
        lock(&self.seen).updates.arm();
    }

    /// The flips counted since `count_flips` (none before it).
    pub(crate) fn flips(&self) -> Flips {
        lock(&self.seen)
            .updates
            .flips()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `done` holds, checking every 100 ms, at most `timeout`; returns whether it
    /// held. `tick` runs on every check (kills, restarts).
    pub(crate) async fn wait<F>(&self, timeout: Duration, mut done: F) -> bool
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_count_new_versions_with_ready_not_true_after_arming() {
        let mut log = UpdateLog::default();
        // Before arming: remembered, not counted.
        log.observe("a", "1", Some((ConditionStatus::False, "Pending")));
        log.observe("b", "1", Some((ConditionStatus::True, "Synced")));
        assert_eq!(log.flips(), None);
        log.arm();
        // The same versions again (a re-list after a reconnect): not updates.
        log.observe("a", "1", Some((ConditionStatus::False, "Pending")));
        log.observe("b", "1", Some((ConditionStatus::True, "Synced")));
        // Ready stays True: not a flip.
        log.observe("b", "2", Some((ConditionStatus::True, "Synced")));
        // Flips: Unknown, False, no condition; the same version twice counts once.
        log.observe("b", "3", Some((ConditionStatus::Unknown, "Restarting")));
        log.observe("b", "3", Some((ConditionStatus::Unknown, "Restarting")));
        log.observe("b", "4", Some((ConditionStatus::False, "GatewayBusy")));
        log.observe("c", "7", None);
        log.observe("b", "5", Some((ConditionStatus::True, "Synced")));
        let flips = log.flips().cloned().unwrap_or_default();
        assert_eq!(flips.updates, 3);
        assert_eq!(flips.routes, 2);
        assert_eq!(
            flips.by_reason.into_iter().collect::<Vec<_>>(),
            vec![
                ("False/GatewayBusy".to_owned(), 1),
                ("Unknown/Restarting".to_owned(), 1),
                ("none".to_owned(), 1)
            ]
        );
        // Arming again starts from zero.
        log.arm();
        assert_eq!(log.flips().map(|f| f.updates), Some(0));
    }
}
