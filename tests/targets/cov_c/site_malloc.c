// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site malloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_malloc(unsigned seed)
{
	void *p = malloc(MALLOC_BYTES);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, MALLOC_BYTES, seed);
	free(p);
	return ok;
}
