// SPDX-License-Identifier: MIT
/*
 * Benchmark target for `memspy dump`: builds a big heap (default ~2.4 GiB in
 * ~5.3 M chunks over the main arena and 4 thread arenas, sizes 16 B..1 MiB,
 * ~15% freed), prints its own mallinfo2(), then idles. A ticker thread
 * measures how long the process was frozen (longest gap between 1 ms ticks)
 * so memspy's and gdb's pauses are measured the same way, from inside.
 *
 *   dump_heap [THREADS [CHUNKS_PER_THREAD]]
 * stdin commands: "gap" -> "gap_us N" (longest gap since the last "gap"); EOF exits 0.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static pthread_barrier_t built;
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static volatile uint64_t max_gap_ns;
static size_t per_thread = 1200000;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Mostly small objects, some medium, a few big, a handful mmapped. */
static size_t pick_size(uint64_t *rng)
{
	uint64_t r = xorshift(rng), k = r % 10000;

	r >>= 16;
	if (k < 8800)
		return 16 + r % 241; /* 16..256 */
	if (k < 9950)
		return 257 + r % 768; /* ..1 KiB */
	if (k < 9998)
		return 1024 + r % (63 << 10); /* 1..64 KiB */
	return (160 << 10) + r % (864 << 10); /* mmapped: 160 KiB..1 MiB */
}

/* Allocates n chunks, touches every byte, frees ~15% in random order. */
static void build(uint64_t seed, size_t n)
{
	void **v =
	    mmap(NULL, n * sizeof(*v), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t rng = seed * 0x9e3779b97f4a7c15ull | 1;

	if (v == MAP_FAILED)
		abort();
	for (size_t i = 0; i < n; i++) {
		size_t sz = pick_size(&rng);

		v[i] = malloc(sz);
		if (!v[i])
			abort();
		memset(v[i], (int)(i & 0xff), sz);
	}
	for (size_t i = 0; i < n; i++) {
		size_t j = xorshift(&rng) % n;

		if (v[j] && xorshift(&rng) % 100 < 16) {
			free(v[j]);
			v[j] = NULL;
		}
	}
	/* The survivors stay referenced from this mapping (never unmapped). */
}

static void *worker(void *arg)
{
	build((uint64_t)(uintptr_t)arg + 1, per_thread);
	pthread_barrier_wait(&built);
	pthread_mutex_lock(&idle_mu);
	for (;;) /* idle forever: keeps the arena attached and the tcache alive */
		pthread_cond_wait(&idle_cv, &idle_mu);
	return NULL;
}

static void *ticker(void *arg)
{
	struct timespec ms = {0, 1000000};
	uint64_t last = now_ns();

	(void)arg;
	for (;;) {
		uint64_t t, gap;

		nanosleep(&ms, NULL);
		t = now_ns();
		gap = t - last;
		if (gap > max_gap_ns)
			max_gap_ns = gap;
		last = t;
	}
	return NULL;
}

static void say(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(1, s, n);

		if (w <= 0)
			exit(3);
		s += w;
		n -= (size_t)w;
	}
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	pthread_t t, *th;
	struct mallinfo2 mi;
	char buf[512], line[64];
	size_t have = 0;

	if (argc > 2)
		per_thread = strtoull(argv[2], NULL, 10);
	if (nthreads < 1 || nthreads > 64 || !per_thread)
		return 64;
	th = calloc((size_t)nthreads, sizeof(*th));
	pthread_barrier_init(&built, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i))
			return 3;
	build(1000, per_thread / 2); /* the main arena's share */
	pthread_barrier_wait(&built);
	if (pthread_create(&t, NULL, ticker, NULL))
		return 3;
	mi = mallinfo2();
	snprintf(buf, sizeof(buf),
		 "MALLINFO arena=%zu ordblks=%zu smblks=%zu hblks=%zu hblkhd=%zu fsmblks=%zu "
		 "uordblks=%zu fordblks=%zu keepcost=%zu\nREADY\n",
		 mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.fsmblks, mi.uordblks,
		 mi.fordblks, mi.keepcost);
	say(buf);
	/* Commands on stdin, read with read(2): nothing here may allocate. */
	for (;;) {
		ssize_t n = read(0, line + have, sizeof(line) - 1 - have);
		char *nl;

		if (n <= 0)
			return 0;
		have += (size_t)n;
		line[have] = 0;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (!strcmp(line, "gap")) {
				snprintf(buf, sizeof(buf), "gap_us %llu\n",
					 (unsigned long long)(max_gap_ns / 1000));
				max_gap_ns = 0;
				say(buf);
			}
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have + 1);
		}
		if (have >= sizeof(line) - 1)
			have = 0;
	}
}
