#!/usr/bin/env bash
# Profiles hearthd (perf, call graphs) while bench/coop_roundtrip.py streams commands through
# coop_relay, and prints the top of the report: the numbers in docs/performance.md "Profile".
#
#   bench/profile_coop.sh [BUILD_DIR] [OUT_DIR]     (needs perf: tools/install-deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_BUILD_DIR="$(realpath "${1:-build}")"
out="${2:-$HEARTH_BUILD_DIR/bench-out}"
mkdir -p "$out"
command -v perf >/dev/null || { echo "profile: perf is not installed (linux-perf)" >&2; exit 1; }
/usr/bin/python3 bench/coop_roundtrip.py --rounds 5000 --commands 30000 >"$out/profile-bench.txt" &
bench=$!
# hearthd is the bench's grandchild or child; wait for it to start.
pid=""
for _ in $(seq 100); do
  pid=$(ps -o pid= --ppid "$bench" | while read -r p; do
          if [ "$(cat /proc/$p/comm 2>/dev/null)" = hearthd ]; then echo "$p"; fi
        done | head -1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "profile: no hearthd started" >&2; wait "$bench"; exit 1; }
sleep 2  # past start-up and the grant
perf record -q -F 2000 -g -p "$pid" -o "$out/coop.perf" -- sleep 6 >/dev/null 2>&1 || true
wait "$bench"
perf report -i "$out/coop.perf" --no-children --percent-limit 1.5 --stdio -g none \
  --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
echo "== children (inclusive) of the hub loop's request path"
perf report -i "$out/coop.perf" --children --percent-limit 4 --stdio -g none --sort symbol \
  2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
