// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site ma16. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_ma16(unsigned seed)
{
	void *p = memalign(16, MA16_BYTES);
	int ok;

	if (!p)
		return 0;
	cov_escape(p);
	ok = cov_fill_check(p, MA16_BYTES, seed);
	free(p);
	return ok;
}
