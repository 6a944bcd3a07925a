// SPDX-License-Identifier: MIT
/*
 * Test target: exits the moment its tracer detaches. It allocates in a loop
 * (so record has something to sample) and polls TracerPid in
 * /proc/self/status; once it has been traced and is no longer, it exits 0:
 * the race between memspy's detach and its read-back of the restored code.
 * Prints "READY pid=N" first (TracerPid read with the targets' handshake helper).
 */
#include "../common/handshake.h"

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	int was_traced = 0;

	printf("READY pid=%d\n", (int)getpid());
	fflush(stdout);
	for (;;) {
		for (int i = 0; i < 64; i++) {
			void *q = malloc(64 + (size_t)i * 16);

			__asm__ volatile("" : : "r"(q) : "memory");
			free(q);
		}
		if (hs_tracer_pid() > 0)
			was_traced = 1;
		else if (was_traced)
			return 0;
	}
}
