//! The realistic world, feature by feature. Every seed runs every enabled feature; a feature is
//! off only while the controller still fails it (the run's summary says which are on). Chosen
//! with `SIM_WORLD`: `all`, `none`, or a list of names, each optionally with `+` or `-` to add
//! to or take from the default (e.g. `SIM_WORLD=+pages,-stale`).

use std::fmt;

/// What the simulated cloud and cluster do that a tidy world would not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorldConfig {
    /// `visibility: on_active`, and a list shows an applied change only a random delay after
    /// the gateway's status said `active`.
    pub lag: bool,
    /// Lists in pages of 50 (`PageNumber`/`PageSize`/`TotalCount`) over gateways holding
    /// more than 50 entries (most of them someone else's), in orders that change between
    /// calls, with entries added and removed between the page reads of one list.
    pub pages: bool,
    /// The watch delivers late: reconciles run on older copies, status is written from an old
    /// base (server-side apply of a status built on a stale copy), and watches relist.
    pub stale: bool,
    /// A request on the wire when its process dies still lands, often after the next process
    /// acted.
    pub late: bool,
    /// Two replicas: the leader loses the apiserver, the standby takes the Lease over once it
    /// expired, the old leader's cloud changes pass the fence (`src/fence.rs`).
    pub leader: bool,
    /// The cloud forgets a `ClientToken` some time after its first use (minutes here for the
    /// hours of the cloud), and half the crashes take the operator down for longer than that.
    pub expiry: bool,
    /// Two accounts: a key sees only its account's gateways (the others answer
    /// `InvalidVpnGatewayInstanceId.NotFound`).
    pub accounts: bool,
    /// A namespace is deleted: its Secrets go at once, its routes are deleted.
    pub namespaces: bool,
}

/// A feature: its name in `SIM_WORLD`, and where it lives in the struct.
struct Feature {
    name: &'static str,
    get: fn(&WorldConfig) -> bool,
    set: fn(&mut WorldConfig, bool),
}

/// A row of [`FEATURES`]: the field's name is the feature's.
macro_rules! feature {
    ($f:ident) => {
        Feature {
            name: stringify!($f),
            get: |w| w.$f,
            set: |w, on| w.$f = on,
        }
    };
}

const FEATURES: &[Feature] = &[
    feature!(lag),
    feature!(pages),
    feature!(stale),
    feature!(late),
    feature!(leader),
    feature!(expiry),
    feature!(accounts),
    feature!(namespaces),
];

impl WorldConfig {
    /// Every feature on, or every one off.
    const fn every(on: bool) -> Self {
        Self {
            lag: on,
            pages: on,
            stale: on,
            late: on,
            leader: on,
            expiry: on,
            accounts: on,
            namespaces: on,
        }
    }

    pub const NONE: Self = Self::every(false);
    pub const ALL: Self = Self::every(true);

    /// What `make sim` (and `make test`) runs: the cloud as it is (list pages raced by changes,
    /// lists lagging the gateway, two accounts, tokens forgotten in time), the cluster as it is
    /// (stale watches and status writes from old copies, namespaces deleted), and processes as
    /// they are (requests landing after their process died, two replicas handing the Lease
    /// over, outages longer than the cloud remembers a token): every feature.
    pub const DEFAULT: Self = Self::ALL;

    /// `SIM_WORLD` (see the module's doc), or the default.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("SIM_WORLD") {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v),
            _ => Ok(Self::DEFAULT),
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut w = Self::DEFAULT;
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        // A list without signs names the whole set; with signs it changes the default.
        if items.iter().all(|i| !i.starts_with(['+', '-'])) {
            w = Self::NONE;
        }
        for item in items {
            let (on, name) = match item.split_at(1) {
                ("+", rest) => (true, rest),
                ("-", rest) => (false, rest),
                _ => (true, item),
            };
            match name {
                "all" => w = if on { Self::ALL } else { Self::NONE },
                "none" => w = Self::NONE,
                _ => {
                    let f = FEATURES.iter().find(|f| f.name == name).ok_or_else(|| {
                        format!(
                            "SIM_WORLD: unknown feature {name:?} (known: all, none, {})",
                            FEATURES
                                .iter()
                                .map(|f| f.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })?;
                    (f.set)(&mut w, on);
                }
            }
        }
        Ok(w)
    }
}

impl fmt::Display for WorldConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = FEATURES
            .iter()
            .filter(|x| (x.get)(self))
            .map(|x| x.name)
            .collect();
        let off: Vec<&str> = FEATURES
            .iter()
            .filter(|x| !(x.get)(self))
            .map(|x| x.name)
            .collect();
        write!(
            f,
            "world features on: [{}], off: [{}]",
            on.join(", "),
            off.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sets_and_changes() {
        assert_eq!(WorldConfig::parse("all"), Ok(WorldConfig::ALL));
        assert_eq!(WorldConfig::parse("none"), Ok(WorldConfig::NONE));
        let only = WorldConfig::parse("pages,lag").expect("valid");
        assert!(only.pages && only.lag && !only.stale && !only.accounts);
        let less = WorldConfig::parse("-stale").expect("valid");
        assert_eq!(
            less,
            WorldConfig {
                stale: false,
                ..WorldConfig::DEFAULT
            }
        );
        assert!(WorldConfig::parse("pages,nonsense").is_err());
    }
}
