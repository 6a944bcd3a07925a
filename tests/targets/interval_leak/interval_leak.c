// SPDX-License-Identifier: MIT
/*
 * memspy-interval-leak: a service that leaks on command at a known stack,
 * for the tests of `memspy record --interval` and --probe-free
 * (tests/interval.cmake). A thread churns small short-lived blocks all the
 * time (churn_block, freed at once). Commands on stdin, one per line; each
 * answers one line:
 *   leak N      N blocks of LEAK_BYTES kept forever (grow_cache -> leak_block):
 *               "leaked BYTES BLOCKS T0 T1": totals so far, and CLOCK_REALTIME ns
 *               before the first and after the last block of this batch
 *   pool N      N blocks of POOL_BYTES from its own allocator (keep_pool ->
 *               my_alloc), kept: "pool BYTES BLOCKS" live in the pool
 *   unpool N    gives the N newest kept pool blocks back (my_free): "pool ..."
 *   quit        exits
 * my_alloc/my_free carve blocks from a static arena and never call malloc:
 * only --probe my_alloc sees them, only --probe-free my_free sees them freed.
 *
 *   memspy-interval-leak [leak_bytes]   default 24000
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
#define POOL_BYTES 12345u
#define POOL_MAX 4096u

struct kept {
	struct kept *next;
	char payload[];
};

static struct kept *kept;
static uint64_t leaked_bytes, leaked_blocks;
static size_t leak_size = 24000;
static volatile unsigned long sink;

/* ---- the custom allocator: fixed-size slots in a static arena, a free list ---- */

static _Alignas(64) unsigned char arena[(size_t)POOL_MAX * 12352u];
static void *pool_free_list;
static size_t arena_used;

NOINLINE void *my_alloc(size_t n)
{
	void *p;

	if (n > 12352u)
		return NULL;
	if (pool_free_list) {
		p = pool_free_list;
		pool_free_list = *(void **)p;
	} else if (arena_used + 12352u <= sizeof(arena)) {
		p = arena + arena_used;
		arena_used += 12352u;
	} else {
		return NULL;
	}
	__asm__ volatile("" ::"r"(p) : "memory");
	return p;
}

NOINLINE void my_free(void *p)
{
	if (!p)
		return;
	*(void **)p = pool_free_list;
	pool_free_list = p;
	__asm__ volatile("" ::"r"(p) : "memory");
}

static void *pool_kept[POOL_MAX];
static unsigned pool_n;

NOINLINE static void keep_pool(unsigned n)
{
	for (unsigned i = 0; i < n && pool_n < POOL_MAX; i++) {
		void *p = my_alloc(POOL_BYTES);

		if (!p)
			break;
		memset(p, 0x70, POOL_BYTES);
		pool_kept[pool_n++] = p;
	}
}

NOINLINE static void drop_pool(unsigned n)
{
	for (unsigned i = 0; i < n && pool_n; i++)
		my_free(pool_kept[--pool_n]);
}

/* ---- the leak and the churn ---- */

NOINLINE static void leak_block(size_t n)
{
	struct kept *k = malloc(n);

	memset(k, 0x4b, n);
	k->next = kept;
	kept = k;
	leaked_bytes += n;
	leaked_blocks++;
}

NOINLINE static void grow_cache(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		leak_block(leak_size);
}

NOINLINE static char *churn_block(size_t n)
{
	char *p = malloc(n);

	memset(p, 0x63, n);
	return p;
}

static void *churn(void *arg)
{
	struct timespec ts = {0, 1000000};
	unsigned seq = 0;

	(void)arg;
	for (;;) {
		char *blocks[6];

		for (int i = 0; i < 6; i++)
			blocks[i] = churn_block(64 + ((seq * 7 + (unsigned)i * 131) % 1500));
		for (int i = 0; i < 6; i++) {
			sink += (unsigned char)blocks[i][0];
			free(blocks[i]);
		}
		seq++;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static unsigned long long real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char line[64];
	pthread_t t;

	if (argc > 1)
		leak_size = (size_t)atol(argv[1]);
	if (leak_size < sizeof(struct kept)) {
		fprintf(stderr, "usage: memspy-interval-leak [leak_bytes>=%zu]\n",
			sizeof(struct kept));
		return 64;
	}
	if (pthread_create(&t, NULL, churn, NULL)) {
		perror("pthread_create");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("memspy-interval-leak: pid %d ready: leaks %zu-byte blocks on command\n",
	       (int)getpid(), leak_size);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned n = 0;

		if (sscanf(line, "leak %u", &n) == 1) {
			unsigned long long t0 = real_ns(), t1;

			grow_cache(n);
			t1 = real_ns();
			printf("leaked %llu %llu %llu %llu\n", (unsigned long long)leaked_bytes,
			       (unsigned long long)leaked_blocks, t0, t1);
		} else if (sscanf(line, "pool %u", &n) == 1 || sscanf(line, "unpool %u", &n) == 1) {
			if (line[0] == 'p')
				keep_pool(n);
			else
				drop_pool(n);
			printf("pool %llu %u\n", (unsigned long long)pool_n * POOL_BYTES, pool_n);
		} else if (!strncmp(line, "quit", 4)) {
			break;
		} else {
			printf("unknown command\n");
		}
	}
	return 0;
}
