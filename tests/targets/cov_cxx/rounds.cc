// SPDX-License-Identifier: MIT
/* memspy-cov-cxx: the mode (every C++ site once a round) and what it announces. */
#include "sites.h"

#include <cstdio>

namespace covx
{

NOINLINE int round_all(unsigned seed)
{
	int ok = site_new(seed);

	ok &= site_newarr(seed + 1);
	ok &= site_nothrow(seed + 2);
	ok &= site_aligned(seed + 3);
	ok &= site_vector(seed + 4);
	ok &= site_string(seed + 5);
	ok &= site_keep(seed + 6);
	return ok;
}

static void line(const char *kind, unsigned long long bytes, unsigned long long count,
		 const char *site)
{
	std::printf(
	    "%s %llu %llu cov_worker;covx::round_all(unsigned int);covx::%s(unsigned int)\n", kind,
	    bytes, count, site);
}

static void expect_all(unsigned long long r)
{
	growth v = vector_growth(), s = string_growth();

	line("expect-folded", r * NEW_BYTES, r, "site_new");
	line("expect-folded", r * NEWARR_BYTES, r, "site_newarr");
	line("expect-folded", r * NOTHROW_BYTES, r, "site_nothrow");
	line("expect-folded", r * ALIGNED_BYTES, r, "site_aligned");
	line("expect-folded", r * v.bytes, r * v.count, "site_vector");
	line("expect-folded", r * s.bytes, r * s.count, "site_string");
	line("expect-folded", r * KEEP_BYTES, r, "site_keep");
	line("expect-live", r * KEEP_BYTES, r, "site_keep");
}

static int check_all(unsigned long long r)
{
	return keep_check(r);
}

} // namespace covx

const struct cov_mode cov_modes[] = {
    {"cxx", covx::round_all, covx::expect_all, covx::check_all},
};
const size_t cov_nmodes = sizeof(cov_modes) / sizeof(cov_modes[0]);
