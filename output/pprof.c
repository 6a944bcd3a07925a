// SPDX-License-Identifier: MIT
/*
 * output/pprof: gzip'd profile.proto (github.com/google/pprof), encoded by hand,
 * with Go's heap profile sample types so `go tool pprof`, Pyroscope and Parca
 * read it: alloc_objects/alloc_space, or inuse_objects/inuse_space (live view).
 */
#include "output/output_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* profile.proto field numbers */
enum {
	PROF_SAMPLE_TYPE = 1,
	PROF_SAMPLE = 2,
	PROF_MAPPING = 3,
	PROF_LOCATION = 4,
	PROF_FUNCTION = 5,
	PROF_STRING_TABLE = 6,
	PROF_TIME_NANOS = 9,
	PROF_DURATION_NANOS = 10,
	PROF_PERIOD_TYPE = 11,
	PROF_PERIOD = 12,
	PROF_COMMENT = 13,
	PROF_DEFAULT_SAMPLE_TYPE = 14,
	VT_TYPE = 1,
	VT_UNIT = 2,
	SAMPLE_LOCATION_ID = 1,
	SAMPLE_VALUE = 2,
	MAP_ID = 1,
	MAP_FILENAME = 5,
	MAP_HAS_FUNCTIONS = 7,
	MAP_HAS_FILENAMES = 8,
	MAP_HAS_LINE_NUMBERS = 9,
	MAP_HAS_INLINE_FRAMES = 10,
	LOC_ID = 1,
	LOC_MAPPING_ID = 2,
	LOC_LINE = 4,
	LINE_FUNCTION_ID = 1,
	LINE_LINE = 2,
	FN_ID = 1,
	FN_NAME = 2,
	FN_SYSTEM_NAME = 3,
	FN_FILENAME = 4,
};

enum { WT_VARINT = 0, WT_LEN = 2 };

struct buf {
	uint8_t *d;
	size_t n, cap;
};

static void put_raw(struct buf *b, const void *p, size_t n)
{
	ms_xgrow((void **)&b->d, &b->cap, b->n + n + 1, 1);
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void put_varint(struct buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	put_raw(b, tmp, n);
}

static void put_key(struct buf *b, unsigned field, unsigned wt)
{
	put_varint(b, (uint64_t)field << 3 | wt);
}

/* proto3: zero is the default and is not written */
static void put_uint(struct buf *b, unsigned field, uint64_t v)
{
	if (!v)
		return;
	put_key(b, field, WT_VARINT);
	put_varint(b, v);
}

static void put_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
	put_key(b, field, WT_LEN);
	put_varint(b, n);
	put_raw(b, p, n);
}

static void put_msg(struct buf *b, unsigned field, struct buf *m)
{
	put_bytes(b, field, m->d, m->n);
	m->n = 0;
}

static void put_packed(struct buf *b, unsigned field, const uint64_t *v, size_t n)
{
	struct buf m = {0};

	for (size_t i = 0; i < n; i++)
		put_varint(&m, v[i]);
	if (n)
		put_bytes(b, field, m.d, m.n);
	free(m.d);
}

/* ---- the string table: index 0 is "" ---- */

struct strtab {
	char **s;
	size_t n, cap;
	uint32_t *ht;
	size_t ht_cap;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 31);
}

static uint64_t str_id(struct strtab *t, const char *s)
{
	size_t i;

	if (!s)
		s = "";
	if (t->n * 2 >= t->ht_cap) {
		size_t ncap = t->ht_cap ? t->ht_cap * 2 : 64;
		uint32_t *ht = ms_xcalloc(ncap, sizeof(*ht));

		for (size_t k = 0; k < t->n; k++) {
			for (i = str_hash(t->s[k]) & (ncap - 1); ht[i]; i = (i + 1) & (ncap - 1))
				;
			ht[i] = (uint32_t)k + 1;
		}
		free(t->ht);
		t->ht = ht;
		t->ht_cap = ncap;
	}
	for (i = str_hash(s) & (t->ht_cap - 1); t->ht[i]; i = (i + 1) & (t->ht_cap - 1))
		if (strcmp(t->s[t->ht[i] - 1], s) == 0)
			return t->ht[i] - 1;
	ms_xgrow((void **)&t->s, &t->cap, t->n + 1, sizeof(*t->s));
	t->s[t->n] = ms_xstrdup(s);
	t->ht[i] = (uint32_t)t->n + 1;
	return t->n++;
}

/* ---- locations: a frame plus the frames inlined into it ---- */

struct loctab {
	uint32_t *frames; /* flat: the frames of each location, leaf first */
	size_t n_frames, cap_frames;
	size_t *start; /* location i: frames[start[i] .. start[i+1]) */
	size_t n, cap_start;
	uint32_t *ht;
	size_t ht_cap;
};

static uint64_t seq_hash(const uint32_t *f, size_t n)
{
	uint64_t h = 0x84222325cbf29ce4ull ^ n;

	for (size_t i = 0; i < n; i++) {
		h ^= f[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

/* The 1-based id of the location made of frames f[0..n) (leaf first). */
static uint64_t loc_id(struct loctab *t, const uint32_t *f, size_t n)
{
	size_t i;

	if (t->n * 2 >= t->ht_cap) {
		size_t ncap = t->ht_cap ? t->ht_cap * 2 : 64;
		uint32_t *ht = ms_xcalloc(ncap, sizeof(*ht));

		for (size_t k = 0; k < t->n; k++) {
			const uint32_t *kf = t->frames + t->start[k];

			for (i = seq_hash(kf, t->start[k + 1] - t->start[k]) & (ncap - 1); ht[i];
			     i = (i + 1) & (ncap - 1))
				;
			ht[i] = (uint32_t)k + 1;
		}
		free(t->ht);
		t->ht = ht;
		t->ht_cap = ncap;
	}
	for (i = seq_hash(f, n) & (t->ht_cap - 1); t->ht[i]; i = (i + 1) & (t->ht_cap - 1)) {
		size_t k = t->ht[i] - 1;

		if (t->start[k + 1] - t->start[k] == n &&
		    memcmp(t->frames + t->start[k], f, n * sizeof(*f)) == 0)
			return k + 1;
	}
	if (t->n == 0) {
		ms_xgrow((void **)&t->start, &t->cap_start, 1, sizeof(*t->start));
		t->start[0] = 0;
	}
	ms_xgrow((void **)&t->frames, &t->cap_frames, t->n_frames + n, sizeof(*t->frames));
	memcpy(t->frames + t->n_frames, f, n * sizeof(*f));
	t->n_frames += n;
	ms_xgrow((void **)&t->start, &t->cap_start, t->n + 2, sizeof(*t->start));
	t->start[t->n + 1] = t->n_frames;
	t->ht[i] = (uint32_t)t->n + 1;
	return ++t->n;
}

static int gzip_out(const struct buf *b, FILE *out, struct ms_error *err)
{
	z_stream z;
	uint8_t chunk[65536];
	int zr;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper, with a zero mtime so output is deterministic */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return ms_error_set(err, -ENOMEM, "output: pprof: zlib deflateInit2 failed");
	z.next_in = b->d;
	z.avail_in = (uInt)b->n;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zr = deflate(&z, Z_FINISH);
		if (zr == Z_STREAM_ERROR)
			break;
		fwrite(chunk, 1, sizeof(chunk) - z.avail_out, out);
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
	if (zr != Z_STREAM_END)
		return ms_error_set(err, -EIO, "output: pprof: zlib compression failed");
	return ms_out_check(out, "pprof profile", err);
}

static void put_mapping(struct buf *pb, struct buf *m, struct strtab *st, uint64_t id,
			const char *module)
{
	put_uint(m, MAP_ID, id);
	put_uint(m, MAP_FILENAME, str_id(st, module));
	put_uint(m, MAP_HAS_FUNCTIONS, 1);
	put_uint(m, MAP_HAS_FILENAMES, 1);
	put_uint(m, MAP_HAS_LINE_NUMBERS, 1);
	put_uint(m, MAP_HAS_INLINE_FRAMES, 1);
	put_msg(pb, PROF_MAPPING, m);
}

int ms_pprof_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		   struct ms_error *err)
{
	const struct ms_tree *t = &p->tree;
	struct strtab st = {0};
	struct loctab lt = {0};
	struct buf pb = {0}, m = {0}, sub = {0};
	uint64_t *fn_ids, *map_ids, *locs = NULL, values[2];
	uint32_t *path = NULL, *group = NULL;
	size_t cap_locs = 0, cap_path = 0, cap_group = 0, n_maps = 0;
	char *count_type = o->count_name ? ms_xasprintf("%ss", o->count_name) : NULL;
	const char *objects = count_type ? count_type : o->live ? "inuse_objects" : "alloc_objects";
	const char *space = o->live ? "inuse_space" : "alloc_space";
	int ret;

	str_id(&st, "");
	/* sample types: the count first, by pprof convention */
	put_uint(&m, VT_TYPE, str_id(&st, objects));
	put_uint(&m, VT_UNIT, str_id(&st, "count"));
	put_msg(&pb, PROF_SAMPLE_TYPE, &m);
	put_uint(&m, VT_TYPE, str_id(&st, space));
	put_uint(&m, VT_UNIT, str_id(&st, "bytes"));
	put_msg(&pb, PROF_SAMPLE_TYPE, &m);

	/* mappings (one per module) and functions (one per distinct name+file) */
	fn_ids = ms_xcalloc(p->n_frames + 1, sizeof(*fn_ids));
	map_ids = ms_xcalloc(p->n_frames + 1, sizeof(*map_ids));
	{
		struct strtab fns = {0}, mods = {0};
		size_t n_fns = 0;

		/* pprof takes the first mapping for the main binary */
		for (size_t i = 0; o->main_module && i < p->n_frames; i++) {
			if (p->frames[i].module && !strcmp(p->frames[i].module, o->main_module)) {
				n_maps = str_id(&mods, o->main_module) + 1;
				put_mapping(&pb, &m, &st, 1, o->main_module);
				break;
			}
		}
		for (size_t i = 0; i < p->n_frames; i++) {
			const struct ms_pframe *f = &p->frames[i];
			char *name = ms_frame_text(f, false);
			char *key = ms_xasprintf("%s%c%s", name, 1, f->file ? f->file : "");
			uint64_t k = str_id(&fns, key);

			if (k + 1 > n_fns) {
				n_fns = k + 1;
				put_uint(&m, FN_ID, k + 1);
				put_uint(&m, FN_NAME, str_id(&st, name));
				put_uint(&m, FN_SYSTEM_NAME, str_id(&st, name));
				put_uint(&m, FN_FILENAME, str_id(&st, f->file));
				put_msg(&pb, PROF_FUNCTION, &m);
			}
			fn_ids[i] = k + 1;
			if (f->module) {
				k = str_id(&mods, f->module);
				if (k + 1 > n_maps) {
					n_maps = k + 1;
					put_mapping(&pb, &m, &st, k + 1, f->module);
				}
				map_ids[i] = k + 1;
			}
			free(key);
			free(name);
		}
		for (size_t i = 0; i < fns.n; i++)
			free(fns.s[i]);
		for (size_t i = 0; i < mods.n; i++)
			free(mods.s[i]);
		free(fns.s);
		free(fns.ht);
		free(mods.s);
		free(mods.ht);
	}

	/* samples: one per stack with its own value; location ids leaf first */
	for (size_t i = 1; i < t->n; i++) {
		const struct ms_tnode *nd = &t->nodes[i];
		size_t depth = 0, n_locs = 0, n_group = 0;

		if (!nd->self_bytes && !nd->self_count)
			continue;
		for (uint32_t k = (uint32_t)i; k != MS_TREE_ROOT; k = t->nodes[k].parent) {
			ms_xgrow((void **)&path, &cap_path, depth + 1, sizeof(*path));
			path[depth++] = t->nodes[k].sym;
		}
		/* path is leaf first; an inlined frame belongs to the location of its caller */
		for (size_t k = 0; k < depth; k++) {
			ms_xgrow((void **)&group, &cap_group, n_group + 1, sizeof(*group));
			group[n_group++] = path[k];
			if (p->frames[path[k]].inlined && k + 1 < depth)
				continue;
			ms_xgrow((void **)&locs, &cap_locs, n_locs + 1, sizeof(*locs));
			locs[n_locs++] = loc_id(&lt, group, n_group);
			n_group = 0;
		}
		put_packed(&m, SAMPLE_LOCATION_ID, locs, n_locs);
		values[0] = nd->self_count;
		values[1] = nd->self_bytes;
		put_packed(&m, SAMPLE_VALUE, values, 2);
		put_msg(&pb, PROF_SAMPLE, &m);
	}
	for (size_t i = 0; i < lt.n; i++) {
		const uint32_t *f = lt.frames + lt.start[i];
		size_t n = lt.start[i + 1] - lt.start[i];

		put_uint(&m, LOC_ID, i + 1);
		/* the location's own (outermost) frame is the last one */
		put_uint(&m, LOC_MAPPING_ID, map_ids[f[n - 1]]);
		for (size_t k = 0; k < n; k++) {
			put_uint(&sub, LINE_FUNCTION_ID, fn_ids[f[k]]);
			put_uint(&sub, LINE_LINE,
				 p->frames[f[k]].line > 0 ? (uint64_t)p->frames[f[k]].line : 0);
			put_msg(&m, LOC_LINE, &sub);
		}
		put_msg(&pb, PROF_LOCATION, &m);
	}

	put_uint(&pb, PROF_TIME_NANOS, o->time_ns);
	put_uint(&pb, PROF_DURATION_NANOS, o->duration_ns);
	put_uint(&m, VT_TYPE, str_id(&st, "space"));
	put_uint(&m, VT_UNIT, str_id(&st, "bytes"));
	put_msg(&pb, PROF_PERIOD_TYPE, &m);
	put_uint(&pb, PROF_PERIOD, o->sample_period);
	if (o->title)
		put_uint(&pb, PROF_COMMENT, str_id(&st, o->title));
	if (o->subtitle)
		put_uint(&pb, PROF_COMMENT, str_id(&st, o->subtitle));
	put_uint(&pb, PROF_DEFAULT_SAMPLE_TYPE,
		 str_id(&st, o->value == MS_VALUE_COUNT ? objects : space));
	/* the table last: every string is known by now */
	for (size_t i = 0; i < st.n; i++)
		put_bytes(&pb, PROF_STRING_TABLE, st.s[i], strlen(st.s[i]));

	ret = gzip_out(&pb, out, err);

	for (size_t i = 0; i < st.n; i++)
		free(st.s[i]);
	free(st.s);
	free(st.ht);
	free(lt.frames);
	free(lt.start);
	free(lt.ht);
	free(pb.d);
	free(m.d);
	free(sub.d);
	free(fn_ids);
	free(map_ids);
	free(locs);
	free(path);
	free(group);
	free(count_type);
	return ret;
}
