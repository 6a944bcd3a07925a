// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the profile writers over hostile frame names. Function,
 * file and module names come from the target's binaries and file names, so
 * they can hold control characters, markup, quotes, invalid UTF-8 and any
 * length. Every format is written, then read back by a strict reader:
 *   SVG         parses as XML (expat: well-formed, valid UTF-8, no forbidden
 *               control characters);
 *   speedscope  parses as JSON (jansson, which also refuses invalid UTF-8);
 *   folded      memspy's own folded parser takes it back with the same total
 *               bytes and the same number of stacks' worth of frames;
 *   pprof       gunzips, decodes as protobuf wire format, the string table
 *               is UTF-8 (proto3 strings; Go's decoder refuses others) and
 *               every index and id it refers to exists.
 * A failure aborts with the format and the reason.
 *
 * Input: tokens separated by NUL bytes. The first byte picks the options;
 * each token is a frame (function; its first byte picks whether it also
 * sets the file or the module, or ends the stack); a token starting with
 * 0xff 'R' n is repeated to about n KiB, for names of huge lengths.
 */
#include "output/output.h"

#include <expat.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fuzz_output: " __VA_ARGS__);                                      \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

/* ----------------------------- UTF-8 ----------------------------- */

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t l;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			l = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			l = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			l = 4, cp = c & 0x07;
		else
			return false;
		if (i + l > n)
			return false;
		for (size_t k = 1; k < l; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((l == 3 && cp < 0x800) || (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += l;
	}
	return true;
}

/* ----------------------------- pprof ----------------------------- */

struct pb {
	const uint8_t *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (b->p >= b->end)
			return false;
		uint8_t c = *b->p++;

		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return true;
	}
	return false;
}

/* One field: its number, wire type, and the varint or the bytes. */
static bool pb_field(struct pb *b, uint32_t *num, uint32_t *wt, uint64_t *v, struct pb *sub)
{
	uint64_t key;

	if (!pb_varint(b, &key) || key >> 3 == 0 || key >> 3 > 0x1fffffff)
		return false;
	*num = (uint32_t)(key >> 3);
	*wt = key & 7;
	switch (*wt) {
	case 0:
		return pb_varint(b, v);
	case 2:
		if (!pb_varint(b, v) || *v > (uint64_t)(b->end - b->p))
			return false;
		sub->p = b->p;
		sub->end = b->p + *v;
		b->p += *v;
		return true;
	case 1:
		if (b->end - b->p < 8)
			return false;
		b->p += 8;
		return true;
	case 5:
		if (b->end - b->p < 4)
			return false;
		b->p += 4;
		return true;
	}
	return false;
}

struct ids {
	uint64_t *v;
	size_t n, cap;
};

static void ids_add(struct ids *s, uint64_t id)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			abort();
	}
	s->v[s->n++] = id;
}

static bool ids_has(const struct ids *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

/* Every varint of a field that may be packed (wire type 2) or not (0). */
static void pb_each_u64(uint32_t wt, uint64_t v, struct pb *sub, struct ids *out)
{
	if (wt == 0) {
		ids_add(out, v);
		return;
	}
	if (wt != 2)
		FAIL("pprof: a repeated integer field of wire type %u", wt);
	while (sub->p < sub->end) {
		if (!pb_varint(sub, &v))
			FAIL("pprof: a bad packed varint");
		ids_add(out, v);
	}
}

static void check_pprof(const uint8_t *gz, size_t gzlen)
{
	z_stream z = {0};
	uint8_t *raw = NULL;
	size_t cap = 0, len = 0;
	int zr;
	struct pb top, sub;
	uint32_t num, wt;
	uint64_t v, nstr = 0;
	struct ids str_refs = {0}, loc_ids = {0}, fn_ids = {0}, map_ids = {0};
	struct ids sample_locs = {0}, loc_fns = {0}, loc_maps = {0};

	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		abort();
	z.next_in = (uint8_t *)gz;
	z.avail_in = (uInt)gzlen;
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			raw = realloc(raw, cap);
			if (!raw)
				abort();
		}
		z.next_out = raw + len;
		z.avail_out = (uInt)(cap - len);
		zr = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
	} while (zr == Z_OK);
	inflateEnd(&z);
	if (zr != Z_STREAM_END)
		FAIL("pprof: not a complete gzip stream (zlib %d)", zr);

	top.p = raw;
	top.end = raw + len;
	while (top.p < top.end) {
		if (!pb_field(&top, &num, &wt, &v, &sub))
			FAIL("pprof: bad wire format at byte %zu", (size_t)(top.p - raw));
		if (num == 6) { /* string_table */
			if (wt != 2)
				FAIL("pprof: string_table of wire type %u", wt);
			if (nstr == 0 && v != 0)
				FAIL("pprof: string_table[0] is not \"\"");
			if (!utf8_valid(sub.p, v))
				FAIL("pprof: string_table[%llu] is not valid UTF-8",
				     (unsigned long long)nstr);
			nstr++;
		} else if (num >= 1 && num <= 5 && wt == 2) {
			/* sample_type, sample, mapping, location, function: messages */
			struct pb m = sub, ms;
			uint32_t n2, w2;
			uint64_t v2;

			while (m.p < m.end) {
				if (!pb_field(&m, &n2, &w2, &v2, &ms))
					FAIL("pprof: bad wire format inside field %u", num);
				if (num == 1 && w2 == 0)
					ids_add(&str_refs, v2); /* type, unit */
				else if (num == 2 && n2 == 1)
					pb_each_u64(w2, v2, &ms, &sample_locs);
				else if (num == 3 && n2 == 1 && w2 == 0)
					ids_add(&map_ids, v2);
				else if (num == 3 && (n2 == 5 || n2 == 6) && w2 == 0)
					ids_add(&str_refs, v2); /* filename, build_id */
				else if (num == 4 && n2 == 1 && w2 == 0)
					ids_add(&loc_ids, v2);
				else if (num == 4 && n2 == 2 && w2 == 0 && v2)
					ids_add(&loc_maps, v2);
				else if (num == 4 && n2 == 4 && w2 == 2) {
					struct pb l = ms, ls;
					uint32_t n3, w3;
					uint64_t v3;

					while (l.p < l.end) {
						if (!pb_field(&l, &n3, &w3, &v3, &ls))
							FAIL("pprof: bad Line message");
						if (n3 == 1 && w3 == 0)
							ids_add(&loc_fns, v3);
					}
				} else if (num == 5 && n2 == 1 && w2 == 0)
					ids_add(&fn_ids, v2);
				else if (num == 5 && n2 >= 2 && n2 <= 4 && w2 == 0)
					ids_add(&str_refs, v2); /* name, system_name, filename */
			}
		} else if ((num == 13 || num == 14) && (wt == 0 || wt == 2)) {
			pb_each_u64(wt, v, &sub, &str_refs); /* comment, default_sample_type */
		}
	}
	if (nstr == 0)
		FAIL("pprof: no string table");
	for (size_t i = 0; i < str_refs.n; i++)
		if (str_refs.v[i] >= nstr)
			FAIL("pprof: string index %llu past the table's %llu",
			     (unsigned long long)str_refs.v[i], (unsigned long long)nstr);
	for (size_t i = 0; i < sample_locs.n; i++)
		if (!ids_has(&loc_ids, sample_locs.v[i]))
			FAIL("pprof: a sample names location %llu, which does not exist",
			     (unsigned long long)sample_locs.v[i]);
	for (size_t i = 0; i < loc_fns.n; i++)
		if (!ids_has(&fn_ids, loc_fns.v[i]))
			FAIL("pprof: a line names function %llu, which does not exist",
			     (unsigned long long)loc_fns.v[i]);
	for (size_t i = 0; i < loc_maps.n; i++)
		if (!ids_has(&map_ids, loc_maps.v[i]))
			FAIL("pprof: a location names mapping %llu, which does not exist",
			     (unsigned long long)loc_maps.v[i]);
	free(str_refs.v);
	free(loc_ids.v);
	free(fn_ids.v);
	free(map_ids.v);
	free(sample_locs.v);
	free(loc_fns.v);
	free(loc_maps.v);
	free(raw);
}

/* ------------------------------ SVG ------------------------------ */

static void check_svg(const char *s, size_t n)
{
	XML_Parser x = XML_ParserCreate("UTF-8");

	if (!x)
		abort();
	if (XML_Parse(x, s, (int)n, 1) != XML_STATUS_OK)
		FAIL("svg: not well-formed XML: %s at line %lu column %lu",
		     XML_ErrorString(XML_GetErrorCode(x)), (unsigned long)XML_GetCurrentLineNumber(x),
		     (unsigned long)XML_GetCurrentColumnNumber(x));
	XML_ParserFree(x);
}

/* --------------------------- speedscope --------------------------- */

static void check_json(const char *s, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb(s, n, 0, &e);
	json_t *frames;

	if (!j)
		FAIL("speedscope: not JSON: %s at line %d column %d", e.text, e.line, e.column);
	frames = json_object_get(json_object_get(j, "shared"), "frames");
	if (!json_is_array(frames))
		FAIL("speedscope: no shared.frames array");
	for (size_t i = 0; i < json_array_size(frames); i++)
		if (!json_is_string(json_object_get(json_array_get(frames, i), "name")))
			FAIL("speedscope: frame %zu has no name string", i);
	json_decref(j);
}

/* ----------------------------- folded ----------------------------- */

static void check_folded(const char *s, size_t n, uint64_t want_bytes)
{
	FILE *in = fmemopen((void *)s, n ? n : 1, "r");
	struct ms_profile *p = ms_profile_new();
	struct ms_error err = {0};
	uint64_t bytes = 0;

	if (!in)
		abort();
	if (n && ms_folded_parse(in, p, &err) != 0)
		FAIL("folded: memspy cannot read its own output back: %s", err.msg);
	ms_profile_totals(p, &bytes, NULL);
	if (bytes != want_bytes)
		FAIL("folded: read back %llu bytes, wrote %llu", (unsigned long long)bytes,
		     (unsigned long long)want_bytes);
	ms_profile_free(p);
	fclose(in);
}

/* ------------------------------ input ------------------------------ */

#define MAX_FRAMES 64
#define MAX_TOKENS 512

static char *token_text(const uint8_t *t, size_t n)
{
	char *s;

	/* 0xff 'R' k rest: rest repeated to about k KiB (huge names). */
	if (n >= 4 && t[0] == 0xff && t[1] == 'R') {
		size_t want = ((size_t)t[2] % 64 + 1) * 1024, unit = n - 3, len = 0;

		s = malloc(want + unit + 1);
		if (!s)
			abort();
		while (len < want) {
			memcpy(s + len, t + 3, unit);
			len += unit;
		}
		s[len] = '\0';
		return s;
	}
	s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, t, n);
	s[n] = '\0';
	return s;
}

static void write_one(const struct ms_profile *p, enum ms_out_format fmt,
		      const struct ms_out_opts *o, char **buf, size_t *len)
{
	FILE *out = open_memstream(buf, len);
	struct ms_error err = {0};

	if (!out)
		abort();
	if (ms_profile_write(p, fmt, o, out, &err) != 0)
		FAIL("%s: the writer failed: %s", ms_out_format_name(fmt), err.msg);
	if (fclose(out) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ms_profile *p;
	struct ms_out_opts o = {0};
	struct ms_out_frame frames[MAX_FRAMES];
	char *tok[MAX_TOKENS];
	size_t ntok = 0, nf = 0, pos = 1;
	const char *module = NULL, *file = NULL;
	uint64_t total = 0, k = 1;
	char *buf;
	size_t len;

	if (size < 1)
		return 0;
	while (pos <= size && ntok < MAX_TOKENS) {
		const uint8_t *z = memchr(data + pos, 0, size - pos);
		size_t n = z ? (size_t)(z - (data + pos)) : size - pos;

		tok[ntok++] = token_text(data + pos, n);
		pos += n + 1;
	}

	p = ms_profile_new();
	o.value = data[0] & 1 ? MS_VALUE_COUNT : MS_VALUE_BYTES;
	o.lines = data[0] & 2;
	o.live = data[0] & 4;
	o.no_script = data[0] & 8;
	o.width = data[0] & 16 ? 37 : 0;
	o.sample_period = data[0] & 32 ? 524288 : 0;
	if (data[0] & 64 && ntok) {
		o.title = tok[0];
		o.subtitle = tok[ntok - 1];
		o.count_name = tok[ntok / 2];
	}
	if (data[0] & 128 && ntok)
		o.main_module = tok[0];
	for (size_t i = 0; i < ntok; i++) {
		const char *t = tok[i];
		unsigned sel = (unsigned char)t[0] % 8;

		if (sel == 1) {
			module = t;
			continue;
		}
		if (sel == 2) {
			file = t;
			continue;
		}
		frames[nf++] = (struct ms_out_frame){
		    .function = sel == 3 ? NULL : t,
		    .file = file,
		    .line = (int)strlen(t),
		    .module = module,
		    .offset = (uint64_t)i * 0x1010,
		    .inlined = sel == 4,
		};
		if (sel == 5 || nf == MAX_FRAMES || i + 1 == ntok) {
			uint64_t bytes = (uint64_t)strlen(t) * 16 + k;

			ms_profile_add(p, frames, nf, bytes, k);
			total += bytes;
			k++;
			nf = 0;
		}
	}
	if (ntok == 0)
		ms_profile_add(p, NULL, 0, 1, 1), total = 1;

	write_one(p, MS_OUT_SVG, &o, &buf, &len);
	check_svg(buf, len);
	free(buf);
	write_one(p, MS_OUT_SPEEDSCOPE, &o, &buf, &len);
	check_json(buf, len);
	free(buf);
	write_one(p, MS_OUT_PPROF, &o, &buf, &len);
	check_pprof((const uint8_t *)buf, len);
	free(buf);
	{
		struct ms_out_opts ob = o;

		ob.value = MS_VALUE_BYTES; /* the folded check compares bytes */
		write_one(p, MS_OUT_FOLDED, &ob, &buf, &len);
		check_folded(buf, len, total);
		free(buf);
	}

	ms_profile_free(p);
	for (size_t i = 0; i < ntok; i++)
		free(tok[i]);
	return 0;
}
