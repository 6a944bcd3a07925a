#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of `memspy record` against memspy-rec-target (a real,
# self-checking child): stacks and shares, exact counts, the leak view, and
# the target's survival when memspy is interrupted or the target forks/dies.
import argparse
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

SKIP = 77
SITES = ["rec_site_a", "rec_site_b", "rec_site_c"]


class Fail(Exception):
    pass


class LineReader:
    """Reads a pipe's lines in a thread so every wait has a deadline."""

    def __init__(self, pipe, name, echo=True):
        self.q = queue.Queue()
        self.lines = []
        self.name = name
        self.echo = echo
        self.t = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.t.start()

    def _run(self, pipe):
        for line in pipe:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.echo:
                print(f"[{self.name}] {line}", flush=True)
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pred, timeout, what):
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
            if pred(line):
                return line


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


def parse_folded(path):
    """[(frames, value)] from a folded file; every line must be 'a;b;c VALUE'."""
    out = []
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, val = line.rpartition(" ")
            if not stack or not val.isdigit():
                raise Fail(f"{path}:{no}: not a folded line: {line!r}")
            out.append((stack.split(";"), int(val)))
    if not out:
        raise Fail(f"{path}: empty")
    return out


def sum_matching(folded, expect):
    """Sum of the values of folded lines whose stack ends with the frames in expect."""
    e = expect.split(";")
    return sum(v for fr, v in folded if fr[-len(e):] == e)


def check_output_valid(path, fmt):
    if not os.path.exists(path):
        raise Fail(f"no output file at {path}")
    if fmt == "folded":
        parse_folded(path)
    elif fmt == "svg":
        root = ET.parse(path).getroot()
        if not root.tag.endswith("svg"):
            raise Fail(f"{path}: root element is {root.tag}, not svg")
    elif fmt == "speedscope":
        with open(path) as f:
            doc = json.load(f)
        if "profiles" not in doc or "shared" not in doc:
            raise Fail(f"{path}: not a speedscope document")
    leftovers = [n for n in os.listdir(os.path.dirname(path) or ".")
                 if n.startswith(os.path.basename(path) + ".") or ".tmp" in n]
    if leftovers:
        raise Fail(f"temporary files left next to the output: {leftovers}")
    print(f"output {path}: valid {fmt}", flush=True)


def kill(p):
    if p and p.poll() is None:
        p.kill()
        p.wait()


def run(args, mode, iters, memspy_opts, out, on_half=None, stop_after_done=signal.SIGINT,
        expect_rc=0, check_text=True, target_survives=True):
    """One recording. Returns (target's expect lines, memspy's stderr lines)."""
    target = memspy = None
    try:
        target = subprocess.Popen([args.target, mode, str(iters)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        tout = LineReader(target.stdout, "target")
        pid = int(tout.wait_for(lambda l: l.startswith("ready "), 30, "the target's 'ready'")
                  .split()[1])
        cmd = [args.memspy, "record", "--pid", str(pid), "-o", out] + memspy_opts
        print("$ " + " ".join(cmd), flush=True)
        memspy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        merr = LineReader(memspy.stderr, "memspy")
        try:
            merr.wait_for(lambda l: l.startswith("memspy: recording pid"), 60,
                          "memspy's 'recording' line")
        except Fail:
            memspy.wait(timeout=30)
            text = "\n".join(merr.lines)
            if memspy.returncode == 2 and ("not permitted" in text or "ptrace_scope" in text):
                print("SKIP: ptrace is not permitted here", flush=True)
                sys.exit(SKIP)
            raise
        # memspy's probes are in: the counted allocations start now.
        target.stdin.write("go\n")
        target.stdin.flush()
        expect = []
        while True:
            line = tout.wait_for(lambda l: True, 120, "the target's 'done'")
            if line == "half" and on_half:
                on_half(target, memspy)
                if not target_survives:
                    break
            elif line.startswith("expect"):
                expect.append(line)
            elif line == "done":
                break
        if target_survives and stop_after_done:
            memspy.send_signal(stop_after_done)
        try:
            rc = memspy.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise Fail("memspy did not exit within 120 s")
        merr.t.join(5)
        if rc != expect_rc:
            raise Fail(f"memspy exited {rc}, expected {expect_rc}")
        if target_survives:
            if target.poll() is not None:
                raise Fail(f"the target died during the recording: status {target.returncode}")
            if check_text:
                text_check(pid)
            target.stdin.write("check\n")
            target.stdin.flush()
            line = tout.wait_for(lambda l: l.startswith("selfcheck"), 60,
                                 "the target's self-check")
            if line != "selfcheck ok":
                raise Fail(f"target: {line}")
            if target.wait(timeout=30) != 0:
                raise Fail(f"target exited {target.returncode}")
        return expect, merr.lines
    finally:
        kill(memspy)
        kill(target)


def expect_lines(expect, kind):
    out = {}
    for line in expect:
        parts = line.split()
        if parts[0] == kind:
            out[parts[1]] = (int(parts[2]), int(parts[3]))
    return out


def scen_mix_exact(args, wd):
    # Bytes, then counts: both must equal what the target made, 4 threads running.
    for view, col in (([], 0), (["--count"], 1)):
        out = os.path.join(wd, "exact%s.folded" % ("-count" if view else ""))
        expect, _ = run(args, "mix", args.iters or 100, ["--exact"] + view, out)
        folded = parse_folded(out)
        exp = expect_lines(expect, "expect-folded")
        total = sum(v for _, v in folded)
        matched = 0
        for stack, vals in exp.items():
            got = sum_matching(folded, stack)
            print(f"{stack}: memspy {got}, target {vals[col]}", flush=True)
            if got != vals[col]:
                raise Fail(f"{stack}: memspy counted {got}, the target made {vals[col]} "
                           f"({'allocations' if col else 'bytes'})")
            matched += got
        if matched != total:
            raise Fail(f"memspy recorded {total - matched} more "
                       f"{'allocations' if col else 'bytes'} than the target's sites made; "
                       f"lines: {[(';'.join(f[-4:]), v) for f, v in folded]}")


def scen_unwinders(args, wd):
    # Every backend must find the same stacks, exactly, and --lines names the sources.
    for uw in ("elfutils", "libunwind", "fp"):
        out = os.path.join(wd, f"{uw}.folded")
        extra = ["--lines"] if uw == "elfutils" else []
        expect, _ = run(args, "mix", args.iters or 50,
                        ["--exact", "--count", "--unwinder", uw] + extra, out)
        folded = parse_folded(out)
        if extra:
            # "rec_site_a (site_a.c:12)" -> "rec_site_a", after checking the file name.
            for fr, _ in folded:
                for f in fr:
                    if f.startswith("rec_site_") and f"(site_{f[9]}.c:" not in f:
                        raise Fail(f"--lines: frame {f!r} does not name site_{f[9]}.c")
            folded = [([f.split(" (")[0] for f in fr], v) for fr, v in folded]
        for stack, (_, count) in expect_lines(expect, "expect-folded").items():
            got = sum_matching(folded, stack)
            print(f"{uw}: {stack}: memspy {got}, target {count}", flush=True)
            if got != count:
                raise Fail(f"--unwinder {uw}: {stack}: memspy counted {got}, the target "
                           f"made {count}")


def scen_custom_probe(args, wd):
    # --probe SYMBOL: a custom allocator in the executable, counted exactly.
    out = os.path.join(wd, "pool.folded")
    expect, err = run(args, "pool", args.iters or 100,
                      ["--exact", "--count", "--probe", "rec_pool_alloc"], out)
    folded = parse_folded(out)
    for stack, (_, count) in expect_lines(expect, "expect-folded").items():
        got = sum_matching(folded, stack)
        print(f"{stack}: memspy {got}, target {count}", flush=True)
        if got != count:
            raise Fail(f"{stack}: memspy counted {got}, the target made {count}")
    if not any("rec_pool_alloc@" in l for l in err):
        raise Fail("the summary does not list rec_pool_alloc among the probed entry points")


def scen_mix_sampled(args, wd):
    out = os.path.join(wd, "sampled.folded")
    expect, err = run(args, "mix", args.iters or 4000, ["--sample-bytes", "16k"], out)
    folded = parse_folded(out)
    exp = expect_lines(expect, "expect-folded")
    # The shares rest on the samples delivered: a starved drain loses samples
    # (counted, made up for in the weights) rather than stop the target, so the
    # bound is 4 standard deviations of a share at that count, never under 2 points.
    m = [re.search(r"from ([0-9,]+) samples", l) for l in err]
    n = max([int(x.group(1).replace(",", "")) for x in m if x] or [1])
    total = sum(v for _, v in folded)
    got = {s: sum_matching(folded, s) for s in exp}
    gsum = sum(got.values())
    esum = sum(v[0] for v in exp.values())
    if gsum < 0.95 * total:
        raise Fail(f"only {gsum} of {total} bytes are on the target's stacks")
    for s, v in exp.items():
        share_m, share_t = 100.0 * got[s] / gsum, 100.0 * v[0] / esum
        print(f"{s}: memspy {share_m:.2f}%, target {share_t:.2f}%", flush=True)
        bound = max(2.0, 400.0 * (share_t / 100 * (1 - share_t / 100) / n) ** 0.5)
        if abs(share_m - share_t) > bound:
            raise Fail(f"{s}: share {share_m:.2f}% differs from the target's "
                       f"{share_t:.2f}% by more than {bound:.1f} points ({n} samples)")
    ratio = gsum / esum
    print(f"estimated total {gsum} B vs actual {esum} B (ratio {ratio:.3f})", flush=True)
    if not 0.8 < ratio < 1.25:
        raise Fail(f"estimated total bytes off by more than 20%: {ratio:.3f}")


def scen_leak(args, wd):
    out = os.path.join(wd, "live.folded")
    expect, _ = run(args, "leak", args.iters or 100, ["--exact", "--live"], out)
    folded = parse_folded(out)
    live = expect_lines(expect, "expect-live")
    (stack, (lbytes, _)), = live.items()
    got = sum_matching(folded, stack)
    other = sum(v for _, v in folded) - got
    print(f"{stack}: live {got} B, target leaked {lbytes} B; other live {other} B", flush=True)
    if got != lbytes:
        raise Fail(f"--live shows {got} bytes at the leaking site, the target leaked {lbytes}")
    if other > 0.01 * lbytes:
        raise Fail(f"--live shows {other} bytes elsewhere (more than 1% of the leak): "
                   f"{[(';'.join(f[-4:]), v) for f, v in folded if f[-3:] != stack.split(';')]}")


def interrupt_at_half(sig):
    def f(target, memspy):
        print(f"sending {signal.Signals(sig).name} to memspy mid-recording", flush=True)
        memspy.send_signal(sig)
    return f


def scen_sigint(args, wd):
    out = os.path.join(wd, "int.svg")
    run(args, "mix", args.iters or 3000, ["--sample-bytes", "64k"], out,
        on_half=interrupt_at_half(signal.SIGINT), stop_after_done=None)
    check_output_valid(out, "svg")


def scen_sigterm(args, wd):
    out = os.path.join(wd, "term.speedscope.json")
    run(args, "mix", args.iters or 3000, ["--sample-bytes", "64k"], out,
        on_half=interrupt_at_half(signal.SIGTERM), stop_after_done=None)
    check_output_valid(out, "speedscope")


def scen_sighup(args, wd):
    out = os.path.join(wd, "hup.folded")
    run(args, "mix", args.iters or 3000, ["--exact"], out,
        on_half=interrupt_at_half(signal.SIGHUP), stop_after_done=None)
    check_output_valid(out, "folded")


def scen_kill_target(args, wd):
    out = os.path.join(wd, "killed.folded")

    def killer(target, memspy):
        print("killing the target mid-recording", flush=True)
        target.kill()

    _, err = run(args, "mix", args.iters or 3000, ["--sample-bytes", "64k"], out,
                 on_half=killer, expect_rc=1, target_survives=False)
    check_output_valid(out, "folded")
    if not any("signal 9" in l or "killed" in l for l in err):
        raise Fail("memspy did not say that the target was killed")


def scen_fork_threads(args, wd):
    out = os.path.join(wd, "fork.folded")
    expect, err = run(args, "forkthreads", args.iters or 400, ["--exact"], out)
    check_output_valid(out, "folded")
    line = [l for l in expect if l.startswith("expect-child-status")]
    if not line or line[0].split()[1] != "0":
        raise Fail(f"the forked child failed: {line}")
    folded = parse_folded(out)
    if not sum_matching(folded, "rec_extra_thread;rec_round;rec_site_a"):
        raise Fail("allocations of threads created mid-recording are missing")


def scen_usage(args, wd):
    def mem(*a):
        return subprocess.run([args.memspy, "record", *a], capture_output=True, text=True,
                              timeout=30)
    cases = [
        ([], "--pid is required"),
        (["--pid", "abc"], "not a process id"),
        (["--pid", "1", "--bogus"], "unknown option"),
        (["--pid", "1", "--format", "png"], "unknown format"),
        (["--pid", "1", "-o", "x.weird"], "cannot tell the format"),
        (["--pid", "1", "--duration", "soon"], "not a positive duration"),
        (["--pid", "1", "--sample-bytes", "lots"], "not a byte count"),
        (["--pid", "1", "--unwinder", "magic"], "unknown unwinder"),
        (["--pid", "1", "--subprocesses"], "not supported yet"),
        (["--pid"], "needs a value"),
        (["--pid", "1", "--mode", "magic"], "unknown mode"),
    ]
    for a, want in cases:
        r = mem(*a)
        if r.returncode != 64 or want not in r.stderr or "Try 'memspy record --help'" not in r.stderr:
            raise Fail(f"memspy record {' '.join(a)}: exit {r.returncode}, stderr {r.stderr!r}; "
                       f"expected 64 and {want!r}")
    r = mem("--help")
    for want in ("--pid", "--live", "--sample-bytes", "Examples", "Exit status", "512k"):
        if r.returncode != 0 or want not in r.stdout:
            raise Fail(f"--help: exit {r.returncode}, {want!r} missing")
    print("usage errors: all exit 64 with a hint", flush=True)


def scen_unwritable(args, wd):
    # The output's directory does not exist: exit 2, nothing attached, no file left.
    target = None
    try:
        target = subprocess.Popen([args.target, "mix", "10"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        tout = LineReader(target.stdout, "target")
        pid = int(tout.wait_for(lambda l: l.startswith("ready "), 30, "'ready'").split()[1])
        out = os.path.join(wd, "no-such-dir", "x.svg")
        r = subprocess.run([args.memspy, "record", "--pid", str(pid), "-o", out],
                           capture_output=True, text=True, timeout=30)
        print(r.stderr, end="", flush=True)
        if r.returncode != 2 or "hint:" not in r.stderr:
            raise Fail(f"unwritable output: exit {r.returncode}, expected 2 with a hint")
        with open(f"/proc/{pid}/status") as f:
            if "TracerPid:\t0" not in f.read():
                raise Fail("memspy attached although the output was unwritable")
        if os.path.exists(os.path.dirname(out)):
            raise Fail("a file was left behind")
        # A nonexistent pid: exit 2 with a diagnosis, no output file.
        out2 = os.path.join(wd, "nopid.svg")
        r = subprocess.run([args.memspy, "record", "--pid", "999999999", "-o", out2],
                           capture_output=True, text=True, timeout=30)
        print(r.stderr, end="", flush=True)
        if r.returncode != 2 or os.path.exists(out2) or [n for n in os.listdir(wd)
                                                         if "nopid" in n]:
            raise Fail(f"nonexistent pid: exit {r.returncode}, expected 2 and no file")
        target.stdin.write("go\ncheck\n")
        target.stdin.flush()
        line = tout.wait_for(lambda l: l.startswith("selfcheck"), 60, "self-check")
        if line != "selfcheck ok":
            raise Fail(line)
    finally:
        kill(target)


SCENARIOS = {
    "mix-exact": scen_mix_exact,
    "mix-sampled": scen_mix_sampled,
    "unwinders": scen_unwinders,
    "custom-probe": scen_custom_probe,
    "leak": scen_leak,
    "sigint": scen_sigint,
    "sigterm": scen_sigterm,
    "sighup": scen_sighup,
    "kill-target": scen_kill_target,
    "fork-threads": scen_fork_threads,
    "usage": scen_usage,
    "unwritable": scen_unwritable,
}


def scenario_main(scenarios, targets):
    """Runs the one scenario named on the command line: --memspy, one
    --TARGET path per name in targets, --scenario, --workdir, --iters.
    The scenario gets the parsed arguments and an emptied work directory."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    for t in targets:
        ap.add_argument(f"--{t}", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(scenarios))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--iters", type=int, default=0, help="override the target's iterations")
    args = ap.parse_args()
    wd = os.path.join(args.workdir, args.scenario)
    os.makedirs(wd, exist_ok=True)
    for n in os.listdir(wd):
        os.unlink(os.path.join(wd, n))
    try:
        scenarios[args.scenario](args, wd)
    except Fail as e:
        print(f"FAIL: {args.scenario}: {e}", flush=True)
        return 1
    print(f"PASS: {args.scenario}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(scenario_main(SCENARIOS, ["target"]))
