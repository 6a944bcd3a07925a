// SPDX-License-Identifier: MIT
/*
 * Inline test target (-O2): uw_inl_leaf is always inlined into uw_inl_outer
 * and blocks there, so the return address into it must symbolise as two
 * frames: uw_inl_leaf (inlined, at UW_INL_CALL_LINE) inside uw_inl_outer.
 */
#include "uw.h"

#include <stdio.h>

volatile int uw_sink;

/* The line of the uw_block_read call below: keep them together. */
enum { UW_INL_CALL_LINE = __LINE__ + 4 };
static inline __attribute__((always_inline)) int uw_inl_leaf(int fd)
{
	int k = uw_sink * 3;
	long r = uw_block_read(fd);

	uw_sink = (int)r + k;
	return (int)r + 2;
}

__attribute__((noinline)) int uw_inl_outer(int fd)
{
	int r = uw_inl_leaf(fd);

	uw_sink = r;
	return r * 2 + 1;
}

int main(void)
{
	printf("EXPECT main uw_inl_outer uw_inl_leaf* uw_block_read\n");
	printf("LINE uw_inl_leaf uw_inl.c %d\n", UW_INL_CALL_LINE);
	printf("READY\n");
	fflush(stdout);
	return uw_inl_outer(0) > 0 ? 0 : 1;
}
