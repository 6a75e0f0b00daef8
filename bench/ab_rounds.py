#!/usr/bin/python3
"""Before/after on a noisy machine: runs bench/coop_roundtrip.py (or another bench that writes
--json) against two builds in short interleaved rounds (A B, B A, ...) and prints the median of
each ratio per build, with the load average at the start and the end.

    /usr/bin/python3 bench/ab_rounds.py --a build-main --b build [--rounds 5] [--sdcard 5]
                                        [--bench coop_roundtrip.py] [--json out.json] -- ARGS...

ARGS go to the bench (default for coop_roundtrip.py: --rounds 200 --commands 1000).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(build, bench, args, sdcard):
    env = dict(os.environ, HEARTH_BUILD_DIR=os.path.realpath(build),
               HEARTH_SOURCE_DIR=os.path.dirname(HERE))
    env.pop("HEARTH_SDCARD_SHIM", None)
    if sdcard:
        # The shim of build B's bench targets (the same small program for both).
        env["HEARTH_SDCARD_MS"] = str(sdcard)
        env["HEARTH_SDCARD_SHIM"] = SHIM
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, os.path.join(HERE, bench), "--json", out.name] + args,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))


def main():
    global SHIM
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sdcard", type=int, default=0)
    ap.add_argument("--bench", default="coop_roundtrip.py")
    ap.add_argument("--json")
    ap.add_argument("rest", nargs="*")
    a = ap.parse_args()
    SHIM = os.path.join(os.path.realpath(a.b), "bench", "libhearth-sdcard-shim.so")
    args = a.rest or (["--rounds", "200", "--commands", "1000"]
                      if a.bench == "coop_roundtrip.py" else [])
    load0 = os.getloadavg()
    results = {"a": [], "b": []}
    for i in range(a.rounds):
        for which in (("a", "b") if i % 2 == 0 else ("b", "a")):
            results[which].append(run(getattr(a, which), a.bench, args, a.sdcard))
    load1 = os.getloadavg()
    keys = [k for k, v in results["b"][0].items() if isinstance(v, (int, float))]
    summary = {"rounds": a.rounds, "sdcard_ms": a.sdcard, "load_start": load0[0],
               "load_end": load1[0], "a": a.a, "b": a.b, "median": {}}
    print("%d interleaved rounds%s; load average %.1f at the start, %.1f at the end" % (
        a.rounds, ", SD-card model %d ms" % a.sdcard if a.sdcard else "", load0[0], load1[0]))
    name = lambda p: "/".join(os.path.realpath(p).split("/")[-2:])[-12:]
    print("%-28s %12s %12s" % ("median of", name(a.a), name(a.b)))
    for k in keys:
        ma = statistics.median(r[k] for r in results["a"] if k in r)
        mb = statistics.median(r[k] for r in results["b"] if k in r)
        summary["median"][k] = {"a": ma, "b": mb}
        print("%-28s %12.3f %12.3f" % (k, ma, mb))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
