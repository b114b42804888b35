//! A route's job in the gateway scheduler, as a reconcile sees it: what the decision reads of
//! the scheduler (`queue.rs` makes these views; `decide.rs` only reads them).

use std::sync::Arc;

use super::model::{Accepted, Mutation};
use crate::api::v1alpha1::VpnPbrRoute;
use alicloud_vpc_client::CloudError;
use kube::runtime::reflector::ObjectRef;

/// The object a job (or a read) belongs to: its route, by name and namespace. Shared: the
/// scheduler's queue, its index and the read cache's waiters each keep a copy of a queued
/// route's owner, and a clone is a count, not two strings and a 96-byte `ObjectRef`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner(Arc<ObjectRef<VpnPbrRoute>>);

impl Owner {
    /// The route `name` in `namespace` (none: cluster-scoped, only in tests).
    pub fn new(name: &str, namespace: Option<&str>) -> Self {
        let owner = ObjectRef::new(name);
        Self(Arc::new(match namespace {
            Some(ns) => owner.within(ns),
            None => owner,
        }))
    }

    /// The reference the controller runtime queues a reconcile by.
    pub fn object_ref(&self) -> ObjectRef<VpnPbrRoute> {
        ObjectRef::clone(&self.0)
    }
}

impl std::ops::Deref for Owner {
    type Target = ObjectRef<VpnPbrRoute>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The route's owner: name and namespace only (the uid and resourceVersion `from_obj` adds
/// would cost every copy two strings).
pub(crate) fn owner_of(route: &VpnPbrRoute) -> Owner {
    use kube::ResourceExt;
    Owner::new(&route.name_any(), route.namespace().as_deref())
}

/// The key a route goes by (`namespace/name`), from its owner.
pub(crate) fn owner_key(owner: &Owner) -> String {
    format!(
        "{}/{}",
        owner.namespace.as_deref().unwrap_or_default(),
        owner.name
    )
}

/// What a reconcile sees of its job.
#[derive(Clone, Debug)]
pub enum JobView {
    /// Waiting for its turn; it can still be replaced or cancelled. `generation` is the spec
    /// generation it was planned from.
    Queued {
        mutation: Mutation,
        generation: Option<i64>,
        /// Its turn waits on the gateway's status, and those reads keep failing.
        stalled: Option<Stall>,
    },
    /// On the wire: it will finish, whatever the object does meanwhile.
    InFlight,
    /// The cloud accepted it; `confirmed` once the gateway was seen `active` afterwards and
    /// the entry list shows the change (the cloud applies changes in the background).
    Accepted {
        accepted: Accepted,
        confirmed: bool,
        /// It was a create.
        create: bool,
        /// Not confirmed, and the reads it waits on keep failing (see `STALL_READS` in
        /// `scheduler.rs`).
        stalled: Option<Stall>,
    },
    /// The cloud refused it (never a busy gateway: the scheduler retries that). `create` tells
    /// whether it was a create.
    Failed {
        error: Arc<CloudError>,
        create: bool,
    },
}

/// Why a waiting change does not move: the reads it waits on keep failing (see
/// `STALL_READS` in `queue.rs`). The change keeps its place; its route says why.
#[derive(Clone, Debug)]
pub enum Stall {
    /// A queued change: the gateway's status, whether it is free for the next change.
    Queued(Arc<CloudError>),
    /// An accepted change: the gateway's status, whether it applied the change.
    Status(Arc<CloudError>),
    /// A whole entry list that shows the applied change (e.g. `ListInconsistent`).
    List(Arc<CloudError>),
}

impl Stall {
    /// The read's last error.
    pub(crate) fn error(&self) -> &CloudError {
        match self {
            Self::Queued(e) | Self::Status(e) | Self::List(e) => e,
        }
    }
}
