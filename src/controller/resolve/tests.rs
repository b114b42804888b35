//! The resolution as a table: route, namespace, accounts and options in, the account or the
//! refusal out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

/// Account `name` admitting namespaces labelled `team=<team>` (`"*"`: all), in `regions` and
/// for `gateways` (empty: any).
fn account(name: &str, team: &str, regions: &[&str], gateways: &[&str]) -> Arc<VpnAccount> {
    let selector = if team == "*" {
        json!({})
    } else {
        json!({"matchLabels": {"team": team}})
    };
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount",
            "metadata": {"name": name},
            "spec": {"credentials": {"operatorIdentity": {}}, "namespaceSelector": selector,
                "regions": regions, "vpnGatewayIds": gateways}
        }))
        .expect("account"),
    )
}

/// A route of namespace `ns` on `vpn-a` in `cn-hangzhou`, with `spec` and `status` merged in.
fn route(ns: &str, spec: Value, status: Value) -> VpnPbrRoute {
    let mut s = json!({"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
        "routeSource": "10.0.0.0/24", "routeDest": "10.1.0.0/16", "nextHop": "vco-a",
        "weight": 100, "publishVpc": false});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": "r", "namespace": ns}, "spec": s, "status": status
    }))
    .expect("route")
}

struct Row {
    what: &'static str,
    route: VpnPbrRoute,
    /// Labels of the namespace (`team`), and its default account.
    team: Option<&'static str>,
    default: Option<&'static str>,
    options: AccountOptions,
    /// The account name, or the refusal's reason.
    want: Result<&'static str, Reason>,
}

fn options(require: bool, operator_team: Option<&str>) -> AccountOptions {
    AccountOptions {
        require_account: require,
        operator_namespaces: operator_team.map_or_else(LabelSelector::default, |t| LabelSelector {
            match_labels: Some(BTreeMap::from([("team".to_owned(), t.to_owned())])),
            ..Default::default()
        }),
    }
}

#[test]
fn the_account_of_a_route() {
    let accounts = [
        account("a", "a", &[], &[]),
        account("b", "b", &["cn-hangzhou"], &["vpn-a", "vpn-b"]),
        account("shanghai", "*", &["cn-shanghai"], &[]),
        account("gw-b", "*", &[], &["vpn-b"]),
    ];
    let mut gone = (*account("gone", "*", &[], &[])).clone();
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::UNIX_EPOCH,
    ));
    let gone = Arc::new(gone);
    let lookup = |name: &str| {
        accounts
            .iter()
            .chain(std::iter::once(&gone))
            .find(|a| a.name_any() == name)
            .cloned()
    };
    let free = options(false, None);
    // An account required of every route; the operator's identity for team platform only.
    let required = options(true, None);
    let platform_only = options(false, Some("platform"));
    let created = json!({"createTime": "2024-01-01T00:00:00.000Z"});
    let rows = [
        Row {
            what: "nothing named: the operator's identity, as before accounts",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Ok(OPERATOR_ACCOUNT),
        },
        Row {
            what: "the route's accountRef",
            route: route("ns-a", json!({"accountRef": "a"}), json!({})),
            team: Some("a"),
            default: Some("b"),
            options: free.clone(),
            want: Ok("a"),
        },
        Row {
            what: "the namespace's default",
            route: route("ns-b", json!({}), json!({})),
            team: Some("b"),
            default: Some("b"),
            options: free.clone(),
            want: Ok("b"),
        },
        Row {
            what: "the record wins over a namespace default changed since",
            route: route(
                "ns-b",
                json!({}),
                json!({"account": "b", "createTime": "x"}),
            ),
            team: Some("b"),
            default: Some("a"),
            options: free.clone(),
            want: Ok("b"),
        },
        Row {
            what: "the operator's identity recorded stays, whatever the default says now",
            route: route("ns-a", json!({}), json!({"account": OPERATOR_ACCOUNT})),
            team: Some("a"),
            default: Some("a"),
            options: required.clone(),
            want: Ok(OPERATOR_ACCOUNT),
        },
        Row {
            what: "an entry made before accounts were recorded stays the operator's",
            route: route("ns-a", json!({}), created.clone()),
            team: Some("a"),
            default: Some("a"),
            options: required.clone(),
            want: Ok(OPERATOR_ACCOUNT),
        },
        Row {
            what: "no account named, and one is required",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: None,
            options: required.clone(),
            want: Err(Reason::AccountRequired),
        },
        Row {
            what: "required, and the namespace default names one",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: Some("a"),
            options: required.clone(),
            want: Ok("a"),
        },
        Row {
            what: "the operator's identity is narrowed to other namespaces",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: None,
            options: platform_only.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "the operator's identity admits this namespace",
            route: route("ns-p", json!({}), json!({})),
            team: Some("platform"),
            default: None,
            options: platform_only.clone(),
            want: Ok(OPERATOR_ACCOUNT),
        },
        Row {
            what: "an account that does not exist",
            route: route("ns-a", json!({"accountRef": "nope"}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountNotFound),
        },
        Row {
            what: "a namespace default that does not exist",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: Some("nope"),
            options: free.clone(),
            want: Err(Reason::AccountNotFound),
        },
        Row {
            what: "an account being deleted takes no new route",
            route: route("ns-a", json!({"accountRef": "gone"}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountNotFound),
        },
        Row {
            what: "an account being deleted still serves the routes it holds",
            route: route(
                "ns-a",
                json!({"accountRef": "gone"}),
                json!({"account": "gone"}),
            ),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Ok("gone"),
        },
        Row {
            what: "a namespace the account does not select",
            route: route("ns-a", json!({"accountRef": "b"}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a namespace without labels, an account that wants some",
            route: route("ns-x", json!({"accountRef": "a"}), json!({})),
            team: None,
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a namespace default the namespace may not use",
            route: route("ns-a", json!({}), json!({})),
            team: Some("a"),
            default: Some("b"),
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a region the account leaves out",
            route: route("ns-a", json!({"accountRef": "shanghai"}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a gateway the account leaves out",
            route: route("ns-a", json!({"accountRef": "gw-b"}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a recorded account that no longer admits the namespace",
            route: route("ns-a", json!({"accountRef": "b"}), json!({"account": "b"})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "an account and a credentials Secret at once",
            route: route(
                "ns-a",
                json!({"accountRef": "a", "credentialsRef": {"name": "s"}}),
                json!({}),
            ),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Err(Reason::AccountForbidden),
        },
        Row {
            what: "a credentials Secret alone: the operator's way, as before",
            route: route("ns-a", json!({"credentialsRef": {"name": "s"}}), json!({})),
            team: Some("a"),
            default: None,
            options: free.clone(),
            want: Ok(OPERATOR_ACCOUNT),
        },
    ];
    for row in rows {
        let labels = row
            .team
            .map(|t| BTreeMap::from([("team".to_owned(), t.to_owned())]));
        let annotations = row
            .default
            .map(|a| BTreeMap::from([(DEFAULT_ACCOUNT_ANNOTATION.to_owned(), a.to_owned())]));
        let ns = NamespaceView {
            labels: labels.as_ref(),
            annotations: annotations.as_ref(),
        };
        let got = resolve(&row.route, ns, lookup, &row.options);
        match (&got, &row.want) {
            (Ok(r), Ok(name)) => assert_eq!(r.name, *name, "{}", row.what),
            (Err(r), Err(reason)) => {
                assert_eq!(&r.reason, reason, "{}: {}", row.what, r.message);
                assert!(!r.message.is_empty(), "{}", row.what);
            }
            _ => panic!("{}: got {got:?}, want {:?}", row.what, row.want),
        }
    }
}

#[test]
fn a_refusal_says_why() {
    let a = account("b", "b", &[], &[]);
    let ns_labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    let got = resolve(
        &route("ns-a", json!({"accountRef": "b"}), json!({})),
        NamespaceView {
            labels: Some(&ns_labels),
            annotations: None,
        },
        |n| (n == "b").then(|| a.clone()),
        &AccountOptions::default(),
    );
    let refusal = got.expect_err("refused");
    assert!(
        refusal.message.contains("VpnAccount b") && refusal.message.contains("namespace ns-a"),
        "{}",
        refusal.message
    );
}

#[test]
fn adoption_follows_the_account() {
    let mut open = (*account("open", "*", &[], &[])).clone();
    open.spec.allow_adoption = true;
    let closed = account("closed", "*", &[], &[]);
    let resolved = |a: Option<Arc<VpnAccount>>| Resolved {
        name: "x".into(),
        account: a,
    };
    assert!(resolved(None).allows_adoption(), "the operator's identity");
    assert!(resolved(Some(Arc::new(open))).allows_adoption());
    assert!(!resolved(Some(closed)).allows_adoption());
}

#[test]
fn a_cleanup_uses_the_account_that_holds_the_entry() {
    let a = account("a", "a", &["cn-shanghai"], &[]);
    let lookup = |n: &str| (n == "a").then(|| a.clone());
    let rows = [
        // (what, route, the account, or the missing account's name)
        (
            "recorded, even where the account no longer admits the route",
            route("ns-x", json!({"accountRef": "a"}), json!({"account": "a"})),
            Ok("a"),
        ),
        (
            "the recorded operator's identity, whatever the spec names",
            route(
                "ns-x",
                json!({"accountRef": "a"}),
                json!({"account": OPERATOR_ACCOUNT}),
            ),
            Ok(OPERATOR_ACCOUNT),
        ),
        (
            "an entry made before accounts were recorded",
            route("ns-x", json!({}), json!({"createTime": "x"})),
            Ok(OPERATOR_ACCOUNT),
        ),
        (
            "recorded, and gone",
            route("ns-x", json!({}), json!({"account": "b"})),
            Err("b"),
        ),
        (
            "named, not recorded, gone",
            route(
                "ns-x",
                json!({"accountRef": "b"}),
                json!({"clientToken": "t"}),
            ),
            Err("b"),
        ),
    ];
    for (what, route, want) in rows {
        let got = resolve_for_cleanup(&route, lookup);
        match (&got, want) {
            (Ok(r), Ok(name)) => assert_eq!(r.name, name, "{what}"),
            (Err(missing), Err(name)) => assert_eq!(missing, name, "{what}"),
            _ => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn selectors_select_by_labels() {
    let labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    let sel = |v: Value| serde_json::from_value::<LabelSelector>(v).expect("selector");
    assert!(selects(&sel(json!({})), &labels));
    assert!(selects(&sel(json!({})), &BTreeMap::new()));
    assert!(selects(
        &sel(json!({"matchLabels": {"team": "a"}})),
        &labels
    ));
    assert!(!selects(
        &sel(json!({"matchLabels": {"team": "b"}})),
        &labels
    ));
    assert!(selects(
        &sel(
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]})
        ),
        &labels
    ));
    assert!(!selects(
        &sel(json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]})),
        &labels
    ));
    // Unreadable: selects nothing.
    assert!(!selects(
        &sel(json!({"matchExpressions": [{"key": "team", "operator": "Bogus"}]})),
        &labels
    ));
}
