// SPDX-License-Identifier: MIT
/*
 * Hostile stacks: random bytes as the copy, random or real rip/rbp, each
 * backend on this process itself (no ptrace needed). Every walk must end,
 * within max frames, without a crash (run under ASan+UBSan). Also the
 * frame-pointer walk on a hand-made chain and a cyclic one.
 */
#include "unwind/unwind.h"
#include "tests/lib/mstest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY   4096
#define MAXF   32
#define ROUNDS 3000



static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_names(void)
{
	enum ms_unwind_backend b;

	CHECK(ms_unwind_backend_from_name("elfutils", &b) == 0 && b == MS_UNWIND_DWFL, "elfutils");
	CHECK(ms_unwind_backend_from_name("dwfl", &b) == 0 && b == MS_UNWIND_DWFL, "dwfl");
	CHECK(ms_unwind_backend_from_name("libunwind", &b) == 0 && b == MS_UNWIND_LIBUNWIND, "lu");
	CHECK(ms_unwind_backend_from_name("fp", &b) == 0 && b == MS_UNWIND_FP, "fp");
	CHECK(ms_unwind_backend_from_name("gdb", &b) < 0, "gdb accepted");
}

/* A synthetic stack at a made-up address: frame records by hand. */
static void test_fp_chain(void)
{
	uint64_t st[64] = {0};
	const ms_raddr_t base = 0x7ffd00000000ull;
	struct user_regs_struct regs = {0};
	struct ms_stack_copy s = {.regs = &regs,
				  .data = (const uint8_t *)st,
				  .len = sizeof(st),
				  .addr = base,
				  .at_entry = true};
	struct ms_error err;
	struct ms_unwinder *u = ms_unwinder_new(getpid(), MS_UNWIND_FP, &err);
	ms_raddr_t pcs[MAXF];
	size_t n;

	if (!u) {
		CHECK(0, "fp unwinder: %s", err.msg);
		return;
	}
	regs.rip = 0x1000;
	regs.rsp = base;
	st[0] = 0x2000;		 /* [rsp]: return address into the caller */
	regs.rbp = base + 8 * 4; /* the caller's frame record */
	st[4] = base + 8 * 10;	 /* saved rbp */
	st[5] = 0x3000;		 /* return address */
	st[10] = base + 8 * 20;
	st[11] = 0x4000;
	st[20] = 0; /* outermost: saved rbp 0 */
	st[21] = 0x5000;
	CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0, "fp chain");
	CHECK(n == 5 && pcs[0] == 0x1000 && pcs[1] == 0x2000 && pcs[2] == 0x3000 &&
		  pcs[3] == 0x4000 && pcs[4] == 0x5000,
	      "fp chain: n=%zu", n);
	/* max is honoured */
	CHECK(ms_unwind(u, &s, pcs, 3, &n) == 0 && n == 3, "fp max: n=%zu", n);
	/* A cycle (a frame pointing to itself) ends the walk. */
	st[10] = base + 8 * 10;
	CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0 && n == 4, "fp cycle: n=%zu", n);
	/* A frame pointing backwards too. */
	st[10] = base + 8 * 4;
	CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0 && n == 4, "fp backwards: n=%zu", n);
	/* rbp outside the copy and no fallback: stop there, never read it. */
	regs.rbp = 0x10;
	CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0 && n == 2, "fp wild rbp: n=%zu", n);
	/* Empty copy: just rip. */
	s.len = 0;
	s.data = NULL;
	CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0 && n == 1, "fp empty: n=%zu", n);
	ms_unwinder_free(u);
}

static void test_random(enum ms_unwind_backend b)
{
	static uint8_t copy[COPY];
	/* Real code addresses, so CFI is looked up and followed. */
	const ms_raddr_t code[] = {
	    (ms_raddr_t)(uintptr_t)test_random, (ms_raddr_t)(uintptr_t)test_fp_chain,
	    (ms_raddr_t)(uintptr_t)memcpy,	(ms_raddr_t)(uintptr_t)printf,
	    (ms_raddr_t)(uintptr_t)getpid,
	};
	struct ms_error err;
	struct ms_unwinder *u = ms_unwinder_new(getpid(), b, &err);
	size_t total = 0, maxn = 0, r, i;

	if (!u) {
		CHECK(0, "%s unwinder: %s", ms_unwind_backend_name(b), err.msg);
		return;
	}
	for (r = 0; r < ROUNDS; r++) {
		struct user_regs_struct regs;
		const ms_raddr_t base = 0x7ffe00000000ull + (next_rand() & 0xfff0);
		struct ms_stack_copy s = {
		    .regs = &regs, .data = copy, .len = COPY, .addr = base, .at_entry = r & 1};
		ms_raddr_t pcs[MAXF];
		size_t n = 0;

		for (i = 0; i < COPY; i += 8) {
			uint64_t v = next_rand();

			/* Mix plausible words in: code addresses and in-copy pointers. */
			switch (v & 3) {
			case 0:
				v = code[(v >> 8) % MS_ARRAY_SIZE(code)] + ((v >> 16) & 0xff);
				break;
			case 1:
				v = base + ((v >> 8) % COPY);
				break;
			default:
				break;
			}
			memcpy(copy + i, &v, 8);
		}
		memset(&regs, 0, sizeof(regs));
		regs.rip =
		    (r % 3) ? code[r % MS_ARRAY_SIZE(code)] + (next_rand() & 0x3f) : next_rand();
		regs.rsp = base;
		regs.rbp = (r & 2) ? base + (next_rand() % COPY) : next_rand();
		regs.rbx = next_rand();
		CHECK(ms_unwind(u, &s, pcs, MAXF, &n) == 0, "unwind returned an error");
		CHECK(n >= 1 && n <= MAXF && pcs[0] == regs.rip, "n=%zu", n);
		total += n;
		maxn = MS_MAX(maxn, n);
	}
	fprintf(stderr, "%s: %d random stacks, mean %.1f frames, max %zu\n",
		ms_unwind_backend_name(b), ROUNDS, (double)total / ROUNDS, maxn);
	ms_unwinder_free(u);
}

int main(void)
{
	test_names();
	test_fp_chain();
	test_random(MS_UNWIND_FP);
	test_random(MS_UNWIND_DWFL);
	test_random(MS_UNWIND_LIBUNWIND);
	return ms_test_result("test_unwind_hostile");
}
