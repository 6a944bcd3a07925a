#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Golden tests of the profile writers: folded stacks in, SVG (without JS),
# folded and speedscope out, compared byte for byte with tests/golden/output.
# MEMSPY_BLESS=1 rewrites the expected files instead.
#   test_output_golden.sh RENDER GOLDEN_DIR WORK_DIR
set -euo pipefail
render=$1 golden=$2 work=$3
mkdir -p "$work"

title='memspy record --pid 4242 -o service.svg'
subtitle='Total: 12.2 MiB allocated in 52,138 allocations, sampled every ~512 KiB'
fail=0

# name of the expected file, then the render options
check() {
	local expect=$1; shift
	local got="$work/$expect"
	if ! "$render" "$@" "$golden/service.folded" "$got"; then
		echo "FAIL: $render $* $golden/service.folded: exit status $?" >&2
		fail=1
		return
	fi
	if [ "${MEMSPY_BLESS:-0}" = 1 ]; then
		cp "$got" "$golden/$expect"
		echo "blessed $golden/$expect"
	elif ! cmp -s "$got" "$golden/$expect"; then
		echo "FAIL: $expect differs from the golden file $golden/$expect:" >&2
		diff -u "$golden/$expect" "$got" | head -40 >&2 || true
		echo "If the change is intended, review it and rewrite the goldens with:" >&2
		echo "  MEMSPY_BLESS=1 ctest -R output_golden" >&2
		fail=1
	else
		echo "ok: $expect"
	fi
}

check service.svg -f svg -n -t "$title" -s "$subtitle"
check service.live-count.svg -f svg -n -c -L -l -w 900 -t "$title --live"
check service.out.folded -f folded
check service.count.folded -f folded -c
check service.speedscope.json -f speedscope -t "$title"
exit $fail
