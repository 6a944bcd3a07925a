// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: nothrow new. */
#include "sites.h"

#include <new>

namespace covx
{

struct NoThrowObj {
	unsigned char b[NOTHROW_BYTES];
};
static_assert(sizeof(NoThrowObj) == NOTHROW_BYTES, "no padding");

NOINLINE int site_nothrow(unsigned seed)
{
	NoThrowObj *o = new (std::nothrow) NoThrowObj;
	int ok;

	if (!o)
		return 0;
	cov_escape(o);
	ok = cov_fill_check(o->b, sizeof(o->b), seed);
	delete o;
	return ok;
}

} // namespace covx
