#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`memspy dump` of Debian's python3 while it starts a thread every
millisecond (a thread per task, as small Python services do): a dump's stop
catches a thread inside clone(), held at the instruction after its system
call, which libc's .eh_frame does not describe (glibc ends clone's unwind
information before the call). libdw, unwinding that thread to see whether
it is inside malloc, then fell back on .debug_frame and loaded and inflated
all of libc's DWARF from the debug file inside the pause: 120-250 ms of
pause on a heap that takes 15 ms to snapshot.

Each dump runs under gdb with a breakpoint on dwfl_module_dwarf_cfi (what
libdw calls for that fallback; nothing else in `memspy dump` calls it): the
test fails if it is reached, and also unless memspy -vv said at least once
that it found a thread inside clone() (else the test proved nothing). Each
dump must be complete (exit 0), and the target must still run, untraced,
with no thread stopped. Skips (77) when /usr/bin/python3, gdb or libc's
debug file (libc6-dbg, without which there is nothing to load) is missing.

  dump_python_threads.py --memspy M [--dumps 4]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"

# Starts and joins a thread per task, keeps a little of each task's data;
# ends when its parent (this test) is gone, and after 200 s in any case.
TARGET = r"""
import os, sys, threading, time
parent = os.getppid()
keep = []
def task(i):
    data = [bytes(500 + i % 700) for _ in range(8)]
    if i % 50 == 0:
        keep.append(bytearray(4096))
    return len(data)
print("ready", flush=True)
i = 0
end = time.time() + 200
while time.time() < end and os.getppid() == parent:
    t = threading.Thread(target=task, args=(i,))
    t.start()
    t.join()
    i += 1
    time.sleep(0.001)
"""

GDB_SCRIPT = """set breakpoint pending on
set pagination off
break dwfl_module_dwarf_cfi
commands 1
  echo MEMSPY-TEST-FALLBACK-REACHED\\n
  bt 8
  continue
end
run
"""


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def libc_debug_file():
    """libc's separate debug file by build id, or None."""
    out = subprocess.run(["readelf", "-n", "/lib/x86_64-linux-gnu/libc.so.6"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            bid = line.split("Build ID:")[1].strip()
            path = "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:])
            return path if os.path.exists(path) else None
    return None


def check_target(pid):
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    tracer = [l for l in status.splitlines() if l.startswith("TracerPid:")][0].split()[1]
    if tracer != "0":
        raise SystemExit("FAIL: python3 %d still traced (TracerPid %s)" % (pid, tracer))
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # a task thread that just ended
        if state in ("t", "T"):
            raise SystemExit("FAIL: thread %s of python3 %d left stopped (%s)" % (tid, pid, state))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--dumps", type=int, default=4)
    a = ap.parse_args()
    if not os.access(PYTHON, os.X_OK):
        skip(PYTHON + " is not installed")
    if not shutil.which("gdb"):
        skip("gdb is not installed")
    if not libc_debug_file():
        skip("libc's debug file is not installed (libc6-dbg): no DWARF to load")

    tmp = tempfile.mkdtemp(prefix="memspy-pythreads-")
    gdb_script = os.path.join(tmp, "cmds.gdb")
    with open(gdb_script, "w") as f:
        f.write(GDB_SCRIPT)
    target = subprocess.Popen([PYTHON, "-c", TARGET], stdout=subprocess.PIPE, text=True)
    try:
        if target.stdout.readline().strip() != "ready":
            raise SystemExit("FAIL: python3 target did not start")
        time.sleep(0.5)
        env = dict(os.environ)
        # LeakSanitizer stops the world with ptrace, which a traced process cannot.
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        fallbacks = 0
        in_clone = 0
        for k in range(a.dumps):
            cmd = ["gdb", "-q", "-nx", "-batch", "-x", gdb_script, "--args", a.memspy, "dump",
                   "--pid", str(target.pid), "-vv", "-o", os.devnull]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
            out = r.stdout + r.stderr
            pause = [l for l in out.splitlines() if l.startswith("memspy: dump: pause")]
            print("dump %d: %s" % (k + 1, pause[0] if pause else "(no pause line)"))
            if "MEMSPY-TEST-FALLBACK-REACHED" in out:
                fallbacks += 1
                print("  libdw's .debug_frame fallback reached:")
                bt = out[out.index("MEMSPY-TEST-FALLBACK-REACHED"):].splitlines()[1:9]
                print("\n".join("    " + l for l in bt))
            if "inside clone()" in out:
                in_clone += 1
            if "exited normally" not in out:
                print(out[-3000:])
                raise SystemExit("FAIL: memspy dump %d did not exit 0 under gdb" % (k + 1))
            if target.poll() is not None:
                raise SystemExit("FAIL: python3 died during dump %d (status %s)"
                                 % (k + 1, target.returncode))
            check_target(target.pid)
        if fallbacks:
            raise SystemExit("FAIL: %d of %d dumps loaded libc's DWARF (dwfl_module_dwarf_cfi) "
                             "inside the pause to unwind a thread" % (fallbacks, a.dumps))
        if not in_clone:
            raise SystemExit("FAIL: no dump caught a thread inside clone(): the test proved nothing")
        print("ok: %d dumps, %d caught a thread inside clone(), none loaded libc's DWARF"
              % (a.dumps, in_clone))
    finally:
        target.kill()
        target.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
