//! A route's job in the gateway scheduler, as a reconcile sees it: what the decision reads of
//! the scheduler (`queue.rs` makes these views; `decide.rs` only reads them).

use std::sync::Arc;

use super::model::{Accepted, Mutation};
use crate::api::v1alpha1::VpnPbrRoute;
use alicloud_vpc_client::CloudError;

/// The object a job (or a read) belongs to: its route.
pub type Owner = kube::runtime::reflector::ObjectRef<VpnPbrRoute>;

/// The route's owner: name and namespace only (the uid and resourceVersion `from_obj` adds
/// would cost every copy in the scheduler's and the read cache's maps two strings).
pub(crate) fn owner_of(route: &VpnPbrRoute) -> Owner {
    use kube::ResourceExt;
    let owner = Owner::new(&route.name_any());
    match route.namespace() {
        Some(ns) => owner.within(&ns),
        None => owner,
    }
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
