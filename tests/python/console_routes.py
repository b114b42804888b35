"""Creates policy-based routes with the official Tea SDK (alibabacloud-vpc20160428), as someone
in the console or a Terraform run would, before the operator is involved
(tests/import_plan.rs).

Usage: console_routes.py <host:port>, with the routes as JSON on stdin:
  [{"gateway": "vpn-...", "source": "...", "dest": "...", "next_hop": "vco-...",
    "weight": 100, "publish": false, "priority": 20, "description": "..."}, ...]
Credentials come from ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET. Prints one
line per route and "ALL OK <n>"; any failure raises (non-zero exit).
"""
import json
import os
import sys
import time

from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428 import models as m
from alibabacloud_vpc20160428.client import Client

ADDR = sys.argv[1]
REGION = "cn-hangzhou"
BUSY = {"TaskConflict", "VpnGateway.Configuring", "VpnTask.CONFLICT"}

client = Client(Config(access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                       access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                       endpoint=ADDR, protocol="http", region_id=REGION))


def wait_active(gateway, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.describe_vpn_gateway(m.DescribeVpnGatewayRequest(
            region_id=REGION, vpn_gateway_id=gateway)).body.status
        if status == "active":
            return
        time.sleep(0.05)
    raise AssertionError(f"{gateway} did not return to active")


def create(r, timeout=30.0):
    req = m.CreateVpnPbrRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=r["gateway"], route_source=r["source"],
        route_dest=r["dest"], next_hop=r["next_hop"], weight=r["weight"],
        publish_vpc=r.get("publish", False), priority=r.get("priority"),
        description=r.get("description"))
    deadline = time.time() + timeout
    while True:
        try:
            return client.create_vpn_pbr_route_entry(req).body
        except Exception as e:  # the SDK raises its own exception types with .code
            if getattr(e, "code", None) in BUSY and time.time() < deadline:
                time.sleep(0.1)
                continue
            raise


routes = json.load(sys.stdin)
for r in routes:
    wait_active(r["gateway"])
    body = create(r)
    assert body.route_dest == r["dest"] and body.next_hop == r["next_hop"], body
    print(f"ok   created {r['gateway']}: {r['source']} -> {r['dest']} via {r['next_hop']}",
          flush=True)
for gw in sorted({r["gateway"] for r in routes}):
    wait_active(gw)
print(f"ALL OK {len(routes)}", flush=True)
