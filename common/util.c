// SPDX-License-Identifier: MIT
/* Small shared helpers: exact reads through a reader, the monotonic clock. */
#include "common/common.h"

#include <errno.h>
#include <time.h>

int ms_read_exact(const struct ms_reader *r, ms_raddr_t addr, void *buf, size_t len)
{
	ssize_t n = r->read(r->ctx, addr, buf, len);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EFAULT;
}

uint64_t ms_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ms_hash_u64s(const uint64_t *v, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;

	for (size_t i = 0; i < n; i++) {
		h ^= v[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}
