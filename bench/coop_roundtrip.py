#!/usr/bin/python3
"""Command round trip through coop_relay against a minimal forwarding MQTT client, measured on
the same broker in the same run. The forwarder is compiled (bench/coop_forwarder.cc), so the
ratio is against the real limit: the four broker hops with no logic between them.

    /usr/bin/python3 bench/coop_roundtrip.py [--rounds 1000] [--commands 3000] [--window 32]
                                             [--json out.json]

Round trip: A publishes sendCommand -> hub -> B gets `command` -> B publishes replyCommand ->
hub -> A gets `commandResponse`. Baseline: the same two terminals and the same payloads, but
the hub's place is taken by a compiled forwarding client (a separate process, no logic: it
republishes A's message into B's tree and B's answer into A's tree). Both paths have the same broker hops.
The two are measured interleaved, one round trip at a time, so noise hits both alike. Then
sustained commands/s with --window round trips in flight.

Prints p50/p99 of both, their ratios (targets: p50 <= 1.10, p99 <= 1.25; with the SD-card
model, p50 <= 1.15, p99 <= 1.5) and commands/s against the forwarder's (target >= 0.8).
Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from harness import Hub  # noqa: E402

# The baseline: bench/coop_forwarder.cc, a compiled libmosquitto client with no logic
# (TCP_NODELAY, MQTT 5, QoS 1) in the hub's place. hearthd's own broker account may use all of
# hearth/#; the users may not.
FORWARDER = os.path.join(harness.BUILD_DIR, "bench", "coop-forwarder")


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


class Arrivals:
    """Arrival times by sequence number, for both paths."""

    def __init__(self):
        self.cond = threading.Condition()
        self.at = {}

    def arrived(self, key):
        with self.cond:
            self.at[key] = time.perf_counter()
            self.cond.notify_all()

    def wait(self, key, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.at, timeout):
                raise AssertionError("round trip %s did not come back" % (key,))
            return self.at.pop(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--commands", type=int, default=3000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args()

    # A long reply_timeout so that nothing times out while the bench runs.
    with Hub(plugins=["coop_relay"],
             plugin_config={"coop_relay": {"reply_timeout": "10m"}}) as hub:
        hub.add_user("alice")
        hub.add_user("bob")
        a = hub.terminal("alice", "bench-a", app_id="appA")
        b = hub.terminal("bob", "bench-b", app_id="appB")
        b_ep = {"appId": "appB", "userId": "bob", "clientIdentify": "bench-b"}
        req = a.call("requestAccessTo", {"to": b_ep, "allPermissions": True})
        b.wait_event("accessRequest")
        b.call("agreeAccessRequest", {"commandId": req["commandId"],
                                      "to": {"appId": "appA", "userId": "alice",
                                             "clientIdentify": "bench-a"}})
        a.wait_event("accessResponse")

        arrivals = Arrivals()

        # B answers both paths from its MQTT callback with the same work: parse, build, publish.
        def on_b(client, userdata, msg):
            if msg.topic.endswith("/evt/command"):
                cmd = json.loads(msg.payload)["data"]
                body = {"id": "r", "params": {"commandId": cmd["commandId"], "to": cmd["from"],
                                              "commandParams": cmd["commandParams"]}}
                client.publish(b.base + "/req/replyCommand", json.dumps(body), qos=1)
            elif msg.topic.endswith("/bench/cmdin"):
                cmd = json.loads(msg.payload)
                body = {"id": "r", "params": {"commandId": cmd["id"], "to": {},
                                              "commandParams": cmd["params"]["commandParams"]}}
                client.publish(b.base + "/bench/reply", json.dumps(body), qos=1)

        def on_a(client, userdata, msg):
            if msg.topic.endswith("/evt/commandResponse"):
                arrivals.arrived(("hub", json.loads(msg.payload)["data"]["commandParams"]["seq"]))
            elif msg.topic.endswith("/bench/resp"):
                arrivals.arrived(("fwd", json.loads(msg.payload)["params"]["commandParams"]["seq"]))

        b.client.on_message = on_b
        a.client.on_message = on_a
        for t, topic in ((a, a.base + "/bench/resp"), (b, b.base + "/bench/cmdin")):
            t.client.subscribe(topic, qos=1)

        fwd = subprocess.Popen([FORWARDER, str(hub.broker.port),
                                hub.broker.password, a.base, b.base],
                               stdout=subprocess.PIPE, text=True)
        try:
            if fwd.stdout.readline().strip() != "ready":
                raise AssertionError("forwarder did not start")
            time.sleep(0.3)  # let A's and B's extra subscriptions settle

            def publish(path, seq):
                body = {"id": "c%d" % seq, "params": {"commandType": "bench", "to": b_ep,
                                                      "commandParams": {"seq": seq}}}
                topic = a.base + ("/req/sendCommand" if path == "hub" else "/bench/cmd")
                a.client.publish(topic, json.dumps(body), qos=1)

            def round_trip(path, seq):
                t0 = time.perf_counter()
                publish(path, seq)
                return (arrivals.wait((path, seq)) - t0) * 1000

            # Warm-up, then interleaved latency.
            for seq in range(50):
                round_trip("hub", -1 - seq)
                round_trip("fwd", -1 - seq)
            lat = {"hub": [], "fwd": []}
            for seq in range(args.rounds):
                order = ("hub", "fwd") if seq % 2 == 0 else ("fwd", "hub")
                for path in order:
                    lat[path].append(round_trip(path, seq))

            def sustained(path, base):
                sem = threading.Semaphore(args.window)
                done = threading.Event()

                def collector():
                    for seq in range(base, base + args.commands):
                        arrivals.wait((path, seq), timeout=60)
                        sem.release()
                    done.set()

                threading.Thread(target=collector, daemon=True).start()
                start = time.perf_counter()
                for seq in range(base, base + args.commands):
                    sem.acquire()
                    publish(path, seq)
                if not done.wait(120):
                    raise AssertionError("sustained run on %s did not finish" % path)
                return args.commands / (time.perf_counter() - start)

            # CPU per command, which load on a shared machine does not change much: the
            # relay's own cost against the forwarder's.
            c0 = cpu_seconds(hub.proc.pid)
            rate_hub = sustained("hub", 1_000_000)
            cpu_hub = cpu_seconds(hub.proc.pid) - c0
            c0 = cpu_seconds(fwd.pid)
            rate_fwd = sustained("fwd", 2_000_000)
            cpu_fwd = cpu_seconds(fwd.pid) - c0
        finally:
            fwd.kill()
            fwd.wait()

    p50 = {k: percentile(v, 50) for k, v in lat.items()}
    p99 = {k: percentile(v, 99) for k, v in lat.items()}
    result = {
        "hub_p50_ms": round(p50["hub"], 3),
        "hub_p99_ms": round(p99["hub"], 3),
        "forwarder_p50_ms": round(p50["fwd"], 3),
        "forwarder_p99_ms": round(p99["fwd"], 3),
        "ratio_p50": round(p50["hub"] / p50["fwd"], 3),
        "ratio_p99": round(p99["hub"] / p99["fwd"], 3),
        "hub_commands_per_s": round(rate_hub, 1),
        "forwarder_commands_per_s": round(rate_fwd, 1),
        "hub_cpu_us_per_command": round(cpu_hub / args.commands * 1e6, 1),
        "forwarder_cpu_us_per_command": round(cpu_fwd / args.commands * 1e6, 1),
        "rounds": args.rounds,
        "window": args.window,
    }
    sdcard = bool(os.environ.get("HEARTH_SDCARD_SHIM"))
    t50, t99 = (1.15, 1.5) if sdcard else (1.10, 1.25)
    result["sdcard_ms"] = int(os.environ.get("HEARTH_SDCARD_MS", "5")) if sdcard else 0
    result["rate_ratio"] = round(rate_hub / rate_fwd, 3)
    print("%-28s %12s" % ("measure", "value"))
    for k, v in result.items():
        print("%-28s %12s" % (k, v))
    print("p50 ratio %.2f %s target %.2f; p99 ratio %.2f %s target %.2f; rate ratio %.2f %s 0.8" % (
        result["ratio_p50"], "<=" if result["ratio_p50"] <= t50 else ">", t50,
        result["ratio_p99"], "<=" if result["ratio_p99"] <= t99 else ">", t99,
        result["rate_ratio"], ">=" if result["rate_ratio"] >= 0.8 else "<"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
