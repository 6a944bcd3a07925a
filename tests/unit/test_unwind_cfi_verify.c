// SPDX-License-Identifier: MIT
/*
 * The compiled CFI table against libdw on hostile copies: random stacks
 * seeded with real code addresses of this process (so rows are compiled and
 * followed, and walks go through libc's CFI) and pointers into the copy,
 * unwound with MEMSPY_VERIFY_UNWIND=1. Every walk the table finishes must
 * equal libdw's; some must be finished by the table and some handed to
 * libdw, or the comparison proved nothing.
 */
#include "unwind/unwind_cfi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY   4096
#define ROUNDS 20000
#define MAXF   64

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Calls of a few levels, so that return addresses in the middle of functions exist. */
__attribute__((noinline)) static int leaf(int x)
{
	return x * 3 + (int)(next_rand() & 1);
}

__attribute__((noinline)) static int middle(int x)
{
	return leaf(x + 1) + 1;
}

int main(void)
{
	static uint8_t copy[COPY];
	const ms_raddr_t code[] = {
	    (ms_raddr_t)(uintptr_t)leaf,  (ms_raddr_t)(uintptr_t)middle,
	    (ms_raddr_t)(uintptr_t)main,  (ms_raddr_t)(uintptr_t)memcpy,
	    (ms_raddr_t)(uintptr_t)printf, (ms_raddr_t)(uintptr_t)qsort,
	    (ms_raddr_t)(uintptr_t)getpid,
	};
	struct ms_cfi_cache_stats st;
	struct ms_unwinder *u;
	struct ms_error err;
	uint64_t mismatches = 0;

	setenv("MEMSPY_VERIFY_UNWIND", "1", 1);
	unsetenv("MEMSPY_UNWIND_CACHE");
	u = ms_unwinder_new(getpid(), MS_UNWIND_DWFL, &err);
	if (!u) {
		fprintf(stderr, "FAIL: unwinder: %s\n", err.msg);
		return 1;
	}
	for (int r = 0; r < ROUNDS; r++) {
		struct user_regs_struct regs;
		const ms_raddr_t base = 0x7ffd00000000ull + (next_rand() & 0xfff0);
		struct ms_stack_copy s = {
		    .regs = &regs, .data = copy, .len = COPY, .addr = base, .at_entry = r & 1};
		ms_raddr_t pcs[MAXF];
		size_t n = 0;

		for (size_t i = 0; i < COPY; i += 8) {
			uint64_t v = next_rand();

			switch (v & 3) {
			case 0: /* somewhere in a real function (a return address or not) */
				v = code[(v >> 8) % MS_ARRAY_SIZE(code)] + ((v >> 16) & 0x7f);
				break;
			case 1: /* a pointer into the copy (a saved rbp, a CFA) */
				v = base + ((v >> 8) % COPY);
				break;
			default:
				break;
			}
			memcpy(copy + i, &v, 8);
		}
		memset(&regs, 0, sizeof(regs));
		regs.rip = code[(unsigned)r % MS_ARRAY_SIZE(code)] + (next_rand() & 0x3f);
		regs.rsp = base;
		regs.rbp = (r & 2) ? base + (next_rand() % COPY) : next_rand();
		regs.rbx = next_rand();
		if (ms_unwind(u, &s, pcs, MAXF, &n) != 0 || n < 1 || pcs[0] != regs.rip) {
			fprintf(stderr, "FAIL: round %d: n=%zu\n", r, n);
			return 1;
		}
	}
	ms_unwind_dwfl_cache_stats(u, &st, &mismatches);
	fprintf(stderr,
		"%d random stacks: %llu walks by the table, %llu by libdw, %llu rows, %llu "
		"mismatches (leaf %d)\n",
		ROUNDS, (unsigned long long)st.done, (unsigned long long)st.fallbacks,
		(unsigned long long)st.rows, (unsigned long long)mismatches, middle(1));
	ms_unwinder_free(u);
	if (mismatches) {
		fprintf(stderr, "FAIL: the table's stacks differ from libdw's\n");
		return 1;
	}
	if (st.done < ROUNDS / 10 || st.fallbacks == 0) {
		fprintf(stderr, "FAIL: too few walks on one side to compare\n");
		return 1;
	}
	return 0;
}
