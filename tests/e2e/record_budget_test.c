// SPDX-License-Identifier: MIT
/* Unit test of record's --max-overhead controller (no ptrace): decisions on synthetic readings. */
#include "cmd/record_int.h"

#include <stdio.h>

static int failures;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

#define MS   1000000ull
#define KiB  1024ull
#define MiB  (1024ull * 1024)

/* A run of readings: each call advances by dt and adds the given costs. */
struct sim {
	struct ms_rec_cost c;
};

static uint64_t step(struct ms_rec_budget *b, struct sim *s, uint64_t dt_ms, double self_ms,
		     double target_ms, uint64_t samples)
{
	s->c.wall_ns += dt_ms * MS;
	s->c.self_cpu_ns += (uint64_t)(self_ms * 1e6);
	s->c.target_cpu_ns += (uint64_t)(target_ms * 1e6);
	s->c.samples += samples;
	s->c.polls += dt_ms / 5;
	return ms_rec_budget_update(b, &s->c);
}

static void test_widen_and_windows(void)
{
	struct ms_rec_budget b;
	struct sim s = {.c = {.wall_ns = 1000 * MS}};
	uint64_t m;

	ms_rec_budget_init(&b, 0.01, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
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

	ms_rec_budget_init(&b, 0.01, 512 * MiB, MS_REC_BUDGET_MAX_MEAN);
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

	ms_rec_budget_init(&b, 0.01, 64 * KiB, MS_REC_BUDGET_MAX_MEAN);
	step(&b, &s, 0, 0, 0, 0);
	m = step(&b, &s, 500, 100, 1000, 500); /* 10%: widen */
	CHECK(m > 64 * KiB);
	/* Half the budget: inside the band, no change either way. */
	CHECK(step(&b, &s, 1000, 10, 2000, 100) == 0);
	CHECK(step(&b, &s, 1000, 18, 2000, 100) == 0);
	/* Far under (0.05%): narrower, by at most 4x, never below --sample-bytes. */
	m = b.mean;
	CHECK(step(&b, &s, 1000, 1, 2000, 10) == m / 4);
	for (int i = 0; i < 20; i++)
		step(&b, &s, 1000, 0.01, 2000, 1);
	CHECK(b.mean == 64 * KiB);
	CHECK(b.narrowed >= 2);
	/* Under budget without samples: no evidence, no change. */
	ms_rec_budget_init(&b, 0.01, 64 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.mean = 1 * MiB;
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 1000, 0.1, 2000, 0) == 0);
}

static void test_idle_and_off(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};

	ms_rec_budget_init(&b, 0.01, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	step(&b, &s, 0, 0, 0, 0);
	/* An idle target (no CPU): no decision, however costly memspy's polling looks. */
	CHECK(step(&b, &s, 3000, 30, 0, 0) == 0);
	CHECK(step(&b, &s, 3000, 30, 0, 0) == 0);
	CHECK(b.decisions == 0);
	/* The idle window was dropped after 5 s: the next busy second is judged alone. */
	CHECK(step(&b, &s, 1000, 5, 2000, 100) == 0); /* 0.25%: within */
	CHECK(b.decisions == 1 && b.last_ratio < 0.003);

	/* Budget off: measure, never change. */
	ms_rec_budget_init(&b, 0, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 1000, 500, 1000, 10000) == 0);
	CHECK(b.mean == 512 * KiB && b.last_ratio > 0.4);
}

static void test_floor(void)
{
	struct ms_rec_budget b;
	struct sim s = {0};
	uint64_t m;

	ms_rec_budget_init(&b, 0.01, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.floor_poll_hz = 20;
	step(&b, &s, 0, 0, 0, 0);
	/*
	 * 100 idle polls cost 8 ms: 80 us each. Over a second, the floor is 20
	 * polls at the slowest pace, 1.6 ms; of a 22 ms cost against a 20 ms
	 * budget (1% of 2 s), the 20.4 ms that sampling costs must come down to
	 * 18.4 ms / 1.2: the mean widens ~1.33x.
	 */
	s.c.idle_polls = 100;
	s.c.idle_cpu_ns = 8 * MS;
	m = step(&b, &s, 1000, 22, 2000, 1000);
	CHECK(m >= (uint64_t)(1.30 * 512 * KiB) && m <= (uint64_t)(1.36 * 512 * KiB));
	CHECK(!b.floor_over);
	/* Over budget, but with 5 samples sampling is not what costs: no change. */
	ms_rec_budget_init(&b, 0.01, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	CHECK(step(&b, &s, 1000, 100, 2000, 5) == 0);
	CHECK(b.decisions == 1 && b.widened == 0);
	/* A target so idle that the floor alone is over the budget: sampling keeps a quarter. */
	ms_rec_budget_init(&b, 0.01, 512 * KiB, MS_REC_BUDGET_MAX_MEAN);
	b.floor_poll_hz = 20;
	s = (struct sim){0};
	step(&b, &s, 0, 0, 0, 0);
	s.c.idle_polls = 100;
	s.c.idle_cpu_ns = 8 * MS;
	/* 100 ms of target CPU: limit 1 ms, floor 1.6 ms; sampling's 0.2 ms is within a quarter. */
	CHECK(step(&b, &s, 1000, 1.8, 100, 10) == 0);
	CHECK(b.floor_over);
}

int main(void)
{
	test_widen_and_windows();
	test_cap();
	test_narrow_and_hysteresis();
	test_idle_and_off();
	test_floor();
	if (failures) {
		fprintf(stderr, "record_budget_test: %d checks failed\n", failures);
		return 1;
	}
	printf("record_budget_test: all checks passed\n");
	return 0;
}
