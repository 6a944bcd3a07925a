#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A stripped module whose .gnu_debuglink names a FIFO the process put beside
# it must not hang memspy: libdwfl's search for separate debug files opens
# the debuglink name next to the module with a plain open(), which blocks on
# a FIFO until a writer comes. memspy records for 1 s and must end by itself
# with its output written, naming the module's frame from its dynamic symbols.
#   debuglink_fifo.sh MEMSPY TARGET LIBRARY
set -euo pipefail
memspy=$1 target=$2 lib=$3
work=$(mktemp -d)
tpid=""; mpid=""
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null; [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
objcopy --only-keep-debug "$lib" "$work/evil.debug"
objcopy --strip-all --add-gnu-debuglink="$work/evil.debug" "$lib" "$work/libevil.so"
rm "$work/evil.debug"
mkfifo "$work/evil.debug" "$work/libevil.so.debug"
mkdir "$work/.debug" && mkfifo "$work/.debug/evil.debug"
mkfifo "$work/in"
"$target" "$work/libevil.so" <"$work/in" >"$work/out" &
tpid=$!
exec 9>"$work/in"
for _ in $(seq 1 200); do grep -q '^ready' "$work/out" && break; sleep 0.05; done
grep -q '^ready' "$work/out" || { echo "FAIL: target never got ready"; exit 1; }
out=$work/out.folded
"$memspy" record --pid "$tpid" --duration 1 --sample-bytes 4k -f folded -o "$out" 2>"$work/memspy.err" &
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
grep -q ';dl_alloc ' "$out" || { echo "FAIL: no frame of the stripped module (dl_alloc, from its dynamic symbols) in the output"; head -3 "$out"; exit 1; }
exec 9>&-
wait "$tpid" && trc=0 || trc=$?
tpid=""
[ "$trc" = 0 ] || { echo "FAIL: target exit status $trc"; exit 1; }
echo "PASS: memspy ended by itself with the module's debuglink a FIFO"
