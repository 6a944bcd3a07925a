// SPDX-License-Identifier: MIT
/* The allocating module tests/e2e/debuglink_fifo.sh strips and points at a FIFO. */
#include <stdlib.h>

void *dl_alloc(size_t n);

__attribute__((noinline)) void *dl_alloc(size_t n)
{
	void *p = malloc(n);

	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}
