#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs dependencies, builds memspy, starts the bundled demo service, and
# runs memspy's two jobs on it: an allocation flame graph and a heap dump.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMSPY_SANITIZE=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
out=demo-out
mkdir -p "$out"

fifo=$(mktemp -u)
mkfifo "$fifo"
./build/tests/targets/memspy-demo 120 >"$fifo" &
demo=$!
trap 'kill $demo 2>/dev/null; rm -f "$fifo"' EXIT
read -r ready <"$fifo"   # "memspy-demo: pid N ready": no sleep, a handshake
echo "$ready"

./build/cmd/memspy record --pid "$demo" --duration 5s -o "$out/flame.svg"
./build/cmd/memspy record --pid "$demo" --duration 5s --live -o "$out/leaks.svg"
./build/cmd/memspy dump --pid "$demo" --json -o "$out/heap.json" --svg "$out/heap.svg"
./build/cmd/memspy dump --pid "$demo"

echo
echo "flame graph: $PWD/$out/flame.svg   (bytes allocated; open it in a browser: click to zoom, Ctrl-F to search)"
echo "leak view:   $PWD/$out/leaks.svg   (bytes allocated during the recording and still live at its end)"
echo "heap dump:   $PWD/$out/heap.json"
echo "heap view:   $PWD/$out/heap.svg   (the heap by arena and type, leaked parts in red)"
