// SPDX-License-Identifier: MIT
/*
 * memspy-cov-*: the harness. 4 workers run the mode's rounds between a "go"
 * on stdin and their join, then the target prints what memspy should have
 * seen and, once memspy is gone, checks itself.
 *
 *   TARGET MODE ITERS
 *
 * stdout: "ready PID"; waits for "go"; "expect-* ..."; "done"; waits for a
 * line (or EOF); "selfcheck ok" (exit 0) or "selfcheck FAILED: why" (exit 1).
 */
#include "cov.h"
#include "../common/handshake.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cov_mode *mode;
static long iters;
static pthread_barrier_t start_barrier;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int failed;
static char fail_why[256];

void cov_fail(const char *why)
{
	pthread_mutex_lock(&fail_lock);
	if (!failed)
		snprintf(fail_why, sizeof(fail_why), "%s", why);
	failed = 1;
	pthread_mutex_unlock(&fail_lock);
}

NOINLINE static void *cov_worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;

	pthread_barrier_wait(&start_barrier);
	for (long i = 0; i < iters; i++)
		if (!mode->round(id * 100000000u + (unsigned)i * 8))
			cov_fail("a block's contents changed between write and read");
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[COV_NWORKERS];
	unsigned long long rounds;
	char line[64];

	for (size_t i = 0; argc == 3 && i < cov_nmodes; i++)
		if (!strcmp(argv[1], cov_modes[i].name))
			mode = &cov_modes[i];
	if (!mode || (iters = atol(argv[2])) < 1) {
		fprintf(stderr, "usage: %s MODE ITERS; modes:", argv[0]);
		for (size_t i = 0; i < cov_nmodes; i++)
			fprintf(stderr, " %s", cov_modes[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	/* Threads exist before memspy attaches: their creation is not counted. */
	pthread_barrier_init(&start_barrier, NULL, COV_NWORKERS + 1);
	for (int i = 0; i < COV_NWORKERS; i++)
		if (pthread_create(&t[i], NULL, cov_worker, (void *)(uintptr_t)i))
			return 2;
	hs_ready();
	if (hs_wait_go())
		cov_fail("no 'go' on stdin");
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < COV_NWORKERS; i++)
		pthread_join(t[i], NULL);

	rounds = (unsigned long long)iters * COV_NWORKERS;
	mode->expect(rounds);
	printf("done\n");
	fflush(stdout);

	/* memspy has detached by now: check everything it could have harmed. */
	hs_read_line(line, sizeof(line));
	if (hs_tracer_pid() != 0)
		cov_fail("still traced after memspy exited");
	if (mode->check && !mode->check(rounds))
		cov_fail("the kept blocks are corrupt or missing");
	/* One more round after detach: the allocator works untraced. */
	if (!mode->round(424242))
		cov_fail("allocation after detach returned corrupt data");
	if (failed) {
		printf("selfcheck FAILED: %s\n", fail_why);
		return 1;
	}
	printf("selfcheck ok\n");
	return 0;
}
