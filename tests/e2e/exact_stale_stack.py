#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`record --exact` (and sampled) on memspy-top-target, whose sites keep a local
array of pointers: uninitialised slots of it hold stale return addresses of
memspy's stubs from earlier calls. memspy took any such word on the copied
stack for a live outer probed call and dropped the sample as nested: two of
the three sites vanished (9,541 stops, 734 allocations reported). Exact:
every site's allocation count per round equals the target's (1:2:10, within
a round at each end); sampled: every site is present.

  exact_stale_stack.py --memspy M --target T --workdir D
"""
import argparse
import os
import subprocess

import mstest
from mstest import fail


def per_site(path):
    out = {}
    with open(path) as f:
        for line in f:
            stack, _, val = line.rstrip("\n").rpartition(" ")
            for fr in stack.split(";"):
                if fr.startswith("top_site_"):
                    out[fr] = out.get(fr, 0) + int(val)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    t = mstest.spawn([a.target, "mix"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     text=True)
    if not t.stdout.readline().startswith("ready"):
        fail("the target did not say ready")
    expect = {}
    for _ in range(3):
        _, name, nbytes, nallocs = t.stdout.readline().split()
        expect[name] = (int(nbytes), int(nallocs))
    for mode, extra in (("exact", ["--exact", "--count"]), ("sampled", ["-s", "4k"])):
        out = os.path.join(a.workdir, mode + ".folded")
        p = mstest.run([a.memspy, "record", "--pid", str(t.pid), "-d", "1", "-o", out] + extra,
                       skip_unpermitted=True)
        if p.returncode != 0:
            fail("%s: memspy exited %d:\n%s" % (mode, p.returncode, p.stderr))
        got = per_site(out)
        print("%s: %s (target per round: %s)" % (mode, got, expect))
        missing = [s for s in expect if not got.get(s)]
        if missing:
            fail("%s: no allocation from %s" % (mode, ", ".join(missing)))
        if mode == "exact":
            rounds = got["top_site_big"] / expect["top_site_big"][1]
            for s, (_, n) in expect.items():
                if abs(got[s] - rounds * n) > n:
                    fail("exact: %s made %d allocations, %.0f rounds of %d expected" %
                         (s, got[s], rounds, n))
    t.stdin.write("stop\n")
    t.stdin.flush()
    if t.wait(timeout=60) != 0:
        fail("the target's self-check failed")
    print("PASS: every site of memspy-top-target, exact and sampled")

if __name__ == "__main__":
    mstest.main(main)
