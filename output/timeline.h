/* SPDX-License-Identifier: MIT */
/*
 * output/timeline: the heap timeline of `memspy record --mode walk`: in use,
 * free, top, mmapped and RSS over time, in total and per arena, written as
 * JSON or as a self-contained SVG line chart with the largest growths marked.
 */
#ifndef MEMSPY_OUTPUT_TIMELINE_H
#define MEMSPY_OUTPUT_TIMELINE_H

#include "common/common.h"

/*
 * Byte figures at one instant. in_use follows mallinfo2().uordblks (chunks
 * the allocator counts as in use, tcache'd chunks included; tcache says how
 * many of those bytes sit in tcaches), free follows fordblks minus top.
 */
struct ms_tl_values {
	uint64_t in_use, free, top, tcache, mmapped, system, rss;
};

/* One arena's figures in a sample (rss and mmapped are process-wide: 0 here). */
struct ms_tl_arena {
	ms_raddr_t addr;
	bool is_main;
	struct ms_tl_values v;
};

/* One sample. Arrays are borrowed for the ms_timeline_add() call. */
struct ms_tl_sample {
	uint64_t t_ns;	   /* since the start of the recording */
	bool heap;	   /* heap figures valid (false: rss only, e.g. not glibc, or skipped) */
	bool approximate;  /* a free list was longer than the read cap: free is a lower bound */
	bool inconsistent; /* an arena was locked (a thread stopped inside malloc) */
	bool full_walk;	   /* figures from a walk of every chunk rather than the arena headers */
	struct ms_tl_values total;
	const struct ms_tl_arena *arenas;
	size_t narenas;
};

/* Describes the recording, for titles and the JSON header. Strings are copied. */
struct ms_tl_info {
	pid_t pid;
	const char *comm;      /* target's command name */
	const char *command;   /* memspy's command line */
	const char *allocator; /* "glibc", "jemalloc (...)", ... */
	const char *note;      /* shown under the title, e.g. why there are no heap figures */
	uint64_t interval_ns;  /* requested interval between heap reads */
};

/* A run of samples over which the total footprint (in use + mmapped, or RSS) grew. */
struct ms_tl_growth {
	size_t first, last; /* sample indexes */
	uint64_t t0_ns, t1_ns;
	uint64_t from, to;  /* bytes */
	const char *series; /* "in_use+mmapped" or "rss" (static) */
};

struct ms_timeline; /* opaque */

/* A new empty timeline; never NULL. */
struct ms_timeline *ms_timeline_new(const struct ms_tl_info *info);
/* NULL is a no-op. */
void ms_timeline_free(struct ms_timeline *t);
/* Appends a sample (copied). Samples must come in time order. */
void ms_timeline_add(struct ms_timeline *t, const struct ms_tl_sample *s);
size_t ms_timeline_nsamples(const struct ms_timeline *t);
/* The recording's length: the time axis spans it even where heap reads stopped early. */
void ms_timeline_set_duration(struct ms_timeline *t, uint64_t ns);
/* Sample i, borrowed from t until the next add or free. */
const struct ms_tl_sample *ms_timeline_sample(const struct ms_timeline *t, size_t i);

/*
 * The largest growth intervals, largest first, at most max of them, into
 * out. A growth interval is a maximal run of samples over which the
 * footprint never fell; runs smaller than 1% of the peak are left out.
 * Returns the number written.
 */
size_t ms_timeline_growth(const struct ms_timeline *t, struct ms_tl_growth *out, size_t max);

enum ms_tl_format { MS_TL_JSON, MS_TL_SVG };
/* From a format name ("json", "svg") or a path ending in .json or .svg. 0 or -EINVAL. */
int ms_tl_format_from_name(const char *name_or_path, enum ms_tl_format *out);

/*
 * Writes t to out. 0, or -EIO with err naming the failure. Deterministic:
 * same samples, same bytes. out is not closed.
 */
int ms_timeline_write_json(const struct ms_timeline *t, FILE *out, struct ms_error *err);
int ms_timeline_write_svg(const struct ms_timeline *t, FILE *out, struct ms_error *err);
int ms_timeline_write(const struct ms_timeline *t, enum ms_tl_format fmt, FILE *out,
		      struct ms_error *err);

#endif
