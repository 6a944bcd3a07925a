/* SPDX-License-Identifier: MIT */
/*
 * record: the recording engine as a library, for both modes (probe mode,
 * walk mode): the stack table each stop fills (raw PCs, interned per
 * distinct stack) and the end reads back, the table since a mark and cut
 * into intervals, summed per function, the conversion of a stack's PCs
 * into frames and of the table into output/'s profile, the cost meter and
 * the --max-overhead controller, the sessions of both modes, and dump's
 * capture. Nothing here prints to the user or exits; cmd/ does.
 */
#ifndef MEMSPY_RECORD_RECORD_H
#define MEMSPY_RECORD_RECORD_H

#include "common/common.h"
#include "attach/attach.h"
#include "attach/probe.h"
#include "unwind/unwind.h"
#include "output/timeline.h"
#include "heapwalk/heapwalk.h"
#include "output/heap.h"

#include <stdio.h>
#include <sys/types.h>

struct ms_rec_table; /* opaque */

/* Totals of one distinct stack, as estimated from its samples. */
struct ms_rec_stack {
	const ms_raddr_t *pcs; /* leaf first: pcs[0] = the allocator's entry; borrowed */
	size_t npcs;
	int fn;		     /* the stack's tag: probe mode, enum ms_alloc_fn of the first
			      * sample (the leaf function); walk mode, 0 running or 1 + the
			      * system call the thread slept in (ms_rec_table_count) */
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
 * Walk mode: one thread caught on this stack (copied) at a stop, tagged 0
 * running or 1 + the system call it slept in. The stack's samples (its
 * weight) grow by one; bytes and counts stay 0 (nothing was allocated).
 */
void ms_rec_table_count(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int tag);

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
	/* Bounds on memspy's memory (stacks.c) and what hitting them did. */
	uint64_t stacks_capped; /* samples past the bound on distinct stacks: no frames kept */
	uint64_t untracked;	/* samples past the bound on kept samples: free not matched */
	size_t max_stacks, max_pcs, max_samples;
};
void ms_rec_table_totals(const struct ms_rec_table *t, struct ms_rec_totals *out);

/* ------------------------- the table since a mark (mark.c) ------------------------- */

struct ms_rec_mark; /* opaque */

/* A mark at the table's start: every figure counts as since. */
struct ms_rec_mark *ms_rec_mark_new(void);
/* NULL is a no-op. */
void ms_rec_mark_free(struct ms_rec_mark *m);
/* Moves the mark to now: each stack's figures and the totals of t as they are. */
void ms_rec_mark_set(struct ms_rec_mark *m, const struct ms_rec_table *t);
/*
 * Stack i of t since the mark: samples, bytes and count are what it gained
 * since (a stack new since has all of its own); the live figures are t's,
 * since the recording began.
 */
void ms_rec_mark_stack(const struct ms_rec_mark *m, const struct ms_rec_table *t, size_t i,
		       struct ms_rec_stack *out);
/* The same for the totals of t (see ms_rec_table_totals). */
void ms_rec_mark_totals(const struct ms_rec_mark *m, const struct ms_rec_table *t,
			struct ms_rec_totals *out);

/* ------------------------- intervals (interval.c) ------------------------- */

struct ms_rec_interval; /* opaque */

/*
 * A recording cut into intervals of every_ns on a grid from origin_ns (0:
 * start_ns; CLOCK_MONOTONIC), the first starting at start_ns (the
 * recording's start). Interval n covers [origin + (n-1) every, origin + n
 * every): a start past the origin makes the first one partial, numbered
 * where it lies on the grid.
 */
struct ms_rec_interval *ms_rec_interval_new(uint64_t every_ns, uint64_t start_ns,
					    uint64_t origin_ns);
/* NULL is a no-op. */
void ms_rec_interval_free(struct ms_rec_interval *iv);
/* When the current interval ends (CLOCK_MONOTONIC ns). */
uint64_t ms_rec_interval_end(const struct ms_rec_interval *iv);
/* The current interval's number on the grid, from 1. */
unsigned ms_rec_interval_number(const struct ms_rec_interval *iv);
/*
 * Is the current interval over at now_ns, with the recording going on?
 * stop_ns: when the recording ends by itself (--duration), 0 if it does
 * not; a boundary there is the last interval's end, cut after the loop.
 */
bool ms_rec_interval_due(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t stop_ns);
/*
 * The current interval ending at now_ns: its start in real time (ns since
 * the epoch) and its length.
 */
void ms_rec_interval_times(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t *time_ns,
			   uint64_t *duration_ns);
/*
 * Stack i of t as the current interval's file shows it: samples, bytes and
 * count are what was allocated since the interval began; the live figures
 * are the recording's (everything sampled since it started and not freed).
 */
void ms_rec_interval_stack(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			   size_t i, struct ms_rec_stack *out);
/* The same for the totals of t (see ms_rec_table_totals). */
void ms_rec_interval_totals(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    struct ms_rec_totals *out);
/*
 * Ends the current interval at now_ns and starts the next from t's figures:
 * the grid's interval that holds now_ns (a boundary already passed is
 * skipped, and its number with it).
 */
void ms_rec_interval_next(struct ms_rec_interval *iv, const struct ms_rec_table *t,
			  uint64_t now_ns);

/* ------------------------- per function (functions.c) ------------------------- */

/*
 * One function's figures: own, as the allocator's caller (the stack's
 * leaf); total, anywhere on the stack (once per stack, however often it
 * recurses). Plain data.
 */
#define MS_REC_FN_OWN_BYTES 0
#define MS_REC_FN_TOT_BYTES 1
#define MS_REC_FN_OWN_COUNT 2
#define MS_REC_FN_TOT_COUNT 3
struct ms_rec_fn {
	char *name;	/* "function (module)", printable ASCII, at most 512 bytes */
	double win[4];	/* the last window, by MS_REC_FN_*: bytes and allocations */
	double cum[4];	/* since the first update, the same */
	double live[2]; /* bytes still live now: own, total */
};

struct ms_rec_fns; /* opaque */

struct ms_rec_fns *ms_rec_fns_new(void);
/* NULL is a no-op. */
void ms_rec_fns_free(struct ms_rec_fns *t);
/*
 * Ends a window of window_ns: what each stack of rt gained since the last
 * update is this window's. Stacks new to t are symbolised (once each) with
 * sym, which may be NULL (addresses).
 */
void ms_rec_fns_update(struct ms_rec_fns *t, const struct ms_rec_table *rt,
		       struct ms_symbolizer *sym, uint64_t window_ns);
/* Whether rt has stacks that t has not named yet. */
bool ms_rec_fns_pending(const struct ms_rec_fns *t, const struct ms_rec_table *rt);
/* Totals of the last window and since the first update (bytes, allocations), and live bytes. */
struct ms_rec_fns_totals {
	double win_bytes, win_count, cum_bytes, cum_count, live_bytes;
	uint64_t window_ns, cum_ns;
	size_t nfns;
};
void ms_rec_fns_totals(const struct ms_rec_fns *t, struct ms_rec_fns_totals *out);
/* The functions in the order first seen, *n of them; borrowed until the next update. */
const struct ms_rec_fn *ms_rec_fns_list(const struct ms_rec_fns *t, size_t *n);

/* ------------------------- frames, for output/ (frames.c) ------------------------- */

struct ms_symbolizer;
struct ms_out_frame;

#define MS_REC_FRAMES_LINES	 1u /* file and line in each frame */
#define MS_REC_FRAMES_LEAF_IS_PC 2u /* pcs[0] is where a thread stopped (walk mode), not a
				     * return address: symbolised as it is */
#define MS_REC_FRAMES_ADDRESS	 4u /* a frame left unsymbolised carries its address (the
				     * call: pc - 1), for pprof (probe mode) */

/*
 * The frames of one stack as output/ takes them: pcs are innermost first
 * (return addresses but with MS_REC_FRAMES_LEAF_IS_PC), frames come out
 * outermost first, each PC expanded into its inlined chain (sym caches each
 * PC: once per PC in a recording). A PC sym cannot name (or sym NULL) is a
 * frame with its address in .offset. Appends to *frames (grown as needed,
 * *cap its capacity; the caller frees it) from index at; returns the new
 * count. The strings are sym's, valid until it is freed.
 */
size_t ms_rec_frames(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t npcs, unsigned flags,
		     struct ms_out_frame **frames, size_t *cap, size_t at);

/* ------------------------- profiles, for output/ (profile.c) ------------------------- */

struct ms_profile;
struct ms_modules;

/* Which view of probe mode's table a profile shows. */
struct ms_rec_profile_opts {
	/*
	 * The live view: each stack's live bytes and count (samples not freed),
	 * and beside them what it allocated in all (pprof's alloc_* values);
	 * else what was allocated.
	 */
	bool live;
	bool lines; /* file and line in each frame */
	/* The current interval's view of the table (ms_rec_interval_stack); NULL: the whole */
	const struct ms_rec_interval *iv;
};
/*
 * Adds every stack of probe mode's table t to prof, frames through
 * ms_rec_frames (unnamed PCs keep their address), with the values of the
 * view o asks for; estimated counts are rounded so that the stacks add up
 * to the rounded total of ms_rec_table_totals. In the live view, a stack
 * with nothing live and nothing allocated is left out.
 */
void ms_rec_profile_build(struct ms_profile *prof, const struct ms_rec_table *t,
			  struct ms_symbolizer *sym, const struct ms_rec_profile_opts *o);
/*
 * Walk mode's two profiles from its table t (threads per stack): all, the
 * threads that ran (and with idle, those asleep, under a leaf "[asleep in
 * futex]"); alloc, those running inside the allocator. *alloc_samples:
 * the samples in alloc; *alloc_asleep: those asleep inside the allocator
 * (a lock, or an allocator's own thread), in neither profile without idle.
 */
void ms_rec_profile_build_walk(struct ms_profile *alloc, struct ms_profile *all,
			       const struct ms_rec_table *t, struct ms_symbolizer *sym, bool idle,
			       bool lines, uint64_t *alloc_samples, uint64_t *alloc_asleep);
/*
 * The modules sym knows, as pprof mappings of prof (address range, file
 * offset, build id): what lets go tool pprof, Pyroscope and Parca symbolise
 * the addresses memspy left unnamed. The executable is marked main, as sym
 * says or, with mods (may be NULL), as the module table says.
 */
void ms_rec_profile_mappings(struct ms_profile *prof, struct ms_symbolizer *sym,
			     const struct ms_modules *mods);
/* The executable's name as frames give it (its file name), for pprof's main mapping; NULL if none. */
const char *ms_rec_profile_main_module(const struct ms_modules *mods);

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
	uint64_t ncpu;		/* CPUs online (0: unknown, the machine taken as saturated) */
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

/* ------------------------- the sampling policy (policy.c) ------------------------- */

#define MS_REC_BUDGET_DEFAULT 0.01 /* --max-overhead when not given: 1% of the target's CPU */

/* What the user asked of the sampling (record's and top's options). */
struct ms_rec_sampling_ask {
	bool exact;	     /* --exact */
	bool sample_given;   /* --sample-bytes N (0: every call, as --exact) */
	uint64_t sample_bytes;
	bool overhead_given; /* --max-overhead (0: off) */
	double max_overhead;
};

/* What the session is opened with (ms_rec_session_opts takes the three figures). */
struct ms_rec_sampling {
	uint64_t sample_bytes;	   /* the mean to start with (0: exact, every call) */
	uint64_t min_sample_bytes; /* the narrowest the budget may pick */
	double max_overhead;	   /* fraction of the target's CPU time; 0 = off */
	bool overhead_ignored;	   /* --max-overhead given with --exact: exact stays exact */
};

/* Nothing asked: the defaults (the budget at MS_REC_BUDGET_DEFAULT). */
void ms_rec_sampling_ask_init(struct ms_rec_sampling_ask *a);
/*
 * The policy for what was asked: by default the budget picks the mean,
 * starting at 512 KiB, between 4 KiB and 1 GiB; --sample-bytes N fixes it
 * (never narrower than N, wider only when --max-overhead is given too);
 * --exact (or N = 0) records every call and no budget widens it. 0, or
 * -EINVAL when --exact contradicts --sample-bytes N > 0.
 */
int ms_rec_sampling_policy(const struct ms_rec_sampling_ask *a, struct ms_rec_sampling *p);

/* ------------------------- the cost account (account.c) ------------------------- */

/* What sampling cost from the budget's first reading to a later one, as the summaries say it. */
struct ms_rec_account {
	struct ms_rec_cost_parts parts;
	double wall_ns;	      /* from the first reading to the later one */
	double samples_per_s; /* over that time */
	/* The target used enough CPU (MS_REC_IDLE_TARGET_*) for a share of it to say something. */
	bool measurable;
	double slowdown; /* parts.cost / parts.target_cpu when measurable, else 0 */
};
void ms_rec_account_read(const struct ms_rec_budget *b, const struct ms_rec_cost *to,
			 struct ms_rec_account *out);

/*
 * Calls that are not sampled still pass through the probes' fast path (a
 * countdown subtraction and two jumps). Not measured per run (timing each
 * call would cost more than the call): about 1 ns per call, from the gap
 * between the measured cost and bench/overhead.sh's tight malloc loop
 * (1.10x slower where the measured parts came to ~2.4%).
 */
#define MS_REC_FAST_PATH_NS 1.0
/*
 * The calls that took the fast path, estimated from the table: the
 * allocations not sampled and, when frees are followed, about as many frees
 * (none of which is a sample).
 */
uint64_t ms_rec_unsampled_calls(const struct ms_rec_totals *tot, bool frees);

/* ------------------------------ the cost meter (meter.c) ------------------------------ */

/*
 * The ring is drained at a pace that follows the sample rate: every 5 ms
 * when samples come fast (the ring holds 256), up to every 50 ms when they
 * are rare, because an empty drain still reads the whole ring (~60 us here)
 * and that fixed cost counts against the overhead budget.
 */
#define MS_REC_POLL_MIN_MS 5
#define MS_REC_POLL_MAX_MS 50

/*
 * The target's run delay before memspy attached: how long its threads wait
 * for a CPU anyway (the machine's other load), so that only what memspy
 * adds counts against the budget.
 */
struct ms_rec_baseline {
	bool measured;
	double delay_per_cpu;  /* ns waited per ns of the target's CPU; < 0: not usable */
	double delay_per_wall; /* ns waited per ns of wall time */
	uint64_t wall_ns, target_cpu_ns, delay_ns;
};

/*
 * Measures pid's run delay for 0.25 s, before anything is attached (it only
 * reads /proc). Returns false when a stop was requested meanwhile; a
 * baseline that could not be read is returned with measured false.
 */
bool ms_rec_baseline_measure(pid_t pid, struct ms_rec_baseline *bl);

/* What the loop measures, for --max-overhead and for the summary. Plain data. */
struct ms_rec_meter {
	pid_t pid;
	long clk_tck;
	uint64_t ncpu; /* CPUs online, for ms_rec_cost (0: unknown) */
	struct ms_rec_budget budget;
	struct ms_rec_cost end;	    /* the last reading, when the loop ended */
	uint64_t cpu0, last_cpu;    /* memspy's CPU at the start, at the last iteration */
	uint64_t last_target_cpu;   /* the last target CPU read (kept when it exits) */
	uint64_t polls, idle_polls, idle_cpu_ns;
	uint64_t upkeep_ns;	    /* CPU in upkeep (ms_rec_cost.upkeep_ns) */
	uint64_t last_events;	    /* alloc + free events at the last iteration */
	bool busy;		    /* this iteration did more than wait and drain nothing */
	bool counting;
	uint64_t pace_ns, pace_samples, pace_frees, pace_ring_full;
	int wait_ms;		    /* the next wait for the target's events and samples */
	uint64_t next_read_ns;
	bool set_failed; /* the engine refused a new mean: the budget stands down */
	bool delay_unread; /* the target's run delay could not be read: not measured */
	bool follow_frees; /* --live, --interval: sampled blocks fill the in-target table */
	uint64_t last_delay;
	struct ms_sched_account sched; /* the target's threads: CPU and run delay, exact */
	bool sched_ticks;	       /* too many threads: CPU from /proc/PID/stat's ticks */
	uint64_t ticks_offset;	       /* added to the ticks, to go on from sched's total */
	struct ms_rec_cost last; /* the latest budget reading */
};

/* memspy's CPU time, all its threads (ns). */
uint64_t ms_rec_self_cpu_ns(void);
/*
 * Starts the meter once the probes are in: the budget at max_overhead
 * (0: off; exact recording, mean 0: off) from mean, never narrower than
 * min_mean, with bl's baseline; takes the first reading.
 */
void ms_rec_meter_start(struct ms_rec_meter *m, pid_t pid, struct ms_probes *pr,
			double max_overhead, uint64_t mean, uint64_t min_mean,
			const struct ms_rec_baseline *bl);
/* Frees what the meter holds (its per-thread account). */
void ms_rec_meter_free(struct ms_rec_meter *m);
/* A reading of every figure into *c (cumulative since the start). */
void ms_rec_meter_reading(struct ms_rec_meter *m, struct ms_probes *pr, struct ms_rec_cost *c);
/*
 * At the top of each iteration of the loop: memspy's CPU in the last one.
 * The idle ones (a wait that timed out, an empty drain) are its fixed
 * cost, which the budget must not try to remove by widening the mean.
 * events: allocation and free events delivered so far.
 */
void ms_rec_meter_iteration(struct ms_rec_meter *m, uint64_t events);
/* After a drain: the next wait (m->wait_ms), from the rate samples come at. */
void ms_rec_meter_pace(struct ms_rec_meter *m, struct ms_probes *pr, uint64_t alloc_events,
		       uint64_t free_events, uint64_t now);
/*
 * A budget reading, when m->next_read_ns has come: a new mean the controller
 * asks for is applied to the probes (cb and ctx take the samples drained
 * meanwhile). A refusal turns the budget off, with a warning.
 */
void ms_rec_meter_read(struct ms_rec_meter *m, struct ms_probes *pr, uint64_t now,
		       ms_alloc_event_cb cb, void *ctx);

/* ------------------------- probe mode's session (session.c) ------------------------- */

struct ms_proc;
struct ms_modules;
struct ms_rec_session; /* opaque */

struct ms_rec_session_opts {
	uint64_t duration_ns;	   /* 0: until a stop request or the target's exit */
	uint64_t sample_bytes;	   /* the mean to start with (0: exact, every call) */
	uint64_t min_sample_bytes; /* the narrowest the budget may pick */
	double max_overhead;	   /* fraction of the target's CPU time; 0 = off */
	uint64_t stack_bytes;
	enum ms_unwind_backend unwinder;
	/*
	 * Probe frees too: only the live view needs them. Probing free anyway
	 * cost every free() a hash-table look-up: 1.38x on the tight
	 * malloc/free bench.
	 */
	bool track_frees;
	const char *const *probes; /* --probe SYMBOL ... */
	size_t nprobes;
	const char *const *probe_frees; /* --probe-free SYMBOL ... */
	size_t nprobe_frees;
};

/* What the samples came to beyond the table. */
struct ms_rec_counts {
	uint64_t alloc_events, free_events, unwind_failures, short_stacks;
	uint64_t one_frame; /* samples whose stack is the allocator's caller alone */
};

/* Why the recording ended. */
struct ms_rec_end {
	bool target_exited, duration_elapsed;
	bool target_execd; /* walk mode: it exec'd another program; the recording ended there */
	int exit_status; /* the target's wait status, when it exited */
	int wait_error;	 /* waiting for the target or draining failed: a negative code */
	int stop_signal; /* a stop request (SIGINT, SIGTERM, SIGHUP): which */
	uint64_t wall_ns; /* from the probes' start to the end (set by close) */
};

/* A reading of a session; everything borrowed, valid until the next step or its free. */
struct ms_rec_read {
	pid_t pid;
	struct ms_proc *proc;
	uint64_t start_ns;		  /* ms_now_ns() when the probes went in */
	const struct ms_rec_table *table; /* the stacks, their weights */
	uint64_t mean; /* how certain: 0 every call was seen, else the sampling mean in force */
	struct ms_symbolizer *sym; /* made at attach time; symbolises after the target exits */
	const struct ms_modules *mods;
	struct ms_probes *probes;	   /* ms_probes_stats, ms_probes_sites */
	const struct ms_rec_meter *meter;  /* the cost account: the budget, its readings */
	const struct ms_rec_cost *last;	   /* the latest reading; the final one once closed */
	const struct ms_rec_counts *counts;
	const struct ms_rec_end *end;
};

/*
 * Opens a recording on p, a process seized with forks traced; the session
 * owns p from now on, also on failure (ms_rec_session_free frees it). Loads
 * the module table, makes the unwinder and the symboliser, installs the
 * probes and starts the cost meter (bl: the run delay measured before
 * attaching). 0, or a negative code with err filled; *out is set either
 * way and must be freed.
 */
int ms_rec_session_open(struct ms_proc *p, const struct ms_rec_session_opts *o,
			const struct ms_rec_baseline *bl, struct ms_rec_session **out,
			struct ms_error *err);
/*
 * One iteration of the loop: waits for the target's events (at most the
 * drains' pace, and until wake_ns when not 0), handles them (a probe's
 * trap, a fork's child restored and let go, the target's own SIGTRAP passed
 * on) and drains the rings, each sample unwound into the stack table.
 * Returns 0 to go on, 1 when the recording has ended (the read's end says
 * why: duration, a stop request, the target's exit, tampering, an error).
 */
int ms_rec_session_step(struct ms_rec_session *s, uint64_t wake_ns);
/*
 * After a step: the next wait's pace, a budget reading when due (a new mean
 * applied), the unwinder's module list every 2 s. memspy's CPU from here to
 * the next step is upkeep, the budget's fixed cost.
 */
void ms_rec_session_upkeep(struct ms_rec_session *s);
/* The caller did work between steps (a progress line, a view): not idle polling. */
void ms_rec_session_busy(struct ms_rec_session *s);
/*
 * An interval's file was written from the table (after a step): the samples
 * already freed are dropped from it, and cpu_ns (memspy's CPU writing the
 * file) is kept out of the budget, which a wider mean would not reduce.
 */
void ms_rec_session_cut(struct ms_rec_session *s, uint64_t cpu_ns);
void ms_rec_session_read(const struct ms_rec_session *s, struct ms_rec_read *out);

/* What closing did. */
struct ms_rec_closed {
	bool removed;	   /* every probe removed and, unless the target exited, verified */
	bool verified;	   /* the code after detach is the files' (or was not readable) */
	char *verify_note; /* what the check found (allocated: the caller frees it), or NULL */
};
/*
 * Ends the recording: the final reading, the probes removed (every byte
 * restored and read back), every thread detached, and the probed modules'
 * code compared with their files. Returns 0, or the removal's negative
 * code with err filled; *out says what was verified either way.
 */
int ms_rec_session_close(struct ms_rec_session *s, struct ms_rec_closed *out,
			 struct ms_error *err);
/* Frees the session, its process (detached on every path) and what it read. NULL: no-op. */
void ms_rec_session_free(struct ms_rec_session *s);

/*
 * After detach: compares the executable mappings of every module that had a
 * probe with the module's file, byte for byte. Returns 0 when identical
 * (note says what was checked), -EIO when a byte differs (note names the
 * first one), or another negative code when the check could not be done
 * (note says why). *note is allocated; the caller frees it.
 */
int ms_rec_verify_text(pid_t pid, const struct ms_modules *mods, struct ms_probes *pr, char **note);

/* ------------------------- walk mode's session (walk.c) ------------------------- */

struct ms_rec_walk; /* opaque */
struct ms_timeline;

/* Pauses of the target, one kind of stop (plain data). */
struct ms_rec_pauses {
	uint32_t *us; /* every pause, microseconds */
	size_t n, cap;
	uint64_t total_ns, worst_ns;
	double ewma_ns;
};
/* The median pause (ns); sorts p->us. */
double ms_rec_pauses_median_ns(struct ms_rec_pauses *p);

/* System calls counted one by one in the summary (x86_64 numbers are below this). */
#define MS_REC_WALK_NSYSCALLS 512

struct ms_rec_walk_opts {
	uint64_t duration_ns; /* 0: until a stop request or the target's exit */
	double rate;	      /* stops for stacks per second, on average */
	uint64_t walk_ns;     /* a heap read every walk_ns */
	bool full_walk;	      /* the whole heap walked, not the arena headers */
	double max_share;     /* fraction of wall time the target may spend stopped */
	uint64_t stack_bytes, max_reads;
	enum ms_unwind_backend unwinder;
	const char *command; /* the heap timeline's title (copied by the timeline) */
};

/* What one heap sample found, for a -v line (the newest; fresh after the step that took it). */
struct ms_rec_walk_heap_sample {
	bool fresh, heap; /* heap: it has heap figures (else RSS only) */
	size_t index;	  /* in the timeline */
	uint64_t stop_ns; /* CLOCK_MONOTONIC */
	struct ms_tl_values total;
	uint64_t read_ns, reads; /* the heap read's time and remote reads (0: no read) */
};

/* What walk mode measured: the cost account, the threads' states, the heap (plain data). */
struct ms_rec_walk_account {
	struct ms_rec_pauses stack_pauses, heap_pauses;
	uint64_t stops, stack_ticks, heap_ticks, skipped_stack, skipped_heap, stop_failures;
	uint64_t thread_samples, unwind_failures, heap_capped, heap_inconsistent;
	uint64_t start_ns; /* when the sampling began */
	int last_stop_error;
	size_t nthr; /* threads at the last stop */
	/* running or asleep at the stop (a sleeping thread is idle, not busy) */
	uint64_t running_samples, sleeping_samples;
	uint64_t asleep_in[MS_REC_WALK_NSYSCALLS + 1]; /* by system call; the last: any other */
	/* sampling instants and the rate actually had */
	bool realtime;	       /* may wake at real-time priority */
	uint64_t late_ns;      /* sum over stack stops of how late memspy woke */
	uint64_t skipped_busy; /* instants that came due while memspy was busy: skipped */
	uint64_t stack_work_ns; /* memspy's time per stack stop: stop, copy, resume, unwind */
	bool kernel_ok;	       /* the kernel's run and wait shares over the window (schedstat) */
	double kernel_run, kernel_wait;
	size_t kernel_threads;
	/* the heap */
	bool glibc, have_loc; /* glibc malloc; its state located */
	char allocator[600];
	struct ms_timeline *tl; /* the heap timeline, one sample per heap read */
	struct ms_rec_walk_heap_sample heap_sample;
	struct ms_rec_end end;
};
/* Time the target spent stopped, all stops (ns). */
uint64_t ms_rec_walk_paused_ns(const struct ms_rec_walk_account *a);
/* Stops with stacks per second had over the recording (end.wall_ns; 0 before it ends). */
double ms_rec_walk_rate_had(const struct ms_rec_walk_account *a);

struct ms_rec_walk_read {
	struct ms_rec_walk_account *account;
	struct ms_proc *proc;
	const struct ms_rec_table *table; /* threads per stack, tagged 0 running or 1 + syscall */
	struct ms_symbolizer *sym;
	const struct ms_error *heap_err; /* glibc's state was not found: why; else NULL */
};

/*
 * Opens a walk-mode recording on p (seized; nothing is patched, forks are
 * no concern); the session owns p from now on, also on failure. Makes the
 * unwinder and symboliser, tells the allocator, locates glibc's state (a
 * failure is no error: the read's heap_err says why, and the timeline holds
 * RSS only), starts the timeline and the sampling instants. 0, or a
 * negative code with err filled; *out is set either way and must be freed.
 */
int ms_rec_walk_open(struct ms_proc *p, const struct ms_rec_walk_opts *o, struct ms_rec_walk **out,
		     struct ms_error *err);
#define MS_REC_WALK_STOPPED 1 /* a step stopped the target (stacks or heap) */
#define MS_REC_WALK_ENDED   2 /* the recording has ended: the account's end says why */
/*
 * One step: waits for the next instant (the target's events handled
 * meanwhile) or takes it: stop all, registers and a stack copy per thread,
 * the heap read when due, resume, unwind into the stack table. Returns 0,
 * MS_REC_WALK_STOPPED or MS_REC_WALK_ENDED.
 */
int ms_rec_walk_step(struct ms_rec_walk *w);
/* Ends: the kernel's accounting over the window, every thread detached. */
void ms_rec_walk_close(struct ms_rec_walk *w);
void ms_rec_walk_read(struct ms_rec_walk *w, struct ms_rec_walk_read *out);
/* Frees the session, its process (detached on every path) and its timeline. NULL: no-op. */
void ms_rec_walk_free(struct ms_rec_walk *w);

/*
 * Was a thread stopped on this stack (innermost first, pcs[0] where it
 * stopped) inside the allocator: is the first frame of its innermost ones
 * that lies outside the runtime libraries (libc, ld.so, vdso) malloc and
 * friends or their internals?
 */
bool ms_rec_stack_in_allocator(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t npcs);
/* "futex", "epoll_wait", ...; NULL for a call not in the table. */
const char *ms_rec_syscall_name(int nr);

/* ------------------------- dump's capture sequence (capture.c) ------------------------- */

struct ms_snapshot;
struct ms_quiesce;
struct ms_heap_locate_opts;
struct ms_heap_report;
struct ms_leak_report;
struct ms_rec_locate_job; /* private to capture.c */

struct ms_rec_capture_opts {
	bool use_snapshot; /* a copy-on-write snapshot, walked while the target runs */
	bool leaks;	   /* each thread's registers too, for the leak scan's roots */
	const struct ms_heap_locate_opts *locate;
};

/* What the capture took and measured (plain data; ms_rec_capture_free frees it). */
struct ms_rec_capture {
	struct ms_heap_loc loc; /* glibc's state, each thread's tcache */
	bool have_loc;
	bool use_snapshot; /* still: false once the snapshot fell back to the stopped walk */
	char snap_note[600]; /* why there is no snapshot after all; "" when there is one
			      * or none was wanted */
	pid_t *tids;	     /* the threads and their fs bases, read in the pause */
	ms_raddr_t *fs;
	struct ms_leak_thread *lthreads; /* with opts.leaks: their registers */
	size_t nlthreads;
	struct ms_snapshot *snap; /* until the walk released it */
	struct ms_snapshot_guard guard;
	struct ms_quiesce *quiesce; /* NULL: quiescing was not available (qst.why says why) */
	struct ms_quiesce_stats qst;
	unsigned tries;		 /* stops retried because an arena was locked */
	const char *walk_source; /* "snapshot" or "stopped" (static) */
	double snapshot_ms, pause_ms;
	uint64_t t_start, t_stop, t_stopped, t_maps, t_lock, t_regs, t_snap, t_res0, t_resume,
	    t_release;
	struct ms_rec_locate_job *lj;
};

/*
 * The pause, on a seized process: glibc's state located (on a thread of its
 * own while the target is stopped and cloned, with a snapshot), the guard
 * forked, then at most 20 times, 5 ms apart: stop every thread, let those
 * inside malloc out of it (attach/quiesce.c), read each thread's fs base
 * (and registers with opts.leaks), clone the snapshot, resume; again while
 * an arena is locked in what will be walked. Without a snapshot (refused,
 * failed) the target stays stopped for the walk. 0 with *c filled, or a
 * negative code with err filled and the target running; *c must be freed
 * with ms_rec_capture_free either way.
 */
int ms_rec_capture_take(struct ms_proc *proc, const struct ms_rec_capture_opts *o,
			 struct ms_rec_capture *c, struct ms_error *err);
/*
 * Walks what the capture took (the snapshot on two readers, or the stopped
 * target), scans it for leaks with leaks (explain: an address to explain,
 * 0 none), then releases the snapshot or resumes the target, and logs the
 * pause's and the walk's timings at info level. Returns the walk's code;
 * *have_rep says whether rep holds a report, *have_leaks whether lrep does.
 */
int ms_rec_capture_walk(struct ms_rec_capture *c, struct ms_proc *proc, bool leaks,
			 ms_raddr_t explain, struct ms_heap_report *rep, struct ms_leak_report *lrep,
			 bool *have_rep, bool *have_leaks);
/* Frees what the capture holds; stops the guard. Idempotent. */
void ms_rec_capture_free(struct ms_rec_capture *c);

/* ------------------------- the dump of one process (dump.c) ------------------------- */

struct ms_rec_dump_opts {
	bool use_snapshot; /* false: the walk reads the stopped target (--no-snapshot) */
	bool leaks;	   /* the leak scan too */
	ms_raddr_t explain; /* with leaks: the address to explain, 0 none */
	struct ms_heap_locate_opts locate;
};

#define MS_REC_DUMP_COMPLETE 0
#define MS_REC_DUMP_PARTIAL  1 /* walked, but with errors, partial or inconsistent */
#define MS_REC_DUMP_FAILED   2 /* no walk: err says why */

/* One process's dump: meta is what the report writers take (output/heap.h); all owned here. */
struct ms_rec_dump {
	struct ms_heap_meta meta; /* its pointers point into this struct; cmd/ sets exit_code, total_ms */
	struct ms_error err;	  /* why there is no walk (meta.fatal is its message) */
	bool no_walk; /* nothing was walked (not glibc, the pause failed): err is to be reported */
	bool have_rep, have_leaks;
	struct ms_heap_locate_opts locate;
	struct ms_rec_capture cap;
	struct ms_heap_report rep;
	struct ms_leak_report lrep;
	struct ms_heap_rss rss;
	struct ms_proc_mem_summary mem;
	char allocator[600], comm[64];
};

/*
 * The dump of a seized process: its allocator (a verdict of "not glibc"
 * rests on maps read with every thread stopped), the pause and the walk
 * (ms_rec_capture_take, ms_rec_capture_walk), the detach, resident memory
 * from smaps. The process is detached on every path. Returns
 * MS_REC_DUMP_COMPLETE, _PARTIAL or _FAILED; d must be freed with
 * ms_rec_dump_free either way.
 */
int ms_rec_dump_take(struct ms_proc *proc, const struct ms_rec_dump_opts *o, struct ms_rec_dump *d);
void ms_rec_dump_free(struct ms_rec_dump *d);

/* ---- dump --subprocesses: a dump per process of a tree (dump_subprocesses.c) ---- */

struct json_t;

/* One process's dump, as the coordinator hands it to o->each. */
struct ms_dump_sp_proc {
	pid_t pid;
	const char *title;
	int code;	    /* its dump's exit code */
	struct json_t *rep; /* its JSON report (doc/dump-json.md), or {pid, error, exit_code} */
	bool walked;	    /* its heap was walked: it is in the sum */
};

struct ms_dump_sp_opts {
	pid_t root;
	char **pass; /* options for each dump, in the order given */
	size_t npass;
	/* runs one dump in the fork (cmd_dump); its return is the fork's exit code */
	int (*dump)(int argc, char **argv);
	/* after each process's dump, in order (root first) */
	void (*each)(void *ctx, const struct ms_dump_sp_proc *p);
	void *ctx;
};

struct ms_dump_sp {
	struct json_t *reports;		   /* each process's report, in order */
	struct json_t *mallinfo2, *totals; /* summed over the walked ones */
	size_t nprocs, nwalked;
	int worst;    /* the highest exit code of a dump (a stop request: at least partial) */
	bool stopped; /* a stop request ended it before every process was dumped */
};

/*
 * Dumps o->root and each of its descendants one after the other (a fork
 * running o->dump each, its report in a temporary directory, read back),
 * summing the walked ones. The signals are taken (ms_signals_init); a stop
 * request ends it after the dump under way. 0, or a negative code with err
 * filled (no temporary directory).
 */
int ms_dump_sp_run(const struct ms_dump_sp_opts *o, struct ms_dump_sp *s, struct ms_error *err);
/* The JSON document: "processes" (each report, with its "title"), "sum", "exit_code". New reference. */
struct json_t *ms_dump_sp_json(const struct ms_dump_sp *s, pid_t root);
void ms_dump_sp_free(struct ms_dump_sp *s);

/* ---- record --subprocesses: a recorder per process of a tree (subprocesses.c) ---- */

struct ms_profile;

/* One recording of one process of the tree (a process that exec'd has one per image). */
struct ms_sp_proc {
	pid_t pid;
	unsigned gen; /* recordings of this pid before this one (one per exec) */
	char *title;
	char *out, *log; /* the recorder's profile (memspy's own format) and its stderr */
	char *all, *tl;	 /* walk mode: its all-threads profile, its timeline */
	pid_t rec;	 /* its recorder while it runs, else 0 */
	int status;	 /* the recorder's wait status once it ended */
	bool late;	 /* appeared during the recording */
	bool ready, ended, exec_seen, stop_sent;
	uint64_t image; /* what identifies the image it ran when its recorder started */
	uint64_t started; /* when the process started (+1; 0 unknown): its pid may be reused */
	uint64_t bytes, count;
	uint64_t running; /* walk mode: running thread samples (all-threads profile) */
	uint64_t samples; /* probe mode: the samples its figures rest on (its summary) */
	bool exact;	  /* probe mode: every call seen (-s 0), no estimate */
	bool live;	  /* --live: samples counts the samples still live */
	char mean[32];	  /* probe mode: its sampling mean at the end ("4.00 KiB") */
	uint64_t period;  /* probe mode: the pprof period it wrote (-s, bytes; 0: exact) */
	bool sampled;	  /* probe mode: its values are estimates from samples */
	bool have_profile, have_timeline;
	bool unreadable; /* its profile exists but could not be read back */
	char *note;	 /* the recorder's line about its check of the code after detach */
	char *ring_note; /* its line on samples dropped with the in-target ring full */
	uint64_t ring_lost, ring_total; /* that line's "N of M samples" */
	/* --interval */
	uint64_t ready_ns;  /* when the coordinator saw it recording (CLOCK_MONOTONIC) */
	bool gone;	    /* when its recorder ended, the process had exited or exec'd */
	unsigned iv_files;  /* its interval files merged */
	unsigned iv_late;   /* its interval files that came after their interval was written */
};

enum ms_sp_event {
	MS_SP_STARTED, /* a recorder was forked for p */
	MS_SP_READY,   /* p's recorder says it is recording (probes in) */
};

/*
 * --interval: interval n of every process, merged (ms_sp_opts.interval).
 * Each process's recorder cut it on the coordinator's grid: it covers
 * [start + (n-1) D, start + n D) in every process, from its recording's
 * start for a process found during it. prof holds what each process
 * allocated in it and (live view) what of its sampled allocations is still
 * live at its end, under a root frame "TITLE (PID)"; a process that
 * exited or exec'd in it has nothing live at its end.
 */
struct ms_sp_interval {
	unsigned n;
	uint64_t from_real_ns, duration_ns; /* CLOCK_REALTIME start, length */
	struct ms_profile *prof;	    /* borrowed for the call */
	uint64_t live_bytes, live_count, alloc_bytes, alloc_count;
	size_t nproc;	 /* processes whose file is in it */
	uint64_t period; /* the recorders' -s (pprof's period; 0 exact or the budget's) */
	bool sampled;	 /* its values are estimates from samples */
};

struct ms_sp_opts {
	pid_t root;
	bool walk;	     /* --mode walk: each recorder also writes all and tl */
	const char *tl_path; /* walk: the timelines' name, {pid} for each process */
	char **pass;	     /* options for each recorder, in the order given */
	size_t npass;
	uint64_t duration_ns; /* 0: until a stop signal or every process is gone */
	/*
	 * --interval D (interval_ns, interval_arg as given): each recorder cuts on
	 * the coordinator's grid (--interval-origin) and interval(ctx, iv) gets
	 * each interval merged, in order; its return is ignored. live_view: the
	 * merged profile's values are the live ones with the allocated beside
	 * them (pprof, --live), else the allocated ones alone.
	 */
	uint64_t interval_ns;
	const char *interval_arg;
	bool live_view;
	void (*interval)(void *ctx, const struct ms_sp_interval *iv);
	/* runs one recorder in the fork (cmd_record); its return is the fork's exit code */
	int (*record)(int argc, char **argv);
	void (*event)(void *ctx, const struct ms_sp_proc *p, enum ms_sp_event ev);
	void *ctx;
};

/*
 * From this share of the samples dropped with the in-target ring full, a
 * summary says so at its top, not among the details: the figures rest on
 * far fewer samples than were taken. Not a partial result (exit 0): the
 * samples kept are weighted up to stand for the dropped ones.
 */
#define MS_REC_RING_LOSS_WARN 0.10

/* The processes' figures summed (ms_sp_merge). */
struct ms_sp_totals {
	uint64_t bytes, count, running, samples;
	size_t nproc;	     /* processes with a profile */
	size_t ntl;	     /* walk: processes with a heap timeline */
	uint64_t period;     /* the recorders' pprof period (they all had the same -s) */
	bool exact, sampled; /* every process exact; some values estimated */
	const char *mean;    /* a process's mean ("4.00 KiB"), NULL for none */
	bool one_mean;	     /* every estimated process had that mean */
	uint64_t ring_lost, ring_total; /* samples dropped with a ring full, of all taken */
	size_t ring_nproc;		/* processes that dropped some */
};

struct ms_sp {
	struct ms_sp_opts o;
	char dir[64];	      /* temporary directory for the recorders' files */
	struct ms_sp_proc *v; /* v[0] is the root */
	size_t n, cap;
	unsigned untraceable; /* descendants left out (traced by someone else) */
	bool started;	      /* the first scan is done: what appears now is late */
	const char *why;      /* why the recording ended */
	uint64_t start_ns;    /* also the intervals' grid origin */
	uint64_t start_real_ns; /* the same instant, CLOCK_REALTIME */
	uint64_t stop_ns;	/* when the stop began (0: not yet) */
	unsigned iv_n;		/* --interval: the next interval to merge */
	uint64_t iv_wait_ns;	/* since when it waits for a late recorder's file */
};

/*
 * Starts following o->root's tree: a temporary directory, a recorder for
 * the root and each descendant no one traces (a fork running o->record on
 * it, writing memspy's own profile format, its stderr to a log). The
 * signals are taken (ms_signals_init). 0, or a negative code with err filled.
 */
int ms_sp_start(struct ms_sp *s, const struct ms_sp_opts *o, struct ms_error *err);
/*
 * Follows the tree until the duration ends, a stop signal comes or every
 * process is gone (new descendants and execs get recorders of their own),
 * then stops every recorder (SIGINT) and waits for them; s->why says why.
 * 0, or the root recorder's exit code when it failed before recording
 * (nothing else was followed; its log is in s->v[0].log).
 */
int ms_sp_run(struct ms_sp *s);
/*
 * Reads each recording back (its summary line and note, its profile) and
 * adds its profile to prof (walk mode: its all-threads one to all) under a
 * root frame "TITLE (PID)", each process in an address space of its own;
 * s->v sorted by pid after the root, *t the sums. With --interval the
 * profiles went to the interval files: prof and all are not touched (may
 * be NULL), each process's figures are what it allocated over its files.
 */
void ms_sp_merge(struct ms_sp *s, struct ms_profile *prof, struct ms_profile *all,
		 struct ms_sp_totals *t);
/*
 * A recording that never reached its process: 1 when it exited before its
 * recorder could attach (a short-lived child), 2 when it appeared as the
 * recording ended and its recorder was stopped before attaching; else 0.
 * Neither is a failure: nothing of it was patched.
 */
int ms_sp_never_reached(const struct ms_sp_proc *p);
/* The length of path without its extension (x.pb.gz and x.speedscope.json whole). */
size_t ms_sp_stem_len(const char *path);
/*
 * Calls fn on each line of p's recorder's log (its stderr), until fn
 * returns false. false when there is no log to read.
 */
bool ms_sp_log_each(const struct ms_sp_proc *p, bool (*fn)(void *ctx, const char *line),
		    void *ctx);
/* Removes the recorders' files and the directory, frees s. */
void ms_sp_close(struct ms_sp *s);

#endif
