#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The target's own SIGTRAPs (int3 in its code, its own handler) must reach it
# while memspy is attached: memspy must not swallow a trap that is not its own.
#   trap_own.sh MEMSPY TARGET MODE       MODE: walk | probe
set -euo pipefail
memspy=$1 target=$2 mode=$3
work=$(mktemp -d)
tpid=""; mpid=""
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null; [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkfifo "$work/in"
"$target" 3000 <"$work/in" >"$work/out" &
tpid=$!
exec 9>"$work/in"
for _ in $(seq 1 200); do grep -q '^ready' "$work/out" && break; sleep 0.05; done
grep -q '^ready' "$work/out" || { echo "FAIL: target never got ready"; exit 1; }
case $mode in
walk) args=(--mode walk --rate 200 --max-pause-share 20%) ;;
probe) args=(--exact) ;;
esac
"$memspy" record --pid "$tpid" "${args[@]}" -o "$work/out.folded" 2>"$work/memspy.err" &
mpid=$!
for _ in $(seq 1 200); do grep -q 'recording pid' "$work/memspy.err" && break
	kill -0 "$mpid" 2>/dev/null || break; sleep 0.05; done
if ! grep -q 'recording pid' "$work/memspy.err"; then
	# Refusing to probe a target that handles SIGTRAP itself is acceptable in
	# probe mode, if memspy says why and leaves the target alone.
	wait "$mpid" && rc=0 || rc=$?; mpid=""
	cat "$work/memspy.err"
	if [ "$mode" = probe ] && [ "$rc" = 2 ] && grep -qi 'SIGTRAP' "$work/memspy.err"; then
		echo go >&9; exec 9>&-
		wait "$tpid" && trc=0 || trc=$?; tpid=""
		cat "$work/out"
		[ "$trc" = 0 ] && grep -q '^ok traps=3000' "$work/out" && { echo "PASS (probe mode refused, target unharmed)"; exit 0; }
	fi
	echo "FAIL: memspy did not start recording (exit $rc)"; exit 1
fi
echo go >&9; exec 9>&-
wait "$tpid" && trc=0 || trc=$?; tpid=""
wait "$mpid" && mrc=0 || mrc=$?; mpid=""
cat "$work/out"; tail -5 "$work/memspy.err"
[ "$trc" = 0 ] || { echo "FAIL: target exited $trc"; exit 1; }
grep -q '^ok traps=3000' "$work/out" || { echo "FAIL: target's traps were not all delivered"; exit 1; }
[ "$mrc" = 1 ] || { echo "FAIL: memspy should exit 1 (target exited mid-recording), got $mrc"; exit 1; }
echo PASS
