// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site zero. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_zero(unsigned seed)
{
	void *p = malloc(0);

	/* glibc returns a unique minimum-size block for malloc(0). */
	if (!p)
		return 0;
	cov_escape(p);
	free(p);
	free(NULL);
	return 1;
}
