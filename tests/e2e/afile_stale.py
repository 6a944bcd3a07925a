#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
A memspy killed by SIGKILL while recording leaves its temporary output file
(OUT.tmp.XXXXXX) behind: nothing can remove it then. The next memspy that
writes OUT removes such files when they are unlocked (their writer is dead:
each writer holds an flock on its own) and over a minute old, and says so;
a temporary file whose writer still holds its lock stays.

  afile_stale.py --memspy M --workdir D
"""
import argparse
import fcntl
import glob
import os
import signal
import subprocess
import time

import mstest
from mstest import Skip, fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    out = os.path.join(a.workdir, "out.folded")
    for f in glob.glob(out + "*"):
        os.unlink(f)
    target = mstest.spawn(["sleep", "120"])
    m = mstest.spawn([a.memspy, "record", "--pid", str(target.pid), "-d", "60", "-o", out],
                     stderr=subprocess.PIPE, text=True)
    for line in m.stderr:
        if "recording pid" in line:
            break
        if "Operation not permitted" in line:
            raise Skip("ptrace not permitted here")
    m.send_signal(signal.SIGKILL)
    m.wait()
    left = glob.glob(out + ".tmp.*")
    if len(left) != 1:
        fail("a memspy killed while recording should leave one temporary file, found %s"
             % left)
    stale = left[0]
    # A writer that is alive: holds the lock on its own temporary file.
    held = out + ".tmp.HELDxx"
    with open(held, "w") as f:
        pass
    old = time.time() - 7200
    os.utime(stale, (old, old))
    os.utime(held, (old, old))
    h = open(held)
    fcntl.flock(h, fcntl.LOCK_EX)
    # The watchdog of the killed memspy restores the target; give it a moment.
    time.sleep(1)
    p = mstest.run([a.memspy, "record", "--pid", str(target.pid), "-d", "1", "-o", out])
    if p.returncode != 0:
        fail("the second memspy exited %d:\n%s" % (p.returncode, p.stderr))
    if os.path.exists(stale):
        fail("%s, left by the killed memspy, is still there:\n%s" % (stale, p.stderr))
    if stale not in p.stderr or "killed" not in p.stderr:
        fail("memspy removed %s without saying so:\n%s" % (stale, p.stderr))
    if not os.path.exists(held):
        fail("a temporary file whose writer holds its lock was removed")
    if not os.path.exists(out) or glob.glob(out + ".tmp.*") != [held]:
        fail("after the second recording: %s" % sorted(glob.glob(out + "*")))
    if target.poll() is not None:
        fail("the target died: %s" % target.returncode)
    h.close()
    os.unlink(held)
    print("PASS: a killed memspy's temporary file is removed by the next one")


if __name__ == "__main__":
    mstest.main(main)
