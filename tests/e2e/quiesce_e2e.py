#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`memspy dump` of processes whose threads do nothing but malloc and free.

Without quiescing, a stop almost always catches a thread inside malloc with
its arena locked, and the dump ends partial (exit 1). With it, every dump
must be complete:

fresh: N freshly started 4-thread targets (tests/targets/quiesce_busy), one
JSON dump each a moment after they start: exit 0, no errors, no locked
arena, and the text the report gives about quiescing is consistent.

long: one target, N dumps in a row while it runs: the same. With --fork,
one more thread forks without pause: fork() holds every arena lock outside
malloc's code, so it must be let out too. Then the
target parks its workers at a barrier outside malloc and prints its own
mallinfo2(); a dump of that quiescent moment must equal it field for field.

diein: memspy SIGKILLs itself (its MEMSPY_TEST_DIE_IN_QUIESCE hook) once the
return addresses are redirected, while the threads let out run, and when one
has reached its slot: the target must come out untraced, keep running, give
an exact dump when parked (its heap is intact) and exit 0.

giveup: the first two quiesce rounds of each dump give up at once (memspy's
MEMSPY_TEST_QUIESCE_GIVE_UP hook) after the return addresses were
redirected: the process runs a moment with those slots in flight, is stopped
again and quiesced; every dump must still be complete, say it fell back, and
the parked target must dump exactly.

All check that the target still runs (its operation counter moves on) and
exits 0 afterwards. --count prints the exit codes instead of failing (used
to measure before/after). Nothing asserts on wall-clock time.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mstest  # noqa: E402
from mstest import SKIP, fail, tracer_of  # noqa: E402

FIELDS = ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost"]


def Target(path, threads, fork=False):
    return mstest.BusyTarget([path, str(threads)] + (["fork"] if fork else []))


def dump(memspy, pid, extra=()):
    r = subprocess.run([memspy, "dump", "--pid", str(pid), "--json"] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    try:
        rep = json.loads(r.stdout.decode())
    except ValueError:
        rep = None
    return r.returncode, rep, r.stderr.decode()


def check_complete(rc, rep, err, what, counting, extra):
    """A complete dump: exit 0, no errors, nothing locked or partial."""
    if counting:
        return
    if rc != 0:
        fail("%s: exit %d\n%s" % (what, rc, err))
    if rep is None:
        fail("%s: no JSON report" % what)
    if rep.get("errors"):
        fail("%s: errors %s" % (what, json.dumps(rep["errors"])[:800]))
    want = "stopped" if "--no-snapshot" in extra else "snapshot"
    if rep.get("walk_source") != want:
        fail("%s: walk_source %r, not %r (snapshot_fallback %r)" %
             (what, rep.get("walk_source"), want, rep.get("snapshot_fallback")))
    q = rep.get("quiesce")
    if not isinstance(q, dict):
        fail("%s: no \"quiesce\" object in the report" % what)
    for k in ("threads_let_out", "threads_let_out_total", "rounds", "ms", "fallback_retries"):
        if k not in q:
            fail("%s: quiesce.%s missing: %s" % (what, k, q))
    if q.get("blocked"):
        fail("%s: %d round(s) gave up: a thread let out of malloc waited on a stopped one (%s)"
             % (what, q["blocked"], q.get("fallback_reason")))
    if q["threads_let_out"] > 0 and q["ms"] <= 0:
        fail("%s: %d threads let out in %s ms" % (what, q["threads_let_out"], q["ms"]))


def mallinfo_of(rep):
    m = rep.get("mallinfo2") or rep.get("summary", {}).get("mallinfo2")
    if not isinstance(m, dict):
        fail("no mallinfo2 object in the report: keys %s" % sorted(rep.keys()))
    return m


def check_parked_exact(memspy, t, extra):
    own = json.loads(t.ask("park"))
    rc, rep, err = dump(memspy, t.pid, extra)
    if rc != 0:
        fail("dump of the parked target: exit %d\n%s" % (rc, err))
    got = mallinfo_of(rep)
    diff = ["%s %s != %s" % (f, got.get(f), own[f]) for f in FIELDS
            if got.get(f) != own[f]]
    if diff:
        fail("parked target: dump differs from its mallinfo2: " + ", ".join(diff))
    if t.ask("go") != "going":
        fail("target did not resume")


def diein(a, extra):
    for point in ("patched", "running", "arrived"):
        t = Target(a.target, a.threads)
        t.ops()
        env = dict(os.environ, MEMSPY_TEST_DIE_IN_QUIESCE=point)
        died = False
        for _ in range(30):  # the point is reached only when a thread is inside malloc
            r = subprocess.run([a.memspy, "dump", "--pid", str(t.pid), "--json"] + extra,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               timeout=120)
            if r.returncode == -signal.SIGKILL:
                died = True
                break
            if r.returncode != 0:
                fail("%s: dump exit %d\n%s" % (point, r.returncode, r.stderr.decode()))
        if not died:
            fail("%s: memspy never reached the point in 30 dumps" % point)
        for _ in range(300):  # the kernel detaches the dead tracer's tracees
            if tracer_of(t.pid) == 0:
                break
            time.sleep(0.01)
        else:
            fail("%s: target still traced by %d" % (point, tracer_of(t.pid)))
        t.runs_on()
        check_parked_exact(a.memspy, t, extra)
        rc, rep, err = dump(a.memspy, t.pid, extra)
        check_complete(rc, rep, err, "%s: the next dump" % point, False, extra)
        t.quit()
        print("diein %s: target survived, exact when parked, next dump complete" % point)


def giveup(a, extra):
    t = Target(a.target, a.threads)
    t.ops()
    env = dict(os.environ, MEMSPY_TEST_QUIESCE_GIVE_UP="2")
    fell_back = 0
    for i in range(a.n):
        r = subprocess.run([a.memspy, "dump", "--pid", str(t.pid), "--json"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        try:
            rep = json.loads(r.stdout.decode())
        except ValueError:
            rep = None
        check_complete(r.returncode, rep, r.stderr.decode(), "giveup dump %d" % i, False, extra)
        q = rep["quiesce"]
        if q["failed_rounds"]:
            fell_back += 1
            if rep["lock_retries"] < 1 or not q["fallback_reason"]:
                fail("giveup dump %d: a round gave up but lock_retries %d, reason %r" %
                     (i, rep["lock_retries"], q["fallback_reason"]))
    if not fell_back:
        fail("no dump had a thread inside malloc to let out: the fallback was not exercised")
    check_parked_exact(a.memspy, t, extra)
    t.runs_on()
    t.quit()
    print("giveup: %d dumps complete, %d of them after rounds that gave up" % (a.n, fell_back))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("mode", choices=["fresh", "long", "diein", "giveup"])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--fork", action="store_true",
                    help="one more thread forks without pause (fork holds every arena lock)")
    ap.add_argument("--count", action="store_true",
                    help="print the exit codes instead of failing on the first bad dump")
    ap.add_argument("--extra", default="", help="more dump options, space separated")
    a = ap.parse_args()
    if not os.path.exists(a.memspy) or not os.path.exists(a.target):
        print("SKIP: binaries missing")
        return SKIP
    extra = a.extra.split()
    codes = []
    let_out = 0
    try:
        if a.mode == "diein":
            diein(a, extra)
            return 0
        if a.mode == "giveup":
            giveup(a, extra)
            return 0
        if a.mode == "fresh":
            for i in range(a.n):
                t = Target(a.target, a.threads, a.fork)
                t.ops()  # the workers have started
                rc, rep, err = dump(a.memspy, t.pid, extra)
                codes.append(rc)
                check_complete(rc, rep, err, "fresh dump %d" % i, a.count, extra)
                if rep and isinstance(rep.get("quiesce"), dict):
                    let_out += rep["quiesce"].get("threads_let_out_total", 0)
                t.runs_on()
                t.quit()
        else:
            t = Target(a.target, a.threads, a.fork)
            t.ops()
            time.sleep(1.0)  # "ran a while": arenas grown and fragmented
            for i in range(a.n):
                rc, rep, err = dump(a.memspy, t.pid, extra)
                codes.append(rc)
                check_complete(rc, rep, err, "dump %d of the long-running target" % i,
                               a.count, extra)
                if rep and isinstance(rep.get("quiesce"), dict):
                    let_out += rep["quiesce"].get("threads_let_out_total", 0)
            if not a.count:
                # A quiescent moment: the dump must equal the program's own mallinfo2.
                check_parked_exact(a.memspy, t, extra)
            t.runs_on()
            t.quit()
    finally:
        mstest.reap_all()
    bad = sum(1 for c in codes if c != 0)
    print("%s: %d dumps, %d not exit 0 (codes %s), %d threads let out in all" %
          (a.mode, len(codes), bad, "".join(str(c) for c in codes), let_out))
    if not a.count and bad:
        fail("%d of %d dumps did not exit 0" % (bad, len(codes)))
    return 0


if __name__ == "__main__":
    mstest.main(main)
