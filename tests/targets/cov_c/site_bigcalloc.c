// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site bigcalloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_bigcalloc(unsigned seed)
{
	void *p = calloc(BIGC_N, BIGC_SIZE);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_zero_fill_check(p, (size_t)BIGC_N * BIGC_SIZE, seed);
	free(p);
	return ok;
}
