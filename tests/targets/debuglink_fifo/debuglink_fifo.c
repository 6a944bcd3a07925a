// SPDX-License-Identifier: MIT
/*
 * Target for tests/e2e/debuglink_fifo.sh: loads MODULE (a stripped library
 * whose .gnu_debuglink names a FIFO beside it) and allocates through it in
 * a loop, so memspy has frames of that module to name. Prints "ready",
 * runs until stdin closes.
 *   debuglink_fifo MODULE
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv)
{
	void *h;
	void *(*dl_alloc)(size_t);

	if (argc < 2 || !(h = dlopen(argv[1], RTLD_NOW)))
		return 2;
	*(void **)&dl_alloc = dlsym(h, "dl_alloc");
	if (!dl_alloc)
		return 2;
	fcntl(0, F_SETFL, O_NONBLOCK);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		char c;

		sink = dl_alloc(64 + (size_t)(rand() % 4096));
		free(sink);
		if (read(0, &c, 1) == 0)
			break;
		usleep(100);
	}
	return 0;
}
