#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The heap-walk exactness check on another glibc: builds heap_target against
# a Debian root's glibc, runs it inside that root (own mount namespace, as in
# a container), and compares `memspy dump --json` from the host with the
# target's own mallinfo, with libc's debug info and with --no-debuginfo.
#
# usage: run-dump-check.sh [--memspy PATH] [--blocks N] [--chroot] [--target-only] SUITE
#   --memspy PATH   memspy binary (default: $MEMSPY, else ../../build*/cmd/memspy)
#   --blocks N      blocks per thread in the target (default 3000)
#   --chroot        plain chroot instead of a private mount namespace
#   --target-only   build, run and check the target, skip memspy (development)
# env:   MEMSPY_GLIBC_VARIANTS="name|tunables ..." replaces the three settings;
#        MEMSPY_CHECK_KEEP=1 keeps the work dir (binaries, dumps) for debugging.
# Exit: 0 all fields equal, 1 a mismatch or failure, 77 mirror unreachable.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
me=run-dump-check
memspy=${MEMSPY:-}
blocks=3000
mode=pivot
target_only=0
while [ $# -gt 1 ]; do
	case $1 in
	--memspy) memspy=$2; shift 2 ;;
	--blocks) blocks=$2; shift 2 ;;
	--chroot) mode=chroot; shift ;;
	--target-only) target_only=1; shift ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || {
	sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 64
}
suite=$1

log() { printf '%s[%s]: %s\n' "$me" "$suite" "$*" >&2; }
fail() {
	log "FAIL: $1"
	[ $# -gt 1 ] && printf '%s[%s]: hint: %s\n' "$me" "$suite" "$2" >&2
	exit 1
}

pid=
work=
cleanup() {
	{ exec 3>&- 4<&-; } 2>/dev/null
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	if [ -n "$work" ] && [ -n "${MEMSPY_CHECK_KEEP:-}" ]; then
		log "kept $work (MEMSPY_CHECK_KEEP)"
	elif [ -n "$work" ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 1' INT TERM HUP

t_start=$(date +%s)

# ---- 1. the root (cached) -------------------------------------------------
root=$("$here/make-root.sh" "$suite" | tail -n 1)
rc=${PIPESTATUS[0]}
[ "$rc" = 77 ] && exit 77
[ "$rc" = 0 ] && [ -d "$root" ] || fail "make-root.sh $suite exited $rc"
root_glibc=$(sed -n 's/^glibc=//p' "$root/.memspy-root-stamp")

if [ "$target_only" = 0 ]; then
	if [ -z "$memspy" ]; then
		for b in "$here"/../../build*/cmd/memspy "$here"/../../build*/memspy; do
			[ -x "$b" ] && memspy=$b && break
		done
	fi
	[ -n "$memspy" ] && [ -x "$memspy" ] ||
		fail "no memspy binary (looked at \$MEMSPY and $here/../../build*/memspy)" \
			"pass --memspy PATH or build memspy first"
fi

# The work dir lives inside the root so the target can be exec'd from there.
# Runs that were SIGKILLed (ctest timeout) leave theirs; a run takes minutes.
find "$root/tmp" -maxdepth 1 -name 'memspy-check.*' -mmin +60 -exec rm -rf {} + 2>/dev/null
work=$(mktemp -d "$root/tmp/memspy-check.XXXXXX") || fail "mktemp in $root/tmp"
inside=${work#"$root"}

# ---- 2. build -------------------------------------------------------------
# Host compiler, the root's glibc. --sysroot alone is not enough with
# Debian's gcc: its GCC-relative library dirs (/usr/lib/x86_64-linux-gnu) are
# not prefixed with the sysroot, so crt1.o and libc.so would come from the
# host (-B and -L fix that), and the root's absolute symlinks (bullseye's
# libpthread.so -> /lib/...) would resolve on the host: those are replaced
# by links resolved inside the root.
cc=${CC:-cc}
mkdir -p "$work/ld"
in_root() { # PATH inside the root, all symlinks resolved inside the root
	printf '%s%s' "$root" "$(chroot "$root" readlink -f "$1")"
}
for lib in libc.so libpthread.so libdl.so librt.so libm.so; do
	f=$root/usr/lib/x86_64-linux-gnu/$lib
	if [ -L "$f" ]; then
		ln -s "$(in_root "/usr/lib/x86_64-linux-gnu/$lib")" "$work/ld/$lib"
	elif [ -f "$f" ] && ! head -c 4 "$f" | grep -q ELF; then
		# A linker script: resolve each absolute path inside the root. ld
		# prefixes them with the sysroot again (the script lives inside it).
		# Its comments hold no directives: keep the directive lines only.
		out=
		for tok in $(grep -E '^[[:space:]]*(GROUP|INPUT|OUTPUT_FORMAT)' "$f"); do
			case $tok in
			/*) out+=" $(chroot "$root" readlink -f "$tok")" ;;
			*) out+=" $tok" ;;
			esac
		done
		printf '%s\n' "$out" >"$work/ld/$lib"
	fi
done
multi=$root/usr/lib/x86_64-linux-gnu
t0=$(date +%s)
if ! env -u LIBRARY_PATH -u CPATH -u C_INCLUDE_PATH -u GCC_EXEC_PREFIX \
	"$cc" --sysroot="$root" -B"$multi/" -L"$work/ld" -L"$multi" \
	-O2 -g -pthread -Wall -o "$work/heap_target" "$here/heap_target.c" \
	-Wl,--trace >"$work/link.trace" 2>"$work/build.err"; then
	cat "$work/build.err" >&2
	fail "building heap_target against the $suite root failed" \
		"the doc (doc/TESTING-glibc-versions.md) describes the fallback: gcc in the root and a chroot build"
fi
# Every glibc piece must have come from the root, not from the host.
bad=$(grep -E '(crt1|crti|crtn)\.o$|/lib(c|pthread|dl|rt|m)(\.so[.0-9]*|_nonshared\.a|\.a)$|ld-linux|/ld-[0-9.]*\.so' \
	"$work/link.trace" | grep -v -e "^$root/" -e "^$work/ld/" || true)
[ -z "$bad" ] || fail "heap_target linked host glibc files: $(echo $bad)"
need=$(objdump -T "$work/heap_target" | grep -o 'GLIBC_[0-9.]*[0-9]' | sort -uV | tail -n 1)
[ "$(printf '%s\n%s\n' "${need#GLIBC_}" "$root_glibc" | sort -V | tail -n 1)" = "$root_glibc" ] ||
	fail "heap_target needs $need but the root has glibc $root_glibc"
if ! "$cc" -O2 -Wall -o "$work/enter_root" "$here/enter_root.c" 2>"$work/build.err"; then
	cat "$work/build.err" >&2
	fail "building enter_root failed"
fi
log "built heap_target with host $("$cc" -dumpfullversion 2>/dev/null || echo cc) against glibc $root_glibc (needs up to $need) in $(($(date +%s) - t0)) s"

# ---- 3-5. one target per malloc setting ------------------------------------
# The issue's exactness test: default settings, tcache off, and a low mmap
# threshold (tunables exist in every glibc since 2.26).
variants=("default|" "tcache_count=0|glibc.malloc.tcache_count=0"
	"mmap_threshold=4096|glibc.malloc.mmap_threshold=4096")
[ -n "${MEMSPY_GLIBC_VARIANTS:-}" ] && read -r -a variants <<<"$MEMSPY_GLIBC_VARIANTS"
fields=(arena ordblks smblks hblks hblkhd fsmblks uordblks fordblks keepcost)
status=0
summary=()

# run_variant NAME TUNABLES: start the target, check where its libc comes
# from, dump it twice, compare, end it. Sets status=1 on any failure.
run_variant() {
	local vname=$1 tunables=$2 line hdr= mi_json= got_ready=0 in_mi=0 f a b mark
	local run_flag= libc_line libc_path libc_range maps_path id_root id_proc id_mapf id_host
	local build_id dbg host_note tgt_glibc variant rc ms src k v trc vstatus=0
	local -A want=() got_dbg=() got_nodbg=()

	rm -f "$work/in" "$work/out"
	mkfifo "$work/in" "$work/out" || fail "mkfifo in $work"
	[ "$mode" = chroot ] && run_flag=--chroot
	# Default means GLIBC_TUNABLES unset: even an empty one changes the heap
	# on glibc <= 2.32 (ld.so sbrk()s a copy, so sbrk_base is not [heap]'s start).
	local -a tenv=(env -u GLIBC_TUNABLES)
	[ -n "$tunables" ] && tenv=(env "GLIBC_TUNABLES=$tunables")
	"${tenv[@]}" "$work/enter_root" $run_flag "$root" "$inside/heap_target" \
		"$blocks" <"$work/in" >"$work/out" 2>"$work/target.err" &
	pid=$!
	exec 3>"$work/in" 4<"$work/out"
	# The handshake: the target prints its figures and READY, then waits on stdin.
	local seen=
	while IFS= read -r -t 300 -u 4 line; do
		seen+="    $line"$'\n'
		case $line in
		memspy-heap-target*) hdr=$line ;;
		MALLINFO) in_mi=1 ;;
		'{'*) mi_json=$line ;;
		READY) got_ready=1; break ;;
		*) [ "$in_mi" = 1 ] && want[${line%% *}]=${line#* } ;;
		esac
	done
	if [ "$got_ready" != 1 ]; then
		printf '%s' "$seen" >&2
		sed 's/^/    /' "$work/target.err" >&2
		fail "heap_target (pid $pid, $vname) did not get ready (exited or 300 s without READY)"
	fi
	log "[$vname] target: $hdr${tunables:+ GLIBC_TUNABLES=$tunables}"
	tgt_glibc=$(printf '%s\n' "$hdr" | sed -n 's/.* glibc=\([^ ]*\).*/\1/p')
	[ "$tgt_glibc" = "$root_glibc" ] ||
		fail "the target runs glibc $tgt_glibc, not the root's $root_glibc"
	for f in "${fields[@]}"; do
		[ -n "${want[$f]:-}" ] || fail "the target did not print mallinfo field $f"
		[ "$(jq -r ".$f" <<<"$mi_json" 2>/dev/null)" = "${want[$f]}" ] ||
			fail "the target's JSON line disagrees with its $f line: $mi_json"
	done

	# Its libc must be the root's, named as the target's namespace names it.
	libc_line=$(grep -m1 -E '/libc(\.so\.6|-[0-9.]+\.so)$' "/proc/$pid/maps") ||
		fail "no libc mapping in /proc/$pid/maps"
	libc_path=/${libc_line#*/}
	libc_range=${libc_line%% *}
	maps_path=$libc_path
	# Under plain chroot the kernel prints the path from the reader's root (ours).
	[ "$mode" = chroot ] && libc_path=${libc_path#"$root"}
	id_root=$(stat -L -c '%d:%i' "$root$libc_path" 2>/dev/null)
	id_proc=$(stat -L -c '%d:%i' "/proc/$pid/root$libc_path" 2>/dev/null)
	id_mapf=$(stat -L -c '%d:%i' "/proc/$pid/map_files/$libc_range" 2>/dev/null)
	id_host=$(stat -L -c '%d:%i' "$libc_path" 2>/dev/null || echo none)
	[ -n "$id_proc" ] && [ "$id_proc" = "$id_root" ] && [ "$id_mapf" = "$id_root" ] ||
		fail "libc $libc_path of pid $pid: /proc/PID/root gives ${id_proc:-nothing}, map_files ${id_mapf:-nothing}, the root's file is ${id_root:-missing}"
	if [ "$mode" = pivot ]; then
		case $maps_path in
		"$root"/*) fail "maps shows the host path $maps_path: the target is not in its own mount namespace" ;;
		esac
		[ "$id_host" != "$id_root" ] || fail "host $libc_path is the root's file: nothing container-like tested"
	fi
	build_id=$(readelf -n "$root$libc_path" | sed -n 's/.*Build ID: //p')
	dbg=$root/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
	[ -f "$dbg" ] || fail "no debug file $dbg for libc build-id $build_id" \
		"libc6-dbg missing from the root? rm the cache and rerun make-root.sh"
	host_note="the host's $libc_path is another file"
	[ "$id_host" = none ] && host_note="$libc_path does not exist on the host"
	[ "$mode" = chroot ] && host_note="chroot: maps shows the host path $maps_path"
	if [ "$vname" = "${variants[0]%%|*}" ]; then
		log "libc in maps: $maps_path ($host_note); /proc/$pid/root$libc_path and map_files are the root's; build-id $build_id, debug file in the root: ${dbg#"$root"}"
	fi

	if [ "$target_only" = 1 ]; then
		printf '%-10s %14s   (glibc %s, %s, %s)\n' field target "$root_glibc" "$suite" "$vname"
		for f in "${fields[@]}"; do printf '%-10s %14s\n' "$f" "${want[$f]}"; done
	else
		for variant in debuginfo no-debuginfo; do
			local out=$work/dump-$vname-$variant.json err=$work/dump-$vname-$variant.err
			local -a args=(dump --pid "$pid" --json -o "$out")
			[ "$variant" = no-debuginfo ] && args+=(--no-debuginfo)
			# The leak scan on this glibc: the target leaked exactly ${want[leaked]} blocks.
			[ "$variant" = debuginfo ] && args+=(--leaks)
			t0=$(date +%s%N)
			# Bounded: a hung memspy must not hold the target stopped until
			# ctest's timeout. SIGTERM first (memspy detaches), then SIGKILL.
			timeout -k 10 300 "$memspy" "${args[@]}" 2>"$err"
			rc=$?
			[ "$rc" = 124 ] && log "[$vname] memspy dump did not finish in 300 s"
			ms=$((($(date +%s%N) - t0) / 1000000))
			if [ "$rc" != 0 ] || ! jq -e . "$out" >/dev/null 2>&1; then
				sed 's/^/    /' "$err" >&2
				log "[$vname] memspy ${args[*]} exited $rc"
				vstatus=1
				# A partial report (exit 1) still has totals and errors: show them.
				jq -e . "$out" >/dev/null 2>&1 || continue
				jq -c '.errors[:5][]?' "$out" | sed 's/^/    error: /' >&2
			fi
			src=$(jq -r '[.layout_source // .glibc.layout_source // "?", .symbol_source // .glibc.symbol_source // "?"] | join("/")' "$out")
			log "[$vname] memspy dump ($variant): exit $rc, ${ms} ms, layout/symbols from $src"
			# memspy must have read the root's libc, not the host file at that path.
			local jb jv
			jb=$(jq -r '.build_id // empty' "$out")
			jv=$(jq -r '.glibc_version // empty' "$out")
			if [ "$jb" != "$build_id" ] || [ "$jv" != "$root_glibc" ]; then
				log "[$vname] memspy read libc build-id '${jb}' glibc '${jv}'; the target's is $build_id glibc $root_glibc"
				vstatus=1
			fi
			case $variant/$src in
			debuginfo/dwarf/dwarf) ;;
			debuginfo/*) log "[$vname] debug info is in the root, but memspy did not use it ($src)"; vstatus=1 ;;
			no-debuginfo/dwarf/* | no-debuginfo/*/dwarf) log "[$vname] --no-debuginfo still used DWARF ($src)"; vstatus=1 ;;
			esac
			if [ "$variant" = debuginfo ]; then
				local lk
				lk=$(jq -r '.leaks.leaked.count // "missing"' "$out")
				if [ "$lk" = missing ] || [ "$lk" -lt $((want[leaked] - 5)) ] ||
					[ "$lk" -gt $((want[leaked] + 5)) ]; then
					log "[$vname] dump --leaks found $lk leaked allocations; the target leaked ${want[leaked]} (5 either way allowed)"
					vstatus=1
				else
					log "[$vname] dump --leaks: $lk leaked (the target leaked ${want[leaked]}), $(jq -r '.leaks.unreferenced.count' "$out") unreferenced"
				fi
			fi
			# The nine mallinfo2 fields, wherever the schema keeps the totals.
			while read -r k v; do
				if [ "$variant" = debuginfo ]; then got_dbg[$k]=$v; else got_nodbg[$k]=$v; fi
			done < <(jq -r '(.mallinfo2 // .mallinfo // .totals.mallinfo // .total.mallinfo // {}) | to_entries[] | "\(.key) \(.value)"' "$out")
		done
		printf '\n%-10s %14s %14s %14s   (glibc %s, %s, %s)\n' field target "dump" "dump --no-dbg" \
			"$root_glibc" "$suite" "$vname"
		for f in "${fields[@]}"; do
			a=${got_dbg[$f]:-missing}
			b=${got_nodbg[$f]:-missing}
			mark=
			[ "$a" = "${want[$f]}" ] && [ "$b" = "${want[$f]}" ] || { mark="  <-- MISMATCH"; vstatus=1; }
			printf '%-10s %14s %14s %14s%s\n' "$f" "${want[$f]}" "$a" "$b" "$mark"
		done
		echo
	fi

	# The target must come out unharmed: running, untraced, and it exits 0
	# once stdin closes.
	local st tracer
	st=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)
	tracer=$(sed -n 's/^TracerPid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)
	if [ "${tracer:-0}" != 0 ] || [ "${st:0:1}" = T ] || [ "${st:0:1}" = t ]; then
		log "[$vname] after memspy the target is '$st' with TracerPid $tracer (left stopped or traced)"
		vstatus=1
	fi
	exec 3>&-
	if ! timeout 60 tail --pid="$pid" -f /dev/null; then
		log "[$vname] heap_target did not exit within 60 s of its stdin closing (state: $(sed -n 's/^State:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null))"
		kill -KILL "$pid" 2>/dev/null
		vstatus=1
	fi
	wait "$pid"
	trc=$?
	exec 4<&-
	pid=
	[ "$trc" = 0 ] || { log "[$vname] heap_target exited $trc after memspy (want 0)"; vstatus=1; }
	summary+=("$vname:$([ "$vstatus" = 0 ] && echo ok || echo FAIL)")
	[ "$vstatus" = 0 ] || status=1
}

for v in "${variants[@]}"; do
	run_variant "${v%%|*}" "${v#*|}"
done
if [ "$status" = 0 ]; then
	log "PASS (${summary[*]}) in $(($(date +%s) - t_start)) s"
else
	log "FAIL (${summary[*]}) in $(($(date +%s) - t_start)) s"
fi
exit "$status"
