// SPDX-License-Identifier: MIT
/* memspy-cov-c: the call site whose blocks are kept (the live view's positive control). */
#include "sites.h"

#include <pthread.h>
#include <stdlib.h>

struct keep {
	struct keep *next;
	unsigned seed;
};

static struct keep *kept;
static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;

NOINLINE int cov_site_keep(unsigned seed)
{
	struct keep *k = malloc(KEEP_BYTES);
	int ok;

	if (!k)
		return 0;
	ok = cov_fill_check(k + 1, KEEP_BYTES - sizeof(*k), seed);
	k->seed = seed;
	pthread_mutex_lock(&keep_lock);
	k->next = kept;
	kept = k;
	pthread_mutex_unlock(&keep_lock);
	return ok;
}

int cov_keep_check(unsigned long long expected)
{
	unsigned long long n = 0;

	pthread_mutex_lock(&keep_lock);
	for (struct keep *k = kept; k && n <= expected; k = k->next, n++)
		if (!cov_verify(k + 1, KEEP_BYTES - sizeof(*k), k->seed))
			n = expected + 1;
	pthread_mutex_unlock(&keep_lock);
	return n == expected;
}
