/* SPDX-License-Identifier: MIT */
/*
 * memspy record, private: the sample table that the recording loop fills at
 * each stop (raw PCs, interned per distinct stack) and the end reads back.
 */
#ifndef MEMSPY_RECORD_INT_H
#define MEMSPY_RECORD_INT_H

#include "common/common.h"

#include <sys/types.h>

struct ms_rec_table; /* opaque */

/* Totals of one distinct stack, as estimated from its samples. */
struct ms_rec_stack {
	const ms_raddr_t *pcs; /* leaf first: pcs[0] = the allocator's entry; borrowed */
	size_t npcs;
	int fn;		     /* enum ms_alloc_fn of the first sample (the leaf function) */
	uint64_t samples;    /* sampled allocations on this stack */
	uint64_t bytes;	     /* estimated bytes allocated (sum of weights) */
	double count;	     /* estimated allocations (sum of weight / size) */
	uint64_t live_bytes; /* estimated bytes not freed by the end */
	double live_count;   /* estimated allocations not freed by the end */
};

struct ms_rec_table *ms_rec_table_new(void);
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
 * A free of ptr: marks the most recent live sample at ptr freed (the same
 * address can be sampled again after it was freed). Returns 1 when a sample
 * matched, 0 when none did (a pointer allocated before the recording, or not
 * sampled).
 */
int ms_rec_table_free_ptr(struct ms_rec_table *t, ms_raddr_t ptr);

/* Number of distinct stacks; stack i's totals into *out (pcs borrowed from t). */
size_t ms_rec_table_nstacks(const struct ms_rec_table *t);
void ms_rec_table_stack(const struct ms_rec_table *t, size_t i, struct ms_rec_stack *out);

/* Totals over every sample. Any pointer may be NULL. */
struct ms_rec_totals {
	uint64_t samples, frees_matched, failed;
	uint64_t bytes, live_bytes;
	double count, live_count;
	size_t distinct_pcs_hint; /* total PCs stored over distinct stacks */
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
	uint64_t samples;	/* allocation samples delivered */
	uint64_t polls;		/* iterations of record's loop */
	uint64_t idle_polls;	/* of those, iterations that delivered nothing */
	uint64_t idle_cpu_ns;	/* memspy's CPU in the idle iterations */
};

/*
 * The --max-overhead controller. Cost = memspy's CPU + time held stopped +
 * time in the stubs, over the target's CPU time. Only the part that scales
 * with the sample rate can be changed by the mean: memspy's CPU in loop
 * iterations that delivered nothing (waiting, reading an empty ring), at
 * the slowest polling pace, is its fixed floor, estimated from those
 * iterations and left out of the step.
 */
struct ms_rec_budget {
	double budget;	   /* fraction of the target's CPU time; 0 = off (measure only) */
	uint64_t min_mean; /* the user's --sample-bytes: never narrower */
	uint64_t max_mean; /* never wider */
	uint64_t mean;	   /* in force */
	uint64_t peak_mean;
	unsigned widened, narrowed, decisions;
	bool capped;	   /* over budget at max_mean: nothing more to widen */
	bool floor_over;   /* memspy's fixed floor alone took most of the budget */
	bool started;
	struct ms_rec_cost first, win; /* first reading; start of the current window */
	double last_ratio;	       /* cost / target CPU of the last decided window */
	double floor_poll_hz; /* loop iterations per second at the slowest pace (0: all of them) */
};

#define MS_REC_BUDGET_FIRST_NS	500000000ull  /* first decision after 0.5 s */
#define MS_REC_BUDGET_WINDOW_NS 1000000000ull /* then at most one change per second */
#define MS_REC_BUDGET_MAX_MEAN	(1ull << 30)

void ms_rec_budget_init(struct ms_rec_budget *b, double budget, uint64_t mean, uint64_t max_mean);
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
