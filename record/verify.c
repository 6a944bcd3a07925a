// SPDX-License-Identifier: MIT
/*
 * record: after detach, proves the target's code is as the file says
 * by reading every executable mapping of each probed module back.
 */
#include "record/record.h"
#include "attach/attach.h"
#include "attach/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static bool module_probed(const struct ms_module *m, const char **names, size_t n)
{
	const char *base = base_name(m->path);

	for (size_t i = 0; i < n; i++) {
		const char *at = strrchr(names[i], '@');

		if (at && !strcmp(at + 1, base))
			return true;
	}
	return false;
}

/*
 * Compares one executable mapping with the file. 0 same, -EIO differs
 * (*diff = first address), other negative: could not read.
 */
static int compare_map(pid_t pid, int fd, const struct ms_map *map, uint8_t *live, uint8_t *file,
		       ms_raddr_t *diff, uint64_t *checked)
{
	for (ms_raddr_t a = map->start; a < map->end; a += CHUNK) {
		size_t len = MS_MIN((size_t)CHUNK, (size_t)(map->end - a));
		ssize_t nf = pread(fd, file, len, (off_t)(map->offset + (a - map->start)));
		ssize_t nl;

		if (nf < 0)
			return -errno;
		if (nf == 0)
			break; /* past the end of the file: the kernel maps zeroes */
		nl = ms_mem_read_pid(pid, a, live, (size_t)nf);
		if (nl < 0)
			return (int)nl;
		if (nl < nf)
			return -EFAULT;
		if (memcmp(live, file, (size_t)nf)) {
			for (ssize_t i = 0; i < nf; i++) {
				if (live[i] != file[i]) {
					*diff = a + (ms_raddr_t)i;
					break;
				}
			}
			return -EIO;
		}
		*checked += (uint64_t)nf;
	}
	return 0;
}

int ms_rec_verify_text(pid_t pid, const struct ms_modules *mods, struct ms_probes *pr, char **note)
{
	const char **names = NULL;
	size_t nnames = pr ? ms_probes_sites(pr, &names) : 0;
	struct ms_maps maps = {0};
	uint8_t *live = ms_xmalloc(CHUNK), *file = ms_xmalloc(CHUNK);
	char *list = ms_xstrdup("");
	uint64_t checked = 0;
	int rc;

	*note = NULL;
	rc = ms_maps_read(pid, &maps, NULL);
	if (rc) {
		*note = ms_xasprintf("could not verify the code after detach: reading "
				     "/proc/%d/maps: %s",
				     (int)pid, ms_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < mods->n; i++) {
		const struct ms_module *m = &mods->v[i];
		int fd;

		if (!m->path || !module_probed(m, names, nnames))
			continue;
		fd = ms_module_open(m);
		if (fd < 0) {
			rc = fd;
			*note = ms_xasprintf("could not verify %s after detach: open %s: %s",
					     base_name(m->path), m->open_path, ms_strerror(rc));
			goto out;
		}
		for (size_t k = 0; k < maps.n && !rc; k++) {
			const struct ms_map *map = &maps.v[k];
			ms_raddr_t diff = 0;

			if (!map->x || !map->path || strcmp(map->path, m->path))
				continue;
			rc = compare_map(pid, fd, map, live, file, &diff, &checked);
			if (rc == -EIO)
				*note = ms_xasprintf(
				    "after detach, the code of %s differs from the "
				    "file at 0x%llx (%s+0x%llx): a probe was not "
				    "restored",
				    base_name(m->path), (unsigned long long)diff,
				    base_name(m->path), (unsigned long long)(diff - m->bias));
			else if (rc)
				*note = ms_xasprintf("could not verify %s after detach: %s",
						     base_name(m->path), ms_strerror(rc));
		}
		close(fd);
		if (rc)
			goto out;
		{
			char *l =
			    ms_xasprintf("%s%s%s", list, *list ? ", " : "", base_name(m->path));

			free(list);
			list = l;
		}
	}
	*note = ms_xasprintf("verified after detach: the code of %s (%.1f MiB) is "
			     "byte-identical to the file%s",
			     *list ? list : "(no module)", (double)checked / (1024.0 * 1024),
			     *list ? "" : "s");
out:
	ms_maps_free(&maps);
	free(live);
	free(file);
	free(list);
	return rc;
}
