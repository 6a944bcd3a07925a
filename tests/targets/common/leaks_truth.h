/* SPDX-License-Identifier: MIT */
/*
 * What the `dump --leaks` targets (leaks_c, leaks_cxx) share: two threads
 * that hold blocks only on their stack or in thread-local data until the
 * driver is done, the dead stack scrubbed, glibc's chunk size of a
 * request, and the truth printed as one JSON line for
 * tests/e2e/leaks_e2e.py:
 *
 *   {"pid":P,"tid_stack":T,"tid_tls":T[,"untyped":true],
 *    "leaked":{"NAME":[count,unreferenced,chunk],...},
 *    "kept":{"NAME":[count,chunk],...},
 *    "probe_hide":"0x5a...","probe":{"kept":"0x...","stack":"0x...",...}}
 *
 * then, once stdin is closed and the threads checked their blocks,
 * {"self_check":"ok"} (or "FAILED"). stdout must have a static buffer: a
 * buffer from malloc would be one more allocation in the heap under test.
 * Header only, C and C++: targets are built apart from memspy.
 */
#ifndef MS_TARGETS_LEAKS_TRUTH_H
#define MS_TARGETS_LEAKS_TRUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Addresses for --explain, stored XOR-ed with this so that they are no
 * references (a plain global would make a leaked block reachable).
 */
#define LK_HIDE 0x5a5a5a5a5a5a5a5aull

struct lk_case {
	const char *name;
	int count, unreferenced; /* unreferenced: leaked cases only */
	size_t chunk;
};

static int lk_go[2];
static pthread_mutex_t lk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lk_cv = PTHREAD_COND_INITIALIZER;
static int lk_nready;

static inline void lk_escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* Overwrites the dead stack below the caller, so no stale pointer outlives a leak. */
__attribute__((noinline)) static void lk_scrub_stack(void)
{
	volatile char buf[64 << 10];

	memset((char *)buf, 0, sizeof(buf));
	lk_escape((void *)buf);
}

/* glibc's chunk for a request of n bytes: (n + 8) rounded up to 16, 32 at least. */
static inline size_t lk_chunk(size_t n)
{
	size_t c = (n + 8 + 15) & ~(size_t)15;

	return c < 32 ? 32 : c;
}

static inline pid_t lk_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A holding thread: its blocks are in place. */
static inline void lk_thread_ready(void)
{
	pthread_mutex_lock(&lk_mu);
	lk_nready++;
	pthread_cond_broadcast(&lk_cv);
	pthread_mutex_unlock(&lk_mu);
}

/* A holding thread: waits until the driver is done (lk_finish). */
static inline void lk_thread_wait(void)
{
	char c;

	while (read(lk_go[0], &c, 1) < 0) {
	}
}

/* Starts the two holding threads and waits until both hold their blocks: 0, or -1. */
static inline int lk_start(pthread_t t[2], void *(*stack_fn)(void *), void *(*tls_fn)(void *))
{
	if (pipe(lk_go) || pthread_create(&t[0], NULL, stack_fn, NULL) ||
	    pthread_create(&t[1], NULL, tls_fn, NULL))
		return -1;
	pthread_mutex_lock(&lk_mu);
	while (lk_nready < 2)
		pthread_cond_wait(&lk_cv, &lk_mu);
	pthread_mutex_unlock(&lk_mu);
	return 0;
}

static inline void lk_print_cases(const char *key, const struct lk_case *c, size_t n, bool leaked)
{
	printf("\"%s\":{", key);
	for (size_t i = 0; i < n; i++) {
		if (leaked)
			printf("%s\"%s\":[%d,%d,%zu]", i ? "," : "", c[i].name, c[i].count,
			       c[i].unreferenced, c[i].chunk);
		else
			printf("%s\"%s\":[%d,%zu]", i ? "," : "", c[i].name, c[i].count, c[i].chunk);
	}
	printf("}");
}

/*
 * The truth line. probe: the names and the XOR-ed addresses of the blocks
 * --explain is asked about; kept: one kept block's address, in the clear.
 */
static inline void lk_print_truth(pid_t tid_stack, pid_t tid_tls, bool untyped,
				  const struct lk_case *leaked, size_t nleaked,
				  const struct lk_case *kept, size_t nkept, const void *kept_probe,
				  const char *const *probe_names, const uintptr_t *probes,
				  size_t nprobes)
{
	printf("{\"pid\":%d,\"tid_stack\":%d,\"tid_tls\":%d,%s", (int)getpid(), (int)tid_stack,
	       (int)tid_tls, untyped ? "\"untyped\":true," : "");
	lk_print_cases("leaked", leaked, nleaked, true);
	printf(",");
	lk_print_cases("kept", kept, nkept, false);
	/* Still XOR-ed with LK_HIDE: unmasked, they would sit in main's registers. */
	printf(",\"probe_hide\":\"0x%llx\",\"probe\":{\"kept\":\"%p\"", (unsigned long long)LK_HIDE,
	       kept_probe);
	for (size_t i = 0; i < nprobes; i++)
		printf(",\"%s\":\"0x%lx\"", probe_names[i], (unsigned long)probes[i]);
	printf("}}\n");
	fflush(stdout);
}

/* Waits until stdin closes (the driver is done), then lets the holding threads check and end. */
static inline int lk_finish(pthread_t t[2])
{
	char c;

	while (read(0, &c, 1) > 0) {
	}
	if (write(lk_go[1], "gg", 2) != 2)
		return -1;
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	return 0;
}

static inline int lk_self_check(bool ok)
{
	printf("{\"self_check\":\"%s\"}\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}

#endif
