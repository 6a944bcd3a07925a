// SPDX-License-Identifier: MIT
/*
 * Target for the quiescing tests (tests/e2e/quiesce_e2e.py): THREADS threads
 * do nothing but malloc and free (16 B to 68 KiB, a few realloc and calloc),
 * so that a stop almost always finds one of them inside the allocator. On
 * "park" every worker finishes its current call and waits at a barrier
 * outside malloc; the heap is then quiescent and the program prints its own
 * mallinfo2(), which a dump taken now must equal field for field.
 *   quiesce_busy THREADS [fork]
 * With "fork", one more thread forks without pause (each child exits at once):
 * fork() holds every arena lock around the clone, outside malloc's code, so
 * a thread let out of malloc then waits on a lock a stopped thread holds.
 * stdout: "READY <pid>"; stdin lines: "ping" -> "pong <ops>";
 * "park" -> one JSON line of mallinfo2 fields; "go" -> "going" (workers run
 * again); "q"/EOF: exit 0 after freeing everything.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

#define SLOTS 1024
#define MAX_THREADS 64

static atomic_int stop, park;
static atomic_ulong ops;
static pthread_barrier_t parked, resumed;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Mostly small blocks, some of 8-68 KiB (below the mmap threshold: arena chunks). */
static size_t pick(uint64_t *s)
{
	unsigned r = (unsigned)(rnd(s) % 100);

	if (r < 70)
		return 16 + rnd(s) % 256;
	if (r < 90)
		return 257 + rnd(s) % 8000;
	return 8192 + rnd(s) % (60 * 1024);
}

static void *worker(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	void **slot = calloc(SLOTS, sizeof(*slot));

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t i = rnd(&s) % SLOTS;
		unsigned k = (unsigned)(rnd(&s) % 16);

		if (atomic_load_explicit(&park, memory_order_relaxed)) {
			pthread_barrier_wait(&parked);
			pthread_barrier_wait(&resumed);
			continue;
		}
		if (k == 0 && slot[i]) {
			void *n = realloc(slot[i], pick(&s));

			if (n)
				slot[i] = n;
		} else {
			free(slot[i]);
			slot[i] = k == 1 ? calloc(1, pick(&s)) : malloc(pick(&s));
		}
		if (slot[i])
			memset(slot[i], (int)i, 16);
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
	}
	for (size_t i = 0; i < SLOTS; i++)
		free(slot[i]);
	free(slot);
	return NULL;
}

static void *forker(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		pid_t c = fork();

		if (c == 0)
			_exit(0);
		if (c > 0)
			waitpid(c, NULL, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	pthread_t th[MAX_THREADS], fk;
	bool forking = argc > 2 && !strcmp(argv[2], "fork");
	char line[128], buf[512];
	size_t have = 0;
	bool is_parked = false;

	if (nthreads < 1 || nthreads > MAX_THREADS)
		return 64;
	pthread_barrier_init(&parked, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&resumed, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i))
			return 3;
	if (forking && pthread_create(&fk, NULL, forker, NULL))
		return 3;
	snprintf(buf, sizeof(buf), "READY %d\n", (int)getpid());
	hs_say(buf);
	for (;;) {
		ssize_t n = read(0, line + have, sizeof(line) - 1 - have);
		char *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		line[have] = 0;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			if (!strcmp(line, "q"))
				goto quit;
			if (!strcmp(line, "ping")) {
				snprintf(buf, sizeof(buf), "pong %lu\n", atomic_load(&ops));
				hs_say(buf);
			} else if (!strcmp(line, "park") && !is_parked) {
				struct mallinfo2 m;

				atomic_store(&park, 1);
				pthread_barrier_wait(&parked);
				is_parked = true;
				m = mallinfo2();
				snprintf(buf, sizeof(buf),
					 "{\"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, "
					 "\"hblks\": %zu, \"hblkhd\": %zu, \"usmblks\": %zu, "
					 "\"fsmblks\": %zu, \"uordblks\": %zu, \"fordblks\": %zu, "
					 "\"keepcost\": %zu}\n",
					 m.arena, m.ordblks, m.smblks, m.hblks, m.hblkhd, m.usmblks,
					 m.fsmblks, m.uordblks, m.fordblks, m.keepcost);
				hs_say(buf);
			} else if (!strcmp(line, "go") && is_parked) {
				atomic_store(&park, 0);
				pthread_barrier_wait(&resumed);
				is_parked = false;
				hs_say("going\n");
			}
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have + 1);
		}
		if (have >= sizeof(line) - 1)
			have = 0;
	}
quit:
	atomic_store(&stop, 1);
	if (is_parked) {
		atomic_store(&park, 0);
		pthread_barrier_wait(&resumed);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	if (forking)
		pthread_join(fk, NULL);
	return 0;
}
