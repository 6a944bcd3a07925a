// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: plain new and (sized) delete. */
#include "sites.h"

namespace covx
{

struct Obj {
	unsigned char b[NEW_BYTES];
};
static_assert(sizeof(Obj) == NEW_BYTES, "no padding");

NOINLINE int site_new(unsigned seed)
{
	Obj *o = new Obj;
	int ok;

	cov_escape(o);
	ok = cov_fill_check(o->b, sizeof(o->b), seed);
	delete o; /* C++14: operator delete(void *, size_t) */
	return ok;
}

} // namespace covx
