// SPDX-License-Identifier: MIT
/*
 * Unit test of the bounds on record's sample table (record/stacks.c):
 * a target that feeds hundreds of thousands of distinct stacks, or millions
 * of blocks it never frees, cannot make memspy's memory grow without bound,
 * every sample still counts in the totals, and frees still find the right
 * sample after the table compacted itself.
 */
#include "record/record.h"
#include "tests/lib/mstest.h"

#include <stdio.h>
#include <stdlib.h>



int main(void)
{
	struct ms_rec_table *t = ms_rec_table_new();
	struct ms_rec_totals tot;
	ms_raddr_t pcs[256];
	const uint64_t nstacks = 400000, ndeep = 10000, nsamples = 3000000;

	/* Distinct fake stacks: past the bound they share one frameless stack. */
	for (uint64_t i = 0; i < nstacks; i++) {
		for (int k = 0; k < 2; k++)
			pcs[k] = 0x400000 + i * 64 + (uint64_t)k;
		ms_rec_table_add(t, pcs, 2, 0, 10, 10, 0x10000000 + i * 16, 1);
	}
	ms_rec_table_totals(t, &tot);
	CHECK(tot.samples == nstacks);
	CHECK(tot.bytes == nstacks * 10);
	CHECK(ms_rec_table_nstacks(t) <= tot.max_stacks + 1);
	CHECK(tot.stacks_capped == nstacks - tot.max_stacks);
	printf("%llu distinct stacks fed: %zu kept, %llu samples past the bound of %zu\n",
	       (unsigned long long)nstacks, ms_rec_table_nstacks(t),
	       (unsigned long long)tot.stacks_capped, tot.max_stacks);
	ms_rec_table_free(t);

	/* Deep distinct stacks (256 frames): the bound on frames kept comes first. */
	t = ms_rec_table_new();
	for (uint64_t i = 0; i < ndeep; i++) {
		for (int k = 0; k < 256; k++)
			pcs[k] = 0x400000 + i * 4096 + (uint64_t)k;
		ms_rec_table_add(t, pcs, 256, 0, 10, 10, 0x10000000 + i * 16, 1);
	}
	ms_rec_table_totals(t, &tot);
	CHECK(tot.samples == ndeep);
	CHECK(tot.distinct_pcs_hint <= tot.max_pcs);
	CHECK(tot.stacks_capped == ndeep - tot.max_pcs / 256);
	printf("%llu deep stacks fed: %zu kept (%zu frames), %llu past the bound of %zu frames\n",
	       (unsigned long long)ndeep, ms_rec_table_nstacks(t), tot.distinct_pcs_hint,
	       (unsigned long long)tot.stacks_capped, tot.max_pcs);
	ms_rec_table_free(t);

	/* Samples freed as they go: the table compacts, frees keep matching. */
	t = ms_rec_table_new();
	pcs[0] = 0x1234;
	for (uint64_t i = 0; i < nsamples; i++) {
		ms_raddr_t p = 0x20000000 + (i % 1000) * 16; /* addresses reused */

		ms_rec_table_add(t, pcs, 1, 0, 7, 7, p, 1);
		if (i % 2)
			CHECK(ms_rec_table_free_ptr(t, p) == 1);
	}
	ms_rec_table_totals(t, &tot);
	CHECK(tot.untracked == 0);
	CHECK(tot.frees_matched == nsamples / 2);
	CHECK(tot.live_bytes == (nsamples - nsamples / 2) * 7);
	/* Never freed: past the bound they are counted, not kept. */
	for (uint64_t i = 0; i < nsamples; i++)
		ms_rec_table_add(t, pcs, 1, 0, 7, 7, 0x40000000 + i * 16, 1);
	ms_rec_table_totals(t, &tot);
	CHECK(tot.untracked > 0);
	CHECK(tot.bytes == 2 * nsamples * 7);
	CHECK(ms_rec_table_free_ptr(t, 0x40000000) == 1); /* kept before the bound */
	printf("%llu live samples fed: %llu past the bound of %zu not kept\n",
	       (unsigned long long)nsamples, (unsigned long long)tot.untracked, tot.max_samples);
	ms_rec_table_free(t);
	return ms_test_result("test_record_bounds");
}
