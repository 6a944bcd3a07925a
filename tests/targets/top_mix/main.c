// SPDX-License-Identifier: MIT
/*
 * memspy-top-target: a self-checking program for `memspy top` tests. One
 * worker thread allocates a known mix from three sites (sites.h) until
 * told to stop, sleeping 1 ms every 100 rounds (about half a core).
 *
 *   memspy-top-target mix|leak
 *
 * stdout: "ready PID", then "expect-site NAME BYTES ALLOCS" per site (per
 * round); waits for a line (or EOF) on stdin, stops the worker, then
 * checks its data and that it is no longer traced: "rounds N" and
 * "selfcheck ok" (exit 0) or "selfcheck FAILED: why" (exit 1).
 */
#include "sites.h"
#include "../common/handshake.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEPT 16384 /* leak mode keeps at most 64 MiB */

static atomic_int stop;
static atomic_int failed;
static int leak;
static unsigned long long rounds;
static long kept;

NOINLINE static int top_round(unsigned seed)
{
	int ok = 1;

	ok &= top_site_big(seed);
	ok &= top_site_mid(seed + 1);
	ok &= top_site_small(seed + 2);
	if (leak && seed % LEAK_EVERY == 0 && kept < MAX_KEPT) {
		ok &= top_site_leak(seed + 3);
		kept++;
	}
	return ok;
}

NOINLINE static void *top_worker(void *arg)
{
	(void)arg;
	for (unsigned seed = 0; !atomic_load(&stop); seed++) {
		if (!top_round(seed))
			atomic_store(&failed, 1);
		rounds++;
		if (seed % 100 == 99) {
			struct timespec ts = {0, 1000000};

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	char line[64];
	long n;

	if (argc != 2 || (strcmp(argv[1], "mix") && strcmp(argv[1], "leak"))) {
		fprintf(stderr, "usage: %s mix|leak\n", argv[0]);
		return 2;
	}
	leak = !strcmp(argv[1], "leak");
	if (pthread_create(&t, NULL, top_worker, NULL))
		return 2;
	printf("ready %d\n", (int)getpid());
	printf("expect-site top_site_big %d %d\n", BIG_BYTES * BIG_N, BIG_N);
	printf("expect-site top_site_mid %d %d\n", MID_BYTES * MID_N, MID_N);
	printf("expect-site top_site_small %d %d\n", SMALL_BYTES * SMALL_N, SMALL_N);
	if (leak)
		printf("expect-leak top_site_leak %d every %d rounds\n", LEAK_BYTES, LEAK_EVERY);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("rounds %llu\n", rounds);
	n = top_leak_check();
	if (atomic_load(&failed)) {
		printf("selfcheck FAILED: a site saw corrupt data\n");
		return 1;
	}
	if (n != kept) {
		printf("selfcheck FAILED: %ld kept blocks intact of %ld\n", n, kept);
		return 1;
	}
	if (hs_tracer_pid() != 0) {
		printf("selfcheck FAILED: still traced (TracerPid %d)\n", hs_tracer_pid());
		return 1;
	}
	/* once more after memspy left: the allocator works untraced */
	if (!top_round(424242)) {
		printf("selfcheck FAILED: a round after detach saw corrupt data\n");
		return 1;
	}
	printf("selfcheck ok\n");
	return 0;
}
