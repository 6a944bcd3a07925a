#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of `memspy record --mode walk` against self-checking targets.

Readiness is a pipe handshake everywhere: the targets print READY/PHASE lines
and wait for a line on stdin; memspy -v prints one line per heap read with the
CLOCK_MONOTONIC time of its stop, so the driver knows when a phase was read.
Nothing here asserts on wall-clock time. Every child is killed on every path.
"""
import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mstest  # noqa: E402
from mstest import fail, skip_if_not_permitted, spawn  # noqa: E402

LINE_TIMEOUT = 60  # seconds to wait for any one expected line (a hang, not a timing assert)


class Lines(mstest.LineReader):
    """A pipe followed line by line, every wait LINE_TIMEOUT at most."""

    def __init__(self, f, name, echo=True):
        super().__init__(f, name, echo)
        self.all = self.lines

    def next(self, what, timeout=LINE_TIMEOUT):
        return super().next(timeout, what)

    def until(self, pred, what):
        return super().until(pred, LINE_TIMEOUT, what)


def start_target(path):
    t = spawn([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = Lines(t.stdout, "target")
    m = out.until(lambda l: re.match(r"READY pid=(\d+)", l), "READY from the target")
    return t, out, int(m.group(1))


def send(t, line="go"):
    t.stdin.write((line + "\n").encode())
    t.stdin.flush()


def memspy_argv(a, *args):
    """`memspy record --mode walk ARGS`"""
    return [a.memspy, "record", "--mode", "walk"] + list(args)


def start_memspy(a, pid, extra):
    argv = memspy_argv(a, "--pid", str(pid), *extra)
    print("run: " + " ".join(argv), file=sys.stderr)
    m = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return m, Lines(m.stderr, "memspy", echo=a.verbose)


def finish_memspy(m, err, want_rc):
    rc = m.wait(timeout=LINE_TIMEOUT)
    err.join()
    text = "\n".join(err.all)
    skip_if_not_permitted(rc, text)
    if rc not in want_rc:
        fail("memspy exited with %d, expected %s; stderr:\n%s" % (rc, want_rc, text))
    return text


HEAP_RE = re.compile(r"memspy: heap sample (\d+): stopped at ([0-9.]+) s \(CLOCK_MONOTONIC\)(.*)")


def folded(path):
    stacks = []
    with open(path) as f:
        for line in f:
            stack, _, val = line.rstrip("\n").rpartition(" ")
            stacks.append((stack.split(";"), int(val)))
    return stacks


# ------------------------------------------------------------------ scenarios


def scenario_usage(a):
    for argv, want, text in [
        ([], 64, "--pid is required"),
        (["--pid", "1", "--rate", "0"], 64, "--rate"),
        (["--pid", "1", "--timeline", "x.txt"], 64, ".svg or .json"),
        (["--pid", "1", "--max-pause-share", "0"], 64, "--max-pause-share"),
        (["--pid", "1", "--mode", "probe"], 64, "walk mode"),
        (["--help"], 0, "--walk-interval"),
    ]:
        r = mstest.run(memspy_argv(a, *argv), timeout=30, cwd=a.workdir)
        if r.returncode != want or text not in r.stdout + r.stderr:
            fail("%s: rc %d (want %d), output %r" % (argv, r.returncode, want,
                                                     r.stdout + r.stderr))
    # A pid that does not exist: failed (2), named in the message, nothing written.
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = os.path.join(a.workdir, "dead.svg")
    r = mstest.run(memspy_argv(a, "--pid", str(dead.pid), "-o", out), timeout=30, cwd=a.workdir)
    if r.returncode != 2 or str(dead.pid) not in r.stderr or os.path.exists(out):
        fail("dead pid: rc %d, stderr %r" % (r.returncode, r.stderr))


def scenario_phases(a):
    t, tout, pid = start_target(a.phases)
    tl = os.path.join(a.workdir, "phases.json")
    m, err = start_memspy(a, pid, ["-v", "--walk-interval", "100ms", "--rate", "20",
                                   "--max-pause-share", "20", "--timeline", tl,
                                   "-o", os.path.join(a.workdir, "phases.folded")])
    # memspy is attached and reading once its first heap line is out.
    err.until(lambda l: HEAP_RE.match(l), "the first heap read")
    send(t)
    phases = []
    for _ in range(4):
        pm = tout.until(lambda l: re.match(r"PHASE (\S+) mono=([0-9.]+) (.*)", l), "PHASE")
        fields = dict(kv.split("=") for kv in pm.group(3).split())
        mono = float(pm.group(2))
        # The first heap read whose stop began after the boundary saw this phase.
        hm = err.until(lambda l: (lambda h: h if h and float(h.group(2)) > mono
                                  and "no heap figures" not in h.group(3) else None)(
            HEAP_RE.match(l)), "a heap read after phase " + pm.group(1))
        phases.append((pm.group(1), int(hm.group(1)), {k: int(v) for k, v in fields.items()}))
        if len(phases) < 4:
            send(t)
    m.send_signal(signal.SIGINT)
    finish_memspy(m, err, (0,))
    send(t)
    tout.until(lambda l: l == "DONE", "DONE")
    if t.wait(timeout=LINE_TIMEOUT) != 0:
        fail("the target did not exit cleanly: %d" % t.returncode)

    doc = json.load(open(tl))
    if not doc["heap"] or not doc["allocator"].startswith("glibc"):
        fail("timeline has no heap figures: %s" % doc.get("note"))
    got = {}
    for name, idx, mi in phases:
        s = doc["samples"][idx]
        for key, want in (("in_use", mi["uordblks"]), ("mmapped", mi["hblkhd"])):
            have = s[key]
            err_pct = abs(have - want) * 100.0 / max(want, 1)
            print("phase %-10s sample %3d %-7s memspy %12d target %12d (%.3f%%)%s" % (
                name, idx, key, have, want, err_pct,
                " approximate" if s.get("approximate") else ""))
            if err_pct > 5:
                fail("phase %s: %s off by %.2f%% (more than 5%%)" % (name, key, err_pct))
        if len(s["arenas"]) < 2:
            fail("phase %s: %d arenas in the timeline, the target uses 2" % (name,
                                                                          len(s["arenas"])))
        got[name] = s["in_use"] + s["mmapped"]
    # The shape: hold keeps, free_half drops, grow_again exceeds the first growth.
    if not (got["free_half"] < got["hold"] * 0.8 and got["grow_again"] > got["grow"]):
        fail("the timeline does not show the phases: %s" % got)
    if not doc["growth"]:
        fail("no growth interval marked")


def scenario_sites(a):
    t, tout, pid = start_target(a.sites)
    out = os.path.join(a.workdir, "sites.folded")
    allf = os.path.join(a.workdir, "sites.all.folded")
    # No --timeline: the default lands beside -o (it went to the working directory as
    # memspy-PID.timeline.svg, away from the other files).
    tl = os.path.join(a.workdir, "sites.timeline.svg")
    if os.path.exists(tl):
        os.unlink(tl)
    # 8 s: on a loaded machine a stop that lands while the thread runs (as an
    # unbiased one must) waits for the thread to get a CPU, and the pause
    # budget then allows ~25 stops/s; 100 allocator samples need ~5 s.
    m, err = start_memspy(a, pid, ["-d", "8s", "--rate", "200", "--max-pause-share", "10",
                                   "-o", out, "--all-threads", allf])
    text = finish_memspy(m, err, (0,))
    send(t, "stop")
    sm = tout.until(lambda l: re.match(r"SITES a_ns=(\d+) b_ns=(\d+)", l), "SITES")
    if t.wait(timeout=LINE_TIMEOUT) != 0:
        fail("the target did not exit cleanly")
    a_ns, b_ns = int(sm.group(1)), int(sm.group(2))
    na = sum(v for s, v in folded(out) if "site_a" in s)
    nb = sum(v for s, v in folded(out) if "site_b" in s)
    n_alloc = sum(v for s, v in folded(out))
    n_all = sum(v for s, v in folded(allf))
    n = na + nb
    if n < 100:
        fail("only %d allocator samples in the sites (need 100 for a meaningful ratio)" % n)
    # B's share of the sampled allocator time is binomial(n, p) around the target's own
    # measured share: 4 standard deviations, plus 2 points for the loop's own code.
    p = b_ns / float(a_ns + b_ns)
    tol = 4 * math.sqrt(p * (1 - p) / n) + 0.02
    share = nb / float(n)
    print("sites: A %d, B %d samples (A:B = %.2f); target time A:B = %.2f; B share %.3f, "
          "expected %.3f +- %.3f; allocator samples %d of %d" % (
              na, nb, na / max(nb, 1), a_ns / float(b_ns), share, p, tol, n_alloc, n_all))
    if abs(share - p) > tol:
        fail("B's share %.3f is outside %.3f +- %.3f" % (share, p, tol))
    if n_alloc < 0.5 * n_all:
        fail("the target allocates most of the time, yet only %d of %d samples were "
             "in the allocator" % (n_alloc, n_all))
    if not any("_int_malloc" in s or "_int_free" in s for s, v in folded(out)):
        fail("no allocator-internal frame (_int_malloc/_int_free) in the allocator view")
    root = ET.parse(tl).getroot()  # well-formed, self-contained SVG
    if "svg" not in root.tag or "Heap timeline" not in ET.tostring(root, encoding="unicode"):
        fail("the timeline SVG is not a heap timeline")
    if "estimated slowdown" not in text or "median pause" not in text:
        fail("the summary lacks the pause statistics:\n" + text)


def scenario_own(a):
    t, tout, pid = start_target(a.own)
    out = os.path.join(a.workdir, "own.folded")
    tl = os.path.join(a.workdir, "own.json")
    m, err = start_memspy(a, pid, ["-d", "3s", "--max-pause-share", "10", "-o", out,
                                   "--timeline", tl])
    text = finish_memspy(m, err, (0,))
    send(t, "stop")
    tout.until(lambda l: l == "DONE", "DONE")
    if t.wait(timeout=LINE_TIMEOUT) != 0:
        fail("the target did not exit cleanly")
    if "heap timeline needs glibc" not in text or "a malloc of its own" not in text:
        fail("no clear note that the heap timeline needs glibc:\n" + text)
    doc = json.load(open(tl))
    if doc["heap"] or not doc["samples"] or not all(s["rss"] > 0 for s in doc["samples"]):
        fail("the timeline of a non-glibc target should hold RSS only")
    # The sample may stop inside a helper of the target's malloc (its lock's
    # take/give), so look for malloc/free anywhere above own_site, not only at
    # the tip of the stack.
    def in_own_allocator(s):
        return "own_site" in s and any(f in ("malloc", "free") for f in s[s.index("own_site"):])
    if not any(in_own_allocator(s) for s, v in folded(out)):
        fail("the allocator view has no sample in the target's own malloc/free:\n" +
             open(out).read()[:2000])


def scenario_one_point(a):
    """One heap read in the whole recording: its point must show (a path of one point
    draws nothing, and the timeline looked empty)."""
    t, tout, pid = start_target(a.sites)
    out = os.path.join(a.workdir, "one.folded")
    tl = os.path.join(a.workdir, "one.timeline.svg")
    m, err = start_memspy(a, pid, ["-d", "1s", "--walk-interval", "1h", "-o", out,
                                   "--timeline", tl])
    finish_memspy(m, err, (0,))
    send(t, "stop")
    t.wait(timeout=LINE_TIMEOUT)
    svg = open(tl).read()
    ET.fromstring(svg)  # well-formed
    body = re.sub(r'<g class="hover">.*?</g>', "", svg, flags=re.S)
    dots = re.findall(r'<circle [^>]*r="3" fill="[^"]+"', body)
    if not dots:
        fail("a timeline of one heap read draws no point:\n" + svg[:3000])
    print("one-point timeline: %d dots" % len(dots))


def scenario_target_exits(a):
    t, tout, pid = start_target(a.sites)
    out = os.path.join(a.workdir, "exits.svg")
    tl = os.path.join(a.workdir, "exits.json")
    m, err = start_memspy(a, pid, ["-v", "--walk-interval", "50ms", "-o", out, "--timeline", tl])
    err.until(lambda l: HEAP_RE.match(l), "the first heap read")
    send(t, "stop")  # the target leaves on its own while memspy records
    tout.until(lambda l: l.startswith("SITES"), "SITES")
    if t.wait(timeout=LINE_TIMEOUT) != 0:
        fail("the target did not exit cleanly under memspy: %d" % t.returncode)
    text = finish_memspy(m, err, (1,))
    if "exited with status 0 during the recording" not in text:
        fail("memspy did not say the target exited:\n" + text)
    for f in (out, tl):
        if not os.path.exists(f):
            fail("%s was not written after the target exited" % f)
    ET.parse(out)
    json.load(open(tl))


def scenario_exec(a):
    """The target execs a new program while recorded (bash, asleep in `read`,
    becomes the busy sites program): memspy must notice at its next stop, end
    there and keep only the old program's stacks."""
    t = spawn(["bash", "-c", 'echo "READY pid=$$"; read line; exec "$0"', a.sites],
              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tout = Lines(t.stdout, "target")
    pid = int(tout.until(lambda l: re.match(r"READY pid=(\d+)", l), "READY").group(1))
    out = os.path.join(a.workdir, "exec.folded")
    m, err = start_memspy(a, pid, ["-v", "--idle", "--rate", "200", "--max-pause-share", "20",
                                   "--walk-interval", "50ms", "-d", "60", "-o", out])
    err.until(lambda l: HEAP_RE.match(l), "the first heap read")
    err.until(lambda l: HEAP_RE.match(l), "a second heap read")
    send(t, "exec")
    text = finish_memspy(m, err, (1,))
    if "exec'd a new program" not in text:
        fail("memspy did not say the target exec'd:\n" + text)
    every = out.replace(".folded", ".all.folded")  # with the sleeping stacks
    stacks = folded(every)
    if not stacks:
        fail("no stack before the exec in " + every)
    # Every stop before the exec found bash running its -c string (asleep in
    # its read builtin, or woken by the line and executing `exec`); a stop
    # after it would find the sites program, whose stacks hold no such frame.
    other = [(s, v) for s, v in stacks if "parse_and_execute" not in s]
    if other:
        fail("stacks taken after the exec (the new program): %s" % other[:3])
    send(t, "stop")
    tout.until(lambda l: l.startswith("SITES"), "SITES from the exec'd program")
    if t.wait(timeout=LINE_TIMEOUT) != 0:
        fail("the exec'd program did not exit cleanly under memspy: %d" % t.returncode)


def scenario_fork_threads(a):
    """The record target forks a child and spawns short-lived threads mid-recording."""
    t = spawn([a.rec, "forkthreads", "400"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tout = Lines(t.stdout, "target")
    pid = int(tout.until(lambda l: re.match(r"ready (\d+)", l), "ready").group(1))
    m, err = start_memspy(a, pid, ["-v", "--walk-interval", "50ms", "--rate", "200",
                                   "--max-pause-share", "20",
                                   "-o", os.path.join(a.workdir, "ft.folded"),
                                   "--timeline", os.path.join(a.workdir, "ft.json")])
    err.until(lambda l: HEAP_RE.match(l), "the first heap read")
    send(t, "go")
    tout.until(lambda l: l == "done", "done")
    # The work can fit in one walk interval; the target idles until "check",
    # so wait for a second heap read (the timeline needs two points).
    err.until(lambda l: HEAP_RE.match(l), "a second heap read")
    m.send_signal(signal.SIGINT)
    finish_memspy(m, err, (0,))
    send(t, "check")
    tout.until(lambda l: l.startswith("selfcheck"), "selfcheck")
    if t.wait(timeout=LINE_TIMEOUT) != 0 or "selfcheck ok" not in tout.all:
        fail("the target was harmed: %s" % tout.all[-3:])
    doc = json.load(open(os.path.join(a.workdir, "ft.json")))
    if not doc["heap"] or len(doc["samples"]) < 2:
        fail("no heap timeline from the fork/threads target")


def scenario_idle(a):
    """Sleeping threads: counted apart, out of the flame graphs unless --idle."""
    for idle in (False, True):
        t = spawn([a.bursts, "1000", "10000", "2", os.path.join(a.workdir, "stats")],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        tout = Lines(t.stdout, "target")
        pid = int(tout.until(lambda l: re.match(r"READY pid=(\d+)", l), "READY").group(1))
        out = os.path.join(a.workdir, "idle%d.folded" % idle)
        allf = os.path.join(a.workdir, "idle%d.all.folded" % idle)
        m, err = start_memspy(a, pid, ["-d", "2s", "--max-pause-share", "10", "-o", out,
                                       "--all-threads", allf, "--timeline",
                                       os.path.join(a.workdir, "idle.json")] +
                              (["--idle"] if idle else []))
        text = finish_memspy(m, err, (0,))
        send(t, "stop")
        tout.until(lambda l: l == "DONE", "DONE")
        if t.wait(timeout=LINE_TIMEOUT) != 0:
            fail("the target did not exit cleanly")
        sm = re.search(r"thread samples: ([\d,]+) running and ([\d,]+) sleeping \(in ([^)]*)\)",
                       text)
        if not sm:
            fail("no count of running and sleeping samples in the summary:\n" + text)
        running, sleeping = (int(sm.group(i).replace(",", "")) for i in (1, 2))
        # The main thread waits in read() all along, the workers sleep 90% of the time.
        if sleeping <= running or "clock_nanosleep" not in sm.group(3) or \
                "read" not in sm.group(3):
            fail("the sleeping samples are not where the threads sleep: %s" % sm.group(0))
        asleep = sum(v for s, v in folded(allf) if s[-1].startswith("[asleep in "))
        total = sum(v for s, v in folded(allf))
        if not idle and (asleep or total != running):
            fail("without --idle the all-threads view holds %d sleeping of %d samples "
                 "(%d running)" % (asleep, total, running))
        if idle and (asleep != sleeping or total != running + sleeping):
            fail("with --idle the all-threads view holds %d sleeping of %d samples, the "
                 "summary says %d and %d" % (asleep, total, sleeping, running))
        if any(s[-1].startswith("[asleep in ") for s, v in folded(out)):
            fail("a sleeping stack in the allocator view")
        print("idle=%s: %d running, %d sleeping (%s); all-threads view %d samples" % (
            idle, running, sleeping, sm.group(3), total))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True, help="the memspy binary (its record --mode walk)")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--phases")
    ap.add_argument("--sites")
    ap.add_argument("--own")
    ap.add_argument("--rec")
    ap.add_argument("--bursts")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    a.workdir = os.path.join(a.workdir, a.scenario)
    os.makedirs(a.workdir, exist_ok=True)
    fn = {"usage": scenario_usage, "phases": scenario_phases, "sites": scenario_sites,
          "own": scenario_own, "target-exits": scenario_target_exits,
          "fork-threads": scenario_fork_threads, "idle": scenario_idle,
          "one-point": scenario_one_point, "exec": scenario_exec}[a.scenario]

    def one():
        fn(a)
        print("PASS: walk %s" % a.scenario)

    mstest.main(one)


if __name__ == "__main__":
    main()
