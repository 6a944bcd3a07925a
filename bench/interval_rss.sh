#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memspy's own memory over a long `record --interval` run: the target
# (tests/targets/interval_leak) churns small blocks all the time from a
# thread and leaks LEAK_BLOCKS 24000-byte blocks every LEAK_EVERY seconds;
# memspy writes a pprof file every INTERVAL, keeping KEEP. Every SAMPLE
# seconds it prints memspy's VmRSS and VmHWM (from /proc), the target's
# RSS and the files on disk; then memspy's summary. Not a test: read the
# trend, not the absolute numbers.
#
#   bash bench/interval_rss.sh [build-dir]   MINUTES=25 INTERVAL=60s KEEP=5 SAMPLE=60
#                                            LEAK_EVERY=5 LEAK_BLOCKS=20
#                                            MEMSPY_ARGS="--sample-bytes 4k"
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
MINUTES=${MINUTES:-25}
INTERVAL=${INTERVAL:-60s}
KEEP=${KEEP:-5}
SAMPLE=${SAMPLE:-60}
LEAK_EVERY=${LEAK_EVERY:-5}
LEAK_BLOCKS=${LEAK_BLOCKS:-20}
MEMSPY_ARGS=${MEMSPY_ARGS:---sample-bytes 4k}
target=$build/tests/targets/memspy-interval-leak
memspy=$build/cmd/memspy
work=$(mktemp -d)
feeder= tpid= mpid=
cleanup() {
	[ -n "$feeder" ] && kill "$feeder" 2>/dev/null || true
	[ -n "$mpid" ] && kill -INT "$mpid" 2>/dev/null || true
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/in"
"$target" <"$work/in" >"$work/target.out" &
tpid=$!
exec 3>"$work/in"
( while sleep "$LEAK_EVERY"; do echo "leak $LEAK_BLOCKS" >&3 || exit 0; done ) &
feeder=$!
until grep -q ready "$work/target.out"; do sleep 0.1; done
# shellcheck disable=SC2086
"$memspy" record --pid "$tpid" --interval "$INTERVAL" --keep "$KEEP" --duration "${MINUTES}m" \
	$MEMSPY_ARGS -o "$work/heap-{n}.pb.gz" 2>"$work/memspy.err" &
mpid=$!
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status" 2>/dev/null || echo 0; }
printf '%8s %12s %12s %14s %6s\n' minutes memspy_rss memspy_hwm target_rss files
start=$(date +%s)
while kill -0 "$mpid" 2>/dev/null; do
	now=$(date +%s)
	printf '%8.1f %9s KiB %9s KiB %11s KiB %6s\n' "$(echo "($now - $start) / 60" | bc -l)" \
		"$(kb VmRSS "$mpid")" "$(kb VmHWM "$mpid")" "$(kb VmRSS "$tpid")" \
		"$(ls "$work" | grep -c '^heap-' || true)"
	for _ in $(seq "$SAMPLE"); do
		kill -0 "$mpid" 2>/dev/null || break
		sleep 1
	done
done
wait "$mpid" || echo "memspy exited $?"
mpid=
grep -E '^memspy: (interval|wrote)' "$work/memspy.err" | tail -3
grep -E 'sampling mean|memspy used|writing the interval|bound|could not|WARNING|ring full' "$work/memspy.err" || true
tail -1 "$work/target.out"
