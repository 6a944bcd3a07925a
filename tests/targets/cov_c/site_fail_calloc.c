// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site fail_calloc. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_fail_calloc(unsigned seed)
{
	void *p = calloc(cov_ovf_n, cov_ovf_size);

	cov_escape(p);
	if (p) {
		free(p);
		return 0;
	}
	return 1;
}
