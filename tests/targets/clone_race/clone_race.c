// SPDX-License-Identifier: MIT
/*
 * memspy-clone-race: a process that starts cloning at the moment memspy is
 * attaching. It prints "ready", blocks reading a line from stdin, and then
 * for SECONDS creates threads (mode "threads") or forks children (mode
 * "fork") one after another, each of which mallocs and frees a little.
 * The driver writes that line as soon as memspy's TracerPid appears, so
 * clone()/fork() is in flight while memspy stops the process to install its
 * probes or take a snapshot: a thread held inside the call must not be used
 * to inject memspy's own system calls (the call would appear to fail while
 * its child runs, and glibc would then start a second thread on the same
 * stack). It checks every call and prints "ok N" (N calls) or why it failed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int sink;

static void *worker(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg % 4096 + 16;
	char *p = malloc(n);

	if (!p)
		return (void *)1;
	memset(p, 1, n);
	sink += p[n - 1];
	free(p);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "threads";
	double seconds = argc > 2 ? atof(argv[2]) : 2.0, end;
	char line[64];
	long calls = 0;

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "clone_race: no go line\n");
		return 3;
	}
	end = now() + seconds;
	while (now() < end) {
		if (!strcmp(mode, "fork")) {
			int status;
			pid_t c = fork();

			if (c < 0) {
				printf("FAIL fork: %s (call %ld)\n", strerror(errno), calls);
				return 1;
			}
			if (c == 0)
				_exit(worker((void *)(uintptr_t)calls) ? 1 : 0);
			if (waitpid(c, &status, 0) != c || !WIFEXITED(status) ||
			    WEXITSTATUS(status)) {
				printf("FAIL child %d status 0x%x (call %ld)\n", (int)c, status, calls);
				return 1;
			}
		} else {
			pthread_t t;
			void *ret;
			int e = pthread_create(&t, NULL, worker, (void *)(uintptr_t)calls);

			if (e) {
				printf("FAIL pthread_create: %s (call %ld)\n", strerror(e), calls);
				return 1;
			}
			if ((e = pthread_join(t, &ret)) || ret) {
				printf("FAIL pthread_join: %s (call %ld)\n", strerror(e), calls);
				return 1;
			}
		}
		calls++;
	}
	printf("ok %ld\n", calls);
	fflush(stdout);
	return 0;
}
