#!/usr/bin/env bash
# Runs every benchmark against one build and makes docs/performance.png.
#
#   bench/run_all.sh [BUILD_DIR]        (default: build; also `make bench`)
#
# Results (JSON per benchmark, the plot's data) go to BUILD_DIR/bench-out/; each benchmark prints its
# table as it finishes. Takes 3 minutes on a quiet 2-core machine. docs/performance.md says what
# each measures and holds the latest results.
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_BUILD_DIR="$(realpath "${1:-build}")"
export HEARTH_SOURCE_DIR="$PWD"
out="$HEARTH_BUILD_DIR/bench-out"
mkdir -p "$out"
py=/usr/bin/python3  # Debian's, with paho-mqtt

# The SD-card model: SDCARD=5ms (or 5) slows every fsync/fdatasync of hearthd by that much
# (bench/sdcard_shim.cc, LD_PRELOADed into hearthd only by tests/integration/harness.py).
if [ -n "${SDCARD:-}" ]; then
  export HEARTH_SDCARD_MS="${SDCARD%ms}"
  export HEARTH_SDCARD_SHIM="$HEARTH_BUILD_DIR/bench/libhearth-sdcard-shim.so"
  [ -e "$HEARTH_SDCARD_SHIM" ] || { echo "bench: $HEARTH_SDCARD_SHIM is not built" >&2; exit 1; }
  out="$out/sdcard-${HEARTH_SDCARD_MS}ms"
  mkdir -p "$out"
  echo "== SD-card model: fsync/fdatasync in hearthd take ${HEARTH_SDCARD_MS} ms longer"
fi

failed=()
run() {
  local name=$1
  shift
  echo "== $name"
  if ! "$py" "$@"; then
    failed+=("$name")
  fi
  echo
}

run "machine" -c 'import os, platform; cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]; print("%s, %d CPUs, %s, Debian %s; load average %.1f" % (platform.machine(), os.cpu_count(), cpu, open("/etc/debian_version").read().strip(), os.getloadavg()[0]))'
run "durable binding operations" bench/binding_bench.py --json "$out/binding.json"
if [ -f bench/coop_roundtrip.py ] && [ -e "$HEARTH_BUILD_DIR/plugins/coop_relay.so" ]; then
  run "coop_relay command round trip" bench/coop_roundtrip.py --json "$out/coop.json"
fi
if [ -e "$HEARTH_BUILD_DIR/plugins/web.so" ]; then
  run "front door round trip and RSS per connection" bench/web_bench.py --json "$out/web.json"
fi
run "RSS" bench/rss_bench.py --json "$out/rss.json"
if command -v node >/dev/null && [ -d clients/js/node_modules/mqtt ]; then
  echo "== hearth-client overhead (JavaScript library vs raw mqtt.js)"
  node bench/js_client_bench.mjs --json "$out/js_client.json" || failed+=("hearth-client overhead")
  echo
fi
run "start-up to READY=1" bench/startup_bench.py --json "$out/startup.json"
run "scale" bench/scale_bench.py --json "$out/scale.json"
if [ -e "$HEARTH_BUILD_DIR/plugins/home_assistant.so" ]; then
  run "Home Assistant discovery, 500 devices" bench/ha_bench.py --json "$out/ha.json"
fi

"$py" - "$out/scale.json" "$out/scale.dat" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
with open(sys.argv[2], "w") as f:
    f.write("# bindings read_p50 read_p99 list_p50 write_p50 rss_mib baseline_p50\n")
    for r in rows:
        f.write("%d %.3f %.3f %.3f %.3f %.2f %.3f\n" % (
            r["bindings"], r["read_ms_p50"], r["read_ms_p99"], r["list_ms_p50"],
            r["write_ms_p50"], r["rss_kib"] / 1024.0, r["baseline_ms_p50"]))
PY
# The disk-bound benchmarks once more under the SD-card model (5 ms unless SDCARD says), for
# the table's SD-card column.
if [ -z "${SDCARD:-}" ]; then
  sd_ms=5
  (
    export HEARTH_SDCARD_MS=$sd_ms
    export HEARTH_SDCARD_SHIM="$HEARTH_BUILD_DIR/bench/libhearth-sdcard-shim.so"
    mkdir -p "$out/sdcard-${sd_ms}ms"
    echo "== SD-card model (${sd_ms} ms per fsync): durable binding operations"
    "$py" bench/binding_bench.py --json "$out/sdcard-${sd_ms}ms/binding.json" || true
    if [ -f bench/coop_roundtrip.py ] && [ -e "$HEARTH_BUILD_DIR/plugins/coop_relay.so" ]; then
      echo "== SD-card model (${sd_ms} ms per fsync): coop_relay command round trip"
      "$py" bench/coop_roundtrip.py --json "$out/sdcard-${sd_ms}ms/coop.json" || true
    fi
  ) || failed+=("SD-card model")
fi

echo "== issue 18's table (this run; ratios against same-run baselines)"
"$py" bench/summary.py "${out%/sdcard-*}"
echo

if [ -z "${SDCARD:-}" ]; then
  gnuplot -e "datafile='$out/scale.dat'; outfile='docs/performance.png'" bench/plot.gp
  echo "== wrote docs/performance.png and $out/*.json"
else
  echo "== wrote $out/*.json (the plot is made from runs without the SD-card model)"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "== failed: ${failed[*]}"
  exit 1
fi
