// SPDX-License-Identifier: MIT
/*
 * output/timeline: the heap timeline as a self-contained SVG line chart (no
 * script, no external font or style): the totals on top with the largest
 * growth intervals shaded and numbered, then one small chart per arena.
 */
#include "output/timeline.h"
#include "output/output_int.h"
#include "output/timeline_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#define W	   1000
#define ML	   84  /* left margin: y tick labels */
#define MR	   170 /* right margin: legend */
#define PLOT_W	   (W - ML - MR)
#define MAIN_H	   340
#define SMALL_W	   400
#define SMALL_H	   130
#define MAX_SMALL  16
#define MAX_GROWTH 3
#define MAX_POINTS 400 /* hover points are drawn only up to this many samples */

enum series { S_IN_USE, S_FREE, S_TOP, S_MMAPPED, S_RSS, S_N };

static const struct {
	const char *name, *color, *dash;
	bool per_arena;
} series[S_N] = {
    [S_IN_USE] = {"in use", "#1f77b4", NULL, true},
    [S_FREE] = {"free (bins)", "#2ca02c", NULL, true},
    [S_TOP] = {"top (unused tail)", "#ff7f0e", NULL, true},
    [S_MMAPPED] = {"mmapped chunks", "#9467bd", NULL, false},
    [S_RSS] = {"RSS (whole process)", "#d62728", "6,4", false},
};

static uint64_t value_of(const struct ms_tl_values *v, enum series s)
{
	switch (s) {
	case S_IN_USE:
		return v->in_use;
	case S_FREE:
		return v->free;
	case S_TOP:
		return v->top;
	case S_MMAPPED:
		return v->mmapped;
	default:
		return v->rss;
	}
}

/*
 * XML text: the target's name, notes and command line as the flame graph's
 * names are written (bytes that are not UTF-8 and control characters become '?').
 */
static void xml_put(FILE *f, const char *s)
{
	if (s)
		ms_svg_xml_put(f, s, -1);
}

/* The unit a whole axis is labelled in, so every tick reads in the same one. */
static void pick_unit(double max, double *div, const char **unit)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	*div = 1;
	while (max / *div >= 1024 && u + 1 < MS_ARRAY_SIZE(units)) {
		*div *= 1024;
		u++;
	}
	*unit = units[u];
}


/* A 1-2-5 step giving about n ticks over [0, max]. */
static double nice_step(double max, int n)
{
	double raw = max / n, p, f;

	if (raw <= 0)
		return 1;
	p = pow(10, floor(log10(raw)));
	f = raw / p;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

struct frame {
	double x, y, w, h; /* plot area */
	double tmax;	   /* seconds */
	double vmax, vdiv; /* bytes; axis unit divisor */
	const char *vunit;
};

static double px(const struct frame *f, uint64_t t_ns)
{
	return f->x + (f->tmax > 0 ? (double)t_ns / 1e9 / f->tmax : 0) * f->w;
}

static double py(const struct frame *f, uint64_t v)
{
	return f->y + f->h - (f->vmax > 0 ? (double)v / f->vmax : 0) * f->h;
}

static void axes(FILE *out, struct frame *f, const char *ylabel, bool xlabel)
{
	double vstep, tstep;

	pick_unit(f->vmax, &f->vdiv, &f->vunit);
	vstep = nice_step(f->vmax / f->vdiv, f->h > 200 ? 6 : 3);
	/* Round the top up to a whole tick so the highest line never touches the frame. */
	f->vmax = ceil(f->vmax / f->vdiv / vstep) * vstep * f->vdiv;
	if (f->vmax <= 0)
		f->vmax = 1;
	tstep = nice_step(f->tmax, 10);
	f->tmax = ceil(f->tmax / tstep) * tstep;
	if (f->tmax <= 0)
		f->tmax = 1;
	fprintf(out,
		"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
		"stroke=\"#999\"/>\n",
		f->x, f->y, f->w, f->h);
	for (double v = 0; v <= f->vmax / f->vdiv + vstep / 2; v += vstep) {
		double y = f->y + f->h - v * f->vdiv / f->vmax * f->h;

		fprintf(
		    out,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%g %s</text>\n",
		    f->x, y, f->x + f->w, y, f->x - 6, y + 4, v, f->vunit);
	}
	for (double t = 0; t <= f->tmax + tstep / 2; t += tstep) {
		double x = f->x + t / f->tmax * f->w;

		fprintf(
		    out,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">%g</text>\n",
		    x, f->y, x, f->y + f->h, x, f->y + f->h + 15, t);
	}
	if (xlabel)
		fprintf(out,
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"axis\">"
			"time since the start of the recording (s)</text>\n",
			f->x + f->w / 2, f->y + f->h + 34);
	fprintf(out,
		"<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" "
		"class=\"axis\">",
		f->x - 62, f->y + f->h / 2);
	xml_put(out, ylabel);
	fputs("</text>\n", out);
}

/* Sample i's values for series s (of arena_id, or the totals when < 0); NULL: none. */
static const struct ms_tl_values *values_at(const struct ms_timeline *t, size_t i, enum series s,
					    int arena_id)
{
	const struct ms_tl_sample *sm = &t->s[i];

	if (s != S_RSS && !sm->heap)
		return NULL;
	if (arena_id < 0)
		return &sm->total;
	for (size_t k = 0; k < sm->narenas; k++)
		if ((int)ms_tl_arena_id(t, sm->arenas[k].addr) == arena_id)
			return &sm->arenas[k].v;
	return NULL;
}

/*
 * One series as a path; a sample without heap figures breaks the line. A
 * point with no neighbour to join (a recording with one heap read, or one
 * between two gaps) is a dot: a path of one point draws nothing.
 */
static void line(FILE *out, const struct frame *f, const struct ms_timeline *t, enum series s,
		 int arena_id)
{
	bool pen = false, any = false;

	for (size_t i = 0; i < t->n; i++) {
		const struct ms_tl_values *v = values_at(t, i, s, arena_id);

		if (!v) {
			pen = false;
			continue;
		}
		if (!any)
			fprintf(out,
				"<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s%s%s d=\"",
				series[s].color, arena_id >= 0 ? "1.5" : "2",
				series[s].dash ? " stroke-dasharray=\"" : "",
				series[s].dash ? series[s].dash : "", series[s].dash ? "\"" : "");
		fprintf(out, "%s%.1f,%.1f", pen ? " L" : (any ? " M" : "M"), px(f, t->s[i].t_ns),
			py(f, value_of(v, s)));
		pen = any = true;
	}
	if (any)
		fputs("\"/>\n", out);
	for (size_t i = 0; i < t->n; i++) {
		const struct ms_tl_values *v = values_at(t, i, s, arena_id);

		if (v && (i == 0 || !values_at(t, i - 1, s, arena_id)) &&
		    (i + 1 == t->n || !values_at(t, i + 1, s, arena_id)))
			fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
				px(f, t->s[i].t_ns), py(f, value_of(v, s)), series[s].color);
	}
}

static void legend(FILE *out, double x, double y, bool heap)
{
	int row = 0;

	for (int s = 0; s < S_N; s++) {
		if (!heap && s != S_RSS)
			continue;
		fprintf(out,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
			"stroke-width=\"3\"%s%s%s/><text x=\"%.1f\" y=\"%.1f\" "
			"class=\"legend\">%s</text>\n",
			x, y + row * 20, x + 22, y + row * 20, series[s].color,
			series[s].dash ? " stroke-dasharray=\"" : "",
			series[s].dash ? series[s].dash : "", series[s].dash ? "\"" : "", x + 28,
			y + row * 20 + 4, series[s].name);
		row++;
	}
}

static uint64_t max_of(const struct ms_timeline *t, int arena_id)
{
	uint64_t m = 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct ms_tl_sample *sm = &t->s[i];

		if (arena_id < 0) {
			m = MS_MAX(m, sm->total.rss);
			if (sm->heap)
				for (int s = 0; s < S_RSS; s++)
					m = MS_MAX(m, value_of(&sm->total, (enum series)s));
			continue;
		}
		for (size_t k = 0; k < sm->narenas; k++)
			if ((int)ms_tl_arena_id(t, sm->arenas[k].addr) == arena_id)
				for (int s = 0; s < S_MMAPPED; s++)
					m = MS_MAX(m, value_of(&sm->arenas[k].v, (enum series)s));
	}
	return m;
}

/* Invisible hover targets with the figures of each sample (any SVG viewer shows <title>). */
static void hover(FILE *out, const struct frame *f, const struct ms_timeline *t, bool heap)
{
	if (t->n > MAX_POINTS)
		return;
	fputs("<g class=\"hover\">\n", out);
	for (size_t i = 0; i < t->n; i++) {
		const struct ms_tl_sample *s = &t->s[i];
		char a[32], b[32], c[32], d[32], e[32];
		uint64_t top = heap && s->heap ? s->total.in_use + s->total.mmapped : s->total.rss;

		fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\"><title>t = %.2f s",
			px(f, s->t_ns), py(f, top), (double)s->t_ns / 1e9);
		if (s->heap)
			fprintf(out, "\nin use %s\nfree %s\ntop %s\nmmapped %s",
				ms_fmt_bytes(a, sizeof(a), (uint64_t)s->total.in_use),
				ms_fmt_bytes(b, sizeof(b), (uint64_t)s->total.free),
				ms_fmt_bytes(c, sizeof(c), (uint64_t)s->total.top),
				ms_fmt_bytes(d, sizeof(d), (uint64_t)s->total.mmapped));
		fprintf(out, "\nRSS %s%s%s</title></circle>\n",
			ms_fmt_bytes(e, sizeof(e), (uint64_t)s->total.rss),
			s->approximate ? "\n(free is a lower bound: a free list was cut short)"
				       : "",
			s->inconsistent ? "\n(an arena was locked while read)" : "");
	}
	fputs("</g>\n", out);
}

int ms_timeline_write_svg(const struct ms_timeline *t, FILE *out, struct ms_error *err)
{
	bool heap = ms_tl_has_heap(t);
	struct ms_tl_growth g[MAX_GROWTH];
	size_t ng = ms_timeline_growth(t, g, MAX_GROWTH);
	size_t nsmall = heap ? MS_MIN(t->narena_addr, (size_t)MAX_SMALL) : 0;
	int top_y = 92, rows = (int)((nsmall + 1) / 2);
	int height = top_y + MAIN_H + 60 + (nsmall ? 30 + rows * (SMALL_H + 56) : 0) + 20;
	struct frame f = {.x = ML, .y = top_y, .w = PLOT_W, .h = MAIN_H};
	uint64_t tmax_ns = MS_MAX(t->n ? t->s[t->n - 1].t_ns : 0, t->duration_ns);
	char a[32], b[32], c[32];

	f.tmax = (double)tmax_ns / 1e9;
	f.vmax = (double)max_of(t, -1);
	fprintf(out,
		"<?xml version=\"1.0\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"xmlns=\"http://www.w3.org/2000/svg\">\n",
		W, height, W, height);
	fputs(
	    "<!-- Heap timeline by memspy (record, walk mode). Hover a point for its figures. -->\n"
	    "<style type=\"text/css\"><![CDATA[\n"
	    "text { font-family: Verdana, sans-serif; fill: #222; }\n"
	    ".title { font-size: 17px; } .sub { font-size: 12px; fill: #444; }\n"
	    ".tick { font-size: 11px; fill: #555; } .axis { font-size: 12px; }\n"
	    ".legend { font-size: 12px; } .growth { font-size: 11px; fill: #7a5c00; }\n"
	    ".small { font-size: 12px; }\n"
	    ".hover circle { fill: transparent; } .hover circle:hover { fill: #0003; }\n"
	    "]]></style>\n",
	    out);
	fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#fafafa\"/>\n", W, height);
	fprintf(out,
		"<text x=\"%d\" y=\"24\" text-anchor=\"middle\" class=\"title\">Heap timeline of "
		"pid %d",
		W / 2, (int)t->info.pid);
	if (t->info.comm) {
		fputs(" (", out);
		xml_put(out, t->info.comm);
		fputs(")", out);
	}
	fputs("</text>\n", out);
	fprintf(out, "<text x=\"%d\" y=\"44\" text-anchor=\"middle\" class=\"sub\">", W / 2);
	fprintf(out, "%zu sample%s over %s, heap read every %s; allocator: ", t->n,
		t->n == 1 ? "" : "s", ms_fmt_duration(b, sizeof(b), tmax_ns),
		ms_fmt_duration(c, sizeof(c), t->info.interval_ns));
	xml_put(out, t->info.allocator ? t->info.allocator : "unknown");
	fputs("</text>\n", out);
	if (t->info.note || t->info.command) {
		const char *line3 = t->info.note ? t->info.note : t->info.command;
		/* ~7 px a character at 12 px: a longer line starts at the left edge, not off it. */
		bool wide = strlen(line3) * 7 > (size_t)W - 20;

		fprintf(out, "<text x=\"%d\" y=\"62\" text-anchor=\"%s\" class=\"sub\">",
			wide ? 10 : W / 2, wide ? "start" : "middle");
		xml_put(out, line3);
		fputs("</text>\n", out);
	}

	axes(out, &f, heap ? "bytes (whole process)" : "resident bytes", true);
	/* Growth bands under the lines, numbered by size: 1 is the largest. */
	for (size_t i = 0; i < ng; i++) {
		double x0 = px(&f, g[i].t0_ns), x1 = px(&f, g[i].t1_ns);

		fprintf(out,
			"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			"fill=\"#ffd54f\" fill-opacity=\"0.35\"><title>growth #%zu: %s -> %s "
			"(%s) from %.2f s to %.2f s</title></rect>\n",
			x0, f.y, MS_MAX(x1 - x0, 2.0), f.h, i + 1,
			ms_fmt_bytes(a, sizeof(a), (uint64_t)g[i].from),
			ms_fmt_bytes(b, sizeof(b), (uint64_t)g[i].to), g[i].series,
			(double)g[i].t0_ns / 1e9, (double)g[i].t1_ns / 1e9);
		fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" class=\"growth\">#%zu +%s</text>\n",
			x0 + 3, f.y + 14 + 14 * (double)i, i + 1,
			ms_fmt_bytes(a, sizeof(a), (uint64_t)(g[i].to - g[i].from)));
	}
	for (int s = 0; s < S_N; s++)
		if (heap || s == S_RSS)
			line(out, &f, t, (enum series)s, -1);
	hover(out, &f, t, heap);
	legend(out, f.x + f.w + 16, f.y + 10, heap);
	if (ng)
		fprintf(out,
			"<text x=\"%.1f\" y=\"%.1f\" class=\"growth\">shaded: largest growth</text>"
			"<text x=\"%.1f\" y=\"%.1f\" class=\"growth\">of %s</text>\n",
			f.x + f.w + 16, f.y + 130, f.x + f.w + 16, f.y + 144,
			heap ? "in use + mmapped" : "RSS");
	if (!t->n)
		fprintf(out,
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"axis\">No "
			"samples were taken.</text>\n",
			f.x + f.w / 2, f.y + f.h / 2);

	if (nsmall) {
		int y0 = top_y + MAIN_H + 60;

		fprintf(out,
			"<text x=\"%d\" y=\"%d\" class=\"axis\">Per arena (in use, free, top; "
			"system = bytes the arena got from the kernel)%s</text>\n",
			ML - 60, y0 + 10, t->narena_addr > MAX_SMALL ? ", first 16 arenas" : "");
		for (size_t i = 0; i < nsmall; i++) {
			struct frame sf = {.x = ML + (double)(i % 2) * (SMALL_W + 90),
					   .y = y0 + 40 + (double)(i / 2) * (SMALL_H + 56),
					   .w = SMALL_W,
					   .h = SMALL_H,
					   .tmax = (double)tmax_ns / 1e9,
					   .vmax = (double)max_of(t, (int)i)};
			bool main_arena = false;

			for (size_t k = 0; k < t->n && !main_arena; k++)
				for (size_t j = 0; j < t->s[k].narenas; j++)
					if (t->s[k].arenas[j].addr == t->arena_addr[i] &&
					    t->s[k].arenas[j].is_main)
						main_arena = true;
			fprintf(
			    out,
			    "<text x=\"%.1f\" y=\"%.1f\" class=\"small\">arena %zu%s at 0x%" PRIx64
			    "</text>\n",
			    sf.x, sf.y - 8, i, main_arena ? " (main)" : "", t->arena_addr[i]);
			axes(out, &sf, "bytes", false);
			for (int s = 0; s < S_MMAPPED; s++)
				line(out, &sf, t, (enum series)s, (int)i);
		}
	}
	fputs("</svg>\n", out);
	if (ferror(out))
		return ms_error_set(err, -EIO, "timeline: writing SVG: %s", strerror(errno));
	return 0;
}
