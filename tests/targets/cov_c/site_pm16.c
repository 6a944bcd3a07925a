// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site pm16. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_pm16(unsigned seed)
{
	void *p = NULL;
	int ok;

	if (posix_memalign(&p, 16, PM16_BYTES))
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, PM16_BYTES, seed);
	free(p);
	return ok;
}
