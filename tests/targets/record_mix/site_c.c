// SPDX-License-Identifier: MIT
/* memspy-rec-target: call site C (10% of the mix's bytes), malloc. */
#include "sites.h"

#include <stdlib.h>

NOINLINE unsigned long rec_site_c(unsigned seed)
{
	unsigned char *p = malloc(SITE_C_BYTES);
	unsigned long sum;

	if (!p)
		return 0;
	rec_escape(p);
	sum = rec_fill_check(p, SITE_C_BYTES, seed);
	free(p);
	return sum;
}
