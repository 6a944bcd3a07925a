#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of --subprocesses (record and dump) against
# memspy-prefork-target, a pre-forking daemon whose workers count their own
# allocations per site, and against nginx when it is installed: every
# process of the tree is recorded (workers forked before and during the
# recording, one that execs), each under its own root frame with its own
# shares, and each is left running with its code identical to its files.
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import (Fail, LineReader, Skip, check_output_valid, kill,  # noqa: E402
                    parse_folded, scenario_main, text_check, tracer_of)
from interval_e2e import pprof_times, pprof_top, sampling_tolerance  # noqa: E402
SIZES = {"pf_site_a": 4001, "pf_site_b": 2003, "pf_site_c": 1009}
MIX = [(3, 1, 0), (0, 2, 2), (1, 1, 4), (2, 0, 1), (1, 3, 1), (0, 1, 3), (4, 1, 1), (1, 0, 2)]


class Tree:
    """memspy-prefork-target MODE N: the daemon's lines, its workers, its stdin."""

    def __init__(self, target, mode, n):
        self.p = subprocess.Popen([target, mode, str(n)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.out = LineReader(self.p.stdout, "target", echo=False)
        m = seen(self.out, lambda l: l.startswith("master "), 30, "the master's pid")
        self.master = int(m.split()[1])
        self.workers = {}  # index -> pid
        seen(self.out, lambda l: l == "ready", 30, "the master ready")
        end = time.monotonic() + 30
        while len(self.workers) < n:
            self.sync()
            if time.monotonic() > end:
                raise Fail(f"only {len(self.workers)} of {n} workers announced themselves")
            time.sleep(0.05)
        self.p.wait(timeout=30)  # the original process: daemonized, it exits at once
        if self.p.returncode != 0:
            raise Fail(f"the original process exited {self.p.returncode}")

    def sync(self):
        for l in list(self.out.lines):
            f = l.split()
            if f and f[0] == "worker":
                self.workers[int(f[1])] = int(f[2])

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait_worker(self, k, timeout=30):
        line = seen(self.out, lambda l: l.startswith(f"worker {k} "), timeout,
                    f"worker {k} to start")
        self.workers[k] = int(line.split()[2])
        return self.workers[k]

    def pids(self):
        return [self.master] + sorted(set(self.workers.values()))

    def finish(self):
        """EOF on the master's stdin: the workers print their counts, all exit."""
        self.p.stdin.close()
        seen(self.out, lambda l: l.startswith("master done"), 60, "the master to finish")
        done = [l for l in self.out.lines if l.startswith("master done")][0]
        if done != "master done 0":
            raise Fail(f"the target reports failing workers: {done}")
        counts = {}
        print("\n".join("[target] " + l for l in self.out.lines if not l.startswith("tick ")),
              flush=True)
        for l in self.out.lines:
            m = re.match(r"counts (\d+) (\d+) a=(\d+) b=(\d+) c=(\d+) bad=(\d+)$", l)
            if m:
                k, pid, a, b, c, bad = map(int, m.groups())
                if bad:
                    raise Fail(f"worker {k} found its blocks corrupted: {l}")
                counts[k] = (pid, {"pf_site_a": a, "pf_site_b": b, "pf_site_c": c})
        return counts

    def kill_all(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def state_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def check_unharmed(pids, wait_untraced=0):
    """Each pid runs (not stopped, not a zombie), untraced, its code as in its files."""
    end = time.monotonic() + wait_untraced
    for pid in pids:
        while tracer_of(pid) != 0 and time.monotonic() < end:
            time.sleep(0.1)
        if tracer_of(pid) != 0:
            raise Fail(f"process {pid} is still traced by {tracer_of(pid)}")
        st = state_of(pid)
        if st not in ("R", "S", "D"):
            raise Fail(f"process {pid} is in state {st} after memspy")
        print(f"process {pid}: ", end="", flush=True)
        text_check(pid)


def shares(d):
    tot = sum(d.values())
    return {k: v / tot for k, v in d.items()} if tot else {}


def check_worker_shares(folded, counts, extra_note=""):
    """Under each worker's root frame, the byte share of each site is the worker's own."""
    by_root = {}
    for frames, v in folded:
        by_root.setdefault(frames[0], {}).setdefault(frames[-1], 0)
        by_root[frames[0]][frames[-1]] += v
    for k, (pid, calls) in sorted(counts.items()):
        roots = [r for r in by_root if r.startswith(f"prefork: worker {k} (") and
                 r.endswith(f"({pid})")]
        if len(roots) != 1:
            raise Fail(f"worker {k} (pid {pid}): {len(roots)} root frames for it among "
                       f"{sorted(by_root)}")
        got = {s: by_root[roots[0]].get(s, 0) for s in SIZES}
        want = shares({s: calls[s] * SIZES[s] for s in SIZES})
        have = shares(got)
        line = ", ".join(f"{s} {have.get(s, 0):.3f} (own {want[s]:.3f})" for s in SIZES)
        print(f"worker {k} pid {pid}: {line}", flush=True)
        if sum(got.values()) == 0:
            raise Fail(f"worker {k} (pid {pid}): nothing recorded under {roots[0]}")
        others = set(by_root[roots[0]]) - set(SIZES)
        if others:
            raise Fail(f"worker {k}: stacks not ending in a site: {sorted(others)}")
        for s in SIZES:
            if abs(have.get(s, 0) - want[s]) > 0.05:
                raise Fail(f"worker {k}: {s} has {have.get(s, 0):.3f} of the bytes, the "
                           f"worker's own count says {want[s]:.3f}{extra_note}")


def start_record(args, tree, out, extra=("-s", "1k")):
    cmd = [args.memspy, "record", "--pid", str(tree.master), "--subprocesses", "-o", out,
           *extra]
    print("$ " + " ".join(cmd), flush=True)
    m = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    err = LineReader(m.stderr, "memspy")
    return m, err


def seen(reader, pred, timeout, what):
    """A line matching pred among all the reader's lines so far or to come (in any order)."""
    end = time.monotonic() + timeout
    while True:
        hit = next((l for l in list(reader.lines) if pred(l)), None)
        if hit is not None:
            return hit
        if time.monotonic() > end:
            raise Fail(f"timed out after {timeout} s waiting for {what}")
        if not reader.t.is_alive():
            raise Fail(f"{reader.name} closed its output before {what}")
        time.sleep(0.05)


def wait_recording(err, pid, timeout=60, what=""):
    return seen(err, lambda l: l.startswith(f"memspy: recording pid {pid} (") and what in l,
                timeout, f"memspy to record pid {pid} {what}")


def wait_ticks(tree, k, pid, n=2, timeout=60):
    """n more 'tick' lines from worker k (pid): it ran on meanwhile."""
    def ticks():
        return sum(1 for l in list(tree.out.lines) if l.startswith(f"tick {k} {pid} "))
    want, end = ticks() + n, time.monotonic() + timeout
    while ticks() < want:
        if time.monotonic() > end:
            raise Fail(f"worker {k} (pid {pid}) did not run on")
        time.sleep(0.05)


def scen_record(args, wd):
    """Workers before and during the recording, an exec, a worker that exits."""
    tree = Tree(args.target, "busy", 3)
    m = None
    try:
        out = os.path.join(wd, "tree.folded")
        m, err = start_record(args, tree, out)
        for pid in tree.pids():
            wait_recording(err, pid)
        tree.send("fork")
        late = tree.wait_worker(3)
        wait_recording(err, late, what="forked during the recording")
        tree.send("exec")
        ex = tree.wait_worker(4)
        wait_recording(err, ex)
        wait_ticks(tree, 4, ex)
        os.kill(ex, signal.SIGUSR1)  # worker 4 execs as worker 5, same pid
        tree.wait_worker(5)
        wait_recording(err, ex, what="new image after exec")
        wait_ticks(tree, 5, ex)
        tree.send("stop 1")  # a worker exits during the recording
        seen(tree.out, lambda l: l.startswith("stopped 1 "), 30, "worker 1 to stop")
        wait_ticks(tree, 3, late)
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=120)
        err.t.join(10)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        alive = [p for k, p in tree.workers.items() if k not in (1, 4)] + [tree.master]
        check_unharmed(sorted(set(alive)))
        summary = "\n".join(err.lines)
        for k, pid in tree.workers.items():
            if f"pid {pid} " not in summary:
                raise Fail(f"the summary does not list worker {k} (pid {pid})")
        if "until it exited" not in summary or "until it exec'd" not in summary:
            raise Fail("the summary does not say that a worker exited and one exec'd")
        head = [l for l in err.lines if l.startswith("memspy: wrote ")]
        if not head or "(estimated from " not in head[0]:
            raise Fail(f"the summary does not say that its totals are estimates: {head}")
        for k, pid in tree.workers.items():
            line = [l for l in err.lines if l.startswith(f"  pid {pid} ")]
            if not any("estimated from " in l for l in line):
                raise Fail(f"worker {k}'s line does not say what its figures rest on: {line}")
        folded = parse_folded(out)
        counts = tree.finish()
        if sorted(counts) != [0, 1, 2, 3, 4, 5]:
            raise Fail(f"counts from workers {sorted(counts)}, want 0-5")
        check_worker_shares(folded, counts)
        master_roots = [fr for fr, _ in folded if fr[0] == f"prefork: master ({tree.master})"]
        if master_roots:
            raise Fail(f"the master allocates nothing while it waits, memspy shows {master_roots[:3]}")
    finally:
        kill(m)
        tree.kill_all()


def interrupted(args, wd, how, interval=False):
    tree = Tree(args.target, "busy", 2)
    m = None
    try:
        if interval:  # the recorders' interval files must go too
            m, err = start_record(args, tree, os.path.join(wd, "x-{n}.folded"),
                                  ("-s", "1k", "--interval", "1s"))
        else:
            m, err = start_record(args, tree, os.path.join(wd, "x.folded"))
        for pid in tree.pids():
            wait_recording(err, pid)
        tree.send("fork")
        late = tree.wait_worker(2)
        wait_recording(err, late)
        wait_ticks(tree, 2, late, 1)
        if interval:
            seen(err, lambda l: INTERVAL_LINE.match(l) is not None, 60, "an interval file")
        m.send_signal(how)
        rc = m.wait(timeout=120)
        print(f"memspy exited {rc} after signal {how}", flush=True)
        if how != signal.SIGKILL and rc != 0:
            raise Fail(f"memspy exited {rc} after signal {how}")
        # SIGKILL: each recorder stops on its own (parent death signal) and restores.
        check_unharmed(tree.pids(), wait_untraced=60)
        for k, pid in tree.workers.items():
            wait_ticks(tree, k, pid, 1)  # still working
        counts = tree.finish()
        if len(counts) != 3:
            raise Fail(f"counts from {len(counts)} workers, want 3")
        # each recorder removes its own files once it has put its process back
        end = time.monotonic() + 60
        while leftovers(tree.pids()):
            if time.monotonic() > end:
                raise Fail(f"recorders' files left behind: {leftovers(tree.pids())}")
            time.sleep(0.1)
        if interval:
            print(f"interval files: {sorted(os.listdir(wd))}; no recorder file left", flush=True)
    finally:
        kill(m)
        tree.kill_all()


def scen_interval_sigkill(args, wd):
    """--interval, memspy SIGKILLed: processes restored, no recorder file left."""
    interrupted(args, wd, signal.SIGKILL, interval=True)


def scen_sigterm(args, wd):
    interrupted(args, wd, signal.SIGTERM)


def scen_sigkill(args, wd):
    interrupted(args, wd, signal.SIGKILL)


def scen_hint(args, wd):
    """The master alone, without the flag: it allocates nothing, the hint names its workers."""
    tree = Tree(args.target, "busy", 2)
    try:
        cmd = [args.memspy, "record", "--pid", str(tree.master), "-d", "1s", "-o",
               os.path.join(wd, "master.folded")]
        r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=120)
        print(r.stderr, flush=True)
        if r.returncode != 0:
            raise Fail(f"memspy exited {r.returncode}")
        hint = [l for l in r.stderr.splitlines() if "add --subprocesses" in l]
        if not hint:
            raise Fail("no hint about --subprocesses")
        want = f"process {tree.master} has 2 child processes ("
        if want not in hint[0]:
            raise Fail(f"the hint does not say {want!r}: {hint[0]!r}")
        for k, pid in tree.workers.items():
            if f"prefork: worker {k} {pid}" not in hint[0]:
                raise Fail(f"the hint does not name worker {k} ({pid}): {hint[0]!r}")
        check_unharmed(tree.pids())
        # A worker recorded alone does its own work: no hint.
        w = tree.workers[0]
        r = subprocess.run([args.memspy, "record", "--pid", str(w), "-d", "1s", "-s", "4k", "-o",
                            os.path.join(wd, "worker.folded")],
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if "add --subprocesses" in r.stderr:
            raise Fail(f"a worker without children got the hint: {r.stderr}")
        tree.finish()
    finally:
        tree.kill_all()


def scen_dump(args, wd):
    """dump --subprocesses: each process's mallinfo2() and the sum."""
    tree = Tree(args.target, "quiet", 3)
    try:
        own = {}
        for _ in range(4):
            l = tree.out.wait_for(lambda l: l.startswith("mallinfo "), 30, "mallinfo lines")  # in order
            _, name, pid, js = l.split(" ", 3)
            own[int(pid)] = json.loads(js)
        if sorted(own) != sorted(tree.pids()):
            raise Fail(f"mallinfo from {sorted(own)}, processes {tree.pids()}")
        out = os.path.join(wd, "heap.json")
        r = subprocess.run([args.memspy, "dump", "--pid", str(tree.master), "--subprocesses",
                            "--json", "-o", out], stderr=subprocess.PIPE, text=True, timeout=300)
        print(r.stderr, flush=True)
        if r.returncode != 0:
            raise Fail(f"memspy dump --subprocesses --json exited {r.returncode}")
        with open(out) as f:
            doc = json.load(f)
        got = {p["pid"]: p for p in doc["processes"]}
        if sorted(got) != sorted(own):
            raise Fail(f"the report has processes {sorted(got)}, want {sorted(own)}")
        keys = ["arena", "ordblks", "smblks", "hblks", "hblkhd", "fsmblks", "uordblks",
                "fordblks", "keepcost"]
        for pid, mi in own.items():
            have = got[pid]["mallinfo2"]
            bad = [k for k in keys if have[k] != mi[k]]
            print(f"pid {pid} ({got[pid]['title']}): uordblks {have['uordblks']} own "
                  f"{mi['uordblks']}, arena {have['arena']} own {mi['arena']}", flush=True)
            if bad:
                raise Fail(f"pid {pid}: {', '.join(f'{k} {have[k]} != own {mi[k]}' for k in bad)}")
        for k in keys:
            want = sum(mi[k] for mi in own.values())
            if doc["sum"]["mallinfo2"][k] != want:
                raise Fail(f"sum {k}: {doc['sum']['mallinfo2'][k]} != {want} (sum of own)")
        if doc["sum"]["processes"] != 4 or doc["exit_code"] != 0:
            raise Fail(f"sum over {doc['sum']['processes']} processes, exit_code {doc['exit_code']}")
        # The text report: a line per process and the sum, with the same uordblks.
        r = subprocess.run([args.memspy, "dump", "--pid", str(tree.master), "--subprocesses"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        print(r.stdout, flush=True)
        if r.returncode != 0:
            raise Fail(f"memspy dump --subprocesses exited {r.returncode}: {r.stderr}")
        lines = r.stdout.splitlines()
        for pid, mi in own.items():
            i = next((i for i, l in enumerate(lines) if l.startswith(f"process {pid} (")), None)
            if i is None or f"uordblks {mi['uordblks']} " not in lines[i + 1]:
                raise Fail(f"the text report has no right line for pid {pid}")
        i = next((i for i, l in enumerate(lines) if l.startswith("sum over 4 processes")), None)
        total = sum(mi["uordblks"] for mi in own.values())
        if i is None or f"uordblks {total} " not in lines[i + 1]:
            raise Fail(f"the text report's sum is not uordblks {total}")
        check_unharmed(tree.pids())
        tree.finish()
    finally:
        tree.kill_all()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scen_nginx(args, wd):
    """Real nginx (if installed): a master and 2 workers under a bounded local load."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    ab = shutil.which("ab")
    if not nginx or not ab:
        raise Skip(f"nginx ({nginx}) or ab ({ab}) not installed")
    root = tempfile.mkdtemp(prefix="memspy-nginx-")  # removed at the end
    port = free_port()
    for d in ("logs", "html", "tmp"):
        os.makedirs(os.path.join(root, d))
    with open(os.path.join(root, "html", "index.html"), "w") as f:
        f.write("<html>" + "memspy " * 300 + "</html>\n")
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {root}/logs/access.log;
  client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp;
  fastcgi_temp_path {root}/tmp; uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}/html; }}
}}
""")
    user = [] if os.geteuid() else ["-g", "user root;"]
    r = subprocess.run([nginx, "-p", root, "-c", conf, *user], capture_output=True, text=True,
                       timeout=30)
    if r.returncode:
        raise Fail(f"nginx did not start: {r.stderr}")
    m = None
    try:
        end = time.monotonic() + 30
        while not os.path.exists(os.path.join(root, "nginx.pid")):
            if time.monotonic() > end:
                raise Fail("nginx wrote no pid file")
            time.sleep(0.05)
        master = int(open(os.path.join(root, "nginx.pid")).read())
        url = f"http://127.0.0.1:{port}/"
        subprocess.run([ab, "-q", "-n", "200", "-c", "2", url], capture_output=True, timeout=60)
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and
                os.path.exists(f"/proc/{p}/stat") and
                open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(master)]
        out = os.path.join(wd, "nginx.folded")
        cmd = [args.memspy, "record", "--pid", str(master), "--subprocesses", "-s", "4k",
               "-o", out]
        print("$ " + " ".join(cmd), flush=True)
        m = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        err = LineReader(m.stderr, "memspy")
        for pid in [master] + kids:
            wait_recording(err, pid)
        r = subprocess.run([ab, "-n", "3000", "-c", "4", url], capture_output=True, text=True,
                           timeout=120)
        print("\n".join(l for l in r.stdout.splitlines()
                        if l.startswith(("Complete requests", "Failed requests",
                                         "Requests per second"))), flush=True)
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=120)
        err.t.join(10)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        folded = parse_folded(out)
        roots = {}
        for fr, v in folded:
            roots[fr[0]] = roots.get(fr[0], 0) + v
        print(f"root frames: {roots}", flush=True)
        workers = [r for r in roots if r.startswith("nginx: worker process (")]
        if not workers or not sum(roots[w] for w in workers):
            raise Fail(f"no allocation under a worker's root frame: {sorted(roots)}")
        check_unharmed([master] + kids)
        r = subprocess.run([ab, "-q", "-n", "200", "-c", "2", url], capture_output=True,
                           text=True, timeout=60)
        if "Failed requests:        0" not in r.stdout:
            raise Fail(f"nginx does not serve after memspy: {r.stdout[-400:]}")
    finally:
        kill(m)
        subprocess.run([nginx, "-p", root, "-c", conf, *user, "-s", "quit"], capture_output=True,
                       timeout=30)
        end = time.monotonic() + 30
        while os.path.exists(os.path.join(root, "nginx.pid")) and time.monotonic() < end:
            time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def scen_walk(args, wd):
    """record --mode walk --subprocesses: workers before and during the recording, an exec.

    Walk mode patches nothing: it stops each process at random instants.
    Every process of the tree gets its root frame in the all-threads view
    (--idle: the sleeping stacks too), each worker's stacks are its own
    (no site it never calls, its own loop), the master is never caught in
    the allocator, each process gets its own heap timeline, and each is left
    running, untraced, its code as in its files.
    """
    tree = Tree(args.target, "spin", 2)
    m = None
    try:
        out = os.path.join(wd, "walk.folded")
        tl = os.path.join(wd, "walk-tl-{pid}.json")
        for f in os.listdir(wd):
            if f.startswith("walk"):
                os.unlink(os.path.join(wd, f))
        m, err = start_record(args, tree, out, ["--mode", "walk", "--idle", "--timeline", tl,
                                                "--max-pause-share", "10"])
        for pid in tree.pids():
            wait_recording(err, pid)
        tree.send("fork")
        late = tree.wait_worker(2)
        wait_recording(err, late, what="forked during the recording")
        tree.send("exec")
        ex = tree.wait_worker(3)
        wait_recording(err, ex)
        wait_ticks(tree, 3, ex, 4)  # ~4 s: stops within the pause budget on a loaded machine
        os.kill(ex, signal.SIGUSR1)  # worker 3 execs as worker 4, same pid
        tree.wait_worker(4)
        wait_recording(err, ex, what="new image after exec")
        for k in (0, 1, 2, 4):
            wait_ticks(tree, k, tree.workers[k], 3)
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=120)
        err.t.join(10)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        check_unharmed(tree.pids())
        summary = "\n".join(err.lines)
        if "shares are estimates" not in summary:
            raise Fail("the summary does not say that its shares are estimates")
        for pid in tree.pids():
            if f"pid {pid} " not in summary:
                raise Fail(f"the summary does not list pid {pid}")
        if "until it exec'd" not in summary:
            raise Fail("the summary does not say that a worker exec'd")
        alloc = parse_folded(out, allow_empty=True)
        allthr = parse_folded(os.path.join(wd, "walk.all.folded"))
        counts = tree.finish()
        if sorted(counts) != [0, 1, 2, 3, 4]:
            raise Fail(f"counts from workers {sorted(counts)}, want 0-4")
        roots = {}
        for view, folded in (("allocator", alloc), ("all-threads", allthr)):
            for fr, v in folded:
                r = roots.setdefault((view, fr[0]), {"n": 0, "frames": set()})
                r["n"] += v
                r["frames"].update(fr[1:])
        print("\n".join(f"{view}: {root}: {r['n']} samples" for (view, root), r in
                        sorted(roots.items())), flush=True)
        master = f"prefork: master ({tree.master})"
        if ("all-threads", master) not in roots:
            raise Fail("the master has no root frame in the all-threads view")
        if ("allocator", master) in roots:
            raise Fail(f"the master waits in read(2) and never allocates, memspy caught it "
                       f"in the allocator: {sorted(roots[('allocator', master)]['frames'])}")
        nalloc = 0
        for k, (pid, calls) in sorted(counts.items()):
            root = f"prefork: worker {k} ({pid})"
            r = roots.get(("all-threads", root))
            if not r:
                raise Fail(f"worker {k} (pid {pid}) has no root frame in the all-threads view")
            if "worker_loop" not in r["frames"]:
                raise Fail(f"worker {k}: no worker_loop under its root: {sorted(r['frames'])}")
            for view in ("allocator", "all-threads"):
                fr = roots.get((view, root), {"frames": set()})["frames"]
                wrong = [s for s in SIZES if s in fr and not calls[s]]
                if wrong:
                    raise Fail(f"worker {k} never calls {wrong}, memspy shows them under its "
                               f"root in the {view} view")
            nalloc += roots.get(("allocator", root), {"n": 0})["n"]
        if not nalloc:
            raise Fail("no worker was ever caught inside the allocator")
        for pid, name in [(p, str(p)) for p in tree.pids()] + [(ex, f"{ex}-exec1")]:
            path = tl.replace("{pid}", name)
            with open(path) as f:
                doc = json.load(f)
            if doc.get("pid") != pid or not doc.get("samples"):
                raise Fail(f"{path}: pid {doc.get('pid')}, {len(doc.get('samples', []))} "
                           f"samples; want pid {pid} and samples")
    finally:
        kill(m)
        tree.kill_all()

def go_pprof(*a):
    r = subprocess.run(["go", "tool", "pprof", *a], capture_output=True, text=True,
                       timeout=180)
    if r.returncode != 0:
        raise Fail(f"go tool pprof {' '.join(a)} failed: {r.stderr}")
    return r.stdout + r.stderr


def elf_build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    if not m:
        raise Fail(f"{path} has no GNU build id")
    return m.group(1)


def pprof_raw(path):
    """go tool pprof -raw PATH: (sample types, [(values, [location ids])], {id: (address,
    mapping id or None, function)}, [mapping lines]); function is the location's first line's."""
    text = go_pprof("-raw", path)
    sec, types, samples, locs, maps = None, [], [], {}, []
    for line in text.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            sec = line.rstrip(":")
            continue
        if sec == "Samples":
            m = re.match(r"\s+([\d ]+): ([\d ]+)$", line)
            if m:
                samples.append(([int(v) for v in m.group(1).split()],
                                [int(v) for v in m.group(2).split()]))
            elif line.strip() and "bytes:[" not in line and not types:
                types = [t.split("/")[0] for t in line.replace("[dflt]", "").split()]
        elif sec == "Locations":
            m = re.match(r"\s+(\d+): 0x([0-9a-f]+)(?: M=(\d+))? (.*) (\S*):(\d+) s=\d+$",
                         line)
            if m:
                locs[int(m.group(1))] = (int(m.group(2), 16),
                                         int(m.group(3)) if m.group(3) else None, m.group(4))
            elif re.match(r"\s+\d+: ", line):
                raise Fail(f"a location go tool pprof shows in an unexpected form: {line!r}")
        elif sec == "Mappings" and line.strip():
            maps.append(line)
    return types, samples, locs, maps


def scen_pprof(args, wd):
    """--subprocesses to pprof: one process's pprof, per process.

    Read by the real `go tool pprof`: every location but the processes' root
    frames has its address inside its mapping; mappings carry range, path and
    build id, the executable first, [FN] as resolved, a mapping the workers
    share written once; a --live profile carries Go's four sample types and
    its alloc_space per worker has the worker's own shares of its sites;
    -top answers for each sample type; -diff_base compares two recordings.
    """
    if not shutil.which("go"):
        raise Skip("go is not installed (Debian: apt install golang-go)")
    tree = Tree(args.target, "busy", 2)
    try:
        files = {}
        for name, extra in (("live", ["--live"]), ("a", []), ("b", [])):
            files[name] = os.path.join(wd, name + ".pb.gz")
            cmd = [args.memspy, "record", "--pid", str(tree.master), "--subprocesses",
                   "-s", "1k", "-d", "2s", "-o", files[name], *extra]
            print("$ " + " ".join(cmd), flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
            print(r.stderr, flush=True)
            if r.returncode != 0:
                raise Fail(f"memspy exited {r.returncode}")
        check_unharmed(tree.pids())
        counts = tree.finish()
    finally:
        tree.kill_all()
    exe = os.path.realpath(args.target)
    want_roots = {f"prefork: master ({tree.master})"} | {
        f"prefork: worker {k} ({pid})" for k, pid in tree.workers.items()}
    types, samples, locs, maps = pprof_raw(files["live"])
    if types != ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]:
        raise Fail(f"the --live profile's sample types are {types}, want Go's four")
    # mappings: range, path, build id; the executable first and once
    ranges = {}
    for l in maps:
        m = re.match(r"(\d+): 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S+) ([0-9a-f]*) ?(\[.*\])?",
                     l)
        if not m:
            raise Fail(f"a mapping go tool pprof shows in an unexpected form: {l!r}")
        if not m.group(6) and os.path.exists(m.group(5)) and ".so" in m.group(5):
            raise Fail(f"a mapping without its build id: {l!r}")
        ranges[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16), m.group(5),
                                   m.group(6), m.group(7) or "")
    first = ranges.get(1)
    if not first or os.path.realpath(first[2]) != exe or first[3] != elf_build_id(exe):
        raise Fail(f"the first mapping is {first}, not {exe} with build id {elf_build_id(exe)}")
    if "FN" not in first[4]:
        raise Fail(f"the executable's functions were resolved, its mapping says {first[4]!r}")
    if sum(1 for r in ranges.values() if os.path.realpath(r[2]) == exe) != 1:
        raise Fail(f"the workers' shared executable mapping is not written once: {maps}")
    print(f"mappings: {len(maps)}, first: {maps[0]}", flush=True)
    roots = set()
    for lid, (addr, mid, fn) in locs.items():
        if mid is None:
            if fn not in want_roots or addr:
                raise Fail(f"location {lid} without a mapping: {addr:#x} {fn!r}")
            roots.add(fn)
            continue
        lo, hi = ranges[mid][:2]
        if not lo <= addr < hi:
            raise Fail(f"location {lid} at {addr:#x} lies outside its mapping {mid} "
                       f"[{lo:#x}, {hi:#x})")
    workers = {f"prefork: worker {k} ({pid})" for k, pid in tree.workers.items()}
    if not workers <= roots:
        raise Fail(f"root frames {sorted(roots)}, want every worker's: {sorted(workers)}")
    # each worker's shares of its sites from the alloc_space values (root first)
    folded = []
    for values, ids in samples:
        if values[2] > values[0] or values[3] > values[1]:
            raise Fail(f"a sample with more in use than allocated: {values}")
        folded.append(([locs[i][2] for i in reversed(ids)], values[1]))
    check_worker_shares(folded, counts)
    totals = {}
    for name in ("live", "a"):
        for si in types if name == "live" else types[:2]:
            top = go_pprof("-top", "-sample_index=" + si, files[name])
            m = re.search(r"Total samples = ([^ \n]+)", top)
            if not m or "File: memspy-prefork-target" not in top:
                raise Fail(f"go tool pprof -top -sample_index={si} {name}.pb.gz:\n{top[:500]}")
            totals[(name, si)] = m.group(1)
    print(f"-top totals: {totals}", flush=True)
    if totals[("live", "alloc_space")] in ("0", "0B") or totals[("a", "alloc_space")] in ("0", "0B"):
        raise Fail(f"nothing allocated in the pprof files: {totals}")
    diff = go_pprof("-top", "-diff_base", files["a"], files["b"])
    if "Showing nodes" not in diff or "pf_site_" not in diff:
        raise Fail("-diff_base a b shows no sites:\n" + diff[:600])
    print("-diff_base: " + next((l for l in diff.splitlines() if "Total" in l), "?"), flush=True)


# ------------------------------------------------------------ --interval

LEAK = 96001  # PF_SIZE_LEAK: sampled nearly always at the mean below
MEAN = 8192
EVERY_NS = 2_000_000_000
INTERVAL_LINE = re.compile(r"^memspy: interval (\d+), .* -> (\S+): ")
# A file ends at a grid boundary and each recorder cuts there or just after
# (after its drain): a batch that ended 2 ms before a file's end is in it.
MARGIN = 2_000_000


class IntervalFiles:
    """memspy's interval lines as they come; each file copied at once (--keep removes it)."""

    def __init__(self, err, copies):
        self.err, self.copies, self.seen = err, copies, []
        shutil.rmtree(copies, ignore_errors=True)  # beside the work directory, emptied here
        os.makedirs(copies)

    def poll(self):
        for l in list(self.err.lines):
            m = INTERVAL_LINE.match(l)
            if m and (int(m.group(1)), m.group(2)) not in [(n, p) for n, p, _ in self.seen]:
                dst = os.path.join(self.copies, os.path.basename(m.group(2)))
                shutil.copy(m.group(2), dst)
                self.seen.append((int(m.group(1)), m.group(2), dst))

    def next(self, timeout=60):
        """Waits for the next file; returns (number, copy)."""
        have, end = len(self.seen), time.monotonic() + timeout
        while True:
            self.poll()
            if len(self.seen) > have:
                return self.seen[have][0], self.seen[have][2]
            if time.monotonic() > end or not self.err.t.is_alive():
                raise Fail("no interval file came")
            time.sleep(0.05)


def leak_all(tree, ks):
    """SIGUSR2 to workers ks: each leaks 10 (k + 1) blocks; returns the batches' last end."""
    def n_lines(k):
        return sum(1 for l in list(tree.out.lines) if l.startswith(f"leaked {k} "))
    before = {k: n_lines(k) for k in ks}
    for k in ks:
        os.kill(tree.workers[k], signal.SIGUSR2)
    end = time.monotonic() + 30
    while any(n_lines(k) == before[k] for k in ks):
        if time.monotonic() > end:
            raise Fail("a worker did not answer SIGUSR2 with its leak batch")
        time.sleep(0.02)
    return max(int(l.split()[5]) for l in list(tree.out.lines) if l.startswith("leaked "))


def leak_by_root(path):
    """go tool pprof -raw: inuse_space on pf_site_leak under each process's root frame."""
    types, samples, locs, _ = pprof_raw(path)
    iu = types.index("inuse_space")
    out = {}
    for values, ids in samples:
        if locs[ids[0]][2] == "pf_site_leak":
            out[locs[ids[-1]][2]] = out.get(locs[ids[-1]][2], 0) + values[iu]
    return out


def ring_drops(lines):
    """Samples the recorders dropped (in-target ring full, on a loaded machine), as the
    summary says per process."""
    n = 0
    for l in lines:
        m = re.search(r"([0-9,]+) of [0-9,]+ samples found the in-target ring full", l)
        if m:
            n += int(m.group(1).replace(",", ""))
    if n:
        print(f"the recorders dropped {n} samples (ring full): tolerances widened by {n} "
              f"blocks", flush=True)
    return n


def check_grid(files):
    """Merged files numbered on one grid: file n starts (n - first) intervals after the
    first one, each starts where the one before ended, all but the last a whole interval."""
    spans = [(n, path) + pprof_times(path) for n, _, path in files]
    n0, _, t0, _ = spans[0]
    for i, (n, path, start, end) in enumerate(spans):
        name = os.path.basename(path)
        if start - t0 != (n - n0) * EVERY_NS:
            raise Fail(f"{name}: starts {(start - t0) / 1e9:.3f} s after file {n0}, not "
                       f"{n - n0} intervals of 2 s")
        if i and (n != spans[i - 1][0] + 1 or start != spans[i - 1][3]):
            raise Fail(f"{name} does not follow file {spans[i - 1][0]}")
        if i + 1 < len(spans) and end - start != EVERY_NS:
            raise Fail(f"{name} lasts {(end - start) / 1e9:.3f} s, not 2 s")
    print(f"files {n0}-{spans[-1][0]}: one 2-s grid, contiguous", flush=True)


def leftovers(pids):
    """The coordinator's temporary directories holding a file of one of pids' recorders."""
    left = []
    for d in os.listdir("/tmp"):
        if not d.startswith("memspy-subprocesses-"):
            continue
        try:
            names = os.listdir(os.path.join("/tmp", d))
        except OSError:
            continue
        left += [os.path.join("/tmp", d, f) for f in names
                 if f.split(".")[0] in {str(p) for p in pids}]
    return left


def scen_interval(args, wd):
    """--interval 2s --keep 3 over a master and its workers, one forked during the recording.

    Each worker K leaks 10 (K + 1) blocks of 96,001 B per SIGUSR2; all are
    signalled at once, twice. The merged files are read by `go tool pprof`:
    under each worker's root frame, the late one's included, inuse_space on
    pf_site_leak grows by its own batch between the file before and the file
    after it (the same files for every worker: one grid); worker 0 then
    exits: nothing of it is live in the last file, and -diff_base of the
    first and last shows pf_site_leak grown by the other workers' four
    batches; alloc_space adds up to all six over the files; the files lie on
    one 2-s grid; --keep leaves the last 3; no recorder file is left.
    """
    if not shutil.which("go"):
        raise Skip("go is not installed (Debian: apt install golang-go)")
    tree = Tree(args.target, "busy", 2)
    m = None
    try:
        pattern = os.path.join(wd, "heap-{n}-{pid}.pb.gz")
        m, err = start_record(args, tree, pattern, ["-s", str(MEAN), "--interval", "2s",
                                                    "--keep", "3"])
        for pid in tree.pids():
            wait_recording(err, pid)
        tree.send("fork")
        late = tree.wait_worker(2)
        wait_recording(err, late, what="forked during the recording")
        files = IntervalFiles(err, wd + ".copies")
        ks = [0, 1, 2]
        a = files.next()  # read before batch 1 was sent: holds none of it
        t1 = leak_all(tree, ks)
        while True:
            mid = files.next()
            if pprof_times(mid[1])[1] > t1 + MARGIN:
                break
        leak_all(tree, ks)  # batch 2, after mid was written
        while len(files.seen) < 4:
            files.next()
        tree.send("stop 0")  # its leaks go with it
        seen(tree.out, lambda l: l.startswith("stopped 0 "), 30, "worker 0 to stop")
        files.next()
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=180)
        err.t.join(10)
        files.poll()
        drops = ring_drops(err.lines)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        check_unharmed([p for k, p in tree.workers.items() if k] + [tree.master])
        if not any(f"pid {tree.workers[0]} " in l and "until it exited" in l for l in err.lines):
            raise Fail("the summary does not say that worker 0 exited")
        counts = tree.finish()
        if sorted(counts) != ks:
            raise Fail(f"counts from workers {sorted(counts)}, want {ks}")
    finally:
        kill(m)
        tree.kill_all()
    last = files.seen[-1][0], files.seen[-1][2]
    print(f"files: a {a[0]}, mid {mid[0]}, last {last[0]} of {[n for n, _, _ in files.seen]}",
          flush=True)
    check_grid(files.seen)
    # --keep 3: the last three, named with the root's pid; nothing temporary
    left = sorted(f for f in os.listdir(wd) if f.startswith("heap-"))
    want = sorted(os.path.basename(p) for _, p, _ in files.seen[-3:])
    print(f"left: {left}", flush=True)
    if left != want:
        raise Fail(f"--keep 3 left {left}, want the last three written: {want}")
    if any(f"-{tree.master}." not in f for f in left):
        raise Fail(f"{{pid}} is not the root's pid {tree.master}: {left}")
    stray = leftovers(tree.pids())
    if stray:
        raise Fail(f"recorders' files left behind: {stray}")
    summary = [l for l in err.lines if l.startswith("memspy: wrote ")]
    if not summary or "kept the last 3 (--keep 3)" not in summary[0]:
        raise Fail(f"the summary does not say what --keep kept: {summary}")
    # each worker's own batches, under its own root, in the same files
    roots = {k: f"prefork: worker {k} ({tree.workers[k]})" for k in ks}
    live = {name: leak_by_root(path) for name, path in (("a", a[1]), ("mid", mid[1]),
                                                        ("last", last[1]))}
    if live["last"].get(roots[0], 0):
        raise Fail(f"worker 0 exited, the last file still has {live['last'][roots[0]]} B of "
                   f"it live")
    for x, y in (("a", "mid"), ("mid", "last")):
        for k in ks if y == "mid" else ks[1:]:
            blocks = 10 * (k + 1)
            grown = live[y].get(roots[k], 0) - live[x].get(roots[k], 0)
            tol = sampling_tolerance(blocks, LEAK, MEAN) + drops * LEAK
            print(f"{x} -> {y}: worker {k}{' (forked late)' if k == 2 else ''}: "
                  f"pf_site_leak +{grown} B, it leaked {blocks * LEAK} B (tolerance {tol:.0f} B)",
                  flush=True)
            if abs(grown - blocks * LEAK) > tol:
                raise Fail(f"{x} -> {y}: worker {k} grew {grown} B on pf_site_leak, it leaked "
                           f"{blocks * LEAK} B")
        stray = set(live[y]) - set(roots.values())
        if stray:
            raise Fail(f"leaks under roots that never leaked: {stray}")
    # go tool pprof -diff_base: what grew, over every process
    rows = pprof_top(last[1], base=a[1])
    flat, fn = max(rows, key=lambda r: r[0])
    want_b = 2 * sum(10 * (k + 1) for k in ks[1:])
    tol = sampling_tolerance(want_b, LEAK, MEAN) + drops * LEAK
    print(f"-diff_base a last: top {fn} +{flat} B, leaked {want_b * LEAK} B (tolerance "
          f"{tol:.0f} B)", flush=True)
    if fn != "pf_site_leak" or abs(flat - want_b * LEAK) > tol:
        raise Fail(f"-diff_base shows {fn} +{flat} B, want pf_site_leak +{want_b * LEAK} B")
    for si in ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space"):
        top = go_pprof("-top", "-sample_index=" + si, last[1])
        if "File: memspy-prefork-target" not in top or "Total samples = " not in top:
            raise Fail(f"go tool pprof -top -sample_index={si}:\n{top[:500]}")
    # what each interval allocated: nothing on pf_site_leak up to file a (before the
    # batches), all the batches over the files after it, each counted once
    want_b = 2 * sum(10 * (k + 1) for k in ks)
    tol = sampling_tolerance(want_b, LEAK, MEAN) + drops * LEAK
    total = 0
    for n, _, path in files.seen:
        got = sum(f for f, fn in pprof_top(path, index="alloc_space") if fn == "pf_site_leak")
        if got and n <= a[0]:
            raise Fail(f"file {n} allocated {got} B on pf_site_leak before any batch")
        total += got
    print(f"alloc_space on pf_site_leak over the files: {total} B, leaked {want_b * LEAK} B",
          flush=True)
    if abs(total - want_b * LEAK) > tol:
        raise Fail(f"the files' alloc_space on pf_site_leak adds up to {total} B, the workers "
                   f"leaked {want_b * LEAK} B")


def titles_samples(path):
    """An SVG's tooltips: [(frame name, samples it says the frame rests on, or None)]."""
    with open(path) as f:
        text = f.read()
    out = []
    for name, body in re.findall(r"<title>([^<\n]*)\n\(([^<]*)\)</title>", text):
        m = re.search(r"estimated from ([0-9,]+) samples?\b", body)
        out.append((name, int(m.group(1).replace(",", "")) if m else None))
    return out


def scen_interval_samples(args, wd):
    """--interval without --live to SVG and speedscope: the samples behind each frame.

    Issue 12: every estimate says the samples it rests on. Each interval
    file's tooltips (SVG) and profile names (speedscope) must say how many,
    the root's being the sum of the processes', and over the files no more
    than the recorders took.
    """
    tree = Tree(args.target, "busy", 2)
    runs = []
    try:
        for ext in ("svg", "speedscope.json"):
            pattern = os.path.join(wd, "v-{n}." + ext)
            cmd = [args.memspy, "record", "--pid", str(tree.master), "--subprocesses", "-s",
                   str(MEAN), "--interval", "1s", "-d", "4", "-o", pattern]
            print("$ " + " ".join(cmd), flush=True)
            r = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=300)
            sys.stderr.write(r.stderr)
            if r.returncode != 0:
                raise Fail(f"memspy exited {r.returncode}")
            files = [m.group(2) for m in map(INTERVAL_LINE.match, r.stderr.splitlines()) if m]
            head = [l for l in r.stderr.splitlines() if l.startswith("memspy: wrote ")]
            m = re.search(r"estimated from ([0-9,]+) samples", head[0] if head else "")
            if not files or not m:
                raise Fail(f"no interval file, or a summary without its samples: {head}")
            runs.append((ext, files, int(m.group(1).replace(",", ""))))
        check_unharmed(tree.pids())
        tree.finish()
    finally:
        tree.kill_all()
    for ext, files, total in runs:
        got = 0
        for path in files:
            if ext == "svg":
                tips = titles_samples(path)
                roots = [(n, s) for n, s in tips if n.startswith("prefork: ")]
                alls = [s for n, s in tips if n == "all"]
                print(f"{os.path.basename(path)}: all {alls}, roots {roots}", flush=True)
                if not alls or alls[0] is None or any(s is None for _, s in tips):
                    raise Fail(f"{path}: a tooltip does not say the samples behind its frame: "
                               f"{[n for n, s in tips if s is None][:5]}")
                if not alls[0] or alls[0] != sum(s for _, s in roots):
                    raise Fail(f"{path}: the root rests on {alls[0]} samples, the processes "
                               f"on {sum(s for _, s in roots)}")
                got += alls[0]
            else:
                with open(path) as f:
                    names = [p["name"] for p in json.load(f)["profiles"]]
                ns = {re.search(r"\(estimated from ([0-9,]+) samples?", n) for n in names}
                print(f"{os.path.basename(path)}: {names}", flush=True)
                if None in ns or len({n.group(1) for n in ns}) != 1:
                    raise Fail(f"{path}: the profiles do not say the samples they rest on")
                got += int(ns.pop().group(1).replace(",", ""))
        print(f"{ext}: {got} samples over {len(files)} files, the recorders took {total}",
              flush=True)
        if not got or got > total:
            raise Fail(f"{ext}: the files rest on {got} samples, the recorders took {total}")


def scen_ring_loss(args, wd):
    """Many samples dropped with the in-target ring full: said first, and exit 0.

    The worker's recorder is stopped (SIGSTOP) while the worker runs 500
    rounds at -s 1k: its ring (256 samples) fills and the rest is dropped.
    The summary must say so right under its first line, the share and the
    counts, besides the worker's own line; the samples kept are weighted up,
    so the result is not partial (exit 0, as for one process).
    """
    tree = Tree(args.target, "busy", 1)
    m = None
    try:
        out = os.path.join(wd, "ring.folded")
        m, err = start_record(args, tree, out, ["-s", "1k"])
        for pid in tree.pids():
            wait_recording(err, pid)
        w = tree.workers[0]
        wait_ticks(tree, 0, w, 1)
        rec = tracer_of(w)
        if not rec or rec <= 0:
            raise Fail(f"worker 0 (pid {w}) has no tracer: {rec}")
        print(f"SIGSTOP to pid {w}'s recorder {rec} for 5 of the worker's ticks", flush=True)
        os.kill(rec, signal.SIGSTOP)
        try:
            wait_ticks(tree, 0, w, 5)
        finally:
            os.kill(rec, signal.SIGCONT)
        wait_ticks(tree, 0, w, 1)
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=120)
        err.t.join(10)
        if rc != 0:
            raise Fail(f"memspy exited {rc}, want 0: dropped samples are weighted up, "
                       f"the result is not partial")
        check_unharmed(tree.pids())
        tree.finish()
    finally:
        kill(m)
        tree.kill_all()
    lines = list(err.lines)
    i = next((k for k, l in enumerate(lines) if l.startswith("memspy: wrote ")), None)
    if i is None or i + 1 >= len(lines):
        raise Fail("no summary")
    top = lines[i + 1]
    m = re.match(r"  WARNING: (\d+)% of the samples were lost: ([0-9,]+) of ([0-9,]+) samples, "
                 r"in 1 process, found the in-target ring full", top)
    if not m:
        raise Fail(f"the summary's second line does not say that samples were lost: {top!r}")
    lost, total = (int(x.replace(",", "")) for x in m.groups()[1:])
    print(f"top: {m.group(1)}% lost, {lost} of {total}", flush=True)
    if ring_drops(lines) != lost or lost < 1000:
        raise Fail(f"the top line says {lost} lost, the worker's line {ring_drops(lines)}; "
                   f"500 rounds at -s 1k drop thousands")


def scen_pid_reuse(args, wd):
    """A worker's pid, reused by another program after it exited, is not the tree's.

    Worker 1 exits; a shell outside the tree is given its pid (ns_last_pid)
    and starts a child. A worker forked after that is recorded: the scan
    that found it saw the shell's child, which must not be recorded. Skips
    (77) when ns_last_pid cannot be written or another process took the pid.
    """
    if not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        raise Skip("/proc/sys/kernel/ns_last_pid cannot be written (not root)")
    tree = Tree(args.target, "busy", 2)
    m = stranger = child = None
    try:
        m, err = start_record(args, tree, os.path.join(wd, "reuse.folded"), ["-s", "64k"])
        for pid in tree.pids():
            wait_recording(err, pid)
        old = tree.workers[1]
        tree.send("stop 1")
        seen(tree.out, lambda l: l.startswith("stopped 1 "), 30, "worker 1 to stop")
        end = time.monotonic() + 30
        while os.path.exists(f"/proc/{old}") and time.monotonic() < end:
            time.sleep(0.05)
        for _ in range(50):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(old - 1))
            s = subprocess.Popen(["sh", "-c", "sleep 600 & echo $!; wait"], stdout=subprocess.PIPE,
                                 text=True)
            if s.pid == old:
                stranger = s
                break
            s.kill()
            s.wait()
        if not stranger:
            raise Skip(f"pid {old} went to other processes 50 times")
        child = int(stranger.stdout.readline())
        print(f"pid {old} (worker 1, exited) is now a shell's, its child {child}", flush=True)
        tree.send("fork")
        late = tree.wait_worker(2)
        wait_recording(err, late, what="forked during the recording")
        m.send_signal(signal.SIGINT)
        rc = m.wait(timeout=120)
        err.t.join(10)
        if rc != 0:
            raise Fail(f"memspy exited {rc}")
        strangers = [l for l in err.lines if re.match(rf"memspy: recording pid ({old}|{child}) ", l)
                     and not l.startswith(f"memspy: recording pid {old} (prefork: worker 1)")]
        if strangers:
            raise Fail(f"memspy recorded processes outside the tree: {strangers}")
        if tracer_of(child):
            raise Fail(f"the shell's child {child} is traced by {tracer_of(child)}")
        check_unharmed([p for k, p in tree.workers.items() if k != 1] + [tree.master])
    finally:
        kill(m)
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if stranger:
            stranger.kill()
            stranger.wait()
        tree.kill_all()


def scen_interval_kill(args, wd):
    """--interval with a recorder SIGKILLed mid-recording, then SIGTERM to memspy.

    The worker whose recorder died is restored by its watchdog and runs on;
    the merged files go on without it, on the same grid; memspy says the
    recorder was killed (exit 2); every file of every recorder is removed.
    """
    tree = Tree(args.target, "busy", 2)
    m = None
    try:
        pattern = os.path.join(wd, "k-{n}.folded")
        m, err = start_record(args, tree, pattern, ["-s", str(MEAN), "--interval", "2s"])
        for pid in tree.pids():
            wait_recording(err, pid)
        files = IntervalFiles(err, wd + ".copies")
        files.next()
        victim = tree.workers[1]
        rec = tracer_of(victim)
        if rec <= 0:
            raise Fail(f"worker 1 (pid {victim}) has no tracer: {rec}")
        print(f"SIGKILL to pid {victim}'s recorder {rec}", flush=True)
        os.kill(rec, signal.SIGKILL)
        n_kill = files.next()[0]
        after = [files.next()[0] for _ in range(2)]
        m.send_signal(signal.SIGTERM)
        rc = m.wait(timeout=180)
        err.t.join(10)
        files.poll()
        print(f"memspy exited {rc}; files {[n for n, _, _ in files.seen]}", flush=True)
        if rc != 2:
            raise Fail(f"memspy exited {rc} with a recorder killed, want 2")
        if not any(f"pid {victim} " in l and "its recorder was killed" in l for l in err.lines):
            raise Fail("the summary does not say that worker 1's recorder was killed")
        check_unharmed(tree.pids(), wait_untraced=60)
        for k, pid in tree.workers.items():
            wait_ticks(tree, k, pid, 1)  # still working
        counts = tree.finish()
        if len(counts) != 2:
            raise Fail(f"counts from {len(counts)} workers, want 2")
    finally:
        kill(m)
        tree.kill_all()
    ns = [n for n, _, _ in files.seen]
    if ns != list(range(ns[0], ns[0] + len(ns))):
        raise Fail(f"interval numbers {ns} are not consecutive")
    for n, _, path in files.seen:
        roots = {fr[0] for fr, _ in parse_folded(path)}
        has = any(r.endswith(f"({victim})") for r in roots)
        print(f"file {n}: roots {sorted(roots)}", flush=True)
        if n > n_kill and has:
            raise Fail(f"file {n}, after worker 1's recorder died, has its root frame")
        # The last file ends at the SIGTERM, maybe a moment after the one before:
        # worker 0 may have no sample in so short an interval.
        if n != ns[-1] and not any(r.endswith(f"({tree.workers[0]})") for r in roots):
            raise Fail(f"file {n} lacks worker 0")
        check_output_valid(path, "folded")
    left = sorted(f for f in os.listdir(wd) if f.startswith("k-"))
    if left != sorted(os.path.basename(p) for _, p, _ in files.seen):
        raise Fail(f"files left {left}")
    stray = leftovers(tree.pids())
    if stray:
        raise Fail(f"recorders' files left behind: {stray}")
    del after


def scen_interval_usage(args, wd):
    """--subprocesses with --interval: patterns and options checked as without (exit 64)."""
    me = str(os.getpid())
    cases = [
        (["--interval", "1s", "-o", "heap.pb.gz"], "needs {n}"),
        (["--keep", "2", "-o", "heap.svg"], "--keep needs --interval"),
        (["--interval", "0.5s", "-o", "heap-{n}.svg"], "1s or more"),
        (["--interval", "1s", "-o", "heap-{x}.svg"], "unknown placeholder '{x}'"),
        (["--mode", "walk", "--interval", "1s", "-o", "heap-{n}.svg"], "probe mode's"),
        (["--interval-origin", "5", "--interval", "1s", "-o", "heap-{n}.svg"],
         "memspy's own"),
    ]
    for opts, want in cases:
        cmd = [args.memspy, "record", "--pid", me, "--subprocesses"] + opts
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=wd)
        print(f"$ {' '.join(cmd)} -> {r.returncode}: {r.stderr.strip()}", flush=True)
        if r.returncode != 64 or want not in r.stderr:
            raise Fail(f"{opts}: exit {r.returncode}, want 64 saying {want!r}: {r.stderr!r}")
    left = os.listdir(wd)
    if left:
        raise Fail(f"a usage error left files: {left}")


SCENARIOS = {
    "record": scen_record,
    "interval-usage": scen_interval_usage,
    "interval-sigkill": scen_interval_sigkill,
    "interval": scen_interval,
    "interval-kill": scen_interval_kill,
    "interval-samples": scen_interval_samples,
    "ring-loss": scen_ring_loss,
    "pid-reuse": scen_pid_reuse,
    "walk": scen_walk,
    "sigterm": scen_sigterm,
    "sigkill": scen_sigkill,
    "hint": scen_hint,
    "dump": scen_dump,
    "nginx": scen_nginx,
    "pprof": scen_pprof,
}

if __name__ == "__main__":
    sys.exit(scenario_main(SCENARIOS, ["target"]))
