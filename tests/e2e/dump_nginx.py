#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
`memspy dump` on the real nginx (Debian's /usr/sbin/nginx), the daemonized,
pre-forking server whose [heap] a fork splits into adjacent mappings: a
private instance on 127.0.0.1 (its own prefix, conf and port in a temp
dir; daemon on, master_process on, worker_processes 2), a bounded load with
ab, then, with nothing running against it, memspy dump --json of the master
and of each worker: exit 0, no errors, and the nine mallinfo2 fields equal
to what gdb's `print mallinfo2()` (run in the process right after memspy)
says. Skips (77) when nginx, ab or gdb is missing. nginx is killed at the
end on every path: a watchdog in its own session kills it if this script
dies, even by SIGKILL.

  dump_nginx.py --memspy M [--port-base 17200] [--requests 3000] [--arg MEMSPY-ARG]...
"""
import argparse
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

NGINX = "/usr/sbin/nginx"
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost")

# Once its stdin closes (the test ended or died, even by SIGKILL): KILLs every
# process of the nginx session (setsid made the master its leader, and workers,
# old or new, orphaned or not, keep the session id) whose command line is
# nginx's, then removes DIR. Processes are matched by session, not by pids
# noted earlier, which a reload makes stale and the system may reuse.
WATCHDOG = r"""
import os, signal, sys, shutil, time
d = sys.argv[1]
sys.stdin.read()
try:
    with open(os.path.join(d, "nginx.pid")) as f:
        leader = int(f.read().strip())
except (OSError, ValueError):
    leader = 0
def ours():
    found = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % e, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(st[st.rfind(")") + 2:].split()[3]) == leader and cmd.startswith(b"nginx:"):
            found.append(int(e))
    return found
for _ in range(5):
    pids = ours() if leader > 1 else []
    if not pids:
        break
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
shutil.rmtree(d, ignore_errors=True)
"""


class Fail(Exception):
    pass


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def on_signal(signum, frame):
    raise Fail("signal %d" % signum)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def heap_mappings(pid):
    with open("/proc/%d/maps" % pid) as f:
        return sum(1 for line in f if line.rstrip().endswith("[heap]"))


def write_conf(d, port):
    html = os.path.join(d, "html")
    os.makedirs(html, exist_ok=True)
    # Bodies of a few sizes, so requests allocate differently.
    for name, size in (("index.html", 612), ("small.txt", 64), ("mid.bin", 20000),
                       ("big.bin", 300000)):
        with open(os.path.join(html, name), "wb") as f:
            f.write(bytes((i * 7 + 13) & 0xff for i in range(size)))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    conf = """
daemon on;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 128; }}
http {{
    {mime}
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {html}; log_not_found off; }}
    }}
}}
""".format(d=d, port=port, html=html,
           mime="include /etc/nginx/mime.types;" if os.path.exists("/etc/nginx/mime.types") else "")
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    # Workers run as nobody when the master is root: they must read the files.
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return path


def gdb_mallinfo(pid):
    env = dict(os.environ)
    env.pop("DEBUGINFOD_URLS", None)
    r = subprocess.run(["gdb", "-nx", "-batch", "-p", str(pid),
                        "-iex", "set debuginfod enabled off",
                        "-ex", "print mallinfo2()"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, env=env)
    m = re.search(r"^\$1 = \{(.*)\}\s*$", r.stdout, re.M)
    if not m:
        raise Fail("gdb printed no mallinfo2 for %d:\n%s" % (pid, r.stdout[-2000:]))
    return {k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", m.group(1))}


def dump(memspy, pid, extra):
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        cmd = [memspy, "dump", "--pid", str(pid), "--json", "-o", path] + extra
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        sys.stderr.write(r.stderr)
        with open(path) as f:
            d = json.load(f) if os.path.getsize(path) else None
    finally:
        os.unlink(path)
    return cmd, r.returncode, d


def check(memspy, role, pid, extra):
    maps = heap_mappings(pid)
    cmd, code, rep = dump(memspy, pid, extra)
    # Right after memspy, with no load running: the process has not allocated since.
    want = gdb_mallinfo(pid)
    print("--- %s %d ([heap] in %d mapping%s)" % (role, pid, maps, "" if maps == 1 else "s"))
    print("$ %s  -> exit %d" % (" ".join(cmd), code))
    if rep is None:
        raise Fail("%s %d: memspy wrote no report" % (role, pid))
    got = rep.get("mallinfo2") or {}
    print("%-9s %14s %14s" % ("field", "gdb", "memspy"))
    bad = False
    for k in FIELDS:
        print("%-9s %14s %14s%s" % (k, want.get(k), got.get(k),
                                     "" if want.get(k) == got.get(k) else "   <-- differs"))
        bad |= want.get(k) != got.get(k)
    print("walk_source=%s pause_ms=%.1f cause=%s" % (rep.get("walk_source"),
                                                    rep.get("pause_ms") or 0, rep.get("cause")))
    errs = rep.get("errors") or []
    if errs:
        raise Fail("%s %d: %d problems (%s); the first: %s" % (
            role, pid, len(errs), rep.get("cause_message"), json.dumps(errs[0])))
    if code != 0:
        raise Fail("%s %d: memspy dump exited %d" % (role, pid, code))
    if bad:
        raise Fail("%s %d: mallinfo2 differs from gdb's" % (role, pid))


def wait_workers(d, master, old):
    """The master's 2 workers, none of them in old (after a reload the old ones leave)."""
    workers = []
    for _ in range(200):
        workers = children(master)
        if len(workers) == 2 and not set(workers) & set(old):
            break
        time.sleep(0.05)
    else:
        raise Fail("nginx master %d has workers %s, expected 2 new ones" % (master, workers))
    return workers


def load(port, requests):
    """A bounded load with ab; returns when it is over."""
    for path, n in (("/index.html", requests), ("/big.bin", requests // 10),
                    ("/mid.bin", requests // 3), ("/missing", requests // 10)):
        cmd = ["ab", "-q", "-n", str(n), "-c", "8", "-s", "10",
               "http://127.0.0.1:%d%s" % (port, path)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        done = re.search(r"Complete requests:\s+(\d+)", r.stdout)
        print("$ %s  -> %s requests" % (" ".join(cmd), done.group(1) if done else "?"))
        if r.returncode != 0 or not done or int(done.group(1)) != n:
            raise Fail("ab failed:\n" + r.stdout[-2000:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--port-base", type=int, default=17200)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--arg", action="append", default=[])
    a = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # what ran is kept even if this is killed
    for tool in (NGINX, "ab", "gdb"):
        if not shutil.which(tool):
            skip("%s not installed (scripts/install-deps.sh installs it)" % tool)

    d = tempfile.mkdtemp(prefix="memspy-nginx-")
    dog = subprocess.Popen([sys.executable, "-c", WATCHDOG, d], stdin=subprocess.PIPE,
                           start_new_session=True)
    # SIGTERM/SIGINT (a ctest timeout, ^C) unwind through finally like a failure.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    master = None
    try:
        started = False
        for port in range(a.port_base, a.port_base + 100):
            if not port_free(port):
                continue
            conf = write_conf(d, port)
            r = subprocess.run([NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=30)
            if r.returncode == 0:
                started = True
                break
            print("nginx on port %d: %s" % (port, r.stdout.strip()))
        if not started:
            raise Fail("nginx did not start on any port from %d" % a.port_base)
        print("nginx %s on 127.0.0.1:%d, prefix %s" % (
            subprocess.run([NGINX, "-v"], stderr=subprocess.PIPE, text=True).stderr.strip(),
            port, d))
        for _ in range(100):
            try:
                with open(os.path.join(d, "nginx.pid")) as f:
                    master = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        if not master:
            raise Fail("nginx wrote no pid file")
        workers = wait_workers(d, master, [])
        load(port, a.requests)
        # A reload, as in production: the master parses the configuration again
        # after the fork that daemonized it, so its own [heap] grows as a second
        # mapping too, and forks new workers.
        cmd = [NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log"), "-s", "reload"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30)
        print("$ %s  -> exit %d" % (" ".join(cmd), r.returncode))
        if r.returncode != 0:
            raise Fail("nginx -s reload: " + r.stdout)
        workers = wait_workers(d, master, workers)
        load(port, a.requests)
        time.sleep(0.5)  # connections closed, timers fired: from here on nginx is idle

        check(a.memspy, "master", master, a.arg)
        for w in workers:
            check(a.memspy, "worker", w, a.arg)
        for p in [master] + workers:
            if not os.path.exists("/proc/%d" % p):
                raise Fail("nginx process %d is gone after the dumps" % p)
        print("PASS")
        return 0
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        try:
            with open(os.path.join(d, "error.log")) as f:
                sys.stderr.write(f.read()[-2000:])
        except OSError:
            pass
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Stop nginx: TERM to the master (it stops its workers), then KILL what is left.
        pids = ([master] + children(master)) if master else []
        if master:
            try:
                os.kill(master, signal.SIGTERM)
            except OSError:
                pass
            for _ in range(40):
                if not any(alive(p) for p in pids):
                    break
                time.sleep(0.05)
        dog.stdin.close()  # the watchdog KILLs whatever is left and removes the dir
        dog.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
