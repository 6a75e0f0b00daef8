#!/usr/bin/python3
"""Durable binding operations per second through the real broker and hearthd, against the raw
rate of single-row synchronous=FULL SQLite commits on the same disk, measured in the same run;
plus p50/p99 latency of one request through the broker.

    /usr/bin/python3 bench/binding_bench.py [--ops 2000] [--json out.json]

Throughput is measured with mosquitto_pub / mosquitto_sub (C, libmosquitto) as the terminal, so
that the client is not the bottleneck: one mosquitto_pub -l, connected before the clock
starts, streams bindDevice requests for --devices devices, a mosquitto_sub counts the answers, then the same for unbindDevice, for as
many rounds as make --ops operations. Every answer must be ok: each one is a durable state
change (one synchronous=FULL transaction) answered only after its commit.

Prints a table and the ratio (target >= 0.6; >= 5 under the SD-card model). Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import select
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Hub  # noqa: E402


def raw_commit_rate(directory, n):
    """Single-row commits, each durable: what one fsync-bound transaction costs on this disk.
    Under the SD-card model (HEARTH_SDCARD_SHIM) the baseline runs with the same slowed fsync,
    in a child process that has the shim preloaded, so both sides pay the same disk."""
    shim = os.environ.get("HEARTH_SDCARD_SHIM")
    if shim and not os.environ.get("LD_PRELOAD"):
        env = dict(os.environ, LD_PRELOAD=shim)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--raw-only", directory,
                              str(n)], env=env, check=True, capture_output=True, text=True)
        return float(out.stdout.strip())
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


def stream_phase(hub, password, method, devices, tag):
    """Streams `method` for every device through one mosquitto_pub and returns the seconds from
    the first request to the last answer (all must be ok)."""
    base = "hearth/v1/u/alice/bench-%s" % tag
    common = ["-h", "127.0.0.1", "-p", str(hub.broker.port), "-u", "alice", "-P", password,
              "-V", "mqttv5", "-q", "1"]
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub"] + common + [
        "-i", "bench-sub-" + tag, "-t", base + "/res/#", "-t", base + "/probe",
        "-C", str(len(devices) + 2)], stdout=subprocess.PIPE, text=True)
    pub = None
    try:
        # The subscription is in place once a probe comes back (one sent before it was in
        # place is lost, so probe again until one arrives).
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"
            subprocess.run(["mosquitto_pub"] + common + ["-i", "bench-probe-" + tag,
                            "-t", base + "/probe", "-m", "probe"], check=True, timeout=10)
            if select.select([sub.stdout], [], [], 0.5)[0]:
                assert sub.stdout.readline().strip() == "probe"
                break
        # One mosquitto_pub -l, connected before the clock starts: a request for a device
        # that does not exist goes first and its answer (an error) is awaited. Starting one per
        # phase inside the timing, as before, counted its connect and the 0.15-0.2 s it sleeps
        # on the way out: at 1,000 requests a phase that was half of the time measured.
        pub = subprocess.Popen(["mosquitto_pub"] + common + ["-i", "bench-" + tag,
                               "-t", base + "/req/" + method, "-l"],
                               stdin=subprocess.PIPE, text=True)
        pub.stdin.write('{"id":"%s-warm","params":{"deviceId":"no-such-device-%s"}}\n' % (tag, tag))
        pub.stdin.flush()
        warm = json.loads(sub.stdout.readline())
        assert warm.get("id") == tag + "-warm" and not warm.get("ok"), warm
        lines = "".join('{"id":"%s-%d","params":{"deviceId":"%s"}}\n' % (tag, i, d)
                        for i, d in enumerate(devices))
        start = time.perf_counter()
        pub.stdin.write(lines)
        pub.stdin.flush()
        answers = [json.loads(sub.stdout.readline()) for _ in devices]
        elapsed = time.perf_counter() - start
        pub.stdin.close()
        assert pub.wait(timeout=30) == 0, "mosquitto_pub failed"
    finally:
        if pub is not None and pub.poll() is None:
            pub.kill()
            pub.wait()
        sub.kill()
        sub.wait()
    bad = [a for a in answers if not a.get("ok")]
    assert not bad, bad[:3]
    assert len({a["id"] for a in answers}) == len(devices), "duplicate answers"
    return elapsed


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--raw-only":
        print(raw_commit_rate(sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--json")
    args = ap.parse_args()

    with Hub(plugins=["testtransport_plugin"]) as hub:
        password = hub.add_user("alice")
        alice = hub.terminal("alice", "bench")
        tag = uuid.uuid4().hex[:6]
        devices = ["bench-%d-%s" % (i, tag) for i in range(args.devices)]
        with ThreadPoolExecutor(4) as pool:
            for r in pool.map(lambda d: hub.admin("testReport", {"deviceId": d}), devices):
                assert r["ok"], r

        # Throughput: each phase streams one request per device and waits for every answer.
        # The raw commits run in slices of the same size right before each phase, so that
        # both see the disk as it is at that moment (other work on the machine moves an
        # fsync's cost by several times within a minute).
        phases = []
        while len(phases) * len(devices) < args.ops:
            phases.append("bindDevice" if len(phases) % 2 == 0 else "unbindDevice")
        elapsed = 0.0
        raw_elapsed = 0.0
        for n, method in enumerate(phases):
            raw_elapsed += len(devices) / raw_commit_rate(hub.state_dir, len(devices))
            elapsed += stream_phase(hub, password, method, devices, "p%d" % n)
        ops_rate = len(phases) * len(devices) / elapsed
        raw = len(phases) * len(devices) / raw_elapsed

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
        "target_ratio": 5.0 if os.environ.get("HEARTH_SDCARD_SHIM") else 0.6,
        "latency_ms_p50": round(percentile(lat, 50), 3),
        "latency_ms_p99": round(percentile(lat, 99), 3),
        "ops": len(phases) * len(devices),
    }
    print("%-40s %12s" % ("measure", "value"))
    for k, v in result.items():
        print("%-40s %12s" % (k, v))
    target = result["target_ratio"]
    print("ratio %.2f %s target %.1f" % (ratio, ">=" if ratio >= target else "<", target))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
