#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# `memspy record` on processes with threads that block every signal, where a
# probe trap (int3) would make the kernel force SIGTRAP through, reset its
# action to SIG_DFL and, untraced, kill the process. Ring mode (the default)
# has no reachable trap and must record them; --exact must refuse.
#   blocked  memspy-sigblock-target: a blocked thread that mallocs, one that
#            does not, one that spawns threads with every signal blocked
#   redis    Debian's stock /usr/bin/redis-server (jemalloc's background
#            thread blocks every signal) under redis-benchmark; skipped (77)
#            when redis is not installed
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import (Fail, Skip, Target, kill, parse_folded, run, scenario_main,  # noqa: E402
                    spawn, text_check)

SIGTRAP_BIT = 1 << (signal.SIGTRAP - 1)


def blocking_threads(pid):
    """Tids of pid's threads whose mask blocks SIGTRAP."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("SigBlk:") and int(line.split()[1], 16) & SIGTRAP_BIT:
                        out.append(int(tid))
        except OSError:
            pass  # a thread that just exited
    return out


def memspy(args, opts, timeout=120):
    cmd = [args.memspy, "record"] + opts
    print("$ " + " ".join(cmd), flush=True)
    p = run(cmd, timeout=timeout, skip_unpermitted=True, echo=True)
    print(f"memspy exit status {p.returncode}", flush=True)
    return p.returncode, p.stderr


def stacks_ending(folded, leaf):
    return [fr for fr, _ in folded if fr[-1] == leaf]


def scen_blocked(args, wd):
    target = None
    try:
        target = Target([args.sigblock])
        pid = target.pid
        blk = blocking_threads(pid)
        print(f"threads of {pid} blocking SIGTRAP: {blk}", flush=True)
        if len(blk) < 2:
            raise Fail("the target's blocked threads do not block SIGTRAP: nothing is tested")

        # --exact traps on every call: refused, with a way out, nothing touched.
        rc, err = memspy(args, ["--pid", str(pid), "--exact", "-d", "1", "-o",
                                os.path.join(wd, "exact.folded")])
        if rc != 2 or "blocks SIGTRAP" not in err or "without --exact" not in err:
            raise Fail(f"--exact on threads that block SIGTRAP: exit {rc}, expected 2 with "
                       "a message naming the cause and a hint to record without --exact")
        if not target.alive():
            raise Fail("the target died after the --exact refusal")

        # Sampled (ring) mode: recorded, with no warning and no trap.
        out = os.path.join(wd, "out.folded")
        rc, err = memspy(args, ["--pid", str(pid), "-d", "3", "-s", "16k", "-o", out])
        if rc != 0:
            raise Fail(f"memspy record exited {rc}, expected 0")
        # Samples lost to a full ring (a loaded machine, the ASan build) are
        # another matter, warned about in their own words.
        warnings = [l for l in err.splitlines()
                    if "warning" in l.lower() and "in-target ring full" not in l]
        if warnings:
            raise Fail(f"warnings on an ordinary recording: {warnings}")
        target.check_alive()
        folded = parse_folded(out)
        for leaf, thread in (("sb_site_normal", "normal_thread"),
                             ("sb_site_blocked", "blocked_thread"),
                             ("sb_site_spawned", "child_thread")):
            st = stacks_ending(folded, leaf)
            if not st:
                raise Fail(f"no sample of {leaf} ({thread}) in {out}")
            wrong = [fr for fr in st if thread not in fr]
            if wrong:
                raise Fail(f"{leaf} recorded on a stack without {thread}: {';'.join(wrong[0])}")
            print(f"{leaf}: {len(st)} stacks, all through {thread}", flush=True)
        text_check(pid)
        target.send("check")
        line = target.wait_for(lambda l: l.startswith("selfcheck"), 60, "the target's self-check")
        if not line.startswith("selfcheck ok"):
            raise Fail(f"the target's self-check: {line}")
        target.send("exit")
        rc = target.wait(30)
        if rc != 0:
            raise Fail(f"the target exited {rc}")
    finally:
        if target:
            target.kill()


def free_port(lo=17300, hi=17399):
    for port in range(lo + os.getpid() % (hi - lo + 1), hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise Fail(f"no free port in {lo}-{hi}")


def redis_cli(port, *cmd, timeout=10):
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(cmd),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout).stdout.strip()


def redis_functions(path):
    """Names of the functions redis-server's dynamic symbol table defines."""
    out = subprocess.run(["readelf", "--dyn-syms", "-W", path], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] == "FUNC" and f[6] != "UND":
            names.add(f[7].split("@")[0])
    return names


def scen_redis(args, wd):
    server = "/usr/bin/redis-server"
    if not (os.path.exists(server) and shutil.which("redis-benchmark")
            and shutil.which("redis-cli")):
        raise Skip("redis-server, redis-benchmark or redis-cli is not installed")
    port = free_port()
    rdir = wd  # its own directory (the scenario's, emptied first); nothing is saved there
    srv = bench = None
    try:
        cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", rdir,
               "--save", "", "--appendonly", "no", "--daemonize", "no",
               "--logfile", os.path.join(rdir, "redis.log")]
        print("$ " + " ".join(repr(c) if c == "" else c for c in cmd), flush=True)
        srv = spawn(cmd, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while redis_cli(port, "ping") != "PONG":
            if srv.poll() is not None or time.monotonic() > end:
                raise Fail(f"redis-server on port {port} did not answer PING")
            time.sleep(0.1)
        blk = blocking_threads(srv.pid)
        comms = {}
        for tid in blk:
            try:
                with open(f"/proc/{srv.pid}/task/{tid}/comm") as f:
                    comms[tid] = f.read().strip()
            except OSError:
                pass
        print(f"redis-server {srv.pid} on port {port}; threads blocking SIGTRAP: {comms}",
              flush=True)
        bcmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "200000", "-q",
                "-t", "set,get,incr,lpush,lpop,lrange_100"]
        print("$ " + " ".join(bcmd) + " &", flush=True)
        bench = spawn(bcmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        out = os.path.join(wd, "redis.folded")
        rc, err = memspy(args, ["--pid", str(srv.pid), "-d", "4", "-s", "32k", "-o", out])
        if rc != 0:
            raise Fail(f"memspy record of redis-server exited {rc}, expected 0")
        if srv.poll() is not None:
            raise Fail(f"redis-server died during the recording: status {srv.returncode}")
        probed = [l for l in err.splitlines() if "probed" in l and "entry points:" in l]
        if not probed or "malloc@libjemalloc.so" not in probed[0]:
            raise Fail("jemalloc's malloc, the allocator redis uses, was not probed")
        folded = parse_folded(out)
        frames = {f for fr, _ in folded for f in fr}
        named = sorted(frames & redis_functions(server))
        in_module = [f for f in frames
                     if f.startswith("redis-server+") or f.startswith("redis-check-rdb+")]
        print(f"{len(folded)} stacks; redis functions in them: {', '.join(named)}; "
              f"{len(in_module)} unnamed frames in redis's module", flush=True)
        if len(named) < 3:
            raise Fail(f"fewer than 3 of redis's own functions in the stacks: {named}")
        if "main" not in frames:
            raise Fail("no stack reaches redis's main")
        pong = redis_cli(port, "ping")
        print(f"$ redis-cli -p {port} ping\n{pong}", flush=True)
        if pong != "PONG":
            raise Fail(f"redis does not answer PING after the recording: {pong!r}")
        text_check(srv.pid)
    finally:
        kill(bench)
        if srv and srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill(srv)


SCENARIOS = {"blocked": scen_blocked, "redis": scen_redis}

if __name__ == "__main__":
    sys.exit(scenario_main(SCENARIOS, ["sigblock"]))
