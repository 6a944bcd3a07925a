// SPDX-License-Identifier: MIT
#include "sites.h"

#include <stdlib.h>

NOINLINE unsigned long pf_site_c(unsigned seed)
{
	unsigned char *p = malloc(PF_SIZE_C);
	unsigned long sum;

	if (!p)
		return 0;
	sum = pf_fill_check(p, PF_SIZE_C, seed);
	free(p);
	return sum;
}
