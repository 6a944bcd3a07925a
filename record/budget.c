// SPDX-License-Identifier: MIT
/*
 * record: the --max-overhead controller. It decides on the cost meter's
 * readings alone (record/meter.c takes them; no ptrace here): the mean
 * widens when the cost is over the budget and narrows when it is well under.
 */
#include "record/record.h"
#include "attach/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------ overhead budget ------------------------------ */

/*
 * /proc's CPU times come in 10 ms ticks: below this much target CPU a
 * window's ratio means little. Such a window is extended up to
 * IDLE_WINDOW_NS and then judged as if the target had used this much: an
 * idle target's budget is small but not zero, so sampling it (nearly free:
 * it allocates little) can narrow the mean rather than stay blind.
 */
#define MIN_TARGET_CPU_NS 20000000ull
#define IDLE_WINDOW_NS	  3000000000ull
/*
 * One step changes the mean at most 64x: a window can carry one-off costs
 * (the unwinder reading a module's CFI for the first time) that the next
 * ones will not, and the next window corrects what is left. At least 1.25x,
 * so that a step is worth its redraw of every countdown.
 */
#define MAX_STEP 64.0
/*
 * The first window carries more one-off costs still (the stubs' first lap
 * over the ring's pages, memspy's first CFI reads, a workload only starting:
 * measured 62% against a steady 0.7% on the service bench), and the mean
 * narrows back at most 16x per window: the first step is capped lower.
 */
#define MAX_FIRST_STEP 8.0
#define MIN_STEP 1.25
/*
 * Narrowing: at most 16x a window. At 4x, a light process took 3.5 s to go
 * from 512 KiB to the 4 KiB floor, and what it leaked meanwhile rested on
 * a few heavy samples or none: memspy-light-leak's 20 s leak view came out
 * at 0.75-0.89x of the leak in 5 of 9 runs. A window's one-off costs only
 * overstate the cost, so a narrowing is never larger than the window asks.
 */
#define MAX_NARROW 16.0
#define MARGIN	 1.2 /* aim at about budget/1.2: noise stays under the budget */
#define MIN_SAMPLES_TO_WIDEN 10

void ms_rec_budget_init(struct ms_rec_budget *b, double budget, uint64_t mean, uint64_t min_mean,
			uint64_t max_mean)
{
	if (min_mean > mean)
		min_mean = mean;
	*b = (struct ms_rec_budget){
	    .budget = budget,
	    .min_mean = min_mean,
	    .max_mean = max_mean < mean ? mean : max_mean,
	    .start_mean = mean,
	    .mean = mean,
	    .peak_mean = mean,
	    .narrowest_mean = mean,
	    .base_delay_per_cpu = -1,
	    .base_delay_per_wall = -1,
	};
}

double ms_rec_budget_floor_per_poll(const struct ms_rec_cost *c)
{
	return c->idle_polls ? (double)c->idle_cpu_ns / (double)c->idle_polls : 0;
}

static double delta(uint64_t now, uint64_t then)
{
	return now > then ? (double)(now - then) : 0;
}

double ms_rec_budget_floor(const struct ms_rec_budget *b, const struct ms_rec_cost *from,
			   const struct ms_rec_cost *to)
{
	double polls = delta(to->polls, from->polls);
	double slowest = b->floor_poll_hz * delta(to->wall_ns, from->wall_ns) / 1e9;
	double self = delta(to->self_cpu_ns, from->self_cpu_ns);
	double floor;

	if (b->floor_poll_hz > 0 && slowest < polls)
		polls = slowest;
	floor = ms_rec_budget_floor_per_poll(to) * polls + delta(to->upkeep_ns, from->upkeep_ns);
	return floor < self ? floor : self;
}

void ms_rec_budget_parts(const struct ms_rec_budget *b, const struct ms_rec_cost *from,
			 const struct ms_rec_cost *to, struct ms_rec_cost_parts *out)
{
	struct ms_rec_cost_parts r = {0};
	double wall = delta(to->wall_ns, from->wall_ns), busy, share, use, sampling, expected, extra;

	r.target_cpu = delta(to->target_cpu_ns, from->target_cpu_ns);
	r.in_probes = delta(to->stopped_ns, from->stopped_ns) + delta(to->stub_ns, from->stub_ns);
	r.self = delta(to->self_cpu_ns, from->self_cpu_ns);
	r.fixed = ms_rec_budget_floor(b, from, to);
	sampling = r.self - r.fixed;
	/*
	 * memspy displaces the users of the machine's busy CPUs in proportion
	 * to their use, and only as far as the CPUs are busy: where another is
	 * idle, a target thread woken while memspy runs takes that one. (Without
	 * the second factor, memspy's few ms on a quiet 2-CPU machine were
	 * charged to a light process whenever its run delay came out above
	 * its baseline by noise: the mean swung up to 12 MiB and its leak view
	 * rested on 1-4 samples in 3 of 5 runs.)
	 */
	busy = delta(to->busy_cpu_ns, from->busy_cpu_ns);
	share = busy > 0 ? r.target_cpu / busy : 1;
	use = busy > 0 && to->ncpu && wall > 0 ? busy / ((double)to->ncpu * wall) : 1;
	r.competing = sampling * (share < 1 ? share : 1) * (use < 1 ? use : 1);
	if (b->base_delay_per_cpu >= 0 || b->base_delay_per_wall >= 0) {
		expected = b->base_delay_per_cpu >= 0 ? b->base_delay_per_cpu * r.target_cpu
						      : b->base_delay_per_wall * wall;
		r.extra_delay = delta(to->run_delay_ns, from->run_delay_ns) - expected;
		/*
		 * Measured: what the target did not wait longer for cannot have
		 * slowed it; and of what it did wait longer, sampling caused the
		 * share its CPU has of memspy's (the fixed part, polling and
		 * upkeep, makes the target wait as much with no sample at all).
		 */
		extra = r.extra_delay > 0 && r.self > 0 ? r.extra_delay * sampling / r.self : 0;
		if (r.competing > extra)
			r.competing = extra;
	} else {
		r.extra_delay = NAN;
	}
	r.cost = r.in_probes + r.competing;
	*out = r;
}

uint64_t ms_rec_budget_update(struct ms_rec_budget *b, const struct ms_rec_cost *now)
{
	const struct ms_rec_cost *w = &b->win;
	struct ms_rec_cost_parts pt;
	double wall, target, limit, self_limit, ratio, self_ratio, lost_ratio, fill_ratio, over, f;
	double next = 0;
	uint64_t samples, lost, mean, tracked0;
	bool idle = false;
	char x[32], y[32];

	if (now->tracked > b->peak_tracked)
		b->peak_tracked = now->tracked;
	if (!b->started) {
		b->first = b->win = *now;
		b->started = true;
		return 0;
	}
	wall = delta(now->wall_ns, w->wall_ns);
	if (wall < (double)(b->decisions ? MS_REC_BUDGET_WINDOW_NS : MS_REC_BUDGET_FIRST_NS))
		return 0;
	ms_rec_budget_parts(b, w, now, &pt);
	target = pt.target_cpu;
	if (target < (double)MIN_TARGET_CPU_NS) {
		if (wall < (double)IDLE_WINDOW_NS)
			return 0; /* too little CPU to judge yet: a longer window */
		idle = true;
		target = (double)MIN_TARGET_CPU_NS;
		b->idle_windows++;
	}
	samples = now->samples - w->samples;
	lost = now->lost > w->lost ? now->lost - w->lost : 0;
	b->decisions++;
	b->last_ratio = pt.cost / target;
	ms_debug("record: budget: %.1f s: in the probes %.2f ms + memspy competing %.2f ms "
		 "(memspy's CPU %.1f ms, fixed %.1f ms; extra run delay %.2f ms) / target CPU "
		 "%.1f ms%s = %.3f%%, %llu samples, mean %s",
		 wall / 1e9, pt.in_probes / 1e6, pt.competing / 1e6, pt.self / 1e6, pt.fixed / 1e6,
		 pt.extra_delay / 1e6, pt.target_cpu / 1e6, idle ? " (idle: judged as 20 ms)" : "",
		 100 * pt.cost / target, (unsigned long long)samples,
		 ms_fmt_bytes(x, sizeof(x), b->mean));
	tracked0 = w->tracked; /* w is the window's start until here */
	b->win = *now;
	if (b->budget <= 0)
		return 0;
	limit = b->budget * target;
	self_limit = MS_REC_BUDGET_SELF_MAX * wall;
	ratio = pt.cost / limit;
	self_ratio = (pt.self - pt.fixed) / self_limit;
	/* The share of samples lost, against the most allowed: drained samples over taken. */
	lost_ratio = samples + lost ? (double)lost / (double)(samples + lost) / MS_REC_BUDGET_MAX_LOST
				    : 0;
	/*
	 * The followed blocks, against what the in-target table holds without
	 * overflowing. A wider mean does not empty it (its blocks leave as they
	 * are freed), only slows its growth: above the level, widen while it
	 * still grew over the window, else hold (no narrowing either). Blocks
	 * never freed (a leak) make it grow for good: the guard stops widening
	 * at MS_REC_BUDGET_TABLE_MAX_MEAN, so that new leaks are still sampled
	 * (past it the table fills, and the summary says how many went unfollowed).
	 */
	fill_ratio = (double)now->tracked /
		     (MS_REC_BUDGET_TABLE_FILL * (double)MS_PROBE_PTR_TABLE_SLOTS);
	if (fill_ratio > 1 && (now->tracked <= tracked0 || b->mean >= MS_REC_BUDGET_TABLE_MAX_MEAN))
		fill_ratio = 0.5;
	over = ratio > self_ratio ? ratio : self_ratio;
	if (lost_ratio > over)
		over = lost_ratio;
	if (fill_ratio > over)
		over = fill_ratio;
	mean = b->mean;
	/*
	 * With only a few samples in the window, sampling is not what cost:
	 * the rest (an unwinder refresh, a stop for a new thread) does not
	 * shrink with a wider mean.
	 */
	if (over > 1 && samples >= MIN_SAMPLES_TO_WIDEN) {
		if (mean >= b->max_mean) {
			b->capped = true;
			return 0;
		}
		if (self_ratio > 1 && self_ratio >= ratio && self_ratio >= lost_ratio)
			b->self_over = true;
		if (lost_ratio > 1 && lost_ratio >= ratio && lost_ratio >= self_ratio)
			b->lost_over = true;
		if (fill_ratio > 1 && fill_ratio >= ratio && fill_ratio >= self_ratio &&
		    fill_ratio >= lost_ratio)
			b->table_over = true;
		f = over * MARGIN;
		f = f < MIN_STEP ? MIN_STEP : f > MAX_STEP ? MAX_STEP : f;
		if (b->decisions == 1 && f > MAX_FIRST_STEP)
			f = MAX_FIRST_STEP;
		next = (double)mean * f;
		if (next >= (double)b->max_mean) {
			next = (double)b->max_mean;
			if ((double)mean * over > (double)b->max_mean)
				b->capped = true;
		}
		b->widened++;
	} else if (over < 0.5 && lost * 20 <= samples + lost && mean > b->min_mean) {
		/*
		 * Sampling costs under half the budget and (almost) no sample
		 * was lost to a full ring: narrow towards
		 * budget/1.2, as a widening would, at most 16x per window (a
		 * window without samples narrows 16x: nothing was spent). The
		 * band [1/2, 1] of the budget keeps the mean from swinging.
		 */
		f = over * MARGIN;
		f = f < 1 / MAX_NARROW ? 1 / MAX_NARROW : f > 1 / MIN_STEP ? 1 / MIN_STEP : f;
		next = (double)mean * f;
		if (next < (double)b->min_mean)
			next = (double)b->min_mean;
		b->narrowed++;
	}
	if (next == 0 || (uint64_t)next == mean)
		return 0;
	b->mean = (uint64_t)next;
	if (b->mean > b->peak_mean)
		b->peak_mean = b->mean;
	if (b->mean < b->narrowest_mean)
		b->narrowest_mean = b->mean;
	ms_info("record: sampling cost %.3f%% of the target's CPU time over the last %.1f s "
		"(budget %.2g%%%s; memspy's sampling CPU %.1f%% of a core; %.0f%% of samples lost to "
		"a full ring; %llu sampled blocks followed to their free): mean %s from %s to %s",
		100 * pt.cost / target, wall / 1e9, 100 * b->budget, idle ? ", the target idle" : "",
		100 * (pt.self - pt.fixed) / wall,
		samples + lost ? 100.0 * (double)lost / (double)(samples + lost) : 0.0,
		(unsigned long long)now->tracked,
		b->mean > mean ? "widened" : "narrowed",
		ms_fmt_bytes(x, sizeof(x), mean), ms_fmt_bytes(y, sizeof(y), b->mean));
	return b->mean;
}
