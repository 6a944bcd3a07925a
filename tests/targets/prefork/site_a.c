// SPDX-License-Identifier: MIT
#include "sites.h"

#include <stdlib.h>

NOINLINE unsigned long pf_site_a(unsigned seed)
{
	unsigned char *p = malloc(PF_SIZE_A);
	unsigned long sum;

	if (!p)
		return 0;
	sum = pf_fill_check(p, PF_SIZE_A, seed);
	free(p);
	return sum;
}
