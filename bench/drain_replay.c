// SPDX-License-Identifier: MIT
/*
 * memspy's whole per-sample path on a real recording's samples: the ring
 * drain (attach/probe_ring.c: the control page's two readings and checks,
 * the headers' checks, the draws refilled, the events sorted and handed
 * over, the slots given back) and the unwinding of each sample as record's
 * callback does it (the walk, the stack cap's bookkeeping, the allocator's
 * frames skipped). The samples are those of a MEMSPY_UNWIND_DUMP file (the
 * stack copies `memspy record` drained); each batch is written into a ring
 * image here the way the stubs write it, then drained by the probe engine
 * the fuzzer uses (ms_probes_fuzz_new), and unwound against the same, still
 * running process. Two rings, as memspy has them:
 *   shared   the draws and rings are memspy's own mapping (a memfd in the
 *            target): headers and stacks read in place
 *   private  every read and write a process_vm_readv/writev (here on this
 *            process's own image: real system calls, local pages)
 * The control page is read with process_vm_readv in both, as in memspy.
 * Prints CPU ns per sample (median of the rounds) for the drain alone and
 * for drain + unwind, per ring; bench/drain_replay.sh records the dump and
 * runs this. What it leaves out: the wait, the stack table's insert, and
 * the cache misses of reading what another CPU wrote (the image is written
 * here just before each drain).
 *
 *   drain_replay PID DUMP [ROUNDS [BATCH]]
 */
#include "attach/probe_int.h"
#include "unwind/unwind_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_PCS 256
#define MAX_THREADS 8
#define NONCE 0x6d656d7370796e63ull

static uint8_t *img; /* the region image: its address is the "remote" base */
static pid_t self;

static ssize_t self_readv(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			  size_t nr)
{
	(void)ctx;
	return process_vm_readv(self, l, nl, r, nr, 0);
}

static ssize_t self_writev(void *ctx, const struct iovec *l, size_t nl, const struct iovec *r,
			   size_t nr)
{
	(void)ctx;
	return process_vm_writev(self, l, nl, r, nr, 0);
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t *ctl64(unsigned off)
{
	return (uint64_t *)(void *)(img + MS_STUB_CTRL_OFF + off);
}

/* What record's callback does with a sample (record/session.c, on_alloc_event), minus the table. */
struct cb_state {
	struct ms_unwinder *u; /* NULL: the drain alone */
	struct ms_probes *pr;
	uint64_t events, frames, failures;
	ms_raddr_t pcs[MAX_PCS];
};

static void on_event(const struct ms_alloc_event *ev, void *ctx)
{
	struct cb_state *c = ctx;
	struct ms_stack_use use;
	struct ms_stack_copy sc;
	size_t n = 0, skip;

	c->events++;
	if (!c->u || ev->type != MS_AE_ALLOC)
		return;
	sc = (struct ms_stack_copy){.regs = &ev->regs,
				    .data = ev->stack,
				    .len = ev->stack_len,
				    .addr = ev->regs.rsp,
				    .at_entry = true,
				    .use = &use};
	if (!ev->stack || ms_unwind(c->u, &sc, c->pcs, MAX_PCS, &n) || n == 0) {
		c->failures++;
		return;
	}
	ms_probes_stack_use(c->pr, ev, use.used, use.beyond);
	if (n > 1 && ms_probes_nested_sample(c->pr, c->pcs + 1, n - 1))
		return;
	skip = 1;
	while (skip + 1 < n && ms_probes_in_allocator(c->pr, c->pcs[skip] - 1))
		skip++;
	c->frames += n - skip;
}

/* The replayed process's threads, from the samples' thread pointers and stacks. */
struct thr_span {
	uint64_t tp, lo, hi;
};

static size_t find_threads(const struct ms_unwind_dump_rec *v, size_t n, uint64_t (*t)[3])
{
	struct thr_span s[MAX_THREADS];
	size_t ns = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t tp = v[i].regs.fs_base, lo = v[i].addr, hi = v[i].addr + v[i].len;
		size_t k;

		for (k = 0; k < ns && s[k].tp != tp; k++)
			;
		if (k == ns) {
			if (ns == MAX_THREADS)
				continue;
			s[ns++] = (struct thr_span){tp, lo, hi};
		}
		s[k].lo = MS_MIN(s[k].lo, lo);
		s[k].hi = MS_MAX(s[k].hi, hi);
	}
	for (size_t k = 0; k < ns; k++) {
		t[k][0] = s[k].tp;
		t[k][1] = s[k].lo & ~4095ull;
		t[k][2] = s[k].hi;
	}
	return ns;
}

/*
 * A probe engine over a fresh image; the sites are moved to the entry
 * points the samples were taken at (one malloc-kind slot per entry point),
 * so that the unwinder starts where the real drain would have it start.
 */
static struct ms_probes *engine(bool shared, const uint64_t (*t)[3], size_t nt,
				const ms_raddr_t *entries, size_t nentries)
{
	static const struct ms_ring_io io = {self_readv, self_writev, NULL};
	ms_raddr_t base = (ms_raddr_t)(uintptr_t)img;
	struct ms_probes *pr;

	memset(img + MS_STUB_CTRL_OFF, 0, MS_STUB_DATA_OFF - MS_STUB_CTRL_OFF);
	*ctl64(MS_CTRL_MAGIC) = MS_RING_MAGIC;
	*ctl64(MS_CTRL_TAG) = NONCE ^ base;
	img[MS_STUB_CTRL_OFF + MS_CTRL_ARMED] = 1;
	img[MS_STUB_CTRL_OFF + MS_CTRL_TRACK] = 1;
	img[MS_STUB_CTRL_OFF + MS_CTRL_RING] = 1;
	pr = ms_probes_fuzz_new(&io, base, NONCE, t, nt);
	pr->opts.track_frees = false; /* as in the recording replayed (no --live) */
	/* Entered as register_thread does (the fuzzer's placement can make two collide). */
	memset(pr->thr, 0, sizeof(pr->thr));
	for (size_t i = 0; i < nt; i++) {
		for (unsigned k = 0; k < 8; k++) {
			struct thr *e = &pr->thr[ms_thr_entry(t[i][0], k)];

			if (!e->tp) {
				*e = (struct thr){.tp = t[i][0], .lo = t[i][1], .hi = t[i][2],
						  .tid = (pid_t)(1000 + i)};
				break;
			}
		}
	}
	for (size_t k = 0; k < nentries && k < 12; k++) {
		struct site *st;

		if (k < pr->ns && pr->s[k].fn == MS_FN_MALLOC) {
			st = &pr->s[k];
		} else {
			pr->s = ms_xrealloc(pr->s, (pr->ns + 1) * sizeof(*pr->s));
			st = &pr->s[pr->ns++];
			*st = (struct site){.fn = MS_FN_MALLOC,
					    .name = ms_xasprintf("malloc@replay%zu", k),
					    .slot = (int)k,
					    .patched = true};
			pr->rg[0].used[k] = true;
		}
		st->entry = entries[k];
		st->end = entries[k] + 0x100;
	}
	if (shared)
		ms_probes_fuzz_share(pr, img + MS_STUB_SHARED_OFF);
	return pr;
}

/* Publishes samples [from, to) of v as the stub does; returns how many. */
static size_t publish(const struct ms_unwind_dump_rec *v, size_t from, size_t to,
		      const ms_raddr_t *entries, size_t nentries, const uint64_t (*t)[3], size_t nt)
{
	size_t k = 0;

	for (size_t i = from; i < to; i++, k++) {
		uint64_t seq = (*ctl64(MS_CTRL_RING_HEAD))++;
		uint8_t *h = img + MS_STUB_HDR_OFF + (seq % MS_STUB_NHDR) * MS_STUB_HDR_SIZE;
		uint8_t *d = img + MS_STUB_DATA_OFF + (seq % MS_STUB_NHDR) * MS_STUB_DATA_SIZE;
		uint64_t hi = 0, len, t0 = __builtin_ia32_rdtsc(), cap = *ctl64(MS_CTRL_STACK_CAP);
		size_t slot = 0;

		(*ctl64(MS_CTRL_DRAW_IDX))++;
		for (size_t e = 0; e < nentries && e < 12; e++)
			if (entries[e] == v[i].regs.rip)
				slot = e;
		for (size_t j = 0; j < nt; j++)
			if (t[j][0] == v[i].regs.fs_base)
				hi = t[j][2];
		/* The stub's copy: up to the thread's stack top, at most the cap memspy set. */
		if (cap - 1 >= MS_STUB_DATA_SIZE)
			cap = MS_STUB_DATA_SIZE;
		len = MS_MIN(hi - v[i].addr, cap);
		put64(h + MS_H_SLOT, (uint64_t)MS_SK_RDI << 8 | slot);
		put64(h + MS_H_SEQ, seq);
		put64(h + MS_H_TP, v[i].regs.fs_base);
		put64(h + MS_H_SP, v[i].addr);
		put64(h + MS_H_LEN, len);
		put64(h + MS_H_CAP, *ctl64(MS_CTRL_STACK_CAP));
		put64(h + MS_H_RBX, v[i].regs.rbx);
		put64(h + MS_H_RBP, v[i].regs.rbp);
		put64(h + MS_H_R12, v[i].regs.r12);
		put64(h + MS_H_R13, v[i].regs.r13);
		put64(h + MS_H_R14, v[i].regs.r14);
		put64(h + MS_H_R15, v[i].regs.r15);
		put64(h + MS_H_RDI, v[i].regs.rdi);
		put64(h + MS_H_RSI, v[i].regs.rsi);
		put64(h + MS_H_RDX, v[i].regs.rdx);
		put64(h + MS_H_RES, v[i].regs.rax);
		put64(h + MS_H_FLAGS, 0);
		put64(h + MS_H_TSC0, t0);
		put64(h + MS_H_CALL, 100);
		put64(h + MS_H_TSC1, t0 + 1000);
		memcpy(d, v[i].data, MS_MIN(len, (uint64_t)v[i].len));
		if (len > v[i].len)
			memset(d + v[i].len, 0, len - v[i].len);
		__atomic_store_n((uint64_t *)(void *)(h + MS_H_STATE), 2, __ATOMIC_RELEASE);
	}
	return k;
}

/* One pass over every sample in batches; CPU ns per sample spent in the drains. */
static double pass(bool shared, struct ms_unwinder *u, const struct ms_unwind_dump_rec *v,
		   size_t n, size_t batch, const ms_raddr_t *entries, size_t nentries,
		   const uint64_t (*t)[3], size_t nt, struct cb_state *out)
{
	struct ms_probes *pr = engine(shared, t, nt, entries, nentries);
	struct cb_state c = {.u = u, .pr = pr};
	uint64_t spent = 0;

	for (size_t i = 0; i < n; i += batch) {
		uint64_t t0;

		publish(v, i, MS_MIN(n, i + batch), entries, nentries, t, nt);
		t0 = cpu_ns();
		ms_probes_poll(pr, on_event, &c);
		spent += cpu_ns() - t0;
	}
	*out = c;
	ms_probes_fuzz_free(pr);
	return (double)spent / (double)n;
}

int main(int argc, char **argv)
{
	static const char *const ring_name[2] = {"private", "shared"};
	struct ms_unwind_dump_rec *v;
	struct ms_unwinder *u;
	struct ms_error err;
	size_t n, rounds = argc > 3 ? strtoul(argv[3], NULL, 10) : 9,
		  batch = argc > 4 ? strtoul(argv[4], NULL, 10) : 64, nt, nentries = 0;
	uint64_t t[MAX_THREADS][3];
	ms_raddr_t entries[12];
	double *res[2][2];
	struct cb_state c[2][2];
	pid_t pid;

	if (argc < 3 || (pid = (pid_t)atoi(argv[1])) <= 0 || rounds == 0 || batch == 0 ||
	    batch > MS_STUB_NHDR) {
		fprintf(stderr, "usage: %s PID DUMP [ROUNDS [BATCH <= %d]]\n", argv[0], MS_STUB_NHDR);
		return 64;
	}
	if (ms_unwind_dump_load(argv[2], &v, &n) < 0 || n == 0) {
		fprintf(stderr, "drain_replay: %s: not a readable, non-empty unwind dump\n", argv[2]);
		return 2;
	}
	unsetenv("MEMSPY_UNWIND_DUMP");
	unsetenv("MEMSPY_VERIFY_UNWIND");
	ms_log_verbosity = MS_LOG_WARN;
	self = getpid();
	img = mmap(NULL, MS_STUB_REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (img == MAP_FAILED) {
		perror("drain_replay: mmap");
		return 2;
	}
	memcpy(img, ms_stub_image, MS_STUB_CODE_SIZE);
	nt = find_threads(v, n, t);
	for (size_t i = 0; i < n; i++) {
		size_t e;

		for (e = 0; e < nentries && entries[e] != v[i].regs.rip; e++)
			;
		if (e == nentries && nentries < 12)
			entries[nentries++] = v[i].regs.rip;
	}
	u = ms_unwinder_new(pid, MS_UNWIND_DWFL, &err);
	if (!u) {
		fprintf(stderr, "drain_replay: %s\n", err.msg);
		return 2;
	}
	/* Warm-up: CFI read and rows compiled, the image's pages faulted in. */
	pass(true, u, v, n, batch, entries, nentries, t, nt, &c[1][1]);
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < 2; k++)
			res[s][k] = ms_xcalloc(rounds, sizeof(double));
	/* Alternating rounds: the machine's noise falls on all four alike. */
	for (size_t r = 0; r < rounds; r++)
		for (int s = 0; s < 2; s++)
			for (int k = 0; k < 2; k++)
				res[s][k][r] = pass(s, k ? u : NULL, v, n, batch, entries, nentries,
						    t, nt, &c[s][k]);
	printf("drain replay: %zu samples of %zu threads, drained %zu at a time, %zu rounds "
	       "(CPU ns per sample, median)\n",
	       n, nt, batch, rounds);
	for (int s = 1; s >= 0; s--) {
		double d, du;

		for (int k = 0; k < 2; k++)
			qsort(res[s][k], rounds, sizeof(double), cmp_double);
		d = res[s][0][rounds / 2];
		du = res[s][1][rounds / 2];
		printf("  %-8s ring: drain %6.0f ns, drain + unwind %6.0f ns (the unwind %.0f ns); "
		       "%.1f frames/sample, %llu of %llu samples handed over, %llu unwinds failed\n",
		       ring_name[s], d, du, du - d,
		       c[s][1].events ? (double)c[s][1].frames / (double)c[s][1].events : 0.0,
		       (unsigned long long)c[s][1].events, (unsigned long long)n,
		       (unsigned long long)c[s][1].failures);
	}
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < 2; k++)
			free(res[s][k]);
	ms_unwinder_free(u);
	ms_unwind_dump_free(v, n);
	munmap(img, MS_STUB_REGION_SIZE);
	return c[1][1].events == n && c[0][1].events == n ? 0 : 1;
}
