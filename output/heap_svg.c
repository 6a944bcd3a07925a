// SPDX-License-Identifier: MIT
/*
 * output/heap_svg: the heap of `memspy dump --leaks` as one self-contained,
 * interactive SVG: an icicle, the whole heap on top, then arenas, then what
 * each holds by C++ class or chunk size (and its free memory), then which
 * part of each is leaked, reachable only from a thread, or reachable. Width
 * is bytes. It carries the flame graph's script and styles (output/assets),
 * so hovering shows exact figures, clicking zooms, Ctrl-F and ?s=REGEX
 * search and report the share matched (?s=^leaked$: the share leaked).
 */
#include "output/heap.h"
#include "output/output_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char ms_asset_flame_js[], ms_asset_flame_css[];

enum {
	WIDTH = 1200,
	XPAD = 10,
	ROW_H = 22,
	FONT_SIZE = 12,
	TOP = 78, /* title, subtitle, legend */
	BOTTOM = 2 * FONT_SIZE + 10, /* details line */
	NDEPTH = 5,
};
#define CHAR_W (FONT_SIZE * 0.59) /* the legend's text width, as the flame graph estimates */
/* Frames narrower than this share of the heap are listed for the search, not drawn. */
#define MIN_SHARE 0.001

/* Colours; leaked ones are also marked by class "leak" for tools and tests. */
#define C_ROOT "rgb(200,200,200)"
#define C_ARENA "rgb(150,170,200)"
#define C_FREE "rgb(200,235,200)"
#define C_FREEKIND "rgb(170,215,170)"
#define C_REACH "rgb(215,215,225)"
#define C_THREAD "rgb(250,190,90)"
#define C_LEAK "rgb(220,40,40)"
#define C_UNREF "rgb(140,0,0)"

struct frame {
	const char *name;
	char *tip; /* the tooltip's second line; owned */
	const char *fill;
	bool leak;
	unsigned depth;
	uint64_t start, value;
	uint32_t name_idx; /* into the elided list's names */
};

struct frames {
	struct frame *v;
	size_t n, cap;
};

#define H(x) ms_fmt_bytes((char[32]){0}, 32, (x))
#define C(x) ms_fmt_count((char[32]){0}, 32, (x))

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static struct frame *add(struct frames *f, const char *name, uint32_t name_idx, unsigned depth,
			 uint64_t start, uint64_t value, const char *fill)
{
	struct frame *x;

	ms_xgrow((void **)&f->v, &f->cap, f->n + 1, sizeof(*f->v));
	x = &f->v[f->n++];
	*x = (struct frame){.name = name, .fill = fill, .depth = depth, .start = start,
			    .value = value, .name_idx = name_idx};
	return x;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s ? s : ms_xstrdup("");
}

/* Warm colours for classes (as the flame graph's program frames), cool greys for size classes. */
static void group_colour(char *buf, size_t len, const struct ms_leak_group *g)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *s = g->type; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	/* integer arithmetic on bytes of h, so each component is provably 0..255 */
	unsigned b0 = (unsigned)(h & 0xff), b1 = (unsigned)((h >> 8) & 0xff), b2 = (unsigned)((h >> 16) & 0xff);

	if (g->typed)
		snprintf(buf, len, "rgb(%u,%u,%u)", 230 + b0 * 25 / 256, 120 + b1 * 110 / 256, b2 * 60 / 256);
	else
		snprintf(buf, len, "rgb(%u,%u,%u)", 160 + b0 * 40 / 256, 175 + b0 * 40 / 256, 205 + b0 * 30 / 256);
}

static const enum ms_heap_kind free_kinds[] = {MS_HK_TCACHE,   MS_HK_FAST,  MS_HK_UNSORTED,
					       MS_HK_SMALL,    MS_HK_LARGE, MS_HK_TOP};
#define NFREE (sizeof(free_kinds) / sizeof(free_kinds[0]))

/* Name indices: groups first, then these, then one per arena. */
enum { N_FREE = 0, N_LEAKED = NFREE, N_UNREF, N_THREAD, N_REACH, N_FIXED };
static const char *const fixed_names[N_FIXED] = {"tcache", "fastbin",	   "unsorted",
						 "smallbin", "largebin",   "top",
						 "leaked", "unreferenced", "thread-only",
						 "reachable"};

struct arena_sum {
	int arena; /* -1: mmapped chunks */
	size_t first, end; /* its cells */
	uint64_t inuse, nuse, leaked, nleaked, free, nfree;
	char *name;
};

static int cmp_arena_sum(const void *a, const void *b)
{
	const struct arena_sum *x = a, *y = b;
	uint64_t tx = x->inuse + x->free, ty = y->inuse + y->free;

	return tx != ty ? (tx > ty ? -1 : 1) : x->arena < y->arena ? -1 : x->arena > y->arena;
}

static const struct ms_leak_report *sort_lr;

/* A cell's index, ordered by its group's in-use bytes, largest first. */
static int cmp_cell_bytes(const void *a, const void *b)
{
	const struct ms_leak_cell *x = &sort_lr->cells[*(const size_t *)a];
	const struct ms_leak_cell *y = &sort_lr->cells[*(const size_t *)b];

	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->group < y->group ? -1 : x->group > y->group;
}

/* The frames of one group in one arena, and below it the sets, at start. */
static void add_cell(struct frames *fr, const struct ms_leak_report *lr,
		     const struct ms_leak_cell *c, const char *arena_name, uint64_t start,
		     uint64_t total, char (*colour)[32])
{
	const struct ms_leak_group *g = &lr->groups[c->group];
	uint64_t reach = c->bytes - c->leaked_bytes - c->thread_bytes;
	uint64_t nreach = c->count - c->leaked_count - c->thread_count;
	const char *noun = c->count == 1 ? "allocation" : "allocations";
	struct frame *f;

	group_colour(colour[c->group], sizeof(colour[c->group]), g);
	f = add(fr, g->type, c->group, 2, start, c->bytes, colour[c->group]);
	f->tip = fmt("(%s = %s bytes in %s %s in %s, %.2f%% of the heap; leaked %s in %s, "
		     "%s unreferenced; thread-only %s in %s)",
		     H(c->bytes), C(c->bytes), C(c->count), noun, arena_name, pct(c->bytes, total),
		     H(c->leaked_bytes), C(c->leaked_count), C(c->unref_count),
		     H(c->thread_bytes), C(c->thread_count));
	if (c->leaked_bytes) {
		f = add(fr, "leaked", (uint32_t)lr->ngroups + N_LEAKED, 3, start, c->leaked_bytes,
			C_LEAK);
		f->leak = true;
		f->tip = fmt("(%s = %s bytes in %s %s allocations in %s, %.2f%% of the heap, "
			     "reachable from no root; %s of them unreferenced)",
			     H(c->leaked_bytes), C(c->leaked_bytes), C(c->leaked_count), g->type,
			     arena_name, pct(c->leaked_bytes, total), C(c->unref_count));
		if (c->unref_bytes) {
			f = add(fr, "unreferenced", (uint32_t)lr->ngroups + N_UNREF, 4, start,
				c->unref_bytes, C_UNREF);
			f->leak = true;
			f->tip = fmt("(%s = %s bytes in %s leaked %s allocations no other leaked "
				     "one points to: the heads of leaked structures)",
				     H(c->unref_bytes), C(c->unref_bytes), C(c->unref_count), g->type);
		}
		start += c->leaked_bytes;
	}
	if (c->thread_bytes) {
		f = add(fr, "thread-only", (uint32_t)lr->ngroups + N_THREAD, 3, start,
			c->thread_bytes, C_THREAD);
		f->tip = fmt("(%s = %s bytes in %s %s allocations reachable only from threads' "
			     "stacks, registers or thread_local data)",
			     H(c->thread_bytes), C(c->thread_bytes), C(c->thread_count), g->type);
		start += c->thread_bytes;
	}
	if (reach) {
		f = add(fr, "reachable", (uint32_t)lr->ngroups + N_REACH, 3, start, reach, C_REACH);
		f->tip = fmt("(%s = %s bytes in %s %s allocations reachable from module data, "
			     "other anonymous memory or several threads)",
			     H(reach), C(reach), C(nreach), g->type);
	}
}

static void put_header(FILE *out, const struct ms_heap_meta *m, int height, uint64_t total,
		       const char *subtitle)
{
	static const struct {
		const char *fill, *text;
	} legend[] = {
		{C_LEAK, "leaked (reachable from no root)"},
		{C_UNREF, "unreferenced (heads of leaked structures)"},
		{C_THREAD, "only a thread's stack or registers"},
		{C_REACH, "reachable"},
		{C_FREE, "free"},
	};
	double x = XPAD;

	fprintf(out,
		"<?xml version=\"1.0\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"xmlns=\"http://www.w3.org/2000/svg\" data-total=\"%" PRIu64
		"\" data-xpad=\"%d\" data-unit=\"bytes\" onload=\"ms_init(evt)\">\n",
		WIDTH, height, WIDTH, height, total, XPAD);
	fputs("<!-- Heap of a process by memspy dump (leak scan): arenas, then classes or chunk sizes, "
	      "then leaked / thread-only / reachable. Click to zoom, Ctrl-F to search; ?s=REGEX "
	      "in the URL searches on load (?s=^leaked$ shows the share leaked), ?z=NAME zooms. "
	      "-->\n",
	      out);
	fprintf(out, "<style type=\"text/css\"><![CDATA[\n%s]]></style>\n", ms_asset_flame_css);
	fprintf(out, "<script type=\"text/ecmascript\"><![CDATA[\n%s]]></script>\n",
		ms_asset_flame_js);
	fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"rgb(248,248,248)\"/>\n",
		WIDTH, height);
	fprintf(out, "<text id=\"title\" x=\"%.2f\" y=\"%d\">Heap of process %d", WIDTH / 2.0,
		FONT_SIZE * 2, (int)m->pid);
	if (m->comm) {
		fputs(" (", out);
		ms_svg_xml_put(out, m->comm, -1);
		fputc(')', out);
	}
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"subtitle\" x=\"%.2f\" y=\"%d\">", WIDTH / 2.0, FONT_SIZE * 2 + 20);
	ms_svg_xml_put(out, subtitle, -1);
	fputs("</text>\n", out);
	fprintf(out, "<text id=\"unzoom\" class=\"hide\" x=\"%d\" y=\"%d\">Reset Zoom</text>\n",
		XPAD, FONT_SIZE * 2);
	fprintf(out, "<text id=\"search\" x=\"%d\" y=\"%d\">Search</text>\n", WIDTH - XPAD,
		FONT_SIZE * 2);
	fputs("<g id=\"legend\">", out);
	for (size_t i = 0; i < sizeof(legend) / sizeof(legend[0]); i++) {
		fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			     "<text x=\"%.1f\" y=\"%d\">%s</text>",
			x, TOP - 20, legend[i].fill, x + 16, TOP - 10, legend[i].text);
		x += 16 + CHAR_W * (double)strlen(legend[i].text) + 18;
	}
	fputs("</g>\n", out);
	fprintf(out, "<text id=\"details\" x=\"%d\" y=\"%d\">%s</text>\n", XPAD, height - 12,
		total ? "\xc2\xa0" : "Nothing to draw.");
	fprintf(out, "<text id=\"matched\" x=\"%d\" y=\"%d\">\xc2\xa0</text>\n", WIDTH - XPAD,
		height - 12);
}

int ms_heap_write_svg(FILE *out, const struct ms_heap_meta *m)
{
	const struct ms_heap_report *rep = m->rep;
	const struct ms_leak_report *lr = m->leaks;
	struct frames fr = {0};
	struct arena_sum *as = NULL;
	size_t nas = 0, *order = NULL, nel = 0, nnames;
	char (*colour)[32] = NULL;
	char **arena_names = NULL;
	uint64_t total = 0, min_value, start = 0;
	double span = WIDTH - 2 * XPAD;
	int height = TOP + NDEPTH * ROW_H + BOTTOM;
	char *sub;
	struct frame *f;

	if (!rep || !lr) {
		put_header(out, m, height, 0,
			   m->fatal ? m->fatal : "no heap walk or leak scan: nothing to draw");
		fputs("<g id=\"frames\"></g>\n</svg>\n", out);
		return ferror(out) ? -EIO : 0;
	}

	/* Arenas: the walk's, in-use bytes from the scan's cells, free from the walk. */
	as = ms_xcalloc(rep->narenas + 1, sizeof(*as));
	for (size_t a = 0; a <= rep->narenas; a++) {
		struct arena_sum *x = &as[nas];

		x->arena = a < rep->narenas ? (int)a : -1;
		x->first = x->end = 0;
		for (size_t k = 0; k < lr->ncells; k++) {
			const struct ms_leak_cell *c = &lr->cells[k];

			if (c->arena != x->arena)
				continue;
			if (x->end == 0)
				x->first = k;
			x->end = k + 1;
			x->inuse += c->bytes;
			x->nuse += c->count;
			x->leaked += c->leaked_bytes;
			x->nleaked += c->leaked_count;
		}
		if (a < rep->narenas)
			for (size_t q = 0; q < NFREE; q++) {
				x->free += rep->arenas[a].c.bytes[free_kinds[q]];
				x->nfree += rep->arenas[a].c.chunks[free_kinds[q]];
			}
		if (!x->inuse && !x->free)
			continue;
		if (x->arena < 0)
			x->name = ms_xstrdup("mmapped chunks");
		else if (rep->arenas[a].is_main)
			x->name = fmt("main arena 0x%" PRIx64, rep->arenas[a].addr);
		else
			x->name = fmt("arena 0x%" PRIx64, rep->arenas[a].addr);
		total += x->inuse + x->free;
		nas++;
	}
	qsort(as, nas, sizeof(*as), cmp_arena_sum);
	min_value = (uint64_t)((double)total * MIN_SHARE);
	colour = ms_xcalloc(lr->ngroups + 1, sizeof(*colour));
	arena_names = ms_xcalloc(nas + 1, sizeof(*arena_names));
	nnames = lr->ngroups + N_FIXED + nas + 1; /* + "free" */

	f = add(&fr, "heap", 0, 0, 0, total, C_ROOT);
	f->name_idx = UINT32_MAX; /* always drawn */
	f->tip = fmt("(%s = %s bytes: %s in use in %s allocations, %s free; leaked %s in %s "
		     "allocations, %.2f%% of the heap)",
		     H(total), C(total), H(lr->inuse_bytes), C(lr->inuse_count),
		     H(total - lr->inuse_bytes), H(lr->leaked_bytes), C(lr->leaked_count),
		     pct(lr->leaked_bytes, total));
	for (size_t a = 0; a < nas; a++) {
		struct arena_sum *x = &as[a];
		size_t nc = x->end - x->first;
		uint64_t s = start;

		arena_names[a] = x->name;
		f = add(&fr, x->name, (uint32_t)(lr->ngroups + N_FIXED + a), 1, start,
			x->inuse + x->free, C_ARENA);
		f->tip = fmt("(%s = %s bytes, %.2f%% of the heap: %s in use in %s allocations, %s "
			     "free in %s chunks; leaked %s in %s allocations)",
			     H(x->inuse + x->free), C(x->inuse + x->free),
			     pct(x->inuse + x->free, total), H(x->inuse), C(x->nuse), H(x->free),
			     C(x->nfree), H(x->leaked), C(x->nleaked));
		/* Its groups, largest first. */
		free(order);
		order = ms_xcalloc(nc ? nc : 1, sizeof(*order));
		for (size_t k = 0; k < nc; k++)
			order[k] = x->first + k;
		sort_lr = lr;
		qsort(order, nc, sizeof(*order), cmp_cell_bytes);
		for (size_t k = 0; k < nc; k++) {
			const struct ms_leak_cell *c = &lr->cells[order[k]];

			if (c->arena != x->arena || !c->bytes)
				continue;
			add_cell(&fr, lr, c, x->name, s, total, colour);
			s += c->bytes;
		}
		if (x->free) {
			f = add(&fr, "free", (uint32_t)(lr->ngroups + N_FIXED + nas), 2, s, x->free,
				C_FREE);
			f->tip = fmt("(%s = %s bytes in %s free chunks of %s: tcache, bins and top)",
				     H(x->free), C(x->free), C(x->nfree), x->name);
			for (size_t q = 0; q < NFREE; q++) {
				uint64_t b = rep->arenas[x->arena].c.bytes[free_kinds[q]];
				uint64_t n = rep->arenas[x->arena].c.chunks[free_kinds[q]];

				if (!b)
					continue;
				f = add(&fr, ms_heap_kind_name(free_kinds[q]),
					(uint32_t)(lr->ngroups + N_FREE + q), 3, s, b, C_FREEKIND);
				f->tip = fmt("(%s = %s bytes in %s free chunks of %s)", H(b), C(b),
					     C(n), x->name);
				s += b;
			}
		}
		start += x->inuse + x->free;
	}

	sub = fmt("In use %s in %s allocations, free %s; leaked %s in %s allocations (%.1f%% of "
		  "in use), %s of them unreferenced%s",
		  H(lr->inuse_bytes), C(lr->inuse_count), H(total - lr->inuse_bytes),
		  H(lr->leaked_bytes), C(lr->leaked_count), pct(lr->leaked_bytes, lr->inuse_bytes),
		  C(lr->unref_count), lr->partial || rep->partial ? " (PARTIAL: see the report)" : "");
	put_header(out, m, height, total, sub);
	free(sub);

	/* Frames wide enough to draw: a frame is drawn when it and its ancestors are. */
	fputs("<g id=\"frames\">\n", out);
	{
		bool drawn[NDEPTH] = {false};

		for (size_t i = 0; i < fr.n; i++) {
			struct frame *p = &fr.v[i];
			double x = XPAD + (double)p->start / (double)(total ? total : 1) * span;
			double w = (double)p->value / (double)(total ? total : 1) * span;
			double y = TOP + (double)p->depth * ROW_H;

			drawn[p->depth] = (p->depth == 0 || drawn[p->depth - 1]) &&
					  (p->depth == 0 || p->value >= min_value) && p->value;
			if (!drawn[p->depth]) {
				nel++;
				continue;
			}
			fprintf(out,
				"<g class=\"f%s\" data-s=\"%" PRIu64 "\" data-v=\"%" PRIu64
				"\" data-d=\"%u\"><title>",
				p->leak ? " leak" : "", p->start, p->value, p->depth);
			ms_svg_xml_put(out, p->name, -1);
			fputc('\n', out);
			ms_svg_xml_put(out, p->tip, -1);
			fprintf(out,
				"</title><rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" "
				"fill=\"%s\" rx=\"2\" ry=\"2\"/><text x=\"%.2f\" y=\"%.1f\"%s>",
				x, y, w, ROW_H - 1, p->fill, x + 3, y + 15.0,
				p->leak ? " fill=\"rgb(255,255,255)\"" : "");
			ms_svg_put_label(out, p->name, w);
			fputs("</text></g>\n", out);
		}
	}
	fputs("</g>\n", out);

	/* The rest, names and extents only, so that a search counts them (flame.js). */
	fputs("<script type=\"application/json\" id=\"elided\"><![CDATA[\n{\"names\":[", out);
	for (size_t i = 0; i < nnames; i++) {
		const char *n = i < lr->ngroups ? lr->groups[i].type :
				i < lr->ngroups + N_FIXED ? fixed_names[i - lr->ngroups] :
				i < nnames - 1 ? arena_names[i - lr->ngroups - N_FIXED] : "free";

		if (i)
			fputc(',', out);
		ms_svg_json_put(out, n ? n : "");
	}
	fputs("],\n\"frames\":[", out);
	{
		bool drawn[NDEPTH] = {false};
		size_t k = 0;

		for (size_t i = 0; i < fr.n; i++) {
			struct frame *p = &fr.v[i];

			drawn[p->depth] = (p->depth == 0 || drawn[p->depth - 1]) &&
					  (p->depth == 0 || p->value >= min_value) && p->value;
			if (drawn[p->depth])
				continue;
			fprintf(out, "%s%" PRIu32 ",%" PRIu64 ",%" PRIu64 ",%u", k++ ? "," : "",
				p->name_idx, p->start, p->value, p->depth);
		}
	}
	fputs("],\n\"truncated\":false}\n]]></script>\n</svg>\n", out);

	for (size_t i = 0; i < fr.n; i++)
		free(fr.v[i].tip);
	free(fr.v);
	for (size_t a = 0; a < nas; a++)
		free(as[a].name);
	free(as);
	free(order);
	free(colour);
	free(arena_names);
	(void)nel;
	return ferror(out) ? -EIO : 0;
}
