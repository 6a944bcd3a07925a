// SPDX-License-Identifier: MIT
/* memspy-rec-target: the call site of the custom allocator. */
#include "sites.h"

NOINLINE unsigned long rec_site_pool(unsigned seed)
{
	unsigned char *p = rec_pool_alloc(POOL_BYTES);

	if (!p)
		return 0;
	rec_escape(p);
	return rec_fill_check(p, POOL_BYTES, seed);
}
