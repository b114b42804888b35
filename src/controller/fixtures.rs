//! Values the controller's unit tests share: a gateway's scope, a route's owner and changes,
//! a listed entry, gateway facts, a cloud refusal. Route `i` is source `s{i}`, destination
//! 10.0.0.0/16 and next hop `vco-a` on gateway `vpn-a` in `cn-hangzhou`.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use super::job::Owner;
use super::model::{CredentialsHandle, Entry, GatewayFacts, Mutation, RouteId, Scope};
use alicloud_vpc_client::{
    ApiError, CloudError, Credentials, CredentialsProvider, ErrorClass, StaticCredentials,
};

/// Gateway `gateway` reached with the credentials named `key`.
pub(crate) fn scope_on(gateway: &str, key: &str) -> Scope {
    let provider: Arc<dyn CredentialsProvider> =
        Arc::new(StaticCredentials::new(Credentials::new("id", "secret")));
    Scope {
        region_id: "cn-hangzhou".into(),
        vpn_gateway_id: gateway.into(),
        credentials: CredentialsHandle {
            key: key.into(),
            account: String::new(),
            api_rate: None,
            provider,
        },
    }
}

/// Gateway `vpn-a` with the default credentials.
pub(crate) fn scope() -> Scope {
    scope_on("vpn-a", "default")
}

/// Route `i`'s object.
pub(crate) fn owner(i: usize) -> Owner {
    ObjectRef::new(&format!("r{i}")).within("ns")
}

/// The route of source `source`.
pub(crate) fn route_of(source: &str) -> RouteId {
    RouteId {
        route_source: source.into(),
        route_dest: "10.0.0.0/16".into(),
        next_hop: "vco-a".into(),
    }
}

/// Route `i`.
pub(crate) fn route(i: usize) -> RouteId {
    route_of(&format!("s{i}"))
}

/// A create of the route of `source` (weight 100, priority 10) with its own token.
pub(crate) fn create_of(source: &str) -> Mutation {
    Mutation::Create {
        route: route_of(source),
        weight: 100,
        priority: Some(10),
        publish_vpc: false,
        description: None,
        overlay_mode: None,
        client_token: format!("token-{source}"),
    }
}

/// Route `i`'s create.
pub(crate) fn create(i: usize) -> Mutation {
    create_of(&format!("s{i}"))
}

/// Route `i`'s publication to the VPC.
pub(crate) fn publish(i: usize) -> Mutation {
    Mutation::Publish {
        route: route(i),
        publish_vpc: true,
    }
}

/// The listed entry of the route of `source`, as its create made it.
pub(crate) fn entry_of(source: &str) -> Entry {
    Entry {
        route_source: source.into(),
        route_dest: "10.0.0.0/16".into(),
        next_hop: "vco-a".into(),
        weight: 100,
        priority: 10,
        state: "published".into(),
        create_time: 1,
        vpn_instance_id: "vpn-a".into(),
    }
}

/// Route `i`'s listed entry.
pub(crate) fn entry(i: usize) -> Entry {
    entry_of(&format!("s{i}"))
}

/// An active single-tunnel gateway; `priority`: it takes a `Priority`.
pub(crate) fn gateway(priority: bool) -> GatewayFacts {
    GatewayFacts {
        status: "active".into(),
        supports_priority: priority,
        dual_tunnel: false,
        spec: None,
    }
}

/// An active gateway with priority support.
pub(crate) fn facts() -> GatewayFacts {
    gateway(true)
}

/// A `normal` entry of `vpn-a` at priority 10, made at time 1.
pub(crate) fn normal_entry(source: &str, dest: &str, next_hop: &str, weight: i32) -> Entry {
    Entry {
        route_source: source.into(),
        route_dest: dest.into(),
        next_hop: next_hop.into(),
        weight,
        state: "normal".into(),
        ..entry_of(source)
    }
}

/// The cloud's refusal of `action` with `code`.
pub(crate) fn api_error(
    action: &'static str,
    http_status: u16,
    code: &str,
    class: ErrorClass,
    retry_after: Option<Duration>,
) -> CloudError {
    CloudError::Api(Box::new(ApiError {
        action,
        http_status,
        code: code.into(),
        message: format!("{code} (a scripted answer)"),
        request_id: None,
        host_id: None,
        recommend: None,
        retry_after,
        class,
    }))
}

/// Scripts built from parts: the parts one after the other.
pub(crate) trait Joined<T> {
    fn joined(self) -> Vec<T>;
}

impl<T, const N: usize> Joined<T> for [Vec<T>; N] {
    fn joined(self) -> Vec<T> {
        self.into_iter().flatten().collect()
    }
}
