// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site realloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_realloc(unsigned seed)
{
	void *p = malloc(REALLOC_FROM), *q;
	int ok;

	if (!p)
		return 0;
	ok = cov_fill_check(p, REALLOC_FROM, seed);
	q = realloc(p, REALLOC_TO);
	if (!q) {
		free(p);
		return 0;
	}
	cov_escape(q);
	ok &= cov_verify(q, REALLOC_FROM, seed);
	ok &= cov_fill_check(q, REALLOC_TO, seed + 1);
	free(q);
	return ok;
}
