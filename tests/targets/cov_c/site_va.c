// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site va. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_va(unsigned seed)
{
	void *p = valloc(VA_BYTES);
	int ok;

	if (!p || ((unsigned long)p & 4095))
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, VA_BYTES, seed);
	free(p);
	return ok;
}
