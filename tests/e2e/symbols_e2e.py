#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of what fleet tools get from memspy: pprof files read by the
# real `go tool pprof` (addresses, mappings with build ids, Go's heap sample
# types, -diff_base), and names for stripped programs from separate debug info
# (a /usr/lib/debug/.build-id-style folder, a local debuginfod server,
# MiniDebugInfo). The target is memspy-symtest (the demo service): its
# functions handle_request, render_body, parse_request... allocate all the time.
#
#   symbols_e2e.py --memspy M --target T --stripped T.stripped --debug T.debug
#                  --minidebug T.minidebug --scenario S --workdir D
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
FUNCS = ("handle_request", "render_body", "parse_request", "compress_body")


class Fail(Exception):
    pass


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    if not m:
        raise Fail(f"{path} has no GNU build id")
    return m.group(1)


class Target:
    """memspy-symtest running for at most `seconds`; stopped on exit."""

    def __init__(self, exe, seconds=60):
        self.p = subprocess.Popen([exe, str(seconds)], stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if "ready" not in line:
            raise Fail(f"{exe} did not start: {line!r}")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def record(args, pid, out, extra=(), env=None, timeout=120):
    cmd = [args.memspy, "record", "--pid", str(pid), "-d", "1500ms", "-o", out]
    cmd += list(extra) if "walk" in extra else ["-s", "64k"] + list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    print(f"$ {' '.join(cmd)}  -> {r.returncode}", flush=True)
    if r.returncode != 0:
        raise Fail(f"memspy record failed ({r.returncode}):\n{r.stderr}")
    return r.stderr


def pprof(*a, env=None, ok=True):
    r = subprocess.run(["go", "tool", "pprof", *a], capture_output=True, text=True,
                       timeout=180, env=env)
    if ok and r.returncode != 0:
        raise Fail(f"go tool pprof {' '.join(a)} failed: {r.stderr}")
    return r.stdout + r.stderr


def raw_sections(text):
    """go tool pprof -raw: (sample type header, locations, mappings) lines."""
    sec, out = None, {"Samples": [], "Locations": [], "Mappings": []}
    for line in text.splitlines():
        if line.rstrip(":") in out or line in ("Samples:", "Locations", "Mappings"):
            sec = line.rstrip(":")
            continue
        if sec:
            out[sec].append(line)
    return out


def top_total(text):
    m = re.search(r"Total samples = ([^ \n]+)", text)
    if not m:
        raise Fail(f"no total in:\n{text}")
    return m.group(1)


def need_go():
    if not shutil.which("go"):
        print("SKIP: go is not installed (Debian: apt install golang-go)")
        sys.exit(SKIP)


def check_mappings(raw, exe, want_fn):
    """The first mapping is exe with its build id; every location has an address and a
    mapping; exe's mapping is [FN] exactly when want_fn."""
    maps = [l for l in raw["Mappings"] if l.strip()]
    if not maps:
        raise Fail("no mappings")
    m = re.match(r"1: 0x([0-9a-f]+)/0x([0-9a-f]+)/0x([0-9a-f]+) (\S+) ([0-9a-f]*) ?(\[.*\])?",
                 maps[0])
    if not m:
        raise Fail(f"first mapping unreadable: {maps[0]!r}")
    start, limit = int(m.group(1), 16), int(m.group(2), 16)
    if os.path.realpath(m.group(4)) != os.path.realpath(exe):
        raise Fail(f"the first mapping is {m.group(4)}, not the executable {exe}")
    if m.group(5) != build_id(exe):
        raise Fail(f"the first mapping's build id is {m.group(5)!r}, the file's {build_id(exe)}")
    if not start < limit:
        raise Fail(f"the first mapping is empty: {maps[0]}")
    if ("FN" in (m.group(6) or "")) != want_fn:
        raise Fail(f"the executable's mapping says {m.group(6)}, expected has_functions="
                   f"{want_fn}")
    for l in maps:
        if not re.search(r"\.so|" + re.escape(os.path.basename(exe)), l):
            continue
        if not re.match(r"\d+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ /\S+ [0-9a-f]{16,}", l):
            raise Fail(f"a mapping without range, path or build id: {l!r}")
    in_exe = 0
    for l in raw["Locations"]:
        if re.match(r"\s+\d+: 0x0 \[asleep in ", l):
            continue  # walk --idle's synthetic leaf: a state, not code
        lm = re.match(r"\s+\d+: 0x([0-9a-f]+) M=(\d+)", l)
        if not lm:
            if re.match(r"\s+\d+: ", l):
                raise Fail(f"a location without address or mapping: {l!r}")
            continue
        a = int(lm.group(1), 16)
        if a == 0:
            raise Fail(f"a location at 0x0: {l!r}")
        if lm.group(2) == "1":
            in_exe += 1
            if not start <= a < limit:
                raise Fail(f"location {l.strip()} lies outside mapping 1 [{start:#x}, {limit:#x})")
    if not in_exe:
        raise Fail("no location in the executable's mapping")
    print(f"  mappings: first {maps[0]}; {in_exe} locations in it, all inside its range")


def scen_pprof(args, wd):
    need_go()
    exe = args.target
    with Target(exe) as t:
        a, b = os.path.join(wd, "a.pb.gz"), os.path.join(wd, "b.pb.gz")
        live, cnt = os.path.join(wd, "live.pb.gz"), os.path.join(wd, "count.pb.gz")
        record(args, t.p.pid, a)
        record(args, t.p.pid, b)
        record(args, t.p.pid, live, ["--live"])
        record(args, t.p.pid, cnt, ["--count"])
        walk = os.path.join(wd, "walk.pb.gz")
        record(args, t.p.pid, walk, ["--mode", "walk", "--idle"])
    bad = []
    # walk mode's flame graph of all threads: the same mappings and addresses
    check_mappings(raw_sections(pprof("-raw", os.path.join(wd, "walk.all.pb.gz"))), exe, True)
    raw = pprof("-raw", a)
    sec = raw_sections(raw)
    check_mappings(sec, exe, True)
    if "PeriodType: space bytes" not in raw or "Period: 65536" not in raw:
        bad.append("period type/period not space bytes / 65536:\n" + raw[:400])
    if "alloc_objects/count alloc_space/bytes" not in raw:
        bad.append("sample types are not alloc_objects/count alloc_space/bytes")
    if not re.search(r"bytes:\[\d+\]", raw):
        bad.append("no numeric label bytes on the samples")
    top = pprof("-top", a)
    if "File: memspy-symtest" not in top or f"Build ID: {build_id(exe)}" not in top:
        bad.append("pprof -top does not name the executable and its build id:\n" + top[:300])
    for f in FUNCS:
        if f not in top:
            bad.append(f"{f} missing from pprof -top")
    for si in ("alloc_objects", "alloc_space"):
        print(f"  -top -sample_index={si} a.pb.gz: total {top_total(pprof('-top', '-sample_index=' + si, a))}")
    out = pprof("-top", "-sample_index=inuse_space", a, ok=False)
    if "must be one of" not in out:
        bad.append("an allocation profile claims inuse_space")
    # the live view carries all four, with the totals memspy printed
    raw = pprof("-raw", live)
    if "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes" not in raw:
        bad.append("the --live profile lacks Go's four sample types:\n" + raw[:500])
    tot = {}
    for si in ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space"):
        tot[si] = top_total(pprof("-top", "-sample_index=" + si, live))
        print(f"  -top -sample_index={si} live.pb.gz: total {tot[si]}")
    if tot["alloc_objects"] == "0" or tot["alloc_space"] in ("0", "0B"):
        bad.append(f"--live profile: no allocations in alloc_*: {tot}")
    top = pprof("-top", live)
    if "Type: inuse_space" not in top:
        bad.append("the --live profile's default sample type is not inuse_space")
    top = pprof("-top", cnt)
    if "Type: alloc_objects" not in top:
        bad.append("the --count profile's default sample type is not alloc_objects")
    raw = pprof("-raw", cnt)
    if "PeriodType: space bytes" not in raw:
        bad.append("the --count profile's period type is not space/bytes (sampling is by bytes)")
    diff = pprof("-top", "-diff_base", a, b)
    if "Showing nodes" not in diff or not any(f in diff for f in FUNCS):
        bad.append("-diff_base a b shows no nodes:\n" + diff[:400])
    print("  -diff_base: " + next((l for l in diff.splitlines() if "Total" in l), "?"))
    if bad:
        raise Fail("\n".join(bad))


def scen_pprof_stripped(args, wd):
    """A stripped program's frames stay addresses that go tool pprof symbolises from the
    unstripped binary, found by build id (PPROF_BINARY_PATH)."""
    need_go()
    exe = args.stripped
    f = os.path.join(wd, "stripped.pb.gz")
    env = dict(os.environ, DEBUGINFOD_URLS="")
    with Target(exe) as t:
        record(args, t.p.pid, f, env=env)
    raw = pprof("-raw", "-symbolize=none", f)
    sec = raw_sections(raw)
    check_mappings(sec, exe, False)
    named = [l for l in sec["Locations"] if re.match(r"\s+\d+: 0x[0-9a-f]+ M=1 \S", l)]
    if named:
        raise Fail(f"stripped frames carry names instead of addresses: {named[:3]}")
    # Go's bundled pprof cannot symbolise C (no build ids, Go line tables only);
    # google/pprof proper can: the unstripped file where it looks by build id,
    # $PPROF_BINARY_PATH/<build id>/<name>, must give the names back.
    tool = standalone_pprof(wd)
    if not tool:
        print("  (later symbolisation not checked: no standalone pprof; Debian: apt install "
              "golang-github-google-pprof-dev)")
        return
    bindir = os.path.join(wd, "binaries", build_id(exe))
    os.makedirs(bindir, exist_ok=True)
    shutil.copy(args.target, os.path.join(bindir, os.path.basename(exe)))
    r = subprocess.run([tool, "-top", f], capture_output=True, text=True, timeout=180,
                       env=dict(os.environ, PPROF_BINARY_PATH=os.path.join(wd, "binaries")))
    top = r.stdout + r.stderr
    got = [fn for fn in FUNCS if fn in top]
    print(f"  {tool} symbolised memspy's addresses from the binary found by build id: {got}")
    if len(got) < 3:
        raise Fail("pprof could not symbolise memspy's addresses from the binary:\n" + top[:800])


def standalone_pprof(wd):
    """google/pprof (binutils-based): on PATH, or built from Debian's source package."""
    for name in ("pprof",):
        p = shutil.which(name)
        if p:
            return p
    src = "/usr/share/gocode/src/github.com/google/pprof"
    if not os.path.isdir(src):
        return None
    out = os.path.join(os.path.dirname(wd), "pprof-tool", "pprof")
    if not os.path.exists(out):
        env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                   GOCACHE=os.path.join(os.path.dirname(wd), "pprof-tool", "cache"),
                   GOFLAGS="")
        r = subprocess.run(["nice", "go", "build", "-o", out, "github.com/google/pprof"],
                           capture_output=True, text=True, env=env, timeout=300)
        if r.returncode != 0:
            raise Fail(f"building google/pprof from {src} failed: {r.stderr}")
    return out


def names_in(folded):
    text = open(folded).read()
    return [f for f in FUNCS if f in text], text


def scen_build_id_dir(args, wd):
    """Separate debug info found by build id in a /usr/lib/debug/.build-id-style folder."""
    exe = args.stripped
    bid = build_id(exe)
    root = os.path.join(wd, "debugroot")
    d = os.path.join(root, ".build-id", bid[:2])
    os.makedirs(d, exist_ok=True)
    shutil.copy(args.debug, os.path.join(d, bid[2:] + ".debug"))
    with Target(exe) as t:
        before = os.path.join(wd, "nodebug.folded")
        err0 = record(args, t.p.pid, before, env=dict(os.environ, DEBUGINFOD_URLS=""))
        after = os.path.join(wd, "debug.folded")
        err1 = record(args, t.p.pid, after,
                      env=dict(os.environ, MEMSPY_DEBUGINFO_PATH=root, DEBUGINFOD_URLS=""))
    got0, _ = names_in(before)
    got1, _ = names_in(after)
    hint = [l for l in err0.splitlines() if "no function name" in l]
    print(f"  without the folder: {got0}; hint: {hint}")
    print(f"  with {root}: {got1}")
    if got0:
        raise Fail(f"names without debug info? {got0}")
    if not hint or "memspy-symtest" not in hint[0] or "DEBUGINFOD_URLS" not in hint[0]:
        raise Fail("no hint line naming the module and how to get names:\n" + err0)
    if len(got1) < 3:
        raise Fail("the .build-id folder was not used:\n" + err1)
    if any("no function name" in l for l in err1.splitlines() if "memspy-symtest" in l):
        raise Fail("the hint still blames memspy-symtest:\n" + err1)


def scen_build_id_system(args, wd):
    """The debug file where a -dbgsym package puts it: /usr/lib/debug/.build-id/xx/yyyy.debug.

    No MEMSPY_DEBUGINFO_PATH: the default root. Skips (77) unless that folder
    can be written and holds no file for this build id; the file is removed
    at the end.
    """
    exe = args.stripped
    bid = build_id(exe)
    d = os.path.join("/usr/lib/debug/.build-id", bid[:2])
    path = os.path.join(d, bid[2:] + ".debug")
    made = not os.path.isdir(d)
    try:
        os.makedirs(d, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        print(f"SKIP: cannot place {path}: {e}")
        sys.exit(SKIP)
    try:
        with os.fdopen(fd, "wb") as f, open(args.debug, "rb") as src:
            shutil.copyfileobj(src, f)
        env = dict(os.environ, DEBUGINFOD_URLS="")
        env.pop("MEMSPY_DEBUGINFO_PATH", None)
        with Target(exe) as t:
            out = os.path.join(wd, "system.folded")
            err = record(args, t.p.pid, out, env=env)
        got, _ = names_in(out)
        print(f"  with {path}: {got}")
        if len(got) < 3:
            raise Fail(f"{path} was not used:\n" + err)
        if any("no function name" in l for l in err.splitlines() if "memspy-symtest" in l):
            raise Fail("the hint still blames memspy-symtest:\n" + err)
    finally:
        os.unlink(path)
        if made:
            try:
                os.rmdir(d)
            except OSError:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scen_debuginfod(args, wd):
    """A real debuginfod server on 127.0.0.1 over a folder holding the debug file."""
    if not shutil.which("debuginfod"):
        print("SKIP: debuginfod is not installed (Debian: apt install debuginfod)")
        sys.exit(SKIP)
    exe = args.stripped
    serve = os.path.join(wd, "serve")
    shutil.rmtree(serve, ignore_errors=True)
    os.makedirs(serve)
    shutil.copy(args.debug, os.path.join(serve, "memspy-symtest.debug"))
    cache = os.path.join(wd, "client-cache")
    shutil.rmtree(cache, ignore_errors=True)
    port = free_port()
    db = os.path.join(wd, "debuginfod.sqlite")
    for p in (db, db + "-wal", db + "-shm"):
        if os.path.exists(p):
            os.unlink(p)
    srv = subprocess.Popen(["debuginfod", "-p", str(port), "-d", db, "-F", "-t", "0", "-g", "0",
                            "-c", "1", serve], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=dict(os.environ, DEBUGINFOD_URLS=""))
    url = f"http://127.0.0.1:{port}"
    try:
        # ready when the scan has indexed the file: the server answers for the build id
        bid = build_id(exe)
        end = time.monotonic() + 60
        while True:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                f"{url}/buildid/{bid}/debuginfo"], capture_output=True, text=True)
            if r.stdout == "200":
                break
            if time.monotonic() > end or srv.poll() is not None:
                raise Fail(f"debuginfod did not serve {bid} within 60 s (http {r.stdout})")
            time.sleep(0.5)
        env = dict(os.environ, DEBUGINFOD_URLS=url, DEBUGINFOD_CACHE_PATH=cache,
                   MEMSPY_DEBUGINFO_PATH=os.path.join(wd, "empty-debug-root"))
        with Target(exe) as t:
            out = os.path.join(wd, "debuginfod.folded")
            err = record(args, t.p.pid, out, env=env)
            got, _ = names_in(out)
            progress = [l for l in err.splitlines() if l.startswith("memspy: debuginfod:")]
            print(f"  names through {url}: {got}; progress: {progress}")
            if len(got) < 3:
                raise Fail("no names through debuginfod:\n" + err)
            if not progress:
                raise Fail("no progress line for the debuginfod fetch:\n" + err)
            # the second time comes from the client's cache: no new fetch line
            srv.terminate()
            srv.wait(timeout=10)
            out2 = os.path.join(wd, "debuginfod2.folded")
            err2 = record(args, t.p.pid, out2, env=env)
            got2, _ = names_in(out2)
            print(f"  from the cache, server stopped: {got2}")
            if len(got2) < 3:
                raise Fail("the fetched debug file was not cached:\n" + err2)
            if not any("got" in l for l in err2.splitlines() if l.startswith("memspy: debuginfod:")):
                raise Fail("no line saying where the debug info came from:\n" + err2)
        # without DEBUGINFOD_URLS no network call is made: a server would not be asked
        with Target(exe) as t:
            out3 = os.path.join(wd, "nourl.folded")
            env3 = dict(os.environ, DEBUGINFOD_CACHE_PATH=os.path.join(wd, "cache3"),
                        MEMSPY_DEBUGINFO_PATH=os.path.join(wd, "empty-debug-root"))
            env3.pop("DEBUGINFOD_URLS", None)
            err3 = record(args, t.p.pid, out3, env=env3)
            got3, _ = names_in(out3)
            if got3 or any(l.startswith("memspy: debuginfod:") for l in err3.splitlines()):
                raise Fail("memspy went to debuginfod without DEBUGINFOD_URLS:\n" + err3)
    finally:
        if srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(timeout=10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()


def scen_debuginfod_silent(args, wd):
    """A server that accepts the connection and never answers: memspy gives up on it
    (no progress for 15 s), says so, writes its file, and the hint says what happened."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # connections complete in the backlog; nothing is ever read or sent
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    try:
        env = dict(os.environ, DEBUGINFOD_URLS=url,
                   DEBUGINFOD_CACHE_PATH=os.path.join(wd, "cache"),
                   MEMSPY_DEBUGINFO_PATH=os.path.join(wd, "empty-debug-root"))
        with Target(args.stripped) as t:
            out = os.path.join(wd, "silent.folded")
            err = record(args, t.p.pid, out, env=env, timeout=200)
            if t.p.poll() is not None:
                raise Fail("the target died")
    finally:
        srv.close()
    lines = [l for l in err.splitlines() if l.startswith("memspy: debuginfod:") or "names:" in l]
    print("  " + "\n  ".join(lines))
    if not any("given up" in l for l in lines):
        raise Fail("no line saying the silent server was given up:\n" + err)
    if not any("names:" in l and "given up" in l for l in lines):
        raise Fail("the names: hint does not say the server was given up:\n" + err)
    if not os.path.getsize(out):
        raise Fail("no profile written")


def scen_minidebuginfo(args, wd):
    """.gnu_debugdata (an xz'd symbol table in the stripped file, as Fedora ships)."""
    exe = args.minidebug
    with Target(exe) as t:
        out = os.path.join(wd, "minidebug.folded")
        err = record(args, t.p.pid, out, env=dict(os.environ, DEBUGINFOD_URLS=""))
    got, _ = names_in(out)
    print(f"  names from .gnu_debugdata: {got}")
    if len(got) < 3:
        raise Fail("no names from MiniDebugInfo:\n" + err)


SCENARIOS = {
    "pprof": scen_pprof,
    "pprof-stripped": scen_pprof_stripped,
    "build-id-dir": scen_build_id_dir,
    "build-id-system": scen_build_id_system,
    "debuginfod": scen_debuginfod,
    "debuginfod-silent": scen_debuginfod_silent,
    "minidebuginfo": scen_minidebuginfo,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--stripped", required=True)
    ap.add_argument("--debug", required=True)
    ap.add_argument("--minidebug", required=True)
    ap.add_argument("--scenario", required=True, choices=SCENARIOS)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    wd = os.path.join(args.workdir, args.scenario)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    try:
        SCENARIOS[args.scenario](args, wd)
    except Fail as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
