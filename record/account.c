// SPDX-License-Identifier: MIT
/*
 * record: the cost account as the summaries say it (record's closing
 * summary, top's header): what sampling cost from the budget's first
 * reading on, whether a share of the target's CPU says anything yet, and
 * the estimate of the probes' fast path, which no reading measures.
 */
#include "record/record.h"

#include <math.h>

void ms_rec_account_read(const struct ms_rec_budget *b, const struct ms_rec_cost *to,
			 struct ms_rec_account *out)
{
	const struct ms_rec_cost *f = &b->first;

	*out = (struct ms_rec_account){0};
	ms_rec_budget_parts(b, f, to, &out->parts);
	out->wall_ns = (double)(to->wall_ns > f->wall_ns ? to->wall_ns - f->wall_ns : 0);
	out->samples_per_s =
	    out->wall_ns > 0 ? (double)(to->samples - f->samples) * 1e9 / out->wall_ns : 0;
	out->measurable = out->parts.target_cpu >= MS_REC_IDLE_TARGET_CPU_NS &&
			  out->parts.target_cpu >= MS_REC_IDLE_TARGET_SHARE * out->wall_ns;
	if (out->measurable)
		out->slowdown = out->parts.cost / out->parts.target_cpu;
}

uint64_t ms_rec_unsampled_calls(const struct ms_rec_totals *tot, bool frees)
{
	uint64_t allocs = (uint64_t)llround(tot->count);

	return (allocs > tot->samples ? allocs - tot->samples : 0) + (frees ? allocs : 0);
}
