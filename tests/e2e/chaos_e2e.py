#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Survival tests of `memspy record` (the real binary) against
# memspy-chaos-target: memspy SIGKILLed at random moments, during probe
# installation and removal, interrupted with SIGINT, the target forking or
# churning threads. The target must always finish with the right checksum.
# Kill trials are seeded (the seed is printed); one trial is rerun with
#   chaos_e2e.py ... --scenario remove-kill --seed S --first-trial K --trials 1
import argparse
import ctypes
import os
import random
import signal
import subprocess
import sys
import threading
import time

SKIP = 77
ENTRY_BYTES = 16
PATCHED_FULL = 9  # entries of ALLOC_FUNCS patched by a full install (memalign = aligned_alloc)
ALLOC_FUNCS = ["malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc",
               "memalign", "valloc", "pvalloc"]


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def log(msg):
    print(msg, flush=True)


class LineReader:
    """Reads a pipe's lines in a thread so that every wait has a deadline.
    A wait looks at every line seen so far: the lines it waits for appear
    once each, and waiting for a later one must not lose an earlier one."""

    def __init__(self, pipe, name, echo):
        self.cv = threading.Condition()
        self.lines = []
        self.closed = False
        self.name = name
        self.echo = echo
        self.t = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.t.start()

    def _run(self, pipe):
        for line in pipe:
            line = line.rstrip("\n")
            if self.echo:
                log(f"    [{self.name}] {line}")
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def wait_for(self, pred, timeout, what):
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                hit = next((l for l in self.lines if pred(l)), None)
                if hit is not None:
                    return hit
                if self.closed:
                    raise Fail(f"{self.name} closed its output before {what}")
                left = end - time.monotonic()
                if left <= 0:
                    raise Fail(f"timed out after {timeout} s waiting for {what}")
                self.cv.wait(left)

    def seen(self, word):
        with self.cv:
            return any(l == word or l.startswith(word + " ") for l in self.lines)


# ---------------------------------------------------------------- processes

def become_subreaper():
    """memspy's watchdog is a setsid'd child of memspy: when memspy dies it is
    re-parented to us, so that we can see whether it ends, and reap it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def death_signal(sig):
    """preexec_fn: the child gets sig when the driver dies (CTest timeout, ^C),
    so neither a target nor memspy outlives a killed test."""
    def f():
        ctypes.CDLL(None).prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    return f


def children_of_us(exclude):
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] != "Z":
            out.append((int(d), st[st.index("(") + 1:st.rindex(")")]))
    return out


def reap_orphans(exclude, timeout):
    """Waits up to timeout for processes re-parented to us to end; returns
    those still running (then killed) as [(pid, comm)]."""
    end = time.monotonic() + timeout
    while True:
        left = children_of_us(exclude)
        for pid, _ in children_of_us(set()):
            if pid not in exclude:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        if not left or time.monotonic() > end:
            break
        time.sleep(0.02)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return left


def thread_states(pid):
    """[(tid, state letter, TracerPid)] of every thread of pid."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                kv = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        except OSError:
            continue
        out.append((int(tid), kv["State"].split()[0], int(kv["TracerPid"])))
    return out


def check_untraced(pid):
    """No thread of pid may be traced or stopped once memspy is gone."""
    bad = [s for s in thread_states(pid) if s[2] != 0 or s[1] in ("T", "t")]
    if bad:
        raise Fail(f"threads left traced or stopped after memspy left: "
                   f"{[(tid, st, f'TracerPid {tp}') for tid, st, tp in bad]}")


def sigtrap_caught(pid):
    """Does pid handle SIGTRAP (bit 5 of SigCgt in /proc/PID/status)?"""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTRAP - 1)))
    raise Fail(f"/proc/{pid}/status has no SigCgt line")


def dmesg_lines():
    try:
        r = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
        return r.stdout.splitlines() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def dmesg_since(before):
    """Kernel messages logged since `before` (a dmesg_lines() result)."""
    now = dmesg_lines()
    if now is None or before is None:
        return "(dmesg not readable)"
    new = now[len(before):] if now[:len(before)] == before else now[-15:]
    return "\n".join(new[-15:]) or ("(nothing new; for a SIGTRAP, no 'traps:' line suggests "
                                     "the int3 ran while traced or while memspy's handler was "
                                     "installed, and the signal came later)")


class Target:
    def __init__(self, args, mode, iters, nchild=0, echo=False):
        cmd = [args.target, mode, str(iters)] + ([str(nchild)] if mode == "fork" else [])
        self.dmesg = dmesg_lines()
        # Own session: killpg reaches its forked children on every path.
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1, start_new_session=True,
                                  preexec_fn=death_signal(signal.SIGKILL))
        self.out = LineReader(self.p.stdout, "target", echo)
        self.pid = int(self.out.wait_for(lambda l: l.startswith("ready "), 30,
                                         "the target's 'ready'").split()[1])

    def say(self, word):
        try:
            self.p.stdin.write(word + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass

    def died(self):
        """A description of how the target ended, or None while it runs."""
        if self.p.poll() is None:
            return None
        rc = self.p.returncode
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited {rc}"
        return (f"{how}; its output: {self.out.lines[-8:]}\n"
                f"    dmesg since it started:\n{dmesg_since(self.dmesg)}")

    def wait_line(self, prefix, timeout, what):
        try:
            return self.out.wait_for(lambda l: l.startswith(prefix), timeout, what)
        except Fail as e:
            if self.out.closed:
                try:
                    self.p.wait(timeout=5)  # the pipe closes just before the exit
                except subprocess.TimeoutExpired:
                    pass
            d = self.died()
            raise Fail(f"{e}: the target {d}" if d else str(e))

    def finish(self, ref_sum):
        """'exit', then the self-check must pass with the reference checksum."""
        self.say("exit")
        line = self.wait_line("selfcheck", 120, "the target's self-check")
        if not line.startswith("selfcheck ok"):
            raise Fail(f"target: {line}")
        got = line.split("checksum=")[1].split()[0]
        if ref_sum and got != ref_sum:
            raise Fail(f"target checksum {got}, the unprofiled run's is {ref_sum}")
        rc = self.p.wait(timeout=60)
        if rc != 0:
            raise Fail(f"target exited {rc} after 'selfcheck ok'")
        return line

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait()
        else:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)  # its forked children, if any
            except (ProcessLookupError, PermissionError):
                pass


class Memspy:
    def __init__(self, args, pid, out, opts, echo=True, env=None):
        self.cmd = [args.memspy, "record", "--pid", str(pid), "-o", out] + opts
        log("  $ " + " ".join(f"{k}={v}" for k, v in (env or {}).items()) +
            (" " if env else "") + " ".join(self.cmd))
        self.t0 = time.monotonic()
        # Driver gone: memspy detaches cleanly on SIGTERM (the target dies too).
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, preexec_fn=death_signal(signal.SIGTERM),
                                  env=dict(os.environ, **env) if env else None)
        self.err = LineReader(self.p.stderr, "memspy", echo)
        self.rec_at = None

    def wait_recording(self, timeout=90):
        try:
            self.err.wait_for(lambda l: l.startswith("memspy: recording pid"), timeout,
                              "memspy's 'recording pid' line")
        except Fail:
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            text = "\n".join(self.err.lines)
            if self.p.returncode == 2 and ("not permitted" in text or "ptrace_scope" in text):
                raise Skip("ptrace is not permitted here")
            if self.p.returncode == 2 and "no allocator entry point" in text:
                raise Refused(text)
            raise Fail(f"memspy never started recording (exit {self.p.returncode}): {text}")
        self.rec_at = time.monotonic()

    def sites(self):
        """Function names memspy said it probed in libc ('malloc@libc.so.6', ...)."""
        out = []
        for l in self.err.lines:
            if "probed" in l and "entry points:" in l:
                for item in l.split("entry points:", 1)[1].split(","):
                    name, _, mod = item.strip().partition("@")
                    if mod.startswith("libc.so"):
                        out.append(name)
        return out

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail(f"memspy did not exit within {timeout} s")
        self.err.t.join(5)
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


# ---------------------------------------------------------------- text checks

def elf_loads(path):
    """PT_LOAD headers of an ELF file as [(offset, vaddr, filesz)] (readelf -lW)."""
    r = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, timeout=30)
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            out.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    if not out:
        raise Fail(f"readelf -lW {path}: no PT_LOAD ({r.stderr.strip()})")
    return out


_sym_cache = {}


def elf_funcs(path):
    """Dynamic function symbols of path: {name: vaddr} (nm -D)."""
    if path not in _sym_cache:
        r = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                           text=True, timeout=30)
        syms = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in ("T", "t", "W", "i"):
                syms.setdefault(f[2].split("@")[0], int(f[0], 16))
        if "malloc" not in syms:
            raise Fail(f"nm -D {path}: malloc not found ({r.stderr.strip()})")
        _sym_cache[path] = syms
    return _sym_cache[path]


def libc_mapping(pid):
    """(path as memspy-independent file to read, start, end, file offset) of libc's r-xp mapping."""
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if (len(parts) == 6 and "x" in parts[1] and
                    os.path.basename(parts[5].strip()).startswith("libc.so")):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                path = parts[5].strip()
                # The mapped file itself, as the target sees it (chroots, namespaces).
                mf = f"/proc/{pid}/map_files/{parts[0]}"
                return (mf if os.path.exists(mf) else path), path, start, end, int(parts[2], 16)
    raise Fail(f"no executable libc mapping in /proc/{pid}/maps")


def entry_table(pid, names):
    """[(name, runtime address, file offset)] of libc functions in pid."""
    fpath, shown, start, _, moff = libc_mapping(pid)
    loads = elf_loads(fpath)
    seg = next((l for l in loads if l[0] <= moff < l[0] + l[2]), None)
    if seg is None:
        raise Fail(f"{shown}: no PT_LOAD holds the mapping's file offset 0x{moff:x}")
    bias = start - (seg[1] + moff - seg[0])
    syms = elf_funcs(fpath)
    out = []
    for n in names:
        if n not in syms:
            continue
        va = syms[n]
        s = next((l for l in loads if l[1] <= va < l[1] + l[2]), None)
        if s is None:
            raise Fail(f"{shown}: {n} at 0x{va:x} lies in no PT_LOAD")
        out.append((n, bias + va, s[0] + va - s[1]))
    return fpath, out


def read_entries(pid, names):
    """{name: (address, bytes in the target, bytes in the file)}."""
    fpath, table = entry_table(pid, names)
    res = {}
    with open(fpath, "rb") as fh, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for n, addr, off in table:
            fh.seek(off)
            want = fh.read(ENTRY_BYTES)
            mem.seek(addr)
            have = mem.read(ENTRY_BYTES)
            res[n] = (addr, have, want)
    return res


def entry_diffs(entries):
    return [f"{n}@0x{a:x}: target {h.hex()} != file {w.hex()}"
            for n, (a, h, w) in sorted(entries.items()) if h != w]


def whole_text_diff(pid):
    """First difference between any executable file mapping of pid and its file, or None."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            off = int(parts[2], 16)
            mf = f"/proc/{pid}/map_files/{parts[0]}"
            with open(mf if os.path.exists(mf) else parts[5], "rb") as fh:
                fh.seek(off)
                want = fh.read(end - start)
            mem.seek(start)
            have = mem.read(len(want))
            if have != want:
                i = next(i for i in range(len(want)) if have[i] != want[i])
                return (f"{parts[5]} at 0x{start + i:x}: {have[i:i+8].hex()} != "
                        f"{want[i:i+8].hex()}")
    return None


def self_test_comparison(entries):
    """The comparison must see a one-byte difference: flip one file byte of each
    entry in a copy of the data and expect every entry reported."""
    flipped = {n: (a, h, bytes([w[0] ^ 0x01]) + w[1:]) for n, (a, h, w) in entries.items()}
    if len(entry_diffs(flipped)) != len(entries):
        raise Fail("the entry-byte comparison does not detect a flipped byte")


# ---------------------------------------------------------------- output checks

def check_output(out, must_exist, may_be_empty=False):
    """The final file is either absent or complete; returns the names of the
    temporary files left next to it (removed). may_be_empty: a valid empty
    file is complete too (a --live view in which no sampled block is live)."""
    d, base = os.path.dirname(out), os.path.basename(out)
    tmps = [n for n in os.listdir(d) if n.startswith(base + ".tmp.")]
    odd = [n for n in os.listdir(d) if n.startswith(base) and n != base and n not in tmps]
    if odd:
        raise Fail(f"unexpected files next to the output: {odd}")
    if os.path.exists(out):
        with open(out) as f:
            lines = f.read().splitlines()
        for no, l in enumerate(lines, 1):
            stack, _, val = l.rpartition(" ")
            if not stack or not val.isdigit():
                raise Fail(f"{out}:{no}: half-written or not folded: {l[:120]!r}")
        if must_exist and not lines and not may_be_empty:
            raise Fail(f"{out} is empty")
    elif must_exist:
        raise Fail(f"{out} was not written")
    for n in tmps:
        os.unlink(os.path.join(d, n))
    return tmps


# ---------------------------------------------------------------- scenarios

class Ctx:
    def __init__(self, args):
        self.args = args
        self.refs = {}
        self.ref_time = {}
        self.known = set()

    def reference(self, iters):
        """The checksum and go->done time of an unprofiled run of ITERS."""
        if iters not in self.refs:
            t = Target(self.args, "mix", iters)
            try:
                t0 = time.monotonic()
                t.say("go")
                line = t.wait_line("checksum", 120, "the reference run's checksum")
                self.ref_time[iters] = time.monotonic() - t0
                r, c = line.split()[1:3]
                if r != c:
                    raise Fail(f"reference run: read {r} != calc {c}")
                t.wait_line("done", 30, "'done'")
                t.finish(None)
                self.refs[iters] = r
            finally:
                t.kill()
            log(f"reference: {iters} steps x 4 threads, checksum {self.refs[iters]}, "
                f"{self.ref_time[iters]:.2f} s unprofiled")
        return self.refs[iters]

    def guard(self, *procs):
        self.known = {p.p.pid for p in procs if p}


def after_memspy_died(ctx, t, out, must_exist=False):
    """Checks common to every trial once memspy is gone: memspy's watchdog
    ended (it seizes the target to put it back, so it goes first), the
    target untraced and running, its libc entries identical to the file and
    SIGTRAP not handled (the chaos target never handles it), the output
    whole. Returns (tmp files left, entries still patched: none)."""
    left = reap_orphans(ctx.known, 10.0)
    if left:
        raise Fail(f"processes left running 10 s after memspy died (killed now): {left}")
    d = t.died()
    if d:
        raise Fail(f"the target {d}")
    check_untraced(t.pid)
    patched = entry_diffs(read_entries(t.pid, ALLOC_FUNCS))
    if patched:
        raise Fail(f"entry points still patched after memspy's watchdog ended: {patched}")
    if sigtrap_caught(t.pid):
        raise Fail("SIGTRAP is still handled (memspy's handler) after the watchdog ended")
    tmps = check_output(out, must_exist)
    return tmps, patched


KILL_CONFIGS = [
    ("mix", []), ("mix", []), ("mix", ["--exact"]), ("mix", []), ("mix", ["--live"]),
    ("mix", ["--sample-bytes", "64k"]), ("threads", []), ("mix", []), ("mix", ["--exact"]),
    ("fork", []),
]


class Refused(Fail):
    """memspy declined to probe before touching the target (exit 2): a known
    memspy bug (seen ~1 trial in 60 under install-kill), not a survival result."""


def one_kill_trial(ctx, k, seed, wd, phase):
    """One trial: start, record, SIGKILL memspy (when depends on phase), check."""
    a = ctx.args
    rnd = random.Random(seed)
    mode, opts = KILL_CONFIGS[k % len(KILL_CONFIGS)]
    if phase == "install":
        opts = [[], ["--exact"], ["--live"]][k % 3]
        mode = "mix"
    if phase == "remove":
        opts = [[], ["--exact"], ["--live"], ["--exact"]][k % 4]
        mode = "mix"
    if a.memspy_opts is not None:
        opts = a.memspy_opts.split()
    ref = ctx.reference(a.iters)
    out = os.path.join(wd, f"k{k}.folded")
    t = m = None
    info = {"midrun": False, "landed": ""}
    try:
        t = Target(a, mode, a.iters, nchild=2)
        if phase == "install":
            # The target is already allocating when memspy arrives.
            t.say("go")
        m = Memspy(a, t.pid, out, opts, echo=False)
        ctx.guard(t, m)
        if phase == "install":
            # Half the trials: at the 'recording' line (install just ended);
            # the others at a random moment of attach/install.
            if k % 2 == 0:
                m.wait_recording()
                ctx.rec_delay = 0.5 * ctx.rec_delay + 0.5 * (m.rec_at - m.t0)
                info["landed"] = "at the recording line"
            else:
                delay = rnd.uniform(0.0, ctx.rec_delay)
                while time.monotonic() - m.t0 < delay and m.p.poll() is None:
                    time.sleep(0.001)
                info["landed"] = ("after the recording line" if any(
                    l.startswith("memspy: recording") for l in m.err.lines)
                    else f"{delay * 1000:.0f} ms into attach/install")
        else:
            m.wait_recording()
            ctx.rec_delay = 0.8 * ctx.rec_delay + 0.2 * (m.rec_at - m.t0)
            t.say("go")
            tgo = time.monotonic()
            if phase == "record":
                delay = rnd.uniform(0.02, 1.3 * ctx.ref_time[a.iters])
            else:
                delay = rnd.uniform(0.05, 0.6 * ctx.ref_time[a.iters])
            while time.monotonic() - tgo < delay and m.p.poll() is None:
                time.sleep(0.002)
            if phase == "remove":
                m.p.send_signal(signal.SIGINT)
                # From "before the signal is seen" to "after the bytes are back".
                gap = [0.0, 0.001, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.008, 0.012,
                       0.02, 0.035][k % 11]
                gap += rnd.uniform(0.0, 0.001)
                time.sleep(gap)
                info["landed"] = f"{gap * 1000:.1f} ms after SIGINT"
            else:
                info["landed"] = f"{delay:.2f} s after go"
        info["midrun"] = not t.out.seen("done")
        if m.p.poll() is not None and not (phase == "remove" and m.p.returncode == 0):
            raise Fail(f"memspy exited {m.p.returncode} by itself before the kill: "
                       f"{m.err.lines[-5:]}")
        traced_at_kill = any(tp for _, _, tp in thread_states(t.pid))
        if not traced_at_kill:
            info["landed"] += (" (not yet attached)" if phase == "install" else
                               " (memspy had already detached)")
        m.p.kill()
        rc = m.wait(30)
        if phase == "remove" and rc == 0:
            info["landed"] += " (memspy had already finished: exit 0)"
        elif rc != -signal.SIGKILL:
            raise Fail(f"memspy exit status {rc}, expected death by SIGKILL")
        tmps, patched = after_memspy_died(ctx, t, out, must_exist=rc == 0)
        line = t.wait_line("checksum", 180, "the target's checksum after memspy's death")
        r, c = line.split()[1:3]
        if r != c or r != ref:
            raise Fail(f"checksum read {r} calc {c}, reference {ref}")
        t.wait_line("done", 30, "'done'")
        kids = [l for l in t.out.lines if l.startswith("child")]
        t.finish(ref)
        info.update(tmps=len(tmps), patched=len(patched), kids=kids, mode=mode, opts=opts,
                    traced=traced_at_kill)
        return info
    except Refused:
        raise  # not a survival result: scen_kill runs the trial again
    except (Fail, OSError) as e:
        msg = str(e)
        if t and "the target " not in msg:
            # Say how the target ended, if it did (a check may have found
            # /proc/PID empty or gone while it was exiting).
            try:
                t.p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            msg = f"{e}; the target {t.died() or 'still runs'}"
        if m and m.err.lines:
            msg += f"\n    memspy's last lines: {m.err.lines[-6:]}"
        raise Fail(f"[{mode} {' '.join(opts) or 'default'}; killed {info['landed'] or '-'}] "
                   f"{msg}")
    finally:
        if m:
            m.kill()
        if t:
            t.kill()
        reap_orphans(ctx.known, 0)


def scen_kill(ctx, wd, phase):
    a = ctx.args
    base = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    log(f"seed {base} (trial k uses seed {base}+k and configuration k; rerun one with "
        f"--seed {base} --first-trial K --trials 1)")
    ctx.reference(a.iters)
    ctx.rec_delay = 0.5
    ok, fails, midrun, tmp_left, still_patched, partial, refused = 0, [], 0, 0, 0, 0, 0
    by_cfg = {}
    for k in range(a.first_trial, a.first_trial + a.trials):
        seed = base + k
        try:
            # A trial where memspy declined to probe kills nothing: it is
            # logged and run again with another seed (at most twice), so the
            # trial count stays the number of real kills.
            for retry in range(3):
                try:
                    info = one_kill_trial(ctx, k, seed, wd, phase)
                    break
                except Refused as e:
                    refused += 1
                    log(f"  trial {k} seed {seed}: memspy REFUSED to probe (known bug, "
                        f"not a kill): {str(e)[-400:]}")
                    if retry == 2:
                        raise Fail(f"memspy refused to probe 3 times in a row: {e}")
                    seed += 1 << 20
        except Skip:
            raise
        except Fail as e:
            fails.append((k, seed, str(e)))
            log(f"  trial {k} seed {seed}: FAIL: {e}")
            continue
        ok += 1
        midrun += info["midrun"]
        tmp_left += info["tmps"] > 0
        still_patched += info["patched"] > 0
        partial += 0 < info["patched"] < PATCHED_FULL
        cfg = f"{info['mode']} {' '.join(info['opts']) or 'default'}"
        by_cfg[cfg] = by_cfg.get(cfg, 0) + 1
        log(f"  trial {k} seed {seed} [{cfg}]: survived, checksum ok; killed "
            f"{info['landed']}{' mid-run' if info['midrun'] else ' after the work'}"
            f"{'; temp file left' if info['tmps'] else ''}"
            f"; {info['patched']}/{len(ALLOC_FUNCS)} libc entries left jmp-patched"
            f"{'; ' + ', '.join(info['kids']) if info['kids'] else ''}")
    log(f"{phase}-kill: {ok}/{a.trials} trials survived with the reference checksum "
        f"({midrun} killed while the 4 workers ran); per configuration: {by_cfg}")
    log(f"info: memspy left its output's temporary file behind in {tmp_left}/{ok} trials "
        f"(SIGKILL gives it no chance to unlink it; the final file was never half-written); "
        f"libc entries still jmp-patched once the watchdog ended in {still_patched}/{ok} "
        f"(each such trial fails)")
    if refused:
        log(f"info: memspy refused to probe (exit 2, target untouched) {refused} time(s); "
            f"those trials were run again")
    for k, seed, e in fails:
        log(f"FAILED trial {k} (seed {seed}): {e}")
    if fails:
        raise Fail(f"{len(fails)} of {a.trials} trials failed")


# Remote system calls (attach/remote.c) in the order memspy makes them: in
# install, mmap of the region (libc's `syscall` instruction: no trampoline
# exists yet), mprotect of its data pages, in ring mode memfd_create, mmap
# of the memfd over the ring part and close of its descriptor (the ring
# shared with memspy), madvise(WIPEONFORK), then in ring mode
# madvise(POPULATE_WRITE) of the ring and the page toucher's three runs,
# each ending in getpid (the thread runs stub code before the trampoline:
# memspy may die while it loops), rt_sigaction(SIGTRAP); in removal,
# rt_sigaction back, madvise(DONTNEED) of the ring. (name, syscall number,
# k-th call of that number, at removal)
RING_ONLY = ("madvise-dontneed", "memfd_create", "mmap-shared", "close-memfd",
             "madvise-populate", "touch-control", "touch-slots")
RSYS_CALLS = [("mprotect", 10, 1, False), ("memfd_create", 319, 1, False),
              ("mmap-shared", 9, 2, False), ("close-memfd", 3, 1, False),
              ("madvise-wipeonfork", 28, 1, False),
              ("madvise-populate", 28, 2, False), ("touch-control", 39, 1, False),
              ("touch-slots", 39, 3, False),
              ("rt_sigaction-install", 13, 1, False), ("rt_sigaction-restore", 13, 2, True),
              ("madvise-dontneed", 28, 3, True)]
RSYS_POINTS = ["set", "enter", "exit", "back"]


def one_rsys_trial(ctx, wd, name, nr, k, removal, point, opts):
    """memspy SIGKILLs itself (MEMSPY_TEST_KILL_AT) at one instant of one
    remote syscall; returns how the target ended (None: it survived, checked)."""
    a = ctx.args
    ref = ctx.reference(a.iters)
    out = os.path.join(wd, f"{name}-{point}.folded")
    t = m = None
    try:
        t = Target(a, "mix", a.iters)
        t.say("go")
        m = Memspy(a, t.pid, out, opts, echo=False,
                   env={"MEMSPY_TEST_KILL_AT": f"{point}:{nr}:{k}"})
        ctx.guard(t, m)
        if removal:
            m.wait_recording()
            m.p.send_signal(signal.SIGINT)
        rc = m.wait(60)
        if rc != -signal.SIGKILL:
            raise Fail(f"memspy exited {rc}, expected to kill itself at {point} of {name}: "
                       f"{m.err.lines[-4:]}")
        try:
            t.p.wait(timeout=0.5)  # a target that dies of it does so at once
        except subprocess.TimeoutExpired:
            pass
        d = t.died()
        if d:
            return d
        after_memspy_died(ctx, t, out)
        line = t.wait_line("checksum", 180, "the target's checksum after memspy's death")
        r, c = line.split()[1:3]
        if r != c or r != ref:
            raise Fail(f"checksum read {r} calc {c}, reference {ref}")
        t.wait_line("done", 30, "'done'")
        t.finish(ref)
        return None
    finally:
        if m:
            m.kill()
        if t:
            t.kill()
        reap_orphans(ctx.known, 0)


def scen_rsys_kill(ctx, wd):
    """Every instant of every remote syscall that runs through the stub
    page's trampoline: memspy dies there, the target must live on. The one
    through libc (the first mmap) is the known remaining window: reported."""
    fails, ok = [], 0
    for opts in ([], ["--exact"]):
        for name, nr, k, removal in RSYS_CALLS:
            if name in RING_ONLY and opts:
                continue  # the ring is only shared and released in ring mode
            for point in RSYS_POINTS:
                try:
                    d = one_rsys_trial(ctx, wd, name, nr, k, removal, point, opts)
                except Fail as e:
                    d = str(e)
                what = f"{name} ({nr}#{k}) at {point}, {' '.join(opts) or 'ring'}"
                if d:
                    fails.append(f"{what}: {d}")
                    log(f"  {what}: FAIL: {d}")
                else:
                    ok += 1
                    log(f"  {what}: survived, checksum ok")
    # The window this cannot close: proof that the check sees a dead target.
    d = one_rsys_trial(ctx, wd, "mmap-libc", 9, 1, False, "exit", [])
    log(f"  mmap (9#1, libc's syscall instruction) at exit: "
        f"{'the target ' + d.splitlines()[0] if d else 'survived'} (known window: "
        f"no trampoline exists before the first mmap)")
    log(f"rsys-kill: {ok}/{ok + len(fails)} kill points survived")
    if fails:
        raise Fail(f"{len(fails)} kill points lost the target: " + "; ".join(fails))


def restored_now(pid, names, caught_before):
    """(addresses of entries that differ from the file (aliases such as
    memalign = aligned_alloc share one), whole-text diff, SIGTRAP handled
    differently than before)."""
    e = read_entries(pid, names)
    return (sorted({f"0x{a:x}" for a, h, w in e.values() if h != w}), whole_text_diff(pid),
            sigtrap_caught(pid) != caught_before)


def one_reclaim_trial(ctx, wd, k, opts, watchdog):
    """Record, SIGKILL memspy mid-run; with watchdog, its watchdog must put
    the code and the SIGTRAP action back; without (MEMSPY_TEST_WATCHDOG=
    disarm-only: it only disarms, as before), the next memspy must. Then a
    second record works and ends byte-identical, and the target passes."""
    a = ctx.args
    ref = ctx.reference(a.iters)
    rnd = random.Random(k)
    out1 = os.path.join(wd, f"r{k}-killed.folded")
    out2 = os.path.join(wd, f"r{k}-again.folded")
    names = sorted(set(ALLOC_FUNCS))
    t = m = m2 = None
    try:
        t = Target(a, "mix", a.iters)
        caught = sigtrap_caught(t.pid)
        t.say("go")
        m = Memspy(a, t.pid, out1, opts, echo=False,
                   env=None if watchdog else {"MEMSPY_TEST_WATCHDOG": "disarm-only"})
        ctx.guard(t, m)
        m.wait_recording()
        ents, _, sig = restored_now(t.pid, names, caught)
        if not ents or not sig:
            raise Fail(f"while memspy records, the checks must see its probes: {len(ents)} "
                       f"entries differ, SIGTRAP handled: {sigtrap_caught(t.pid)}")
        time.sleep(rnd.uniform(0.1, 0.4))
        if t.out.seen("checksum"):
            raise Fail("the workers finished before the kill: raise --iters")
        m.p.kill()
        t_kill = time.monotonic()
        rc = m.wait(30)
        if rc != -signal.SIGKILL:
            raise Fail(f"memspy exit status {rc}, expected death by SIGKILL")
        if watchdog:
            # Polled, not timed: the figure is reported, the bound is only a hang guard.
            while True:
                ents, text, sig = restored_now(t.pid, names, caught)
                if not ents and not text and not sig:
                    break
                if time.monotonic() - t_kill > 20:
                    raise Fail(f"20 s after the kill: entries {ents}, text {text}, "
                               f"SIGTRAP action changed: {sig}")
                time.sleep(0.02)
            log(f"  trial {k} [{' '.join(opts) or 'ring'}]: code byte-identical and SIGTRAP "
                f"action back {time.monotonic() - t_kill:.2f} s after the SIGKILL")
            tmps, _ = after_memspy_died(ctx, t, out1)
        else:
            left = reap_orphans(ctx.known, 10.0)
            if left:
                raise Fail(f"processes left running after memspy died: {left}")
            ents, _, sig = restored_now(t.pid, names, caught)
            if not ents or not sig:
                raise Fail(f"the watchdog was told to only disarm, yet the probes are gone "
                           f"({len(ents)} entries differ, SIGTRAP action changed: {sig}): "
                           f"this trial would not test the new memspy's clean-up")
            log(f"  trial {k} [{' '.join(opts) or 'ring'}]: watchdog disarm-only: "
                f"{len(ents)} entries left patched, memspy's SIGTRAP handler left")
            check_untraced(t.pid)
        d = t.died()
        if d:
            raise Fail(f"the target {d}")
        m2 = Memspy(a, t.pid, out2, opts + ["--duration", "1"], echo=False)
        ctx.guard(t, m2)
        rc = m2.wait(120)
        if rc != 0:
            raise Fail(f"the second memspy exited {rc}: {m2.err.lines[-6:]}")
        said = [l for l in m2.err.lines if "left by an earlier memspy" in l]
        if watchdog and said:
            raise Fail(f"the watchdog put everything back, yet the second memspy says {said}")
        if not watchdog:
            want = (f"memspy: warning: found probes left by an earlier memspy (pid {m.p.pid}) "
                    f"that was killed: restored {len(ents)} entry point"
                    f"{'' if len(ents) == 1 else 's'} and the SIGTRAP action")
            if said != [want]:
                raise Fail(f"the second memspy should say once {want!r}; it said {said}")
            log(f"  second memspy: {said[0]}")
        samples = next((l.split(" from ", 1)[1] for l in m2.err.lines
                        if " from " in l and "sample" in l), "?")
        tmps = check_output(out2, must_exist=True)
        if tmps:
            raise Fail(f"the second memspy left temporary files: {tmps}")
        ents, text, sig = restored_now(t.pid, names, caught)
        if ents or text or sig:
            raise Fail(f"after the second record: entries {ents}, text {text}, SIGTRAP action "
                       f"changed: {sig}")
        check_untraced(t.pid)
        log(f"  second record exit 0 (from {samples.strip()}); code byte-identical, SIGTRAP "
            f"action as before")
        left = reap_orphans(ctx.known, 10.0)
        if left:
            raise Fail(f"processes left running after the second memspy: {left}")
        line = t.wait_line("checksum", 600, "the target's checksum")
        r, c = line.split()[1:3]
        if r != c or r != ref:
            raise Fail(f"checksum read {r} calc {c}, reference {ref}")
        t.wait_line("done", 60, "'done'")
        t.finish(ref)
    finally:
        for x in (m, m2, t):
            if x:
                x.kill()
        reap_orphans(ctx.known, 0)


def scen_reclaim(ctx, wd):
    """SIGKILL of memspy mid-record: the watchdog restores; with the watchdog
    held to disarming only, the next memspy restores and says so."""
    fails = []
    cfgs = [([], True), ([], False), (["--exact"], True), (["--exact"], False)]
    for k in range(ctx.args.trials):
        opts, watchdog = cfgs[k % len(cfgs)]
        try:
            one_reclaim_trial(ctx, wd, k, opts, watchdog)
        except Fail as e:
            fails.append(f"trial {k} [{' '.join(opts) or 'ring'}, "
                         f"{'watchdog' if watchdog else 'disarm-only watchdog'}]: {e}")
            log(f"  FAIL: {fails[-1]}")
    if fails:
        raise Fail(f"{len(fails)} of {ctx.args.trials} trials failed")


def record_then_sigint(ctx, wd, mode, opts, at, nchild=0):
    """Record, SIGINT memspy when the target prints `at`, check everything."""
    a = ctx.args
    # One stop per call: fewer steps keep an exact run within seconds.
    iters = a.exact_iters if "--exact" in opts else a.iters
    ref = ctx.reference(iters)
    out = os.path.join(wd, f"{mode}-{'-'.join(o.strip('-') for o in opts) or 'default'}.folded")
    t = m = None
    try:
        t = Target(a, mode, iters, nchild=nchild)
        m = Memspy(a, t.pid, out, opts)
        ctx.guard(t, m)
        m.wait_recording()
        # The checks below must see memspy while it is there.
        try:
            check_untraced(t.pid)
        except Fail:
            pass
        else:
            raise Fail("the traced check does not see memspy tracing the target")
        names = sorted(set(ALLOC_FUNCS))
        during = read_entries(t.pid, names)
        patched = entry_diffs(during)
        log(f"  while recording: {len(patched)} libc entries differ from the file "
            f"(probes in): {', '.join(n for n, (_, h, w) in sorted(during.items()) if h != w)}")
        if not patched:
            raise Fail("no libc entry differs from its file while memspy records: "
                       "the byte comparison would not see a probe")
        t.say("go")
        t.wait_line(at, 600, f"the target's '{at}'")
        log(f"  target printed '{at}': SIGINT to memspy")
        m.p.send_signal(signal.SIGINT)
        rc = m.wait(180)
        if rc != 0:
            raise Fail(f"memspy exited {rc} after SIGINT, expected 0: {m.err.lines[-6:]}")
        d = t.died()
        if d:
            raise Fail(f"the target {d}")
        check_untraced(t.pid)
        # The target is still running (its workers, or the background thread that
        # allocates until 'exit'): the bytes must be back while it runs.
        sites = m.sites()
        names = sorted(set(ALLOC_FUNCS) | set(sites))
        after = read_entries(t.pid, names)
        self_test_comparison(after)
        diffs = entry_diffs(after)
        if diffs:
            raise Fail(f"entry bytes not restored after SIGINT: {diffs}")
        # Every patched entry must be one memspy names (aliases share an address:
        # memalign is aligned_alloc in glibc 2.36).
        listed = {after[n][0] for n in sites if n in after}
        unlisted = [n for n, (a, h, w) in sorted(during.items()) if h != w and a not in listed]
        if unlisted:
            raise Fail(f"entries patched while recording but not in memspy's list "
                       f"{sites}: {unlisted}")
        whole = whole_text_diff(t.pid)
        if whole:
            raise Fail(f"executable text differs from its file after SIGINT: {whole}")
        if t.p.poll() is not None:
            raise Fail("the target ended before its text could be checked while running")
        log(f"  after memspy left (target still running): {len(after)} entries identical to "
            f"the file ({ENTRY_BYTES} B each: {', '.join(sorted(after))}); whole executable "
            f"text identical; memspy listed: {', '.join(sites)}")
        # At the default 512 KiB mean the target's ~1 MiB of live blocks holds
        # no sampled block now and then; memspy must then say 0 B is live.
        nothing_live = any(" 0 B still live" in l for l in m.err.lines)
        tmps = check_output(out, must_exist=True, may_be_empty=nothing_live)
        if tmps:
            raise Fail(f"memspy exited 0 but left temporary files: {tmps}")
        left = reap_orphans(ctx.known, 5.0)
        if left:
            raise Fail(f"processes left running 5 s after memspy exited: {left}")
        line = t.wait_line("checksum", 600, "the target's checksum")
        r, c = line.split()[1:3]
        if r != c or r != ref:
            raise Fail(f"checksum read {r} calc {c}, reference {ref}")
        t.wait_line("done", 60, "'done'")
        kids = [l for l in t.out.lines if l.startswith("child")]
        last = t.finish(ref)
        log(f"  target: {last}")
        return kids
    finally:
        if m:
            m.kill()
        if t:
            t.kill()
        reap_orphans(ctx.known, 0)


def scen_sigint(ctx, wd):
    for opts in ([], ["--exact"], ["--live"]):
        log(f"SIGINT mid-run, memspy {' '.join(opts) or '(default: ring)'}")
        record_then_sigint(ctx, wd, "mix", opts, "half")


def scen_fork(ctx, wd):
    for opts in ([], ["--exact"]):
        log(f"fork while probed, memspy {' '.join(opts) or '(default: ring)'}")
        kids = record_then_sigint(ctx, wd, "fork", opts, "done", nchild=ctx.args.children)
        log("  children: " + "; ".join(kids))
        if len(kids) != ctx.args.children + 1 or kids[-1] != (
                f"children ok {ctx.args.children}/{ctx.args.children}"):
            raise Fail(f"forked children did not all pass: {kids}")


def scen_threads(ctx, wd):
    for opts in ([], ["--exact"]):
        log(f"threads born and ending while probed, memspy {' '.join(opts) or '(default)'}")
        record_then_sigint(ctx, wd, "threads", opts, "done")


def scen_selftest(ctx, wd):
    """The checks must be able to fail: a target whose libc text we patch
    ourselves must be reported, and so must a wrong checksum."""
    a = ctx.args
    t = Target(a, "mix", 2000)
    try:
        e = read_entries(t.pid, ["malloc"])
        if entry_diffs(e):
            raise Fail(f"an untouched target's malloc differs from the file: {entry_diffs(e)}")
        addr, have, _ = e["malloc"]
        # A harmless change: the target waits for 'go' and never calls malloc
        # until then; the original byte is put back before it does.
        with open(f"/proc/{t.pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(addr + 15)
            mem.write(bytes([have[15] ^ 0xff]))
            try:
                d1 = entry_diffs(read_entries(t.pid, ["malloc"]))
                d2 = whole_text_diff(t.pid)
            finally:
                mem.seek(addr + 15)
                mem.write(have[15:16])
        if not d1 or not d2:
            raise Fail(f"a changed byte in malloc was not detected: entries {d1}, text {d2}")
        log(f"selftest: a flipped byte is reported: {d1[0]}; {d2}")
        if entry_diffs(read_entries(t.pid, ["malloc"])) or whole_text_diff(t.pid):
            raise Fail("could not restore the byte changed by the self-test")
        # A stopped target is reported (SIGSTOP stands in for a stop memspy left).
        os.kill(t.pid, signal.SIGSTOP)
        try:
            for _ in range(100):
                if any(st == "T" for _, st, _ in thread_states(t.pid)):
                    break
                time.sleep(0.01)
            check_untraced(t.pid)
        except Fail as ex:
            log(f"selftest: a stopped target is reported: {ex}")
        else:
            raise Fail("a stopped target was not reported")
        finally:
            os.kill(t.pid, signal.SIGCONT)
        t.say("go")
        t.wait_line("done", 60, "'done'")
        try:
            t.finish("0000000000000000")
        except Fail as ex:
            log(f"selftest: a wrong reference checksum is reported: {ex}")
        else:
            raise Fail("a wrong reference checksum was accepted")
    finally:
        t.kill()
    # A target that dies is reported with its signal.
    t = Target(a, "mix", 200000)
    try:
        t.say("go")
        os.kill(t.pid, signal.SIGSEGV)
        try:
            t.wait_line("checksum", 60, "the checksum")
        except Fail as ex:
            if "SIGSEGV" not in str(ex):
                raise Fail(f"a target killed by SIGSEGV was reported as: {ex}")
            log(f"selftest: a dead target is reported: {str(ex).splitlines()[0]}")
        else:
            raise Fail("a target killed by SIGSEGV was not reported")
    finally:
        t.kill()
    # A half-written output is reported; temporary files are counted.
    out = os.path.join(wd, "half.folded")
    with open(out, "w") as f:
        f.write("main;work;malloc 4096\nmain;wo")
    open(out + ".tmp.AbC123", "w").close()
    try:
        check_output(out, False)
    except Fail as ex:
        log(f"selftest: a half-written output is reported: {ex}")
    else:
        raise Fail("a half-written output was accepted")
    os.unlink(out)
    if check_output(out, False) != ["half.folded.tmp.AbC123"]:
        raise Fail("the temporary file next to the output was not found")
    # A process left behind (here: an orphaned sleep) is reported and killed.
    subprocess.run(["sh", "-c", "sleep 30 & exit 0"], timeout=10)
    left = reap_orphans(set(), 0.2)
    if not any(comm == "sleep" for _, comm in left):
        raise Fail(f"an orphaned process was not found: {left}")
    log(f"selftest: a process left behind is reported: {left}")


SCENARIOS = {
    "kill": lambda c, w: scen_kill(c, w, "record"),
    "install-kill": lambda c, w: scen_kill(c, w, "install"),
    "remove-kill": lambda c, w: scen_kill(c, w, "remove"),
    "sigint": scen_sigint,
    "fork": scen_fork,
    "threads": scen_threads,
    "selftest": scen_selftest,
    "rsys-kill": scen_rsys_kill,
    "reclaim": scen_reclaim,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--iters", type=int, default=150000, help="steps per worker thread")
    ap.add_argument("--exact-iters", type=int, default=8000,
                    help="steps per worker when memspy runs with --exact (SIGINT, fork, threads)")
    ap.add_argument("--children", type=int, default=4, help="fork scenario: children")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--memspy-opts", default=None,
                    help="kill scenarios: these memspy options in every trial (e.g. '--exact')")
    ap.add_argument("--first-trial", type=int, default=0, help="to rerun trial K of a seed")
    args = ap.parse_args()
    # SIGTERM/SIGHUP run the finally blocks that kill what we started.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    become_subreaper()
    wd = os.path.join(args.workdir, args.scenario)
    os.makedirs(wd, exist_ok=True)
    for n in os.listdir(wd):
        os.unlink(os.path.join(wd, n))
    ctx = Ctx(args)
    try:
        SCENARIOS[args.scenario](ctx, wd)
    except Skip as e:
        log(f"SKIP: {e}")
        return SKIP
    except Fail as e:
        log(f"FAIL: {args.scenario}: {e}")
        return 1
    log(f"PASS: {args.scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
