/* SPDX-License-Identifier: MIT */
/*
 * output: profile sinks for `memspy record`. Stacks are aggregated into a tree
 * (struct ms_profile) and written as an SVG flame graph, folded stacks,
 * speedscope JSON or pprof. The heap report writers live in output/heap*.
 */
#ifndef MEMSPY_OUTPUT_H
#define MEMSPY_OUTPUT_H

#include "common/common.h"

/*
 * One frame of a stack. All strings are borrowed for the duration of the
 * ms_profile_add() call (the profile copies what it keeps). When function is
 * NULL the frame is shown as "module+0xOFFSET" (module basename), or
 * "[unknown]" when module is NULL too. file may be NULL (no line info).
 */
struct ms_out_frame {
	const char *function; /* demangled name, or NULL */
	const char *file;     /* source file, or NULL */
	int line;	      /* source line, 0 if unknown */
	const char *module;   /* path of the ELF module (libc.so.6, /usr/bin/x), or NULL */
	uint64_t offset;      /* address relative to the module's load bias (for NULL function) */
	bool inlined;	      /* inlined into the frame below it (its caller) */
	uint64_t address;     /* where in the target: the address that was symbolised (the
			       * call for a return address); 0 = unknown. pprof locations
			       * carry it so fleet tools can symbolise later; frames at
			       * different addresses stay distinct in the profile */
	uint32_t space;	      /* whose address space address is in when a profile holds
			       * several processes' (--subprocesses): the mapping with the
			       * same space places it; 0 for a single process */
};

/*
 * A module's executable mapping in the target, as /proc/PID/maps shows it:
 * what pprof, Pyroscope and Parca need to turn a location's address back into
 * an address in the file (and fetch its symbols by build id). Strings are
 * copied.
 */
struct ms_out_mapping {
	uint64_t start, limit; /* [start, limit) in the target's address space */
	uint64_t file_offset;  /* file offset mapped at start */
	const char *path;      /* the file as the target mapped it */
	const char *build_id;  /* GNU build id, lower-case hex; NULL or "" when none */
	bool is_main;	       /* the executable: pprof's first mapping ("File:") */
	uint32_t space;	       /* the process it is in (struct ms_out_frame.space) */
};

struct ms_profile; /* opaque aggregated stack tree */

/* A new empty profile; never NULL (allocation aborts on OOM). */
struct ms_profile *ms_profile_new(void);
/* Frees p and everything it owns; NULL is a no-op. */
void ms_profile_free(struct ms_profile *p);

/*
 * Adds one stack (frames[0] = root, e.g. main; frames[n-1] = leaf, the
 * allocator's caller) with the bytes and allocation count it stands for.
 * Identical stacks merge. n == 0 adds to an "[unknown]" frame so totals stay
 * right. Values saturate at UINT64_MAX rather than wrap.
 */
void ms_profile_add(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
		    uint64_t bytes, uint64_t count);
/*
 * Live profiles: what the same stack allocated in all (live or freed since),
 * so pprof can carry alloc_* next to inuse_*. Only pprof writes it; the
 * other writers show what ms_profile_add added. A stack may get alloc values
 * without live ones.
 */
void ms_profile_add_alloc(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
			  uint64_t bytes, uint64_t count);
/*
 * ms_profile_add_alloc for an estimate: samples is how many samples the
 * allocated values rest on, kept in a memspy profile (output/msprof.c) so
 * that a view of what was allocated, built from it, can say so.
 */
void ms_profile_add_alloc_sampled(struct ms_profile *p, const struct ms_out_frame *frames,
				  size_t n, uint64_t bytes, uint64_t count, uint64_t samples);
/* Records a module mapping (pprof mappings); locations are matched by address. */
void ms_profile_add_mapping(struct ms_profile *p, const struct ms_out_mapping *m);
/*
 * ms_profile_add for an estimate: samples is how many samples the values rest on
 * (the SVG's tooltips say it when ms_out_opts.samples is set).
 */
void ms_profile_add_sampled(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
			    uint64_t bytes, uint64_t count, uint64_t samples);
/* Totals over all stacks added so far (either pointer may be NULL). */
void ms_profile_totals(const struct ms_profile *p, uint64_t *bytes, uint64_t *count);

enum ms_out_format {
	MS_OUT_SVG,	   /* interactive flame graph, self-contained */
	MS_OUT_FOLDED,	   /* "a;b;c 1234" lines (flamegraph.pl / inferno input) */
	MS_OUT_SPEEDSCOPE, /* speedscope.app JSON, one sampled profile per value */
	MS_OUT_PPROF,	   /* gzip'd profile.proto, Go heap sample types */
	MS_OUT_MSPROF,	   /* memspy's own, lossless (output/msprof.c): --subprocesses'
			    * recorders hand their profiles to the coordinator in it */
};

/*
 * Maps a format name or a file name/extension to a format: "svg",
 * "folded"/"collapsed"/"txt", "speedscope"/"json", "pprof"/"pb.gz"/"pb", or
 * a path ending in one of those (".svg", ".folded", ".speedscope.json",
 * ".pb.gz", ...). Returns 0, or -EINVAL for an unknown name.
 */
int ms_out_format_from_name(const char *name_or_path, enum ms_out_format *out);
/* Canonical name of a format ("svg", "folded", "speedscope", "pprof"). */
const char *ms_out_format_name(enum ms_out_format fmt);

enum ms_out_value {
	MS_VALUE_BYTES, /* frame widths (and folded values) are bytes */
	MS_VALUE_COUNT, /* frame widths (and folded values) are allocation counts */
};

/*
 * Below this many samples an estimate is rough (a count of n samples has a
 * relative standard deviation of about 1/sqrt(n): 22% at 20): outputs say so.
 */
#define MS_OUT_FEW_SAMPLES 20

/* Writer options; a zeroed struct (or NULL) gives sensible defaults. */
struct ms_out_opts {
	const char *title;    /* e.g. the memspy command line; NULL: "memspy" */
	const char *subtitle; /* e.g. "Total: 1.2 GiB allocated in 3,456 allocations, ..."; the
			       * SVG shows what follows a newline as a warning line under it */
	enum ms_out_value value;
	bool lines;		/* show "function (file.c:42)" instead of "function" */
	bool live;		/* leak/live view: values are bytes still live, worded so */
	bool no_script;		/* SVG without JavaScript (golden tests) */
	int width;		/* SVG width in pixels; 0 = 1200 */
	const char *count_name; /* what a count counts, singular: NULL = "allocation";
				 * e.g. "sample" for stacks caught by periodic walks */
	uint64_t sample_period; /* mean bytes between samples (pprof period); 0 = exact */
	bool samples;		/* values are estimates from samples: tooltips say how many */
	uint64_t time_ns;	/* pprof time_nanos: start, CLOCK_REALTIME ns; 0 = omitted */
	uint64_t duration_ns;	/* pprof duration_nanos; 0 = omitted */
	const char *main_module; /* pprof: the executable's module name (as in frames), its
				  * mapping first: pprof names the profile after it ("File:").
				  * NULL: modules in the order frames first use them */
};

/*
 * Writes p to out in fmt. Returns 0, or a negative code with err filled
 * (write errors: -EIO and the file's errno in msg). out is not closed.
 * Output is deterministic: same profile and options, same bytes.
 */
int ms_profile_write(const struct ms_profile *p, enum ms_out_format fmt,
		     const struct ms_out_opts *o, FILE *out, struct ms_error *err);

/*
 * Reads folded stacks ("frame;frame;frame VALUE" or "... BYTES COUNT" per
 * line, as written by MS_OUT_FOLDED) from in and adds them to p. A single
 * value is taken as bytes with a count of 1 per line. Frame text is kept
 * verbatim as the function name. Returns 0, or -EINVAL with err naming the
 * line when a line is malformed (nothing after it is added).
 */
int ms_folded_parse(FILE *in, struct ms_profile *p, struct ms_error *err);

/* What a memspy profile (MS_OUT_MSPROF) says of itself. */
struct ms_msprof_head {
	uint64_t sample_period; /* ms_out_opts.sample_period it was written with */
	bool samples;		/* its values are estimates from samples */
};

/* One stack of a memspy profile: frames root first (borrowed for the call). */
struct ms_msprof_stack {
	const struct ms_out_frame *frames;
	size_t n;
	uint64_t bytes, count;		   /* the view's values (live ones for --live) */
	uint64_t alloc_bytes, alloc_count; /* ms_profile_add_alloc's, 0 without */
	uint64_t samples;		   /* samples behind bytes/count, 0: not told */
	uint64_t alloc_samples;		   /* samples behind alloc_*, 0: not told */
};
typedef int (*ms_msprof_stack_fn)(void *ctx, const struct ms_msprof_stack *s);

/*
 * Reads a memspy profile from in: its mappings are added to maps, each
 * stack is handed to fn (which returns 0, or a code that stops the read
 * and is returned), every frame and mapping with the given space. 0, or
 * -EINVAL with err filled for a file that is not one, malformed or cut
 * short (what came before is already added).
 */
int ms_msprof_read(FILE *in, struct ms_profile *maps, uint32_t space, struct ms_msprof_head *head,
		   ms_msprof_stack_fn fn, void *ctx, struct ms_error *err);

#endif
