// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: memspy's parsers of /proc text. The kernel writes those
 * files, but the target names the things in them (its files' paths in maps
 * and smaps, its comm in stat and status), and a later kernel may print
 * them differently. Fuzzed:
 *   maps    ms_maps_parse: a table it accepts is sorted and disjoint, each
 *           start <= end, no path holds a newline, ms_maps_find finds only
 *           mappings that hold the address;
 *   status, stat, self/status, yama ptrace_scope: ms_diag_gather on a
 *           fixture /proc tree (as tests/unit's diagnoses use), then the
 *           messages built from those facts (precheck, EPERM): the names
 *           copied from the target are NUL-terminated within their fields
 *           and hold no control character (they go to a terminal);
 *   smaps   ms_heap_smaps_parse: heap and anonymous sizes never exceed the
 *           sum of the mappings' sizes.
 *
 * Input: parts separated by "\n--\n" in that order: maps, PID/status,
 * PID/stat, self/status, ptrace_scope, smaps.
 */
#include "attach/attach_int.h"
#include "heapwalk/heapwalk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_proc: " __VA_ARGS__);                                        \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

#define NPARTS 6
#define PID    4242

static char root[64];

static const char *const fixture_files[] = {"4242/status", "4242/stat", "self/status",
					      "sys/kernel/yama/ptrace_scope", "sys/kernel/yama",
					      "sys/kernel", "sys", "self", "4242", ""};

/* The fixture tree goes when the fuzzer ends (files, then directories). */
static void remove_fixture(void)
{
	char p[160];

	for (size_t i = 0; i < sizeof(fixture_files) / sizeof(*fixture_files); i++) {
		snprintf(p, sizeof(p), "%s/%s", root, fixture_files[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
}

static void setup(void)
{
	char p[128];

	snprintf(root, sizeof(root), "/dev/shm/memspy-fuzz-proc-%d", (int)getpid());
	mkdir(root, 0700);
	snprintf(p, sizeof(p), "%s/%d", root, PID);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/self", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/sys", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/sys/kernel", root);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/sys/kernel/yama", root);
	mkdir(p, 0700);
	atexit(remove_fixture);
}

static void put(const char *rel, const char *text, size_t n)
{
	char p[160];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	if (!f)
		FAIL("cannot write the fixture %s", p);
	fwrite(text, 1, n, f);
	fclose(f);
}

static void check_maps(const char *text)
{
	struct ms_maps m;
	int r = ms_maps_parse(text, &m);

	if (r != 0) {
		if (r != -EINVAL && r != -EAGAIN)
			FAIL("maps: unexpected code %d", r);
		if (m.n || m.v)
			FAIL("maps: a refused table is not empty");
		return;
	}
	for (size_t i = 0; i < m.n; i++) {
		const struct ms_map *e = &m.v[i];

		if (e->end < e->start)
			FAIL("maps: mapping %zu ends before it starts", i);
		if (i && e->start < m.v[i - 1].end)
			FAIL("maps: mapping %zu overlaps the one before", i);
		if (e->path && strchr(e->path, '\n'))
			FAIL("maps: mapping %zu's path holds a newline", i);
		if (e->start < e->end) {
			const struct ms_map *f = ms_maps_find(&m, e->start + (e->end - e->start) / 2);

			if (f != e)
				FAIL("maps: ms_maps_find misses mapping %zu", i);
		}
		if (e->end && ms_maps_find(&m, e->end - 1) &&
		    !(ms_maps_find(&m, e->end - 1)->start <= e->end - 1 &&
		      e->end - 1 < ms_maps_find(&m, e->end - 1)->end))
			FAIL("maps: ms_maps_find returned a mapping without the address");
	}
	ms_maps_free(&m);
}

static void check_diag(void)
{
	struct ms_diag_facts f;
	struct ms_error err;

	ms_diag_gather(root, PID, PID + 1, &f);
	if (!memchr(f.comm, 0, sizeof(f.comm)) || !memchr(f.tracer_comm, 0, sizeof(f.tracer_comm)))
		FAIL("diag: a name copied from status is not terminated in its field");
	for (const char *c = f.comm; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			FAIL("diag: the target's name holds control character %#x", *c);
	for (const char *c = f.tracer_comm; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			FAIL("diag: the tracer's name holds control character %#x", *c);
	memset(&err, 0, sizeof(err));
	ms_diag_precheck(&f, "attach", &err);
	if (!memchr(err.msg, 0, sizeof(err.msg)) || !memchr(err.hint, 0, sizeof(err.hint)))
		FAIL("diag: precheck's message is not terminated");
	memset(&err, 0, sizeof(err));
	ms_diag_seize_error(&f, "attach", -EPERM, &err);
	if (!memchr(err.msg, 0, sizeof(err.msg)) || !memchr(err.hint, 0, sizeof(err.hint)))
		FAIL("diag: the EPERM message is not terminated");
	memset(&err, 0, sizeof(err));
	ms_diag_seize_error(&f, "attach", -ESRCH, &err);
}

/*
 * Rss summed over whole lines, however long (getline): what the parser must
 * find too. The kernel's lines end in a path the target names, up to
 * PATH_MAX, longer than the parser's line buffer.
 */
static unsigned long long rss_reference(const char *text, size_t n)
{
	FILE *in = fmemopen((void *)text, n ? n : 1, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned long long total = 0;

	if (!in)
		abort();
	while (getline(&line, &cap, in) >= 0) {
		unsigned long long a, b, kb;
		char name[64];
		int pathpos = 0;

		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &a, &b, &pathpos) == 2 &&
		    pathpos > 0)
			continue;
		if (sscanf(line, "%63[^:]: %llu kB", name, &kb) == 2 && !strcmp(name, "Rss"))
			total += kb * 1024;
	}
	free(line);
	fclose(in);
	return total;
}

static void check_smaps(const char *text, size_t n)
{
	struct ms_heap_segment seg = {0};
	struct ms_heap_report rep = {0};
	struct ms_heap_rss rss;
	FILE *in = fmemopen((void *)text, n ? n : 1, "r");
	int r;

	if (!in)
		abort();
	seg.start = 0x1000;
	seg.end = 0x7fffffffffffull;
	rep.segs = &seg;
	rep.nsegs = 1;
	r = ms_heap_smaps_parse(in, &rep, &rss);
	fclose(in);
	if (r != 0 && r != -EAGAIN)
		FAIL("smaps: unexpected code %d", r);
	if (r == 0 && !rss.valid)
		FAIL("smaps: a read that succeeded is not valid");
	if (r == 0 && rss.total_rss != rss_reference(text, n))
		FAIL("smaps: Rss %llu B, but the whole lines say %llu B",
		     (unsigned long long)rss.total_rss, rss_reference(text, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const files[NPARTS] = {NULL,		 "4242/status",
						  "4242/stat",	 "self/status",
						  "sys/kernel/yama/ptrace_scope", NULL};
	const char *part[NPARTS] = {0};
	size_t plen[NPARTS] = {0};
	char *text;
	size_t k = 0;

	if (!root[0])
		setup();
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	part[0] = text;
	for (const char *s = text; k + 1 < NPARTS;) {
		const char *sep = memmem(s, size - (size_t)(s - text), "\n--\n", 4);

		if (!sep)
			break;
		plen[k] = (size_t)(sep - part[k]);
		part[++k] = sep + 4;
		s = sep + 4;
	}
	plen[k] = size - (size_t)(part[k] - text);
	for (size_t i = 0; i < NPARTS; i++)
		if (!part[i]) {
			part[i] = "";
			plen[i] = 0;
		}

	{
		char *maps = strndup(part[0], plen[0]);

		if (!maps)
			abort();
		check_maps(maps);
		free(maps);
	}
	for (size_t i = 1; i < NPARTS - 1; i++)
		put(files[i], part[i], plen[i]);
	check_diag();
	/* The kernel prints no NUL (nor does a path hold one). */
	for (size_t i = 0; i < plen[5]; i++)
		if (!part[5][i])
			((char *)part[5])[i] = ' ';
	check_smaps(part[5], plen[5]);
	free(text);
	return 0;
}
