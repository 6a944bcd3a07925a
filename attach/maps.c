// SPDX-License-Identifier: MIT
/* The mapping table: /proc/PID/maps parsed into a sorted array. */
#include "attach/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_line(const char *line, struct ms_map *m)
{
	unsigned long long start, end, off, inode;
	unsigned int maj, min;
	char perms[8];
	int pathpos = 0;

	memset(m, 0, sizeof(*m));
	/* %n right after the inode: a " %n" would skip the newline into the next line. */
	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &off, &maj,
		   &min, &inode, &pathpos) < 7 || pathpos <= 0)
		return -EINVAL;
	if (memchr(line, '\n', (size_t)pathpos))
		return -EINVAL; /* the fields ran over a line break */
	while (line[pathpos] == ' ' || line[pathpos] == '\t')
		pathpos++;
	if (end < start || strlen(perms) < 4)
		return -EINVAL;
	m->start = start;
	m->end = end;
	m->offset = off;
	m->r = perms[0] == 'r';
	m->w = perms[1] == 'w';
	m->x = perms[2] == 'x';
	m->shared = perms[3] == 's';
	m->dev_major = maj;
	m->dev_minor = min;
	m->inode = inode;
	if (pathpos > 0 && line[pathpos] && line[pathpos] != '\n') {
		size_t n = strcspn(line + pathpos, "\n");

		m->path = ms_xmalloc(n + 1);
		memcpy(m->path, line + pathpos, n);
		m->path[n] = '\0';
	}
	return 0;
}

int ms_maps_parse(const char *text, struct ms_maps *out)
{
	size_t cap = 0;
	const char *line = text;

	memset(out, 0, sizeof(*out));
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		struct ms_map m;

		if (*line != '\n') {
			if (parse_line(line, &m) != 0) {
				ms_maps_free(out);
				return -EINVAL;
			}
			/* The kernel prints maps sorted and disjoint; refuse anything else. */
			if (out->n && m.start < out->v[out->n - 1].end) {
				free(m.path);
				ms_maps_free(out);
				return -EINVAL;
			}
			ms_xgrow((void **)&out->v, &cap, out->n + 1, sizeof(*out->v));
			out->v[out->n++] = m;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

int ms_maps_read(pid_t pid, struct ms_maps *out)
{
	char path[64], *text = NULL;
	size_t len = 0, cap = 0;
	int fd, r;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		ms_xgrow((void **)&text, &cap, len + 65536 + 1, 1);
		n = read(fd, text + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			free(text);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	r = ms_maps_parse(text, out);
	free(text);
	return r;
}

const struct ms_map *ms_maps_find(const struct ms_maps *maps, ms_raddr_t addr)
{
	size_t lo = 0, hi = maps->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct ms_map *m = &maps->v[mid];

		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

void ms_maps_free(struct ms_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++)
		free(maps->v[i].path);
	free(maps->v);
	maps->v = NULL;
	maps->n = 0;
}
