/* SPDX-License-Identifier: MIT */
/*
 * output: private shared by the profile writers. The stack tree, the display
 * view of it (frames named per writer options, children sorted) and helpers.
 */
#ifndef MEMSPY_OUTPUT_INT_H
#define MEMSPY_OUTPUT_INT_H

#include "output/output.h"

#define MS_TREE_ROOT 0u
#define MS_TREE_NONE UINT32_MAX

/* A node of a stack tree: one frame under one parent. Node 0 is the root. */
struct ms_tnode {
	uint32_t parent;
	uint32_t sym;	/* frame (profile tree) or display name (view) */
	uint32_t depth; /* root = 0, first frame = 1 */
	uint64_t self_bytes, self_count;
	uint64_t total_bytes, total_count;
	uint64_t alloc_bytes, alloc_count;    /* self, ms_profile_add_alloc (profile tree only) */
	uint64_t alloc_samples;		      /* samples behind alloc_* (0: not told) */
	uint64_t self_samples, total_samples; /* samples behind the values (0: not told) */
};

/* Nodes addressed by index; children found by hashing (parent, sym). */
struct ms_tree {
	struct ms_tnode *nodes;
	size_t n, cap;
	uint32_t *ht; /* node index + 1, 0 = empty */
	size_t ht_cap;
};

void ms_tree_init(struct ms_tree *t);
void ms_tree_fini(struct ms_tree *t);
/* The child of parent with this sym, created (zero values) if missing. */
uint32_t ms_tree_child(struct ms_tree *t, uint32_t parent, uint32_t sym);
/* Adds bytes/count as self of node and to the totals of it and its ancestors. */
void ms_tree_add(struct ms_tree *t, uint32_t node, uint64_t bytes, uint64_t count);
/* Adds samples as self of node (totals like ms_tree_add's). */
void ms_tree_add_samples(struct ms_tree *t, uint32_t node, uint64_t samples);

/* Frame kinds, for colours: the program, the allocator/libc/runtime, unknown code. */
enum ms_frame_kind { MS_KIND_PROGRAM, MS_KIND_SYSTEM, MS_KIND_UNKNOWN };

/* A frame interned in the profile (all strings owned, NULL when absent). */
struct ms_pframe {
	char *function;
	char *file;
	int line;
	char *module;
	uint64_t offset;
	bool inlined;
	uint64_t address;
	uint32_t space;
};

/* A module mapping (strings owned). */
struct ms_pmapping {
	uint64_t start, limit, file_offset;
	char *path;
	char *build_id; /* "" when none */
	bool is_main;
	uint32_t space;
};

struct ms_profile {
	struct ms_tree tree; /* sym = index into frames */
	struct ms_pframe *frames;
	size_t n_frames, cap_frames;
	uint32_t *fht; /* frame hash: index + 1 */
	size_t fht_cap;
	uint64_t total_bytes, total_count, total_samples;
	bool has_alloc; /* ms_profile_add_alloc was called */
	struct ms_pmapping *mappings;
	size_t n_mappings, cap_mappings;
};

/* The display view: frames named as the user sees them, children sorted by name. */
struct ms_vsym {
	char *name;	/* display text (owned) */
	uint32_t frame; /* first profile frame shown under this name */
	enum ms_frame_kind kind;
};

struct ms_view {
	struct ms_tree tree; /* sym = index into syms */
	struct ms_vsym *syms;
	size_t n_syms, cap_syms;
	uint32_t *sht;
	size_t sht_cap;
	/* children of node i: child_idx[child_start[i] .. child_start[i+1]), sorted by name */
	uint32_t *child_start;
	uint32_t *child_idx;
	const struct ms_profile *prof;
};

/* Builds the view of p for options o (lines on/off). */
void ms_view_build(struct ms_view *v, const struct ms_profile *p, const struct ms_out_opts *o);
void ms_view_fini(struct ms_view *v);
static inline uint64_t ms_view_value(const struct ms_out_opts *o, uint64_t bytes, uint64_t count)
{
	return o->value == MS_VALUE_COUNT ? count : bytes;
}

/* Display text of frame f ("fn", "fn (file.c:42)", "libc.so.6+0x1234", "[unknown]"); owned. */
/*
 * SVG text shared by the flame graph and the heap view (output/svg.c). Names
 * come from the target's binaries: invalid UTF-8 (strict) and control
 * characters become '?'. ms_svg_xml_put writes up to max_chars characters as
 * XML text (< 0: all); ms_svg_json_put a JSON string safe inside CDATA;
 * ms_svg_put_label a frame's label for its width in pixels (all of it, its
 * start and "..", or nothing).
 */
void ms_svg_xml_put(FILE *out, const char *str, long max_chars);
void ms_svg_json_put(FILE *out, const char *str);
void ms_svg_put_label(FILE *out, const char *name, double w);
char *ms_frame_text(const struct ms_pframe *f, bool lines);
enum ms_frame_kind ms_frame_kind_of(const struct ms_pframe *f);

uint64_t ms_sat_add(uint64_t a, uint64_t b);

/* Writers, called by ms_profile_write with o never NULL. */
int ms_folded_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		    struct ms_error *err);
int ms_svg_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		 struct ms_error *err);
int ms_speedscope_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
			struct ms_error *err);
int ms_pprof_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		   struct ms_error *err);
int ms_msprof_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		    struct ms_error *err);

/* Checks the stream after writing: 0, or -EIO/-errno with err filled. */
int ms_out_check(FILE *out, const char *what, struct ms_error *err);

#endif
