#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memspy's own CPU per sample, from its rusage: `memspy record` at a fixed
# sampling mean (no budget) on the 2-thread request-handling bench target.
# Prints the samples taken, memspy's user+system CPU and the CPU per sample.
# Not a test (the machine is shared): compare runs made side by side.
#
#   bash bench/unwind_cpu.sh [build-dir]     SECONDS_PER_RUN=10 THREADS=2 SAMPLE=256k
#                                            MEMSPY_ARGS="--unwinder fp" (extra options)
#                                            PERF=out.data (also perf record -g memspy at 2 kHz)
#                                            WRAP="env LD_PRELOAD=..." (a command memspy runs under)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
SECS=${SECONDS_PER_RUN:-10}
THREADS=${THREADS:-2}
SAMPLE=${SAMPLE:-256k}
MEMSPY_ARGS=${MEMSPY_ARGS:-}
PERF=${PERF:-}
bench=$build/bench/targets/alloc_bench
memspy=$build/cmd/memspy
work=$(mktemp -d)
bench_pid=""
trap '[ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"' EXIT

mkfifo "$work/in"
# The target runs a little longer than the recording: memspy stops on its own
# duration, with the target still running (a complete recording).
"$bench" service "$THREADS" $((SECS + 3)) <"$work/in" >"$work/out" &
bench_pid=$!
exec 9>"$work/in"
while ! grep -q '^ready' "$work/out" 2>/dev/null; do sleep 0.05; done
wrap=(${WRAP:-})
[ -n "$PERF" ] && wrap+=(perf record ${PERF_CG:--g} -F ${PERF_HZ:-2000} -o "$PERF" --)
/usr/bin/time -f '%U %S' -o "$work/time" "${wrap[@]}" "$memspy" record --pid "$bench_pid" \
	--sample-bytes "$SAMPLE" --max-overhead off -d "${SECS}s" $MEMSPY_ARGS \
	-o "$work/m.folded" 2>"$work/m.err" &
prof=$!
# Starts the target's work once memspy says it is recording (the probes are in).
for _ in $(seq 1 900); do # attaching is slow on a loaded machine
	grep -q 'recording pid' "$work/m.err" 2>/dev/null && break
	sleep 0.1
done
echo go >&9
exec 9>&-
wait "$prof" || true
wait "$bench_pid" || true
bench_pid=""
samples=$(grep -oE 'from [0-9,]+ samples' "$work/m.err" | head -1 | tr -dc '0-9' || true)
read -r ut st <"$work/time"
grep -E 'own CPU|memspy used|samples/s' "$work/m.err" | sed 's/^ */  memspy: /' || true
awk -v s="${samples:-0}" -v u="$ut" -v t="$st" 'BEGIN {
	printf "samples %d  memspy CPU %.3f s (user %.3f, sys %.3f)  %.2f us/sample\n",
	       s, u + t, u, t, s ? (u + t) * 1e6 / s : 0 }'
