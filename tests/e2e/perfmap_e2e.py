#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Names of generated (JIT) code from the target's /tmp/perf-PID.map
# (unwind/perfmap.c), against memspy-jit-target: two generated functions
# with frame pointers between main and a compiled allocating function.
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, parse_folded, record, scenario_main  # noqa: E402

JIT_STACK = "main;jit:outer;jit:inner;jit_alloc"
ITERS = 2000000


def recorded(args, wd, how, fmt="folded"):
    out = os.path.join(wd, f"{how}.{fmt}")
    env = dict(os.environ, JIT_MAP=how)
    r = record(args.memspy, [args.jit, str(args.iters or ITERS)],
               ["-f", fmt, "--sample-bytes", "64k"], out, env=env)
    return out, r


def share_of(folded, frag):
    total = sum(v for _, v in folded)
    return sum(v for s, v in folded if frag in ";".join(s)) / total if total else 0.0


def scen_named(args, wd):
    out, r = recorded(args, wd, "file")
    folded = parse_folded(out)
    s = share_of(folded, JIT_STACK)
    print(f"bytes under {JIT_STACK}: {100 * s:.1f}%", flush=True)
    if s < 0.9:
        raise Fail(f"only {100 * s:.1f}% of the bytes are under {JIT_STACK}")
    if share_of(folded, "jit:stale"):
        raise Fail("jit:stale, superseded by a later line of the map, names a frame")
    if any("code no file backs" in line for line in r.err):
        raise Fail("the JIT hint was printed although every frame has a name")


def scen_pprof(args, wd):
    go = shutil.which("go")
    if not go:
        print("SKIP: no go tool to read the pprof file", flush=True)
        sys.exit(77)
    out, _ = recorded(args, wd, "file", fmt="pprof")
    top = subprocess.run([go, "tool", "pprof", "-traces", out], capture_output=True,
                         text=True, timeout=120)
    if top.returncode:
        raise Fail(f"go tool pprof failed: {top.stderr.strip()}")
    if "jit:inner" not in top.stdout or "jit:outer" not in top.stdout:
        raise Fail("go tool pprof -traces shows no jit:inner/jit:outer:\n" + top.stdout[:2000])


def unnamed(args, wd, how):
    """The map is absent or not to be trusted: the frames stay unnamed and
    the hint says how to get names."""
    out, r = recorded(args, wd, how)
    folded = parse_folded(out)
    if share_of(folded, "jit:"):
        raise Fail(f"JIT_MAP={how}: a frame was named from a map memspy must not read")
    if share_of(folded, "main;[unknown];[unknown];jit_alloc") < 0.9:
        raise Fail(f"JIT_MAP={how}: the unnamed JIT frames are not where expected: "
                   f"{sorted(folded, key=lambda x: -x[1])[:3]}")
    if not any("code no file backs" in line and "perf-PID.map" in line for line in r.err):
        raise Fail(f"JIT_MAP={how}: no hint on how to name JIT frames")


SCENARIOS = {
    "named": scen_named,
    "pprof": scen_pprof,
    "none": lambda a, w: unnamed(a, w, "none"),
    "symlink": lambda a, w: unnamed(a, w, "symlink"),
    "fifo": lambda a, w: unnamed(a, w, "fifo"),
}

if __name__ == "__main__":
    scenario_main(SCENARIOS, ["jit"])
