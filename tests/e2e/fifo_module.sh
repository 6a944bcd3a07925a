#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A module file replaced by a FIFO must not hang memspy. Without
# CAP_SYS_ADMIN, memspy opens the target's module files through
# /proc/PID/root + the path maps shows, which the target chooses; open() of a
# FIFO blocks until a writer comes, and memspy's SIGTERM handler does not
# end it. memspy record runs with CAP_SYS_ADMIN dropped (capsh) for 1 s and
# must end by itself and write its output.
#   fifo_module.sh MEMSPY TARGET
set -euo pipefail
memspy=$1 target=$2
command -v capsh >/dev/null || { echo "SKIP: no capsh"; exit 77; }
work=$(mktemp -d)
tpid=""; mpid=""
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null; [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkfifo "$work/in"
"$target" "$work" <"$work/in" >"$work/out" &
tpid=$!
exec 9>"$work/in"
for _ in $(seq 1 200); do grep -q '^ready' "$work/out" && break; sleep 0.05; done
grep -q '^ready' "$work/out" || { echo "FAIL: target never got ready"; exit 1; }
grep -q 'mod.so (deleted)' "/proc/$tpid/maps" || { echo "FAIL: the module is not in maps"; exit 1; }
capsh --drop=cap_sys_admin,cap_checkpoint_restore -- -c \
	"exec '$memspy' record --pid $tpid --duration 1 -o '$work/out.folded'" 2>"$work/memspy.err" &
mpid=$!
# 1 s of recording: 60 s is far beyond any honest finish on a loaded machine.
for _ in $(seq 1 600); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then
	echo "FAIL: memspy still running after 60 s (blocked in: $(cat /proc/$mpid/wchan 2>/dev/null))"
	cat "$work/memspy.err"
	exit 1
fi
wait "$mpid" && rc=0 || rc=$?
mpid=""
cat "$work/memspy.err"
[ "$rc" = 0 ] || { echo "FAIL: memspy exit status $rc"; exit 1; }
[ -s "$work/out.folded" ] || { echo "FAIL: no output"; exit 1; }
exec 9>&-
wait "$tpid" && trc=0 || trc=$?
tpid=""
[ "$trc" = 0 ] || { echo "FAIL: target exit status $trc"; exit 1; }
echo "PASS: memspy ended by itself with the module file a FIFO"
