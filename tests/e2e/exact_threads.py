#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`record --exact` on Debian's python3 while it starts threads without pause.
glibc blocks every signal, its own included, for the moment of clone() in
pthread_create; memspy holds a thread stopped inside clone at the call's
exit, so it saw SIGTRAP blocked there and refused --exact (5 of 5 attempts).
Five recordings: each exits 0 with every call recorded and the code
verified, and python3 runs on with its signal dispositions unchanged.
A thread that really blocks SIGTRAP is still refused (sigblock_* tests).

  exact_threads.py --memspy M
"""
import argparse
import os
import subprocess
import tempfile
import time

import mstest
from mstest import Skip, fail
PY = "/usr/bin/python3"
LOOP = r"""
import threading, sys
def w():
    x = [bytearray(100) for _ in range(50)]
print("READY", flush=True)
while True:
    ts = [threading.Thread(target=w) for _ in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
"""


def dispositions(pid):
    with open("/proc/%d/status" % pid) as f:
        return [l for l in f if l.startswith(("SigIgn", "SigCgt"))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    a = ap.parse_args()
    if not os.path.exists(PY):
        raise Skip("no %s" % PY)
    t = mstest.spawn([PY, "-c", LOOP], stdout=subprocess.PIPE, text=True)
    d = tempfile.mkdtemp(prefix="memspy-exact-")
    try:
        if t.stdout.readline().strip() != "READY":
            fail("python3 did not start")
        time.sleep(0.3)
        before = dispositions(t.pid)
        for r in range(5):
            out = os.path.join(d, "x%d.folded" % r)
            p = mstest.run([a.memspy, "record", "--exact", "--pid", str(t.pid), "-d", "1",
                            "-o", out], skip_unpermitted=True)
            if p.returncode != 0:
                fail("round %d: memspy record --exact exited %d:\n%s" %
                     (r, p.returncode, p.stderr))
            if "exact: every call" not in p.stderr or "byte-identical" not in p.stderr:
                fail("round %d: not an exact, verified recording:\n%s" % (r, p.stderr))
            if t.poll() is not None:
                fail("python3 died in round %d: %s" % (r, t.returncode))
        time.sleep(0.3)
        if t.poll() is not None:
            fail("python3 died after the recordings: %s" % t.returncode)
        after = dispositions(t.pid)
        if before != after:
            fail("python3's signal dispositions changed: %s -> %s" % (before, after))
        print("PASS: 5 exact recordings of python3 starting threads")
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


if __name__ == "__main__":
    mstest.main(main)
