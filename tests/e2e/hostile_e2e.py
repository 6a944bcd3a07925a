#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Attacks on memspy's pages in the target (tests/hostile.cmake): the real
# `memspy record` against memspy-hostile-target, which overwrites, unmaps or
# protects what memspy injected in it, or forks and execs fast. Each trial
# checks that memspy ends normally (exit 0 or 1, never a crash or a
# timeout), within a memory bound, says so when its pages were tampered with,
# prints no figure larger than what the target could have done (the target
# prints its own counts), and that the target survives.
import argparse
import os
import re
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, log, main, spawn  # noqa: E402

# The byte suffixes ms_fmt_bytes prints.
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
         "PiB": 1 << 50, "EiB": 1 << 60}
TAMPER = re.compile(r"memspy's pages in process (\d+) were overwritten: ([\d,]+) samples discarded")


def figures(text):
    """Every count (digits with thousands commas, or plain digits before
    'samples', 'allocations', ...) and every byte figure memspy printed."""
    counts = [int(m.replace(",", "")) for m in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", text)]
    counts += [int(m) for m in re.findall(r"\b(\d+) (?:samples|allocations|frees|sampled)", text)]
    sizes = [float(n) * UNITS[u] for n, u in re.findall(r"\b(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB|PiB|EiB)\b", text)]
    return counts, sizes


def trial(args, mode, k):
    out = os.path.join(args.workdir, f"{mode}-{k}.svg")
    # The target outlives the recording: memspy's end is what is tested.
    tgt = spawn([args.target, mode, str(args.seconds + 4)], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
    try:
        line = tgt.stdout.readline()
        if "ready" not in line:
            raise Fail(f"target did not start: {line!r}")
        cmd = [args.memspy, "record", "-p", str(tgt.pid), "-o", out, "--live",
               "-d", str(args.seconds)]
        if mode == "deep":
            # As many samples as the ring gives: a new distinct stack at each.
            cmd += ["--sample-bytes", "4k", "--max-overhead", "off"]
        t0 = time.monotonic()
        # Under ASan, freed memory waits in a quarantine (256 MiB by default):
        # a small one, so that the bound measures memspy's own memory.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
        m = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            mout, merr = m.communicate(timeout=args.seconds + 120)
        except subprocess.TimeoutExpired:
            m.kill()
            m.communicate()
            raise Fail("memspy did not end within 120 s of its duration")
        # The largest waited-for child so far: memspy (the targets are a few MiB).
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        try:
            tout, _ = tgt.communicate(timeout=args.seconds + 60)
        except subprocess.TimeoutExpired:
            tgt.kill()
            tgt.communicate()
            raise Fail("the target did not finish (stopped or hung after memspy left)")
        tout = line + tout
    finally:
        if tgt.poll() is None:
            tgt.kill()
            tgt.wait()
    log(f"  [{mode} #{k}] memspy exit {m.returncode} in {time.monotonic() - t0:.1f} s, "
        f"max RSS so far {rss_kib // 1024} MiB; target exit {tgt.returncode}")
    for l in merr.splitlines():
        log(f"    memspy: {l}")
    for l in tout.splitlines():
        log(f"    target: {l}")
    if m.returncode not in (0, 1):
        raise Fail(f"memspy exited {m.returncode} (want 0 or 1: a normal end)")
    if tgt.returncode != 0 or "survived=1" not in tout:
        raise Fail(f"the target did not survive (exit {tgt.returncode})")
    truth = dict(re.findall(r"(\w+)=(\w+)", tout.splitlines()[-1]))
    # Unharmed: nothing traces it, malloc is its own, its SIGTRAP action is back.
    if truth.get("tracer") != "0" or truth.get("probed") != "0" or truth.get("sigtrap") != "default":
        raise Fail(f"the target was left changed: tracer={truth.get('tracer')} "
                   f"probed={truth.get('probed')} sigtrap={truth.get('sigtrap')}")
    calls, nbytes = int(truth["calls"]), int(truth["bytes"])
    counts, sizes = figures(merr)
    # A sample, a loss, a block: each is one of the target's calls at most.
    bad = [c for c in counts if c > calls + 1000]
    if bad:
        raise Fail(f"impossible counts printed (the target made {calls:,} calls): {bad}")
    # Estimates scatter, but not past 8x what the target allocated (plus 1 GiB).
    bad = [s for s in sizes if s > 8 * nbytes + (1 << 30)]
    if bad:
        raise Fail(f"impossible byte figures printed (the target allocated {nbytes:,} B): {bad}")
    if rss_kib > args.max_rss_mib * 1024:
        raise Fail(f"memspy used {rss_kib // 1024} MiB (bound {args.max_rss_mib} MiB)")
    tam = TAMPER.search(merr)
    if mode in ("scribble", "unmap", "protect"):
        if not tam:
            raise Fail("memspy did not say its pages were overwritten")
        if int(tam.group(1)) != tgt.pid:
            raise Fail(f"the tamper line names process {tam.group(1)}, not {tgt.pid}")
        if m.returncode != 1:
            raise Fail(f"exit {m.returncode} after tampering (want 1: partial)")
    elif tam:
        raise Fail("memspy reported tampering that did not happen")
    if not os.path.exists(out):
        raise Fail(f"{out} was not written")


def trials():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mode", required=True, choices=["scribble", "unmap", "protect", "forkexec", "deep"])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--max-rss-mib", type=int, default=512)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    for k in range(args.trials):
        trial(args, args.mode, k)
    log(f"ok: {args.trials} trials of {args.mode}")


if __name__ == "__main__":
    main(trials, "hostile")
