// SPDX-License-Identifier: MIT
/*
 * output/pprof: gzip'd profile.proto (github.com/google/pprof), encoded by hand,
 * with Go's heap profile sample types so `go tool pprof`, Pyroscope and Parca
 * read it: alloc_objects/alloc_space, plus inuse_objects/inuse_space for the
 * live view. Every location has its address and mapping; mappings carry the
 * address range, file offset, path and build id, so a tool can symbolise
 * what memspy could not (frames without a name are left as addresses).
 */
#include "output/output_int.h"

#include <errno.h>
#include <inttypes.h>
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
	SAMPLE_LABEL = 3,
	LABEL_KEY = 1,
	LABEL_NUM = 3,
	MAP_ID = 1,
	MAP_MEMORY_START = 2,
	MAP_MEMORY_LIMIT = 3,
	MAP_FILE_OFFSET = 4,
	MAP_FILENAME = 5,
	MAP_BUILD_ID = 6,
	MAP_HAS_FUNCTIONS = 7,
	MAP_HAS_FILENAMES = 8,
	MAP_HAS_LINE_NUMBERS = 9,
	MAP_HAS_INLINE_FRAMES = 10,
	LOC_ID = 1,
	LOC_MAPPING_ID = 2,
	LOC_ADDRESS = 3,
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

static uint64_t str_id_valid(struct strtab *t, const char *s);

/*
 * profile.proto's strings are proto3 strings: a reader built on Go's
 * protobuf (Parca, Pyroscope) refuses the whole profile when one is not
 * UTF-8, and names come from the target's binaries (any bytes).
 */
static uint64_t str_id(struct strtab *t, const char *s)
{
	char *fixed;
	uint64_t id;

	if (!s || ms_utf8_valid(s))
		return str_id_valid(t, s);
	fixed = ms_utf8_fix(s);
	id = str_id_valid(t, fixed);
	free(fixed);
	return id;
}

static uint64_t str_id_valid(struct strtab *t, const char *s)
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

/* ---- mappings: the modules' executable mappings, the executable first ---- */

struct map_out {
	const struct ms_pmapping *pm; /* NULL: known only by the frames' module name */
	const char *name;	      /* pm->path or the module name */
	bool used, all_functions, all_filenames, all_lines;
	bool placed;   /* written */
	bool is_main;  /* a copy of it in another process is the executable */
	size_t dup_of; /* the same mapping in another process (index + 1): written once */
};

struct maptab {
	struct map_out *v;
	size_t n, cap;
};

/* The mapping (index + 1) of a location whose frame is f; 0 for none. */
static size_t map_of(struct maptab *mt, const struct ms_pframe *f)
{
	if (f->address) {
		for (size_t i = 0; i < mt->n; i++) {
			const struct ms_pmapping *pm = mt->v[i].pm;

			if (pm && pm->space == f->space && f->address >= pm->start &&
			    f->address < pm->limit)
				return i + 1;
		}
	}
	if (!f->module)
		return 0;
	/* no address range known for it: a mapping by name only, as folded input gives */
	for (size_t i = 0; i < mt->n; i++)
		if (!mt->v[i].pm && !strcmp(mt->v[i].name, f->module))
			return i + 1;
	ms_xgrow((void **)&mt->v, &mt->cap, mt->n + 1, sizeof(*mt->v));
	mt->v[mt->n] = (struct map_out){.name = f->module};
	return ++mt->n;
}

static bool is_main_mapping(const struct map_out *mo, const struct ms_out_opts *o)
{
	const char *base;

	if (mo->pm)
		return mo->pm->is_main || mo->is_main;
	if (!o->main_module)
		return false;
	base = strrchr(mo->name, '/');
	return !strcmp(base ? base + 1 : mo->name, o->main_module);
}

/*
 * has_functions and friends say what memspy resolved for every location of
 * the mapping: Pyroscope and go tool pprof symbolise a mapping again (from a
 * binary or debuginfod, by build id) only where these are false.
 */
static void put_mapping(struct buf *pb, struct buf *m, struct strtab *st, uint64_t id,
			const struct map_out *mo)
{
	put_uint(m, MAP_ID, id);
	if (mo->pm) {
		put_uint(m, MAP_MEMORY_START, mo->pm->start);
		put_uint(m, MAP_MEMORY_LIMIT, mo->pm->limit);
		put_uint(m, MAP_FILE_OFFSET, mo->pm->file_offset);
	}
	put_uint(m, MAP_FILENAME, str_id(st, mo->name));
	if (mo->pm)
		put_uint(m, MAP_BUILD_ID, str_id(st, mo->pm->build_id));
	put_uint(m, MAP_HAS_FUNCTIONS, mo->used && mo->all_functions);
	put_uint(m, MAP_HAS_FILENAMES, mo->used && mo->all_filenames);
	put_uint(m, MAP_HAS_LINE_NUMBERS, mo->used && mo->all_lines);
	/* inlined frames come from the same DWARF as the line numbers */
	put_uint(m, MAP_HAS_INLINE_FRAMES, mo->used && mo->all_lines);
	put_msg(pb, PROF_MAPPING, m);
}

/* A frame left as an address for tools to symbolise: no name, but a place. */
static bool frame_unresolved(const struct ms_pframe *f)
{
	return !f->function && f->address;
}

static void put_label_num(struct buf *b, struct buf *sub, struct strtab *st, const char *key,
			  uint64_t num)
{
	put_uint(sub, LABEL_KEY, str_id(st, key));
	put_uint(sub, LABEL_NUM, num);
	put_msg(b, SAMPLE_LABEL, sub);
}

int ms_pprof_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		   struct ms_error *err)
{
	const struct ms_tree *t = &p->tree;
	struct strtab st = {0}, fns = {0};
	struct loctab lt = {0};
	struct maptab mt = {0};
	struct buf pb = {0}, m = {0}, sub = {0}, lab = {0};
	uint64_t *fn_ids, *locs = NULL, values[4], *map_ids = NULL;
	uint32_t *path = NULL, *group = NULL;
	size_t cap_locs = 0, cap_path = 0, cap_group = 0, n_fns = 0, n_values;
	char *count_type = o->count_name ? ms_xasprintf("%ss", o->count_name) : NULL;
	/* a live profile also carries what each stack allocated in all, as Go's heap
	 * profiles do (an empty one declares them too, so files stay comparable) */
	bool four = o->live && !count_type && (p->has_alloc || p->tree.n <= 1);
	const char *objects = count_type ? count_type : o->live ? "inuse_objects" : "alloc_objects";
	const char *space = o->live ? "inuse_space" : "alloc_space";
	int ret;

	str_id(&st, "");
	/* sample types in Go's order: the count before the bytes */
	if (four) {
		put_uint(&m, VT_TYPE, str_id(&st, "alloc_objects"));
		put_uint(&m, VT_UNIT, str_id(&st, "count"));
		put_msg(&pb, PROF_SAMPLE_TYPE, &m);
		put_uint(&m, VT_TYPE, str_id(&st, "alloc_space"));
		put_uint(&m, VT_UNIT, str_id(&st, "bytes"));
		put_msg(&pb, PROF_SAMPLE_TYPE, &m);
	}
	put_uint(&m, VT_TYPE, str_id(&st, objects));
	put_uint(&m, VT_UNIT, str_id(&st, "count"));
	put_msg(&pb, PROF_SAMPLE_TYPE, &m);
	put_uint(&m, VT_TYPE, str_id(&st, space));
	put_uint(&m, VT_UNIT, str_id(&st, "bytes"));
	put_msg(&pb, PROF_SAMPLE_TYPE, &m);
	n_values = four ? 4 : 2;

	/* the recorded mappings first, so a location finds its own by address */
	for (size_t i = 0; i < p->n_mappings; i++) {
		ms_xgrow((void **)&mt.v, &mt.cap, mt.n + 1, sizeof(*mt.v));
		mt.v[mt.n++] = (struct map_out){.pm = &p->mappings[i], .name = p->mappings[i].path};
	}

	/* functions: one per distinct name+file, for the frames that have a name */
	fn_ids = ms_xcalloc(p->n_frames + 1, sizeof(*fn_ids));
	for (size_t i = 0; i < p->n_frames; i++) {
		const struct ms_pframe *f = &p->frames[i];
		char *name, *key;
		uint64_t k;

		if (frame_unresolved(f))
			continue;
		/* "[unknown]" or module+0xOFFSET where no address is known (folded input) */
		name = ms_frame_text(f, false);
		key = ms_xasprintf("%s%c%s", name, 1, f->file ? f->file : "");
		k = str_id(&fns, key);
		if (k + 1 > n_fns) {
			n_fns = k + 1;
			put_uint(&m, FN_ID, k + 1);
			put_uint(&m, FN_NAME, str_id(&st, name));
			put_uint(&m, FN_SYSTEM_NAME, str_id(&st, name));
			put_uint(&m, FN_FILENAME, str_id(&st, f->file));
			put_msg(&pb, PROF_FUNCTION, &m);
		}
		fn_ids[i] = k + 1;
		free(key);
		free(name);
	}

	/* samples: one per stack with its own values; location ids leaf first */
	for (size_t i = 1; i < t->n; i++) {
		const struct ms_tnode *nd = &t->nodes[i];
		size_t depth = 0, n_locs = 0, n_group = 0;
		uint64_t block_bytes, block_count;

		if (!nd->self_bytes && !nd->self_count && !nd->alloc_bytes && !nd->alloc_count)
			continue;
		if (!four && !nd->self_bytes && !nd->self_count)
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
		if (four) {
			values[0] = nd->alloc_count;
			values[1] = nd->alloc_bytes;
			values[2] = nd->self_count;
			values[3] = nd->self_bytes;
		} else {
			values[0] = nd->self_count;
			values[1] = nd->self_bytes;
		}
		put_packed(&m, SAMPLE_VALUE, values, n_values);
		/* Go's heap profiles label each sample with its block size: the
		 * stack's mean, as Go's own (bytes over objects of its bucket) */
		block_bytes = four ? nd->alloc_bytes : nd->self_bytes;
		block_count = four ? nd->alloc_count : nd->self_count;
		if (!count_type && block_count && block_bytes)
			put_label_num(&m, &lab, &st, "bytes", block_bytes / block_count);
		put_msg(&pb, PROF_SAMPLE, &m);
	}

	/* locations, each with its address and mapping; what each mapping resolved */
	map_ids = ms_xcalloc(lt.n + 1, sizeof(*map_ids));
	for (size_t i = 0; i < lt.n; i++) {
		const uint32_t *f = lt.frames + lt.start[i];
		size_t n = lt.start[i + 1] - lt.start[i];
		/* the location's own (outermost) frame is the last one */
		const struct ms_pframe *own = &p->frames[f[n - 1]];
		size_t mi = map_of(&mt, own);

		map_ids[i] = mi;
		if (mi) {
			struct map_out *mo = &mt.v[mi - 1];

			if (!mo->used)
				mo->all_functions = mo->all_filenames = mo->all_lines = true;
			mo->used = true;
			for (size_t k = 0; k < n; k++) {
				const struct ms_pframe *pf = &p->frames[f[k]];

				mo->all_functions &= pf->function != NULL;
				mo->all_filenames &= pf->file != NULL;
				mo->all_lines &= pf->line > 0;
			}
		}
	}
	/*
	 * Several processes (--subprocesses): a mapping the same in several of
	 * them (workers forked from one master) is written once, resolved where
	 * each of its copies was.
	 */
	{
		struct strtab keys = {0};
		size_t *first = ms_xcalloc(mt.n + 1, sizeof(*first));

		for (size_t i = 0; i < mt.n; i++) {
			struct map_out *mo = &mt.v[i], *c;
			char *key;
			uint64_t k;

			if (!mo->pm)
				continue;
			key = ms_xasprintf("%" PRIx64 "-%" PRIx64 "-%" PRIx64 "%c%s%c%s",
					   mo->pm->start, mo->pm->limit, mo->pm->file_offset, 1,
					   mo->name, 1, mo->pm->build_id);
			k = str_id(&keys, key);
			free(key);
			if (!first[k]) {
				first[k] = i + 1;
				continue;
			}
			c = &mt.v[first[k] - 1];
			mo->dup_of = first[k];
			if (!mo->used)
				continue;
			if (!c->used) {
				c->all_functions = mo->all_functions;
				c->all_filenames = mo->all_filenames;
				c->all_lines = mo->all_lines;
			} else {
				c->all_functions &= mo->all_functions;
				c->all_filenames &= mo->all_filenames;
				c->all_lines &= mo->all_lines;
			}
			c->used = true;
			c->is_main |= mo->pm->is_main;
		}
		for (size_t i = 0; i < keys.n; i++)
			free(keys.s[i]);
		free(keys.s);
		free(keys.ht);
		free(first);
	}
	/* pprof takes the first mapping for the main binary ("File:") */
	{
		size_t next_id = 1;
		uint64_t *id_of = ms_xcalloc(mt.n + 1, sizeof(*id_of));

		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < mt.n; i++) {
				struct map_out *mo = &mt.v[i];

				if (mo->placed || mo->dup_of ||
				    (pass == 0 && !is_main_mapping(mo, o)) ||
				    (pass == 1 && !mo->used))
					continue;
				mo->placed = true;
				id_of[i + 1] = next_id;
				put_mapping(&pb, &m, &st, next_id++, mo);
			}
		}
		for (size_t i = 0; i < mt.n; i++)
			if (mt.v[i].dup_of)
				id_of[i + 1] = id_of[mt.v[i].dup_of];
		for (size_t i = 0; i < lt.n; i++)
			map_ids[i] = id_of[map_ids[i]];
		free(id_of);
	}
	for (size_t i = 0; i < lt.n; i++) {
		const uint32_t *f = lt.frames + lt.start[i];
		size_t n = lt.start[i + 1] - lt.start[i];
		const struct ms_pframe *own = &p->frames[f[n - 1]];

		put_uint(&m, LOC_ID, i + 1);
		put_uint(&m, LOC_MAPPING_ID, map_ids[i]);
		put_uint(&m, LOC_ADDRESS, own->address);
		for (size_t k = 0; k < n; k++) {
			/* an unresolved frame is its address alone: tools symbolise it later */
			if (frame_unresolved(&p->frames[f[k]]))
				continue;
			put_uint(&sub, LINE_FUNCTION_ID, fn_ids[f[k]]);
			put_uint(&sub, LINE_LINE,
				 p->frames[f[k]].line > 0 ? (uint64_t)p->frames[f[k]].line : 0);
			put_msg(&m, LOC_LINE, &sub);
		}
		put_msg(&pb, PROF_LOCATION, &m);
	}

	put_uint(&pb, PROF_TIME_NANOS, o->time_ns);
	put_uint(&pb, PROF_DURATION_NANOS, o->duration_ns);
	/* sampled by bytes whichever value is shown: --count changes the default
	 * sample type, not what the period counts. Exact recording: every byte. */
	put_uint(&m, VT_TYPE, str_id(&st, count_type ? o->count_name : "space"));
	put_uint(&m, VT_UNIT, str_id(&st, count_type ? "count" : "bytes"));
	put_msg(&pb, PROF_PERIOD_TYPE, &m);
	put_uint(&pb, PROF_PERIOD, count_type ? 1 : o->sample_period ? o->sample_period : 1);
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
	for (size_t i = 0; i < fns.n; i++)
		free(fns.s[i]);
	free(st.s);
	free(st.ht);
	free(fns.s);
	free(fns.ht);
	free(mt.v);
	free(lt.frames);
	free(lt.start);
	free(lt.ht);
	free(pb.d);
	free(m.d);
	free(sub.d);
	free(lab.d);
	free(fn_ids);
	free(map_ids);
	free(locs);
	free(path);
	free(group);
	free(count_type);
	return ret;
}
