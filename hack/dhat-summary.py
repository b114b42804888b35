#!/usr/bin/env python3
"""Summarises a dhat-heap.json (the operator's `heap-profile` feature, docs/benchmarks.md).

    hack/dhat-summary.py dhat-heap.json [--at gmax|end|run] [--top 25] [--depth 6]

Prints the heap at the global peak (t-gmax, default) or at exit (t-end), or what was allocated
over the whole run (`run`: the churn that costs CPU and fragments the heap): the total, then the
bytes by owning structure (the first rule of CATEGORIES matching a frame of the allocation's
stack, from the allocation up), then the top allocation sites with their stacks
cut to the frames of the operator and its libraries.
"""

import argparse
import json
import re
import sys
from collections import defaultdict

# (category, regex over one frame: function with its type parameters, and file). The first frame
# (from the allocation up) that matches a rule decides, so the rules name owners, not helpers
# (an ObjectRef or String clone goes on to the frame that keeps it). dhat names functions
# without their module, so most rules match the file.
CATEGORIES = [
    ("kube reflector store (the VpnPbrRoute objects)", r"apply_watcher_event|reflector/store\.rs"),
    ("kube controller scheduler (pending and requeued reconciles)",
     r"schedule_message|pop_queue_message_into_pending|kube_runtime::scheduler|delay_queue"),
    ("duplicates index (src/controller/duplicates.rs)", r"src/controller/duplicates\.rs"),
    ("gateway queues and scheduler jobs (queue.rs, scheduler.rs)",
     r"src/controller/(queue|scheduler|job|estimate)\.rs"),
    ("entry cache and cloud reads (cached.rs, entries.rs, model.rs, vpc.rs)",
     r"src/controller/(cached|entries|model|vpc)\.rs"),
    ("metrics", r"src/controller/metrics\.rs|src/telemetry|prometheus_client"),
    ("reconciles in flight and per-route maps",
     r"src/controller/(reconcile|decide|status|objects|plan|event|backoff|verified|accounts|context|runner)\.rs"),
    ("cloud client", r"alicloud_vpc_client|alicloud_signature"),
    ("kube controller runtime (other)", r"kube_runtime::controller"),
    ("kube client and watch decoding", r"kube_client|kube_runtime::watcher|kube_core"),
    ("HTTP and TLS (hyper, reqwest, rustls, axum)", r"hyper|reqwest|rustls|axum|h2::"),
    ("tokio runtime", r"tokio"),
    ("tracing", r"tracing"),
]

# Frames that say nothing about the owner: the allocator, std collections, generic glue.
NOISE = re.compile(
    r"^\[root\]|\((dhat-|alloc/src/|core/src/|std/src/|src/raw/|src/vec/|src/raw_vec/|"
    r"stable/alloc/|collections/)|__rust_alloc"
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
    ap.add_argument("--at", choices=["gmax", "end", "run"], default="gmax")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--depth", type=int, default=6)
    a = ap.parse_args()
    with open(a.file) as fh:
        d = json.load(fh)
    ftbl = [frame_name(f) for f in d["ftbl"]]
    key, kbk = {"gmax": ("gb", "gbk"), "end": ("eb", "ebk"), "run": ("tb", "tbk")}[a.at]
    pps = []
    for pp in d["pps"]:
        frames = [ftbl[i] for i in pp["fs"]]
        pps.append((pp[key], pp[kbk], frames))
    total = sum(p[0] for p in pps)
    blocks = sum(p[1] for p in pps)
    tb = sum(pp["tb"] for pp in d["pps"])
    what = "allocated over the run" if a.at == "run" else f"heap at t-{a.at}"
    print(f"{what}: {mib(total)} MiB in {blocks} blocks "
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
