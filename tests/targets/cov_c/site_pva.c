// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site pva. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_pva(unsigned seed)
{
	void *p = pvalloc(PVA_BYTES);
	int ok;

	if (!p || ((unsigned long)p & 4095))
		return 0;
	cov_escape(p);
	/* pvalloc rounds the size up to whole pages: all of it is usable. */
	ok = cov_fill_check(p, 4096, seed);
	free(p);
	return ok;
}
