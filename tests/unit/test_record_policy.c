// SPDX-License-Identifier: MIT
/*
 * Unit test of record's sampling policy (record/policy.c): what
 * --sample-bytes, --exact and --max-overhead ask, as the session's starting
 * mean, the budget's floor and the budget, against the rules record's help
 * states.
 */
#include "record/record.h"
#include "tests/lib/mstest.h"

#include <errno.h>

static int policy(bool exact, bool sample_given, uint64_t sample_bytes, bool overhead_given,
		  double overhead, struct ms_rec_sampling *p)
{
	struct ms_rec_sampling_ask a;

	ms_rec_sampling_ask_init(&a);
	a.exact = exact;
	a.sample_given = sample_given;
	a.sample_bytes = sample_bytes;
	a.overhead_given = overhead_given;
	if (overhead_given)
		a.max_overhead = overhead;
	return ms_rec_sampling_policy(&a, p);
}

int main(void)
{
	struct ms_rec_sampling p;

	/* Nothing asked: the budget (1%) picks the mean, from 512 KiB, never under 4 KiB. */
	CHECK(policy(false, false, 0, false, 0, &p) == 0);
	CHECK(p.sample_bytes == 512 * 1024 && p.min_sample_bytes == 4096);
	CHECK(p.max_overhead == 0.01 && !p.overhead_ignored);

	/* --max-overhead 0.5%: the same mean, another budget. */
	CHECK(policy(false, false, 0, true, 0.005, &p) == 0);
	CHECK(p.sample_bytes == 512 * 1024 && p.min_sample_bytes == 4096 &&
	      p.max_overhead == 0.005);

	/* --sample-bytes N alone fixes the mean: no budget. */
	CHECK(policy(false, true, 65536, false, 0, &p) == 0);
	CHECK(p.sample_bytes == 65536 && p.min_sample_bytes == 65536 && p.max_overhead == 0);

	/* With --max-overhead too: N is the narrowest; the budget may widen it. */
	CHECK(policy(false, true, 65536, true, 0.02, &p) == 0);
	CHECK(p.sample_bytes == 65536 && p.min_sample_bytes == 65536 && p.max_overhead == 0.02);

	/* --exact, or --sample-bytes 0: every call; no budget may widen it. */
	CHECK(policy(true, false, 0, false, 0, &p) == 0);
	CHECK(p.sample_bytes == 0 && p.max_overhead == 0 && !p.overhead_ignored);
	CHECK(policy(false, true, 0, false, 0, &p) == 0);
	CHECK(p.sample_bytes == 0 && p.max_overhead == 0);
	CHECK(policy(true, true, 0, false, 0, &p) == 0);
	CHECK(p.sample_bytes == 0);

	/* --max-overhead with --exact is ignored, and said to be; "off" with it is not worth a word. */
	CHECK(policy(true, false, 0, true, 0.01, &p) == 0);
	CHECK(p.sample_bytes == 0 && p.max_overhead == 0 && p.overhead_ignored);
	CHECK(policy(true, false, 0, true, 0, &p) == 0);
	CHECK(p.max_overhead == 0 && !p.overhead_ignored);

	/* --exact contradicts --sample-bytes N > 0. */
	CHECK(policy(true, true, 4096, false, 0, &p) == -EINVAL);

	return ms_test_result("record_policy");
}
