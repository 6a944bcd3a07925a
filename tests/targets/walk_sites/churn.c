// SPDX-License-Identifier: MIT
/*
 * The same allocator work for both sites: sizes above the tcache limit and
 * frees out of order, so every call goes through _int_malloc/_int_free.
 */
#include "sites.h"

#include <stdlib.h>

#define N 64

__attribute__((noinline)) void churn(void)
{
	void *p[N];

	for (int i = 0; i < N; i++)
		p[i] = malloc(1100 + 48 * (i % 13));
	for (int i = 0; i < N; i += 2)
		free(p[i]);
	for (int i = 1; i < N; i += 2)
		free(p[i]);
	__asm__ volatile("" : : "r"(p) : "memory");
}
