// SPDX-License-Identifier: MIT
/*
 * Target for the dump snapshot tests: builds a heap of HEAP_MB, then THREADS
 * threads malloc and free without pause. It answers on stdin, so the driver
 * can check after a dump (or after memspy was killed) that it still runs,
 * that its own wait() sees no child of memspy's and that no SIGCHLD came.
 *   snapshot_busy THREADS HEAP_MB
 * stdout: "READY <pid>"; stdin lines: "ping" -> "pong <ops>";
 * "wait" -> "wait <r> <errno> <r_wall> <errno_wall> sigchld=<n>"; "q"/EOF: exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

#define SLOTS 4096

static atomic_int stop;
static atomic_ulong ops;
static volatile sig_atomic_t sigchld;
static void *volatile sink;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *worker(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	void **slot = calloc(SLOTS, sizeof(*slot));

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t i = rnd(&s) % SLOTS;

		free(slot[i]);
		slot[i] = malloc(16 + rnd(&s) % 2000);
		memset(slot[i], (int)i, 16);
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed);
	}
	for (size_t i = 0; i < SLOTS; i++)
		free(slot[i]);
	free(slot);
	return NULL;
}

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 4;
	long heap_mb = argc > 2 ? atol(argv[2]) : 64;
	uint64_t s = 42;
	pthread_t th[64];
	char line[128], buf[256];
	size_t have = 0, kept = 0;
	void **keep;

	if (nthreads < 1 || nthreads > 64 || heap_mb < 0)
		return 64;
	signal(SIGCHLD, on_chld);
	/* The heap the dump walks: ~HEAP_MB of small chunks, one in eight freed. */
	keep = calloc((size_t)heap_mb * 1024 * 1024 / 64 + 1, sizeof(*keep));
	for (size_t bytes = 0; bytes < (size_t)heap_mb << 20;) {
		size_t sz = 16 + rnd(&s) % 240;

		keep[kept] = malloc(sz);
		memset(keep[kept], 1, sz);
		bytes += sz + 16;
		if (rnd(&s) % 8 == 0)
			free(keep[kept]);
		else
			kept++;
	}
	sink = keep;
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i))
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
			} else if (!strcmp(line, "wait")) {
				int st, e1, e2;
				pid_t r1, r2;

				r1 = waitpid(-1, &st, WNOHANG);
				e1 = r1 < 0 ? errno : 0;
				r2 = waitpid(-1, &st, WNOHANG | __WALL);
				e2 = r2 < 0 ? errno : 0;
				snprintf(buf, sizeof(buf), "wait %d %d %d %d sigchld=%d\n", (int)r1,
					 e1, (int)r2, e2, (int)sigchld);
				hs_say(buf);
			}
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have + 1);
		}
		if (have >= sizeof(line) - 1)
			have = 0;
	}
quit:
	atomic_store(&stop, 1);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	return 0;
}
