// SPDX-License-Identifier: MIT
/*
 * memspy-rec-target: a custom allocator that never calls malloc (a bump
 * allocator over a static arena), for `memspy record --probe rec_pool_alloc`.
 */
#include "sites.h"

#include <stdatomic.h>

static unsigned char pool[64 << 20];
static atomic_size_t pool_used;

NOINLINE void *rec_pool_alloc(size_t n)
{
	size_t off = atomic_fetch_add(&pool_used, (n + 15) & ~(size_t)15);

	if (off + n > sizeof(pool))
		return NULL;
	return pool + off;
}
