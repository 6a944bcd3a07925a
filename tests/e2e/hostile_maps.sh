#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A process whose /proc/PID/maps is larger than memspy reads (64 MiB: one
# page mapped 20,000 times under a ~4000-byte path). memspy dump must refuse
# it with a message naming the bound, not read it whole (nor crash), and
# its peak RSS must stay far below the file's size times the copies it
# would make of it.
#   hostile_maps.sh MEMSPY TARGET
set -euo pipefail
memspy=$1 target=$2
work=$(mktemp -d /tmp/memspy-maps-XXXXXX)
tpid=""
cleanup() { [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkfifo "$work/in"
"$target" "$work" 20000 <"$work/in" >"$work/out" &
tpid=$!
exec 9>"$work/in"
for _ in $(seq 1 600); do grep -q '^ready' "$work/out" && break; sleep 0.1; done
grep -q '^ready' "$work/out" || { echo "FAIL: target never got ready"; exit 1; }
size=$(wc -c <"/proc/$tpid/maps")
echo "maps of the target: $size bytes"
[ "$size" -gt $((64 << 20)) ] || { echo "FAIL: maps only $size bytes"; exit 1; }
rc=0
/usr/bin/time -f 'maxrss_kb=%M' -o "$work/time" \
	timeout 120 "$memspy" dump --pid "$tpid" -o "$work/report.txt" 2>"$work/memspy.err" || rc=$?
cat "$work/memspy.err" "$work/time"
fail=0
# An error (1 or 2), not a crash, not a timeout (124).
[ "$rc" = 1 ] || [ "$rc" = 2 ] || { echo "FAIL: exit status $rc (an error expected)"; fail=1; }
grep -q 'maps is larger than 64 MiB' "$work/memspy.err" || { echo "FAIL: the bound is not named"; fail=1; }
rss=$(sed -n 's/^maxrss_kb=//p' "$work/time")
# At most one 64 MiB buffer at a time, but under ASan each buffer it grew
# through (64 KiB to 64 MiB) stays resident in the quarantine: 241 MiB
# measured with ASan. Without the bound memspy did not finish in 120 s.
[ "$rss" -lt $((320 << 10)) ] || { echo "FAIL: peak RSS ${rss} KiB"; fail=1; }
exec 9>&-
wait "$tpid" || { echo "FAIL: the target did not exit cleanly"; fail=1; }
tpid=""
[ "$fail" = 0 ] && echo "PASS: maps of $size bytes refused, peak RSS ${rss} KiB"
exit "$fail"
