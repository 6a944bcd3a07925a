// SPDX-License-Identifier: MIT
/*
 * The ring-mode drain: memspy's copy of the in-target thread table (the
 * stubs clamp their stack copy to its bounds), and the drain that reads the
 * sample and freed rings, checks every byte it reads (the target can write
 * memspy's pages), orders the events by time and reports them, weighting
 * samples for ring-full losses.
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
			unsigned i = ms_thr_entry(tp, k);
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
		probe_write_remote(pr, a + 8, ent, sizeof(ent));
		probe_write_remote(pr, a, &tp, sizeof(tp));
	}
}

/* The thread memspy entered with thread pointer tp, or NULL. */
static const struct thr *thr_of(const struct ms_probes *pr, uint64_t tp)
{
	for (unsigned k = 0; k < 8 && tp; k++) {
		const struct thr *t = &pr->thr[ms_thr_entry(tp, k)];

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
void probe_on_new_thread(void *ctx, pid_t tid, const struct user_regs_struct *regs)
{
	struct ms_probes *pr = ctx;

	if (!pr->removed)
		register_thread(pr, tid, regs);
}

void probe_register_all_threads(struct ms_probes *pr)
{
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);
		struct user_regs_struct regs;

		if (!ms_proc_get_regs(pr->p, tid, &regs))
			register_thread(pr, tid, &regs);
	}
}

/* Rewrites the pre-drawn countdowns in [from, to) (indices mod NDRAW). */
void probe_refill_draws(struct ms_probes *pr, const struct region *rg, uint64_t from, uint64_t to)
{
	int64_t v[MS_STUB_NDRAW];
	uint64_t n = to - from;

	if (n > MS_STUB_NDRAW) {
		from = 0;
		n = MS_STUB_NDRAW;
	}
	for (uint64_t k = 0; k < n; k++)
		v[k] = probe_draw_countdown(pr);
	for (uint64_t done = 0; done < n;) {
		uint64_t at = (from + done) % MS_STUB_NDRAW;
		uint64_t run = MS_MIN(n - done, MS_STUB_NDRAW - at);

		probe_write_remote(pr, rg->base + MS_STUB_DRAW_OFF + at * 8, v + done, run * 8);
		done += run;
	}
}

uint64_t probe_tsc_now(void)
{
	return __builtin_ia32_rdtsc();
}

/* Nanoseconds for a span of TSC ticks, from the rate seen since install. */
uint64_t probe_tsc_to_ns(const struct ms_probes *pr, uint64_t ticks)
{
	uint64_t dt = probe_tsc_now() - pr->tsc0, dn = ms_now_ns() - pr->ns0;

	if (!dt || dn < 1000000)
		return 0;
	return (uint64_t)((double)ticks * (double)dn / (double)dt);
}

/* The freed ring keeps the stub slot in the top byte of its TSC stamp. */
#define TSC_MASK ((1ull << 56) - 1)

/*
 * A drain's events in the order they happened: a stable merge sort by key
 * through tmp (n more slots), so that a drain allocates nothing (glibc's
 * qsort mallocs a buffer past 1 KiB, once per drain). Runs of already
 * ordered events (each ring's slots come in ticket order) are merged
 * bottom-up: O(n log n) whatever the keys a target wrote.
 */
static void sort_pending(struct pending_ev *ev, struct pending_ev *tmp, size_t n)
{
	struct pending_ev *src = ev, *dst = tmp, *t;

	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = MS_MIN(lo + w, n), hi = MS_MIN(lo + 2 * w, n);
			size_t i = lo, j = mid, k = lo;

			while (i < mid && j < hi)
				dst[k++] = src[j].key < src[i].key ? src[j++] : src[i++];
			while (i < mid)
				dst[k++] = src[i++];
			while (j < hi)
				dst[k++] = src[j++];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != ev)
		memcpy(ev, src, n * sizeof(*ev));
}

static uint64_t rd64(const uint8_t *h, unsigned off)
{
	uint64_t v;

	memcpy(&v, h + off, sizeof(v));
	return v;
}

/* The most one sample's stub work is counted as (see emit_ring_sample). */
#define MS_STUB_MAX_WORK_NS 50000.0

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
void probe_restart_lost_weight(struct ms_probes *pr)
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
	const struct site *s = slot < MS_STUB_NSLOTS ? probe_site_for(pr, r, slot) : NULL;
	struct ms_alloc_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = MS_AE_ALLOC;
	ev.fn = s ? s->fn : MS_FN_CUSTOM;
	ev.tid = thr_of(pr, rd64(h, MS_H_TP))->tid; /* checked: a thread memspy entered */
	ev.size = probe_size_of(h, (unsigned)kind);
	ev.weight = probe_sample_weight(pr, ev.size, probe_mean_at(pr, rd64(h, MS_H_TSC0)));
	if (scale != 1.0) /* saturated: a cast out of range is undefined */
		ev.weight = (double)ev.weight * scale < 1.8e19
				? (uint64_t)((double)ev.weight * scale + 0.5)
				: UINT64_MAX;
	ev.ptr = rd64(h, MS_H_RES);
	ev.unfollowed = pr->opts.track_frees && ev.ptr && !(rd64(h, MS_H_FLAGS) & 1);
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
	/*
	 * A shared ring's copy is read in place: the slot stays memspy's (state
	 * 2, which no stub claims) until the events are out, and a target that
	 * writes it meanwhile only changes what the bounded unwinder reads.
	 */
	if (pr->rg[r].view)
		ev.stack = pr->rg[r].view + (MS_STUB_DATA_OFF - MS_STUB_SHARED_OFF) +
			   (size_t)i * MS_STUB_DATA_SIZE;
	else
		ev.stack = pr->data + (size_t)i * MS_STUB_DATA_SIZE;
	ev.stack_len = (size_t)MS_MIN(len, (uint64_t)MS_STUB_DATA_SIZE);
	pr->st.samples++;
	pr->st.ring_samples++;
	/* The stub's own work: the whole span minus the time inside the real function. */
	stub_ticks = rd64(h, MS_H_TSC1) - rd64(h, MS_H_TSC0);
	stub_ticks = rd64(h, MS_H_CALL) < stub_ticks ? stub_ticks - rd64(h, MS_H_CALL) : 0;
	/*
	 * A span longer than the stub's work can take was mostly spent off the
	 * CPU: the thread was preempted inside it (on a loaded machine, one
	 * time slice of a few ms). That would have befallen the process
	 * anywhere, and one such span ate a light process's whole budget for a
	 * window (1% of its ~30 ms of CPU a second): the mean swung between
	 * 134 KiB and 875 KiB and the leak view rested on 6 samples. So a span
	 * counts as at most MS_STUB_MAX_WORK_NS (a cold sample, every page it
	 * writes faulted in, costs 10-30 us here).
	 */
	{
		double ns = (double)stub_ticks * ns_per_tick;

		pr->st.target_ns += (uint64_t)(ns < MS_STUB_MAX_WORK_NS ? ns : MS_STUB_MAX_WORK_NS);
	}
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

/* ------------------------------ probe_tamper checks ------------------------------ */

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
		probe_site_jmp(pr, s, jmp);
		if (ms_mem_read_pid(pr->pid, s->entry, now, PATCH_LEN) == PATCH_LEN &&
		    !memcmp(now, jmp, PATCH_LEN))
			return true;
	}
	return false;
}

void probe_tamper(struct ms_probes *pr, size_t r, const char *why)
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
	    memcmp(b + MS_CTRL_RELAY, rg->relay, sizeof(rg->relay)) ||
	    CTL(ctl, MS_CTRL_STACK_CAP) != rg->stack_cap)
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
	    head + nothread > draw + 1024)
		return "the counters disagree with each other";
	return NULL;
}

/* The bytes a sample asked for, from its stub's kind (calloc: the product, wrapping like the
 * stub's). */
uint64_t probe_size_of(const uint8_t *h, unsigned kind)
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
 * A timestamp outside the recording is no proof of tampering on its own: on
 * a machine whose TSC is not stable (a VM booted with tsc=unstable, paused
 * or moved between hosts) honest stubs write such stamps. An hour-long
 * recording was stopped at 47 minutes as "overwritten" by this check alone.
 * Such a sample is dropped and counted apart; a free is kept (not following
 * it would count its block live for good), ordered as if it came now.
 */
static const char TS_OUTSIDE[] = "a timestamp is out of order or outside the recording";

/*
 * A published sample header (index i, read by a drain whose window of
 * tickets was [from, to)) against what the stub writes: NULL if it passes.
 */
static const char *check_sample(const struct ms_probes *pr, size_t r, const uint8_t *h, int i,
				uint64_t from, uint64_t to, uint64_t tsc_hi)
{
	uint64_t sw = rd64(h, MS_H_SLOT), seq = rd64(h, MS_H_SEQ), sp = rd64(h, MS_H_SP),
		 len = rd64(h, MS_H_LEN), t0 = rd64(h, MS_H_TSC0), t1 = rd64(h, MS_H_TSC1),
		 cap = rd64(h, MS_H_CAP), want = 0;
	unsigned slot = (unsigned)(sw & 0xff), kind = (unsigned)(sw >> 8);
	const struct thr *t;

	if ((seq & (MS_STUB_NHDR - 1)) != (uint64_t)i || seq < from || seq >= to)
		return "a sample's sequence number is not one of the drain's tickets";
	if (slot >= MS_STUB_NSLOTS || !probe_site_for(pr, r, (int)slot) ||
	    kind != ms_stub_desc[slot].kind || kind == MS_SK_FREE)
		return "a sample names a stub that does not sample";
	t = thr_of(pr, rd64(h, MS_H_TP));
	if (!t)
		return "a sample's thread is not one memspy entered";
	/* The cap as the stub read it: one memspy wrote (it may have changed since). */
	if (cap && (cap % MS_CAP_STEP || cap > MS_STUB_DATA_SIZE ||
		    !(pr->caps_written >> (cap / MS_CAP_STEP - 1) & 1)))
		return "a sample's stack cap is not one memspy set";
	if (sp >= t->lo && sp < t->hi)
		want = MS_MIN(t->hi - sp, cap ? cap : (uint64_t)MS_STUB_DATA_SIZE);
	if (len != want || (sp & 7))
		return "a sample's stack does not match its thread's";
	if (rd64(h, MS_H_FLAGS) > 1)
		return "a sample's flags are not the stub's";
	/* No block outlives the user address space (47 bits on x86-64). */
	if (rd64(h, MS_H_RES) >> 47 || (rd64(h, MS_H_RES) && probe_size_of(h, kind) >> 47))
		return "a sample's block is larger than the address space";
	/* t0 and t1 may come from two CPUs (the thread moved): both get the slack. */
	if (t0 + TSC_SLACK < pr->tsc0 || t1 + TSC_SLACK < t0 || t1 > tsc_hi + TSC_SLACK ||
	    rd64(h, MS_H_CALL) > (t1 > t0 ? t1 - t0 : 0) + TSC_SLACK)
		return TS_OUTSIDE;
	return NULL;
}

/* A freed-ring entry {ptr, slot << 56 | tsc}: NULL if it passes. */
static const char *check_free(const struct ms_probes *pr, size_t r, uint64_t stamp,
			      uint64_t tsc_hi)
{
	unsigned slot = (unsigned)(stamp >> 56);
	uint64_t since = ((stamp & TSC_MASK) - pr->tsc0) & TSC_MASK; /* wraps with the mask */

	if (slot >= MS_STUB_NSLOTS || !probe_site_for(pr, r, (int)slot) ||
	    (ms_stub_desc[slot].kind != MS_SK_FREE && ms_stub_desc[slot].kind != MS_SK_REALLOC))
		return "a free names a stub that does not free";
	if (since > tsc_hi - pr->tsc0 + TSC_SLACK && since < TSC_MASK - TSC_SLACK)
		return TS_OUTSIDE;
	return NULL;
}

/* A slot or entry that failed: dropped, counted; too many and the ring is not memspy's. */
static void discard(struct ms_probes *pr, size_t r, const char *why)
{
	pr->rg[r].discarded++;
	pr->st.discarded++;
	ms_debug("probe: region %zu: dropped a ring entry: %s", r, why);
	if (pr->rg[r].discarded >= MAX_BAD_SLOTS)
		probe_tamper(pr, r, why);
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

/* Hands the drain's sample slots back to the stubs (state = 0), in one call. */
static void give_back(struct ms_probes *pr, const struct region *rg, const struct pending_ev *ev,
		      size_t nev, struct iovec *liov, struct iovec *riov)
{
	static const uint64_t zeros[MS_STUB_NHDR];
	size_t n = 0;

	for (size_t k = 0; k < nev; k++) {
		if (ev[k].hdr < 0)
			continue;
		riov[n].iov_base = (void *)(uintptr_t)(rg->base + MS_STUB_HDR_OFF +
						       (ms_raddr_t)ev[k].hdr * MS_STUB_HDR_SIZE);
		riov[n].iov_len = 8;
		n++;
	}
	if (n) {
		liov[0].iov_base = (void *)zeros;
		liov[0].iov_len = n * 8;
		probe_ring_writev(pr, liov, 1, riov, n);
	}
}

/* Drains one region's rings: published samples and frees, in the order they happened. */
/*
 * The quick check. A drain of an empty ring costs a process_vm_readv of the
 * control page (its counters are private: wiped on fork), and a light
 * process's recording is mostly such drains. Through memspy's own mapping
 * of a shared ring, two words tell whether a ticket was claimed since the
 * control page was last read: the state of the header slot of the first
 * ticket not seen then (rg->head) and the freed-ring entry of the first
 * free not seen then (rg->fhead); a stub makes either nonzero before it
 * publishes anything, and a slot not yet given back (a full ring) is
 * nonzero too. Not scan_from's slot: with a ticket in flight at the last
 * drain the window stays there, on a slot already given back, while the
 * ring fills. When both are 0 the drain stops there, unless the control
 * page was last read QUICK_MAX_NS ago: a ticket claimed but whose slot is
 * not yet written (its thread preempted), one in flight at the last drain,
 * the loss counters, the draws used by threads outside the table and the
 * tamper checks wait that long at most.
 */
#define QUICK_MAX_NS 250000000ull

static bool ring_quiet(const struct region *rg, uint64_t now)
{
	const uint8_t *h, *f;
	uint64_t st, p;

	if (!rg->view || now - rg->full_ns >= QUICK_MAX_NS)
		return false;
	h = rg->view + (MS_STUB_HDR_OFF - MS_STUB_SHARED_OFF) +
	    (size_t)(rg->head % MS_STUB_NHDR) * MS_STUB_HDR_SIZE;
	f = rg->view + (MS_STUB_FRING_OFF - MS_STUB_SHARED_OFF) +
	    (size_t)(rg->fhead % MS_STUB_NFRING) * 16;
	st = __atomic_load_n((const uint64_t *)(const void *)(h + MS_H_STATE), __ATOMIC_ACQUIRE);
	p = __atomic_load_n((const uint64_t *)(const void *)f, __ATOMIC_ACQUIRE);
	return st == 0 && p == 0;
}

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
	rg->full_ns = ms_now_ns();
	liov[0] = (struct iovec){ctl, sizeof(ctl)};
	riov[0] = (struct iovec){(void *)(uintptr_t)probe_rg_ctrl(rg, CTL_FIRST), sizeof(ctl)};
	n = probe_ring_readv(pr, liov, 1, riov, 1);
	if (n != (ssize_t)sizeof(ctl)) {
		if (n < 0 && errno == ESRCH)
			return -ESRCH;
		/* The process lives (record checks) but its control page cannot be read. */
		probe_tamper(pr, r, "its pages were unmapped or made unreadable");
		return 0;
	}
	if ((why = check_ctl(pr, rg, ctl, ms_now_ns()))) {
		probe_tamper(pr, r, why);
		return 0;
	}
	head = CTL(ctl, MS_CTRL_RING_HEAD);
	fhead = CTL(ctl, MS_CTRL_FREE_HEAD);
	if (CTL(ctl, MS_CTRL_DRAW_IDX) != rg->last_draw) {
		probe_refill_draws(pr, rg, rg->last_draw, CTL(ctl, MS_CTRL_DRAW_IDX));
		rg->last_draw = CTL(ctl, MS_CTRL_DRAW_IDX);
	}
	account_losses(pr, rg, ctl);
	if (head == rg->scan_from && fhead == rg->fscan_from)
		return 0;

	if (!pr->pev)
		pr->pev = ms_xmalloc(MS_PEV_SLOTS * sizeof(*pr->pev));
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
		n = probe_ring_readv(pr, liov, nw, riov, nw);
		if (n != (ssize_t)want)
			nw = 0; /* read again at the next drain: the window stays */
		for (unsigned k = 0; k < nw; k++) {
			int i0 = (int)(((uint8_t *)liov[k].iov_base - (uint8_t *)pr->fring) / 16);
			int i1 = i0 + (int)(liov[k].iov_len / 16);

			for (int i = i0; i < i1; i++) {
				uint64_t p = pr->fring[2 * i];

				if (p <= 1)
					continue;
				/* Taken either way: the ledger counts the ticket, the slot goes
				 * back. */
				uint64_t tnow = probe_tsc_now();

				why = check_free(pr, r, pr->fring[2 * i + 1], tnow);
				if (why == TS_OUTSIDE)
					pr->st.clock_odd++;
				if (why && why != TS_OUTSIDE)
					discard(pr, r, why);
				else
					ev[nev++] = (struct pending_ev){
					    .key = why ? tnow & TSC_MASK
						       : pr->fring[2 * i + 1] & TSC_MASK,
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

					probe_ring_writev(pr, &z, 1, friov, (size_t)nfree_done);
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
		n = probe_ring_readv(pr, liov, nw, riov, nw);
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
					if (len && !rg->view) {
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
	riov[nrd].iov_base = (void *)(uintptr_t)probe_rg_ctrl(rg, CTL_FIRST);
	riov[nrd].iov_len = sizeof(ctl2);
	want = 0;
	for (size_t k = 0; k <= nrd; k++)
		want += liov[k].iov_len;
	n = probe_ring_readv(pr, liov, nrd + 1, riov, nrd + 1);
	tsc_hi = probe_tsc_now();
	second_ok = n == (ssize_t)want;
	if (!second_ok) {
		if (nrd)
			ms_debug("probe: reading %zu ring stack copies: %s", nrd,
				 n < 0 ? strerror(errno) : "short read");
		/* Without the second reading the window cannot move on. */
		memcpy(ctl2, ctl, sizeof(ctl2));
	} else if ((why = check_ctl(pr, rg, ctl2, ms_now_ns()))) {
		probe_tamper(pr, r, why);
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
		if (why == TS_OUTSIDE) {
			pr->st.clock_odd++;
			ev[k].slot = -2; /* given back, not emitted */
		} else if (why) {
			discard(pr, r, why);
			ev[k].slot = -2; /* given back, not emitted */
		}
	}
	if (rg->tampered)
		return 0; /* too many bad slots: nothing of this drain is believed either */

	if (nfree_done) {
		struct iovec z = {(void *)zeros, 8 * (size_t)nfree_done};

		probe_ring_writev(pr, &z, 1, friov, (size_t)nfree_done);
	}
	/*
	 * Return the consumed headers (state = 0) in one call, before the events
	 * go out: the headers and stacks were copied, and the callback (record
	 * unwinds each sample there) can take long enough for the stubs to fill
	 * the ring again meanwhile rather than lose every sample. A shared
	 * ring's stacks are read in place: its slots go back after the events.
	 */
	if (!rg->view)
		give_back(pr, rg, ev, nev, liov, riov);
	sort_pending(ev, ev + MS_PEV_SLOTS / 2, nev);
	/* Unread, the second reading is the first: no losses to make up for from it. */
	scale = second_ok ? lost_weight(rg, taken, CTL(ctl2, MS_CTRL_DROPS)) : 1.0;
	if (second_ok)
		account_losses(pr, rg, ctl2);
	now = ms_now_ns();
	ns_per_tick = nev ? (double)probe_tsc_to_ns(pr, 1000000000ull) / 1e9 : 0;
	for (size_t k = 0; k < nev; k++) {
		if (ev[k].hdr >= 0) {
			if (ev[k].slot != -2)
				emit_ring_sample(pr, r, ev[k].hdr, cb, ctx, now, ns_per_tick,
						 scale);
		} else {
			const struct site *fs = probe_site_for(pr, r, ev[k].slot);
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
	if (rg->view)
		give_back(pr, rg, ev, nev, liov, riov);
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
/* ------------------------------ the stack cap ------------------------------ */

/*
 * A sample's stub copies the stack from the entry's rsp up to the thread's
 * stack top, at most 16 KiB. In a process that mostly sleeps every line of
 * that copy is cold, and the copy was nearly all of a sample's cost there
 * (10-30 us against ~0.5 us in a busy one), though the unwinder only reads
 * up to the outermost frame's CFA: the main thread's stack top also holds
 * argv, the environment and the auxiliary vector. So the stubs copy at most
 * a cap memspy keeps in the control page: the first MS_CAP_LEARN samples copy
 * up to 16 KiB, and then the cap is the deepest byte any unwinding read
 * plus a margin, raised as deeper reads come. A copy the cap cut short
 * where the unwinding asked for the bytes above it lost frames: it is
 * counted (stack_cut), the copies are whole again from the next drain on,
 * and the cap is learned anew from the next MS_CAP_LEARN samples.
 *
 * The stub records the cap word it read in the header, and the check
 * (check_sample) accepts min(hi - sp, cap) for a cap memspy has written at
 * some point (caps_written): a thread can read the word just before memspy
 * changes it and publish much later.
 */

/* The cap for a deepest read of used bytes: a quarter more and 1 KiB, in whole steps. */
static uint64_t cap_for(uint64_t used)
{
	uint64_t c = used + used / 4 + 1024;

	c = (c + MS_CAP_STEP - 1) / MS_CAP_STEP * MS_CAP_STEP;
	return MS_MIN(c, (uint64_t)MS_STUB_DATA_SIZE);
}

void ms_probes_stack_use(struct ms_probes *pr, const struct ms_alloc_event *ev, size_t used,
			 size_t beyond)
{
	const struct thr *t;
	uint64_t sp, full, len;

	if (!pr || !pr->ring || pr->removed || ev->type != MS_AE_ALLOC || !ev->stack)
		return;
	t = thr_of(pr, ev->regs.fs_base);
	sp = ev->regs.rsp;
	len = ev->stack_len;
	if (!t || sp < t->lo || sp >= t->hi || used > len)
		return;
	full = MS_MIN(t->hi - sp, (uint64_t)MS_STUB_DATA_SIZE);
	if (used > pr->cap_used_max)
		pr->cap_used_max = used;
	if (len < full && beyond > len && beyond <= full) {
		/*
		 * Cut short of what the walk asked for: frames were lost. How deep
		 * the new stacks go is not known: whole copies again, and the cap
		 * learned anew from them (the deepest read so far included).
		 */
		pr->st.stack_cut++;
		pr->cap_want = MS_STUB_DATA_SIZE;
		pr->cap_learned = 0;
		return;
	}
	if (pr->cap_learned < MS_CAP_LEARN) {
		if (++pr->cap_learned == MS_CAP_LEARN)
			pr->cap_want = cap_for(pr->cap_used_max);
		return;
	}
	/* Deeper reads than before: the margin moves up with them. */
	pr->cap_want = MS_MAX(pr->cap_want, cap_for(used));
}

/* Gives the stubs the cap the unwinding asked for (between drains: the check knows it first). */
static void apply_stack_cap(struct ms_probes *pr)
{
	uint64_t cap = pr->cap_want;

	if (!cap || cap == pr->cap || !pr->armed || pr->removed)
		return;
	pr->caps_written |= 1ull << (cap / MS_CAP_STEP - 1);
	for (size_t r = 0; r < pr->nrg; r++) {
		struct region *rg = &pr->rg[r];

		if (rg->tampered)
			continue;
		if (probe_write_remote(pr, probe_rg_ctrl(rg, MS_CTRL_STACK_CAP), &cap, sizeof(cap)))
			return; /* tried again after the next drain; the word is what it was */
		rg->stack_cap = cap;
	}
	ms_debug("probe: stack copies capped at %llu bytes (deepest read %llu)",
		 (unsigned long long)cap, (unsigned long long)pr->cap_used_max);
	pr->cap = cap;
}

static int drain_all(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, bool quick)
{
	uint64_t t0 = ms_now_ns(), before = pr->st.samples + pr->st.frees;
	int rc = 0;

	if (!pr->ring)
		return 0;
	for (size_t r = 0; r < pr->nrg; r++) {
		int e;

		/* Not in the fuzzer (pr->io): its drains must all read the pages. */
		if (quick && !pr->io && ring_quiet(&pr->rg[r], t0)) {
			pr->n_quiet++;
			continue;
		}
		e = drain_region(pr, r, cb, ctx);

		if (e && !rc)
			rc = e;
	}
	if (pr->st.samples + pr->st.frees != before) {
		pr->n_drains++;
		pr->drain_ns += ms_now_ns() - t0;
		pr->drained += pr->st.samples + pr->st.frees - before;
	}
	if (!rc)
		apply_stack_cap(pr);
	pr->st.stack_cap = pr->cap ? pr->cap : MS_STUB_DATA_SIZE;
	return rc;
}

int probe_drain_all(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx)
{
	return drain_all(pr, cb, ctx, false);
}

int probe_drain_quick(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx)
{
	return drain_all(pr, cb, ctx, true);
}
