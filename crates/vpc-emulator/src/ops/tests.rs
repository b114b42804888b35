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
vpn_connections:
  - {id: vco-a1, gateway_id: vpn-a}
  - {id: vco-a2, gateway_id: vpn-a}
  - {id: vco-a3, gateway_id: vpn-a}
  - {id: vco-b1, gateway_id: vpn-b}
  - {id: vco-c1, gateway_id: vpn-c}
"#;

struct Fixture {
    st: EmuState,
    now: u64,
}

impl Fixture {
    fn new() -> Self {
        let cfg = Config::parse(CONFIG, "test").unwrap();
        Self {
            st: EmuState {
                world: World::from_config(&cfg, T0),
                tokens: Default::default(),
            },
            now: T0,
        }
    }

    /// Runs `action` with `pairs`, then lets the gateway settle (unless `settle` is false).
    fn call(&mut self, action: &str, pairs: &[(&str, &str)]) -> Result<Value, ApiError> {
        let mut map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.entry("RegionId".into())
            .or_insert_with(|| "cn-hangzhou".into());
        run(action, &Params::new(map), &mut self.st, self.now).map(|o| o.body)
    }

    fn code(&mut self, action: &str, pairs: &[(&str, &str)]) -> String {
        match self.call(action, pairs) {
            Ok(_) => "Success".into(),
            Err(e) => e.code.into_owned(),
        }
    }

    fn settle(&mut self) {
        self.now += 2_000;
    }

    fn create(&mut self, gw: &str, src: &str, dst: &str, hop: &str, weight: &str) -> String {
        let c = self.code(
            "CreateVpnPbrRouteEntry",
            &[
                ("VpnGatewayId", gw),
                ("RouteSource", src),
                ("RouteDest", dst),
                ("NextHop", hop),
                ("Weight", weight),
                ("PublishVpc", "true"),
            ],
        );
        self.settle();
        c
    }
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
    let args = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a1"),
        ("Weight", "100"),
        ("PublishVpc", "true"),
    ];
    assert_eq!(f.code("CreateVpnPbrRouteEntry", &args), "Success");
    assert_eq!(status(&mut f), "updating");
    f.now += 100;
    let other = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.2.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a2"),
        ("Weight", "0"),
        ("PublishVpc", "true"),
    ];
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
    let mut args = vec![
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a1"),
        ("Weight", "100"),
        ("PublishVpc", "true"),
        ("ClientToken", "tok-1"),
    ];
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
    let del = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a1"),
        ("Weight", "100"),
        ("ClientToken", "del-1"),
    ];
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
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/33", "10.0.0.0/24", "vco-a1", "100"),
        "OperationFailed.InvalidCidrBlock"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.1/24", "10.0.0.0/24", "vco-a1", "100"),
        "OperationFailed.InvalidCidrBlock"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "0.0.0.0/0", "vco-a1", "100"),
        "IllegalParam.RouteDest"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "100.64.1.0/24", "vco-a1", "100"),
        "IllegalParam.RouteDest"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "100.0.0.0/8", "vco-a1", "100"),
        "IllegalParam.RouteDest"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "50"),
        "VpnRouteEntry.InvalidWeight"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-b1", "100"),
        "InvalidNextHop.NotFound"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-zz", "100"),
        "InvalidNextHop.NotFound"
    );
    assert_eq!(
        f.create("vpn-zz", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100"),
        "InvalidVpnGatewayInstanceId.NotFound"
    );
    assert_eq!(
        f.create("vpn-c", "192.168.1.0/24", "10.0.0.0/24", "vco-c1", "100"),
        "VpnGateway.FinancialLocked"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "abc"),
        "InvalidParameter"
    );
    // Priority on a gateway without support.
    let c = f.code(
        "CreateVpnPbrRouteEntry",
        &[
            ("VpnGatewayId", "vpn-b"),
            ("RouteSource", "192.168.1.0/24"),
            ("RouteDest", "10.0.0.0/24"),
            ("NextHop", "vco-b1"),
            ("Weight", "100"),
            ("PublishVpc", "false"),
            ("Priority", "5"),
        ],
    );
    assert_eq!(c, "VpnPbrRouteEntryPriority.NotSupport");
    // Duplicates and the active/standby pair.
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "100"),
        "Success"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a1", "0"),
        "VpnRouteEntry.AlreadyExists"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a2", "100"),
        "VpnRouteEntry.BackupRoute"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a2", "0"),
        "Success"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.0.0.0/24", "vco-a3", "0"),
        "VpnRouteEntry.BackupRoute"
    );
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
    assert_eq!(
        f.create("vpn-b", "172.16.0.0/16", "10.0.0.0/24", "vco-b1", "100"),
        "OperationFailed.RouteConflict"
    );
    // VPC route quota (2 published destinations on vpn-a), then the PBR quota (3 routes).
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.1.0.0/24", "vco-a1", "100"),
        "Success"
    );
    assert_eq!(
        f.create("vpn-a", "192.168.1.0/24", "10.2.0.0/24", "vco-a1", "100"),
        "QuotaExceeded.VpnRouteEntry"
    );
    let c = f.code(
        "CreateVpnPbrRouteEntry",
        &[
            ("VpnGatewayId", "vpn-a"),
            ("RouteSource", "192.168.9.0/24"),
            ("RouteDest", "10.2.0.0/24"),
            ("NextHop", "vco-a1"),
            ("Weight", "100"),
            ("PublishVpc", "false"),
        ],
    );
    assert_eq!(c, "Success");
    f.settle();
    let c = f.code(
        "CreateVpnPbrRouteEntry",
        &[
            ("VpnGatewayId", "vpn-a"),
            ("RouteSource", "192.168.9.0/24"),
            ("RouteDest", "10.3.0.0/24"),
            ("NextHop", "vco-a1"),
            ("Weight", "100"),
            ("PublishVpc", "false"),
        ],
    );
    assert_eq!(c, "Resource.QuotaFull");
}

#[test]
fn modify_delete_publish_and_paging() {
    let mut f = Fixture::new();
    for i in 0..3 {
        let dst = format!("10.{i}.0.0/24");
        let c = f.code(
            "CreateVpnPbrRouteEntry",
            &[
                ("VpnGatewayId", "vpn-a"),
                ("RouteSource", "192.168.1.0/24"),
                ("RouteDest", &dst),
                ("NextHop", "vco-a1"),
                ("Weight", "100"),
                ("PublishVpc", "false"),
            ],
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
    let key = [
        ("VpnGatewayId", "vpn-a"),
        ("RouteSource", "192.168.1.0/24"),
        ("RouteDest", "10.0.0.0/24"),
        ("NextHop", "vco-a1"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        key.iter().chain(extra.iter()).copied().collect()
    };
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryWeight",
            &with(&[("Weight", "0"), ("NewWeight", "0")])
        ),
        "InvalidRouteEntry.NotFound"
    );
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryWeight",
            &with(&[("Weight", "100"), ("NewWeight", "0")])
        ),
        "Success"
    );
    f.settle();
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryPriority",
            &with(&[("Weight", "0"), ("NewPriority", "101")])
        ),
        "InvalidParameter"
    );
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryPriority",
            &with(&[("Weight", "0"), ("NewPriority", "3")])
        ),
        "Success"
    );
    f.settle();
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryAttribute",
            &with(&[("Weight", "0"), ("Priority", "3")])
        ),
        "MissingNewWeight"
    );
    assert_eq!(
        f.code(
            "ModifyVpnPbrRouteEntryAttribute",
            &with(&[
                ("Weight", "0"),
                ("Priority", "3"),
                ("NewWeight", "100"),
                ("NewPriority", "7")
            ])
        ),
        "Success"
    );
    f.settle();
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
    assert_eq!(
        f.code(
            "DeleteVpnPbrRouteEntry",
            &with(&[("Weight", "100"), ("Priority", "8")])
        ),
        "InvalidRouteEntry.NotFound"
    );
    assert_eq!(
        f.code(
            "DeleteVpnPbrRouteEntry",
            &with(&[("Weight", "100"), ("Priority", "7")])
        ),
        "Success"
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
