#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
An output path that is not a regular file (a FIFO here; /dev/null and
/dev/stdout in use) is written in place. memspy wrote a temporary file and
renamed it over the path, which replaced the node with a regular file: run
as root, `-o /dev/null` left the machine without /dev/null. A FIFO stands in
for the device (the test must not risk the real one): after `dump --json -o
FIFO` and `record --format folded -o FIFO`, a reader on the other end got
the whole output and the FIFO is still a FIFO.

  output_special.py --memspy M --workdir D
"""
import argparse
import json
import os
import stat
import threading

import mstest
from mstest import fail


def through_fifo(fifo, argv):
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    p = mstest.run(argv, skip_unpermitted=True)
    if p.returncode != 0 and not got:
        # Unblock the reader if memspy never opened the FIFO.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    th.join(timeout=30)
    if p.returncode != 0:
        fail("%s exited %d:\n%s" % (" ".join(argv), p.returncode, p.stderr))
    if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
        fail("%s replaced the FIFO with a regular file" % " ".join(argv))
    return got.get("data", b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    fifo = os.path.join(a.workdir, "out.fifo")
    if os.path.lexists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    t = mstest.spawn(["sleep", "120"])
    try:
        data = through_fifo(fifo, [a.memspy, "dump", "--pid", str(t.pid), "--json", "-o", fifo])
        doc = json.loads(data.decode())
        if doc.get("pid") != t.pid:
            fail("the JSON read from the FIFO is not this dump: %r" % data[:200])
        data = through_fifo(fifo, [a.memspy, "record", "--pid", str(t.pid), "-d", "1",
                                   "--format", "folded", "-o", fifo])
        if t.poll() is not None:
            fail("the target died")
        print("PASS: dump JSON (%d B) and a folded recording (%d B) through a FIFO, "
              "which stayed a FIFO" % (len(doc and json.dumps(doc)), len(data)))
    finally:
        os.unlink(fifo)


if __name__ == "__main__":
    mstest.main(main)
