// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site rnull. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_rnull(unsigned seed)
{
	void *p = realloc(NULL, RNULL_BYTES);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, RNULL_BYTES, seed);
	free(p);
	return ok;
}
