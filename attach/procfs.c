// SPDX-License-Identifier: MIT
/*
 * Reading /proc in one place: small files read whole into a caller's
 * buffer (one read loop, NUL-terminated), "Key:" fields of status-like
 * text, and the signal masks of a process's or a thread's status. Every
 * reader of /proc/PID/status and /proc/PID/task/TID/status in attach/ goes
 * through here, so a kernel quirk (a field that moves, a file larger than
 * a page) is handled once; and the threads' scheduler accounting
 * (schedstat), summed per thread so that exits do not move the totals. The maps parser stays in maps.c (it has its own
 * fuzzer and torn-read handling).
 */
#include "attach/attach_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t ms_proc_read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	int fd;

	if (!size)
		return -EINVAL;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;

			close(fd);
			return e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/*
 * status files have one line memspy never reads whose length the process
 * chooses: Groups (up to NGROUPS_MAX = 65536 groups, ~450 KB). Read into a
 * fixed buffer, it pushed every line after it (NSpid, Vm*, Threads, Sig*,
 * Cap*, Seccomp) out, and they read as missing. So the file is read to its
 * end through a small window, and only lines of at most MS_STATUS_LINE_MAX
 * bytes are kept: every line memspy parses is far shorter (the longest,
 * Name, is 15 escaped bytes; NSpid 32 numbers at most). A line that no
 * longer fits is never kept in part: a number cut short would be read as
 * another number.
 */
#define MS_STATUS_LINE_MAX 1024u

ssize_t ms_proc_read_status(const char *path, char *buf, size_t size)
{
	char win[4096];
	size_t have = 0, len = 0;
	bool skipping = false; /* inside a line too long to keep */
	int fd;

	if (!size)
		return -EINVAL;
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, win + have, sizeof(win) - have);
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;

			close(fd);
			return e;
		}
		if (n == 0 && have == 0)
			break;
		have += (size_t)n;
		for (;;) {
			char *nl = memchr(win + start, '\n', have - start);
			size_t l;

			if (!nl)
				break;
			l = (size_t)(nl - (win + start)) + 1;
			if (!skipping && l <= MS_STATUS_LINE_MAX && len + l < size) {
				memcpy(buf + len, win + start, l);
				len += l;
			}
			skipping = false;
			start += l;
		}
		/* What is left is the start of a line. */
		memmove(win, win + start, have - start);
		have -= start;
		if (n == 0) {
			/* A last line without a newline (never seen from the kernel). */
			if (!skipping && have <= MS_STATUS_LINE_MAX && len + have < size) {
				memcpy(buf + len, win, have);
				len += have;
			}
			break;
		}
		if (have > MS_STATUS_LINE_MAX) {
			skipping = true;
			have = 0;
		}
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

const char *ms_proc_status_field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *line = text;

	while (line && *line) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			const char *v = line + klen + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return NULL;
}

uint64_t ms_procfs_status_mask(pid_t pid, pid_t tid, const char *key)
{
	char path[96], buf[4096];
	const char *v;

	if (tid > 0)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	else
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
		return 0;
	v = ms_proc_status_field(buf, key);
	return v ? strtoull(v, NULL, 16) : 0;
}

bool ms_procfs_gone(pid_t pid)
{
	char path[64], buf[512];
	const char *c;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (ms_proc_read_file(path, buf, sizeof(buf)) <= 0)
		return true;
	/* "pid (comm) S ...": the name may hold anything, ')' included; the last one ends it. */
	c = strrchr(buf, ')');
	return !c || c[1] != ' ' || c[2] == 'Z' || c[2] == 'X';
}

static int sched_thread_cmp(const void *a, const void *b)
{
	pid_t x = ((const struct ms_sched_thread *)a)->tid, y = ((const struct ms_sched_thread *)b)->tid;

	return (x > y) - (x < y);
}

int ms_sched_account_read(struct ms_sched_account *a, pid_t pid, size_t max_threads)
{
	struct ms_sched_thread *now = NULL, *prev;
	size_t n = 0, cap = 0;
	char path[96], buf[128];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		unsigned long long run, wait;
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		if (n == max_threads) {
			closedir(d);
			free(now);
			return -E2BIG;
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%ld/schedstat", (int)pid, tid);
		if (ms_proc_read_file(path, buf, sizeof(buf)) <= 0 ||
		    sscanf(buf, "%llu %llu", &run, &wait) != 2)
			continue; /* exited meanwhile */
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			now = ms_xrealloc(now, cap * sizeof(*now));
		}
		now[n++] = (struct ms_sched_thread){(pid_t)tid, run, wait};
	}
	closedir(d);
	if (!n) {
		free(now);
		return -ENOENT;
	}
	qsort(now, n, sizeof(*now), sched_thread_cmp);
	for (size_t i = 0; i < n; i++) {
		prev = a->readings ? bsearch(&now[i], a->t, a->n, sizeof(*a->t), sched_thread_cmp)
				   : NULL;
		/* A tid reused by a new thread reads lower than the old one had: all of it is new. */
		if (prev && now[i].run_ns >= prev->run_ns && now[i].wait_ns >= prev->wait_ns) {
			a->run_ns += now[i].run_ns - prev->run_ns;
			a->wait_ns += now[i].wait_ns - prev->wait_ns;
		} else {
			a->run_ns += now[i].run_ns;
			a->wait_ns += now[i].wait_ns;
		}
	}
	free(a->t);
	a->t = now;
	a->n = n;
	a->cap = cap;
	a->readings++;
	return 0;
}

void ms_sched_account_free(struct ms_sched_account *a)
{
	free(a->t);
	*a = (struct ms_sched_account){0};
}
