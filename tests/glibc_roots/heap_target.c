// SPDX-License-Identifier: MIT
/*
 * Self-checking heap for the glibc-version tests: built against a Debian
 * root's glibc and run inside that root, it fills 5 arenas, prints its own
 * mallinfo (the answer memspy dump must give) and waits on stdin.
 *
 * usage: heap_target [BLOCKS_PER_THREAD [SEED]]
 * stdout: "memspy-heap-target pid=P glibc=V threads=T blocks=B source=S",
 *         "MALLINFO", one "name value" line per field, the same figures as
 *         one JSON line (as tests/targets/heap_mallinfo prints), "READY".
 * Then it blocks until stdin reaches EOF (or a byte arrives) and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 4

/* mallinfo2 (size_t fields) appeared in glibc 2.33; before it only mallinfo
 * (int fields) exists, which is exact as long as the heap stays < 2 GiB. */
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
#define MI_FN	  mallinfo2
#define MI_SOURCE "mallinfo2"
typedef struct mallinfo2 mi_t;
#else
#define MI_FN	  mallinfo
#define MI_SOURCE "mallinfo"
typedef struct mallinfo mi_t;
#endif

static size_t nblocks = 3000;
static unsigned long seed = 1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ndone, quit;
static void *volatile sink;

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* 70% 16-128 B, 25% 129-1128 B, 4.8% up to 60 KB, 0.2% 140-340 KB (mmapped
 * with the default 128 KiB threshold). */
static size_t pick_size(uint64_t *s)
{
	unsigned r = next_rand(s) % 1000;

	if (r < 700)
		return 16 + next_rand(s) % 113;
	if (r < 950)
		return 129 + next_rand(s) % 1000;
	if (r < 998)
		return 1129 + next_rand(s) % 59000;
	return 140000 + next_rand(s) % 200000;
}

/*
 * Every thread's block arrays stay reachable from here, whatever the
 * compiler keeps in registers (for dump --leaks: the blocks are not leaks).
 */
static void **volatile all_v[NTHREADS + 1]; /* volatile: never read, still kept */
static size_t *volatile all_w[NTHREADS + 1];

static void fill(void **v, size_t *w, int id)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)id * 7919 + 1;
	size_t i;

	all_v[id] = v;
	all_w[id] = w;
	for (i = 0; i < nblocks; i++) {
		size_t n = pick_size(&s);

		v[i] = malloc(n);
		memset(v[i], id, n < 64 ? n : 64);
		w[i] = n;
	}
	/* At least one mmapped chunk per thread whatever the seed. */
	sink = malloc(200000 + 4096 * (size_t)id);
	for (i = 0; i < nblocks; i += 3) {
		free(v[i]);
		v[i] = NULL; /* a stale pointer would keep whatever reuses the chunk alive */
	}
	/* Sort the unsorted bin into small and large bins. */
	for (i = 0; i < 50; i++)
		sink = malloc(24);
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	void **v = malloc(nblocks * sizeof(*v));
	size_t *w = malloc(nblocks * sizeof(*w));

	fill(v, w, id);
	pthread_mutex_lock(&lock);
	ndone++;
	pthread_cond_broadcast(&cond);
	/* Stay alive: an exiting thread flushes its tcache into the arena. */
	while (!quit)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Print without stdio: a stdio buffer would be malloc'd after the stats. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;
	ssize_t k;
	char *p = buf;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		abort();
	while (n > 0) {
		k = write(1, p, (size_t)n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			_exit(3);
		p += k;
		n -= (int)k;
	}
}

/*
 * Blocks nothing points to any more, for `dump --leaks` (printed as "leaked
 * N"): these, and what each fill() left in sink (one mmapped block and 50
 * small ones), which leak() overwrites.
 */
#define NLEAKED (250 + 51 * (NTHREADS + 1))
__attribute__((noinline)) static void leak(void)
{
	for (int i = 0; i < 250; i++) {
		char *p = malloc(200);

		memset(p, 'L', 200);
		sink = p;
	}
	sink = NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[NTHREADS];
	void **v;
	size_t *w;
	mi_t mi;
	char c;
	int i;

	if (argc > 1)
		nblocks = strtoul(argv[1], NULL, 0);
	if (argc > 2)
		seed = strtoul(argv[2], NULL, 0);
	if (nblocks < 3 || nblocks > 1000000) {
		say("heap_target: BLOCKS_PER_THREAD must be 3..1000000\n");
		return 64;
	}
	v = malloc(nblocks * sizeof(*v));
	w = malloc(nblocks * sizeof(*w));
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 1)))
			return 2;
	fill(v, w, 0);
	pthread_mutex_lock(&lock);
	while (ndone < NTHREADS)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	leak();

	mi = MI_FN();
	say("memspy-heap-target pid=%d glibc=%s threads=%d blocks=%zu source=%s\n", (int)getpid(),
	    gnu_get_libc_version(), NTHREADS + 1, nblocks, MI_SOURCE);
	say("MALLINFO\n");
#define F(x) say(#x " %llu\n", (unsigned long long)mi.x)
	F(arena);
	F(ordblks);
	F(smblks);
	F(hblks);
	F(hblkhd);
	F(usmblks);
	F(fsmblks);
	F(uordblks);
	F(fordblks);
	F(keepcost);
#undef F
	say("leaked %d\n", NLEAKED);
	/* The same line, as one JSON object, in the format of tests/targets/heap_mallinfo. */
	say("{\"pid\": %d, \"arena\": %llu, \"ordblks\": %llu, \"smblks\": %llu, \"hblks\": %llu, "
	    "\"hblkhd\": %llu, \"fsmblks\": %llu, \"uordblks\": %llu, \"fordblks\": %llu, "
	    "\"keepcost\": %llu}\n",
	    (int)getpid(), (unsigned long long)mi.arena, (unsigned long long)mi.ordblks,
	    (unsigned long long)mi.smblks, (unsigned long long)mi.hblks,
	    (unsigned long long)mi.hblkhd, (unsigned long long)mi.fsmblks,
	    (unsigned long long)mi.uordblks, (unsigned long long)mi.fordblks,
	    (unsigned long long)mi.keepcost);
	say("READY\n");

	/* The handshake: memspy works while we sit here; EOF or a byte ends it. */
	while (read(0, &c, 1) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	return 0;
}
