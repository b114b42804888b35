//! `ObjectPort` over the in-memory object store: status writes, finalizers, events and Secrets
//! as the apiserver treats them, with injected conflicts and transient errors.

use std::sync::Arc;

use kube::ResourceExt;
use rand::Rng;
use vpn_pbr_operator::api::v1alpha1::{FINALIZER, VpnPbrRoute, VpnPbrRouteStatus};
use vpn_pbr_operator::{EventFuture, EventNote, ObjectFuture, ObjectPort, SecretObject};

use super::world::{EntryKey, Key, Sim, State, consents, deleting, uid};

pub struct SimObjects {
    pub sim: Arc<Sim>,
    pub epoch: u64,
}

fn api(code: u16, reason: &str, message: &str) -> kube::Error {
    kube::Error::Api(Box::new(
        kube::core::Status::failure(message, reason).with_code(code),
    ))
}

fn key(route: &VpnPbrRoute) -> Key {
    (route.namespace().unwrap_or_default(), route.name_any())
}

impl SimObjects {
    /// The store for this call, or the error it fails with: the process is gone, or an
    /// injected fault (`conflict` is the chance of a 409 when faults are on).
    fn enter(
        &self,
        op: &str,
        conflict: f64,
        transient: f64,
    ) -> Result<std::sync::MutexGuard<'_, State>, kube::Error> {
        let mut st = self.sim.lock();
        if !st.live.contains(&self.epoch) {
            return Err(api(
                503,
                "ServiceUnavailable",
                "the operator process is gone",
            ));
        }
        if st.cut_off.contains(&self.epoch) {
            return Err(api(504, "Timeout", "the apiserver is unreachable"));
        }
        if st.faults {
            let roll: f64 = st.rng.random();
            if roll < conflict {
                st.stats.status_conflicts += 1;
                return Err(api(409, "Conflict", &format!("injected conflict on {op}")));
            }
            if roll < conflict + transient {
                return Err(api(
                    500,
                    "InternalError",
                    &format!("injected error on {op}"),
                ));
            }
        }
        Ok(st)
    }

    fn t(&self) -> f64 {
        self.sim.elapsed().as_secs_f64()
    }

    /// [`Self::enter`] for a write of record (status, finalizers). The fence's invariant for
    /// records (`src/fence.rs`): with leader election only the Lease holder's process writes
    /// them; a process cut off from the apiserver may not know yet that it lost the Lease, and
    /// what it decided before must not overwrite what the new leader recorded since.
    fn enter_to_write(
        &self,
        op: &str,
        route: &VpnPbrRoute,
        conflict: f64,
        transient: f64,
    ) -> Result<std::sync::MutexGuard<'_, State>, kube::Error> {
        let t = self.t();
        let mut st = self.enter(op, conflict, transient)?;
        let replica = st.replica_of.get(&self.epoch).copied();
        if st.world.leader && st.lease.holder != replica {
            st.violation(
                t,
                format!(
                    "fence: process #{} ({op} of {}) wrote a record while its replica does not \
                     hold the Lease",
                    self.epoch,
                    route.name_any()
                ),
            );
        }
        Ok(st)
    }
}

impl ObjectPort for SimObjects {
    fn get(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<VpnPbrRoute>> {
        let key = (namespace.to_owned(), name.to_owned());
        Box::pin(async move {
            let st = self.enter("get", 0.0, 0.02)?;
            Ok(st.store.get(&key).map(|o| o.route.clone()))
        })
    }

    fn write_status<'a>(
        &'a self,
        route: &'a VpnPbrRoute,
        status: &'a VpnPbrRouteStatus,
    ) -> ObjectFuture<'a, Option<String>> {
        Box::pin(async move {
            let t = self.t();
            let mut st = self.enter_to_write("write status", route, 0.08, 0.02)?;
            let k = key(route);
            // A server-side apply by name: an object deleted meanwhile is not an error, and a
            // new object of the same name gets the write.
            let Some(obj) = st.store.get(&k) else {
                return Ok(None);
            };
            // The apply carries the copy's resourceVersion as a precondition (objects.rs): a
            // status built on an older copy is refused (and counted: the stale write happened).
            if route.metadata.resource_version.is_some()
                && route.metadata.resource_version != obj.route.metadata.resource_version
            {
                st.stats.stale_writes += 1;
                return Err(api(409, "Conflict", "the object has been modified"));
            }
            let mut next = obj.route.clone();
            // Server-side apply of a whole status: built on an older copy than the stored
            // one, it replaces what was written since.
            if next.metadata.resource_version != route.metadata.resource_version {
                st.stats.stale_writes += 1;
            }
            if let Some(token) = &status.client_token {
                let owner = uid(&next);
                st.token_owner.insert(token.clone(), owner);
                st.token_written
                    .entry(token.clone())
                    .or_insert_with(tokio::time::Instant::now);
            }
            let adopts = status.adopted == Some(true)
                && next.status.as_ref().and_then(|s| s.adopted) != Some(true);
            if adopts {
                // The adoption is recorded now: the entry is the object's from here on, if it
                // said so (the adopt annotation).
                let entry = EntryKey::of(&next.spec);
                if consents(&next) {
                    if st.known_entry(&entry).is_some() {
                        st.owners.insert(entry.clone(), uid(&next));
                        st.owned.insert((uid(&next), entry));
                    }
                } else {
                    st.violation(
                        t,
                        format!(
                            "invariant 1: {} adopted {entry} without the adopt annotation",
                            k.1
                        ),
                    );
                }
            }
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| format!("{:?}/{}", c.status, c.reason))
                .unwrap_or_default();
            st.trace_at(
                t,
                &format!(
                    "status {}: ready={ready} gen={:?} token={}",
                    k.1,
                    status.observed_generation,
                    status.client_token.is_some()
                ),
            );
            next.status = Some(status.clone());
            st.put(&k, next);
            Ok(st.resource_version(&k))
        })
    }

    fn add_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut st = self.enter_to_write("add finalizer", route, 0.0, 0.03)?;
            let k = key(route);
            let Some(obj) = st.store.get(&k) else {
                return Err(api(404, "NotFound", "no such object"));
            };
            let mut next = obj.route.clone();
            if deleting(&next) {
                return Err(api(
                    422,
                    "Invalid",
                    "no new finalizers can be added if the object is being deleted",
                ));
            }
            // The JSON patch of objects.rs: `test` the observed resourceVersion (any change since
            // fails it), then `add` of the whole list when the observed object had none, else
            // `test` the observed list and append.
            if route.metadata.resource_version != next.metadata.resource_version {
                return Err(api(422, "Invalid", "test operation failed"));
            }
            match &route.metadata.finalizers {
                None => next.metadata.finalizers = Some(vec![FINALIZER.to_owned()]),
                Some(seen) => {
                    if next.finalizers() != seen.as_slice() {
                        return Err(api(422, "Invalid", "test operation failed"));
                    }
                    next.metadata
                        .finalizers
                        .get_or_insert_with(Vec::new)
                        .push(FINALIZER.to_owned());
                }
            }
            st.put(&k, next);
            Ok(st.resource_version(&k))
        })
    }

    fn remove_finalizer<'a>(&'a self, route: &'a VpnPbrRoute) -> ObjectFuture<'a, ()> {
        Box::pin(async move {
            let t = self.t();
            let mut st = self.enter_to_write("remove finalizer", route, 0.0, 0.03)?;
            let Some(i) = route.finalizers().iter().position(|f| f == FINALIZER) else {
                return Ok(());
            };
            let k = key(route);
            let Some(obj) = st.store.get(&k) else {
                return Ok(());
            };
            let mut next = obj.route.clone();
            if next.finalizers().get(i).map(String::as_str) != Some(FINALIZER) {
                return Err(api(422, "Invalid", "test operation failed"));
            }
            if let Some(f) = next.metadata.finalizers.as_mut() {
                f.remove(i);
            }
            if deleting(&next) && next.finalizers().is_empty() {
                st.trace_at(t, &format!("object {} gone", k.1));
                st.remove(&k);
            } else {
                st.put(&k, next);
            }
            Ok(())
        })
    }

    fn publish<'a>(&'a self, route: &'a VpnPbrRoute, event: &'a EventNote) -> EventFuture<'a> {
        Box::pin(async move {
            let t = self.t();
            let mut st = self.sim.lock();
            if st.live.contains(&self.epoch) && !st.cut_off.contains(&self.epoch) {
                let line = format!("{}: {}", event.reason, event.note);
                st.events.entry(uid(route)).or_default().push(line);
                st.trace_at(
                    t,
                    &format!(
                        "event {} {}{}: {}",
                        route.name_any(),
                        if event.warning { "Warning " } else { "" },
                        event.reason,
                        event.note
                    ),
                );
            }
        })
    }

    fn secret(&self, namespace: &str, name: &str) -> ObjectFuture<'_, Option<SecretObject>> {
        let key = (namespace.to_owned(), name.to_owned());
        Box::pin(async move {
            let st = self.enter("read secret", 0.0, 0.02)?;
            // The world's Secrets are all made for routes, so all carry the credentials label.
            Ok(st.secrets.get(&key).cloned().map(SecretObject::labelled))
        })
    }

    fn older_claim(&self, route: &VpnPbrRoute) -> Option<String> {
        self.sim.lock().older_claim_seen(self.epoch, route)
    }

    fn publish_conflict(&self, route: &VpnPbrRoute) -> Option<String> {
        self.sim.lock().publish_conflict_seen(self.epoch, route)
    }

    fn publish_sharers(&self, route: &VpnPbrRoute) -> Vec<Arc<VpnPbrRoute>> {
        self.sim.lock().publish_sharers_seen(self.epoch, route)
    }
}
