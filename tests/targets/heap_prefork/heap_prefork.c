// SPDX-License-Identifier: MIT
/*
 * Target for `memspy dump` on a daemonized, pre-forking server (nginx's
 * shape): allocate, fork, the parent exits; the daemon allocates more,
 * so [heap] grows as a second mapping the kernel cannot merge with the
 * inherited one, and a thread grows a thread heap the same way; then it
 * forks workers, which do the same again. Each process prints its own
 * mallinfo2() as one JSON line at a quiescent point (its thread parked,
 * no malloc until stdin closes), with how many mappings its [heap] and
 * its thread's heap span, then blocks until stdin closes.
 *   heap_prefork [workers [blocks]]
 * The original process exits 0 at once. The master exits 0 once every
 * worker did.
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/handshake.h"

#define HEAP_MAX (64ul << 20) /* glibc's HEAP_MAX_SIZE on x86_64 */

static int nblocks = 3000;
static pthread_barrier_t parked;
static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;
static void *volatile sink;
static uintptr_t thread_heap; /* the parked thread's heap, HEAP_MAX-aligned */

static void escape(void *p)
{
	sink = p;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Small and medium blocks, and a few beyond the mmap threshold. */
static size_t pick_size(uint64_t *s)
{
	unsigned r = (unsigned)(rnd(s) % 1000);

	if (r < 600)
		return 16 + rnd(s) % 113;
	if (r < 900)
		return 129 + rnd(s) % 1000;
	if (r < 995)
		return 1200 + rnd(s) % 8000;
	return 140000 + rnd(s) % 100000;
}

/* Allocates a size mix (> 1 MiB: brk must grow), frees a third, keeps the rest. */
static void work(unsigned seed)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * (seed + 1);
	void **v = calloc((size_t)nblocks, sizeof(*v));

	for (int i = 0; i < nblocks; i++) {
		v[i] = malloc(pick_size(&s));
		memset(v[i], 0x5a, 16);
		escape(v[i]);
	}
	for (int i = 0; i < nblocks; i += 3) {
		free(v[i]);
		v[i] = NULL;
	}
	for (int i = 0; i < 40; i++)
		escape(malloc(24));
	for (int i = 1; i < nblocks; i += 31)
		if (v[i])
			v[i] = realloc(v[i], pick_size(&s));
	escape(v);
}

/* Allocates in a thread arena, then stays parked so its tcache stays as it is. */
static void *thread_main(void *arg)
{
	void *p;

	work((unsigned)(uintptr_t)arg);
	p = malloc(64);
	thread_heap = (uintptr_t)p & ~(HEAP_MAX - 1);
	escape(p);
	pthread_barrier_wait(&parked);
	pthread_mutex_lock(&hold);
	pthread_mutex_unlock(&hold);
	return NULL;
}

/* A thread that allocates and parks; the caller then holds no lock but hold. */
static void start_parked_thread(unsigned seed)
{
	pthread_t th;

	pthread_barrier_init(&parked, NULL, 2);
	pthread_mutex_lock(&hold);
	if (pthread_create(&th, NULL, thread_main, (void *)(uintptr_t)seed) != 0)
		_exit(2);
	pthread_barrier_wait(&parked);
	pthread_barrier_destroy(&parked);
}

/* An allocating thread that exits: its arena goes on the free list for the next one. */
static void run_thread_to_end(unsigned seed)
{
	pthread_t th;

	pthread_barrier_init(&parked, NULL, 2);
	if (pthread_create(&th, NULL, thread_main, (void *)(uintptr_t)seed) != 0)
		_exit(2);
	pthread_barrier_wait(&parked);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&parked);
}

/*
 * How many rw lines of /proc/self/maps are [heap] (heap_named) or lie in
 * [lo, hi). No malloc: read(2) into a static buffer.
 */
static int mappings_in(uintptr_t lo, uintptr_t hi, int heap_named)
{
	static char buf[1 << 20];
	size_t len = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), count = 0;

	if (fd < 0)
		return -1;
	while (len + 1 < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		unsigned long a, b;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && perms[0] == 'r' &&
		    perms[1] == 'w') {
			if (heap_named ? strstr(line, "[heap]") != NULL
				       : (a >= lo && b <= hi))
				count++;
		}
		line = nl ? nl + 1 : NULL;
	}
	return count;
}

/* The quiescent point: count mappings, then one line, then wait for stdin to close. */
static void report_and_wait(const char *role)
{
	int heap_maps = mappings_in(0, 0, 1);
	int thread_maps = thread_heap ? mappings_in(thread_heap, thread_heap + HEAP_MAX, 0) : 0;
	struct mallinfo2 m = mallinfo2();
	char buf[640], c;

	snprintf(buf, sizeof(buf),
		 "{\"pid\": %d, \"role\": \"%s\", \"heap_mappings\": %d, "
		 "\"thread_heap_mappings\": %d, \"arena\": %zu, \"ordblks\": %zu, "
		 "\"smblks\": %zu, \"hblks\": %zu, \"hblkhd\": %zu, \"fsmblks\": %zu, "
		 "\"uordblks\": %zu, \"fordblks\": %zu, \"keepcost\": %zu}\n",
		 (int)getpid(), role, heap_maps, thread_maps, m.arena, m.ordblks, m.smblks,
		 m.hblks, m.hblkhd, m.fsmblks, m.uordblks, m.fordblks, m.keepcost);
	hs_say(buf); /* one write, under PIPE_BUF: lines of master and workers never interleave */
	while (read(0, &c, 1) == 1)
		;
}

int main(int argc, char **argv)
{
	int nworkers = argc > 1 ? atoi(argv[1]) : 2;
	pid_t *workers;
	int status = 0;

	if (argc > 2)
		nblocks = atoi(argv[2]);
	if (nworkers < 1 || nworkers > 16 || nblocks < 100)
		return 2;
	workers = calloc((size_t)nworkers, sizeof(*workers));

	/* Before daemonizing: the first [heap] mapping and a thread arena. */
	work(0);
	run_thread_to_end(1);

	/* daemon(): the parent exits, the child leads a new session. */
	switch (fork()) {
	case -1:
		return 2;
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() < 0)
		return 2;

	/* The master grows [heap] and the thread heap past what it inherited. */
	work(2);
	start_parked_thread(3);

	for (int i = 0; i < nworkers; i++) {
		pid_t p = fork();

		if (p < 0)
			return 2;
		if (p == 0) {
			/*
			 * A worker: only this thread was copied; the master's thread arena
			 * is on the free list and the worker's own thread takes it over.
			 */
			pthread_mutex_unlock(&hold);
			thread_heap = 0;
			work(10 + (unsigned)i);
			start_parked_thread(20 + (unsigned)i);
			report_and_wait("worker");
			_exit(0);
		}
		workers[i] = p;
	}
	report_and_wait("master");
	pthread_mutex_unlock(&hold);
	for (int i = 0; i < nworkers; i++) {
		int st;

		if (waitpid(workers[i], &st, 0) != workers[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			status = 1;
	}
	return status;
}
