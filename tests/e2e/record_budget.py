#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of record's overhead budget (--max-overhead) against real,
# self-checking targets: memspy-rec-target (a known 60:30:10 mix of bytes)
# and memspy-budget-tight (4 threads of malloc/free). The recording driver is
# mstest.record(): handshake, SIGINT after "done", text and self checks.
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import (Fail, expect_lines, parse_folded, record, run, scenario_main,  # noqa: E402
                    sum_matching)

BUDGET = "10%"
WIDENED = re.compile(r"record: sampling cost ([0-9.]+)% .*: mean widened from (\S+ \S+) to (\S+ \S+)")


def recording(args, target, mode, iters, opts, out):
    r = record(args.memspy, [target, mode, str(iters)], opts, out)
    return r.expect, r.err


def summary_line(err, prefix):
    lines = [l for l in err if l.lstrip().startswith(prefix)]
    if not lines:
        raise Fail(f"the summary has no line starting with {prefix!r}")
    return lines[0].strip()


def check_total(folded, stack, actual, lo, hi):
    got = sum_matching(folded, stack)
    ratio = got / actual
    print(f"{stack}: estimated {got} B, the target allocated {actual} B (ratio {ratio:.3f})",
          flush=True)
    if not lo < ratio < hi:
        raise Fail(f"estimated bytes off: ratio {ratio:.3f} not in ({lo}, {hi})")


def scen_accuracy(args, wd):
    # A budget far below what sampling at 4 KiB costs: the mean must widen,
    # and samples taken under each mean must carry its weight, so that shares
    # and totals still match what the target made. One change is enough to
    # mix two means (a sample weighted with the old mean after it would move
    # the total by the ratio of the two); how many more the controller makes
    # depends on the machine's load, which the test does not control. The budget
    # is not tiny: it decides how many samples there are, and the shares need
    # a few thousand (memspy under ASan costs ~150 us per sample).
    out = os.path.join(wd, "acc.folded")
    expect, err = recording(args, args.mix, "mix", args.iters or 100000,
                            ["--sample-bytes", "4k", "--max-overhead", BUDGET, "-v"], out)
    changes = [m.groups() for m in map(WIDENED.search, err) if m]
    print(f"widenings: {changes}", flush=True)
    if not changes:
        raise Fail("expected the mean to widen from 4 KiB, it never changed")
    line = summary_line(err, "sampling mean ")  # widened, or narrowed back: either way
    if f"{BUDGET} budget" not in line:
        raise Fail(f"the summary does not name the budget: {line!r}")
    folded = parse_folded(out)
    exp = expect_lines(expect, "expect-folded")
    got = {s: sum_matching(folded, s) for s in exp}
    gsum, esum = sum(got.values()), sum(v[0] for v in exp.values())
    total = sum(v for _, v in folded)
    if gsum < 0.95 * total:
        raise Fail(f"only {gsum} of {total} bytes are on the target's stacks")
    for s, v in exp.items():
        share_m, share_t = 100.0 * got[s] / gsum, 100.0 * v[0] / esum
        print(f"{s}: memspy {share_m:.2f}%, target {share_t:.2f}%", flush=True)
        if abs(share_m - share_t) > 3.0:
            raise Fail(f"{s}: share {share_m:.2f}% differs from the target's {share_t:.2f}% "
                       f"by more than 3 points")
    ratio = gsum / esum
    print(f"estimated total {gsum} B vs actual {esum} B (ratio {ratio:.3f})", flush=True)
    if not 0.85 < ratio < 1.18:
        raise Fail(f"estimated total bytes off by more than 15%: {ratio:.3f} (samples "
                   f"weighted with the wrong mean after a change?)")


def scen_tight(args, wd):
    # Default settings on a malloc-bound loop: 512 KiB costs far more than 1%.
    # The loop must outlast the budget's first decision (0.5 s) on a quiet
    # machine: 20,000 rounds took 0.46 s there, and the mean never changed.
    out = os.path.join(wd, "tight.folded")
    expect, err = recording(args, args.tight, "tight", args.iters or 100000, ["-v"], out)
    line = summary_line(err, "sampling mean widened from 512 KiB to")
    if "to stay within the 1% budget" not in line or "samples/s" not in line:
        raise Fail(f"summary line: {line!r}")
    # The slowdown with its basis named, memspy's own CPU apart, no extrapolation.
    cost = summary_line(err, "slowdown:")
    if not re.search(r"^slowdown: [0-9.]+% of the process's CPU time \(budget 1%\); sampled at ",
                     cost):
        raise Fail(f"slowdown line: {cost!r}")
    basis = summary_line(err, "its threads spent")
    if not re.search(r"in memspy's probes and [0-9,]+ stops \(.*\) over .* of their CPU", basis):
        raise Fail(f"basis line: {basis!r}")
    if not re.search(r"^memspy used [0-9.]+ \S+ of CPU, [0-9.]+% of a core",
                     summary_line(err, "memspy used")):
        raise Fail("memspy's own CPU is not given in time and share of a core")
    summary_line(err, "the fast path: ~")
    if any("CPU-bound" in l or "% slower" in l for l in err):
        raise Fail("the summary still extrapolates a slowdown")
    (stack, (bytes_, _)), = expect_lines(expect, "expect-folded").items()
    # Poisson sampling by bytes at mean M over B bytes estimates B with a
    # relative standard deviation of about sqrt(M / B) (fewer, heavier samples
    # at a wider mean). The budget widens the mean to hundreds of MiB here,
    # so a fixed 20% band would fail on noise alone: allow 3.5 standard
    # deviations at the final (widest recent) mean.
    m = re.search(r"widened from 512 KiB to ([0-9.]+) (KiB|MiB|GiB)", line)
    mean = float(m.group(1)) * {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]
    tol = min(0.9, max(0.2, 3.5 * (mean / bytes_) ** 0.5))
    print(f"final mean {mean:.0f} B over {bytes_} B: tolerance +-{tol:.2f}", flush=True)
    check_total(parse_folded(out), stack, bytes_, 1 - tol, 1 + tol)


def scen_off(args, wd):
    out = os.path.join(wd, "off.folded")
    expect, err = recording(args, args.tight, "tight", args.iters or 3000,
                            ["--max-overhead", "off", "-v"], out)
    if any(WIDENED.search(l) or "narrowed" in l for l in err):
        raise Fail("the mean changed with --max-overhead off")
    line = summary_line(err, "sampling mean kept at 512 KiB")
    cost = summary_line(err, "slowdown:")
    if "no budget: --max-overhead off" not in cost:
        raise Fail(f"cost line: {cost!r}")
    print(f"{line}\n{cost}", flush=True)
    (stack, (bytes_, _)), = expect_lines(expect, "expect-folded").items()
    check_total(parse_folded(out), stack, bytes_, 0.8, 1.25)
    # An explicit --sample-bytes is a request for that precision: no budget then either.
    out = os.path.join(wd, "given.folded")
    _, err = recording(args, args.tight, "tight", args.iters or 1000,
                       ["--sample-bytes", "256k", "-v"], out)
    if any(WIDENED.search(l) for l in err):
        raise Fail("the mean changed although --sample-bytes was given alone")
    summary_line(err, "sampling mean kept at 256 KiB")


def scen_exact(args, wd):
    # --exact must stay exact: the budget is ignored, with a note.
    out = os.path.join(wd, "exact.folded")
    expect, err = recording(args, args.mix, "mix", args.iters or 50,
                            ["--exact", "--count", "--max-overhead", "0.01%"], out)
    if not any("--max-overhead is ignored with --exact" in l for l in err):
        raise Fail("no note that --max-overhead is ignored with --exact")
    folded = parse_folded(out)
    for stack, (_, count) in expect_lines(expect, "expect-folded").items():
        got = sum_matching(folded, stack)
        print(f"{stack}: memspy {got}, target {count}", flush=True)
        if got != count:
            raise Fail(f"{stack}: memspy counted {got}, the target made {count}")
    summary_line(err, "slowdown:")


def scen_usage(args, wd):
    def mem(*a):
        return run([args.memspy, "record", *a], timeout=30)
    for bad in ("abc", "-1", "101", "", "5x", "nan", "1%%", "inf"):
        r = mem("--pid", "1", "--max-overhead", bad)
        if (r.returncode != 64 or "--max-overhead" not in r.stderr or
                "Try 'memspy record --help'" not in r.stderr or len(r.stderr.splitlines()) != 2):
            raise Fail(f"--max-overhead {bad!r}: exit {r.returncode}, stderr {r.stderr!r}; "
                       f"expected 64 and a one-line message naming the option")
    r = mem("--pid", "1", "--max-overhead")
    if r.returncode != 64 or "--max-overhead needs a value" not in r.stderr:
        raise Fail(f"--max-overhead without a value: exit {r.returncode}, {r.stderr!r}")
    # Accepted forms get past the options: the nonexistent pid is what fails (2).
    for good in ("1", "1%", "0.5%", "0", "off", "100"):
        r = mem("--pid", "999999999", "--max-overhead", good, "-o",
                os.path.join(wd, "never.svg"))
        if r.returncode != 2 or "--max-overhead" in r.stderr:
            raise Fail(f"--max-overhead {good!r}: exit {r.returncode}, {r.stderr!r}; expected "
                       f"the option accepted and the attach to fail (2)")
    r = mem("--help")
    if r.returncode != 0 or "--max-overhead PCT" not in r.stdout or "default 1%" not in r.stdout:
        raise Fail("--help does not describe --max-overhead")
    print("--max-overhead: bad values exit 64 naming the option; good values accepted",
          flush=True)


SCENARIOS = {
    "usage": scen_usage,
    "accuracy": scen_accuracy,
    "tight": scen_tight,
    "off": scen_off,
    "exact": scen_exact,
}


if __name__ == "__main__":
    sys.exit(scenario_main(SCENARIOS, ["mix", "tight"]))
