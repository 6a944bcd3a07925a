// SPDX-License-Identifier: MIT
/*
 * record: the stack table since a mark. The table's figures only grow
 * (frees move live figures, never what was allocated); a mark keeps each
 * stack's and the totals' figures at one instant, so that what came after
 * is a difference. record --interval cuts its files on marks, memspy top
 * its refresh windows.
 */
#include "record/record.h"

#include <stdlib.h>

/* A stack's cumulative figures at the mark. */
struct base {
	uint64_t samples, bytes;
	double count;
};

struct ms_rec_mark {
	struct base *base; /* per stack; stacks past nbase are new since (all zero) */
	size_t nbase, base_cap;
	struct base total; /* the totals at the mark */
};

struct ms_rec_mark *ms_rec_mark_new(void)
{
	return ms_xcalloc(1, sizeof(struct ms_rec_mark));
}

void ms_rec_mark_free(struct ms_rec_mark *m)
{
	if (!m)
		return;
	free(m->base);
	free(m);
}

void ms_rec_mark_set(struct ms_rec_mark *m, const struct ms_rec_table *t)
{
	size_t nstacks = ms_rec_table_nstacks(t);
	struct ms_rec_totals all;

	ms_rec_table_totals(t, &all);
	ms_xgrow((void **)&m->base, &m->base_cap, nstacks + 1, sizeof(*m->base));
	for (size_t i = 0; i < nstacks; i++) {
		struct ms_rec_stack s;

		ms_rec_table_stack(t, i, &s);
		m->base[i] = (struct base){.samples = s.samples, .bytes = s.bytes, .count = s.count};
	}
	m->nbase = nstacks;
	m->total = (struct base){.samples = all.samples, .bytes = all.bytes, .count = all.count};
}

void ms_rec_mark_stack(const struct ms_rec_mark *m, const struct ms_rec_table *t, size_t i,
		       struct ms_rec_stack *out)
{
	ms_rec_table_stack(t, i, out);
	if (i >= m->nbase)
		return;
	out->samples -= m->base[i].samples;
	out->bytes -= m->base[i].bytes;
	out->count -= m->base[i].count;
	/* Sums of doubles: what an unchanged stack leaves is rounding, not allocations. */
	if (out->count < 1e-9)
		out->count = 0;
}

void ms_rec_mark_totals(const struct ms_rec_mark *m, const struct ms_rec_table *t,
			struct ms_rec_totals *out)
{
	ms_rec_table_totals(t, out);
	out->samples -= m->total.samples;
	out->bytes -= m->total.bytes;
	out->count -= m->total.count;
	if (out->count < 1e-9)
		out->count = 0;
}
