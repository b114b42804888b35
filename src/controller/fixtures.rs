//! Values the controller's unit tests share: a gateway's scope, a route's owner and changes,
//! a listed entry, gateway facts, a cloud refusal. Route `i` is source `s{i}`, destination
//! 10.0.0.0/16 and next hop `vco-a` on gateway `vpn-a` in `cn-hangzhou`.

use std::sync::Arc;
use std::time::Duration;

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
    Owner::new(&format!("r{i}"), Some("ns"))
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

/// The unit tests' allocator: the system's, with the blocks and bytes each thread holds and
/// the allocations it made counted, so a test can assert what a structure keeps on the heap
/// and what a call allocates on the way ([`retained`]).
struct Counting;

thread_local! {
    /// Live blocks and bytes allocated by this thread (a block freed by another thread is
    /// counted there).
    static LIVE: std::cell::Cell<(i64, i64)> = const { std::cell::Cell::new((0, 0)) };
    /// Allocations (and reallocations) made by this thread.
    static MADE: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

fn count(blocks: i64, bytes: usize, sign: i64) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX) * sign;
    // `try_with`: never panic in the allocator, even while the thread's locals are torn down.
    let _ = LIVE.try_with(|c| {
        let (n, b) = c.get();
        c.set((n + blocks, b + bytes));
    });
    if sign > 0 {
        let _ = MADE.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is passed on unchanged to the system allocator; counting allocates
// nothing (a const-initialised thread local without a destructor).
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            count(1, layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(1, layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        count(-1, layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new) };
        if !p.is_null() {
            count(0, layout.size(), -1);
            count(0, new, 1);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What a structure keeps on the heap: blocks and bytes allocated and not freed; and how many
/// allocations were made on the way (freed or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heap {
    pub blocks: i64,
    pub bytes: i64,
    pub allocations: i64,
}

/// Runs `f` on this thread and tells what it left allocated (what its result, or anything it
/// changed, keeps on the heap).
pub(crate) fn retained<R>(f: impl FnOnce() -> R) -> (R, Heap) {
    let before = LIVE.with(std::cell::Cell::get);
    let made = MADE.with(std::cell::Cell::get);
    let out = f();
    let after = LIVE.with(std::cell::Cell::get);
    let heap = Heap {
        blocks: after.0 - before.0,
        bytes: after.1 - before.1,
        allocations: MADE.with(std::cell::Cell::get) - made,
    };
    (out, heap)
}
