// SPDX-License-Identifier: MIT
#include "sites.h"

static void *volatile sink;

unsigned long pf_fill_check(unsigned char *p, size_t n, unsigned seed)
{
	unsigned long sum = 1;

	sink = p;
	for (size_t i = 0; i < n; i += 61)
		p[i] = (unsigned char)(seed + i);
	for (size_t i = 0; i < n; i += 61) {
		if (p[i] != (unsigned char)(seed + i))
			return 0;
		sum += p[i];
	}
	return sum;
}
