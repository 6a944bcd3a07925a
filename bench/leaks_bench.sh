#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memspy dump --leaks on dump_bench's big heap (~2.4 GiB in ~5.3 M chunks, 5
# arenas): the walk's time and memspy's peak RSS without the scan, then with it
# (scan time, its phases, what it found). Not a test: the machine is shared and
# noisy. Use a build WITHOUT sanitizers.
#
#   bash bench/leaks_bench.sh [build-dir]    RUNS=3 THREADS=4 CHUNKS=1200000 (per thread)
#                                            MEMSPY_ARGS=-v (phases on stderr)
#                                            OTHER=path/to/memspy: also run that one (e.g.
#                                            main's build) on the same heap, alternating,
#                                            and print median scan/walk ratios of both
#                                            PERF=1: perf record the last --leaks runs (PERF_DIR, /tmp)
#                                            and print the CPU samples of the scan and of the walk
#                                            in each (on a loaded machine a steadier yardstick than
#                                            wall time: threads waiting for a core take no samples)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
RUNS=${RUNS:-3}
THREADS=${THREADS:-4}
CHUNKS=${CHUNKS:-1200000}
MEMSPY_ARGS=${MEMSPY_ARGS:-}
OTHER=${OTHER:-}
target=$build/bench/targets/dump_heap
memspy=$build/cmd/memspy
for f in "$target" "$memspy"; do
	[ -x "$f" ] || { echo "leaks_bench: $f missing: cmake --build $build --target memspy dump_heap" >&2; exit 2; }
done
work=$(mktemp -d)
tpid=""
cleanup() {
	exec 9>&- 2>/dev/null || true
	[ -n "$tpid" ] && kill -KILL "$tpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/in" "$work/out"
"$target" "$THREADS" "$CHUNKS" <"$work/in" >"$work/out" &
tpid=$!
exec 9>"$work/in" 8<"$work/out"
while IFS= read -r -t 900 -u 8 line; do
	[ "$line" = READY ] && break
done
echo "target: $(awk '/^VmRSS/ {printf "%.2f GiB RSS", $2 / 1048576}' /proc/$tpid/status)"
bins=("$memspy")
[ -n "$OTHER" ] && bins+=("$OTHER")
for r in $(seq 1 "$RUNS"); do
	export r
	for bi in "${!bins[@]}"; do
	bin=${bins[$bi]}
	export who=$([ "$bi" = 0 ] && echo this || echo other)
	for mode in plain leaks; do
		args=()
		[ $mode = leaks ] && args=(--leaks)
		pre=()
		[ -n "${PERF:-}" ] && [ $mode = leaks ] && [ "$r" = "$RUNS" ] &&
			pre=(perf record -g -o "${PERF_DIR:-/tmp}/perf-$who.data" --)
		/usr/bin/time -f "%M %e" -o "$work/time" "${pre[@]}" "$bin" dump --pid "$tpid" --json \
			-o "$work/d.json" "${args[@]}" $MEMSPY_ARGS 2>"$work/err" || true
		[ -n "$MEMSPY_ARGS" ] && sed "s/^/  /" "$work/err"
		read -r maxrss wall <"$work/time"
		if [ $mode = plain ]; then
			jq -r --arg rss "$maxrss" --arg wall "$wall" '"run \(env.r) \(env.who) dump:        walk \(.walk_ms|floor) ms (CPU \(.walk_cpu_ms // 0|floor)), \(.totals.in_use_chunks) chunks in use, pause \(.pause_ms|floor) ms; wall \($wall) s, memspy peak RSS \($rss|tonumber/1024|floor) MiB"' "$work/d.json"
		else
			jq -r --arg rss "$maxrss" --arg wall "$wall" '"run \(env.r) \(env.who) dump --leaks: walk \(.walk_ms|floor) ms (CPU \(.walk_cpu_ms // 0|floor)), scan \(.leaks.scan_ms|floor) ms (mark \(.leaks.mark_ms|floor); CPU \(.leaks.scan_cpu_ms // 0|floor)), \(.leaks.roots.allocation_bytes_read/1048576|floor) MiB of allocations read, leaked \(.leaks.leaked.count) (\(.leaks.leaked.bytes) B), pause \(.pause_ms|floor) ms; wall \($wall) s, memspy peak RSS \($rss|tonumber/1024|floor) MiB"' "$work/d.json"
			jq -r '"\(env.who) \(.leaks.scan_ms) \(.walk_ms) \(.leaks.scan_cpu_ms // 0) \(.walk_cpu_ms // 0)"' "$work/d.json" >>"$work/ratios"
		fi
	done
	done
done
# Medians of scan/walk in the same --leaks run (the walk is the yardstick the scan is held to):
# wall time, and memspy's CPU time (getrusage, all its threads; builds before walk_cpu_ms print 0).
for who in this other; do
	for col in wall cpu; do
		f=$([ $col = wall ] && echo '$2 / $3' || echo '($5 > 0 ? $4 / $5 : 0)')
		grep "^$who " "$work/ratios" 2>/dev/null | awk "{ printf \"%.3f\\n\", $f }" | sort -n >"$work/r-$who" || true
		n=$(wc -l <"$work/r-$who")
		[ "$n" = 0 ] && continue
		echo "$who: scan/walk ($col time) median $(sed -n "$(((n + 1) / 2))p" "$work/r-$who") over $n runs ($(paste -sd' ' "$work/r-$who"))"
	done
done
# CPU samples by phase: a sample belongs to the scan when its stack passes through the scan's
# entry or its helper thread, to the walk through the walk's entry or its worker thread
# (frames of leaf functions without a frame pointer are lost: those samples count as neither).
if [ -n "${PERF:-}" ]; then
	for who in this other; do
		f=${PERF_DIR:-/tmp}/perf-$who.data
		[ -f "$f" ] || continue
		perf script -i "$f" -F ip,sym 2>/dev/null | awk -v who="$who" '
			function flush() {
				if (n) { all++; if (sc) scan++; else if (wk) walk++ }
				n = sc = wk = 0
			}
			NF == 0 { flush(); next }
			{ n++; sym = $2; sub(/\+.*/, "", sym)
			  if (sym == "ms_leak_scan_mt" || sym == "helper_main") sc = 1
			  if (sym == "ms_heap_walk_flags" || sym == "worker_main") wk = 1 }
			END { flush(); printf "%s: CPU samples: scan %d, walk %d (scan/walk %.3f), %d in all\n",
				who, scan, walk, walk ? scan / walk : 0, all }'
	done
fi
