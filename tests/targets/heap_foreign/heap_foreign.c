// SPDX-License-Identifier: MIT
/*
 * Target for the foreign-allocator cases of `memspy dump`: allocates with
 * whatever malloc it is linked or preloaded with, prints {"pid": N} and
 * blocks until stdin closes. Built dynamically (for LD_PRELOAD of jemalloc,
 * tcmalloc, mimalloc), statically, and with musl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

int main(void)
{
	char buf[64];
	char c;
	int n;

	for (int i = 0; i < 20000; i++) {
		void *p = malloc(16 + (size_t)(i % 300) * 8);

		memset(p, 1, 16);
		sink = p;
		if (i % 3 == 0)
			free(p);
	}
	n = snprintf(buf, sizeof(buf), "{\"pid\": %d}\n", (int)getpid());
	if (write(1, buf, (size_t)n) != n)
		return 3;
	while (read(0, &c, 1) == 1 && c != 'q')
		;
	return 0;
}
