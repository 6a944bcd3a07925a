// SPDX-License-Identifier: MIT
/* Resident memory of the heap mappings and of all anonymous memory, from /proc/PID/smaps. */
#include "heapwalk/heapwalk_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool heap_vma(const struct ms_heap_report *rep, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; rep && i < rep->nsegs; i++)
		if (rep->segs[i].start < hi && rep->segs[i].end > lo)
			return true;
	return false;
}

/*
 * One read of smaps. -EAGAIN when a mapping starts below the previous one's
 * end: on Linux >= 6.17 smaps, like maps, is printed under per-VMA locks, so
 * a read racing with a growing arena can print a mapping twice (its RSS
 * counted twice); such a read is done again (ms_heap_smaps).
 */
int ms_heap_smaps_parse(FILE *f, const struct ms_heap_report *rep, struct ms_heap_rss *out)
{
	char line[4200];
	uint64_t lo = 0, hi = 0;
	bool is_heap = false, is_anon = false, cont = false;

	memset(out, 0, sizeof(*out));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b, kb;
		char name[64];
		int pathpos = 0;
		/*
		 * A mapping's line ends in its file's path, which the target
		 * names (up to PATH_MAX): the rest of a line longer than the
		 * buffer is skipped, never read as a line of its own (a path
		 * could end in "Rss: 999999999 kB" or in a mapping header).
		 */
		bool was_cont = cont;

		cont = !strchr(line, '\n') && !feof(f);
		if (was_cont)
			continue;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &a, &b, &pathpos) == 2 &&
		    pathpos > 0) {
			const char *p = line + pathpos;

			if (a < hi || b < a) {
				memset(out, 0, sizeof(*out));
				return -EAGAIN;
			}
			lo = a;
			hi = b;
			is_heap = heap_vma(rep, lo, hi);
			is_anon = *p == '\n' || *p == '\0' || !strncmp(p, "[heap]", 6) ||
				  !strncmp(p, "[stack", 6) || !strncmp(p, "[anon", 5);
			if (is_heap)
				out->heap_size += hi - lo;
			if (is_anon)
				out->anon_size += hi - lo;
			continue;
		}
		if (sscanf(line, "%63[^:]: %llu kB", name, &kb) != 2)
			continue;
		kb *= 1024;
		if (!strcmp(name, "Rss")) {
			out->total_rss += kb;
			if (is_heap)
				out->heap_rss += kb;
			if (is_anon)
				out->anon_rss += kb;
		} else if (!strcmp(name, "Anonymous") && is_heap) {
			out->heap_anon += kb;
		} else if (!strcmp(name, "Swap") && is_heap) {
			out->heap_swap += kb;
		}
	}
	out->valid = true;
	return 0;
}

static int read_smaps(pid_t pid, const struct ms_heap_report *rep, struct ms_heap_rss *out)
{
	char path[64];
	FILE *f;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	r = ms_heap_smaps_parse(f, rep, out);
	fclose(f);
	return r;
}

int ms_heap_smaps(pid_t pid, const struct ms_heap_report *rep, struct ms_heap_rss *out)
{
	int r = -EAGAIN;

	/* Bounded as maps reads are; an unstable file leaves the figures out (valid false). */
	for (int i = 0; i < 20 && r == -EAGAIN; i++)
		r = read_smaps(pid, rep, out);
	return r == -EAGAIN ? -MS_E_MAPS_UNSTABLE : r;
}
