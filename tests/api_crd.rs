//! The CRD against a real kube-apiserver: accepted and Established, defaults applied, every
//! rule refused with a message naming the field, immutable fields, printer columns.

mod support;

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde_json::{Value, json};
use support::command::run_ok;
use support::plane;
use vpn_pbr_harness::Tools;
use vpn_pbr_operator::api::v1alpha1::{DeletionPolicy, ManagementPolicy, VpnPbrRoute};

fn valid_spec() -> Value {
    json!({
        "regionId": "cn-hangzhou",
        "vpnGatewayId": "vpn-test-gateway",
        "routeSource": "192.168.1.0/24",
        "routeDest": "10.0.0.0/16",
        "nextHop": "vco-test-conn",
        "weight": 100,
        "publishVpc": false,
        "description": "test route"
    })
}

fn object(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute", "metadata": {"name": name}, "spec": spec})
}

async fn setup(prefix: &str) -> anyhow::Result<(Client, Api<DynamicObject>, String)> {
    let (client, ns) = support::setup(prefix).await?;
    let ar = ApiResource::erase::<VpnPbrRoute>(&());
    Ok((client.clone(), Api::namespaced_with(client, &ns, &ar), ns))
}

/// [`setup`] with the route `name` of [`valid_spec`] created.
async fn setup_with_route(
    prefix: &str,
    name: &str,
) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let (_client, api, ns) = setup(prefix).await?;
    create(&api, object(name, valid_spec()))
        .await
        .expect("create");
    Ok((api, ns))
}

/// [`valid_spec`] without its optional description.
fn spec_without_description() -> Value {
    let mut spec = valid_spec();
    spec.as_object_mut().expect("map").remove("description");
    spec
}

/// Merges `status` into the status of route `name`, as the operator would.
async fn patch_status(api: &Api<DynamicObject>, name: &str, status: Value) {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .expect("status");
}

async fn create(api: &Api<DynamicObject>, obj: Value) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &obj).await
}

fn refusal(result: Result<DynamicObject, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "expected 422 Invalid, got {s:?}");
            s.message
        }
        Ok(o) => panic!("apiserver accepted an invalid object: {:?}", o.data),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn crd_is_established_and_a_valid_route_round_trips_with_defaults() -> anyhow::Result<()> {
    let (client, api, ns) = setup("roundtrip").await?;
    create(&api, object("r1", spec_without_description()))
        .await
        .expect("valid route accepted");
    let typed: Api<VpnPbrRoute> = Api::namespaced(client, &ns);
    let got = typed.get("r1").await.expect("get");
    assert_eq!(got.spec.priority, 10, "priority defaults to 10");
    assert_eq!(got.spec.deletion_policy, DeletionPolicy::Delete);
    assert_eq!(got.spec.management_policy, ManagementPolicy::Full);
    assert_eq!(got.spec.route_dest, "10.0.0.0/16");
    assert_eq!(got.spec.description, None);
    assert_eq!(VpnPbrRoute::kind(&()), "VpnPbrRoute");
    Ok(())
}

#[tokio::test]
async fn invalid_routes_are_refused_naming_the_field() -> anyhow::Result<()> {
    let (_client, api, _ns) = setup("invalid").await?;
    // (field to set or remove, value or null to remove, field path the message must name)
    let cases: Vec<(&str, Value, &str)> = vec![
        ("weight", json!(50), "spec.weight"),
        ("weight", json!(-1), "spec.weight"),
        ("weight", Value::Null, "spec.weight"),
        ("priority", json!(0), "spec.priority"),
        ("priority", json!(101), "spec.priority"),
        ("routeDest", json!("10.0.0.1/16"), "spec.routeDest"),
        ("routeDest", json!("fd00::/64"), "spec.routeDest"),
        ("routeDest", json!("not-a-cidr"), "spec.routeDest"),
        ("routeSource", json!("192.168.1.1"), "spec.routeSource"),
        ("routeSource", json!("192.168.1.300/24"), "spec.routeSource"),
        ("routeSource", json!("192.168.1.1/24"), "spec.routeSource"),
        ("routeSource", Value::Null, "spec.routeSource"),
        ("vpnGatewayId", json!("gw-12345"), "spec.vpnGatewayId"),
        ("nextHop", json!("conn-12345"), "spec.nextHop"),
        ("nextHop", Value::Null, "spec.nextHop"),
        ("regionId", json!("CN_Hangzhou"), "spec.regionId"),
        ("publishVpc", Value::Null, "spec.publishVpc"),
        ("publishVpc", json!("yes"), "spec.publishVpc"),
        (
            "description",
            json!("http://example.com"),
            "spec.description",
        ),
        (
            "description",
            json!("https://example.com"),
            "spec.description",
        ),
        ("description", json!(""), "spec.description"),
        ("description", json!("x".repeat(101)), "spec.description"),
        ("overlayMode", json!("Gre"), "spec.overlayMode"),
        ("deletionPolicy", json!("Retain"), "spec.deletionPolicy"),
        (
            "managementPolicy",
            json!("ReadOnly"),
            "spec.managementPolicy",
        ),
        ("credentialsRef", json!({}), "spec.credentialsRef.name"),
    ];
    assert!(cases.len() >= 20);
    for (i, (field, value, path)) in cases.into_iter().enumerate() {
        let mut spec = valid_spec();
        let map = spec.as_object_mut().expect("map");
        if value.is_null() {
            map.remove(field);
        } else {
            map.insert(field.to_owned(), value.clone());
        }
        let message = refusal(create(&api, object(&format!("bad-{i}"), spec)).await);
        assert!(
            message.contains(path),
            "{field}={value}: message does not name {path}: {message}"
        );
    }
    Ok(())
}

/// The files directly in the repository's `dir` that `keep` admits, with their text.
fn files_in(dir: &str, keep: impl Fn(&Path) -> bool) -> Vec<(PathBuf, String)> {
    std::fs::read_dir(support::repo_root().join(dir))
        .expect(dir)
        .map(|entry| entry.expect("entry").path())
        .filter(|path| keep(path))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            (path, text)
        })
        .collect()
}

#[tokio::test]
async fn every_file_in_examples_invalid_is_refused() -> anyhow::Result<()> {
    let (_client, api, _ns) = setup("examples-invalid").await?;
    let mut count = 0;
    for (path, text) in files_in("examples/invalid", |_| true) {
        let obj: Value = serde_saphyr::from_str(&text).expect("yaml");
        let message = refusal(create(&api, obj).await);
        assert!(message.contains("spec."), "{}: {message}", path.display());
        count += 1;
    }
    assert!(count >= 15, "only {count} invalid examples");
    Ok(())
}

#[tokio::test]
async fn valid_examples_are_accepted() -> anyhow::Result<()> {
    let (_client, api, _ns) = setup("examples-valid").await?;
    let mut count = 0;
    let yaml = |p: &Path| p.extension().and_then(|e| e.to_str()) == Some("yaml");
    for (path, text) in files_in("examples", yaml) {
        for obj in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
            create(&api, obj)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 4);
    Ok(())
}

#[tokio::test]
async fn identity_fields_and_description_are_immutable() -> anyhow::Result<()> {
    let (api, _ns) = setup_with_route("immutable", "r").await?;
    // The cloud entry exists: identity is fixed from now on.
    patch_status(&api, "r", json!({"createTime": "2026-01-01T00:00:00.000Z"})).await;
    let cases: Vec<(&str, Value)> = vec![
        ("regionId", json!("cn-shanghai")),
        ("vpnGatewayId", json!("vpn-other")),
        ("routeSource", json!("192.168.2.0/24")),
        ("routeDest", json!("10.1.0.0/16")),
        ("nextHop", json!("vco-other")),
        ("description", json!("changed")),
        ("description", Value::Null),
    ];
    let pp = PatchParams::default();
    for (field, value) in cases {
        let patch = json!({"spec": {field: value}});
        assert_refused_immutable(api.patch("r", &pp, &Patch::Merge(&patch)).await, field);
    }
    // Adding a description after creation is refused as well.
    create(&api, object("nodesc", spec_without_description()))
        .await
        .expect("create");
    let err = api
        .patch(
            "nodesc",
            &pp,
            &Patch::Merge(&json!({"spec": {"description": "late"}})),
        )
        .await;
    assert!(
        matches!(err, Err(kube::Error::Api(ref s)) if s.code == 422 && s.message.contains("description")),
        "{err:?}"
    );
    // Mutable fields change freely.
    api.patch(
        "r",
        &pp,
        &Patch::Merge(&json!({"spec": {"weight": 0, "priority": 20, "publishVpc": true}})),
    )
    .await
    .expect("weight, priority and publishVpc are mutable");
    Ok(())
}

fn assert_refused_immutable(result: Result<DynamicObject, kube::Error>, field: &str) {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{field}: {s:?}");
            assert!(
                s.message.contains(&format!("spec.{field}")),
                "{field}: {}",
                s.message
            );
            assert!(s.message.contains("immutable"), "{field}: {}", s.message);
        }
        other => panic!("{field} change was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn identity_can_be_corrected_until_a_create_is_under_way() -> anyhow::Result<()> {
    let (api, _ns) = setup_with_route("identity-fix", "r").await?;
    let pp = PatchParams::default();
    // Never created in the cloud (e.g. refused for a wrong next hop): the user may fix it.
    api.patch(
        "r",
        &pp,
        &Patch::Merge(&json!({"spec": {"nextHop": "vco-fixed", "routeDest": "10.9.0.0/16"}})),
    )
    .await
    .expect("identity editable before any create");
    // A create is in flight (token stored): no longer.
    patch_status(&api, "r", json!({"clientToken": "tok"})).await;
    for (field, value) in [
        ("nextHop", json!("vco-other")),
        ("vpnGatewayId", json!("vpn-other")),
        ("routeSource", json!("10.1.0.0/16")),
    ] {
        assert_refused_immutable(
            api.patch("r", &pp, &Patch::Merge(&json!({"spec": {field: value}})))
                .await,
            field,
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_shows_the_printer_columns() -> anyhow::Result<()> {
    let (_api, ns) = setup_with_route("columns", "shown").await?;
    let text = kubectl(&["get", "pbr", "-o", "wide", "-n", &ns])?;
    // At `-o wide`: the Ready condition's message too.
    assert_eq!(
        header(&text),
        [
            "NAME", "GATEWAY", "SOURCE", "DEST", "NEXTHOP", "WEIGHT", "PRIORITY", "PUBLISH",
            "STATE", "READY", "SYNCED", "REASON", "MESSAGE", "AGE"
        ]
    );
    assert_eq!(
        header(&kubectl(&["get", "pbr", "-n", &ns])?),
        [
            "NAME", "GATEWAY", "SOURCE", "DEST", "NEXTHOP", "WEIGHT", "STATE", "READY", "SYNCED",
            "REASON", "AGE"
        ]
    );
    let row = text.lines().nth(1).unwrap_or_default();
    for v in [
        "shown",
        "vpn-test-gateway",
        "192.168.1.0/24",
        "10.0.0.0/16",
        "vco-test-conn",
        "100",
        "10",
        "false",
    ] {
        assert!(row.contains(v), "row lacks {v}: {row}");
    }
    // The short name and both categories resolve.
    for what in ["vpnpbrroutes", "alicloud", "vpn"] {
        assert!(
            kubectl(&["get", what, "-n", &ns, "-o", "name"])?
                .contains("vpnpbrroute.vpn.alicloud.dev/shown"),
            "kubectl get {what}"
        );
    }
    Ok(())
}

/// What `kubectl <args>` prints against the control plane; an error when it fails.
fn kubectl(args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = std::process::Command::new(Tools::from_env()?.kubectl());
    cmd.env("KUBECONFIG", &plane().kubeconfig).args(args);
    run_ok(&mut cmd, None)
}

/// The column names of a table `kubectl get` printed.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn harness_mints_service_account_tokens() -> anyhow::Result<()> {
    let (client, _api, ns) = setup("satoken").await?;
    let sa_client = plane()
        .service_account_client(&client, &ns, "nobody")
        .await?;
    let routes: Api<VpnPbrRoute> = Api::namespaced(sa_client, &ns);
    // Authenticated (not 401) but not authorized: no RBAC grants this account anything.
    match routes.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{ns}:nobody")),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    Ok(())
}

#[test]
fn the_tests_name_the_route_crd_as_the_type_does() {
    use kube::CustomResourceExt;
    assert_eq!(support::ROUTE_CRD, VpnPbrRoute::crd_name());
}
