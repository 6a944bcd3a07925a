#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A module file replaced by a FIFO must not hang memspy. Without
# CAP_SYS_ADMIN, memspy opens the target's module files through
# /proc/PID/root + the path maps shows, which the target chooses; open() of a
# FIFO blocks until a writer comes, and memspy's SIGTERM handler does not
# end it. memspy runs with CAP_SYS_ADMIN dropped (capsh): record for 1 s,
# or dump (with the process stopped in place, --no-snapshot: the quiesce
# unwinds its threads with libdwfl, and the leak scan reads its modules'
# symbols), and must end by itself and write its output.
#   fifo_module.sh MEMSPY TARGET [record|dump]
set -euo pipefail
memspy=$1 target=$2 mode=${3:-record}
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
case $mode in
record) out=$work/out.folded cmd="record --pid $tpid --duration 1 -o '$out'" ;;
dump) out=$work/out.txt cmd="dump --pid $tpid --no-snapshot --leaks -o '$out'" ;;
*) echo "FAIL: unknown mode $mode"; exit 2 ;;
esac
capsh --drop=cap_sys_admin,cap_checkpoint_restore -- -c \
	"exec '$memspy' $cmd" 2>"$work/memspy.err" &
mpid=$!
# 1 s of recording, or one dump of a small heap: 60 s is far beyond any honest finish on a loaded machine.
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
[ -s "$out" ] || { echo "FAIL: no output"; exit 1; }
exec 9>&-
wait "$tpid" && trc=0 || trc=$?
tpid=""
[ "$trc" = 0 ] || { echo "FAIL: target exit status $trc"; exit 1; }
echo "PASS: memspy $mode ended by itself with the module file a FIFO"
