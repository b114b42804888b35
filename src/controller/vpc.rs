//! [`CloudPort`] over the real VPC client: one cheap [`VpcClient`] per region and credentials.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::model::{Accepted, Entry, EntryState, GatewayFacts, Mutation, Scope};
use super::port::{CloudFuture, CloudPort};
use crate::api::v1alpha1::DEFAULT_PRIORITY;
use alicloud_vpc_client::{
    CloudError, CreateVpnPbrRouteEntryRequest, CreateVpnPbrRouteEntryResponse,
    DeleteVpnPbrRouteEntryRequest, DescribeVpnGatewayRequest, EntryKey,
    ModifyVpnPbrRouteEntryAttributeRequest, ModifyVpnPbrRouteEntryPriorityRequest,
    ModifyVpnPbrRouteEntryWeightRequest, Priority, PublishVpnRouteEntryRequest, ROUTE_TYPE_PBR,
    VpcClient, VpcClientFactory,
};
use serde::Serialize;

pub(crate) struct VpcPort {
    factory: VpcClientFactory,
    /// By region, credentials key and account (whose rate limiter).
    clients: Mutex<HashMap<(String, String, String), VpcClient>>,
}

impl VpcPort {
    pub(crate) fn new(factory: VpcClientFactory) -> Self {
        Self {
            factory,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, scope: &Scope) -> Result<VpcClient, CloudError> {
        // Before every call, so that a changed `apiRate` reaches the clients made already.
        self.factory
            .set_account_rate(&scope.credentials.account, scope.credentials.api_rate);
        let key = (
            scope.region_id.clone(),
            scope.credentials.key.clone(),
            scope.credentials.account.clone(),
        );
        let mut map = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let c = self.factory.client_for_account(
            &scope.credentials.account,
            &scope.region_id,
            scope.credentials.provider.clone(),
        )?;
        map.insert(key, c.clone());
        Ok(c)
    }
}

fn u(v: i32) -> u32 {
    u32::try_from(v).unwrap_or_default()
}

fn i(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl CloudPort for VpcPort {
    fn rate_has_room(&self, account: &str) -> bool {
        let limiter = self.factory.account_rate_limiter(account);
        limiter.waiting_capped(Priority::Prompt, Priority::Progress, 2) <= 1
    }

    fn list_entries<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, Vec<Entry>> {
        Box::pin(async move {
            let list = self
                .client(scope)?
                .list_vpn_pbr_route_entries(&scope.vpn_gateway_id)
                .await?;
            Ok(list
                .entries
                .into_iter()
                .map(|e| Entry::listed(e, &scope.vpn_gateway_id))
                .collect())
        })
    }

    fn gateway<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, GatewayFacts> {
        Box::pin(async move {
            let gw = self
                .client(scope)?
                .describe_vpn_gateway(&DescribeVpnGatewayRequest {
                    vpn_gateway_id: scope.vpn_gateway_id.clone(),
                    ..Default::default()
                })
                .await?;
            Ok(GatewayFacts {
                supports_priority: gw.supports_pbr_priority(),
                dual_tunnel: gw.is_dual_tunnel(),
                spec: gw.spec.filter(|s| !s.is_empty()),
                status: gw.status.into(),
            })
        })
    }

    fn caller_account<'a>(&'a self, scope: &'a Scope) -> CloudFuture<'a, String> {
        Box::pin(async move {
            let who = self.client(scope)?.get_caller_identity().await?;
            Ok(who.account_id)
        })
    }

    fn mutate<'a>(&'a self, scope: &'a Scope, mutation: &'a Mutation) -> CloudFuture<'a, Accepted> {
        Box::pin(async move {
            let client = self.client(scope)?;
            let request_id = match MutationRequest::of(&scope.vpn_gateway_id, mutation) {
                MutationRequest::Create(req) => {
                    let resp = client.create_vpn_pbr_route_entry(&req).await?;
                    return Ok(Accepted {
                        request_id: Some(resp.request_id.clone()),
                        entry: Some(created(resp, &req)),
                    });
                }
                MutationRequest::ModifyAttribute(req) => {
                    client.modify_vpn_pbr_route_entry_attribute(&req).await
                }
                MutationRequest::ModifyWeight(req) => {
                    client.modify_vpn_pbr_route_entry_weight(&req).await
                }
                MutationRequest::ModifyPriority(req) => {
                    client.modify_vpn_pbr_route_entry_priority(&req).await
                }
                MutationRequest::Publish(req) => client.publish_vpn_route_entry(&req).await,
                MutationRequest::Delete(req) => client.delete_vpn_pbr_route_entry(&req).await,
            }?
            .request_id;
            Ok(Accepted {
                request_id: Some(request_id),
                entry: None,
            })
        })
    }
}

/// The entry a create made, as its answer describes it (what the answer leaves out is what
/// the request asked for).
fn created(resp: CreateVpnPbrRouteEntryResponse, req: &CreateVpnPbrRouteEntryRequest) -> Entry {
    let requested_state = if req.publish_vpc {
        EntryState::Published
    } else {
        EntryState::Normal
    };
    Entry {
        route_source: resp.fields.route_source,
        route_dest: resp.fields.route_dest,
        next_hop: resp.fields.next_hop,
        weight: i(resp.fields.weight),
        priority: resp
            .fields
            .priority
            .map_or(req.priority.map_or(DEFAULT_PRIORITY, i), i),
        state: resp.state.map_or(requested_state, EntryState::from),
        create_time: resp.fields.create_time.unwrap_or_default(),
        vpn_instance_id: resp
            .fields
            .vpn_instance_id
            .unwrap_or_else(|| req.entry.vpn_gateway_id.clone()),
    }
}

/// The client's request of a mutation: what [`VpcPort`] sends, what `plan` shows and checks
/// with DryRun (`src/cli/plan/`), and what the simulation's cloud is sent
/// (`tests/simulation/cloud.rs`). Serialized, it is the request's own fields (the client adds
/// `RegionId`, and a `ClientToken` where there is none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MutationRequest {
    Create(CreateVpnPbrRouteEntryRequest),
    ModifyAttribute(ModifyVpnPbrRouteEntryAttributeRequest),
    ModifyWeight(ModifyVpnPbrRouteEntryWeightRequest),
    ModifyPriority(ModifyVpnPbrRouteEntryPriorityRequest),
    Publish(PublishVpnRouteEntryRequest),
    Delete(DeleteVpnPbrRouteEntryRequest),
}

/// The match of [`MutationRequest::of`]: each listed request takes the entry's key and the
/// mutation's fields of the same names (see [`ApiValue`]), the rest of it left default; the
/// arms after `;` are written out.
macro_rules! mutation_requests {
    ($mutation:expr, $entry:ident;
     $($variant:ident($request:ident) { $($field:ident),+ }),+;
     $($other:tt)*) => {
        match $mutation {
            $(Mutation::$variant { $($field,)+ .. } => Self::$variant($request {
                entry: $entry,
                $($field: $field.api(),)+
                ..Default::default()
            }),)+
            $($other)*
        }
    };
}

impl MutationRequest {
    /// The request that makes `mutation` on `gateway` (a create carries its token).
    pub fn of(gateway: &str, mutation: &Mutation) -> Self {
        let r = mutation.route();
        let entry = EntryKey {
            vpn_gateway_id: gateway.to_owned(),
            route_source: r.route_source.clone(),
            route_dest: r.route_dest.clone(),
            next_hop: r.next_hop.clone(),
        };
        mutation_requests!(mutation, entry;
            Create(CreateVpnPbrRouteEntryRequest) {
                weight, priority, publish_vpc, description, overlay_mode, client_token
            },
            ModifyAttribute(ModifyVpnPbrRouteEntryAttributeRequest) {
                weight, priority, new_weight, new_priority
            },
            ModifyWeight(ModifyVpnPbrRouteEntryWeightRequest) { weight, priority, new_weight },
            ModifyPriority(ModifyVpnPbrRouteEntryPriorityRequest) {
                weight, priority, new_priority
            },
            Delete(DeleteVpnPbrRouteEntryRequest) { weight, priority };
            // The one request without the entry's key: a publish names no source.
            Mutation::Publish { publish_vpc, .. } => Self::Publish(PublishVpnRouteEntryRequest {
                vpn_gateway_id: entry.vpn_gateway_id,
                route_dest: entry.route_dest,
                next_hop: entry.next_hop,
                route_type: ROUTE_TYPE_PBR.to_owned(),
                publish_vpc: *publish_vpc,
                ..Default::default()
            }),
        )
    }
}

/// A mutation's field as its request's field of the same name: the API's numbers are
/// unsigned, a priority the call needs is still optional to the client, and a create always
/// sends its token.
trait ApiValue<T> {
    fn api(&self) -> T;
}

impl ApiValue<u32> for i32 {
    fn api(&self) -> u32 {
        u(*self)
    }
}

impl ApiValue<Option<u32>> for i32 {
    fn api(&self) -> Option<u32> {
        Some(u(*self))
    }
}

impl ApiValue<Option<u32>> for Option<i32> {
    fn api(&self) -> Option<u32> {
        self.map(u)
    }
}

impl ApiValue<bool> for bool {
    fn api(&self) -> bool {
        *self
    }
}

impl ApiValue<Option<String>> for String {
    fn api(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl ApiValue<Option<String>> for Option<String> {
    fn api(&self) -> Option<String> {
        self.clone()
    }
}

#[cfg(test)]
#[path = "vpc/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "vpc/ram_policy.rs"]
mod ram_policy;
