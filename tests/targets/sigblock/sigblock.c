// SPDX-License-Identifier: MIT
/*
 * A process with threads that block every signal, as jemalloc's background
 * thread does (redis-server on Debian): the case where a probe trap would be
 * fatal. A trap (int3) in a thread that blocks SIGTRAP makes the kernel force
 * the signal through: it unblocks SIGTRAP in that thread and resets the
 * process's SIGTRAP action to SIG_DFL; untraced, the process dies.
 *
 *   memspy-sigblock-target          -> "ready PID" once every thread runs
 *   <- "check"                      -> "selfcheck ok ..." or "selfcheck FAILED: ..."
 *   <- "exit"                       exit 0
 *
 * Threads, each allocating from its own site (a distinct function):
 *   normal   usual mask, mallocs in sb_site_normal
 *   blocked  every signal blocked, mallocs in sb_site_blocked (the hard case)
 *   idle     every signal blocked, never allocates (waits on a condition
 *            variable with a timeout, like jemalloc's background thread)
 *   spawner  blocks every signal only around pthread_create (as jemalloc
 *            does: glibc's TLS setup then calls calloc with SIGTRAP blocked);
 *            each short-lived child mallocs in sb_site_spawned and exits
 * The self-check: every blocked thread still blocks SIGTRAP, the SIGTRAP
 * action is still the default, and every thread's checksum is right.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/handshake.h"

static atomic_bool stop;
static atomic_int running;
static atomic_int failures;
static char why[512];
static pthread_mutex_t why_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong n_normal, n_blocked, n_spawned, n_children;

static void fail(const char *what)
{
	atomic_fetch_add(&failures, 1);
	pthread_mutex_lock(&why_lock);
	if (!why[0])
		snprintf(why, sizeof(why), "%s", what);
	pthread_mutex_unlock(&why_lock);
}

static void block_all(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

static bool blocks_sigtrap(void)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, SIGTRAP);
}

/* One allocation site per thread kind: the flame graph must show each by name. */
#define SITE(name, counter)                                                                      \
	__attribute__((noinline)) unsigned long name(unsigned long i);                          \
	__attribute__((noinline)) unsigned long name(unsigned long i)                           \
	{                                                                                        \
		size_t n = 256 + (i * 37) % 3840;                                                \
		unsigned char *p = malloc(n);                                                    \
		unsigned long s;                                                                 \
                                                                                                 \
		if (!p)                                                                          \
			abort();                                                                 \
		__asm__ volatile("" : : "r"(p) : "memory"); /* the block escapes */             \
		memset(p, (int)(i & 0xff), n);                                                   \
		s = p[n - 1] + n;                                                                \
		free(p);                                                                         \
		atomic_fetch_add(&counter, 1);                                                   \
		return s;                                                                        \
	}

SITE(sb_site_normal, n_normal)
SITE(sb_site_blocked, n_blocked)
SITE(sb_site_spawned, n_spawned)

/* Runs site until told to stop; checks that every result is what it must be. */
static void loop(unsigned long (*site)(unsigned long))
{
	for (unsigned long i = 0; !atomic_load(&stop); i++) {
		size_t n = 256 + (i * 37) % 3840;

		if (site(i) != (unsigned long)(i & 0xff) + n)
			fail("a thread's allocation held the wrong bytes");
		if (i % 64 == 63)
			usleep(200); /* a service, not a tight loop */
	}
}

static void *normal_thread(void *arg)
{
	(void)arg;
	atomic_fetch_add(&running, 1);
	loop(sb_site_normal);
	return NULL;
}

static void *blocked_thread(void *arg)
{
	(void)arg;
	block_all(NULL);
	atomic_fetch_add(&running, 1);
	loop(sb_site_blocked);
	if (!blocks_sigtrap())
		fail("the blocked allocating thread no longer blocks SIGTRAP (a probe trapped it)");
	return NULL;
}

static void *idle_thread(void *arg)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;

	(void)arg;
	block_all(NULL);
	atomic_fetch_add(&running, 1);
	pthread_mutex_lock(&m);
	while (!atomic_load(&stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c, &m, &ts);
	}
	pthread_mutex_unlock(&m);
	if (!blocks_sigtrap())
		fail("the idle blocked thread no longer blocks SIGTRAP");
	return NULL;
}

static void *child_thread(void *arg)
{
	unsigned long base = (unsigned long)(uintptr_t)arg;

	for (unsigned long i = 0; i < 48; i++)
		if (sb_site_spawned(base + i) != ((base + i) & 0xff) + 256 + ((base + i) * 37) % 3840)
			fail("a spawned thread's allocation held the wrong bytes");
	return NULL;
}

static void *spawner_thread(void *arg)
{
	(void)arg;
	atomic_fetch_add(&running, 1);
	for (unsigned long k = 0; !atomic_load(&stop); k++) {
		sigset_t old;
		pthread_t t;
		int rc;

		block_all(&old);
		rc = pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(k * 48));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc) {
			fail("pthread_create failed");
			break;
		}
		pthread_join(t, NULL);
		atomic_fetch_add(&n_children, 1);
		usleep(5000);
	}
	return NULL;
}

int main(void)
{
	void *(*fns[])(void *) = {normal_thread, blocked_thread, idle_thread, spawner_thread};
	pthread_t t[4];
	char line[64];
	struct sigaction sa;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, fns[i], NULL))
			return 2;
	while (atomic_load(&running) < 4)
		usleep(1000);
	hs_ready();
	while (!hs_read_line(line, sizeof(line))) {
		if (!strcmp(line, "check")) {
			atomic_store(&stop, true);
			for (int i = 0; i < 4; i++)
				pthread_join(t[i], NULL);
			if (sigaction(SIGTRAP, NULL, &sa) || sa.sa_handler != SIG_DFL)
				fail("the SIGTRAP action is no longer the default");
			if (!atomic_load(&n_normal) || !atomic_load(&n_blocked) ||
			    !atomic_load(&n_spawned))
				fail("a thread made no allocation");
			if (atomic_load(&failures))
				printf("selfcheck FAILED: %s\n", why);
			else
				printf("selfcheck ok: normal %lu, blocked %lu, spawned %lu "
				       "allocations in %lu threads\n",
				       atomic_load(&n_normal), atomic_load(&n_blocked),
				       atomic_load(&n_spawned), atomic_load(&n_children));
		} else if (!strcmp(line, "exit")) {
			return atomic_load(&failures) ? 1 : 0;
		}
	}
	return 3;
}
