#!/usr/bin/python3
"""How cost grows with the size of the binding state: request latency and hearthd's RSS at
100, 10,000 and 100,000 bindings (10 per device), seeded straight into the database.

At each scale one terminal, whose user owns 10 of the devices, measures one request at a time
through the broker:
  read    getDeviceDetail of one of its devices (the owner sees every member)
  list    getBoundDevices
  write   bindDevice + unbindDevice of a fresh device (each a durable synchronous=FULL commit)
Baseline, same run and same broker: a QoS 1 message that a client publishes to a topic it is
subscribed to (two broker hops, no hub), measured interleaved with the reads. Ratios are
latency / baseline at p50; flat across scales means the cost does not grow with the state.

    /usr/bin/python3 bench/scale_bench.py [--scales 100,10000,100000] [--requests 300]
                                          [--json out.json]

Needs a build in build/ (or HEARTH_BUILD_DIR) with the test plugin testtransport_plugin.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import rss_bench  # noqa: E402
from harness import Hub, wait_for  # noqa: E402


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


class Echo:
    """A client that times QoS 1 publications to a topic it subscribes to."""

    def __init__(self, hub, user):
        self.cond = threading.Condition()
        self.got = set()
        self.topic = "hearth/v1/u/%s/bench-echo/echo" % user
        subscribed = threading.Event()
        self.client = hub.raw_client(user, "bench-echo")
        self.client.on_subscribe = lambda *a, **k: subscribed.set()
        self.client.on_message = self._on_message
        wait_for(self.client.is_connected, timeout=10, what="echo client")
        import socket
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.subscribe(self.topic, qos=1)
        if not subscribed.wait(10):
            raise AssertionError("echo client not subscribed")

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.got.add(msg.payload.decode())
            self.cond.notify_all()

    def once(self):
        key = uuid.uuid4().hex
        t0 = time.perf_counter()
        self.client.publish(self.topic, key, qos=1)
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.got, 10):
                raise AssertionError("echo lost")
        return (time.perf_counter() - t0) * 1000

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def timed(term, method, params):
    t0 = time.perf_counter()
    r = term.request(method, params, timeout=30)
    ms = (time.perf_counter() - t0) * 1000
    if not r.get("ok"):
        raise AssertionError("%s failed: %s" % (method, r))
    return ms


def measure(bindings, requests):
    devices = max(10, bindings // 10)
    with Hub(plugins=["testtransport_plugin"]) as hub:
        hub.add_user("bench")
        hub.terminate()
        seeded = rss_bench.seed(os.path.join(hub.state_dir, "hearth.db"), devices, bindings,
                                users=max(100, bindings // 100), bench_user="bench")
        hub.start()
        term = hub.terminal("bench", "bench-phone")
        fresh = "fresh-%s" % uuid.uuid4().hex[:6]
        assert hub.admin("testReport", {"deviceId": fresh})["ok"]
        echo = Echo(hub, "bench")
        for _ in range(20):  # warm-up
            timed(term, "getDeviceDetail", {"deviceId": "dev000000"})
            echo.once()
        base, read, listing, write = [], [], [], []
        for i in range(requests):
            base.append(echo.once())
            read.append(timed(term, "getDeviceDetail", {"deviceId": "dev%06d" % (i % 10)}))
            listing.append(timed(term, "getBoundDevices", {}))
            if i % 2 == 0:
                write.append(timed(term, "bindDevice", {"deviceId": fresh}) +
                             timed(term, "unbindDevice", {"deviceId": fresh}))
        echo.close()
        status = hub.status()
        rss = rss_bench.settled_rss(hub.proc.pid, 1.0)
    b50 = percentile(base, 50)
    row = {
        "bindings": status["bindings"], "devices": status["devices"], "seeded": seeded,
        "rss_kib": rss["VmRSS"], "rss_anon_kib": rss["RssAnon"],
        "baseline_ms_p50": round(b50, 3), "baseline_ms_p99": round(percentile(base, 99), 3),
    }
    for name, values in (("read", read), ("list", listing), ("write", write)):
        row[name + "_ms_p50"] = round(percentile(values, 50), 3)
        row[name + "_ms_p99"] = round(percentile(values, 99), 3)
        row[name + "_ratio_p50"] = round(percentile(values, 50) / b50, 2)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="100,10000,100000")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = [measure(int(s), args.requests) for s in args.scales.split(",")]
    cols = ["bindings", "devices", "rss_kib", "baseline_ms_p50", "read_ms_p50", "read_ms_p99",
            "read_ratio_p50", "list_ms_p50", "list_ms_p99", "write_ms_p50", "write_ms_p99"]
    print(" ".join("%15s" % c for c in cols))
    for r in rows:
        print(" ".join("%15s" % r[c] for c in cols))
    print("baseline: QoS 1 publish to an own subscription through the same broker (no hub); "
          "write = bindDevice + unbindDevice, two durable commits")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"requests": args.requests, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
