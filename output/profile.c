// SPDX-License-Identifier: MIT
/*
 * output/profile: the aggregated stack tree behind every profile writer, its
 * display view (frames named per options, children sorted), format names and
 * the number formatting the writers share.
 */
#include "output/output_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint64_t ms_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	/* FNV-1a; NULL hashes differently from "" */
	if (!s)
		return mix64(h ^ 0x9e3779b97f4a7c15ull);
	h ^= 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return mix64(h);
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* ---- the tree ---- */

void ms_tree_init(struct ms_tree *t)
{
	memset(t, 0, sizeof(*t));
	t->cap = 64;
	t->nodes = ms_xcalloc(t->cap, sizeof(*t->nodes));
	t->nodes[0].parent = MS_TREE_NONE;
	t->nodes[0].sym = MS_TREE_NONE;
	t->n = 1;
	t->ht_cap = 128;
	t->ht = ms_xcalloc(t->ht_cap, sizeof(*t->ht));
}

void ms_tree_fini(struct ms_tree *t)
{
	free(t->nodes);
	free(t->ht);
	memset(t, 0, sizeof(*t));
}

static size_t node_slot(uint32_t parent, uint32_t sym, size_t cap)
{
	return mix64(((uint64_t)parent << 32) | sym) & (cap - 1);
}

static void tree_rehash(struct ms_tree *t)
{
	size_t ncap = t->ht_cap * 2;
	uint32_t *ht = ms_xcalloc(ncap, sizeof(*ht));

	for (size_t i = 1; i < t->n; i++) {
		size_t s = node_slot(t->nodes[i].parent, t->nodes[i].sym, ncap);

		while (ht[s])
			s = (s + 1) & (ncap - 1);
		ht[s] = (uint32_t)i + 1;
	}
	free(t->ht);
	t->ht = ht;
	t->ht_cap = ncap;
}

uint32_t ms_tree_child(struct ms_tree *t, uint32_t parent, uint32_t sym)
{
	size_t s = node_slot(parent, sym, t->ht_cap);
	struct ms_tnode *nd;

	for (; t->ht[s]; s = (s + 1) & (t->ht_cap - 1)) {
		nd = &t->nodes[t->ht[s] - 1];
		if (nd->parent == parent && nd->sym == sym)
			return t->ht[s] - 1;
	}
	if (t->n >= UINT32_MAX - 1) {
		/* 4 billion distinct nodes: fold the rest into the parent */
		return parent;
	}
	if (t->n == t->cap)
		ms_xgrow((void **)&t->nodes, &t->cap, t->n + 1, sizeof(*t->nodes));
	nd = &t->nodes[t->n];
	memset(nd, 0, sizeof(*nd));
	nd->parent = parent;
	nd->sym = sym;
	nd->depth = t->nodes[parent].depth + 1;
	t->ht[s] = (uint32_t)t->n + 1;
	t->n++;
	if (t->n * 2 > t->ht_cap)
		tree_rehash(t);
	return (uint32_t)t->n - 1;
}

void ms_tree_add(struct ms_tree *t, uint32_t node, uint64_t bytes, uint64_t count)
{
	struct ms_tnode *nd = &t->nodes[node];

	nd->self_bytes = ms_sat_add(nd->self_bytes, bytes);
	nd->self_count = ms_sat_add(nd->self_count, count);
}

void ms_tree_add_samples(struct ms_tree *t, uint32_t node, uint64_t samples)
{
	t->nodes[node].self_samples = ms_sat_add(t->nodes[node].self_samples, samples);
}

/* Totals from self values: children always have higher indices than their parent. */
static void tree_sum_totals(struct ms_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		t->nodes[i].total_bytes = t->nodes[i].self_bytes;
		t->nodes[i].total_count = t->nodes[i].self_count;
		t->nodes[i].total_samples = t->nodes[i].self_samples;
	}
	for (size_t i = t->n - 1; i > 0; i--) {
		struct ms_tnode *c = &t->nodes[i], *p = &t->nodes[c->parent];

		p->total_bytes = ms_sat_add(p->total_bytes, c->total_bytes);
		p->total_count = ms_sat_add(p->total_count, c->total_count);
		p->total_samples = ms_sat_add(p->total_samples, c->total_samples);
	}
}

/* ---- the profile ---- */

struct ms_profile *ms_profile_new(void)
{
	struct ms_profile *p = ms_xcalloc(1, sizeof(*p));

	ms_tree_init(&p->tree);
	p->fht_cap = 64;
	p->fht = ms_xcalloc(p->fht_cap, sizeof(*p->fht));
	return p;
}

void ms_profile_free(struct ms_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_frames; i++) {
		free(p->frames[i].function);
		free(p->frames[i].file);
		free(p->frames[i].module);
	}
	for (size_t i = 0; i < p->n_mappings; i++) {
		free(p->mappings[i].path);
		free(p->mappings[i].build_id);
	}
	free(p->mappings);
	free(p->frames);
	free(p->fht);
	ms_tree_fini(&p->tree);
	free(p);
}

static uint64_t frame_hash(const struct ms_out_frame *f)
{
	uint64_t h = hash_str(0, f->function);

	h = hash_str(h, f->file);
	h = hash_str(h, f->module);
	h = mix64(h ^ (uint64_t)(unsigned)f->line ^ ((uint64_t)f->inlined << 40) ^
		  ((uint64_t)f->space << 41));
	if (!f->function)
		h = mix64(h ^ f->offset);
	return mix64(h ^ f->address);
}

static bool frame_eq(const struct ms_pframe *a, const struct ms_out_frame *b)
{
	return str_eq(a->function, b->function) && str_eq(a->file, b->file) && a->line == b->line &&
	       str_eq(a->module, b->module) && a->inlined == b->inlined &&
	       a->address == b->address && a->space == b->space &&
	       (b->function || a->offset == b->offset);
}

static void frames_rehash(struct ms_profile *p)
{
	size_t ncap = p->fht_cap * 2;
	uint32_t *ht = ms_xcalloc(ncap, sizeof(*ht));

	for (size_t i = 0; i < p->n_frames; i++) {
		const struct ms_pframe *pf = &p->frames[i];
		struct ms_out_frame f = {pf->function, pf->file,    pf->line,	 pf->module,
					 pf->offset,   pf->inlined, pf->address, pf->space};
		size_t s = frame_hash(&f) & (ncap - 1);

		while (ht[s])
			s = (s + 1) & (ncap - 1);
		ht[s] = (uint32_t)i + 1;
	}
	free(p->fht);
	p->fht = ht;
	p->fht_cap = ncap;
}

static uint32_t frame_intern(struct ms_profile *p, const struct ms_out_frame *in)
{
	struct ms_out_frame named = *in;
	const struct ms_out_frame *f = &named;
	size_t s;
	struct ms_pframe *pf;

	/* An empty name (a symbol table can hold one) would be an empty frame in
	 * folded stacks, which readers drop: it is shown as module+offset. */
	if (named.function && !named.function[0])
		named.function = NULL;
	s = frame_hash(f) & (p->fht_cap - 1);

	for (; p->fht[s]; s = (s + 1) & (p->fht_cap - 1))
		if (frame_eq(&p->frames[p->fht[s] - 1], f))
			return p->fht[s] - 1;
	if (p->n_frames == p->cap_frames)
		ms_xgrow((void **)&p->frames, &p->cap_frames, p->n_frames + 1, sizeof(*p->frames));
	pf = &p->frames[p->n_frames];
	pf->function = f->function ? ms_xstrdup(f->function) : NULL;
	pf->file = f->file ? ms_xstrdup(f->file) : NULL;
	pf->line = f->line;
	pf->module = f->module ? ms_xstrdup(f->module) : NULL;
	pf->offset = f->function ? 0 : f->offset;
	pf->inlined = f->inlined;
	pf->address = f->address;
	pf->space = f->space;
	p->fht[s] = (uint32_t)p->n_frames + 1;
	p->n_frames++;
	if (p->n_frames * 2 > p->fht_cap)
		frames_rehash(p);
	return (uint32_t)p->n_frames - 1;
}

static uint32_t stack_node(struct ms_profile *p, const struct ms_out_frame *frames, size_t n)
{
	static const struct ms_out_frame unknown = {.function = NULL};
	uint32_t node = MS_TREE_ROOT;

	if (n == 0) {
		frames = &unknown;
		n = 1;
	}
	for (size_t i = 0; i < n; i++)
		node = ms_tree_child(&p->tree, node, frame_intern(p, &frames[i]));
	return node;
}

void ms_profile_add(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
		    uint64_t bytes, uint64_t count)
{
	ms_profile_add_sampled(p, frames, n, bytes, count, 0);
}

void ms_profile_add_sampled(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
			    uint64_t bytes, uint64_t count, uint64_t samples)
{
	uint32_t node = stack_node(p, frames, n);

	ms_tree_add(&p->tree, node, bytes, count);
	ms_tree_add_samples(&p->tree, node, samples);
	p->total_bytes = ms_sat_add(p->total_bytes, bytes);
	p->total_count = ms_sat_add(p->total_count, count);
	p->total_samples = ms_sat_add(p->total_samples, samples);
}

void ms_profile_add_alloc(struct ms_profile *p, const struct ms_out_frame *frames, size_t n,
			  uint64_t bytes, uint64_t count)
{
	ms_profile_add_alloc_sampled(p, frames, n, bytes, count, 0);
}

void ms_profile_add_alloc_sampled(struct ms_profile *p, const struct ms_out_frame *frames,
				  size_t n, uint64_t bytes, uint64_t count, uint64_t samples)
{
	uint32_t node = stack_node(p, frames, n); /* may move the nodes */
	struct ms_tnode *nd = &p->tree.nodes[node];

	nd->alloc_bytes = ms_sat_add(nd->alloc_bytes, bytes);
	nd->alloc_count = ms_sat_add(nd->alloc_count, count);
	nd->alloc_samples = ms_sat_add(nd->alloc_samples, samples);
	p->has_alloc = true;
}

void ms_profile_add_mapping(struct ms_profile *p, const struct ms_out_mapping *m)
{
	struct ms_pmapping *pm;

	ms_xgrow((void **)&p->mappings, &p->cap_mappings, p->n_mappings + 1, sizeof(*p->mappings));
	pm = &p->mappings[p->n_mappings++];
	*pm = (struct ms_pmapping){
	    .start = m->start,
	    .limit = m->limit,
	    .file_offset = m->file_offset,
	    .path = ms_xstrdup(m->path ? m->path : ""),
	    .build_id = ms_xstrdup(m->build_id ? m->build_id : ""),
	    .is_main = m->is_main,
	    .space = m->space,
	};
}

void ms_profile_totals(const struct ms_profile *p, uint64_t *bytes, uint64_t *count)
{
	if (bytes)
		*bytes = p->total_bytes;
	if (count)
		*count = p->total_count;
}

/* ---- frame text and kind ---- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s && s[1] ? s + 1 : path;
}

char *ms_frame_text(const struct ms_pframe *f, bool lines)
{
	if (f->function) {
		if (lines && f->file && f->line > 0)
			return ms_xasprintf("%s (%s:%d)", f->function, base_name(f->file), f->line);
		if (lines && f->file)
			return ms_xasprintf("%s (%s)", f->function, base_name(f->file));
		return ms_xstrdup(f->function);
	}
	if (f->module)
		return ms_xasprintf("%s+0x%" PRIx64, base_name(f->module), f->offset);
	return ms_xstrdup("[unknown]");
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * The allocator, libc and the C++ runtime get their own hue so the program's
 * frames stand out. Without module info (folded input), known allocator entry
 * names are recognised instead.
 */
enum ms_frame_kind ms_frame_kind_of(const struct ms_pframe *f)
{
	static const char *const sys_modules[] = {
	    "libc.so",	  "libc-",	 "ld-linux",	"libstdc++",   "libgcc_s", "libm.so",
	    "libpthread", "libjemalloc", "libtcmalloc", "libmimalloc", "ld-musl",  "libdl.so",
	};
	static const char *const sys_functions[] = {
	    "malloc",	     "calloc",		"realloc",     "free",	    "posix_memalign",
	    "aligned_alloc", "memalign",	"valloc",      "pvalloc",   "reallocarray",
	    "operator new",  "operator delete", "_int_malloc", "_int_free", "_int_realloc",
	    "__libc_",	     "tcache_",		"sysmalloc",   "strdup",    "strndup",
	};

	if (f->module) {
		const char *b = base_name(f->module);

		for (size_t i = 0; i < MS_ARRAY_SIZE(sys_modules); i++)
			if (has_prefix(b, sys_modules[i]))
				return MS_KIND_SYSTEM;
		return f->function ? MS_KIND_PROGRAM : MS_KIND_UNKNOWN;
	}
	if (!f->function || strcmp(f->function, "[unknown]") == 0)
		return MS_KIND_UNKNOWN;
	/* "libfoo.so+0x1234" as written for code without symbols */
	if (strstr(f->function, "+0x") && !strpbrk(f->function, " ():<"))
		return MS_KIND_UNKNOWN;
	for (size_t i = 0; i < MS_ARRAY_SIZE(sys_functions); i++) {
		size_t l = strlen(sys_functions[i]);

		if (strncmp(f->function, sys_functions[i], l) == 0 &&
		    (sys_functions[i][l - 1] == '_' || f->function[l] == '\0' ||
		     f->function[l] == '(' || f->function[l] == ' ' || f->function[l] == '['))
			return MS_KIND_SYSTEM;
	}
	return MS_KIND_PROGRAM;
}

/* ---- the view ---- */

static uint32_t vsym_intern(struct ms_view *v, char *name, uint32_t frame, enum ms_frame_kind kind)
{
	size_t s = hash_str(0, name) & (v->sht_cap - 1);
	struct ms_vsym *vs;

	for (; v->sht[s]; s = (s + 1) & (v->sht_cap - 1)) {
		if (strcmp(v->syms[v->sht[s] - 1].name, name) == 0) {
			free(name);
			return v->sht[s] - 1;
		}
	}
	if (v->n_syms == v->cap_syms)
		ms_xgrow((void **)&v->syms, &v->cap_syms, v->n_syms + 1, sizeof(*v->syms));
	vs = &v->syms[v->n_syms];
	vs->name = name;
	vs->frame = frame;
	vs->kind = kind;
	v->sht[s] = (uint32_t)v->n_syms + 1;
	v->n_syms++;
	if (v->n_syms * 2 > v->sht_cap) {
		size_t ncap = v->sht_cap * 2;
		uint32_t *ht = ms_xcalloc(ncap, sizeof(*ht));

		for (size_t i = 0; i < v->n_syms; i++) {
			size_t j = hash_str(0, v->syms[i].name) & (ncap - 1);

			while (ht[j])
				j = (j + 1) & (ncap - 1);
			ht[j] = (uint32_t)i + 1;
		}
		free(v->sht);
		v->sht = ht;
		v->sht_cap = ncap;
	}
	return (uint32_t)v->n_syms - 1;
}

static int cmp_child(const void *a, const void *b, void *ctx)
{
	const struct ms_view *v = ctx;
	uint32_t na = *(const uint32_t *)a, nb = *(const uint32_t *)b;

	return strcmp(v->syms[v->tree.nodes[na].sym].name, v->syms[v->tree.nodes[nb].sym].name);
}

void ms_view_build(struct ms_view *v, const struct ms_profile *p, const struct ms_out_opts *o)
{
	const struct ms_tree *pt = &p->tree;
	uint32_t *fsym, *vmap, *fill;

	memset(v, 0, sizeof(*v));
	v->prof = p;
	ms_tree_init(&v->tree);
	v->sht_cap = 64;
	v->sht = ms_xcalloc(v->sht_cap, sizeof(*v->sht));

	/* one display name per distinct frame */
	fsym = ms_xcalloc(p->n_frames + 1, sizeof(*fsym));
	for (size_t i = 0; i < p->n_frames; i++)
		fsym[i] = vsym_intern(v, ms_frame_text(&p->frames[i], o->lines), (uint32_t)i,
				      ms_frame_kind_of(&p->frames[i]));

	/* parents precede children in the node array, so one pass maps them */
	vmap = ms_xcalloc(pt->n, sizeof(*vmap));
	vmap[0] = MS_TREE_ROOT;
	for (size_t i = 1; i < pt->n; i++) {
		const struct ms_tnode *nd = &pt->nodes[i];

		vmap[i] = ms_tree_child(&v->tree, vmap[nd->parent], fsym[nd->sym]);
		ms_tree_add(&v->tree, vmap[i], nd->self_bytes, nd->self_count);
		ms_tree_add_samples(&v->tree, vmap[i], nd->self_samples);
	}
	ms_tree_add(&v->tree, MS_TREE_ROOT, pt->nodes[0].self_bytes, pt->nodes[0].self_count);
	ms_tree_add_samples(&v->tree, MS_TREE_ROOT, pt->nodes[0].self_samples);
	tree_sum_totals(&v->tree);
	free(vmap);
	free(fsym);

	/* children lists, sorted by name, for deterministic layouts */
	v->child_start = ms_xcalloc(v->tree.n + 1, sizeof(*v->child_start));
	v->child_idx = ms_xcalloc(v->tree.n, sizeof(*v->child_idx));
	for (size_t i = 1; i < v->tree.n; i++)
		v->child_start[v->tree.nodes[i].parent + 1]++;
	for (size_t i = 0; i < v->tree.n; i++)
		v->child_start[i + 1] += v->child_start[i];
	fill = ms_xcalloc(v->tree.n, sizeof(*fill));
	for (size_t i = 1; i < v->tree.n; i++) {
		uint32_t par = v->tree.nodes[i].parent;

		v->child_idx[v->child_start[par] + fill[par]++] = (uint32_t)i;
	}
	free(fill);
	for (size_t i = 0; i < v->tree.n; i++) {
		uint32_t nc = v->child_start[i + 1] - v->child_start[i];

		if (nc > 1)
			qsort_r(v->child_idx + v->child_start[i], nc, sizeof(uint32_t), cmp_child,
				v);
	}
}

void ms_view_fini(struct ms_view *v)
{
	for (size_t i = 0; i < v->n_syms; i++)
		free(v->syms[i].name);
	free(v->syms);
	free(v->sht);
	free(v->child_start);
	free(v->child_idx);
	ms_tree_fini(&v->tree);
	memset(v, 0, sizeof(*v));
}

/* ---- formats ---- */

static const struct {
	const char *name;
	enum ms_out_format fmt;
} format_names[] = {
    {"svg", MS_OUT_SVG},
    {"folded", MS_OUT_FOLDED},
    {"collapsed", MS_OUT_FOLDED},
    {"txt", MS_OUT_FOLDED},
    {"speedscope", MS_OUT_SPEEDSCOPE},
    {"speedscope.json", MS_OUT_SPEEDSCOPE},
    {"json", MS_OUT_SPEEDSCOPE},
    {"pprof", MS_OUT_PPROF},
    {"pb.gz", MS_OUT_PPROF},
    {"pb", MS_OUT_PPROF},
    {"prof", MS_OUT_PPROF},
    {"msprof", MS_OUT_MSPROF},
};

int ms_out_format_from_name(const char *name, enum ms_out_format *out)
{
	const char *base;
	size_t len;

	if (!name || !*name)
		return -EINVAL;
	/* an exact format name first, then the longest known suffix of a file name */
	for (size_t i = 0; i < MS_ARRAY_SIZE(format_names); i++) {
		if (strcasecmp(name, format_names[i].name) == 0) {
			*out = format_names[i].fmt;
			return 0;
		}
	}
	base = base_name(name);
	len = strlen(base);
	for (size_t i = 0; i < MS_ARRAY_SIZE(format_names); i++) {
		size_t l = strlen(format_names[i].name);

		if (len > l + 1 && base[len - l - 1] == '.' &&
		    strcasecmp(base + len - l, format_names[i].name) == 0) {
			*out = format_names[i].fmt;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ms_out_format_name(enum ms_out_format fmt)
{
	switch (fmt) {
	case MS_OUT_SVG:
		return "svg";
	case MS_OUT_FOLDED:
		return "folded";
	case MS_OUT_SPEEDSCOPE:
		return "speedscope";
	case MS_OUT_PPROF:
		return "pprof";
	case MS_OUT_MSPROF:
		return "msprof";
	}
	return "?";
}

int ms_out_check(FILE *out, const char *what, struct ms_error *err)
{
	int e;

	if (fflush(out) == 0 && !ferror(out))
		return 0;
	e = errno ? errno : EIO;
	ms_error_set(err, -e, "output: writing the %s: %s", what, strerror(e));
	if (e == ENOSPC)
		ms_error_hint(err, "the disk is full; free space or write elsewhere with -o");
	return -e;
}

int ms_profile_write(const struct ms_profile *p, enum ms_out_format fmt,
		     const struct ms_out_opts *o, FILE *out, struct ms_error *err)
{
	static const struct ms_out_opts defaults;

	if (!o)
		o = &defaults;
	switch (fmt) {
	case MS_OUT_SVG:
		return ms_svg_write(p, o, out, err);
	case MS_OUT_FOLDED:
		return ms_folded_write(p, o, out, err);
	case MS_OUT_SPEEDSCOPE:
		return ms_speedscope_write(p, o, out, err);
	case MS_OUT_PPROF:
		return ms_pprof_write(p, o, out, err);
	case MS_OUT_MSPROF:
		return ms_msprof_write(p, o, out, err);
	}
	return ms_error_set(err, -EINVAL, "output: unknown format %d", (int)fmt);
}
