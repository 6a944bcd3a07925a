// SPDX-License-Identifier: MIT
/*
 * memspy-rec-target: a self-checking program for `memspy record` tests. It
 * makes a known mix of allocations from 4 threads, prints the folded stacks
 * and totals memspy should find, and checks its own data afterwards.
 *
 *   memspy-rec-target mix|leak|forkthreads|pool ITERS
 *
 * stdout: "ready PID"; waits for "go" on stdin; "half" when worker 0 is
 * halfway; "expect-* ..." lines; "done"; waits for a line (or EOF) on stdin,
 * then "selfcheck ok" (exit 0) or "selfcheck FAILED: why" (exit 1).
 */
#include "sites.h"
#include "../common/handshake.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS   4  /* the default; REC_WORKERS=N (1-400) sets another */
#define MAXWORKERS 400
#define LEAK_EVERY 8

enum mode { MIX, LEAK, FORKTHREADS, POOL };

static enum mode mode;
static long iters;
static pthread_barrier_t start_barrier;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int failed;
static char fail_why[256];
static long leaked_blocks;
static int child_status = -1, extra_threads_ok;

static void fail(const char *why)
{
	pthread_mutex_lock(&out_lock);
	if (!failed)
		snprintf(fail_why, sizeof(fail_why), "%s", why);
	failed = 1;
	pthread_mutex_unlock(&out_lock);
}

/* What rec_fill_check must return, computed without touching the heap. */
static unsigned long pattern_sum(size_t n, unsigned seed)
{
	unsigned long sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = sum * 31 + (unsigned char)((unsigned char)(seed * 2654435761u + i * 40503u) ^
						 (unsigned char)(i >> 8));
	return sum;
}

NOINLINE static int rec_round(unsigned seed, int leak)
{
	int ok = 1;

	ok &= rec_site_a(seed) == pattern_sum(SITE_A_BYTES, seed);
	ok &= rec_site_b(seed + 1) == pattern_sum(SITE_B_BYTES, seed + 1);
	ok &= rec_site_c(seed + 2) == pattern_sum(SITE_C_BYTES, seed + 2);
	if (leak && seed % LEAK_EVERY == 0)
		ok &= rec_leak_keep(seed) != 0;
	if (mode == POOL)
		ok &= rec_site_pool(seed + 3) == pattern_sum(POOL_BYTES, seed + 3);
	return ok;
}

NOINLINE static void *rec_extra_thread(void *arg)
{
	unsigned base = (unsigned)(uintptr_t)arg;
	int ok = 1;

	for (unsigned i = 0; i < 50; i++)
		ok &= rec_round(base + i * 8, 0);
	return (void *)(uintptr_t)ok;
}

/* Mid-recording: a forked child that allocates with the inherited text, and short-lived threads. */
NOINLINE static void rec_fork_and_spawn(void)
{
	pthread_t t[2];
	pid_t child;
	int st;

	child = fork();
	if (child < 0) {
		fail("fork failed");
		return;
	}
	if (child == 0) {
		int ok = 1;

		for (unsigned i = 0; i < 200; i++)
			ok &= rec_round(7000000 + i * 8, 0);
		_exit(ok ? 0 : 3);
	}
	extra_threads_ok = 1;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, rec_extra_thread,
				   (void *)(uintptr_t)(9000000 + i * 1000)))
			fail("pthread_create failed");
	for (int i = 0; i < 2; i++) {
		void *r;

		pthread_join(t[i], &r);
		extra_threads_ok &= r != NULL;
	}
	if (waitpid(child, &st, 0) != child)
		fail("waitpid failed");
	child_status = st;
}

NOINLINE static void *rec_worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;

	pthread_barrier_wait(&start_barrier);
	for (long i = 0; i < iters; i++) {
		unsigned seed = (unsigned)(id * 100000000u + (unsigned)i * LEAK_EVERY);

		if (!rec_round(seed, mode == LEAK))
			fail("a block's contents changed between write and read");
		if (id == 0 && i == iters / 2) {
			pthread_mutex_lock(&out_lock);
			printf("half\n");
			fflush(stdout);
			pthread_mutex_unlock(&out_lock);
			if (mode == FORKTHREADS)
				rec_fork_and_spawn();
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[MAXWORKERS];
	pthread_attr_t attr;
	int nworkers = NWORKERS;
	unsigned long long rounds;
	long leaks = 0;
	char line[64];

	if (argc != 3 || (strcmp(argv[1], "mix") && strcmp(argv[1], "leak") &&
			  strcmp(argv[1], "forkthreads") && strcmp(argv[1], "pool"))) {
		fprintf(stderr, "usage: %s mix|leak|forkthreads|pool ITERS\n", argv[0]);
		return 2;
	}
	mode = !strcmp(argv[1], "mix")	  ? MIX
	       : !strcmp(argv[1], "leak") ? LEAK
	       : !strcmp(argv[1], "pool") ? POOL
					  : FORKTHREADS;
	iters = atol(argv[2]);
	if (iters < 2)
		return 2;
	if (getenv("REC_WORKERS"))
		nworkers = atoi(getenv("REC_WORKERS"));
	if (nworkers < 1 || nworkers > MAXWORKERS)
		return 2;
	/*
	 * REC_STACK_KIB=N: worker stacks of exactly N KiB with no guard page, as
	 * the JVM makes its threads' (it keeps its own guard zones inside): the
	 * thread pointers then lie exactly N KiB apart.
	 */
	pthread_attr_init(&attr);
	if (getenv("REC_STACK_KIB")) {
		if (pthread_attr_setstacksize(&attr, (size_t)atol(getenv("REC_STACK_KIB")) << 10) ||
		    pthread_attr_setguardsize(&attr, 0))
			return 2;
	}
	/* Threads exist before memspy attaches: their creation is not part of the mix. */
	pthread_barrier_init(&start_barrier, NULL, (unsigned)nworkers + 1);
	for (int i = 0; i < nworkers; i++)
		if (pthread_create(&t[i], &attr, rec_worker, (void *)(uintptr_t)i))
			return 2;
	hs_ready();
	if (hs_wait_go())
		fail("no 'go' on stdin");
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < nworkers; i++)
		pthread_join(t[i], NULL);

	rounds = (unsigned long long)iters * (unsigned)nworkers;
	/* Worker seeds are id*1e8 + i*8: every round leaks in leak mode. */
	leaks = mode == LEAK ? (long)rounds : 0;
	printf("expect-folded rec_worker;rec_round;rec_site_a %llu %llu\n", rounds * SITE_A_BYTES,
	       rounds);
	printf("expect-folded rec_worker;rec_round;rec_site_b %llu %llu\n", rounds * SITE_B_BYTES,
	       rounds);
	printf("expect-folded rec_worker;rec_round;rec_site_c %llu %llu\n", rounds * SITE_C_BYTES,
	       rounds);
	if (mode == LEAK) {
		printf("expect-folded rec_worker;rec_round;rec_leak_keep %llu %llu\n",
		       (unsigned long long)leaks * LEAK_BYTES, (unsigned long long)leaks);
		printf("expect-live rec_worker;rec_round;rec_leak_keep %llu %llu\n",
		       (unsigned long long)leaks * LEAK_BYTES, (unsigned long long)leaks);
	}
	if (mode == POOL)
		printf("expect-folded rec_worker;rec_round;rec_site_pool %llu %llu\n",
		       rounds * POOL_BYTES, rounds);
	if (mode == FORKTHREADS)
		printf("expect-child-status %d extra-threads-ok %d\n", child_status,
		       extra_threads_ok);
	printf("done\n");
	fflush(stdout);

	/* memspy has detached by now: check everything it could have harmed. */
	hs_read_line(line, sizeof(line));
	leaked_blocks = rec_leak_check();
	if (mode == LEAK && leaked_blocks != leaks)
		fail("the kept blocks are corrupt or missing");
	if (mode == FORKTHREADS &&
	    (child_status == -1 || !WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0))
		fail("the forked child did not pass its own check");
	if (mode == FORKTHREADS && !extra_threads_ok)
		fail("a short-lived thread saw corrupt data");
	if (hs_tracer_pid() != 0)
		fail("still traced after memspy exited");
	/* One more round of every site after detach: the allocator works untraced. */
	if (!rec_round(424242, 0))
		fail("allocation after detach returned corrupt data");
	if (failed) {
		printf("selfcheck FAILED: %s\n", fail_why);
		return 1;
	}
	printf("selfcheck ok\n");
	return 0;
}
