// SPDX-License-Identifier: MIT
/*
 * A target whose allocations sit under a call that is the last instruction
 * of its function (a call to a noreturn function): the return address is
 * then the first byte of the next function, whose CFI row is not the
 * caller's. An unwinder must look up return address - 1 there; the CFI
 * table's verification (tests/e2e/unwind_verify.py) catches one that does
 * not. Built with -falign-functions=1 so no padding separates the functions.
 *
 *   uv_noreturn noreturn ITERS
 *
 * Protocol of the record targets: "ready PID"; waits for "go"; runs; "done";
 * waits for a line (or EOF); "selfcheck ok" (exit 0) or "selfcheck FAILED".
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/handshake.h"

#define NOINLINE __attribute__((noinline))

static jmp_buf back;
static volatile unsigned long sum;
static unsigned long want, iters;

/* Allocates, then leaves through longjmp: never returns to its caller. */
NOINLINE __attribute__((noreturn)) static void uv_alloc_and_leave(unsigned long i)
{
	unsigned char *p = malloc(48 + i % 200);

	if (!p)
		abort();
	p[0] = (unsigned char)i;
	sum += p[0];
	free(p);
	longjmp(back, 1);
}

/* Its last instruction is the call: the return address is the next function's first byte. */
NOINLINE static void uv_calls_last(unsigned long i)
{
	volatile unsigned long keep[4] = {i, i + 1, i + 2, i + 3}; /* a frame of its own */

	uv_alloc_and_leave(keep[0] + keep[3] - keep[3]);
}

NOINLINE static unsigned long uv_next_function(unsigned long x)
{
	return x * 2654435761u + 1;
}

NOINLINE static void uv_round(unsigned long i)
{
	if (setjmp(back) == 0)
		uv_calls_last(i);
	sum += uv_next_function(i) & 0;
}

int main(int argc, char **argv)
{
	char line[64];

	if (argc != 3 || strcmp(argv[1], "noreturn") != 0 || (iters = strtoul(argv[2], NULL, 10)) == 0) {
		fprintf(stderr, "usage: %s noreturn ITERS\n", argv[0]);
		return 64;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	hs_ready();
	if (hs_read_line(line, sizeof(line)))
		return 1;
	for (unsigned long i = 0; i < iters; i++) {
		want += (unsigned char)i;
		uv_round(i);
	}
	printf("done\n");
	if (hs_read_line(line, sizeof(line)))
		line[0] = 0;
	if (sum != want) {
		printf("selfcheck FAILED: sum %lu, want %lu\n", sum, want);
		return 1;
	}
	printf("selfcheck ok\n");
	return 0;
}
