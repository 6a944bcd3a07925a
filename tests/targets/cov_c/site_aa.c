// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site aa. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_aa(unsigned seed)
{
	void *p = aligned_alloc(AA_ALIGN, AA_BYTES);
	int ok;

	if (!p || ((unsigned long)p & (AA_ALIGN - 1)))
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, AA_BYTES, seed);
	free(p);
	return ok;
}
