// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site fail_malloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_fail_malloc(unsigned seed)
{
	void *p = malloc(cov_huge_bytes);

	cov_escape(p);
	if (p) {
		free(p);
		return 0;
	}
	return 1;
}
