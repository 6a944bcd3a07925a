#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The flame graph in a real browser: render a golden folded profile to an SVG
# with its JavaScript, open it in headless Chromium with ?s=PATTERN, and check
# from the dumped DOM that the search ran, highlighted exactly the frames it
# should and reported the right share, and that ?z= zooms; also save a
# screenshot for people.
#   svg_chromium.sh RENDER IN.folded WORK_DIR
set -euo pipefail
render=$1 in=$2 work=$3

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
	echo "SKIP: chromium is not installed (scripts/install-deps.sh installs it)"
	exit 77
fi
mkdir -p "$work"
rm -f "$work"/dom-*.xml "$work/svg_chromium.png"
profile_dir=$(mktemp -d)
pgid=
cleanup() {
	if [ -n "$pgid" ]; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
	rm -rf "$profile_dir"
}
trap cleanup EXIT

"$render" -f svg -t "memspy record --pid 4242 -o service.svg" \
	-s "Total: 12.2 MiB allocated in 52,138 allocations, sampled every ~512 KiB" \
	"$in" "$work/service.svg"

# What the page must show for a search, computed from the folded input
# independently of output/: frames are tree nodes (stack prefixes); nodes
# below 0.1% of the total are not drawn but still count in the matched share,
# which counts each stack once. Prints "PERCENT DRAWN SMALL".
expect_search() {
	awk -v pat="$1" '
	/^#/ || NF < 2 { next }
	{
		v = $(NF - 1); stack = $0
		sub(/ [0-9]+ [0-9]+$/, "", stack)
		n = split(stack, f, ";"); p = ""
		lines++; lv[lines] = v; ln[lines] = n
		for (i = 1; i <= n; i++) {
			p = (i == 1) ? f[i] : p ";" f[i]
			node[p] += v; last[p] = f[i]; lp[lines, i] = p
		}
		total += v
	}
	END {
		min = int(total * 0.001)
		for (p in node) {
			if (last[p] !~ pat) continue
			# drawn only if it and all its ancestors are wide enough
			drawn = 1; q = p
			while (q != "") {
				if (node[q] < min) drawn = 0
				if (!sub(/;[^;]*$/, "", q)) q = ""
			}
			if (drawn) nd++; else ns++
		}
		for (l = 1; l <= lines; l++)
			for (i = 1; i <= ln[l]; i++)
				if (last[lp[l, i]] ~ pat) { matched += lv[l]; break }
		printf "%.2f %d %d\n", matched * 100 / total, nd, ns
	}' "$in"
}

# Own session so that every helper process it spawns can be killed; four
# runs of at most 55 s each stay inside the test's TIMEOUT, so the trap, not
# CTest, ends a hung browser.
run_chromium() {
	setsid timeout -k 5 50 "$chromium" --headless --no-sandbox --disable-gpu \
		--disable-background-networking --disable-component-update --disable-sync \
		--no-first-run --user-data-dir="$profile_dir" "$@" &
	pgid=$!
	wait "$pgid"
	pgid=
}

fail=0
# check_search PATTERN: opens the graph with ?s=PATTERN and checks the DOM
check_search() {
	local pattern=$1 dom="$work/dom-$1.xml" pct n small text got_n bad unmarked
	read -r pct n small < <(expect_search "$pattern")
	text="Matched: $pct% of total ($n frames"
	[ "$small" != 0 ] && text="$text + $small too small to draw"
	text="$text)"
	echo "expect for /$pattern/: $text"
	run_chromium --dump-dom "file://$work/service.svg?s=$pattern" >"$dom" 2>>"$work/chromium.log"
	if ! grep -q 'data-ready="1"' "$dom"; then
		echo "FAIL: the flame graph's script did not finish initialising (no data-ready); DOM in $dom" >&2
		fail=1
	fi
	if ! grep -q "data-matched=\"$pct\"" "$dom"; then
		echo "FAIL: /$pattern/: the search did not report $pct% (data-matched: $(grep -o 'data-matched="[^"]*"' "$dom" || echo none))" >&2
		fail=1
	fi
	if ! grep -qF "$text" "$dom"; then
		echo "FAIL: /$pattern/: no '$text' in the page; found: $(grep -o 'Matched: [^<]*' "$dom" | tail -1)" >&2
		fail=1
	fi
	got_n=$(grep -c '<g class="f m"' "$dom" || true)
	bad=$(grep '<g class="f m"' "$dom" | sed 's/.*<title>//' | grep -vc "$pattern" || true)
	unmarked=$(grep '<g class="f"' "$dom" | sed 's/.*<title>//' | grep -c "^[^ ]*$pattern" || true)
	if [ "$got_n" != "$n" ] || [ "$bad" != 0 ] || [ "$unmarked" != 0 ]; then
		echo "FAIL: /$pattern/: $got_n frames highlighted (expected $n), $bad of them not matching, $unmarked matching frames not highlighted" >&2
		fail=1
	fi
	if [ "$(grep -c 'fill="rgb(230,0,230)"' "$dom" || true)" != "$n" ]; then
		echo "FAIL: /$pattern/: the highlighted frames are not drawn in the search colour" >&2
		fail=1
	fi
	[ $fail = 0 ] && echo "ok: /$pattern/: $text"
	return 0
}

check_search parse_   # drawn frames only
check_search log_line # only a frame too small to draw: the share must still be right
run_chromium --screenshot="$work/svg_chromium.png" --window-size=1200,800 \
	"file://$work/service.svg?s=parse_" >>"$work/chromium.log" 2>&1

# zoom from the URL: the subtree of parse_json across the full width, its
# ancestors dimmed at full width, everything else hidden
zoom=parse_json
expect_sub=$(awk -v z="$zoom" '
	/^#/ || NF < 2 { next }
	{
		v = $(NF - 1); stack = $0
		sub(/ [0-9]+ [0-9]+$/, "", stack)
		n = split(stack, f, ";"); p = ""; under = 0
		for (i = 1; i <= n; i++) {
			p = (i == 1) ? f[i] : p ";" f[i]
			if (f[i] == z) under = 1
			node[p] += v
			if (under) sub_[p] = 1
		}
		total += v
	}
	END { min = int(total * 0.001); for (p in sub_) if (node[p] >= min) c++; print c }' "$in")
run_chromium --dump-dom "file://$work/service.svg?z=$zoom" >"$work/dom-zoom.xml" 2>>"$work/chromium.log"
shown=$(grep -c '<g class="f" data-s="[0-9]' "$work/dom-zoom.xml" || true)
parents=$(grep -c '<g class="f parent"' "$work/dom-zoom.xml" || true)
full=$(grep '<g class="f" [^>]*><title>'"$zoom"'$' -A1 "$work/dom-zoom.xml" | grep -c 'width="1180.00"' || true)
if ! grep -q "data-zoom=\"$zoom\"" "$work/dom-zoom.xml" || [ "$shown" != "$expect_sub" ] ||
	[ "$parents" != 4 ] || [ "$full" != 1 ]; then
	echo "FAIL: zoom to $zoom: $shown frames shown (expected $expect_sub), $parents dimmed ancestors (expected 4: all, main, serve_forever, handle_request), zoomed frame at full width: $full; DOM in $work/dom-zoom.xml" >&2
	fail=1
else
	echo "ok: ?z=$zoom shows its $shown frames at full width under 4 dimmed ancestors"
fi
if [ ! -s "$work/svg_chromium.png" ]; then
	echo "FAIL: no screenshot at $work/svg_chromium.png" >&2
	fail=1
fi
[ $fail = 0 ] && echo "ok: all checks passed; screenshot: $work/svg_chromium.png"
exit $fail
