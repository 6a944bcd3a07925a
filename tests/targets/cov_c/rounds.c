// SPDX-License-Identifier: MIT
/*
 * memspy-cov-c / memspy-cov-bump: the modes (which sites a round calls) and
 * what each mode announces that memspy should find.
 */
#include "sites.h"

#include <stdint.h>
#include <stdio.h>

volatile size_t cov_huge_bytes = SIZE_MAX / 4; /* below PTRDIFF_MAX: malloc really tries */
volatile size_t cov_ovf_n = SIZE_MAX / 2 + 3, cov_ovf_size = 3; /* product wraps to 5 */

#define SITE(round, site) "cov_worker;" #round ";" #site

static void line(const char *kind, unsigned long long bytes, unsigned long long count,
		 const char *stack)
{
	printf("%s %llu %llu %s\n", kind, bytes, count, stack);
}

NOINLINE static int cov_round_basic(unsigned seed)
{
	int ok = cov_site_malloc(seed);

	ok &= cov_site_calloc(seed + 1);
	ok &= cov_site_realloc(seed + 2);
	ok &= cov_site_keep(seed + 3);
	return ok;
}

static void expect_basic(unsigned long long r)
{
	line("expect-folded", r * MALLOC_BYTES, r, SITE(cov_round_basic, cov_site_malloc));
	line("expect-folded", r * CALLOC_N * CALLOC_SIZE, r,
	     SITE(cov_round_basic, cov_site_calloc));
	line("expect-folded", r * (REALLOC_FROM + REALLOC_TO), 2 * r,
	     SITE(cov_round_basic, cov_site_realloc));
	line("expect-folded", r * KEEP_BYTES, r, SITE(cov_round_basic, cov_site_keep));
	line("expect-live", r * KEEP_BYTES, r, SITE(cov_round_basic, cov_site_keep));
}

static int check_keep(unsigned long long r)
{
	return cov_keep_check(r);
}

NOINLINE static int cov_round_memalign(unsigned seed)
{
	int ok = cov_site_pm(seed);

	ok &= cov_site_aa(seed + 1);
	ok &= cov_site_ma(seed + 2);
	ok &= cov_site_va(seed + 3);
	ok &= cov_site_pva(seed + 4);
	ok &= cov_site_keep(seed + 5);
	return ok;
}

static void expect_memalign(unsigned long long r)
{
	/* Bytes are what the caller asked for (pvalloc's page rounding is the allocator's). */
	line("expect-folded", r * PM_BYTES, r, SITE(cov_round_memalign, cov_site_pm));
	line("expect-folded", r * AA_BYTES, r, SITE(cov_round_memalign, cov_site_aa));
	line("expect-folded", r * MA_BYTES, r, SITE(cov_round_memalign, cov_site_ma));
	line("expect-folded", r * VA_BYTES, r, SITE(cov_round_memalign, cov_site_va));
	line("expect-folded", r * PVA_BYTES, r, SITE(cov_round_memalign, cov_site_pva));
	line("expect-folded", r * KEEP_BYTES, r, SITE(cov_round_memalign, cov_site_keep));
	line("expect-live", r * KEEP_BYTES, r, SITE(cov_round_memalign, cov_site_keep));
}

/* The same without pvalloc, which jemalloc does not define. */
NOINLINE static int cov_round_memalign_nopv(unsigned seed)
{
	int ok = cov_site_pm(seed);

	ok &= cov_site_aa(seed + 1);
	ok &= cov_site_ma(seed + 2);
	ok &= cov_site_va(seed + 3);
	ok &= cov_site_keep(seed + 5);
	return ok;
}

static void expect_memalign_nopv(unsigned long long r)
{
	line("expect-folded", r * PM_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_pm));
	line("expect-folded", r * AA_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_aa));
	line("expect-folded", r * MA_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_ma));
	line("expect-folded", r * VA_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_va));
	line("expect-folded", r * KEEP_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_keep));
	line("expect-live", r * KEEP_BYTES, r, SITE(cov_round_memalign_nopv, cov_site_keep));
}

/* Entry points that glibc implements by calling its own malloc entry. */
NOINLINE static int cov_round_nested(unsigned seed)
{
	int ok = cov_site_rnull(seed);

	ok &= cov_site_pm16(seed + 1);
	ok &= cov_site_ma16(seed + 2);
	ok &= cov_site_aa16(seed + 3);
	return ok;
}

static void expect_nested(unsigned long long r)
{
	line("expect-folded", r * RNULL_BYTES, r, SITE(cov_round_nested, cov_site_rnull));
	line("expect-folded", r * PM16_BYTES, r, SITE(cov_round_nested, cov_site_pm16));
	line("expect-folded", r * MA16_BYTES, r, SITE(cov_round_nested, cov_site_ma16));
	line("expect-folded", r * AA16_BYTES, r, SITE(cov_round_nested, cov_site_aa16));
}

NOINLINE static int cov_round_edge(unsigned seed)
{
	int ok = cov_site_chain(seed);

	ok &= cov_site_bigcalloc(seed + 1);
	ok &= cov_site_zero(seed + 2);
	ok &= cov_site_fail_malloc(seed + 3);
	ok &= cov_site_fail_calloc(seed + 4);
	return ok;
}

static void expect_edge(unsigned long long r)
{
	unsigned long long chain = 0, n = CHAIN_FIRST;

	for (int k = 0; k <= CHAIN_GROWS; k++, n += CHAIN_STEP)
		chain += n;
	line("expect-folded", r * chain, r * (CHAIN_GROWS + 1),
	     SITE(cov_round_edge, cov_site_chain));
	line("expect-folded", r * BIGC_N * BIGC_SIZE, r, SITE(cov_round_edge, cov_site_bigcalloc));
	line("expect-folded", 0, r, SITE(cov_round_edge, cov_site_zero));
	/* Failed calls: counted as calls; nothing was allocated (bytes are the driver's question).
	 */
	printf("expect-failed %zu %llu %s\n", (size_t)cov_huge_bytes, r,
	       SITE(cov_round_edge, cov_site_fail_malloc));
	printf("expect-failed %zu*%zu %llu %s\n", (size_t)cov_ovf_n, (size_t)cov_ovf_size, r,
	       SITE(cov_round_edge, cov_site_fail_calloc));
}

/* A failed call, then a good one: the good one must still be counted. */
NOINLINE static int cov_round_failm(unsigned seed)
{
	return cov_site_fail_malloc(seed) & cov_site_zero(seed);
}

static void expect_failm(unsigned long long r)
{
	line("expect-folded", 0, r, SITE(cov_round_failm, cov_site_zero));
	printf("expect-failed %zu %llu %s\n", (size_t)cov_huge_bytes, r,
	       SITE(cov_round_failm, cov_site_fail_malloc));
}

NOINLINE static int cov_round_failc(unsigned seed)
{
	return cov_site_fail_calloc(seed) & cov_site_zero(seed);
}

static void expect_failc(unsigned long long r)
{
	line("expect-folded", 0, r, SITE(cov_round_failc, cov_site_zero));
	printf("expect-failed %zu*%zu %llu %s\n", (size_t)cov_ovf_n, (size_t)cov_ovf_size, r,
	       SITE(cov_round_failc, cov_site_fail_calloc));
}

/* Many distinct stacks: the totals test compares figures summed over them. */
NOINLINE static int cov_round_spread(unsigned seed)
{
	return cov_site_spread(seed);
}

static void expect_spread(unsigned long long r)
{
	unsigned long long bytes = 0;

	for (unsigned d = 0; d < SPREAD_DEPTHS; d++)
		bytes += SPREAD_BYTES + SPREAD_STEP * d;
	line("expect-folded", r * bytes, r * SPREAD_DEPTHS, SITE(cov_round_spread, cov_site_spread));
}

const struct cov_mode cov_modes[] = {
    {"failm", cov_round_failm, expect_failm, NULL},
    {"failc", cov_round_failc, expect_failc, NULL},
    {"basic", cov_round_basic, expect_basic, check_keep},
    {"memalign", cov_round_memalign, expect_memalign, check_keep},
    {"memalign-nopv", cov_round_memalign_nopv, expect_memalign_nopv, check_keep},
    {"nested", cov_round_nested, expect_nested, NULL},
    {"edge", cov_round_edge, expect_edge, NULL},
    {"spread", cov_round_spread, expect_spread, NULL},
};
const size_t cov_nmodes = sizeof(cov_modes) / sizeof(cov_modes[0]);
