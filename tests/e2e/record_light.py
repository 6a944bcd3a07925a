#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# `memspy record` on a light, mostly sleeping process that leaks slowly at a
# known stack (tests/targets/light_leak): the leak hunt people leave running.
#   light  default settings, --live, 20 s: most live bytes on the leaking
#          stack, the estimate within a factor of 1.5 of what leaked meanwhile
#   few    a view resting on few samples says so, in the summary and the SVG
import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_e2e import SKIP, Fail, LineReader, kill, parse_folded, text_check  # noqa: E402

LEAK = "handle_request;leak_block"


def mark(target, tout):
    target.stdin.write("mark\n")
    target.stdin.flush()
    line = tout.wait_for(lambda l: l.startswith("leaked "), 30, "the target's 'leaked' line")
    return int(line.split()[1])


def record(args, opts, out):
    """One recording of a fresh target. Returns (bytes leaked meanwhile, memspy's stderr)."""
    target = memspy = None
    try:
        target = subprocess.Popen([args.target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        tout = LineReader(target.stdout, "target")
        pid = int(re.search(r"pid (\d+) ready",
                            tout.wait_for(lambda l: " ready" in l, 30, "the target's 'ready'"))
                  .group(1))
        cmd = [args.memspy, "record", "--pid", str(pid), "-o", out] + opts
        print("$ " + " ".join(cmd), flush=True)
        memspy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        merr = LineReader(memspy.stderr, "memspy")
        try:
            merr.wait_for(lambda l: l.startswith("memspy: recording pid"), 90,
                          "memspy's 'recording' line")
        except Fail:
            memspy.wait(timeout=30)
            text = "\n".join(merr.lines)
            if memspy.returncode == 2 and ("not permitted" in text or "ptrace_scope" in text):
                print("SKIP: ptrace is not permitted here", flush=True)
                sys.exit(SKIP)
            raise
        before = mark(target, tout)  # the probes are in: what leaks from now on is seen
        rc = memspy.wait(timeout=180)
        merr.t.join(5)
        after = mark(target, tout)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        if target.poll() is not None:
            raise Fail(f"the target died during the recording: status {target.returncode}")
        text_check(pid)
        target.stdin.write("quit\n")
        target.stdin.flush()
        if target.wait(timeout=30) != 0:
            raise Fail(f"target exited {target.returncode}")
        return after - before, merr.lines
    finally:
        kill(memspy)
        kill(target)


def scen_light(args, wd):
    # Default settings: no --sample-bytes, no --max-overhead.
    out = os.path.join(wd, "light.folded")
    leaked, err = record(args, ["--live", "--duration", args.duration], out)
    folded = parse_folded(out)
    total = sum(v for _, v in folded)
    got = sum(v for fr, v in folded if LEAK in ";".join(fr))
    mean = [l for l in err if "sampling mean" in l]
    print(f"leaked meanwhile {leaked} B; memspy: {got} B live on {LEAK} of {total} B live "
          f"(ratio {got / leaked:.3f}); {mean[0].strip() if mean else 'no mean line'}",
          flush=True)
    if got < 0.5 * total:
        raise Fail(f"only {got} of {total} live bytes are on the leaking stack")
    if not leaked / 1.5 <= got <= leaked * 1.5:
        raise Fail(f"the leak estimate {got} B is not within a factor of 1.5 of the "
                   f"{leaked} B leaked meanwhile")


def scen_few(args, wd):
    # A mean far wider than what the target allocates: the leak view rests on
    # a handful of samples, and the summary and the SVG must say so.
    out = os.path.join(wd, "few.svg")
    # ~100 KiB leaked a second: 3 s at a 64 KiB mean leave ~5 live samples.
    _, err = record(args, ["--live", "--duration", "3s", "--sample-bytes", "64k"], out)
    text = "\n".join(err)
    m = re.search(r"rests on ([0-9,]+) samples?|few samples: (none) in the live view", text)
    if not m:
        raise Fail("the summary does not say how many samples the view rests on")
    n = int(m.group(1).replace(",", "")) if m.group(1) else 0
    if n >= 20:
        raise Fail(f"{n} samples: the scenario needs fewer than 20")
    warn = [l for l in err if "few samples" in l.lower()]
    if not warn or not all(w in warn[0] for w in ("--sample-bytes", "--max-overhead",
                                                  "longer")):
        raise Fail(f"no summary warning naming the remedies: {warn}")
    root = ET.parse(out).getroot()
    svgtext = " ".join(t for t in root.itertext())
    said = (f"estimated from {n} sample" if n else "no live sample")
    if said not in svgtext.replace(",", "") or "few samples" not in svgtext.lower():
        raise Fail(f"the SVG's subtitle does not say {said!r} and warn of few samples")
    if n:
        # Each frame's tooltip gives the samples behind it: the root's are the view's.
        text = open(out).read()
        m = re.search(r"<title>all\n\([^<]*?estimated from ([0-9,]+) samples?: few", text)
        if not m or int(m.group(1).replace(",", "")) != n:
            raise Fail(f"the root frame's tooltip does not say it rests on {n} samples: "
                       f"{re.findall(r'<title>all[^<]*', text)}")
    print(f"{n} samples: summary warns ({warn[0].strip()!r}); the SVG says so too", flush=True)


SCENARIOS = {"light": scen_light, "few": scen_few}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--duration", default="20s")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    try:
        SCENARIOS[args.scenario](args, args.workdir)
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
