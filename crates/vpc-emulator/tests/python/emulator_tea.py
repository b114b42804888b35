"""The current SDK (alibabacloud-vpc20160428 on alibabacloud-tea-openapi, default signature
V3 ACS3-HMAC-SHA256), unchanged, against vpc-emulator; plus STS AssumeRoleWithOIDC.
Usage: emulator_tea.py <host:port>"""
import json
import time
import urllib.parse
import urllib.request

from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_vpc20160428 import models as m
from alibabacloud_vpc20160428.client import Client

from emulator_common import (ADDR, GW_A, GW_B, GW_BULK, KEY_ID, REGION, SECRET, admin, check,
                             finish, wait_active)


def client(key=KEY_ID, secret=SECRET, token=None):
    return Client(Config(access_key_id=key, access_key_secret=secret, security_token=token,
                         endpoint=ADDR, protocol="http", region_id=REGION))


C = client()


def expect(name, fn, code, status):
    try:
        fn()
    except Exception as e:  # the SDK raises ClientException / ServerException / Throttling
        got = (getattr(e, "code", None), getattr(e, "status_code", None))
        check(name, got == (code, status), f"got {got}: {e}")
        return e
    raise AssertionError(f"FAIL {name}: no error, expected {code}")


def status(gw=GW_A, c=C):
    return c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.status


def create(src, dst, hop, weight, gw=GW_A, publish=True, priority=None, token=None, c=C):
    return lambda: c.create_vpn_pbr_route_entry(m.CreateVpnPbrRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw, route_source=src, route_dest=dst, next_hop=hop,
        weight=weight, publish_vpc=publish, priority=priority, client_token=token)).body


def key(cls, src, dst, hop, weight, gw=GW_A, **kw):
    return cls(region_id=REGION, vpn_gateway_id=gw, route_source=src, route_dest=dst,
               next_hop=hop, weight=weight, **kw)


admin("reset", {})

# --- happy path -------------------------------------------------------------------------
gw = C.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=GW_A)).body
check("describe gateway", gw.vpn_gateway_id == GW_A and gw.status == "active"
      and gw.business_status == "Normal" and "PbrPriority" in gw.tag)
conns = C.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=GW_A)).body
check("describe connections", conns.total_count == 2
      and {c.vpn_connection_id for c in conns.vpn_connections.vpn_connection} == {"vco-sdk-a1", "vco-sdk-a2"})
one = C.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id="vco-sdk-b1")).body
check("describe connection", one.vpn_gateway_id == GW_B)

body = create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, priority=5, token="tea-1")()
check("create (V3 signature, Python signs every header)", body.vpn_instance_id == GW_A
      and body.state == "published" and body.priority == 5 and body.create_time > 1_600_000_000_000)
check("gateway updating after create", status() == "updating")
again = create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, priority=5, token="tea-1")()
check("ClientToken replay returns first result", again.create_time == body.create_time)
expect("TaskConflict right after a change",
       create("192.168.2.0/24", "10.0.0.0/24", "vco-sdk-a2", 0), "TaskConflict", 400)
time.sleep(0.25)
expect("VpnGateway.Configuring while updating",
       create("192.168.2.0/24", "10.0.0.0/24", "vco-sdk-a2", 0), "VpnGateway.Configuring", 400)
check("reads work while updating", status() == "updating")
wait_active(status)

C.modify_vpn_pbr_route_entry_weight(key(m.ModifyVpnPbrRouteEntryWeightRequest, "192.168.1.0/24",
                                        "10.0.0.0/24", "vco-sdk-a1", 100, new_weight=0))
wait_active(status)
C.modify_vpn_pbr_route_entry_priority(key(m.ModifyVpnPbrRouteEntryPriorityRequest, "192.168.1.0/24",
                                          "10.0.0.0/24", "vco-sdk-a1", 0, priority=5, new_priority=20))
wait_active(status)
C.modify_vpn_pbr_route_entry_attribute(key(m.ModifyVpnPbrRouteEntryAttributeRequest, "192.168.1.0/24",
                                           "10.0.0.0/24", "vco-sdk-a1", 0, priority=20,
                                           new_weight=100, new_priority=30))
wait_active(status)
C.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(
    region_id=REGION, vpn_gateway_id=GW_A, route_dest="10.0.0.0/24", next_hop="vco-sdk-a1",
    route_type="pbr", publish_vpc=False))
wait_active(status)
listed = C.describe_vpn_pbr_route_entries(m.DescribeVpnPbrRouteEntriesRequest(
    region_id=REGION, vpn_gateway_id=GW_A)).body.vpn_pbr_route_entries.vpn_pbr_route_entry
check("modify weight, priority, attribute, publish",
      [(e.weight, e.priority, e.state) for e in listed] == [(100, 30, "normal")])

for i in range(7):
    create("192.168.1.0/24", f"10.{i}.0.0/24", "vco-sdk-bulk1", 100, gw=GW_BULK, publish=False)()
    time.sleep(0.16)
seen, page = [], 1
while True:
    out = C.describe_vpn_pbr_route_entries(m.DescribeVpnPbrRouteEntriesRequest(
        region_id=REGION, vpn_gateway_id=GW_BULK, page_size=3, page_number=page)).body
    items = out.vpn_pbr_route_entries.vpn_pbr_route_entry
    check(f"list page {page}", out.total_count == 7 and out.page_number == page and out.page_size == 3)
    seen += [e.route_dest for e in items]
    if len(items) < 3:
        break
    page += 1
check("list several pages", page == 3 and len(set(seen)) == 7)

C.delete_vpn_pbr_route_entry(key(m.DeleteVpnPbrRouteEntryRequest, "192.168.1.0/24", "10.0.0.0/24",
                                 "vco-sdk-a1", 100))
wait_active(status)
check("delete", C.describe_vpn_pbr_route_entries(m.DescribeVpnPbrRouteEntriesRequest(
    region_id=REGION, vpn_gateway_id=GW_A)).body.total_count == 0)

# --- errors -----------------------------------------------------------------------------
e = expect("wrong secret", lambda: status(c=client(secret="wrong")), "SignatureDoesNotMatch", 400)
check("server string to sign in the message",
      "server string to sign is:ACS3-HMAC-SHA256\n" in e.data["Message"]
      and e.data["HostId"] and e.data["Recommend"] and e.data["RequestId"], e.data)
expect("unknown access key", lambda: status(c=client(key="LTAI-nobody")), "InvalidAccessKeyId.NotFound", 404)
real_ts = Utils.get_timestamp
Utils.get_timestamp = staticmethod(lambda: "2020-01-01T00:00:00Z")
expect("old timestamp", status, "InvalidTimeStamp.Expired", 400)
Utils.get_timestamp = real_ts
real_nonce = Utils.get_nonce
Utils.get_nonce = staticmethod(lambda: "fixed-nonce-tea")
status()
expect("nonce replay", status, "SignatureNonceUsed", 400)
Utils.get_nonce = real_nonce

expect("missing parameter", lambda: C.create_vpn_pbr_route_entry(m.CreateVpnPbrRouteEntryRequest(
    region_id=REGION, vpn_gateway_id=GW_A, route_dest="10.0.0.0/24", next_hop="vco-sdk-a1",
    weight=100, publish_vpc=True)), "MissingRouteSource", 400)
expect("malformed parameter", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", "heavy"),
       "InvalidParameter", 400)
expect("bad CIDR", create("192.168.1.0/33", "10.0.0.0/24", "vco-sdk-a1", 100),
       "OperationFailed.InvalidCidrBlock", 400)
expect("bad destination", create("192.168.1.0/24", "100.64.0.0/24", "vco-sdk-a1", 100),
       "IllegalParam.RouteDest", 400)
expect("bad weight", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 1),
       "VpnRouteEntry.InvalidWeight", 400)
expect("unknown gateway", lambda: status(gw="vpn-nope"), "InvalidVpnGatewayInstanceId.NotFound", 404)
expect("next hop of another gateway", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100),
       "InvalidNextHop.NotFound", 400)
expect("priority unsupported", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100, gw=GW_B,
                                      priority=5), "VpnPbrRouteEntryPriority.NotSupport", 400)
create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100)()
wait_active(status)
expect("duplicate", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 0),
       "VpnRouteEntry.AlreadyExists", 400)
expect("active/standby rule", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a2", 100),
       "VpnRouteEntry.BackupRoute", 400)
expect("VPC route conflict", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-b1", 100, gw=GW_B),
       "OperationFailed.RouteConflict", 400)
expect("entry not found", lambda: C.delete_vpn_pbr_route_entry(key(
    m.DeleteVpnPbrRouteEntryRequest, "192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 0)),
    "InvalidRouteEntry.NotFound", 404)
expect("page size above 50", lambda: C.describe_vpn_pbr_route_entries(
    m.DescribeVpnPbrRouteEntriesRequest(region_id=REGION, vpn_gateway_id=GW_A, page_size=51)),
    "InvalidParameter", 400)
admin("gateways/lock", {"VpnGatewayId": GW_B, "Locked": True})
expect("financially locked gateway", create("192.168.1.0/24", "10.7.0.0/24", "vco-sdk-b1", 100, gw=GW_B),
       "VpnGateway.FinancialLocked", 400)
admin("faults", {"rules": [{"action": "DescribeVpnGateway", "rate": 1.0, "kind": "server_error"}]},
      method="PUT")
expect("injected 500", status, "InternalError", 500)
admin("faults", {"rate_limit_per_second": 1, "rules": []}, method="PUT")


def burst():
    for _ in range(5):
        status()


expect("rate limit", burst, "Throttling.User", 400)
admin("faults", {"rules": []}, method="PUT")

# Out-of-band drift is visible through the SDK.
admin("entries/modify", {"VpnGatewayId": GW_A, "RouteSource": "192.168.1.0/24",
                         "RouteDest": "10.5.0.0/24", "NextHop": "vco-sdk-a1", "Weight": 0})
listed = C.describe_vpn_pbr_route_entries(m.DescribeVpnPbrRouteEntriesRequest(
    region_id=REGION, vpn_gateway_id=GW_A)).body.vpn_pbr_route_entries.vpn_pbr_route_entry
check("out-of-band weight change", [e.weight for e in listed] == [0])

# --- STS AssumeRoleWithOIDC (anonymous, form body, as the credentials library sends it) --


def assume(token):
    query = urllib.parse.urlencode({"Action": "AssumeRoleWithOIDC", "Version": "2015-04-01",
                                    "Format": "JSON", "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    form = urllib.parse.urlencode({
        "RoleArn": "acs:ram::1234567890123456:role/sdk-test",
        "OIDCProviderArn": "acs:ram::1234567890123456:oidc-provider/sdk-test",
        "OIDCToken": token, "RoleSessionName": "tea-test", "DurationSeconds": "900"}).encode()
    req = urllib.request.Request(f"http://{ADDR}/?{query}", data=form, method="POST",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


code, sts = assume("good-oidc-token")
creds = sts["Credentials"]
check("AssumeRoleWithOIDC issues temporary keys", code == 200 and creds["AccessKeyId"].startswith("STS.")
      and creds["SecurityToken"] and creds["Expiration"].endswith("Z"), sts)
temp = client(creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"])
check("temporary keys are accepted", status(c=temp) == "active")
expect("temporary key with a wrong token", lambda: status(c=client(
    creds["AccessKeyId"], creds["AccessKeySecret"], "forged")), "InvalidSecurityToken.MismatchWithAccessKey", 400)
code, bad = assume("bad-token")
check("bad OIDC token refused", (code, bad["Code"]) == (400, "AuthenticationFail.OIDCToken.Invalid"), bad)

counters = admin("counters")
check("counters by action and code",
      counters["calls"]["CreateVpnPbrRouteEntry"]["TaskConflict"] == 1
      and counters["calls"]["DescribeVpnGateway"]["Throttling.User"] >= 1, counters)
finish()
