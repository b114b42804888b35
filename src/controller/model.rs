//! The controller's view of the cloud: plain values, independent of the wire format.

use std::sync::Arc;

use alicloud_vpc_client::credentials::CredentialsProvider;
use alicloud_vpc_client::{Priority, VpnPbrRouteEntry};

/// Which gateway, in which region, reached with which credentials.
///
/// Routes that name different Secrets get different scopes, so one account's list never
/// answers for another's.
#[derive(Clone, Debug)]
pub struct Scope {
    pub region_id: String,
    pub vpn_gateway_id: String,
    pub credentials: CredentialsHandle,
}

/// Credentials a call is signed with, and a stable name for caching (never the secret).
#[derive(Clone, Debug)]
pub struct CredentialsHandle {
    /// `default`, or `secret:<namespace>/<name>#<accessKeyId>`.
    pub(crate) key: String,
    /// Whose rate limiter the calls wait at: the `VpnAccount`'s name, or empty
    /// (`alicloud_vpc_client::DEFAULT_ACCOUNT`) for the operator's identity and route Secrets.
    /// The cloud's flow control is per account, so each account has its own.
    pub(crate) account: String,
    /// The account's own API rate (`VpnAccount` `spec.apiRate`) for its limiter; `None`: the
    /// operator's `--api-rate`.
    pub(crate) api_rate: Option<f64>,
    pub provider: Arc<dyn CredentialsProvider>,
}

impl Scope {
    /// Whether `other` may stand for this scope: the same gateway, signed with the same
    /// credentials (the key names the access key or role) at the same account's limiter and rate.
    pub(crate) fn signs_like(&self, other: &Scope) -> bool {
        self.region_id == other.region_id
            && self.vpn_gateway_id == other.vpn_gateway_id
            && self.credentials.key == other.credentials.key
            && self.credentials.account == other.credentials.account
            && self.credentials.api_rate == other.credentials.api_rate
    }

    /// Key of the gateway queue and of the entry cache.
    pub(crate) fn key(&self) -> GatewayKey {
        GatewayKey {
            region_id: self.region_id.clone(),
            vpn_gateway_id: self.vpn_gateway_id.clone(),
            credentials: self.credentials.key.clone(),
        }
    }
}

/// Identifies one gateway as seen with one set of credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GatewayKey {
    pub region_id: String,
    pub vpn_gateway_id: String,
    pub credentials: String,
}

impl std::fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.region_id, self.vpn_gateway_id)
    }
}

/// An enum of the words the cloud writes in one field: each known word is a variant
/// (`Variant = "word"`), any other word is `Other`, kept as the cloud wrote it. The words are
/// listed once, so reading a word and writing it back always agree.
macro_rules! cloud_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$doc])* $variant,)+
            /// A word this operator does not know (shown as the cloud wrote it).
            Other(String),
        }

        impl $name {
            pub(crate) fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($word => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::from(s.as_str())
            }
        }
    };
}

cloud_words! {
    /// Whether an entry is published to the VPC route table, as the cloud lists it.
    pub enum EntryState {
        Published = "published",
        Normal = "normal",
    }
}

cloud_words! {
    /// A VPN gateway's status.
    pub enum GatewayStatus {
        Active = "active",
        /// Applying a change: it refuses others meanwhile.
        Updating = "updating",
        Deleting = "deleting",
    }
}

/// A policy-based route entry as the cloud lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
    pub weight: i32,
    pub priority: i32,
    pub state: EntryState,
    /// Epoch milliseconds.
    pub create_time: i64,
    pub vpn_instance_id: String,
}

impl Entry {
    /// An entry of a list of `gateway` (the cloud may leave the gateway out).
    pub fn listed(e: VpnPbrRouteEntry, gateway: &str) -> Self {
        let i = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            route_source: e.fields.route_source,
            route_dest: e.fields.route_dest,
            next_hop: e.fields.next_hop,
            weight: i(e.fields.weight),
            priority: e
                .fields
                .priority
                .map_or(crate::api::v1alpha1::DEFAULT_PRIORITY, i),
            state: e.state.into(),
            create_time: e.fields.create_time.unwrap_or_default(),
            vpn_instance_id: e
                .fields
                .vpn_instance_id
                .unwrap_or_else(|| gateway.to_owned()),
        }
    }

    pub(crate) fn published(&self) -> bool {
        self.state == EntryState::Published
    }

    pub(crate) fn matches(&self, source: &str, dest: &str, next_hop: &str) -> bool {
        self.route_source == source && self.route_dest == dest && self.next_hop == next_hop
    }
}

/// What the controller needs to know of a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayFacts {
    pub status: GatewayStatus,
    /// Whether the gateway takes a `Priority` for policy-based routes (`PbrPriority` tag).
    pub supports_priority: bool,
    /// A dual-tunnel gateway: weights do not take effect (listed as 100) and cannot change.
    pub dual_tunnel: bool,
    /// The gateway's specification (`Spec`, its bandwidth): gateways of one region and
    /// specification share what they learn of their update time (`estimate.rs`).
    pub spec: Option<String>,
}

/// The route a mutation acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteId {
    pub route_source: String,
    pub route_dest: String,
    pub next_hop: String,
}

/// One change to a gateway's route table. Modify and delete calls must repeat the entry's
/// current weight (and priority), as the API demands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    Create {
        route: RouteId,
        weight: i32,
        priority: Option<i32>,
        publish_vpc: bool,
        description: Option<String>,
        overlay_mode: Option<String>,
        client_token: String,
    },
    ModifyAttribute {
        route: RouteId,
        weight: i32,
        priority: i32,
        new_weight: Option<i32>,
        new_priority: Option<i32>,
    },
    ModifyWeight {
        route: RouteId,
        weight: i32,
        priority: Option<i32>,
        new_weight: i32,
    },
    ModifyPriority {
        route: RouteId,
        weight: i32,
        priority: i32,
        new_priority: i32,
    },
    Publish {
        route: RouteId,
        publish_vpc: bool,
    },
    Delete {
        route: RouteId,
        weight: i32,
        priority: Option<i32>,
    },
}

impl Mutation {
    pub fn route(&self) -> &RouteId {
        match self {
            Self::Create { route, .. }
            | Self::ModifyAttribute { route, .. }
            | Self::ModifyWeight { route, .. }
            | Self::ModifyPriority { route, .. }
            | Self::Publish { route, .. }
            | Self::Delete { route, .. } => route,
        }
    }

    /// The cloud action, for logs and events.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Create { .. } => "CreateVpnPbrRouteEntry",
            Self::ModifyAttribute { .. } => "ModifyVpnPbrRouteEntryAttribute",
            Self::ModifyWeight { .. } => "ModifyVpnPbrRouteEntryWeight",
            Self::ModifyPriority { .. } => "ModifyVpnPbrRouteEntryPriority",
            Self::Publish { .. } => "PublishVpnRouteEntry",
            Self::Delete { .. } => "DeleteVpnPbrRouteEntry",
        }
    }

    /// Whether `entries` (a list read from the cloud) show this change applied. `created` is
    /// the entry a create's answer named: only that entry shows it (a list that lags may still
    /// show an older entry under the same key, deleted since).
    pub(crate) fn reflected_in(&self, entries: &[Entry], created: Option<&Entry>) -> bool {
        let r = self.route();
        let found = entries
            .iter()
            .find(|e| e.matches(&r.route_source, &r.route_dest, &r.next_hop));
        match (self, found) {
            (Self::Delete { .. }, found) => found.is_none(),
            (_, None) => false,
            (Self::Create { .. }, Some(e)) => {
                created.is_none_or(|c| c.create_time == 0 || c.create_time == e.create_time)
            }
            (
                Self::ModifyAttribute {
                    new_weight,
                    new_priority,
                    ..
                },
                Some(e),
            ) => {
                new_weight.is_none_or(|w| e.weight == w)
                    && new_priority.is_none_or(|p| e.priority == p)
            }
            (Self::ModifyWeight { new_weight, .. }, Some(e)) => e.weight == *new_weight,
            (Self::ModifyPriority { new_priority, .. }, Some(e)) => e.priority == *new_priority,
            (Self::Publish { publish_vpc, .. }, Some(e)) => e.published() == *publish_vpc,
        }
    }

    /// Applies an accepted mutation to a cached entry list, so readers see it without a new
    /// list call. `created` is the entry a create returned.
    pub(crate) fn apply_to(&self, entries: &mut Vec<Entry>, created: Option<&Entry>) {
        let r = self.route();
        let pos = entries
            .iter()
            .position(|e| e.matches(&r.route_source, &r.route_dest, &r.next_hop));
        match (self, pos) {
            (Self::Create { .. }, None) => entries.extend(created.cloned()),
            (Self::Delete { .. }, Some(i)) => {
                entries.remove(i);
            }
            (
                Self::ModifyAttribute {
                    new_weight,
                    new_priority,
                    ..
                },
                Some(i),
            ) => {
                if let Some(w) = new_weight {
                    entries[i].weight = *w;
                }
                if let Some(p) = new_priority {
                    entries[i].priority = *p;
                }
            }
            (Self::ModifyWeight { new_weight, .. }, Some(i)) => entries[i].weight = *new_weight,
            (Self::ModifyPriority { new_priority, .. }, Some(i)) => {
                entries[i].priority = *new_priority;
            }
            (Self::Publish { publish_vpc, .. }, Some(i)) => {
                entries[i].state = if *publish_vpc {
                    EntryState::Published
                } else {
                    EntryState::Normal
                };
            }
            _ => {}
        }
    }
}

/// What an accepted mutation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub request_id: Option<String>,
    /// The new entry, for creates.
    pub entry: Option<Entry>,
}

/// How fresh a read of the gateway must be: the read a decision needs before it can go on
/// (`decide::Next::Read`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Not from the cache: a create was refused as existing, so the cached list is stale.
    Now,
    /// A recent list (spec change, resync, a new object).
    Recent,
    /// Our own change was just accepted and applied to the cached list: it may be older.
    Cached,
    /// The first create of an object that never held an entry: any proven list of the gateway
    /// will do, however old (our own changes are applied to it). The plan only needs to know
    /// that the entry is absent, and a stale absence costs nothing: the cloud refuses a create
    /// of an entry that exists (`AlreadyExists`, after which the route reads `Now` and adopts or
    /// refuses it) and answers a repeat of the token as it answered it first. Routes of a
    /// gateway that arrive minutes apart then share one list instead of one each.
    Create,
    /// A recent list, only to re-check a route already in sync at this generation (the
    /// periodic drift check, or a restart): nothing waits on it, so its calls go after every
    /// other call when the account's API rate binds (`Priority::Background`).
    Recheck,
}

impl Freshness {
    /// The class of the cloud calls this read makes (`alicloud_vpc_client::Priority`). On a
    /// `quiet` gateway (no change holds it) a change planned from this read is lone, and the
    /// read goes at that change's class: a burst on other gateways does not hold it up.
    pub(crate) fn priority(self, quiet: bool) -> Priority {
        match self {
            Self::Recheck => Priority::Background,
            Self::Now | Self::Recent | Self::Cached | Self::Create if quiet => Priority::Prompt,
            Self::Now | Self::Recent | Self::Cached | Self::Create => Priority::Progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_for_a_change_on_a_quiet_gateway_goes_at_the_lone_class() {
        use Freshness::*;
        // (freshness, quiet) -> class
        let table = [
            (Now, true, Priority::Prompt),
            (Recent, true, Priority::Prompt),
            (Cached, true, Priority::Prompt),
            (Create, true, Priority::Prompt),
            (Recheck, true, Priority::Background),
            (Now, false, Priority::Progress),
            (Recent, false, Priority::Progress),
            (Cached, false, Priority::Progress),
            (Create, false, Priority::Progress),
            (Recheck, false, Priority::Background),
        ];
        for (fresh, quiet, want) in table {
            assert_eq!(fresh.priority(quiet), want, "{fresh:?} quiet={quiet}");
        }
    }

    #[test]
    fn cloud_words_read_back_as_the_cloud_wrote_them() {
        for word in ["published", "normal", "pending"] {
            assert_eq!(EntryState::from(word).as_str(), word);
        }
        for word in ["active", "updating", "deleting", "creating"] {
            assert_eq!(GatewayStatus::from(word.to_owned()).as_str(), word);
        }
        assert_eq!(EntryState::from("published"), EntryState::Published);
        assert_eq!(GatewayStatus::from("updating"), GatewayStatus::Updating);
        assert_eq!(
            GatewayStatus::from("creating"),
            GatewayStatus::Other("creating".into())
        );
    }
}
