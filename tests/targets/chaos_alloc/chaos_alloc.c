// SPDX-License-Identifier: MIT
/*
 * memspy-chaos-target: a self-checking allocator workload for the survival
 * tests (tests/e2e/chaos_e2e.py), in which memspy is killed or interrupted.
 *
 *   memspy-chaos-target mix|fork|threads ITERS [NCHILD]
 *
 * 4 workers run ITERS steps each, mixing malloc, calloc, realloc, free,
 * posix_memalign and aligned_alloc. Every block holds pattern(seed, i) for
 * all its bytes; when it is retired, its hash is computed twice: once from
 * the heap (what the allocator kept) and once from (seed, size) alone. The
 * two sums must agree and, being independent of addresses and timing, equal
 * an unprofiled run's. A background thread allocates from "go" until "exit"
 * (threads mode: it starts and joins short-lived allocating threads
 * instead), so the target is still allocating while the driver inspects it.
 * fork mode: worker 0 forks NCHILD children mid-run, each running its own
 * loop and self-check; their exit statuses are collected and printed.
 *
 * stdout: "ready PID"; stdin "go"; stdout "half" (worker 0 halfway),
 * "checksum READ CALC", in fork mode "child K pid P status S" lines and
 * "children ok N/M", then "done"; stdin "exit" (or EOF): stops the
 * background, final checks, "selfcheck ok checksum=X bg=N" (exit 0) or
 * "selfcheck FAILED: why" (exit 1). No stdio on the allocating paths.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

#define NWORKERS  4
#define NSLOTS	  64
#define MAXCHILD  16
#define BG_STEPS  2000 /* steps per background slice / per short-lived thread */

enum mode { MIX, FORK, THREADS };

struct blk {
	unsigned char *p;
	size_t n;
	uint32_t seed;
};

struct sums {
	uint64_t read, calc;
	uint64_t bad; /* calloc not zeroed, misaligned block, failed allocation */
};

static enum mode mode;
static long iters;
static int nchild;
static pthread_barrier_t start_barrier;
static struct sums worker_sums[NWORKERS];
static pid_t child_pid[MAXCHILD];
static int child_status[MAXCHILD];
static atomic_int bg_stop;
static uint64_t bg_rounds, bg_bad, bg_threads;

static void say(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(1, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		s += w;
		n -= (size_t)w;
	}
}

/* Keeps the compiler from dropping stores to memory it thinks nobody reads. */
static inline void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static inline unsigned char pattern(uint32_t seed, size_t i)
{
	return (unsigned char)((seed * 2654435761u + (uint32_t)i * 40503u) >> 11 ^ (i >> 8));
}

static inline uint64_t rng(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Mostly small blocks, some medium, a few above the mmap threshold (128 KiB). */
static size_t pick_size(uint64_t r)
{
	unsigned k = (unsigned)(r >> 40) & 255;

	if (k == 0)
		return 130000 + (size_t)(r >> 20) % 70000;
	if (k < 24)
		return 512 + (size_t)(r >> 20) % 7680;
	return 1 + (size_t)(r >> 20) % 400;
}

static void fill(struct blk *b, size_t from)
{
	for (size_t i = from; i < b->n; i++)
		b->p[i] = pattern(b->seed, i);
	escape(b->p);
}

/* Hash of the block as the heap holds it, and as it must be: both into s. */
static void retire(struct blk *b, struct sums *s)
{
	uint64_t hr = 0x9e3779b97f4a7c15ull ^ b->n, hc = hr;

	escape(b->p);
	for (size_t i = 0; i < b->n; i++) {
		hr = (hr ^ b->p[i]) * 0x100000001b3ull;
		hc = (hc ^ pattern(b->seed, i)) * 0x100000001b3ull;
	}
	s->read += hr;
	s->calc += hc;
	free(b->p);
	b->p = NULL;
}

static void *new_block(uint64_t r, size_t n, struct sums *s)
{
	void *p = NULL;
	size_t al = (size_t)16 << ((r >> 8) % 5); /* 16 .. 256 */

	switch ((r >> 16) % 6) {
	case 0:
	case 1:
		p = malloc(n);
		break;
	case 2:
		p = calloc(1, n);
		if (p)
			for (size_t i = 0; i < n; i++)
				if (((unsigned char *)p)[i]) {
					s->bad++;
					break;
				}
		break;
	case 3:
		if (posix_memalign(&p, al, n))
			p = NULL;
		if (p && (uintptr_t)p % al)
			s->bad++;
		break;
	case 4:
		p = aligned_alloc(al, (n + al - 1) / al * al);
		if (p && (uintptr_t)p % al)
			s->bad++;
		break;
	default:
		p = realloc(NULL, n);
		break;
	}
	if (!p)
		s->bad++;
	return p;
}

/* One allocation step; the sequence depends only on the rng state. */
static void step(struct blk *slots, uint64_t *st, uint32_t *seq, struct sums *s)
{
	uint64_t r = rng(st);
	struct blk *b = &slots[r % NSLOTS];

	if (b->p) {
		if ((r >> 24) % 3 == 0) {
			size_t n = pick_size(rng(st));
			unsigned char *q = realloc(b->p, n);

			if (!q) {
				s->bad++;
				return;
			}
			b->p = q;
			if (n > b->n) {
				size_t old = b->n;

				b->n = n;
				fill(b, old);
			} else {
				b->n = n;
			}
		} else {
			retire(b, s);
		}
		return;
	}
	b->n = pick_size(r);
	b->seed = (*seq)++;
	b->p = new_block(rng(st), b->n, s);
	if (b->p)
		fill(b, 0);
}

static void run_steps(uint64_t seed, long n, struct sums *s, long fork_every)
{
	struct blk slots[NSLOTS];
	uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
	uint32_t seq = (uint32_t)seed << 20;
	int forked = 0;

	memset(slots, 0, sizeof(slots));
	for (long i = 0; i < n; i++) {
		step(slots, &st, &seq, s);
		if (fork_every && i && i % fork_every == 0 && forked < nchild) {
			pid_t c = fork();

			if (c == 0) {
				struct sums cs = {0, 0, 0};

				/* The child: one thread, the inherited (maybe patched) libc. */
				run_steps(1000 + (uint64_t)forked, iters / 4, &cs, 0);
				_exit(cs.read == cs.calc && !cs.bad ? 0 : 3);
			}
			child_pid[forked++] = c;
			if (c < 0)
				s->bad++;
		}
		if (fork_every && i == n / 2)
			say("half\n");
	}
	for (int i = 0; i < NSLOTS; i++)
		if (slots[i].p)
			retire(&slots[i], s);
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	long fork_every = 0;

	pthread_barrier_wait(&start_barrier);
	if (id == 0)
		fork_every = mode == FORK && nchild ? iters / (nchild + 1) : iters / 2;
	run_steps(id + 1, iters, &worker_sums[id], id == 0 ? fork_every : 0);
	if (id == 0)
		for (int k = 0; k < nchild && mode == FORK; k++)
			while (child_pid[k] > 0 && waitpid(child_pid[k], &child_status[k], 0) < 0 &&
			       errno == EINTR)
				;
	return NULL;
}

static void *short_lived(void *arg)
{
	struct sums s = {0, 0, 0};

	run_steps((uint64_t)(uintptr_t)arg, BG_STEPS / 4, &s, 0);
	return (void *)(uintptr_t)(s.read != s.calc || s.bad);
}

/* From "go" to "exit": keeps allocating (or starting threads that do). */
static void *background(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load(&bg_stop)) {
		if (mode == THREADS) {
			pthread_t t[2];
			void *r;

			for (int i = 0; i < 2; i++)
				if (pthread_create(&t[i], NULL, short_lived,
						   (void *)(uintptr_t)(5000 + bg_threads + i)))
					t[i] = 0, bg_bad++;
			for (int i = 0; i < 2; i++)
				if (t[i]) {
					pthread_join(t[i], &r);
					bg_bad += r != NULL;
					bg_threads++;
				}
		} else {
			struct sums s = {0, 0, 0};

			run_steps(7000 + bg_rounds, BG_STEPS, &s, 0);
			bg_bad += s.read != s.calc || s.bad;
		}
		bg_rounds++;
	}
	return NULL;
}

static int read_line(char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(0, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1)
			return n ? 0 : -1;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
	}
	buf[n] = 0;
	return 0;
}

/* A nonzero TracerPid after memspy left (even killed) is a failure. */
static const char *ptrace_leftover(void)
{
	static char why[128];
	int tp = hs_tracer_pid();

	if (tp < 0)
		return "cannot read /proc/self/status";
	if (tp != 0) {
		snprintf(why, sizeof(why), "TracerPid is %d after memspy left", tp);
		return why;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[NWORKERS], bg;
	struct sums total = {0, 0, 0}, last = {0, 0, 0};
	char line[64], buf[160];
	const char *why = NULL;
	int kids_ok = 0;

	if (argc < 3 || (strcmp(argv[1], "mix") && strcmp(argv[1], "fork") &&
			 strcmp(argv[1], "threads"))) {
		fprintf(stderr, "usage: %s mix|fork|threads ITERS [NCHILD]\n", argv[0]);
		return 2;
	}
	mode = !strcmp(argv[1], "mix") ? MIX : !strcmp(argv[1], "fork") ? FORK : THREADS;
	iters = atol(argv[2]);
	nchild = mode == FORK ? (argc > 3 ? atoi(argv[3]) : 4) : 0;
	if (iters < 8 || nchild < 0 || nchild > MAXCHILD)
		return 2;
	/* The threads exist before memspy attaches. */
	pthread_barrier_init(&start_barrier, NULL, NWORKERS + 2);
	for (int i = 0; i < NWORKERS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i))
			return 2;
	if (pthread_create(&bg, NULL, background, NULL))
		return 2;
	snprintf(buf, sizeof(buf), "ready %d\n", (int)getpid());
	say(buf);
	if (read_line(line, sizeof(line)) || strcmp(line, "go")) {
		fprintf(stderr, "memspy-chaos-target: no 'go' on stdin\n");
		_exit(2);
	}
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < NWORKERS; i++) {
		pthread_join(t[i], NULL);
		total.read += worker_sums[i].read;
		total.calc += worker_sums[i].calc;
		total.bad += worker_sums[i].bad;
	}
	snprintf(buf, sizeof(buf), "checksum %016llx %016llx\n", (unsigned long long)total.read,
		 (unsigned long long)total.calc);
	say(buf);
	for (int k = 0; k < nchild; k++) {
		int st = child_status[k];

		snprintf(buf, sizeof(buf), "child %d pid %d status %d%s%s\n", k, (int)child_pid[k],
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? " signal " : "",
			 WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "");
		say(buf);
		kids_ok += child_pid[k] > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	if (mode == FORK) {
		snprintf(buf, sizeof(buf), "children ok %d/%d\n", kids_ok, nchild);
		say(buf);
	}
	say("done\n");

	/* The driver inspects us now (memspy gone or still there); then "exit". */
	read_line(line, sizeof(line));
	atomic_store(&bg_stop, 1);
	pthread_join(bg, NULL);
	if (total.read != total.calc)
		why = "the heap's contents differ from what was written (read != calc)";
	else if (total.bad)
		why = "an allocation failed, or calloc/alignment was wrong";
	else if (bg_bad)
		why = "the background allocations saw corrupt data";
	else if (kids_ok != nchild)
		why = "a forked child failed its self-check";
	else
		why = ptrace_leftover();
	/* One more run after memspy left: the allocator works untraced. */
	run_steps(99, 20000, &last, 0);
	if (!why && (last.read != last.calc || last.bad))
		why = "allocation after memspy left returned corrupt data";
	if (why) {
		snprintf(buf, sizeof(buf), "selfcheck FAILED: %s\n", why);
		say(buf);
		return 1;
	}
	snprintf(buf, sizeof(buf), "selfcheck ok checksum=%016llx bg=%llu threads=%llu\n",
		 (unsigned long long)total.read, (unsigned long long)bg_rounds,
		 (unsigned long long)bg_threads);
	say(buf);
	return 0;
}
