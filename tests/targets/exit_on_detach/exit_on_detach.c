// SPDX-License-Identifier: MIT
/*
 * Test target: exits the moment its tracer detaches. It allocates in a loop
 * (so record has something to sample) and polls TracerPid in
 * /proc/self/status; once it has been traced and is no longer, it exits 0:
 * the race between memspy's detach and its read-back of the restored code.
 * Prints "READY pid=N" first.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tracer_pid(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	char *p;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "TracerPid:");
	return p ? atoi(p + 10) : -1;
}

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
		if (tracer_pid() > 0)
			was_traced = 1;
		else if (was_traced)
			return 0;
	}
}
