//! An event to publish: what a decision asks the Kubernetes side to record about a route
//! (`decide.rs` makes them, `ObjectPort::publish` in `objects.rs` publishes them).

use super::reason::Reason;

/// An event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: Reason,
    pub(crate) action: &'static str,
    pub note: String,
}
