/* SPDX-License-Identifier: MIT */
/* output: renderings of a heap report (memspy dump): JSON (doc/dump-json.md) and text. */
#ifndef MEMSPY_OUTPUT_HEAP_H
#define MEMSPY_OUTPUT_HEAP_H

#include "heapwalk/heapwalk.h"

#include <stdio.h>

/* What the renderers need besides the walk itself. All borrowed. */
struct ms_heap_meta {
	pid_t pid;
	const char *comm;
	const char *allocator;   /* "glibc" or what was found instead */
	const char *fatal;       /* why there is no walk (foreign allocator ...), or NULL */
	const struct ms_heap_loc *loc; /* NULL when locating failed */
	const struct ms_heap_report *rep; /* NULL when there was no walk */
	const struct ms_heap_rss *rss;
	const struct ms_proc_mem_summary *mem; /* NULL when unavailable */
	double pause_ms, total_ms;
	unsigned lock_retries;
	/* Threads let out of malloc before the snapshot (attach/quiesce.c); NULL: not tried. */
	const struct ms_quiesce_stats *quiesce;
	bool quiesce_available; /* false: libc's symbols could not be read (quiesce->why) */
	/* Where the walk read: "snapshot" (a copy-on-write child) or "stopped" (the target). */
	const char *walk_source;
	const char *snapshot_fallback; /* why there is no snapshot, or NULL */
	double snapshot_ms;            /* the clone() (inside the pause); 0 without a snapshot */
	int exit_code;
	const struct ms_leak_report *leaks; /* dump --leaks, or NULL */
};

/* Writes the JSON report. 0 or -EIO. */
int ms_heap_write_json(FILE *f, const struct ms_heap_meta *m);
/* Writes the report for a person: the answer first, units on every number. 0 or -EIO. */
int ms_heap_write_text(FILE *f, const struct ms_heap_meta *m);

/*
 * The heap as an interactive icicle SVG (heap_svg.c): arenas, then classes or
 * chunk sizes, then leaked / thread-only / reachable. Needs m->rep and
 * m->leaks; without them it draws a page saying why. 0 or -EIO.
 */
int ms_heap_write_svg(FILE *f, const struct ms_heap_meta *m);

/* The leak scan's section of the text report (heap_leaks.c). */
void ms_heap_write_leaks_text(FILE *f, const struct ms_leak_report *lr);
/* Adds "leaks" and "types" to a JSON report (doc/dump-json.md). */
struct json_t;
void ms_heap_leaks_json(struct json_t *root, const struct ms_leak_report *lr);

#endif
