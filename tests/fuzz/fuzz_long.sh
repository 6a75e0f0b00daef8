#!/usr/bin/env bash
# make fuzz-long: every fuzz target of BUILD_DIR for SECONDS from its checked-in corpus, all
# targets at once, each at the lowest CPU priority (nice 19: the machine stays usable). The
# corpus a run grows is kept in BUILD_DIR/fuzz-long/<target>/ (a second run continues from it),
# logs in BUILD_DIR/fuzz-long/<target>.log, crashing inputs in BUILD_DIR/fuzz-long/artifacts/.
# Prints one line per target — executions, executions per second, coverage (edges), features,
# corpus size, findings (crashes, leaks, timeouts, out-of-memory), and the executions of every
# run so far from that grown corpus (BUILD_DIR/fuzz-long/history.tsv, one line per target and
# run), so a target that needs several runs to reach 10^7 shows how far it is — and exits 1 if
# any target found something.
#
#   tests/fuzz/fuzz_long.sh BUILD_DIR SECONDS      (FUZZ_TARGETS="a b" runs only those;
#                                                   FUZZ_ARGS="-entropic=0" adds libFuzzer flags)
#
# -timeout is 120 s of wall-clock time, not 30 as in make test: at nice 19 on a busy machine an
# input that takes one second of CPU can wait that long for it.
set -uo pipefail

build=${1:?usage: fuzz_long.sh BUILD_DIR SECONDS}
seconds=${2:?usage: fuzz_long.sh BUILD_DIR SECONDS}
targets_file=$build/fuzz-targets.txt
[ -r "$targets_file" ] || { echo "fuzz-long: $targets_file missing (build the fuzzers first)" >&2; exit 2; }

out=$build/fuzz-long
mkdir -p "$out/artifacts"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:print_stacktrace=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

pids=()
names=()
while read -r name binary max_len seeds dict; do
  [ -n "$name" ] || continue
  if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
  mkdir -p "$out/$name"
  args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=120 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-")
  [ -n "${dict:-}" ] && args+=(-dict="$dict")
  # shellcheck disable=SC2206  # FUZZ_ARGS is a list of flags, split on spaces
  [ -n "${FUZZ_ARGS:-}" ] && args+=(${FUZZ_ARGS})
  echo "fuzz-long: $name for ${seconds}s (log: $out/$name.log)"
  nice -n 19 "$binary" "${args[@]}" "$out/$name" "$seeds" >"$out/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
done <"$targets_file"

failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed=1
done

history=$out/history.tsv
[ -s "$history" ] || printf 'date\ttarget\tseconds\texecs\texec/s\tcov\tft\tcorpus\tfindings\n' >"$history"
printf '%-18s %12s %8s %7s %8s %8s %8s %s\n' target execs exec/s cov ft corpus findings all-runs
for name in "${names[@]}"; do
  log=$out/$name.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  # crash-, leak-, timeout-, oom-; slow-unit- (over 10 s, not an error) is listed in the log.
  findings=$(find "$out/artifacts" -name "$name-*" ! -name "$name-slow-unit-*" | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$seconds" \
    "${execs:-0}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$findings" >>"$history"
  total=$(awk -F'\t' -v t="$name" '$2 == t { n += $4 } END { print n + 0 }' "$history")
  printf '%-18s %12s %8s %7s %8s %8s %8s %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}" "$findings" "$total"
  [ "$findings" -eq 0 ] || failed=1
done
[ "$failed" -eq 0 ] || echo "fuzz-long: findings (or a failed run): see $out/artifacts and the logs" >&2
exit "$failed"
