// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site calloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_calloc(unsigned seed)
{
	void *p = calloc(CALLOC_N, CALLOC_SIZE);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_zero_fill_check(p, CALLOC_N * CALLOC_SIZE, seed);
	free(p);
	return ok;
}
