#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A module replaced on disk while the process maps it. Without CAP_SYS_ADMIN
# memspy cannot open /proc/PID/map_files and opens module files through
# /proc/PID/root + the path maps shows: that path now names another file.
# memspy must not read it as the mapped module (its symbols would name the
# process's frames): it checks the file's device and inode against maps,
# refuses the other file and says so. Two rounds: the file replaced before
# memspy starts, and 1 s into the recording.
#   hostile_replaced.sh MEMSPY TARGET LIB_ORIGINAL LIB_REPLACED
set -euo pipefail
memspy=$1 target=$2 lib_a=$3 lib_b=$4
command -v capsh >/dev/null || { echo "SKIP: no capsh"; exit 77; }
work=$(mktemp -d /tmp/memspy-replaced-XXXXXX)
tpid=""; mpid=""
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null; [ -n "$tpid" ] && kill -9 "$tpid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail=0

round() { # $1: before | during
	local when=$1 rc
	rm -rf "$work/r" && mkdir -p "$work/r"
	mkfifo "$work/r/in"
	"$target" "$work/r" "$lib_a" original_allocator_fn <"$work/r/in" >"$work/r/out" &
	tpid=$!
	exec 9>"$work/r/in"
	for _ in $(seq 1 200); do grep -q '^ready' "$work/r/out" && break; sleep 0.05; done
	grep -q '^ready' "$work/r/out" || { echo "FAIL: target never got ready"; exit 1; }
	replace() { cp "$lib_b" "$work/r/libmod.so.new" && mv -f "$work/r/libmod.so.new" "$work/r/libmod.so"; }
	[ "$when" = before ] && replace
	capsh --drop=cap_sys_admin,cap_checkpoint_restore -- -c \
		"exec '$memspy' record --pid $tpid --duration 3 -o '$work/r/out.folded'" \
		2>"$work/r/memspy.err" &
	mpid=$!
	if [ "$when" = during ]; then sleep 1; replace; fi
	for _ in $(seq 1 1200); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$mpid" 2>/dev/null && { echo "FAIL ($when): memspy still running after 120 s"; exit 1; }
	wait "$mpid" && rc=0 || rc=$?
	mpid=""
	exec 9>&-
	wait "$tpid" || { echo "FAIL ($when): the target did not exit cleanly"; fail=1; }
	tpid=""
	echo "--- $when: memspy exit status $rc"
	cat "$work/r/memspy.err"
	if [ "$rc" -ge 2 ]; then echo "FAIL ($when): memspy exit status $rc"; fail=1; fi
	[ -s "$work/r/out.folded" ] || { echo "FAIL ($when): no output"; fail=1; return; }
	if grep -q replaced_allocator_fn "$work/r/out.folded"; then
		echo "FAIL ($when): frames named from the file put at the module's path:"
		grep -m3 replaced_allocator_fn "$work/r/out.folded"
		fail=1
	fi
	if ! grep -q 'libmod.so is not the file the process mapped' "$work/r/memspy.err"; then
		echo "FAIL ($when): memspy did not say the module's file was replaced"
		fail=1
	fi
}

round before
round during
[ "$fail" = 0 ] || exit 1
echo "PASS: the replaced module's file was refused and named, in both rounds"
