#!/usr/bin/python3
"""hearthd's resident memory (VmRSS) in two states, through the real broker:

  idle       every shipped plugin loaded (coop_relay, wifi_lan, ble, cloud_bridge, web,
             home_assistant), an empty database, after READY and a settle time. Target <= 10 MB.
  loaded     10,000 devices and 100,000 bindings seeded into the database, and a 10,000-message
             cloud_bridge outbox (the cloud broker unreachable, the messages published on the
             local broker and stored by the bridge). Measured right after the outbox filled and
             again after a restart with the same database. Target <= 24 MiB.

The baseline, measured in the same run: hearth-lib-floor (bench/lib_floor.cc), a program that
loads every shared library hearthd and the shipped plugins load (POCO with NetSSL and Crypto,
libmosquitto, OpenSSL, SQLite, yaml-cpp, libyaml, sdbus-c++, libsystemd, libstdc++) and does
nothing else. Its RSS is what those libraries cost before any work; "hub's own" is hearthd's
idle RSS minus it (target <= 5 MiB). The bench checks, from /proc/PID/maps, that the floor maps
every shared library the idle hub maps, and names any it misses. For reference, the RSS of the
broker and of an idle mosquitto_sub are measured too.

    /usr/bin/python3 bench/rss_bench.py [--devices 10000] [--bindings 100000]
                                        [--outbox 10000] [--plugins a,b] [--json out.json]

Needs a build in build/ (or HEARTH_BUILD_DIR). Plugins that are not built are left out and
named in the output.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402
from harness import Hub, free_port, wait_for  # noqa: E402

SHIPPED_PLUGINS = ["coop_relay", "wifi_lan", "ble", "cloud_bridge", "web", "home_assistant"]
SETTLE_S = 3.0
NOW_MS = int(time.time() * 1000)


def built_plugins(names):
    have, missing = [], []
    for name in names:
        if any(os.path.exists(os.path.join(d, name + ".so")) for d in harness.PLUGIN_BUILD_DIRS):
            have.append(name)
        else:
            missing.append(name)
    return have, missing


def memory(pid):
    """VmRSS and its parts in KiB, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def proportional(pid):
    """Pss in KiB: RSS with every shared page divided among the processes that map it (on a Pi
    libc, libstdc++, libssl and libmosquitto are shared with the broker)."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def top_mappings(pid, n=8):
    """The file mappings holding the most resident memory: [(file, KiB)]."""
    rss = {}
    current = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                current = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:" and current:
                rss[current] = rss.get(current, 0) + int(parts[1])
    return sorted(rss.items(), key=lambda kv: -kv[1])[:n]


def shared_libraries(pid):
    """The basenames of the shared libraries a process maps (plugins' own .so files left out)."""
    libs = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and ".so" in parts[5] and "/plugins/" not in parts[5]:
                name = os.path.basename(parts[5])
                if not name.startswith("libhearth"):
                    libs.add(name)
    return libs


def settled_rss(pid, seconds=SETTLE_S):
    """The RSS after a settle time: the largest of a few samples, so a hub that is still
    growing is not flattered."""
    time.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(memory(pid))
        time.sleep(0.2)
    return max(samples, key=lambda m: m["VmRSS"])


def plugin_config(hub, plugins):
    """Configuration that lets every shipped plugin start on a test machine: wifi_lan on a
    private multicast port, cloud_bridge pointed at a closed local port (the cloud is away), web
    on loopback ports of its own, home_assistant on the hub's broker."""
    cfg = {}
    if "web" in plugins:
        www = os.path.join(hub.root, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<!doctype html><title>hearth bench</title>\n")
        cfg["web"] = {"listen": ["127.0.0.1"], "https_port": free_port(),
                      "mqtts_port": free_port(),
                      "metrics_listen": "127.0.0.1:%d" % free_port(), "www_dir": www}
    if "home_assistant" in plugins:
        cfg["home_assistant"] = {"hub_name": "bench"}
    if "wifi_lan" in plugins:
        cfg["wifi_lan"] = {"multicast_port": free_port(), "ssdp": False}
    if "cloud_bridge" in plugins:
        cfg["cloud_bridge"] = {
            "host": "127.0.0.1", "port": free_port(), "tls": False,
            "reconnect_min": "1s", "reconnect_max": "5s",
            "local_port": hub.broker.port,
            "local_password_file": os.path.join(hub.broker.dir, "broker.pass"),
            "rules": [{"direction": "out", "local": "hearth/v1/bench/out/#",
                       "remote": "site/bench/#", "qos": 1}],
        }
    return cfg


def start_hub(plugins, extra_plugins=()):
    """A Hub whose plugin config depends on its own broker port: start the broker first."""
    hub = Hub(plugins=list(plugins) + list(extra_plugins))
    hub.broker.start()
    hub.plugin_config = plugin_config(hub, plugins)
    hub.write_config()
    hub.start()
    return hub


def seed(db_path, devices, bindings, users=1000, bench_user=None, bench_devices=10):
    """Writes devices and bindings straight into the hub's schema (hearthd stopped): every
    device gets bindings // devices members, the first its owner, the rest guests. The first
    bench_devices devices are owned by bench_user, if given."""
    per_device = max(1, bindings // max(1, devices))
    users = max(users, per_device + 1)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    with db:
        db.executemany("INSERT OR IGNORE INTO users(user_id, created_at) VALUES(?, ?)",
                       (("user%05d" % u, NOW_MS) for u in range(users)))
        db.executemany(
            "INSERT INTO devices(device_id, transport, model, name, firmware, mode, first_seen, "
            "last_seen) VALUES(?, 'ble', 'lock-1', ?, '1.0', 'share_required', ?, ?)",
            (("dev%06d" % d, "Lock %d" % d, NOW_MS, NOW_MS) for d in range(devices)))

        def rows():
            n = 0
            for d in range(devices):
                members = []
                if bench_user and d < bench_devices:
                    members.append(bench_user)
                u = d
                while len(members) < per_device and n + len(members) < bindings:
                    members.append("user%05d" % (u % users))
                    u += 7
                for i, user in enumerate(members):
                    yield ("dev%06d" % d, user, "owner" if i == 0 else "guest", NOW_MS, i)
                n += len(members)
        db.executemany("INSERT OR IGNORE INTO bindings(device_id, user_id, role, bound_at, seq) "
                       "VALUES(?, ?, ?, ?, ?)", rows())
    count = db.execute("SELECT count(*) FROM bindings").fetchone()[0]
    db.close()
    return count


def fill_outbox(hub, n):
    """Publishes n QoS 1 messages that the bridge's out rule matches; waits until they are all
    in its outbox (the cloud is unreachable, so they stay)."""
    lines = "".join('{"seq":%d,"payload":"reading %d"}\n' % (i, i) for i in range(n))
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(hub.broker.port),
                    "-u", "hearthd", "-P", hub.broker.password, "-i", "bench-outbox",
                    "-q", "1", "-t", "hearth/v1/bench/out/meter", "-l"],
                   input=lines.encode(), check=True, timeout=600)

    def depth():
        details = hub.status().get("details", {}).get("cloud_bridge", {})
        return details.get("outbox", 0)
    wait_for(lambda: depth() >= n, timeout=600, interval=1.0, what="%d messages in the outbox" % n)
    return depth()


def lib_floor_rss():
    """The RSS (VmRSS, RssAnon, RssFile) of hearth-lib-floor once it is ready, with "libs" the
    shared libraries it maps, or None if it is not built."""
    path = os.path.join(harness.BUILD_DIR, "bench", "hearth-lib-floor")
    if not os.path.exists(path):
        return None
    proc = subprocess.Popen([path], stdout=subprocess.PIPE)
    try:
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("hearth-lib-floor did not start")
        rss = settled_rss(proc.pid, 1.0)
        rss["libs"] = shared_libraries(proc.pid)
        return rss
    finally:
        proc.terminate()
        proc.wait()


def reference_rss(hub):
    """An idle mosquitto_sub (libmosquitto, connected, subscribed) and the broker itself."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(hub.broker.port),
                            "-u", "hearthd", "-P", hub.broker.password, "-t", "bench/none"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sub_rss = settled_rss(sub.pid, 1.0)["VmRSS"]
    finally:
        sub.terminate()
        sub.wait()
    broker_rss = memory(hub.broker.proc.pid)["VmRSS"] if hub.broker.proc else 0
    return sub_rss, broker_rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--bindings", type=int, default=100000)
    ap.add_argument("--outbox", type=int, default=10000)
    ap.add_argument("--plugins", default=",".join(SHIPPED_PLUGINS),
                    help="comma-separated plugin set (default: every shipped plugin)")
    ap.add_argument("--json")
    args = ap.parse_args()

    plugins, missing = built_plugins(args.plugins.split(","))
    result = {"plugins": plugins, "plugins_missing": missing}

    hub = start_hub(plugins)
    try:
        states = hub.status().get("plugins", {})
        idle = settled_rss(hub.proc.pid)
        hub_libs = shared_libraries(hub.proc.pid)
        sub_rss, broker_rss = reference_rss(hub)
        floor = lib_floor_rss()
        if floor:
            result["lib_floor_missing"] = sorted(hub_libs - floor["libs"])
            result.update({"lib_floor_rss_kib": floor["VmRSS"],
                           "lib_floor_rss_file_kib": floor["RssFile"],
                           "idle_own_rss_kib": idle["VmRSS"] - floor["VmRSS"]})
        result.update({"idle_pss_kib": proportional(hub.proc.pid),
                       "idle_top_mappings_kib": top_mappings(hub.proc.pid)})
        result.update({"idle_rss_kib": idle["VmRSS"], "idle_rss_anon_kib": idle["RssAnon"],
                       "idle_rss_file_kib": idle["RssFile"], "plugin_states": states,
                       "mosquitto_sub_rss_kib": sub_rss, "broker_rss_kib": broker_rss})
    finally:
        hub.close()

    hub = start_hub(plugins)
    try:
        hub.terminate()
        bindings = seed(os.path.join(hub.state_dir, "hearth.db"), args.devices, args.bindings)
        hub.start(wait=True)
        depth = fill_outbox(hub, args.outbox) if "cloud_bridge" in plugins else 0
        filled = settled_rss(hub.proc.pid)
        status = hub.status()
        hub.terminate()
        hub.start(wait=True)
        wait_for(lambda: hub.status().get("details", {}).get("cloud_bridge", {}).get(
            "outbox", 0) >= depth, timeout=60, what="outbox after restart")
        restarted = settled_rss(hub.proc.pid)
        result["restarted_pss_kib"] = proportional(hub.proc.pid)
        result.update({
            "devices": status.get("devices"), "bindings": status.get("bindings"),
            "seeded_bindings": bindings, "outbox": depth,
            "loaded_rss_kib": filled["VmRSS"], "loaded_rss_anon_kib": filled["RssAnon"],
            "loaded_peak_kib": filled["VmHWM"],
            "restarted_rss_kib": restarted["VmRSS"], "restarted_rss_anon_kib": restarted["RssAnon"],
        })
    finally:
        hub.close()

    result["idle_target_kib"] = 10 * 1024
    result["loaded_target_kib"] = 24 * 1024
    loaded = max(result["loaded_rss_kib"], result["restarted_rss_kib"])
    print("%-46s %10s %10s" % ("state", "RSS MiB", "target"))
    print("%-46s %10.1f %10s" % ("idle, plugins: " + ",".join(plugins),
                                 result["idle_rss_kib"] / 1024.0, "10"))
    print("%-46s %10.1f %10s" % ("%d devices, %d bindings, %d outbox (filled)" % (
        result["devices"], result["bindings"], depth), result["loaded_rss_kib"] / 1024.0, "24"))
    print("%-46s %10.1f %10s" % ("same, after a restart", result["restarted_rss_kib"] / 1024.0,
                                 "24"))
    print("%-46s %10.1f %10s" % ("idle: anonymous (heap, stacks)", result["idle_rss_anon_kib"] /
                                 1024.0, "-"))
    print("%-46s %10.1f %10s" % ("idle: file-backed (code of hearthd and libraries)",
                                 result["idle_rss_file_kib"] / 1024.0, "-"))
    print("%-46s %10.1f %10s" % ("idle: Pss (shared pages divided)", result["idle_pss_kib"] /
                                 1024.0, "-"))
    if "lib_floor_rss_kib" in result:
        print("%-46s %10.1f %10s" % ("baseline: the libraries alone (hearth-lib-floor)",
                                     result["lib_floor_rss_kib"] / 1024.0, "-"))
        print("%-46s %10.1f %10s" % ("idle: hub's own (idle - baseline)",
                                     result["idle_own_rss_kib"] / 1024.0, "5"))
        if result["lib_floor_missing"]:
            print("baseline INCOMPLETE: the hub maps libraries the floor does not: " +
                  ", ".join(result["lib_floor_missing"]))
    else:
        print("baseline not measured: build/bench/hearth-lib-floor is not built "
              "(-DHEARTH_BUILD_BENCH=ON)")
    print("%-46s %10.1f %10s" % ("reference: idle mosquitto_sub", sub_rss / 1024.0, "-"))
    print("%-46s %10.1f %10s" % ("reference: mosquitto broker", broker_rss / 1024.0, "-"))
    print("largest idle mappings (KiB): " + ", ".join(
        "%s %d" % kv for kv in result["idle_top_mappings_kib"]))
    if missing:
        print("not built, left out: " + ", ".join(missing))
    print("idle %s target, loaded %s target" % (
        "within" if result["idle_rss_kib"] <= result["idle_target_kib"] else "OVER",
        "within" if loaded <= result["loaded_target_kib"] else "OVER"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
