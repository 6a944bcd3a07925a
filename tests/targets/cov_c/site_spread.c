// SPDX-License-Identifier: MIT
/*
 * memspy-cov-c: call site spread, one malloc reached at SPREAD_DEPTHS
 * recursion depths, so a profile has that many distinct stacks, each with
 * its own size (sampled: each stack's estimated count has a fraction).
 * One block in four is kept until the target exits (a live view).
 */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

static __thread void *spread_kept;

NOINLINE static int cov_spread(unsigned depth, size_t n, unsigned seed)
{
	void *p;
	int ok;

	if (depth)
		return cov_spread(depth - 1, n, seed) & 1; /* not a tail call: one frame per level */
	p = malloc(n);
	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, n, seed);
	if (seed % 4 == 0) {
		/* kept until the target exits, for the live view: a list through the blocks */
		*(void **)p = spread_kept;
		spread_kept = p;
		return ok;
	}
	free(p);
	return ok;
}

NOINLINE int cov_site_spread(unsigned seed)
{
	int ok = 1;

	for (unsigned d = 0; d < SPREAD_DEPTHS; d++)
		ok &= cov_spread(d, SPREAD_BYTES + SPREAD_STEP * (size_t)d, seed + d);
	return ok;
}
