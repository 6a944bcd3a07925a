// SPDX-License-Identifier: MIT
/*
 * record, walk mode's session: patch nothing; stop the target at random
 * instants, copy every thread's registers and stack top (and read the
 * malloc arena headers every --walk-interval), resume, and unwind the
 * copies into the stack table while it runs; the heap timeline gets a
 * sample per heap read.
 */
#include "record/walk_int.h"
#include "attach/attach.h"
#include "heapwalk/heapwalk.h"
#include "output/timeline.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <unistd.h>

#define MAX_PCS		 256
#define BUDGET_CREDIT_NS 5000000ull /* lets the first stops happen before any wall time passed */

/* ------------------------------ pauses ------------------------------ */

static void pause_add(struct ms_rec_pauses *p, uint64_t ns)
{
	ms_xgrow((void **)&p->us, &p->cap, p->n + 1, sizeof(*p->us));
	p->us[p->n++] = (uint32_t)MS_MIN(ns / 1000, (uint64_t)UINT32_MAX);
	p->total_ns += ns;
	p->worst_ns = MS_MAX(p->worst_ns, ns);
	p->ewma_ns = p->ewma_ns ? 0.8 * p->ewma_ns + 0.2 * (double)ns : (double)ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

double ms_rec_pauses_median_ns(struct ms_rec_pauses *p)
{
	if (!p->n)
		return 0;
	qsort(p->us, p->n, sizeof(*p->us), cmp_u32);
	return (p->n % 2 ? p->us[p->n / 2] : (p->us[p->n / 2 - 1] + p->us[p->n / 2]) / 2.0) * 1e3;
}

/* ------------------------------ the stops ------------------------------ */

struct thr {
	pid_t tid;
	struct user_regs_struct regs;
	uint8_t *stack;
	size_t len;
	bool ok;
	bool asleep;	/* asleep (not running, nor waiting for a CPU) at the stop */
	int syscall_nr; /* the system call it was in, or -1 */
};

struct ms_rec_walk {
	struct ms_rec_walk_opts o;
	struct ms_rec_walk_account a;
	struct ms_proc *p;
	struct ms_unwinder *unwinder;
	struct ms_symbolizer *sym;
	struct ms_rec_table *stacks; /* tagged 0 running, 1 + the system call asleep in */
	struct thr *thr;
	size_t thr_cap;
	ms_raddr_t pcs[MAX_PCS];

	/* heap */
	struct ms_heap_loc loc;
	struct ms_error heap_err; /* why glibc's state was not found */
	struct ms_heap_quick heap;
	pid_t *tids;
	ms_raddr_t *fsb;
	size_t ntids_cap;
	struct ms_tl_arena *tla;
	size_t tla_cap;
	uint64_t last_read_ns;

	/* sampling instants (walk_sampler.c) */
	struct ms_rec_walk_rng rng;
	pid_t *pre_tid; /* each thread's state letter just before the stop */
	char *pre_state;
	size_t npre, pre_cap;
	struct ms_rec_walk_states states; /* their stat files, kept open */
	uint64_t busy_until;	 /* when memspy's last stop (and its unwinding) ended */
	struct ms_rec_walk_sched kernel0; /* the threads' schedstat when recording began */
	bool threads_changed;	 /* a stop saw other threads than those */
	/* /proc/PID/auxv at the start: each exec rebuilds it (AT_RANDOM, AT_ENTRY) */
	unsigned char auxv[1024];
	size_t auxv_len;
	unsigned long old_slack;
	uint64_t deadline, stack_period, next_stack, next_heap;
	bool ended;
};

uint64_t ms_rec_walk_paused_ns(const struct ms_rec_walk_account *a)
{
	return a->stack_pauses.total_ns + a->heap_pauses.total_ns;
}

double ms_rec_walk_rate_had(const struct ms_rec_walk_account *a)
{
	return a->end.wall_ns ? (double)a->stack_ticks * 1e9 / (double)a->end.wall_ns : 0;
}

static void threads_reserve(struct ms_rec_walk *w, size_t n)
{
	size_t old = w->thr_cap;

	if (n <= w->thr_cap)
		return;
	ms_xgrow((void **)&w->thr, &w->thr_cap, n, sizeof(*w->thr));
	for (size_t i = old; i < w->thr_cap; i++)
		w->thr[i] = (struct thr){.stack = ms_xmalloc(w->o.stack_bytes), .syscall_nr = -1};
}

/* Just before a stop, while the threads run: the state each one is in. */
static void read_states(struct ms_rec_walk *w)
{
	size_t n = ms_proc_nthreads(w->p);

	if (n > w->pre_cap) {
		w->pre_cap = n;
		w->pre_tid = ms_xrealloc(w->pre_tid, n * sizeof(*w->pre_tid));
		w->pre_state = ms_xrealloc(w->pre_state, n);
	}
	for (size_t i = 0; i < n; i++) {
		w->pre_tid[i] = ms_proc_thread(w->p, i);
		w->pre_state[i] =
		    ms_rec_walk_states_read(&w->states, ms_proc_pid(w->p), w->pre_tid[i], i);
	}
	ms_rec_walk_states_prune(&w->states);
	w->npre = n;
}

/*
 * Was the i-th thread asleep at the stop? The state the kernel gave just
 * before it, overruled by registers that prove it ran since
 * (ms_rec_walk_asleep_at_stop); for a thread not seen then (born since),
 * the registers alone.
 */
static bool thread_asleep(struct ms_rec_walk *w, size_t i, struct thr *t)
{
	char st = 0;

	if (i < w->npre && w->pre_tid[i] == t->tid)
		st = w->pre_state[i];
	else
		for (size_t k = 0; k < w->npre && !st; k++)
			if (w->pre_tid[k] == t->tid)
				st = w->pre_state[k];
	return ms_rec_walk_asleep_at_stop(st, &t->regs, &t->syscall_nr);
}

/*
 * Every thread has been sent its interrupt: the instant is taken, and real-
 * time priority ends. Held until the resume, it made stops of busy threads
 * on a loaded machine last 2-30 ms instead of ~0.1 ms: a real-time tracer
 * woken by a tracee's stop finds it not yet off its CPU and the kernel makes
 * it wait a scheduler tick. Dropped before the interrupts were sent, the
 * stops were short but late again: memspy sent them when a CPU came free,
 * after the bursts (17-21% of samples in 1 ms bursts taking 24-27% of the
 * time).
 */
static void interrupts_sent(void *ctx)
{
	(void)ctx;
	ms_rec_walk_prio_realtime(false);
}

/* While stopped: registers and one stack copy per thread, nothing else. */
static void grab_threads(struct ms_rec_walk *w, bool stacks)
{
	size_t n = ms_proc_nthreads(w->p);

	threads_reserve(w, n);
	if (n != w->kernel0.n)
		w->threads_changed = true;
	w->a.nthr = 0;
	for (size_t i = 0; i < n; i++) {
		struct thr *t = &w->thr[w->a.nthr];
		pid_t last_tid = t->tid; /* this slot at the stop before */
		int last_nr = t->asleep ? t->syscall_nr : -1;
		ssize_t got;

		t->tid = ms_proc_thread(w->p, i);
		t->ok = false;
		t->len = 0;
		if (ms_proc_get_regs(w->p, t->tid, &t->regs))
			continue; /* a thread held at a trap or gone: skip it this time */
		t->asleep = thread_asleep(w, i, t);
		/*
		 * A sleep memspy's last stop cut short goes on in restart_syscall:
		 * it is still the same wait, named as at that stop.
		 */
		if (t->asleep && t->syscall_nr == SYS_restart_syscall && last_tid == t->tid &&
		    last_nr >= 0)
			t->syscall_nr = last_nr;
		w->a.nthr++;
		if (!stacks)
			continue;
		got = ms_mem_read_pid(ms_proc_pid(w->p), t->regs.rsp, t->stack, w->o.stack_bytes);
		t->len = got > 0 ? (size_t)got : 0;
		t->ok = true;
	}
}

/* After resuming: unwind the copies (no fallback reads: the threads run again). */
static void unwind_threads(struct ms_rec_walk *w)
{
	for (size_t i = 0; i < w->a.nthr; i++) {
		struct thr *t = &w->thr[i];
		struct ms_stack_copy sc = {
		    .regs = &t->regs, .data = t->stack, .len = t->len, .addr = t->regs.rsp};
		size_t n = 0;

		if (!t->ok)
			continue;
		w->a.thread_samples++;
		if (t->asleep) {
			w->a.sleeping_samples++;
			w->a.asleep_in[t->syscall_nr >= 0 && t->syscall_nr < MS_REC_WALK_NSYSCALLS
					   ? t->syscall_nr
					   : MS_REC_WALK_NSYSCALLS]++;
		} else {
			w->a.running_samples++;
		}
		if (ms_unwind(w->unwinder, &sc, w->pcs, MAX_PCS, &n) || !n) {
			w->a.unwind_failures++;
			w->pcs[0] = t->regs.rip;
			n = 1;
		}
		ms_rec_table_count(w->stacks, w->pcs, n, t->asleep ? 1 + t->syscall_nr : 0);
	}
}

/* While stopped: the arena headers (or the whole heap with --full-walk). */
static void read_heap(struct ms_rec_walk *w, struct ms_tl_sample *s, struct ms_heap_report *rep)
{
	struct ms_reader r;
	int rc;

	ms_proc_reader(w->p, &r);
	ms_xgrow((void **)&w->tids, &w->ntids_cap, w->a.nthr + 1, sizeof(*w->tids));
	w->fsb = ms_xrealloc(w->fsb, w->ntids_cap * sizeof(*w->fsb));
	for (size_t i = 0; i < w->a.nthr; i++) {
		w->tids[i] = w->thr[i].tid;
		w->fsb[i] = w->thr[i].regs.fs_base;
	}
	ms_heap_locate_threads(&w->loc, &r, ms_proc_maps(w->p), w->tids, w->fsb, w->a.nthr);
	if (w->o.full_walk) {
		rc = ms_heap_walk(&w->loc, &r, ms_proc_maps(w->p), rep);
		s->heap = rc == 0 || rc == -MS_E_CORRUPT;
		s->full_walk = true;
		return;
	}
	rc = ms_heap_quick_read(&w->loc, &r, &w->heap, w->o.max_reads);
	s->heap = rc == 0;
}

/* After resuming: turn what read_heap found into a timeline sample. */
static void heap_sample(struct ms_rec_walk *w, struct ms_tl_sample *s, struct ms_heap_report *rep)
{
	struct ms_tl_values *t = &s->total;

	s->narenas = 0;
	if (!s->heap)
		return;
	if (s->full_walk) {
		ms_xgrow((void **)&w->tla, &w->tla_cap, rep->narenas + 1, sizeof(*w->tla));
		for (size_t i = 0; i < rep->narenas; i++) {
			const struct ms_heap_arena *a = &rep->arenas[i];
			struct ms_tl_values *v = &w->tla[i].v;

			w->tla[i] = (struct ms_tl_arena){.addr = a->addr, .is_main = a->is_main};
			v->system = a->system_mem;
			v->top = a->c.bytes[MS_HK_TOP];
			v->in_use = a->mi.uordblks;
			v->free = a->mi.fordblks - MS_MIN(a->mi.fordblks, v->top);
			v->tcache = a->c.bytes[MS_HK_TCACHE];
			t->system += v->system;
			t->top += v->top;
			t->free += v->free;
		}
		s->narenas = rep->narenas;
		t->in_use = rep->mi.uordblks;
		t->tcache = rep->total.bytes[MS_HK_TCACHE];
		t->mmapped = rep->mi.hblkhd;
		s->approximate = rep->partial;
		s->inconsistent = rep->inconsistent;
	} else {
		struct ms_heap_quick *h = &w->heap;

		ms_xgrow((void **)&w->tla, &w->tla_cap, h->narenas + 1, sizeof(*w->tla));
		for (size_t i = 0; i < h->narenas; i++) {
			const struct ms_heap_quick_arena *a = &h->arenas[i];
			struct ms_tl_values *v = &w->tla[i].v;
			uint64_t fr = a->fast + a->unsorted + a->small + a->large;

			w->tla[i] = (struct ms_tl_arena){.addr = a->addr, .is_main = a->is_main};
			v->system = a->system_mem;
			v->top = a->top;
			v->free = fr;
			/* As mallinfo2: uordblks = system_mem - fordblks (free + top). */
			v->in_use = a->system_mem - MS_MIN(a->system_mem, fr + a->top);
			t->system += v->system;
			t->top += v->top;
			t->free += v->free;
			t->in_use += v->in_use;
		}
		s->narenas = h->narenas;
		t->tcache = h->tcache;
		t->mmapped = h->mmapped_mem;
		s->approximate = h->capped;
		s->inconsistent = h->inconsistent;
	}
	s->arenas = w->tla;
	if (s->approximate)
		w->a.heap_capped++;
	if (s->inconsistent)
		w->a.heap_inconsistent++;
}

/* pid's auxiliary vector into buf (at most cap bytes); its length, 0 when unreadable. */
static size_t read_auxv(pid_t pid, unsigned char *buf, size_t cap)
{
	char path[64];
	size_t n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
		n += (size_t)r;
	close(fd);
	return n;
}

/*
 * Has the target exec'd since the start? A seized tracee execs silently
 * (no SIGTRAP without PTRACE_O_TRACEEXEC), and its stacks would then be
 * named from the old program's modules.
 */
static bool execd(const struct ms_rec_walk *w)
{
	unsigned char now[sizeof(w->auxv)];
	size_t n;

	if (!w->auxv_len)
		return false;
	n = read_auxv(ms_proc_pid(w->p), now, sizeof(now));
	return n && (n != w->auxv_len || memcmp(now, w->auxv, n));
}

/* tick(): the target exec'd; the stop took nothing. */
#define TICK_EXECD 1

/*
 * One stop. Returns 0, TICK_EXECD, or -MS_E_TARGET_EXITED when the target
 * is gone. pause = from the first interrupt to the last resume.
 */
static int tick(struct ms_rec_walk *w, bool do_stack, bool do_heap, bool heap_read)
{
	struct ms_tl_sample s = {0};
	struct ms_heap_report rep;
	struct ms_proc_mem_summary ms;
	uint64_t t0 = 0, t1;
	int rc;

	memset(&rep, 0, sizeof(rep));
	heap_read = heap_read && do_heap && w->a.have_loc;
	if (heap_read)
		ms_proc_refresh_maps(w->p); /* while it runs: the heap may have grown */
	if (do_stack || heap_read) {
		w->npre = 0;
		if (do_stack)
			read_states(w);
		t0 = ms_now_ns();
		rc = ms_proc_stop_all(w->p);
		if (rc) {
			t1 = ms_now_ns();
			if (rc == -MS_E_TARGET_EXITED)
				return rc;
			/* stop_all resumed everything: count it, try again next tick. */
			w->a.stop_failures++;
			w->a.last_stop_error = rc;
			pause_add(heap_read ? &w->a.heap_pauses : &w->a.stack_pauses, t1 - t0);
			return 0;
		}
		/*
		 * Checked while stopped, where no exec can follow: a stop after
		 * an exec would take the new program's stacks and name them from
		 * the old one's modules. Checked before the stop, it took ~35 us
		 * of memspy's real-time hold, which threads woken meanwhile wait
		 * for (doc/DESIGN.md, "Sampling instants").
		 */
		if (execd(w)) {
			ms_proc_resume_all(w->p);
			pause_add(heap_read ? &w->a.heap_pauses : &w->a.stack_pauses,
				  ms_now_ns() - t0);
			return TICK_EXECD;
		}
		grab_threads(w, do_stack);
		if (heap_read) {
			uint64_t r0 = ms_now_ns();

			read_heap(w, &s, &rep);
			w->last_read_ns = ms_now_ns() - r0;
		}
		ms_proc_resume_all(w->p);
		t1 = ms_now_ns();
		w->a.stops++;
		pause_add(heap_read ? &w->a.heap_pauses : &w->a.stack_pauses, t1 - t0);
		if (do_stack) {
			w->a.stack_ticks++;
			unwind_threads(w);
			w->a.stack_work_ns += ms_now_ns() - t0;
		}
	}
	if (do_heap) {
		w->a.heap_ticks++;
		if (!heap_read)
			t0 = ms_now_ns();
		s.t_ns = t0 - w->a.start_ns;
		heap_sample(w, &s, &rep);
		if (ms_proc_mem_summary(ms_proc_pid(w->p), &ms) == 0)
			s.total.rss = ms.vm_rss;
		/* For a -v line: what this heap sample found. */
		w->a.heap_sample = (struct ms_rec_walk_heap_sample){
		    .fresh = true,
		    .index = ms_timeline_nsamples(w->a.tl),
		    .stop_ns = t0,
		    .heap = s.heap,
		    .total = s.total,
		    .read_ns = heap_read ? w->last_read_ns : 0,
		    .reads = heap_read ? w->heap.reads : 0,
		};
		ms_timeline_add(w->a.tl, &s);
	}
	ms_heap_report_free(&rep);
	return 0;
}

/* ------------------------------ the session ------------------------------ */

int ms_rec_walk_open(struct ms_proc *p, const struct ms_rec_walk_opts *o, struct ms_rec_walk **out,
		     struct ms_error *err)
{
	struct ms_rec_walk *w = ms_xcalloc(1, sizeof(*w));
	pid_t pid = ms_proc_pid(p);
	char comm[64];

	*out = w;
	w->o = *o;
	w->p = p;
	w->stacks = ms_rec_table_new();
	w->unwinder = ms_unwinder_new(pid, o->unwinder, err);
	if (!w->unwinder)
		return err->code ? err->code : -EINVAL;
	/* Opens every module now, so symbolising works after the target exited. */
	w->sym = ms_symbolizer_new(pid, err);
	if (!w->sym)
		return err->code ? err->code : -EINVAL;
	w->a.glibc =
	    ms_heap_detect_allocator(pid, ms_proc_maps(p), w->a.allocator, sizeof(w->a.allocator));
	if (!w->a.glibc) {
		/* "Uses another allocator" only from maps read with every thread stopped. */
		int rc = ms_proc_refresh_maps_stopped(p, err);

		if (rc)
			return rc;
		w->a.glibc = ms_heap_detect_allocator(pid, ms_proc_maps(p), w->a.allocator,
						      sizeof(w->a.allocator));
	}
	if (w->a.glibc) {
		struct ms_reader r;

		/* The expensive part (DWARF) while the target runs. */
		ms_proc_reader(p, &r);
		if (ms_heap_locate(pid, ms_proc_maps(p), &r, NULL, &w->loc, &w->heap_err) == 0) {
			w->a.have_loc = true;
			if (w->loc.glibc_version[0])
				snprintf(w->a.allocator, sizeof(w->a.allocator), "glibc %s",
					 w->loc.glibc_version);
		}
	}
	{
		char *note = !w->a.glibc
				 ? ms_xasprintf("no heap figures: the heap timeline needs glibc "
						"malloc, and this process uses %s (RSS only)",
						w->a.allocator)
			     : !w->a.have_loc ? ms_xstrdup("no heap figures: glibc malloc's state "
							   "was not found (RSS only)")
					      : NULL;
		struct ms_tl_info info = {.pid = pid,
					  .comm = ms_proc_comm(pid, comm, sizeof(comm)),
					  .command = o->command,
					  .allocator = w->a.allocator,
					  .note = note,
					  .interval_ns = o->walk_ns};

		w->a.tl = ms_timeline_new(&info);
		free(note);
	}

	/*
	 * Sampling instants independent of the target (walk_sampler.c): no
	 * timer slack to coalesce memspy's wake-ups with the target's, and
	 * exponential intervals, so no periodic activity is seen at one phase.
	 */
	w->old_slack = ms_rec_walk_timer_slack_minimal();
	w->a.realtime = ms_rec_walk_prio_realtime(true);
	if (w->a.realtime)
		ms_proc_set_interrupted_hook(p, interrupts_sent, w);
	ms_rec_walk_rng_seed(&w->rng, ms_now_ns() ^ ((uint64_t)getpid() << 32));
	{
		size_t nt = ms_proc_nthreads(p);
		pid_t *tids = ms_xcalloc(nt ? nt : 1, sizeof(*tids));

		for (size_t i = 0; i < nt; i++)
			tids[i] = ms_proc_thread(p, i);
		ms_rec_walk_sched_begin(&w->kernel0, pid, tids, nt);
		free(tids);
	}
	w->auxv_len = read_auxv(pid, w->auxv, sizeof(w->auxv));
	w->a.start_ns = ms_now_ns();
	if (o->duration_ns)
		w->deadline = w->a.start_ns + o->duration_ns;
	w->stack_period = (uint64_t)(1e9 / o->rate);
	w->next_heap = w->a.start_ns;
	w->next_stack = w->a.start_ns + ms_rec_walk_interval_ns(&w->rng, w->stack_period);
	return 0;
}

int ms_rec_walk_step(struct ms_rec_walk *w)
{
	struct ms_rec_end *oc = &w->a.end;
	struct ms_event ev;
	uint64_t now = ms_now_ns(), due = MS_MIN(w->next_stack, w->next_heap);
	bool do_stack, do_heap, heap_read;
	double allowed;
	int rc;

	if (w->ended)
		return MS_REC_WALK_ENDED;
	w->a.heap_sample.fresh = false;
	if (w->deadline && now >= w->deadline) {
		oc->duration_elapsed = true;
		goto ended;
	}
	if ((oc->stop_signal = ms_signals_stop_requested()))
		goto ended;
	if (w->deadline)
		due = MS_MIN(due, w->deadline);
	if (w->a.realtime)
		ms_rec_walk_prio_realtime(true); /* wake up on time, even on a loaded machine */
	if (now < due && due - now < 1000000) {
		/* The last stretch to the nanosecond (waits below take whole ms). */
		ms_rec_walk_sleep_until(due);
		return 0;
	}
	if (now < due) {
		/* Whole milliseconds, rounded down: events wake it early. */
		rc = ms_proc_wait(w->p, (int)((due - now) / 1000000), &ev);
		if (rc) {
			oc->wait_error = rc;
			goto ended;
		}
		if (ev.kind == MS_EV_EXITED) {
			oc->target_exited = true;
			oc->exit_status = ev.status;
			goto ended;
		}
		if (ev.kind == MS_EV_STOP_REQUEST) {
			oc->stop_signal = ms_signals_stop_requested();
			goto ended;
		}
		/* A trap is the target's own: nothing is patched. */
		if (ev.kind == MS_EV_TRAP)
			ms_proc_pass_trap(w->p, ev.tid);
		if (ev.kind == MS_EV_FORK)
			ms_proc_fork_child_detach(ev.child);
		return 0;
	}
	do_stack = now >= w->next_stack;
	do_heap = now >= w->next_heap;
	/*
	 * An instant that came due while memspy was busy with its last
	 * stop is skipped, not taken late: taken late, it would land
	 * just after a resume, when every thread the stop woke is
	 * runnable again. Otherwise the next instant is an exponential
	 * interval after this one's, so memspy's wake-up latency does
	 * not shift the schedule (and a fresh start from now when even
	 * that is past: missed instants are not made up for in a burst).
	 */
	if (do_stack && w->next_stack < w->busy_until) {
		w->a.skipped_busy++;
		w->next_stack = now + ms_rec_walk_interval_ns(&w->rng, w->stack_period);
		do_stack = false;
	} else if (do_stack) {
		w->a.late_ns += now - w->next_stack;
		w->next_stack += ms_rec_walk_interval_ns(&w->rng, w->stack_period);
		if (w->next_stack <= now)
			w->next_stack = now + ms_rec_walk_interval_ns(&w->rng, w->stack_period);
	}
	if (do_heap)
		w->next_heap = MS_MAX(w->next_heap + w->o.walk_ns, now + w->o.walk_ns / 2);
	/* The pause budget: stopped time may not exceed max_share of wall time. */
	allowed = w->o.max_share * (double)(now - w->a.start_ns) + (double)BUDGET_CREDIT_NS -
		  (double)ms_rec_walk_paused_ns(&w->a);
	heap_read = do_heap && w->a.have_loc;
	if (heap_read && allowed < MS_MAX(w->a.heap_pauses.ewma_ns, 1.0)) {
		/* Still an RSS point, which needs no stop. */
		w->a.skipped_heap++;
		heap_read = false;
	}
	if (do_stack && !heap_read &&
	    allowed < (w->a.stack_pauses.ewma_ns ? w->a.stack_pauses.ewma_ns : 100000.0)) {
		double need = w->a.stack_pauses.ewma_ns ? w->a.stack_pauses.ewma_ns : 100000.0;
		uint64_t skip = (uint64_t)((need - allowed) / w->o.max_share);

		/*
		 * Sleep until the budget allows a stop rather than waking at
		 * --rate only to skip: memspy's own CPU competes with the target.
		 */
		w->a.skipped_stack += 1 + skip / w->stack_period;
		w->next_stack = MS_MAX(w->next_stack, now + skip) +
				ms_rec_walk_interval_ns(&w->rng, w->stack_period);
		do_stack = false;
	}
	if (!do_stack && !do_heap)
		return 0;
	/* A heap point without a stop: checked here (tick checks while stopped). */
	if (!do_stack && !heap_read && execd(w)) {
		oc->target_execd = true;
		goto ended;
	}
	rc = tick(w, do_stack, do_heap, heap_read);
	w->busy_until = ms_now_ns();
	if (rc == TICK_EXECD) {
		oc->target_execd = true;
		goto ended;
	}
	if (rc == -MS_E_TARGET_EXITED) {
		oc->target_exited = true;
		ms_proc_exited(w->p, &oc->exit_status);
		goto ended;
	}
	return MS_REC_WALK_STOPPED;
ended:
	w->ended = true;
	return MS_REC_WALK_ENDED;
}

void ms_rec_walk_close(struct ms_rec_walk *w)
{
	struct ms_rec_end *oc = &w->a.end;

	w->ended = true;
	oc->wall_ns = ms_now_ns() - w->a.start_ns;
	ms_rec_walk_timer_slack_restore(w->old_slack);
	if (w->a.realtime)
		ms_rec_walk_prio_realtime(false);
	/* The kernel's accounting over the same window, before anything else runs. */
	w->a.kernel_ok =
	    ms_rec_walk_sched_end(&w->kernel0, ms_proc_pid(w->p), oc->wall_ns, &w->a.kernel_run,
				  &w->a.kernel_wait, &w->a.kernel_threads);
	/* Comparable only when the sampled threads are the ones alive all along. */
	if (w->threads_changed || w->a.kernel_threads != w->kernel0.n)
		w->a.kernel_ok = false;
	if (!oc->target_exited && ms_proc_exited(w->p, &oc->exit_status))
		oc->target_exited = true;
	/* The target first: nothing was patched, so detaching is all it needs. */
	ms_proc_detach(w->p);
}

void ms_rec_walk_read(struct ms_rec_walk *w, struct ms_rec_walk_read *out)
{
	*out = (struct ms_rec_walk_read){
	    .account = &w->a,
	    .proc = w->p,
	    .table = w->stacks,
	    .sym = w->sym,
	    .heap_err = w->a.glibc && !w->a.have_loc ? &w->heap_err : NULL,
	};
}

void ms_rec_walk_free(struct ms_rec_walk *w)
{
	if (!w)
		return;
	ms_proc_free(w->p);
	ms_symbolizer_free(w->sym);
	ms_unwinder_free(w->unwinder);
	ms_rec_table_free(w->stacks);
	for (size_t i = 0; i < w->thr_cap; i++)
		free(w->thr[i].stack);
	free(w->thr);
	free(w->tids);
	free(w->fsb);
	free(w->tla);
	ms_heap_quick_free(&w->heap);
	ms_heap_loc_free(&w->loc);
	ms_timeline_free(w->a.tl);
	ms_rec_walk_sched_free(&w->kernel0);
	free(w->pre_tid);
	ms_rec_walk_states_close(&w->states);
	free(w->pre_state);
	free(w->a.stack_pauses.us);
	free(w->a.heap_pauses.us);
	free(w);
}
