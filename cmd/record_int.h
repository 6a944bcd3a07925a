/* SPDX-License-Identifier: MIT */
/*
 * memspy record, private: the sample table that the recording loop fills at
 * each stop (raw PCs, interned per distinct stack) and the end reads back.
 */
#ifndef MEMSPY_RECORD_INT_H
#define MEMSPY_RECORD_INT_H

#include "common/common.h"

#include <stdio.h>
#include <sys/types.h>

struct ms_rec_table; /* opaque */

/* Totals of one distinct stack, as estimated from its samples. */
struct ms_rec_stack {
	const ms_raddr_t *pcs; /* leaf first: pcs[0] = the allocator's entry; borrowed */
	size_t npcs;
	int fn;		     /* enum ms_alloc_fn of the first sample (the leaf function) */
	uint64_t samples;    /* sampled allocations on this stack */
	uint64_t live_samples; /* of them, not freed by the end */
	uint64_t bytes;	     /* estimated bytes allocated (sum of weights) */
	double count;	     /* estimated allocations (sum of weight / size) */
	uint64_t live_bytes; /* estimated bytes not freed by the end */
	double live_count;   /* estimated allocations not freed by the end */
};

struct ms_rec_table *ms_rec_table_new(void);
/*
 * Frees will not be reported (no --live, no --interval): a sample counts in
 * its stack's totals but is not kept for matching a free, so the table
 * does no per-sample bookkeeping that nothing reads.
 */
void ms_rec_table_no_frees(struct ms_rec_table *t);
void ms_rec_table_free(struct ms_rec_table *t);

/*
 * Stores one sampled allocation: its stack (copied), the bytes it stands for
 * (weight), the bytes asked for (size), the returned pointer and the
 * function called. A call that returned 0 allocated nothing: it is only
 * counted in ms_rec_totals.failed.
 */
void ms_rec_table_add(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int fn,
		      uint64_t weight, uint64_t size, ms_raddr_t ptr, pid_t tid);
/*
 * The same for a sample whose free will never be reported (the probes'
 * pointer table had no room for it): counted live for good in its stack's
 * figures, and not kept one by one (no free can match it). Once the table
 * is full every sample is one: kept, they grew memspy by ~1.9 MiB a minute.
 */
void ms_rec_table_add_unfollowed(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs,
				 int fn, uint64_t weight, uint64_t size, ms_raddr_t ptr);

/*
 * A free of ptr: marks the most recent live sample at ptr freed (the same
 * address can be sampled again after it was freed). Returns 1 when a sample
 * matched, 0 when none did (a pointer allocated before the recording, or not
 * sampled).
 */
int ms_rec_table_free_ptr(struct ms_rec_table *t, ms_raddr_t ptr);

/*
 * Drops the samples already freed (their figures stay in their stacks'), so
 * that a recording of hours keeps only its live samples between calls
 * (record --interval calls it at each interval's end).
 */
void ms_rec_table_compact(struct ms_rec_table *t);

/* Number of distinct stacks; stack i's totals into *out (pcs borrowed from t). */
size_t ms_rec_table_nstacks(const struct ms_rec_table *t);
void ms_rec_table_stack(const struct ms_rec_table *t, size_t i, struct ms_rec_stack *out);

/* Totals over every sample. Any pointer may be NULL. */
struct ms_rec_totals {
	uint64_t samples, live_samples, frees_matched, failed;
	uint64_t bytes, live_bytes;
	double count, live_count;
	size_t distinct_pcs_hint; /* total PCs stored over distinct stacks */
	/* Bounds on memspy's memory (record_samples.c) and what hitting them did. */
	uint64_t stacks_capped; /* samples past the bound on distinct stacks: no frames kept */
	uint64_t untracked;	/* samples past the bound on kept samples: free not matched */
	size_t max_stacks, max_pcs, max_samples;
};
void ms_rec_table_totals(const struct ms_rec_table *t, struct ms_rec_totals *out);

/* ------------------------------ overhead budget ------------------------------ */

/*
 * Cumulative figures since the recording started, read by record's loop;
 * the budget works on the differences between two readings.
 */
struct ms_rec_cost {
	uint64_t wall_ns;	/* CLOCK_MONOTONIC */
	uint64_t self_cpu_ns;	/* memspy's CPU, all its threads */
	uint64_t stopped_ns;	/* target threads held stopped by probes (sum) */
	uint64_t stub_ns;	/* target time in the stubs recording samples */
	uint64_t target_cpu_ns; /* target's utime + stime, whole process */
	uint64_t run_delay_ns;	/* target threads' time waiting for a CPU (schedstat, summed) */
	uint64_t busy_cpu_ns;	/* the machine's non-idle CPU time, all CPUs (/proc/stat) */
	uint64_t samples;	/* allocation samples delivered */
	uint64_t lost;		/* sampled allocations lost: the in-target ring was full */
	uint64_t polls;		/* iterations of record's loop */
	uint64_t idle_polls;	/* of those, iterations that delivered nothing */
	uint64_t idle_cpu_ns;	/* memspy's CPU in the idle iterations */
	uint64_t upkeep_ns;	/* memspy's CPU in upkeep that samples do not drive: budget
				 * readings, the progress line, module refreshes, a view's hook */
	uint64_t tracked;	/* sampled blocks whose free the probes follow now (in the
				 * in-target table; 0 when frees are not followed) */
};

/*
 * The --max-overhead controller: the budget is what slows the target down.
 * Its cost is the time the target's threads spend in the probes' stubs and
 * held in stops, plus the part of memspy's own CPU that competed with them
 * for a CPU, over the CPU time the target used. That part is measured:
 * the target threads' run delay (time runnable but waiting for a CPU)
 * beyond what it was before memspy attached, at most memspy's sampling
 * CPU times the target's share of the machine's busy CPU time (memspy
 * displaces the CPUs' users in proportion to their use). memspy's CPU on an
 * otherwise idle core slows nothing and is not counted, only reported.
 * memspy's fixed CPU (loop iterations that delivered nothing: waiting,
 * reading an empty ring, at the slowest polling pace) does not shrink with
 * the mean and is left out. As a guard for memspy itself, its sampling CPU
 * is kept under MS_REC_BUDGET_SELF_MAX of one core, and the samples lost to
 * a full in-target ring (memspy drains it too slowly, e.g. when it gets
 * too little CPU) under MS_REC_BUDGET_MAX_LOST of those taken.
 *
 * The mean moves both ways: wider when the cost is over the budget, and
 * narrower, down to min_mean (4 KiB by default, --sample-bytes when given
 * with --max-overhead), when the cost is under half of it.
 *
 * When frees are followed (--live, --interval), the sampled blocks not yet
 * freed sit in the probes' in-target table (MS_PROBE_PTR_TABLE_SLOTS): past
 * MS_REC_BUDGET_TABLE_FILL of it its buckets overflow, and a block whose
 * insert fails counts as live for good (a false leak). Their number,
 * against that level, is one more cost: the mean widens above it (fewer
 * new entries; the held ones leave as they are freed) and narrows only
 * below half of it.
 */
struct ms_rec_budget {
	double budget;	   /* fraction of the target's CPU time; 0 = off (measure only) */
	uint64_t min_mean; /* never narrower */
	uint64_t max_mean; /* never wider */
	uint64_t start_mean; /* the mean the recording started with */
	uint64_t mean;	   /* in force */
	uint64_t peak_mean, narrowest_mean;
	unsigned widened, narrowed, decisions, idle_windows;
	bool capped;	   /* over budget at max_mean: nothing more to widen */
	bool self_over;	   /* memspy's own CPU guard widened the mean at least once */
	bool lost_over;	   /* samples lost to a full ring widened the mean at least once */
	bool table_over;   /* the in-target pointer table filling widened it at least once */
	uint64_t peak_tracked; /* most sampled blocks followed at once */
	bool started;
	struct ms_rec_cost first, win; /* first reading; start of the current window */
	double last_ratio;	       /* cost / target CPU of the last decided window */
	double floor_poll_hz; /* loop iterations per second at the slowest pace (0: all of them) */
	/*
	 * Run delay of the target's threads per ns of their CPU before memspy
	 * attached; < 0 when not measured (then memspy's competing CPU is
	 * taken as its sampling CPU times the target's share of the machine).
	 */
	double base_delay_per_cpu;
	double base_delay_per_wall; /* the same per ns of wall time, for an idle baseline */
};

#define MS_REC_BUDGET_FIRST_NS	500000000ull  /* first decision after 0.5 s */
#define MS_REC_BUDGET_WINDOW_NS 1000000000ull /* then at most one change per second */
#define MS_REC_BUDGET_MAX_MEAN	(1ull << 30)
#define MS_REC_BUDGET_MIN_MEAN	4096ull	      /* the narrowest mean the budget picks alone */
#define MS_REC_BUDGET_START_MEAN (512ull * 1024) /* the default mean at the start */
#define MS_REC_BUDGET_SELF_MAX	0.10	      /* memspy's sampling CPU: at most 10% of a core */
#define MS_REC_BUDGET_MAX_LOST	0.25	      /* samples lost to a full ring: at most 1 in 4 */
#define MS_REC_BUDGET_TABLE_FILL 0.1875      /* followed blocks: 1.5 per bucket of 8 on average */
#define MS_REC_BUDGET_TABLE_MAX_MEAN (512ull * 1024) /* the table guard widens up to this */

void ms_rec_budget_init(struct ms_rec_budget *b, double budget, uint64_t mean, uint64_t min_mean,
			uint64_t max_mean);
/*
 * Feeds a reading. Returns the new mean to set (the caller applies it and
 * the controller assumes it took effect), or 0 for no change. Why a
 * decision was taken is logged at info level, every window at debug level.
 */
uint64_t ms_rec_budget_update(struct ms_rec_budget *b, const struct ms_rec_cost *now);
/* memspy's fixed CPU per loop iteration, as estimated from the idle iterations (ns). */
double ms_rec_budget_floor_per_poll(const struct ms_rec_cost *c);
/*
 * memspy's fixed cost between two readings (ns): what it would spend with
 * no samples at all, polling at its slowest pace. The loop polls faster
 * when samples come fast, so the extra polls count as sampling cost.
 */
double ms_rec_budget_floor(const struct ms_rec_budget *b, const struct ms_rec_cost *from,
			   const struct ms_rec_cost *to);

/* The parts of the cost between two readings, as the controller counts them (ns). */
struct ms_rec_cost_parts {
	double target_cpu;   /* the target's CPU time */
	double in_probes;    /* target threads in the stubs and held in stops */
	double self, fixed;  /* memspy's CPU, and of it the fixed polling floor */
	double extra_delay;  /* run delay beyond the baseline (< 0: less; NAN: not measured) */
	double competing;    /* memspy's CPU counted as slowing the target */
	double cost;	     /* in_probes + competing */
};
void ms_rec_budget_parts(const struct ms_rec_budget *b, const struct ms_rec_cost *from,
			 const struct ms_rec_cost *to, struct ms_rec_cost_parts *out);

/*
 * The target's CPU time comes in 10 ms ticks: under 100 ms of it, or under
 * 0.5% of a core, a share of it says nothing; the slowdown is then not
 * measurable (the absolute figures still are, and are printed).
 */
#define MS_REC_IDLE_TARGET_CPU_NS 100000000.0
#define MS_REC_IDLE_TARGET_SHARE  0.005

/* ------------------------- record's loop, for other commands ------------------------- */

struct ms_symbolizer;
/* What a hook sees of a recording; everything borrowed, valid during the call. */
struct ms_rec_view {
	pid_t pid;
	bool live;			  /* frees are probed: live figures are meaningful */
	uint64_t start_ns;		  /* ms_now_ns() when the probes went in */
	const struct ms_rec_table *table; /* the samples so far */
	struct ms_symbolizer *sym;	  /* made at attach time; symbolises while the target runs */
	const struct ms_rec_budget *budget; /* mean in force; budget->first: the first reading */
	const struct ms_rec_cost *last;	  /* the latest reading (10 a second; the final one at the end) */
};

#define MS_REC_STEP_BUSY 1 /* the hook did work: its CPU is not counted as idle polling */
#define MS_REC_STEP_STOP 2 /* end the recording, as Ctrl-C does */

/*
 * A command built on record's loop (memspy top). Options are record's, less
 * those about a file (-o, -f, --count, --lines, --mode); nothing is written,
 * the summary is record's (its first line names cmd, not a file).
 */
struct ms_rec_hooks {
	const char *cmd;	   /* "top": in messages */
	void (*help)(FILE *f);	   /* --help */
	void *ctx;
	/* Each iteration of the loop (every 5-50 ms): returns MS_REC_STEP_* flags. */
	int (*step)(void *ctx, const struct ms_rec_view *v);
	/* Once, after every probe is removed and the target detached (and verified), before the summary. */
	void (*ended)(void *ctx, const struct ms_rec_view *v);
};

/* memspy record's main (h NULL), or with hooks; returns the exit code record's help lists. */
int ms_rec_main(int argc, char **argv, const struct ms_rec_hooks *h);

struct ms_modules;
struct ms_probes;
/*
 * After detach: compares the executable mappings of every module that had a
 * probe with the module's file, byte for byte. Returns 0 when identical
 * (note says what was checked), -EIO when a byte differs (note names the
 * first one), or another negative code when the check could not be done
 * (note says why). *note is allocated; the caller frees it.
 */
int ms_rec_verify_text(pid_t pid, const struct ms_modules *mods, struct ms_probes *pr, char **note);

#endif
