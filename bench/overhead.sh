#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Profiler overhead, side by side in one run: each workload unprofiled, under
# `memspy record` (default settings, or $MEMSPY_ARGS), and under
# `heaptrack -p` (attached to the running process, as memspy is). Prints
# throughput ratios (median of $ROUNDS interleaved rounds), and per memspy run
# its own account (measured cost, final sampling mean) on stderr, and per
# workload memspy's samples/s and its CPU per sample (its rusage over the
# recording, fixed upkeep included, divided by its samples). Not a test:
# the machine is shared and noisy, so read ratios, not absolute numbers.
# The "light" workload (tests/targets/light_leak: mostly sleeping, leaking a
# 4 KiB block 25 times a second) has no throughput to compare: it prints
# memspy's samples/s and the leak view's estimate against what leaked, per
# `record --live` run of $LIGHT_SECONDS at default settings.
#
#   bash bench/overhead.sh [build-dir]      ROUNDS=3 SECONDS_PER_RUN=5 THREADS=4 LIGHT_SECONDS=20
#                                           WORKLOADS="service tight light" HEAPTRACK=0 (skip its column)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
THREADS=${THREADS:-4}
MEMSPY_ARGS=${MEMSPY_ARGS:-}
WORKLOADS=${WORKLOADS:-service tight light}
LIGHT_SECS=${LIGHT_SECONDS:-20}
light=$build/tests/targets/memspy-light-leak
bench=$build/bench/targets/alloc_bench
memspy=$build/cmd/memspy
work=$(mktemp -d)
trap 'rm -rf "$work"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
have_heaptrack=${HEAPTRACK:-1}
command -v heaptrack >/dev/null || { have_heaptrack=0; echo "heaptrack not installed (apt-get install heaptrack): its column is skipped" >&2; }

# Waits until $1 (a pid) shows a tracer or an injected library, i.e. the profiler is in.
wait_attached() {
	local pid=$1 what=$2 i
	for i in $(seq 1 900); do # 90 s: attaching is slow on a loaded machine
		case $what in
		memspy) grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/$pid/status 2>/dev/null && { sleep 0.5; return 0; } ;;
		heaptrack) grep -q libheaptrack_inject /proc/$pid/maps 2>/dev/null && { sleep 0.5; return 0; } ;;
		esac
		sleep 0.1
	done
	echo "profiler $what did not attach to $pid" >&2
	return 1
}

# memspy's CPU in microseconds from its summary ("memspy used 450.3 ms of CPU").
memspy_cpu_us() {
	grep -oE 'memspy used [0-9.]+ (us|ms|s) of CPU' "$1" | head -1 |
		awk '{v = $3; if ($4 == "ms") v *= 1000; else if ($4 == "s") v *= 1000000; print v}'
}

# run_one WORKLOAD MODE -> prints "rate samples_per_s cpu_us_per_sample"
run_one() {
	local workload=$1 mode=$2 prof_pid="" samples="" cpu=""
	# Named per call: the previous call may still be removing its own files when this one starts.
	local in=$work/in.$BASHPID out=$work/out.$BASHPID
	rm -f "$in" "$out"; mkfifo "$in"
	"$bench" "$workload" "$THREADS" "$SECS" <"$in" >"$out" &
	local pid=$!
	exec 9>"$in"
	while ! grep -q '^ready' "$out" 2>/dev/null; do sleep 0.05; done
	case $mode in
	none) ;;
	memspy)
		"$memspy" record --pid "$pid" $MEMSPY_ARGS -o "$work/m.folded" 2>"$work/m.err" &
		prof_pid=$!
		wait_attached "$pid" memspy ;;
	heaptrack)
		heaptrack -o "$work/ht" -p "$pid" >"$work/ht.log" 2>&1 &
		prof_pid=$!
		wait_attached "$pid" heaptrack ;;
	esac
	echo go >&9
	exec 9>&-
	wait "$pid" || true
	if [ -n "$prof_pid" ]; then
		kill -INT "$prof_pid" 2>/dev/null || true
		wait "$prof_pid" 2>/dev/null || true
	fi
	if [ "$mode" = memspy ]; then
		samples=$(grep -oE 'from [0-9,]+ samples' "$work/m.err" | head -1 | tr -dc '0-9' || true)
		cpu=$(memspy_cpu_us "$work/m.err" || true)
		# memspy's own account: measured cost, its parts, what the budget did to the mean.
		grep -E 'slowdown|spent|memspy used|sampling mean|cap and|dropped|lost' "$work/m.err" |
			sed 's/^ */    memspy: /' >&2 || true
	fi
	awk -v s="${samples:-}" -v secs="$SECS" -v c="${cpu:-}" '/^ops/ {
		printf "%s %s %s\n", $4, (s == "" ? "-" : s / secs), (s == "" || c == "" || s == 0 ? "-" : sprintf("%.2f", c / s))
	}' "$out"
	rm -f "$in" "$out" "$work"/ht*
}

# light_one -> prints "samples_per_s estimate_bytes leaked_bytes"
light_one() {
	local in=$work/lin.$BASHPID out=$work/lout.$BASHPID pid before after est samples
	rm -f "$in" "$out"; mkfifo "$in"
	"$light" <"$in" >"$out" &
	pid=$!
	exec 8>"$in"
	while ! grep -q ' ready' "$out" 2>/dev/null; do sleep 0.05; done
	"$memspy" record --pid "$pid" --live --duration "${LIGHT_SECS}s" -o "$work/l.folded" 2>"$work/l.err" &
	local prof_pid=$!
	while ! grep -q '^memspy: recording pid' "$work/l.err" 2>/dev/null; do sleep 0.05; done
	echo mark >&8
	wait "$prof_pid" || true
	echo mark >&8
	echo quit >&8
	exec 8>&-
	wait "$pid" || true
	before=$(grep '^leaked' "$out" | sed -n 1p | awk '{print $2}')
	after=$(grep '^leaked' "$out" | sed -n 2p | awk '{print $2}')
	est=$(awk '/leak_block/ {s += $NF} END {print s + 0}' "$work/l.folded" 2>/dev/null || echo 0)
	samples=$(grep -oE 'from [0-9,]+ samples' "$work/l.err" | head -1 | tr -dc '0-9' || true)
	grep -E 'slowdown|spent|memspy used|sampling mean|few samples' "$work/l.err" | sed 's/^ */    memspy: /' >&2 || true
	echo "$(echo "${samples:-0} / $LIGHT_SECS" | bc -l) $est $((after - before))"
	rm -f "$in" "$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for workload in $WORKLOADS; do
	if [ "$workload" = light ]; then
		printf '\nlight (mostly sleeping, leaks 4 KiB 25 times a second; record --live %ss at default settings, %s rounds)\n' "$LIGHT_SECS" "$ROUNDS"
		for r in $(seq 1 "$ROUNDS"); do
			read -r sps est leaked < <(light_one)
			printf '  round %s: %.0f samples/s; leak view %s B on leak_block, %s B leaked meanwhile: %.2fx\n' \
				"$r" "$sps" "$est" "$leaked" "$(echo "$est / ($leaked + 1)" | bc -l)"
		done
		continue
	fi
	declare -A rates=()
	sps="" cps=""
	for r in $(seq 1 "$ROUNDS"); do
		for mode in none memspy heaptrack; do
			[ "$mode" = heaptrack ] && [ $have_heaptrack = 0 ] && continue
			read -r rate s c < <(run_one "$workload" "$mode")
			rates[$mode]+="$rate "
			[ "$mode" = memspy ] && sps+="$s " && cps+="$c "
		done
	done
	base=$(echo ${rates[none]} | tr ' ' '\n' | median)
	printf '\n%s (%s threads, %ss runs, %s rounds): ops/s median, slowdown vs unprofiled\n' "$workload" "$THREADS" "$SECS" "$ROUNDS"
	printf '  %-10s %14.0f ops/s   1.00x\n' none "$base"
	for mode in memspy heaptrack; do
		[ -z "${rates[$mode]:-}" ] && continue
		m=$(echo ${rates[$mode]} | tr ' ' '\n' | median)
		printf '  %-10s %14.0f ops/s   %.2fx slower   (runs: %s)\n' "$mode" "$m" "$(echo "$base / $m" | bc -l)" "${rates[$mode]}"
	done
	if [ -n "$sps" ]; then
		printf '  memspy samples/s: median %.0f   (runs: %s)\n' \
			"$(echo $sps | tr ' ' '\n' | grep -v -- - | median)" "$sps"
		printf '  memspy CPU per sample: median %s us, its upkeep included   (runs: %s)\n' \
			"$(echo $cps | tr ' ' '\n' | grep -v -- - | median)" "$cps"
	fi
	unset rates
done
