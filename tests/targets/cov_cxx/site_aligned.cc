// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: aligned new (operator new(size_t, std::align_val_t)) and aligned delete. */
#include "sites.h"

#include <cstdint>

namespace covx
{

struct alignas(ALIGNED_ALIGN) Aligned {
	unsigned char b[ALIGNED_BYTES];
};
static_assert(sizeof(Aligned) == ALIGNED_BYTES, "a multiple of the alignment");

NOINLINE int site_aligned(unsigned seed)
{
	Aligned *o = new Aligned;
	int ok;

	if ((std::uintptr_t)o & (ALIGNED_ALIGN - 1))
		return 0;
	cov_escape(o);
	ok = cov_fill_check(o->b, sizeof(o->b), seed);
	delete o;
	return ok;
}

} // namespace covx
