#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memspy's own memory over a long `record --subprocesses --interval` run on
# a real multi-process server: Debian's nginx (a master and WORKERS
# workers) on 127.0.0.1 under a bounded `ab` loop (REQUESTS requests at
# concurrency 4, again and again), reloaded every RELOAD seconds so that
# the master forks fresh workers and the old ones exit during the
# recording (memspy attaches to the new ones and drops the gone ones).
# memspy writes a pprof file every INTERVAL, keeping KEEP. memspy is a
# process tree itself (the coordinator, a recorder per nginx process, each
# with a watchdog): every SAMPLE seconds the script prints the sum of VmRSS
# over that whole tree, the coordinator's own VmRSS, the largest process's
# VmRSS and VmHWM, how many memspy processes run, the sum of nginx's RSS
# and how many nginx processes run, the files on disk and the newest
# file's number; then memspy's summary. Not a test: read the trend.
#
#   bash bench/interval_rss_subprocesses.sh [build-dir]   MINUTES=60 INTERVAL=60s KEEP=5
#        SAMPLE=60 RELOAD=600 WORKERS=2 REQUESTS=20000 MEMSPY_ARGS="--sample-bytes 4k"
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
MINUTES=${MINUTES:-60}
INTERVAL=${INTERVAL:-60s}
KEEP=${KEEP:-5}
SAMPLE=${SAMPLE:-60}
RELOAD=${RELOAD:-600}
WORKERS=${WORKERS:-2}
REQUESTS=${REQUESTS:-20000}
MEMSPY_ARGS=${MEMSPY_ARGS:---sample-bytes 4k}
memspy=$build/cmd/memspy
nginx=$(command -v nginx || echo /usr/sbin/nginx)
command -v ab >/dev/null || { echo "ab (apache2-utils) is needed" >&2; exit 1; }
[ -x "$nginx" ] || { echo "nginx is needed" >&2; exit 1; }
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
user=()
[ "$(id -u)" = 0 ] && user=(-g "user root;")
loader= reloader= mpid= master=
cleanup() {
	[ -n "$loader" ] && kill "$loader" 2>/dev/null || true
	[ -n "$reloader" ] && kill "$reloader" 2>/dev/null || true
	[ -n "$mpid" ] && kill -INT "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null || true
	"$nginx" -p "$work" -c "$work/nginx.conf" "${user[@]}" -s quit 2>/dev/null || true
	for _ in $(seq 100); do [ -e "$work/nginx.pid" ] || break; sleep 0.1; done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/logs" "$work/html" "$work/tmp"
head -c 20000 /dev/urandom | base64 >"$work/html/index.html"
cat >"$work/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:$port; root $work/html; }
}
EOF
"$nginx" -p "$work" -c "$work/nginx.conf" "${user[@]}"
for _ in $(seq 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.1; done
master=$(cat "$work/nginx.pid")
# shellcheck disable=SC2086
"$memspy" record --pid "$master" --subprocesses --interval "$INTERVAL" --keep "$KEEP" \
	--duration "${MINUTES}m" $MEMSPY_ARGS -o "$work/heap-{n}.pb.gz" 2>"$work/memspy.err" &
mpid=$!
until grep -q '^memspy: recording' "$work/memspy.err" 2>/dev/null; do
	kill -0 "$mpid" 2>/dev/null || { cat "$work/memspy.err"; exit 1; }
	sleep 0.2
done
( while :; do ab -q -n "$REQUESTS" -c 4 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true; sleep 1; done ) &
loader=$!
( while sleep "$RELOAD"; do "$nginx" -p "$work" -c "$work/nginx.conf" "${user[@]}" -s reload 2>/dev/null || true; done ) &
reloader=$!
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$2/status" 2>/dev/null || echo 0; }
tree_pids() { # $1 and its descendants
	local p
	echo "$1"
	for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$p"; done
}
printf '%8s %13s %13s %13s %13s %5s %13s %5s %6s %6s\n' minutes memspy_rss coordinator \
	largest_rss largest_hwm procs nginx_rss procs files newest
start=$(date +%s)
while kill -0 "$mpid" 2>/dev/null; do
	now=$(date +%s)
	mrss=0 mprocs=0 big=0 bighwm=0
	for p in $(tree_pids "$mpid"); do
		r=$(kb VmRSS "$p")
		mrss=$((mrss + r)) mprocs=$((mprocs + 1))
		[ "$r" -gt "$big" ] && big=$r bighwm=$(kb VmHWM "$p")
	done
	nrss=0 nprocs=0
	for p in $(tree_pids "$master"); do nrss=$((nrss + $(kb VmRSS "$p"))); nprocs=$((nprocs + 1)); done
	files=$(ls "$work" | grep -c '^heap-' || true)
	newest=$(ls "$work" | sed -n 's/^heap-\([0-9]*\)\.pb\.gz$/\1/p' | sort -n | tail -1)
	printf '%8.1f %9s KiB %9s KiB %9s KiB %9s KiB %5s %9s KiB %5s %6s %6s\n' \
		"$(echo "($now - $start) / 60" | bc -l)" "$mrss" "$(kb VmRSS "$mpid")" "$big" "$bighwm" \
		"$mprocs" "$nrss" "$nprocs" "$files" "${newest:--}"
	for _ in $(seq "$SAMPLE"); do
		kill -0 "$mpid" 2>/dev/null || break
		sleep 1
	done
done
rc=0
wait "$mpid" || rc=$?
mpid=
echo "memspy exited $rc; files left: $(ls "$work" | grep '^heap-' | tr '\n' ' ')"
grep -E '^memspy: (recording|interval)' "$work/memspy.err" | tail -3
sed -n '/^memspy: wrote /,$p' "$work/memspy.err"
