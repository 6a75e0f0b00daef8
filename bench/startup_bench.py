#!/usr/bin/python3
"""Time from process start to READY=1 (sd_notify) with the broker already up, against a
baseline measured in the same run: starting a bare mosquitto_sub that connects, subscribes and
receives one retained message (process start + libmosquitto connect + one broker round trip),
which is the least any MQTT daemon's start-up can cost on this machine.

Scenarios: an empty database with all shipped plugins, and a database seeded with 10,000
devices and 100,000 bindings (the start-up PRAGMA quick_check and the load of the binding state
grow with it). Runs are interleaved with the baseline so noise hits both alike.

    /usr/bin/python3 bench/startup_bench.py [--runs 10] [--json out.json]

Needs a build in build/ (or HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
import rss_bench  # noqa: E402


def cpu_seconds(pid):
    """CPU time so far of every thread of pid (schedstat: nanoseconds on a CPU), in seconds."""
    total = 0
    task_dir = "/proc/%d/task" % pid
    for tid in os.listdir(task_dir):
        try:
            with open(os.path.join(task_dir, tid, "schedstat")) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # the thread ended meanwhile
    return total / 1e9


def time_to_ready(hub, timeout=60):
    """Starts hearthd with a NOTIFY_SOCKET; (seconds until READY=1 arrives, CPU seconds hearthd
    spent until then). Stops it after. The CPU time does not grow when other processes share
    the machine; the wall time does."""
    path = os.path.join(hub.root, "bench-notify.sock")
    if os.path.exists(path):
        os.remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(timeout)
    env = harness.hearthd_env()
    env["NOTIFY_SOCKET"] = path
    try:
        with open(hub.log_path, "ab") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen([harness.HEARTHD, "--config", hub.config_path], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                data = sock.recv(4096).decode(errors="replace")
                if "READY=1" in data.split("\n"):
                    return time.perf_counter() - t0, cpu_seconds(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        sock.close()
        os.remove(path)


def time_mosquitto_sub(hub):
    """Seconds for mosquitto_sub to start, connect, subscribe and get one retained message."""
    t0 = time.perf_counter()
    subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(hub.broker.port),
                    "-u", "hearthd", "-P", hub.broker.password, "-t", "hearth/v1/bench/retained",
                    "-C", "1", "-W", "30"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def scenario(name, plugins, runs, seed=None):
    hub = rss_bench.start_hub(plugins)
    try:
        hub.terminate()
        if seed:
            rss_bench.seed(os.path.join(hub.state_dir, "hearth.db"), *seed)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(hub.broker.port),
                        "-u", "hearthd", "-P", hub.broker.password,
                        "-t", "hearth/v1/bench/retained", "-r", "-q", "1", "-m", "x"], check=True)
        hub.proc = None
        time_to_ready(hub)  # warm the page cache for both
        time_mosquitto_sub(hub)
        ready, cpu, base = [], [], []
        for _ in range(runs):
            base.append(time_mosquitto_sub(hub))
            wall, spent = time_to_ready(hub)
            ready.append(wall)
            cpu.append(spent)
    finally:
        hub.close()
    r = {"scenario": name, "runs": runs,
         "ready_ms_p50": round(statistics.median(ready) * 1000, 1),
         "ready_ms_max": round(max(ready) * 1000, 1),
         "ready_cpu_ms_p50": round(statistics.median(cpu) * 1000, 1),
         "baseline_ms_p50": round(statistics.median(base) * 1000, 1)}
    r["ratio_p50"] = round(r["ready_ms_p50"] / r["baseline_ms_p50"], 2)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--bindings", type=int, default=100000)
    ap.add_argument("--json")
    args = ap.parse_args()

    plugins, missing = rss_bench.built_plugins(rss_bench.SHIPPED_PLUGINS)
    results = [
        scenario("empty database, all plugins", plugins, args.runs),
        scenario("%d devices, %d bindings" % (args.devices, args.bindings), plugins, args.runs,
                 seed=(args.devices, args.bindings)),
    ]
    print("%-36s %12s %12s %12s %14s %8s" % ("scenario", "READY p50 ms", "READY max ms",
                                             "CPU p50 ms", "baseline p50 ms", "ratio"))
    for r in results:
        print("%-36s %12.1f %12.1f %12.1f %14.1f %8.2f" % (
            r["scenario"], r["ready_ms_p50"], r["ready_ms_max"], r["ready_cpu_ms_p50"],
            r["baseline_ms_p50"], r["ratio_p50"]))
    print("CPU: hearthd's own CPU time until READY=1, all threads (does not grow with the "
          "machine's load)")
    print("baseline: mosquitto_sub start + connect + subscribe + one retained message")
    if missing:
        print("not built, left out: " + ", ".join(missing))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"plugins": plugins, "plugins_missing": missing, "results": results}, f,
                      indent=1)


if __name__ == "__main__":
    main()
