// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: std::vector growth (one operator new per capacity change). */
#include "sites.h"

#include <cstdint>
#include <vector>

namespace covx
{

static growth vec;

NOINLINE int site_vector(unsigned seed)
{
	std::vector<std::uint32_t> v;
	growth g = {0, 0};
	size_t cap = v.capacity();
	int ok = 1;

	for (unsigned i = 0; i < VEC_PUSHES; i++) {
		v.push_back(seed + i);
		if (v.capacity() != cap) {
			cap = v.capacity();
			g.bytes += cap * sizeof(std::uint32_t);
			g.count++;
		}
	}
	for (unsigned i = 0; i < VEC_PUSHES; i++)
		ok &= v[i] == seed + i;
	__atomic_store_n(&vec.bytes, g.bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&vec.count, g.count, __ATOMIC_RELAXED);
	return ok;
}

growth vector_growth()
{
	return vec;
}

} // namespace covx
