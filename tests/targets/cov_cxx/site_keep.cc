// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: the site whose objects are kept (the live view's positive control). */
#include "sites.h"

#include <mutex>

namespace covx
{

struct Keep {
	Keep *next;
	unsigned seed;
	unsigned char b[KEEP_BYTES - 16];
};
static_assert(sizeof(Keep) == KEEP_BYTES, "no padding");

static Keep *kept;
static std::mutex keep_lock;

NOINLINE int site_keep(unsigned seed)
{
	Keep *k = new Keep;
	int ok = cov_fill_check(k->b, sizeof(k->b), seed);

	k->seed = seed;
	std::lock_guard<std::mutex> g(keep_lock);
	k->next = kept;
	kept = k;
	return ok;
}

int keep_check(unsigned long long expected)
{
	unsigned long long n = 0;
	std::lock_guard<std::mutex> g(keep_lock);

	for (Keep *k = kept; k && n <= expected; k = k->next, n++)
		if (!cov_verify(k->b, sizeof(k->b), k->seed))
			return 0;
	return n == expected;
}

} // namespace covx
