// SPDX-License-Identifier: MIT
/* Unit test of record's sample table: stack interning, weights, the live multiset. */
#include "record/record.h"
#include "tests/lib/mstest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



static const struct ms_rec_stack *find(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t n,
				       struct ms_rec_stack *s)
{
	for (size_t i = 0; i < ms_rec_table_nstacks(t); i++) {
		ms_rec_table_stack(t, i, s);
		if (s->npcs == n && (n == 0 || !memcmp(s->pcs, pcs, n * sizeof(*pcs))))
			return s;
	}
	return NULL;
}

int main(void)
{
	struct ms_rec_table *t = ms_rec_table_new();
	ms_raddr_t a[] = {0x1000, 0x2000, 0x3000}, b[] = {0x1000, 0x2000, 0x3001};
	struct ms_rec_stack s;
	struct ms_rec_totals tot;

	/* Exact samples: weight == size counts 1 each. */
	ms_rec_table_add(t, a, 3, 0, 100, 100, 0x5000, 1);
	ms_rec_table_add(t, a, 3, 0, 100, 100, 0x5000, 1); /* same address sampled again */
	ms_rec_table_add(t, b, 3, 0, 7, 7, 0x6000, 2);
	ms_rec_table_add(t, a, 0, 0, 5, 5, 0x8000, 2); /* no stack */
	ms_rec_table_add(t, b, 1, 0, 9, 9, 0, 2);      /* failed: allocated nothing */
	CHECK(ms_rec_table_nstacks(t) == 3);
	CHECK(find(t, a, 3, &s) && s.samples == 2 && s.bytes == 200 && s.count == 2.0);

	/* A free marks the newest live sample at the address, once per free. */
	CHECK(ms_rec_table_free_ptr(t, 0x5000) == 1);
	CHECK(find(t, a, 3, &s) && s.live_bytes == 100 && s.live_count == 1.0);
	CHECK(ms_rec_table_free_ptr(t, 0x5000) == 1);
	CHECK(find(t, a, 3, &s) && s.live_bytes == 0 && s.live_count == 0);
	CHECK(ms_rec_table_free_ptr(t, 0x5000) == 0); /* allocated before: not ours */
	CHECK(ms_rec_table_free_ptr(t, 0x7777) == 0);
	CHECK(ms_rec_table_free_ptr(t, 0) == 0);
	CHECK(find(t, b, 3, &s) && s.live_bytes == 7);
	CHECK(find(t, NULL, 0, &s) && s.bytes == 5 && s.live_bytes == 5);

	/* Sampled: weight 512k for a 1000-byte call stands for 524.288 calls. */
	ms_rec_table_add(t, b, 3, 0, 524288, 1000, 0x9000, 3);
	CHECK(find(t, b, 3, &s) && fabs(s.count - 525.288) < 1e-9);

	/* Many pointers, reuse, rehashing: live totals stay exact. */
	for (int round = 0; round < 3; round++) {
		for (ms_raddr_t p = 1; p <= 20000; p++)
			ms_rec_table_add(t, a, 2, 1, 16, 16, p * 16, 1);
		for (ms_raddr_t p = 1; p <= 20000; p++)
			if (p % 4)
				CHECK(ms_rec_table_free_ptr(t, p * 16) == 1);
	}
	CHECK(find(t, a, 2, &s) && s.samples == 60000 && s.live_bytes == 3 * 5000 * 16 &&
	      s.live_count == 15000);
	ms_rec_table_totals(t, &tot);
	CHECK(tot.samples == 4 + 1 + 60000);
	CHECK(tot.frees_matched == 2 + 45000);
	CHECK(tot.failed == 1);
	ms_rec_table_free(t);
	return ms_test_result("record_table");
}
