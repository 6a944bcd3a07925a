// SPDX-License-Identifier: MIT
/*
 * Unwind benchmark target: recurses to a depth of 20 frames (like the
 * stacks behind doc/DESIGN.md's unwind cost), prints READY and blocks in
 * read(2) on stdin until it is closed.
 */
#include <stdio.h>
#include <unistd.h>

volatile int uwb_sink;

__attribute__((noinline, noipa)) static int uwb_rec(int depth)
{
	char c;
	int r;

	if (depth == 0)
		return (int)read(0, &c, 1);
	r = uwb_rec(depth - 1);
	uwb_sink = r;
	return r + 1;
}

int main(void)
{
	printf("READY\n");
	fflush(stdout);
	return uwb_rec(16) > 0 ? 0 : 1;
}
