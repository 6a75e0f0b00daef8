#!/usr/bin/python3
"""wifi_lan benchmark: hub CPU time per 1,000 LAN announcements and hearthd's RSS with 10,000
known devices, each against a baseline measured in the same run (the idle hub with no devices).

Runs hearthd, mosquitto and hearth-devsim in private network namespaces, as the integration test
does (tests/integration/test_wifi_lan.py); needs root.

    sudo /usr/bin/python3 bench/wifi_lan_bench.py [--devices 10000] [--period 10] [--seconds 20]

Environment: HEARTH_BUILD_DIR (default build/), HEARTH_SOURCE_DIR.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from harness import Hub, wait_for  # noqa: E402
from test_wifi_lan import PLUGIN_CONFIG, DevSim, LanNetwork, sweep_stale_namespaces  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime 14, stime 15 (1-based) -> 11, 12 here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def details(hub):
    return hub.status()["details"]["wifi_lan"]


def details_or_empty(hub):
    """details(), or {} while the hub is too busy to answer within hearthctl's timeout."""
    try:
        return details(hub)
    except AssertionError:
        return {}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--period", type=float, default=10.0, help="announce period of each device")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("wifi_lan_bench: needs root (network namespaces); skipped")
        return 0

    sweep_stale_namespaces()
    with LanNetwork() as net:
        cfg = dict(PLUGIN_CONFIG, probe_period="600s", offline_after="600s", ssdp=False,
                   max_devices=max(20000, args.devices))
        with Hub(plugins=["wifi_lan"], plugin_config={"wifi_lan": cfg},
                 ) as hub:
            pid = hub.proc.pid
            wait_for(lambda: details(hub).get("interfaces") == [net.hub_if], timeout=15,
                     what="wifi_lan to listen")
            # Baseline: the idle hub, no devices.
            time.sleep(2)
            rss_idle = rss_kib(pid)
            c0 = cpu_seconds(pid)
            t0 = time.monotonic()
            time.sleep(args.seconds / 2)
            idle_cpu_per_s = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)

            sim = DevSim(net, os.path.join(hub.root, "devsim.log"), "--count",
                         str(args.devices), "--prefix", "b-", "--period", "%gs" % args.period)
            try:
                started = time.monotonic()
                wait_for(lambda: details_or_empty(hub).get("online") == args.devices,
                         timeout=max(120, args.devices / 20), interval=0.5,
                         what="%d devices online" % args.devices)
                discovery_s = time.monotonic() - started
                # One more full period so every record exists and the hub is in steady state.
                time.sleep(args.period)

                r0 = details(hub)["received"]
                c0 = cpu_seconds(pid)
                t0 = time.monotonic()
                time.sleep(args.seconds)
                c1 = cpu_seconds(pid)
                t1 = time.monotonic()
                r1 = details(hub)["received"]
                rss_devices = rss_kib(pid)
                d = details(hub)
            finally:
                sim.close()

    announcements = r1 - r0
    cpu = c1 - c0
    net_cpu = max(0.0, cpu - idle_cpu_per_s * (t1 - t0))
    per_1000_ms = 1000.0 * 1000.0 * net_cpu / announcements if announcements else float("nan")
    print("wifi_lan_bench: %d devices announcing every %gs, measured over %.1fs"
          % (args.devices, args.period, t1 - t0))
    print("  discovery of all devices:       %.1f s" % discovery_s)
    print("  announcements handled:          %d (%.0f/s), dropped %d"
          % (announcements, announcements / (t1 - t0), d["droppedTotal"]))
    print("  hub CPU, idle baseline:         %.2f ms/s" % (idle_cpu_per_s * 1000))
    print("  hub CPU while announcing:       %.2f ms/s (%.1fx idle)"
          % (cpu / (t1 - t0) * 1000, (cpu / (t1 - t0)) / idle_cpu_per_s if idle_cpu_per_s else
             float("inf")))
    print("  hub CPU per 1,000 announcements: %.2f ms (net of idle)" % per_1000_ms)
    print("  hearthd RSS, no devices:        %.1f MiB" % (rss_idle / 1024))
    print("  hearthd RSS, %d devices:     %.1f MiB (%.2fx; %.0f bytes per device)"
          % (args.devices, rss_devices / 1024, rss_devices / rss_idle,
             (rss_devices - rss_idle) * 1024 / args.devices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
