// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site pm. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_pm(unsigned seed)
{
	void *p = NULL;
	int ok;

	if (posix_memalign(&p, PM_ALIGN, PM_BYTES) || ((unsigned long)p & (PM_ALIGN - 1)))
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, PM_BYTES, seed);
	free(p);
	return ok;
}
