"""Helpers shared by the SDK scripts that drive vpc-emulator (tests/emulator_sdk.rs).

Each script gets the emulator address as argv[1], prints one line per check and
"ALL OK <n>" at the end; any failure raises (non-zero exit).
"""
import json
import sys
import time
import urllib.error
import urllib.request

ADDR = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9080"
HOST, PORT = ADDR.rsplit(":", 1)
REGION = "cn-hangzhou"
KEY_ID, SECRET = "sdk-key", "sdk-secret"
GW_A, GW_B, GW_BULK = "vpn-sdk-a", "vpn-sdk-b", "vpn-sdk-bulk"
# on_active visibility with shuffled lists; dual-tunnel; one to be deleted.
GW_ASYNC, GW_DUAL, GW_DOOMED = "vpn-sdk-async", "vpn-sdk-dual", "vpn-sdk-doomed"
# RAM-restricted keys: Describe* only (403 Forbidden); DescribeVpnGateway only (Forbbiden.SubUser).
RO_KEY, RO_SECRET = "sdk-readonly", "sdk-readonly-secret"
SUB_KEY, SUB_SECRET = "sdk-subuser", "sdk-subuser-secret"
CHECKS = []


def admin(path, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{ADDR}/_emulator/{path}",
        data=data,
        method=method or ("GET" if body is None else "POST"),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def admin_status(path, body, method="POST"):
    """(HTTP status, JSON body) of an admin call, errors included."""
    try:
        return 200, admin(path, body, method)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def poll(what, fn, timeout=10.0, interval=0.1):
    """Calls fn until it returns a true value, as Terraform's StateChangeConf polls."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"FAIL {what}: not within {timeout} s")


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"FAIL {name}: {detail}")
    CHECKS.append(name)
    print(f"ok   {name}", flush=True)


def gateway_status(gw):
    for g in admin("state")["gateways"]:
        if g["VpnGatewayId"] == gw:
            return g["Status"]
    raise AssertionError(f"no gateway {gw}")


def wait_active(describe, timeout=10.0):
    """Polls DescribeVpnGateway through the SDK (`describe()` returns the Status)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if describe() == "active":
            return
        time.sleep(0.05)
    raise AssertionError("gateway did not return to active")


def all_pages(read_page):
    """Every entry, read as Terraform reads them: PageSize 20, the next page while one is full
    (`read_page(number)` returns the entries of one page of 20)."""
    out, page = [], 1
    while True:
        items = read_page(page)
        out += items
        if len(items) < 20:
            return out
        page += 1


def check_shuffled(orders):
    """The orders (destinations) of several reads of one list of 4 entries."""
    check("shuffled lists: every entry once in every answer",
          all(len(o) == 4 and sorted(o) == sorted(orders[0]) for o in orders), orders)
    check("shuffled lists: the order changes from call to call",
          len({tuple(o) for o in orders}) > 1, orders)


def check_create_refusals(expect, create, bad_cidr, bad_dest, bad_weight, unknown_gateway):
    """CreateVpnPbrRouteEntry refused for a malformed weight, then for the source `bad_cidr`,
    the destination `bad_dest` and the weight `bad_weight`; `unknown_gateway` (a call naming
    no gateway) not found; then a next hop of another gateway and a priority where the gateway
    takes none. The SDK's own `expect` and `create` (of source, destination, next hop, weight,
    gw=, priority=)."""
    expect("malformed parameter", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", "heavy"),
           "InvalidParameter", 400)
    expect("bad CIDR", create(bad_cidr, "10.0.0.0/24", "vco-sdk-a1", 100),
           "OperationFailed.InvalidCidrBlock", 400)
    expect("bad destination", create("192.168.1.0/24", bad_dest, "vco-sdk-a1", 100),
           "IllegalParam.RouteDest", 400)
    expect("bad weight", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-a1", bad_weight),
           "VpnRouteEntry.InvalidWeight", 400)
    expect("unknown gateway", unknown_gateway, "InvalidVpnGatewayInstanceId.NotFound", 404)
    expect("next hop of another gateway", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100),
           "InvalidNextHop.NotFound", 400)
    expect("priority unsupported", create("192.168.1.0/24", "10.0.0.0/24", "vco-sdk-b1", 100, gw=GW_B,
                                          priority=5), "VpnPbrRouteEntryPriority.NotSupport", 400)


def check_create_over_existing(expect, create):
    """With 192.168.1.0/24 -> 10.5.0.0/24 via vco-sdk-a1 on GW_A: another next hop of the gateway
    is refused as a second active route, and GW_B may not route the destination in the VPC."""
    expect("active/standby rule", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-a2", 100),
           "VpnRouteEntry.BackupRoute", 400)
    expect("VPC route conflict", create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-b1", 100, gw=GW_B),
           "OperationFailed.RouteConflict", 400)


def check_conflict_and_deleting(expect, create, status):
    """A destination another gateway of the VPC routes, then GW_DOOMED, which the caller has
    made `deleting`: changes refused, reads answered. The SDK's own `expect`, `create` (of
    source, destination, next hop, weight, gw=, publish=) and `status` (of a gateway)."""
    expect("VpnRouteEntry.Conflict: a destination another gateway of the VPC routes",
           create("192.168.1.0/24", "10.5.0.0/24", "vco-sdk-b1", 100, gw=GW_B, publish=False),
           "VpnRouteEntry.Conflict", 400)
    expect("IncorrectStatus.VpnGateway while the gateway is deleting",
           create("192.168.1.0/24", "10.40.0.0/24", "vco-sdk-doomed1", 100, gw=GW_DOOMED),
           "IncorrectStatus.VpnGateway", 400)
    check("a deleting gateway still answers reads", status(GW_DOOMED) == "deleting")


def finish():
    print(f"ALL OK {len(CHECKS)}", flush=True)
