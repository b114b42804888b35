//! Pure decisions: given the spec and what the cloud holds, the one next step.

use super::model::{Entry, GatewayFacts, Mutation, RouteId};
use crate::api::v1alpha1::{DEFAULT_PRIORITY, VpnPbrRouteSpec};

/// The next step for a route under `Full` management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The cloud matches the spec.
    InSync,
    /// Send this mutation (one change at a time).
    Mutate(Mutation),
}

/// Which attribute differs, for `ObserveOnly` drift reports and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Drift {
    pub fields: Vec<&'static str>,
}

pub(crate) fn route_id(spec: &VpnPbrRouteSpec) -> RouteId {
    RouteId {
        route_source: spec.route_source.clone(),
        route_dest: spec.route_dest.clone(),
        next_hop: spec.next_hop.clone(),
    }
}

/// Finds the spec's entry in a gateway's list.
pub(crate) fn find<'a>(spec: &VpnPbrRouteSpec, entries: &'a [Entry]) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| e.matches(&spec.route_source, &spec.route_dest, &spec.next_hop))
}

/// Whether the spec asks for a priority the API must be told about: gateways without priority
/// support only take the default, so it is left out there.
fn wanted_priority(spec: &VpnPbrRouteSpec, gateway: &GatewayFacts) -> Option<i32> {
    (gateway.supports_priority || spec.priority != DEFAULT_PRIORITY).then_some(spec.priority)
}

/// The create call for a route absent from the cloud.
pub(crate) fn create(
    spec: &VpnPbrRouteSpec,
    gateway: &GatewayFacts,
    client_token: &str,
) -> Mutation {
    Mutation::Create {
        route: route_id(spec),
        weight: spec.weight,
        priority: wanted_priority(spec, gateway),
        publish_vpc: spec.publish_vpc,
        description: spec.description.clone(),
        overlay_mode: spec.overlay_mode.map(|_| "Ipsec".to_owned()),
        client_token: client_token.to_owned(),
    }
}

/// A create token that names its request: `w<weight>-p<priority, or n>-u<publish 0|1>-` before
/// `unique`. The cloud repeats its answer only to the same parameters, and both the spec
/// (edits) and the listed entry (changes outside) may have moved since the create was sent, so
/// the token itself keeps the mutable ones; the rest (identity, description, overlay mode) is
/// immutable in the spec.
pub(crate) fn create_token(create: &Mutation, unique: &str) -> String {
    match create {
        Mutation::Create {
            weight,
            priority,
            publish_vpc,
            ..
        } => format!(
            "w{weight}-p{}-u{}-{unique}",
            priority.map_or_else(|| "n".to_owned(), |p| p.to_string()),
            u8::from(*publish_vpc)
        ),
        _ => unique.to_owned(),
    }
}

/// The create a token made by [`create_token`] was sent as; `None` for a token without them.
pub(crate) fn create_of_token(spec: &VpnPbrRouteSpec, client_token: &str) -> Option<Mutation> {
    let mut parts = client_token.splitn(4, '-');
    let weight = parts.next()?.strip_prefix('w')?.parse().ok()?;
    let priority = match parts.next()?.strip_prefix('p')? {
        "n" => None,
        p => Some(p.parse().ok()?),
    };
    let publish_vpc = match parts.next()? {
        "u0" => false,
        "u1" => true,
        _ => return None,
    };
    parts.next()?;
    Some(Mutation::Create {
        route: route_id(spec),
        weight,
        priority,
        publish_vpc,
        description: spec.description.clone(),
        overlay_mode: spec.overlay_mode.map(|_| "Ipsec".to_owned()),
        client_token: client_token.to_owned(),
    })
}

/// The replay of a create that may have made the listed entry: the cloud repeats its answer
/// only to the same parameters, so the listed attributes stand for what the create sent (the
/// spec may have been edited since, even to something invalid) and the description is the
/// spec's (it never changes).
pub(crate) fn create_like(
    spec: &VpnPbrRouteSpec,
    entry: &Entry,
    gateway: &GatewayFacts,
    client_token: &str,
) -> Mutation {
    Mutation::Create {
        route: route_id(spec),
        weight: entry.weight,
        priority: gateway.supports_priority.then_some(entry.priority),
        publish_vpc: entry.published(),
        description: spec.description.clone(),
        overlay_mode: spec.overlay_mode.map(|_| "Ipsec".to_owned()),
        client_token: client_token.to_owned(),
    }
}

/// What differs between spec and entry.
pub(crate) fn drift(spec: &VpnPbrRouteSpec, entry: &Entry, gateway: &GatewayFacts) -> Drift {
    let mut fields = Vec::new();
    if weight_differs(spec, entry, gateway) {
        fields.push("weight");
    }
    if priority_differs(spec, entry, gateway) {
        fields.push("priority");
    }
    if entry.published() != spec.publish_vpc {
        fields.push("publishVpc");
    }
    Drift { fields }
}

/// A dual-tunnel gateway lists every weight as 100 and cannot change it: never a difference.
fn weight_differs(spec: &VpnPbrRouteSpec, entry: &Entry, gateway: &GatewayFacts) -> bool {
    !gateway.dual_tunnel && entry.weight != spec.weight
}

fn priority_differs(spec: &VpnPbrRouteSpec, entry: &Entry, gateway: &GatewayFacts) -> bool {
    // A gateway without priority support reports whatever it stores (the default); only a
    // non-default wish is a difference there.
    entry.priority != spec.priority
        && (gateway.supports_priority || spec.priority != DEFAULT_PRIORITY)
}

/// Whether another entry of the gateway shares the route's source and destination (the other
/// half of an active/standby pair).
pub(crate) fn has_partner(spec: &VpnPbrRouteSpec, entries: &[Entry]) -> bool {
    entries.iter().any(|e| {
        e.route_source == spec.route_source
            && e.route_dest == spec.route_dest
            && e.next_hop != spec.next_hop
    })
}

/// The next change for an existing entry: weight and priority first (one call where the gateway
/// supports `ModifyVpnPbrRouteEntryAttribute`), then publishing.
///
/// The API refuses a weight change on a member of an active/standby pair (its docs: delete,
/// then re-create). With a partner present the member becoming active deletes its entry (the
/// next reconcile creates it with the new weight); the member becoming standby changes in
/// place, which the cloud refuses until that partner is gone and then allows. So a pair swap
/// never leaves the pair without an entry.
pub(crate) fn update(
    spec: &VpnPbrRouteSpec,
    entry: &Entry,
    gateway: &GatewayFacts,
    partner: bool,
) -> Step {
    let route = route_id(spec);
    let weight_differs = weight_differs(spec, entry, gateway);
    if weight_differs && partner && spec.weight > entry.weight {
        return Step::Mutate(delete(entry, gateway));
    }
    let prio_differs = priority_differs(spec, entry, gateway);
    // Dual-tunnel gateways change priorities through the attribute call only.
    if (gateway.supports_priority || gateway.dual_tunnel) && (weight_differs || prio_differs) {
        return Step::Mutate(Mutation::ModifyAttribute {
            route,
            weight: entry.weight,
            priority: entry.priority,
            new_weight: weight_differs.then_some(spec.weight),
            new_priority: prio_differs.then_some(spec.priority),
        });
    }
    if weight_differs {
        return Step::Mutate(Mutation::ModifyWeight {
            route,
            weight: entry.weight,
            priority: None,
            new_weight: spec.weight,
        });
    }
    if prio_differs {
        return Step::Mutate(Mutation::ModifyPriority {
            route,
            weight: entry.weight,
            priority: entry.priority,
            new_priority: spec.priority,
        });
    }
    if entry.published() != spec.publish_vpc {
        return Step::Mutate(Mutation::Publish {
            route,
            publish_vpc: spec.publish_vpc,
        });
    }
    Step::InSync
}

/// The delete call for an entry, repeating its current weight and priority.
pub(crate) fn delete(entry: &Entry, gateway: &GatewayFacts) -> Mutation {
    Mutation::Delete {
        route: RouteId {
            route_source: entry.route_source.clone(),
            route_dest: entry.route_dest.clone(),
            next_hop: entry.next_hop.clone(),
        },
        weight: entry.weight,
        priority: gateway.supports_priority.then_some(entry.priority),
    }
}

/// The gateway's own rule for the destination: `Some(message)` when this gateway refuses it.
pub(crate) fn gateway_refuses_dest(
    spec: &VpnPbrRouteSpec,
    gateway: &GatewayFacts,
) -> Option<&'static str> {
    if gateway.dual_tunnel {
        return None;
    }
    crate::api::v1alpha1::validation::single_tunnel_dest_rule(&spec.route_dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{DeletionPolicy, ManagementPolicy};
    use crate::controller::fixtures;

    fn spec() -> VpnPbrRouteSpec {
        VpnPbrRouteSpec {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: "vpn-a".into(),
            route_source: "192.168.1.0/24".into(),
            route_dest: "10.0.0.0/16".into(),
            next_hop: "vco-a".into(),
            weight: 100,
            publish_vpc: false,
            priority: 10,
            description: None,
            overlay_mode: None,
            credentials_ref: None,
            account_ref: None,
            deletion_policy: DeletionPolicy::Delete,
            management_policy: ManagementPolicy::Full,
        }
    }

    fn entry() -> Entry {
        fixtures::normal_entry("192.168.1.0/24", "10.0.0.0/16", "vco-a", 100)
    }

    fn gw(prio: bool) -> GatewayFacts {
        fixtures::gateway(prio)
    }

    #[test]
    fn a_token_names_the_create_it_was_made_for() {
        let mut s = spec();
        s.description = Some("d".into());
        let sent = create(&s, &gw(false), "");
        let token = create_token(&sent, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(token, "w100-pn-u0-1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert!(token.len() <= 64, "the API takes 64 characters");
        // Edited since: the replay is still the create that was sent.
        s.weight = 0;
        s.publish_vpc = true;
        let replay = create_of_token(&s, &token).expect("parameters");
        let mut sent_with_token = sent.clone();
        if let Mutation::Create { client_token, .. } = &mut sent_with_token {
            client_token.clone_from(&token);
        }
        assert_eq!(replay, sent_with_token);
        let with_priority = create_token(&create(&spec(), &gw(true), ""), "x");
        assert_eq!(with_priority, "w100-p10-u0-x");
        assert!(matches!(
            create_of_token(&spec(), &with_priority),
            Some(Mutation::Create {
                priority: Some(10),
                ..
            })
        ));
        // A token made before tokens named their create: nothing to read.
        for legacy in ["1b4e28ba-2fa1-11d2-883f-0016d3cca427", "tok", "w100-p10-u0"] {
            assert_eq!(create_of_token(&spec(), legacy), None, "{legacy}");
        }
    }

    #[test]
    fn in_sync_when_equal() {
        assert_eq!(update(&spec(), &entry(), &gw(true), false), Step::InSync);
        assert!(drift(&spec(), &entry(), &gw(true)).fields.is_empty());
    }

    #[test]
    fn weight_and_priority_in_one_attribute_call() {
        let mut s = spec();
        s.weight = 0;
        s.priority = 20;
        match update(&s, &entry(), &gw(true), false) {
            Step::Mutate(Mutation::ModifyAttribute {
                weight: 100,
                priority: 10,
                new_weight: Some(0),
                new_priority: Some(20),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gateway_without_priority_uses_weight_call() {
        let mut s = spec();
        s.weight = 0;
        assert!(matches!(
            update(&s, &entry(), &gw(false), false),
            Step::Mutate(Mutation::ModifyWeight {
                weight: 100,
                new_weight: 0,
                priority: None,
                ..
            })
        ));
    }

    #[test]
    fn default_priority_is_not_drift_without_support() {
        let mut e = entry();
        e.priority = 0;
        assert_eq!(update(&spec(), &e, &gw(false), false), Step::InSync);
    }

    #[test]
    fn weight_change_in_a_pair_replaces_the_entry_becoming_active() {
        // The standby becoming active goes first (delete, then re-create); the active one
        // becoming standby changes in place, which the cloud allows once its partner is gone,
        // so the pair never has zero entries.
        let mut s = spec();
        s.weight = 100;
        let mut standby = entry();
        standby.weight = 0;
        let mut partner = entry();
        partner.next_hop = "vco-b".into();
        let list = vec![standby.clone(), partner];
        assert!(has_partner(&s, &list));
        assert!(matches!(
            update(&s, &standby, &gw(true), true),
            Step::Mutate(Mutation::Delete { weight: 0, .. })
        ));
        let mut to_standby = spec();
        to_standby.weight = 0;
        assert!(matches!(
            update(&to_standby, &entry(), &gw(true), true),
            Step::Mutate(Mutation::ModifyAttribute {
                new_weight: Some(0),
                ..
            })
        ));
        // A priority-only change stays in place.
        let mut p = spec();
        p.priority = 5;
        assert!(matches!(
            update(&p, &entry(), &gw(true), true),
            Step::Mutate(Mutation::ModifyAttribute {
                new_weight: None,
                ..
            })
        ));
    }

    #[test]
    fn publish_after_attributes() {
        let mut s = spec();
        s.publish_vpc = true;
        assert!(matches!(
            update(&s, &entry(), &gw(true), false),
            Step::Mutate(Mutation::Publish {
                publish_vpc: true,
                ..
            })
        ));
        assert_eq!(drift(&s, &entry(), &gw(true)).fields, vec!["publishVpc"]);
    }

    #[test]
    fn create_leaves_default_priority_out_without_support() {
        match create(&spec(), &gw(false), "tok") {
            Mutation::Create {
                priority: None,
                client_token,
                ..
            } => assert_eq!(client_token, "tok"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            create(&spec(), &gw(true), "t"),
            Mutation::Create {
                priority: Some(10),
                ..
            }
        ));
    }

    #[test]
    fn delete_repeats_current_values() {
        let mut e = entry();
        e.weight = 0;
        e.priority = 30;
        assert!(matches!(
            delete(&e, &gw(true)),
            Mutation::Delete {
                weight: 0,
                priority: Some(30),
                ..
            }
        ));
    }

    #[test]
    fn apply_to_updates_cached_list() {
        let mut list = vec![entry()];
        let m = Mutation::Publish {
            route: route_id(&spec()),
            publish_vpc: true,
        };
        m.apply_to(&mut list, None);
        assert!(list[0].published());
        delete(&list[0].clone(), &gw(true)).apply_to(&mut list, None);
        assert!(list.is_empty());
        create(&spec(), &gw(true), "t").apply_to(&mut list, Some(&entry()));
        assert_eq!(list, vec![entry()]);
    }

    #[test]
    fn dual_tunnel_gateways_ignore_weights_and_change_priority_by_attribute() {
        let dual = GatewayFacts {
            status: "active".into(),
            supports_priority: false,
            dual_tunnel: true,
            spec: None,
        };
        let mut s = spec();
        s.weight = 0;
        // Listed as 100 whatever was asked: no drift, no change, no pair replacement.
        assert_eq!(update(&s, &entry(), &dual, true), Step::InSync);
        assert!(drift(&s, &entry(), &dual).fields.is_empty());
        s.priority = 20;
        assert_eq!(
            update(&s, &entry(), &dual, false),
            Step::Mutate(Mutation::ModifyAttribute {
                route: route_id(&s),
                weight: 100,
                priority: 10,
                new_weight: None,
                new_priority: Some(20),
            })
        );
        assert_eq!(drift(&s, &entry(), &dual).fields, vec!["priority"]);
    }

    #[test]
    fn only_single_tunnel_gateways_refuse_the_default_route() {
        let mut s = spec();
        s.route_dest = "0.0.0.0/0".into();
        assert!(gateway_refuses_dest(&s, &gw(true)).is_some());
        let dual = GatewayFacts {
            dual_tunnel: true,
            spec: None,
            ..gw(false)
        };
        assert_eq!(gateway_refuses_dest(&s, &dual), None);
        s.route_dest = "10.9.0.0/16".into();
        assert_eq!(gateway_refuses_dest(&s, &gw(true)), None);
    }
}
