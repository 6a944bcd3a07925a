#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Allocator coverage of `memspy record`: every entry point the issue names
# (C++ operator new/delete, the memalign family, a preloaded jemalloc or
# tcmalloc, an executable's own malloc, glibc's nested entries, edge cases),
# recorded from the memspy-cov-* targets, which announce what memspy must find.
import gzip
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mstest import Fail, Skip, parse_folded, scenario_main  # noqa: E402
from mstest import record as mstest_record  # noqa: E402

LIBDIR = "/usr/lib/x86_64-linux-gnu"


PARTIAL = []  # complaints about partial recordings, reported by finish()


class Run:
    """One recording: the target's announcements, memspy's stderr, the folded output."""

    def __init__(self, expect, err, folded, path=None):
        self.expect, self.err, self.folded, self.path = expect, err, folded, path

    def lines(self, kind):
        """{stack: (bytes, count)} of the target's 'KIND BYTES COUNT STACK' lines."""
        out = {}
        for line in self.expect:
            parts = line.split(" ", 3)
            if parts[0] == kind:
                out[parts[3]] = (parts[1], int(parts[2]))
        return out


def record(args, target, mode, iters, opts, out, env=None, folded=True):
    r = mstest_record(args.memspy, [target, mode, str(iters)], opts, out, env=env,
                      expect_rc=(0, 1), check_text=False, done_timeout=240)
    if r.rc == 1:
        # Partial: still compare the figures, and fail at the end with the reason.
        why = [l.strip() for l in r.err if "lost" in l or "partial" in l]
        PARTIAL.append(f"memspy exited 1 (partial), expected 0: {'; '.join(why)}")
    run = Run(r.expect, r.err, parse_folded(out, allow_empty=True) if folded else None, out)
    run.target = target
    return run


def find(frames, seq):
    """Index just past the first contiguous occurrence of seq in frames, or -1."""
    n = len(seq)
    for i in range(len(frames) - n + 1):
        if frames[i:i + n] == seq:
            return i + n
    return -1


def matching(folded, stack):
    seq = stack.split(";")
    return [x for x in folded if find(x[0], seq) >= 0]  # the same objects: compare() uses id()


def short(fr):
    return ";".join(fr[-5:])


def compare(run, view, kind="expect-folded", judged_elsewhere=()):
    """
    Every announced stack must hold exactly the target's bytes (view 'bytes') or
    calls ('count'), and nothing else may be in the profile (but the stacks in
    judged_elsewhere). Returns the mismatches (empty = pass); prints every figure.
    """
    exp = run.lines(kind)
    bad = []
    matched = set()
    for stack in judged_elsewhere:
        matched.update(id(x) for x in matching(run.folded, stack))
    for stack, (b, c) in exp.items():
        want = c if view == "count" else int(b)
        lines = matching(run.folded, stack)
        got = sum(v for _, v in lines)
        matched.update(id(x) for x in lines)
        verdict = "ok" if got == want else "MISMATCH"
        print(f"  {view:5} {stack}: memspy {got}, target {want}  {verdict}", flush=True)
        if got != want:
            bad.append(f"{stack}: memspy {got} {view}, the target made {want}")
    extra = [x for x in run.folded if id(x) not in matched and x[1]]
    if extra:
        bad.append(f"{sum(v for _, v in extra)} {view} on stacks the target did not "
                   f"announce: {[(short(fr), v) for fr, v in extra[:6]]}")
        print(f"  {view:5} unannounced: {[(short(fr), v) for fr, v in extra[:6]]}",
              flush=True)
    return bad


def exact_both(args, wd, target, mode, iters, env=None):
    """--exact in bytes and in counts; returns (bytes run, count run, mismatches)."""
    bad = []
    runs = []
    for view in ("bytes", "count"):
        out = os.path.join(wd, f"{mode}-{view}.folded")
        opts = ["--exact"] + (["--count"] if view == "count" else [])
        r = record(args, target, mode, iters, opts, out, env)
        bad += compare(r, view, judged_elsewhere=r.lines("expect-failed"))
        runs.append(r)
    return runs[0], runs[1], bad


def check_live(args, wd, target, mode, iters, env=None):
    """--exact --live: only the keeping site may hold live bytes, exactly what it kept."""
    out = os.path.join(wd, f"{mode}-live.folded")
    r = record(args, target, mode, iters, ["--exact", "--live"], out, env)
    return compare(r, "bytes", kind="expect-live")


def need_lib(name):
    path = os.path.join(LIBDIR, name)
    if not os.path.exists(path):
        raise Skip(f"{path} is not installed (scripts/install-deps.sh installs it)")
    return path


def preload_env(lib):
    env = dict(os.environ)
    env["LD_PRELOAD"] = need_lib(lib)
    return env


def need_site(run, name):
    if not any(name in l for l in run.err):
        return [f"memspy's summary does not list {name} among the probed entry points"]
    return []


def finish(bad):
    bad = PARTIAL + bad
    if bad:
        raise Fail("\n  " + "\n  ".join(bad))


# ------------------------------ scenarios ------------------------------


def scen_cxx_exact(args, wd):
    rb, rc, bad = exact_both(args, wd, args.cov_cxx, "cxx", args.iters or 100)
    # Demangled names: the site frames matched above are namespace::function(args);
    # below each site, libstdc++'s operator new must be named as such too.
    for stack in rc.lines("expect-folded"):
        for fr, _ in matching(rc.folded, stack):
            below = fr[find(fr, stack.split(";")):]
            if not any(f.startswith("operator new") for f in below):
                bad.append(f"{stack}: no demangled 'operator new...' frame below the site: "
                           f"{short(fr)}")
                break
    finish(bad)


def scen_cxx_live(args, wd):
    finish(check_live(args, wd, args.cov_cxx, "cxx", args.iters or 100))


def scen_cxx_sampled(args, wd):
    out = os.path.join(wd, "cxx-sampled.folded")
    r = record(args, args.cov_cxx, "cxx", args.iters or 3000, ["--sample-bytes", "64k"], out)
    exp = r.lines("expect-folded")
    got = {s: sum(v for _, v in matching(r.folded, s)) for s in exp}
    total = sum(v for _, v in r.folded)
    gsum, esum = sum(got.values()), sum(int(b) for b, _ in exp.values())
    bad = []
    if gsum < 0.95 * total:
        bad.append(f"only {gsum} of {total} bytes are on the target's stacks")
    for s, (b, _) in exp.items():
        sm, st = 100.0 * got[s] / max(gsum, 1), 100.0 * int(b) / esum
        print(f"  share {s}: memspy {sm:.2f}%, target {st:.2f}%", flush=True)
        if abs(sm - st) > 2.0:
            bad.append(f"{s}: share {sm:.2f}% vs the target's {st:.2f}% (more than 2 points)")
    ratio = gsum / esum
    print(f"  estimated total {gsum} B vs actual {esum} B (ratio {ratio:.3f})", flush=True)
    if not 0.8 < ratio < 1.25:
        bad.append(f"estimated total bytes off by more than 20%: ratio {ratio:.3f}")
    finish(bad)


def scen_sampled_live(args, wd):
    # The leak view under sampling: the kept blocks stay in memspy's in-target
    # table of sampled pointers while everything else comes and goes.
    out = os.path.join(wd, "basic-sampled-live.folded")
    r = record(args, args.cov_c, "basic", args.iters or 3000, ["--sample-bytes", "64k", "--live"],
               out)
    bad = []
    (stack, (b, _)), = r.lines("expect-live").items()
    got = sum(v for _, v in matching(r.folded, stack))
    total = sum(v for _, v in r.folded)
    print(f"  live at {stack}: memspy {got} B (estimated), target {b} B; all live {total} B",
          flush=True)
    if not 0.8 < got / int(b) < 1.25:
        bad.append(f"estimated live bytes at the keeping site off by more than 20%: "
                   f"{got} vs {b}")
    if got < 0.95 * total:
        bad.append(f"only {got} of {total} live bytes are at the keeping site")
    finish(bad)


def scen_memalign_exact(args, wd):
    rb, rc, bad = exact_both(args, wd, args.cov_c, "memalign", args.iters or 100)
    finish(bad)


def scen_memalign_live(args, wd):
    finish(check_live(args, wd, args.cov_c, "memalign", args.iters or 100))


def scen_nested(args, wd):
    # realloc(NULL, n) and aligned calls with alignment <= 16 are served by
    # glibc calling its own malloc entry: still one allocation each.
    rb, rc, bad = exact_both(args, wd, args.cov_c, "nested", args.iters or 50)
    finish(bad)


# The allocator's own entry points: never the leaf of a stack (memspy shows the caller).
ALLOC_FRAMES = {"malloc", "calloc", "realloc", "free", "posix_memalign", "__posix_memalign",
                "aligned_alloc", "memalign", "__libc_memalign", "_mid_memalign", "valloc",
                "pvalloc", "__libc_malloc", "__libc_realloc", "__libc_calloc"}


def leaves(run, stack):
    """The leaf frames of the profile's stacks through an announced stack."""
    return {fr[-1] for fr, v in matching(run.folded, stack) if v}


def scen_leaves(args, wd):
    # The same stacks, recorded exact and sampled, must end in the same leaves
    # with the same totals (sampled: estimated). glibc serves posix_memalign,
    # memalign and aligned_alloc with small alignments, and realloc(NULL, n),
    # by calling its own malloc entry: sampled, that inner call once showed
    # posix_memalign's frame as a leaf of its own and was counted twice.
    bad = []
    for target, mode, iters in ((args.cov_c, "nested", 3000), (args.cov_c, "memalign", 1500),
                                (args.cov_c, "basic", 1500), (args.cov_cxx, "cxx", 1500)):
        ex = record(args, target, mode, args.iters or iters // 10, ["--exact"],
                    os.path.join(wd, f"{mode}-exact.folded"))
        bad += compare(ex, "bytes")
        sm = record(args, target, mode, args.iters or iters, ["--sample-bytes", "16k"],
                    os.path.join(wd, f"{mode}-sampled.folded"))
        for run, how in ((ex, "exact"), (sm, "sampled")):
            for fr, v in run.folded:
                if v and fr[-1] in ALLOC_FRAMES:
                    bad.append(f"{mode} {how}: an allocator entry is a leaf: {short(fr)} {v}")
        for stack, (b, _) in sm.lines("expect-folded").items():
            le, ls = leaves(ex, stack), leaves(sm, stack)
            got = sum(v for _, v in matching(sm.folded, stack))
            ratio = got / int(b) if int(b) else 1.0
            print(f"  {mode} {stack}: leaves exact {sorted(le)}, sampled {sorted(ls)}; "
                  f"sampled estimate {got} B of {b} B (ratio {ratio:.3f})", flush=True)
            if le != ls:
                bad.append(f"{mode} {stack}: leaves exact {sorted(le)} but sampled {sorted(ls)}")
            if not 0.8 < ratio < 1.25:
                bad.append(f"{mode} {stack}: sampled estimate {got} B for {b} B "
                           f"(ratio {ratio:.3f}, more than 20% off)")
    finish(bad)


def fmt_bytes(n):
    """common/format.c's ms_fmt_bytes."""
    if n < 1024:
        return f"{n} B"
    v, u = float(n), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    while v >= 1023.5 and u + 1 < len(units):
        v /= 1024
        u += 1
    return f"{v:.{2 if v < 9.995 else 1 if v < 99.95 else 0}f} {units[u]}"


def num(text):
    return int(text.replace(",", ""))


SUMMARY_RE = re.compile(r"memspy: wrote .* \((\w+), [^)]*\): (?:(.+?) still live in ([\d,]+) "
                        r"allocations, of )?(.+?) allocated in ([\d,]+) allocations over .*, "
                        r"from ([\d,]+) samples")


def summary(run):
    """The figures of memspy's closing summary."""
    for line in run.err:
        m = SUMMARY_RE.search(line)
        if m:
            fmt, lb, lc, b, c, smp = m.groups()
            fast = [l for l in run.err if "the fast path: ~" in l]
            return {"fmt": fmt, "live_bytes": lb, "live_count": num(lc) if lc else None,
                    "bytes": b, "count": num(c), "samples": num(smp),
                    "fast": num(fast[0].split("~")[1].split()[0]) if fast else None}
    raise Fail(f"no summary line in memspy's output: {run.err[-12:]}")


def pb_fields(buf):
    """(field, wire type, value) of a protobuf message: ints for varints, bytes otherwise."""
    i = 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7f) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < len(buf):
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            yield field, wt, varint()
        elif wt == 2:
            n = varint()
            yield field, wt, buf[i:i + n]
            i += n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            yield field, wt, buf[i:i + n]
            i += n
        else:
            raise Fail(f"pprof: wire type {wt} in a profile")


def pprof_read(path):
    """{sample type: sum of its values}, the comments and the mappings' file names, of a
    gzip'd profile.proto."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    strings, types, sums, comments, maps = [], [], None, [], []
    for field, wt, v in pb_fields(data):
        if field == 3:
            maps.append(dict((f, x) for f, _, x in pb_fields(v)).get(5, 0))
        elif field == 6:
            strings.append(v.decode())
        elif field == 1:
            types.append(dict((f, x) for f, _, x in pb_fields(v)).get(1, 0))
        elif field == 13:
            comments.append(v)
        elif field == 2:
            vals = []
            for f, w, x in pb_fields(v):
                if f == 2 and w == 2:
                    vals += packed(x)
                elif f == 2:
                    vals.append(x)
            sums = [a + b for a, b in zip(sums, vals)] if sums else vals
    return ({strings[t]: s for t, s in zip(types, sums or [0] * len(types))},
            [strings[c] for c in comments], [strings[m] for m in maps])


def packed(buf):
    """The varints of a packed repeated field."""
    out, v, shift = [], 0, 0
    for b in buf:
        v |= (b & 0x7f) << shift
        shift += 7
        if b < 0x80:
            out.append(v)
            v = shift = 0
    return out


def file_totals(run, fmt, live, count_view):
    """(bytes, count, subtitle) as the written file states them; None where it has no figure."""
    path = run.path
    if fmt == "folded":
        total = sum(v for _, v in parse_folded(path, allow_empty=True))
        return (None, total, None) if count_view else (total, None, None)
    if fmt == "svg":
        text = open(path).read()
        m = re.search(r"<title>all\n\((.+?) = ([\d,]+) bytes (?:still live )?in ([\d,]+) "
                      r"allocation", text)
        sub = re.search(r'<text id="subtitle"[^>]*>([^<]*)<', text)
        if not m:
            raise Fail(f"{path}: no root frame with bytes and count (sub: {sub and sub.group(1)})")
        return num(m.group(2)), num(m.group(3)), sub.group(1) if sub else None
    if fmt == "speedscope":
        doc = json.load(open(path))
        tot = []
        for prof in doc["profiles"]:
            s = sum(prof["weights"])
            if prof["endValue"] != s:
                raise Fail(f"{path}: profile '{prof['name']}' ends at {prof['endValue']}, "
                           f"its weights add up to {s}")
            tot.append(s)
        return tot[0], tot[1], None
    if fmt == "pprof":
        sums, comments, maps = pprof_read(path)
        # pprof names a profile after its first mapping ("File:"): the executable.
        if maps and os.path.basename(maps[0]) != os.path.basename(run.target):
            raise Fail(f"{path}: the first mapping is {maps[0]}, not the executable")
        pre = "inuse" if live else "alloc"
        sub = [c for c in comments if " allocations" in c]
        return sums[pre + "_space"], sums[pre + "_objects"], sub[0] if sub else None
    raise Fail(f"unknown format {fmt}")


def scen_totals(args, wd):
    # One recording per format (sampled: estimated counts with fractions, over
    # 48 distinct stacks): the file's totals, its subtitle and memspy's
    # summary must state the same bytes and the same number of allocations.
    bad = []
    runs = (("folded", "folded", []), ("folded", "folded", ["--count"]), ("svg", "svg", []),
            ("svg", "svg", ["--live"]), ("speedscope", "speedscope.json", []),
            ("pprof", "pb.gz", []), ("pprof", "pb.gz", ["--live"]))
    for k, (fmt, ext, extra) in enumerate(runs):
        out = os.path.join(wd, f"totals-{k}.{ext}")
        run = record(args, args.cov_c, "spread", args.iters or 150,
                     ["--sample-bytes", "64k"] + extra, out, folded=False)
        sm = summary(run)
        live = "--live" in extra
        b, c, sub = file_totals(run, fmt, live, "--count" in extra)
        want_b = sm["live_bytes"] if live else sm["bytes"]
        want_c = sm["live_count"] if live else sm["count"]
        what = f"{fmt} {' '.join(extra)}".strip()
        print(f"  {what}: file {b} B ({fmt_bytes(b) if b is not None else '-'}), {c} "
              f"allocations; summary {want_b}, {want_c}; subtitle {sub!r}; fast path "
              f"{sm['fast']}", flush=True)
        if b is not None and fmt_bytes(b) != want_b:
            bad.append(f"{what}: the file holds {b} B ({fmt_bytes(b)}), the summary says {want_b}")
        if c is not None and c != want_c:
            bad.append(f"{what}: the file counts {c} allocations, the summary {want_c}")
        if sub is not None:
            said = f"{want_b} still live in {want_c:,} allocations" if live else \
                f"{want_b} allocated in {want_c:,} allocations"
            if said not in sub:
                bad.append(f"{what}: the subtitle says {sub!r}, the summary {said!r}")
        unsampled = sm["count"] - sm["samples"] + (sm["count"] if live else 0)
        if sm["fast"] is not None and sm["fast"] != unsampled:
            bad.append(f"{what}: ~{sm['fast']} unsampled calls for {sm['count']} allocations "
                       f"of which {sm['samples']} were sampled")
    finish(bad)


def judge_failed(rb, rc):
    """
    Calls that returned NULL allocated nothing: memspy keeps them out of the
    profile (no bytes, no count) and says how many there were in its summary,
    which must be exactly the number the target made.
    """
    bad = []
    failed = rc.lines("expect-failed")
    want = sum(n for _, n in failed.values())
    for stack, (req, n) in failed.items():
        gc = sum(v for _, v in matching(rc.folded, stack))
        gb = sum(v for _, v in matching(rb.folded, stack))
        print(f"  failed {stack} (asked {req}, {n} calls): in the profile {gc} calls / {gb} B",
              flush=True)
        if gc or gb:
            bad.append(f"{stack}: calls that returned NULL are in the profile: {gc} calls, "
                       f"{gb} B")
    for r, view in ((rb, "bytes"), (rc, "count")):
        said = [l for l in r.err if "calls failed (returned NULL)" in l]
        got = int(said[0].split()[0].replace(",", "")) if said else 0
        print(f"  {view:5} run: memspy's summary: {got} failed calls; target: {want}", flush=True)
        if got != want:
            bad.append(f"{view} run: memspy's summary counts {got} failed calls, the target "
                       f"made {want}")
    return bad


def scen_edge(args, wd):
    # realloc chains, a 40 MB calloc, malloc(0) + free(NULL), and failed calls.
    rb, rc, bad = exact_both(args, wd, args.cov_c, "edge", args.iters or 20)
    finish(bad + judge_failed(rb, rc))


def scen_failed_alloc(args, wd):
    # A failed huge request, then malloc(0): every later call must still be seen.
    bad = []
    for mode in ("failm", "failc"):
        rb, rc, b = exact_both(args, wd, args.cov_c, mode, args.iters or 10)
        bad += b + judge_failed(rb, rc)
    finish(bad)


def preload_basic(args, wd, lib):
    env = preload_env(lib)
    rb, rc, bad = exact_both(args, wd, args.cov_c, "basic", args.iters or 100, env)
    bad += need_site(rc, f"malloc@{lib}")
    bad += check_live(args, wd, args.cov_c, "basic", args.iters or 100, env)
    finish(bad)


def scen_jemalloc(args, wd):
    preload_basic(args, wd, "libjemalloc.so.2")


def scen_tcmalloc(args, wd):
    preload_basic(args, wd, "libtcmalloc_minimal.so.4")


def scen_jemalloc_memalign(args, wd):
    # jemalloc 5.3 has no pvalloc: a pvalloc'd block would be glibc's.
    env = preload_env("libjemalloc.so.2")
    finish(exact_both(args, wd, args.cov_c, "memalign-nopv", args.iters or 100, env)[2])


def scen_tcmalloc_memalign(args, wd):
    env = preload_env("libtcmalloc_minimal.so.4")
    finish(exact_both(args, wd, args.cov_c, "memalign", args.iters or 100, env)[2])


def preload_cxx(args, wd, lib):
    # The preloaded library defines operator new/delete itself (they never reach
    # its malloc): memspy must probe them to see the C++ allocations.
    rb, rc, bad = exact_both(args, wd, args.cov_cxx, "cxx", args.iters or 50, preload_env(lib))
    finish(bad + need_site(rc, f"_Znwm@{lib}"))


def preload_cxx_live(args, wd, lib):
    # Every delete form must reach a probe, or its objects look leaked.
    finish(check_live(args, wd, args.cov_cxx, "cxx", args.iters or 50, preload_env(lib)))


def scen_jemalloc_cxx(args, wd):
    preload_cxx(args, wd, "libjemalloc.so.2")


def scen_tcmalloc_cxx(args, wd):
    preload_cxx(args, wd, "libtcmalloc_minimal.so.4")


def scen_jemalloc_cxx_live(args, wd):
    preload_cxx_live(args, wd, "libjemalloc.so.2")


def scen_tcmalloc_cxx_live(args, wd):
    preload_cxx_live(args, wd, "libtcmalloc_minimal.so.4")


def scen_exe_malloc(args, wd):
    rb, rc, bad = exact_both(args, wd, args.cov_bump, "basic", args.iters or 100)
    bad += need_site(rc, f"malloc@{os.path.basename(args.cov_bump)}")
    finish(bad)


SCENARIOS = {
    "cxx-exact": scen_cxx_exact,
    "cxx-live": scen_cxx_live,
    "cxx-sampled": scen_cxx_sampled,
    "sampled-live": scen_sampled_live,
    "memalign-exact": scen_memalign_exact,
    "memalign-live": scen_memalign_live,
    "nested": scen_nested,
    "leaves": scen_leaves,
    "totals": scen_totals,
    "edge": scen_edge,
    "failed-alloc": scen_failed_alloc,
    "jemalloc": scen_jemalloc,
    "tcmalloc": scen_tcmalloc,
    "jemalloc-memalign": scen_jemalloc_memalign,
    "tcmalloc-memalign": scen_tcmalloc_memalign,
    "jemalloc-cxx": scen_jemalloc_cxx,
    "tcmalloc-cxx": scen_tcmalloc_cxx,
    "jemalloc-cxx-live": scen_jemalloc_cxx_live,
    "tcmalloc-cxx-live": scen_tcmalloc_cxx_live,
    "exe-malloc": scen_exe_malloc,
}


if __name__ == "__main__":
    scenario_main(SCENARIOS, ["cov-c", "cov-cxx", "cov-bump"])
