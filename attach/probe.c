// SPDX-License-Identifier: MIT
/*
 * The probe engine: plans the allocator entry points, injects the stub
 * region next to each module, patches the entries with a jmp while every
 * thread is stopped, turns each stub trap into allocation/free events, and
 * takes it all back out on every path. Design: doc/DESIGN.md (record,
 * keeping the target safe).
 */
#include "attach/probe.h"
#include "attach/attach_int.h"
#include "attach/probe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#define KSA_RESTORER 0x04000000ul
#define KSA_RESTART  0x10000000ul
#define KCMP_VM_TYPE 1

#define PAGE		    4096ull
#define REACH		    ((int64_t)2 << 30)
#define REACH_MARGIN	    ((int64_t)64 << 20)
#define PATCH_LEN	    5
#define PATCH_RETRIES	    50
#define DEFAULT_STACK_BYTES (16u << 10)

struct region {
	ms_raddr_t base;
	bool tramp; /* its code page holds the stub image: remote syscalls can use it */
	bool used[MS_STUB_NSLOTS];
	uint64_t last_draw; /* the draw index seen at the last drain */
	/*
	 * The drain reads only the slots of tickets from scan_from up to the
	 * head. Every ticket below scan_from is accounted for: taken by a
	 * drain or counted as a drop. A ticket is claimed (xadd) before its
	 * slot is (cmpxchg), so a slot read as free may still be written for
	 * a ticket already counted: the window only moves on once the count
	 * of tickets equals what was taken plus what dropped.
	 */
	uint64_t scan_from, fscan_from;
	uint64_t taken, ftaken; /* samples and frees taken from the rings so far */
	uint64_t drops, fdrops, nothread, tabfull; /* loss counters, last read */
	uint64_t head, fhead;	 /* ticket counters at the last reading that passed the checks */
	uint64_t drops_weighted; /* ring-full losses made up for so far (lost_weight) */
	uint8_t ctl[5];		       /* the control bytes memspy wrote (armed tracked apart) */
	uint8_t relay[MS_STUB_NSLOTS]; /* the relay flags memspy wrote */
	uint64_t discarded;	       /* slots and freed entries that failed the checks */
	/*
	 * Its pages failed a check no stub could fail (tamper checks, below): never
	 * read, written or believed again; the probes go (ms_probes_poll says so).
	 */
	bool tampered;
	bool overwritten; /* ... and not by an exec or an unload: by the target (counted) */
};

/* memspy's mirror of the in-target thread table (the same in every region). */
struct thr {
	uint64_t tp;
	uint64_t lo, hi; /* the stack bounds written for it: a slot's copy length must match */
	pid_t tid;
};

struct site {
	enum ms_alloc_fn fn;
	char *name;	 /* "malloc@libc.so.6" */
	const char *sym; /* symbol name (static or from opts) */
	ms_raddr_t entry;
	ms_raddr_t end;	       /* the end of its symbol (entry + st_size) */
	bool glibc;	       /* in glibc's malloc (relays small requests to its malloc) */
	uint8_t orig[32];      /* the entry's bytes before patching */
	struct ms_reloc reloc; /* displaced = bytes relocated into the stub */
	size_t mod;	       /* index in the module table */
	char *open_path;       /* the module file, for the final comparison */
	size_t region;
	int slot;
	bool patched;
};

/* An entry point memspy found but does not probe, and why. */
struct skip {
	enum ms_alloc_fn fn;
	char *name; /* "malloc@libc.so.6" */
	char *why;
};

struct ms_probes {
	struct ms_proc *p;
	pid_t pid;
	struct ms_probe_opts opts;
	bool exact;
	struct site *s;
	size_t ns, cap_s;
	struct region *rg;
	size_t nrg, cap_rg;
	const char **names;
	uint64_t rng;
	struct ms_probe_stats st;
	uint8_t *buf; /* trap frame + stack copy */
	size_t buf_len;
	int wd_fd;	/* write end of the watchdog's pipe, -1 when none */
	uint64_t nonce; /* this install's mark on its manifests (the watchdog's key) */
	bool sigact_installed;
	bool removed;
	bool ring;
	bool armed; /* what memspy last wrote in the armed bytes */
	uint64_t armed_ns; /* when sampling began */
	unsigned ncpu; /* CPUs configured: the bound on what the stubs can count */
	struct ms_ksigaction sigact_old; /* the target's SIGTRAP action, as the kernel gave it */
	const struct ms_ring_io *io;	 /* the fuzzer's memory instead of the target's */
	struct thr thr[MS_STUB_NTHR];
	struct skip *skips; /* entry points planned but not probed, reported once */
	size_t nskips, cap_skips;
	uint8_t *hdrs;			      /* MS_STUB_NHDR headers */
	uint8_t *data;			      /* MS_STUB_NHDR stack copies */
	uint64_t *fring;		      /* MS_STUB_NFRING x 2 words */
	struct pending_ev *pev;		      /* the drain's events, kept between drains */
	uint64_t tsc0, ns0;		      /* for converting the stubs' rdtsc stamps */
	uint64_t n_drains, drain_ns, drained; /* drain statistics (debug log at removal) */
	uint64_t ticks[1024];		      /* in-target TSC ticks of the first samples */
	size_t nticks;
	uint64_t nested; /* allocations inside a sampled probed call: not reported */
	/*
	 * Mean changes, oldest first: until TSC tsc, countdowns were drawn with
	 * mean. A sample whose countdown fired before a change but that was
	 * published after the drain that preceded it keeps the old weight.
	 */
	struct mean_change {
		uint64_t tsc, mean;
	} changes[16];
	size_t nchanges;
};

const char *ms_alloc_fn_name(enum ms_alloc_fn fn)
{
	static const char *const names[MS_FN_COUNT] = {
	    [MS_FN_MALLOC] = "malloc",
	    [MS_FN_CALLOC] = "calloc",
	    [MS_FN_REALLOC] = "realloc",
	    [MS_FN_FREE] = "free",
	    [MS_FN_POSIX_MEMALIGN] = "posix_memalign",
	    [MS_FN_ALIGNED_ALLOC] = "aligned_alloc",
	    [MS_FN_MEMALIGN] = "memalign",
	    [MS_FN_VALLOC] = "valloc",
	    [MS_FN_PVALLOC] = "pvalloc",
	    [MS_FN_OPERATOR_NEW] = "operator new",
	    [MS_FN_OPERATOR_DELETE] = "operator delete",
	    [MS_FN_CUSTOM] = "custom",
	};

	return (unsigned)fn < MS_FN_COUNT ? names[fn] : "?";
}

static int fn_kind(enum ms_alloc_fn fn)
{
	switch (fn) {
	case MS_FN_CALLOC:
		return MS_SK_CALLOC;
	case MS_FN_REALLOC:
		return MS_SK_REALLOC;
	case MS_FN_FREE:
	case MS_FN_OPERATOR_DELETE:
		return MS_SK_FREE;
	case MS_FN_POSIX_MEMALIGN:
		return MS_SK_PMEMALIGN;
	case MS_FN_ALIGNED_ALLOC:
	case MS_FN_MEMALIGN:
		return MS_SK_RSI;
	default:
		return MS_SK_RDI;
	}
}

/* ------------------------------ sampling ------------------------------ */

static uint64_t rng_next(struct ms_probes *pr)
{
	/* xorshift64*: the draws need independence, not cryptography. */
	pr->rng ^= pr->rng >> 12;
	pr->rng ^= pr->rng << 25;
	pr->rng ^= pr->rng >> 27;
	return pr->rng * 0x2545F4914F6CDD1Dull;
}

/*
 * Natural log and exp without libm (ms_attach does not link it): the draws
 * need ~1e-12 relative accuracy, which these series give.
 */
static double ln_pos(double x)
{
	uint64_t bits;
	int e;
	double m, z, z2, term, sum = 0;

	memcpy(&bits, &x, sizeof(bits));
	e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & ~(0x7ffull << 52)) | (1023ull << 52);
	memcpy(&m, &bits, sizeof(m)); /* x = m * 2^e, m in [1, 2) */
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	z = (m - 1) / (m + 1);
	z2 = z * z;
	term = z;
	for (int k = 1; k < 60; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x >= 0. */
static double one_minus_exp_neg(double x)
{
	double r, term = 1, sum = 1;
	int n = 0;

	if (x < 1e-4)
		return x - x * x / 2 + x * x * x / 6;
	if (x > 40)
		return 1;
	r = x;
	while (r > 0.25) {
		r /= 2;
		n++;
	}
	for (int k = 1; k < 25; k++) {
		term *= -r / k;
		sum += term;
	}
	while (n--)
		sum *= sum;
	return 1 - sum;
}

/* Next countdown: exponential with mean sample_bytes (Poisson sampling by bytes). */
static int64_t draw_countdown(struct ms_probes *pr)
{
	/* u in (0, 1]: -ln(u) is exponential with mean 1. */
	double u = (double)((rng_next(pr) >> 11) + 1) * (1.0 / 9007199254740992.0);
	double v = -ln_pos(u) * (double)pr->opts.sample_bytes;

	if (v < 1)
		v = 1;
	if (v > 4e18)
		v = 4e18;
	return (int64_t)v;
}

/*
 * A sample of s bytes under Poisson byte sampling with mean M was taken with
 * probability 1 - exp(-s/M); weighting it by the inverse keeps totals unbiased.
 */
static uint64_t sample_weight(const struct ms_probes *pr, uint64_t size, uint64_t mean)
{
	double m = (double)mean, s = (double)size;

	if (pr->exact || size == 0)
		return size;
	return (uint64_t)(s / one_minus_exp_neg(s / m) + 0.5);
}

/* The mean in force when the stub stamped a sample at TSC tsc. */
static uint64_t mean_at(const struct ms_probes *pr, uint64_t tsc)
{
	for (size_t k = 0; k < pr->nchanges; k++)
		if (tsc < pr->changes[k].tsc)
			return pr->changes[k].mean;
	return pr->opts.sample_bytes;
}

/* ------------------------------ helpers ------------------------------ */

/*
 * The drain's reads and writes of the target's memory. A fuzzer
 * (tests/fuzz/fuzz_ring.c) serves them from arbitrary bytes instead.
 */
static ssize_t ring_readv(struct ms_probes *pr, const struct iovec *l, size_t nl,
			  const struct iovec *r, size_t nr)
{
	if (pr->io)
		return pr->io->readv(pr->io->ctx, l, nl, r, nr);
	return process_vm_readv(pr->pid, l, nl, r, nr, 0);
}

static ssize_t ring_writev(struct ms_probes *pr, const struct iovec *l, size_t nl,
			   const struct iovec *r, size_t nr)
{
	if (pr->io)
		return pr->io->writev(pr->io->ctx, l, nl, r, nr);
	return process_vm_writev(pr->pid, l, nl, r, nr, 0);
}

static int write_remote(struct ms_probes *pr, ms_raddr_t addr, const void *buf, size_t len)
{
	struct iovec l = {(void *)buf, len}, r = {(void *)(uintptr_t)addr, len};
	ssize_t n = ring_writev(pr, &l, 1, &r, 1);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static ms_raddr_t rg_ctrl(const struct region *rg, unsigned off)
{
	return rg->base + MS_STUB_CTRL_OFF + off;
}

static const char *base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : (path ? path : "?");
}

/*
 * A thread of the target to run remote system calls on: one in a plain
 * stop (no signal of its own to deliver, not at a trap), the leader first.
 */
static pid_t any_thread(struct ms_probes *pr)
{
	pid_t t = ms_proc_plain_stopped_thread(pr->p);

	if (t > 0)
		return t;
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		t = ms_proc_thread(pr->p, i);
		if (t == pr->pid)
			return t;
	}
	return ms_proc_nthreads(pr->p) ? ms_proc_thread(pr->p, 0) : -1;
}

static bool region_intact(const struct ms_probes *pr, size_t r);
static bool code_intact(const struct ms_probes *pr, size_t r);
static uint64_t size_of(const uint8_t *h, unsigned kind);

/* Notes that site s will not be probed (reported once, by report_skips). */
static void skip_site(struct ms_probes *pr, const struct site *s, const char *fmt, ...)
    MS_PRINTF(3, 4);
static void skip_site(struct ms_probes *pr, const struct site *s, const char *fmt, ...)
{
	struct skip *k;
	char why[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	ms_xgrow((void **)&pr->skips, &pr->cap_skips, pr->nskips + 1, sizeof(*pr->skips));
	k = &pr->skips[pr->nskips++];
	k->fn = s->fn;
	k->name = ms_xstrdup(s->name);
	k->why = ms_xstrdup(why);
}

/*
 * Says, once per install, which entry points are not probed. Most of these
 * change nothing a user sees (a 3-argument delete, valloc, an operator
 * variant whose siblings are probed) and nothing can be done about them:
 * shown with -v. A warning only where the profile visibly misses a kind of
 * call (malloc, calloc, realloc, free with --live, every operator new or
 * delete of a module, a --probe symbol), and only once the probes are in.
 */
static void report_skips(struct ms_probes *pr, bool installed)
{
	for (size_t i = 0; i < pr->nskips; i++) {
		const struct skip *k = &pr->skips[i];
		const char *at = strchr(k->name, '@');
		bool family_left = false, loud;

		/* Another entry of the same kind in the same module is probed. */
		for (size_t j = 0; j < pr->ns && at; j++) {
			const char *o = strchr(pr->s[j].name, '@');

			family_left |= pr->s[j].patched && pr->s[j].fn == k->fn && o &&
				       !strcmp(o, at);
		}
		switch (k->fn) {
		case MS_FN_MALLOC:
		case MS_FN_CALLOC:
		case MS_FN_REALLOC:
		case MS_FN_FREE:
		case MS_FN_OPERATOR_NEW:
		case MS_FN_OPERATOR_DELETE:
		case MS_FN_CUSTOM:
			loud = installed && !family_left;
			break;
		default:
			loud = false;
		}
		if (loud)
			ms_warn("probe: not probing %s: %s; its calls are missing from the "
				"recording",
				k->name, k->why);
		else
			ms_info("probe: not probing %s: %s", k->name, k->why);
		free(k->name);
		free(k->why);
	}
	pr->nskips = 0;
}

/*
 * Runs a system call in the target. Through the first region's
 * self-restoring trampoline once it exists (a memspy death at any moment
 * leaves the thread whole); through libc's `syscall` instruction only
 * before (the first mmap) or when tramp_ok is false (unmapping the
 * region that holds the trampoline).
 */
static int rsyscall_via(struct ms_probes *pr, bool tramp_ok, long nr, long a0, long a1, long a2,
			long a3, long a4, long a5, long *ret)
{
	const long args[6] = {a0, a1, a2, a3, a4, a5};
	pid_t tid = any_thread(pr);
	ms_raddr_t tramp = 0;

	if (tid < 0)
		return -MS_E_TARGET_EXITED;
	if (tramp_ok && pr->nrg && pr->rg[0].tramp && region_intact(pr, 0))
		tramp = pr->rg[0].base + ms_stub_rsys;
	else
		ms_debug("probe: remote syscall %ld through libc's `syscall` instruction", nr);
	return ms_remote_syscall_at(pr->p, tid, tramp, nr, args, ret);
}

static int rsyscall(struct ms_probes *pr, long nr, long a0, long a1, long a2, long a3, long a4,
		    long a5, long *ret)
{
	return rsyscall_via(pr, true, nr, a0, a1, a2, a3, a4, a5, ret);
}

/* Parses a hex signal mask field of a /proc status file; 0 if absent. */
static uint64_t status_mask(const char *path, const char *key)
{
	char buf[4096];
	const char *v;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	v = strstr(buf, key);
	if (!v)
		return 0;
	v += strlen(key);
	while (*v == ':' || *v == ' ' || *v == '\t')
		v++;
	return strtoull(v, NULL, 16);
}

#define SIGBIT(s) (1ull << ((s)-1))

/*
 * The stubs' untraced-trap safety net is a SIGTRAP handler that is just
 * `ret`: refuse when the target handles SIGTRAP itself.
 */
static int check_sigtrap(struct ms_probes *pr, struct ms_error *err)
{
	char path[96];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pr->pid);
	if (status_mask(path, "SigCgt") & SIGBIT(SIGTRAP)) {
		ms_error_set(err, -MS_E_UNSUPPORTED,
			     "probe: process %d handles SIGTRAP itself; memspy's probes need "
			     "their own SIGTRAP handler",
			     (int)pr->pid);
		ms_error_hint(err, "the target may run under a debugger-like runtime; use "
				   "`memspy record --mode walk` (no probes) instead");
		return err ? err->code : -MS_E_UNSUPPORTED;
	}
	return 0;
}

/*
 * A thread that blocks SIGTRAP and executes an int3 gets the signal forced
 * on it: force_sig_info_to_task() resets the action to SIG_DFL for the
 * whole process and unblocks it in that thread, traced or not. Ring mode
 * (the default) has no reachable int3, so it takes any thread mask, those
 * that change later included. Exact and stop-per-sample modes trap on
 * every sampled call: refuse them when a thread blocks SIGTRAP now. (A
 * thread may also block it later, for a moment: jemalloc blocks every
 * signal around pthread_create, whose TLS setup calls calloc. The kernel
 * then resets the action while memspy is tracing, which suppresses the
 * signal; the target survives but loses the `ret` safety net until memspy
 * restores its action at removal.)
 */
static int check_sigtrap_blocked(struct ms_probes *pr, struct ms_error *err)
{
	char path[96];

	if (pr->ring)
		return 0;
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);

		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pr->pid, (int)tid);
		if (status_mask(path, "SigBlk") & SIGBIT(SIGTRAP)) {
			ms_error_set(err, -MS_E_UNSUPPORTED,
				     "probe: thread %d of process %d blocks SIGTRAP, and %s stops "
				     "each recorded call with a trap: the kernel would force the "
				     "signal through, reset its action to the default, and could "
				     "kill the process",
				     (int)tid, (int)pr->pid,
				     pr->exact ? "--exact" : "stop-per-sample mode");
			ms_error_hint(err, "record without --exact: sampled probes never stop or "
					   "trap a thread (or use --mode walk: no probes)");
			return err ? err->code : -MS_E_UNSUPPORTED;
		}
	}
	return 0;
}

/* ------------------------------ planning ------------------------------ */

static const struct {
	const char *sym;
	enum ms_alloc_fn fn;
} entry_points[] = {
    {"malloc", MS_FN_MALLOC},
    {"calloc", MS_FN_CALLOC},
    {"realloc", MS_FN_REALLOC},
    {"free", MS_FN_FREE},
    {"posix_memalign", MS_FN_POSIX_MEMALIGN},
    {"aligned_alloc", MS_FN_ALIGNED_ALLOC},
    {"memalign", MS_FN_MEMALIGN},
    {"valloc", MS_FN_VALLOC},
    {"pvalloc", MS_FN_PVALLOC},
};

static bool have_entry(const struct ms_probes *pr, ms_raddr_t a)
{
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].entry == a)
			return true;
	return false;
}

static void add_site(struct ms_probes *pr, const struct ms_modules *mods, size_t mi,
		     const char *sym, enum ms_alloc_fn fn)
{
	const struct ms_module *m = &mods->v[mi];
	ms_raddr_t a;
	uint64_t size;
	struct site *s;

	if (ms_module_symbol(m, sym, &a, &size) || a < m->start || a >= m->end || have_entry(pr, a))
		return;
	if (fn_kind(fn) == MS_SK_FREE && !pr->opts.track_frees)
		return; /* nothing to report: leave free untouched */
	ms_xgrow((void **)&pr->s, &pr->cap_s, pr->ns + 1, sizeof(*pr->s));
	s = &pr->s[pr->ns++];
	memset(s, 0, sizeof(*s));
	s->fn = fn;
	s->sym = sym;
	s->entry = a;
	s->end = a + (size ? size : 1);
	/* A glibc-only name: jemalloc's or tcmalloc's memalign never reaches their malloc. */
	s->glibc = !ms_module_symbol(m, "__libc_memalign", &a, &size);
	s->mod = mi;
	s->slot = -1;
	s->name = ms_xasprintf("%s@%s", sym, base_name(m->path));
	s->open_path = ms_xstrdup(m->open_path ? m->open_path : m->path);
}

static void drop_site(struct ms_probes *pr, size_t i)
{
	free(pr->s[i].name);
	free(pr->s[i].open_path);
	pr->s[i] = pr->s[--pr->ns];
}

static bool is_loader(const struct ms_module *m)
{
	const char *b = base_name(m->path);

	return !strncmp(b, "ld-linux", 8) || !strncmp(b, "ld64.so", 7);
}

/*
 * libc, the executable, and any other module (a preloaded allocator) that
 * defines malloc itself. C++ operators: see plan_cxx.
 */
static void plan_sites(struct ms_probes *pr, const struct ms_modules *mods)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		const struct ms_module *m = &mods->v[mi];
		bool libc = !strncmp(base_name(m->path), "libc.so", 7);
		ms_raddr_t a;
		uint64_t sz;

		if (is_loader(m))
			continue;
		if (!libc && !m->is_exec && ms_module_symbol(m, "malloc", &a, &sz))
			continue;
		for (size_t k = 0; k < MS_ARRAY_SIZE(entry_points); k++)
			add_site(pr, mods, mi, entry_points[k].sym, entry_points[k].fn);
	}
	for (size_t c = 0; c < pr->opts.n_custom; c++) {
		size_t before = pr->ns;

		for (size_t mi = 0; mi < mods->n && pr->ns == before; mi++)
			add_site(pr, mods, mi, pr->opts.custom_symbols[c], MS_FN_CUSTOM);
		if (pr->ns == before)
			ms_warn("probe: --probe %s: no module of process %d defines it",
				pr->opts.custom_symbols[c], (int)pr->pid);
	}
}

/*
 * C++ operators. In GCC's libstdc++ each operator new/delete calls malloc,
 * aligned_alloc or free (or another operator) through the PLT within a few
 * instructions: the libc probes see those allocations already, with the
 * operator on the stack, and probing the operator too would count them
 * twice. So an operator is probed only when its first instructions do not
 * reach a probed entry: directly, through a PLT slot the dynamic linker has
 * filled, or through another operator (depth-limited).
 */
/*
 * The 3-argument deletes (pointer, size, alignment in rdx) are probed like
 * the others: every path of the free stub keeps rdx (the ring path saves
 * it around the freed-ring push; a trap does not touch it).
 */
static const struct {
	const char *sym;
	enum ms_alloc_fn fn;
} cxx_points[] = {
    {"_Znwm", MS_FN_OPERATOR_NEW},
    {"_Znam", MS_FN_OPERATOR_NEW},
    {"_ZnwmRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnamRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnwmSt11align_val_t", MS_FN_OPERATOR_NEW},
    {"_ZnamSt11align_val_t", MS_FN_OPERATOR_NEW},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZdlPv", MS_FN_OPERATOR_DELETE},
    {"_ZdaPv", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvm", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvm", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvRKSt9nothrow_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvRKSt9nothrow_t", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvmSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvmSt11align_val_t", MS_FN_OPERATOR_DELETE},
};

static bool is_site_entry(const struct ms_probes *pr, ms_raddr_t a)
{
	return a && have_entry(pr, a);
}

/*
 * The symbol a PLT/GOT slot at runtime address slot of module m is bound to,
 * from the module file's JUMP_SLOT/GLOB_DAT relocations: the slot's value
 * is no help while lazy binding has not resolved it yet. false if none.
 */
static bool slot_symbol(const struct ms_module *m, ms_raddr_t slot, char *buf, size_t size)
{
	int fd = open(m->open_path ? m->open_path : m->path, O_RDONLY | O_CLOEXEC);
	Elf *e;
	Elf_Scn *scn = NULL;
	bool found = false;

	if (fd < 0)
		return false;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (e && !found && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		Elf_Scn *symscn;
		GElf_Shdr symsh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		symscn = elf_getscn(e, sh.sh_link);
		d = elf_getdata(scn, NULL);
		if (!symscn || !d || !gelf_getshdr(symscn, &symsh))
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;
			GElf_Sym sym;
			const char *name;
			unsigned type;

			if (!gelf_getrela(d, (int)i, &r))
				break;
			type = (unsigned)GELF_R_TYPE(r.r_info);
			if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) ||
			    r.r_offset + m->bias != slot)
				continue;
			if (gelf_getsym(elf_getdata(symscn, NULL), (int)GELF_R_SYM(r.r_info),
					&sym) &&
			    (name = elf_strptr(e, symsh.sh_link, sym.st_name))) {
				snprintf(buf, size, "%s", name);
				found = true;
			}
			break;
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	return found;
}

static bool reaches_probe(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t a,
			  int depth);

/*
 * Follows a GOT slot: covered when its value is a probed entry, or when the
 * symbol it is bound to is a probed allocator's name or an operator that is.
 */
static bool slot_reaches(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t slot,
			 int depth)
{
	const struct ms_module *m = ms_modules_find(mods, slot);
	ms_raddr_t v = 0;
	char name[128];

	if (ms_mem_read_pid(pr->pid, slot, &v, sizeof(v)) == sizeof(v) &&
	    (is_site_entry(pr, v) ||
	     (m && v >= m->start && v < m->end ? false : reaches_probe(pr, mods, v, depth + 1))))
		return true;
	if (!m || !slot_symbol(m, slot, name, sizeof(name)))
		return false;
	for (size_t i = 0; i < pr->ns; i++)
		if (!strcmp(pr->s[i].sym, name))
			return true; /* binds to a probed allocator once resolved */
	for (size_t mi = 0; mi < mods->n; mi++) {
		ms_raddr_t a;
		uint64_t sz;

		if (!ms_module_symbol(&mods->v[mi], name, &a, &sz))
			return is_site_entry(pr, a) || reaches_probe(pr, mods, a, depth + 1);
	}
	return false;
}

/* The GOT slot a PLT stub at t jumps through, or 0. */
static ms_raddr_t plt_slot(const struct ms_probes *pr, ms_raddr_t t)
{
	uint8_t code[32];
	size_t off = 0;

	if (ms_mem_read_pid(pr->pid, t, code, sizeof(code)) != (ssize_t)sizeof(code))
		return 0;
	for (int n = 0; n < 2; n++) {
		size_t len;
		enum ms_flow f;
		ms_raddr_t slot;

		if (ms_decode_flow(code + off, sizeof(code) - off, t + off, &len, &f, &slot))
			return 0;
		if (f == MS_FLOW_JMP_MEM)
			return slot;
		if (f != MS_FLOW_NONE)
			return 0;
		off += len; /* endbr64 */
	}
	return 0;
}

static bool reaches_probe(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t a,
			  int depth)
{
	uint8_t code[160];
	size_t off = 0;

	if (!a || depth > 3 ||
	    ms_mem_read_pid(pr->pid, a, code, sizeof(code)) != (ssize_t)sizeof(code))
		return false;
	for (int n = 0; n < 24 && off + 16 <= sizeof(code); n++) {
		size_t len;
		enum ms_flow f;
		ms_raddr_t t, slot;

		if (ms_decode_flow(code + off, sizeof(code) - off, a + off, &len, &f, &t))
			return false;
		if (f == MS_FLOW_JMP_MEM)
			return slot_reaches(pr, mods, t, depth);
		if (f == MS_FLOW_CALL || f == MS_FLOW_JMP || f == MS_FLOW_JCC) {
			if (is_site_entry(pr, t))
				return true;
			slot = plt_slot(pr, t);
			if (slot && slot_reaches(pr, mods, slot, depth))
				return true;
			if (!slot && f != MS_FLOW_JCC && reaches_probe(pr, mods, t, depth + 1))
				return true;
		}
		if (f == MS_FLOW_JMP || f == MS_FLOW_END)
			return false;
		off += len;
	}
	return false;
}

static void plan_cxx(struct ms_probes *pr, const struct ms_modules *mods)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		const struct ms_module *m = &mods->v[mi];

		if (is_loader(m))
			continue;
		for (size_t k = 0; k < MS_ARRAY_SIZE(cxx_points); k++) {
			ms_raddr_t a;
			uint64_t sz;

			if (cxx_points[k].fn == MS_FN_OPERATOR_DELETE && !pr->opts.track_frees)
				continue; /* frees are probed only for --live */
			if (ms_module_symbol(m, cxx_points[k].sym, &a, &sz) || a < m->start ||
			    a >= m->end || have_entry(pr, a))
				continue;
			if (reaches_probe(pr, mods, a, 0)) {
				ms_debug(
				    "probe: %s@%s calls a probed allocator entry: covered by it",
				    cxx_points[k].sym, base_name(m->path));
				continue;
			}
			add_site(pr, mods, mi, cxx_points[k].sym, cxx_points[k].fn);
		}
	}
}

/* Reads each entry and checks that it can be relocated (dest = a nearby dummy). */
static void check_sites(struct ms_probes *pr)
{
	for (size_t i = 0; i < pr->ns;) {
		struct site *s = &pr->s[i];
		ssize_t n = ms_mem_read_pid(pr->pid, s->entry, s->orig, sizeof(s->orig));
		int rc = -EFAULT;

		if (n == (ssize_t)sizeof(s->orig))
			rc = ms_decode_relocate(s->orig, sizeof(s->orig), s->entry,
						s->entry - (1 << 20), PATCH_LEN, &s->reloc);
		if (rc) {
			skip_site(pr, s, "its entry at %#llx cannot be relocated: %s",
				  (unsigned long long)s->entry,
				  rc == -MS_E_UNSUPPORTED ? s->reloc.why : ms_strerror(rc));
			drop_site(pr, i);
			continue;
		}
		i++;
	}
}

/*
 * One linear sweep of each module's executable mappings for relative
 * branches that land inside a patched range (entry+1 .. entry+N-1): such a
 * branch would jump into the middle of the jmp. Done before stopping.
 */
static void sweep_sites(struct ms_probes *pr, const struct ms_modules *mods,
			const struct ms_maps *maps)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		struct ms_range *rgs = NULL;
		size_t *idx = NULL, nr = 0;

		for (size_t i = 0; i < pr->ns; i++) {
			if (pr->s[i].mod != mi)
				continue;
			rgs = ms_xrealloc(rgs, (nr + 1) * sizeof(*rgs));
			idx = ms_xrealloc(idx, (nr + 1) * sizeof(*idx));
			rgs[nr] =
			    (struct ms_range){.lo = pr->s[i].entry + 1,
					      .hi = pr->s[i].entry + pr->s[i].reloc.displaced};
			idx[nr++] = i;
		}
		if (!nr)
			continue;
		for (size_t k = 0; k < maps->n; k++) {
			const struct ms_map *mp = &maps->v[k];
			uint8_t *text;
			ssize_t n;

			if (!mp->x || mp->start < mods->v[mi].start || mp->end > mods->v[mi].end)
				continue;
			text = ms_xmalloc(mp->end - mp->start);
			n = ms_mem_read_pid(pr->pid, mp->start, text, mp->end - mp->start);
			if (n > 0)
				ms_decode_sweep(text, (size_t)n, mp->start, rgs, nr);
			free(text);
		}
		/* Drop from the highest index so the others stay valid. */
		for (size_t j = nr; j-- > 0;) {
			if (!rgs[j].hit_from)
				continue;
			skip_site(pr, &pr->s[idx[j]],
				  "the branch at %#llx lands inside its first %zu bytes (%#llx)",
				  (unsigned long long)rgs[j].hit_from, pr->s[idx[j]].reloc.displaced,
				  (unsigned long long)rgs[j].hit_to);
			pr->s[idx[j]].entry = 0; /* marked; removed below */
		}
		free(rgs);
		free(idx);
	}
	for (size_t i = 0; i < pr->ns;) {
		if (!pr->s[i].entry)
			drop_site(pr, i);
		else
			i++;
	}
}

/* ------------------------------ regions ------------------------------ */

static void refill_draws(struct ms_probes *pr, const struct region *rg, uint64_t from, uint64_t to);

static bool in_reach(ms_raddr_t base, const struct ms_module *m)
{
	int64_t d1 = (int64_t)(base - m->start),
		d2 = (int64_t)(base + MS_STUB_REGION_SIZE - m->end);

	return llabs(d1) < REACH - REACH_MARGIN && llabs(d2) < REACH - REACH_MARGIN;
}

/* Candidate addresses in the free gaps of maps, nearest to m first. */
static size_t region_candidates(const struct ms_maps *maps, const struct ms_module *m,
				ms_raddr_t *out, size_t max)
{
	size_t n = 0;
	uint64_t need = MS_STUB_REGION_SIZE + 2 * PAGE;

	for (size_t i = 0; i + 1 <= maps->n; i++) {
		ms_raddr_t lo = i ? maps->v[i - 1].end : 0x10000, hi = maps->v[i].start;
		const char *below = i ? maps->v[i - 1].path : NULL;
		const char *above = maps->v[i].path;
		ms_raddr_t c;

		if (hi <= lo || hi - lo < need)
			continue;
		/* Keep out of brk's way above [heap] and of [stack]'s growth below it. */
		if (above && !strcmp(above, "[stack]"))
			c = lo + PAGE;
		else if (below && !strcmp(below, "[heap]"))
			c = hi - MS_STUB_REGION_SIZE - PAGE;
		else if (hi <= m->start)
			c = hi - MS_STUB_REGION_SIZE - PAGE;
		else
			c = lo + PAGE;
		if (above && !strcmp(above, "[stack]") && below && !strcmp(below, "[heap]"))
			c = lo + (hi - lo) / 2;
		c &= ~(PAGE - 1);
		if (!in_reach(c, m) || n >= max)
			continue;
		out[n++] = c;
	}
	/* Nearest first. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0; j--) {
			int64_t a = llabs((int64_t)(out[j] - m->start));
			int64_t b = llabs((int64_t)(out[j - 1] - m->start));

			if (a >= b)
				break;
			ms_raddr_t t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	}
	return n;
}

static int map_region(struct ms_probes *pr, const struct ms_module *m, struct ms_error *err)
{
	ms_raddr_t cand[64];
	size_t n;
	long ret = 0;
	int rc;

	rc = ms_proc_refresh_maps(pr->p);
	if (rc)
		return ms_error_set(err, rc, "probe: reading /proc/%d/maps: %s", (int)pr->pid,
				    ms_strerror(rc));
	n = region_candidates(ms_proc_maps(pr->p), m, cand, MS_ARRAY_SIZE(cand));
	for (size_t i = 0; i < n; i++) {
		struct region *rg;

		/*
		 * Mapped RX: the stub image goes in through /proc/PID/mem at once,
		 * so the rest of the set-up (the data pages made RW first) already
		 * runs through its trampoline.
		 */
		rc = rsyscall(pr, SYS_mmap, (long)cand[i], MS_STUB_REGION_SIZE,
			      PROT_READ | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0, &ret);
		if (rc)
			return ms_error_set(err, rc, "probe: remote mmap in process %d: %s",
					    (int)pr->pid, ms_strerror(rc));
		if (ret == -EEXIST)
			continue;
		if (ret < 0 && ret > -4096)
			return ms_error_set(err, (int)ret,
					    "probe: remote mmap(%#llx, %#x) in process %d: %s",
					    (unsigned long long)cand[i], MS_STUB_REGION_SIZE,
					    (int)pr->pid, strerror((int)-ret));
		if ((ms_raddr_t)ret != cand[i]) {
			/* A kernel older than 4.17 took the flag as a hint. */
			long r2;

			rsyscall(pr, SYS_munmap, ret, MS_STUB_REGION_SIZE, 0, 0, 0, 0, &r2);
			continue;
		}
		ms_xgrow((void **)&pr->rg, &pr->cap_rg, pr->nrg + 1, sizeof(*pr->rg));
		rg = &pr->rg[pr->nrg++];
		memset(rg, 0, sizeof(*rg));
		rg->base = cand[i];
		ms_debug("probe: region %#llx (+%#x) for %s", (unsigned long long)cand[i],
			 MS_STUB_REGION_SIZE, m->path);
		rc = ms_proc_write_mem(pr->p, rg->base, ms_stub_image, MS_STUB_CODE_SIZE);
		if (rc)
			return ms_error_set(err, rc, "probe: writing the stub code at %#llx: %s",
					    (unsigned long long)rg->base, ms_strerror(rc));
		rg->tramp = true;
		rc = rsyscall(pr, SYS_mprotect, (long)(rg->base + MS_STUB_CTRL_OFF),
			      MS_STUB_REGION_SIZE - MS_STUB_CTRL_OFF, PROT_READ | PROT_WRITE, 0, 0,
			      0, &ret);
		if (!rc && ret)
			rc = (int)ret;
		if (rc)
			return ms_error_set(err, rc, "probe: remote mprotect(%#llx, RW): %s",
					    (unsigned long long)(rg->base + MS_STUB_CTRL_OFF),
					    ms_strerror(rc));
		return 0;
	}
	return ms_error_set(err, -ENOMEM,
			    "probe: no free address range within +-2 GiB of %s in process %d",
			    m->path, (int)pr->pid);
}

/* A free slot of kind in region r, or -1. */
static int take_slot(struct region *r, int kind)
{
	for (int i = 0; i < MS_STUB_NSLOTS; i++) {
		if (!r->used[i] && (int)ms_stub_desc[i].kind == kind) {
			r->used[i] = true;
			return i;
		}
	}
	return -1;
}

/* Fills the regions' code pages, control pages and countdowns; maps code RX. */
/*
 * Does glibc serve some calls of this site by jumping to its own malloc
 * entry (posix_memalign, memalign and aligned_alloc for alignments up to
 * MS_RELAY_ALIGN; realloc of NULL), and is that malloc probed in the same
 * region? Then the stub leaves those calls to the malloc probe.
 */
static bool relays(const struct ms_probes *pr, const struct site *s)
{
	if (!s->glibc || (s->fn != MS_FN_POSIX_MEMALIGN && s->fn != MS_FN_MEMALIGN &&
			  s->fn != MS_FN_ALIGNED_ALLOC && s->fn != MS_FN_REALLOC))
		return false;
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].fn == MS_FN_MALLOC && pr->s[i].mod == s->mod &&
		    pr->s[i].region == s->region && pr->s[i].slot >= 0)
			return true;
	return false;
}

static int build_regions(struct ms_probes *pr, struct ms_error *err)
{
	uint8_t *img = ms_xmalloc(MS_STUB_CODE_SIZE);
	int rc = 0;

	for (size_t r = 0; r < pr->nrg && !rc; r++) {
		struct region *rg = &pr->rg[r];
		struct ms_ksigaction ks = {
		    .handler = rg->base + ms_stub_sig_handler,
		    .flags = KSA_RESTORER | KSA_RESTART,
		    .restorer = rg->base + ms_stub_sig_restorer,
		    .mask = 0,
		};
		int64_t cnt[MS_STUB_NCNT * 8];
		uint8_t ctl[5], relay[MS_STUB_NSLOTS] = {0};
		uint64_t sig[2];
		long ret;

		memcpy(img, ms_stub_image, MS_STUB_CODE_SIZE);
		for (size_t i = 0; i < pr->ns; i++) {
			struct site *s = &pr->s[i];
			const struct ms_stub_desc *d;

			if (s->region != r || s->slot < 0)
				continue;
			d = &ms_stub_desc[s->slot];
			rc = ms_decode_relocate(s->orig, sizeof(s->orig), s->entry,
						rg->base + d->orig, PATCH_LEN, &s->reloc);
			if (rc) {
				skip_site(pr, s, "%s", s->reloc.why);
				s->slot = -1;
				rc = 0;
				continue;
			}
			memcpy(img + d->orig, s->reloc.code, s->reloc.len);
		}
		for (size_t i = 0; i < pr->ns; i++)
			if (pr->s[i].region == r && pr->s[i].slot >= 0 && relays(pr, &pr->s[i]))
				relay[pr->s[i].slot] = 1;
		/* RX already: written through /proc/PID/mem, and read back. */
		rc = ms_proc_write_mem(pr->p, rg->base, img, MS_STUB_CODE_SIZE);
		if (rc) {
			ms_error_set(err, rc, "probe: writing the stub code at %#llx: %s",
				     (unsigned long long)rg->base, ms_strerror(rc));
			break;
		}
		memset(cnt, 0, sizeof(cnt));
		for (int k = 0; k < MS_STUB_NCNT; k++)
			cnt[k * 8] = pr->exact ? INT64_MIN / 2 : draw_countdown(pr);
		ctl[MS_CTRL_ARMED] = 0;
		ctl[MS_CTRL_FREE_ALL] = pr->exact && pr->opts.track_frees;
		ctl[MS_CTRL_TRACK] = !pr->exact && pr->opts.track_frees;
		ctl[MS_CTRL_RING] = pr->ring;
		ctl[MS_CTRL_EXACT] = pr->exact;
		memcpy(rg->ctl, ctl, sizeof(ctl));
		memcpy(rg->relay, relay, sizeof(relay));
		sig[0] = MS_RING_MAGIC;
		sig[1] = pr->nonce ^ rg->base;
		if (pr->ring)
			refill_draws(pr, rg, 0, MS_STUB_NDRAW);
		if ((rc = write_remote(pr, rg->base + MS_STUB_CNT_OFF, cnt, sizeof(cnt))) ||
		    (rc = write_remote(pr, rg_ctrl(rg, 0), ctl, sizeof(ctl))) ||
		    (rc = write_remote(pr, rg_ctrl(rg, MS_CTRL_MAGIC), sig, sizeof(sig))) ||
		    (rc = write_remote(pr, rg_ctrl(rg, MS_CTRL_RELAY), relay, sizeof(relay))) ||
		    (rc = write_remote(pr, rg_ctrl(rg, MS_CTRL_SIGACT_NEW), &ks, sizeof(ks)))) {
			ms_error_set(err, rc, "probe: writing the stub data at %#llx: %s",
				     (unsigned long long)rg->base, ms_strerror(rc));
			break;
		}
		/* A forked child must see armed = 0, zero counters and an empty table. */
		rc = rsyscall(pr, SYS_madvise, (long)(rg->base + MS_STUB_CTRL_OFF),
			      MS_STUB_REGION_SIZE - MS_STUB_CTRL_OFF, MADV_WIPEONFORK, 0, 0, 0,
			      &ret);
		if (!rc && ret)
			ms_warn("probe: madvise(MADV_WIPEONFORK) failed in process %d (%s): "
				"forked children keep armed stubs until memspy restores them",
				(int)pr->pid, strerror((int)-ret));
		rc = 0;
	}
	free(img);
	return rc;
}

static int install_sigtrap(struct ms_probes *pr, struct ms_error *err)
{
	struct region *rg = &pr->rg[0];
	long ret;
	int rc = rsyscall(pr, SYS_rt_sigaction, SIGTRAP, (long)rg_ctrl(rg, MS_CTRL_SIGACT_NEW),
			  (long)rg_ctrl(rg, MS_CTRL_SIGACT_OLD), 8, 0, 0, &ret);

	if (!rc && ret)
		rc = (int)ret;
	if (rc)
		return ms_error_set(err, rc,
				    "probe: remote rt_sigaction(SIGTRAP) in process %d: %s",
				    (int)pr->pid, ms_strerror(rc));
	pr->sigact_installed = true;
	return 0;
}

static int restore_sigtrap(struct ms_probes *pr)
{
	long ret;
	int rc;

	ms_raddr_t from;

	if (!pr->sigact_installed)
		return 0;
	if (pr->rg[0].overwritten) {
		/*
		 * The control page's copy is the target's to overwrite, and the
		 * region may be gone or unreadable: memspy's own copy goes below a
		 * stopped thread's stack (under the red zone and the remote-syscall
		 * frame: scratch to a stopped thread), for the kernel to read.
		 */
		struct user_regs_struct regs;
		pid_t tid = any_thread(pr);

		if (tid < 0 || ms_proc_get_regs(pr->p, tid, &regs))
			return -MS_E_TARGET_EXITED;
		from = (regs.rsp - 1024) & ~(ms_raddr_t)15;
		rc = ms_proc_write_mem(pr->p, from, &pr->sigact_old, sizeof(pr->sigact_old));
		if (rc)
			return rc;
	} else if (!code_intact(pr, 0)) {
		return 0; /* exec'd: the kernel reset every handler already */
	} else {
		from = rg_ctrl(&pr->rg[0], MS_CTRL_SIGACT_OLD);
	}
	rc = rsyscall(pr, SYS_rt_sigaction, SIGTRAP, (long)from, 0, 8, 0, 0, &ret);
	if (!rc && ret)
		rc = (int)ret;
	if (!rc)
		pr->sigact_installed = false;
	return rc;
}

/* ------------------------------ manifests ------------------------------ */

/*
 * Writes each region's manifest (probe_int.h): its sites and the SIGTRAP
 * action memspy is about to replace, act. Before the action is replaced and
 * before any entry is patched, so that a memspy death at any moment after
 * leaves what the watchdog or the next memspy need to put everything back.
 */
static int write_manifests(struct ms_probes *pr, const struct ms_ksigaction *act)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		struct ms_stub_manifest m;
		int rc;

		memset(&m, 0, sizeof(m));
		memcpy(m.sig, MS_MANIFEST_SIG, sizeof(m.sig));
		m.version = MS_MANIFEST_VERSION;
		m.nonce = pr->nonce;
		m.memspy_pid = (int32_t)getpid();
		m.target_pid = (int32_t)pr->pid;
		m.our_handler = pr->rg[0].base + ms_stub_sig_handler;
		m.sigact_old = *act;
		for (size_t i = 0; i < pr->ns && m.nsites < MS_MANIFEST_SITES; i++) {
			const struct site *s = &pr->s[i];

			if (s->slot < 0 || s->region != r)
				continue;
			m.site[m.nsites].entry = s->entry;
			m.site[m.nsites].stub = pr->rg[r].base + ms_stub_desc[s->slot].stub;
			memcpy(m.site[m.nsites].orig, s->orig, sizeof(m.site[0].orig));
			m.nsites++;
		}
		m.sum = ms_manifest_sum(&m);
		rc = ms_proc_write_mem(pr->p, pr->rg[r].base + MS_STUB_MANIFEST_OFF, &m, sizeof(m));
		if (rc)
			return rc;
	}
	return 0;
}

/* Everything is back: the manifests say nothing is left to do. */
static void retire_manifests(struct ms_probes *pr)
{
	static const char zero_sig[16];

	for (size_t r = 0; r < pr->nrg; r++)
		if (code_intact(pr, r))
			ms_proc_write_mem(pr->p, pr->rg[r].base + MS_STUB_MANIFEST_OFF, zero_sig,
					  sizeof(zero_sig));
}

/*
 * Before planning (which reads the entries' bytes): puts back what an earlier
 * memspy that died left (ms_probe_reclaim) and says so in one line. A
 * memspy `ret` handler that could not be taken back is refused here, with
 * its cause, rather than as a handler of the target's own.
 */
static int reclaim_leftovers(struct ms_probes *pr, struct ms_error *err)
{
	struct ms_reclaim rec;
	int rc;

	if (!ms_probe_leftovers(pr->pid))
		return 0;
	ms_remote_prepare(pr->p);
	rc = ms_proc_stop_all(pr->p);
	if (rc)
		return ms_error_set(err, rc, "probe: stopping the threads of process %d: %s",
				    (int)pr->pid, ms_strerror(rc));
	rc = ms_probe_reclaim(pr->p, NULL, 0, 0, &rec);
	ms_proc_resume_all(pr->p);
	if (rc || !rec.nregions)
		return 0;
	if ((rec.restored || rec.handler_restored) && rec.written_in != pr->pid)
		/* A child forked while probed: its parent's memspy restored its bytes only. */
		ms_warn("found probes memspy (pid %d) left in process %d before it forked this one: "
			"restored %zu entry point%s%s",
			(int)rec.memspy_pid, (int)rec.written_in, rec.restored,
			rec.restored == 1 ? "" : "s",
			rec.handler_restored ? " and the SIGTRAP action" : "");
	else if (rec.restored || rec.handler_restored)
		ms_warn("found probes left by an earlier memspy (pid %d) that was killed: restored "
			"%zu entry point%s%s",
			(int)rec.memspy_pid, rec.restored, rec.restored == 1 ? "" : "s",
			rec.handler_restored ? " and the SIGTRAP action" : "");
	if (rec.handler_found && !rec.handler_restored) {
		ms_error_set(err, -MS_E_UNSUPPORTED,
			     "probe: process %d still has the SIGTRAP handler of an earlier memspy "
			     "(pid %d) that was killed: %s",
			     (int)pr->pid, (int)rec.memspy_pid,
			     rec.why_left ? rec.why_left : "it could not be restored");
		ms_error_hint(err, "try again in a moment, or use `memspy record --mode walk` "
				   "(no probes)");
		return err ? err->code : -MS_E_UNSUPPORTED;
	}
	if (rec.left)
		ms_warn("probe: %zu entry point%s left by that memspy stay patched and disarmed: %s",
			rec.left, rec.left == 1 ? "" : "s", rec.why_left ? rec.why_left : "?");
	return 0;
}

/* The SIGTRAP action as /proc shows it: ignored or default (a handler was refused). */
static struct ms_ksigaction sigtrap_action_now(pid_t pid)
{
	struct ms_ksigaction a = {0, 0, 0, 0};
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (status_mask(path, "SigIgn") & SIGBIT(SIGTRAP))
		a.handler = (uint64_t)(uintptr_t)SIG_IGN;
	return a;
}

/* ------------------------------ patching ------------------------------ */

/* Is any stopped thread strictly inside [lo+1, hi)? */
static bool thread_inside(struct ms_probes *pr, ms_raddr_t lo, ms_raddr_t hi)
{
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		struct user_regs_struct regs;

		if (ms_proc_get_regs(pr->p, ms_proc_thread(pr->p, i), &regs))
			continue;
		if (regs.rip > lo && regs.rip < hi)
			return true;
	}
	return false;
}

/*
 * Does region r still hold memspy's stub code? After an exec (not traced)
 * or an munmap its addresses may belong to something else: never write there.
 */
static bool code_intact(const struct ms_probes *pr, size_t r)
{
	uint8_t code[64];
	struct iovec l = {code, sizeof(code)};
	struct iovec rv = {(void *)(uintptr_t)pr->rg[r].base, sizeof(code)};

	return ring_readv((struct ms_probes *)pr, &l, 1, &rv, 1) == (ssize_t)sizeof(code) &&
	       !memcmp(code, ms_stub_image, sizeof(code));
}

/*
 * ... and are its data pages still memspy's? A region whose pages failed
 * the drain's checks is neither written (its pages may now hold the
 * target's own data) nor used for remote system calls.
 */
static bool region_intact(const struct ms_probes *pr, size_t r)
{
	return !pr->rg[r].tampered && code_intact(pr, r);
}

/* The 5-byte jmp from site s to its stub. */
static void site_jmp(const struct ms_probes *pr, const struct site *s, uint8_t jmp[PATCH_LEN])
{
	ms_raddr_t stub = pr->rg[s->region].base + ms_stub_desc[s->slot].stub;
	int32_t rel = (int32_t)(int64_t)(stub - (s->entry + PATCH_LEN));

	jmp[0] = 0xe9;
	memcpy(jmp + 1, &rel, 4);
}

/*
 * Writes zeros over the sample ring (headers and stack copies) so its pages
 * are resident. Measured on this 6.18 VM kernel: after a remote write (or
 * MADV_POPULATE_WRITE) about half of the 16 KiB slots still cost the stub a
 * ~30 us fault on their first local write; only a write by the target itself
 * avoids that. It is paid once per slot, in the first 256 samples.
 */
static void prefault_ring(struct ms_probes *pr)
{
	static const uint8_t zero[65536];

	if (!pr->ring)
		return;
	for (size_t r = 0; r < pr->nrg; r++)
		for (ms_raddr_t off = MS_STUB_HDR_OFF; off < MS_STUB_REGION_SIZE; off += sizeof(zero))
			if (write_remote(pr, pr->rg[r].base + off, zero,
					 (size_t)MS_MIN((ms_raddr_t)sizeof(zero),
							MS_STUB_REGION_SIZE - off)))
				break;
}

static int set_armed(struct ms_probes *pr, bool on)
{
	int rc = 0;

	if (on && !pr->armed)
		pr->armed_ns = ms_now_ns();
	pr->armed = on;
	for (size_t r = 0; r < pr->nrg; r++) {
		uint8_t v = on;
		int e;

		if (!region_intact(pr, r))
			continue;
		e = write_remote(pr, rg_ctrl(&pr->rg[r], MS_CTRL_ARMED), &v, 1);

		if (e && !rc)
			rc = e;
		if (!on) {
			uint8_t z[2] = {0, 0};

			/* What the drain's checks expect from here on. */
			pr->rg[r].ctl[MS_CTRL_FREE_ALL] = pr->rg[r].ctl[MS_CTRL_TRACK] = 0;

			write_remote(pr, rg_ctrl(&pr->rg[r], MS_CTRL_FREE_ALL), z, 2);
		}
	}
	return rc;
}

static int patch_sites(struct ms_probes *pr)
{
	size_t done = 0;

	for (size_t i = 0; i < pr->ns; i++) {
		struct site *s = &pr->s[i];
		uint8_t jmp[PATCH_LEN];
		int tries = 0, rc;

		if (s->slot < 0)
			continue;
		site_jmp(pr, s, jmp);
		while (thread_inside(pr, s->entry, s->entry + s->reloc.displaced)) {
			/* Let it run out of the range, then stop again. */
			if (++tries > PATCH_RETRIES)
				break;
			ms_proc_resume_all(pr->p);
			usleep(100);
			rc = ms_proc_stop_all(pr->p);
			if (rc)
				return rc;
		}
		if (tries > PATCH_RETRIES) {
			skip_site(pr, s, "a thread stays inside its first %zu bytes",
				  s->reloc.displaced);
			continue;
		}
		rc = ms_proc_write_mem(pr->p, s->entry, jmp, PATCH_LEN);
		if (rc) {
			skip_site(pr, s, "writing the jmp at %#llx: %s",
				  (unsigned long long)s->entry, ms_strerror(rc));
			continue;
		}
		s->patched = true;
		done++;
	}
	return done ? 0 : -MS_E_NOT_FOUND;
}

/* ------------------------------ ring mode ------------------------------ */

static const struct site *site_for(const struct ms_probes *pr, size_t region, int slot);
static bool nested_call(const struct ms_probes *pr, const uint8_t *stack, size_t len);

static bool thread_alive(pid_t pid, pid_t tid)
{
	return syscall(SYS_tgkill, pid, tid, 0) == 0 || errno != ESRCH;
}

/*
 * Enters a stopped thread in the thread table of every region: its thread
 * pointer and the bounds of its stack, so the stub can clamp its copy. For
 * a pthread the top is its thread pointer (the TCB sits at the top of its
 * stack mapping): anonymous mappings merge, and a bound at the mapping's
 * end could let the copy run into a neighbour that is unmapped later.
 */
static void register_thread(struct ms_probes *pr, pid_t tid, const struct user_regs_struct *regs)
{
	uint64_t tp = regs->fs_base, hi, lo, ent[3];
	const struct ms_map *m;
	int slot = -1;

	if (!pr->ring || !tp)
		return;
	m = ms_maps_find(ms_proc_maps(pr->p), regs->rsp);
	if (!m) {
		ms_proc_refresh_maps(pr->p);
		m = ms_maps_find(ms_proc_maps(pr->p), regs->rsp);
	}
	if (!m)
		return;
	lo = m->start;
	hi = m->end;
	if (tid != pr->pid && tp > m->start && tp <= m->end)
		hi = tp;
	for (int pass = 0; pass < 2 && slot < 0; pass++) {
		for (unsigned k = 0; k < 8; k++) {
			unsigned i = (unsigned)((tp >> 12) + k) & (MS_STUB_NTHR - 1);
			struct thr *t = &pr->thr[i];

			if (t->tp == tp || !t->tp ||
			    (pass == 1 && !thread_alive(pr->pid, t->tid))) {
				slot = (int)i;
				break;
			}
		}
	}
	if (slot < 0)
		return; /* no room: its samples are lost, counted (NOTHREAD), never a trap */
	pr->thr[slot].tp = tp;
	pr->thr[slot].tid = tid;
	pr->thr[slot].lo = lo;
	pr->thr[slot].hi = hi;
	ent[0] = hi;
	ent[1] = lo;
	ent[2] = (uint64_t)tid;
	for (size_t r = 0; r < pr->nrg; r++) {
		ms_raddr_t a = pr->rg[r].base + MS_STUB_THR_OFF + (ms_raddr_t)slot * 32;

		if (pr->rg[r].tampered)
			continue;
		/* Bounds first, then the key: a stub that matches tp sees valid bounds. */
		write_remote(pr, a + 8, ent, sizeof(ent));
		write_remote(pr, a, &tp, sizeof(tp));
	}
}

/* The thread memspy entered with thread pointer tp, or NULL. */
static const struct thr *thr_of(const struct ms_probes *pr, uint64_t tp)
{
	for (unsigned k = 0; k < 8 && tp; k++) {
		const struct thr *t = &pr->thr[(unsigned)((tp >> 12) + k) & (MS_STUB_NTHR - 1)];

		if (t->tp == tp)
			return t;
	}
	return NULL;
}

/*
 * Threads born while recording are entered at their first ptrace stop,
 * before they run: a sample of a thread the table lacks is lost (ring mode
 * never stops a thread), so none may wait for a first sample to be known.
 */
static void on_new_thread(void *ctx, pid_t tid, const struct user_regs_struct *regs)
{
	struct ms_probes *pr = ctx;

	if (!pr->removed)
		register_thread(pr, tid, regs);
}

static void register_all_threads(struct ms_probes *pr)
{
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);
		struct user_regs_struct regs;

		if (!ms_proc_get_regs(pr->p, tid, &regs))
			register_thread(pr, tid, &regs);
	}
}

/* Rewrites the pre-drawn countdowns in [from, to) (indices mod NDRAW). */
static void refill_draws(struct ms_probes *pr, const struct region *rg, uint64_t from, uint64_t to)
{
	int64_t v[MS_STUB_NDRAW];
	uint64_t n = to - from;

	if (n > MS_STUB_NDRAW) {
		from = 0;
		n = MS_STUB_NDRAW;
	}
	for (uint64_t k = 0; k < n; k++)
		v[k] = draw_countdown(pr);
	for (uint64_t done = 0; done < n;) {
		uint64_t at = (from + done) % MS_STUB_NDRAW;
		uint64_t run = MS_MIN(n - done, MS_STUB_NDRAW - at);

		write_remote(pr, rg->base + MS_STUB_DRAW_OFF + at * 8, v + done, run * 8);
		done += run;
	}
}

static uint64_t tsc_now(void)
{
	return __builtin_ia32_rdtsc();
}

/* Nanoseconds for a span of TSC ticks, from the rate seen since install. */
static uint64_t tsc_to_ns(const struct ms_probes *pr, uint64_t ticks)
{
	uint64_t dt = tsc_now() - pr->tsc0, dn = ms_now_ns() - pr->ns0;

	if (!dt || dn < 1000000)
		return 0;
	return (uint64_t)((double)ticks * (double)dn / (double)dt);
}

struct pending_ev {
	uint64_t key; /* TSC when it happened: frees after the allocation they free */
	int hdr;      /* header index, or -1 for a free */
	int slot;     /* a free: the stub slot that recorded it */
	uint64_t ptr;
};

/* The freed ring keeps the stub slot in the top byte of its TSC stamp. */
#define TSC_MASK ((1ull << 56) - 1)

static int cmp_pending(const void *a, const void *b)
{
	const struct pending_ev *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static uint64_t rd64(const uint8_t *h, unsigned off)
{
	uint64_t v;

	memcpy(&v, h + off, sizeof(v));
	return v;
}

/* now and ns_per_tick: taken once per drain (clock reads cost in a VM). */
/*
 * The factor by which the samples of one drain stand in for the ring-full
 * losses counted up to the moment their slots were read (drops: the
 * counter read after the slots). A ticket is lost because the slots this
 * drain takes were still full: whatever their size or site, over those few
 * milliseconds the samples in the slots are a fair picture of the lost
 * ones, so weighting them up by (taken + lost) / taken keeps the totals
 * unbiased (a ratio estimator; the losses are counted and reported too).
 * Losses after the last drain that takes a sample stay unweighted, and so
 * do those of threads memspy could not register (whole threads, not
 * random).
 */
static double lost_weight(struct region *rg, size_t taken, uint64_t drops)
{
	double f;

	if (!taken || drops <= rg->drops_weighted)
		return 1.0;
	f = (double)(taken + (drops - rg->drops_weighted)) / (double)taken;
	rg->drops_weighted = drops;
	return f;
}

/*
 * After a change of the mean: ring-full losses up to now happened under the
 * old mean, and the samples that could stand for them were drained before
 * the change. Weighting later samples (each standing for the new mean's
 * bytes) up for them would count them again at the new mean: a 512 KiB
 * burst of losses made up for at 1 GiB read 8x the true total.
 */
static void restart_lost_weight(struct ms_probes *pr)
{
	/* The count as of the drain just made (checked there), not a fresh unchecked read. */
	for (size_t r = 0; r < pr->nrg; r++)
		pr->rg[r].drops_weighted = pr->rg[r].drops;
}

static void emit_ring_sample(struct ms_probes *pr, size_t r, int i, ms_alloc_event_cb cb, void *ctx,
			     uint64_t now, double ns_per_tick, double scale)
{
	const uint8_t *h = pr->hdrs + (size_t)i * MS_STUB_HDR_SIZE;
	uint64_t sw = rd64(h, MS_H_SLOT), len = rd64(h, MS_H_LEN), stub_ticks;
	int slot = (int)(sw & 0xff), kind = (int)((sw >> 8) & 0xff);
	const struct site *s = slot < MS_STUB_NSLOTS ? site_for(pr, r, slot) : NULL;
	struct ms_alloc_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = MS_AE_ALLOC;
	ev.fn = s ? s->fn : MS_FN_CUSTOM;
	ev.tid = thr_of(pr, rd64(h, MS_H_TP))->tid; /* checked: a thread memspy entered */
	ev.size = size_of(h, (unsigned)kind);
	ev.weight = sample_weight(pr, ev.size, mean_at(pr, rd64(h, MS_H_TSC0)));
	if (scale != 1.0) /* saturated: a cast out of range is undefined */
		ev.weight = (double)ev.weight * scale < 1.8e19
				? (uint64_t)((double)ev.weight * scale + 0.5)
				: UINT64_MAX;
	ev.ptr = rd64(h, MS_H_RES);
	ev.time_ns = now;
	ev.regs.rip = s ? s->entry : 0;
	ev.regs.rsp = rd64(h, MS_H_SP);
	ev.regs.rbp = rd64(h, MS_H_RBP);
	ev.regs.rbx = rd64(h, MS_H_RBX);
	ev.regs.r12 = rd64(h, MS_H_R12);
	ev.regs.r13 = rd64(h, MS_H_R13);
	ev.regs.r14 = rd64(h, MS_H_R14);
	ev.regs.r15 = rd64(h, MS_H_R15);
	ev.regs.rdi = rd64(h, MS_H_RDI);
	ev.regs.rsi = rd64(h, MS_H_RSI);
	ev.regs.rdx = rd64(h, MS_H_RDX);
	ev.regs.rax = ev.ptr;
	ev.regs.fs_base = rd64(h, MS_H_TP);
	ev.stack = pr->data + (size_t)i * MS_STUB_DATA_SIZE;
	ev.stack_len = (size_t)MS_MIN(len, (uint64_t)MS_STUB_DATA_SIZE);
	if (nested_call(pr, ev.stack, ev.stack_len)) {
		pr->nested++;
		return;
	}
	pr->st.samples++;
	pr->st.ring_samples++;
	/* The stub's own work: the whole span minus the time inside the real function. */
	stub_ticks = rd64(h, MS_H_TSC1) - rd64(h, MS_H_TSC0);
	stub_ticks = rd64(h, MS_H_CALL) < stub_ticks ? stub_ticks - rd64(h, MS_H_CALL) : 0;
	pr->st.target_ns += (uint64_t)((double)stub_ticks * ns_per_tick);
	if (pr->nticks < MS_ARRAY_SIZE(pr->ticks))
		pr->ticks[pr->nticks++] = stub_ticks;
	if (cb)
		cb(&ev, ctx);
}

/*
 * The slots of tickets [from, to) of a ring of n slots of size bytes, as at
 * most two remote ranges (with the matching local ones): the whole ring
 * when the window is a lap or more.
 */
static unsigned ring_window(uint64_t from, uint64_t to, unsigned n, size_t size, ms_raddr_t rbase,
			    void *lbase, struct iovec *liov, struct iovec *riov)
{
	uint64_t cnt = to - from;
	unsigned first = (unsigned)(from & (n - 1)), k = 0;

	if (cnt >= n) {
		first = 0;
		cnt = n;
	}
	while (cnt) {
		unsigned run = (unsigned)MS_MIN(cnt, (uint64_t)(n - first));

		liov[k].iov_base = (uint8_t *)lbase + (size_t)first * size;
		riov[k].iov_base = (void *)(uintptr_t)(rbase + (ms_raddr_t)first * size);
		liov[k].iov_len = riov[k].iov_len = (size_t)run * size;
		k++;
		cnt -= run;
		first = 0;
	}
	return k;
}

/* Moves a ring's window on when every ticket below head is accounted for. */
static void settle_window(uint64_t *scan_from, uint64_t *taken, uint64_t head, uint64_t drops)
{
	if (*taken + drops < head)
		return; /* a ticket is still being written (or not yet claimed its slot) */
	if (*taken + drops > head) {
		/* Only a lost give-back write (a slot taken twice) gets here. */
		ms_debug("probe: ring ledger off by %llu: resynchronised",
			 (unsigned long long)(*taken + drops - head));
		*taken = head - MS_MIN(drops, head);
	}
	*scan_from = head;
}

/*
 * The control page, one read from its start to the relay flags: the
 * layout signature, the control bytes and the ring counters.
 */
#define CTL_FIRST 0
#define CTL_WORDS ((MS_CTRL_RELAY + MS_STUB_NSLOTS - CTL_FIRST) / 8)
#define CTL(c, off) ((c)[((off) - CTL_FIRST) / 8])
#define CTL_BYTES(c) ((const uint8_t *)(c) - CTL_FIRST)

/* ------------------------------ tamper checks ------------------------------ */

/*
 * The target can write any byte of memspy's pages (a bug, or on purpose),
 * so nothing read from them is believed unchecked: the control page must
 * carry the layout signature and the control bytes memspy wrote, its
 * counters may only grow and only as fast as calls can happen, and each
 * slot's header must be what the stub writes. A slot or freed entry that
 * fails is dropped and counted; a control page that fails means the pages
 * are not memspy's any more: the region is never read or written again and
 * the probes go (ms_probes_poll returns -MS_E_TAMPERED).
 */

/*
 * The most probed calls the stubs can have counted since install: one per
 * 10 ns per CPU (a real sampled call takes microseconds, a drop tens of
 * ns), plus a margin. Counts above it are not counts.
 */
#define CALLS_PER_CPU_NS 0.1
static uint64_t max_calls(const struct ms_probes *pr, uint64_t now_ns)
{
	double span = (double)(now_ns > pr->ns0 ? now_ns - pr->ns0 : 0) + 1e7;

	return (uint64_t)(span * (double)pr->ncpu * CALLS_PER_CPU_NS) + 65536;
}

/* Slack on the stubs' TSC stamps (CPUs of a VM may disagree a little): ~1 s. */
#define TSC_SLACK (1ull << 32)
/* Samples with a bad header after which the ring is taken as no longer memspy's. */
#define MAX_BAD_SLOTS 64

/*
 * Does an entry point of region r still jump to its stub? Not after an exec
 * or an unload: then the pages went with the image, and that is no tampering.
 */
static bool still_patched(struct ms_probes *pr, size_t r)
{
	if (pr->io)
		return true; /* the fuzzer's image has no text */
	for (size_t i = 0; i < pr->ns; i++) {
		const struct site *s = &pr->s[i];
		uint8_t jmp[PATCH_LEN], now[PATCH_LEN];

		if (!s->patched || s->region != r || s->slot < 0)
			continue;
		site_jmp(pr, s, jmp);
		if (ms_mem_read_pid(pr->pid, s->entry, now, PATCH_LEN) == PATCH_LEN &&
		    !memcmp(now, jmp, PATCH_LEN))
			return true;
	}
	return false;
}

static void tamper(struct ms_probes *pr, size_t r, const char *why)
{
	struct region *rg = &pr->rg[r];

	if (rg->tampered)
		return;
	rg->tampered = true;
	if (!still_patched(pr, r)) {
		ms_debug("probe: region %zu: the image changed (exec or unload): no longer drained",
			 r);
		return;
	}
	rg->overwritten = true;
	pr->st.tampered++;
	if (!pr->st.tamper_why) {
		pr->st.tamper_why = why;
		pr->st.tamper_after_ns = pr->armed_ns ? ms_now_ns() - pr->armed_ns : 0;
	}
	ms_warn("probe: memspy's pages at %#llx in process %d fail their checks (%s): sampling "
		"stops, the probes are removed",
		(unsigned long long)rg->base, (int)pr->pid, why);
}

/* One counter: it may only grow, and only as fast as calls can happen. */
static bool counter_ok(uint64_t now, uint64_t last, uint64_t limit)
{
	return now >= last && now <= limit;
}

/* The control page of region r against what memspy wrote and read before: NULL if it passes. */
static const char *check_ctl(const struct ms_probes *pr, const struct region *rg,
			     const uint64_t *ctl, uint64_t now_ns)
{
	const uint8_t *b = CTL_BYTES(ctl);
	uint64_t lim = max_calls(pr, now_ns);
	uint64_t head = CTL(ctl, MS_CTRL_RING_HEAD), fhead = CTL(ctl, MS_CTRL_FREE_HEAD),
		 draw = CTL(ctl, MS_CTRL_DRAW_IDX), drops = CTL(ctl, MS_CTRL_DROPS),
		 fdrops = CTL(ctl, MS_CTRL_FREE_DROPS), nothread = CTL(ctl, MS_CTRL_NOTHREAD),
		 tabfull = CTL(ctl, MS_CTRL_TABFULL);

	if (CTL(ctl, MS_CTRL_MAGIC) != MS_RING_MAGIC ||
	    CTL(ctl, MS_CTRL_TAG) != (pr->nonce ^ rg->base))
		return "the layout signature was overwritten";
	if (b[MS_CTRL_ARMED] != pr->armed || memcmp(b + 1, rg->ctl + 1, sizeof(rg->ctl) - 1) ||
	    memcmp(b + MS_CTRL_RELAY, rg->relay, sizeof(rg->relay)))
		return "the control flags were changed";
	if (!counter_ok(head, rg->head, lim) || !counter_ok(fhead, rg->fhead, lim) ||
	    !counter_ok(draw, rg->last_draw, lim) || !counter_ok(drops, rg->drops, lim) ||
	    !counter_ok(fdrops, rg->fdrops, lim) || !counter_ok(nothread, rg->nothread, lim) ||
	    !counter_ok(tabfull, rg->tabfull, lim))
		return "a counter went backwards or grew faster than calls can happen";
	/*
	 * What the stub does in order: a draw for every sampled call, then a
	 * ticket or a no-thread loss; a drop or a full table per ticket. The
	 * counters are read in one copy but not at one instant: calls in
	 * flight during the copy get a margin.
	 */
	if (drops > head || tabfull > head || fdrops > fhead ||
	    head + nothread > draw + 4 * MS_STUB_NTHR)
		return "the counters disagree with each other";
	return NULL;
}

/* The bytes a sample asked for, from its stub's kind (calloc: the product, wrapping like the stub's). */
static uint64_t size_of(const uint8_t *h, unsigned kind)
{
	switch (kind) {
	case MS_SK_CALLOC:
		return rd64(h, MS_H_RDI) * rd64(h, MS_H_RSI);
	case MS_SK_REALLOC:
	case MS_SK_RSI:
		return rd64(h, MS_H_RSI);
	case MS_SK_PMEMALIGN:
		return rd64(h, MS_H_RDX);
	default:
		return rd64(h, MS_H_RDI);
	}
}

/*
 * A published sample header (index i, read by a drain whose window of
 * tickets was [from, to)) against what the stub writes: NULL if it passes.
 */
static const char *check_sample(const struct ms_probes *pr, size_t r, const uint8_t *h, int i,
				uint64_t from, uint64_t to, uint64_t tsc_hi)
{
	uint64_t sw = rd64(h, MS_H_SLOT), seq = rd64(h, MS_H_SEQ), sp = rd64(h, MS_H_SP),
		 len = rd64(h, MS_H_LEN), t0 = rd64(h, MS_H_TSC0), t1 = rd64(h, MS_H_TSC1),
		 want = 0;
	unsigned slot = (unsigned)(sw & 0xff), kind = (unsigned)(sw >> 8);
	const struct thr *t;

	if ((seq & (MS_STUB_NHDR - 1)) != (uint64_t)i || seq < from || seq >= to)
		return "a sample's sequence number is not one of the drain's tickets";
	if (slot >= MS_STUB_NSLOTS || !site_for(pr, r, (int)slot) ||
	    kind != ms_stub_desc[slot].kind || kind == MS_SK_FREE)
		return "a sample names a stub that does not sample";
	t = thr_of(pr, rd64(h, MS_H_TP));
	if (!t)
		return "a sample's thread is not one memspy entered";
	if (sp >= t->lo && sp < t->hi)
		want = MS_MIN(t->hi - sp, (uint64_t)MS_STUB_DATA_SIZE);
	if (len != want || (sp & 7))
		return "a sample's stack does not match its thread's";
	if (rd64(h, MS_H_FLAGS) > 1)
		return "a sample's flags are not the stub's";
	/* No block outlives the user address space (47 bits on x86-64). */
	if (rd64(h, MS_H_RES) >> 47 || (rd64(h, MS_H_RES) && size_of(h, kind) >> 47))
		return "a sample's block is larger than the address space";
	/* t0 and t1 may come from two CPUs (the thread moved): both get the slack. */
	if (t0 + TSC_SLACK < pr->tsc0 || t1 + TSC_SLACK < t0 || t1 > tsc_hi + TSC_SLACK ||
	    rd64(h, MS_H_CALL) > (t1 > t0 ? t1 - t0 : 0) + TSC_SLACK)
		return "a sample's timestamps are out of order or outside the recording";
	return NULL;
}

/* A freed-ring entry {ptr, slot << 56 | tsc}: NULL if it passes. */
static const char *check_free(const struct ms_probes *pr, size_t r, uint64_t stamp,
			      uint64_t tsc_hi)
{
	unsigned slot = (unsigned)(stamp >> 56);
	uint64_t since = ((stamp & TSC_MASK) - pr->tsc0) & TSC_MASK; /* wraps with the mask */

	if (slot >= MS_STUB_NSLOTS || !site_for(pr, r, (int)slot) ||
	    (ms_stub_desc[slot].kind != MS_SK_FREE && ms_stub_desc[slot].kind != MS_SK_REALLOC))
		return "a free names a stub that does not free";
	if (since > tsc_hi - pr->tsc0 + TSC_SLACK && since < TSC_MASK - TSC_SLACK)
		return "a free's timestamp is outside the recording";
	return NULL;
}

/* A slot or entry that failed: dropped, counted; too many and the ring is not memspy's. */
static void discard(struct ms_probes *pr, size_t r, const char *why)
{
	pr->rg[r].discarded++;
	pr->st.discarded++;
	ms_debug("probe: region %zu: dropped a ring entry: %s", r, why);
	if (pr->rg[r].discarded >= MAX_BAD_SLOTS)
		tamper(pr, r, why);
}

/*
 * What the stubs could not hand over, from a reading of the counters (one
 * that passed check_ctl: they only grew). A full ring or an unknown thread
 * loses the sample (or free) rather than stop the thread: see "Why ring
 * mode never traps" in doc/INTERNALS.md.
 */
static void account_losses(struct ms_probes *pr, struct region *rg, const uint64_t *ctl)
{
	uint64_t drops = CTL(ctl, MS_CTRL_DROPS), fdrops = CTL(ctl, MS_CTRL_FREE_DROPS),
		 nothread = CTL(ctl, MS_CTRL_NOTHREAD), tabfull = CTL(ctl, MS_CTRL_TABFULL);

	pr->st.ring_full += (drops - rg->drops) + (fdrops - rg->fdrops);
	pr->st.lost_samples += (drops - rg->drops) + (nothread - rg->nothread);
	pr->st.lost_frees += fdrops - rg->fdrops;
	pr->st.lost_nothread += nothread - rg->nothread;
	rg->drops = drops;
	rg->fdrops = fdrops;
	rg->nothread = nothread;
	pr->st.dropped += tabfull - rg->tabfull;
	rg->tabfull = tabfull;
	rg->head = CTL(ctl, MS_CTRL_RING_HEAD);
	rg->fhead = CTL(ctl, MS_CTRL_FREE_HEAD);
}

/* Drains one region's rings: published samples and frees, in the order they happened. */
static int drain_region(struct ms_probes *pr, size_t r, ms_alloc_event_cb cb, void *ctx)
{
	struct region *rg = &pr->rg[r];
	uint64_t ctl[CTL_WORDS], ctl2[CTL_WORDS];
	uint64_t head, fhead, now, tsc_hi;
	double ns_per_tick, scale;
	struct iovec liov[MS_STUB_NHDR + 1], riov[MS_STUB_NHDR + 1], friov[512];
	struct pending_ev *ev;
	size_t nev = 0, nrd = 0, want = 0, taken = 0, ftaken = 0;
	unsigned nw;
	ssize_t n;
	int nfree_done = 0;
	bool second_ok;
	const char *why;
	static const uint64_t zeros[MS_STUB_NFRING];

	if (rg->tampered)
		return 0;
	liov[0] = (struct iovec){ctl, sizeof(ctl)};
	riov[0] = (struct iovec){(void *)(uintptr_t)rg_ctrl(rg, CTL_FIRST), sizeof(ctl)};
	n = ring_readv(pr, liov, 1, riov, 1);
	if (n != (ssize_t)sizeof(ctl)) {
		if (n < 0 && errno == ESRCH)
			return -ESRCH;
		/* The process lives (record checks) but its control page cannot be read. */
		tamper(pr, r, "its pages were unmapped or made unreadable");
		return 0;
	}
	if ((why = check_ctl(pr, rg, ctl, ms_now_ns()))) {
		tamper(pr, r, why);
		return 0;
	}
	head = CTL(ctl, MS_CTRL_RING_HEAD);
	fhead = CTL(ctl, MS_CTRL_FREE_HEAD);
	if (CTL(ctl, MS_CTRL_DRAW_IDX) != rg->last_draw) {
		refill_draws(pr, rg, rg->last_draw, CTL(ctl, MS_CTRL_DRAW_IDX));
		rg->last_draw = CTL(ctl, MS_CTRL_DRAW_IDX);
	}
	account_losses(pr, rg, ctl);
	if (head == rg->scan_from && fhead == rg->fscan_from)
		return 0;

	if (!pr->pev)
		pr->pev = ms_xmalloc((MS_STUB_NHDR + MS_STUB_NFRING) * sizeof(*pr->pev));
	ev = pr->pev;
	/*
	 * Frees first: a free can only follow the publication of its sample, so
	 * every free read here has its sample in the headers read next (or in
	 * an earlier drain). The other order loses frees of fresh samples.
	 */
	if (fhead != rg->fscan_from) {
		nw = ring_window(rg->fscan_from, fhead, MS_STUB_NFRING, 16,
				 rg->base + MS_STUB_FRING_OFF, pr->fring, liov, riov);
		for (unsigned k = 0; k < nw; k++)
			want += liov[k].iov_len;
		n = ring_readv(pr, liov, nw, riov, nw);
		if (n != (ssize_t)want)
			nw = 0; /* read again at the next drain: the window stays */
		for (unsigned k = 0; k < nw; k++) {
			int i0 = (int)(((uint8_t *)liov[k].iov_base - (uint8_t *)pr->fring) / 16);
			int i1 = i0 + (int)(liov[k].iov_len / 16);

			for (int i = i0; i < i1; i++) {
				uint64_t p = pr->fring[2 * i];

				if (p <= 1)
					continue;
				/* Taken either way: the ledger counts the ticket, the slot goes back. */
				why = check_free(pr, r, pr->fring[2 * i + 1], tsc_now());
				if (why)
					discard(pr, r, why);
				else
					ev[nev++] = (struct pending_ev){
					    .key = pr->fring[2 * i + 1] & TSC_MASK,
					    .hdr = -1,
					    .ptr = p,
					    .slot = (int)(pr->fring[2 * i + 1] >> 56)};
				ftaken++;
				/* Give the slot back (ptr = 0), batched. */
				friov[nfree_done].iov_base = (void *)(uintptr_t)(
				    rg->base + MS_STUB_FRING_OFF + (ms_raddr_t)i * 16);
				friov[nfree_done].iov_len = 8;
				if (++nfree_done == MS_ARRAY_SIZE(friov)) {
					struct iovec z = {(void *)zeros, 8 * (size_t)nfree_done};

					ring_writev(pr, &z, 1, friov, (size_t)nfree_done);
					nfree_done = 0;
				}
			}
		}
	}
	if (head != rg->scan_from) {
		nw = ring_window(rg->scan_from, head, MS_STUB_NHDR, MS_STUB_HDR_SIZE,
				 rg->base + MS_STUB_HDR_OFF, pr->hdrs, liov, riov);
		want = 0;
		for (unsigned k = 0; k < nw; k++)
			want += liov[k].iov_len;
		n = ring_readv(pr, liov, nw, riov, nw);
		/* The frees read stay in the ring (not given back): the next drain has them. */
		if (n != (ssize_t)want)
			return n < 0 ? -errno : -EIO;
		{
			struct iovec hl[2];

			memcpy(hl, liov, nw * sizeof(*hl));
			for (unsigned k = 0; k < nw; k++) {
				int i0 = (int)(((uint8_t *)hl[k].iov_base - pr->hdrs) /
					       MS_STUB_HDR_SIZE);
				int i1 = i0 + (int)(hl[k].iov_len / MS_STUB_HDR_SIZE);

				for (int i = i0; i < i1; i++) {
					const uint8_t *h = pr->hdrs + (size_t)i * MS_STUB_HDR_SIZE;
					uint64_t len = MS_MIN(rd64(h, MS_H_LEN),
							      (uint64_t)MS_STUB_DATA_SIZE);

					if (rd64(h, MS_H_STATE) != 2)
						continue;
					ev[nev++] = (struct pending_ev){
					    .key = rd64(h, MS_H_TSC1) & TSC_MASK, .hdr = i};
					taken++;
					if (len) {
						liov[nrd].iov_base =
						    pr->data + (size_t)i * MS_STUB_DATA_SIZE;
						liov[nrd].iov_len = len;
						riov[nrd].iov_base = (void *)(uintptr_t)(
						    rg->base + MS_STUB_DATA_OFF +
						    (ms_raddr_t)i * MS_STUB_DATA_SIZE);
						riov[nrd].iov_len = len;
						nrd++;
					}
				}
			}
		}
	}
	/*
	 * The counters again, after the slots (the same call as the stack
	 * copies, its last range): every ticket below these heads was claimed
	 * before the slots were read, which is what the ledger needs.
	 */
	liov[nrd].iov_base = ctl2;
	liov[nrd].iov_len = sizeof(ctl2);
	riov[nrd].iov_base = (void *)(uintptr_t)rg_ctrl(rg, CTL_FIRST);
	riov[nrd].iov_len = sizeof(ctl2);
	want = 0;
	for (size_t k = 0; k <= nrd; k++)
		want += liov[k].iov_len;
	n = ring_readv(pr, liov, nrd + 1, riov, nrd + 1);
	tsc_hi = tsc_now();
	second_ok = n == (ssize_t)want;
	if (!second_ok) {
		if (nrd)
			ms_debug("probe: reading %zu ring stack copies: %s", nrd,
				 n < 0 ? strerror(errno) : "short read");
		/* Without the second reading the window cannot move on. */
		memcpy(ctl2, ctl, sizeof(ctl2));
	} else if ((why = check_ctl(pr, rg, ctl2, ms_now_ns()))) {
		tamper(pr, r, why);
		return 0;
	}
	/*
	 * Each published header against what the stub writes, its ticket
	 * within the window the two readings bound. A slot that fails is given
	 * back like the others (the ring must keep moving) but not believed.
	 */
	for (size_t k = 0; k < nev; k++) {
		if (ev[k].hdr < 0)
			continue;
		why = check_sample(pr, r, pr->hdrs + (size_t)ev[k].hdr * MS_STUB_HDR_SIZE,
				   ev[k].hdr, rg->scan_from, CTL(ctl2, MS_CTRL_RING_HEAD), tsc_hi);
		if (why) {
			discard(pr, r, why);
			ev[k].slot = -2; /* given back, not emitted */
		}
	}
	if (rg->tampered)
		return 0; /* too many bad slots: nothing of this drain is believed either */

	if (nfree_done) {
		struct iovec z = {(void *)zeros, 8 * (size_t)nfree_done};

		ring_writev(pr, &z, 1, friov, (size_t)nfree_done);
	}
	/*
	 * Return the consumed headers (state = 0) in one call, before the events
	 * go out: the headers and stacks were copied, and the callback (record
	 * unwinds each sample there) can take long enough for the stubs to fill
	 * the ring again meanwhile rather than lose every sample.
	 */
	nrd = 0;
	for (size_t k = 0; k < nev; k++) {
		if (ev[k].hdr < 0)
			continue;
		riov[nrd].iov_base = (void *)(uintptr_t)(rg->base + MS_STUB_HDR_OFF +
							 (ms_raddr_t)ev[k].hdr * MS_STUB_HDR_SIZE);
		riov[nrd].iov_len = 8;
		nrd++;
	}
	if (nrd) {
		liov[0].iov_base = (void *)zeros;
		liov[0].iov_len = nrd * 8;
		ring_writev(pr, liov, 1, riov, nrd);
	}
	qsort(ev, nev, sizeof(*ev), cmp_pending);
	/* Unread, the second reading is the first: no losses to make up for from it. */
	scale = second_ok ? lost_weight(rg, taken, CTL(ctl2, MS_CTRL_DROPS)) : 1.0;
	if (second_ok)
		account_losses(pr, rg, ctl2);
	now = ms_now_ns();
	ns_per_tick = nev ? (double)tsc_to_ns(pr, 1000000000ull) / 1e9 : 0;
	for (size_t k = 0; k < nev; k++) {
		if (ev[k].hdr >= 0) {
			if (ev[k].slot != -2)
				emit_ring_sample(pr, r, ev[k].hdr, cb, ctx, now, ns_per_tick,
						 scale);
		} else {
			const struct site *fs = site_for(pr, r, ev[k].slot);
			struct ms_alloc_event fe;

			memset(&fe, 0, sizeof(fe));
			fe.type = MS_AE_FREE;
			fe.fn = fs ? fs->fn : MS_FN_FREE;
			fe.ptr = ev[k].ptr;
			fe.time_ns = now;
			pr->st.frees++;
			if (cb)
				cb(&fe, ctx);
		}
	}
	rg->taken += taken;
	rg->ftaken += ftaken;
	if (second_ok) {
		settle_window(&rg->scan_from, &rg->taken, CTL(ctl2, MS_CTRL_RING_HEAD),
			      CTL(ctl2, MS_CTRL_DROPS));
		settle_window(&rg->fscan_from, &rg->ftaken, CTL(ctl2, MS_CTRL_FREE_HEAD),
			      CTL(ctl2, MS_CTRL_FREE_DROPS));
	}
	return 0;
}
static int drain_all(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx)
{
	uint64_t t0 = ms_now_ns(), before = pr->st.samples + pr->st.frees;
	int rc = 0;

	if (!pr->ring)
		return 0;
	for (size_t r = 0; r < pr->nrg; r++) {
		int e = drain_region(pr, r, cb, ctx);

		if (e && !rc)
			rc = e;
	}
	if (pr->st.samples + pr->st.frees != before) {
		pr->n_drains++;
		pr->drain_ns += ms_now_ns() - t0;
		pr->drained += pr->st.samples + pr->st.frees - before;
	}
	return rc;
}

/* ------------------------------ install ------------------------------ */

/* The plan and the text sweep: everything that needs no stop. */
static void plan_all(struct ms_probes *pr, const struct ms_modules *mods)
{
	plan_sites(pr, mods);
	plan_cxx(pr, mods);
	check_sites(pr);
	sweep_sites(pr, mods, ms_proc_maps(pr->p));
}

static int install(struct ms_proc *p, const struct ms_modules *mods,
		   const struct ms_probe_opts *opts, struct ms_probes **out, struct ms_error *err,
		   bool *nothing_planned);

int ms_probes_install(struct ms_proc *p, const struct ms_modules *mods,
		      const struct ms_probe_opts *opts, struct ms_probes **out,
		      struct ms_error *err)
{
	struct ms_modules fresh;
	int rc = -MS_E_NOT_FOUND;

	/*
	 * A partial snapshot (/proc/PID/maps read while the target was changing
	 * its mappings can miss one) must not turn into "nothing to probe":
	 * with nothing planned, the maps (with every thread stopped) and the
	 * module table are read again, a few times, before giving up.
	 */
	for (int tries = 0; tries < 4; tries++) {
		const struct ms_modules *use = mods;

		memset(&fresh, 0, sizeof(fresh));
		if (tries) {
			/* With every thread stopped: a verdict must not rest on a racing read. */
			int e = ms_proc_refresh_maps_stopped(p, NULL);

			if (!e)
				e = ms_modules_load(ms_proc_pid(p), ms_proc_maps(p), &fresh);
			ms_debug("probe: nothing to probe with %zu modules; read again: %zu "
				 "mappings, %zu modules (%s)",
				 mods->n, ms_proc_maps(p)->n, fresh.n,
				 e ? ms_strerror(e) : "ok");
			if (e) {
				ms_modules_free(&fresh);
				continue;
			}
			use = &fresh;
		}
		bool nothing = false;

		rc = install(p, use, opts, out, err, &nothing);
		ms_modules_free(&fresh);
		/* Only a refusal in the plan (nothing stopped, nothing changed) is retried. */
		if (!nothing || ms_proc_exited(p, NULL))
			break;
	}
	return rc;
}

static int install(struct ms_proc *p, const struct ms_modules *mods,
		   const struct ms_probe_opts *opts, struct ms_probes **out, struct ms_error *err,
		   bool *nothing_planned)
{
	struct ms_probes *pr = ms_xcalloc(1, sizeof(*pr));
	uint64_t t0;
	int rc;

	*out = NULL;
	pr->p = p;
	pr->pid = ms_proc_pid(p);
	pr->opts = *opts;
	pr->exact = opts->sample_bytes == 0;
	pr->wd_fd = -1;
	if (!pr->opts.stack_bytes)
		pr->opts.stack_bytes = DEFAULT_STACK_BYTES;
	pr->rng = opts->seed ? opts->seed : ms_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!pr->rng)
		pr->rng = 0x9E3779B97F4A7C15ull;
	pr->buf_len = pr->opts.stack_bytes + 64;
	pr->buf = ms_xmalloc(pr->buf_len);
	pr->ring = !pr->exact && !opts->stop_per_sample;
	if (pr->ring) {
		pr->hdrs = ms_xmalloc((size_t)MS_STUB_NHDR * MS_STUB_HDR_SIZE);
		pr->data = ms_xmalloc((size_t)MS_STUB_NHDR * MS_STUB_DATA_SIZE);
		pr->fring = ms_xmalloc((size_t)MS_STUB_NFRING * 16);
		pr->tsc0 = tsc_now();
		pr->ns0 = ms_now_ns();
	}
	pr->ncpu = (unsigned)MS_MAX(1L, sysconf(_SC_NPROCESSORS_CONF));

	/* What a memspy that was killed left goes first: the plan reads the entries' bytes. */
	rc = reclaim_leftovers(pr, err);
	if (rc) {
		ms_probes_free(pr);
		return rc;
	}
	/* Everything that needs no stop comes first: the plan and the text sweep. */
	plan_all(pr, mods);
	if (!pr->ns) {
		ms_error_set(err, -MS_E_NOT_FOUND,
			     "probe: no allocator entry point of process %d can be probed (%zu "
			     "modules in %zu mappings)",
			     (int)pr->pid, mods->n, ms_proc_maps(p)->n);
		ms_error_hint(err, "is it linked against glibc? statically linked programs and "
				   "other allocators need --probe SYMBOL");
		report_skips(pr, false);
		ms_probes_free(pr);
		*nothing_planned = true;
		return -MS_E_NOT_FOUND;
	}

	pr->nonce = rng_next(pr) | 1;
	rc = ms_probe_watchdog_start(pr->pid, pr->nonce, &pr->wd_fd);
	if (rc)
		ms_warn("probe: no watchdog (%s): if memspy dies, the stubs stay armed (the target "
			"survives: an untraced trap runs the stubs' `ret` SIGTRAP handler)",
			ms_strerror(rc));
	/* Finding libc's `syscall` instruction reads its text: do it while the target runs. */
	ms_remote_prepare(p);
	rc = ms_proc_stop_all(p);
	if (rc) {
		ms_error_set(err, rc, "probe: stopping the threads of process %d: %s", (int)pr->pid,
			     ms_strerror(rc));
		ms_probes_free(pr);
		return rc;
	}
	t0 = ms_now_ns();
	rc = check_sigtrap(pr, err);
	if (!rc)
		rc = check_sigtrap_blocked(pr, err);
	if (rc)
		goto fail;

	/* One region per group of modules within rel32 reach. */
	for (size_t i = 0; i < pr->ns; i++) {
		struct site *s = &pr->s[i];
		const struct ms_module *m = &mods->v[s->mod];
		int kind = fn_kind(s->fn);

		s->slot = -1;
		for (size_t r = 0; r < pr->nrg && s->slot < 0; r++) {
			if (!in_reach(pr->rg[r].base, m))
				continue;
			s->slot = take_slot(&pr->rg[r], kind);
			s->region = r;
		}
		if (s->slot >= 0)
			continue;
		rc = map_region(pr, m, err);
		if (rc) {
			if (!pr->nrg)
				goto fail;
			skip_site(pr, s, "%s", err ? err->msg : "probe: no region");
			continue;
		}
		s->region = pr->nrg - 1;
		s->slot = take_slot(&pr->rg[s->region], kind);
		if (s->slot < 0)
			skip_site(pr, s, "no free stub slot");
	}
	rc = build_regions(pr, err);
	if (rc)
		goto fail;
	/* Every thread is stopped: none is born between these two. */
	ms_proc_set_thread_hook(p, on_new_thread, pr);
	register_all_threads(pr);

	{
		struct ms_ksigaction before = sigtrap_action_now(pr->pid), got;

		rc = write_manifests(pr, &before);
		if (rc) {
			ms_error_set(err, rc, "probe: writing the stub manifest in process %d: %s",
				     (int)pr->pid, ms_strerror(rc));
			goto fail;
		}
		for (size_t r = 0; r < pr->nrg; r++)
			ms_probe_watchdog_add(pr->wd_fd, pr->rg[r].base);
		rc = install_sigtrap(pr, err);
		if (rc)
			goto fail;
		/* The exact action the kernel returned (flags, mask), for the manifest too. */
		pr->sigact_old = before;
		if (ms_mem_read_pid(pr->pid, rg_ctrl(&pr->rg[0], MS_CTRL_SIGACT_OLD), &got,
				    sizeof(got)) == (ssize_t)sizeof(got) &&
		    memcmp(&got, &before, sizeof(got))) {
			write_manifests(pr, &got);
			pr->sigact_old = got;
		}
	}
	rc = patch_sites(pr);
	if (rc) {
		ms_error_set(err, rc,
			     "probe: no allocator entry point of process %d could be patched",
			     (int)pr->pid);
		goto fail;
	}
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].patched)
			pr->st.n_installed++;
	pr->st.attach_pause_ns = ms_now_ns() - t0;
	ms_proc_resume_all(p);
	report_skips(pr, true);
	/*
	 * The stubs pass every call straight through until armed. Touch the
	 * ring's pages first, from memspy, with the target running: left to the
	 * stubs, each first sample into a slot paid four page faults (hundreds
	 * of microseconds on this VM) inside the target's malloc.
	 */
	prefault_ring(pr);
	rc = set_armed(pr, true);
	if (rc) {
		struct ms_error e2;

		ms_error_set(err, rc, "probe: arming the probes of process %d: %s",
			     (int)pr->pid, ms_strerror(rc));
		ms_probes_remove(pr, NULL, NULL, &e2);
		ms_probes_free(pr);
		return rc;
	}
	*out = pr;
	return 0;
fail : {
	struct ms_error e2;

	bool any = false;

	report_skips(pr, false);
	/* Undo whatever was done, with the threads still stopped. */
	for (size_t i = 0; i < pr->ns; i++)
		any |= pr->s[i].patched;
	ms_probes_remove(pr, NULL, NULL, &e2);
	/* Nothing ever jumped into the regions: they can go. */
	for (size_t r = pr->nrg; r-- > 0 && !any && !pr->sigact_installed;) {
		long ret;

		/* Not through a trampoline in the pages being unmapped. */
		rsyscall_via(pr, r > 0, SYS_munmap, (long)pr->rg[r].base, MS_STUB_REGION_SIZE, 0,
			     0, 0, 0, &ret);
	}
	ms_proc_resume_all(p);
	ms_probes_free(pr);
}
	return rc;
}

/* ------------------------------ traps ------------------------------ */

static const struct site *site_for(const struct ms_probes *pr, size_t region, int slot)
{
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].region == region && pr->s[i].slot == slot)
			return &pr->s[i];
	return NULL;
}

/* The region and slot whose int3 is at addr; false if none. */
static bool find_trap(const struct ms_probes *pr, ms_raddr_t addr, size_t *region, int *slot)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		ms_raddr_t b = pr->rg[r].base;

		if (addr < b || addr >= b + MS_STUB_CODE_SIZE)
			continue;
		*region = r;
		*slot = -1;
		for (int i = 0; i < MS_STUB_NSLOTS; i++)
			if (b + ms_stub_desc[i].trap == addr)
				*slot = i;
		return true;
	}
	return false;
}

/*
 * Is this allocation made inside another probed call that is being sampled
 * (glibc's memalign family calls malloc for small alignments; tcmalloc's
 * valloc does too)? The outer stub's return address then sits on the copied
 * stack. The outer call is reported: the inner one would count twice.
 */
static bool nested_call(const struct ms_probes *pr, const uint8_t *stack, size_t len)
{
	ms_raddr_t lo = UINT64_MAX, hi = 0;
	size_t off = 0;

	/*
	 * Most stack words are nowhere near a stub: one range check over a
	 * block of words (branch-free, so the compiler vectorises it) skips
	 * the blocks that hold none.
	 */
	for (size_t r = 0; r < pr->nrg; r++) {
		lo = MS_MIN(lo, pr->rg[r].base);
		hi = MS_MAX(hi, pr->rg[r].base + MS_STUB_CODE_SIZE);
	}
	if (lo >= hi)
		return false;
	for (; off + 8 <= len; off += 8) {
		uint64_t w;

		if (off % 128 == 0 && off + 128 <= len) {
			uint64_t blk[16];
			int any = 0;

			memcpy(blk, stack + off, sizeof(blk));
			for (int k = 0; k < 16; k++)
				any |= blk[k] - lo < hi - lo;
			if (!any) {
				off += 120;
				continue;
			}
		}
		memcpy(&w, stack + off, 8);
		if (w < lo || w >= hi)
			continue;
		for (size_t r = 0; r < pr->nrg; r++) {
			ms_raddr_t b = pr->rg[r].base;
			int slot = -1;
			const struct site *s;

			if (w < b || w >= b + MS_STUB_CODE_SIZE)
				continue;
			if (w == b + ms_stub_ring_ret && off + 16 <= len) {
				uint64_t sw;

				/* The ring routine's slot word sits just above its return address.
				 */
				memcpy(&sw, stack + off + 8, 8);
				slot = (int)(sw & 0xff);
			}
			for (int k = 0; k < MS_STUB_NSLOTS && slot < 0; k++)
				if (ms_stub_desc[k].kind != MS_SK_FREE &&
				    w == b + ms_stub_desc[k].ret)
					slot = k;
			/*
			 * A --probe wrapper around malloc returns its own pointer: both
			 * are reported, as the user asked. The malloc family is not.
			 */
			s = slot >= 0 && slot < MS_STUB_NSLOTS ? site_for(pr, r, slot) : NULL;
			if (s && s->fn != MS_FN_CUSTOM)
				return true;
		}
	}
	return false;
}

/* The stack mapping's end above sp (to clamp the copy), or sp + want. */
static size_t stack_room(struct ms_probes *pr, ms_raddr_t sp, size_t want)
{
	const struct ms_map *m = ms_maps_find(ms_proc_maps(pr->p), sp);

	if (!m) {
		ms_proc_refresh_maps(pr->p);
		m = ms_maps_find(ms_proc_maps(pr->p), sp);
	}
	if (!m)
		return want;
	return (size_t)MS_MIN((uint64_t)want, m->end - sp);
}

static void refill(struct ms_probes *pr, const struct region *rg, ms_raddr_t entry_sp)
{
	int64_t v;

	if (pr->exact)
		return;
	v = draw_countdown(pr);
	write_remote(pr, rg->base + MS_STUB_CNT_OFF + ((entry_sp >> 23) & 63) * 64, &v, sizeof(v));
}

/* Emits the events of one trap. The thread stays stopped. */
static void on_trap(struct ms_probes *pr, pid_t tid, const struct user_regs_struct *regs,
		    size_t region, int slot, ms_alloc_event_cb cb, void *ctx)
{
	const struct site *s = site_for(pr, region, slot);
	int kind = (int)ms_stub_desc[slot].kind;
	struct ms_alloc_event ev;
	size_t frame = kind == MS_SK_PMEMALIGN ? 32 : 24, len;
	uint64_t w[4], flags, size;
	ms_raddr_t entry_sp;
	ssize_t n;

	if (pr->ring) {
		/*
		 * Ring mode has no reachable int3: only control bytes the target
		 * changed lead here. Its frame is not the stub's either.
		 */
		tamper(pr, region, "a stub trapped in ring mode: the control flags were changed");
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.fn = s ? s->fn : MS_FN_CUSTOM;
	ev.tid = tid;
	ev.time_ns = ms_now_ns();
	if (kind == MS_SK_FREE) {
		ev.type = MS_AE_FREE;
		ev.ptr = regs->rdi;
		pr->st.frees++;
		if (cb)
			cb(&ev, ctx);
		return;
	}
	/* Trap frame {size, aux, flags} (posix_memalign: {rc, size, memptr, flags}), then the
	 * stack. */
	entry_sp = regs->rsp + frame;
	len = frame + stack_room(pr, entry_sp, pr->opts.stack_bytes);
	n = ms_mem_read_pid(pr->pid, regs->rsp, pr->buf, len);
	if (n < (ssize_t)frame) {
		pr->st.dropped++;
		return;
	}
	memcpy(w, pr->buf + (kind == MS_SK_PMEMALIGN ? 8 : 0), sizeof(uint64_t) * 3);
	size = w[0];
	flags = w[2];
	if (kind == MS_SK_REALLOC && (flags & 1) && !(regs->rax == 0 && size != 0)) {
		ev.type = MS_AE_FREE;
		ev.ptr = w[1];
		pr->st.frees++;
		if (cb)
			cb(&ev, ctx);
	}
	if (!(flags & 2))
		return;
	refill(pr, &pr->rg[region], entry_sp);
	if (nested_call(pr, pr->buf + frame, (size_t)n - frame)) {
		pr->nested++;
		return;
	}
	ev.type = MS_AE_ALLOC;
	ev.size = size;
	ev.weight = sample_weight(pr, size, pr->opts.sample_bytes);
	ev.ptr = regs->rax;
	ev.regs = *regs;
	ev.regs.rip = s ? s->entry : regs->rip;
	ev.regs.rsp = entry_sp;
	ev.stack = pr->buf + frame;
	ev.stack_len = (size_t)n - frame;
	pr->st.samples++;
	if (cb)
		cb(&ev, ctx);
}

/* Restores the original entry bytes in a forked child (its own copy of the text). */
static void restore_child(struct ms_probes *pr, pid_t child)
{
	char path[64];
	int fd;

	/* A vfork/CLONE_VM child shares our text: leave it (the handler covers a stray trap). */
	if (syscall(SYS_kcmp, pr->pid, child, KCMP_VM_TYPE, 0, 0) == 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	for (size_t i = 0; i < pr->ns; i++) {
		const struct site *s = &pr->s[i];

		if (s->patched && pwrite(fd, s->orig, PATCH_LEN, (off_t)s->entry) != PATCH_LEN)
			ms_warn("probe: restoring %s in forked child %d: %s", s->name, (int)child,
				strerror(errno));
	}
	close(fd);
}

int ms_probes_handle_event(struct ms_probes *pr, const struct ms_event *ev, ms_alloc_event_cb cb,
			   void *ctx)
{
	size_t region;
	int slot;
	uint64_t t0;

	if (!pr)
		return 0;
	if (ev->kind == MS_EV_FORK) {
		if (!pr->removed)
			restore_child(pr, ev->child);
		ms_proc_fork_child_detach(ev->child);
		return 1;
	}
	if (ev->kind != MS_EV_TRAP || !find_trap(pr, ev->regs.rip - 1, &region, &slot))
		return 0;
	t0 = ms_now_ns();
	if (slot >= 0)
		on_trap(pr, ev->tid, &ev->regs, region, slot, cb, ctx);
	pr->st.stops++;
	ms_proc_cont_thread(pr->p, ev->tid);
	pr->st.stopped_ns += ms_now_ns() - t0;
	return 1;
}

int ms_probes_poll(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx)
{
	int rc;

	if (!pr || pr->removed || !pr->ring)
		return pr && pr->st.tampered ? -MS_E_TAMPERED : 0;
	rc = drain_all(pr, cb, ctx);
	if (rc == -ESRCH)
		rc = 0; /* the target is gone: record sees MS_EV_EXITED */
	if (pr->st.tampered) {
		/* Disarm what is still provably memspy's now; the caller removes the probes. */
		set_armed(pr, false);
		return -MS_E_TAMPERED;
	}
	return rc;
}

/*
 * A new mean takes effect without stopping the target. Exponential
 * countdowns are memoryless, so once every countdown slot and every
 * pre-drawn value comes from the new mean, each later sample was taken at
 * the new rate and is weighted by it. Samples already in the ring are
 * drained first, under the old mean. Only a sample whose countdown fired in
 * the few microseconds between the drain and the rewrite is weighted with
 * the wrong mean.
 */
int ms_probes_set_sample_bytes(struct ms_probes *pr, uint64_t mean, ms_alloc_event_cb cb,
			       void *ctx)
{
	uint64_t old;

	if (!pr || pr->removed || pr->exact || mean == 0)
		return -EINVAL;
	if (mean == pr->opts.sample_bytes)
		return 0;
	old = pr->opts.sample_bytes;
	drain_all(pr, cb, ctx);
	pr->opts.sample_bytes = mean;
	for (size_t r = 0; r < pr->nrg; r++) {
		const struct region *rg = &pr->rg[r];

		if (!region_intact(pr, r))
			continue;
		for (int k = 0; k < MS_STUB_NCNT; k++) {
			int64_t v = draw_countdown(pr);

			write_remote(pr, rg->base + MS_STUB_CNT_OFF + (ms_raddr_t)k * 64, &v,
				     sizeof(v));
		}
		if (pr->ring)
			refill_draws(pr, rg, 0, MS_STUB_NDRAW);
	}
	/* Stamped after the rewrite: a sample stamped before it may come from an old countdown. */
	if (pr->nchanges == MS_ARRAY_SIZE(pr->changes)) {
		memmove(pr->changes, pr->changes + 1, sizeof(pr->changes) - sizeof(pr->changes[0]));
		pr->nchanges--;
	}
	pr->changes[pr->nchanges++] = (struct mean_change){.tsc = tsc_now(), .mean = old};
	restart_lost_weight(pr);
	return 0;
}

uint64_t ms_probes_sample_bytes(const struct ms_probes *pr)
{
	return pr ? pr->opts.sample_bytes : 0;
}

/* ------------------------------ removal ------------------------------ */

/* A SIGTRAP queued for tid, or for the whole process (ShdPnd). */
static bool sigtrap_pending(pid_t pid, pid_t tid)
{
	char path[96];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	return (status_mask(path, "SigPnd") | status_mask(path, "ShdPnd")) & SIGBIT(SIGTRAP);
}

/* Reads every intact region's `armed` byte back: true when all are 0. */
static bool armed_cleared(struct ms_probes *pr)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		uint8_t v = 1;

		if (!region_intact(pr, r))
			continue;
		if (ms_mem_read_pid(pr->pid, rg_ctrl(&pr->rg[r], MS_CTRL_ARMED), &v, 1) != 1 ||
		    v)
			return false;
	}
	return true;
}

/*
 * Handles events that arrived while stopping: traps are turned into events
 * and their threads stay held (tids appended to *held). Returns false when
 * the target exited.
 */
static bool drain_events(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, pid_t **held,
			 size_t *nheld, size_t *cap, int timeout_ms, pid_t want)
{
	for (;;) {
		struct ms_event ev;
		size_t region;
		int slot;

		if (ms_proc_wait(pr->p, timeout_ms, &ev))
			return false;
		switch (ev.kind) {
		case MS_EV_TRAP:
			if (find_trap(pr, ev.regs.rip - 1, &region, &slot) && slot >= 0) {
				on_trap(pr, ev.tid, &ev.regs, region, slot, cb, ctx);
				pr->st.stops++;
			}
			ms_xgrow((void **)held, cap, *nheld + 1, sizeof(**held));
			(*held)[(*nheld)++] = ev.tid;
			if (ev.tid == want)
				return true;
			break;
		case MS_EV_FORK:
			restore_child(pr, ev.child);
			ms_proc_fork_child_detach(ev.child);
			break;
		case MS_EV_EXITED:
			return false;
		case MS_EV_TIMEOUT:
		case MS_EV_STOP_REQUEST:
			return true;
		default:
			break; /* thread births and deaths: nothing patched depends on them */
		}
	}
}

/* Compares the restored bytes with the module file's own bytes. */
static int compare_with_file(struct ms_probes *pr, const struct site *s, struct ms_error *err)
{
	const struct ms_map *m = ms_maps_find(ms_proc_maps(pr->p), s->entry);
	uint8_t fb[PATCH_LEN];
	int fd;
	ssize_t n;

	if (!m || !m->path)
		return 0;
	fd = open(s->open_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* the file may be gone (upgraded); the read-back still held */
	n = pread(fd, fb, sizeof(fb), (off_t)(m->offset + (s->entry - m->start)));
	close(fd);
	if (n == (ssize_t)sizeof(fb) && memcmp(fb, s->orig, sizeof(fb)))
		return ms_error_set(err, -EIO,
				    "probe: %s at %#llx differs from its file %s after restore",
				    s->name, (unsigned long long)s->entry, s->open_path);
	return 0;
}

/*
 * Brings every thread to a stop from which resuming delivers no SIGTRAP:
 * a thread held at a trap is in a signal-delivery stop whose SIGTRAP the
 * kernel delivers if memspy dies, so it is resumed with the signal
 * suppressed (it sits after the int3, on valid code) and interrupted
 * again; a queued SIGTRAP is let through while traced and consumed the
 * same way. Repeats until a round finds nothing. 0 when settled, 1 when
 * the target exited, -EAGAIN when it did not settle, or -errno when it
 * could not be stopped again (then its threads run).
 */
static int settle_traps(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, pid_t **held,
			size_t *nheld, size_t *cap)
{
	for (int round = 0; round < 16; round++) {
		bool resumed = false;
		int rc;

		for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
			pid_t tid = ms_proc_thread(pr->p, i);
			bool is_held = false;

			for (size_t k = 0; k < *nheld; k++)
				is_held |= (*held)[k] == tid;
			if (is_held || !sigtrap_pending(pr->pid, tid))
				continue;
			ms_debug("probe: thread %d has a SIGTRAP queued: letting it trap while "
				 "traced",
				 (int)tid);
			if (ms_proc_cont_thread(pr->p, tid))
				continue;
			resumed = true;
			if (!drain_events(pr, cb, ctx, held, nheld, cap, 1000, tid))
				return 1;
		}
		if (!*nheld && !resumed)
			return 0;
		for (size_t k = 0; k < *nheld; k++)
			if (!ms_proc_cont_thread(pr->p, (*held)[k]))
				resumed = true;
		*nheld = 0;
		if (!resumed)
			return 0; /* the held threads are gone */
		rc = ms_proc_stop_all(pr->p);
		if (rc == -MS_E_TARGET_EXITED)
			return 1;
		if (rc)
			return rc;
		if (!drain_events(pr, cb, ctx, held, nheld, cap, 0, 0))
			return 1;
	}
	return -EAGAIN;
}

int ms_probes_remove(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, struct ms_error *err)
{
	pid_t *held = NULL;
	size_t nheld = 0, cap = 0;
	uint64_t t0;
	int rc = 0, ret = 0, settle = 0;
	bool was_stopped;

	if (!pr || pr->removed)
		return 0;
	pr->removed = true;
	ms_proc_set_thread_hook(pr->p, NULL, NULL);
	/* Disarm first, without a stop: from here no new sample starts. */
	set_armed(pr, false);
	if (ms_proc_exited(pr->p, NULL)) {
		ms_probe_watchdog_stop(&pr->wd_fd);
		return 0;
	}
	was_stopped = ms_proc_all_stopped(pr->p);
	if (!was_stopped) {
		rc = ms_proc_stop_all(pr->p);
		if (rc == -MS_E_TARGET_EXITED) {
			ms_probe_watchdog_stop(&pr->wd_fd);
			return 0;
		}
		if (rc) {
			ret = ms_error_set(err, rc,
					   "probe: stopping process %d to remove the probes: %s",
					   (int)pr->pid, ms_strerror(rc));
			goto out;
		}
	}
	t0 = ms_now_ns();
	if (!drain_events(pr, cb, ctx, &held, &nheld, &cap, 0, 0))
		goto gone;
	if (nheld)
		ms_debug("probe: %zu trap(s) arrived while stopping for removal", nheld);
	/* The samples the ring still holds. */
	drain_all(pr, cb, ctx);

	/*
	 * The target's SIGTRAP action comes back only once no thread can
	 * deliver a probe's SIGTRAP: were memspy to die after that, a held
	 * trap or a queued SIGTRAP would kill the target (SIG_DFL).
	 */
	settle = settle_traps(pr, cb, ctx, &held, &nheld, &cap);
	if (settle == 1)
		goto gone;
	if (settle && settle != -EAGAIN) {
		ret = ms_error_set(err, settle,
				   "probe: stopping process %d again to remove the probes: %s (the "
				   "stubs stay in place, disarmed)",
				   (int)pr->pid, ms_strerror(settle));
		goto out;
	}

	drain_all(pr, cb, ctx); /* samples finished by the threads settle_traps resumed */

	/* A thread between the armed check and its int3 would still trap: move it past. */
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);
		struct user_regs_struct regs;

		if (ms_proc_get_regs(pr->p, tid, &regs))
			continue;
		for (size_t r = 0; r < pr->nrg; r++) {
			if (!code_intact(pr, r))
				continue;
			for (int k = 0; k < MS_STUB_NSLOTS; k++) {
				ms_raddr_t g = pr->rg[r].base + ms_stub_desc[k].guard;
				ms_raddr_t t = pr->rg[r].base + ms_stub_desc[k].trap;

				if (regs.rip >= g && regs.rip <= t) {
					ms_debug(
					    "probe: thread %d at %#llx before a stub's int3: moved "
					    "past it",
					    (int)tid, (unsigned long long)regs.rip);
					regs.rip = t + 1;
					ms_proc_set_regs(pr->p, tid, &regs);
				}
			}
		}
	}

	for (size_t i = 0; i < pr->ns; i++) {
		struct site *s = &pr->s[i];

		uint8_t jmp[PATCH_LEN], now[PATCH_LEN];

		if (!s->patched)
			continue;
		site_jmp(pr, s, jmp);
		if (ms_mem_read_pid(pr->pid, s->entry, now, PATCH_LEN) != PATCH_LEN ||
		    memcmp(now, jmp, PATCH_LEN)) {
			/* Not our jmp any more: an exec, or the library was unloaded. */
			ms_warn(
			    "probe: %s at %#llx no longer holds memspy's jmp (exec or unload?): "
			    "left untouched",
			    s->name, (unsigned long long)s->entry);
			s->patched = false;
			continue;
		}
		rc = ms_proc_write_mem(pr->p, s->entry, s->orig, PATCH_LEN);
		if (rc) {
			if (!ret)
				ret = ms_error_set(err, rc,
						   "probe: restoring %s at %#llx in process %d: %s",
						   s->name, (unsigned long long)s->entry,
						   (int)pr->pid, ms_strerror(rc));
			continue;
		}
		s->patched = false;
		rc = compare_with_file(pr, s, ret ? NULL : err);
		if (rc && !ret)
			ret = rc;
	}
	/* Every trap consumed, nothing queued, no one before an int3, text restored. */
	for (size_t i = 0; i < ms_proc_nthreads(pr->p) && !settle; i++) {
		/* Read right before: a SIGTRAP still queued would be fatal under SIG_DFL. */
		if (sigtrap_pending(pr->pid, ms_proc_thread(pr->p, i))) {
			ms_debug("probe: thread %d still has a SIGTRAP queued",
				 (int)ms_proc_thread(pr->p, i));
			settle = -EAGAIN;
		}
	}
	if (settle || ret || !armed_cleared(pr)) {
		ms_warn("probe: the stub region's `ret` SIGTRAP handler stays installed in process "
			"%d: a thread may still reach a disarmed int3%s",
			(int)pr->pid, settle ? " (traps kept arriving while removing)" : "");
		rc = 0;
	} else {
		rc = restore_sigtrap(pr);
		if (!rc)
			retire_manifests(pr);
	}
	if (rc && !ret)
		ret =
		    ms_error_set(err, rc,
				 "probe: restoring the SIGTRAP action of process %d: %s (the stub "
				 "region's `ret` handler stays installed)",
				 (int)pr->pid, ms_strerror(rc));
	if (pr->ring) {
		/* The ring's 4 MiB can go now: a straggler's write just faults in a zero page. */
		for (size_t r = 0; r < pr->nrg; r++) {
			long mret;

			if (!region_intact(pr, r))
				continue;
			rsyscall(pr, SYS_madvise, (long)(pr->rg[r].base + MS_STUB_HDR_OFF),
				 MS_STUB_REGION_SIZE - MS_STUB_HDR_OFF, MADV_DONTNEED, 0, 0, 0,
				 &mret);
		}
	}
	pr->st.remove_pause_ns = ms_now_ns() - t0;
	if (pr->nested)
		ms_debug(
		    "probe: %llu allocations nested in a sampled probed call were not reported",
		    (unsigned long long)pr->nested);
	if (pr->n_drains)
		ms_debug("probe: %llu drains with events, %.1f us each, %.1f events each",
			 (unsigned long long)pr->n_drains,
			 pr->drain_ns / 1e3 / (double)pr->n_drains,
			 (double)pr->drained / (double)pr->n_drains);
	if (pr->nticks) {
		/* Median: the mean is dominated by samples whose thread was preempted. */
		for (size_t i = 1; i < pr->nticks; i++)
			for (size_t j = i; j > 0 && pr->ticks[j - 1] > pr->ticks[j]; j--) {
				uint64_t x = pr->ticks[j];

				pr->ticks[j] = pr->ticks[j - 1];
				pr->ticks[j - 1] = x;
			}
		ms_debug("probe: in-target time per ring sample: median %.2f us, min %.2f us "
			 "(%zu samples)",
			 tsc_to_ns(pr, pr->ticks[pr->nticks / 2]) / 1e3,
			 tsc_to_ns(pr, pr->ticks[0]) / 1e3, pr->nticks);
	}
	if (!was_stopped)
		ms_proc_resume_all(pr->p);
	for (size_t k = 0; k < nheld; k++)
		ms_proc_cont_thread(pr->p, held[k]);
	goto out;
gone:
	/* The target exited while we removed: nothing left to restore. */
	ret = 0;
out:
	free(held);
	ms_probe_watchdog_stop(&pr->wd_fd);
	return ret;
}

void ms_probes_stats(const struct ms_probes *pr, struct ms_probe_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pr)
		*out = pr->st;
}

bool ms_probes_in_allocator(const struct ms_probes *pr, ms_raddr_t pc)
{
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].fn != MS_FN_CUSTOM && pc >= pr->s[i].entry && pc < pr->s[i].end)
			return true;
	return false;
}

size_t ms_probes_sites(const struct ms_probes *pr, const char ***names)
{
	size_t n = 0;

	*names = NULL;
	if (!pr)
		return 0;
	free(((struct ms_probes *)pr)->names);
	((struct ms_probes *)pr)->names = ms_xcalloc(pr->ns + 1, sizeof(char *));
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].patched || (pr->removed && pr->s[i].slot >= 0))
			pr->names[n++] = pr->s[i].name;
	*names = pr->names;
	return n;
}

void ms_probes_free(struct ms_probes *pr)
{
	if (!pr)
		return;
	if (!pr->removed && !pr->io) {
		struct ms_error e;

		if (ms_probes_remove(pr, NULL, NULL, &e))
			ms_warn("%s", e.msg);
	}
	ms_probe_watchdog_stop(&pr->wd_fd);
	for (size_t i = 0; i < pr->ns; i++) {
		free(pr->s[i].name);
		free(pr->s[i].open_path);
	}
	free(pr->s);
	for (size_t i = 0; i < pr->nskips; i++) {
		free(pr->skips[i].name);
		free(pr->skips[i].why);
	}
	free(pr->skips);
	free(pr->rg);
	free(pr->names);
	free(pr->buf);
	free(pr->hdrs);
	free(pr->data);
	free(pr->fring);
	free(pr->pev);
	free(pr);
}

#ifdef MEMSPY_FUZZ_RING
static uint8_t *fuzz_hdrs, *fuzz_data;
static uint64_t *fuzz_fring;
static struct pending_ev *fuzz_pev;

void ms_probes_fuzz_free(struct ms_probes *pr)
{
	pr->hdrs = pr->data = NULL;
	pr->fring = NULL;
	pr->pev = NULL;
	ms_probes_free(pr);
}

struct ms_probes *ms_probes_fuzz_new(const struct ms_ring_io *io, ms_raddr_t base,
				     uint64_t nonce, const uint64_t (*threads)[3], size_t nthreads)
{
	static const struct {
		enum ms_alloc_fn fn;
		int slot;
	} plan[] = {{MS_FN_MALLOC, 0}, {MS_FN_CALLOC, 12}, {MS_FN_REALLOC, 14},
		    {MS_FN_POSIX_MEMALIGN, 20}, {MS_FN_FREE, 22}};
	struct ms_probes *pr = ms_xcalloc(1, sizeof(*pr));

	pr->io = io;
	pr->pid = -1;
	pr->wd_fd = -1;
	pr->ring = true;
	pr->armed = true;
	pr->nonce = nonce;
	pr->opts.sample_bytes = 512 << 10;
	pr->opts.stack_bytes = DEFAULT_STACK_BYTES;
	pr->rng = 1;
	pr->ncpu = 2;
	/* The big buffers are kept from one input to the next (fuzz_release). */
	if (!fuzz_data) {
		fuzz_hdrs = ms_xmalloc((size_t)MS_STUB_NHDR * MS_STUB_HDR_SIZE);
		fuzz_data = ms_xmalloc((size_t)MS_STUB_NHDR * MS_STUB_DATA_SIZE);
		fuzz_fring = ms_xmalloc((size_t)MS_STUB_NFRING * 16);
		fuzz_pev = ms_xmalloc((MS_STUB_NHDR + MS_STUB_NFRING) * sizeof(*pr->pev));
	}
	pr->hdrs = fuzz_hdrs;
	pr->data = fuzz_data;
	pr->fring = fuzz_fring;
	pr->pev = fuzz_pev;
	pr->tsc0 = tsc_now();
	pr->ns0 = ms_now_ns();
	pr->rg = ms_xcalloc(1, sizeof(*pr->rg));
	pr->nrg = pr->cap_rg = 1;
	pr->rg[0].base = base;
	pr->rg[0].ctl[MS_CTRL_ARMED] = 1;
	pr->rg[0].ctl[MS_CTRL_TRACK] = 1;
	pr->rg[0].ctl[MS_CTRL_RING] = 1;
	pr->s = ms_xcalloc(MS_ARRAY_SIZE(plan), sizeof(*pr->s));
	for (size_t i = 0; i < MS_ARRAY_SIZE(plan); i++) {
		struct site *st = &pr->s[pr->ns++];

		st->fn = plan[i].fn;
		st->name = ms_xasprintf("%s@fuzz", ms_alloc_fn_name(plan[i].fn));
		st->entry = 0x7f0000001000ull + 0x100 * i;
		st->end = st->entry + 0x100;
		st->slot = plan[i].slot;
		st->patched = true;
		pr->rg[0].used[plan[i].slot] = true;
	}
	for (size_t i = 0; i < nthreads && i < 8; i++) {
		struct thr *t = &pr->thr[(unsigned)((threads[i][0] >> 12) + i) & (MS_STUB_NTHR - 1)];

		*t = (struct thr){.tp = threads[i][0], .lo = threads[i][1], .hi = threads[i][2],
				  .tid = (pid_t)(1000 + i)};
	}
	pr->removed = false;
	return pr;
}
#endif
