// SPDX-License-Identifier: MIT
/*
 * Reading /proc in one place: small files read whole into a caller's
 * buffer (one read loop, NUL-terminated), "Key:" fields of status-like
 * text, and the signal masks of a process's or a thread's status. Every
 * reader of /proc/PID/status and /proc/PID/task/TID/status in attach/ goes
 * through here, so a kernel quirk (a field that moves, a file larger than
 * a page) is handled once. The maps parser stays in maps.c (it has its own
 * fuzzer and torn-read handling).
 */
#include "attach/attach_int.h"

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
	if (ms_proc_read_file(path, buf, sizeof(buf)) <= 0)
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
