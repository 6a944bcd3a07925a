#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# `memspy record --interval` against memspy-interval-leak, which leaks on
# command at a known stack (grow_cache -> leak_block) and says when each
# batch began and ended (CLOCK_REALTIME ns).
#   diff     pprof files, one a second: `go tool pprof -diff_base A B` shows
#            leak_block on top, grown by what the target leaked between the
#            two files' ends (their time_nanos + duration_nanos), within
#            4 standard deviations of the sampling estimate
#   keep     --keep 2 leaves exactly the last 2 files, and nothing temporary
#   formats  svg, folded and speedscope per interval, each file valid; the
#            folded live view grows by the batch on the leaking stack
#   usage    bad patterns and options are usage errors (64) that say why
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

LEAK_BYTES = 24000
MEAN = 16384
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


def sampling_sd(n_blocks):
    """Standard deviation of the estimate of n leaked blocks under Poisson byte sampling."""
    p = 1 - math.exp(-LEAK_BYTES / MEAN)
    return LEAK_BYTES * math.sqrt(n_blocks * (1 - p) / p)


def check_growth(name, rows, blocks):
    want = blocks * LEAK_BYTES
    flat, fn = max(rows, key=lambda r: r[0])
    tol = 4 * sampling_sd(blocks)
    print(f"{name}: top of the diff {fn} +{flat} B; the target leaked {want} B "
          f"({blocks} blocks); tolerance 4 sd = {tol:.0f} B", flush=True)
    if fn != "leak_block":
        raise Fail(f"{name}: the diff's top function is {fn}, not leak_block")
    if abs(flat - want) > tol:
        raise Fail(f"{name}: growth {flat} B is {flat - want:+d} B from the {want} B leaked, "
                   f"beyond 4 standard deviations of the sampling ({tol:.0f} B)")
    others = [(f, n) for f, n in rows if n != "leak_block" and abs(f) > tol]
    if others:
        raise Fail(f"{name}: other functions moved by more than the tolerance: {others}")


def scen_diff(args, wd):
    if not shutil.which("go"):
        print("SKIP: go (go tool pprof) is not installed", flush=True)
        sys.exit(SKIP)
    pattern = os.path.join(wd, "heap-{n}.pb.gz")
    s = Session(args, ["--interval", "1s", "--sample-bytes", str(MEAN), "-o", pattern])
    try:
        files = []  # (number, path), in order
        files.append(s.next_file())  # the probes are in, and a first file is out
        batches = []
        for n in (150, 250):
            t0, t1 = s.leak(n)
            batches.append((n, t0, t1))
            # two more files: the second surely ends after the batch
            files.append(s.next_file())
            files.append(s.next_file())
        s.stop()
    finally:
        s.close()
    ends = [(num, path, pprof_times(path)[1]) for num, path in files]
    # A file's end is taken just after the drain that ends its interval: a batch
    # that ended before it is in the file, one that began after it is not. 2 ms
    # covers the drain-to-clock gap and reading CLOCK_REALTIME in two processes.
    margin = 2_000_000

    def leaked_between(a_end, b_end):
        blocks = 0
        for n, t0, t1 in batches:
            if (t0 - margin < a_end < t1 + margin) or (t0 - margin < b_end < t1 + margin):
                return None
            if a_end < t0 and t1 < b_end:
                blocks += n
        return blocks

    first = ends[0]
    # The file ending after batch 1 and before batch 2, and the last one.
    mid = next(e for e in ends if batches[0][2] + margin < e[2] < batches[1][1] - margin)
    last = ends[-1]
    checked = 0
    for a, b in ((first, mid), (mid, last), (first, last)):
        blocks = leaked_between(a[2], b[2])
        if blocks is None:
            raise Fail(f"a batch ended within 2 ms of {a[1]} or {b[1]}: cannot tell its side")
        print(f"diff {os.path.basename(a[1])} -> {os.path.basename(b[1])}: the target leaked "
              f"{blocks} blocks between their ends", flush=True)
        check_growth(f"{os.path.basename(a[1])}->{os.path.basename(b[1])}",
                     pprof_top(b[1], base=a[1]), blocks)
        checked += 1
    if checked != 3:
        raise Fail("not every pair was checked")
    # Each file's alloc_space: what leak_block allocated in that interval alone.
    seen = set()
    for _, path in files:
        t0, t1 = pprof_times(path)
        blocks = 0
        if any(b0 - margin < edge < b1 + margin for _, b0, b1 in batches for edge in (t0, t1)):
            print(f"{os.path.basename(path)}: a batch is within 2 ms of an end of its "
                  f"interval: not checked", flush=True)
            continue
        for n, b0, b1 in batches:
            if t0 < b0 and b1 < t1:
                blocks += n
                seen.add(b0)
        got = sum(f for f, fn in pprof_top(path, index="alloc_space") if fn == "leak_block")
        tol = 4 * sampling_sd(blocks)
        print(f"{os.path.basename(path)}: alloc_space on leak_block {got} B; the target "
              f"leaked {blocks * LEAK_BYTES} B in its interval (tolerance {tol:.0f} B)",
              flush=True)
        if abs(got - blocks * LEAK_BYTES) > tol:
            raise Fail(f"{path}: leak_block allocated {got} B in the interval by memspy, "
                       f"{blocks * LEAK_BYTES} B by the target")
    if len(seen) != len(batches):
        raise Fail("not every batch was checked in the alloc_space of the file of its interval")
    for _, path in files:
        check_output_valid(path, "pprof")


def scen_keep(args, wd):
    s = Session(args, ["--interval", "1s", "--keep", "2", "--duration", "4.5s",
                       "-o", os.path.join(wd, "k-{n}-{pid}.folded")])
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


def scen_formats(args, wd):
    for fmt, ext in (("folded", "folded"), ("svg", "svg"), ("speedscope", "speedscope.json")):
        pattern = os.path.join(wd, f"f-{{n}}.{ext}")
        s = Session(args, ["--interval", "1s", "--live", "--sample-bytes", str(MEAN),
                           "-o", pattern])
        try:
            files = [s.next_file()]
            s.leak(200)
            files.append(s.next_file())
            files.append(s.next_file())
            s.stop()
        finally:
            s.close()
        # The first file may show nothing live (an empty folded file); the others hold the leak.
        if fmt != "folded" or os.path.getsize(files[0][1]):
            check_output_valid(files[0][1], fmt)
        for _, path in files[1:]:
            check_output_valid(path, fmt)
        if fmt == "folded":
            live = [sum(v for fr, v in parse_folded(p) if fr[-1] == "leak_block")
                    if os.path.getsize(p) else 0 for _, p in files]
            grown = live[-1] - live[0]
            tol = 4 * sampling_sd(200)
            print(f"folded live on leak_block per file: {live}; grew {grown} B, leaked "
                  f"{200 * LEAK_BYTES} B (tolerance {tol:.0f} B)", flush=True)
            if abs(grown - 200 * LEAK_BYTES) > tol:
                raise Fail(f"the folded live view grew by {grown} B, not ~{200 * LEAK_BYTES}")


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


SCENARIOS = {"diff": scen_diff, "keep": scen_keep, "formats": scen_formats,
             "usage": scen_usage}


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
