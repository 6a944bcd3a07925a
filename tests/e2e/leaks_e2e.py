#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
End-to-end test of `memspy dump --leaks` against a target that knows what it
leaked and what it kept (tests/targets/leaks_cxx in C++, leaks_c in C, whose
truth says "untyped": every case in a size class of its own): the counts by
type and set
must match within a few percent, nothing reachable may be reported leaked
beyond a handful, and the target must finish its own self-check.

  leaks_e2e.py --memspy M --target T [--arg MEMSPY-ARG]...
  leaks_e2e.py --memspy M --target heap_mallinfo --corrupt MODE

With --corrupt, the target is tests/targets/heap_mallinfo, whose forked copy
damages its own heap (MODE: size, fastcycle, tcachenext): the scan must end
within the timeout in a partial report (exit 1, the walk's errors, a leak
section marked partial that says why), and the copy must exit 0.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Target, fail, main, run, run_ok  # noqa: E402

# Stale words in registers or live stack slots can keep a few leaked chunks
# alive, and libc/libstdc++ may leak a few of their own: allowed either way.
HANDFUL = 5


def close(got, want):
    return abs(got - want) <= max(HANDFUL, 0.03 * want)


def start_target(argv):
    """The target prints what it leaked and kept as one JSON line, then waits."""
    t = Target(argv, ready=r"^\{", echo=False)
    return t, json.loads(t.ready.string)


def finish_target(t):
    """Closing its stdin makes the target check itself: one more JSON line, exit 0."""
    t.p.stdin.close()
    end = json.loads(t.line(30, "the target's self-check"))
    if t.wait(30) != 0 or end.get("self_check") != "ok":
        fail("target self-check: %s, exit %s" % (end, t.p.returncode))
    print("ok: target unharmed (self-check ok, exit 0)")


def run_memspy(memspy, pid, extra, json_out):
    cmd = [memspy, "dump", "--pid", str(pid), "--leaks"] + extra
    if json_out:
        fd, path = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        cmd += ["--json", "-o", path]
    out = run_ok(cmd)
    if not json_out:
        return out
    with open(path) as f:
        d = json.load(f)
    os.unlink(path)
    return d


def check(truth, d):
    lk = d["leaks"]
    types = {t["type"]: t for t in d["types"]}
    by_type = {t["type"]: t for t in lk["by_type"]}

    def untyped(chunk):
        for t in d["types"]:
            if not t["typed"] and t["chunk_size_min"] <= chunk <= t["chunk_size_max"]:
                return t, by_type.get(t["type"], {"count": 0, "unreferenced_count": 0})
        fail("no untyped group for %d-byte chunks" % chunk)

    all_untyped = truth.get("untyped", False)
    want_count = want_bytes = 0
    for name, (count, unref, chunk) in truth["leaked"].items():
        want_count += count
        want_bytes += count * chunk
        if all_untyped or name in ("string_body", "raw"):
            t, lt = untyped(chunk)
        else:
            if name not in types:
                fail("type %s not found; types: %s" % (name, [t["type"] for t in d["types"][:20]]))
            t, lt = types[name], by_type.get(name, {"count": 0, "unreferenced_count": 0})
            if t["bytes"] != t["count"] * chunk:
                fail("%s: %d bytes for %d chunks of %d" % (name, t["bytes"], t["count"], chunk))
        if not close(lt["count"], count):
            fail("%s: %d leaked, the target leaked %d" % (name, lt["count"], count))
        # The last raw block lies just below the main arena's top, whose header
        # main_arena.top points at: that pointer must not keep it (none may be missing).
        if name == "raw" and lt["count"] < count:
            fail("raw: %d leaked, the target leaked %d: a pointer to the next chunk's header"
                 " kept the one below top alive" % (lt["count"], count))
        if not close(lt["unreferenced_count"], unref):
            fail("%s: %d unreferenced, the target expects %d"
                 % (name, lt["unreferenced_count"], unref))
        print("ok: %-12s leaked %5d (want %5d), unreferenced %5d (want %5d)"
              % (name, lt["count"], count, lt["unreferenced_count"], unref))
    for name, (count, chunk) in truth["kept"].items():
        t = untyped(chunk)[0] if all_untyped else types.get(name)
        if not t:
            fail("kept type %s not found" % name)
        if t["count"] != count or t["leaked_count"] > HANDFUL:
            fail("%s: %d in use (want %d), %d leaked (want 0)"
                 % (name, t["count"], count, t["leaked_count"]))
        print("ok: %-12s in use %5d (want %5d), leaked %d" % (name, t["count"], count,
                                                              t["leaked_count"]))
    got = lk["leaked"]["count"]
    if got < want_count - HANDFUL or got > want_count + HANDFUL:
        fail("%d leaked in all, the target leaked %d" % (got, want_count))
    if not close(lk["leaked"]["bytes"], want_bytes):
        fail("%d bytes leaked, the target leaked %d" % (lk["leaked"]["bytes"], want_bytes))
    print("ok: total leaked %d (want %d), %d bytes (want %d)"
          % (got, want_count, lk["leaked"]["bytes"], want_bytes))
    # The pause is reported as for a plain dump (the scan runs after it, on the snapshot).
    if not d.get("pause_ms", 0) > 0:
        fail("no pause reported: pause_ms %r" % d.get("pause_ms"))
    print("ok: pause reported: %.1f ms" % d["pause_ms"])
    thr = {t["tid"]: t for t in lk["threads"]}
    for key, name in (("tid_stack", "StackOnly"), ("tid_tls", "TlsOnly")):
        t = thr.get(truth[key])
        want = truth["kept"][name][0]
        if not t or not (want <= t["thread_only_count"] <= want + HANDFUL):
            fail("thread %d (%s): %s thread-only, want %d"
                 % (truth[key], name, t and t["thread_only_count"], want))
        print("ok: thread %d holds %d allocations alone (want %d + its tcache)"
              % (truth[key], t["thread_only_count"], want))


def check_explain(memspy, pid, truth, extra, stripped):
    """--explain on addresses the target printed: the status and where the chain starts."""
    hide = int(truth["probe_hide"], 16)
    p = {k: v if k == "kept" else hex(int(v, 16) ^ hide) for k, v in truth["probe"].items()}
    cases = [
        # Stripped: no symbol names the global, but the module's data still holds it.
        ("kept", "reachable", "data of" if stripped else "g_kept"),
        ("stack", "thread-only", "stack of thread %d" % truth["tid_stack"]),
        ("tls", "thread-only", "static TLS of thread %d" % truth["tid_tls"]),
        ("node", "leaked", None),
        ("dropped", "leaked", None),
        ("string_body", "leaked", None),
    ]
    for name, status, root in cases:
        d = run_memspy(memspy, pid, extra + ["--explain", p[name]], True)
        e = d["leaks"]["explain"]
        if e["status"] != status:
            fail("--explain %s (%s): status %s, want %s" % (p[name], name, e["status"], status))
        if root and root not in (e["root"] or ""):
            fail("--explain %s (%s): root %r, want it to name %r" % (p[name], name, e["root"], root))
        if status != "leaked" and (not e["chain"] or e["chain"][-1]["allocation"] != e["allocation"]):
            fail("--explain %s (%s): the chain does not end at it: %s" % (p[name], name, e["chain"]))
        # A ring member and a string body are pointed to by leaked chunks; a dropped object is not.
        want_refs = {"node": 1, "string_body": 1, "dropped": 0}.get(name)
        if want_refs is not None and len(e["leaked_referrers"]) != want_refs:
            fail("--explain %s (%s): leaked referrers %s, want %d"
                 % (p[name], name, e["leaked_referrers"], want_refs))
        print("ok: --explain %s: %s, %s" % (name, e["status"], e["root"] or "%d leaked referrer(s)"
                                            % len(e["leaked_referrers"])))


def check_corrupt(memspy, target, mode):
    """A damaged heap: a partial leak report in bounded time, never a hang."""
    t = Target([target, "4", "2000", mode], ready=r'^\{"pid": (\d+)\}', echo=False)
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    r = run([memspy, "dump", "--pid", str(t.pid), "--leaks", "--json", "-o", path], timeout=90)
    sys.stderr.write(r.stderr)
    with open(path) as f:
        d = json.load(f)
    os.unlink(path)
    lk = d.get("leaks") or fail("no leak section in the report of a damaged heap")
    print("exit %d, %d walk error(s); leaks: partial %s, note %r, %d in use, %d leaked"
          % (r.returncode, len(d.get("errors") or []), lk.get("partial"), lk.get("note"),
             lk["in_use"]["count"], lk["leaked"]["count"]))
    if r.returncode != 1:
        fail("exit status %d, expected 1 (partial)" % r.returncode)
    if not d.get("errors"):
        fail("no errors[] for a damaged heap")
    if not lk.get("partial") or "damage" not in (lk.get("note") or ""):
        fail("the leak section does not say it is partial because of the damage")
    if lk["in_use"]["count"] <= 0:
        fail("no allocations scanned")
    t.p.stdin.close()
    if t.wait(30) != 0:
        fail("the damaged copy did not exit 0 after the dump: %s" % t.p.returncode)
    print("ok: %s: partial leak report, target unharmed (exit 0)" % mode)


def check_all():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memspy", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--arg", action="append", default=[])
    ap.add_argument("--stripped", action="store_true", help="the target has no symbol table")
    ap.add_argument("--corrupt", help="heap_mallinfo's damage mode")
    a = ap.parse_args()
    if a.corrupt:
        check_corrupt(a.memspy, a.target, a.corrupt)
        return

    t, truth = start_target([a.target])
    check(truth, run_memspy(a.memspy, t.pid, a.arg, True))
    text = run_memspy(a.memspy, t.pid, a.arg, False)
    words = ("dropped block",) if truth.get("untyped") else ("Dropped", "raw block")
    for want in ("Target stopped for", "Leaked:", "Unreferenced:", "Examples") + words:
        if want not in text:
            fail("text report lacks %r:\n%s" % (want, text))
    print("ok: text report")
    check_explain(a.memspy, t.pid, truth, a.arg, a.stripped)
    finish_target(t)


if __name__ == "__main__":
    main(check_all)
