#!/usr/bin/env bash
# Soak test (not in CI; docs/reliability.md): hours of steady traffic against one hearthd, with
# RSS sampled every minute, to find slow leaks and stalls that the bounded tests cannot.
#
#   tools/soak.sh [HOURS] [BUILD_DIR]          e.g. tools/soak.sh 8 build
#
# Starts a private broker and hearthd (all built shipped plugins plus the test transport), then
# 20 terminals of 4 users each keep one request in flight at a time (about 200 requests/s in
# total, one in ten malformed, a quarter of the valid ones durable bind/unbind changes). Every
# minute it appends "elapsed_s,rss_kib,requests,lost,errors" to BUILD_DIR/soak-<date>.csv and
# prints it. At the end it reports RSS after warm-up (10 min), at the end, the growth per hour
# (least-squares slope over the samples after warm-up) and the lost responses. Exits 1 if
# hearthd died, a response was lost, or RSS grew by more than SOAK_MAX_GROWTH_KIB_PER_H
# (default 512) per hour after warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${1:-4}
export HEARTH_BUILD_DIR="$(realpath "${2:-build}")"
export HEARTH_SOURCE_DIR="$PWD"
csv="$HEARTH_BUILD_DIR/soak-$(date +%Y%m%d-%H%M%S).csv"
echo "soak: $hours h against $HEARTH_BUILD_DIR/core/hearthd; samples in $csv"

exec /usr/bin/python3 - "$hours" "$csv" <<'PY'
import json, os, random, sys, threading, time, uuid
sys.path.insert(0, os.path.join(os.environ["HEARTH_SOURCE_DIR"], "tests", "integration"))
sys.path.insert(0, os.path.join(os.environ["HEARTH_SOURCE_DIR"], "bench"))
import rss_bench
from harness import wait_for

hours, csv_path = float(sys.argv[1]), sys.argv[2]
max_growth = float(os.environ.get("SOAK_MAX_GROWTH_KIB_PER_H", "512"))
WARMUP_S = 600
plugins, missing = rss_bench.built_plugins(rss_bench.SHIPPED_PLUGINS)
hub = rss_bench.start_hub(plugins, extra_plugins=["testtransport_plugin"])
stop = threading.Event()
totals = {"requests": 0, "lost": 0, "errors": 0}
lock = threading.Lock()


def worker(term, device, seed):
    rng = random.Random(seed)
    bound = False
    while not stop.is_set():
        rid = uuid.uuid4().hex[:16]
        r = rng.random()
        if r < 0.1:
            term.publish_raw("hello", '{"id":"%s","params":' % rid)  # malformed: id null answer
            time.sleep(0.1)
            with term._cond:
                term.responses.pop(None, None)
            continue
        if r < 0.325:
            bound = not bound
            method, params = ("bindDevice" if bound else "unbindDevice"), {"deviceId": device}
        elif r < 0.55:
            method, params = "getBoundDevices", {}
        elif r < 0.75:
            method, params = "getDeviceDetail", {"deviceId": device}
        elif r < 0.9:
            method, params = "hello", {"appId": "soak"}
        else:
            method, params = "controlDevice", {"deviceId": device, "command": "ping"}
        term.publish_raw(method, json.dumps({"id": rid, "params": params}))
        with term._cond:
            ok = term._cond.wait_for(lambda: rid in term.responses, 60)
            got = term.responses.pop(rid, None)
        with lock:
            totals["requests"] += 1
            if not ok:
                totals["lost"] += 1
            elif len(got) != 1 or (not got[0]["ok"] and got[0]["error"]["code"] in
                                   ("INVALID_REQUEST", "UNKNOWN_METHOD", "INTERNAL")):
                totals["errors"] += 1
        time.sleep(0.09)


try:
    threads = []
    for u in range(4):
        user = "soak%d" % u
        hub.add_user(user)
        for c in range(5):
            device = "soak-dev-%d-%d" % (u, c)
            hub.admin("testReport", {"deviceId": device, "model": "free-lamp"})
            term = hub.terminal(user, "soak-%d-%d" % (u, c), app_id="soak")
            threads.append(threading.Thread(target=worker, args=(term, device, u * 10 + c),
                                            daemon=True))
    for t in threads:
        t.start()
    start = time.monotonic()
    samples = []
    with open(csv_path, "w") as csv:
        csv.write("elapsed_s,rss_kib,requests,lost,errors\n")
        while time.monotonic() - start < hours * 3600:
            time.sleep(60)
            if hub.proc.poll() is not None:
                print("soak: hearthd exited with %s" % hub.proc.returncode)
                sys.exit(1)
            elapsed = time.monotonic() - start
            rss = rss_bench.memory(hub.proc.pid)["VmRSS"]
            with lock:
                line = "%d,%d,%d,%d,%d" % (elapsed, rss, totals["requests"], totals["lost"],
                                           totals["errors"])
            samples.append((elapsed, rss))
            csv.write(line + "\n")
            csv.flush()
            print("soak: " + line, flush=True)
    stop.set()
    for t in threads:
        t.join(timeout=90)
    after = [(t, r) for t, r in samples if t >= WARMUP_S] or samples
    n = len(after)
    mt = sum(t for t, _ in after) / n
    mr = sum(r for _, r in after) / n
    var = sum((t - mt) ** 2 for t, _ in after)
    slope = (sum((t - mt) * (r - mr) for t, r in after) / var * 3600) if var else 0.0
    print("soak: %.1f h, %d requests, %d lost, %d unexpected errors; plugins %s%s" % (
        hours, totals["requests"], totals["lost"], totals["errors"], ",".join(plugins),
        (" (not built: %s)" % ",".join(missing)) if missing else ""))
    print("soak: RSS after warm-up %d KiB, at the end %d KiB, max %d KiB; growth %.0f KiB/h" % (
        after[0][1], samples[-1][1], max(r for _, r in samples), slope))
    failed = totals["lost"] or totals["errors"] or slope > max_growth
    sys.exit(1 if failed else 0)
finally:
    stop.set()
    hub.close()
PY
