#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Walk mode's sampling bias, measured against the kernel's own accounting.

The target (memspy-walk-bursts) runs worker threads that do bursts of
malloc/free of a known CPU length between sleeps (or back to back). Over the
window memspy records, two shares are checked, each within Z standard
deviations of binomial counting error (sigma = sqrt(p (1 - p) / n), n = the
worker samples), never a fixed percentage:

  1. running: the share of worker samples memspy classed as running (in
     their own code, on a CPU or preempted) against the kernel's accounting
     of the same threads: (run time + run delay) / time not stopped by
     memspy, from /proc/PID/task/TID/schedstat fields 1 and 2, for the
     CPU-bound shape; between the workers' CPU time in their bursts and
     that for the bursty ones (a thread inside its sleep call is asleep);
  2. in the bursts: the share of worker samples whose stack holds
     burst_work() against the share of wall time the workers spent in it, as
     each measured with CLOCK_MONOTONIC around every burst (the 10 us
     shape may come out over-sampled up to OVER below, never under). The
     kernel's CPU time inside the bursts (the threads' CPU clocks) and the
     run share are printed beside it: on a quiet machine they meet it, on a
     loaded one the wait for a CPU separates them.

Check 2 works on memspy as it was before the running/sleeping split (--old),
which is how the bias of the old sampler is shown. Nothing here asserts on
wall-clock time: the window is whatever memspy recorded, and every figure is
a ratio of counters read over it.
"""
import argparse
import math
import os
import re
import struct
import subprocess
import sys
import time

SKIP = 77
Z = 4.0  # standard deviations: a false failure about 1 run in 15,000 per check
children = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def schedstat(pid, tid):
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


def worker_stats(path, n):
    """(bursts, cpu ns in bursts, wall ns in bursts) per worker, from the target's file."""
    with open(path, "rb") as f:
        raw = f.read(64 * n)
    return [struct.unpack_from("<qQQQ", raw, 64 * i)[1:] for i in range(n)]


def snapshot(pid, tids, stats_path):
    return (time.monotonic_ns(), [schedstat(pid, t) for t in tids],
            worker_stats(stats_path, len(tids)))


def folded(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            stack, _, val = line.rstrip("\n").rpartition(" ")
            out.append((stack.split(";"), int(val)))
    return out


def has(frames, name):
    return any(f == name or f.startswith(name + " ") or f.endswith("`" + name) for f in frames)


def accept(p_lo, p_hi, n):
    """[p_lo, p_hi] widened by Z binomial standard deviations at n samples."""
    s_lo = math.sqrt(max(p_lo * (1 - p_lo), 1.0 / n) / n)
    s_hi = math.sqrt(max(p_hi * (1 - p_hi), 1.0 / n) / n)
    return max(0.0, p_lo - Z * s_lo), min(1.0, p_hi + Z * s_hi)


UNITS = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def one_run(a, shape_name, run_no):
    burst_us, period_us, duration = SHAPES[shape_name]
    wd = os.path.join(a.workdir, "%s-%d" % (shape_name, run_no))
    os.makedirs(wd, exist_ok=True)
    stats_path = os.path.join(wd, "stats")
    t = subprocess.Popen([a.bursts, str(burst_us), str(period_us), str(a.threads), stats_path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(t)
    m = re.match(r"READY pid=(\d+) tids=([\d,]+)", t.stdout.readline())
    if not m:
        fail("the target did not say READY")
    pid, tids = int(m.group(1)), [int(x) for x in m.group(2).split(",")]
    allf = os.path.join(wd, "all.folded")
    argv = a.memspy + ["--mode", "walk", "--pid", str(pid), "-d", a.duration or duration, "--rate",
            str(a.rate), "--max-pause-share", str(a.max_pause), "-o",
            os.path.join(wd, "alloc.folded"), "--all-threads", allf, "--timeline",
            os.path.join(wd, "tl.json"), "--walk-interval", "1h", "-v"]
    if not a.old:
        argv.append("--idle")
    mem = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children.append(mem)
    err = []
    # The window opens when memspy says it is recording (its set-up is over)...
    for line in mem.stderr:
        err.append(line)
        if "recording pid" in line:
            break
    s0 = snapshot(pid, tids, stats_path)
    # ... and closes when it says it stopped recording (-v), before it unwinds
    # and writes; memspy from before that line: when it exits.
    s1 = None
    for line in mem.stderr:
        err.append(line)
        if "recording ended" in line:
            s1 = snapshot(pid, tids, stats_path)
    rc = mem.wait(timeout=120)
    if s1 is None:
        s1 = snapshot(pid, tids, stats_path)
    t.stdin.write("stop\n")
    t.stdin.flush()
    if t.wait(timeout=60) != 0:
        fail("the target did not exit cleanly")
    text = "".join(err)
    if "Operation not permitted" in text and "attach" in text:
        print("SKIP: ptrace not permitted here", file=sys.stderr)
        sys.exit(SKIP)
    if rc != 0:
        fail("memspy exited with %d:\n%s" % (rc, text))
    if a.verbose:
        print(text, file=sys.stderr)

    nthr = len(tids)
    wall = float(s1[0] - s0[0]) * nthr
    run = sum(s1[1][i][0] - s0[1][i][0] for i in range(nthr))
    wait = sum(s1[1][i][1] - s0[1][i][1] for i in range(nthr))
    bcpu = sum(s1[2][i][1] - s0[2][i][1] for i in range(nthr))
    bwall = sum(s1[2][i][2] - s0[2][i][2] for i in range(nthr))
    pm = re.search(r"stopped ([0-9.]+) (ns|us|ms|s) in all", text)
    if not pm:
        fail("memspy's summary does not say how long it stopped the target:\n" + text)
    # Every thread was stopped that long; a stop is no sampling opportunity.
    stopped = float(pm.group(1)) * UNITS[pm.group(2)] * nthr
    live = max(wall - stopped, 1.0)

    stacks = folded(allf)
    worker = [(s, v) for s, v in stacks if has(s, "worker")]
    n = sum(v for s, v in worker)
    # The tolerance follows n; below 100 a share says too little to test anything.
    if n < 100:
        fail("%s: only %d worker samples (need 100 for a meaningful share):\n%s" %
             (shape_name, n, text))
    row = {"shape": shape_name, "n": n, "ok": True}

    # 2. In the bursts, from the stacks. A stop that begins inside a burst
    # lengthens that burst's wall time by the pause, and unbiased stops begin
    # there in the share p of their instants: bursts' wall time = p (wall -
    # stopped) + p stopped, so p = bursts' wall time / wall time.
    obs = sum(v for s, v in worker if has(s, "burst_work")) / float(n)
    lo = min(1.0, bwall / wall)
    hi = min(1.0, lo * OVER.get(shape_name, 1.0))
    acc = accept(lo, hi, n)
    row.update(burst=obs, burst_acc=acc, burst_ok=acc[0] <= obs <= acc[1],
               n_burst=sum(v for s, v in worker if has(s, "burst_work")), bwall=bwall, wall=wall)
    line = ("%-10s run %d: %5d worker samples; in bursts %5.1f%% (expected %5.1f%%, "
            "accept %5.1f-%5.1f%%) %s; kernel: CPU in bursts %5.1f%%, run %5.1f%%, "
            "run+wait %5.1f%%" % (shape_name, run_no, n, 100 * obs, 100 * lo,
                                  100 * acc[0], 100 * acc[1],
                                  "ok" if row["burst_ok"] else "BIASED", 100 * bcpu / wall,
                                  100 * run / wall, 100 * (run + wait) / wall))
    row["ok"] = row["burst_ok"]

    # 1. Running, as memspy classed it, against run + run delay from schedstat.
    if not a.old:
        rm = re.search(r"([\d,]+) running and ([\d,]+) sleeping", text)
        if not rm:
            fail("memspy's summary does not count running and sleeping samples:\n" + text)
        # Count from the stacks, workers only: sleeping ones end in "[asleep in ...]".
        nrun = sum(v for s, v in worker if not s[-1].startswith("[asleep in "))
        robs = nrun / float(n)
        # memspy's pause runs from its first interrupt to its last resume: a
        # thread is stopped for part of it only, so the kernel's share of
        # runnable time lies between (run + wait) / wall and (run + wait) /
        # (wall - stopped). For the CPU-bound shape (never asleep) the
        # running share must be the runnable share. For the bursty ones a
        # thread stopped inside its sleep call is asleep, even when it had
        # been woken and waited for a CPU, or was running the call's own
        # kernel code (on this VM that is more than the bursts' CPU time):
        # the running share lies between the workers' CPU time in their
        # bursts (their own code) and run + wait. The old sampler's running
        # share was over the top: the interrupt that woke memspy also woke
        # the target's sleepers whose timer slack had begun (doc/DESIGN.md,
        # "Running or asleep").
        p_lo, p = min(1.0, (run + wait) / wall), min(1.0, (run + wait) / live)
        if period_us == 0:
            racc = accept(p_lo, p, n)
        else:
            racc = accept(min(1.0, bcpu / live), p, n)
        row.update(running=robs, run_acc=racc, run_ok=racc[0] <= robs <= racc[1])
        line += "; running %5.1f%% (kernel: run+wait %5.1f-%5.1f%%; accept %5.1f-%5.1f%%) %s" % (
            100 * robs, 100 * p_lo, 100 * p, 100 * racc[0], 100 * racc[1],
            "ok" if row["run_ok"] else "BIASED")
        row["ok"] = row["ok"] and row["run_ok"]
        # A thread inside its burst is running (its only system call, clock_gettime of
        # its CPU clock, never waits): one classed asleep had its state letter read
        # before it woke, and the registers at the stop must overrule it. Allowed: a
        # rare stop inside a brk or mmap that malloc makes (such calls can wait).
        n_in = sum(v for s, v in worker if has(s, "burst_work"))
        n_asleep = sum(v for s, v in worker
                       if has(s, "burst_work") and s[-1].startswith("[asleep in "))
        line += "; in-burst samples classed asleep: %d of %d" % (n_asleep, n_in)
        if n_asleep > 2 + n_in // 50:
            line += " TOO MANY"
            row["ok"] = False
    print(line)
    sys.stdout.flush()
    return row


# burst us, period us (0: CPU-bound), recording time. Under load, stops of
# threads that run last longer and the pause budget allows fewer of them: the
# CPU-bound shape gets more time to collect its samples.
SHAPES = {"10us-200us": (10, 200, "6s"), "1ms-10ms": (1000, 10000, "6s"),
          "cpu": (1000, 0, "10s")}

# Over-sampling a shape is allowed up to this factor of its expected share
# (plus the binomial tolerance); under-sampling never is. On an idle machine
# the 10 us shape comes out over-sampled 1.3-1.55x with 2 or more threads
# (1 thread is unbiased); it needs target threads on memspy's CPU (pinned
# apart it is gone), but how is not known: timer slack coalescing and a lead
# before each instant were measured and ruled out (doc/DESIGN.md, "Sampling
# instants"). The bound keeps what the test is
# for: the old sampler under-sampled this shape 5-20x (0.2-0.6% against
# 2.8-6%), and an over-sampling beyond 1.75x fails. Traced, the coalescing
# wakes the target's sleepers with memspy but none of them reaches a burst
# before its stop (0 of 315 samples).
OVER = {"10us-200us": 1.75}


def run_shape(a, sh):
    """Runs one shape a.runs times; returns the failed checks (empty: ok)."""
    bad = []
    rows = []
    for r in range(a.runs):
        row = one_run(a, sh, r)
        rows.append(row)
        if not row["ok"]:
            bad.append("%s run %d" % (sh, r))
    # The runs of a shape pooled: more samples, a narrower tolerance.
    n = sum(x["n"] for x in rows)
    obs = sum(x["n_burst"] for x in rows) / float(n)
    p = min(1.0, sum(x["bwall"] for x in rows) / sum(x["wall"] for x in rows))
    acc = accept(p, min(1.0, p * OVER.get(sh, 1.0)), n)
    ok = acc[0] <= obs <= acc[1]
    print("%-10s pooled: %5d worker samples; in bursts %5.1f%% (expected %5.1f%%, "
          "accept %5.1f-%5.1f%%) %s" % (sh, n, 100 * obs, 100 * p, 100 * acc[0],
                                        100 * acc[1], "ok" if ok else "BIASED"), flush=True)
    if not ok:
        bad.append("%s pooled" % sh)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True, nargs="+",
                    help="the command before --mode walk: MEMSPY record (or a memspy-walk binary)")
    ap.add_argument("--bursts", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--shape", action="append", choices=sorted(SHAPES))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--duration", help="recording time (default: per shape)")
    ap.add_argument("--max-pause", default="10")
    ap.add_argument("--old", action="store_true",
                    help="memspy from before --idle and the running/sleeping split: "
                         "check 2 only")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    bad = []
    try:
        for sh in a.shape or sorted(SHAPES):
            # A shape that fails is measured once more and counts as biased
            # only if it fails again: under heavy machine load (two CI runs
            # side by side, load ~9 on 2 cores) the 10 us shape was once seen
            # over-sampled, 6.0% of samples against 4.2% of the time. The old
            # sampler's bias (0.6% against 2.8%) fails every attempt.
            for attempt in (1, 2):
                shape_bad = run_shape(a, sh)
                if not shape_bad:
                    break
                print("%-10s attempt %d biased: %s%s" % (sh, attempt, ", ".join(shape_bad),
                      "; measuring it once more" if attempt == 1 else ""), flush=True)
            bad += shape_bad
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
    if bad:
        fail("sampling biased in %d run(s): %s" % (len(bad), ", ".join(bad)))
    print("PASS: walk bias")


if __name__ == "__main__":
    main()
