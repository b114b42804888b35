#!/usr/bin/env python3
"""Summarises a dhat-heap.json (the operator's `heap-profile` feature, docs/benchmarks.md).

    hack/dhat-summary.py dhat-heap.json [--at gmax|end] [--top 25] [--depth 6]

Prints the heap at the global peak (t-gmax, default) or at exit (t-end): the total, then the
bytes by owning structure (the first rule of CATEGORIES matching a frame of the allocation's
stack, searched from the allocation upwards), then the top allocation sites with their stacks
cut to the frames of the operator and its libraries.
"""

import argparse
import json
import re
import sys
from collections import defaultdict

# (category, regex over one frame). The first frame (from the allocation up) that matches any
# rule decides; rules are tried in this order for each frame.
CATEGORIES = [
    ("dhat bookkeeping", r"dhat::"),
    ("reflector store (kube Store of routes)", r"kube_runtime::reflector::store|reflector::store::Writer"),
    ("watch event decoding (kube watcher / serde of objects)", r"kube_runtime::watcher|kube_client::client::Client::request_events|kube_client::api::core_methods.*watch"),
    ("operator: controller", r"vpn_pbr_operator::controller"),
    ("operator: sync", r"vpn_pbr_operator::sync"),
    ("operator: telemetry/metrics", r"vpn_pbr_operator::telemetry|prometheus_client"),
    ("operator: other", r"vpn_pbr_operator::"),
    ("kube controller runtime (scheduler, queues)", r"kube_runtime::controller|kube_runtime::scheduler|kube_runtime::utils"),
    ("kube client (HTTP, serde)", r"kube_client::"),
    ("cloud client", r"alicloud_vpc_client::|alicloud_signature::"),
    ("reqwest/hyper/rustls", r"reqwest::|hyper::|hyper_util::|h2::|rustls::|tokio_rustls::"),
    ("tokio runtime", r"tokio::"),
    ("tracing", r"tracing_subscriber::|tracing::"),
]

# Frames that say nothing about the owner: the allocator, std collections, generic glue.
NOISE = re.compile(
    r"^\[root\]|dhat::|alloc::|core::|std::|hashbrown::|__rust|<unknown>|\?\?\?|"
    r"serde::de::|serde_json::de|indexmap::|bytes::|smallvec::|futures_util::|futures_core::"
)


def frame_name(f: str) -> str:
    # "0x5555...: path::to::fn (src/file.rs:12:5)" -> "path::to::fn (src/file.rs:12:5)"
    return f.split(": ", 1)[1] if ": " in f else f


def classify(frames: list[str]) -> str:
    for f in frames:
        for cat, rx in CATEGORIES:
            if re.search(rx, f):
                return cat
    return "unattributed"


def mib(b: float) -> str:
    return f"{b / 1048576:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--at", choices=["gmax", "end"], default="gmax")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--depth", type=int, default=6)
    a = ap.parse_args()
    with open(a.file) as fh:
        d = json.load(fh)
    ftbl = [frame_name(f) for f in d["ftbl"]]
    key, kbk = ("gb", "gbk") if a.at == "gmax" else ("eb", "ebk")
    pps = []
    for pp in d["pps"]:
        frames = [ftbl[i] for i in pp["fs"]]
        pps.append((pp[key], pp[kbk], frames))
    total = sum(p[0] for p in pps)
    blocks = sum(p[1] for p in pps)
    tb = sum(pp["tb"] for pp in d["pps"])
    print(f"heap at t-{a.at}: {mib(total)} MiB in {blocks} blocks "
          f"({len(d['pps'])} sites; {mib(tb)} MiB allocated over the run)")
    print()
    cats = defaultdict(lambda: [0, 0])
    for b, bk, frames in pps:
        c = cats[classify(frames)]
        c[0] += b
        c[1] += bk
    print("| structure | MiB | % | blocks |")
    print("|---|---:|---:|---:|")
    for cat, (b, bk) in sorted(cats.items(), key=lambda kv: -kv[1][0]):
        print(f"| {cat} | {mib(b)} | {100 * b / max(total, 1):.1f} | {bk} |")
    print()
    print(f"top {a.top} sites:")
    for b, bk, frames in sorted(pps, key=lambda p: -p[0])[: a.top]:
        if b == 0:
            break
        kept = [f for f in frames if not NOISE.search(f)][: a.depth]
        print(f"- {mib(b)} MiB ({100 * b / max(total, 1):.1f} %), {bk} blocks, "
              f"{b // max(bk, 1)} B/block  [{classify(frames)}]")
        for f in kept:
            print(f"    {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
