// SPDX-License-Identifier: MIT
/*
 * memspy-budget-tight: the worst case for the overhead budget, 4 threads
 * doing nothing but malloc/free, self-checking (same protocol as
 * memspy-rec-target: "ready PID", "go", "half", "expect-*", "done", a line,
 * "selfcheck ok").
 *
 *   memspy-budget-tight tight ROUNDS      (1024 malloc/free pairs per round and thread)
 */
#include "../common/handshake.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NWORKERS 4
#define NOINLINE __attribute__((noinline))

static long rounds;
static pthread_barrier_t start_barrier;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long total_bytes, total_count;
static int failed;

static inline uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* One round: 1024 blocks of 16..1024 bytes, each written, read back and freed. */
NOINLINE static int budget_tight_round(uint32_t *seed, unsigned long long *bytes)
{
	int ok = 1;

	for (int i = 0; i < 1024; i++) {
		size_t n = 16 + xorshift(seed) % 1009;
		unsigned char *p = malloc(n);

		if (!p)
			return 0;
		p[0] = (unsigned char)i;
		p[n - 1] = (unsigned char)n;
		__asm__ volatile("" : : "r"(p) : "memory"); /* keep the block */
		ok &= p[0] == (unsigned char)i && p[n - 1] == (unsigned char)n;
		*bytes += n;
		free(p);
	}
	return ok;
}

NOINLINE static void *budget_worker(void *arg)
{
	uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	unsigned long long bytes = 0;
	int ok = 1;

	pthread_barrier_wait(&start_barrier);
	for (long r = 0; r < rounds; r++) {
		ok &= budget_tight_round(&seed, &bytes);
		if (arg == 0 && r == rounds / 2) {
			pthread_mutex_lock(&lock);
			printf("half\n");
			fflush(stdout);
			pthread_mutex_unlock(&lock);
		}
	}
	pthread_mutex_lock(&lock);
	total_bytes += bytes;
	total_count += (unsigned long long)rounds * 1024;
	failed |= !ok;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[NWORKERS];
	char line[64];
	uint32_t seed = 7;
	unsigned long long b = 0;

	if (argc != 3 || strcmp(argv[1], "tight") || (rounds = atol(argv[2])) < 2) {
		fprintf(stderr, "usage: %s tight ROUNDS\n", argv[0]);
		return 2;
	}
	pthread_barrier_init(&start_barrier, NULL, NWORKERS + 1);
	for (int i = 0; i < NWORKERS; i++)
		if (pthread_create(&t[i], NULL, budget_worker, (void *)(uintptr_t)i))
			return 2;
	hs_ready();
	if (hs_wait_go())
		failed = 1;
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	printf("expect-folded budget_worker;budget_tight_round %llu %llu\n", total_bytes,
	       total_count);
	printf("done\n");
	fflush(stdout);

	/* memspy has detached by now: the allocator must still work, untraced. */
	hs_read_line(line, sizeof(line));
	if (hs_tracer_pid() != 0)
		failed = 1;
	if (!budget_tight_round(&seed, &b))
		failed = 1;
	printf(failed ? "selfcheck FAILED: a block read back wrong or still traced\n"
		      : "selfcheck ok\n");
	return failed;
}
