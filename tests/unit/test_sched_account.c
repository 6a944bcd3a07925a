// SPDX-License-Identifier: MIT
/*
 * ms_sched_account_read (attach/procfs.c) on this very process: a thread that
 * burns a known amount of CPU is counted, to the kernel's own per-process CPU
 * clock, while it lives; the totals do not drop when it exits; too many
 * threads for the limit leave the account as it was.
 */
#include "attach/attach.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define BURN_NS 150000000ull

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: the thread has burned; 2: it may exit */

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *burner(void *arg)
{
	volatile uint64_t x = 0;
	uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

	(void)arg;
	while (clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0 < BURN_NS)
		x++;
	pthread_mutex_lock(&lock);
	phase = 1;
	pthread_cond_broadcast(&cond);
	while (phase != 2)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(void)
{
	struct ms_sched_account a = {0}, saved;
	uint64_t p0, p1, run0, run1;
	pthread_t t;
	int rc;

	rc = ms_sched_account_read(&a, getpid(), 64);
	if (rc == -ENOENT) {
		fprintf(stderr, "SKIP: this kernel has no /proc/PID/task/TID/schedstat\n");
		return MS_TEST_SKIP;
	}
	CHECK(rc == 0, "first reading");
	p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	run0 = a.run_ns;

	CHECK(pthread_create(&t, NULL, burner, NULL) == 0);
	pthread_mutex_lock(&lock);
	while (phase != 1)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);

	/* Two threads now: a limit of one leaves the account untouched. */
	saved = a;
	CHECK(ms_sched_account_read(&a, getpid(), 1) == -E2BIG);
	CHECK(a.run_ns == saved.run_ns && a.t == saved.t && a.readings == saved.readings);

	CHECK(ms_sched_account_read(&a, getpid(), 64) == 0, "reading with the burner alive");
	p1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	run1 = a.run_ns;
	/*
	 * The same clock the kernel keeps per thread: equal but for the reads'
	 * own CPU and a running thread's schedstat, which lags by up to a tick.
	 */
	printf("account %.3f ms, process clock %.3f ms\n", (double)(run1 - run0) / 1e6,
	       (double)(p1 - p0) / 1e6);
	CHECK(run1 - run0 >= BURN_NS, "the burner's CPU is counted");
	CHECK(run1 - run0 <= p1 - p0 + 20000000 && p1 - p0 <= run1 - run0 + 20000000,
	      "the account follows the process's CPU clock");
	CHECK(a.n == 2);

	pthread_mutex_lock(&lock);
	phase = 2;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	CHECK(ms_sched_account_read(&a, getpid(), 64) == 0, "reading after the exit");
	CHECK(a.run_ns >= run1, "an exit does not take the thread's CPU out of the total");
	CHECK(a.n == 1);
	ms_sched_account_free(&a);
	CHECK(ms_sched_account_read(&a, 999999999, 64) == -ENOENT, "a pid that does not exist");
	ms_sched_account_free(&a);
	return ms_test_result("test_sched_account");
}
