"""The classic SDK (aliyun-python-sdk-core + aliyun-python-sdk-vpc, signature V1), unchanged,
against vpc-emulator. Usage: emulator_classic.py <host:port>"""
import json
import time

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.utils import parameter_helper
from aliyunsdkvpc.request.v20160428 import (
    CreateVpnPbrRouteEntryRequest as Create,
    DeleteVpnPbrRouteEntryRequest as Delete,
    DescribeVpnConnectionRequest as DescConn,
    DescribeVpnGatewayRequest as DescGw,
    DescribeVpnPbrRouteEntriesRequest as DescEntries,
    ModifyVpnPbrRouteEntryAttributeRequest as ModAttr,
    ModifyVpnPbrRouteEntryPriorityRequest as ModPrio,
    ModifyVpnPbrRouteEntryWeightRequest as ModWeight,
    PublishVpnRouteEntryRequest as Publish,
)

from emulator_common import (GW_A, GW_B, GW_BULK, HOST, KEY_ID, PORT, REGION, SECRET, admin,
                             check, finish, wait_active)


def client(key=KEY_ID, secret=SECRET):
    return AcsClient(key, secret, REGION, port=int(PORT), auto_retry=False)


C = client()


def call(req, c=C):
    req.set_endpoint(HOST)
    return json.loads(c.do_action_with_exception(req))


def raw(req, c=C):
    """The raw body, success or not (do_action does not raise on service errors)."""
    req.set_endpoint(HOST)
    return json.loads(c.do_action(req))


def expect(name, req, code, status, c=C):
    try:
        call(req, c)
    except ServerException as e:
        check(name, (e.get_error_code(), e.get_http_status()) == (code, status),
              f"got {e.get_error_code()} {e.get_http_status()}: {e.get_error_msg()}")
        return
    raise AssertionError(f"FAIL {name}: no error, expected {code}")


def describe_gw(gw=GW_A):
    r = DescGw.DescribeVpnGatewayRequest()
    r.set_VpnGatewayId(gw)
    return call(r)


def status(gw=GW_A):
    return describe_gw(gw)["Status"]


def create(src, dst, hop, weight, gw=GW_A, publish=True, priority=None, token=None):
    r = Create.CreateVpnPbrRouteEntryRequest()
    r.set_VpnGatewayId(gw)
    r.set_RouteSource(src)
    r.set_RouteDest(dst)
    r.set_NextHop(hop)
    r.set_Weight(weight)
    r.set_PublishVpc(publish)
    if priority is not None:
        r.set_Priority(priority)
    if token:
        r.set_ClientToken(token)
    return r


def key_req(cls, src, dst, hop, weight, gw=GW_A):
    r = cls()
    r.set_VpnGatewayId(gw)
    r.set_RouteSource(src)
    r.set_RouteDest(dst)
    r.set_NextHop(hop)
    r.set_Weight(weight)
    return r


admin("reset", {})

# --- happy path -------------------------------------------------------------------------
gw = describe_gw()
check("describe gateway", gw["VpnGatewayId"] == GW_A and gw["Status"] == "active"
      and '"PbrPriority"' in gw["Tag"], gw)
conn = DescConn.DescribeVpnConnectionRequest()
conn.set_VpnConnectionId("vco-sdk-a1")
check("describe connection", call(conn)["VpnGatewayId"] == GW_A)

body = call(create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, priority=5, token="tok-1"))
check("create", body["VpnInstanceId"] == GW_A and body["State"] == "published"
      and body["Priority"] == 5 and isinstance(body["CreateTime"], int), body)
check("gateway updating after create", status() == "updating")
again = call(create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, priority=5, token="tok-1"))
check("ClientToken replay returns first result", again["CreateTime"] == body["CreateTime"])
expect("TaskConflict right after a change",
       create("192.168.2.0/24", "10.0.0.0/24", "vco-sdk-a2", 0), "TaskConflict", 400)
time.sleep(0.25)
expect("VpnGateway.Configuring while updating",
       create("192.168.2.0/24", "10.0.0.0/24", "vco-sdk-a2", 0), "VpnGateway.Configuring", 400)
wait_active(status)

r = key_req(ModWeight.ModifyVpnPbrRouteEntryWeightRequest, "192.168.1.0/24", "10.0.0.0/24",
            "vco-sdk-a1", 100)
r.set_NewWeight(0)
call(r)
wait_active(status)
r = key_req(ModPrio.ModifyVpnPbrRouteEntryPriorityRequest, "192.168.1.0/24", "10.0.0.0/24",
            "vco-sdk-a1", 0)
r.set_Priority(5)
r.set_NewPriority(20)
call(r)
wait_active(status)
r = key_req(ModAttr.ModifyVpnPbrRouteEntryAttributeRequest, "192.168.1.0/24", "10.0.0.0/24",
            "vco-sdk-a1", 0)
r.set_Priority(20)
r.set_NewWeight(100)
r.set_NewPriority(30)
call(r)
wait_active(status)
p = Publish.PublishVpnRouteEntryRequest()
p.set_VpnGatewayId(GW_A)
p.set_RouteDest("10.0.0.0/24")
p.set_NextHop("vco-sdk-a1")
p.set_RouteType("pbr")
p.set_PublishVpc(False)
call(p)
wait_active(status)
entries = admin("state")["gateways"]
entry = [g for g in entries if g["VpnGatewayId"] == GW_A][0]["Entries"][0]
check("modify weight, priority, attribute, publish",
      (entry["Weight"], entry["Priority"], entry["State"]) == (100, 30, "normal"), entry)

# Several pages on the bulk gateway (no update delay).
for i in range(7):
    call(create("192.168.1.0/24", f"10.{i}.0.0/24", "vco-sdk-bulk1", 100, gw=GW_BULK, publish=False))
    time.sleep(0.16)
seen, page = [], 1
while True:
    d = DescEntries.DescribeVpnPbrRouteEntriesRequest()
    d.set_VpnGatewayId(GW_BULK)
    d.set_PageSize(3)
    d.set_PageNumber(page)
    out = call(d)
    items = out["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
    check(f"list page {page}", out["TotalCount"] == 7 and out["PageNumber"] == page
          and out["PageSize"] == 3, out)
    seen += [e["RouteDest"] for e in items]
    if len(items) < 3:
        break
    page += 1
check("list several pages", page == 3 and len(set(seen)) == 7, seen)

d = key_req(Delete.DeleteVpnPbrRouteEntryRequest, "192.168.1.0/24", "10.0.0.0/24",
            "vco-sdk-a1", 100)
call(d)
wait_active(status)
d = DescEntries.DescribeVpnPbrRouteEntriesRequest()
d.set_VpnGatewayId(GW_A)
check("delete", call(d)["TotalCount"] == 0)

# --- errors -----------------------------------------------------------------------------
bad = client(secret="wrong-secret")
r = DescGw.DescribeVpnGatewayRequest()
r.set_VpnGatewayId(GW_A)
body = raw(r, bad)
check("wrong secret: SignatureDoesNotMatch with the server string to sign",
      body["Code"] == "SignatureDoesNotMatch"
      and "server string to sign is:POST&%2F&AccessKeyId" in body["Message"]
      and body["HostId"] and body["Recommend"] and body["RequestId"], body)
# The classic SDK turns SignatureDoesNotMatch (400) into InvalidAccessKeySecret exactly when
# the server's string to sign equals its own: proof that both encode the same way.
expect("wrong secret via exception (SDK rewrite)", r, "InvalidAccessKeySecret", 400, bad)
expect("unknown access key", r, "InvalidAccessKeyId.NotFound", 404, client(key="LTAI-nobody"))

real_date = parameter_helper.get_iso_8061_date
parameter_helper.get_iso_8061_date = lambda: "2020-01-01T00:00:00Z"
expect("old timestamp", r, "InvalidTimeStamp.Expired", 400)
parameter_helper.get_iso_8061_date = real_date

real_uuid = parameter_helper.get_uuid
parameter_helper.get_uuid = lambda: "fixed-nonce-classic"
call(r)
expect("nonce replay", r, "SignatureNonceUsed", 400)
parameter_helper.get_uuid = real_uuid

missing = create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100)
del missing.get_query_params()["RouteSource"]
expect("missing parameter", missing, "MissingRouteSource", 400)
expect("malformed parameter", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", "heavy"),
       "InvalidParameter", 400)
expect("bad CIDR", create("192.168.1.300/24", "10.0.0.0/24", "vco-sdk-a1", 100),
       "OperationFailed.InvalidCidrBlock", 400)
expect("bad destination", create("192.168.1.0/24", "0.0.0.0/0", "vco-sdk-a1", 100),
       "IllegalParam.RouteDest", 400)
expect("bad weight", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 50),
       "VpnRouteEntry.InvalidWeight", 400)
expect("unknown gateway", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, gw="vpn-nope"),
       "InvalidVpnGatewayInstanceId.NotFound", 404)
expect("next hop of another gateway", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100),
       "InvalidNextHop.NotFound", 400)
expect("priority unsupported", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100, gw=GW_B,
                                      priority=5), "VpnPbrRouteEntryPriority.NotSupport", 400)
call(create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100))
wait_active(status)
expect("duplicate", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100),
       "VpnRouteEntry.AlreadyExists", 400)
expect("active/standby rule", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a2", 100),
       "VpnRouteEntry.BackupRoute", 400)
expect("VPC route conflict", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-b1", 100, gw=GW_B),
       "OperationFailed.RouteConflict", 400)
expect("ClientToken reused with other parameters",
       create("192.168.1.0/24", "10.6.0.0/24", "vco-sdk-a1", 100, token="tok-1"),
       "IdempotentParameterMismatch", 400)
d = DescEntries.DescribeVpnPbrRouteEntriesRequest()
d.set_VpnGatewayId(GW_A)
d.set_PageSize(51)
expect("page size above 50", d, "InvalidParameter", 400)
admin("gateways/lock", {"VpnGatewayId": GW_B, "Locked": True})
expect("financially locked gateway", create("192.168.1.0/24", "10.7.0.0/24", "vco-sdk-b1", 100, gw=GW_B),
       "VpnGateway.FinancialLocked", 400)
admin("faults", {"rules": [{"action": "DescribeVpnGateway", "rate": 1.0, "kind": "unavailable"}]},
      method="PUT")
r503 = DescGw.DescribeVpnGatewayRequest()
r503.set_VpnGatewayId(GW_A)
expect("injected 503", r503, "ServiceUnavailable", 503)
admin("faults", {"rate_limit_per_second": 1, "rules": []}, method="PUT")
try:
    for _ in range(5):
        describe_gw()
    raise AssertionError("FAIL rate limit: never throttled")
except ServerException as e:
    check("rate limit", (e.get_error_code(), e.get_http_status()) == ("Throttling.User", 400))
admin("faults", {"rules": []}, method="PUT")

counters = admin("counters")
creates = {(c["VpnGatewayId"], c["RouteDest"]): c["Count"] for c in counters["accepted_creates"]}
check("counters: one accepted create despite the ClientToken replay",
      creates[(GW_A, "10.0.0.0/24")] == 1, counters)
check("counters by code", counters["calls"]["CreateVpnPbrRouteEntry"]["TaskConflict"] == 1, counters)
finish()
