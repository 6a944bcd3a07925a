#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memspy dump on a big idle heap (>1 GiB, >5 M chunks, 5 arenas) next to gdb's
# `print mallinfo2()` on the same process: pause and whole-run medians, and
# memspy's nine mallinfo2 fields checked against gdb's and the target's own.
# The pause is measured twice: memspy's own pause_ms, and from inside the
# target (longest gap of a 1 ms ticker thread), which is how gdb's is measured.
# Not a test: the machine is shared and noisy. Use a build WITHOUT sanitizers.
#
#   bash bench/dump_bench.sh [build-dir]    RUNS=3 THREADS=4 CHUNKS=1200000 (per thread)
#                                           MEMSPY_ARGS=-v (extra dump options;
#                                           --no-snapshot: the walk with the target stopped)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
RUNS=${RUNS:-3}
THREADS=${THREADS:-4}
CHUNKS=${CHUNKS:-1200000}
MEMSPY_ARGS=${MEMSPY_ARGS:-}
target=$build/bench/targets/dump_heap
memspy=$build/cmd/memspy
for f in "$target" "$memspy"; do
	[ -x "$f" ] || { echo "dump_bench: $f missing: cmake --build $build --target memspy dump_heap" >&2; exit 2; }
done
if grep -q __asan_init "$memspy" 2>/dev/null; then
	echo "dump_bench: $memspy is an ASan build (10-50x slower); configure with -DMEMSPY_SANITIZE=OFF" >&2
fi
command -v gdb >/dev/null || { echo "dump_bench: gdb not installed" >&2; exit 2; }
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
# Readiness is the target's own READY line on its stdout pipe.
want=""
while IFS= read -r -t 900 -u 8 line; do
	case $line in
	MALLINFO*) want=${line#MALLINFO } ;;
	READY) break ;;
	esac
done
[ -n "$want" ] || { echo "dump_bench: the target never got ready" >&2; exit 1; }
rss=$(awk '/^VmRSS/ {printf "%.2f GiB", $2 / 1048576}' /proc/$tpid/status)

# Longest freeze the target saw since the last call, in ms.
gap_ms() {
	local l
	echo gap >&9
	IFS= read -r -t 60 -u 8 l
	awk -v u="${l#gap_us }" 'BEGIN {printf "%.1f", u / 1000}'
}
now() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", (b - a) / 1e6}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

fields="arena ordblks smblks hblks hblkhd fsmblks uordblks fordblks keepcost"
m_pause="" m_gap="" m_total="" g_gap="" g_total="" bad=0
for r in $(seq 1 "$RUNS"); do
	gap_ms >/dev/null
	t=$(now)
	rc=0
	# shellcheck disable=SC2086
	"$memspy" dump --pid "$tpid" --json -o "$work/d.json" $MEMSPY_ARGS 2>"$work/m.err" || rc=$?
	m_total+="$(ms_since "$t") "
	m_gap+="$(gap_ms) "
	[ -s "$work/m.err" ] && sed "s/^/  memspy run $r: /" "$work/m.err"
	m_pause+="$(jq .pause_ms "$work/d.json") "
	mine=""
	for f in $fields; do mine+="$f=$(jq ".mallinfo2.$f" "$work/d.json") "; done
	mine=${mine% }
	phases=$(jq -r '"locate \(.locate_ms|floor) ms, walk \(.walk_ms|floor) ms from \(.walk_source)\(if .snapshot_fallback then " (no snapshot: " + .snapshot_fallback + ")" else "" end), clone \(.snapshot_ms|floor) ms"' "$work/d.json")
	[ "$rc" = 0 ] || { echo "  memspy run $r: exit $rc" >&2; bad=1; }

	gap_ms >/dev/null
	t=$(now)
	gdb -p "$tpid" -batch -ex 'print mallinfo2()' >"$work/g.out" 2>&1 || true
	g_total+="$(ms_since "$t") "
	g_gap+="$(gap_ms) "
	theirs=""
	for f in $fields; do
		theirs+="$f=$(grep -o "\b$f = [0-9]*" "$work/g.out" | awk '{print $3}') "
	done
	theirs=${theirs% }
	[ "$mine" = "$want" ] && [ "$theirs" = "$want" ] ||
		{ echo "  run $r: memspy ($mine) or gdb ($theirs) differs from the target ($want)" >&2; bad=1; }
done

echo "dump_bench: $THREADS threads + main, $CHUNKS chunks per thread, RSS $rss, $RUNS runs"
echo "  target's mallinfo2: $want"
echo "  memspy  mallinfo2:  $mine"
echo "  gdb     mallinfo2:  $theirs"
chunks=$(jq '[.totals.by_kind[] | .chunks] | add' "$work/d.json")
echo "  heap: $(jq '.mallinfo2.arena + .mallinfo2.hblkhd' "$work/d.json" | awk '{printf "%.2f GiB", $1 / 1073741824}') in $chunks chunks; memspy's last run: $phases"
printf '  %-8s %14s %16s %12s   (runs, ms)\n' "" "pause (self)" "pause (target)" "whole"
printf '  %-8s %14s %16s %12s   pause %s / whole %s\n' memspy "$(echo $m_pause | median)" \
	"$(echo $m_gap | median)" "$(echo $m_total | median)" "$m_pause" "$m_total"
printf '  %-8s %14s %16s %12s   pause %s / whole %s\n' gdb "-" "$(echo $g_gap | median)" \
	"$(echo $g_total | median)" "$g_gap" "$g_total"
if [ "$mine" != "$want" ] || [ "$mine" != "$theirs" ]; then
	echo "  MISMATCH: memspy's totals differ from gdb's or the target's mallinfo2" >&2
	bad=1
else
	echo "  totals: memspy == gdb == target (all nine fields)"
fi
exit $bad
