// SPDX-License-Identifier: MIT
/*
 * memspy-light-leak: a light, mostly sleeping "service" that leaks slowly at
 * one known stack, for the test that memspy's default settings find a slow
 * leak in a process that uses little CPU (tests/record_light.cmake).
 *
 * Every period it wakes, handles one fake request (a few short-lived
 * blocks, freed at once, from handle_request -> churn_block) and, every
 * LEAK_EVERY requests, keeps one LEAK_BYTES block forever (handle_request
 * -> leak_block). Commands on stdin, one per line:
 *   mark    prints "leaked BYTES BLOCKS": the totals leaked so far
 *   quit    exits
 *
 *   memspy-light-leak [period_us] [leak_every] [leak_bytes]
 *                     defaults: 1000 us, 40 requests, 4096 bytes
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

struct kept {
	struct kept *next;
	char payload[];
};

static struct kept *kept;
static uint64_t leaked_bytes, leaked_blocks;
static volatile unsigned long sink;

/* The leak: a block of n bytes (the struct's header included) nothing ever frees. */
NOINLINE static void leak_block(size_t n)
{
	struct kept *k = malloc(n);

	memset(k, 0x4b, n);
	k->next = kept;
	kept = k;
	leaked_bytes += n;
	leaked_blocks++;
}

NOINLINE static char *churn_block(size_t n)
{
	char *p = malloc(n);

	memset(p, 0x63, n);
	return p;
}

NOINLINE static void handle_request(unsigned seq, unsigned leak_every, size_t leak_bytes)
{
	char *blocks[6];

	for (int i = 0; i < 6; i++)
		blocks[i] = churn_block(64 + ((seq * 7 + (unsigned)i * 131) % 1500));
	for (int i = 0; i < 6; i++) {
		sink += (unsigned char)blocks[i][0];
		free(blocks[i]);
	}
	if (seq % leak_every == leak_every - 1)
		leak_block(leak_bytes);
}

/* Handles the commands waiting on stdin; returns 1 on quit or end of input. */
static int commands(void)
{
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		return 1;
	if (!strncmp(line, "mark", 4)) {
		printf("leaked %llu %llu\n", (unsigned long long)leaked_bytes,
		       (unsigned long long)leaked_blocks);
		fflush(stdout);
	}
	return !strncmp(line, "quit", 4);
}

int main(int argc, char **argv)
{
	long period_us = argc > 1 ? atol(argv[1]) : 1000;
	unsigned leak_every = argc > 2 ? (unsigned)atoi(argv[2]) : 40;
	size_t leak_bytes = argc > 3 ? (size_t)atol(argv[3]) : 4096;
	struct timespec next;
	unsigned seq = 0;

	if (period_us < 100 || !leak_every || leak_bytes < sizeof(struct kept)) {
		fprintf(stderr, "usage: memspy-light-leak [period_us>=100] [leak_every>0] "
				"[leak_bytes>=%zu]\n", sizeof(struct kept));
		return 64;
	}
	setvbuf(stdin, NULL, _IOLBF, 0);
	printf("memspy-light-leak: pid %d ready: a %zu-byte block leaked every %u requests, "
	       "one request every %ld us\n", (int)getpid(), leak_bytes, leak_every, period_us);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		struct timespec now, left;
		long long wait_ns;

		handle_request(seq++, leak_every, leak_bytes);
		next.tv_nsec += period_us * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		wait_ns = (long long)(next.tv_sec - now.tv_sec) * 1000000000ll +
			  (next.tv_nsec - now.tv_nsec);
		left = (struct timespec){.tv_sec = wait_ns > 0 ? wait_ns / 1000000000ll : 0,
					 .tv_nsec = wait_ns > 0 ? wait_ns % 1000000000ll : 0};
		/* Sleeps until the next request, answering commands meanwhile. */
		if (ppoll(&pfd, 1, &left, NULL) > 0 && commands())
			break;
		if (wait_ns <= 0)
			next = now; /* fell behind (stopped, descheduled): no burst to catch up */
	}
	return 0;
}
