#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of `memspy record` against memspy-rec-target (a real,
# self-checking child): stacks and shares, exact counts, the leak view, and
# the target's survival when memspy is interrupted or the target forks/dies.
import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import (Fail, Target, check_output_valid, expect_lines, parse_folded,  # noqa: E402
                    record, scenario_main, sum_matching, tracer_of)
from mstest import run as run_memspy  # noqa: E402
# Drivers written against this file before mstest.py import these from here.
from mstest import SKIP, LineReader, kill, text_check  # noqa: E402,F401

SITES = ["rec_site_a", "rec_site_b", "rec_site_c"]


def run(args, mode, iters, memspy_opts, out, on_half=None, stop_after_done=signal.SIGINT,
        expect_rc=0, check_text=True, target_survives=True, env=None):
    """One recording of args.target. Returns (target's expect lines, memspy's stderr lines)."""
    r = record(args.memspy, [args.target, mode, str(iters)], memspy_opts, out, env=env,
               on_half=on_half,
               stop=stop_after_done, expect_rc=(expect_rc,), check_text=check_text,
               target_survives=target_survives)
    return r.expect, r.err


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


def scen_mix_sampled(args, wd, env=None, name="sampled", iters=4000):
    out = os.path.join(wd, name + ".folded")
    expect, err = run(args, "mix", args.iters or iters, ["--sample-bytes", "16k"], out, env=env)
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
    return err


def scen_spaced_stacks(args, wd):
    """300 workers whose stacks are exactly 1 MiB apart with no guard page, as
    the JVM lays out its threads': their thread pointers share the low page
    bits. Before memspy's in-target thread table hashed the whole pointer
    (and had 1,024 entries, not 256), all but 8 of 24 such threads found no
    entry and every sample of theirs was lost ("could not enter in its thread
    table"); with 300 threads, 44 at least would have had none."""
    env = dict(os.environ, REC_WORKERS="300", REC_STACK_KIB="1024")
    err = scen_mix_sampled(args, wd, env=env, name="spaced", iters=60)
    lost = [l for l in err if "thread table" in l]
    if lost:
        raise Fail("samples lost to a full thread table: " + lost[0].strip())


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
        return run_memspy([args.memspy, "record", *a], timeout=30)
    cases = [
        ([], "--pid is required"),
        (["--pid", "abc"], "not a process id"),
        (["--pid", "1", "--bogus"], "unknown option"),
        (["--pid", "1", "--format", "png"], "unknown format"),
        (["--pid", "1", "-o", "x.weird"], "cannot tell the format"),
        (["--pid", "1", "--duration", "soon"], "not a positive duration"),
        (["--pid", "1", "--sample-bytes", "lots"], "not a byte count"),
        (["--pid", "1", "--unwinder", "magic"], "unknown unwinder"),
        (["--pid", "1", "--subprocesses", "--interval", "5s", "-o", "h.svg"], "needs {n}"),
        (["--pid", "1", "--subprocesses", "--duration", "soon"], "not a positive duration"),
        (["--pid", "1", "--subprocesses", "--timeline", "t.svg"], "are walk mode's"),
        (["--pid", "1", "--subprocesses", "--mode", "walk", "--timeline", "t.txt"],
         "must end in .svg or .json"),
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
    target = Target([args.target, "mix", "10"])
    pid = target.pid
    out = os.path.join(wd, "no-such-dir", "x.svg")
    r = run_memspy([args.memspy, "record", "--pid", str(pid), "-o", out], timeout=30)
    print(r.stderr, end="", flush=True)
    if r.returncode != 2 or "hint:" not in r.stderr:
        raise Fail(f"unwritable output: exit {r.returncode}, expected 2 with a hint")
    if tracer_of(pid) != 0:
        raise Fail("memspy attached although the output was unwritable")
    if os.path.exists(os.path.dirname(out)):
        raise Fail("a file was left behind")
    # A nonexistent pid: exit 2 with a diagnosis, no output file.
    out2 = os.path.join(wd, "nopid.svg")
    r = run_memspy([args.memspy, "record", "--pid", "999999999", "-o", out2], timeout=30)
    print(r.stderr, end="", flush=True)
    if r.returncode != 2 or os.path.exists(out2) or [n for n in os.listdir(wd)
                                                     if "nopid" in n]:
        raise Fail(f"nonexistent pid: exit {r.returncode}, expected 2 and no file")
    target.send("go")
    target.selfcheck()


SCENARIOS = {
    "mix-exact": scen_mix_exact,
    "mix-sampled": scen_mix_sampled,
    "spaced-stacks": scen_spaced_stacks,
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


if __name__ == "__main__":
    scenario_main(SCENARIOS, ["target"])
