// SPDX-License-Identifier: MIT
/* The mapping table: /proc/PID/maps parsed into a sorted array. */
#include "attach/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static int parse_line(const char *line, struct ms_map *m)
{
	unsigned long long start, end, off, inode;
	unsigned int maj, min;
	char perms[8], head[256];
	size_t hl = strcspn(line, "\n");
	int pathpos = 0;

	memset(m, 0, sizeof(*m));
	/*
	 * sscanf on a copy of the line's start: glibc's sscanf takes the
	 * length of the whole string it is given, i.e. of the rest of the
	 * file, so parsing line by line in place was quadratic (a 30 MB maps
	 * of 8,000 lines took most of a minute). The fields before the path
	 * take under 110 bytes.
	 */
	hl = MS_MIN(hl, sizeof(head) - 1);
	memcpy(head, line, hl);
	head[hl] = '\0';
	/* %n right after the inode: a " %n" would skip the newline into the next line. */
	if (sscanf(head, "%llx-%llx %7s %llx %x:%x %llu%n", &start, &end, perms, &off, &maj,
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
			/*
			 * A consistent table is sorted and disjoint; a line that
			 * starts below the previous end is a read that raced with
			 * a change of the mappings (see ms_maps_read_from).
			 */
			if (out->n && m.start < out->v[out->n - 1].end) {
				free(m.path);
				ms_maps_free(out);
				return -EAGAIN;
			}
			ms_xgrow((void **)&out->v, &cap, out->n + 1, sizeof(*out->v));
			out->v[out->n++] = m;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

/*
 * Test hook (tests/e2e/maps_e2e.py): MEMSPY_TEST_MAPS_TORN=N makes the first
 * N reads of any /proc/PID/maps in this memspy look torn, as the kernel's
 * can on Linux >= 6.17 (the first mapping printed again at the end), so the
 * callers' handling of a racing read is tested on every kernel.
 */
static void test_tear(char **text, size_t *len)
{
	static long left = -1;
	const char *v;
	size_t n;

	if (left < 0) {
		v = getenv("MEMSPY_TEST_MAPS_TORN");
		left = v ? strtol(v, NULL, 10) : 0;
		if (left < 0)
			left = 0;
	}
	if (!left || !*len)
		return;
	left--;
	n = strcspn(*text, "\n") + 1;
	if (n > *len)
		return;
	*text = ms_xrealloc(*text, *len + n + 1);
	memcpy(*text + *len, *text, n);
	*len += n;
	(*text)[*len] = '\0';
}

/*
 * The most one read of maps may take. The kernel caps a process at
 * vm.max_map_count mappings (65,530 by default), but each line holds a path
 * of up to PATH_MAX the process chose: ~270 MB in the worst case, read
 * again every 2 s by record. 64 MiB is 1 KiB per line at the default
 * count, and no real process comes near (65,530 mappings of 100-byte paths
 * is 11 MB); a larger file is refused (-EFBIG), not read in part.
 */
#define MS_MAPS_MAX (64u << 20)

/* One read of the kernel's file, whole: the text of a struct ms_maps_source. */
static int read_proc(void *ctx, char **out)
{
	pid_t pid = *(const pid_t *)ctx;
	char path[64], *text = NULL;
	size_t len = 0, cap = 0;
	int fd, r;

	*out = NULL;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (len >= MS_MAPS_MAX) {
			close(fd);
			free(text);
			return -EFBIG;
		}
		ms_xgrow((void **)&text, &cap, MS_MIN(len + 65536, (size_t)MS_MAPS_MAX) + 1, 1);
		n = read(fd, text + len, MS_MIN(cap - len - 1, (size_t)MS_MAPS_MAX - len));
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
	test_tear(&text, &len);
	*out = text;
	return 0;
}

/*
 * Since Linux 6.17 the kernel prints /proc/PID/maps under per-VMA locks,
 * not the mmap lock: while a thread grows its arena's heap, one read() can
 * print a mapping and then the same mapping again, grown
 * ("7f69e8000000-7f69e81f4000" then "7f69e8000000-7f69e8289000"). Such a
 * read is one moment of a race, not the process: it is read again, the
 * first few times at once, then after a millisecond (the target is in the
 * middle of a burst of mmap/mprotect). 20 reads cover a process whose every
 * other read is torn; beyond that the caller hears why, never an empty table.
 * Each line is still a mapping as it was at some moment of the read: a
 * table that passes is sorted and disjoint, and a mapping that existed
 * through the whole read is in it, but a short-lived one may be missing,
 * so verdicts about the process read with every thread stopped
 * (ms_proc_refresh_maps_stopped).
 */
#define MAPS_TRIES 20
#define MAPS_TRIES_AT_ONCE 4

int ms_maps_read_from(pid_t pid, const struct ms_maps_source *src, struct ms_maps *out,
		      struct ms_error *err)
{
	int r = 0, torn = 0;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < MAPS_TRIES; i++) {
		char *text = NULL;

		if (i >= MAPS_TRIES_AT_ONCE) {
			struct timespec ts = {0, 1000000};

			nanosleep(&ts, NULL);
		}
		r = src->read(src->ctx, &text);
		if (r == -EFBIG) {
			ms_error_set(err, r,
				     "attach: /proc/%d/maps is larger than %u MiB, the most memspy "
				     "reads: process %d has more mappings, or longer file paths, "
				     "than memspy handles",
				     (int)pid, MS_MAPS_MAX >> 20, (int)pid);
			ms_error_hint(err, "count them with `wc -l /proc/%d/maps`", (int)pid);
			return r;
		}
		if (r < 0) {
			ms_error_set(err, r, "attach: reading /proc/%d/maps: %s", (int)pid,
				     ms_strerror(r));
			if (r == -ENOENT || r == -ESRCH)
				ms_error_hint(err, "process %d no longer exists", (int)pid);
			return r;
		}
		r = ms_maps_parse(text, out);
		free(text);
		if (r == -EAGAIN) {
			torn++;
			continue;
		}
		if (r < 0)
			return ms_error_set(err, r,
					    "attach: /proc/%d/maps has a line memspy cannot parse",
					    (int)pid);
		if (out->n == 0) {
			/* Only a process without an address space prints nothing. */
			ms_error_set(err, -ESRCH,
				     "attach: /proc/%d/maps is empty: process %d has no memory "
				     "left (it is exiting)",
				     (int)pid, (int)pid);
			return -ESRCH;
		}
		if (torn)
			ms_debug("attach: /proc/%d/maps: %d torn read%s before a consistent one",
				 (int)pid, torn, torn == 1 ? "" : "s");
		return 0;
	}
	ms_error_set(err, -MS_E_MAPS_UNSTABLE,
		     "attach: reading /proc/%d/maps: the kernel's maps file kept changing while "
		     "memspy read it (%d reads in a row showed overlapping or out-of-order "
		     "mappings)",
		     (int)pid, MAPS_TRIES);
	ms_error_hint(err, "process %d was mapping or growing memory during every read (on "
			   "Linux >= 6.17 maps is not read atomically); run the command again, "
			   "or when the process is less busy",
		      (int)pid);
	return -MS_E_MAPS_UNSTABLE;
}

int ms_maps_read(pid_t pid, struct ms_maps *out, struct ms_error *err)
{
	struct ms_maps_source src = {.read = read_proc, .ctx = &pid};

	return ms_maps_read_from(pid, &src, out, err);
}

/* A mapping's file, opened for reading: attach.h. */
int ms_open_target_file(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/*
 * Is the file open at fd (st: its fstat) the inode maps names (maj:min
 * inode)? Device and inode must be equal, except where stat cannot show
 * the device maps prints: btrfs (stat shows a subvolume's anonymous device,
 * maps the filesystem's) and overlayfs (stat shows the overlay's device,
 * maps the layer's, and with xino the layer's number in the inode's top
 * bits). There the inode number alone is compared, its low 48 bits on
 * overlayfs.
 */
static bool same_inode(int fd, const struct stat *st, const struct ms_map *m)
{
	struct statfs sf;

	if (major(st->st_dev) == m->dev_major && minor(st->st_dev) == m->dev_minor &&
	    (uint64_t)st->st_ino == m->inode)
		return true;
	if (fstatfs(fd, &sf) != 0)
		return false;
	if ((uint32_t)sf.f_type == (uint32_t)BTRFS_SUPER_MAGIC)
		return (uint64_t)st->st_ino == m->inode;
	if ((uint32_t)sf.f_type == (uint32_t)OVERLAYFS_SUPER_MAGIC)
		return ((uint64_t)st->st_ino & ((1ull << 48) - 1)) == m->inode;
	return false;
}

/*
 * Says once per mapped inode that the file at its path is another one: the
 * symbols, unwind tables and code of that module would be the new file's.
 * Up to 64 inodes are remembered; past that a module may be named again.
 */
static void warn_replaced(const char *path, const struct ms_map *m, const struct stat *st)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct {
		uint32_t maj, min;
		uint64_t ino;
	} seen[64];
	static size_t nseen;
	bool said = false;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nseen && !said; i++)
		said = seen[i].maj == m->dev_major && seen[i].min == m->dev_minor &&
		       seen[i].ino == m->inode;
	if (!said && nseen < MS_ARRAY_SIZE(seen)) {
		seen[nseen].maj = m->dev_major;
		seen[nseen].min = m->dev_minor;
		seen[nseen++].ino = m->inode;
	}
	pthread_mutex_unlock(&lock);
	if (said)
		return;
	ms_warn("%s is not the file the process mapped (replaced on disk since: the mapping is "
		"device %u:%u inode %" PRIu64 ", the path now device %u:%u inode %" PRIu64
		"); memspy does not read it, and the module's frames have no symbols",
		path, m->dev_major, m->dev_minor, m->inode, major(st->st_dev), minor(st->st_dev),
		(uint64_t)st->st_ino);
}

int ms_open_target_file_as(const char *path, const struct ms_map *m)
{
	struct stat st;
	int fd = ms_open_target_file(path);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (!same_inode(fd, &st, m)) {
		warn_replaced(path, m, &st);
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int ms_open_mapped_file(pid_t pid, const struct ms_map *m, bool *via_root, char **path)
{
	static const char deleted[] = " (deleted)";
	char p[PATH_MAX + 64];
	size_t n;
	int fd;

	if (via_root)
		*via_root = false;
	if (path)
		*path = NULL;
	snprintf(p, sizeof(p), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start,
		 m->end);
	fd = ms_open_target_file(p);
	if (fd >= 0 && path)
		*path = ms_xstrdup(p);
	if (fd >= 0 || !m->path || m->path[0] != '/')
		return fd >= 0 ? fd : -ENOENT;
	if (via_root)
		*via_root = true;
	/* A deleted file's path names what is there now, if anything: checked as any other. */
	n = strlen(m->path);
	if (n > sizeof(deleted) - 1 && !strcmp(m->path + n - (sizeof(deleted) - 1), deleted))
		n -= sizeof(deleted) - 1;
	if (snprintf(p, sizeof(p), "/proc/%d/root%.*s", (int)pid, (int)n, m->path) >=
	    (int)sizeof(p))
		return -ENAMETOOLONG;
	fd = ms_open_target_file_as(p, m);
	if (fd >= 0 && path)
		*path = ms_xstrdup(p);
	return fd;
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
