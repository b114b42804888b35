"""The classic SDK (aliyun-python-sdk-core + aliyun-python-sdk-vpc, signature V1), unchanged,
against vpc-emulator. Usage: emulator_classic.py <host:port>"""
import json
import time

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
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

from emulator_common import (GW_A, GW_ASYNC, GW_B, GW_BULK, GW_DOOMED, GW_DUAL, HOST, KEY_ID,
                             PORT, REGION, RO_KEY, RO_SECRET, SECRET, SUB_KEY, SUB_SECRET, admin,
                             admin_status, all_pages, check, check_conflict_and_deleting,
                             check_create_over_existing, check_create_refusals,
                             check_shuffled, finish, poll, wait_active)


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
check_create_refusals(expect, create, "192.168.1.300/24", "0.0.0.0/0", 50,
                      create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", 100, gw="vpn-nope"))
call(create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100))
wait_active(status)
expect("duplicate", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a1", 100),
       "VpnRouteEntry.AlreadyExists", 400)
check_create_over_existing(expect, create)
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

# --- the realistic cloud ----------------------------------------------------------------
admin("gateways/lock", {"VpnGatewayId": GW_B, "Locked": False})


def list_all(gw, c=C):
    """Every entry, read as Terraform reads them: PageSize 20, the next page while one is full."""
    def read_page(page):
        d = DescEntries.DescribeVpnPbrRouteEntriesRequest()
        d.set_VpnGatewayId(gw)
        d.set_PageSize(20)
        d.set_PageNumber(page)
        return call(d, c)["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
    return all_pages(read_page)


def listed(gw, dst, hop):
    return [e for e in list_all(gw) if e["RouteDest"] == dst and e["NextHop"] == hop]


# on_active visibility: the create answers at once; the entry shows once the gateway is active.
body = call(create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 100, gw=GW_ASYNC,
                   token="async-1"))
check("on_active: the create answers State normal although it publishes",
      body["State"] == "normal", body)
check("on_active: not listed while the gateway is updating",
      status(GW_ASYNC) == "updating" and listed(GW_ASYNC, "10.20.0.0/24", "vco-sdk-async1") == [])
expect("on_active: a second create of the pending route is a duplicate",
       create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 0, gw=GW_ASYNC, publish=False,
              token="async-2"), "VpnRouteEntry.AlreadyExists", 400)
again = call(create("192.168.1.0/24", "10.20.0.0/24", "vco-sdk-async1", 100, gw=GW_ASYNC,
                    token="async-1"))
check("on_active: a ClientToken replay of the pending create returns the first answer",
      {k: v for k, v in again.items() if k != "RequestId"}
      == {k: v for k, v in body.items() if k != "RequestId"}, again)
# Terraform polls the list after a create until the entry shows.
seen = poll("on_active: the entry shows", lambda: listed(GW_ASYNC, "10.20.0.0/24", "vco-sdk-async1"))
check("on_active: listed, published, once the gateway is active",
      status(GW_ASYNC) == "active" and len(seen) == 1 and seen[0]["State"] == "published", seen)
for i in range(1, 4):
    wait_active(lambda: status(GW_ASYNC))
    call(create("192.168.1.0/24", f"10.2{i}.0.0/24", "vco-sdk-async1", 100, gw=GW_ASYNC,
                publish=False))
wait_active(lambda: status(GW_ASYNC))
orders = [[e["RouteDest"] for e in list_all(GW_ASYNC)] for _ in range(6)]
check_shuffled(orders)
call(key_req(Delete.DeleteVpnPbrRouteEntryRequest, "192.168.1.0/24", "10.20.0.0/24",
             "vco-sdk-async1", 100, gw=GW_ASYNC))
check("on_active: a deleted entry is listed while the gateway updates",
      listed(GW_ASYNC, "10.20.0.0/24", "vco-sdk-async1") != [])
# Terraform polls the list after a delete until the entry is gone.
poll("on_active: the entry goes", lambda: listed(GW_ASYNC, "10.20.0.0/24", "vco-sdk-async1") == [])
check("on_active: gone once the gateway is active", status(GW_ASYNC) == "active")

# Dual-tunnel gateway.
dual = describe_gw(GW_DUAL)
check("dual-tunnel: DisasterRecoveryInternetIp and DisasterRecoveryVSwitchId",
      dual.get("DisasterRecoveryInternetIp") and dual.get("DisasterRecoveryVSwitchId"), dual)
check("single-tunnel: no DisasterRecovery fields", "DisasterRecoveryInternetIp" not in describe_gw(GW_A))
body = call(create("192.168.1.0/24", "0.0.0.0/0", "vco-sdk-dual1", 0, gw=GW_DUAL, publish=False))
check("dual-tunnel: 0.0.0.0/0 allowed, and the weight is 100 whatever was sent",
      body["Weight"] == 100, body)
wait_active(lambda: status(GW_DUAL))
body = call(create("192.168.1.0/24", "100.64.0.0/10", "vco-sdk-dual1", 100, gw=GW_DUAL,
                   publish=False))
check("dual-tunnel: 100.64.0.0/10 allowed", body["RouteDest"] == "100.64.0.0/10", body)
wait_active(lambda: status(GW_DUAL))
conn = DescConn.DescribeVpnConnectionRequest()
conn.set_VpnConnectionId("vco-sdk-dual1")
tunnels = call(conn)["TunnelOptionsSpecification"]["TunnelOptions"]
entry = listed(GW_DUAL, "0.0.0.0/0", "vco-sdk-dual1")[0]
check("dual-tunnel: NextHopTunnelId is the connection's master tunnel, the weight 100",
      entry["NextHopTunnelId"] == tunnels[0]["TunnelId"] and tunnels[0]["Role"] == "master"
      and entry["Weight"] == 100, (entry, tunnels))
r = key_req(ModWeight.ModifyVpnPbrRouteEntryWeightRequest, "192.168.1.0/24", "0.0.0.0/0",
            "vco-sdk-dual1", 100, gw=GW_DUAL)
r.set_NewWeight(0)
call(r)
wait_active(lambda: status(GW_DUAL))
check("dual-tunnel: a weight change is accepted without effect",
      listed(GW_DUAL, "0.0.0.0/0", "vco-sdk-dual1")[0]["Weight"] == 100)
r = key_req(ModAttr.ModifyVpnPbrRouteEntryAttributeRequest, "192.168.1.0/24", "0.0.0.0/0",
            "vco-sdk-dual1", 100, gw=GW_DUAL)
r.set_Priority(10)
r.set_NewPriority(7)
call(r)
wait_active(lambda: status(GW_DUAL))
check("dual-tunnel: the priority changes through ModifyVpnPbrRouteEntryAttribute",
      listed(GW_DUAL, "0.0.0.0/0", "vco-sdk-dual1")[0]["Priority"] == 7)

# RAM: keys that may call only some actions.
ro = client(key=RO_KEY, secret=RO_SECRET)
r = DescGw.DescribeVpnGatewayRequest()
r.set_VpnGatewayId(GW_A)
check("restricted key: an allowed read works", call(r, ro)["VpnGatewayId"] == GW_A)
expect("restricted key: 403 Forbidden",
       create("192.168.1.0/24", "10.30.0.0/24", "vco-sdk-a1", 100), "Forbidden", 403, ro)
body = raw(create("192.168.1.0/24", "10.30.0.0/24", "vco-sdk-a1", 100), ro)
check("Forbidden names the action (message and AccessDeniedDetail)",
      body["Message"].startswith("User not authorized to operate on the specified resource.")
      and "vpc:CreateVpnPbrRouteEntry" in body["Message"]
      and body["AccessDeniedDetail"]["AuthAction"] == "vpc:CreateVpnPbrRouteEntry", body)
d = DescEntries.DescribeVpnPbrRouteEntriesRequest()
d.set_VpnGatewayId(GW_A)
expect("sub-user key: 403 Forbbiden.SubUser", d, "Forbbiden.SubUser", 403,
       client(key=SUB_KEY, secret=SUB_SECRET))

# DryRun: every check, no change.
wait_active(status)
before = call(d)["TotalCount"]
dry = create("192.168.1.0/24", "10.31.0.0/24", "vco-sdk-a1", 100)
dry.set_DryRun(True)
expect("DryRun: DryRunOperation for a valid create", dry, "DryRunOperation", 400)
check("DryRun: nothing created, the gateway not updating",
      call(d)["TotalCount"] == before and status() == "active")
bad = create("192.168.1.0/24", "10.31.0.0/24", "vco-sdk-a1", 50)
bad.set_DryRun(True)
expect("DryRun: the usual error for an invalid create", bad, "VpnRouteEntry.InvalidWeight", 400)

# Another gateway of the VPC already routes the destination; a gateway being deleted, then gone.
admin("gateways/status", {"VpnGatewayId": GW_DOOMED, "Status": "deleting", "DurationMs": 1000})
check_conflict_and_deleting(expect, create, status)


def doomed_gone():
    try:
        status(GW_DOOMED)
        return False
    except ServerException as e:
        return e.get_error_code() == "InvalidVpnGatewayInstanceId.NotFound"


poll("the deleting gateway goes", doomed_gone)
check("then it is gone (InvalidVpnGatewayInstanceId.NotFound)", True)

# Busy faults only where the real API answers them: on mutations.
code, out = admin_status("faults", {"rules": [{"action": "DescribeVpnGateway", "rate": 1.0,
                                               "kind": "busy"}]}, "PUT")
check("a busy fault on a read is refused", code == 400 and "only to mutations" in out["error"], out)
code, out = admin_status("faults", {"rules": [{"action": "*", "rate": 0.5, "kind": "busy",
                                               "code": "TaskConflict"}]}, "PUT")
check("a busy fault on * is refused", code == 400 and "includes the reads" in out["error"], out)
admin("faults", {"rules": [{"action": "CreateVpnPbrRouteEntry", "rate": 1.0, "kind": "busy",
                            "code": "Appliance.Configuring"}]}, method="PUT")
expect("busy fault code Appliance.Configuring",
       create("192.168.1.0/24", "10.32.0.0/24", "vco-sdk-a1", 100), "Appliance.Configuring", 400)
admin("faults", {"rules": []}, method="PUT")

# STS AssumeRole into another account's role (CommonRequest: the core SDK's generic call,
# signed V1 like the VPC calls), then the session's keys as that account.
ROLE = "acs:ram::2222222222222222:role/sdk-cross"


def sts_request(action, **params):
    r = CommonRequest(domain=HOST, version="2015-04-01", action_name=action)
    r.set_method("POST")
    for k, v in params.items():
        r.add_query_param(k, v)
    return r


expect("AssumeRole with a wrong ExternalId",
       sts_request("AssumeRole", RoleArn=ROLE, RoleSessionName="sdk", ExternalId="nope"),
       "NoPermission", 403)
expect("AssumeRole of an unknown role",
       sts_request("AssumeRole", RoleArn=ROLE + "x", RoleSessionName="sdk", ExternalId="sdk-ext"),
       "EntityNotExist.Role", 404)
out = call(sts_request("AssumeRole", RoleArn=ROLE, RoleSessionName="sdk", ExternalId="sdk-ext",
                       DurationSeconds="900"))
creds = out["Credentials"]
check("AssumeRole issues a session of the role",
      creds["AccessKeyId"].startswith("STS.") and creds["Expiration"].endswith("Z")
      and out["AssumedRoleUser"]["Arn"] == ROLE + "/sdk", out)
S = AcsClient(region_id=REGION, port=int(PORT), auto_retry=False, credential=StsTokenCredential(
    creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]))
who = call(sts_request("GetCallerIdentity"), S)
check("the session is the assumed role of the other account",
      who["AccountId"] == "2222222222222222"
      and who["Arn"] == "acs:ram::2222222222222222:assumed-role/sdk-cross/sdk", who)
r = DescGw.DescribeVpnGatewayRequest()
r.set_VpnGatewayId(GW_A)
expect("the session does not see the caller's account's gateway", r,
       "InvalidVpnGatewayInstanceId.NotFound", 404, S)

counters = admin("counters")
creates = {(c["VpnGatewayId"], c["RouteDest"]): c["Count"] for c in counters["accepted_creates"]}
check("counters: one accepted create despite the ClientToken replay",
      creates[(GW_A, "10.0.0.0/24")] == 1, counters)
check("counters by code", counters["calls"]["CreateVpnPbrRouteEntry"]["TaskConflict"] == 1, counters)
check("counters: a dry run is counted under its code, never as an accepted create",
      counters["calls"]["CreateVpnPbrRouteEntry"]["DryRunOperation"] == 1
      and (GW_A, "10.31.0.0/24") not in creates, counters)
finish()
