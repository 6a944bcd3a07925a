// SPDX-License-Identifier: MIT
/*
 * trap_own: a target that uses int3 itself (as a JIT or a self-debugging
 * runtime may) and handles its own SIGTRAP. While memspy is attached every
 * trap must still reach the target's handler. Prints "ready", waits for a
 * line on stdin, executes N int3 in a loop with some allocation between,
 * prints "ok traps=N" only if the handler saw every one, else "FAIL".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/handshake.h"

static volatile sig_atomic_t handled;

static void on_trap(int sig)
{
	(void)sig;
	handled++;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000;
	struct sigaction sa;
	char line[16];
	volatile unsigned long sink = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigaction(SIGTRAP, &sa, NULL);
	hs_ready();
	if (hs_read_line(line, sizeof(line)))
		return 2;
	for (long i = 0; i < n; i++) {
		char *p = malloc(64 + (size_t)(i % 512));

		p[0] = (char)i;
		sink += (unsigned char)p[0];
		free(p);
		__asm__ volatile("int3"); /* SIGTRAP, si_code SI_KERNEL: like a breakpoint */
		if (i % 64 == 0)
			usleep(1000); /* long enough for memspy's periodic stops to land */
	}
	if (handled != n) {
		printf("FAIL traps: handler saw %ld of %ld\n", (long)handled, n);
		return 1;
	}
	printf("ok traps=%ld\n", n);
	return 0;
}
