//! Rules and state machine, driven through the operations with an explicit clock.

use std::collections::BTreeMap;

use super::*;
use crate::config::Config;

const T0: u64 = 1_700_000_000_000;

const CONFIG: &str = r#"
settings: {task_conflict_window_ms: 200}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1, priority_support: true, update_duration_ms: 1000, pbr_quota: 4, vpc_route_quota: 2}
  - {id: vpn-b, region: cn-hangzhou, vpc_id: vpc-1, update_duration_ms: 1000}
  - {id: vpn-c, region: cn-hangzhou, vpc_id: vpc-2, business_status: FinancialLocked}
vpn_connections: [
  {id: vco-a1, gateway_id: vpn-a}, {id: vco-a2, gateway_id: vpn-a}, {id: vco-a3, gateway_id: vpn-a},
  {id: vco-b1, gateway_id: vpn-b}, {id: vco-c1, gateway_id: vpn-c},
]
"#;

struct Fixture {
    st: EmuState,
    now: u64,
}

impl Fixture {
    fn new() -> Self {
        Self::with(CONFIG)
    }

    fn with(config: &str) -> Self {
        let cfg = Config::parse(config, "test").unwrap();
        Self {
            st: EmuState {
                world: World::from_config(&cfg, T0),
                tokens: TokenStore::with_ttl(cfg.settings.client_token_ttl_ms),
            },
            now: T0,
        }
    }

    /// Runs `action` with `pairs`, then lets the gateway settle (unless `settle` is false).
    fn call(&mut self, action: &str, pairs: &[(&str, &str)]) -> Result<Value, ApiError> {
        self.call_as(DEFAULT_ACCOUNT_ID, action, pairs)
    }

    /// [`Fixture::call`] as a key of `account`.
    fn call_as(
        &mut self,
        account: &str,
        action: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let mut map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.entry("RegionId".into())
            .or_insert_with(|| "cn-hangzhou".into());
        run_as(account, action, &Params::new(map), &mut self.st, self.now).map(|o| o.body)
    }

    /// A create of the route `key` names, with the `extra` parameters (not settled).
    fn create_with(
        &mut self,
        key: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        self.call("CreateVpnPbrRouteEntry", &args(key, extra))
    }

    fn code(&mut self, action: &str, pairs: &[(&str, &str)]) -> String {
        self.code_as(DEFAULT_ACCOUNT_ID, action, pairs)
    }

    /// [`Fixture::code`] as a key of `account`.
    fn code_as(&mut self, account: &str, action: &str, pairs: &[(&str, &str)]) -> String {
        match self.call_as(account, action, pairs) {
            Ok(_) => "Success".into(),
            Err(e) => e.code.into_owned(),
        }
    }

    fn settle(&mut self) {
        self.now += 2_000;
    }

    /// Creates in order, each row `gateway source destination next-hop weight code` and any
    /// `Name=value` parameters after it (`PublishVpc` is `true` unless one says otherwise),
    /// settling after each, and checks each is answered with its code.
    fn creates(&mut self, rows: &[&str]) {
        for row in rows {
            let w: Vec<&str> = row.split_whitespace().collect();
            let mut extra = name_values(w[6..].iter().copied());
            let publish = extra
                .iter()
                .find(|(k, _)| *k == "PublishVpc")
                .map_or("true", |(_, v)| *v);
            extra.retain(|(k, _)| *k != "PublishVpc");
            let got = self.create_code([w[0], w[1], w[2], w[3], w[4]], publish, &extra);
            self.settle();
            assert_eq!(got, w[5], "create {row}");
        }
    }

    /// Runs each row `Action Name=value ... code` with the `base` parameters too, settling
    /// after each success, and checks each is answered with its code.
    fn runs(&mut self, base: &[(&str, &str)], rows: &[&str]) {
        for row in rows {
            let w: Vec<&str> = row.split_whitespace().collect();
            let (action, code) = (w[0], w[w.len() - 1]);
            let extra = name_values(w[1..w.len() - 1].iter().copied());
            let got = self.code(action, &args(base, &extra));
            assert_eq!(got, code, "{row}");
            if got == "Success" {
                self.settle();
            }
        }
    }

    fn create(&mut self, gw: &str, src: &str, dst: &str, hop: &str, weight: &str) -> String {
        let c = self.create_code([gw, src, dst, hop, weight], "true", &[]);
        self.settle();
        c
    }

    /// The code of a create of `[gateway, source, destination, next hop, weight]` with
    /// `PublishVpc` set to `publish` and the `extra` parameters (not settled).
    fn create_code(&mut self, route: [&str; 5], publish: &str, extra: &[(&str, &str)]) -> String {
        self.code(
            "CreateVpnPbrRouteEntry",
            &args(&create_args(route, publish), extra),
        )
    }
}

/// The parameters of a create of `[gateway, source, destination, next hop, weight]` with
/// `PublishVpc` set to `publish`.
fn create_args<'a>(route: [&'a str; 5], publish: &'a str) -> Vec<(&'a str, &'a str)> {
    let [gw, src, dst, hop, weight] = route;
    vec![
        ("VpnGatewayId", gw),
        ("RouteSource", src),
        ("RouteDest", dst),
        ("NextHop", hop),
        ("Weight", weight),
        ("PublishVpc", publish),
    ]
}

/// `Name=value` words as parameters.
fn name_values<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, &'a str)> {
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .unwrap_or_else(|| panic!("{w}: not Name=value"))
        })
        .collect()
}

#[test]
fn create_then_list_with_create_time_and_state() {
    let mut f = Fixture::new();
    let body = f
        .call(
            "CreateVpnPbrRouteEntry",
            &[
                ("VpnGatewayId", "vpn-a"),
                ("RouteSource", "192.168.1.0/24"),
                ("RouteDest", "10.0.0.0/24"),
                ("NextHop", "vco-a1"),
                ("Weight", "100"),
                ("PublishVpc", "false"),
                ("Priority", "5"),
            ],
        )
        .unwrap();
    assert_eq!(body["VpnInstanceId"], "vpn-a");
    assert_eq!(body["State"], "normal");
    assert_eq!(body["CreateTime"], T0);
    assert_eq!(body["Priority"], 5);
    let list = f
        .call("DescribeVpnPbrRouteEntries", &[("VpnGatewayId", "vpn-a")])
        .unwrap();
    assert_eq!(list["TotalCount"], 1);
    let item = &list["VpnPbrRouteEntries"]["VpnPbrRouteEntry"][0];
    assert_eq!(item["RouteDest"], "10.0.0.0/24");
    assert!(item.get("Description").is_none());
}

#[test]
fn gateway_state_machine() {
    let mut f = Fixture::new();
    let status = |f: &mut Fixture| {
        f.call("DescribeVpnGateway", &[("VpnGatewayId", "vpn-a")])
            .unwrap()["Status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(&mut f), "active");
    let first = create_args(
        ["vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100"],
        "true",
    );
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &first), "Success");
    assert_eq!(status(&mut f), "updating");
    f.now += 100;
    let other = create_args(
        ["vpn-a", "192.168.2.0/24", "10.0.0.0/24", "vco-a2", "0"],
        "true",
    );
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &other), "TaskConflict");
    f.now += 500;
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &other),
        "VpnGateway.Configuring"
    );
    // Reads always work, and another gateway is independent.
    assert_eq!(
        f.code("DescribeVpnPbrRouteEntries", &[("VpnGatewayId", "vpn-a")]),
        "Success"
    );
    assert_eq!(
        f.create("vpn-b", "192.168.1.0/24", "10.9.0.0/24", "vco-b1", "100"),
        "Success"
    );
    f.now += 1000;
    assert_eq!(status(&mut f), "active");
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &other), "Success");
}

#[test]
fn client_token_replays_and_refuses_other_parameters() {
    let mut f = Fixture::new();
    let mut args = create_args(
        ["vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100"],
        "true",
    );
    args.push(("ClientToken", "tok-1"));
    let first = f.call("CreateVpnPbrRouteEntry", &args).unwrap();
    f.now += 50; // inside the TaskConflict window: a replay must still succeed
    let again = f.call("CreateVpnPbrRouteEntry", &args).unwrap();
    assert_eq!(first, again);
    assert_eq!(f.st.world.gateways["vpn-a"].entries.len(), 1);
    args[4] = ("Weight", "0");
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &args),
        "IdempotentParameterMismatch"
    );
}

#[test]
fn failed_call_does_not_consume_the_token() {
    let mut f = Fixture::new();
    f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100");
    let del = args(
        &key_of("vpn-a", "vco-a1", "10.0.0.0/24"),
        &[("Weight", "100"), ("ClientToken", "del-1")],
    );
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &[("VpnGatewayId", "vpn-a")]),
        "MissingRouteSource"
    );
    f.st.world.gateways.get_mut("vpn-a").unwrap().busy_until_ms = f.now + 10;
    assert_eq!(
        f.code("DeleteVpnPbrRouteEntry", &del),
        "VpnGateway.Configuring"
    );
    f.settle();
    assert_eq!(f.code("DeleteVpnPbrRouteEntry", &del), "Success");
    assert!(f.st.world.gateways["vpn-a"].entries.is_empty());
}

#[test]
fn seed_rules() {
    let mut f = Fixture::new();
    f.creates(&[
        "vpn-a 192.168.1.0/33 10.0.0.0/24 vco-a1 100 OperationFailed.InvalidCidrBlock",
        "vpn-a 192.168.1.1/24 10.0.0.0/24 vco-a1 100 OperationFailed.InvalidCidrBlock",
        "vpn-a 192.168.1.0/24 0.0.0.0/0 vco-a1 100 IllegalParam.RouteDest",
        "vpn-a 192.168.1.0/24 100.64.1.0/24 vco-a1 100 IllegalParam.RouteDest",
        "vpn-a 192.168.1.0/24 100.0.0.0/8 vco-a1 100 IllegalParam.RouteDest",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a1 50 VpnRouteEntry.InvalidWeight",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-b1 100 InvalidNextHop.NotFound",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-zz 100 InvalidNextHop.NotFound",
        "vpn-zz 192.168.1.0/24 10.0.0.0/24 vco-a1 100 InvalidVpnGatewayInstanceId.NotFound",
        "vpn-c 192.168.1.0/24 10.0.0.0/24 vco-c1 100 VpnGateway.FinancialLocked",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a1 abc InvalidParameter",
        // Priority on a gateway without support.
        "vpn-b 192.168.1.0/24 10.0.0.0/24 vco-b1 100 VpnPbrRouteEntryPriority.NotSupport PublishVpc=false Priority=5",
        // Duplicates and the active/standby pair.
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a1 100 Success",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a1 0 VpnRouteEntry.AlreadyExists",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a2 100 VpnRouteEntry.BackupRoute",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a2 0 Success",
        "vpn-a 192.168.1.0/24 10.0.0.0/24 vco-a3 0 VpnRouteEntry.BackupRoute",
    ]);
    // Changing the weight of one member of a pair is refused.
    let modify = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a2"),
        ("Weight", "0"),
        ("NewWeight", "100"),
    ];
    assert_eq!(
        f.code("ModifyVpnPbrRouteEntryWeight", &modify),
        "VpnRouteEntry.BackupRoute"
    );
    // Another gateway of the same VPC may not publish the same block; another VPC may.
    f.creates(&[
        "vpn-b 172.16.0.0/16 10.0.0.0/24 vco-b1 100 OperationFailed.RouteConflict",
        // VPC route quota (2 published destinations on vpn-a), then the PBR quota (3 routes).
        "vpn-a 192.168.1.0/24 10.1.0.0/24 vco-a1 100 Success",
        "vpn-a 192.168.1.0/24 10.2.0.0/24 vco-a1 100 QuotaExceeded.VpnRouteEntry",
        "vpn-a 192.168.9.0/24 10.2.0.0/24 vco-a1 100 Success PublishVpc=false",
        "vpn-a 192.168.9.0/24 10.3.0.0/24 vco-a1 100 Resource.QuotaFull PublishVpc=false",
    ]);
}

#[test]
fn modify_delete_publish_and_paging() {
    let mut f = Fixture::new();
    for i in 0..3 {
        let dst = format!("10.{i}.0.0/24");
        let c = f.create_code(
            ["vpn-a", "192.168.1.0/24", &dst, "vco-a1", "100"],
            "false",
            &[],
        );
        assert_eq!(c, "Success");
        f.settle();
    }
    let page = f
        .call(
            "DescribeVpnPbrRouteEntries",
            &[
                ("VpnGatewayId", "vpn-a"),
                ("PageSize", "2"),
                ("PageNumber", "2"),
            ],
        )
        .unwrap();
    assert_eq!(page["TotalCount"], 3);
    assert_eq!(
        page["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        page["VpnPbrRouteEntries"]["VpnPbrRouteEntry"][0]["RouteDest"],
        "10.2.0.0/24"
    );
    assert_eq!(
        f.code(
            "DescribeVpnPbrRouteEntries",
            &[("VpnGatewayId", "vpn-a"), ("PageSize", "51")]
        ),
        "InvalidParameter"
    );
    let key = key_of("vpn-a", "vco-a1", "10.0.0.0/24");
    f.runs(
        &key,
        &[
            "ModifyVpnPbrRouteEntryWeight Weight=0 NewWeight=0 InvalidRouteEntry.NotFound",
            "ModifyVpnPbrRouteEntryWeight Weight=100 NewWeight=0 Success",
            "ModifyVpnPbrRouteEntryPriority Weight=0 NewPriority=101 InvalidParameter",
            "ModifyVpnPbrRouteEntryPriority Weight=0 NewPriority=3 Success",
            "ModifyVpnPbrRouteEntryAttribute Weight=0 Priority=3 MissingNewWeight",
            "ModifyVpnPbrRouteEntryAttribute Weight=0 Priority=3 NewWeight=100 NewPriority=7 Success",
        ],
    );
    let e = &f.st.world.gateways["vpn-a"].entries[0];
    assert_eq!((e.weight, e.priority, e.published), (100, 7, false));
    let publish = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a1"),
        ("RouteType", "pbr"),
        ("PublishVpc", "true"),
    ];
    assert_eq!(f.code("PublishVpnRouteEntry", &publish), "Success");
    f.settle();
    assert!(f.st.world.gateways["vpn-a"].entries[0].published);
    f.runs(
        &key,
        &[
            "DeleteVpnPbrRouteEntry Weight=100 Priority=8 InvalidRouteEntry.NotFound",
            "DeleteVpnPbrRouteEntry Weight=100 Priority=7 Success",
        ],
    );
    assert_eq!(f.st.world.gateways["vpn-a"].entries.len(), 2);
}

#[test]
fn describe_errors_and_connections() {
    let mut f = Fixture::new();
    assert_eq!(
        f.code("DescribeVpnGateway", &[("VpnGatewayId", "vpn-zz")]),
        "InvalidVpnGatewayInstanceId.NotFound"
    );
    assert_eq!(f.code("DescribeVpnGateway", &[]), "MissingVpnGatewayId");
    assert_eq!(
        f.code(
            "DescribeVpnGateway",
            &[("VpnGatewayId", "vpn-a"), ("RegionId", "cn-beijing")]
        ),
        "InvalidRegionId.NotFound"
    );
    assert_eq!(
        f.code("DescribeVpnConnection", &[("VpnConnectionId", "vco-zz")]),
        "InvalidVpnConnectionInstanceId.NotFound"
    );
    let list = f
        .call(
            "DescribeVpnConnections",
            &[("VpnGatewayId", "vpn-a"), ("PageSize", "2")],
        )
        .unwrap();
    assert_eq!(list["TotalCount"], 3);
    assert_eq!(
        list["VpnConnections"]["VpnConnection"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Gateways of the newer behaviours: `vpn-async` (on_active visibility), `vpn-dual`
/// (dual-tunnel), `vpn-a`/`vpn-b` in one VPC, `vpn-c` in another. `{settings}` is replaced.
const CONFIG2: &str = r#"
settings: {task_conflict_window_ms: 200, {settings}}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-async, region: cn-hangzhou, vpc_id: vpc-3, priority_support: true, update_duration_ms: 1000, visibility: on_active}
  - {id: vpn-dual, region: cn-hangzhou, vpc_id: vpc-4, priority_support: true, update_duration_ms: 1000, dual_tunnel: true}
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1, priority_support: true, update_duration_ms: 1000}
  - {id: vpn-b, region: cn-hangzhou, vpc_id: vpc-1, update_duration_ms: 1000}
  - {id: vpn-c, region: cn-hangzhou, vpc_id: vpc-2, update_duration_ms: 1000}
vpn_connections: [
  {id: vco-s1, gateway_id: vpn-async}, {id: vco-s2, gateway_id: vpn-async},
  {id: vco-d1, gateway_id: vpn-dual}, {id: vco-d2, gateway_id: vpn-dual},
  {id: vco-a1, gateway_id: vpn-a}, {id: vco-b1, gateway_id: vpn-b}, {id: vco-c1, gateway_id: vpn-c},
]
"#;

/// `settings` is YAML flow-map content; the shuffle seed is 42 unless it names another.
fn fixture2(settings: &str) -> Fixture {
    let settings = if settings.contains("shuffle_seed") {
        settings.to_owned()
    } else if settings.is_empty() {
        "shuffle_seed: 42".to_owned()
    } else {
        format!("{settings}, shuffle_seed: 42")
    };
    Fixture::with(&CONFIG2.replace("{settings}", &settings))
}

/// A request's extra parameters.
type Extra<'a> = Vec<(&'a str, &'a str)>;

fn args<'a>(pairs: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().chain(extra.iter()).copied().collect()
}

fn key_of(
    gw: &'static str,
    hop: &'static str,
    dst: &'static str,
) -> [(&'static str, &'static str); 4] {
    [
        ("VpnGatewayId", gw),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", dst),
        ("NextHop", hop),
    ]
}

impl Fixture {
    /// The listed (weight, priority, state) of the entry with this destination, if listed.
    fn listed(&mut self, gw: &str, dst: &str) -> Option<(u64, u64, String)> {
        let list = self
            .call(
                "DescribeVpnPbrRouteEntries",
                &[("VpnGatewayId", gw), ("PageSize", "50")],
            )
            .unwrap();
        list["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["RouteDest"] == dst)
            .map(|e| {
                (
                    e["Weight"].as_u64().unwrap(),
                    e["Priority"].as_u64().unwrap(),
                    e["State"].as_str().unwrap().to_owned(),
                )
            })
    }

    fn status(&mut self, gw: &str) -> String {
        self.call("DescribeVpnGateway", &[("VpnGatewayId", gw)])
            .unwrap()["Status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[test]
fn on_active_changes_show_once_the_gateway_is_active() {
    let key = key_of("vpn-async", "vco-s1", "10.0.0.0/24");
    let listed = |w: u64, p: u64, s: &str| Some((w, p, s.to_owned()));
    // Listed until the change's window ends: the entry as created.
    let created = listed(100, 10, "published");
    // (mutation, its extra parameters, listed after the window)
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<(u64, u64, String)>);
    let table: Vec<Row<'_>> = vec![
        (
            "ModifyVpnPbrRouteEntryWeight",
            vec![("Weight", "100"), ("NewWeight", "0")],
            listed(0, 10, "published"),
        ),
        (
            "ModifyVpnPbrRouteEntryPriority",
            vec![("Weight", "100"), ("NewPriority", "3")],
            listed(100, 3, "published"),
        ),
        (
            "ModifyVpnPbrRouteEntryAttribute",
            vec![
                ("Weight", "100"),
                ("Priority", "10"),
                ("NewWeight", "0"),
                ("NewPriority", "4"),
            ],
            listed(0, 4, "published"),
        ),
        (
            "PublishVpnRouteEntry",
            vec![("RouteType", "pbr"), ("PublishVpc", "false")],
            listed(100, 10, "normal"),
        ),
        ("DeleteVpnPbrRouteEntry", vec![("Weight", "100")], None),
    ];
    for (action, extra, after) in table {
        let mut f = fixture2("");
        let create = f
            .create_with(&key, &[("Weight", "100"), ("PublishVpc", "true")])
            .unwrap();
        // The create answers `normal` although it publishes, and nothing is listed yet.
        assert_eq!(create["State"], "normal");
        assert_eq!(f.listed("vpn-async", "10.0.0.0/24"), None);
        assert_eq!(f.status("vpn-async"), "updating");
        f.now += 999;
        assert_eq!(f.listed("vpn-async", "10.0.0.0/24"), None, "{action}");
        f.now += 1;
        assert_eq!(f.status("vpn-async"), "active");
        assert_eq!(f.listed("vpn-async", "10.0.0.0/24"), created);
        let mut params = args(&key, &extra);
        if action == "PublishVpnRouteEntry" {
            params.retain(|(k, _)| *k != "RouteSource");
        }
        assert_eq!(f.code(action, &params), "Success", "{action}");
        assert_eq!(
            f.listed("vpn-async", "10.0.0.0/24"),
            created,
            "{action} before"
        );
        assert_eq!(
            f.st.world.gateways["vpn-async"].pending.len(),
            1,
            "{action}"
        );
        f.settle();
        assert_eq!(
            f.listed("vpn-async", "10.0.0.0/24"),
            after,
            "{action} after"
        );
        assert!(f.st.world.gateways["vpn-async"].pending.is_empty());
    }
}

#[test]
fn on_active_pending_create_is_a_duplicate_and_replays() {
    let mut f = fixture2("");
    let key = key_of("vpn-async", "vco-s1", "10.0.0.0/24");
    let first = args(
        &key,
        &[
            ("Weight", "100"),
            ("PublishVpc", "true"),
            ("ClientToken", "t1"),
        ],
    );
    let body = f.call("CreateVpnPbrRouteEntry", &first).unwrap();
    f.now += 300;
    // Another token: a duplicate of the pending create, even while the gateway updates.
    let second = args(
        &key,
        &[
            ("Weight", "0"),
            ("PublishVpc", "false"),
            ("ClientToken", "t2"),
        ],
    );
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &second),
        "VpnRouteEntry.AlreadyExists"
    );
    // The same token: the first answer again.
    assert_eq!(f.call("CreateVpnPbrRouteEntry", &first).unwrap(), body);
    // Another route on the busy gateway still waits for it.
    let other = args(
        &key_of("vpn-async", "vco-s2", "10.0.0.0/24"),
        &[("Weight", "0"), ("PublishVpc", "false")],
    );
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &other),
        "VpnGateway.Configuring"
    );
    f.settle();
    f.st.world.settle(f.now);
    assert_eq!(f.st.world.gateways["vpn-async"].entries.len(), 1);
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &second),
        "VpnRouteEntry.AlreadyExists"
    );
    // The immediate gateways keep the old order: busy first.
    let route = ["vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100"];
    assert_eq!(f.create_code(route, "false", &[]), "Success");
    f.now += 300;
    assert_eq!(f.create_code(route, "false", &[]), "VpnGateway.Configuring");
}

#[test]
fn shuffled_lists_are_deterministic_in_the_seed() {
    let orders = |settings: &str, gw: &str, hop: &'static str| -> Vec<Vec<String>> {
        let mut f = fixture2(settings);
        for i in 0..6 {
            let dst = format!("10.{i}.0.0/24");
            let c = f.create_code([gw, "192.168.1.0/24", &dst, hop, "100"], "false", &[]);
            assert_eq!(c, "Success");
            f.settle();
        }
        (0..5)
            .map(|_| {
                let list = f
                    .call("DescribeVpnPbrRouteEntries", &[("VpnGatewayId", gw)])
                    .unwrap();
                assert_eq!(list["TotalCount"], 6);
                list["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["RouteDest"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    };
    let stored: Vec<String> = (0..6).map(|i| format!("10.{i}.0.0/24")).collect();
    // (settings, gateway, its hop, shuffled)
    let table = [
        ("", "vpn-a", "vco-a1", false),
        ("shuffle_lists: true", "vpn-a", "vco-a1", true),
        ("shuffle_lists: true", "vpn-c", "vco-c1", true),
    ];
    for (settings, gw, hop, shuffled) in table {
        let first = orders(settings, gw, hop);
        assert_eq!(first, orders(settings, gw, hop), "same seed, same orders");
        for order in &first {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, stored, "every entry once");
        }
        let all_stored = first.iter().all(|o| *o == stored);
        assert_eq!(!all_stored, shuffled, "{settings} {gw}: {first:?}");
        if shuffled {
            assert!(
                first.windows(2).any(|w| w[0] != w[1]),
                "a new order per call"
            );
        }
    }
    let other_seed = orders("shuffle_lists: true, shuffle_seed: 7", "vpn-a", "vco-a1");
    assert_ne!(other_seed, orders("shuffle_lists: true", "vpn-a", "vco-a1"));
}

#[test]
fn dual_tunnel_gateways() {
    let key = key_of("vpn-dual", "vco-d1", "10.0.0.0/24");
    // Destinations: allowed on dual-tunnel gateways, refused on single-tunnel ones.
    for (gw, hop, dst, want) in [
        ("vpn-dual", "vco-d1", "0.0.0.0/0", "Success"),
        ("vpn-dual", "vco-d1", "100.64.0.0/10", "Success"),
        ("vpn-dual", "vco-d1", "100.64.1.0/24", "Success"),
        ("vpn-a", "vco-a1", "0.0.0.0/0", "IllegalParam.RouteDest"),
        ("vpn-a", "vco-a1", "100.64.1.0/24", "IllegalParam.RouteDest"),
    ] {
        let mut f = fixture2("");
        assert_eq!(
            f.create(gw, "192.168.1.0/24", dst, hop, "100"),
            want,
            "{gw} {dst}"
        );
    }
    let mut f = fixture2("");
    let created = f
        .create_with(&key, &[("Weight", "0"), ("PublishVpc", "false")])
        .unwrap();
    assert_eq!(created["Weight"], 100, "the weight does not take effect");
    assert!(
        created.get("NextHopTunnelId").is_none(),
        "not in the create answer's model"
    );
    f.settle();
    // Two connections with the same source and destination: no active/standby pair rule.
    assert_eq!(
        f.create("vpn-dual", "192.168.1.0/24", "10.0.0.0/24", "vco-d2", "100"),
        "Success"
    );
    let list = f
        .call(
            "DescribeVpnPbrRouteEntries",
            &[("VpnGatewayId", "vpn-dual")],
        )
        .unwrap();
    let item = &list["VpnPbrRouteEntries"]["VpnPbrRouteEntry"][0];
    assert_eq!(
        (item["Weight"].as_u64(), item["NextHopTunnelId"].as_str()),
        (Some(100), Some("tun-d1-1"))
    );
    let conn = f
        .call("DescribeVpnConnection", &[("VpnConnectionId", "vco-d1")])
        .unwrap();
    let tunnels = &conn["TunnelOptionsSpecification"]["TunnelOptions"];
    assert_eq!(
        (tunnels[0]["TunnelId"].as_str(), tunnels[0]["Role"].as_str()),
        (Some("tun-d1-1"), Some("master"))
    );
    assert_eq!(tunnels[1]["Role"], "slave");
    let single = f
        .call("DescribeVpnConnection", &[("VpnConnectionId", "vco-a1")])
        .unwrap();
    assert!(single.get("TunnelOptionsSpecification").is_none());
    let gw = f
        .call("DescribeVpnGateway", &[("VpnGatewayId", "vpn-dual")])
        .unwrap();
    assert_eq!(gw["DisasterRecoveryInternetIp"], "203.0.113.11");
    assert_eq!(gw["DisasterRecoveryVSwitchId"], "vsw-vpn-dual-dr");
    let gw = f
        .call("DescribeVpnGateway", &[("VpnGatewayId", "vpn-a")])
        .unwrap();
    assert!(
        gw.get("DisasterRecoveryInternetIp").is_none()
            && gw.get("DisasterRecoveryVSwitchId").is_none()
    );

    // Weight changes: accepted without effect (default) or refused; priority through
    // ModifyVpnPbrRouteEntryAttribute (or ...Priority). The repeated Weight is not compared.
    // (settings, action, extra, code, listed weight and priority after)
    type Row<'a> = (&'a str, &'a str, &'a str, &'a str, (u64, u64));
    let table: [Row<'_>; 6] = [
        (
            "",
            "ModifyVpnPbrRouteEntryWeight",
            "Weight=0 NewWeight=0",
            "Success",
            (100, 10),
        ),
        (
            "dual_tunnel_weight_change: refuse",
            "ModifyVpnPbrRouteEntryWeight",
            "Weight=100 NewWeight=0",
            "VpnPbrRouteEntryWeight.NotSupport",
            (100, 10),
        ),
        (
            "",
            "ModifyVpnPbrRouteEntryAttribute",
            "Weight=100 Priority=10 NewPriority=5",
            "Success",
            (100, 5),
        ),
        (
            "",
            "ModifyVpnPbrRouteEntryAttribute",
            "Weight=100 Priority=10 NewWeight=0 NewPriority=5",
            "Success",
            (100, 5),
        ),
        (
            "dual_tunnel_weight_change: refuse",
            "ModifyVpnPbrRouteEntryAttribute",
            "Weight=100 Priority=10 NewWeight=0 NewPriority=5",
            "VpnPbrRouteEntryWeight.NotSupport",
            (100, 10),
        ),
        (
            "dual_tunnel_weight_change: refuse",
            "ModifyVpnPbrRouteEntryPriority",
            "Weight=0 NewPriority=6",
            "Success",
            (100, 6),
        ),
    ];
    for (settings, action, extra, want, after) in table {
        let mut f = fixture2(settings);
        f.create("vpn-dual", "192.168.1.0/24", "10.0.0.0/24", "vco-d1", "0");
        let extra = name_values(extra.split_whitespace());
        assert_eq!(
            f.code(action, &args(&key, &extra)),
            want,
            "{settings} {action} {extra:?}"
        );
        f.settle();
        let (w, p, _) = f.listed("vpn-dual", "10.0.0.0/24").unwrap();
        assert_eq!((w, p), after, "{settings} {action}");
    }
    let mut f = fixture2("");
    f.create("vpn-dual", "192.168.1.0/24", "10.0.0.0/24", "vco-d1", "0");
    assert_eq!(
        f.code("DeleteVpnPbrRouteEntry", &args(&key, &[("Weight", "0")])),
        "Success"
    );
}

#[test]
fn cross_gateway_conflict() {
    // (setting on, gateway, hop, publish, destination, code)
    let table = [
        (false, "vpn-b", "vco-b1", "false", "10.0.0.0/24", "Success"),
        (
            true,
            "vpn-b",
            "vco-b1",
            "false",
            "10.0.0.0/24",
            "VpnRouteEntry.Conflict",
        ),
        (true, "vpn-b", "vco-b1", "false", "10.1.0.0/24", "Success"),
        (
            true,
            "vpn-b",
            "vco-b1",
            "true",
            "10.9.0.0/24",
            "OperationFailed.RouteConflict",
        ),
        (
            false,
            "vpn-b",
            "vco-b1",
            "true",
            "10.9.0.0/24",
            "OperationFailed.RouteConflict",
        ),
        (true, "vpn-c", "vco-c1", "false", "10.0.0.0/24", "Success"),
        // Its own gateway: the usual duplicate rule.
        (
            true,
            "vpn-a",
            "vco-a1",
            "false",
            "10.0.0.0/24",
            "VpnRouteEntry.AlreadyExists",
        ),
    ];
    for (on, gw, hop, publish, dst, want) in table {
        let mut f = fixture2(if on {
            "cross_gateway_conflict: true"
        } else {
            ""
        });
        for (d, p) in [("10.0.0.0/24", "false"), ("10.9.0.0/24", "true")] {
            let c = f.code(
                "CreateVpnPbrRouteEntry",
                &args(
                    &key_of("vpn-a", "vco-a1", d),
                    &[("Weight", "100"), ("PublishVpc", p)],
                ),
            );
            assert_eq!(c, "Success");
            f.settle();
        }
        let got = f.code(
            "CreateVpnPbrRouteEntry",
            &args(
                &key_of(gw, hop, dst),
                &[("Weight", "100"), ("PublishVpc", publish)],
            ),
        );
        assert_eq!(got, want, "on={on} {gw} {dst} publish={publish}");
    }
}

#[test]
fn deleting_gateway_refuses_changes_then_is_gone() {
    let key = key_of("vpn-a", "vco-a1", "10.0.0.0/24");
    let table: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "CreateVpnPbrRouteEntry",
            args(
                &key,
                &[
                    ("Weight", "0"),
                    ("PublishVpc", "false"),
                    ("RouteSource", "192.168.2.0/24"),
                ],
            ),
        ),
        ("DeleteVpnPbrRouteEntry", args(&key, &[("Weight", "100")])),
        (
            "ModifyVpnPbrRouteEntryWeight",
            args(&key, &[("Weight", "100"), ("NewWeight", "0")]),
        ),
        (
            "ModifyVpnPbrRouteEntryPriority",
            args(&key, &[("Weight", "100"), ("NewPriority", "3")]),
        ),
        (
            "ModifyVpnPbrRouteEntryAttribute",
            args(
                &key,
                &[("Weight", "100"), ("Priority", "10"), ("NewPriority", "3")],
            ),
        ),
        (
            "PublishVpnRouteEntry",
            vec![
                ("VpnGatewayId", "vpn-a"),
                ("RouteDest", "10.0.0.0/24"),
                ("NextHop", "vco-a1"),
                ("RouteType", "pbr"),
                ("PublishVpc", "true"),
            ],
        ),
    ];
    for (action, params) in table {
        let mut f = fixture2("");
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100");
        let gw = f.st.world.gateways.get_mut("vpn-a").unwrap();
        gw.base_status = "deleting".into();
        gw.business_status = "FinancialLocked".into();
        gw.status_until_ms = Some(f.now + 5_000);
        assert_eq!(
            f.code(action, &params),
            "IncorrectStatus.VpnGateway",
            "{action}"
        );
        // Reads work while it is being deleted.
        assert_eq!(f.status("vpn-a"), "deleting");
        assert!(f.listed("vpn-a", "10.0.0.0/24").is_some());
        f.now += 5_000;
        assert_eq!(
            f.code(action, &params),
            "InvalidVpnGatewayInstanceId.NotFound",
            "{action}"
        );
        assert_eq!(
            f.code("DescribeVpnConnection", &[("VpnConnectionId", "vco-a1")]),
            "InvalidVpnConnectionInstanceId.NotFound"
        );
    }
    // Another timed status ends in `active`.
    let mut f = fixture2("");
    let gw = f.st.world.gateways.get_mut("vpn-a").unwrap();
    gw.base_status = "provisioning".into();
    gw.status_until_ms = Some(f.now + 100);
    assert_eq!(
        f.code(
            "CreateVpnPbrRouteEntry",
            &args(&key, &[("Weight", "0"), ("PublishVpc", "false")])
        ),
        "VpnGateway.Configuring"
    );
    f.now += 100;
    assert_eq!(f.status("vpn-a"), "active");
}

#[test]
fn dry_run_checks_everything_and_changes_nothing() {
    let key = key_of("vpn-a", "vco-a1", "10.0.0.0/24");
    let dry = |extra: &[(&'static str, &'static str)]| {
        args(&key, &[("DryRun", "true"), ("PublishVpc", "true")])
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>()
    };
    // (setup; request extras as `Name=value` words; code)
    #[derive(PartialEq)]
    enum Setup {
        New,
        Existing,
        Busy,
    }
    use Setup::*;
    let table = [
        (New, "Weight=100 ClientToken=t1", "DryRunOperation"),
        (New, "Weight=50", "VpnRouteEntry.InvalidWeight"),
        (New, "Weight=100 Priority=0", "InvalidParameter"),
        (Existing, "Weight=0", "VpnRouteEntry.AlreadyExists"),
        (Busy, "Weight=100", "VpnGateway.Configuring"),
        (New, "Weight=100 NextHop=vco-b1", "InvalidNextHop.NotFound"),
        (New, "Weight=100 DryRun=perhaps", "InvalidParameter"),
    ];
    for (setup, extra, want) in table {
        let extra: Extra<'_> = extra
            .split(' ')
            .map(|kv| kv.split_once('=').expect("Name=value"))
            .collect();
        let mut f = fixture2("");
        if setup == Existing {
            f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100");
        }
        if setup == Busy {
            f.st.world.gateways.get_mut("vpn-a").unwrap().busy_until_ms = f.now + 100;
        }
        // Later pairs win in the parameter map (NextHop, DryRun overrides).
        let before = f.st.world.clone();
        let err = f.call("CreateVpnPbrRouteEntry", &dry(&extra)).unwrap_err();
        assert_eq!(err.code, want, "{extra:?}");
        if want == "DryRunOperation" {
            assert_eq!(err.status, 400);
            assert_eq!(
                err.message,
                "Request validation has been passed with DryRun flag set."
            );
        }
        assert_eq!(f.st.world, before, "a dry run changes nothing: {extra:?}");
    }
    // The token of a dry run is not spent: the real create with it succeeds, once. And
    // DryRun=false is a normal create.
    for (dry_first, last) in [(true, ("ClientToken", "t1")), (false, ("DryRun", "false"))] {
        let mut f = fixture2("");
        if dry_first {
            let _ = f.call(
                "CreateVpnPbrRouteEntry",
                &dry(&[("Weight", "100"), ("ClientToken", "t1")]),
            );
        }
        let create = args(&key, &[("Weight", "100"), ("PublishVpc", "true"), last]);
        assert_eq!(
            f.code("CreateVpnPbrRouteEntry", &create),
            "Success",
            "{last:?}"
        );
        assert_eq!(f.st.world.gateways["vpn-a"].entries.len(), 1, "{last:?}");
    }
}

/// Two accounts: `vpn-a` (with `vco-a1`) is account A's, `vpn-b` (with `vco-b1`) account B's.
const ACCOUNTS: &str = r#"
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1, account_id: "1111111111111111", update_duration_ms: 0}
  - {id: vpn-b, region: cn-hangzhou, vpc_id: vpc-2, account_id: "2222222222222222", update_duration_ms: 0}
vpn_connections:
  - {id: vco-a1, gateway_id: vpn-a}
  - {id: vco-b1, gateway_id: vpn-b}
"#;
const ACCOUNT_A: &str = "1111111111111111";
const ACCOUNT_B: &str = "2222222222222222";

#[test]
fn a_key_sees_only_its_accounts_gateways() {
    let mut f = Fixture::with(ACCOUNTS);
    let route = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "10.0.0.0/24"),
        ("RouteDest", "10.1.0.0/24"),
        ("NextHop", "vco-a1"),
        ("Weight", "100"),
    ];
    let created = f.code_as(
        ACCOUNT_A,
        "CreateVpnPbrRouteEntry",
        &args(&route, &[("PublishVpc", "false"), ("ClientToken", "t-1")]),
    );
    assert_eq!(created, "Success");
    f.settle();
    // (action, parameters): every call naming account A's gateway or connection, made with a
    // key of account B, is answered as if it did not exist; with a key of A it works.
    let gateway_not_found = "InvalidVpnGatewayInstanceId.NotFound";
    let table: Vec<(&str, Extra<'_>, &str)> = vec![
        (
            "DescribeVpnGateway",
            vec![("VpnGatewayId", "vpn-a")],
            gateway_not_found,
        ),
        (
            "DescribeVpnPbrRouteEntries",
            vec![("VpnGatewayId", "vpn-a")],
            gateway_not_found,
        ),
        ("DeleteVpnPbrRouteEntry", route.to_vec(), gateway_not_found),
        (
            "ModifyVpnPbrRouteEntryWeight",
            args(&route, &[("NewWeight", "0")]),
            gateway_not_found,
        ),
        (
            "PublishVpnRouteEntry",
            vec![
                ("VpnGatewayId", "vpn-a"),
                ("RouteDest", "10.1.0.0/24"),
                ("NextHop", "vco-a1"),
                ("RouteType", "pbr"),
                ("PublishVpc", "true"),
            ],
            gateway_not_found,
        ),
        (
            "CreateVpnPbrRouteEntry",
            args(
                &route,
                &[("RouteDest", "10.2.0.0/24"), ("PublishVpc", "false")],
            ),
            gateway_not_found,
        ),
        (
            "DescribeVpnConnection",
            vec![("VpnConnectionId", "vco-a1")],
            "InvalidVpnConnectionInstanceId.NotFound",
        ),
    ];
    for (action, pairs, code) in &table {
        assert_eq!(
            f.code_as(ACCOUNT_B, action, pairs),
            *code,
            "{action} with a key of account B"
        );
    }
    // Account B's answers changed nothing; A still sees and lists its own.
    assert_eq!(
        f.code_as(
            ACCOUNT_A,
            "DescribeVpnGateway",
            &[("VpnGatewayId", "vpn-a")]
        ),
        "Success"
    );
    assert_eq!(f.st.world.gateways["vpn-a"].entries.len(), 1);
    // A list of connections shows only the caller's own.
    let list = |f: &mut Fixture, account: &str| {
        let body = f
            .call_as(account, "DescribeVpnConnections", &[])
            .expect("list");
        let ids: Vec<String> = body["VpnConnections"]["VpnConnection"]
            .as_array()
            .expect("connections")
            .iter()
            .map(|c| c["VpnConnectionId"].as_str().unwrap_or_default().to_owned())
            .collect();
        (body["TotalCount"].clone(), ids)
    };
    assert_eq!(
        list(&mut f, ACCOUNT_B),
        (json!(1), vec!["vco-b1".to_owned()])
    );
    assert_eq!(
        list(&mut f, ACCOUNT_A),
        (json!(1), vec!["vco-a1".to_owned()])
    );
    // One account's ClientToken is not another's: B's create with A's token on B's own
    // gateway creates (it does not replay A's answer, nor refuse it as a mismatch).
    let on_b = [
        ("VpnGatewayId", "vpn-b"),
        ("RouteSource", "10.0.0.0/24"),
        ("RouteDest", "10.1.0.0/24"),
        ("NextHop", "vco-b1"),
        ("Weight", "100"),
        ("PublishVpc", "false"),
        ("ClientToken", "t-1"),
    ];
    assert_eq!(
        f.code_as(ACCOUNT_B, "CreateVpnPbrRouteEntry", &on_b),
        "Success"
    );
    assert_eq!(f.st.world.gateways["vpn-b"].entries.len(), 1);
}

/// Lists `gw` page `page` of `size`: (TotalCount, destinations shown).
fn list_page(f: &mut Fixture, gw: &str, page: usize, size: usize) -> (u64, Vec<String>) {
    let (page, size) = (page.to_string(), size.to_string());
    let list = f
        .call(
            "DescribeVpnPbrRouteEntries",
            &[
                ("VpnGatewayId", gw),
                ("PageNumber", &page),
                ("PageSize", &size),
            ],
        )
        .unwrap();
    let shown = list["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["RouteDest"].as_str().unwrap().to_owned())
        .collect();
    (list["TotalCount"].as_u64().unwrap(), shown)
}

/// `vpn-a` with entries to 10.0..10.(n-1).0.0/24, made at T0 + i.
fn with_entries(n: usize) -> Fixture {
    let mut f = Fixture::new();
    let gw = f.st.world.gateways.get_mut("vpn-a").unwrap();
    gw.entries = (0..n)
        .map(|i| PbrEntry {
            route_source: "192.168.1.0/24".into(),
            route_dest: format!("10.{i}.0.0/24"),
            next_hop: "vco-a1".into(),
            weight: 100,
            priority: 10,
            published: false,
            description: None,
            overlay_mode: "Ipsec".into(),
            create_time_ms: T0 + i as u64,
        })
        .collect();
    f
}

fn dests(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("10.{i}.0.0/24")).collect()
}

#[test]
fn a_change_waiting_for_a_list_page_is_made_just_before_that_page_is_answered() {
    let mut f = with_entries(5);
    let id = |i: usize| crate::world::EntryId {
        route_source: "192.168.1.0/24".into(),
        route_dest: format!("10.{i}.0.0/24"),
        next_hop: "vco-a1".into(),
    };
    f.st.world
        .gateways
        .get_mut("vpn-a")
        .unwrap()
        .before_list_page
        .push((2, crate::world::Change::Delete(id(0))));
    assert_eq!(list_page(&mut f, "vpn-a", 1, 2), (5, dests(0..2)));
    // Made before page 2: every later entry moves up one, 10.2 is on no page of this pass.
    assert_eq!(list_page(&mut f, "vpn-a", 2, 2), (4, dests(3..5)));
    assert_eq!(list_page(&mut f, "vpn-a", 1, 2), (4, dests(1..3)));
    // Once only.
    assert_eq!(list_page(&mut f, "vpn-a", 2, 2), (4, dests(3..5)));
}

#[test]
fn list_churn_counts_an_entry_that_the_page_asked_for_never_shows() {
    let mut f = with_entries(5);
    f.st.world.gateways.get_mut("vpn-a").unwrap().list_churn = true;
    // (page, size, TotalCount, shown): the churned route is last, or first when the last page
    // is asked for (which then moves by one); a list that fits one page is left alone.
    let table = [
        (1, 2, 6, dests(0..2)),
        (2, 2, 6, dests(2..4)),
        (3, 2, 6, dests(3..5)),
        (1, 5, 6, dests(0..5)),
        (2, 5, 6, dests(4..5)),
        (1, 6, 5, dests(0..5)),
        (1, 50, 5, dests(0..5)),
    ];
    for (page, size, total, shown) in table {
        assert_eq!(
            list_page(&mut f, "vpn-a", page, size),
            (total, shown),
            "page {page} of {size}"
        );
    }
    assert_eq!(
        f.st.world.gateways["vpn-a"].entries.len(),
        5,
        "the churned route exists only around each answer"
    );
}

#[test]
fn a_token_first_remembered_longer_than_the_ttl_ago_is_forgotten() {
    const DAY: u64 = 86_400_000;
    let with_token = |dst: &'static str, token: &'static str| {
        args(
            &key_of("vpn-a", "vco-a1", dst),
            &[
                ("Weight", "100"),
                ("PublishVpc", "false"),
                ("ClientToken", token),
            ],
        )
    };
    let first = with_token("10.0.0.0/24", "t1");
    let other = with_token("10.1.0.0/24", "t1");
    // (settings, time after the first create, second call, its code, it replays the first
    // answer, entries after it)
    type Row<'a> = (&'a str, u64, &'a Extra<'a>, &'a str, bool, usize);
    let table: [Row<'_>; 7] = [
        ("", 10 * DAY, &first, "Success", true, 1),
        (
            "",
            10 * DAY,
            &other,
            "IdempotentParameterMismatch",
            false,
            1,
        ),
        (
            "client_token_ttl_ms: 60000",
            60_000,
            &first,
            "Success",
            true,
            1,
        ),
        (
            "client_token_ttl_ms: 60000",
            60_000,
            &other,
            "IdempotentParameterMismatch",
            false,
            1,
        ),
        // Forgotten: a new call, judged as one (no mismatch, no replay).
        (
            "client_token_ttl_ms: 60000",
            60_001,
            &first,
            "VpnRouteEntry.AlreadyExists",
            false,
            1,
        ),
        (
            "client_token_ttl_ms: 60000",
            60_001,
            &other,
            "Success",
            false,
            2,
        ),
        // A new call meets the gateway as it is: still updating after the first create.
        (
            "client_token_ttl_ms: 0",
            1,
            &first,
            "TaskConflict",
            false,
            1,
        ),
    ];
    for (settings, after, second, want, replays, entries) in table {
        let mut f = fixture2(settings);
        let answer = f.call("CreateVpnPbrRouteEntry", &first).unwrap();
        f.now += after;
        let got = f.call("CreateVpnPbrRouteEntry", second);
        let code = got
            .as_ref()
            .map_or_else(|e| e.code.to_string(), |_| "Success".into());
        let case = format!("{settings} +{after} ms {second:?}");
        assert_eq!(code, want, "{case}");
        assert_eq!(got.ok() == Some(answer), replays, "{case}");
        assert_eq!(
            f.st.world.gateways["vpn-a"].entries.len(),
            entries,
            "{case}"
        );
    }

    // A forgotten token that a new call succeeds with is remembered again from that call.
    let mut f = fixture2("client_token_ttl_ms: 60000");
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &first), "Success");
    f.now += 60_001;
    let renewed = f.call("CreateVpnPbrRouteEntry", &other).unwrap();
    f.now += 60_000;
    assert_eq!(f.call("CreateVpnPbrRouteEntry", &other).unwrap(), renewed);
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &first),
        "IdempotentParameterMismatch"
    );
    // The other mutations too: a delete replays within the retention, runs again after it.
    let delete = args(
        &key_of("vpn-a", "vco-a1", "10.0.0.0/24"),
        &[("Weight", "100"), ("ClientToken", "d1")],
    );
    f.settle();
    assert_eq!(f.code("DeleteVpnPbrRouteEntry", &delete), "Success");
    f.now += 60_000;
    assert_eq!(f.code("DeleteVpnPbrRouteEntry", &delete), "Success");
    f.now += 1;
    assert_eq!(
        f.code("DeleteVpnPbrRouteEntry", &delete),
        "InvalidRouteEntry.NotFound"
    );
    assert_eq!(f.st.world.gateways["vpn-a"].entries.len(), 1);
}

/// `vpn-async` (`on_active`, 1000 ms updates, `{gateway}` added) and `vpn-a` (`immediate`);
/// `{settings}` is added to the settings.
const LAG: &str = r#"
settings: {task_conflict_window_ms: 200{settings}}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-async, region: cn-hangzhou, vpc_id: vpc-3, update_duration_ms: 1000, visibility: on_active{gateway}}
  - {id: vpn-a, region: cn-hangzhou, vpc_id: vpc-1, update_duration_ms: 1000}
vpn_connections:
  - {id: vco-s1, gateway_id: vpn-async}
  - {id: vco-a1, gateway_id: vpn-a}
"#;

fn lag_fixture(settings: &str, gateway: &str) -> Fixture {
    let more = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!(", {s}")
        }
    };
    Fixture::with(
        &LAG.replace("{settings}", &more(settings))
            .replace("{gateway}", &more(gateway)),
    )
}

#[test]
fn with_a_list_lag_the_list_shows_a_change_that_long_after_the_gateway_is_active() {
    // (settings, the gateway's own, gateway, hop, ms after the create when the list shows it)
    let table = [
        ("", "", "vpn-async", "vco-s1", 1000),
        ("list_lag_ms: 0", "", "vpn-async", "vco-s1", 1000),
        ("list_lag_ms: 500", "", "vpn-async", "vco-s1", 1500),
        (
            "list_lag_ms: 500",
            "list_lag_ms: 0",
            "vpn-async",
            "vco-s1",
            1000,
        ),
        ("", "list_lag_ms: 300", "vpn-async", "vco-s1", 1300),
        // No pending changes on an `immediate` gateway, so nothing lags.
        ("list_lag_ms: 500", "", "vpn-a", "vco-a1", 0),
    ];
    for (settings, own, gw, hop, shows_after) in table {
        let case = format!("{settings} / {own} / {gw}");
        let mut f = lag_fixture(settings, own);
        let c = f.code(
            "CreateVpnPbrRouteEntry",
            &args(
                &key_of(gw, hop, "10.0.0.0/24"),
                &[("Weight", "100"), ("PublishVpc", "true")],
            ),
        );
        assert_eq!(c, "Success", "{case}");
        if shows_after > 0 {
            f.now = T0 + shows_after - 1;
            assert_eq!(f.listed(gw, "10.0.0.0/24"), None, "{case}");
        }
        // The gateway's status does not lag: `active` once its update window is over.
        let status = if f.now >= T0 + 1000 {
            "active"
        } else {
            "updating"
        };
        assert_eq!(f.status(gw), status, "{case}");
        f.now = T0 + shows_after;
        assert_eq!(
            f.listed(gw, "10.0.0.0/24"),
            Some((100, 10, "published".to_owned())),
            "{case}"
        );
        let lagging = &f.st.world.gateways[gw].lagging;
        assert!(lagging.is_empty(), "{case}: {lagging:?}");
    }
}

#[test]
fn a_lagging_change_counts_for_the_rules_and_shows_before_later_ones() {
    let mut f = lag_fixture("list_lag_ms: 500", "");
    let key = key_of("vpn-async", "vco-s1", "10.0.0.0/24");
    let create = args(&key, &[("Weight", "100"), ("PublishVpc", "false")]);
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &create), "Success");
    f.now += 1000;
    assert_eq!(f.status("vpn-async"), "active");
    assert_eq!(f.listed("vpn-async", "10.0.0.0/24"), None);
    let gw = &f.st.world.gateways["vpn-async"];
    assert_eq!((gw.pending.len(), gw.lagging.len()), (0, 1));
    // Applied but not listed: a second create is a duplicate, a delete finds the route.
    assert_eq!(
        f.code("CreateVpnPbrRouteEntry", &create),
        "VpnRouteEntry.AlreadyExists"
    );
    let delete = args(&key, &[("Weight", "100")]);
    assert_eq!(f.code("DeleteVpnPbrRouteEntry", &delete), "Success");
    // The create shows at 1500; the delete, applied at 2000, shows at 2500.
    f.now = T0 + 1500;
    assert_eq!(
        f.listed("vpn-async", "10.0.0.0/24"),
        Some((100, 10, "normal".to_owned()))
    );
    assert_eq!(f.status("vpn-async"), "updating");
    f.now = T0 + 2499;
    assert_eq!(f.status("vpn-async"), "active");
    assert!(f.listed("vpn-async", "10.0.0.0/24").is_some());
    assert_eq!(
        f.code("DeleteVpnPbrRouteEntry", &delete),
        "InvalidRouteEntry.NotFound",
        "the lagging delete counts"
    );
    f.now = T0 + 2500;
    assert_eq!(f.listed("vpn-async", "10.0.0.0/24"), None);
    let gw = &f.st.world.gateways["vpn-async"];
    assert!(gw.pending.is_empty() && gw.lagging.is_empty() && gw.entries.is_empty());
}
