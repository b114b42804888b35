//! Parsing of every operation's answer (JSON and XML, the seed's sample included), error bodies,
//! and a property test: no body and no status code panics the parser.

use alicloud_vpc_client::rpc::parse_response;
use alicloud_vpc_client::*;
use proptest::prelude::*;

fn ok<T: serde::de::DeserializeOwned>(body: &str) -> T {
    match parse_response::<T>("Test", 200, None, None, body.as_bytes()) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

const SEED_JSON: &str = r#"{
  "NextHop" : "vco-bp15oes1py4i66rmd****",
  "Weight" : 0,
  "RouteDest" : "10.0.0.0/24",
  "RequestId" : "5BE01CD7-5A50-472D-AC14-CA181C5C03BE",
  "Description" : "desctest",
  "State" : "normal",
  "CreateTime" : 1492747187000,
  "OverlayMode" : "Ipsec",
  "RouteSource" : "192.168.1.0/24",
  "VpnInstanceId" : "vpn-bp1cmw7jh1nfe43m9****",
  "Priority" : 10
}"#;

const SEED_XML: &str = r#"<CreateVpnPbrRouteEntryResponse>
    <NextHop>vco-bp15oes1py4i66rmd****</NextHop>
    <Weight>0</Weight>
    <RouteDest>10.0.0.0/24</RouteDest>
    <RequestId>5BE01CD7-5A50-472D-AC14-CA181C5C03BE</RequestId>
    <Description>desctest</Description>
    <State>normal</State>
    <CreateTime>1492747187000</CreateTime>
    <OverlayMode>Ipsec</OverlayMode>
    <RouteSource>192.168.1.0/24</RouteSource>
    <VpnInstanceId>vpn-bp1cmw7jh1nfe43m9****</VpnInstanceId>
    <Priority>10</Priority>
</CreateVpnPbrRouteEntryResponse>"#;

#[test]
fn seed_sample_in_json_and_xml() {
    let expected = CreateVpnPbrRouteEntryResponse {
        request_id: "5BE01CD7-5A50-472D-AC14-CA181C5C03BE".into(),
        fields: EntryFields {
            vpn_instance_id: Some("vpn-bp1cmw7jh1nfe43m9****".into()),
            route_source: "192.168.1.0/24".into(),
            route_dest: "10.0.0.0/24".into(),
            next_hop: "vco-bp15oes1py4i66rmd****".into(),
            weight: 0,
            priority: Some(10),
            description: Some("desctest".into()),
            create_time: Some(1_492_747_187_000),
        },
        overlay_mode: Some("Ipsec".into()),
        state: Some("normal".into()),
    };
    assert_eq!(ok::<CreateVpnPbrRouteEntryResponse>(SEED_JSON), expected);
    assert_eq!(ok::<CreateVpnPbrRouteEntryResponse>(SEED_XML), expected);
    let with_ct = parse_response::<CreateVpnPbrRouteEntryResponse>(
        "Test",
        200,
        Some("application/xml"),
        None,
        SEED_XML.as_bytes(),
    )
    .unwrap();
    assert_eq!(with_ct, expected);
}

#[test]
fn request_id_only_answers() {
    let r: ActionResponse = ok(r#"{"RequestId":"R-1","Extra":{"x":1}}"#);
    assert_eq!(r.request_id, "R-1");
    let r: ActionResponse = ok(
        "<DeleteVpnPbrRouteEntryResponse><RequestId>R-2</RequestId></DeleteVpnPbrRouteEntryResponse>",
    );
    assert_eq!(r.request_id, "R-2");
}

#[test]
fn describe_pbr_entries_json_xml_and_empty() {
    let json = r#"{"RequestId":"R","TotalCount":2,"PageNumber":1,"PageSize":50,
      "VpnPbrRouteEntries":{"VpnPbrRouteEntry":[
        {"VpnInstanceId":"vpn-1","RouteSource":"192.168.1.0/24","RouteDest":"10.0.0.0/24","NextHop":"vco-1","Weight":100,"Priority":10,"State":"published","CreateTime":1563873294331,"NewField":"ignored"},
        {"VpnInstanceId":"vpn-1","RouteSource":"192.168.2.0/24","RouteDest":"10.0.1.0/24","NextHop":"vco-2","NextHopTunnelId":"tun-1","Weight":0,"State":"normal"}]}}"#;
    let r: DescribeVpnPbrRouteEntriesResponse = ok(json);
    assert_eq!(r.total_count, 2);
    assert_eq!(r.page_size, Some(50));
    assert_eq!(r.vpn_pbr_route_entries.len(), 2);
    assert!(r.vpn_pbr_route_entries[0].is_published());
    assert_eq!(r.vpn_pbr_route_entries[0].fields.priority, Some(10));
    assert_eq!(
        r.vpn_pbr_route_entries[1].next_hop_tunnel_id.as_deref(),
        Some("tun-1")
    );
    assert_eq!(r.vpn_pbr_route_entries[1].fields.priority, None);

    // One entry in XML is a single element, not a list.
    let xml = "<DescribeVpnPbrRouteEntriesResponse><RequestId>R</RequestId><TotalCount>1</TotalCount>\
        <PageNumber>1</PageNumber><PageSize>50</PageSize><VpnPbrRouteEntries><VpnPbrRouteEntry>\
        <RouteSource>192.168.1.0/24</RouteSource><RouteDest>10.0.0.0/24</RouteDest><NextHop>vco-1</NextHop>\
        <Weight>100</Weight><Priority>5</Priority><State>published</State><CreateTime>1</CreateTime>\
        </VpnPbrRouteEntry></VpnPbrRouteEntries></DescribeVpnPbrRouteEntriesResponse>";
    let r: DescribeVpnPbrRouteEntriesResponse = ok(xml);
    assert_eq!(r.vpn_pbr_route_entries.len(), 1);
    assert_eq!(r.vpn_pbr_route_entries[0].fields.priority, Some(5));

    for empty in [
        r#"{"RequestId":"R","TotalCount":0,"PageNumber":1,"PageSize":50,"VpnPbrRouteEntries":{"VpnPbrRouteEntry":[]}}"#,
        r#"{"RequestId":"R","TotalCount":0,"VpnPbrRouteEntries":{}}"#,
        r#"{"RequestId":"R","TotalCount":0}"#,
        "<X><RequestId>R</RequestId><TotalCount>0</TotalCount><VpnPbrRouteEntries/></X>",
    ] {
        let r: DescribeVpnPbrRouteEntriesResponse = ok(empty);
        assert!(r.vpn_pbr_route_entries.is_empty(), "{empty}");
    }
}

#[test]
fn describe_vpn_gateway() {
    let json = r#"{"RequestId":"R","VpnGatewayId":"vpn-1","VpcId":"vpc-1","VSwitchId":"vsw-1",
      "Status":"updating","BusinessStatus":"Normal","Spec":"5","EnableBgp":false,"CreateTime":1,
      "Tag":"{\"VpnEnableBgp\":\"true\",\"PbrPriority\":\"true\"}","Tags":{"Tag":[]},"ReservationData":{}}"#;
    let r: DescribeVpnGatewayResponse = ok(json);
    assert_eq!(r.status, "updating");
    assert!(!r.is_active());
    assert_eq!(r.v_switch_id.as_deref(), Some("vsw-1"));
    assert!(r.supports_pbr_priority());
    assert_eq!(r.enable_bgp, Some(false));
    let xml = "<DescribeVpnGatewayResponse><RequestId>R</RequestId><VpnGatewayId>vpn-1</VpnGatewayId>\
        <Status>active</Status><EnableBgp>true</EnableBgp><Spec>5M</Spec></DescribeVpnGatewayResponse>";
    let r: DescribeVpnGatewayResponse = ok(xml);
    assert!(r.is_active());
    assert!(!r.supports_pbr_priority());
    assert_eq!(r.enable_bgp, Some(true));
}

#[test]
fn describe_vpn_connection() {
    let json = r#"{"RequestId":"R","VpnConnectionId":"vco-1","VpnGatewayId":"vpn-1","State":"active",
      "Status":"ipsec_sa_established","LocalSubnet":"192.168.1.0/24","RemoteSubnet":"10.0.0.0/24,10.0.1.0/24",
      "IkeConfig":{"Psk":"not-parsed"},"CreateTime":1492753580000}"#;
    let r: DescribeVpnConnectionResponse = ok(json);
    assert_eq!(r.vpn_gateway_id.as_deref(), Some("vpn-1"));
    assert_eq!(r.status.as_deref(), Some("ipsec_sa_established"));
}

#[test]
fn missing_required_fields_and_wrong_types_are_typed_errors() {
    for body in [
        r#"{"RequestId":"R","Weight":0}"#,
        r#"{"RequestId":"R","RouteSource":"a","RouteDest":"b","NextHop":"c","Weight":"heavy"}"#,
        r#"{"RequestId":"R","RouteSource":"a","RouteDest":"b","NextHop":"c","Weight":-1}"#,
        r#"[1,2]"#,
        "not a body",
    ] {
        let e = parse_response::<CreateVpnPbrRouteEntryResponse>(
            "Create",
            200,
            None,
            None,
            body.as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(e, CloudError::MalformedResponse { .. }),
            "{body}: {e}"
        );
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(e.code(), "MalformedResponse");
    }
    let e =
        parse_response::<ActionResponse>("Delete", 200, None, None, br#"{"RequestId":"R9","X":1}"#);
    assert!(e.is_ok());
    let e = parse_response::<DescribeVpnPbrRouteEntriesResponse>(
        "Describe",
        200,
        None,
        None,
        br#"{"RequestId":"R7","TotalCount":1,"VpnPbrRouteEntries":{"VpnPbrRouteEntry":[{"RouteSource":"a"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(e.request_id(), Some("R7"));
}

#[test]
fn json_and_xml_error_bodies() {
    let json = br#"{"RequestId":"6EBA1A5B","HostId":"vpc.aliyuncs.com","Code":"VpnRouteEntry.AlreadyExists","Message":"The specified route entry is already exist.","Recommend":"https://api.aliyun.com/troubleshoot?q=VpnRouteEntry.AlreadyExists"}"#;
    let e = parse_response::<ActionResponse>(
        "CreateVpnPbrRouteEntry",
        400,
        Some("application/json;charset=utf-8"),
        None,
        json,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::AlreadyExists);
    assert_eq!(e.code(), "VpnRouteEntry.AlreadyExists");
    assert_eq!(e.request_id(), Some("6EBA1A5B"));
    assert_eq!(e.http_status(), Some(400));
    assert_eq!(e.message(), "The specified route entry is already exist.");
    let api = e.api().unwrap();
    assert_eq!(api.host_id.as_deref(), Some("vpc.aliyuncs.com"));
    assert!(api.recommend.as_deref().unwrap().contains("troubleshoot"));
    let shown = e.to_string();
    assert!(
        shown.contains("VpnRouteEntry.AlreadyExists") && shown.contains("6EBA1A5B"),
        "{shown}"
    );

    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><RequestId>7A1B</RequestId><HostId>vpc.aliyuncs.com</HostId><Code>InvalidVpnGatewayInstanceId.NotFound</Code>
<Message>The specified vpn gateway instance id does not exist.</Message></Error>"#;
    let e = parse_response::<ActionResponse>(
        "DeleteVpnPbrRouteEntry",
        404,
        Some("text/xml"),
        None,
        xml,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NeedsOutsideAction);
    assert!(e.is_gone());
    assert_eq!(e.request_id(), Some("7A1B"));

    let e = parse_response::<ActionResponse>(
        "X",
        429,
        None,
        Some(std::time::Duration::from_secs(2)),
        b"",
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
}

fn check_no_panic(status: u16, body: &[u8], ct: Option<&str>) {
    let _ = parse_response::<CreateVpnPbrRouteEntryResponse>("A", status, ct, None, body);
    let _ = parse_response::<DescribeVpnPbrRouteEntriesResponse>("A", status, ct, None, body);
    let _ = parse_response::<DescribeVpnGatewayResponse>("A", status, ct, None, body);
    let _ = parse_response::<DescribeVpnConnectionResponse>("A", status, ct, None, body);
    if let Err(e) = parse_response::<ActionResponse>("A", status, ct, None, body) {
        let _ = (
            e.class(),
            e.code(),
            e.request_id(),
            e.http_status(),
            e.to_string(),
        );
    }
}

/// JSON-ish and XML-ish fragments, so random bodies reach deep into the parsers.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"RequestId\"".to_owned()),
        Just("\"Code\"".to_owned()),
        Just("\"TotalCount\"".to_owned()),
        Just("\"VpnPbrRouteEntries\"".to_owned()),
        Just("\"VpnPbrRouteEntry\"".to_owned()),
        Just("\"Weight\"".to_owned()),
        Just("<Error>".to_owned()),
        Just("</Error>".to_owned()),
        Just("<VpnPbrRouteEntry>".to_owned()),
        Just("</VpnPbrRouteEntry>".to_owned()),
        Just("<Weight/>".to_owned()),
        Just("&amp;".to_owned()),
        Just("&#xD800;".to_owned()),
        Just("&bogus;".to_owned()),
        Just("<![CDATA[x]]>".to_owned()),
        Just("-1e999".to_owned()),
        Just("18446744073709551616".to_owned()),
        "[a-zA-Z0-9 ]{0,8}".prop_map(|s| s),
        "\\PC{0,4}".prop_map(|s| s),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_answers_never_panic(
        status in 0u16..1000,
        body in body_strategy(),
        ct in prop_oneof![Just(None), Just(Some("application/json")), Just(Some("text/xml"))],
    ) {
        check_no_panic(status, &body, ct);
    }
}
