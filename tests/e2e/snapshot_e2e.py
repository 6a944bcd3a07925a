#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Safety of `memspy dump`'s copy-on-write snapshot, on a busy real target.

hygiene: dumps of a 4-thread target that mallocs and frees without pause
(with the snapshot, or --no-snapshot); after each: no child of the target left
(not even a zombie), its own waitpid(-1, WNOHANG [|__WALL]) sees nothing, no
SIGCHLD reached it, its mappings are the same (heap growth aside) except, with
the snapshot, exactly one 4 KiB r-x anonymous page signed "memspy-snapshot"
that the first dump leaves and every later dump reuses (same address, no
other new mapping; without the snapshot the same page, left once a thread
had to be let out of malloc, or none), nothing traces it any more, it still runs, and it exits 0.

kill: memspy SIGKILLed at random moments of dumps of a bigger heap. The
target must survive every trial and keep running; no snapshot child may
outlive memspy (PTRACE_O_EXITKILL) beyond a moment; a zombie child of the
target and a leaked clone page are possible only when memspy dies inside
a few narrow windows: they are counted and printed, not failed. After the
first (calibration) dump the target holds its one clone page; no trial may
add a second.

diein: memspy SIGKILLs itself at each stop of the clone (its own hook) and at
each point of the injected wait4 that reaps the snapshot (remote.c's
MEMSPY_TEST_KILL_AT): the target must survive and keep answering.

Readiness is a pipe handshake (READY line); nothing asserts on wall-clock
time (the polls below only bound how long a hang may last).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mstest  # noqa: E402
from mstest import Skip, fail, spawn  # noqa: E402

ECHILD = 10


def Target(path, threads, heap_mb, preexec=None):
    return mstest.BusyTarget([path, str(threads), str(heap_mb)], timeout=120,
                             preexec_fn=preexec)


def status(pid):
    d = {}
    try:
        with open("/proc/%s/status" % pid) as f:
            for l in f:
                k, _, v = l.partition(":")
                d[k] = v.strip()
    except OSError:
        return None
    return d


def children_of(pid):
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        st = status(e)
        if st and st.get("PPid") == str(pid):
            out.append((int(e), st.get("State", "?")[0], st.get("Name", "")))
    return out


def maps(pid):
    """Mappings that a dump must not change: everything but anonymous data (heap growth)."""
    keep = set()
    with open("/proc/%d/maps" % pid) as f:
        for l in f:
            parts = l.split()
            perms, path = parts[1], (parts[5] if len(parts) > 5 else "")
            if not path and "x" not in perms:
                continue  # anonymous rw-p / ---p: arenas grow and shrink
            growing = path in ("[heap]", "[stack]")
            keep.add(("" if growing else parts[0], perms, path))
    return keep


def anon_exec(pid):
    with open("/proc/%d/maps" % pid) as f:
        return [l.strip() for l in f if len(l.split()) <= 5 and "x" in l.split()[1]]


PAGE_SIG = b"memspy-snapshot\0"


def clone_page(pid, what):
    """The one clone page a snapshot dump leaves: (start, maps key), checked."""
    ex = anon_exec(pid)
    if len(ex) != 1:
        fail("%s: %d anonymous executable mappings, expected exactly the clone page: %s"
             % (what, len(ex), ex))
    parts = ex[0].split()
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if hi - lo != 4096 or parts[1] != "r-xp":
        fail("%s: the clone page is %s %s, expected 4 KiB r-xp" % (what, parts[0], parts[1]))
    with open("/proc/%d/mem" % pid, "rb") as f:
        f.seek(lo)
        sig = f.read(len(PAGE_SIG))
    if sig != PAGE_SIG:
        fail("%s: the page at %x does not start with the signature: %r" % (what, lo, sig))
    return lo, (parts[0], parts[1], "")


def tracers(pid):
    out = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        st = status("%d/task/%s" % (pid, t))
        if st and st.get("TracerPid", "0") != "0":
            out.append((t, st["TracerPid"]))
    return out


def poll(cond, what, limit=10.0):
    """Waits for cond() (a hang guard, not a timing assertion)."""
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            fail(what)
        time.sleep(0.01)


def dump(memspy, pid, extra, out):
    argv = [memspy, "dump", "--pid", str(pid), "--json", "-o", out, "-v"] + extra
    return spawn(argv, stderr=subprocess.PIPE)


def check_ptrace_allowed(memspy, t):
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        p = dump(memspy, t.pid, ["--no-snapshot"], tf.name)
        _, err = p.communicate(timeout=120)
        if p.returncode == 2 and b"Operation not permitted" in err:
            raise Skip("ptrace not permitted here: %s" % err.decode().strip())


def hygiene(a):
    t = Target(a.target, 4, a.heap_mb)
    extra = ["--no-snapshot"] if a.no_snapshot else []
    want = "stopped" if a.no_snapshot else "snapshot"
    before = maps(t.pid)
    if anon_exec(t.pid):
        fail("the target has anonymous executable mappings before any dump: %s" % anon_exec(t.pid))
    page = None
    for run in range(a.runs):
        ops0 = t.ops()
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            p = dump(a.memspy, t.pid, extra, tf.name)
            _, err = p.communicate(timeout=120)
            err = err.decode(errors="replace")
            if p.returncode == 2 and "Operation not permitted" in err:
                raise Skip(err.strip())
            try:
                rep = json.load(open(tf.name))
            except ValueError:
                fail("run %d: no JSON report (exit %d): %s" % (run, p.returncode, err))
        print("run %d: exit %d, walk_source %s, pause %.1f ms, snapshot %.1f ms, walk %.1f ms, "
              "lock retries %d%s" % (run, p.returncode, rep.get("walk_source"), rep["pause_ms"],
                                     rep.get("snapshot_ms") or 0, rep.get("walk_ms", 0),
                                     rep.get("lock_retries", 0),
                                     ", inconsistent" if rep.get("inconsistent") else ""))
        if rep.get("walk_source") != want:
            fail("walk_source %r, expected %r (fallback: %s)\n%s" %
                 (rep.get("walk_source"), want, rep.get("snapshot_fallback"), err))
        if p.returncode not in (0, 1) or "mallinfo2" not in rep:
            fail("exit %d without totals:\n%s" % (p.returncode, err))
        if p.returncode == 1 and not rep.get("inconsistent"):
            fail("partial report on a healthy heap: %s" % json.dumps(rep.get("errors"))[:2000])
        kids = children_of(t.pid)
        if kids:
            fail("the target has children after the dump: %s" % kids)
        w = t.ask("wait")
        if w != "wait -1 %d -1 %d sigchld=0" % (ECHILD, ECHILD):
            fail("the target's own wait() saw something of ours: %r" % w)
        after = maps(t.pid)
        left = "no page left"
        # --no-snapshot maps the code page only to quiesce (a thread was inside malloc).
        if not a.no_snapshot or anon_exec(t.pid) or page is not None:
            lo, key = clone_page(t.pid, "run %d" % run)
            if page is not None and lo != page:
                fail("run %d: the clone page moved from %x to %x: not reused" % (run, page, lo))
            left = "one signed 4 KiB r-x page at %x (%s)" % (lo, "new" if page is None else "reused")
            page = lo
            after = after - {key}
        if after != before:
            fail("mappings changed: new %s, gone %s" % (sorted(after - before), sorted(before - after)))
        tr = poll(lambda: not tracers(t.pid) and [1], "still traced after memspy exited: %s"
                  % tracers(t.pid))
        del tr
        ops1 = poll(lambda: (lambda o: o if o > ops0 else 0)(t.ops()), "the target stopped working")
        print("  no child, wait() sees nothing, no SIGCHLD, maps unchanged but %s, untraced, "
              "ops %d -> %d" % (left, ops0, ops1))
    t.quit()
    print("PASS")


def kill(a):
    rng = random.Random(a.seed)
    t = Target(a.target, 4, a.heap_mb)
    check_ptrace_allowed(a.memspy, t)
    # One complete dump to know how long one lasts (to spread the kills over it).
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        t0 = time.monotonic()
        p = dump(a.memspy, t.pid, [], tf.name)
        _, err = p.communicate(timeout=120)
        span = time.monotonic() - t0
        rep = json.load(open(tf.name))
    if rep.get("walk_source") != "snapshot":
        fail("calibration dump did not use a snapshot: %s" % rep.get("snapshot_fallback"))
    page, _ = clone_page(t.pid, "after the calibration dump")
    print("seed %d; one dump: %.2f s (pause %.1f ms); %d trials killing memspy in [0, %.2f] s"
          % (a.seed, span, rep["pause_ms"], a.trials, span * 1.1))
    zombies = 0
    for i in range(a.trials):
        ops0 = t.ops()
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            delay = rng.uniform(0, span * 1.1)
            p = dump(a.memspy, t.pid, [], tf.name)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.communicate(timeout=60)
        # The snapshot child dies with memspy (EXITKILL): only zombies may stay.
        live = poll(lambda: (lambda k: [k] if all(s == "Z" for _, s, _ in k) else None)(
            children_of(t.pid)), "a child of the target outlived memspy: %s" % children_of(t.pid))[0]
        poll(lambda: not tracers(t.pid) and [1],
             "trial %d: still traced after memspy died: %s" % (i, tracers(t.pid)))
        st = status(t.pid)
        if not st or st["State"][0] in "ZXT":
            fail("trial %d (kill at %.3f s): target is %s" % (i, delay, st and st["State"]))
        poll(lambda: t.ops() > ops0, "trial %d: the target stopped working" % i)
        lo, _ = clone_page(t.pid, "trial %d (kill at %.3f s)" % (i, delay))
        if lo != page:
            fail("trial %d: the clone page moved from %x to %x" % (i, page, lo))
        note = []
        if len(live) > zombies:
            note.append("zombie child left (%d in all)" % len(live))
        print("trial %2d: killed after %.3f s (exit %s): target alive and working%s" %
              (i, delay, p.returncode, "; " + ", ".join(note) if note else ""))
        zombies = len(live)
    w = t.ask("wait")
    print("after %d trials: %d zombie(s) left for the target to reap, still the one clone page "
          "at %x; target's own wait(): %s" % (a.trials, zombies, page, w))
    t.quit()
    print("PASS")


SYS_WAIT4 = 61


def diein(a):
    """memspy SIGKILLs itself at each stop of the clone (test hook): the cloning
    thread, the leader blocked in read(), must run the page's way back into its
    own code, with its read() restarted (it must still answer), and the child
    must not survive: it runs exit_group at once (a zombie may be left).
    Then at each point of the wait4 that reaps the snapshot (remote.c's hook,
    POINT:NR:K), on a first dump (fresh page) and on a second one (reused
    page): the thread runs the page's trampoline, which restores it. The
    snapshot guard, forked from memspy, inherits the hook and dies at the same
    point of its own wait4: that is covered too."""
    cases = [("clone " + stop, {"MEMSPY_TEST_DIE_IN_CLONE": stop}, 0)
             for stop in ("entry", "event", "exit")]
    cases += [("wait4 %s (%s page)" % (pt, "reused" if pre else "new"),
               {"MEMSPY_TEST_KILL_AT": "%s:%d:1" % (pt, SYS_WAIT4)}, pre)
              for pt, pre in (("set", 0), ("enter", 0), ("exit", 0), ("back", 0), ("enter", 1))]
    for stop, hook, pre in cases:
        t = Target(a.target, 4, a.heap_mb)
        check_ptrace_allowed(a.memspy, t)
        for _ in range(pre):
            with tempfile.NamedTemporaryFile(suffix=".json") as tf:
                p = dump(a.memspy, t.pid, [], tf.name)
                p.communicate(timeout=120)
                if p.returncode not in (0, 1):
                    fail("%s: the dump before exited %d" % (stop, p.returncode))
        page = clone_page(t.pid, stop)[0] if pre else None
        ops0 = t.ops()
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            env = dict(os.environ, **hook)
            p = spawn([a.memspy, "dump", "--pid", str(t.pid), "--json", "-o", tf.name],
                      env=env, stderr=subprocess.PIPE)
            p.communicate(timeout=120)
        if p.returncode != -signal.SIGKILL:
            fail("%s: memspy exited %s, expected to die by the test hook" % (stop, p.returncode))
        kids = poll(lambda: (lambda k: [k] if all(s == "Z" for _, s, _ in k) else None)(
            children_of(t.pid)), "%s: a child of the target is alive: %s" % (stop, children_of(t.pid)))[0]
        poll(lambda: not tracers(t.pid) and [1], "%s: still traced" % stop)
        ops1 = poll(lambda: (lambda o: o if o > ops0 else 0)(t.ops()),
                    "%s: the target stopped working" % stop)
        w = t.ask("wait")
        lo = clone_page(t.pid, stop)[0]
        if page is not None and lo != page:
            fail("%s: the clone page moved from %x to %x: not reused" % (stop, page, lo))
        print("died at %s: target alive, read() restarted, ops %d -> %d; "
              "children left: %s; one clone page at %x; its wait(__WALL): %s"
              % (stop, ops0, ops1, kids, lo, w))
        t.quit()
    print("PASS")


def cgroup(a):
    """The target in a memory cgroup whose limit leaves less than a quarter of
    its anonymous memory free: memspy must not snapshot it (copy-on-write could
    push it into an out-of-memory kill), must say why, and must still walk it
    stopped. Skips where no memory cgroup can be made (v1 or v2)."""
    name = "memspy-snapshot-test-%d" % os.getpid()
    v1 = "/sys/fs/cgroup/memory"
    if os.path.isdir(v1):
        d, limit_f, usage_f = os.path.join(v1, name), "memory.limit_in_bytes", "memory.usage_in_bytes"
    else:
        d, limit_f, usage_f = os.path.join("/sys/fs/cgroup", name), "memory.max", "memory.current"
    try:
        os.mkdir(d)
    except OSError as e:
        raise Skip("cannot make a memory cgroup: %s" % e)
    t = None
    try:
        procs = os.path.join(d, "cgroup.procs")
        try:
            # Joined before exec, so every page the target touches is charged there.
            t = Target(a.target, 2, a.heap_mb,
                       preexec=lambda: open(procs, "w").write(str(os.getpid())))
            check_ptrace_allowed(a.memspy, t)
            # The busy threads' slots are full long before this: usage is steady.
            poll(lambda: t.ops() > 500000, "the target's threads do not run")
            usage = int(open(os.path.join(d, usage_f)).read())
            # Room for the busy threads' churn, but less than a quarter of the heap.
            open(os.path.join(d, limit_f), "w").write(str(usage + (a.heap_mb << 20) // 8))
        except (OSError, subprocess.SubprocessError) as e:
            raise Skip("cannot set up the memory cgroup: %s" % e)
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            p = dump(a.memspy, t.pid, [], tf.name)
            _, err = p.communicate(timeout=120)
            rep = json.load(open(tf.name))
        print("cgroup usage %d, limit %d; exit %d, walk_source %s, snapshot_fallback: %s" %
              (usage, usage + (a.heap_mb << 20) // 8, p.returncode, rep.get("walk_source"),
               rep.get("snapshot_fallback")))
        if rep.get("walk_source") != "stopped" or "memory limit" not in (rep.get("snapshot_fallback") or ""):
            fail("a snapshot was made (or the reason is not the memory limit)")
        if b"memory limit" not in err:
            fail("-v does not say why there is no snapshot: %s" % err.decode())
        if p.returncode not in (0, 1) or "mallinfo2" not in rep:
            fail("no walk after the fallback (exit %d)" % p.returncode)
        ops0 = t.ops()
        poll(lambda: t.ops() > ops0, "the target stopped working")
        t.quit()
    finally:
        if t and t.p.poll() is None:
            t.p.kill()
            t.p.wait()
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.1)
    print("PASS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["hygiene", "kill", "diein", "cgroup"])
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--no-snapshot", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--heap-mb", type=int, default=64)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: fail("driver timeout"))
    signal.alarm(280)
    mstest.main(lambda: {"hygiene": hygiene, "kill": kill, "diein": diein,
                         "cgroup": cgroup}[a.scenario](a))


if __name__ == "__main__":
    main()
