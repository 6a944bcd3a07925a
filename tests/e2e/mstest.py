# SPDX-License-Identifier: MIT
"""
The harness every end-to-end driver imports (doc/TESTING.md): children
spawned in their own session and killed on every way out, targets followed
line by line with a deadline on every wait, the ready/go/done/check handshake
of the recording targets, memspy run with timeouts, exit 77 where ptrace is
not permitted, and readers of the folded outputs. A driver then holds only
what it checks.
"""
import argparse
import atexit
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

SKIP = 77  # CTest's SKIP_RETURN_CODE: only for a capability this machine lacks


class Fail(Exception):
    """A check failed: the driver prints 'FAIL: ...' and exits 1."""


class Skip(Exception):
    """A capability is missing (ptrace, a library): the driver exits 77."""


def fail(msg):
    raise Fail(msg)


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------- children

_children = []


def spawn(argv, **kw):
    """Popen in a session of its own (a target's own children go with it),
    remembered so that it is killed on every way out of the driver."""
    kw.setdefault("start_new_session", True)
    p = subprocess.Popen(argv, **kw)
    p.own_session = kw["start_new_session"]
    _children.append(p)
    return p


def kill(p):
    """SIGKILL p (its whole session when it has one) and reap it."""
    if p is None or p.poll() is not None:
        return
    try:
        if getattr(p, "own_session", False):
            os.killpg(p.pid, signal.SIGKILL)
        else:
            p.kill()
    except OSError:
        p.kill()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def reap_all():
    for p in _children:
        kill(p)


def _on_signal(signum, frame):
    # CTest's timeout and a user's ^C: leave through the finally blocks and atexit.
    sys.exit(128 + signum)


atexit.register(reap_all)
for _sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(_sig, _on_signal)


class LineReader:
    """Reads a pipe's lines on a thread so that every wait has a deadline and
    two pipes can be followed at once; every line is kept in .lines."""

    def __init__(self, pipe, name, echo=True):
        self.q = queue.Queue()
        self.lines = []
        self.name = name
        self.echo = echo
        self.t = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.t.start()

    def _run(self, pipe):
        for line in pipe:
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.echo:
                print(f"[{self.name}] {line}", flush=True)
            self.q.put(line)
        self.q.put(None)

    def next(self, timeout, what):
        """The next line; Fail after timeout seconds or at the end of the pipe."""
        return self._next(timeout, what)

    def _next(self, timeout, what):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise Fail(f"timed out after {timeout} s waiting for {what}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise Fail(f"{self.name} closed its output before {what}")
            return line

    def wait_for(self, pred, timeout, what):
        """The first line for which pred is true, within timeout seconds in all."""
        end = time.monotonic() + timeout
        while True:
            line = self._next(max(end - time.monotonic(), 0.001), what)
            if pred(line):
                return line

    def until(self, pred, timeout, what):
        """pred's first true value over the lines (a regex match, say)."""
        end = time.monotonic() + timeout
        while True:
            got = pred(self._next(max(end - time.monotonic(), 0.001), what))
            if got:
                return got

    def join(self, timeout=5):
        self.t.join(timeout)


class Target:
    """
    A target program, readiness by a line matching `ready` (never a sleep).
    .pid is the number in the ready line's first group (the target's own
    getpid()), or the child's pid when the pattern has no group.
    """

    def __init__(self, argv, ready=r"^ready (\d+)", timeout=30, name="target", echo=True,
                 **kw):
        self.p = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                       bufsize=1, **kw)
        self.out = LineReader(self.p.stdout, name, echo)
        rx = re.compile(ready)
        line = self.out.wait_for(lambda l: rx.search(l), timeout, f"the {name}'s ready line")
        self.ready = rx.search(line)
        self.pid = int(self.ready.group(1)) if rx.groups else self.p.pid

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def line(self, timeout=60, what="a line from the target"):
        return self.out.next(timeout, what)

    def wait_for(self, pred, timeout=60, what="a line from the target"):
        return self.out.wait_for(pred, timeout, what)

    def ask(self, cmd, timeout=60):
        self.send(cmd)
        return self.line(timeout, f"the target's answer to {cmd!r}")

    def alive(self):
        return self.p.poll() is None

    def check_alive(self):
        if not self.alive():
            raise Fail(f"the target died during the recording: status {self.p.returncode}")

    def wait(self, timeout=30):
        """The target's exit status; Fail if it does not exit in time."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail(f"the target did not exit within {timeout} s")

    def quit(self, cmd="q", close=True, timeout=60):
        """Asks the target to finish: it must exit 0 (unharmed)."""
        self.p.stdin.write(cmd + "\n")
        if close:
            self.p.stdin.close()
        else:
            self.p.stdin.flush()
        rc = self.wait(timeout)
        if rc != 0:
            raise Fail(f"target {self.pid} exited {rc}")

    def selfcheck(self, timeout=60):
        """The recording targets' end: 'check' -> 'selfcheck ok', then exit 0."""
        self.send("check")
        line = self.wait_for(lambda l: l.startswith("selfcheck"), timeout,
                             "the target's self-check")
        if line != "selfcheck ok":
            raise Fail(f"target: {line}")
        rc = self.wait(30)
        if rc != 0:
            raise Fail(f"target exited {rc}")

    def kill(self):
        kill(self.p)


class BusyTarget(Target):
    """
    A target that works on threads until told to stop (quiesce_busy,
    snapshot_busy): it prints 'READY PID', answers 'ping' with 'pong OPS'
    (its operation counter) and exits 0 on 'q'.
    """

    def __init__(self, argv, timeout=60, **kw):
        super().__init__(argv, ready=r"^READY (\d+)", timeout=timeout, echo=False, **kw)

    def ops(self):
        a = self.ask("ping")
        if not a.startswith("pong "):
            raise Fail(f"the target answered {a!r} to ping")
        return int(a.split()[1])

    def runs_on(self):
        """Returns once the operation counter has moved on: the target still works."""
        before = self.ops()
        while self.ops() == before:
            pass


# -------------------------------------------------------------- memspy

def not_permitted(rc, text):
    """memspy's failure to attach for want of permission (exit 2, with its hint)."""
    return rc == 2 and ("not permitted" in text or "ptrace_scope" in text)


def skip_if_not_permitted(rc, text):
    if not_permitted(rc, text):
        raise Skip("ptrace is not permitted here")


def run(argv, timeout=120, skip_unpermitted=False, echo=False, **kw):
    """Runs memspy (or anything) to its end: a CompletedProcess with text
    output; Fail when it outlives timeout seconds."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = spawn(argv, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(p)
        raise Fail(f"{' '.join(argv)} did not exit within {timeout} s")
    if echo:
        for line in (err or "").splitlines():
            print(f"[memspy] {line}", flush=True)
    if skip_unpermitted:
        skip_if_not_permitted(p.returncode, (out or "") + (err or ""))
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def run_ok(argv, timeout=120, **kw):
    """Runs memspy to its end, passing on its stderr; Fail unless it exits 0.
    Returns its stdout."""
    r = run(argv, timeout=timeout, **kw)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise Fail(f"{' '.join(argv)} exited {r.returncode}")
    return r.stdout


def start_recording(argv, timeout=60, **kw):
    """Starts a recording memspy and waits for its 'memspy: recording pid'
    line: the probes are in. Returns (process, reader of its stderr); Skip
    when it could not attach for want of permission."""
    print("$ " + " ".join(argv), flush=True)
    m = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    err = LineReader(m.stderr, "memspy")
    try:
        err.wait_for(lambda l: l.startswith("memspy: recording pid"), timeout,
                     "memspy's 'recording' line")
    except Fail:
        try:
            m.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Fail(f"memspy neither recorded nor exited within {timeout + 30} s")
        err.join()
        skip_if_not_permitted(m.returncode, "\n".join(err.lines))
        raise
    return m, err


class Recording:
    """What one record() saw: the target's 'expect...' lines, memspy's stderr
    lines and exit status, the target's pid."""

    def __init__(self, expect, err, rc, pid):
        self.expect, self.err, self.rc, self.pid = expect, err, rc, pid


def record(memspy, target_argv, opts, out, env=None, on_half=None, stop=signal.SIGINT,
           expect_rc=(0,), check_text=True, target_survives=True, done_timeout=120):
    """
    One recording of a target that speaks the recording handshake
    (tests/targets/common/handshake.h): it prints 'ready PID' and waits; once
    memspy says it is recording the driver writes 'go'; the target allocates,
    prints its 'expect...' lines (and 'half' midway), then 'done'; memspy gets
    `stop`; after memspy exits, the target's text must equal its files
    (check_text) and it must pass its own 'check'.
    on_half(target, memspy) runs at 'half'; with target_survives false the
    recording ends there (the target is killed or left to die).
    """
    target = proc = None
    try:
        target = Target(target_argv, env=env)
        cmd = [memspy, "record", "--pid", str(target.pid), "-o", out] + opts
        proc, merr = start_recording(cmd)  # env is the target's (LD_PRELOAD...), not memspy's
        target.send("go")  # the probes are in: the counted allocations start now
        expect = []
        while True:
            line = target.line(done_timeout, "the target's 'done'")
            if line == "half" and on_half:
                on_half(target.p, proc)
                if not target_survives:
                    break
            elif line.startswith("expect"):
                expect.append(line)
            elif line == "done":
                break
        if target_survives and stop:
            proc.send_signal(stop)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise Fail("memspy did not exit within 120 s")
        merr.join()
        if rc not in expect_rc:
            raise Fail(f"memspy exited {rc}, expected {' or '.join(map(str, expect_rc))}")
        if target_survives:
            target.check_alive()
            if check_text:
                text_check(target.pid)
            target.selfcheck()
        return Recording(expect, merr.lines, rc, target.pid)
    finally:
        kill(proc)
        if target:
            target.kill()


def expect_lines(expect, kind):
    """{stack: (bytes, count)} of the target's 'KIND STACK BYTES COUNT' lines."""
    out = {}
    for line in expect:
        parts = line.split()
        if parts[0] == kind:
            out[parts[1]] = (int(parts[2]), int(parts[3]))
    return out


def text_check(pid):
    """Every executable file mapping of pid must equal its file: no probe left behind."""
    checked = []
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            off, path = int(parts[2], 16), parts[5]
            try:
                with open(path, "rb") as fh:
                    fh.seek(off)
                    want = fh.read(end - start)
            except OSError as e:
                raise Fail(f"text check: cannot read {path}: {e}")
            mem.seek(start)
            have = mem.read(len(want))
            if have != want:
                i = next(i for i in range(len(want)) if have[i] != want[i])
                raise Fail(f"text check: {path} differs from its file at 0x{start + i:x} "
                           f"(file offset 0x{off + i:x}): {have[i:i+8].hex()} != "
                           f"{want[i:i+8].hex()}")
            checked.append((os.path.basename(path), len(want)))
    if not any(name.startswith("libc.so") for name, _ in checked):
        raise Fail(f"text check: no libc mapping found in {pid}'s maps")
    print("text check: identical to the files: " +
          ", ".join(f"{n} ({s} B)" for n, s in checked), flush=True)


def tracer_of(pid):
    """TracerPid of pid's status, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------- outputs

def parse_folded(path, allow_empty=False):
    """[(frames, value)] from a folded file; every line must be 'a;b;c VALUE'."""
    out = []
    if not os.path.exists(path):
        raise Fail(f"no output file at {path}")
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, val = line.rpartition(" ")
            if not stack or not val.isdigit():
                raise Fail(f"{path}:{no}: not a folded line: {line!r}")
            out.append((stack.split(";"), int(val)))
    if not out and not allow_empty:
        raise Fail(f"{path}: empty")
    return out


def sum_matching(folded, expect):
    """Sum of the values of folded lines whose stack ends with the frames in expect."""
    e = expect.split(";")
    return sum(v for fr, v in folded if fr[-len(e):] == e)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def check_output_valid(path, fmt):
    """path is a whole file of format fmt, with no temporary file left beside it."""
    if not os.path.exists(path):
        raise Fail(f"no output file at {path}")
    if fmt == "folded":
        parse_folded(path)
    elif fmt == "svg":
        root = ET.parse(path).getroot()
        if not root.tag.endswith("svg"):
            raise Fail(f"{path}: root element is {root.tag}, not svg")
    elif fmt == "speedscope":
        doc = read_json(path)
        if "profiles" not in doc or "shared" not in doc:
            raise Fail(f"{path}: not a speedscope document")
    leftovers = [n for n in os.listdir(os.path.dirname(path) or ".")
                 if n.startswith(os.path.basename(path) + ".") or ".tmp" in n]
    if leftovers:
        raise Fail(f"temporary files left next to the output: {leftovers}")
    print(f"output {path}: valid {fmt}", flush=True)


# ---------------------------------------------------------------- main

def main(fn, name=""):
    """Runs fn() and exits: 0 when it returns, 1 on Fail, 77 on Skip; the
    children are killed on every way out."""
    tag = f"{name}: " if name else ""
    try:
        rc = fn()
    except Skip as e:
        print(f"SKIP: {tag}{e}", flush=True)
        rc = SKIP
    except Fail as e:
        print(f"FAIL: {tag}{e}", flush=True)
        rc = 1
    finally:
        reap_all()
    sys.exit(rc or 0)


def scenario_main(scenarios, targets=(), add_args=None, subdir=True):
    """
    Runs the one scenario named on the command line: --memspy, one --TARGET
    path per name in targets, --scenario, --workdir, --iters, and whatever
    add_args(parser) adds. The scenario gets the parsed arguments and its work
    directory (with subdir, workdir/SCENARIO, emptied first).
    """
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    for t in targets:
        ap.add_argument(f"--{t}", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(scenarios))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--iters", type=int, default=0, help="override the target's iterations")
    if add_args:
        add_args(ap)
    args = ap.parse_args()
    wd = os.path.join(args.workdir, args.scenario) if subdir else args.workdir
    os.makedirs(wd, exist_ok=True)
    if subdir:
        for n in os.listdir(wd):
            os.unlink(os.path.join(wd, n))

    def one():
        scenarios[args.scenario](args, wd)
        print(f"PASS: {args.scenario}", flush=True)

    main(one, args.scenario)
