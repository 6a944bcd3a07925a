// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: new[] and delete[]. */
#include "sites.h"

namespace covx
{

NOINLINE int site_newarr(unsigned seed)
{
	unsigned char *a = new unsigned char[NEWARR_BYTES];
	int ok;

	cov_escape(a);
	ok = cov_fill_check(a, NEWARR_BYTES, seed);
	delete[] a;
	return ok;
}

} // namespace covx
