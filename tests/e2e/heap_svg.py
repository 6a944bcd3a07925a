#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
The SVG view of `memspy dump --leaks` (output/heap_svg.c) against the C++
target that knows what it leaked (tests/targets/leaks_cxx): one dump writes
the JSON report and the SVG, and
  - the SVG's numbers match the JSON: the heap's total (in use + free), the
    bytes of every type summed over arenas, the leaked and unreferenced bytes
    (drawn frames and those too narrow to draw, listed for the search);
  - the leaked parts are marked (class "leak", red) and the leaked classes
    the target names are drawn with a leaked part;
  - in headless Chromium the page's script runs, and ?s=^leaked$ reports the
    leaked share of the heap that the JSON gives; a screenshot is saved;
  - `-o FILE.svg` alone writes the same view; the target finishes its self-check.

  heap_svg.py --memspy M --target T --work DIR
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from leaks_e2e import finish_target, start_target  # noqa: E402
from mstest import SKIP, fail, main, run_ok, spawn  # noqa: E402

NS = "{http://www.w3.org/2000/svg}"
LEAK_FILL = "rgb(220,40,40)"


def dump(memspy, pid, args):
    return run_ok([memspy, "dump", "--pid", str(pid)] + args)


def frames_of(path):
    """Every frame, drawn or not: (name, depth, start, value, classes, fill)."""
    root = ET.parse(path).getroot()
    out = []
    for g in root.iter(NS + "g"):
        cls = g.get("class", "").split()
        if "f" not in cls:
            continue
        name = g.find(NS + "title").text.split("\n")[0]
        fill = g.find(NS + "rect").get("fill")
        out.append((name, int(g.get("data-d")), int(g.get("data-s")), int(g.get("data-v")),
                    cls, fill, True))
    el = [s for s in root.iter(NS + "script") if s.get("id") == "elided"]
    if len(el) != 1:
        fail("%s: no list of frames too small to draw" % path)
    e = json.loads(el[0].text)
    fr = e["frames"]
    for i in range(0, len(fr), 4):
        out.append((e["names"][fr[i]], fr[i + 3], fr[i + 1], fr[i + 2], [], None, False))
    return root, out


def check_numbers(svg, d, truth):
    root, fr = frames_of(svg)
    total = int(root.get("data-total"))
    want_total = d["totals"]["in_use_bytes"] + d["totals"]["free_bytes"]
    if total != want_total:
        fail("SVG total %d bytes, the JSON's in use + free %d" % (total, want_total))
    lk = d["leaks"]
    sums = {}
    for name, depth, _s, v, _c, _f, _d in fr:
        sums[(name, depth)] = sums.get((name, depth), 0) + v
    for key, want in ((("leaked", 3), lk["leaked"]["bytes"]),
                      (("unreferenced", 4), lk["unreferenced"]["bytes"])):
        if sums.get(key, 0) != want:
            fail("SVG: %s frames sum to %d bytes, the JSON says %d" % (key[0], sums.get(key, 0), want))
    for t in d["types"]:
        if sums.get((t["type"], 2), 0) != t["bytes"]:
            fail("SVG: %s: %d bytes over the arenas, the JSON says %d"
                 % (t["type"], sums.get((t["type"], 2), 0), t["bytes"]))
    if sum(v for n, dp, _s, v, _c, _f, _d in fr if dp == 0) != total:
        fail("SVG: the root frame is not the whole heap")
    # Marked: every leaked frame drawn is red and of class leak; the leaked classes have one.
    drawn_leaks = [f for f in fr if f[0] == "leaked" and f[6]]
    for f in drawn_leaks:
        if "leak" not in f[4] or f[5] != LEAK_FILL:
            fail("SVG: a leaked frame is not marked: class %s, fill %s" % (f[4], f[5]))
    marked = [f for f in fr if f[6] and "leak" in f[4] and f[0] not in ("leaked", "unreferenced")]
    if marked:
        fail("SVG: frames marked leaked that are not: %s" % marked[:3])
    for name in ("Dropped", "Holder"):
        spans = [(s, v) for n, dp, s, v, _c, _f, drawn in fr if n == name and dp == 2 and drawn]
        if not spans:
            fail("SVG: leaked class %s not drawn" % name)
        if not any(s <= f[2] < s + v for s, v in spans for f in drawn_leaks):
            fail("SVG: %s is drawn without its leaked part" % name)
    print("ok: SVG total %d bytes = in use + free; leaked %d, unreferenced %d bytes and %d types "
          "match the JSON; %d leaked frames drawn, all marked"
          % (total, lk["leaked"]["bytes"], lk["unreferenced"]["bytes"], len(d["types"]),
             len(drawn_leaks)))
    return total


def chromium_check(svg, work, total, leaked):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIP: chromium is not installed: the browser checks did not run")
        return SKIP
    prof = tempfile.mkdtemp()
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--user-data-dir=" + prof]

    def run(args, out):
        # Own session: a hung browser and its helpers are killed as a group.
        with open(out, "w") as f, open(os.path.join(work, "chromium.log"), "a") as log:
            p = spawn(base + args, stdout=f, stderr=log)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                fail("chromium did not finish within 60 s")

    try:
        dom = os.path.join(work, "heap-dom.xml")
        run(["--dump-dom", "file://%s?s=%%5Eleaked%%24" % svg], dom)
        text = open(dom).read()
        if 'data-ready="1"' not in text:
            fail("the page's script did not finish initialising (no data-ready); DOM in " + dom)
        want = "%.2f" % (leaked * 100.0 / total)
        got = re.search(r'data-matched="([^"]*)"', text)
        if not got or got.group(1) != want:
            fail("?s=^leaked$ reported %s%%, the JSON gives %s%%"
                 % (got and got.group(1), want))
        if "Matched: %s%% of total" % want not in text:
            fail("the page does not say 'Matched: %s%% of total'" % want)
        png = os.path.join(work, "heap_svg.png")
        run(["--screenshot=" + png, "--window-size=1200,300", "file://" + svg],
            os.path.join(work, "screenshot.log"))
        if not os.path.getsize(png):
            fail("no screenshot")
        print("ok: chromium: the script ran, ?s=^leaked$ matched %s%% of the heap as the JSON "
              "says; screenshot %s" % (want, png))
    finally:
        shutil.rmtree(prof, ignore_errors=True)
    return 0


def check_all():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    js, svg, svg2 = (os.path.join(os.path.abspath(a.work), n)
                     for n in ("heap.json", "heap.svg", "heap-o.svg"))

    t, truth = start_target([a.target])
    dump(a.memspy, t.pid, ["--leaks", "--json", "-o", js, "--svg", svg])
    with open(js) as f:
        d = json.load(f)
    total = check_numbers(svg, d, truth)
    dump(a.memspy, t.pid, ["-o", svg2])
    root, fr = frames_of(svg2)
    if not any(n == "leaked" for n, *_ in fr):
        fail("-o heap-o.svg: no leaked frames")
    print("ok: -o FILE.svg writes the view (%d frames)" % len(fr))
    finish_target(t)
    return chromium_check(svg, os.path.abspath(a.work), total, d["leaks"]["leaked"]["bytes"])


if __name__ == "__main__":
    main(check_all)
