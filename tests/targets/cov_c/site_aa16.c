// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site aa16. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_aa16(unsigned seed)
{
	void *p = aligned_alloc(16, AA16_BYTES);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, AA16_BYTES, seed);
	free(p);
	return ok;
}
