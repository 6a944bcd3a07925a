#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`memspy dump -o FILE` picks the format from FILE's extension, as record
does: Debian's python3 (a real glibc program, running a small allocating
loop) dumped with -o heap.json must give JSON that parses (before: the text
report, under a .json name), its times written with 9 significant digits
(before: jansson's 17, 13.547629000000001), and -o heap.pb.gz or heap.folded (record's
formats) must be refused as a usage error (exit 64) without creating the
file. Skips (77) when /usr/bin/python3 is missing.

  dump_output_ext.py --memspy M
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"
TARGET = r"""
import os, time
parent = os.getppid()
keep = []
print("ready", flush=True)
end = time.time() + 120
while time.time() < end and os.getppid() == parent:
    keep.append(bytes(300))
    if len(keep) > 5000:
        del keep[:2500]
    time.sleep(0.001)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    a = ap.parse_args()
    if not os.access(PYTHON, os.X_OK):
        print("SKIP: %s is not installed" % PYTHON)
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="memspy-dumpext-")
    target = subprocess.Popen([PYTHON, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    try:
        if target.stdout.readline().strip() != "ready":
            raise SystemExit("FAIL: python3 target did not start")
        out = os.path.join(tmp, "heap.json")
        r = subprocess.run([a.memspy, "dump", "--pid", str(target.pid), "-o", out],
                           capture_output=True, text=True, timeout=120)
        print("dump -o heap.json: exit %d %s" % (r.returncode, r.stderr.strip()))
        if r.returncode != 0:
            raise SystemExit("FAIL: dump -o heap.json exited %d" % r.returncode)
        with open(out) as f:
            text = f.read()
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise SystemExit("FAIL: -o heap.json is not JSON (%s); it starts %r" % (e, text[:80]))
        if doc.get("tool") != "memspy dump" or doc.get("pid") != target.pid or not doc.get("complete"):
            raise SystemExit("FAIL: unexpected JSON header: %r" % {k: doc.get(k) for k in
                                                                  ("tool", "pid", "complete")})
        # Times are written with 9 significant digits, not jansson's 17
        # (13.547629000000001): the digits of every real as written.
        import re
        long_reals = [m for m in re.findall(r'": (-?[0-9]+\.[0-9]+(?:e-?[0-9]+)?)', text)
                      if len(m.split("e")[0].replace("-", "").replace(".", "").lstrip("0")) > 9]
        if long_reals:
            raise SystemExit("FAIL: reals written with more than 9 significant digits: %s"
                             % ", ".join(long_reals[:5]))
        in_use = doc.get("totals", {}).get("in_use_bytes")
        print("  JSON ok: complete, in use %s bytes" % in_use)
        for name in ("heap.pb.gz", "heap.folded"):
            path = os.path.join(tmp, name)
            r = subprocess.run([a.memspy, "dump", "--pid", str(target.pid), "-o", path],
                               capture_output=True, text=True, timeout=120)
            print("dump -o %s: exit %d %s" % (name, r.returncode, r.stderr.strip()))
            if r.returncode != 64:
                raise SystemExit("FAIL: dump -o %s exited %d, not 64 (usage)" % (name, r.returncode))
            if os.path.exists(path) or [f for f in os.listdir(tmp) if f.startswith(name)]:
                raise SystemExit("FAIL: dump -o %s left a file" % name)
        if target.poll() is not None:
            raise SystemExit("FAIL: python3 died (status %s)" % target.returncode)
        print("ok")
    finally:
        target.kill()
        target.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
