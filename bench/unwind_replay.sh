#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The unwind microbenchmark on real ring contents: records the 2-thread
# service bench target with MEMSPY_UNWIND_DUMP (every stack copy memspy drains
# from the ring is saved), then replays those copies against the same, still
# running target with libdw alone and with the CFI table, side by side
# (bench/unwind_replay.c); then drains the same samples through the ring
# drain and unwinds them as record does, shared and private ring
# (bench/drain_replay.c). Prints ns per sample. Not a test.
#
#   bash bench/unwind_replay.sh [build-dir]     RECORD_SECONDS=3 ROUNDS=9 SAMPLE=256k BATCH=64
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
SECS=${RECORD_SECONDS:-3}
ROUNDS=${ROUNDS:-9}
SAMPLE=${SAMPLE:-256k}
bench=$build/bench/targets/alloc_bench
memspy=$build/cmd/memspy
replay=$build/bench/unwind_replay
drain=$build/bench/drain_replay
BATCH=${BATCH:-64}
cmake --build "$build" --target drain_replay >/dev/null # not built by default (bench/drain.cmake)
work=$(mktemp -d)
bench_pid=""
trap '[ -n "$bench_pid" ] && kill -KILL "$bench_pid" 2>/dev/null; rm -rf "$work"' EXIT

mkfifo "$work/in"
# The target keeps running after the recording: the replay needs its modules.
"$bench" service 2 3600 <"$work/in" >"$work/out" &
bench_pid=$!
disown "$bench_pid" # killed at the end: no "Killed" line
exec 9>"$work/in"
while ! grep -q '^ready' "$work/out" 2>/dev/null; do sleep 0.05; done
MEMSPY_UNWIND_DUMP=$work/dump "$memspy" record --pid "$bench_pid" --sample-bytes "$SAMPLE" \
	--max-overhead off -d "${SECS}s" -o "$work/m.folded" 2>"$work/m.err" &
prof=$!
# The target starts working once memspy says it is recording (the probes are in).
for _ in $(seq 1 900); do
	grep -q 'recording pid' "$work/m.err" 2>/dev/null && break
	sleep 0.1
done
echo go >&9
wait "$prof" || { cat "$work/m.err" >&2; exit 1; }
# Stopped (alive, modules in place) so that its threads do not compete with the replay.
kill -STOP "$bench_pid"
${REPLAY_WRAP:-} nice -n 10 "$replay" "$bench_pid" "$work/dump" "$ROUNDS"
# The drain + unwind path: samples handed over BATCH at a time (the drain's pace aims at 64).
${REPLAY_WRAP:-} nice -n 10 "$drain" "$bench_pid" "$work/dump" "$ROUNDS" "$BATCH"
