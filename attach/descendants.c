// SPDX-License-Identifier: MIT
/*
 * attach/descendants: the process tree below a pid, from the parent field
 * of every /proc/PID/stat (one scan per call), and a process's title.
 */
#include "attach/descendants.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TITLE_MAX 96

/* Reads a small /proc file whole (NUL-terminated); length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return -1;
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, size - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

/* The fields of /proc/PID/stat after "(comm)" (comm may hold ')' and spaces). */
static const char *stat_rest(pid_t pid, char *buf, size_t size)
{
	char path[64];
	char *rp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, size) <= 0)
		return NULL;
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp + 2 : NULL;
}

static pid_t parent_of(pid_t pid)
{
	char buf[1024];
	const char *r = stat_rest(pid, buf, sizeof(buf));
	int ppid;
	char state;

	if (!r || sscanf(r, "%c %d", &state, &ppid) != 2)
		return -1;
	return (pid_t)ppid;
}

uint64_t ms_proc_cpu_ticks(pid_t pid)
{
	char buf[1024];
	const char *r = stat_rest(pid, buf, sizeof(buf));
	unsigned long long ut, st;

	/* fields 14 and 15 (utime, stime); r starts at field 3 (state) */
	if (!r || sscanf(r, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

pid_t ms_proc_tracer(pid_t pid)
{
	char path[64], buf[4096];
	const char *t;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	t = strstr(buf, "\nTracerPid:");
	return t ? (pid_t)atoi(t + 11) : -1;
}

struct pp {
	pid_t pid, ppid;
};

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

static bool in_set(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

size_t ms_descendants(const pid_t *known, size_t nknown, pid_t exclude, pid_t **out)
{
	struct pp *all = NULL;
	size_t nall = 0, cap = 0, nset = 0, setcap = 0, nout = 0, ocap = 0;
	pid_t *set = NULL;
	bool *taken;
	struct dirent *de;
	DIR *d = opendir("/proc");
	bool grew = true;

	*out = NULL;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		pid_t ppid;

		if (pid <= 0 || (ppid = parent_of(pid)) <= 0)
			continue;
		ms_xgrow((void **)&all, &cap, nall + 1, sizeof(*all));
		all[nall++] = (struct pp){pid, ppid};
	}
	closedir(d);
	for (size_t i = 0; i < nknown; i++) {
		ms_xgrow((void **)&set, &setcap, nset + 1, sizeof(*set));
		set[nset++] = known[i];
	}
	taken = ms_xcalloc(nall ? nall : 1, sizeof(*taken));
	/* To a fixed point: a grandchild may come before its parent in /proc's order. */
	for (int round = 0; grew && round < 4096; round++) {
		grew = false;
		for (size_t i = 0; i < nall; i++) {
			if (taken[i] || all[i].pid == exclude || !in_set(set, nset, all[i].ppid) ||
			    in_set(set, nset, all[i].pid))
				continue;
			taken[i] = grew = true;
			ms_xgrow((void **)&set, &setcap, nset + 1, sizeof(*set));
			set[nset++] = all[i].pid;
			ms_xgrow((void **)out, &ocap, nout + 1, sizeof(**out));
			(*out)[nout++] = all[i].pid;
		}
	}
	if (nout)
		qsort(*out, nout, sizeof(**out), cmp_pid);
	free(taken);
	free(set);
	free(all);
	return nout;
}

size_t ms_children(pid_t pid, pid_t exclude, pid_t **out)
{
	pid_t *all;
	size_t n = ms_descendants(&pid, 1, exclude, &all), k = 0;

	for (size_t i = 0; i < n; i++)
		if (parent_of(all[i]) == pid)
			all[k++] = all[i];
	*out = all;
	return k;
}

char *ms_proc_title(pid_t pid)
{
	char path[64], buf[TITLE_MAX * 4];
	ssize_t n;
	size_t k = 0;
	char *t;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	n = read_small(path, buf, sizeof(buf));
	/* Trailing NULs (a rewritten argv pads with them) are not separators. */
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	if (n <= 0) {
		char comm[64];

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		n = read_small(path, comm, sizeof(comm));
		while (n > 0 && (comm[n - 1] == '\n' || comm[n - 1] == '\0'))
			n--;
		if (n <= 0)
			return ms_xasprintf("pid %d", (int)pid);
		memcpy(buf, comm, (size_t)n);
	}
	t = ms_xcalloc(TITLE_MAX + 4, 1);
	for (ssize_t i = 0; i < n && k < TITLE_MAX; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\0' || c == ';' || c < ' ' || c == 0x7f)
			c = ' ';
		if (c == ' ' && (k == 0 || t[k - 1] == ' '))
			continue;
		t[k++] = (char)c;
	}
	while (k && t[k - 1] == ' ')
		k--;
	if (n > TITLE_MAX && k == TITLE_MAX) {
		memcpy(t + k, "...", 3);
		k += 3;
	}
	t[k] = '\0';
	/* C1 controls (CSI is U+009B) too: the title is printed on terminals. */
	ms_terminal_clean(t);
	return t;
}
