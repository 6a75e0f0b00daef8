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

This script sets up the hub, the users, the terminals' accounts and the access grant (with the
harness's Python terminals) and starts the forwarder; the terminals A and B that are measured
are compiled too (bench/coop_terminals.cc, one process that does the rounds and the sustained
runs), so that the rate and the latencies are the hub's and the forwarder's, not Python's.

Prints p50/p99 of both, their ratios (targets: p50 <= 1.10, p99 <= 1.25; with the SD-card
model, p50 <= 1.15, p99 <= 1.5) and commands/s against the forwarder's (target >= 0.8).
Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402
from harness import Hub  # noqa: E402

# The baseline: bench/coop_forwarder.cc, a compiled libmosquitto client with no logic
# (TCP_NODELAY, MQTT 5, QoS 1) in the hub's place. hearthd's own broker account may use all of
# hearth/#; the users may not.
FORWARDER = os.path.join(harness.BUILD_DIR, "bench", "coop-forwarder")
# The terminals A and B, compiled too, in one process that also does the measurement.
TERMINALS = os.path.join(harness.BUILD_DIR, "bench", "coop-terminals")


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

        # The terminals are compiled (bench/coop_terminals.cc): Python's per-message cost bound
        # the rate and diluted the latencies. They take over A's and B's identities: the Python
        # clients disconnect cleanly (no Will: the retained presence stays "online"), and the
        # compiled ones connect with the same client ids (the broker allows one connection per
        # id), publish presence "online" and say hello, as every session of a hearth client
        # starts.
        for t in (a, b):
            t.client.disconnect()
            t.client.loop_stop()

        fwd = subprocess.Popen([FORWARDER, str(hub.broker.port),
                                hub.broker.password, a.base, b.base],
                               stdout=subprocess.PIPE, text=True)
        try:
            if fwd.stdout.readline().strip() != "ready":
                raise AssertionError("forwarder did not start")
            cmd = [TERMINALS, "--port", str(hub.broker.port),
                   "--rounds", str(args.rounds), "--commands", str(args.commands),
                   "--window", str(args.window), "--b-endpoint", json.dumps(b_ep),
                   # CPU per command, which load on a shared machine does not change much:
                   # the relay's own cost against the forwarder's, each over its sustained run.
                   "--hub-pid", str(hub.proc.pid), "--fwd-pid", str(fwd.pid),
                   "--broker-pid", str(hub.broker.proc.pid)]
            for flag, t, app in (("a", a, "appA"), ("b", b, "appB")):
                cmd += ["--%s-user" % flag, t.user, "--%s-password" % flag, hub.passwords[t.user],
                        "--%s-client" % flag, t.client_id, "--%s-base" % flag, t.base,
                        "--%s-app" % flag, app]
            run = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=600)
            if run.returncode != 0:
                raise AssertionError("coop-terminals failed (exit %d)" % run.returncode)
            measured = json.loads(run.stdout.strip().splitlines()[-1])
        finally:
            fwd.kill()
            fwd.wait()

    m = measured
    result = {
        "hub_p50_ms": round(m["hub_p50_ms"], 3),
        "hub_p99_ms": round(m["hub_p99_ms"], 3),
        "forwarder_p50_ms": round(m["forwarder_p50_ms"], 3),
        "forwarder_p99_ms": round(m["forwarder_p99_ms"], 3),
        "ratio_p50": round(m["hub_p50_ms"] / m["forwarder_p50_ms"], 3),
        "ratio_p99": round(m["hub_p99_ms"] / m["forwarder_p99_ms"], 3),
        "hub_commands_per_s": round(m["hub_commands_per_s"], 1),
        "forwarder_commands_per_s": round(m["forwarder_commands_per_s"], 1),
        "hub_cpu_us_per_command": round(m["hub_cpu_s"] / args.commands * 1e6, 1),
        "forwarder_cpu_us_per_command": round(m["forwarder_cpu_s"] / args.commands * 1e6, 1),
        # The broker's and the terminals' (both, one process) CPU per command on each path.
        "broker_cpu_us_per_command_hub": round(m["broker_cpu_s_hub"] / args.commands * 1e6, 1),
        "broker_cpu_us_per_command_forwarder": round(
            m["broker_cpu_s_forwarder"] / args.commands * 1e6, 1),
        "terminals_cpu_us_per_command_hub": round(
            m["terminals_cpu_s_hub"] / args.commands * 1e6, 1),
        "terminals_cpu_us_per_command_forwarder": round(
            m["terminals_cpu_s_forwarder"] / args.commands * 1e6, 1),
        "rounds": args.rounds,
        "window": args.window,
        "load_average": round(os.getloadavg()[0], 2),
    }
    sdcard = bool(os.environ.get("HEARTH_SDCARD_SHIM"))
    t50, t99 = (1.15, 1.5) if sdcard else (1.10, 1.25)
    result["sdcard_ms"] = int(os.environ.get("HEARTH_SDCARD_MS", "5")) if sdcard else 0
    result["rate_ratio"] = round(m["hub_commands_per_s"] / m["forwarder_commands_per_s"], 3)
    result["terminals"] = "compiled"  # bench/coop_terminals.cc; before 2026-12-02: Python (paho)
    print("%-40s %12s" % ("measure", "value"))
    for k, v in result.items():
        print("%-40s %12s" % (k, v))
    print("p50 ratio %.2f %s target %.2f; p99 ratio %.2f %s target %.2f; rate ratio %.2f %s 0.8" % (
        result["ratio_p50"], "<=" if result["ratio_p50"] <= t50 else ">", t50,
        result["ratio_p99"], "<=" if result["ratio_p99"] <= t99 else ">", t99,
        result["rate_ratio"], ">=" if result["rate_ratio"] >= 0.8 else "<"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
