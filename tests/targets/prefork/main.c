// SPDX-License-Identifier: MIT
/*
 * memspy-prefork-target: a pre-forking, daemonizing server in miniature
 * (nginx's shape) for `record --subprocesses` and `dump --subprocesses`.
 *   busy N    the original process forks the daemon and exits 0 at once;
 *             the daemon ("prefork: master") forks N workers ("prefork:
 *             worker K"), each calling the sites of sites.h in a mix of
 *             its own (mix[K % 8] calls of a, b, c per round, a round every
 *             2 ms); then it reads commands on stdin:
 *               fork    a new worker
 *               exec    a new worker K that, on SIGUSR1, execs this program
 *                       as worker K+1 (the same pid, a new image)
 *               stop K  ends worker K (SIGTERM) and reaps it
 *             and at EOF ends every worker and exits (0: all were fine).
 *             Each worker prints "worker K PID" when it starts, "tick K PID
 *             ROUNDS" every 100 rounds and "counts K PID a=.. b=.. c=..
 *             bad=.." when it ends (SIGTERM) or execs. On SIGUSR2 worker K
 *             leaks 10 (K + 1) blocks of PF_SIZE_LEAK (pf_site_leak, kept
 *             forever) and prints "leaked K PID BLOCKS T0 T1": its blocks
 *             leaked so far, and CLOCK_REALTIME ns before the batch's
 *             first block and after its last.
 *   quiet N   the same tree, but each process allocates a known set,
 *             prints "worker K PID" (workers), then
 *             "mallinfo NAME PID {mallinfo2 as JSON}" at a point
 *             where it never allocates again, and waits (master: for EOF on
 *             stdin; workers: for SIGTERM).
 *   spin N    as busy, but each worker calls its sites without a pause for
 *             ~1.5 ms out of every 10 ms (a tick every 10 of these), so
 *             that stops at random instants catch it inside malloc
 *             (record --mode walk)
 *   worker K, spin-worker K  (what an exec'd worker runs) worker K's loop.
 */
#include "sites.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64

static const unsigned mix[8][3] = {{3, 1, 0}, {0, 2, 2}, {1, 1, 4}, {2, 0, 1},
				   {1, 3, 1}, {0, 1, 3}, {4, 1, 1}, {1, 0, 2}};
static char *title_area;
static size_t title_len;
static volatile sig_atomic_t stop_flag, exec_flag, leak_flag;
static bool spin; /* spin mode: busy ~1.5 ms of every 10 ms */
static pid_t workers[MAX_WORKERS];
static void *kept[4096];
static size_t nkept;

/* As nginx does: the argv strings become the process's title in /proc/PID/cmdline. */
static void set_title(const char *t)
{
	memset(title_area, 0, title_len);
	strncpy(title_area, t, title_len - 1);
}

static void on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	exec_flag = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	leak_flag = 1;
}

static void handlers(void)
{
	struct sigaction sa = {0};

	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
}

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Worker k's leak batch (SIGUSR2): 10 (k + 1) blocks kept forever, announced. */
static void leak_batch(unsigned k, unsigned long *leaked, unsigned long *bad)
{
	uint64_t t0 = real_ns(), t1;

	for (unsigned i = 0; i < 10 * (k + 1); i++, ++*leaked)
		*bad += !pf_site_leak(k * 31u + i);
	t1 = real_ns();
	printf("leaked %u %d %lu %llu %llu\n", k, (int)getpid(), *leaked, (unsigned long long)t0,
	       (unsigned long long)t1);
	fflush(stdout);
}

static void worker_loop(unsigned k)
{
	uint64_t busy_until = 0;
	unsigned long cycles = 0;
	unsigned long calls[3] = {0}, bad = 0, rounds = 0, leaked = 0;
	const unsigned *m = mix[k % 8];
	unsigned seed = k * 7919u;
	char t[64];

	snprintf(t, sizeof(t), "prefork: worker %u", k);
	set_title(t);
	handlers();
	printf("worker %u %d\n", k, (int)getpid());
	fflush(stdout);
	while (!stop_flag && !exec_flag) {
		if (leak_flag) {
			leak_flag = 0;
			leak_batch(k, &leaked, &bad);
		}
		for (unsigned i = 0; i < m[0]; i++, calls[0]++)
			bad += !pf_site_a(seed++);
		for (unsigned i = 0; i < m[1]; i++, calls[1]++)
			bad += !pf_site_b(seed++);
		for (unsigned i = 0; i < m[2]; i++, calls[2]++)
			bad += !pf_site_c(seed++);
		++rounds;
		if (spin) {
			if (!busy_until)
				busy_until = now_us() + 1500;
			if (now_us() < busy_until)
				continue;
			busy_until = 0;
			if (++cycles % 10 == 0) {
				printf("tick %u %d %lu\n", k, (int)getpid(), rounds);
				fflush(stdout);
			}
			nap_ms(8);
			continue;
		}
		if (rounds % 100 == 0) {
			printf("tick %u %d %lu\n", k, (int)getpid(), rounds);
			fflush(stdout);
		}
		nap_ms(2);
	}
	printf("counts %u %d a=%lu b=%lu c=%lu bad=%lu\n", k, (int)getpid(), calls[0], calls[1],
	       calls[2], bad);
	fflush(stdout);
	if (exec_flag && !bad) {
		char kb[16];

		snprintf(kb, sizeof(kb), "%u", k + 1);
		execl("/proc/self/exe", "memspy-prefork-target", spin ? "spin-worker" : "worker",
		      kb, (char *)NULL);
		perror("prefork: exec");
		_exit(1);
	}
	_exit(bad ? 1 : 0);
}

/* A known set: n blocks from base bytes up, every third freed; one beyond mmap's threshold. */
static void keep(unsigned n, size_t base, bool big)
{
	for (unsigned i = 0; i < n && nkept < 4096; i++) {
		unsigned char *p = malloc(base + (i * 37u) % 500);

		if (!p)
			abort();
		pf_fill_check(p, base, i);
		if (i % 3 == 2)
			free(p);
		else
			kept[nkept++] = p;
	}
	if (big && nkept < 4096) {
		unsigned char *p = malloc(300000 + base);

		if (!p)
			abort();
		pf_fill_check(p, 300000 + base, n); /* used: the compiler keeps it */
		kept[nkept++] = p;
	}
}

static void print_mallinfo(const char *name)
{
	struct mallinfo2 mi = mallinfo2();

	printf("mallinfo %s %d {\"arena\": %zu, \"ordblks\": %zu, \"smblks\": %zu, \"hblks\": %zu, "
	       "\"hblkhd\": %zu, \"usmblks\": %zu, \"fsmblks\": %zu, \"uordblks\": %zu, "
	       "\"fordblks\": %zu, \"keepcost\": %zu}\n",
	       name, (int)getpid(), mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd,
	       mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost);
	fflush(stdout);
}

static void quiet_worker(unsigned k)
{
	char t[64], name[16];

	snprintf(t, sizeof(t), "prefork: worker %u", k);
	set_title(t);
	handlers();
	printf("worker %u %d\n", k, (int)getpid());
	keep(300 * (k + 1), 100 + 64 * k, k % 2);
	snprintf(name, sizeof(name), "worker%u", k);
	print_mallinfo(name);
	while (!stop_flag)
		pause();
	_exit(0);
}

static void spawn(unsigned k, bool quiet)
{
	pid_t p;

	fflush(stdout);
	p = fork();
	if (p < 0) {
		perror("prefork: fork");
		exit(1);
	}
	if (p == 0) {
		if (quiet)
			quiet_worker(k);
		worker_loop(k);
	}
	workers[k] = p;
}

/* One line of stdin (read(2): no stdio buffer, no allocation); 0 at EOF. */
static int read_line(char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		char c;
		ssize_t r = read(0, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return n ? 1 : 0;
		if (c == '\n' || n + 1 >= size) {
			buf[n] = '\0';
			return 1;
		}
		buf[n++] = c;
	}
}

int main(int argc, char **argv)
{
	unsigned n, next;
	bool quiet;
	int failures = 0;
	char line[128];
	pid_t d;

	title_area = argv[0];
	title_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
	if (argc != 3 ||
	    (strcmp(argv[1], "busy") && strcmp(argv[1], "quiet") && strcmp(argv[1], "spin") &&
	     strcmp(argv[1], "worker") && strcmp(argv[1], "spin-worker"))) {
		fprintf(stderr, "usage: %s busy|quiet|spin N | worker|spin-worker K\n", argv[0]);
		return 64;
	}
	spin = !strcmp(argv[1], "spin") || !strcmp(argv[1], "spin-worker");
	if (!strcmp(argv[1], "worker") || !strcmp(argv[1], "spin-worker"))
		worker_loop((unsigned)atoi(argv[2]));
	quiet = !strcmp(argv[1], "quiet");
	n = (unsigned)atoi(argv[2]);
	if (n > MAX_WORKERS / 2)
		n = MAX_WORKERS / 2;
	fflush(stdout);
	d = fork();
	if (d < 0)
		return 1;
	if (d > 0)
		_exit(0); /* daemonized: the original is gone */
	setsid();
	set_title("prefork: master");
	printf("master %d\n", (int)getpid()); /* stdout's buffer is allocated here, once */
	fflush(stdout);
	if (quiet)
		keep(200, 48, true);
	for (next = 0; next < n; next++)
		spawn(next, quiet);
	if (quiet)
		print_mallinfo("master");
	printf("ready\n");
	fflush(stdout);
	while (read_line(line, sizeof(line))) {
		unsigned k;

		if (quiet)
			continue;
		if (!strcmp(line, "fork") && next < MAX_WORKERS) {
			spawn(next++, false);
		} else if (!strcmp(line, "exec") && next + 1 < MAX_WORKERS) {
			spawn(next, false);
			next += 2;
		} else if (sscanf(line, "stop %u", &k) == 1 && k < MAX_WORKERS && workers[k] > 0) {
			int st;

			kill(workers[k], SIGTERM);
			waitpid(workers[k], &st, 0);
			failures += !WIFEXITED(st) || WEXITSTATUS(st);
			workers[k] = 0;
			printf("stopped %u %d\n", k,
			       WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			fflush(stdout);
		}
	}
	for (unsigned k = 0; k < MAX_WORKERS; k++)
		if (workers[k] > 0)
			kill(workers[k], SIGTERM);
	for (unsigned k = 0; k < MAX_WORKERS; k++) {
		int st;

		if (workers[k] <= 0)
			continue;
		while (waitpid(workers[k], &st, 0) < 0 && errno == EINTR)
			;
		failures += !WIFEXITED(st) || WEXITSTATUS(st);
	}
	printf("master done %d\n", failures);
	fflush(stdout);
	return failures ? 1 : 0;
}
