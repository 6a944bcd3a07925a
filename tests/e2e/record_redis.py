#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`memspy record` on the real redis-server (Debian's, jemalloc, no frame
pointers, partly stripped) under a bounded redis-benchmark load on 127.0.0.1:

  1. default unwinder: exit 0, the code verified byte-identical after
     detach, and the stacks reach redis's command loop (most sampled bytes
     under processCommand or processInputBuffer, stacks deeper than 4);
  2. --unwinder fp: Debian builds redis without frame pointers, so every
     stack stops at the allocator's caller; the summary must say so
     (a flame graph of one frame with no word of why was the bug);
  3. after each recording redis still answers PING and its dataset is
     intact (the key count the load left is what DBSIZE says).

Skips (77) when redis-server or redis-benchmark is missing. redis is killed
on every path: it runs in its own session, and a watchdog that outlives this
script (reading its stdin until we die) kills it.

  record_redis.py --memspy M [--port-base 17300]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77

WATCHDOG = r"""
import os, signal, sys
pid = int(sys.argv[1])
sys.stdin.read()
try:
    os.killpg(pid, signal.SIGKILL)
except OSError:
    pass
"""


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cli(port, *args):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args),
                          capture_output=True, text=True, timeout=30).stdout.strip()


def depth_and_share(folded, names):
    """(weighted mean depth, share of weight whose stack holds one of names)."""
    tot = deep = under = 0
    with open(folded) as f:
        for line in f:
            stack, _, val = line.rstrip("\n").rpartition(" ")
            v = int(val)
            frames = stack.split(";")
            tot += v
            deep += v * len(frames)
            if any(n in frames for n in names):
                under += v
    if not tot:
        return 0.0, 0.0
    return deep / tot, under / tot


def record(a, d, pid, port, name, extra):
    out = os.path.join(d, name + ".folded")
    # A bounded load while memspy records: redis-benchmark ends by itself.
    load = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                             "-n", "400000", "-c", "4", "-t", "set,get,lpush", "-d", "200",
                             "-r", "5000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        p = subprocess.run([a.memspy, "record", "--pid", str(pid), "-d", "3", "-o", out] + extra,
                           capture_output=True, text=True, timeout=120)
    finally:
        load.kill()
        load.wait()
    if p.returncode != 0:
        fail("memspy record %s exited %d:\n%s" % (" ".join(extra), p.returncode, p.stderr))
    if "byte-identical" not in p.stderr:
        fail("memspy record %s did not verify the code after detach:\n%s" %
             (" ".join(extra), p.stderr))
    if cli(port, "ping") != "PONG":
        fail("redis does not answer PING after memspy record %s" % " ".join(extra))
    return out, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--port-base", type=int, default=17300)
    a = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            print("SKIP: %s not installed" % tool, file=sys.stderr)
            sys.exit(SKIP)
    port = next((p for p in range(a.port_base, a.port_base + 100) if port_free(p)), None)
    if port is None:
        print("SKIP: no free port in %d-%d" % (a.port_base, a.port_base + 99), file=sys.stderr)
        sys.exit(SKIP)
    d = tempfile.mkdtemp(prefix="memspy-redis-")
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--daemonize", "no",
                            "--dir", d, "--logfile", os.path.join(d, "redis.log")],
                           start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    dog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(srv.pid)],
                           stdin=subprocess.PIPE, start_new_session=True)
    try:
        for _ in range(100):
            if cli(port, "ping") == "PONG":
                break
            time.sleep(0.1)
        else:
            fail("redis-server did not start on port %d" % port)

        out, err = record(a, d, srv.pid, port, "default", [])
        keys = cli(port, "dbsize")
        depth, share = depth_and_share(out, ("processCommand", "processInputBuffer"))
        print("default unwinder: weighted depth %.1f, %.0f%% of bytes under the command loop"
              % (depth, 100 * share))
        if depth <= 4 or share < 0.5:
            fail("stacks do not reach redis's command loop (depth %.1f, share %.2f):\n%s" %
                 (depth, share, err))
        if "one frame" in err:
            fail("the default unwinder's stacks were called one frame deep:\n" + err)

        out, err = record(a, d, srv.pid, port, "fp", ["--unwinder", "fp"])
        depth, _ = depth_and_share(out, ())
        print("--unwinder fp: weighted depth %.1f" % depth)
        if depth <= 1.5 and "built without frame pointers" not in err:
            fail("--unwinder fp gave one-frame stacks and the summary says nothing:\n" + err)
        if depth > 1.5:
            print("note: this redis has frame pointers; the warning is not exercised")
        if int(cli(port, "dbsize") or -1) < int(keys or 0):
            fail("redis lost keys across the recordings: %s then %s" %
                 (keys, cli(port, "dbsize")))
        print("PASS: record on redis-server")
    finally:
        try:
            os.killpg(srv.pid, signal.SIGKILL)
        except OSError:
            pass
        srv.wait()
        dog.stdin.close()
        dog.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
