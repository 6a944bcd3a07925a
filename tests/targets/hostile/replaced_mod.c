// SPDX-License-Identifier: MIT
/*
 * The module of memspy-hostile-replaced, built twice under two names of the
 * same length (MOD_FN): the second is put on disk over the first while the
 * first is mapped. Frames named by the second are memspy reading the file
 * at the path instead of the mapped one.
 */
#include <stdlib.h>

static void *volatile sink;

__attribute__((noinline)) void MOD_FN(void)
{
	sink = malloc(64 + (size_t)(rand() % 4096));
	free(sink);
}
