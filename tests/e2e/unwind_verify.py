#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The compiled CFI table must give exactly libdw's stacks. Each --run
# TARGET:MODE:ITERS is recorded twice with MEMSPY_VERIFY_UNWIND=1 (memspy then
# unwinds every sample with the table and with libdw and counts differences):
# sampled through the in-target ring, and exact through stops. Fails on any
# mismatch, and when the table did not do most of the walks (a table that
# always hands over to libdw would compare nothing).
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, main, record  # noqa: E402

LINE = re.compile(r"unwind verification: (\d+) stacks compared, (\d+) mismatches \((\d+) walks, "
                  r"(\d+) by the CFI table, (\d+) by libdw")


def verify(memspy, target, mode, iters, opts, out):
    os.environ["MEMSPY_VERIFY_UNWIND"] = "1"
    err = record(memspy, [target, mode, str(iters)], opts, out).err
    found = [LINE.search(l) for l in err]
    found = [m for m in found if m]
    if len(found) != 1:
        raise Fail(f"memspy printed {len(found)} verification summaries, expected 1")
    compared, mismatches, walks, table, libdw = (int(x) for x in found[0].groups())
    name = f"{os.path.basename(target)} {mode} {' '.join(opts)}"
    print(f"{name}: {compared} stacks compared, {mismatches} mismatches; {walks} walks, "
          f"{table} by the table, {libdw} by libdw", flush=True)
    if mismatches:
        raise Fail(f"{name}: {mismatches} stacks differ from libdw's (see above)")
    if compared < 20:
        raise Fail(f"{name}: only {compared} stacks compared: too few to tell")
    if table < 0.9 * walks:
        raise Fail(f"{name}: the table finished only {table} of {walks} walks")


def verify_all():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--run", action="append", required=True, help="TARGET:MODE:ITERS")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for i, spec in enumerate(args.run):
        target, mode, iters = spec.rsplit(":", 2)
        for opts in (["--sample-bytes", "4k"], ["--exact", "--count"]):
            out = os.path.join(args.workdir, f"{i}-{mode}-{opts[0].strip('-')}.folded")
            n = int(iters) if opts[0] != "--exact" else max(1, int(iters) // 10)
            verify(args.memspy, target, mode, n, opts, out)
    print("PASS: every stack the table unwound is libdw's", flush=True)


if __name__ == "__main__":
    main(verify_all)
