//! When each route was last seen in sync, so a no-op event shortly after (a label or
//! annotation edit, a relist, an echo that triggers again because a reconcile decided on an
//! older copy: `echoes.rs`) costs no cloud read. The echo of its own write alone triggers no
//! reconcile at all (`echoes.rs`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Default)]
pub struct Verified {
    at: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl Verified {
    /// Records that the route's `generation` matched the cloud just now.
    pub(crate) fn mark(&self, key: &str, generation: Option<i64>) {
        self.at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (generation, Instant::now()));
    }

    /// Whether the route's `generation` was seen in sync less than `within` ago.
    pub(crate) fn recent(&self, key: &str, generation: Option<i64>, within: Duration) -> bool {
        self.at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|(g, at)| *g == generation && at.elapsed() < within)
    }

    pub(crate) fn forget(&self, key: &str) {
        self.at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_only_for_the_same_generation() {
        let v = Verified::default();
        v.mark("a", Some(1));
        assert!(v.recent("a", Some(1), Duration::from_secs(5)));
        assert!(!v.recent("a", Some(2), Duration::from_secs(5)));
        assert!(!v.recent("a", Some(1), Duration::ZERO));
        v.forget("a");
        assert!(!v.recent("a", Some(1), Duration::from_secs(5)));
    }
}
