#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Walk-mode overhead: alloc_bench's request-handling `service` workload
# unprofiled and under `memspy record --mode walk` (default settings, or
# $WALK_ARGS), interleaved rounds; prints the throughput slowdown next to the
# pause statistics memspy reports. Not a test: the machine is shared and noisy.
#
#   bash bench/walk.sh [build-dir]     ROUNDS=3 SECONDS_PER_RUN=5 THREADS=4
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
THREADS=${THREADS:-4}
WALK_ARGS=${WALK_ARGS:-}
bench=$build/bench/targets/alloc_bench
walk=("$build/cmd/memspy" record --mode walk)
work=$(mktemp -d)
trap 'rm -rf "$work"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT

# run_one MODE -> prints "ops_per_s" and leaves memspy's summary in $work/m.err
run_one() {
	local mode=$1 prof_pid="" in=$work/in out=$work/out i
	rm -f "$in" "$out"; mkfifo "$in"
	"$bench" service "$THREADS" "$SECS" <"$in" >"$out" &
	local pid=$!
	exec 9>"$in"
	while ! grep -q '^ready' "$out" 2>/dev/null; do sleep 0.05; done
	if [ "$mode" = walk ]; then
		"${walk[@]}" --pid "$pid" -v $WALK_ARGS -o "$work/w.svg" --timeline "$work/w.json" 2>"$work/m.err" &
		prof_pid=$!
		# In once it has read the heap once: its start-up (DWARF) is over.
		for i in $(seq 1 600); do
			grep -q 'heap sample 0' "$work/m.err" 2>/dev/null && break
			sleep 0.05
		done
	fi
	echo go >&9
	exec 9>&-
	wait "$pid" || true
	if [ -n "$prof_pid" ]; then
		kill -INT "$prof_pid" 2>/dev/null || true
		wait "$prof_pid" 2>/dev/null || true
	fi
	awk '/^ops/ {print $4}' "$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

none="" walked=""
for r in $(seq 1 "$ROUNDS"); do
	none+="$(run_one none) "
	walked+="$(run_one walk) "
	grep -E 'cost to the target|skipped|stacks:|thread samples|running share|memspy itself' "$work/m.err" | sed "s/^ */  round $r: /" >>"$work/costs"
done
base=$(echo $none | tr ' ' '\n' | median)
w=$(echo $walked | tr ' ' '\n' | median)
printf 'service (%s threads, %ss runs, %s rounds), walk mode %s\n' "$THREADS" "$SECS" "$ROUNDS" "${WALK_ARGS:-(defaults)}"
printf '  %-6s %12.0f ops/s  (runs: %s)\n' none "$base" "$none"
printf '  %-6s %12.0f ops/s  (runs: %s)\n' walk "$w" "$walked"
printf '  slowdown: %.2f%% (median throughput lost)\n' "$(echo "($base - $w) * 100 / $base" | bc -l)"
echo "  memspy's own figures per round:"
cat "$work/costs"
