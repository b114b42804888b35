//! One reconcile of a route at a time. The controller's queue never runs two of the same
//! object at once; the prompt lane (prompt.rs) runs some reconciles beside it, so both take the
//! route's turn here first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

use crate::sync::lock;

/// The routes being reconciled (or waiting to be), by key. An entry lives while someone holds
/// or awaits its turn, so the map holds only routes in a reconcile.
#[derive(Default)]
pub struct Turns {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A route's turn: the other reconciles of it wait until this is dropped.
pub(crate) struct Turn<'a> {
    turns: &'a Turns,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits until no other reconcile of `key` runs.
    pub(crate) async fn take(&self, key: &str) -> Turn<'_> {
        let mutex = lock(&self.held).entry(key.to_owned()).or_default().clone();
        let guard = mutex.lock_owned().await;
        Turn {
            turns: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// Routes with a reconcile running or waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.held).len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut held = lock(&self.turns.held);
        // Only the map's own reference left: nobody holds or awaits this route's turn.
        if held
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_second_reconcile_of_a_route_waits_for_the_first_and_others_do_not() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("ns/a").await;
        let waiting = {
            let turns = turns.clone();
            tokio::spawn(async move {
                let _t = turns.take("ns/a").await;
            })
        };
        // Another route goes ahead meanwhile.
        drop(turns.take("ns/b").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "the second turn of ns/a waits");
        assert_eq!(turns.len(), 1, "ns/b left nothing behind");
        drop(first);
        waiting.await.expect("second turn");
        assert_eq!(turns.len(), 0, "no route in a reconcile: nothing kept");
    }
}
