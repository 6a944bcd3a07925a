// SPDX-License-Identifier: MIT
/* Unit test of record's --max-overhead controller (no ptrace): decisions on synthetic readings. */
#include "record/record.h"
#include "tests/lib/mstest.h"

#include <math.h>
#include <stdio.h>



#define MS   1000000ull
#define KiB  1024ull
#define MiB  (1024ull * 1024)

/* A run of readings: each call advances by dt and adds the given costs. */
struct sim {
	struct ms_rec_cost c;
};

/* self_ms: memspy's CPU; probe_ms: the target's time in the stubs. */
static uint64_t step2(struct ms_rec_budget *b, struct sim *s, uint64_t dt_ms, double self_ms,
		      double probe_ms, double target_ms, uint64_t samples)
{
	s->c.wall_ns += dt_ms * MS;
	s->c.self_cpu_ns += (uint64_t)(self_ms * 1e6);
	s->c.stub_ns += (uint64_t)(probe_ms * 1e6);
	s->c.target_cpu_ns += (uint64_t)(target_ms * 1e6);
	s->c.samples += samples;
	s->c.polls += dt_ms / 5;
	return ms_rec_budget_update(b, &s->c);
}

/* Without run delay or machine figures, memspy's sampling CPU counts in full. */
static uint64_t step(struct ms_rec_budget *b, struct sim *s, uint64_t dt_ms, double self_ms,
		     double target_ms, uint64_t samples)
{
	return step2(b, s, dt_ms, self_ms, 0, target_ms, samples);
}

static void test_widen_and_windows(void)
{
	struct ms_rec_budget b;
	struct sim s = {.c = {.wall_ns = 1000 * MS}};
	uint64_t m;

	ms_rec_budget_init(&b, 0.01, 512 * KiB, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	CHECK(step(&b, &s, 0, 0, 0, 0) == 0); /* the first reading starts the window */
	CHECK(step(&b, &s, 400, 40, 800, 100) == 0); /* 0.4 s: too early */
	/* 0.5 s: 10% of the target's CPU, ten times the budget: ~12x, but a first step is 8x at most. */
	m = step(&b, &s, 100, 60, 200, 100);
	CHECK(m == 8 * 512 * KiB);
	CHECK(b.mean == m && b.widened == 1 && b.peak_mean == m);
	/* Then at most one change per second. */
	CHECK(step(&b, &s, 900, 900, 1800, 1000) == 0);
	/* A huge excess moves at most 64x at once. */
	m = b.mean;
	CHECK(step(&b, &s, 100, 1000, 200, 1000) == 64 * m);
	CHECK(!b.capped);
}

static void test_cap(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};

	ms_rec_budget_init(&b, 0.01, 512 * MiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 600, 100, 1000, 50) == MS_REC_BUDGET_MAX_MEAN);
	CHECK(b.capped);
	CHECK(step(&b, &s, 1000, 100, 1000, 50) == 0); /* nothing wider to go */
	CHECK(b.mean == MS_REC_BUDGET_MAX_MEAN);
}

static void test_narrow_and_hysteresis(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};
	uint64_t m;

	ms_rec_budget_init(&b, 0.01, 64 * KiB, 16 * KiB, MS_REC_BUDGET_MAX_MEAN);
	step(&b, &s, 0, 0, 0, 0);
	m = step(&b, &s, 500, 100, 1000, 500); /* 10%: widen (8x at most, the first step) */
	CHECK(m == 512 * KiB);
	/* Half the budget: inside the band, no change either way. */
	CHECK(step(&b, &s, 1000, 10, 2000, 100) == 0);
	CHECK(step(&b, &s, 1000, 18, 2000, 100) == 0);
	/* Far under (0.05%): narrower, by at most 16x, never below the floor. */
	m = b.mean;
	CHECK(step(&b, &s, 1000, 1, 2000, 10) == m / 16);
	for (int i = 0; i < 20; i++)
		step(&b, &s, 1000, 0.01, 2000, 1);
	CHECK(b.mean == 16 * KiB);
	CHECK(b.narrowed >= 2);
}

/* The default: start at 512 KiB, narrow on a light target down to 4 KiB, widen when it gets busy. */
static void test_both_ways(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};
	uint64_t m;

	ms_rec_budget_init(&b, 0.01, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.base_delay_per_wall = 0; /* measured: the target never waits for a CPU */
	step2(&b, &s, 0, 0, 0, 0, 0);
	/* 50 ms of target CPU a second, 2 samples at 2 us in the stubs: far under 0.5 ms. */
	m = step2(&b, &s, 500, 0.1, 0.004, 25, 2);
	CHECK(m == 32 * KiB);
	for (int i = 0; i < 10; i++)
		step2(&b, &s, 1000, 0.1, 0.004, 50, 4);
	CHECK(b.mean == 4 * KiB && b.narrowest_mean == 4 * KiB);
	/* Busy now: 2 s of CPU a second, 40 ms in the stubs against a 20 ms budget. */
	m = step2(&b, &s, 1000, 5, 40, 2000, 20000);
	CHECK(m > 8 * KiB && m <= 12 * KiB && b.widened == 1);
	/* A window without a single sample is no reason to stay wide: narrower again. */
	m = b.mean;
	CHECK(step2(&b, &s, 1000, 0, 0, 50, 0) == (m / 16 < 4 * KiB ? 4 * KiB : m / 16));
}

static void test_idle_and_off(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};

	ms_rec_budget_init(&b, 0.01, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	step(&b, &s, 0, 0, 0, 0);
	/* An idle target (no CPU): no decision before 3 s, however costly memspy's polling looks. */
	CHECK(step(&b, &s, 2000, 30, 0, 0) == 0);
	CHECK(b.decisions == 0);
	/*
	 * At 3 s, judged as if it had used 20 ms: 30 ms of polling (all fixed:
	 * no samples, no sampling cost) is not the target's slowdown.
	 */
	s.c.idle_polls = s.c.polls;
	s.c.idle_cpu_ns = s.c.self_cpu_ns + 10 * MS;
	CHECK(step(&b, &s, 1000, 10, 0, 0) == 32 * KiB);
	CHECK(b.decisions == 1 && b.idle_windows == 1 && b.narrowed == 1);

	/* Budget off: measure, never change. */
	ms_rec_budget_init(&b, 0, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 1000, 50, 1000, 10000) == 0);
	CHECK(b.mean == 512 * KiB && b.last_ratio > 0.04);
}

/*
 * memspy's CPU counts only where it delayed the target: measured by the
 * target's run delay against its baseline, at most memspy's sampling CPU
 * times the target's share of the machine's busy CPU.
 */
static void test_competing(void)
{
	struct ms_rec_budget b;
	struct ms_rec_cost_parts pt;
	struct sim s = {0};

	/* 4 ms of memspy CPU a second against a 5 ms budget, but no extra run delay: narrower. */
	ms_rec_budget_init(&b, 0.01, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.base_delay_per_cpu = 0.5;
	step2(&b, &s, 0, 0, 0, 0, 0);
	s.c.run_delay_ns += 250 * MS; /* 0.5 ns per ns of 500 ms CPU: the baseline */
	/* 0.5 ms against 5 ms: narrower by 0.1 x 1.2 (512 KiB to ~61 KiB). */
	CHECK(step2(&b, &s, 1000, 4, 0.5, 500, 200) / 1024 == 61);
	/* 30 ms more delay than the baseline: 30 ms of memspy's 40 count, 6x the budget. */
	s.c.run_delay_ns += 280 * MS;
	ms_rec_budget_parts(&b, &b.win, &(struct ms_rec_cost){.wall_ns = s.c.wall_ns + 1000 * MS,
							       .self_cpu_ns = s.c.self_cpu_ns + 40 * MS,
							       .target_cpu_ns =
								   s.c.target_cpu_ns + 500 * MS,
							       .run_delay_ns = s.c.run_delay_ns},
			    &pt);
	CHECK(pt.extra_delay > 29.9e6 && pt.extra_delay < 30.1e6 && pt.competing == pt.extra_delay);
	CHECK(step2(&b, &s, 1000, 40, 0, 500, 200) > 61 * KiB);

	/* Without a baseline: by share. The target used 100 ms of 1 s of the machine's busy CPU. */
	ms_rec_budget_init(&b, 0.01, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	s = (struct sim){0};
	step2(&b, &s, 0, 0, 0, 0, 0);
	s.c.busy_cpu_ns += 1000 * MS;
	ms_rec_budget_parts(&b, &b.win, &(struct ms_rec_cost){.wall_ns = 1000 * MS,
							       .self_cpu_ns = 20 * MS,
							       .target_cpu_ns = 100 * MS,
							       .busy_cpu_ns = 1000 * MS},
			    &pt);
	CHECK(pt.competing > 1.99e6 && pt.competing < 2.01e6 && isnan(pt.extra_delay));
	/*
	 * The same on a 4-CPU machine busy 1 s out of 4 s: a quarter of it
	 * competes (memspy's CPU displaces others only as far as CPUs are busy).
	 */
	ms_rec_budget_parts(&b, &b.win, &(struct ms_rec_cost){.wall_ns = 1000 * MS,
							       .self_cpu_ns = 20 * MS,
							       .target_cpu_ns = 100 * MS,
							       .busy_cpu_ns = 1000 * MS,
							       .ncpu = 4},
			    &pt);
	CHECK(pt.competing > 0.49e6 && pt.competing < 0.51e6);
}

static void test_self_guard_and_few_samples(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};
	uint64_t m;

	/* memspy's sampling CPU at 30% of a core, nothing counted against the target: wider. */
	ms_rec_budget_init(&b, 0.01, 16 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.base_delay_per_wall = 0;
	step2(&b, &s, 0, 0, 0, 0, 0);
	m = step2(&b, &s, 1000, 300, 0, 1000, 5000);
	CHECK(m >= 3 * 16 * KiB && b.self_over);
	/* Half the samples lost to a full ring (memspy starved of CPU): wider, ~2x * 1.2. */
	ms_rec_budget_init(&b, 0.01, 16 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.base_delay_per_wall = 0;
	s = (struct sim){0};
	step2(&b, &s, 0, 0, 0, 0, 0);
	s.c.lost = 1000;
	m = step2(&b, &s, 1000, 1, 0.1, 1000, 1000);
	CHECK(m > 2 * 16 * KiB && m < 3 * 16 * KiB && b.lost_over && !b.self_over);
	/* Over budget, but with 5 samples sampling is not what costs: no change. */
	ms_rec_budget_init(&b, 0.01, 512 * KiB, 4 * KiB, MS_REC_BUDGET_MAX_MEAN);
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 1000, 100, 2000, 5) == 0);
	CHECK(b.decisions == 1 && b.widened == 0);
}

int main(void)
{
	test_widen_and_windows();
	test_cap();
	test_narrow_and_hysteresis();
	test_both_ways();
	test_idle_and_off();
	test_competing();
	test_self_guard_and_few_samples();
	return ms_test_result("record_budget_test");
}
