// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site ma. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_ma(unsigned seed)
{
	void *p = memalign(MA_ALIGN, MA_BYTES);
	int ok;

	if (!p || ((unsigned long)p & (MA_ALIGN - 1)))
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, MA_BYTES, seed);
	free(p);
	return ok;
}
