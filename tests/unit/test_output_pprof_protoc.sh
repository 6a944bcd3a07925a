#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The pprof writer checked by an independent decoder: protoc --decode_raw must
# parse the gunzipped file, with one sample per stack of the input and Go's
# heap sample types in the string table.
#   test_output_pprof_protoc.sh RENDER IN.folded WORK_DIR
set -euo pipefail
render=$1 in=$2 work=$3
if ! command -v protoc >/dev/null; then
	echo "SKIP: protoc is not installed (scripts/install-deps.sh installs protobuf-compiler)"
	exit 77
fi
mkdir -p "$work"
"$render" -f pprof -t "memspy record --pid 4242" "$in" "$work/p.pb.gz"
gzip -dc "$work/p.pb.gz" >"$work/p.pb"
if ! protoc --decode_raw <"$work/p.pb" >"$work/p.txt" 2>"$work/protoc.err"; then
	echo "FAIL: protoc --decode_raw cannot parse $work/p.pb: $(cat "$work/protoc.err")" >&2
	exit 1
fi
fail=0
stacks=$(grep -cv '^#' "$in")
samples=$(grep -c '^2 {' "$work/p.txt" || true)
if [ "$samples" != "$stacks" ]; then
	echo "FAIL: $samples samples in the profile, $stacks stacks in $in" >&2
	fail=1
fi
for s in alloc_objects alloc_space count bytes space main malloc "memspy record --pid 4242"; do
	if ! grep -qx "6: \"$s\"" "$work/p.txt"; then
		echo "FAIL: string \"$s\" missing from the string table" >&2
		fail=1
	fi
done
[ $fail = 0 ] && echo "ok: protoc decodes $samples samples and the Go heap sample types"
exit $fail
