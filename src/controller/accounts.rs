//! The account each set of credentials acts for (STS `GetCallerIdentity`), asked once per
//! credentials and shared by every route that uses them: a key's account never changes, so the
//! answer is kept for the life of the process (a failure only for a moment).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::model::Scope;
use super::port::CloudPort;
use crate::sync::lock;
use alicloud_vpc_client::CloudError;

/// How long a failed lookup answers for its credentials before one is asked again: a dead STS
/// endpoint costs one call per interval, not one per reconcile.
const FAILURE_MEMO: Duration = Duration::from_secs(30);

/// What a lookup found.
#[derive(Clone, Debug)]
pub(crate) enum Account {
    Known(String),
    Failed(Arc<CloudError>),
    /// Still asking after the caller's wait.
    Pending,
}

enum Slot {
    Known(String),
    Failed {
        error: Arc<CloudError>,
        at: Instant,
    },
    /// A call is under way; the sender is dropped when it ends.
    Asking(watch::Receiver<()>),
}

/// The accounts of credentials, by the credentials' key (`CredentialsHandle::key`).
pub struct Accounts {
    cloud: Arc<dyn CloudPort>,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Accounts {
    pub fn new(cloud: Arc<dyn CloudPort>) -> Self {
        Self {
            cloud,
            slots: Arc::default(),
        }
    }

    /// The account of the scope's credentials: known, failed (for a moment), or asked now: the
    /// first caller asks (one call for every caller) and waits for its answer, the others wait
    /// for it at most `wait` (`None`: until it is answered). The call runs in the asker's own
    /// task, not a detached one, so a seeded simulation replays it exactly.
    pub(crate) async fn lookup(&self, scope: &Scope, wait: Option<Duration>) -> Account {
        let mut asking = match self.cached(scope) {
            Ok(found) => return found,
            Err(Asking::Mine(done)) => return self.ask(scope, done).await,
            Err(Asking::Theirs(rx)) => rx,
        };
        let answered = asking.changed();
        match wait {
            Some(w) => {
                let _ = tokio::time::timeout(w, answered).await;
            }
            None => {
                let _ = answered.await;
            }
        }
        match self.cached(scope) {
            Ok(found) => found,
            // The asker gave up before its answer (its reconcile ended): ask again.
            Err(Asking::Mine(done)) => self.ask(scope, done).await,
            Err(Asking::Theirs(_)) => Account::Pending,
        }
    }

    /// Asks the cloud and records the answer; `done` is dropped when it is recorded (or when
    /// this future is dropped before it), which wakes the other callers.
    async fn ask(&self, scope: &Scope, done: watch::Sender<()>) -> Account {
        let (slot, account) = match self.cloud.caller_account(scope).await {
            Ok(a) => (Slot::Known(a.clone()), Account::Known(a)),
            Err(e) => {
                let error = Arc::new(e);
                (
                    Slot::Failed {
                        error: error.clone(),
                        at: Instant::now(),
                    },
                    Account::Failed(error),
                )
            }
        };
        lock(&self.slots).insert(scope.credentials.key.clone(), slot);
        drop(done);
        account
    }

    /// The slot's answer, or who asks: this caller (a new call is due) or another one (the
    /// receiver of its call under way).
    fn cached(&self, scope: &Scope) -> Result<Account, Asking> {
        let key = &scope.credentials.key;
        let mut slots = lock(&self.slots);
        match slots.get(key) {
            Some(Slot::Known(a)) => return Ok(Account::Known(a.clone())),
            Some(Slot::Failed { error, at }) if at.elapsed() < FAILURE_MEMO => {
                return Ok(Account::Failed(error.clone()));
            }
            // Still asking, unless the asker ended without an answer.
            Some(Slot::Asking(rx)) if rx.has_changed().is_ok() => {
                return Err(Asking::Theirs(rx.clone()));
            }
            Some(Slot::Asking(_) | Slot::Failed { .. }) | None => {}
        }
        let (done, rx) = watch::channel(());
        slots.insert(key.clone(), Slot::Asking(rx));
        Err(Asking::Mine(done))
    }
}

/// Who asks the cloud for an account that is not known yet.
enum Asking {
    /// This caller: it holds the sender, dropped once the answer is recorded.
    Mine(watch::Sender<()>),
    /// Another caller, whose answer this receiver announces.
    Theirs(watch::Receiver<()>),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::controller::fixtures::scope_on;
    use crate::controller::model::{Accepted, Entry, GatewayFacts, Mutation};
    use crate::controller::port::CloudFuture;

    /// Answers `GetCallerIdentity` after 100 ms: `acct-<key>`, or a failure for key `bad`.
    #[derive(Default)]
    struct Sts {
        calls: AtomicUsize,
    }

    impl CloudPort for Sts {
        fn list_entries<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
            Box::pin(async { unreachable!("accounts never list") })
        }
        fn gateway<'a>(&'a self, _: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
            Box::pin(async { unreachable!("accounts never read gateways") })
        }
        fn mutate<'a>(&'a self, _: &'a Scope, _: &'a Mutation) -> CloudFuture<'a, Accepted> {
            Box::pin(async { unreachable!("accounts never mutate") })
        }
        fn caller_account<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, String> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                match scope.credentials.key.as_str() {
                    "bad" => Err(CloudError::Config("no".into())),
                    key => Ok(format!("acct-{key}")),
                }
            })
        }
    }

    fn scope(key: &str) -> Scope {
        scope_on("vpn-a", key)
    }

    fn known(a: &Account) -> Option<&str> {
        match a {
            Account::Known(s) => Some(s),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_call_per_credentials_shared_by_every_route() {
        let sts = Arc::new(Sts::default());
        let accounts = Arc::new(Accounts::new(sts.clone()));
        // Many routes of one key at once: one call, everyone gets its answer.
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let accounts = accounts.clone();
                tokio::spawn(async move { accounts.lookup(&scope("k1"), None).await })
            })
            .collect();
        for w in waiters {
            let got = w.await.expect("join");
            assert_eq!(known(&got), Some("acct-k1"));
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // Known from now on, without a call.
        let again = accounts.lookup(&scope("k1"), Some(Duration::ZERO)).await;
        assert_eq!(known(&again), Some("acct-k1"));
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // While one route asks, a route that does not wait long goes on without the answer,
        // which comes later.
        let asker = {
            let accounts = accounts.clone();
            tokio::spawn(async move { accounts.lookup(&scope("k2"), None).await })
        };
        tokio::task::yield_now().await;
        let hurried = accounts
            .lookup(&scope("k2"), Some(Duration::from_millis(10)))
            .await;
        assert!(matches!(hurried, Account::Pending), "{hurried:?}");
        assert_eq!(known(&asker.await.expect("join")), Some("acct-k2"));
        let later = accounts.lookup(&scope("k2"), Some(Duration::ZERO)).await;
        assert_eq!(known(&later), Some("acct-k2"));
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
        // A failure answers for a moment, then the account is asked again.
        let failed = accounts.lookup(&scope("bad"), None).await;
        assert!(matches!(failed, Account::Failed(_)), "{failed:?}");
        let memo = accounts.lookup(&scope("bad"), None).await;
        assert!(matches!(memo, Account::Failed(_)), "{memo:?}");
        assert_eq!(sts.calls.load(Ordering::SeqCst), 3);
        tokio::time::sleep(FAILURE_MEMO).await;
        let _ = accounts.lookup(&scope("bad"), None).await;
        assert_eq!(sts.calls.load(Ordering::SeqCst), 4);
    }
}
