// SPDX-License-Identifier: MIT
/*
 * unwind/perfmap: names for code that no file backs, from the process's
 * /tmp/perf-PID.map. JIT runtimes write one line per function they
 * generate, "START SIZE name" (hex, no 0x), when asked to for perf: node
 * --perf-basic-prof, python3.12 -X perf, the JVM through perf-map-agent or
 * -XX:+DumpPerfMapAtExit, LuaJIT, .NET (DOTNET_PerfMapEnabled=1). Without
 * it such frames can only be "[unknown]".
 *
 * The file is the target's: it can hold anything, be huge, be a symlink or
 * a FIFO, or be rewritten while memspy reads it. So it is opened without
 * following a symlink and without blocking, kept only as a regular file
 * owned by the process's user (or root, as perf asks), read up to
 * PERFMAP_MAX_BYTES, and parsed line by line; a line that does not parse is
 * skipped. Names are kept with control characters made '?' (they reach
 * terminals through top). The file is appended to as the runtime compiles;
 * memspy reads what is new when the file has grown (from the last whole
 * line), and all of it again when it shrank or was replaced. When code
 * space is reused the later line names the address, as in perf.
 */
#include "unwind/unwind_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PERFMAP_MAX_BYTES   (256u << 20) /* node's map of a busy service reaches tens of MiB */
#define PERFMAP_MAX_ENTRIES (4u << 20)
#define PERFMAP_MAX_LINE    4096 /* longer lines are skipped */
#define PERFMAP_OVERLAP	    64	 /* entries looked at below a lookup's place (reused code space) */

struct perfmap_entry {
	uint64_t start, end;
	size_t seq;  /* line number: the later line wins */
	char *name;
};

struct ms_perfmap {
	pid_t pid;
	char path[96];	 /* /proc/PID/root/tmp/perf-NSPID.map */
	char module[48]; /* "perf-NSPID.map", the frames' module */
	dev_t dev;
	ino_t ino;
	off_t parsed; /* bytes read up to the end of the last whole line */
	struct perfmap_entry *v;
	size_t n, cap, seq;
	bool sorted;
	bool full; /* PERFMAP_MAX_* reached */
};

/* pid as its own pid namespace numbers it (the last NSpid field), else pid. */
static pid_t ns_pid(pid_t pid)
{
	char path[64], buf[8192];
	const char *p;
	ssize_t n;
	int fd;
	long v = pid;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pid;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return pid;
	buf[n] = '\0';
	p = strstr(buf, "\nNSpid:");
	if (p) {
		char *end;

		p += 7;
		for (;;) {
			long x = strtol(p, &end, 10);

			if (end == p)
				break;
			v = x;
			p = end;
		}
	}
	return v > 0 ? (pid_t)v : pid;
}

struct ms_perfmap *ms_perfmap_new(pid_t pid)
{
	struct ms_perfmap *m = ms_xcalloc(1, sizeof(*m));
	pid_t nspid = ns_pid(pid);

	m->pid = pid;
	snprintf(m->path, sizeof(m->path), "/proc/%d/root/tmp/perf-%d.map", (int)pid, (int)nspid);
	snprintf(m->module, sizeof(m->module), "perf-%d.map", (int)nspid);
	return m;
}

static void clear(struct ms_perfmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].name);
	m->n = 0;
	m->parsed = 0;
	m->full = false;
	m->sorted = true;
}

void ms_perfmap_free(struct ms_perfmap *m)
{
	if (!m)
		return;
	clear(m);
	free(m->v);
	free(m);
}

/* "START SIZE name": 0 and the entry filled, or -1. line is NUL-terminated, no newline. */
static int parse_line(char *line, struct perfmap_entry *e)
{
	char *p = line, *end;
	unsigned long long start, size;

	errno = 0;
	start = strtoull(p, &end, 16);
	if (end == p || *end != ' ' || errno)
		return -1;
	p = end + 1;
	size = strtoull(p, &end, 16);
	if (end == p || *end != ' ' || errno || !size || start + size < start)
		return -1;
	p = end + 1;
	if (!*p)
		return -1;
	for (char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	e->start = start;
	e->end = start + size;
	e->name = ms_xstrdup(p);
	return 0;
}

static void add_lines(struct ms_perfmap *m, char *buf, size_t len, size_t *used)
{
	size_t at = 0;

	while (at < len) {
		char *nl = memchr(buf + at, '\n', len - at);
		size_t l;
		struct perfmap_entry e;

		if (!nl)
			break; /* a line still being written: read again next time */
		l = (size_t)(nl - (buf + at));
		*nl = '\0';
		if (l && buf[at + l - 1] == '\r')
			buf[at + l - 1] = '\0';
		if (l < PERFMAP_MAX_LINE && m->n < PERFMAP_MAX_ENTRIES && parse_line(buf + at, &e) == 0) {
			e.seq = m->seq++;
			ms_xgrow((void **)&m->v, &m->cap, m->n + 1, sizeof(*m->v));
			if (m->n && e.start < m->v[m->n - 1].start)
				m->sorted = false;
			m->v[m->n++] = e;
		} else if (m->n >= PERFMAP_MAX_ENTRIES) {
			m->full = true;
		}
		at += l + 1;
	}
	*used = at;
}

static int by_start_then_seq(const void *a, const void *b)
{
	const struct perfmap_entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The process's user: the owner of /proc/PID (its effective uid while it is dumpable). */
static int target_uid(pid_t pid, uid_t *uid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st))
		return -1;
	*uid = st.st_uid;
	return 0;
}

/* Reads what is new in the file. 0, or -1 when there is no usable file. */
static int update(struct ms_perfmap *m)
{
	struct stat st;
	uid_t uid;
	char *buf;
	size_t want, got = 0, used = 0;
	int fd = open(m->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || target_uid(m->pid, &uid) ||
	    (st.st_uid != uid && st.st_uid != 0)) {
		close(fd);
		return -1;
	}
	if (st.st_dev != m->dev || st.st_ino != m->ino || st.st_size < m->parsed) {
		clear(m); /* replaced or cut: all of it again */
		m->dev = st.st_dev;
		m->ino = st.st_ino;
	}
	if (st.st_size <= m->parsed || m->parsed >= (off_t)PERFMAP_MAX_BYTES || m->full) {
		close(fd);
		return 0;
	}
	want = (size_t)st.st_size - (size_t)m->parsed;
	if (want > PERFMAP_MAX_BYTES - (size_t)m->parsed)
		want = PERFMAP_MAX_BYTES - (size_t)m->parsed;
	buf = ms_xmalloc(want + 1);
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, m->parsed + (off_t)got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	add_lines(m, buf, got, &used);
	free(buf);
	m->parsed += (off_t)used;
	if (!m->sorted) {
		qsort(m->v, m->n, sizeof(*m->v), by_start_then_seq);
		m->sorted = true;
	}
	return 0;
}

const char *ms_perfmap_lookup(struct ms_perfmap *m, uint64_t pc)
{
	size_t lo = 0, hi, best = SIZE_MAX;

	if (!m || update(m) || !m->n)
		return NULL;
	/* the last entry starting at or below pc */
	hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, k = 0; i-- > 0 && k < PERFMAP_OVERLAP; k++)
		if (pc < m->v[i].end && (best == SIZE_MAX || m->v[i].seq > m->v[best].seq))
			best = i;
	return best == SIZE_MAX ? NULL : m->v[best].name;
}

const char *ms_perfmap_module(const struct ms_perfmap *m)
{
	return m->module;
}
