// SPDX-License-Identifier: MIT
/*
 * Test target for the walk-mode allocator-time flame graph: a loop that
 * spends most of its time in malloc/free, called from two sites chosen at
 * random 3:1. It times each site itself and prints the ratio memspy should
 * find when stdin closes or says "stop".
 */
#include "sites.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(void)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull, t_a = 0, t_b = 0, n_a = 0, n_b = 0, t_start;
	struct pollfd pfd = {.fd = 0, .events = POLLIN};

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("READY pid=%d\n", (int)getpid());
	t_start = now_ns();
	for (unsigned iter = 0;; iter++) {
		uint64_t t0, t1;

		/* A random choice, so periodic sampling cannot alias with the loop. */
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		t0 = now_ns();
		if (rng % 4 != 0) {
			site_a();
			t1 = now_ns();
			t_a += t1 - t0;
			n_a++;
		} else {
			site_b();
			t1 = now_ns();
			t_b += t1 - t0;
			n_b++;
		}
		if ((iter & 63) == 0 && poll(&pfd, 1, 0) > 0)
			break;
	}
	printf("SITES a_ns=%llu b_ns=%llu a_calls=%llu b_calls=%llu wall_ns=%llu\n",
	       (unsigned long long)t_a, (unsigned long long)t_b, (unsigned long long)n_a,
	       (unsigned long long)n_b, (unsigned long long)(now_ns() - t_start));
	return 0;
}
