#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what memspy needs to build and test on Debian 12, only what is
# missing. Uses sudo when not root.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libdw-dev libelf-dev libunwind-dev libjansson-dev libzydis-dev zlib1g-dev
      libc6-dbg     # glibc's DWARF: dump reads malloc's structures from it
      gdb           # the cross-check some tests and benchmarks compare with
      chromium      # renders the flame graph SVG in a test
      protobuf-compiler  # protoc --decode_raw checks the pprof writer in a test
      golang-go golang-github-google-pprof-dev  # go tool pprof reads memspy's pprof; google/pprof symbolises it later
      debuginfod libdebuginfod1  # a local debuginfod server in a test; the client memspy loads for DEBUGINFOD_URLS
      debootstrap curl jq  # other glibc versions for the heap-walk tests (curl probes the mirror, jq reads the JSON)
      python3       # drives the record, walk and coverage end-to-end tests (not built without it)
      clang libclang-rt-14-dev  # the heap-walk libFuzzer test (clang's fuzzer runtime is only a Recommends)
      libexpat1-dev  # fuzz_output parses every flame graph it makes as XML (a strict reader)
      libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 musl-tools   # dump's foreign-allocator tests
      redis-server redis-tools nginx memcached apache2-utils)  # real servers the suite drives on 127.0.0.1 (redis-benchmark, ab)
if [ "${MEMSPY_BENCH:-0}" = 1 ]; then pkgs+=(heaptrack bc); fi  # bc: the benches' ratios

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
echo "memspy: installing ${missing[*]} (a few minutes on a new machine)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
