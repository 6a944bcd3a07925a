// SPDX-License-Identifier: MIT
/*
 * The probe engine's entry points: install (plan, place, patch, arm, each
 * step in its own file), poll, the sampling rate, statistics, free; and what
 * every step shares: the sampling maths, remote system calls, the target's
 * memory as the drain sees it. The engine plans the allocator entry points,
 * injects a stub region next to each module, patches the entries with a jmp
 * while every thread is stopped, turns what the stubs record into
 * allocation/free events, and takes it all back out on every path. Design:
 * doc/DESIGN.md (record, keeping the target safe).
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

#define DEFAULT_STACK_BYTES (16u << 10)

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
	    [MS_FN_CUSTOM_FREE] = "custom free",
	};

	return (unsigned)fn < MS_FN_COUNT ? names[fn] : "?";
}

int probe_fn_kind(enum ms_alloc_fn fn)
{
	switch (fn) {
	case MS_FN_CALLOC:
		return MS_SK_CALLOC;
	case MS_FN_REALLOC:
		return MS_SK_REALLOC;
	case MS_FN_FREE:
	case MS_FN_OPERATOR_DELETE:
	case MS_FN_CUSTOM_FREE:
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
int64_t probe_draw_countdown(struct ms_probes *pr)
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
uint64_t probe_sample_weight(const struct ms_probes *pr, uint64_t size, uint64_t mean)
{
	double m = (double)mean, s = (double)size;

	if (pr->exact || size == 0)
		return size;
	return (uint64_t)(s / one_minus_exp_neg(s / m) + 0.5);
}

/* The mean in force when the stub stamped a sample at TSC tsc. */
uint64_t probe_mean_at(const struct ms_probes *pr, uint64_t tsc)
{
	for (size_t k = 0; k < pr->nchanges; k++)
		if (tsc < pr->changes[k].tsc)
			return pr->changes[k].mean;
	return pr->opts.sample_bytes;
}

/* ------------------------------ helpers ------------------------------ */

/*
 * The drain's reads and writes of the target's memory. A fuzzer
 * (tests/fuzz/fuzz_ring.c) serves them from arbitrary bytes instead. A
 * range in a region's shared part is copied from memspy's own mapping of
 * it (no system call, no page pinning); the others go through
 * process_vm_readv/writev, in the order of the ranges: the drain reads the
 * counters after the slots.
 */

/* memspy's address for [a, a + len) of the target, when a region's shared part holds it. */
static uint8_t *view_of(const struct ms_probes *pr, ms_raddr_t a, size_t len)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		const struct region *rg = &pr->rg[r];
		ms_raddr_t lo = rg->base + MS_STUB_SHARED_OFF;

		if (rg->view && a >= lo && len <= MS_STUB_SHARED_SIZE &&
		    a - lo <= MS_STUB_SHARED_SIZE - len)
			return rg->view + (a - lo);
	}
	return NULL;
}

static bool any_viewed(const struct ms_probes *pr, const struct iovec *r, size_t nr)
{
	bool any = false;

	for (size_t r0 = 0; r0 < pr->nrg && !any; r0++)
		any = pr->rg[r0].view != NULL;
	for (size_t k = 0; k < nr && any; k++)
		if (view_of(pr, (ms_raddr_t)(uintptr_t)r[k].iov_base, r[k].iov_len))
			return true;
	return false;
}

/* process_vm_readv/writev, or the fuzzer's memory when pr->io is set. */
static ssize_t plain_rw(struct ms_probes *pr, bool write, const struct iovec *l, size_t nl,
			const struct iovec *r, size_t nr)
{
	if (pr->io)
		return write ? pr->io->writev(pr->io->ctx, l, nl, r, nr)
			     : pr->io->readv(pr->io->ctx, l, nl, r, nr);
	return write ? process_vm_writev(pr->pid, l, nl, r, nr, 0)
		     : process_vm_readv(pr->pid, l, nl, r, nr, 0);
}

/*
 * process_vm_readv/writev over the two lists, each remote range that a
 * view holds copied with memcpy: the bytes moved (a short count at the
 * first failure), or -1 with errno when none moved.
 */
static ssize_t viewed_rw(struct ms_probes *pr, bool write, const struct iovec *l, size_t nl,
			 const struct iovec *r, size_t nr)
{
	size_t li = 0, loff = 0, done = 0;

	if (!write)
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	else
		__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t ri = 0; ri < nr; ri++) {
		ms_raddr_t ra = (ms_raddr_t)(uintptr_t)r[ri].iov_base;
		size_t rlen = r[ri].iov_len;
		uint8_t *v = view_of(pr, ra, rlen);

		while (rlen) {
			size_t n;
			uint8_t *lp;

			while (li < nl && loff == l[li].iov_len) {
				li++;
				loff = 0;
			}
			if (li == nl)
				return (ssize_t)done;
			n = MS_MIN(rlen, l[li].iov_len - loff);
			lp = (uint8_t *)l[li].iov_base + loff;
			if (v) {
				if (write)
					memcpy(v, lp, n);
				else
					memcpy(lp, v, n);
				v += n;
			} else {
				struct iovec li1 = {lp, n}, ri1 = {(void *)(uintptr_t)ra, n};
				ssize_t got = plain_rw(pr, write, &li1, 1, &ri1, 1);

				if (got < 0)
					return done ? (ssize_t)done : -1;
				done += (size_t)got;
				if ((size_t)got != n)
					return (ssize_t)done;
				ra += n;
				rlen -= n;
				loff += n;
				continue;
			}
			done += n;
			ra += n;
			rlen -= n;
			loff += n;
		}
	}
	if (!write)
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return (ssize_t)done;
}

ssize_t probe_ring_readv(struct ms_probes *pr, const struct iovec *l, size_t nl,
			  const struct iovec *r, size_t nr)
{
	if (any_viewed(pr, r, nr))
		return viewed_rw(pr, false, l, nl, r, nr);
	return plain_rw(pr, false, l, nl, r, nr);
}

ssize_t probe_ring_writev(struct ms_probes *pr, const struct iovec *l, size_t nl,
			   const struct iovec *r, size_t nr)
{
	if (any_viewed(pr, r, nr))
		return viewed_rw(pr, true, l, nl, r, nr);
	return plain_rw(pr, true, l, nl, r, nr);
}

int probe_write_remote(struct ms_probes *pr, ms_raddr_t addr, const void *buf, size_t len)
{
	struct iovec l = {(void *)buf, len}, r = {(void *)(uintptr_t)addr, len};
	ssize_t n = probe_ring_writev(pr, &l, 1, &r, 1);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

ms_raddr_t probe_rg_ctrl(const struct region *rg, unsigned off)
{
	return rg->base + MS_STUB_CTRL_OFF + off;
}

const char *probe_base_name(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : (path ? path : "?");
}

/*
 * A thread of the target to run remote system calls on: one in a plain
 * stop (no signal of its own to deliver, not at a trap), the leader first.
 */
pid_t probe_any_thread(struct ms_probes *pr)
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

/* Notes that site s will not be probed (reported once, by report_skips). */
void probe_skip_site(struct ms_probes *pr, const struct site *s, const char *fmt, ...)
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
		case MS_FN_CUSTOM_FREE:
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
	pid_t tid = probe_any_thread(pr);
	ms_raddr_t tramp = 0;

	if (tid < 0)
		return -MS_E_TARGET_EXITED;
	if (tramp_ok && pr->nrg && pr->rg[0].tramp && probe_region_intact(pr, 0))
		tramp = pr->rg[0].base + ms_stub_rsys;
	else
		ms_debug("probe: remote syscall %ld through libc's `syscall` instruction", nr);
	return ms_remote_syscall_at(pr->p, tid, tramp, nr, args, ret);
}

int probe_rsyscall(struct ms_probes *pr, long nr, long a0, long a1, long a2, long a3, long a4,
		    long a5, long *ret)
{
	return rsyscall_via(pr, true, nr, a0, a1, a2, a3, a4, a5, ret);
}

/*
 * The stubs' untraced-trap safety net is a SIGTRAP handler that is just
 * `ret`: refuse when the target handles SIGTRAP itself.
 */
static int check_sigtrap(struct ms_probes *pr, struct ms_error *err)
{
	if (ms_procfs_status_mask(pr->pid, 0, "SigCgt") & SIGBIT(SIGTRAP)) {
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
	if (pr->ring)
		return 0;
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);

		uint64_t blk;

		blk = ms_procfs_status_mask(pr->pid, tid, "SigBlk");
		/*
		 * glibc's own signals (32, 33: thread cancellation and setxid)
		 * cannot be blocked through pthread_sigmask or sigprocmask; only
		 * glibc blocks them, with every other signal, for the moment of
		 * a clone() or fork() in pthread_create, posix_spawn and the
		 * like, and restores the mask right after. A thread held there
		 * (memspy stops a thread inside clone at the call's exit) is in
		 * that moment, not a thread that blocks SIGTRAP: it unblocks it
		 * as soon as it runs (Debian's python3 starting threads was
		 * refused on 5 of 5 attempts).
		 */
		if ((blk & SIGBIT(32)) && (blk & SIGBIT(33))) {
			ms_debug("probe: thread %d blocks every signal, glibc's own too: inside "
				 "clone() or fork(), for a moment", (int)tid);
			continue;
		}
		if (blk & SIGBIT(SIGTRAP)) {
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

/* ------------------------------ install ------------------------------ */

/* The plan and the text sweep: everything that needs no stop. */
static void plan_all(struct ms_probes *pr, const struct ms_modules *mods)
{
	probe_plan_sites(pr, mods);
	probe_plan_cxx(pr, mods);
	probe_check_sites(pr);
	probe_sweep_sites(pr, mods, ms_proc_maps(pr->p));
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
	pr->wd.fd = pr->wd.pid = -1;
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
		pr->tsc0 = probe_tsc_now();
		pr->ns0 = ms_now_ns();
	}
	pr->ncpu = (unsigned)MS_MAX(1L, sysconf(_SC_NPROCESSORS_CONF));

	/* What a memspy that was killed left goes first: the plan reads the entries' bytes. */
	rc = probe_reclaim_leftovers(pr, err);
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
	rc = ms_probe_watchdog_start(pr->pid, pr->nonce, &pr->wd);
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
		int kind = probe_fn_kind(s->fn);

		s->slot = -1;
		for (size_t r = 0; r < pr->nrg && s->slot < 0; r++) {
			if (!probe_in_reach(pr->rg[r].base, m))
				continue;
			s->slot = probe_take_slot(&pr->rg[r], kind);
			s->region = r;
		}
		if (s->slot >= 0)
			continue;
		rc = probe_map_region(pr, m, err);
		if (rc) {
			if (!pr->nrg)
				goto fail;
			probe_skip_site(pr, s, "%s", err ? err->msg : "probe: no region");
			continue;
		}
		s->region = pr->nrg - 1;
		s->slot = probe_take_slot(&pr->rg[s->region], kind);
		if (s->slot < 0)
			probe_skip_site(pr, s, "no free stub slot");
	}
	rc = probe_build_regions(pr, err);
	if (rc)
		goto fail;
	probe_touch_rings(pr);
	/* Every thread is stopped: none is born between these two. */
	ms_proc_set_thread_hook(p, probe_on_new_thread, pr);
	probe_register_all_threads(pr);

	{
		struct ms_ksigaction before = probe_sigtrap_action_now(pr->pid), got;

		rc = probe_write_manifests(pr, &before);
		if (rc) {
			ms_error_set(err, rc, "probe: writing the stub manifest in process %d: %s",
				     (int)pr->pid, ms_strerror(rc));
			goto fail;
		}
		for (size_t r = 0; r < pr->nrg; r++)
			ms_probe_watchdog_add(&pr->wd, pr->rg[r].base);
		rc = probe_install_sigtrap(pr, err);
		if (rc)
			goto fail;
		/* The exact action the kernel returned (flags, mask), for the manifest too. */
		pr->sigact_old = before;
		if (ms_mem_read_pid(pr->pid, probe_rg_ctrl(&pr->rg[0], MS_CTRL_SIGACT_OLD), &got,
				    sizeof(got)) == (ssize_t)sizeof(got) &&
		    memcmp(&got, &before, sizeof(got))) {
			probe_write_manifests(pr, &got);
			pr->sigact_old = got;
		}
	}
	rc = probe_patch_sites(pr);
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
	probe_prefault_ring(pr);
	rc = probe_set_armed(pr, true);
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

int ms_probes_poll(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx)
{
	int rc;

	if (!pr || pr->removed || !pr->ring)
		return pr && pr->st.tampered ? -MS_E_TAMPERED : 0;
	rc = probe_drain_quick(pr, cb, ctx);
	if (rc == -ESRCH)
		rc = 0; /* the target is gone: record sees MS_EV_EXITED */
	if (pr->st.tampered) {
		/* Disarm what is still provably memspy's now; the caller removes the probes. */
		probe_set_armed(pr, false);
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
	probe_drain_all(pr, cb, ctx);
	pr->opts.sample_bytes = mean;
	for (size_t r = 0; r < pr->nrg; r++) {
		const struct region *rg = &pr->rg[r];
		int64_t v[MS_STUB_NCNT];
		struct iovec l = {v, sizeof(v)}, rv[MS_STUB_NCNT];

		if (!probe_region_intact(pr, r))
			continue;
		/* Every countdown slot in one call (64 process_vm_writev calls before). */
		for (int k = 0; k < MS_STUB_NCNT; k++) {
			v[k] = probe_draw_countdown(pr);
			rv[k] = (struct iovec){(void *)(uintptr_t)(rg->base + MS_STUB_CNT_OFF +
								   (ms_raddr_t)k * 64),
					       sizeof(v[k])};
		}
		probe_ring_writev(pr, &l, 1, rv, MS_STUB_NCNT);
		if (pr->ring)
			probe_refill_draws(pr, rg, 0, MS_STUB_NDRAW);
	}
	/* Stamped after the rewrite: a sample stamped before it may come from an old countdown. */
	if (pr->nchanges == MS_ARRAY_SIZE(pr->changes)) {
		memmove(pr->changes, pr->changes + 1, sizeof(pr->changes) - sizeof(pr->changes[0]));
		pr->nchanges--;
	}
	pr->changes[pr->nchanges++] = (struct mean_change){.tsc = probe_tsc_now(), .mean = old};
	probe_restart_lost_weight(pr);
	return 0;
}

uint64_t ms_probes_sample_bytes(const struct ms_probes *pr)
{
	return pr ? pr->opts.sample_bytes : 0;
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
		if (pr->s[i].fn != MS_FN_CUSTOM && pr->s[i].fn != MS_FN_CUSTOM_FREE &&
		    pc >= pr->s[i].entry && pc < pr->s[i].end)
			return true;
	return false;
}

/*
 * Found on the unwound stack, not by scanning the copy: a scan for a stub's
 * return address found stale ones in dead stack slots (a caller's
 * uninitialised locals) and dropped real allocations: --exact lost every
 * call of two of three sites of a program that keeps a local array of
 * pointers (9,541 stops, 734 allocations reported). The unwinder stops at
 * a stub's frame (it has no CFI), after reporting its address.
 */
bool ms_probes_nested_sample(struct ms_probes *pr, const ms_raddr_t *pcs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t r = 0; r < pr->nrg; r++)
			if (pcs[i] > pr->rg[r].base && pcs[i] <= pr->rg[r].base + MS_STUB_CODE_SIZE) {
				pr->nested++;
				if (pr->st.samples)
					pr->st.samples--;
				if (pr->ring && pr->st.ring_samples)
					pr->st.ring_samples--;
				return true;
			}
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
	ms_probe_watchdog_stop(&pr->wd);
	for (size_t i = 0; i < pr->ns; i++) {
		free(pr->s[i].name);
		free(pr->s[i].open_path);
	}
	free(pr->s);
	for (size_t r = 0; r < pr->nrg; r++)
		probe_unshare_ring(&pr->rg[r], false);
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

void ms_probes_fuzz_share(struct ms_probes *pr, uint8_t *view)
{
	pr->rg[0].view = view;
}

void ms_probes_fuzz_free(struct ms_probes *pr)
{
	pr->rg[0].view = NULL; /* the fuzzer's, not a mapping to unmap */
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
	pr->wd.fd = pr->wd.pid = -1;
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
		fuzz_pev = ms_xmalloc(MS_PEV_SLOTS * sizeof(*pr->pev));
	}
	pr->hdrs = fuzz_hdrs;
	pr->data = fuzz_data;
	pr->fring = fuzz_fring;
	pr->pev = fuzz_pev;
	pr->tsc0 = probe_tsc_now();
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
		struct thr *t = &pr->thr[ms_thr_entry(threads[i][0], (unsigned)i)];

		*t = (struct thr){.tp = threads[i][0], .lo = threads[i][1], .hi = threads[i][2],
				  .tid = (pid_t)(1000 + i)};
	}
	pr->removed = false;
	return pr;
}
#endif
