//! Per-gateway read cache: one entry list and one status read serve every route of a gateway.
//!
//! Lists are fetched once per gateway (single flight: concurrent readers wait for the one call)
//! and kept for a short time; accepted mutations are applied to the cached list, so a route sees
//! its own change without another list call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::model::{Entry, GatewayFacts, GatewayKey, Mutation, Scope};
use super::port::CloudPort;
use alicloud_vpc_client::CloudError;

#[derive(Default)]
struct Cached {
    entries: Option<(Instant, Arc<Vec<Entry>>)>,
    facts: Option<(Instant, GatewayFacts)>,
}

#[derive(Default)]
struct Slot {
    /// Serializes fetches of one gateway (the single flight).
    fetch: tokio::sync::Mutex<()>,
    data: Mutex<Cached>,
}

/// Shared handle; cheap to clone.
#[derive(Clone)]
pub struct GatewayCache {
    cloud: Arc<dyn CloudPort>,
    slots: Arc<Mutex<HashMap<GatewayKey, Arc<Slot>>>>,
}

/// The cached value if it is at most `max_age` old.
fn fresh<T>(
    slot: &Slot,
    max_age: Duration,
    pick: impl Fn(&Cached) -> Option<(Instant, T)>,
) -> Option<T> {
    pick(&lock(&slot.data))
        .filter(|(at, _)| at.elapsed() <= max_age)
        .map(|(_, v)| v)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GatewayCache {
    pub fn new(cloud: Arc<dyn CloudPort>) -> Self {
        Self {
            cloud,
            slots: Arc::default(),
        }
    }

    fn slot(&self, key: &GatewayKey) -> Arc<Slot> {
        lock(&self.slots).entry(key.clone()).or_default().clone()
    }

    /// The gateway's entries, at most `max_age` old.
    pub async fn entries(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<Arc<Vec<Entry>>, CloudError> {
        let slot = self.slot(&scope.key());
        let pick = |c: &Cached| c.entries.clone();
        if let Some(e) = fresh(&slot, max_age, pick) {
            return Ok(e);
        }
        let _flight = slot.fetch.lock().await;
        if let Some(e) = fresh(&slot, max_age, pick) {
            return Ok(e);
        }
        let started = Instant::now();
        let list = Arc::new(self.cloud.list_entries(scope).await?);
        lock(&slot.data).entries = Some((started, list.clone()));
        Ok(list)
    }

    /// The gateway's facts, at most `max_age` old.
    pub async fn facts(
        &self,
        scope: &Scope,
        max_age: Duration,
    ) -> Result<GatewayFacts, CloudError> {
        let slot = self.slot(&scope.key());
        let pick = |c: &Cached| c.facts.clone();
        if let Some(f) = fresh(&slot, max_age, pick) {
            return Ok(f);
        }
        let _flight = slot.fetch.lock().await;
        if let Some(f) = fresh(&slot, max_age, pick) {
            return Ok(f);
        }
        self.fetch_facts(&slot, scope).await
    }

    /// Reads the gateway now (the scheduler's probe).
    pub async fn refresh_facts(&self, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let slot = self.slot(&scope.key());
        self.fetch_facts(&slot, scope).await
    }

    async fn fetch_facts(&self, slot: &Slot, scope: &Scope) -> Result<GatewayFacts, CloudError> {
        let facts = self.cloud.gateway(scope).await?;
        lock(&slot.data).facts = Some((Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// Applies an accepted mutation to the cached list.
    pub fn apply(&self, scope: &Scope, mutation: &Mutation, created: Option<&Entry>) {
        let slot = self.slot(&scope.key());
        let mut data = lock(&slot.data);
        if let Some((_, list)) = data.entries.as_mut() {
            mutation.apply_to(Arc::make_mut(list), created);
        }
    }

    /// Forgets the cached list, so the next reader lists again.
    pub fn invalidate(&self, scope: &Scope) {
        let slot = self.slot(&scope.key());
        lock(&slot.data).entries = None;
    }
}
