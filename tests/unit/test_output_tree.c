// SPDX-License-Identifier: MIT
/*
 * Unit tests of output/: the stack tree and its merges, frame naming, escaping
 * in every format, extremes (10k frames deep, huge names, empty profile), and
 * the pprof and speedscope files decoded back and checked against the input.
 */
#include "output/output.h"
#include "tests/lib/mstest.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct mem {
	char *d;
	size_t n;
};

static struct mem render(const struct ms_profile *p, enum ms_out_format fmt,
			 const struct ms_out_opts *o)
{
	struct mem m = {0};
	FILE *f = open_memstream(&m.d, &m.n);
	struct ms_error err = {0};

	CHECK(ms_profile_write(p, fmt, o, f, &err) == 0);
	fclose(f);
	return m;
}

static size_t count_str(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle))
		n++;
	return n;
}

static void add_names(struct ms_profile *p, const char *const *names, size_t n, uint64_t bytes,
		      uint64_t count)
{
	struct ms_out_frame f[16];

	for (size_t i = 0; i < n; i++)
		f[i] = (struct ms_out_frame){.function = names[i]};
	ms_profile_add(p, f, n, bytes, count);
}

static void test_merge(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main", "f", "malloc"}, *b[] = {"main", "g", "malloc"},
		   *c[] = {"main", "f"};
	struct ms_out_opts o = {0};
	uint64_t tb, tc;
	struct mem m;

	add_names(p, a, 3, 100, 1);
	add_names(p, b, 3, 30, 3);
	add_names(p, a, 3, 200, 2);
	add_names(p, c, 2, 5, 1);
	ms_profile_totals(p, &tb, &tc);
	CHECK(tb == 335 && tc == 7);
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(m.d, "main;f 5\nmain;f;malloc 300\nmain;g;malloc 30\n") == 0);
	free(m.d);
	o.value = MS_VALUE_COUNT;
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(m.d, "main;f 1\nmain;f;malloc 3\nmain;g;malloc 3\n") == 0);
	free(m.d);
	ms_profile_free(p);
	ms_profile_free(NULL);
}

static void test_saturation_and_empty_stack(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main"};
	uint64_t tb;
	struct mem m;

	add_names(p, a, 1, UINT64_MAX - 1, 1);
	add_names(p, a, 1, 10, 1);
	ms_profile_add(p, NULL, 0, 7, 1);
	ms_profile_totals(p, &tb, NULL);
	CHECK(tb == UINT64_MAX);
	m = render(p, MS_OUT_FOLDED, NULL);
	CHECK(strcmp(m.d, "[unknown] 7\nmain 18446744073709551615\n") == 0);
	free(m.d);
	ms_profile_free(p);
}

static void test_frame_names(void)
{
	struct ms_profile *p = ms_profile_new();
	struct ms_out_frame f[] = {
	    {.function = "main", .file = "/src/app/main.c", .line = 12, .module = "/usr/bin/app"},
	    {.function = "helper",
	     .file = "/src/app/util.h",
	     .line = 7,
	     .module = "/usr/bin/app",
	     .inlined = true},
	    {.module = "/usr/lib/x86_64-linux-gnu/libfoo.so.1", .offset = 0x4a1f0},
	    {.function = NULL},
	    {.function = "malloc", .module = "/usr/lib/x86_64-linux-gnu/libc.so.6"},
	};
	struct ms_out_opts o = {.lines = true};
	struct mem m;

	ms_profile_add(p, f, 5, 64, 1);
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(
		  m.d,
		  "main (main.c:12);helper (util.h:7);libfoo.so.1+0x4a1f0;[unknown];malloc 64\n") ==
	      0);
	free(m.d);
	o.lines = false;
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(m.d, "main;helper;libfoo.so.1+0x4a1f0;[unknown];malloc 64\n") == 0);
	free(m.d);
	/* the same function at two lines: separate with --lines, merged without */
	f[0].line = 13;
	ms_profile_add(p, f, 1, 1, 1);
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(m.d, "main 1\nmain;helper;libfoo.so.1+0x4a1f0;[unknown];malloc 64\n") == 0);
	free(m.d);
	o.lines = true;
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(count_str(m.d, "main (main.c:13) 1\n") == 1);
	free(m.d);
	/* SVG: allocator frames get the blue family, inlined frames say so */
	o.no_script = true;
	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d,
			"<title>helper (util.h:7)\n(inlined; 64 B = 64 bytes in 1 allocation,") ==
	      1);
	CHECK(count_str(m.d, "<script") == 0);
	free(m.d);
	ms_profile_free(p);
}

/* Stacks from periodic walks: counts of samples and no bytes. */
static void test_count_only(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main", "malloc"};
	struct ms_out_opts o = {.no_script = true, .value = MS_VALUE_COUNT, .count_name = "sample"};
	struct mem m;

	add_names(p, a, 2, 0, 3);
	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "<title>malloc\n(3 samples, 100.00% of total)</title>") == 1);
	CHECK(count_str(m.d, " B = ") == 0);
	free(m.d);
	m = render(p, MS_OUT_SPEEDSCOPE, &o);
	CHECK(count_str(m.d, "\"name\":\"samples: memspy\"") == 1);
	free(m.d);
	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(strcmp(m.d, "main;malloc 3\n") == 0);
	free(m.d);
	ms_profile_free(p);
}

static void test_escaping(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main", "ns::f<a;b>(x&, \"q\", 'c')", "bad\xff\x01utf8\xc3\xa9",
			   "leaf\nline"};
	struct ms_out_opts o = {.no_script = true, .title = "memspy record -o <x>&"};
	struct mem m;
	json_t *j;
	json_error_t jerr;

	add_names(p, a, 4, 1000, 1);
	m = render(p, MS_OUT_FOLDED, &o);
	/* ';' would split the frame, a newline the line: both replaced */
	CHECK(strcmp(m.d,
		     "main;ns::f<a:b>(x&, \"q\", 'c');bad\xff\x01utf8\xc3\xa9;leaf line 1000\n") ==
	      0);
	free(m.d);

	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "ns::f&lt;a;b&gt;(x&amp;, &quot;q&quot;, &apos;c&apos;)") >= 2);
	CHECK(count_str(m.d, "bad??utf8\xc3\xa9") >= 1); /* invalid UTF-8 and control chars */
	CHECK(count_str(m.d, "leaf?line") >= 1);
	CHECK(count_str(m.d, "memspy record -o &lt;x&gt;&amp;") == 1);
	CHECK(count_str(m.d, "<x>") == 0);
	free(m.d);

	m = render(p, MS_OUT_SPEEDSCOPE, &o);
	j = json_loadb(m.d, m.n, 0, &jerr);
	CHECK(j != NULL);
	if (j) {
		json_t *frames = json_object_get(json_object_get(j, "shared"), "frames");
		bool found = false;

		for (size_t i = 0; i < json_array_size(frames); i++)
			if (strcmp(json_string_value(
				       json_object_get(json_array_get(frames, i), "name")),
				   a[1]) == 0)
				found = true;
		CHECK(found);
		json_decref(j);
	}
	free(m.d);
	ms_profile_free(p);
}

static void test_long_and_deep(void)
{
	struct ms_profile *p = ms_profile_new();
	enum { DEPTH = 10000 };
	struct ms_out_frame *f = calloc(DEPTH, sizeof(*f));
	char **names = calloc(DEPTH, sizeof(*names));
	char *longname = malloc(100001);
	struct ms_out_opts o = {.no_script = true};
	struct mem m;

	memset(longname, 'x', 100000);
	longname[100000] = '\0';
	for (int i = 0; i < DEPTH; i++) {
		names[i] = ms_xasprintf("fn%d", i);
		f[i].function = names[i];
	}
	ms_profile_add(p, f, DEPTH, 4096, 1);
	f[1].function = longname;
	ms_profile_add(p, f, 2, 4096, 1);

	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(count_str(m.d, "\n") == 2);
	CHECK(count_str(m.d, ";fn9999 4096\n") == 1);
	CHECK(count_str(m.d, ";") == DEPTH - 1 + 1);
	free(m.d);

	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "<g class=\"f\"") == DEPTH + 2); /* all + 10k + the long one */
	CHECK(count_str(m.d, longname) == 1);		      /* in the tooltip only */
	CHECK(count_str(m.d, "xxx..</text>") == 1);	      /* the label is cut to fit */
	free(m.d);

	m = render(p, MS_OUT_SPEEDSCOPE, &o);
	CHECK(m.n > DEPTH * 5);
	free(m.d);
	m = render(p, MS_OUT_PPROF, &o);
	CHECK(m.n > 20);
	free(m.d);

	for (int i = 0; i < DEPTH; i++)
		free(names[i]);
	free(names);
	free(f);
	free(longname);
	ms_profile_free(p);
}

/* Frames under 0.1% are not drawn, but the search still sees them (with script). */
static void test_elided(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *big[] = {"main", "big"}, *tiny[] = {"main", "tiny<&>\"", "leaf"};
	struct ms_out_opts o = {.no_script = true};
	struct mem m;

	add_names(p, big, 2, 100000, 1);
	add_names(p, tiny, 3, 99, 1);
	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "tiny") == 0 && count_str(m.d, "<g class=\"f\"") == 3);
	free(m.d);
	o.no_script = false;
	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "<g class=\"f\" data-s=\"") == 3);
	CHECK(count_str(m.d,
			"{\"names\":[\"tiny\\u003c\\u0026\\u003e\\\"\",\"leaf\"],\n"
			"\"frames\":[0,100000,99,2,1,100000,99,3],\n\"truncated\":false}") == 1);
	free(m.d);
	ms_profile_free(p);
}

static void test_empty(void)
{
	struct ms_profile *p = ms_profile_new();
	struct ms_out_opts o = {.no_script = true};
	struct mem m;
	json_t *j;
	json_error_t jerr;

	m = render(p, MS_OUT_FOLDED, &o);
	CHECK(m.n == 0);
	free(m.d);
	m = render(p, MS_OUT_SVG, &o);
	CHECK(count_str(m.d, "No allocations were recorded.") == 1);
	CHECK(count_str(m.d, "<g class=\"f\"") == 0);
	free(m.d);
	m = render(p, MS_OUT_SPEEDSCOPE, &o);
	j = json_loadb(m.d, m.n, 0, &jerr);
	CHECK(j && json_array_size(json_object_get(
		       json_array_get(json_object_get(j, "profiles"), 0), "samples")) == 0);
	json_decref(j);
	free(m.d);
	m = render(p, MS_OUT_PPROF, &o);
	CHECK(m.n > 10 && (uint8_t)m.d[0] == 0x1f && (uint8_t)m.d[1] == 0x8b);
	free(m.d);
	ms_profile_free(p);
}

extern const char ms_asset_flame_js[], ms_asset_flame_css[];

/* The assets go into CDATA sections: "]]>" in them would end the section early. */
static void test_assets(void)
{
	CHECK(strlen(ms_asset_flame_js) > 1000 && !strstr(ms_asset_flame_js, "]]>"));
	CHECK(strstr(ms_asset_flame_js, "function ms_init(") != NULL);
	CHECK(strlen(ms_asset_flame_css) > 100 && !strstr(ms_asset_flame_css, "]]>"));
}

static void test_formats(void)
{
	enum ms_out_format f;

	CHECK(ms_out_format_from_name("svg", &f) == 0 && f == MS_OUT_SVG);
	CHECK(ms_out_format_from_name("/tmp/a.b/out.SVG", &f) == 0 && f == MS_OUT_SVG);
	CHECK(ms_out_format_from_name("x.folded", &f) == 0 && f == MS_OUT_FOLDED);
	CHECK(ms_out_format_from_name("collapsed", &f) == 0 && f == MS_OUT_FOLDED);
	CHECK(ms_out_format_from_name("x.txt", &f) == 0 && f == MS_OUT_FOLDED);
	CHECK(ms_out_format_from_name("x.speedscope.json", &f) == 0 && f == MS_OUT_SPEEDSCOPE);
	CHECK(ms_out_format_from_name("x.json", &f) == 0 && f == MS_OUT_SPEEDSCOPE);
	CHECK(ms_out_format_from_name("heap.pb.gz", &f) == 0 && f == MS_OUT_PPROF);
	CHECK(ms_out_format_from_name("pprof", &f) == 0 && f == MS_OUT_PPROF);
	CHECK(ms_out_format_from_name("x.png", &f) == -EINVAL);
	CHECK(ms_out_format_from_name("svg/", &f) == -EINVAL || f == MS_OUT_SVG);
	CHECK(ms_out_format_from_name(".svg", &f) == -EINVAL);
	CHECK(ms_out_format_from_name("", &f) == -EINVAL);
	CHECK(strcmp(ms_out_format_name(MS_OUT_PPROF), "pprof") == 0);
}

static void test_parse(void)
{
	struct ms_profile *p = ms_profile_new();
	struct ms_error err = {0};
	uint64_t tb, tc;
	const char *ok = "# comment\n\nmain;f 10\r\nmain;g 20 2\nmain a;h (x.c:3) 5\n";
	const char *bad = "main;f 10\nmain;g\n";
	FILE *in;

	in = fmemopen((void *)ok, strlen(ok), "r");
	CHECK(ms_folded_parse(in, p, &err) == 0);
	fclose(in);
	ms_profile_totals(p, &tb, &tc);
	CHECK(tb == 35 && tc == 4);
	in = fmemopen((void *)bad, strlen(bad), "r");
	CHECK(ms_folded_parse(in, p, &err) == -EINVAL);
	CHECK(strstr(err.msg, "line 2") != NULL);
	CHECK(err.hint[0] != '\0');
	fclose(in);
	ms_profile_free(p);
}

/* Adding the same stacks in another order gives the same bytes in every format. */
static void test_determinism(void)
{
	const char *s[][3] = {
	    {"main", "a", "malloc"}, {"main", "b", "calloc"}, {"main", "a", "x"}, {"zz", "a", "b"}};
	struct ms_profile *p1 = ms_profile_new(), *p2 = ms_profile_new();
	struct ms_out_opts o = {.no_script = true};

	for (int i = 0; i < 4; i++)
		add_names(p1, s[i], 3, 100u * (unsigned)(i + 1), 1);
	for (int i = 3; i >= 0; i--)
		add_names(p2, s[i], 3, 100u * (unsigned)(i + 1), 1);
	for (int fmt = MS_OUT_SVG; fmt <= MS_OUT_SPEEDSCOPE; fmt++) {
		struct mem a = render(p1, fmt, &o), b = render(p2, fmt, &o);

		CHECK(a.n == b.n && memcmp(a.d, b.d, a.n) == 0);
		free(a.d);
		free(b.d);
	}
	ms_profile_free(p1);
	ms_profile_free(p2);
}

static void test_write_error(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main"};
	struct ms_error err = {0};
	FILE *f = fopen("/dev/full", "w");

	if (!f)
		return;
	add_names(p, a, 1, 1, 1);
	CHECK(ms_profile_write(p, MS_OUT_SVG, NULL, f, &err) == -ENOSPC);
	CHECK(strstr(err.msg, "SVG") && strstr(err.hint, "disk is full"));
	fclose(f);
	ms_profile_free(p);
}

/* ---- a minimal protobuf reader, to check the pprof file from the outside ---- */

struct pb {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t pb_varint(struct pb *b)
{
	uint64_t v = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		if (b->p >= b->end) {
			b->bad = true;
			return 0;
		}
		v |= (uint64_t)(*b->p & 0x7f) << shift;
		if (!(*b->p++ & 0x80))
			return v;
	}
	b->bad = true;
	return 0;
}

/* Next field (false at the end); for length-delimited ones, sub spans the bytes. */
static bool pb_next(struct pb *b, unsigned *field, uint64_t *v, struct pb *sub)
{
	uint64_t key;

	if (b->p >= b->end || b->bad)
		return false;
	key = pb_varint(b);
	*field = (unsigned)(key >> 3);
	switch (key & 7) {
	case 0:
		*v = pb_varint(b);
		return !b->bad;
	case 2:
		*v = pb_varint(b);
		if (b->bad || *v > (uint64_t)(b->end - b->p)) {
			b->bad = true;
			return false;
		}
		sub->p = b->p;
		sub->end = b->p + *v;
		sub->bad = false;
		b->p += *v;
		return true;
	default:
		b->bad = true;
		return false;
	}
}

static uint8_t *gunzip(const void *d, size_t n, size_t *out_n)
{
	z_stream z = {0};
	size_t cap = 1 << 16;
	uint8_t *out = malloc(cap);
	int r;

	CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
	z.next_in = (Bytef *)d;
	z.avail_in = (uInt)n;
	do {
		if (z.total_out == cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		z.next_out = out + z.total_out;
		z.avail_out = (uInt)(cap - z.total_out);
		r = inflate(&z, Z_NO_FLUSH);
	} while (r == Z_OK);
	CHECK(r == Z_STREAM_END);
	*out_n = z.total_out;
	inflateEnd(&z);
	return out;
}

static void test_pprof(void)
{
	struct ms_profile *p = ms_profile_new();
	struct ms_out_frame f1[] = {
	    {.function = "main", .file = "main.c", .line = 5, .module = "/usr/bin/app"},
	    {.function = "inl",
	     .file = "util.h",
	     .line = 9,
	     .module = "/usr/bin/app",
	     .inlined = true},
	    {.function = "malloc", .module = "/lib/libc.so.6"},
	};
	struct ms_out_opts o = {.live = true, .sample_period = 524288, .title = "memspy record"};
	char *strs[64];
	size_t n_strs = 0, raw_n, n_samples = 0, n_locs = 0, n_fns = 0, n_maps = 0;
	uint64_t sum_count = 0, sum_bytes = 0, sample_types[4], n_st = 0, period = 0, dflt = 0;
	uint64_t loc_lines[8] = {0}, first_sample_locs = 0;
	struct mem m;
	uint8_t *raw;
	struct pb top, sub, sub2;
	unsigned field, f2;
	uint64_t v, v2;

	ms_profile_add(p, f1, 3, 1000, 4);
	ms_profile_add(p, f1, 1, 24, 1);
	m = render(p, MS_OUT_PPROF, &o);
	raw = gunzip(m.d, m.n, &raw_n);
	top = (struct pb){raw, raw + raw_n, false};
	while (pb_next(&top, &field, &v, &sub)) {
		switch (field) {
		case 1: /* sample_type */
			while (pb_next(&sub, &f2, &v2, &sub2))
				if (f2 == 1 && n_st < 4)
					sample_types[n_st++] = v2;
			break;
		case 2: { /* sample */
			uint64_t vals[2] = {0}, nv = 0, nl = 0;

			while (pb_next(&sub, &f2, &v2, &sub2)) {
				while (f2 == 2 && sub2.p < sub2.end && nv < 2)
					vals[nv++] = pb_varint(&sub2);
				while (f2 == 1 && sub2.p < sub2.end) {
					pb_varint(&sub2);
					nl++;
				}
			}
			if (vals[1] == 1000)
				first_sample_locs = nl;
			n_samples++;
			sum_count += vals[0];
			sum_bytes += vals[1];
			break;
		}
		case 3:
			n_maps++;
			break;
		case 4: /* location: count its lines */
			while (pb_next(&sub, &f2, &v2, &sub2)) {
				if (f2 == 4 && n_locs < 8)
					loc_lines[n_locs]++;
			}
			n_locs++;
			break;
		case 5:
			n_fns++;
			break;
		case 6:
			if (n_strs < 64)
				strs[n_strs++] = strndup((const char *)sub.p, v);
			break;
		case 12:
			period = v;
			break;
		case 14:
			dflt = v;
			break;
		}
	}
	CHECK(!top.bad);
	CHECK(n_strs > 5 && strcmp(strs[0], "") == 0);
	CHECK(n_st == 2);
	if (n_st == 2 && sample_types[0] < n_strs && sample_types[1] < n_strs) {
		CHECK(strcmp(strs[sample_types[0]], "inuse_objects") == 0);
		CHECK(strcmp(strs[sample_types[1]], "inuse_space") == 0);
	}
	CHECK(dflt < n_strs && strcmp(strs[dflt], "inuse_space") == 0);
	CHECK(period == 524288);
	CHECK(n_samples == 2 && sum_count == 5 && sum_bytes == 1024);
	/* main with inl inlined into it is one location of two lines, malloc another;
	 * main alone (the 24-byte stack) is a third */
	CHECK(first_sample_locs == 2);
	CHECK(n_locs == 3 && loc_lines[0] + loc_lines[1] + loc_lines[2] == 4);
	CHECK(n_fns == 3 && n_maps == 2);
	for (size_t i = 0; i < n_strs; i++)
		free(strs[i]);
	free(raw);
	free(m.d);
	ms_profile_free(p);
}

static void test_speedscope(void)
{
	struct ms_profile *p = ms_profile_new();
	const char *a[] = {"main", "f", "malloc"}, *b[] = {"main", "g"};
	struct ms_out_opts o = {.title = "t"};
	json_error_t jerr;
	json_t *j, *profs, *frames;
	struct mem m;

	add_names(p, a, 3, 100, 2);
	add_names(p, b, 2, 50, 5);
	m = render(p, MS_OUT_SPEEDSCOPE, &o);
	j = json_loadb(m.d, m.n, 0, &jerr);
	CHECK(j != NULL);
	if (!j)
		goto out;
	CHECK(strcmp(json_string_value(json_object_get(j, "$schema")),
		     "https://www.speedscope.app/file-format-schema.json") == 0);
	frames = json_object_get(json_object_get(j, "shared"), "frames");
	profs = json_object_get(j, "profiles");
	CHECK(json_array_size(frames) == 4 && json_array_size(profs) == 2);
	for (size_t k = 0; k < 2; k++) {
		json_t *pr = json_array_get(profs, k), *samples = json_object_get(pr, "samples"),
		       *w = json_object_get(pr, "weights");
		json_int_t sum = 0;

		CHECK(strcmp(json_string_value(json_object_get(pr, "type")), "sampled") == 0);
		CHECK(strcmp(json_string_value(json_object_get(pr, "unit")),
			     k ? "none" : "bytes") == 0);
		CHECK(json_array_size(samples) == 2 && json_array_size(w) == 2);
		for (size_t i = 0; i < json_array_size(w); i++)
			sum += json_integer_value(json_array_get(w, i));
		CHECK(sum == (k ? 7 : 150));
		CHECK(json_integer_value(json_object_get(pr, "endValue")) == (k ? 7 : 150));
		/* the first sample (sorted: main;f;malloc) names its frames root first */
		{
			json_t *s0 = json_array_get(samples, 0);
			const char *n0 = json_string_value(json_object_get(
			    json_array_get(frames,
					   (size_t)json_integer_value(json_array_get(s0, 0))),
			    "name"));
			const char *n2 = json_string_value(json_object_get(
			    json_array_get(frames,
					   (size_t)json_integer_value(json_array_get(s0, 2))),
			    "name"));

			CHECK(json_array_size(s0) == 3 && n0 && n2 && strcmp(n0, "main") == 0 &&
			      strcmp(n2, "malloc") == 0);
		}
	}
	json_decref(j);
out:
	free(m.d);
	ms_profile_free(p);
}

static int readd_stack(void *ctx, const struct ms_msprof_stack *s)
{
	struct ms_profile *q = ctx;

	if (s->bytes || s->count || s->samples)
		ms_profile_add_sampled(q, s->frames, s->n, s->bytes, s->count, s->samples);
	if (s->alloc_bytes || s->alloc_count || s->alloc_samples)
		ms_profile_add_alloc_sampled(q, s->frames, s->n, s->alloc_bytes, s->alloc_count,
					     s->alloc_samples);
	return 0;
}

/*
 * memspy's own file (--subprocesses' recorders to the coordinator) keeps
 * every field: read back, the profile writes the same pprof, folded and
 * SVG bytes; a file cut short or not one is refused.
 */
static void test_msprof(void)
{
	struct ms_profile *p = ms_profile_new(), *q = ms_profile_new();
	struct ms_out_mapping exe = {.start = 0x55550000,
				     .limit = 0x55560000,
				     .file_offset = 0x1000,
				     .path = "/usr/bin/server",
				     .build_id = "0123abcd",
				     .is_main = true};
	struct ms_out_mapping libc = {.start = 0x7f000000,
				      .limit = 0x7f100000,
				      .file_offset = 0x26000,
				      .path = "/lib/libc.so.6",
				      .build_id = "feed"};
	struct ms_out_frame a[] = {
	    {.function = "main",
	     .file = "main.c",
	     .line = 12,
	     .module = "/usr/bin/server",
	     .address = 0x55550100},
	    {.function = "inl\xff",
	     .file = "x.h",
	     .line = 3,
	     .inlined = true,
	     .module = "/usr/bin/server",
	     .address = 0x55550200},
	    {.module = "/usr/bin/server", .offset = 0x2345, .address = 0x55552345},
	    {.function = "malloc", .module = "/lib/libc.so.6", .address = 0x7f000010},
	};
	struct ms_out_opts o = {
	    .live = true, .sample_period = 4096, .samples = true, .lines = true};
	struct ms_msprof_head head;
	struct ms_error err = {0};
	struct mem m, x, y;
	FILE *f;

	ms_profile_add_mapping(p, &exe);
	ms_profile_add_mapping(p, &libc);
	ms_profile_add_sampled(p, a, 4, 300, 3, 2);
	ms_profile_add_alloc_sampled(p, a, 4, 900, 9, 5);
	ms_profile_add_alloc(p, a, 2, 50, 1); /* allocated, none live */
	ms_profile_add_sampled(p, NULL, 0, 7, 1, 1);
	m = render(p, MS_OUT_MSPROF, &o);
	f = fmemopen(m.d, m.n, "r");
	CHECK(ms_msprof_read(f, q, 0, &head, readd_stack, q, &err) == 0);
	fclose(f);
	CHECK(head.sample_period == 4096 && head.samples);
	/* every field back, the samples behind the allocated values too */
	x = render(q, MS_OUT_MSPROF, &o);
	CHECK(x.n == m.n && memcmp(x.d, m.d, m.n) == 0);
	free(x.d);
	for (int fmt = MS_OUT_SVG; fmt <= MS_OUT_PPROF; fmt++) {
		x = render(p, (enum ms_out_format)fmt, &o);
		y = render(q, (enum ms_out_format)fmt, &o);
		CHECK(x.n == y.n && memcmp(x.d, y.d, x.n) == 0);
		free(x.d);
		free(y.d);
	}
	/* cut short anywhere, or not a memspy profile: refused */
	for (size_t cut = 0; cut < m.n; cut += 7) {
		struct ms_profile *r = ms_profile_new();

		f = fmemopen(m.d, cut ? cut : 1, "r");
		CHECK(ms_msprof_read(f, r, 0, &head, readd_stack, r, &err) == -EINVAL);
		fclose(f);
		ms_profile_free(r);
	}
	free(m.d);
	ms_profile_free(p);
	ms_profile_free(q);
}

int main(void)
{
	test_merge();
	test_saturation_and_empty_stack();
	test_frame_names();
	test_count_only();
	test_escaping();
	test_long_and_deep();
	test_elided();
	test_empty();
	test_formats();
	test_assets();
	test_parse();
	test_determinism();
	test_write_error();
	test_pprof();
	test_speedscope();
	test_msprof();
	return ms_test_result("test_output_tree");
}
