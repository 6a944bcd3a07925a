#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
A target that exits the moment memspy detaches (memspy-exit-on-detach) races
memspy's read-back of the restored code. The recording itself is complete,
so memspy must exit 0, write its file, and say the code could not be
verified because the process is gone (it exited 2, "failed", when the read
found no process). Five rounds: the race is won by the target in most.

  exit_on_detach.py --memspy M --target T --workdir D
"""
import argparse
import os
import subprocess

import mstest
from mstest import fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    raced = 0
    for r in range(5):
        t = mstest.spawn([a.target], stdout=subprocess.PIPE, text=True)
        if not t.stdout.readline().startswith("READY"):
            fail("the target did not say READY")
        out = os.path.join(a.workdir, "r%d.folded" % r)
        p = mstest.run([a.memspy, "record", "--pid", str(t.pid), "-d", "1", "-o", out],
                       skip_unpermitted=True)
        if t.wait(timeout=60) != 0:
            fail("round %d: the target exited %d" % (r, t.returncode))
        if p.returncode != 0:
            fail("round %d: memspy exited %d for a complete recording:\n%s" %
                 (r, p.returncode, p.stderr))
        if not os.path.getsize(out):
            fail("round %d: empty output" % r)
        if "not verified after detach" in p.stderr:
            raced += 1
        elif "byte-identical" not in p.stderr:
            fail("round %d: neither verified nor said why not:\n%s" % (r, p.stderr))
    print("PASS: 5 rounds exit 0; the target exited before the read-back in %d" % raced)


if __name__ == "__main__":
    mstest.main(main)
