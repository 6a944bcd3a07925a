#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# End-to-end tests of `memspy top` against memspy-top-target (a real,
# self-checking child with a known mix of allocation sites): in a real
# terminal (a tmux pane: keys, resize, q / Ctrl-C / SIGTERM, the terminal
# restored) and with stdout to a pipe (plain blocks, a final block). After
# memspy exits, the target's code must equal its files, it must not be
# traced, and it must pass its own check.
import argparse
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import SKIP, Fail, LineReader, log, text_check, tracer_of  # noqa: E402

SITES = ["top_site_big", "top_site_mid", "top_site_small"]
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
BYTES = r"([\d.]+) (B|KiB|MiB|GiB|TiB)"
ROW = re.compile(r"^\s*" + BYTES + r"/s\s+" + BYTES + r"/s\s+([\d,]+)\s+([\d,]+)\s+"
                 r"(?:" + BYTES + r"\s+" + BYTES + r"\s+)?(\S.*)$")
MEAN = "256k"  # fixed sampling mean: enough samples per second for the shares


def to_bytes(num, unit):
    return float(num) * UNITS[unit]


def parse_view(text):
    """The header and rows of one view (a screen or a block)."""
    lines = text.splitlines()
    view = {"header": [], "rows": [], "sort": None}
    i = 0
    while i < len(lines) and "FUNCTION" not in lines[i]:
        view["header"].append(lines[i])
        i += 1
    if i == len(lines):
        return None
    titles = lines[i]
    m = re.search(r"(OWN B/s|TOTAL B/s|OWN ALLOCS/s|TOTAL ALLOCS/s|OWN LIVE|TOTAL LIVE)\*",
                  titles)
    view["sort"] = m.group(1) if m else None
    view["live"] = "OWN LIVE" in titles
    for line in lines[i + 1:]:
        if not line.strip():
            break
        m = ROW.match(line)
        if not m:
            raise Fail(f"a row that does not parse: {line!r}")
        g = m.groups()
        row = {
            "own_b": to_bytes(g[0], g[1]),
            "tot_b": to_bytes(g[2], g[3]),
            "own_n": int(g[4].replace(",", "")),
            "tot_n": int(g[5].replace(",", "")),
            "name": g[10],
        }
        if g[6]:
            row["own_live"] = to_bytes(g[6], g[7])
            row["tot_live"] = to_bytes(g[8], g[9])
        row["fn"] = row["name"].split(" ")[0]
        view["rows"].append(row)
    head = "\n".join(view["header"])
    m = re.search(r"mean ([\d.]+ \w+), (\d+) samples/s", head)
    view["samples_per_s"] = int(m.group(2)) if m else None
    m = re.search(r"pid \d+ \([^)]*\), ([\d.]+) s", head)
    view["elapsed"] = float(m.group(1)) if m else None
    return view


def check_header(view, pid):
    head = "\n".join(view["header"])
    for want in (f"memspy top: pid {pid} (memspy-top-targ", "sampling: mean 256 KiB",
                 "samples/s", "cost to the target: "):
        if want not in head:
            raise Fail(f"header lacks {want!r}:\n{head}")


def site_rows(view):
    return [r for r in view["rows"] if r["fn"] in SITES]


def share_sigma(byte_share, size, i, n):
    """
    Standard deviation of site i's share of the estimated allocations (size:
    bytes per allocation of each site) or, with every size 1, of the bytes,
    from n samples: samples fall on the sites as a multinomial of their byte
    shares, and a site's count is its samples over its size (delta method).
    """
    k = [n * b for b in byte_share]
    c = [k[j] / size[j] for j in range(len(k))]
    total = sum(c)
    grad = [((1 if j == i else 0) / size[j]) / total - c[i] / (size[j] * total * total)
            for j in range(len(k))]
    var = sum(grad[a] * grad[b] * n * (byte_share[a] * (1 if a == b else 0) -
                                       byte_share[a] * byte_share[b])
              for a in range(len(k)) for b in range(len(k)))
    return math.sqrt(max(var, 0))


def check_shares(view, t, key, what):
    """Sites' shares of key against the target's mix, within 4 sigma of n samples."""
    rows = {r["fn"]: r for r in site_rows(view)}
    n = view["samples_per_s"]
    expect = t.bytes if key == "own_b" else t.allocs
    total = sum(rows[s][key] for s in SITES)
    if total <= 0:
        raise Fail(f"{what}: no {key} at all")
    want_total = sum(expect[s] for s in SITES)
    byte_share = [t.bytes[s] / sum(t.bytes.values()) for s in SITES]
    size = [1] * len(SITES) if key == "own_b" else [t.bytes[s] / t.allocs[s] for s in SITES]
    for i, s in enumerate(SITES):
        want = expect[s] / want_total
        got = rows[s][key] / total
        tol = max(0.03, 4 * share_sigma(byte_share, size, i, n))
        log(f"  {what}: {s} {got:.3f} (target's mix {want:.3f}, tolerance {tol:.3f}, "
            f"{n} samples)")
        if abs(got - want) > tol:
            raise Fail(f"{what}: {s} has {got:.3f} of the {key}, the target's mix {want:.3f} "
                       f"(tolerance {tol:.3f} from {n} samples)")


def check_sorted(view, key):
    vals = [r[key] for r in view["rows"]]
    if any(a < b for a, b in zip(vals, vals[1:])):
        raise Fail(f"rows not in decreasing {key}: {vals}")


class Target:
    def __init__(self, path, mode):
        self.p = subprocess.Popen([path, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        first = self.p.stdout.readline().split()
        if len(first) != 2 or first[0] != "ready":
            raise Fail(f"target did not start: {first}")
        self.pid = int(first[1])
        self.bytes, self.allocs = {}, {}
        for _ in SITES:
            f = self.p.stdout.readline().split()
            self.bytes[f[1]], self.allocs[f[1]] = int(f[2]), int(f[3])
        log(f"target {self.pid}: bytes per round {self.bytes}, allocations {self.allocs}")

    def finish(self):
        """After memspy: code restored, not traced, its own check passes."""
        if self.p.poll() is not None:
            raise Fail(f"the target died: status {self.p.returncode}")
        text_check(self.pid)
        if tracer_of(self.pid) != 0:
            raise Fail(f"the target is still traced (TracerPid {tracer_of(self.pid)})")
        out, _ = self.p.communicate("stop\n", timeout=60)
        log("target: " + out.replace("\n", " | "))
        if "selfcheck ok" not in out or self.p.returncode != 0:
            raise Fail(f"the target's own check failed (status {self.p.returncode}): {out}")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def check_summary(err_text):
    if "verified after detach" not in err_text or "byte-identical" not in err_text:
        raise Fail(f"memspy's summary does not say the code was verified:\n{err_text}")
    if not re.search(r"memspy top: pid \d+: .* allocated in .* allocations", err_text):
        raise Fail(f"memspy's summary lacks its first line:\n{err_text}")


# ------------------------------ in a terminal ------------------------------


class Pane:
    """memspy top in a tmux pane of its own server (socket in the work directory)."""

    def __init__(self, workdir, memspy, pid, extra=()):
        self.sock = os.path.join(workdir, "tmux.sock")
        self.err = os.path.join(workdir, "stderr.txt")
        self.rc = os.path.join(workdir, "rc.txt")
        self.stty = os.path.join(workdir, "stty.txt")
        for f in (self.err, self.rc, self.stty):
            if os.path.exists(f):
                os.unlink(f)
        cmd = " ".join([memspy, "top", "--pid", str(pid), "-s", MEAN] + list(extra))
        # After memspy: its status, and the terminal's modes as the shell finds them.
        shell = (f"{cmd} 2>{self.err}; echo $? >{self.rc}.tmp; mv {self.rc}.tmp {self.rc}; "
                 f"stty -a >{self.stty} 2>&1; sleep 120")
        self.tmux("new-session", "-d", "-x", "120", "-y", "40", shell)

    def tmux(self, *args, check=True):
        r = subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode:
            raise Fail(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def capture(self):
        return self.tmux("capture-pane", "-p")

    def flag(self, name):
        return self.tmux("display-message", "-p", "#{" + name + "}").strip()

    def memspy_pid(self):
        shell = int(self.tmux("display-message", "-p", "#{pane_pid}").strip())
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        st = f.read()
                except OSError:
                    continue
                if int(st.rsplit(")", 1)[1].split()[1]) == shell and "(memspy)" in st:
                    return int(d)
        raise Fail("memspy is not running in the pane")

    def wait_view(self, pred, timeout, what):
        """The first screen whose view satisfies pred."""
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            last = self.capture()
            v = parse_view(last)
            if v and pred(v):
                return v, last
            time.sleep(0.3)
        raise Fail(f"timed out after {timeout} s waiting for {what}; the screen:\n{last}")

    def wait_exit(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(self.rc):
                with open(self.rc) as f:
                    rc = int(f.read().strip())
                time.sleep(0.5)  # stty runs next
                with open(self.err) as f:
                    err = f.read()
                return rc, err
            time.sleep(0.2)
        raise Fail(f"memspy did not exit within {timeout} s; the screen:\n{self.capture()}")

    def close(self):
        self.tmux("kill-server", check=False)


def ready(v, min_samples=100):
    """A full window with all three sites and enough samples to judge shares."""
    return (len(site_rows(v)) == 3 and all(r["own_b"] > 0 for r in site_rows(v))
            and v["samples_per_s"] and v["samples_per_s"] >= min_samples)


def after_redraw(v, since):
    return v["elapsed"] is not None and v["elapsed"] > since


def check_restored(pane, stty_needed=True):
    """Cursor shown, alternate screen left, termios as before (cooked, echo, signals)."""
    alt, cursor = pane.flag("alternate_on"), pane.flag("cursor_flag")
    if alt != "0" or cursor != "1":
        raise Fail(f"terminal not restored: alternate_on={alt} cursor_flag={cursor}")
    end = time.monotonic() + 10
    while not os.path.exists(pane.stty) and time.monotonic() < end:
        time.sleep(0.2)
    with open(pane.stty) as f:
        modes = f.read().split()
    for want in ("icanon", "echo", "isig", "ixon", "icrnl"):
        if want not in modes:
            raise Fail(f"termios not restored: '{want}' is not set: {' '.join(modes)}")
    log("terminal restored: alternate screen left, cursor shown, icanon echo isig set")


def scenario_tty(a, quit_how):
    t = Target(a.target, "mix")
    pane = None
    try:
        pane = Pane(a.workdir, a.memspy, t.pid)
        # The sites in byte order within a few seconds.
        v, screen = pane.wait_view(ready, 30, "the three sites on screen")
        log("screen:\n" + screen)
        check_header(v, t.pid)
        if pane.flag("alternate_on") != "1" or pane.flag("cursor_flag") != "0":
            raise Fail("memspy top does not use the alternate screen with the cursor hidden")
        if v["sort"] != "OWN B/s":
            raise Fail(f"default sort is {v['sort']}, not OWN B/s")
        if [r["fn"] for r in v["rows"][:3]] != SITES:
            raise Fail(f"the first rows are not the sites in byte order: {v['rows'][:3]}")
        check_sorted(v, "own_b")
        check_shares(v, t, "own_b", "bytes/s")
        if quit_how == "q":
            # Key 3: allocations/s, the reverse order of the sites.
            pane.tmux("send-keys", "3")
            v, screen = pane.wait_view(
                lambda x: x["sort"] == "OWN ALLOCS/s" and ready(x), 15, "sorting by key 3")
            log("after key 3:\n" + screen)
            if [r["fn"] for r in v["rows"][:3]] != SITES[::-1]:
                raise Fail(f"by allocations/s the sites are not small, mid, big: "
                           f"{[r['fn'] for r in v['rows'][:3]]}")
            check_sorted(v, "own_n")
            check_shares(v, t, "own_n", "allocations/s")
            # Left arrow: the column before, total bytes: callers first.
            pane.tmux("send-keys", "Left")
            v, screen = pane.wait_view(lambda x: x["sort"] == "TOTAL B/s" and ready(x), 15,
                                       "sorting by the left arrow")
            log("after Left:\n" + screen)
            check_sorted(v, "tot_b")
            if v["rows"][0]["fn"] in SITES:
                raise Fail("by total bytes a caller of every site must come first")
            top = v["rows"][0]["tot_b"]
            if any(r["tot_b"] > top for r in v["rows"]):
                raise Fail("total bytes: the first row is not the largest")
            # Resize: the table follows the new height.
            pane.tmux("resize-window", "-x", "70", "-y", "9")
            v, screen = pane.wait_view(lambda x: len(x["rows"]) == 3, 10,
                                       "the view redrawn at 70x9 (3 rows)")
            log("after resize to 70x9:\n" + screen)
            pane.tmux("send-keys", "q")
        elif quit_how == "ctrl-c":
            pane.tmux("send-keys", "C-c")
        elif quit_how == "sigterm":
            os.kill(pane.memspy_pid(), signal.SIGTERM)
        rc, err = pane.wait_exit(60)
        log("memspy's stderr:\n" + err)
        if rc != 0:
            raise Fail(f"memspy top exited {rc}, not 0")
        check_summary(err)
        check_restored(pane)
        t.finish()
    finally:
        if pane:
            pane.close()
        t.kill()


# ------------------------------ not a terminal ------------------------------


def blocks(out):
    """The blocks of a pipe's output: each starts with 'memspy top: pid'."""
    parts = re.split(r"(?m)^(?=memspy top: pid )", out)
    return [p for p in parts if p.strip()]


def scenario_pipe(a, live):
    t = Target(a.target, "leak" if live else "mix")
    try:
        # Until SIGTERM (as q in a terminal): it comes once two periodic blocks
        # are out, whenever that is, so nothing here depends on the machine's speed.
        args = [a.memspy, "top", "--pid", str(t.pid), "-s", MEAN] + \
            (["--live"] if live else [])
        m = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            stdout = LineReader(m.stdout, "top", echo=False)
            stderr = LineReader(m.stderr, "top's stderr", echo=False)
            end = time.monotonic() + 120  # a hang, not a slow machine
            while sum(1 for l in list(stdout.lines) if l.startswith("memspy top: pid ")) < 3:
                if time.monotonic() > end or m.poll() is not None:
                    raise Fail("memspy top printed fewer than two periodic blocks")
                time.sleep(0.05)
            m.send_signal(signal.SIGTERM)
            m.wait(timeout=120)
            stdout.t.join(30)
            stderr.t.join(30)
        finally:
            if m.poll() is None:
                m.kill()
                m.wait()
        out = "".join(l + "\n" for l in stdout.lines)
        err = "".join(l + "\n" for l in stderr.lines)
        log("memspy's stdout:\n" + out)
        log("memspy's stderr:\n" + err)
        if m.returncode != 0:
            raise Fail(f"memspy top exited {m.returncode}, not 0")
        if "\033" in out:
            raise Fail("escape sequences in the output to a pipe")
        bl = blocks(out)
        periodic = [b for b in bl if "final, averages" not in b.splitlines()[0]]
        final = [b for b in bl if "final, averages" in b.splitlines()[0]]
        if len(final) != 1 or bl[-1] is not final[0]:
            raise Fail(f"not exactly one final block, last: {len(final)} final blocks")
        if len(periodic) < 2:
            raise Fail(f"{len(periodic)} periodic blocks before the final one, 2 were seen")
        # Each block says how long the view has run: a periodic block later than
        # the one before, the final one no earlier than the last (to 0.1 s, it
        # may come at once). No bound on the gaps: the machine may stall.
        times = [parse_view(b)["elapsed"] for b in bl]
        log(f"blocks at {times} s")
        if None in times or any(y <= x for x, y in zip(times[:-1], times[1:-1])) or \
                times[-1] < times[-2]:
            raise Fail(f"the blocks' elapsed times do not grow: {times}")
        for b in periodic:
            v = parse_view(b)
            check_header(v, t.pid)
            if v["sort"] != "OWN B/s" or "sorted by OWN B/s" not in b:
                raise Fail("a block does not say it is sorted by OWN B/s")
            if [r["fn"] for r in v["rows"][:3]] != SITES:
                raise Fail(f"a block's first rows are not the sites in byte order:\n{b}")
            check_sorted(v, "own_b")
            if len(v["rows"]) > 20:
                raise Fail("more than 20 rows in a block")
        v = parse_view(final[0])
        check_header(v, t.pid)
        # the final block's samples/s is the average over the whole session
        n = v["samples_per_s"] * (v["elapsed"] or 1)
        v["samples_per_s"] = int(n)
        rows = {r["fn"]: r for r in v["rows"]}
        if not live:
            if [r["fn"] for r in v["rows"][:3]] != SITES:
                raise Fail("the final block's first rows are not the sites in byte order")
            check_shares(v, t, "own_b", "final bytes/s")
        else:
            if not v["live"]:
                raise Fail("no live columns with --live")
            leak = rows.get("top_site_leak")
            if not leak or leak["own_live"] <= 0:
                raise Fail("top_site_leak has no live bytes")
            # Nothing it allocates is freed: live = allocated (average rate x duration).
            allocated = leak["own_b"] * v["elapsed"]
            log(f"  top_site_leak: live {leak['own_live']:.0f} B, allocated ~{allocated:.0f} B")
            if not 0.9 * allocated <= leak["own_live"] <= 1.1 * allocated:
                raise Fail(f"top_site_leak: live {leak['own_live']} B, allocated ~{allocated} B")
            for s in SITES:
                r = rows[s]
                if r["own_live"] > 0.05 * r["own_b"] * v["elapsed"]:
                    raise Fail(f"{s} frees what it allocates, yet shows {r['own_live']} B live")
        check_summary(err)
        t.finish()
    finally:
        t.kill()


def scenario_usage(a):
    r = subprocess.run([a.memspy, "top", "--pid", "1", "-o", "x.svg"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 64 or "--output is an option of memspy record, not of top" not in r.stderr:
        raise Fail(f"-o: status {r.returncode}, {r.stderr!r}")
    r = subprocess.run([a.memspy, "top", "--pid", "1", "--interval", "10s"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 64 or "--interval is an option of memspy record, not of top" not in r.stderr:
        raise Fail(f"--interval: status {r.returncode}, {r.stderr!r}")
    r = subprocess.run([a.memspy, "top", "--pid", "1", "--subprocesses"], capture_output=True,
                       text=True, timeout=30)
    if (r.returncode != 64 or
            "--subprocesses is an option of memspy record, not of top" not in r.stderr):
        raise Fail(f"--subprocesses: status {r.returncode}, {r.stderr!r}")
    r = subprocess.run([a.memspy, "top"], capture_output=True, text=True, timeout=30)
    if r.returncode != 64 or "--pid is required (e.g. memspy top --pid" not in r.stderr:
        raise Fail(f"no --pid: status {r.returncode}, {r.stderr!r}")
    r = subprocess.run([a.memspy, "top", "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or "Usage: memspy top" not in r.stdout or "q or Ctrl-C" not in r.stdout:
        raise Fail(f"--help: status {r.returncode}")
    top_help = r.stdout
    rec_help = subprocess.run([a.memspy, "record", "--help"], capture_output=True, text=True,
                              timeout=30).stdout
    for line in top_help.splitlines():
        if len(line) > 79:
            raise Fail(f"--help: a line of {len(line)} columns: {line!r}")
    # The options top shares with record are described by the same text in both helps.
    for opt in ("-p, --pid PID", "-d, --duration D", "-s, --sample-bytes N",
                "--max-overhead PCT", "--exact", "--stack-bytes N", "--unwinder U",
                "--probe SYMBOL", "--probe-free SYMBOL", "-q, --quiet", "-h, --help"):
        blocks = [help_block(h, opt) for h in (top_help, rec_help)]
        if not blocks[0] or blocks[0] != blocks[1]:
            raise Fail(f"--help: {opt} is described differently by top and record: {blocks!r}")
    log("usage: -o and --subprocesses refused, --pid required, --help is top's, "
        "its shared options described as record's")


def help_block(text, opt):
    """The lines that describe opt in a --help text: its line and the indented ones after it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(" " * 7):
            continue  # a description's continuation, not an option's line
        if line.strip().startswith(opt + " ") or line.strip() == opt:
            block = [line]
            for more in lines[i + 1:]:
                if not more.startswith(" " * 25) or not more.strip():
                    break
                block.append(more)
            return block
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--scenario", required=True,
                    choices=["usage", "tty", "tty-ctrl-c", "tty-sigterm", "pipe", "pipe-live"])
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    a.workdir = os.path.join(a.workdir, a.scenario)
    os.makedirs(a.workdir, exist_ok=True)
    if a.scenario.startswith("tty") and not shutil.which("tmux"):
        log("SKIP: tmux is not installed")
        return SKIP
    if a.scenario.startswith("tty") and not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        log("FAIL: /dev/null is not a character device here: tmux's server cannot start")
        return 1
    if a.scenario != "usage":
        t = subprocess.run(["sh", "-c", "sleep 30 & sleep 0.1; " + a.memspy +
                            " top --pid $! -d 0.1s -q >/dev/null; s=$?; kill $!; exit $s"],
                           capture_output=True, text=True, timeout=60)
        if "not permitted" in t.stderr:
            log("SKIP: cannot ptrace here: " + t.stderr.strip())
            return SKIP
    try:
        if a.scenario == "usage":
            scenario_usage(a)
        elif a.scenario == "tty":
            scenario_tty(a, "q")
        elif a.scenario == "tty-ctrl-c":
            scenario_tty(a, "ctrl-c")
        elif a.scenario == "tty-sigterm":
            scenario_tty(a, "sigterm")
        elif a.scenario == "pipe":
            scenario_pipe(a, False)
        elif a.scenario == "pipe-live":
            scenario_pipe(a, True)
    except Fail as e:
        log(f"FAIL: {e}")
        return 1
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
