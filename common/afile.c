// SPDX-License-Identifier: MIT
/*
 * Atomically written output files: write to a temporary file in the same
 * directory, rename over the final name when complete. Opening the
 * temporary file early is also how memspy finds an unwritable output path
 * before it attaches to anything.
 */
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * A memspy killed by SIGKILL (or a power cut) cannot remove its temporary
 * file. Each writer holds an flock on its own from creation to rename, and
 * the kernel drops that lock when the writer dies: so the next memspy that
 * writes the same name removes the PATH.tmp.XXXXXX files it can lock, when
 * they are also over a minute old (a writer between mkstemp and flock, a
 * moment, is never taken for dead). Returns how many it removed.
 */
static int remove_stale_tmp(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? ms_xasprintf("%.*s", (int)(slash - path + 1), path) : ms_xstrdup(".");
	const char *base = slash ? slash + 1 : path;
	size_t blen = strlen(base);
	time_t now = time(NULL);
	struct dirent *de;
	int removed = 0;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d))) {
		struct stat st;
		char *full;
		int fd;

		if (strncmp(de->d_name, base, blen) || strncmp(de->d_name + blen, ".tmp.", 5) ||
		    strlen(de->d_name + blen + 5) != 6)
			continue;
		full = ms_xasprintf("%s%s%s", dir, slash ? "" : "/", de->d_name);
		fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_uid == geteuid() && now - st.st_mtime > 60 &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(full) == 0) {
			removed++;
			ms_warn("output: removed %s, a temporary file left by a memspy killed while "
				    "writing", full);
		}
		if (fd >= 0)
			close(fd);
		free(full);
	}
	if (d)
		closedir(d);
	free(dir);
	return removed;
}

int ms_afile_open(struct ms_afile *af, const char *path, struct ms_error *err)
{
	struct stat st;
	bool exists;
	int fd, e;

	memset(af, 0, sizeof(*af));
	if (!path || !*path)
		return ms_error_set(err, -EINVAL, "output: empty file name");
	exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode)) {
		ms_error_set(err, -EISDIR, "output: %s is a directory", path);
		ms_error_hint(err, "name a file, e.g. -o %s/memspy.svg", path);
		return -EISDIR;
	}
	/*
	 * /dev/null, /dev/stdout, a FIFO, a terminal: written in place. A
	 * rename over them would replace the device node with a regular file
	 * (run as root, `-o /dev/null` left the machine without /dev/null).
	 * Nothing to make atomic there, and nothing to remove on failure.
	 */
	if (exists && !S_ISREG(st.st_mode)) {
		fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
		if (fd < 0) {
			e = errno;
			ms_error_set(err, -e, "output: cannot open %s: %s", path, strerror(e));
			return -e;
		}
		af->fp = fdopen(fd, "w");
		af->path = ms_xstrdup(path);
		return 0;
	}
	remove_stale_tmp(path);
	af->tmp_path = ms_xasprintf("%s.tmp.XXXXXX", path);
	fd = mkstemp(af->tmp_path);
	if (fd < 0) {
		e = errno;
		ms_error_set(err, -e, "output: cannot create %s: %s", path, strerror(e));
		if (e == ENOENT)
			ms_error_hint(err, "the directory of %s does not exist; create it or choose "
					   "another -o path", path);
		else if (e == EACCES || e == EPERM || e == EROFS)
			ms_error_hint(err, "the directory of %s is not writable by memspy; choose "
					   "another -o path (e.g. under /tmp)", path);
		free(af->tmp_path);
		af->tmp_path = NULL;
		return -e;
	}
	/* Held until the file is renamed or removed: the kernel drops it if memspy dies. */
	flock(fd, LOCK_EX | LOCK_NB);
	/* mkstemp creates 0600; output files are ordinary, readable ones. */
	fchmod(fd, 0644);
	af->fp = fdopen(fd, "w");
	af->path = ms_xstrdup(path);
	return 0;
}

int ms_afile_commit(struct ms_afile *af, struct ms_error *err)
{
	int e = 0;

	if (!af->fp)
		return ms_error_set(err, -EBADF, "output: %s was not open", af->path ? af->path : "?");
	/* fsync is for a file to rename; a device or pipe (no tmp_path) may refuse it. */
	if (fflush(af->fp) != 0 || ferror(af->fp) || (af->tmp_path && fsync(fileno(af->fp)) != 0))
		e = errno ? errno : EIO;
	if (fclose(af->fp) != 0 && !e)
		e = errno;
	af->fp = NULL;
	if (!e && af->tmp_path && rename(af->tmp_path, af->path) != 0)
		e = errno;
	if (e) {
		ms_error_set(err, -e, "output: writing %s failed: %s", af->path, strerror(e));
		if (e == ENOSPC)
			ms_error_hint(err, "the file system is full; free space or write elsewhere");
		if (af->tmp_path)
			unlink(af->tmp_path);
	}
	free(af->tmp_path);
	free(af->path);
	af->tmp_path = af->path = NULL;
	return e ? -e : 0;
}

void ms_afile_abort(struct ms_afile *af)
{
	if (af->fp)
		fclose(af->fp);
	if (af->tmp_path)
		unlink(af->tmp_path);
	free(af->tmp_path);
	free(af->path);
	memset(af, 0, sizeof(*af));
}
