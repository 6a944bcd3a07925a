// SPDX-License-Identifier: MIT
/*
 * Unwind test target: prints the stack memspy must find (root first) and
 * READY, then blocks at a known depth reading stdin until the driver closes
 * it. argv[1]: "asm" (block in the frameless asm read) or "libc" (libc's
 * read: only CFI can see through it).
 */
#include "uw.h"

#include <stdio.h>
#include <string.h>

volatile int uw_sink;

int main(int argc, char **argv)
{
	int libc = argc > 1 && strcmp(argv[1], "libc") == 0;

	/* "+" ends the list: libc frames may follow the last name. */
	printf("EXPECT main uw_a uw_b uw_c uw_d%s\n", libc ? " +" : " uw_block_read");
	printf("READY\n");
	fflush(stdout);
	return uw_a(0, libc) > 0 ? 0 : 1;
}
