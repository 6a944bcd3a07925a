// SPDX-License-Identifier: MIT
/*
 * memspy record --mode walk, what it says at the end: the files written
 * with the samples they rest on, the threads' states against the kernel's
 * view, the heap timeline's first and last figures, the pauses and their
 * budget, the rate asked against the rate had and why. The figures are
 * record/walk.c's account; nothing here measures or decides.
 */
#include "cmd/record_walk.h"
#include "output/output.h"
#include "output/timeline.h"

#include <stdio.h>

/* "12,345 running and 3,193 sleeping (in clock_nanosleep 3,000, futex 193)", and the kernel's view.
 */
static void print_thread_states(struct ms_rec_walk_account *w, const struct ms_rec_end *oc,
				uint64_t alloc_asleep)
{
	char a[32], b[32], c[32], list[256] = "";
	bool taken[MS_REC_WALK_NSYSCALLS + 1] = {false};
	size_t len = 0;

	/* The four commonest waits, largest first ("other" when not one syscall). */
	for (int k = 0; k < 4; k++) {
		size_t best = SIZE_MAX;

		for (size_t i = 0; i <= MS_REC_WALK_NSYSCALLS; i++)
			if (!taken[i] && w->asleep_in[i] &&
			    (best == SIZE_MAX || w->asleep_in[i] > w->asleep_in[best]))
				best = i;
		if (best == SIZE_MAX)
			break;
		taken[best] = true;
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %s",
						len ? ", " : "in ",
						best == MS_REC_WALK_NSYSCALLS ? "other calls"
						: ms_rec_syscall_name((int)best)
						    ? ms_rec_syscall_name((int)best)
						    : ms_fmt_count(c, sizeof(c), (uint64_t)best),
						ms_fmt_count(a, sizeof(a), w->asleep_in[best]));
	}
	fprintf(stderr, "  thread samples: %s running and %s sleeping%s%s%s\n",
		ms_fmt_count(a, sizeof(a), w->running_samples),
		ms_fmt_count(b, sizeof(b), w->sleeping_samples), len ? " (" : "", list,
		len ? ")" : "");
	if (alloc_asleep)
		fprintf(stderr,
			"  %s of the sleeping samples were waiting inside allocator code (a lock "
			"inside malloc, or an allocator's own thread): not counted as allocator "
			"time\n",
			ms_fmt_count(a, sizeof(a), alloc_asleep));
	/* The same question asked of the kernel: is the sampler fair? */
	if (w->thread_samples && w->kernel_ok)
		fprintf(stderr,
			"  running share: %.1f%% of thread samples; the kernel's: %.1f%% of the "
			"time of %zu thread%s on a CPU, %.1f%% with %s wait for one "
			"(/proc/PID/task/*/schedstat)\n",
			100.0 * (double)w->running_samples / (double)w->thread_samples,
			100 * w->kernel_run, w->kernel_threads, w->kernel_threads == 1 ? "" : "s",
			100 * (w->kernel_run + w->kernel_wait),
			w->kernel_threads == 1 ? "its" : "their");
}

/* The rate asked against the rate had, and why they differ. */
static void print_rate(const struct walk_opts *o, struct ms_rec_walk_account *w,
		       const struct ms_rec_end *oc)
{
	char a[32], b[32], why[512] = "";
	size_t len = 0;
	double had = ms_rec_walk_rate_had(w);
	double work = w->stack_ticks ? (double)w->stack_work_ns / (double)w->stack_ticks : 0;
	double late = w->stack_ticks ? (double)w->late_ns / (double)w->stack_ticks : 0;

	fprintf(stderr,
		"  stacks: %g Hz asked, %.1f Hz had (%s stops with stacks in %.1f s, at "
		"random instants)",
		o->rate, had, ms_fmt_count(a, sizeof(a), w->stack_ticks),
		(double)oc->wall_ns / 1e9);
	if (had >= 0.9 * o->rate) {
		fprintf(stderr, "\n");
		return;
	}
#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (len < sizeof(why))                                                             \
			len += (size_t)snprintf(why + len, sizeof(why) - len, __VA_ARGS__);        \
	} while (0)
	if (w->skipped_stack)
		WHY("%sthe pause budget skipped %s (--max-pause-share %.2g%%; a stop paused the "
		    "target %s at the median)",
		    len ? "; " : "", ms_fmt_count(a, sizeof(a), w->skipped_stack),
		    o->max_share * 100,
		    ms_fmt_duration(b, sizeof(b), ms_rec_pauses_median_ns(&w->stack_pauses)));
	if (w->skipped_busy)
		WHY("%s%s instants came due while memspy was still busy with the stop before "
		    "(stop, copy, unwind of %zu thread%s: %s each on average) and were skipped",
		    len ? "; " : "", ms_fmt_count(a, sizeof(a), w->skipped_busy), w->nthr,
		    w->nthr == 1 ? "" : "s",
		    ms_fmt_duration(b, sizeof(b), (uint64_t)work));
	if (late > 200000)
		WHY("%smemspy woke %s late on average (%s: the machine's CPUs were busy)",
		    len ? "; " : "", ms_fmt_duration(a, sizeof(a), (uint64_t)late),
		    w->realtime ? "even at real-time priority"
				: "real-time priority was refused (CAP_SYS_NICE)");
	if (w->stop_failures)
		WHY("%s%s stops failed", len ? "; " : "",
		    ms_fmt_count(a, sizeof(a), w->stop_failures));
	if (!len)
		WHY("memspy did not get the CPU time to keep up");
#undef WHY
	fprintf(stderr, ": fewer, because %s\n", why);
}

void walk_print_summary(const struct walk_opts *o, struct ms_rec_walk_account *w,
			  const struct ms_rec_end *oc, uint64_t alloc_samples, uint64_t alloc_asleep,
			  uint64_t cpu_ns)
{
	char a[32], b[32], c[32], d[32];
	double share = oc->wall_ns ? (double)ms_rec_walk_paused_ns(w) / (double)oc->wall_ns : 0;
	size_t nt = ms_timeline_nsamples(w->tl);

	fprintf(stderr,
		"memspy: wrote %s (%s, allocator time): %s of %s running thread samples (%.1f%%) "
		"were inside the allocator, over %s\n",
		o->co.out_path, ms_out_format_name(o->co.fmt), ms_fmt_count(a, sizeof(a), alloc_samples),
		ms_fmt_count(b, sizeof(b), w->running_samples),
		w->running_samples ? 100.0 * (double)alloc_samples / (double)w->running_samples : 0,
		ms_fmt_duration(c, sizeof(c), (uint64_t)oc->wall_ns));
	print_thread_states(w, oc, alloc_asleep);
	fprintf(stderr, "  all threads: wrote %s (%s)\n", o->all_path,
		o->idle ? "every sampled stack, the sleeping ones under [asleep in ...]"
			: "the running threads' stacks; --idle adds the sleeping ones");
	fprintf(stderr, "  heap timeline: wrote %s (%zu samples", o->tl_path, nt);
	if (w->glibc && nt) {
		const struct ms_tl_sample *f = ms_timeline_sample(w->tl, 0);
		const struct ms_tl_sample *l = ms_timeline_sample(w->tl, nt - 1);

		/* First and last samples with heap figures (a skipped read holds RSS only). */
		for (size_t i = 0; i < nt && !f->heap; i++)
			f = ms_timeline_sample(w->tl, i);
		for (size_t i = nt; i-- > 0 && !l->heap;)
			l = ms_timeline_sample(w->tl, i);

		fprintf(stderr, "; in use %s -> %s",
			ms_fmt_bytes(a, sizeof(a), (uint64_t)f->total.in_use),
			ms_fmt_bytes(b, sizeof(b), (uint64_t)l->total.in_use));
		/* Blocks above the mmap threshold are not in the arenas' figures. */
		if (f->total.mmapped || l->total.mmapped)
			fprintf(stderr, " in the arenas, mmapped chunks %s -> %s",
				ms_fmt_bytes(a, sizeof(a), (uint64_t)f->total.mmapped),
				ms_fmt_bytes(b, sizeof(b), (uint64_t)l->total.mmapped));
		fprintf(stderr, ", RSS %s -> %s%s)\n",
			ms_fmt_bytes(c, sizeof(c), (uint64_t)f->total.rss),
			ms_fmt_bytes(d, sizeof(d), (uint64_t)l->total.rss),
			o->full_walk ? ", every chunk walked" : ", from the arena headers");
	} else {
		fprintf(stderr, ")\n");
	}
	if (!w->glibc)
		fprintf(stderr,
			"  note: the heap timeline needs glibc malloc; this process uses %s, "
			"so it holds RSS only (stacks and the flame graphs are complete)\n",
			w->allocator);
	if (w->heap_capped && o->full_walk)
		fprintf(stderr,
			"  %s heap walks were incomplete (see memspy dump for the anomalies)\n",
			ms_fmt_count(a, sizeof(a), w->heap_capped));
	else if (w->heap_capped)
		fprintf(stderr,
			"  %s heap reads cut a free list short (more than %llu chunks): their "
			"free bytes are a lower bound (--max-list-reads, or --full-walk)\n",
			ms_fmt_count(a, sizeof(a), w->heap_capped),
			(unsigned long long)o->max_reads);
	if (w->heap_inconsistent)
		fprintf(stderr,
			"  %s heap reads found an arena locked (a thread inside malloc): "
			"those figures may be off by a chunk\n",
			ms_fmt_count(a, sizeof(a), w->heap_inconsistent));
	fprintf(stderr, "  cost to the target: %s stops, median pause %s, worst %s",
		ms_fmt_count(a, sizeof(a), w->stops),
		ms_fmt_duration(b, sizeof(b), ms_rec_pauses_median_ns(&w->stack_pauses)),
		ms_fmt_duration(c, sizeof(c), (uint64_t)w->stack_pauses.worst_ns));
	if (w->heap_pauses.n)
		fprintf(stderr, " (heap reads: median %s, worst %s)",
			ms_fmt_duration(a, sizeof(a), ms_rec_pauses_median_ns(&w->heap_pauses)),
			ms_fmt_duration(b, sizeof(b), (uint64_t)w->heap_pauses.worst_ns));
	fprintf(stderr,
		"; stopped %s in all = estimated slowdown %.2f%% (stopped time / wall "
		"time; budget %.2g%%)\n",
		ms_fmt_duration(d, sizeof(d), (uint64_t)ms_rec_walk_paused_ns(w)), share * 100,
		o->max_share * 100);
	print_rate(o, w, oc);
	if (w->skipped_heap)
		fprintf(stderr,
			"  the pause budget skipped %s heap reads (--max-pause-share, "
			"--walk-interval)\n",
			ms_fmt_count(b, sizeof(b), w->skipped_heap));
	if (w->stop_failures)
		fprintf(stderr, "  %s stops failed (last: %s): those samples are missing\n",
			ms_fmt_count(a, sizeof(a), w->stop_failures),
			ms_strerror(w->last_stop_error));
	if (w->unwind_failures)
		fprintf(stderr, "  %s stacks could not be unwound past their first frame\n",
			ms_fmt_count(a, sizeof(a), w->unwind_failures));
	fprintf(stderr, "  memspy itself used %s of CPU\n",
		ms_fmt_duration(a, sizeof(a), (uint64_t)cpu_ns));
}
