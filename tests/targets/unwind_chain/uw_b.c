// SPDX-License-Identifier: MIT
/* One link of the unwind tests' call chain (see uw.h). */
#include "uw.h"

__attribute__((noinline)) int uw_b(int fd, int libc)
{
	int r = uw_c(fd, libc);

	uw_sink = r; /* the call is not in tail position: the frame stays */
	return r + 1;
}
