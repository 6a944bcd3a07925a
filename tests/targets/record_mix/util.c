// SPDX-License-Identifier: MIT
/* memspy-rec-target: helpers the call sites share (kept out of their files). */
#include "sites.h"

volatile void *rec_sink;

void rec_escape(void *p)
{
	rec_sink = p;
	__asm__ volatile("" : : "r"(p) : "memory");
}

unsigned long rec_fill_check(unsigned char *p, size_t n, unsigned seed)
{
	unsigned long sum = 0;

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 2654435761u + i * 40503u) ^ (unsigned char)(i >> 8);
	__asm__ volatile("" : : "r"(p) : "memory");
	for (size_t i = 0; i < n; i++)
		sum = sum * 31 + p[i];
	return sum;
}
