// SPDX-License-Identifier: MIT
/*
 * Target for the probe tests: 4 threads doing a known number of malloc,
 * calloc, realloc and free calls, checking their data as they go. It prints
 * what memspy should count, a data checksum (independent of addresses), and
 * waits to be told to exit, so the driver can inspect its text first.
 *
 * Protocol (stdin/stdout, no stdio on the counted path: stdio allocates):
 *   -> "ready PID"      threads created, waiting
 *   <- "go"             start
 *   -> "counts malloc=M calloc=C realloc=R free=F bytes=B memalign=A pool=P"
 *   -> "checksum=X child=S"  then "done"
 *   <- "exit"           exit 0
 * Usage: probe_alloc ITERS [fork|vfork|blocktrap|late|exec|idle]
 * blocktrap: every thread blocks every signal; "masks_lost" counts those
 * whose mask lost SIGTRAP by the end (the kernel's doing after a trap).
 * exec: after "go" the main thread re-executes itself in idle mode (prints
 * "done", waits for "exit") while the workers allocate.
 * late: the threads are created after "go" (memspy meets them only once probed;
 * pthread_create's own allocations then count too: for sampled tests only).
 * memalign counts posix_memalign + aligned_alloc + memalign + valloc calls;
 * pool counts calls of pool_alloc (for --probe pool_alloc).
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

#define NTHREADS 4

static long iters;
static int do_fork, do_vfork;
static sem_t go_sem, done_sem;
static uint64_t sums[NTHREADS];
static uint64_t n_malloc[NTHREADS], n_calloc[NTHREADS], n_realloc[NTHREADS], n_free[NTHREADS];
static uint64_t n_bytes[NTHREADS], n_align[NTHREADS], n_pool[NTHREADS];
static int child_status = -1;
static bool blocktrap;
static int masks_lost; /* blocktrap: threads whose mask no longer blocks SIGTRAP */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static void fork_child(void)
{
	pid_t c = fork();

	if (c == 0) {
		/* Runs with the parent's patched text (restored by memspy) and wiped stubs. */
		uint64_t s = 0;

		for (int i = 0; i < 20000; i++) {
			volatile unsigned char *p = malloc(16 + i % 300);

			p[0] = (unsigned char)i;
			s += p[0];
			free((void *)p);
		}
		_exit(s == 0 ? 9 : 0);
	}
	if (c > 0) {
		int st;

		if (waitpid(c, &st, 0) == c)
			child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

/* An allocator of the program's own, probed with --probe pool_alloc. */
__attribute__((noinline)) void *pool_alloc(size_t n);
__attribute__((noinline)) void *pool_alloc(size_t n)
{
	unsigned char *p = malloc(n + 16);

	if (p)
		memset(p, 0x5a, 16);
	return p ? p + 16 : NULL;
}

static uint64_t aligned_round(int id, long i, uint64_t h)
{
	void *a = NULL, *b, *c, *d;
	size_t sz = 40 + (size_t)((i + id) % 200);

	if (posix_memalign(&a, 64, sz) || !a)
		abort();
	b = aligned_alloc(128, 256);
	c = memalign(32, sz);
	d = valloc(sz);
	if (!b || !c || !d || ((uintptr_t)a & 63) || ((uintptr_t)b & 127))
		abort();
	memset(a, 1, sz);
	memset(d, 2, sz);
	h = mix(h, ((unsigned char *)a)[sz - 1] + ((unsigned char *)d)[0]);
	n_align[id] += 4;
	n_bytes[id] += sz + 256 + sz + sz;
	free(a);
	free(b);
	free(c);
	free(d);
	n_free[id] += 4;
	return h;
}

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t h = (uint64_t)id;

	sem_wait(&go_sem);
	for (long i = 0; i < iters; i++) {
		size_t a = 24 + (size_t)((i * 7 + id * 13) % 1000);
		size_t nm = 1 + (size_t)(i % 17), sz = 8 + (size_t)(id * 3);
		size_t b = a + 100 + (size_t)(i % 3000);
		unsigned char *p = malloc(a), *q = calloc(nm, sz), *r;

		if (!p || !q)
			abort();
		n_malloc[id]++;
		n_calloc[id]++;
		n_bytes[id] += a + nm * sz;
		for (size_t k = 0; k < nm * sz; k++)
			if (q[k])
				abort();
		for (size_t k = 0; k < a; k++)
			p[k] = (unsigned char)(k + (size_t)i);
		r = realloc(p, b);
		if (!r)
			abort();
		n_realloc[id]++;
		n_bytes[id] += b;
		for (size_t k = 0; k < a; k++)
			if (r[k] != (unsigned char)(k + (size_t)i))
				abort();
		h = mix(h, r[a - 1]);
		h = mix(h, a * 31 + b);
		q[nm * sz - 1] = (unsigned char)i;
		h = mix(h, q[nm * sz - 1]);
		free(q);
		free(r);
		n_free[id] += 2;
		if (i % 8 == 0) {
			unsigned char *pp = pool_alloc(100 + (size_t)id);

			n_pool[id]++;
			n_malloc[id]++;
			n_bytes[id] += 116 + (size_t)id;
			h = mix(h, pp[-1]);
			free(pp - 16);
			n_free[id]++;
			h = aligned_round(id, i, h);
		}
		if (do_fork && id == 1 && i == iters / 2)
			fork_child();
		if (do_vfork && id == 1 && i == iters / 2) {
			/* The child shares our memory: memspy must leave our text alone. */
			pid_t c = vfork();

			if (c == 0)
				_exit(0);
			if (c > 0) {
				int st;

				if (waitpid(c, &st, 0) == c)
					child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
		}
	}
	sums[id] = h;
	if (blocktrap) {
		/* A trap in a thread that blocks SIGTRAP makes the kernel unblock it. */
		sigset_t cur;

		pthread_sigmask(SIG_BLOCK, NULL, &cur);
		if (!sigismember(&cur, SIGTRAP))
			__atomic_add_fetch(&masks_lost, 1, __ATOMIC_SEQ_CST);
	}
	sem_post(&done_sem);
	/* Stay alive: a thread's exit frees its tcache through free(), which would count. */
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[NTHREADS];
	uint64_t m = 0, c = 0, r = 0, f = 0, bytes = 0, sum = 0, al = 0, pl = 0;
	char line[256];
	bool late;

	iters = argc > 1 ? atol(argv[1]) : 1000;
	if (argc > 2 && !strcmp(argv[2], "idle")) {
		hs_say("done\n");
		hs_expect("exit");
		_exit(0);
	}
	do_fork = argc > 2 && !strcmp(argv[2], "fork");
	do_vfork = argc > 2 && !strcmp(argv[2], "vfork");
	if (argc > 2 && !strcmp(argv[2], "blocktrap")) {
		/*
		 * Every thread blocks every signal, as jemalloc's background thread
		 * does: an int3 would make the kernel force SIGTRAP through (action
		 * reset to SIG_DFL, SIGTRAP unblocked). memspy must refuse modes
		 * that trap and record in the ring without one.
		 */
		sigset_t set;

		sigfillset(&set);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		blocktrap = true;
	}
	sem_init(&go_sem, 0, 0);
	sem_init(&done_sem, 0, 0);
	late = argc > 2 && !strcmp(argv[2], "late");
	for (int i = 0; i < NTHREADS && !late; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i))
			return 2;
	hs_ready_raw();
	hs_expect("go");
	for (int i = 0; i < NTHREADS && late; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i))
			return 2;
	for (int i = 0; i < NTHREADS; i++)
		sem_post(&go_sem);
	if (argc > 2 && !strcmp(argv[2], "exec")) {
		char *nargv[] = {argv[0], "0", "idle", NULL};

		sem_wait(&done_sem); /* one worker is done: the others are mid-run */
		execv("/proc/self/exe", nargv);
		_exit(6);
	}
	for (int i = 0; i < NTHREADS; i++)
		sem_wait(&done_sem);
	for (int i = 0; i < NTHREADS; i++) {
		m += n_malloc[i];
		c += n_calloc[i];
		r += n_realloc[i];
		f += n_free[i];
		bytes += n_bytes[i];
		al += n_align[i];
		pl += n_pool[i];
		sum = mix(sum, sums[i]);
	}
	snprintf(line, sizeof(line),
		 "counts malloc=%llu calloc=%llu realloc=%llu free=%llu bytes=%llu memalign=%llu "
		 "pool=%llu\n"
		 "checksum=%016llx child=%d masks_lost=%d\ndone\n",
		 (unsigned long long)m, (unsigned long long)c, (unsigned long long)r,
		 (unsigned long long)f, (unsigned long long)bytes, (unsigned long long)al,
		 (unsigned long long)pl, (unsigned long long)sum,
		 child_status, masks_lost);
	hs_say(line);
	hs_expect("exit");
	_exit(0);
}
