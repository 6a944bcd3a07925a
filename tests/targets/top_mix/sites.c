// SPDX-License-Identifier: MIT
/* memspy-top-target: the allocation sites (see sites.h). */
#include "sites.h"

#include <pthread.h>
#include <stdlib.h>

int top_fill_check(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 2654435761u + i * 40503u);
	__asm__ volatile("" : : "r"(p) : "memory");
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed * 2654435761u + i * 40503u))
			return 0;
	return 1;
}

/*
 * Each site calls malloc itself (the leaf memspy shows): n blocks, filled,
 * checked, freed.
 */
#define BLOCKS(size, n, seed)                                                                      \
	do {                                                                                       \
		unsigned char *p_[16];                                                             \
		int ok_ = 1;                                                                       \
		for (int i_ = 0; i_ < (n); i_++) {                                                 \
			p_[i_] = malloc(size);                                                     \
			ok_ &= p_[i_] && top_fill_check(p_[i_], size, (seed) + (unsigned)i_);      \
		}                                                                                  \
		for (int i_ = 0; i_ < (n); i_++)                                                   \
			free(p_[i_]);                                                              \
		return ok_;                                                                        \
	} while (0)

NOINLINE int top_site_big(unsigned seed)
{
	BLOCKS(BIG_BYTES, BIG_N, seed);
}

NOINLINE int top_site_mid(unsigned seed)
{
	BLOCKS(MID_BYTES, MID_N, seed);
}

NOINLINE int top_site_small(unsigned seed)
{
	BLOCKS(SMALL_BYTES, SMALL_N, seed);
}

struct kept {
	struct kept *next;
	unsigned seed;
};

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept *kept;

NOINLINE int top_site_leak(unsigned seed)
{
	struct kept *k = malloc(LEAK_BYTES);

	if (!k || !top_fill_check((unsigned char *)(k + 1), LEAK_BYTES - sizeof(*k), seed))
		return 0;
	k->seed = seed;
	pthread_mutex_lock(&kept_lock);
	k->next = kept;
	kept = k;
	pthread_mutex_unlock(&kept_lock);
	return 1;
}

long top_leak_check(void)
{
	long n = 0;

	pthread_mutex_lock(&kept_lock);
	for (struct kept *k = kept; k; k = k->next, n++) {
		unsigned char *d = (unsigned char *)(k + 1);

		for (size_t i = 0; i < LEAK_BYTES - sizeof(*k); i++)
			if (d[i] != (unsigned char)(k->seed * 2654435761u + i * 40503u)) {
				n = -1;
				break;
			}
		if (n < 0)
			break;
	}
	pthread_mutex_unlock(&kept_lock);
	return n;
}
