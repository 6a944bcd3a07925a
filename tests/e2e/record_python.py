#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`memspy record` on Debian's python3 (the real interpreter) running
tests/e2e/py_service.py, bounded, two scenarios:

  live-turnover  --live --max-overhead 20% while the target replaces random
                 slots of a ring of 30,000 bytearrays (a cache with turnover,
                 the process busy): the budget narrows the mean, and the
                 sampled blocks held in the in-target pointer table must stay
                 followable (main let the mean reach 4 KiB, 5,000+ blocks
                 held, and 188 could not be followed to their free: counted
                 live for good). Checks: at most max(10, 0.5% of the samples)
                 unfollowed, the live figure within 20% of what the target
                 says it allocated since and still holds, and the target
                 unharmed (TracerPid 0, code identical to its files).
  subprocesses-exit
                 --subprocesses on a root that forks 40 children of 50 ms one
                 after the other (each gone before a recorder can attach), 2
                 that live 3 s, and then exits while its parent (this script)
                 has not reaped it yet. memspy must exit 0: a child that exited
                 before memspy could attach is counted, not FAILED (main: exit
                 2 and a FAILED line each), and the unreaped root 'until it
                 exited' (main: 'partial', exit 1).

  record_python.py --memspy M --scenario S
Skips (77) without a python3 interpreter to profile.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mstest import Fail, text_check, tracer_of  # noqa: E402


def python3():
    """Debian's interpreter when there is one (what runs in production), else ours."""
    for p in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if p and os.access(p, os.X_OK):
            return p
    return None


class Service:
    def __init__(self):
        self.p = subprocess.Popen([python3(), os.path.join(HERE, "py_service.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            raise Fail("py_service.py did not start: %r" % line)
        self.pid = int(line[1])

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def kill(self):
        try:
            os.killpg(self.p.pid, 9)
        except OSError:
            pass
        self.p.wait()


def size_of(num, unit):
    return float(num) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


def unharmed(pid):
    t = tracer_of(pid)
    if t != 0:
        raise Fail("TracerPid of %d is %s after memspy ended" % (pid, t))
    text_check(pid)


def scen_live_turnover(a):
    s = Service()
    try:
        s.ask("fill 30000 600")
        r = subprocess.Popen([a.memspy, "record", "--pid", str(s.pid), "--live",
                              "--max-overhead", "20%", "-o", os.path.join(a.dir, "live.folded")],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # attached (the 0.25 s baseline, the install) before the turnover
        out = s.ask("turn 15 3000").split()
        r.send_signal(2)
        _, err = r.communicate(timeout=120)
        print(err, flush=True)
        if r.returncode not in (0, 1):
            raise Fail("memspy exited %d" % r.returncode)
        truth = int(out[3])
        m = re.search(r"live bytes\): ([\d.]+) ([KMG]?)i?B still live .* from ([\d,]+) samples",
                      err)
        if not m:
            raise Fail("no live total in the summary")
        live, samples = size_of(m.group(1), m.group(2)), int(m.group(3).replace(",", ""))
        u = re.search(r"([\d,]+) sampled blocks could not be followed", err)
        unfollowed = int(u.group(1).replace(",", "")) if u else 0
        print("live %.1f MiB, truth %.1f MiB (%.3f); %d samples, %d unfollowed"
              % (live / 2**20, truth / 2**20, live / truth, samples, unfollowed), flush=True)
        if unfollowed > max(10, samples // 200):
            raise Fail("%d sampled blocks could not be followed to their free (of %d samples): "
                       "the mean was let narrow past what the pointer table holds"
                       % (unfollowed, samples))
        if not 0.8 <= live / truth <= 1.2:
            raise Fail("live %.1f MiB against %.1f MiB the target holds"
                       % (live / 2**20, truth / 2**20))
        unharmed(s.pid)
    finally:
        s.kill()


def scen_subprocesses_exit(a):
    s = Service()
    try:
        r = subprocess.Popen([a.memspy, "record", "--pid", str(s.pid), "--subprocesses",
                              "-o", os.path.join(a.dir, "tree.folded")],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        kept = [int(x) for x in s.ask("keep 2 3").split()[1:]]
        s.ask("forks 40 50")
        time.sleep(1.5)  # the kept children recorded
        s.p.stdin.write("exit\n")
        s.p.stdin.flush()
        # The root is a zombie until we reap it: after memspy ends, on purpose.
        _, err = r.communicate(timeout=120)
        print(err, flush=True)
        if r.returncode != 0:
            raise Fail("memspy exited %d (want 0: every process exited, all recorded or "
                       "gone before it could be)" % r.returncode)
        if "FAILED" in err:
            raise Fail("a process is reported FAILED")
        root = [l for l in err.splitlines() if l.startswith("  pid %d " % s.pid)]
        if not root or "until it exited" not in root[0]:
            raise Fail("the root's line does not say it exited: %s" % root)
        m = re.search(r"(\d+) process(es)? exited before memspy could attach", err)
        if not m:
            raise Fail("no line counting the children that exited before memspy attached")
        print("%s short-lived children counted; kept %s" % (m.group(1), kept), flush=True)
    finally:
        s.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--scenario", required=True, choices=("live-turnover", "subprocesses-exit"))
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    if not python3():
        print("SKIP: no python3 interpreter to profile", file=sys.stderr)
        sys.exit(SKIP)
    a.dir = os.path.join(a.workdir, a.scenario)
    os.makedirs(a.dir, exist_ok=True)
    try:
        {"live-turnover": scen_live_turnover,
         "subprocesses-exit": scen_subprocesses_exit}[a.scenario](a)
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
    print("PASS: " + a.scenario, flush=True)


if __name__ == "__main__":
    main()
