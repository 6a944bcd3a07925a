// SPDX-License-Identifier: MIT
/*
 * Benchmark targets for profiler overhead (never part of pass/fail).
 *
 *   alloc_bench tight   THREADS SECONDS   4-thread malloc/free loop, random sizes
 *   alloc_bench service THREADS SECONDS   request handling: 8-15 frame call chains,
 *                                          several allocations per request, 1% leaked
 *
 * Protocol (so a profiler can attach to an idle process first): prints
 * "ready <pid>" on stdout, waits for a line on stdin, runs for SECONDS,
 * then prints "ops <total> rate <ops/s> checksum <x>" and exits.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static double run_seconds;
static volatile int go;
static uint64_t total_ops;
static uint64_t checksum;
static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* ---- tight: the worst case, a thread that does nothing but allocate ---- */
static void *tight_thread(void *arg)
{
	uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	uint64_t ops = 0, sum = 0;
	double end = now() + run_seconds;

	while (!go)
		;
	while (1) {
		for (int i = 0; i < 1024; i++) {
			size_t n = 16 + xorshift(&seed) % 1009;
			unsigned char *p = malloc(n);

			p[0] = (unsigned char)i;
			p[n - 1] = 1;
			sum += p[0] + p[n - 1];
			free(p);
		}
		ops += 1024;
		if (now() >= end)
			break;
	}
	pthread_mutex_lock(&total_lock);
	total_ops += ops;
	checksum += sum;
	pthread_mutex_unlock(&total_lock);
	return NULL;
}

/* ---- service: realistic call chains, 1% of requests leak their session ---- */
struct session {
	char *user;
	char *body;
	size_t len;
	struct session *next;
};
static struct session *leaked;
static pthread_mutex_t leak_lock = PTHREAD_MUTEX_INITIALIZER;

NOINLINE static char *make_token(uint32_t *seed)
{
	size_t n = 24 + xorshift(seed) % 40;
	char *t = malloc(n);

	memset(t, 't', n - 1);
	t[n - 1] = 0;
	return t;
}

NOINLINE static struct session *build_session(uint32_t *seed)
{
	struct session *s = calloc(1, sizeof(*s));

	s->user = make_token(seed);
	s->len = 200 + xorshift(seed) % 1800;
	s->body = malloc(s->len);
	memset(s->body, 'b', s->len);
	return s;
}

NOINLINE static uint64_t render(struct session *s, uint32_t *seed)
{
	size_t cap = 128, n = 0;
	char *out = malloc(cap);
	uint64_t h = 0;

	while (n < s->len) {
		if (n + 64 > cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		/* The last piece is short: never read past the body. */
		size_t piece = s->len - n < 64 ? s->len - n : 64;

		memcpy(out + n, s->body + n, piece);
		n += piece;
	}
	for (size_t i = 0; i < n; i += 97)
		h += (unsigned char)out[i];
	free(out);
	(void)seed;
	return h;
}

NOINLINE static uint64_t handle(uint32_t *seed)
{
	struct session *s = build_session(seed);
	uint64_t h = render(s, seed);
	volatile double work = 0;

	for (int i = 0; i < 400; i++) /* a little real work, as a service has */
		work += i * 0.5;
	if (xorshift(seed) % 100 == 0) {
		pthread_mutex_lock(&leak_lock);
		s->next = leaked;
		leaked = s;
		pthread_mutex_unlock(&leak_lock);
	} else {
		free(s->user);
		free(s->body);
		free(s);
	}
	return h;
}

/* A call chain of distinct frames, as middleware layers would make. */
#define LAYER(name, next)                                                                  \
	NOINLINE static uint64_t name(uint32_t *seed, int depth)                            \
	{                                                                                  \
		uint64_t r = next(seed, depth + 1);                                         \
		__asm__ volatile("" ::: "memory");                                         \
		return r + (uint64_t)depth;                                                 \
	}
NOINLINE static uint64_t layer_last(uint32_t *seed, int depth)
{
	(void)depth;
	return handle(seed);
}
LAYER(layer_auth, layer_last)
LAYER(layer_route, layer_auth)
LAYER(layer_decode, layer_route)
LAYER(layer_limit, layer_decode)
LAYER(layer_trace, layer_limit)
LAYER(layer_accept, layer_trace)
LAYER(layer_loop, layer_accept)

static void *service_thread(void *arg)
{
	uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
	uint64_t ops = 0, sum = 0;
	double end = now() + run_seconds;

	while (!go)
		;
	while (1) {
		for (int i = 0; i < 64; i++)
			sum += layer_loop(&seed, 0);
		ops += 64;
		if (now() >= end)
			break;
	}
	pthread_mutex_lock(&total_lock);
	total_ops += ops;
	checksum += sum;
	pthread_mutex_unlock(&total_lock);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads;
	void *(*fn)(void *);
	pthread_t t[64];
	char line[16];
	double t0, t1;

	if (argc != 4 || (strcmp(argv[1], "tight") && strcmp(argv[1], "service"))) {
		fprintf(stderr, "usage: alloc_bench tight|service THREADS SECONDS\n");
		return 64;
	}
	fn = !strcmp(argv[1], "tight") ? tight_thread : service_thread;
	threads = atoi(argv[2]);
	run_seconds = atof(argv[3]);
	if (threads < 1 || threads > 64 || run_seconds <= 0)
		return 64;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)(i + 1));
	go = 1;
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t1 = now();
	printf("ops %llu rate %.0f checksum %llu\n", (unsigned long long)total_ops,
	       (double)total_ops / (t1 - t0), (unsigned long long)checksum);
	return 0;
}
