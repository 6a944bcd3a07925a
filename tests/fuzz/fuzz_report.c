// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: memspy dump's reports (output/heap_text.c, heap_json.c,
 * heap_leaks.c) and record --mode walk's timeline (output/timeline_json.c,
 * timeline_svg.c) over hostile strings: the process's name, libc's path,
 * the walk's and the quiesce's notes, class names, roots, the command line
 * (any bytes but NUL: control characters, escape sequences, markup, invalid
 * UTF-8, cut in the middle of a sequence where a field is fixed-size).
 *
 * Input: one byte of flags (which parts exist), then the strings, NUL
 * separated, in the order of the S_* names below. Checks:
 *   - the text report holds no control character but newline and tab, no
 *     DEL and no C1 (it is read on a terminal);
 *   - the JSON reports parse, and every string the target named is there,
 *     as a string: a string jansson refused used to drop its key, or its
 *     whole object (an error entry, "quiesce");
 *   - the timeline SVG parses as XML (expat).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "attach/attach.h"
#include "heapwalk/heapwalk.h"
#include "output/heap.h"
#include "output/timeline.h"

#include <expat.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	S_COMM,
	S_ALLOCATOR,
	S_FATAL,
	S_LIBC,
	S_VERSION,
	S_BUILD_ID,
	S_ERR_KIND,
	S_ERR_MSG,
	S_WHY,
	S_NOTE,
	S_TYPE,
	S_ROOT,
	S_HOP_TYPE,
	S_COMMAND,
	S_TL_NOTE,
	S_FALLBACK,
	S_N
};

#define F_REP	  1u
#define F_LOC	  2u
#define F_LEAKS	  4u
#define F_EXPLAIN 8u
#define F_QUIESCE 16u
#define F_TL_HEAP 32u

/* The writer's output in memory. */
struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static void mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	if (!m->f)
		abort();
}

static void mem_close(struct mem *m)
{
	if (fclose(m->f))
		abort();
}

/* Text for a terminal: no C0 but newline and tab, no DEL, no C1 (as UTF-8 0xc2 0x80-0x9f). */
static void check_terminal(const struct mem *m)
{
	const unsigned char *s = (const unsigned char *)m->buf;

	for (size_t i = 0; i < m->len; i++) {
		if ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || s[i] == 0x7f)
			abort();
		if (s[i] == 0xc2 && i + 1 < m->len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			abort();
	}
}

static json_t *parse_json(const struct mem *m)
{
	json_error_t e;
	json_t *j = json_loadb(m->buf, m->len, 0, &e);

	if (!j) {
		fprintf(stderr, "JSON does not parse: %s (line %d)\n", e.text, e.line);
		abort();
	}
	return j;
}

/* o[key] must be a string (present whenever the target named something). */
static void want_string(json_t *o, const char *key)
{
	if (!json_is_string(json_object_get(o, key))) {
		fprintf(stderr, "\"%s\" is not a string\n", key);
		abort();
	}
}

static void check_xml(const struct mem *m)
{
	XML_Parser p = XML_ParserCreate("UTF-8");

	if (XML_Parse(p, m->buf, (int)m->len, 1) != XML_STATUS_OK) {
		fprintf(stderr, "SVG is not XML: %s at line %lu\n",
			XML_ErrorString(XML_GetErrorCode(p)),
			(unsigned long)XML_GetCurrentLineNumber(p));
		abort();
	}
	XML_ParserFree(p);
}

static void heap_reports(unsigned flags, char *s[S_N])
{
	struct ms_heap_report rep;
	struct ms_heap_arena arena;
	struct ms_heap_hist hist = {.lo = 32, .hi = 48, .inuse_chunks = 3, .inuse_bytes = 144};
	struct ms_heap_segment seg = {.start = 0x1000, .end = 0x21000, .arena = 0, .kind = "brk"};
	struct ms_heap_error err[2];
	struct ms_heap_loc loc;
	struct ms_quiesce_stats q;
	struct ms_leak_report lr;
	struct ms_leak_group grp[2];
	struct ms_leak_explain ex;
	struct ms_leak_hop hop;
	struct ms_heap_meta m = {.pid = 4242, .comm = s[S_COMM], .allocator = s[S_ALLOCATOR],
				 .walk_source = "snapshot", .snapshot_fallback = s[S_FALLBACK],
				 .pause_ms = 1.5, .total_ms = 3};
	struct mem text, js;
	json_t *root, *o;

	if (flags & F_REP) {
		memset(&rep, 0, sizeof(rep));
		memset(&arena, 0, sizeof(arena));
		arena.addr = 0x7f0000000000ull;
		arena.is_main = true;
		arena.system_mem = 0x21000;
		rep.arenas = &arena;
		rep.narenas = 1;
		rep.hist = &hist;
		rep.nhist = 1;
		rep.segs = &seg;
		rep.nsegs = 1;
		memset(err, 0, sizeof(err));
		for (size_t i = 0; i < 2; i++) {
			snprintf(err[i].kind, sizeof(err[i].kind), "%s", s[S_ERR_KIND]);
			snprintf(err[i].msg, sizeof(err[i].msg), "%s%s", i ? "at 0x10: " : "",
				 s[S_ERR_MSG]);
			err[i].arena = (int)i - 1;
		}
		rep.errors = err;
		rep.nerrors = 2;
		rep.partial = true;
		m.rep = &rep;
	} else {
		m.fatal = s[S_FATAL];
	}
	if (flags & F_LOC) {
		memset(&loc, 0, sizeof(loc));
		loc.layout_source = "dwarf";
		loc.symbol_source = "heuristic";
		snprintf(loc.glibc_version, sizeof(loc.glibc_version), "%s", s[S_VERSION]);
		snprintf(loc.libc_path, sizeof(loc.libc_path), "%s", s[S_LIBC]);
		snprintf(loc.build_id, sizeof(loc.build_id), "%s", s[S_BUILD_ID]);
		m.loc = &loc;
	}
	if (flags & F_QUIESCE) {
		memset(&q, 0, sizeof(q));
		q.rounds = 2;
		q.failed = 1;
		snprintf(q.why, sizeof(q.why), "%s", s[S_WHY]);
		m.quiesce = &q;
	}
	if ((flags & F_LEAKS) && m.rep) {
		memset(&lr, 0, sizeof(lr));
		memset(grp, 0, sizeof(grp));
		for (size_t i = 0; i < 2; i++) {
			grp[i].type = s[S_TYPE];
			grp[i].typed = !i;
			grp[i].count = grp[i].leaked_count = grp[i].unref_count = 2 - i;
			grp[i].bytes = grp[i].leaked_bytes = 64 * (2 - i);
			grp[i].example = 0x5000 + 0x100 * i;
			grp[i].example_size = 64;
			grp[i].nhead = 16;
			memcpy(grp[i].head, s[S_TYPE], strnlen(s[S_TYPE], 16));
		}
		lr.groups = grp;
		lr.ngroups = 2;
		lr.inuse_count = lr.leaked_count = 3;
		lr.inuse_bytes = lr.leaked_bytes = 192;
		lr.partial = true;
		snprintf(lr.note, sizeof(lr.note), "%s", s[S_NOTE]);
		if (flags & F_EXPLAIN) {
			memset(&ex, 0, sizeof(ex));
			ex.addr = ex.chunk = 0x5010;
			ex.size = 64;
			ex.type = s[S_TYPE];
			ex.status = "reachable";
			snprintf(ex.root, sizeof(ex.root), "%s", s[S_ROOT]);
			ex.root_at = 0x601000;
			hop = (struct ms_leak_hop){.chunk = 0x5010, .size = 64, .type = s[S_HOP_TYPE]};
			ex.chain = &hop;
			ex.nchain = 1;
			lr.explain = &ex;
		}
		m.leaks = &lr;
	}

	mem_open(&text);
	ms_heap_write_text(text.f, &m);
	mem_close(&text);
	check_terminal(&text);
	free(text.buf);

	mem_open(&js);
	ms_heap_write_json(js.f, &m);
	mem_close(&js);
	root = parse_json(&js);
	want_string(root, "comm");
	want_string(root, "allocator");
	if (!m.rep)
		want_string(root, "error");
	want_string(root, "snapshot_fallback");
	if (m.loc) {
		want_string(root, "libc");
		want_string(root, "glibc_version");
		want_string(root, "build_id");
	}
	if (m.quiesce) {
		o = json_object_get(root, "quiesce");
		if (!json_is_object(o))
			abort();
		if (q.why[0]) /* no reason is null */
			want_string(o, "fallback_reason");
		else if (!json_is_null(json_object_get(o, "fallback_reason")))
			abort();
	}
	if (m.rep) {
		o = json_object_get(root, "errors");
		if (json_array_size(o) != rep.nerrors)
			abort();
		for (size_t i = 0; i < rep.nerrors; i++) {
			want_string(json_array_get(o, i), "kind");
			want_string(json_array_get(o, i), "message");
		}
	}
	if (m.leaks) {
		o = json_object_get(root, "types");
		if (json_array_size(o) != lr.ngroups)
			abort();
		for (size_t i = 0; i < lr.ngroups; i++)
			want_string(json_array_get(o, i), "type");
		o = json_object_get(root, "leaks");
		if (lr.note[0]) /* an empty note is null */
			want_string(o, "note");
		else if (!json_is_null(json_object_get(o, "note")))
			abort();
		if (lr.explain) {
			o = json_object_get(o, "explain");
			want_string(o, "type");
			want_string(o, "root");
			if (json_array_size(json_object_get(o, "chain")) != 1)
				abort();
			want_string(json_array_get(json_object_get(o, "chain"), 0), "type");
		}
	}
	json_decref(root);
	free(js.buf);
}

static void timeline(unsigned flags, char *s[S_N])
{
	struct ms_tl_info info = {.pid = 4242, .comm = s[S_COMM], .command = s[S_COMMAND],
				  .allocator = s[S_ALLOCATOR], .note = s[S_TL_NOTE],
				  .interval_ns = 100000000};
	struct ms_tl_arena ar = {.addr = 0x7f0000000000ull, .is_main = true};
	struct ms_timeline *t = ms_timeline_new(&info);
	struct ms_error err = {0};
	struct mem js, svg;
	json_t *root;

	for (unsigned i = 0; i < 4; i++) {
		struct ms_tl_sample sm = {.t_ns = (uint64_t)i * 100000000, .heap = flags & F_TL_HEAP,
					  .arenas = &ar, .narenas = 1};

		sm.total.in_use = ar.v.in_use = 1000u * (i + 1) * (i + 1);
		sm.total.rss = 4096u * (i + 3);
		ms_timeline_add(t, &sm);
	}
	ms_timeline_set_duration(t, 400000000);

	mem_open(&js);
	if (ms_timeline_write(t, MS_TL_JSON, js.f, &err))
		abort();
	mem_close(&js);
	root = parse_json(&js);
	want_string(root, "comm");
	want_string(root, "command");
	want_string(root, "allocator");
	want_string(root, "note");
	json_decref(root);
	free(js.buf);

	mem_open(&svg);
	if (ms_timeline_write(t, MS_TL_SVG, svg.f, &err))
		abort();
	mem_close(&svg);
	check_xml(&svg);
	free(svg.buf);
	ms_timeline_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const dflt[S_N] = {"prog", "glibc", "foreign allocator",
					      "/usr/lib/libc.so.6", "2.36", "ab12"};
	char *copy, *s[S_N];
	unsigned flags;
	size_t at = 1;

	if (!size)
		return 0;
	flags = data[0];
	/* The strings, NUL separated (a final one without its NUL is taken whole). */
	copy = malloc(size);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = 0;
	for (size_t i = 0; i < S_N; i++) {
		if (at < size) {
			s[i] = copy + (at - 1);
			at += strlen(s[i]) + 1;
		} else {
			s[i] = (char *)(dflt[i] ? dflt[i] : "x");
		}
	}
	heap_reports(flags, s);
	timeline(flags, s);
	free(copy);
	return 0;
}
