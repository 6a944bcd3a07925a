#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# `memspy record --interval` against memspy-interval-leak, which leaks on
# command at a known stack (grow_cache -> leak_block) and says when each
# batch began and ended (CLOCK_REALTIME ns).
#   diff     pprof files, one a second: `go tool pprof -diff_base A B` shows
#            leak_block on top, grown by what the target leaked between the
#            two files' ends (their time_nanos + duration_nanos), within
#            what Poisson byte sampling leaves out 1 time in 10,000
#   keep     --keep 2 leaves exactly the last 2 files, and nothing temporary
#   formats  svg, folded and speedscope per interval, each file valid; the
#            folded live view grows by the batch on the leaking stack
#   usage    bad patterns and options are usage errors (64) that say why
#   probe-free  --live --probe my_alloc --probe-free my_free: the pool blocks
#            still live are what the target says (exactly with --exact
#            --count, within the 1-in-10,000 sampling bound sampled); without --probe-free memspy
#            warns, and counts the freed blocks as live
import argparse
import gzip
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_e2e import (SKIP, Fail, LineReader, check_output_valid, kill,  # noqa: E402
                        parse_folded, text_check)

# Blocks many times the mean are sampled nearly always (missed with probability
# exp(-96000/8192) = 8e-6): a batch is a few dozen samples, which a loaded
# machine's memspy drains in time, and the estimate is within one block of the
# truth but 1 time in 10,000 or less.
LEAK_BYTES = 96000
MEAN = 8192
BATCHES = (40, 60)
INTERVAL_LINE = re.compile(r"^memspy: interval (\d+), .* -> (\S+): ")


class Session:
    """A fresh target, and memspy recording it with opts; every path kills both."""

    def __init__(self, args, opts):
        self.args = args
        self.target = self.memspy = None
        self.target = subprocess.Popen([args.target, str(LEAK_BYTES)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, bufsize=1)
        self.tout = LineReader(self.target.stdout, "target")
        ready = self.tout.wait_for(lambda l: " ready" in l, 30, "the target's 'ready'")
        self.pid = int(re.search(r"pid (\d+) ready", ready).group(1))
        cmd = [args.memspy, "record", "--pid", str(self.pid)] + opts
        print("$ " + " ".join(cmd), flush=True)
        self.memspy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True)
        self.merr = LineReader(self.memspy.stderr, "memspy")
        try:
            self.merr.wait_for(lambda l: l.startswith("memspy: recording pid"), 90,
                               "memspy's 'recording' line")
        except Fail:
            self.memspy.wait(timeout=30)
            text = "\n".join(self.merr.lines)
            if self.memspy.returncode == 2 and ("not permitted" in text or
                                                "ptrace_scope" in text):
                print("SKIP: ptrace is not permitted here", flush=True)
                self.close()
                sys.exit(SKIP)
            raise

    def command(self, line, answer):
        self.target.stdin.write(line + "\n")
        self.target.stdin.flush()
        return self.tout.wait_for(lambda l: l.startswith(answer), 30,
                                  f"the target's answer to {line!r}")

    def leak(self, n):
        """Leaks n blocks; returns (t0, t1) of the batch, CLOCK_REALTIME ns."""
        f = self.command(f"leak {n}", "leaked ").split()
        return int(f[3]), int(f[4])

    def next_file(self, timeout=30):
        """Waits for memspy's next interval line; returns (number, path)."""
        line = self.merr.wait_for(lambda l: INTERVAL_LINE.match(l) is not None, timeout,
                                  "memspy's next interval line")
        m = INTERVAL_LINE.match(line)
        return int(m.group(1)), m.group(2)

    def stop(self, expect_rc=0, interrupt=True):
        """SIGINT to memspy (or waits for its end); checks the target is unharmed; quits it."""
        if interrupt and self.memspy.poll() is None:
            self.memspy.send_signal(signal.SIGINT)
        rc = self.memspy.wait(timeout=120)
        self.merr.t.join(5)
        if rc != expect_rc:
            raise Fail(f"memspy exited {rc}, expected {expect_rc}")
        if self.target.poll() is not None:
            raise Fail(f"the target died during the recording: status {self.target.returncode}")
        text_check(self.pid)
        self.target.stdin.write("quit\n")
        self.target.stdin.flush()
        if self.target.wait(timeout=30) != 0:
            raise Fail(f"target exited {self.target.returncode}")
        return self.merr.lines

    def close(self):
        kill(self.memspy)
        kill(self.target)


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def pprof_times(path):
    """(time_nanos, time_nanos + duration_nanos) of a pprof file: its interval (realtime ns)."""
    b = gzip.open(path).read()
    i = 0
    fields = {}
    while i < len(b):
        key, i = varint(b, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
            fields[field] = v
        elif wt == 2:
            n, i = varint(b, i)
            i += n
        else:
            raise Fail(f"{path}: unexpected wire type {wt}")
    if 9 not in fields or 10 not in fields:
        raise Fail(f"{path}: no time_nanos/duration_nanos (fields {sorted(fields)})")
    return fields[9], fields[9] + fields[10]


def pprof_top(path, base=None, index="inuse_space"):
    """`go tool pprof -top` of path (minus base), in bytes: [(flat, function)]."""
    cmd = ["go", "tool", "pprof", "-top", "-unit=B", f"-sample_index={index}"]
    cmd += ["-diff_base", base, path] if base else [path]
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PPROF_BINARY_PATH="/nonexistent"))
    if r.returncode != 0:
        raise Fail(f"go tool pprof failed ({r.returncode}): {r.stderr.strip()}")
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*(-?\d+)B?\s+\S+%\s+\S+%\s+-?\d+B?\s+\S+%\s+(\S.*)$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2).strip()))
    for line in r.stdout.splitlines()[:12]:
        print("  " + line, flush=True)
    if not rows and base:
        raise Fail(f"no rows in go tool pprof's output:\n{r.stdout}")
    return rows


def sampling_tolerance(n, size=LEAK_BYTES, mean=MEAN, eps=1e-4):
    """How far memspy's estimate of n blocks of size bytes may be from n * size under
    Poisson byte sampling with this mean, but with probability eps. Each block is
    sampled with p = 1 - exp(-size/mean) and a sample weighs size / p, so the estimate
    is (n - K) * size / p for K ~ Binomial(n, 1 - p) blocks missed. The binomial's
    tail is computed exactly: with p near 1 it is far heavier than a normal's."""
    q = math.exp(-size / mean)
    w = size / (1 - q)
    tail, k = 1.0, 0
    while True:
        tail -= math.comb(n, k) * q ** k * (1 - q) ** (n - k)  # now P(K > k)
        if tail < eps:
            break
        k += 1
    # the extremes: every block sampled (each over by w - size), or k missed;
    # plus a byte per sample for the rounding of weights
    return max(n * (w - size), n * size - (n - k) * w) + n


def check_growth(name, rows, blocks, loss=0):
    want = blocks * LEAK_BYTES
    flat, fn = max(rows, key=lambda r: r[0])
    tol = sampling_tolerance(blocks) + loss
    print(f"{name}: top of the diff {fn} +{flat} B; the target leaked {want} B "
          f"({blocks} blocks); tolerance {tol:.0f} B", flush=True)
    if fn != "leak_block":
        raise Fail(f"{name}: the diff's top function is {fn}, not leak_block")
    if abs(flat - want) > tol:
        raise Fail(f"{name}: growth {flat} B is {flat - want:+d} B from the {want} B leaked, "
                   f"beyond what sampling explains but 1 time in 10,000 ({tol:.0f} B)")
    others = [(f, n) for f, n in rows if n != "leak_block" and abs(f) > tol]
    if others:
        raise Fail(f"{name}: other functions moved by more than the tolerance: {others}")


def ring_loss_bytes(err):
    """What samples memspy says it dropped (in-target ring full) can stand for, at most."""
    m = next((re.search(r"([0-9,]+) of [0-9,]+ samples found the in-target ring full", l)
              for l in err if "ring full" in l), None)
    n = int(m.group(1).replace(",", "")) if m else 0
    if n:
        print(f"memspy dropped {n} samples (ring full): tolerance widened by {n} blocks",
              flush=True)
    return n * LEAK_BYTES


def scen_diff(args, wd):
    if not shutil.which("go"):
        print("SKIP: go (go tool pprof) is not installed", flush=True)
        sys.exit(SKIP)
    pattern = os.path.join(wd, "heap-{n}.pb.gz")
    s = Session(args, ["--interval", "1s", "--sample-bytes", str(MEAN), "-o", pattern])
    # A file's end is taken just after the drain that ends its interval: a batch
    # that ended before it is in the file, one that began after it is not. 2 ms
    # covers the drain-to-clock gap and reading CLOCK_REALTIME in two processes.
    margin = 2_000_000
    try:
        # Causal order, no timing assumed: A's line was read before batch 1 was sent;
        # M is the first file ending after batch 1 and was read before batch 2 was sent;
        # B is the last file, written at the end.
        a = s.next_file()[1]
        b1 = s.leak(BATCHES[0])
        while True:
            m = s.next_file()[1]
            if pprof_times(m)[1] > b1[1] + margin:
                break
        b2 = s.leak(BATCHES[1])
        err = s.stop()
    finally:
        s.close()
    files = [(int(x.group(1)), x.group(2)) for x in map(INTERVAL_LINE.match, err) if x]
    b = files[-1][1]
    batches = [(BATCHES[0],) + b1, (BATCHES[1],) + b2]
    loss = ring_loss_bytes(err)
    for base, path, blocks in ((a, m, BATCHES[0]), (m, b, BATCHES[1]),
                               (a, b, BATCHES[0] + BATCHES[1])):
        print(f"diff {os.path.basename(base)} -> {os.path.basename(path)}: the target leaked "
              f"{blocks} blocks between their ends", flush=True)
        check_growth(f"{os.path.basename(base)}->{os.path.basename(path)}",
                     pprof_top(path, base=base), blocks, loss)
    # Each file's alloc_space: what leak_block allocated in its interval alone. A batch
    # that straddles a file's end is checked over the run of files that holds it.
    spans = [(path,) + pprof_times(path) for _, path in files]
    for i in range(1, len(spans)):
        if spans[i][1] != spans[i - 1][2]:
            raise Fail(f"{spans[i][0]} does not start where {spans[i - 1][0]} ended")
    groups = []
    for n, t0, t1 in batches:
        lo = next(i for i, sp in enumerate(spans) if sp[2] > t0 - margin)
        # the last file ends after every batch (memspy was stopped after the last ack)
        hi = next((i for i, sp in enumerate(spans) if sp[2] > t1 + margin), len(spans) - 1)
        groups.append([lo, hi, n])
    groups.sort()
    merged = []
    for g in groups:
        if merged and g[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], g[1])
            merged[-1][2] += g[2]
        else:
            merged.append(g)
    in_group = set()
    for lo, hi, blocks in merged:
        got = 0
        for i in range(lo, hi + 1):
            in_group.add(i)
            got += sum(f for f, fn in pprof_top(spans[i][0], index="alloc_space")
                       if fn == "leak_block")
        names = ", ".join(os.path.basename(spans[i][0]) for i in range(lo, hi + 1))
        tol = sampling_tolerance(blocks) + loss
        print(f"{names}: alloc_space on leak_block {got} B; the target leaked "
              f"{blocks * LEAK_BYTES} B in their intervals (tolerance {tol:.0f} B)", flush=True)
        if abs(got - blocks * LEAK_BYTES) > tol:
            raise Fail(f"{names}: leak_block allocated {got} B by memspy, "
                       f"{blocks * LEAK_BYTES} B by the target")
    for i, (path, _, _) in enumerate(spans):
        if i in in_group:
            continue
        got = sum(f for f, fn in pprof_top(path, index="alloc_space") if fn == "leak_block")
        print(f"{os.path.basename(path)}: alloc_space on leak_block {got} B; no batch in its "
              f"interval", flush=True)
        if got:
            raise Fail(f"{path}: leak_block allocated {got} B in an interval without a batch")
    if len(in_group) == len(spans):
        raise Fail("every file held a batch: no interval without one was checked")
    for _, path in files:
        check_output_valid(path, "pprof")


def scen_keep(args, wd):
    # A fixed mean, as the other scenarios: at the budget's mean (widened to 1 MiB
    # under ASan) the last half-second interval once had no sample, and an empty file.
    s = Session(args, ["--interval", "1s", "--keep", "2", "--duration", "4.5s",
                       "--sample-bytes", str(MEAN), "-o", os.path.join(wd, "k-{n}-{pid}.folded")])
    try:
        err = s.stop(interrupt=False)  # --duration ends it
    finally:
        s.close()
    written = [INTERVAL_LINE.match(l).group(2) for l in err if INTERVAL_LINE.match(l)]
    left = sorted(f for f in os.listdir(wd) if f.startswith("k-"))
    print(f"{len(written)} files written, left: {left}", flush=True)
    if len(written) < 4:
        raise Fail(f"only {len(written)} interval files written in 4.5 s at 1 s")
    want = sorted(os.path.basename(p) for p in written[-2:])
    if left != want:
        raise Fail(f"--keep 2 left {left}, expected the last two written: {want}")
    if any(f"-{s.pid}." not in f for f in left):
        raise Fail(f"{{pid}} was not expanded to {s.pid}: {left}")
    for f in left:
        check_output_valid(os.path.join(wd, f), "folded")
    summary = [l for l in err if l.startswith("memspy: wrote ")]
    if not summary or "kept the last 2 (--keep 2)" not in summary[0]:
        raise Fail(f"the summary does not say what --keep kept: {summary}")


def scen_boundary(args, wd):
    # --duration a whole number of intervals: exactly that many files, the last a
    # whole interval (the cut at the last boundary and then the end wrote a
    # fourth file of 0.0 s after three of 1 s).
    s = Session(args, ["--interval", "1s", "--duration", "3s", "--sample-bytes", str(MEAN),
                       "-o", os.path.join(wd, "b-{n}.folded")])
    try:
        err = s.stop(interrupt=False)  # --duration ends it
    finally:
        s.close()
    lines = [l for l in err if INTERVAL_LINE.match(l)]
    print("\n".join(lines), flush=True)
    if len(lines) != 3:
        raise Fail(f"{len(lines)} interval files for --duration 3s --interval 1s, expected 3")
    m = re.search(r" \((\d+\.\d+) s\) -> ", lines[-1])
    if not m or float(m.group(1)) < 0.5:
        raise Fail(f"the last interval is not a whole one: {lines[-1]}")
    left = sorted(f for f in os.listdir(wd) if f.startswith("b-"))
    if left != ["b-1.folded", "b-2.folded", "b-3.folded"]:
        raise Fail(f"files left: {left}")


def scen_formats(args, wd):
    for fmt, ext in (("folded", "folded"), ("svg", "svg"), ("speedscope", "speedscope.json")):
        pattern = os.path.join(wd, f"f-{{n}}.{ext}")
        s = Session(args, ["--interval", "1s", "--live", "--sample-bytes", str(MEAN),
                           "-o", pattern])
        try:
            s.next_file()  # read before the batch: its file holds none of it
            s.leak(BATCHES[0])
            s.next_file()
            err = s.stop()  # the last file is written after the batch
        finally:
            s.close()
        files = [(int(x.group(1)), x.group(2)) for x in map(INTERVAL_LINE.match, err) if x]
        if len(files) < 3:
            raise Fail(f"{len(files)} files, expected 3 or more")
        # A file from before the batch may show nothing live (an empty folded file);
        # the last one holds the batch.
        for _, path in files:
            if fmt != "folded" or os.path.getsize(path) or path == files[-1][1]:
                check_output_valid(path, fmt)
        if fmt == "folded":
            live = [sum(v for fr, v in parse_folded(p) if fr[-1] == "leak_block")
                    if os.path.getsize(p) else 0 for _, p in files]
            grown = live[-1] - live[0]
            want = BATCHES[0] * LEAK_BYTES
            tol = sampling_tolerance(BATCHES[0]) + ring_loss_bytes(err)
            print(f"folded live on leak_block per file: {live}; grew {grown} B, leaked "
                  f"{want} B (tolerance {tol:.0f} B)", flush=True)
            if abs(grown - want) > tol:
                raise Fail(f"the folded live view grew by {grown} B, not ~{want}")


def scen_usage(args, wd):
    me = str(os.getpid())
    cases = [
        (["--interval", "1s", "-o", "heap.pb.gz"], "needs {n}"),
        (["--interval", "1s", "-o", "heap-{pid}.pb.gz"], "needs {n}"),
        (["--interval", "1s", "-o", "heap-{x}.pb.gz"], "unknown placeholder '{x}'"),
        (["-o", "heap-{n}.pb.gz"], "give --interval"),
        (["--keep", "3", "-o", "heap.svg"], "--keep needs --interval"),
        (["--interval", "0.5s", "-o", "heap-{n}.svg"], "1s or more"),
        (["--interval", "1s", "--keep", "0", "-o", "heap-{n}.svg"], "--keep: '0'"),
    ]
    for opts, want in cases:
        cmd = [args.memspy, "record", "--pid", me] + opts
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        print(f"$ {' '.join(cmd)} -> {r.returncode}: {r.stderr.strip()}", flush=True)
        if r.returncode != 64:
            raise Fail(f"{opts}: exit {r.returncode}, expected 64 (usage)")
        if want not in r.stderr or "Try 'memspy record --help'" not in r.stderr:
            raise Fail(f"{opts}: the message does not say {want!r}: {r.stderr!r}")


POOL_BYTES = 12345
POOL_STACK = "main;keep_pool"  # my_alloc's caller: the probed entry itself is not shown


def pool_run(args, wd, name, opts):
    """Pool 100 blocks, give 60 back; returns (live blocks per the target, memspy's folded
    value on keep_pool, memspy's stderr)."""
    out = os.path.join(wd, name + ".folded")
    s = Session(args, ["--live", "--probe", "my_alloc", "-o", out] + opts)
    try:
        s.command("pool 100", "pool ")
        live = int(s.command("unpool 60", "pool ").split()[2])
        err = s.stop()
    finally:
        s.close()
    got = sum(v for fr, v in parse_folded(out) if ";".join(fr).endswith(POOL_STACK))
    return live, got, err


def scen_probe_free(args, wd):
    warning = "--probe my_alloc without --probe-free: memspy never sees these blocks freed"
    # Exact: every call is an event; counts are exact.
    live, got, err = pool_run(args, wd, "exact", ["--exact", "--count", "--probe-free",
                                                  "my_free"])
    print(f"--exact --count with --probe-free: memspy {got} live pool blocks, target {live}",
          flush=True)
    if got != live:
        raise Fail(f"--probe-free --exact: memspy counts {got} pool blocks live, the target "
                   f"holds {live}")
    if not any("my_free@" in l for l in err if "probed" in l):
        raise Fail("the summary does not list my_free among the probed entry points")
    if any(warning in l for l in err):
        raise Fail("memspy warns of a missing --probe-free that was given")
    # Sampled: within what Poisson byte sampling leaves out 1 time in 10,000.
    mean = 4096
    live, got, err = pool_run(args, wd, "sampled", ["--sample-bytes", str(mean),
                                                    "--probe-free", "my_free"])
    want = live * POOL_BYTES
    tol = sampling_tolerance(live, POOL_BYTES, mean)
    print(f"sampled with --probe-free: memspy {got} B live on {POOL_STACK}, target "
          f"{want} B ({live} blocks); tolerance {tol:.0f} B", flush=True)
    if abs(got - want) > tol:
        raise Fail(f"--probe-free sampled: {got} B live, the target holds {want} B")
    # Without --probe-free: the warning, and the freed blocks still count as live.
    live, got, err = pool_run(args, wd, "nofree", ["--exact", "--count"])
    print(f"--exact --count without --probe-free: memspy {got} live pool blocks, target {live}",
          flush=True)
    if not any(warning in l for l in err):
        raise Fail(f"no warning that my_alloc's blocks are never seen freed: {err[:3]}")
    if got != 100:
        raise Fail(f"without --probe-free memspy should count all 100 pool blocks live, "
                   f"not {got}")


SCENARIOS = {"diff": scen_diff, "keep": scen_keep, "boundary": scen_boundary, "formats": scen_formats,
             "usage": scen_usage, "probe-free": scen_probe_free}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    wd = os.path.join(args.workdir, args.scenario)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    try:
        SCENARIOS[args.scenario](args, wd)
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
