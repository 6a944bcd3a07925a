// SPDX-License-Identifier: MIT
/* The deepest link: blocks in libc's read() or in the frameless asm one. */
#include "uw.h"

#include <unistd.h>

__attribute__((noinline)) int uw_d(int fd, int libc)
{
	char c;
	long r = libc ? (long)read(fd, &c, 1) : uw_block_read(fd);

	uw_sink = (int)r;
	return (int)r + 1;
}
