//! [`CloudPort`] over the real VPC client: one cheap [`VpcClient`] per region and credentials.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::model::{Accepted, Entry, EntryState, GatewayFacts, Mutation, Scope};
use super::port::{CloudFuture, CloudPort};
use alicloud_vpc_client::{
    CloudError, CreateVpnPbrRouteEntryRequest, DeleteVpnPbrRouteEntryRequest,
    DescribeVpnGatewayRequest, EntryKey, ModifyVpnPbrRouteEntryAttributeRequest,
    ModifyVpnPbrRouteEntryPriorityRequest, ModifyVpnPbrRouteEntryWeightRequest,
    PublishVpnRouteEntryRequest, VpcClient, VpcClientFactory,
};

pub(crate) struct VpcPort {
    factory: VpcClientFactory,
    clients: Mutex<HashMap<(String, String), VpcClient>>,
}

impl VpcPort {
    pub(crate) fn new(factory: VpcClientFactory) -> Self {
        Self {
            factory,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, scope: &Scope) -> Result<VpcClient, CloudError> {
        let key = (scope.region_id.clone(), scope.credentials.key.clone());
        let mut map = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let c = self
            .factory
            .client(&scope.region_id, scope.credentials.provider.clone())?;
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
            let gw = scope.vpn_gateway_id.clone();
            let r = mutation.route();
            let entry = EntryKey {
                vpn_gateway_id: gw.clone(),
                route_source: r.route_source.clone(),
                route_dest: r.route_dest.clone(),
                next_hop: r.next_hop.clone(),
            };
            let request_id = match mutation {
                Mutation::Create {
                    weight,
                    priority,
                    publish_vpc,
                    description,
                    overlay_mode,
                    client_token,
                    ..
                } => {
                    let resp = client
                        .create_vpn_pbr_route_entry(&CreateVpnPbrRouteEntryRequest {
                            entry,
                            weight: u(*weight),
                            publish_vpc: *publish_vpc,
                            priority: priority.map(u),
                            description: description.clone(),
                            overlay_mode: overlay_mode.clone(),
                            client_token: Some(client_token.clone()),
                            dry_run: None,
                        })
                        .await?;
                    let created = Entry {
                        route_source: resp.fields.route_source,
                        route_dest: resp.fields.route_dest,
                        next_hop: resp.fields.next_hop,
                        weight: i(resp.fields.weight),
                        priority: resp.fields.priority.map_or(
                            priority.unwrap_or(crate::api::v1alpha1::DEFAULT_PRIORITY),
                            i,
                        ),
                        state: resp.state.map_or_else(
                            || {
                                if *publish_vpc {
                                    EntryState::Published
                                } else {
                                    EntryState::Normal
                                }
                            },
                            EntryState::from,
                        ),
                        create_time: resp.fields.create_time.unwrap_or_default(),
                        vpn_instance_id: resp.fields.vpn_instance_id.unwrap_or(gw),
                    };
                    return Ok(Accepted {
                        request_id: Some(resp.request_id),
                        entry: Some(created),
                    });
                }
                Mutation::Delete {
                    weight, priority, ..
                } => {
                    client
                        .delete_vpn_pbr_route_entry(&DeleteVpnPbrRouteEntryRequest {
                            entry,
                            weight: u(*weight),
                            priority: priority.map(u),
                            ..Default::default()
                        })
                        .await?
                        .request_id
                }
                Mutation::ModifyAttribute {
                    weight,
                    priority,
                    new_weight,
                    new_priority,
                    ..
                } => {
                    client
                        .modify_vpn_pbr_route_entry_attribute(
                            &ModifyVpnPbrRouteEntryAttributeRequest {
                                entry,
                                weight: u(*weight),
                                priority: u(*priority),
                                new_weight: new_weight.map(u),
                                new_priority: new_priority.map(u),
                                ..Default::default()
                            },
                        )
                        .await?
                        .request_id
                }
                Mutation::ModifyWeight {
                    weight,
                    priority,
                    new_weight,
                    ..
                } => {
                    client
                        .modify_vpn_pbr_route_entry_weight(&ModifyVpnPbrRouteEntryWeightRequest {
                            entry,
                            weight: u(*weight),
                            new_weight: u(*new_weight),
                            priority: priority.map(u),
                            ..Default::default()
                        })
                        .await?
                        .request_id
                }
                Mutation::ModifyPriority {
                    weight,
                    priority,
                    new_priority,
                    ..
                } => {
                    client
                        .modify_vpn_pbr_route_entry_priority(
                            &ModifyVpnPbrRouteEntryPriorityRequest {
                                entry,
                                weight: u(*weight),
                                new_priority: u(*new_priority),
                                priority: Some(u(*priority)),
                                ..Default::default()
                            },
                        )
                        .await?
                        .request_id
                }
                Mutation::Publish { publish_vpc, .. } => {
                    client
                        .publish_vpn_route_entry(&PublishVpnRouteEntryRequest {
                            vpn_gateway_id: entry.vpn_gateway_id,
                            route_dest: entry.route_dest,
                            next_hop: entry.next_hop,
                            route_type: "pbr".to_owned(),
                            publish_vpc: *publish_vpc,
                            ..Default::default()
                        })
                        .await?
                        .request_id
                }
            };
            Ok(Accepted {
                request_id: Some(request_id),
                entry: None,
            })
        })
    }
}

#[cfg(test)]
#[path = "vpc/tests.rs"]
mod tests;

#[cfg(test)]
#[path = "vpc/ram_policy.rs"]
mod ram_policy;
