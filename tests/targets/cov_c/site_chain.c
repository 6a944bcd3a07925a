// SPDX-License-Identifier: MIT
/* memspy-cov-c: call site chain. */
#include "sites.h"

#include <malloc.h>
#include <stdlib.h>

NOINLINE int cov_site_chain(unsigned seed)
{
	size_t n = CHAIN_FIRST;
	unsigned char *p = malloc(n), *q;
	int ok = 1;

	if (!p)
		return 0;
	p[0] = (unsigned char)seed;
	for (int k = 1; k <= CHAIN_GROWS; k++) {
		n += CHAIN_STEP;
		q = realloc(p, n);
		if (!q) {
			free(p);
			return 0;
		}
		p = q;
		ok &= p[0] == (unsigned char)seed; /* the first byte travels with the block */
		p[n - 1] = 1;
	}
	cov_escape(p);
	ok &= cov_fill_check(p, n, seed);
	free(p);
	return ok;
}
