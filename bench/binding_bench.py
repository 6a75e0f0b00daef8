#!/usr/bin/python3
"""Durable binding operations per second through the real broker and hearthd, against the raw
rate of single-row synchronous=FULL SQLite commits on the same disk, measured in the same run;
plus p50/p99 latency of one request through the broker.

    /usr/bin/python3 bench/binding_bench.py [--ops 2000] [--json out.json]

Prints a table and the ratio (target >= 0.4). Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Hub  # noqa: E402


def raw_commit_rate(directory, n):
    """Single-row commits, each durable: what one fsync-bound transaction costs on this disk."""
    path = os.path.join(directory, "raw-bench.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?, ?)", ("k%d" % i, "v"))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    os.remove(path)
    return n / elapsed


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--json")
    args = ap.parse_args()

    with Hub(plugins=["testtransport_plugin"]) as hub:
        hub.add_user("alice")
        alice = hub.terminal("alice", "bench")
        devices = []
        for i in range(50):
            dev = "bench-%d-%s" % (i, uuid.uuid4().hex[:6])
            hub.admin("testReport", {"deviceId": dev})
            devices.append(dev)

        raw = raw_commit_rate(hub.state_dir, args.ops)

        # Throughput: bind/unbind pairs kept in flight, each one a durable state change.
        start = time.perf_counter()
        pending = []
        for i in range(args.ops):
            dev = devices[(i // 2) % len(devices)]
            method = "bindDevice" if i % 2 == 0 else "unbindDevice"
            pending.append(alice.send(method, {"deviceId": dev}))
        for rid in pending:
            r = alice.wait_response(rid, timeout=120)
            assert r["ok"], r
        elapsed = time.perf_counter() - start
        ops_rate = args.ops / elapsed

        # Latency: one request at a time, through the broker and back.
        lat = []
        for i in range(min(args.ops, 1000)):
            dev = devices[(i // 2) % len(devices)]
            method = "bindDevice" if i % 2 == 0 else "unbindDevice"
            t0 = time.perf_counter()
            r = alice.request(method, {"deviceId": dev})
            lat.append((time.perf_counter() - t0) * 1000)
            assert r["ok"], r

    ratio = ops_rate / raw
    result = {
        "raw_sqlite_full_commits_per_s": round(raw, 1),
        "durable_binding_ops_per_s": round(ops_rate, 1),
        "ratio": round(ratio, 3),
        "target_ratio": 0.4,
        "latency_ms_p50": round(percentile(lat, 50), 3),
        "latency_ms_p99": round(percentile(lat, 99), 3),
        "ops": args.ops,
    }
    print("%-40s %12s" % ("measure", "value"))
    for k, v in result.items():
        print("%-40s %12s" % (k, v))
    print("ratio %.2f %s target 0.4" % (ratio, ">=" if ratio >= 0.4 else "<"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
