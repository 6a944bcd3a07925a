// SPDX-License-Identifier: MIT
/* memspy-rec-target: the leaking call site, and the check of what it kept. */
#include "sites.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct kept {
	struct kept *next;
	unsigned seed;
	unsigned long sum;
};

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept *kept_list;

NOINLINE unsigned long rec_leak_keep(unsigned seed)
{
	unsigned char *p = malloc(LEAK_BYTES);
	struct kept *k = (struct kept *)p;

	if (!p)
		return 0;
	rec_escape(p);
	k->sum = rec_fill_check(p + sizeof(*k), LEAK_BYTES - sizeof(*k), seed);
	k->seed = seed;
	pthread_mutex_lock(&kept_lock);
	k->next = kept_list;
	kept_list = k;
	pthread_mutex_unlock(&kept_lock);
	return k->sum;
}

long rec_leak_check(void)
{
	long n = 0;

	for (struct kept *k = kept_list; k; k = k->next, n++) {
		unsigned char *d = (unsigned char *)k + sizeof(*k);
		unsigned long sum = 0;

		for (size_t i = 0; i < LEAK_BYTES - sizeof(*k); i++)
			sum = sum * 31 + d[i];
		if (sum != k->sum)
			return -1;
	}
	return n;
}
