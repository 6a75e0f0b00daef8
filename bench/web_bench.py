#!/usr/bin/python3
"""The front door's cost: one request round trip (getBoundDevices, read-only) through wss:// and
through mqtts:// against the same request straight to the loopback broker, interleaved in one
run (each round sends one request on each path, in rotating order, so machine noise falls on
all three alike); and the RSS that held connections cost the hub.

    /usr/bin/python3 bench/web_bench.py [--requests 2000] [--held 200] [--json out.json]

Prints p50/p99 per path and the ratios to the direct path at p50 (target <= 1.15), for two
client libraries, each the same on all three paths (so a ratio shows what the door adds: TLS,
the pipe, WebSocket framing, not a difference between clients):

- paho MQTT 5 (Python, the integration tests' client; TCP_NODELAY), whose TLS reads and
  WebSocket framing run in Python, byte by byte;
- mqtt.js (bench/web_bench_client.mjs under Node; the library of hearth-client and the web
  app), with Node's native TLS. It sends one MQTT packet as several WebSocket frames, as it does
  in a browser. Skipped when node or clients/js/node_modules is missing.

Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import socket
import ssl
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Terminal  # noqa: E402
from test_web import WebHub, connect_packet, raise_fd_limit, recv_exactly  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100.0))]


def round_trip(t):
    start = time.perf_counter()
    r = t.request("getBoundDevices", {}, timeout=10)
    elapsed = time.perf_counter() - start
    if not r.get("ok"):
        raise AssertionError("getBoundDevices failed: %s" % r)
    return elapsed * 1000.0


HERE = os.path.dirname(os.path.abspath(__file__))
MQTT_JS = os.path.join(HERE, "..", "clients", "js", "node_modules", "mqtt")


def table(title, times):
    """Prints times {path: [ms]} as a table with the ratios to direct; returns its rows."""
    rows = {}
    for name, ts in times.items():
        rows[name] = {"p50_ms": pct(ts, 50), "p99_ms": pct(ts, 99), "mean_ms": statistics.mean(ts)}
    base = rows["direct"]["p50_ms"]
    print(title)
    print("  %-8s %9s %9s %9s" % ("path", "p50 ms", "p99 ms", "p50 / direct"))
    for name, r in rows.items():
        r["ratio_p50"] = r["p50_ms"] / base
        print("  %-8s %9.3f %9.3f %9.2f" % (name, r["p50_ms"], r["p99_ms"], r["ratio_p50"]))
    worst = max(rows["mqtts"]["ratio_p50"], rows["wss"]["ratio_p50"])
    print("  target: <= 1.15 at p50 -> %s (worst %.2f)" % ("met" if worst <= 1.15 else "MISSED",
                                                           worst))
    return rows


def mqtt_js_times(hub, requests):
    """The same interleaved round trips with mqtt.js under Node, or None without Node/mqtt.js."""
    if not shutil.which("node") or not os.path.isdir(MQTT_JS):
        print("mqtt.js: skipped (needs node and clients/js/node_modules: make build)")
        return None
    cfg = {"user": "alice", "password": hub.passwords["alice"], "ca": hub.ca_file,
           "brokerPort": hub.broker.port, "mqttsPort": hub.mqtts_port,
           "httpsPort": hub.https_port, "requests": requests}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(cfg, f)
        f.flush()
        out = subprocess.run(["node", os.path.join(HERE, "web_bench_client.mjs"), f.name],
                             capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise AssertionError("web_bench_client.mjs failed:\n" + out.stderr)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="round trips per path")
    ap.add_argument("--held", type=int, default=200, help="connections held for the RSS")
    ap.add_argument("--json")
    args = ap.parse_args()
    raise_fd_limit()

    with WebHub(web={"max_connections": max(256, args.held + 16)}) as hub:
        hub.add_user("alice")
        direct = Terminal(hub, "alice", "bench-direct", hub.passwords["alice"])
        hub.terminals.append(direct)
        direct.connect()
        paths = {
            "direct": direct,
            "mqtts": hub.door_terminal("alice", "bench-mqtts", hello=False),
            "wss": hub.door_terminal("alice", "bench-wss", transport="websockets", hello=False),
        }
        names = list(paths)
        for name in names:  # warm-up
            for _ in range(50):
                round_trip(paths[name])
        times = {name: [] for name in names}
        for i in range(args.requests):
            order = names[i % 3:] + names[:i % 3]
            for name in order:
                times[name].append(round_trip(paths[name]))
        rows = table("request round trip (getBoundDevices), paho, %d per path, interleaved:"
                     % args.requests, times)
        for t in paths.values():
            t.disconnect()
        js_rows = None
        js_times = mqtt_js_times(hub, args.requests)
        if js_times:
            js_rows = table("request round trip (getBoundDevices), mqtt.js, %d per path, "
                            "interleaved:" % args.requests, js_times)

        # RSS per held connection: TLS + MQTT CONNECT through mqtts://, held open.
        time.sleep(1)
        idle = hub.rss_kib()
        held = []
        ctx = hub.tls_context()
        for i in range(args.held):
            raw = socket.create_connection(("127.0.0.1", hub.mqtts_port), timeout=20)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(connect_packet("held-%d" % i, "alice", hub.passwords["alice"], keepalive=600))
            ack = recv_exactly(s, 4)
            if not ack or ack[3] != 0:
                raise AssertionError("held connection %d refused: %r" % (i, ack))
            held.append(s)
        time.sleep(1)
        loaded = hub.rss_kib()
        per = (loaded - idle) / float(args.held)
        print("held connections (mqtts, TLS + CONNECT): %d; hub RSS %d KiB idle, %d KiB held: "
              "%.1f KiB per connection" % (args.held, idle, loaded, per))
        for s in held:
            s.close()
        # Worker threads end 10 s after their client; then the allocator gives back their memory.
        time.sleep(16)
        after = hub.rss_kib()
        print("after they left: hub RSS %d KiB (%+d KiB against idle)" % (after, after - idle))
        result = {"requests": args.requests, "paths": rows, "paths_mqtt_js": js_rows,
                  "held": args.held,
                  "rss_idle_kib": idle, "rss_held_kib": loaded, "rss_per_connection_kib": per,
                  "rss_after_kib": after}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
