#!/usr/bin/python3
"""Home Assistant discovery at scale: N exposed devices (default 500), through the real broker
and hearthd with the home_assistant plugin, read by the fake Home Assistant of the tests
(tests/integration/ha_fake.py, which also checks every payload).

    /usr/bin/python3 bench/ha_bench.py [--devices 500] [--json out.json]

Measures, in one run:
  expose    from the first haExpose request to the last of the N discovery configs at HA
            (each exposure is a durable commit before its config goes out);
  birth     from HA's birth message (homeassistant/status = online) to the last of the N + 1
            configs (devices and the hub) re-sent, with resend_delay_max 0s: the random 0-5 s
            spread of the default configuration is a choice, not a cost, and is left out;
  baseline  the same N + 1 config payloads published by mosquitto_pub (C, libmosquitto) to a
            topic HA reads, from its start to the last one at HA: the broker's own cost.
Prints a table and birth/baseline (lower is better). Needs a build in build/ (or
HEARTH_BUILD_DIR).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Hub  # noqa: E402
from ha_fake import FakeHomeAssistant  # noqa: E402

MODELS = ["acme-lamp", "acme-plug", "acme-lock", "acme-thermometer", "acme-contact"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--json")
    args = ap.parse_args()
    n = args.devices

    cfg = {"home_assistant": {"resend_delay_max": "0s", "hub_name": "bench"}}
    with Hub(plugins=["testtransport_plugin", "home_assistant"], plugin_config=cfg) as hub:
        hub.add_user("alice")
        alice = hub.terminal("alice", "bench")
        tag = uuid.uuid4().hex[:4]
        devices = ["ha-%04d-%s" % (i, tag) for i in range(n)]
        with ThreadPoolExecutor(4) as pool:
            for r in pool.map(lambda i: hub.admin("testReport", {
                    "deviceId": devices[i], "model": MODELS[i % len(MODELS)],
                    "transport": "ble"}), range(n)):
                assert r["ok"], r
        ids = [alice.send("bindDevice", {"deviceId": d}) for d in devices]
        for i in ids:
            assert alice.wait_response(i, timeout=60)["ok"]

        deadline = time.monotonic() + 30
        while hub.status().get("details", {}).get("home_assistant", {}).get("link") != "live":
            assert time.monotonic() < deadline, "home_assistant did not connect"
            time.sleep(0.1)
        password = "ha-" + uuid.uuid4().hex[:12]
        assert hub.admin("haAccount", {"password": password})["ok"]
        ha = FakeHomeAssistant(hub.broker.port, "homeassistant", password).connect(birth=False)
        nodes = set()

        # expose
        t0 = time.monotonic()
        ids = [alice.send("haExpose", {"deviceId": d, "enabled": True}) for d in devices]
        for i in ids:
            r = alice.wait_response(i, timeout=120)
            assert r["ok"], r
            nodes.add(r["result"]["node"])
        ha.wait(lambda: nodes <= set(ha.configs), timeout=300, what="every config")
        expose_s = max(t for t, node, p in ha.config_log if node in nodes and p) - t0

        # birth
        mark = len(ha.config_log)
        want = nodes | {"hearth-hub-bench"}
        t0 = time.monotonic()
        ha.birth()
        ha.wait(lambda: want <= {x for _, x, p in ha.config_log[mark:] if p}, timeout=300,
                what="every config after the birth")
        birth_s = max(t for t, x, p in ha.config_log[mark:] if p) - t0
        assert not ha.problems, list(ha.problems.items())[:3]

        # baseline: the same payloads, straight through the broker
        payloads = [json.dumps(c, separators=(",", ":"), ensure_ascii=False)
                    for c in ha.configs.values()]
        topic = "hearth/v1/ha/bench/baseline"
        t0 = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(hub.broker.port),
                        "-u", "hearthd", "-P", hub.broker.password, "-V", "mqttv5", "-q", "1",
                        "-i", "ha-bench-baseline", "-t", topic, "-l"],
                       input="\n".join(payloads) + "\n", text=True, check=True, timeout=120)
        ha.wait(lambda: ha.count(topic) >= len(payloads), timeout=120, what="the baseline")
        baseline_s = max(t for t, x in ha.arrivals if x == topic) - t0
        ha.close()
        avg_bytes = sum(len(p.encode()) for p in payloads) / len(payloads)

    result = {
        "devices": n,
        "expose_all_s": round(expose_s, 3),
        "expose_ms_per_device": round(expose_s * 1000 / n, 3),
        "birth_to_discovery_complete_s": round(birth_s, 3),
        "baseline_same_payloads_s": round(baseline_s, 3),
        "ratio_birth_to_baseline": round(birth_s / baseline_s, 2),
        "config_bytes_avg": round(avg_bytes),
    }
    print("%-34s %s" % ("exposed devices", n))
    print("%-34s %.3f s (%.2f ms per device)" % ("expose all -> configs at HA", expose_s,
                                                  expose_s * 1000 / n))
    print("%-34s %.3f s" % ("HA birth -> discovery complete", birth_s))
    print("%-34s %.3f s" % ("baseline: same payloads, C client", baseline_s))
    print("%-34s %.2f" % ("ratio birth / baseline", birth_s / baseline_s))
    print("%-34s %d bytes" % ("average config size", avg_bytes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
