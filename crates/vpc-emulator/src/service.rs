//! The emulator's shared state: the world, keys, nonces, faults and counters behind locks, and
//! the state file. The HTTP layers (`server`, `admin`) both act on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::auth::{KeyEntry, KeyStore, NonceCache};
use crate::clock::Clock;
use crate::config::{Config, DEFAULT_ACCOUNT_ID};
use crate::counters::Counters;
use crate::error::EmulatorError;
use crate::faults::FaultEngine;
use crate::idempotency::TokenStore;
use crate::ops::EmuState;
use crate::world::{Behaviour, World};

/// The running emulator's shared state.
pub struct Emulator {
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) state: Mutex<EmuState>,
    pub(crate) keys: RwLock<KeyStore>,
    pub(crate) nonces: Mutex<NonceCache>,
    pub(crate) faults: Mutex<FaultEngine>,
    pub(crate) counters: Mutex<Counters>,
    /// Bumped on every change of the world, so the state file is written only when needed.
    pub(crate) generation: AtomicU64,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the state is
/// plain data and stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Emulator {
    /// Builds the emulator; `world` overrides the config's gateways (from a state file).
    pub fn new(config: Config, clock: Arc<dyn Clock>, world: Option<World>) -> Self {
        let now = clock.now_ms();
        let mut world = world.unwrap_or_else(|| World::from_config(&config, now));
        // A restored state file keeps its gateways; settings always come from the config.
        world.task_conflict_window_ms = config.settings.task_conflict_window_ms;
        world.behaviour = Behaviour::from_settings(&config.settings);
        let window_ms = config.settings.timestamp_window_secs * 1000;
        Self {
            keys: RwLock::new(config_keys(&config)),
            nonces: Mutex::new(NonceCache::new(
                config.settings.nonce_cache_max,
                2 * window_ms,
            )),
            faults: Mutex::new(FaultEngine::new(
                config.faults.clone(),
                config.account_rate_limits(),
            )),
            counters: Mutex::new(Counters::default()),
            state: Mutex::new(EmuState {
                world,
                tokens: TokenStore::with_ttl(config.settings.client_token_ttl_ms),
            }),
            generation: AtomicU64::new(0),
            clock,
            config,
        }
    }

    /// Back to the config's initial state: world, keys, faults, counters, tokens, nonces.
    pub fn reset(&self) {
        let now = self.clock.now_ms();
        {
            let mut st = lock(&self.state);
            st.world = World::from_config(&self.config, now);
            st.tokens.clear();
        }
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config_keys(&self.config);
        lock(&self.nonces).clear();
        lock(&self.faults).replace(self.config.faults.clone());
        lock(&self.counters).clear();
        self.touch();
    }

    pub(crate) fn touch(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Writes the world to `path` (atomically, via a temporary file).
    pub fn save_state(&self, path: &str) -> Result<(), EmulatorError> {
        let json = {
            let st = lock(&self.state);
            serde_json::to_vec_pretty(&st.world).map_err(|source| EmulatorError::StateFile {
                path: path.to_owned(),
                source,
            })?
        };
        let tmp = format!("{path}.tmp");
        let write_err = |source| EmulatorError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::write(&tmp, json).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Reads a world saved by [`Emulator::save_state`]; `None` if the file does not exist.
    pub fn load_state(path: &str) -> Result<Option<World>, EmulatorError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|source| {
                EmulatorError::StateFile {
                    path: path.to_owned(),
                    source,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EmulatorError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

fn config_keys(config: &Config) -> KeyStore {
    let mut keys = KeyStore::default();
    for k in &config.access_keys {
        keys.insert(
            k.id.clone(),
            KeyEntry {
                allowed_actions: k.allowed_actions.clone(),
                forbidden_code: k.forbidden_code,
                account_id: k
                    .account_id
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned()),
                ..KeyEntry::new(k.secret.clone(), k.security_token.clone(), None, &k.id)
            },
        );
    }
    keys
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ops;
    use crate::params::Params;

    const CONFIG: &str = "regions: [r]\nvpn_gateways:\n  - {id: g, region: r, vpc_id: v, visibility: on_active, dual_tunnel: true}\nvpn_connections:\n  - {id: vco-1, gateway_id: g}\n";

    #[test]
    fn state_file_keeps_pending_changes_and_reads_older_files() {
        let config = Config::parse(CONFIG, "t").expect("config");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let emu = Emulator::new(config.clone(), clock.clone(), None);
        let params: BTreeMap<String, String> = [
            ("RegionId", "r"),
            ("VpnGatewayId", "g"),
            ("RouteSource", "192.168.0.0/24"),
            ("RouteDest", "10.0.0.0/24"),
            ("NextHop", "vco-1"),
            ("Weight", "0"),
            ("PublishVpc", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let created = ops::run(
            "CreateVpnPbrRouteEntry",
            &Params::new(params),
            &mut lock(&emu.state),
            clock.now_ms(),
        );
        assert!(created.is_ok(), "{created:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let path = path.to_str().expect("utf-8 path");
        emu.save_state(path).expect("save");
        let restored = Emulator::load_state(path).expect("load").expect("a world");
        assert_eq!(restored, lock(&emu.state).world);
        assert_eq!(restored.gateways["g"].pending.len(), 1);
        let again = Emulator::new(config, clock.clone(), Some(restored));
        clock.advance(3_000);
        lock(&again.state).world.settle(clock.now_ms());
        assert_eq!(lock(&again.state).world.gateways["g"].entries.len(), 1);

        // A state file written before these fields existed still loads.
        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        for key in ["behaviour", "list_calls"] {
            old.as_object_mut().expect("world").remove(key);
        }
        let gw = old["gateways"]["g"].as_object_mut().expect("gateway");
        for key in [
            "pending",
            "visibility",
            "shuffle_lists",
            "dual_tunnel",
            "disaster_recovery_internet_ip",
            "disaster_recovery_vswitch_id",
            "status_until_ms",
            "lagging",
            "list_lag_ms",
        ] {
            gw.remove(key);
        }
        std::fs::write(path, old.to_string()).expect("write");
        let older = Emulator::load_state(path).expect("load").expect("a world");
        assert!(older.gateways["g"].pending.is_empty() && !older.gateways["g"].traits.dual_tunnel);
    }
}
