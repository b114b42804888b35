//! The accounts and namespaces a route's account is resolved from: the watch caches of
//! `VpnAccount`s and Namespaces, and the operator's settings about accounts. The rules are in
//! `resolve.rs`; this only looks the objects up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::store::WriterDropped;
use kube::runtime::reflector::{ObjectRef, Store};

use super::resolve::{self, AccountOptions, NamespaceView, Refusal, Resolved};
use crate::api::v1alpha1::{VpnAccount, VpnPbrRoute};

/// The caches of accounts and namespaces (none in the simulation: every route then uses the
/// operator's identity), and the options of the resolution.
#[derive(Clone, Default)]
pub struct Tenancy {
    accounts: Option<Store<VpnAccount>>,
    namespaces: Option<Store<Namespace>>,
    options: AccountOptions,
    /// Set once both caches hold their first list (`None`: no caches, nothing to wait for).
    synced: Option<Arc<AtomicBool>>,
}

impl Tenancy {
    pub(crate) fn new(
        accounts: Store<VpnAccount>,
        namespaces: Store<Namespace>,
        options: AccountOptions,
    ) -> Self {
        Self {
            accounts: Some(accounts),
            namespaces: Some(namespaces),
            options,
            synced: Some(Arc::default()),
        }
    }

    /// Whether the caches hold their first list: before, an account would look missing.
    pub(crate) fn synced(&self) -> bool {
        self.synced
            .as_ref()
            .is_none_or(|s| s.load(Ordering::Relaxed))
    }

    /// Waits until both caches hold their first list, then says so to [`Tenancy::synced`]; a
    /// cache whose watch ended before that leaves it unsynced (accounts would look missing).
    pub(crate) async fn await_synced(&self) {
        let filled_both = async {
            if let Some(accounts) = &self.accounts {
                filled(accounts).await?;
            }
            if let Some(ns) = &self.namespaces {
                filled(ns).await?;
            }
            Ok::<_, WriterDropped>(())
        };
        if let Err(e) = filled_both.await {
            tracing::error!(error = %e, "account or namespace cache never filled; routes wait");
            return;
        }
        if let Some(s) = &self.synced {
            s.store(true, Ordering::Relaxed);
        }
        tracing::info!("account and namespace caches synced");
    }

    /// The account named `name`, from the cache.
    pub(crate) fn account(&self, name: &str) -> Option<Arc<VpnAccount>> {
        self.accounts.as_ref()?.get(&ObjectRef::new(name))
    }

    /// Every account in the cache (none in the simulation).
    pub(crate) fn accounts(&self) -> Vec<Arc<VpnAccount>> {
        self.accounts.as_ref().map(Store::state).unwrap_or_default()
    }

    /// The Namespace named `name`, from the cache.
    pub(crate) fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.as_ref()?.get(&ObjectRef::new(name))
    }

    /// The account a live route acts in, or why it may not.
    pub(crate) fn resolve(&self, route: &VpnPbrRoute) -> Result<Resolved, Refusal> {
        let ns = self.namespace_of(route);
        resolve::resolve(
            route,
            view(ns.as_deref()),
            |n| self.account(n),
            &self.options,
        )
    }

    /// The account a deleted route's cleanup acts in; `Err` names it when it is gone.
    pub(crate) fn resolve_for_cleanup(&self, route: &VpnPbrRoute) -> Result<Resolved, String> {
        resolve::resolve_for_cleanup(route, |n| self.account(n))
    }

    /// The VpnAccount the route uses (`None`: the operator's identity).
    pub(crate) fn chosen_name(&self, route: &VpnPbrRoute) -> Option<String> {
        let ns = self.namespace_of(route);
        resolve::chosen_name(route, view(ns.as_deref())).map(str::to_owned)
    }

    fn namespace_of(&self, route: &VpnPbrRoute) -> Option<Arc<Namespace>> {
        self.namespace(route.metadata.namespace.as_deref()?)
    }
}

/// Waits until `store` holds its first list, checking on a tick as well as awaiting it: a
/// wake-up from the reflector is not relied on. `Err`: its watch ended before.
pub(crate) async fn filled<K>(store: &Store<K>) -> Result<(), WriterDropped>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(done) =
            tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await
        {
            return done;
        }
    }
}

/// What the resolution reads of a Namespace (none known: no labels, no default).
pub(crate) fn view(ns: Option<&Namespace>) -> NamespaceView<'_> {
    NamespaceView {
        labels: ns.and_then(|n| n.metadata.labels.as_ref()),
        annotations: ns.and_then(|n| n.metadata.annotations.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher;

    /// A cache whose watch ended before its first list is not synced: its accounts would look
    /// missing. One that got its list is.
    #[tokio::test]
    async fn only_caches_that_got_their_first_list_are_synced() {
        let (accounts, writer) = store::<VpnAccount>();
        let (namespaces, mut ns_writer) = store::<Namespace>();
        drop(writer);
        ns_writer.apply_watcher_event(&watcher::Event::InitDone);
        let t = Tenancy::new(accounts, namespaces.clone(), AccountOptions::default());
        t.await_synced().await;
        assert!(!t.synced(), "synced without an account list");

        let (accounts, mut writer) = store::<VpnAccount>();
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let t = Tenancy::new(accounts, namespaces, AccountOptions::default());
        t.await_synced().await;
        assert!(t.synced());
    }
}
