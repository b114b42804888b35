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

from emulator_common import (ADDR, GW_A, GW_ASYNC, GW_B, GW_BULK, GW_DOOMED, GW_DUAL, KEY_ID,
                             REGION, RO_KEY, RO_SECRET, SECRET, SUB_KEY, SUB_SECRET, admin,
                             admin_status, all_pages, check, check_conflict_and_deleting,
                             check_create_over_existing, check_create_refusals,
                             check_shuffled, finish, poll, wait_active)


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
check_create_refusals(expect, create, "192.168.1.0/33", "100.64.0.0/24", 1,
                      lambda: status(gw="vpn-nope"))
create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100)()
wait_active(status)
expect("duplicate", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 0),
       "VpnRouteEntry.AlreadyExists", 400)
check_create_over_existing(expect, create)
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

# --- the realistic cloud ----------------------------------------------------------------
admin("gateways/lock", {"VpnGatewayId": GW_B, "Locked": False})


def list_all(gw, c=C):
    """Every entry, read as Terraform reads them: PageSize 20, the next page while one is full."""
    return all_pages(lambda page: c.describe_vpn_pbr_route_entries(
        m.DescribeVpnPbrRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, page_size=20,
                                            page_number=page)
    ).body.vpn_pbr_route_entries.vpn_pbr_route_entry)


def listed(gw, dst, hop="vco-sdk-async1"):
    return [e for e in list_all(gw) if e.route_dest == dst and e.next_hop == hop]


def seen_as(gw, dst, want):
    """The entry's (weight, priority, state) once it is `want` (a Terraform-style poll)."""
    def now():
        got = [(e.weight, e.priority, e.state) for e in listed(gw, dst)]
        return got == [want] and got
    return poll(f"{dst} listed as {want}", now)


def wait_async():
    wait_active(lambda: status(GW_ASYNC))


# on_active visibility: creates, changes and deletes show once the gateway is active again.
body = create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 100, gw=GW_ASYNC, publish=True,
              priority=5, token="tea-async-1")()
check("on_active: the create answers State normal although it publishes", body.state == "normal")
check("on_active: not listed while the gateway is updating",
      status(GW_ASYNC) == "updating" and listed(GW_ASYNC, "10.20.0.0/24") == [])
expect("on_active: a second create of the pending route is a duplicate",
       create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 0, gw=GW_ASYNC, publish=False,
              token="tea-async-2"), "VpnRouteEntry.AlreadyExists", 400)
again = create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 100, gw=GW_ASYNC, publish=True,
               priority=5, token="tea-async-1")()
check("on_active: a ClientToken replay of the pending create returns the first answer",
      (again.create_time, again.state) == (body.create_time, body.state))
seen_as(GW_ASYNC, "10.20.0.0/24", (100, 5, "published"))
check("on_active: listed, published, once the gateway is active", status(GW_ASYNC) == "active")
C.modify_vpn_pbr_route_entry_attribute(key(m.ModifyVpnPbrRouteEntryAttributeRequest,
                                           "192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 100,
                                           gw=GW_ASYNC, priority=5, new_weight=0, new_priority=20))
check("on_active: the old weight and priority while the gateway updates",
      [(e.weight, e.priority) for e in listed(GW_ASYNC, "10.20.0.0/24")] == [(100, 5)])
seen_as(GW_ASYNC, "10.20.0.0/24", (0, 20, "published"))
check("on_active: the new weight and priority once it is active", status(GW_ASYNC) == "active")
C.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(
    region_id=REGION, vpn_gateway_id=GW_ASYNC, route_dest="10.20.0.0/24",
    next_hop="vco-sdk-async1", route_type="pbr", publish_vpc=False))
check("on_active: still published while the gateway updates",
      [e.state for e in listed(GW_ASYNC, "10.20.0.0/24")] == ["published"])
seen_as(GW_ASYNC, "10.20.0.0/24", (0, 20, "normal"))
check("on_active: withdrawn once the gateway is active", status(GW_ASYNC) == "active")
for i in range(1, 4):
    wait_async()
    create("192.168.1.0/24", f"10.2{i}.0.0/24", "vco-sdk-async2", 100, gw=GW_ASYNC, publish=False)()
wait_async()
orders = [[e.route_dest for e in list_all(GW_ASYNC)] for _ in range(6)]
check_shuffled(orders)
C.delete_vpn_pbr_route_entry(key(m.DeleteVpnPbrRouteEntryRequest, "192.168.1.0/24", "10.20.0.0/24",
                                 "vco-sdk-async1", 0, gw=GW_ASYNC))
check("on_active: a deleted entry is listed while the gateway updates",
      listed(GW_ASYNC, "10.20.0.0/24") != [])
poll("on_active: the entry goes", lambda: listed(GW_ASYNC, "10.20.0.0/24") == [])
check("on_active: gone once the gateway is active", status(GW_ASYNC) == "active")

# Dual-tunnel gateway.
dual = C.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=GW_DUAL)).body
check("dual-tunnel: DisasterRecoveryInternetIp and DisasterRecoveryVSwitchId",
      dual.disaster_recovery_internet_ip and dual.disaster_recovery_vswitch_id)
single = C.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=GW_A)).body
check("single-tunnel: no DisasterRecovery fields", single.disaster_recovery_internet_ip is None)
body = create("192.168.1.0/24", "100.64.0.0/10", "vco-sdk-dual1", 0, gw=GW_DUAL, publish=False)()
check("dual-tunnel: 100.64.0.0/10 allowed, and the weight is 100 whatever was sent",
      body.weight == 100 and body.route_dest == "100.64.0.0/10")
wait_active(lambda: status(GW_DUAL))
one = C.describe_vpn_connection(m.DescribeVpnConnectionRequest(
    region_id=REGION, vpn_connection_id="vco-sdk-dual1")).body
tunnels = one.tunnel_options_specification.tunnel_options
entry = listed(GW_DUAL, "100.64.0.0/10", "vco-sdk-dual1")[0]
check("dual-tunnel: NextHopTunnelId is the connection's master tunnel, the weight 100",
      entry.next_hop_tunnel_id == tunnels[0].tunnel_id and tunnels[0].role == "master"
      and tunnels[1].role == "slave" and entry.weight == 100)
C.modify_vpn_pbr_route_entry_weight(key(m.ModifyVpnPbrRouteEntryWeightRequest, "192.168.1.0/24",
                                        "100.64.0.0/10", "vco-sdk-dual1", 100, gw=GW_DUAL,
                                        new_weight=0))
wait_active(lambda: status(GW_DUAL))
check("dual-tunnel: a weight change is accepted without effect",
      listed(GW_DUAL, "100.64.0.0/10", "vco-sdk-dual1")[0].weight == 100)
C.modify_vpn_pbr_route_entry_attribute(key(m.ModifyVpnPbrRouteEntryAttributeRequest,
                                           "192.168.1.0/24", "100.64.0.0/10", "vco-sdk-dual1", 100,
                                           gw=GW_DUAL, priority=10, new_priority=8))
wait_active(lambda: status(GW_DUAL))
check("dual-tunnel: the priority changes through ModifyVpnPbrRouteEntryAttribute",
      listed(GW_DUAL, "100.64.0.0/10", "vco-sdk-dual1")[0].priority == 8)

# RAM: keys that may call only some actions.
ro = client(key=RO_KEY, secret=RO_SECRET)
check("restricted key: an allowed read works", status(c=ro) == "active")
e = expect("restricted key: 403 Forbidden",
           create("192.168.1.0/24", "10.30.0.0/24", "vco-sdk-a1", 100, c=ro), "Forbidden", 403)
check("Forbidden names the action (message and AccessDeniedDetail)",
      "vpc:CreateVpnPbrRouteEntry" in e.message
      and e.access_denied_detail["AuthAction"] == "vpc:CreateVpnPbrRouteEntry", e.access_denied_detail)
expect("sub-user key: 403 Forbbiden.SubUser", lambda: client(key=SUB_KEY, secret=SUB_SECRET)
       .describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION)),
       "Forbbiden.SubUser", 403)

# DryRun: every check, no change.
wait_active(status)


def dry(weight):
    return lambda: C.create_vpn_pbr_route_entry(m.CreateVpnPbrRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=GW_A, route_source="192.168.1.0/24",
        route_dest="10.31.0.0/24", next_hop="vco-sdk-a1", weight=weight, publish_vpc=True,
        dry_run=True))


before = len(list_all(GW_A))
e = expect("DryRun: DryRunOperation for a valid create", dry(100), "DryRunOperation", 400)
check("DryRun: the real code's message",
      e.data["Message"] == "Request validation has been passed with DryRun flag set.", e.data)
check("DryRun: nothing created, the gateway not updating",
      len(list_all(GW_A)) == before and status() == "active")
expect("DryRun: the usual error for an invalid create", dry(7), "VpnRouteEntry.InvalidWeight", 400)

# Another gateway of the VPC already routes the destination; a gateway being deleted (the admin
# delete with DeletingMs), then gone.
admin("gateways/delete", {"VpnGatewayId": GW_DOOMED, "DeletingMs": 1000})
check_conflict_and_deleting(expect, create, status)


def doomed_gone():
    try:
        status(GW_DOOMED)
        return False
    except Exception as e:  # the SDK's ClientException
        return getattr(e, "code", None) == "InvalidVpnGatewayInstanceId.NotFound"


poll("the deleting gateway goes", doomed_gone)
expect("then it is gone", lambda: status(GW_DOOMED), "InvalidVpnGatewayInstanceId.NotFound", 404)

# Busy faults only where the real API answers them: on mutations.
code, out = admin_status("faults", {"rules": [{"action": "DescribeVpnPbrRouteEntries", "rate": 1.0,
                                               "kind": "error", "code": "VpnGateway.Configuring"}]},
                         "PUT")
check("a busy code on a read is refused, whatever the kind",
      code == 400 and "only to mutations" in out["error"], out)
admin("faults", {"rules": [
    {"action": "CreateVpnPbrRouteEntry", "rate": 1.0, "kind": "busy", "code": "VpnConnection.Configuring"},
    {"action": "PublishVpnRouteEntry", "rate": 1.0, "kind": "busy", "code": "VpnTask.CONFLICT"},
]}, method="PUT")
expect("busy fault code VpnConnection.Configuring",
       create("192.168.1.0/24", "10.32.0.0/24", "vco-sdk-a1", 100), "VpnConnection.Configuring", 400)
expect("busy fault code VpnTask.CONFLICT", lambda: C.publish_vpn_route_entry(
    m.PublishVpnRouteEntryRequest(region_id=REGION, vpn_gateway_id=GW_A, route_dest="10.5.0.0/24",
                                  next_hop="vco-sdk-a1", route_type="pbr", publish_vpc=False)),
    "VpnTask.CONFLICT", 400)
admin("faults", {"rules": []}, method="PUT")

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
creates = {(c["VpnGatewayId"], c["RouteDest"]) for c in counters["accepted_creates"]}
check("counters: a dry run is counted under its code, never as an accepted create",
      counters["calls"]["CreateVpnPbrRouteEntry"]["DryRunOperation"] == 1
      and (GW_A, "10.31.0.0/24") not in creates, counters)
finish()
