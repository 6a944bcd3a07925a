// SPDX-License-Identifier: MIT
/*
 * /proc/PID/status of a process with 65,536 supplementary groups is ~450 KB,
 * nearly all of it the Groups line. The readers of status (attach/procfs.c
 * ms_proc_read_status) must still see the lines after it: a child that
 * knows its truth (a blocked and a caught signal, its thread count, its
 * memory) is read through the same functions memspy uses. Needs root
 * (setgroups); skipped otherwise. Then ms_proc_read_status on files built
 * to sit on its limits: a 1 KiB line kept, a longer one left out whole, a
 * long line across read windows, a last line without a newline.
 */
#include "attach/attach.h"
#include "attach/attach_int.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NGROUPS 65536

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
}

/* The child: many groups, SIGUSR2 blocked, SIGUSR1 caught, 3 threads. */
static void child(int wfd)
{
	static gid_t g[NGROUPS];
	sigset_t set;
	pthread_t t;
	char c = 'r';

	for (int i = 0; i < NGROUPS; i++)
		g[i] = (gid_t)(100000 + i);
	if (setgroups(NGROUPS, g) != 0) {
		c = errno == EPERM ? 'p' : 'e';
		(void)!write(wfd, &c, 1);
		_exit(0);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGUSR1, on_usr1);
	pthread_create(&t, NULL, sleeper, NULL);
	pthread_create(&t, NULL, sleeper, NULL);
	(void)!write(wfd, &c, 1);
	for (;;)
		pause();
}

static void live_child(void)
{
	char path[64], *buf;
	struct ms_proc_mem_summary mem;
	struct ms_diag_facts f;
	int p[2];
	pid_t pid;
	char c = 0;
	ssize_t n;
	FILE *fp;
	size_t whole = 0;

	if (pipe(p) != 0)
		ms_test_die("pipe:");
	pid = fork();
	if (pid < 0)
		ms_test_die("fork:");
	if (pid == 0) {
		close(p[0]);
		child(p[1]);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1 || c != 'r') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (c == 'p')
			ms_test_skip("setgroups: not permitted (needs root)");
		ms_test_die("the child could not set %d groups", NGROUPS);
	}
	/* The condition under test: the file is far larger than any fixed buffer. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "r");
	if (fp) {
		while (fgetc(fp) != EOF)
			whole++;
		fclose(fp);
	}
	printf("status of the child: %zu bytes\n", whole);
	CHECK(whole > 100000, "status is %zu bytes", whole);

	CHECK(ms_procfs_status_mask(pid, 0, "SigBlk") & (1ull << (SIGUSR2 - 1)),
	      "SigBlk lost");
	CHECK(ms_procfs_status_mask(pid, pid, "SigCgt") & (1ull << (SIGUSR1 - 1)),
	      "SigCgt of the thread lost");
	CHECK(ms_proc_mem_summary(pid, &mem) == 0 && mem.vm_rss > 0 && mem.vm_size > 0,
	      "VmRSS %llu VmSize %llu", (unsigned long long)mem.vm_rss,
	      (unsigned long long)mem.vm_size);
	ms_diag_gather("/proc", pid, getpid(), &f);
	CHECK(f.exists && f.threads == 3, "Threads %d", f.threads);
	CHECK(!strncmp(f.comm, "test_status_gro", 15), "Name '%s'", f.comm);

	buf = malloc(8192);
	n = ms_proc_read_status(path, buf, 8192);
	CHECK(n > 0 && n < 8192, "kept %zd bytes", n);
	CHECK(!ms_proc_status_field(buf, "Groups"), "the Groups line was kept");
	CHECK(ms_proc_status_field(buf, "Seccomp") != NULL, "Seccomp lost");
	CHECK(ms_proc_status_field(buf, "NSpid") != NULL, "NSpid lost");
	free(buf);

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");

	if (!fp || fwrite(text, 1, len, fp) != len || fclose(fp) != 0)
		ms_test_die("writing %s:", path);
}

static void limits(void)
{
	char dir[] = "/tmp/test_status_groups-XXXXXX", path[64], out[4096];
	size_t cap = 600000, len = 0;
	char *t = malloc(cap);
	const char *v;
	ssize_t n;

	if (!mkdtemp(dir))
		ms_test_die("mkdtemp:");
	snprintf(path, sizeof(path), "%s/status", dir);

	/* A long line across many 4 KiB windows, then lines that must be there. */
	len += (size_t)sprintf(t + len, "Name:\tx\nGroups:\t");
	while (len < 500000)
		len += (size_t)sprintf(t + len, "%d ", 100000 + (int)len);
	len += (size_t)sprintf(t + len, "\nSigBlk:\t0000000000000002\n");
	/* Exactly 1024 bytes with its newline: kept. */
	len += (size_t)sprintf(t + len, "Keep:\t");
	{
		size_t start = len - 6;

		while (len - start < 1023)
			t[len++] = 'k';
		t[len++] = '\n';
	}
	/* 1025 bytes: left out whole. */
	{
		size_t start = len;

		len += (size_t)sprintf(t + len, "Drop:\t");
		while (len - start < 1024)
			t[len++] = 'd';
		t[len++] = '\n';
	}
	len += (size_t)sprintf(t + len, "Seccomp:\t2");
	write_file(path, t, len);
	n = ms_proc_read_status(path, out, sizeof(out));
	CHECK(n > 0, "read %zd", n);
	v = ms_proc_status_field(out, "SigBlk");
	CHECK(v && strtoull(v, NULL, 16) == 2, "SigBlk after a 500 KB line");
	CHECK(ms_proc_status_field(out, "Name") != NULL);
	CHECK(!ms_proc_status_field(out, "Groups"));
	CHECK(ms_proc_status_field(out, "Keep") != NULL, "a 1024-byte line was left out");
	CHECK(!ms_proc_status_field(out, "Drop"), "a 1025-byte line was kept");
	v = ms_proc_status_field(out, "Seccomp");
	CHECK(v && atoi(v) == 2, "the last line without a newline");

	/* A buffer too small for all: whole lines only, never one cut short. */
	write_file(path, "A:\t1\nB:\t123456789\nC:\t3\n", 23);
	n = ms_proc_read_status(path, out, 12);
	CHECK(n == 10 && !strcmp(out, "A:\t1\nC:\t3\n"), "got %zd '%s'", n, out);

	unlink(path);
	rmdir(dir);
	free(t);
}

int main(void)
{
	limits();
	live_child();
	return ms_test_result("test_status_groups");
}
