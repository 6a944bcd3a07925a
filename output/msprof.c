// SPDX-License-Identifier: MIT
/*
 * output/msprof: memspy's own profile file, lossless, for its own use: the
 * recorders of `record --subprocesses` write one each, and the coordinator
 * reads them back into one profile. Unlike speedscope or pprof it keeps all
 * of a frame (name, file, line, module, offset, address, inlined), the
 * modules' mappings, the live and allocated values side by side and the
 * samples behind them, so the merged profile is written as one process's
 * would be (pprof: mappings, addresses, build ids, alloc_* with inuse_*).
 *
 * The encoding: "memspy-profile 2\n", then records, each a tag byte and
 * unsigned LEB128 varints; a string is its length + 1 (0: none) and its
 * bytes (names are any bytes: no text encoding is assumed).
 *   'H' sample_period, flags (1: estimates from samples)
 *   'M' start, limit, file_offset, path, build_id, is_main
 *   'F' function, file, line, module, offset, inlined, address
 *   'S' frames (count, ids root first), bytes, count, alloc_bytes,
 *       alloc_count, samples, alloc_samples
 *   'E' the end (a file without it was cut short and is refused)
 */
#include "output/output_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC	   "memspy-profile 2\n"
#define MAX_STRING (1u << 20)
#define MAX_DEPTH  (1u << 16)

static void put_v(FILE *out, uint64_t v)
{
	do {
		int c = (int)(v & 0x7f);

		v >>= 7;
		putc(v ? c | 0x80 : c, out);
	} while (v);
}

static void put_s(FILE *out, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_v(out, s ? n + 1 : 0);
	if (n)
		fwrite(s, 1, n, out);
}

int ms_msprof_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		    struct ms_error *err)
{
	const struct ms_tree *t = &p->tree;
	uint32_t *path = NULL;
	size_t cap = 0;

	fputs(MAGIC, out);
	putc('H', out);
	put_v(out, o->sample_period);
	put_v(out, o->samples ? 1 : 0);
	for (size_t i = 0; i < p->n_mappings; i++) {
		const struct ms_pmapping *m = &p->mappings[i];

		putc('M', out);
		put_v(out, m->start);
		put_v(out, m->limit);
		put_v(out, m->file_offset);
		put_s(out, m->path);
		put_s(out, m->build_id);
		put_v(out, m->is_main);
	}
	for (size_t i = 0; i < p->n_frames; i++) {
		const struct ms_pframe *f = &p->frames[i];

		putc('F', out);
		put_s(out, f->function);
		put_s(out, f->file);
		put_v(out, f->line > 0 ? (uint64_t)f->line : 0);
		put_s(out, f->module);
		put_v(out, f->offset);
		put_v(out, f->inlined);
		put_v(out, f->address);
	}
	for (size_t i = 1; i < t->n; i++) {
		const struct ms_tnode *nd = &t->nodes[i];
		size_t depth = 0;

		if (!nd->self_bytes && !nd->self_count && !nd->alloc_bytes && !nd->alloc_count &&
		    !nd->self_samples && !nd->alloc_samples)
			continue;
		for (uint32_t k = (uint32_t)i; k != MS_TREE_ROOT; k = t->nodes[k].parent) {
			ms_xgrow((void **)&path, &cap, depth + 1, sizeof(*path));
			path[depth++] = t->nodes[k].sym;
		}
		putc('S', out);
		put_v(out, depth);
		while (depth)
			put_v(out, path[--depth]);
		put_v(out, nd->self_bytes);
		put_v(out, nd->self_count);
		put_v(out, nd->alloc_bytes);
		put_v(out, nd->alloc_count);
		put_v(out, nd->self_samples);
		put_v(out, nd->alloc_samples);
	}
	putc('E', out);
	free(path);
	return ms_out_check(out, "memspy profile", err);
}

/* ---- reading ---- */

struct rd {
	FILE *in;
	bool bad;
};

static uint64_t get_v(struct rd *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		int c = getc(r->in);

		if (c == EOF) {
			r->bad = true;
			return 0;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true;
	return 0;
}

/* A string (owned), NULL for none or on error. */
static char *get_s(struct rd *r)
{
	uint64_t n = get_v(r);
	char *s;

	if (r->bad || !n)
		return NULL;
	if (n - 1 > MAX_STRING) {
		r->bad = true;
		return NULL;
	}
	s = ms_xcalloc(n, 1);
	if (n > 1 && fread(s, 1, n - 1, r->in) != n - 1) {
		r->bad = true;
		free(s);
		return NULL;
	}
	return s;
}

static void frame_free(struct ms_out_frame *f)
{
	free((char *)f->function);
	free((char *)f->file);
	free((char *)f->module);
}

int ms_msprof_read(FILE *in, struct ms_profile *maps, uint32_t space, struct ms_msprof_head *head,
		   ms_msprof_stack_fn fn, void *ctx, struct ms_error *err)
{
	struct rd r = {.in = in};
	char magic[sizeof(MAGIC)];
	struct ms_out_frame *frames = NULL, *st = NULL;
	size_t n_frames = 0, cap_frames = 0, cap_st = 0;
	bool ended = false;
	int ret = 0;

	*head = (struct ms_msprof_head){0};
	if (fread(magic, 1, sizeof(MAGIC) - 1, in) != sizeof(MAGIC) - 1 ||
	    memcmp(magic, MAGIC, sizeof(MAGIC) - 1))
		return ms_error_set(err, -EINVAL, "output: not a memspy profile");
	while (!r.bad && !ended && !ret) {
		int tag = getc(in);

		switch (tag) {
		case 'H':
			head->sample_period = get_v(&r);
			head->samples = get_v(&r) & 1;
			break;
		case 'M': {
			struct ms_out_mapping m = {.space = space};
			char *path, *build_id;

			m.start = get_v(&r);
			m.limit = get_v(&r);
			m.file_offset = get_v(&r);
			path = get_s(&r);
			build_id = get_s(&r);
			m.is_main = get_v(&r) != 0;
			m.path = path;
			m.build_id = build_id;
			if (!r.bad)
				ms_profile_add_mapping(maps, &m);
			free(path);
			free(build_id);
			break;
		}
		case 'F': {
			struct ms_out_frame f = {.space = space};

			f.function = get_s(&r);
			f.file = get_s(&r);
			f.line = (int)(get_v(&r) & 0x7fffffff);
			f.module = get_s(&r);
			f.offset = get_v(&r);
			f.inlined = get_v(&r) != 0;
			f.address = get_v(&r);
			/* an interned frame without name or address is shown by name only */
			if (!f.function && !f.address && !f.module)
				f.space = 0;
			ms_xgrow((void **)&frames, &cap_frames, n_frames + 1, sizeof(*frames));
			frames[n_frames++] = f;
			break;
		}
		case 'S': {
			struct ms_msprof_stack s = {0};
			uint64_t depth = get_v(&r);

			if (r.bad || depth > MAX_DEPTH) {
				r.bad = true;
				break;
			}
			ms_xgrow((void **)&st, &cap_st, depth + 1, sizeof(*st));
			for (uint64_t k = 0; k < depth && !r.bad; k++) {
				uint64_t id = get_v(&r);

				if (id >= n_frames)
					r.bad = true;
				else
					st[k] = frames[id];
			}
			s.frames = st;
			s.n = (size_t)depth;
			s.bytes = get_v(&r);
			s.count = get_v(&r);
			s.alloc_bytes = get_v(&r);
			s.alloc_count = get_v(&r);
			s.samples = get_v(&r);
			s.alloc_samples = get_v(&r);
			if (!r.bad)
				ret = fn(ctx, &s);
			break;
		}
		case 'E':
			ended = true;
			break;
		default:
			r.bad = true;
			break;
		}
	}
	for (size_t i = 0; i < n_frames; i++)
		frame_free(&frames[i]);
	free(frames);
	free(st);
	if (ret)
		return ret;
	if (r.bad || !ended)
		return ms_error_set(err, -EINVAL, "output: a memspy profile is %s",
				    ended ? "malformed" : "cut short");
	return 0;
}
