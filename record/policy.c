// SPDX-License-Identifier: MIT
/*
 * record: the sampling policy, from what the user asked (record's and
 * top's --sample-bytes, --exact, --max-overhead) to the session's starting
 * mean, the narrowest mean the budget may pick and the budget itself. The
 * controller that then moves the mean is budget.c.
 */
#include "record/record.h"

#include <errno.h>

void ms_rec_sampling_ask_init(struct ms_rec_sampling_ask *a)
{
	*a = (struct ms_rec_sampling_ask){.max_overhead = MS_REC_BUDGET_DEFAULT};
}

int ms_rec_sampling_policy(const struct ms_rec_sampling_ask *a, struct ms_rec_sampling *p)
{
	*p = (struct ms_rec_sampling){
	    .sample_bytes = MS_REC_BUDGET_START_MEAN,
	    .min_sample_bytes = MS_REC_BUDGET_MIN_MEAN,
	    .max_overhead = a->overhead_given ? a->max_overhead : MS_REC_BUDGET_DEFAULT,
	};
	if (a->exact && a->sample_given && a->sample_bytes)
		return -EINVAL;
	if (a->sample_given)
		p->sample_bytes = a->sample_bytes;
	if (a->exact)
		p->sample_bytes = 0;
	/*
	 * An explicit --sample-bytes asks for that precision: the budget never
	 * narrows it, and widens it only when --max-overhead is given too.
	 */
	if (a->sample_given) {
		p->min_sample_bytes = p->sample_bytes;
		if (!a->overhead_given)
			p->max_overhead = 0;
	}
	if (!p->sample_bytes) {
		/* Exact must stay exact: no budget may widen it. */
		p->overhead_ignored = a->overhead_given && a->max_overhead > 0;
		p->max_overhead = 0;
	}
	return 0;
}
