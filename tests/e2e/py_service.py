# SPDX-License-Identifier: MIT
"""
A target for tests/e2e/record_python.py, run by Debian's python3: the real
interpreter (its own pymalloc over glibc malloc, no frame pointers) doing
what a service does, one command a line on stdin, one answer a line:

  fill N SIZE    a ring of N bytearrays of SIZE..SIZE+999 bytes (each one
                 malloc'd block of len+1 bytes: pymalloc hands over 512 B on)
  turn SECS SPIN for SECS seconds, replace random slots of the ring (100 at a
                 time, SPIN iterations of an empty loop after each, so that
                 the process is busy but allocates slowly); answers
                 "turned N truth BYTES": BYTES is what the replaced slots hold
                 now, in malloc'd bytes: what was allocated since the turn
                 began and is still live
  forks N MS     fork N children one after the other, each living MS ms
                 (short-lived workers); answers "forked N"
  keep N SECS    fork N children that allocate a little and live SECS s;
                 answers "kept PID..."
  exit           exit at once (its children are not waited for)
"""
import os
import random
import sys
import time


def child(secs):
    junk = [bytearray(700 + i) for i in range(200)]
    time.sleep(secs)
    del junk
    os._exit(0)


def main():
    ring, fresh, size = [], [], 0
    print("ready %d" % os.getpid(), flush=True)
    for line in sys.stdin:
        c = line.split()
        if not c:
            continue
        if c[0] == "fill":
            n, size = int(c[1]), int(c[2])
            ring = [bytearray(size + random.randrange(1000)) for _ in range(n)]
            fresh = [False] * n
            print("filled %d" % n, flush=True)
        elif c[0] == "turn":
            end, spin, n, rr = time.monotonic() + float(c[1]), int(c[2]), 0, random.randrange
            while time.monotonic() < end:
                for _ in range(100):
                    i = rr(len(ring))
                    ring[i] = bytearray(size + rr(1000))
                    fresh[i] = True
                    for _ in range(spin):
                        pass
                n += 100
            truth = sum(len(ring[i]) + 1 for i in range(len(ring)) if fresh[i])
            print("turned %d truth %d" % (n, truth), flush=True)
        elif c[0] == "forks":
            for _ in range(int(c[1])):
                pid = os.fork()
                if pid == 0:
                    child(int(c[2]) / 1000)
                os.waitpid(pid, 0)
            print("forked %s" % c[1], flush=True)
        elif c[0] == "keep":
            kids = []
            for _ in range(int(c[1])):
                pid = os.fork()
                if pid == 0:
                    child(float(c[2]))
                kids.append(pid)
            print("kept " + " ".join(map(str, kids)), flush=True)
        elif c[0] == "exit":
            os._exit(0)


main()
