//! `deploy/ram-policy.json`, the RAM policy the install guides give the operator's identity,
//! allows exactly the VPC actions the operator calls: each VPC operation of the client crate
//! is in it if and only if this crate's code calls it. STS operations need no RAM permission
//! (`GetCallerIdentity` needs none; `AssumeRoleWithOIDC` is allowed by the role's trust policy).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use alicloud_vpc_client::operations::{
    Api, CreateVpnPbrRouteEntryRequest, DeleteVpnPbrRouteEntryRequest,
    DescribeVpnConnectionRequest, DescribeVpnGatewayRequest, DescribeVpnPbrRouteEntriesRequest,
    GetCallerIdentityRequest, ModifyVpnPbrRouteEntryAttributeRequest,
    ModifyVpnPbrRouteEntryPriorityRequest, ModifyVpnPbrRouteEntryWeightRequest, Operation,
    PublishVpnRouteEntryRequest,
};

fn op<O: Operation>() -> (&'static str, Api) {
    (O::ACTION, O::API)
}

/// Every operation of the client crate (checked against its source below).
fn operations() -> Vec<(&'static str, Api)> {
    vec![
        op::<CreateVpnPbrRouteEntryRequest>(),
        op::<DeleteVpnPbrRouteEntryRequest>(),
        op::<DescribeVpnPbrRouteEntriesRequest>(),
        op::<ModifyVpnPbrRouteEntryWeightRequest>(),
        op::<ModifyVpnPbrRouteEntryPriorityRequest>(),
        op::<ModifyVpnPbrRouteEntryAttributeRequest>(),
        op::<PublishVpnRouteEntryRequest>(),
        op::<DescribeVpnGatewayRequest>(),
        op::<DescribeVpnConnectionRequest>(),
        op::<GetCallerIdentityRequest>(),
    ]
}

/// Client methods that send an operation under another name than the action's snake_case.
const WRAPPERS: &[(&str, &str)] = &[
    ("list_vpn_pbr_route_entries", "DescribeVpnPbrRouteEntries"),
    ("dry_run", "CreateVpnPbrRouteEntry"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn snake_case(action: &str) -> String {
    let mut out = String::new();
    for c in action.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The code (not the tests) of every `.rs` file under `dir`.
fn code_under(dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            code_under(&path, out);
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            out.push_str(code);
        }
    }
}

#[test]
fn the_list_names_every_operation_of_the_client() {
    let source =
        std::fs::read_to_string(root().join("crates/alicloud-vpc-client/src/operations.rs"))
            .expect("read operations.rs");
    let declared =
        source.matches("\noperation!(").count() + source.matches("\nimpl Operation for").count();
    assert_eq!(
        declared,
        operations().len(),
        "an operation was added to the client crate: add it to operations() here"
    );
    // The one request sent outside `Operation`: RRSA's exchange of the pod's token, an STS
    // action the role's trust policy allows, needing no RAM permission.
    let mut other = String::new();
    code_under(
        &root().join("crates/alicloud-vpc-client/src/credentials"),
        &mut other,
    );
    assert_eq!(
        other.matches("(\"Action\", \"").count(),
        other
            .matches("(\"Action\", \"AssumeRoleWithOIDC\")")
            .count(),
        "a request other than AssumeRoleWithOIDC is sent outside Operation"
    );
}

#[test]
fn the_ram_policy_allows_exactly_the_vpc_actions_the_operator_calls() {
    let mut code = String::new();
    code_under(&root().join("src"), &mut code);
    let calls = |method: &str| code.contains(&format!(".{method}("));
    let called: Vec<(&str, Api)> = operations()
        .into_iter()
        .filter(|(action, _)| {
            calls(&snake_case(action)) || WRAPPERS.iter().any(|(m, a)| a == action && calls(m))
        })
        .collect();
    let needed: BTreeSet<String> = called
        .iter()
        .filter(|(_, api)| *api == Api::Vpc)
        .map(|(action, _)| format!("vpc:{action}"))
        .collect();
    assert!(
        called
            .iter()
            .any(|(a, api)| *a == "GetCallerIdentity" && *api == Api::Sts),
        "the scan of src/ finds the STS call the operator makes: {called:?}"
    );
    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/ram-policy.json")).expect("read policy"),
    )
    .expect("policy is JSON");
    let statements = policy["Statement"].as_array().expect("Statement list");
    let mut allowed = BTreeSet::new();
    for s in statements {
        assert_eq!(s["Effect"], "Allow", "{s}");
        for a in s["Action"].as_array().expect("Action list") {
            allowed.insert(a.as_str().expect("action string").to_owned());
        }
    }
    assert_eq!(
        allowed, needed,
        "deploy/ram-policy.json must allow every VPC action the operator calls and nothing else"
    );
}
