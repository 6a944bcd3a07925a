// SPDX-License-Identifier: MIT
/* memspy-rec-target: call site B (30% of the mix's bytes), calloc. */
#include "sites.h"

#include <stdlib.h>

NOINLINE unsigned long rec_site_b(unsigned seed)
{
	unsigned char *p = calloc(SITE_B_BYTES, 1);
	unsigned long sum;

	if (!p)
		return 0;
	for (size_t i = 0; i < SITE_B_BYTES; i += 512)
		if (p[i])
			return 0; /* calloc must zero */
	rec_escape(p);
	sum = rec_fill_check(p, SITE_B_BYTES, seed);
	free(p);
	return sum;
}
