#!/usr/bin/python3
"""Prints issue 18's table from one `make bench` run: the "now" column from OUT/*.json, the
SD-card column from OUT/sdcard-<ms>ms/*.json (run_all.sh runs the disk-bound benchmarks again
under the SD-card model), each against its same-run baseline, with the target.

    /usr/bin/python3 bench/summary.py OUT_DIR
"""

import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, spec="%.2f"):
    return "—" if v is None else spec % v


def main():
    out = sys.argv[1]
    sd_dirs = sorted(glob.glob(os.path.join(out, "sdcard-*ms")))
    sd = sd_dirs[-1] if sd_dirs else None
    sd_name = os.path.basename(sd)[len("sdcard-"):] if sd else "5ms"
    coop, coop_sd = load(os.path.join(out, "coop.json")), sd and load(os.path.join(sd, "coop.json"))
    bind, bind_sd = (load(os.path.join(out, "binding.json")),
                     sd and load(os.path.join(sd, "binding.json")))
    rss, start = load(os.path.join(out, "rss.json")), load(os.path.join(out, "startup.json"))

    def get(d, *keys):
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return None
            d = d[k]
        return d

    rows = []
    rows.append(("coop round trip p50 / p99, target online", "compiled forwarder, same hops",
                 "%s / %s" % (fmt(get(coop, "ratio_p50")), fmt(get(coop, "ratio_p99"))),
                 "%s / %s" % (fmt(get(coop_sd, "ratio_p50")), fmt(get(coop_sd, "ratio_p99"))),
                 "≤ 1.10 / ≤ 1.25 (SD card ≤ 1.15 / ≤ 1.5)"))
    rows.append(("sustained relayed commands/s, 32 in flight", "compiled forwarder",
                 fmt(get(coop, "rate_ratio")), fmt(get(coop_sd, "rate_ratio")), "≥ 0.8"))
    rows.append(("durable binding operations/s", "raw single-row synchronous=FULL commits",
                 fmt(get(bind, "ratio")), fmt(get(bind_sd, "ratio")),
                 "≥ 0.6 (SD card ≥ 5)"))
    loaded = None
    if rss and "loaded_rss_kib" in rss:
        loaded = max(rss["loaded_rss_kib"], rss.get("restarted_rss_kib", 0)) / 1024.0
    rows.append(("RSS, 10,000 devices, 100,000 bindings, 10,000-message outbox", "—",
                 fmt(loaded, "%.1f MiB"), "—", "≤ 24 MiB"))
    own = get(rss, "idle_own_rss_kib")
    rows.append(("idle RSS, every plugin, minus the libraries alone", "hearth-lib-floor",
                 fmt(own / 1024.0 if own is not None else None, "%.1f MiB"), "—", "≤ 5 MiB"))
    ready = None
    for r in get(start, "results") or []:
        if "bindings" in r["scenario"]:
            ready = r["ready_ms_p50"]
    rows.append(("start to READY=1 with that database", "empty database",
                 fmt(ready, "%.0f ms"), "—", "≤ 100 ms"))

    head = ("measure", "baseline in the same run", "now", "SD card " + sd_name, "target")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
