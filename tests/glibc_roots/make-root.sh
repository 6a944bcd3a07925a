#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Creates once, then reuses, a minimal Debian root (debootstrap minbase plus
# libc6-dev and libc6-dbg) so memspy's heap walk can be tested on its glibc.
#
# usage: make-root.sh SUITE [DIR]
#   SUITE  bullseye (glibc 2.31), trixie (glibc 2.41), or another Debian suite
#   DIR    where the root goes; default ${MEMSPY_ROOTS_CACHE:-/var/cache/memspy-glibc-roots}/SUITE
# env:   MEMSPY_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#        MEMSPY_DEBIAN_KEYRING (default /usr/share/keyrings/debian-archive-keyring.gpg)
# Prints progress on stderr and the root's path as the last line of stdout.
# Exit: 0 ready, 77 mirror unreachable (the only skip), 1 failed, 64 usage.
set -euo pipefail

me=make-root
log() { printf '%s: %s\n' "$me" "$*" >&2; }
die() {
	log "error: $1"
	[ $# -gt 1 ] && printf '%s: hint: %s\n' "$me" "$2" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || {
	echo "usage: $0 SUITE [DIR]" >&2
	exit 64
}
suite=$1
case $suite in
*[!a-z0-9-]* | "") echo "$me: bad suite name '$suite'" >&2; exit 64 ;;
esac
cache=${MEMSPY_ROOTS_CACHE:-/var/cache/memspy-glibc-roots}
dir=${2:-$cache/$suite}
mirror=${MEMSPY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=${MEMSPY_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
# Bump when the package set or the layout changes, so old caches are rebuilt.
stamp_version=1
packages=libc6-dev,libc6-dbg
stamp=$dir/.memspy-root-stamp

# The glibc each supported suite must carry: a root with anything else would
# test the wrong thing silently.
case $suite in
bullseye) want_glibc=2.31 ;;
trixie) want_glibc=2.41 ;;
*) want_glibc= ;;
esac

stamp_ok() {
	[ -f "$stamp" ] && grep -qx "stamp_version=$stamp_version" "$stamp" &&
		grep -qx "packages=$packages" "$stamp"
}

if stamp_ok; then
	log "$suite root cached at $dir ($(grep '^glibc=' "$stamp" | cut -d= -f2-))"
	echo "$dir"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root (uid is $(id -u))" \
	"run the glibc_versions tests as root, or create the root once as root: sudo $0 $suite"
command -v debootstrap >/dev/null || die "debootstrap is not installed" \
	"run scripts/install-deps.sh (or apt-get install debootstrap)"
[ -r "$keyring" ] || die "keyring $keyring not readable" \
	"apt-get install debian-archive-keyring, or set MEMSPY_DEBIAN_KEYRING"

mkdir -p "$(dirname "$dir")"
# Two runs (two ctest jobs, two engineers) must not debootstrap into the same
# directory at once; the second waits and then finds the stamp.
exec 9>"$dir.lock"
if ! flock -n 9; then
	log "another run is creating $dir, waiting for it"
	flock 9
fi
if stamp_ok; then
	log "$suite root cached at $dir (created by the run we waited for)"
	echo "$dir"
	exit 0
fi

t0=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/memspy-root-$suite.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The only skip: the mirror cannot be reached. Anything else is a failure.
log "checking $mirror for $suite (10 s timeout)"
if ! curl -fsS --max-time 10 -o "$tmp/InRelease" "$mirror/dists/$suite/InRelease" 2>"$tmp/curl.err"; then
	log "SKIP: cannot fetch $mirror/dists/$suite/InRelease: $(tr '\n' ' ' <"$tmp/curl.err")"
	log "hint: the glibc-version tests need network access to a Debian mirror; set MEMSPY_DEBIAN_MIRROR to a reachable one"
	exit 77
fi

# Check the signature ourselves first so a stale keyring gives a clear answer
# instead of debootstrap's "Release signed by unknown key". Verification stays
# on: debootstrap checks it again with the same keyring.
if ! gpgv --keyring "$keyring" "$tmp/InRelease" >"$tmp/gpgv.out" 2>&1; then
	sed 's/^/    /' "$tmp/gpgv.out" >&2
	die "$suite's InRelease is not signed by a key in $keyring" \
		"the host's debian-archive-keyring is too old for $suite: install a newer one (e.g. from bookworm-updates/backports), or point MEMSPY_DEBIAN_KEYRING at a keyring holding the $suite archive keys"
fi
log "InRelease signature good ($(grep -o 'using [A-Z]* key [0-9A-F]*' "$tmp/gpgv.out" | head -1))"

rm -rf "$dir.new"
log "debootstrap --variant=minbase --include=$packages $suite (log: $dir.log)"
if ! debootstrap --variant=minbase --include="$packages" --keyring="$keyring" \
	"$suite" "$dir.new" "$mirror" >"$dir.log" 2>&1; then
	tail -n 15 "$dir.log" | sed 's/^/    /' >&2
	rm -rf "$dir.new"
	if grep -q 'unknown key\|NO_PUBKEY' "$dir.log"; then
		die "debootstrap $suite: Release signed by an unknown key" \
			"install a newer debian-archive-keyring or set MEMSPY_DEBIAN_KEYRING"
	fi
	die "debootstrap $suite failed (full log: $dir.log)" \
		"a failed download retries cleanly: run $0 $suite again"
fi
t1=$(date +%s)
log "debootstrap done in $((t1 - t0)) s"

# Downloaded packages are not needed once installed.
rm -rf "$dir.new"/var/cache/apt/archives/*.deb

# What we got must be what the tests claim to test.
libc=$(ls "$dir.new"/usr/lib/x86_64-linux-gnu/libc.so.6 "$dir.new"/lib/x86_64-linux-gnu/libc.so.6 2>/dev/null | head -1) ||
	true
[ -n "$libc" ] || die "no libc.so.6 in the new $suite root"
banner=$(grep -a -o -m1 'GNU C Library ([^)]*) [a-z ]*release version [0-9.]*' "$libc" | head -1) || true
glibc=$(printf '%s\n' "$banner" | sed -n 's/.*release version \([0-9]*\.[0-9]*\).*/\1/p')
[ -n "$glibc" ] || die "cannot read the glibc version from $libc"
if [ -n "$want_glibc" ] && [ "$glibc" != "$want_glibc" ]; then
	die "$suite root has glibc $glibc, expected $want_glibc (left in $dir.new)"
fi
dbgver=$(chroot "$dir.new" dpkg-query -W -f='${Version}' libc6-dbg 2>/dev/null) ||
	die "libc6-dbg is not installed in the $suite root"
libcver=$(chroot "$dir.new" dpkg-query -W -f='${Version}' libc6)
[ "$dbgver" = "$libcver" ] || die "libc6 $libcver and libc6-dbg $dbgver differ in the $suite root"

{
	echo "stamp_version=$stamp_version"
	echo "suite=$suite"
	echo "packages=$packages"
	echo "glibc=$glibc"
	echo "libc6=$libcver"
	echo "banner=$banner"
	echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "seconds=$((t1 - t0))"
} >"$dir.new/.memspy-root-stamp"

rm -rf "$dir"
mv "$dir.new" "$dir"
log "$suite root ready at $dir: glibc $glibc (libc6 $libcver), $(du -sh "$dir" | cut -f1), $(($(date +%s) - t0)) s in all"
echo "$dir"
