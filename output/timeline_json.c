// SPDX-License-Identifier: MIT
/*
 * output/timeline: the sample store shared by both timeline writers, the
 * growth-interval finder, and the JSON writer (jansson).
 */
#include "output/timeline.h"
#include "output/timeline_int.h"
#include "output/json_text.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
	return s ? ms_xstrdup(s) : NULL;
}

struct ms_timeline *ms_timeline_new(const struct ms_tl_info *info)
{
	struct ms_timeline *t = ms_xcalloc(1, sizeof(*t));

	if (info) {
		t->info = *info;
		t->info.comm = dup_or_null(info->comm);
		t->info.command = dup_or_null(info->command);
		t->info.allocator = dup_or_null(info->allocator);
		t->info.note = dup_or_null(info->note);
	}
	return t;
}

void ms_timeline_free(struct ms_timeline *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free((void *)t->s[i].arenas);
	free(t->s);
	free(t->arena_addr);
	free((void *)t->info.comm);
	free((void *)t->info.command);
	free((void *)t->info.allocator);
	free((void *)t->info.note);
	free(t);
}

static size_t arena_index(struct ms_timeline *t, ms_raddr_t addr)
{
	for (size_t i = 0; i < t->narena_addr; i++)
		if (t->arena_addr[i] == addr)
			return i;
	ms_xgrow((void **)&t->arena_addr, &t->arena_cap, t->narena_addr + 1,
		 sizeof(*t->arena_addr));
	t->arena_addr[t->narena_addr] = addr;
	return t->narena_addr++;
}

void ms_timeline_add(struct ms_timeline *t, const struct ms_tl_sample *s)
{
	struct ms_tl_sample *d;
	struct ms_tl_arena *a = NULL;

	ms_xgrow((void **)&t->s, &t->cap, t->n + 1, sizeof(*t->s));
	d = &t->s[t->n++];
	*d = *s;
	if (s->narenas) {
		a = ms_xcalloc(s->narenas, sizeof(*a));
		memcpy(a, s->arenas, s->narenas * sizeof(*a));
		for (size_t i = 0; i < s->narenas; i++)
			arena_index(t, a[i].addr);
	}
	d->arenas = a;
}

size_t ms_timeline_nsamples(const struct ms_timeline *t)
{
	return t->n;
}

void ms_timeline_set_duration(struct ms_timeline *t, uint64_t ns)
{
	t->duration_ns = ns;
}

const struct ms_tl_sample *ms_timeline_sample(const struct ms_timeline *t, size_t i)
{
	return i < t->n ? &t->s[i] : NULL;
}

size_t ms_tl_arena_id(const struct ms_timeline *t, ms_raddr_t addr)
{
	for (size_t i = 0; i < t->narena_addr; i++)
		if (t->arena_addr[i] == addr)
			return i;
	return 0;
}

bool ms_tl_has_heap(const struct ms_timeline *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->s[i].heap)
			return true;
	return false;
}

/*
 * The footprint whose growth is marked: what the program holds from the
 * allocator (in use + mmapped) when the heap was read, else RSS. Samples
 * without heap figures are skipped when there are heap figures at all, so
 * a skipped read does not look like a drop.
 */
static bool footprint(const struct ms_timeline *t, size_t i, bool heap, uint64_t *v)
{
	const struct ms_tl_sample *s = &t->s[i];

	if (heap) {
		if (!s->heap)
			return false;
		*v = s->total.in_use + s->total.mmapped;
	} else {
		*v = s->total.rss;
	}
	return true;
}

static int cmp_growth(const void *a, const void *b)
{
	const struct ms_tl_growth *x = a, *y = b;
	uint64_t gx = x->to - x->from, gy = y->to - y->from;

	if (gx != gy)
		return gx > gy ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

size_t ms_timeline_growth(const struct ms_timeline *t, struct ms_tl_growth *out, size_t max)
{
	bool heap = ms_tl_has_heap(t);
	struct ms_tl_growth *runs = NULL;
	size_t nruns = 0, cap = 0, prev = SIZE_MAX, start = SIZE_MAX, n;
	uint64_t peak = 0, pv = 0, sv = 0;

	for (size_t i = 0; i < t->n; i++) {
		uint64_t v;

		if (footprint(t, i, heap, &v) && v > peak)
			peak = v;
	}
	for (size_t i = 0; i <= t->n; i++) {
		uint64_t v = 0;
		bool have = i < t->n && footprint(t, i, heap, &v);

		if (i < t->n && !have)
			continue;
		/* A run ends where the footprint falls, or at the end. */
		if (start != SIZE_MAX && (!have || v < pv)) {
			if (pv > sv && pv - sv >= peak / 100) {
				ms_xgrow((void **)&runs, &cap, nruns + 1, sizeof(*runs));
				runs[nruns++] = (struct ms_tl_growth){
				    .first = start,
				    .last = prev,
				    .t0_ns = t->s[start].t_ns,
				    .t1_ns = t->s[prev].t_ns,
				    .from = sv,
				    .to = pv,
				    .series = heap ? "in_use+mmapped" : "rss"};
			}
			start = SIZE_MAX;
		}
		if (!have)
			break;
		if (start == SIZE_MAX) {
			start = i;
			sv = v;
		}
		prev = i;
		pv = v;
	}
	if (nruns)
		qsort(runs, nruns, sizeof(*runs), cmp_growth);
	n = MS_MIN(nruns, max);
	if (n)
		memcpy(out, runs, n * sizeof(*out));
	free(runs);
	return n;
}

int ms_tl_format_from_name(const char *s, enum ms_tl_format *out)
{
	const char *dot = strrchr(s, '.');
	const char *ext = dot ? dot + 1 : s;

	if (!strcasecmp(ext, "json")) {
		*out = MS_TL_JSON;
		return 0;
	}
	if (!strcasecmp(ext, "svg")) {
		*out = MS_TL_SVG;
		return 0;
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------ JSON */

static json_t *hex(ms_raddr_t a)
{
	char b[32];

	snprintf(b, sizeof(b), "0x%" PRIx64, a);
	return json_string(b);
}

static json_t *num(uint64_t v)
{
	/* jansson integers are signed 64-bit; byte counts never come near. */
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void put_values(json_t *o, const struct ms_tl_values *v, bool heap, bool process)
{
	if (heap) {
		json_object_set_new(o, "in_use", num(v->in_use));
		json_object_set_new(o, "free", num(v->free));
		json_object_set_new(o, "top", num(v->top));
		json_object_set_new(o, "tcache", num(v->tcache));
		if (process)
			json_object_set_new(o, "mmapped", num(v->mmapped));
		json_object_set_new(o, "system", num(v->system));
	}
	if (process)
		json_object_set_new(o, "rss", num(v->rss));
}

static json_t *to_json(const struct ms_timeline *t)
{
	struct ms_tl_growth g[8];
	size_t ng = ms_timeline_growth(t, g, MS_ARRAY_SIZE(g));
	json_t *root = json_object(), *arenas = json_array(), *samples = json_array(),
	       *growth = json_array(), *units = json_object();

	json_object_set_new(root, "memspy_timeline", json_integer(1));
	json_object_set_new(root, "pid", json_integer(t->info.pid));
	if (t->info.comm)
		json_object_set_new(root, "comm", ms_out_json_text(t->info.comm));
	if (t->info.command)
		json_object_set_new(root, "command", ms_out_json_text(t->info.command));
	json_object_set_new(root, "allocator",
			    ms_out_json_text(t->info.allocator ? t->info.allocator : "unknown"));
	json_object_set_new(root, "heap", json_boolean(ms_tl_has_heap(t)));
	if (t->info.note)
		json_object_set_new(root, "note", ms_out_json_text(t->info.note));
	json_object_set_new(root, "interval_s", json_real((double)t->info.interval_ns / 1e9));
	json_object_set_new(units, "t", json_string("seconds since the start of the recording"));
	json_object_set_new(units, "values", json_string("bytes"));
	json_object_set_new(units, "in_use",
			    json_string("as mallinfo2().uordblks: chunks in use, "
					"tcache'd chunks included"));
	json_object_set_new(units, "free",
			    json_string("free chunks in bins and fastbins "
					"(mallinfo2().fordblks minus top)"));
	json_object_set_new(units, "mmapped", json_string("as mallinfo2().hblkhd"));
	json_object_set_new(root, "units", units);
	for (size_t i = 0; i < t->narena_addr; i++) {
		json_t *a = json_object();

		json_object_set_new(a, "id", json_integer((json_int_t)i));
		json_object_set_new(a, "address", hex(t->arena_addr[i]));
		json_array_append_new(arenas, a);
	}
	json_object_set_new(root, "arenas", arenas);
	for (size_t i = 0; i < t->n; i++) {
		const struct ms_tl_sample *s = &t->s[i];
		json_t *o = json_object();

		json_object_set_new(o, "t", json_real((double)s->t_ns / 1e9));
		json_object_set_new(o, "heap", json_boolean(s->heap));
		put_values(o, &s->total, s->heap, true);
		if (s->heap) {
			json_t *pa = json_array();

			if (s->approximate)
				json_object_set_new(o, "approximate", json_true());
			if (s->inconsistent)
				json_object_set_new(o, "inconsistent", json_true());
			if (s->full_walk)
				json_object_set_new(o, "full_walk", json_true());
			for (size_t k = 0; k < s->narenas; k++) {
				json_t *a = json_object();

				json_object_set_new(
				    a, "id",
				    json_integer((json_int_t)ms_tl_arena_id(t, s->arenas[k].addr)));
				if (s->arenas[k].is_main)
					json_object_set_new(a, "main", json_true());
				put_values(a, &s->arenas[k].v, true, false);
				json_array_append_new(pa, a);
			}
			json_object_set_new(o, "arenas", pa);
		}
		json_array_append_new(samples, o);
	}
	json_object_set_new(root, "samples", samples);
	for (size_t i = 0; i < ng; i++) {
		json_t *o = json_object();

		json_object_set_new(o, "series", json_string(g[i].series));
		json_object_set_new(o, "t0", json_real((double)g[i].t0_ns / 1e9));
		json_object_set_new(o, "t1", json_real((double)g[i].t1_ns / 1e9));
		json_object_set_new(o, "from", num(g[i].from));
		json_object_set_new(o, "to", num(g[i].to));
		json_object_set_new(o, "bytes", num(g[i].to - g[i].from));
		json_array_append_new(growth, o);
	}
	json_object_set_new(root, "growth", growth);
	return root;
}

int ms_timeline_write_json(const struct ms_timeline *t, FILE *out, struct ms_error *err)
{
	json_t *root = to_json(t);
	int rc =
	    json_dumpf(root, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));

	json_decref(root);
	if (rc == 0)
		fputc('\n', out);
	if (rc || ferror(out))
		return ms_error_set(err, -EIO, "timeline: writing JSON: %s", strerror(errno));
	return 0;
}

int ms_timeline_write(const struct ms_timeline *t, enum ms_tl_format fmt, FILE *out,
		      struct ms_error *err)
{
	return fmt == MS_TL_SVG ? ms_timeline_write_svg(t, out, err)
				: ms_timeline_write_json(t, out, err);
}
