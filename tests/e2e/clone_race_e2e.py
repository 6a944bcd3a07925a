#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# memspy attaching while the target is inside clone() or fork().
# memspy-clone-race blocks on stdin; the line that starts its clone/fork
# loop is written the moment /proc/PID/status shows memspy as tracer, so
# the calls are in flight while memspy stops the process to install its
# probes (record) or to take its snapshot (dump). A thread stopped inside
# clone() is half-way through the call: a system call injected there took
# the call's exit, clone "failed" with ENOSYS while its child ran, glibc
# cloned again onto the same stack and the process died of SIGSEGV.
# Each round: memspy exits 0, and the target finishes its loop with every
# call checked ("ok N") and exit status 0.
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, main, skip_if_not_permitted, spawn, tracer_of  # noqa: E402


def one_round(args, n):
    target = spawn([args.target, args.mode, "2"], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    ready = target.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise Fail(f"target did not start: {ready}")
    pid = target.pid
    if args.job == "record":
        cmd = [args.memspy, "record", "--pid", str(pid), "--duration", "1s", "-o",
               os.devnull, "--format", "folded"]
    else:
        cmd = [args.memspy, "dump", "--pid", str(pid), "--json", "-o", os.devnull]
    print(f"round {n}: $ {' '.join(cmd)}", flush=True)
    m = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not tracer_of(pid) and m.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    target.stdin.write("go\n")
    target.stdin.flush()
    try:
        out, err = m.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        raise Fail("memspy did not exit within 120 s")
    for line in err.splitlines():
        print(f"  [memspy] {line}", flush=True)
    skip_if_not_permitted(m.returncode, err)
    try:
        tout, _ = target.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise Fail("the target did not finish its loop within 60 s")
    print(f"  memspy exit {m.returncode}; target exit {target.returncode}: {tout.strip()}",
          flush=True)
    if target.returncode != 0 or not tout.strip().startswith("ok "):
        raise Fail(f"round {n}: the target was harmed (exit status "
                   f"{target.returncode}, said {tout.strip()!r})")
    if m.returncode != 0:
        raise Fail(f"round {n}: memspy exited {m.returncode}")


def rounds():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--job", choices=["record", "dump"], required=True)
    ap.add_argument("--mode", choices=["threads", "fork"], required=True)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    for n in range(1, args.rounds + 1):
        one_round(args, n)
    print(f"PASS: {args.rounds} rounds of {args.job} while the target {args.mode}", flush=True)


if __name__ == "__main__":
    main(rounds)
