// SPDX-License-Identifier: MIT
/* memspy-cov-*: helpers shared by the call sites (kept out of the sites' files). */
#include "cov.h"

#include <stdint.h>

volatile void *cov_sink;

void cov_escape(void *p)
{
	cov_sink = p;
	__asm__ volatile("" : : "r"(p) : "memory");
}

static unsigned char pattern(size_t i, unsigned seed)
{
	return (unsigned char)((unsigned char)(seed * 2654435761u + i * 40503u) ^
			       (unsigned char)(i >> 8));
}

int cov_fill_check(void *p, size_t n, unsigned seed)
{
	unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = pattern(i, seed);
	__asm__ volatile("" : : "r"(b) : "memory");
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(i, seed))
			return 0;
	return 1;
}

int cov_verify(const void *p, size_t n, unsigned seed)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern(i, seed))
			return 0;
	return 1;
}

int cov_zero_fill_check(void *p, size_t n, unsigned seed)
{
	unsigned char *b = p;

	/* Sparse: a calloc of tens of MiB must not cost a full pass per round. */
	for (size_t i = 0; i < n; i += 4096)
		if (b[i] || b[n - 1 - i])
			return 0;
	return cov_fill_check(b, n < 65536 ? n : 65536, seed);
}
