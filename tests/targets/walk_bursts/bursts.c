// SPDX-License-Identifier: MIT
/*
 * Test target for walk mode's sampling bias: N worker threads run bursts of
 * malloc/free of a known CPU length between sleeps of a known length (or
 * never sleep: the CPU-bound shape). A sampler whose instants are independent
 * of the threads finds a worker inside burst_work() for the share of its wall
 * time the worker spends there (on a CPU, or preempted and waiting for one).
 *
 * Each worker publishes its own truth in a shared file (STATS_FILE), so the
 * driver can take differences over exactly its own window; per worker, 64
 * bytes: tid, bursts done, CPU time inside the bursts (ns, the thread's CPU
 * clock: the kernel's accounting), wall time inside the bursts (ns,
 * CLOCK_MONOTONIC). The driver reads /proc/PID/task/TID/schedstat itself.
 *
 *   memspy-walk-bursts BURST_US PERIOD_US THREADS STATS_FILE
 *     PERIOD_US 0: CPU-bound (bursts of BURST_US back to back)
 * Prints "READY pid=N tids=a,b,c"; exits when a line arrives on stdin.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16

struct worker_stats {
	volatile int64_t tid;
	volatile uint64_t bursts;
	volatile uint64_t burst_cpu_ns;
	volatile uint64_t burst_wall_ns;
	uint64_t pad[4]; /* one cache line per worker */
};

static struct worker_stats *stats;
static long burst_ns, period_ns;
static volatile int stop;

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* The burst: malloc/free until this thread has used `ns` of CPU. */
__attribute__((noinline)) static void burst_work(uint64_t ns, struct worker_stats *st)
{
	uint64_t w0 = clock_ns(CLOCK_MONOTONIC), t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), now = t0;

	while (now - t0 < ns) {
		for (int i = 0; i < 8; i++) {
			void *p = malloc(64 + 32 * (size_t)i);

			escape(p);
			free(p);
		}
		now = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	}
	st->burst_cpu_ns += now - t0;
	st->burst_wall_ns += clock_ns(CLOCK_MONOTONIC) - w0;
	st->bursts++;
}

/* The sleep between bursts, outside burst_work. */
__attribute__((noinline)) static void idle_wait(long ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

static void *worker(void *arg)
{
	struct worker_stats *st = arg;

	st->tid = (int64_t)syscall(SYS_gettid);
	while (!stop) {
		if (!period_ns) {
			burst_work((uint64_t)burst_ns, st); /* CPU-bound: back to back */
			continue;
		}
		burst_work((uint64_t)burst_ns, st);
		idle_wait(period_ns - burst_ns);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[MAX_THREADS];
	char line[64];
	int n, fd;

	if (argc != 5) {
		fprintf(stderr, "usage: %s BURST_US PERIOD_US THREADS STATS_FILE\n", argv[0]);
		return 2;
	}
	burst_ns = atol(argv[1]) * 1000L;
	period_ns = atol(argv[2]) * 1000L;
	n = atoi(argv[3]);
	if (burst_ns <= 0 || period_ns < 0 || (period_ns && period_ns <= burst_ns) || n < 1 ||
	    n > MAX_THREADS) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, MAX_THREADS * (off_t)sizeof(*stats))) {
		perror(argv[4]);
		return 2;
	}
	stats = mmap(NULL, MAX_THREADS * sizeof(*stats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (stats == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, worker, &stats[i]);
	for (int i = 0; i < n; i++)
		while (!stats[i].tid)
			usleep(1000);
	printf("READY pid=%d tids=", (int)getpid());
	for (int i = 0; i < n; i++)
		printf("%s%lld", i ? "," : "", (long long)stats[i].tid);
	printf("\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;
	stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	printf("DONE\n");
	return 0;
}
