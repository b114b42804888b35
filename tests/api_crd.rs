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
use vpn_pbr_operator::api::v1alpha1::{DeletionPolicy, ManagementPolicy, VpnAccount, VpnPbrRoute};

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

// VpnAccount: cluster-scoped, so every test names its accounts after its own
// fresh namespace.

/// An account of `spec` named `name`.
fn account(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnAccount", "metadata": {"name": name}, "spec": spec})
}

/// A valid account spec with `credentials`.
fn account_spec(credentials: Value) -> Value {
    json!({"credentials": credentials, "namespaceSelector": {"matchLabels": {"team": "net"}}})
}

/// An account spec with `credentials` and `apiRate`.
fn at_rate(credentials: Value, api_rate: Value) -> Value {
    let mut spec = account_spec(credentials);
    spec["apiRate"] = api_rate;
    spec
}

fn assume_role() -> Value {
    json!({"assumeRole": {
        "roleArn": "acs:ram::1234567890123456:role/vpn-pbr-operator",
        "externalId": "abcd-1234",
        "sessionName": "vpn-pbr-operator"
    }})
}

/// The cluster-scoped `VpnAccount` API of the plane, and a fresh namespace to name accounts by.
async fn setup_accounts(prefix: &str) -> anyhow::Result<(Client, Api<DynamicObject>, String)> {
    let (client, ns) = support::setup(prefix).await?;
    let ar = ApiResource::erase::<VpnAccount>(&());
    Ok((client.clone(), Api::all_with(client, &ar), ns))
}

#[tokio::test]
async fn valid_accounts_are_accepted_with_defaults() -> anyhow::Result<()> {
    let (client, api, ns) = setup_accounts("account-valid").await?;
    let mut scoped = account_spec(json!({"operatorIdentity": {}}));
    scoped["regions"] = json!(["cn-hangzhou", "cn-shanghai"]);
    scoped["vpnGatewayIds"] = json!(["vpn-bp1aaa"]);
    scoped["allowAdoption"] = json!(true);
    scoped["namespaceSelector"] = json!({});
    let specs = [
        scoped,
        account_spec(assume_role()),
        account_spec(json!({"assumeRole": {"roleArn": "acs:ram::1:role/a"}})),
        account_spec(json!({"secretRef": {"namespace": "vpn-system", "name": "keys"}})),
        // A source written null is no source.
        account_spec(json!({"operatorIdentity": {}, "assumeRole": null, "secretRef": null})),
        // The account's own API rate, whole or not.
        at_rate(assume_role(), json!(8)),
        at_rate(
            json!({"secretRef": {"namespace": "vpn-system", "name": "keys"}}),
            json!(0.5),
        ),
    ];
    for (i, spec) in specs.into_iter().enumerate() {
        create(&api, account(&format!("{ns}-{i}"), spec))
            .await
            .unwrap_or_else(|e| panic!("account {i} refused: {e}"));
    }
    let typed: Api<VpnAccount> = Api::all(client);
    let scoped = typed.get(&format!("{ns}-0")).await?;
    assert!(scoped.spec.allow_adoption);
    assert_eq!(scoped.spec.regions, ["cn-hangzhou", "cn-shanghai"]);
    assert!(scoped.spec.credentials.operator_identity.is_some());
    let role = typed.get(&format!("{ns}-1")).await?;
    assert!(!role.spec.allow_adoption, "allowAdoption defaults to false");
    assert!(role.spec.regions.is_empty() && role.spec.vpn_gateway_ids.is_empty());
    assert_eq!(
        role.spec.api_rate, None,
        "apiRate has no default of its own"
    );
    let assumed = role.spec.credentials.assume_role.expect("assumeRole");
    assert_eq!(assumed.external_id.as_deref(), Some("abcd-1234"));
    assert_eq!(
        typed.get(&format!("{ns}-5")).await?.spec.api_rate,
        Some(8.0)
    );
    assert_eq!(
        typed.get(&format!("{ns}-6")).await?.spec.api_rate,
        Some(0.5)
    );
    assert_eq!(VpnAccount::kind(&()), "VpnAccount");
    Ok(())
}

#[tokio::test]
async fn invalid_accounts_are_refused_with_their_message() -> anyhow::Result<()> {
    let (_client, api, ns) = setup_accounts("account-invalid").await?;
    let exactly_one = "exactly one credential source must be set";
    let arn = "must be a RAM role ARN: acs:ram::<accountId>:role/<roleName>";
    let role = |field: &str, value: Value| {
        let mut c = assume_role();
        c["assumeRole"][field] = value;
        account_spec(c)
    };
    let with = |field: &str, value: Value| {
        let mut spec = account_spec(json!({"operatorIdentity": {}}));
        let map = spec.as_object_mut().expect("map");
        if value.is_null() {
            map.remove(field);
        } else {
            map.insert(field.to_owned(), value);
        }
        spec
    };
    // (spec, the path and the words the refusal must hold)
    let cases: Vec<(Value, &str, &str)> = vec![
        (account_spec(json!({})), "spec.credentials", exactly_one),
        (
            account_spec(
                json!({"operatorIdentity": {}, "secretRef": {"namespace": "a", "name": "b"}}),
            ),
            "spec.credentials",
            exactly_one,
        ),
        (
            account_spec(
                json!({"operatorIdentity": {}, "assumeRole": assume_role()["assumeRole"]}),
            ),
            "spec.credentials",
            exactly_one,
        ),
        (
            role("externalId", json!("x")),
            "spec.credentials.assumeRole.externalId",
            "must be 2 to 1224 characters",
        ),
        (
            role("sessionName", json!("a b")),
            "spec.credentials.assumeRole.sessionName",
            "must be 2 to 64 characters",
        ),
        (
            account_spec(json!({"secretRef": {"namespace": "vpn-system", "name": ""}})),
            "spec.credentials.secretRef.name",
            "must name the Secret; it must not be empty",
        ),
        (
            account_spec(json!({"secretRef": {"namespace": "", "name": "keys"}})),
            "spec.credentials.secretRef.namespace",
            "must name the Secret's namespace; it must not be empty",
        ),
        (
            with("regions", json!(["CN_Hangzhou"])),
            "spec.regions",
            "each entry must be a region ID",
        ),
        (
            with("vpnGatewayIds", json!(["gw-1"])),
            "spec.vpnGatewayIds",
            "must be a VPN gateway ID starting with 'vpn-'",
        ),
        (
            with("namespaceSelector", Value::Null),
            "spec.namespaceSelector",
            "Required",
        ),
        (
            with("credentials", Value::Null),
            "spec.credentials",
            "Required",
        ),
        (
            at_rate(assume_role(), json!(0)),
            "spec.apiRate",
            "must be a number of calls per second above 0",
        ),
        (
            at_rate(assume_role(), json!(-2.5)),
            "spec.apiRate",
            "must be a number of calls per second above 0",
        ),
        (
            at_rate(assume_role(), json!(20000)),
            "spec.apiRate",
            "at most 10000",
        ),
        (
            at_rate(json!({"operatorIdentity": {}}), json!(5)),
            "spec.apiRate",
            "apiRate does not apply to operatorIdentity",
        ),
    ];
    let bad_arns = [
        "arn:aws:iam::123456789012:role/x",
        "acs:ram::12ab:role/x",
        "acs:ram::123:user/x",
        "acs:ram::123:role/",
        "",
    ];
    let arn_cases = bad_arns.map(|bad| {
        let spec = role("roleArn", json!(bad));
        (spec, "spec.credentials.assumeRole.roleArn", arn)
    });
    let cases = cases.into_iter().chain(arn_cases);
    for (i, (spec, path, words)) in cases.enumerate() {
        let message = refusal(create(&api, account(&format!("{ns}-bad-{i}"), spec.clone())).await);
        assert!(
            message.contains(path) && message.contains(words),
            "{spec}: the refusal does not name {path} with {words:?}: {message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_shows_the_account_columns() -> anyhow::Result<()> {
    let (_client, api, ns) = setup_accounts("account-columns").await?;
    let name = format!("{ns}-shown");
    create(&api, account(&name, account_spec(assume_role())))
        .await
        .expect("create");
    let text = kubectl(&["get", "vpnaccounts", &name])?;
    assert_eq!(
        header(&text),
        ["NAME", "READY", "ACCOUNT", "ID", "ROUTES", "AGE"]
    );
    // Both categories list accounts with routes.
    for what in ["alicloud", "vpn"] {
        assert!(
            kubectl(&["get", what, "-o", "name"])?
                .contains(&format!("vpnaccount.vpn.alicloud.dev/{name}")),
            "kubectl get {what}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn route_account_ref_is_checked_and_fixed_once_the_route_exists() -> anyhow::Result<()> {
    let (_client, api, _ns) = setup("account-ref").await?;
    let mut spec = valid_spec();
    spec["accountRef"] = json!("");
    let message = refusal(create(&api, object("empty", spec)).await);
    assert!(
        message.contains("spec.accountRef") && message.contains("must name a VpnAccount"),
        "{message}"
    );
    let mut spec = valid_spec();
    spec["accountRef"] = json!("prod");
    create(&api, object("r", spec)).await.expect("create");
    create(&api, object("bare", valid_spec()))
        .await
        .expect("create");
    let pp = PatchParams::default();
    let set = |value: Value| json!({"spec": {"accountRef": value}});
    // No entry yet: the reference may be corrected, added or removed.
    api.patch("r", &pp, &Patch::Merge(&set(json!("staging"))))
        .await
        .expect("accountRef editable before any create");
    api.patch("bare", &pp, &Patch::Merge(&set(json!("prod"))))
        .await
        .expect("accountRef addable before any create");
    api.patch("bare", &pp, &Patch::Merge(&set(Value::Null)))
        .await
        .expect("accountRef removable before any create");
    // A create in flight (r) or an entry (bare): fixed, changed, removed or added.
    patch_status(&api, "r", json!({"clientToken": "tok"})).await;
    patch_status(
        &api,
        "bare",
        json!({"createTime": "2026-01-01T00:00:00.000Z"}),
    )
    .await;
    for (name, value) in [
        ("r", json!("prod")),
        ("r", Value::Null),
        ("bare", json!("prod")),
    ] {
        assert_refused_immutable(
            api.patch(name, &pp, &Patch::Merge(&set(value))).await,
            "accountRef",
        );
    }
    // Other mutable fields still change.
    api.patch("r", &pp, &Patch::Merge(&json!({"spec": {"weight": 0}})))
        .await
        .expect("weight is mutable");
    // A manifest may write the reference as null: that is no reference, and nothing to fix.
    let mut spec = valid_spec();
    spec["accountRef"] = Value::Null;
    create(&api, object("null", spec)).await.expect("create");
    patch_status(
        &api,
        "null",
        json!({"createTime": "2026-01-01T00:00:00.000Z"}),
    )
    .await;
    api.patch("null", &pp, &Patch::Merge(&json!({"spec": {"weight": 0}})))
        .await
        .expect("a null accountRef does not stop other changes");
    Ok(())
}

#[test]
fn the_tests_name_the_route_crd_as_the_type_does() {
    use kube::CustomResourceExt;
    assert_eq!(support::ROUTE_CRD, VpnPbrRoute::crd_name());
}

#[test]
fn credentials_ref_says_its_label_and_prefers_an_account() -> anyhow::Result<()> {
    use kube::CustomResourceExt;
    use vpn_pbr_operator::api::v1alpha1::{CREDENTIALS_LABEL, CREDENTIALS_LABEL_VALUE};
    let crd = serde_json::to_value(VpnPbrRoute::crd())?;
    let description = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["credentialsRef"]["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let label = format!("`{CREDENTIALS_LABEL}: \"{CREDENTIALS_LABEL_VALUE}\"`");
    assert!(description.contains(&label), "{description}");
    assert!(description.contains("VpnAccount"), "{description}");
    Ok(())
}
