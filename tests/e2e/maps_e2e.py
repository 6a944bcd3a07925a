#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A torn /proc/PID/maps read never becomes a verdict about the process.

On Linux >= 6.17 maps is printed under per-VMA locks: a read that races with
a thread growing its arena can show a mapping twice. memspy reads again until
the table is consistent, and decides "no libc" / "nothing to probe" only on
maps read with every thread stopped.

loop: FRESH freshly started 4-thread malloc/free processes (maps_churn: each
thread grows its own arena), each dumped and recorded as soon as it is ready,
when its maps change fastest. No dump may say the process does not use glibc
(its JSON report names glibc and its libc), no record may say no allocator
entry point can be probed, none may fail on the maps. Exit 0 of dump is not
required here (a dump of such a process can end partial for other reasons).

inject: memspy's hook MEMSPY_TEST_MAPS_TORN=N makes its first N maps reads
torn, on any kernel. With a few torn reads, dump and record work as without;
with every read torn, both fail loudly ("kept changing while memspy read it",
exit 2), never with a verdict about the allocator. The target lives on.

Readiness is a pipe handshake (READY line); nothing asserts on time.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mstest  # noqa: E402
from mstest import fail, skip_if_not_permitted  # noqa: E402

VERDICTS = ("does not use glibc", "no allocator entry point", "found no libc")


def churn_target(path, threads=4):
    """A maps_churn process, ready once it printed READY; quit() must see it exit 0."""
    return mstest.Target([path, str(threads)], ready=r"^READY ", timeout=60, echo=False)


def run(argv, env=None):
    r = mstest.run(argv, env=env)
    return r.returncode, r.stdout + r.stderr


def dump(memspy, pid, env=None):
    """(exit code, stderr + stdout, the JSON report or None)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        rc, text = run([memspy, "dump", "--pid", str(pid), "--json", "-o", tf.name], env)
        try:
            rep = json.load(open(tf.name))
        except ValueError:
            rep = None
    skip_if_not_permitted(rc, text)
    return rc, text, rep


def record(memspy, pid, env=None):
    with tempfile.TemporaryDirectory() as d:
        rc, text = run([memspy, "record", "--pid", str(pid), "--duration", "200ms",
                        "-o", os.path.join(d, "r.folded")], env)
    skip_if_not_permitted(rc, text)
    return rc, text


def no_verdict(what, text):
    for v in VERDICTS:
        if v in text:
            fail("%s: a verdict from a racing maps read: %s" % (what, text.strip()))
    if "kept changing" in text:
        fail("%s: the maps never read consistent: %s" % (what, text.strip()))


def check_dump_ok(what, rc, text, rep):
    no_verdict(what, text)
    if rc not in (0, 1) or rep is None:
        fail("%s: exit %d, report %s: %s" % (what, rc, "ok" if rep else "missing", text.strip()))
    if rep.get("allocator") != "glibc" or not rep.get("libc"):
        fail("%s: allocator %r, libc %r" % (what, rep.get("allocator"), rep.get("libc")))


def loop(a):
    partial = 0
    for i in range(a.fresh):
        t = churn_target(a.target)
        rc, text, rep = dump(a.memspy, t.pid)
        check_dump_ok("dump of fresh process %d (%d of %d)" % (t.pid, i + 1, a.fresh),
                      rc, text, rep)
        partial += rc == 1
        t.quit()
        t = churn_target(a.target)
        rc, text = record(a.memspy, t.pid)
        what = "record of fresh process %d (%d of %d)" % (t.pid, i + 1, a.fresh)
        no_verdict(what, text)
        if rc != 0:
            fail("%s: exit %d: %s" % (what, rc, text.strip()))
        t.quit()
    print("ok: %d fresh processes dumped (%d partial) and %d recorded, no maps verdict"
          % (a.fresh, partial, a.fresh))


def inject(a):
    t = churn_target(a.target)
    few = dict(os.environ, MEMSPY_TEST_MAPS_TORN="3")
    every = dict(os.environ, MEMSPY_TEST_MAPS_TORN="1000000")

    rc, text, rep = dump(a.memspy, t.pid, few)
    check_dump_ok("dump with 3 torn maps reads", rc, text, rep)
    rc, text = record(a.memspy, t.pid, few)
    no_verdict("record with 3 torn maps reads", text)
    if rc != 0:
        fail("record with 3 torn maps reads: exit %d: %s" % (rc, text))

    for what, (rc, text) in (("dump", dump(a.memspy, t.pid, every)[:2]),
                             ("record", record(a.memspy, t.pid, every))):
        what += " with every maps read torn"
        for v in VERDICTS:
            if v in text:
                fail("%s: a verdict instead of an error: %s" % (what, text.strip()))
        if rc != 2 or "kept changing while memspy read it" not in text or "hint:" not in text:
            fail("%s: exit %d, want 2 and a clear error: %s" % (what, rc, text.strip()))
        if not t.alive():
            fail("%s: the target died" % what)
    t.quit()
    print("ok: torn maps reads are read again; never consistent is a clear error")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--fresh", type=int, default=30)
    ap.add_argument("mode", choices=["loop", "inject"])
    a = ap.parse_args()
    mstest.main(lambda: {"loop": loop, "inject": inject}[a.mode](a))


if __name__ == "__main__":
    main()
