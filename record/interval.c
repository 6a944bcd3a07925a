// SPDX-License-Identifier: MIT
/*
 * record: a recording cut into intervals (record --interval). The
 * boundaries stay on a grid from an origin, the recording's start or one
 * given (record --subprocesses gives every process's recorder its own
 * start, so that interval n covers the same minutes in each); an interval
 * is numbered by where it starts on that grid, so a recording that starts
 * late has a partial first interval with the grid's number. Each interval
 * is the table since a mark set at its start (allocated in it), beside the
 * table itself (live since the recording began). Where the files go and
 * what is said about them is cmd/record_interval.c's.
 */
#include "record/record.h"

#include <limits.h>
#include <stdlib.h>
#include <time.h>

struct ms_rec_interval {
	uint64_t every_ns;
	uint64_t origin_ns;    /* the grid's origin (CLOCK_MONOTONIC) */
	uint64_t from_ns;      /* this interval's start (CLOCK_MONOTONIC) */
	uint64_t from_real_ns; /* the same, CLOCK_REALTIME */
	uint64_t end_ns;       /* when it ends */
	unsigned n;	       /* its number, from 1 */
	struct ms_rec_mark *mark; /* the table when it began */
};

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The interval of the grid that holds t: its number, and when it ends. */
static void on_grid(struct ms_rec_interval *iv, uint64_t t)
{
	uint64_t k = t > iv->origin_ns ? (t - iv->origin_ns) / iv->every_ns : 0;

	iv->n = k + 1 > UINT_MAX ? UINT_MAX : (unsigned)(k + 1);
	iv->end_ns = iv->origin_ns + (k + 1) * iv->every_ns;
}

struct ms_rec_interval *ms_rec_interval_new(uint64_t every_ns, uint64_t start_ns,
					    uint64_t origin_ns)
{
	struct ms_rec_interval *iv = ms_xcalloc(1, sizeof(*iv));

	iv->every_ns = every_ns;
	/* An origin after the start would number the start 0: the start is the origin then. */
	iv->origin_ns = origin_ns && origin_ns <= start_ns ? origin_ns : start_ns;
	iv->from_ns = start_ns;
	iv->from_real_ns = real_ns() - (ms_now_ns() - start_ns);
	on_grid(iv, start_ns);
	iv->mark = ms_rec_mark_new();
	return iv;
}

void ms_rec_interval_free(struct ms_rec_interval *iv)
{
	if (!iv)
		return;
	ms_rec_mark_free(iv->mark);
	free(iv);
}

uint64_t ms_rec_interval_end(const struct ms_rec_interval *iv)
{
	return iv->end_ns;
}

unsigned ms_rec_interval_number(const struct ms_rec_interval *iv)
{
	return iv->n;
}

bool ms_rec_interval_due(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t stop_ns)
{
	return now_ns >= iv->end_ns && !(stop_ns && now_ns >= stop_ns);
}

void ms_rec_interval_times(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t *time_ns,
			   uint64_t *duration_ns)
{
	*time_ns = iv->from_real_ns;
	*duration_ns = now_ns > iv->from_ns ? now_ns - iv->from_ns : 0;
}

void ms_rec_interval_stack(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			   size_t i, struct ms_rec_stack *out)
{
	ms_rec_mark_stack(iv->mark, t, i, out);
}

void ms_rec_interval_totals(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    struct ms_rec_totals *out)
{
	ms_rec_mark_totals(iv->mark, t, out);
}

void ms_rec_interval_next(struct ms_rec_interval *iv, const struct ms_rec_table *t,
			  uint64_t now_ns)
{
	/* The next interval starts from the table as it is now. */
	ms_rec_mark_set(iv->mark, t);
	iv->from_real_ns += now_ns - iv->from_ns;
	iv->from_ns = now_ns;
	/*
	 * The next is the grid's interval that holds now: a cut that overran a
	 * boundary (a write longer than the interval) skips that number, so
	 * that number n always covers the same minutes.
	 */
	on_grid(iv, now_ns);
}
