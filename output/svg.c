// SPDX-License-Identifier: MIT
/*
 * output/svg: the interactive flame graph, one self-contained SVG file (CSS and
 * JS from output/assets embedded), laid out like flamegraph.pl: root at the
 * bottom, children sorted by name, width proportional to bytes or counts.
 */
#include "output/output_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

extern const char ms_asset_flame_js[], ms_asset_flame_css[];

enum {
	FRAME_H = 16,
	FONT_SIZE = 12,
	XPAD = 10,
	YPAD_BOTTOM = FONT_SIZE * 2 + 10, /* details line */
};
#define CHAR_W (FONT_SIZE * 0.59) /* average Verdana glyph, as flamegraph.pl estimates */
/* frames narrower than this share of the total are not drawn: unreadable, and they bloat the file
 */
#define MIN_SHARE 0.001
/*
 * Frames too narrow to draw are still listed (names and extents, no shapes)
 * for the search, so "Matched: X%" counts them; past this many the list is
 * cut and the page says the share is a lower bound.
 */
#define MAX_ELIDED 100000

/*
 * Length of the valid UTF-8 sequence at s, or 0 when it is not one or is a
 * character XML 1.0 does not allow. Strict (common/utf8.c): an XML reader
 * refuses overlong forms and surrogates, and U+FFFE and U+FFFF (EF BF BE,
 * EF BF BF), which are valid UTF-8.
 */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = ms_utf8_len((const char *)s);

	if (n == 3 && s[0] == 0xef && s[1] == 0xbf && (s[2] == 0xbe || s[2] == 0xbf))
		return 0;
	return n;
}

/*
 * Writes up to max_chars characters of s as XML text (max_chars < 0: all).
 * Names come from the target's binaries: anything that is not valid UTF-8, or
 * a control character XML 1.0 forbids, becomes '?'.
 */
void ms_svg_xml_put(FILE *out, const char *str, long max_chars)
{
	const unsigned char *s = (const unsigned char *)str;
	long chars = 0;

	while (*s && (max_chars < 0 || chars < max_chars)) {
		size_t n = utf8_len(s);

		chars++;
		if (n == 0 || (n == 1 && *s < 0x20)) {
			fputc('?', out);
			s++;
			continue;
		}
		switch (*s) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&apos;", out);
			break;
		default:
			fwrite(s, 1, n, out);
		}
		s += n;
	}
}

static long utf8_chars(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	long n = 0;

	while (*s) {
		size_t l = utf8_len(s);

		s += l ? l : 1;
		n++;
	}
	return n;
}

/* The label for a frame w pixels wide: all of it, its start and "..", or nothing. */
void ms_svg_put_label(FILE *out, const char *name, double w)
{
	long fit = (long)((w - 6) / CHAR_W);
	long len;

	if (fit < 3)
		return;
	len = utf8_chars(name);
	if (len <= fit) {
		ms_svg_xml_put(out, name, -1);
		return;
	}
	ms_svg_xml_put(out, name, fit - 2);
	fputs("..", out);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

/*
 * Deterministic colours from the function name: warm for the program (as
 * flamegraph.pl and py-spy), blue for the allocator/libc/runtime, grey for
 * code without symbols.
 */
static void frame_colour(char *buf, size_t len, const char *name, enum ms_frame_kind kind)
{
	uint64_t h = name_hash(name);
	double v1 = (double)(h & 0xffff) / 65536.0;
	double v2 = (double)((h >> 16) & 0xffff) / 65536.0;
	double v3 = (double)((h >> 32) & 0xffff) / 65536.0;
	int r, g, b;

	switch (kind) {
	case MS_KIND_SYSTEM:
		r = 90 + (int)(60 * v1);
		g = 150 + (int)(50 * v2);
		b = 205 + (int)(45 * v3);
		break;
	case MS_KIND_UNKNOWN:
		r = g = b = 175 + (int)(40 * v1);
		break;
	default:
		r = 205 + (int)(50 * v3);
		g = (int)(230 * v1);
		b = (int)(55 * v2);
	}
	snprintf(buf, len, "rgb(%d,%d,%d)", r, g, b);
}

struct placed {
	uint32_t node;
	uint32_t depth;
	uint64_t start; /* in value units from the left edge */
};

struct walk {
	uint32_t node;
	uint32_t next;
	uint64_t start; /* where the next child starts */
	bool elided;	/* too narrow to draw (and so are all below it) */
};

/* A JSON string inside CDATA: '<', '>' and '&' escaped too, so "]]>" cannot occur. */
void ms_svg_json_put(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', out);
	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0) {
			fputc('?', out);
			s++;
			continue;
		}
		if (n == 1 && (*s < 0x20 || strchr("<>&", *s)))
			fprintf(out, "\\u%04x", *s);
		else if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else
			fwrite(s, 1, n, out);
		s += n;
	}
	fputc('"', out);
}

/* The elided frames as {"names":[...],"frames":[name,start,value,depth,...],"truncated":b}. */
static void put_elided(FILE *out, const struct ms_view *v, const struct placed *el, size_t n,
		       bool truncated, const struct ms_out_opts *o)
{
	uint32_t *idx = ms_xcalloc(v->n_syms + 1, sizeof(*idx)); /* sym -> name index + 1 */
	uint32_t n_names = 0;

	fputs("<script type=\"application/json\" id=\"elided\"><![CDATA[\n{\"names\":[", out);
	for (size_t i = 0; i < n; i++) {
		uint32_t sym = v->tree.nodes[el[i].node].sym;

		if (idx[sym])
			continue;
		idx[sym] = ++n_names;
		if (n_names > 1)
			fputc(',', out);
		ms_svg_json_put(out, v->syms[sym].name);
	}
	fputs("],\n\"frames\":[", out);
	for (size_t i = 0; i < n; i++) {
		const struct ms_tnode *nd = &v->tree.nodes[el[i].node];

		fprintf(out, "%s%u,%" PRIu64 ",%" PRIu64 ",%u", i ? "," : "", idx[nd->sym] - 1,
			el[i].start, ms_view_value(o, nd->total_bytes, nd->total_count),
			el[i].depth);
	}
	fprintf(out, "],\n\"truncated\":%s}\n]]></script>\n", truncated ? "true" : "false");
	free(idx);
}

/*
 * "name\n(1.2 MiB = 1,234,567 bytes in 42 allocations, 12.34% of total)", and
 * for an estimate "; estimated from 7 samples: few, a rough figure". A
 * profile without bytes (stacks from periodic walks) shows only the count.
 */
static void put_tooltip(FILE *out, const char *name, bool inlined, const struct ms_tnode *nd,
			uint64_t value, uint64_t total, bool has_bytes, const struct ms_out_opts *o)
{
	const char *noun = o->count_name ? o->count_name : "allocation";
	char human[32], exact[32], count[32];

	ms_fmt_bytes(human, sizeof(human), nd->total_bytes);
	ms_fmt_count(exact, sizeof(exact), nd->total_bytes);
	ms_fmt_count(count, sizeof(count), nd->total_count);
	ms_svg_xml_put(out, name, -1);
	fprintf(out, "\n(%s", inlined ? "inlined; " : "");
	if (has_bytes)
		fprintf(out, "%s = %s bytes %sin ", human, exact, o->live ? "still live " : "");
	fprintf(out, "%s ", count);
	ms_svg_xml_put(out, noun, -1);
	fprintf(out, "%s, %.2f%% of %s", nd->total_count == 1 ? "" : "s",
		total ? (double)value * 100.0 / (double)total : 0.0, o->live ? "live" : "total");
	/* An estimate says what it rests on: a frame on 2 samples is a rough guess. */
	if (o->samples)
		fprintf(out, "; estimated from %s sample%s%s", ms_fmt_count(human, sizeof(human), nd->total_samples),
			nd->total_samples == 1 ? "" : "s",
			nd->total_samples < MS_OUT_FEW_SAMPLES ? ": few, a rough figure" : "");
	fputc(')', out);
}

int ms_svg_write(const struct ms_profile *p, const struct ms_out_opts *o, FILE *out,
		 struct ms_error *err)
{
	const char *title = o->title ? o->title : "memspy";
	int width = o->width > 2 * XPAD + 100 ? o->width : 1200;
	double span = width - 2 * XPAD;
	struct ms_view v;
	struct placed *pl = NULL, *el = NULL;
	struct walk *stack = NULL;
	size_t n_pl = 0, cap_pl = 0, n_el = 0, cap_el = 0, depth, cap_stack = 0;
	bool el_truncated = false;
	uint32_t max_depth = 0;
	uint64_t total, min_value;
	const char *warning;
	int ypad_top, height, ret;

	ms_view_build(&v, p, o);
	total = ms_view_value(o, v.tree.nodes[0].total_bytes, v.tree.nodes[0].total_count);
	min_value = (uint64_t)((double)total * MIN_SHARE);

	/* place every frame wide enough: preorder, children left to right by name */
	if (total) {
		ms_xgrow((void **)&pl, &cap_pl, 1, sizeof(*pl));
		pl[n_pl++] = (struct placed){MS_TREE_ROOT, 0, 0};
		ms_xgrow((void **)&stack, &cap_stack, 1, sizeof(*stack));
		stack[0] = (struct walk){MS_TREE_ROOT, v.child_start[0], 0, false};
		depth = 1;
		while (depth) {
			struct walk *w = &stack[depth - 1];
			const struct ms_tnode *nd;
			uint32_t c;
			uint64_t val, start;
			bool elided;

			if (w->next >= v.child_start[w->node + 1]) {
				depth--;
				continue;
			}
			c = v.child_idx[w->next++];
			nd = &v.tree.nodes[c];
			val = ms_view_value(o, nd->total_bytes, nd->total_count);
			start = w->start;
			w->start += val;
			if (val == 0)
				continue;
			elided = w->elided || val < min_value;
			if (elided) {
				/* listed for the search only (none without script) */
				if (o->no_script)
					continue;
				if (n_el == MAX_ELIDED) {
					el_truncated = true;
					continue;
				}
				ms_xgrow((void **)&el, &cap_el, n_el + 1, sizeof(*el));
				el[n_el++] = (struct placed){c, nd->depth, start};
			} else {
				ms_xgrow((void **)&pl, &cap_pl, n_pl + 1, sizeof(*pl));
				pl[n_pl++] = (struct placed){c, nd->depth, start};
				if (nd->depth > max_depth)
					max_depth = nd->depth;
			}
			/* w dangles once the stack grows */
			ms_xgrow((void **)&stack, &cap_stack, depth + 1, sizeof(*stack));
			stack[depth++] = (struct walk){c, v.child_start[c], start, elided};
		}
	}

	/* A subtitle's second line (after a newline) is a warning, shown under it. */
	warning = o->subtitle ? strchr(o->subtitle, '\n') : NULL;
	ypad_top = o->subtitle ? FONT_SIZE * 5 : FONT_SIZE * 4 - 4;
	if (warning)
		ypad_top += FONT_SIZE + 4;
	height = ypad_top + (int)(max_depth + 1) * FRAME_H + YPAD_BOTTOM;

	fprintf(out,
		"<?xml version=\"1.0\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"xmlns=\"http://www.w3.org/2000/svg\" "
		"data-total=\"%" PRIu64 "\" data-xpad=\"%d\" data-unit=\"%s\"%s>\n",
		width, height, width, height, total, XPAD,
		o->value == MS_VALUE_COUNT ? "allocations" : "bytes",
		o->no_script ? "" : " onload=\"ms_init(evt)\"");
	fputs("<!-- Flame graph by memspy. Click a frame to zoom, Ctrl-F to search; "
	      "?s=REGEX in the URL searches on load, ?z=NAME zooms. -->\n",
	      out);
	fputs("<defs><linearGradient id=\"background\" y1=\"0\" y2=\"1\" x1=\"0\" x2=\"0\">"
	      "<stop stop-color=\"#eeeeee\" offset=\"5%\"/>"
	      "<stop stop-color=\"#eeeeb0\" offset=\"95%\"/></linearGradient></defs>\n",
	      out);
	fprintf(out, "<style type=\"text/css\"><![CDATA[\n%s]]></style>\n", ms_asset_flame_css);
	if (!o->no_script)
		fprintf(out, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n",
			ms_asset_flame_js);
	fprintf(out,
		"<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"url(#background)\"/>\n",
		width, height);
	fprintf(out, "<text id=\"title\" x=\"%.2f\" y=\"%d\">", width / 2.0, FONT_SIZE * 2);
	ms_svg_xml_put(out, title, -1);
	fputs("</text>\n", out);
	if (o->subtitle) {
		fprintf(out, "<text id=\"subtitle\" x=\"%.2f\" y=\"%d\">", width / 2.0,
			FONT_SIZE * 2 + FONT_SIZE + 8);
		if (warning) {
			char *first = ms_xasprintf("%.*s", (int)(warning - o->subtitle), o->subtitle);

			ms_svg_xml_put(out, first, -1);
			free(first);
		} else {
			ms_svg_xml_put(out, o->subtitle, -1);
		}
		fputs("</text>\n", out);
	}
	if (warning) {
		/* Styled inline: the embedded style sheet stays the same for every graph. */
		fprintf(out,
			"<text id=\"subtitle-warning\" x=\"%.2f\" y=\"%d\" "
			"style=\"text-anchor: middle; fill: rgb(170, 60, 0)\">",
			width / 2.0, FONT_SIZE * 2 + 2 * FONT_SIZE + 12);
		ms_svg_xml_put(out, warning + 1, -1);
		fputs("</text>\n", out);
	}
	if (!o->no_script) {
		fprintf(out,
			"<text id=\"unzoom\" class=\"hide\" x=\"%d\" y=\"%d\">Reset Zoom</text>\n",
			XPAD, FONT_SIZE * 2);
		fprintf(out, "<text id=\"search\" x=\"%d\" y=\"%d\">Search</text>\n", width - XPAD,
			FONT_SIZE * 2);
	}
	fprintf(out, "<text id=\"details\" x=\"%d\" y=\"%d\">%s</text>\n", XPAD, height - 12,
		total	     ? "\xc2\xa0"
		: o->samples ? "No sample in this view: see the subtitle."
		: o->live    ? "Nothing allocated during the recording is still live."
			     : "No allocations were recorded.");
	fprintf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\">\xc2\xa0</text>\n", width - XPAD,
		height - 12);

	fputs("<g id=\"frames\">\n", out);
	for (size_t i = 0; i < n_pl; i++) {
		const struct ms_tnode *nd = &v.tree.nodes[pl[i].node];
		const struct ms_vsym *vs = pl[i].node ? &v.syms[nd->sym] : NULL;
		const struct ms_pframe *pf = vs ? &p->frames[vs->frame] : NULL;
		const char *name = vs ? vs->name : "all";
		uint64_t val = ms_view_value(o, nd->total_bytes, nd->total_count);
		double x = XPAD + (double)pl[i].start / (double)total * span;
		double w = (double)val / (double)total * span;
		double y = height - YPAD_BOTTOM - (double)(pl[i].depth + 1) * FRAME_H;
		char colour[32];

		if (vs)
			frame_colour(colour, sizeof(colour), pf->function ? pf->function : name,
				     vs->kind);
		else
			snprintf(colour, sizeof(colour), "rgb(200,200,200)");
		fprintf(out,
			"<g class=\"f\" data-s=\"%" PRIu64 "\" data-v=\"%" PRIu64
			"\" data-d=\"%u\"><title>",
			pl[i].start, val, pl[i].depth);
		put_tooltip(out, name, pf && pf->inlined, nd, val, total,
			    v.tree.nodes[0].total_bytes > 0, o);
		fprintf(out,
			"</title><rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" "
			"fill=\"%s\" rx=\"2\" ry=\"2\"/><text x=\"%.2f\" y=\"%.1f\">",
			x, y, w, FRAME_H - 1, colour, x + 3, y + 10.5);
		ms_svg_put_label(out, name, w);
		fputs("</text></g>\n", out);
	}
	fputs("</g>\n", out);
	if (!o->no_script)
		put_elided(out, &v, el, n_el, el_truncated, o);
	fputs("</svg>\n", out);
	ret = ms_out_check(out, "SVG flame graph", err);

	free(pl);
	free(el);
	free(stack);
	ms_view_fini(&v);
	return ret;
}
