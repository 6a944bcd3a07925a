// SPDX-License-Identifier: MIT
/*
 * memspy top: the table of functions as text, sorted by the column the
 * user picked. The sums per function are record/'s (record/functions.c).
 */
#include "cmd/top_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ms_top_buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	ms_xgrow((void **)buf, cap, *len + (size_t)n + 1, 1);
	va_start(ap, fmt);
	vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
}

static const char *const titles[MS_TOP_NCOLS] = {
    "OWN B/s", "TOTAL B/s", "OWN ALLOCS/s", "TOTAL ALLOCS/s", "OWN LIVE", "TOTAL LIVE",
};
/* Each column: its title or value right-aligned in width, then a space or '*' (the sort key). */
static const int widths[MS_TOP_NCOLS] = {11, 11, 13, 15, 10, 11};

const char *ms_top_col_title(enum ms_top_col c)
{
	return c < MS_TOP_NCOLS ? titles[c] : "?";
}

/* The value of column c for f in view v: a rate (per second) or live bytes. */
static double value(const struct ms_rec_fns_totals *t, const struct ms_rec_fn *f,
		    const struct ms_top_view *v, enum ms_top_col c)
{
	double secs;

	if (c == MS_TOP_OWN_LIVE || c == MS_TOP_TOT_LIVE)
		return f->live[c - MS_TOP_OWN_LIVE];
	secs = (double)(v->cumulative ? t->cum_ns : t->window_ns) / 1e9;
	if (secs <= 0)
		return 0;
	return (v->cumulative ? f->cum[c] : f->win[c]) / secs;
}

struct sort_ctx {
	const struct ms_rec_fn *fns;
	struct ms_rec_fns_totals t;
	const struct ms_top_view *v;
};
static struct sort_ctx sort_ctx; /* qsort has no context argument */

static int by_column(const void *a, const void *b)
{
	const struct ms_rec_fn *fa = &sort_ctx.fns[*(const uint32_t *)a];
	const struct ms_rec_fn *fb = &sort_ctx.fns[*(const uint32_t *)b];
	double va = value(&sort_ctx.t, fa, sort_ctx.v, sort_ctx.v->sort);
	double vb = value(&sort_ctx.t, fb, sort_ctx.v, sort_ctx.v->sort);

	if (va != vb)
		return va < vb ? 1 : -1;
	/* ties (often 0 in this window): the biggest since the start first, then by name */
	if (fa->cum[1] != fb->cum[1])
		return fa->cum[1] < fb->cum[1] ? 1 : -1;
	return strcmp(fa->name, fb->name);
}

void ms_top_table_render(const struct ms_rec_fns *t, const struct ms_top_view *v, char **buf,
			 size_t *len, size_t *cap)
{
	int ncols = v->live ? MS_TOP_NCOLS : MS_TOP_OWN_LIVE;
	struct ms_rec_fns_totals tot;
	const struct ms_rec_fn *fns;
	uint32_t *order;
	size_t n = 0, nfns;

	for (int c = 0; c < ncols; c++)
		ms_top_buf_printf(buf, len, cap, "%*s%c", widths[c], titles[c],
				  (int)v->sort == c ? '*' : ' ');
	ms_top_buf_printf(buf, len, cap, " FUNCTION\n");
	fns = ms_rec_fns_list(t, &nfns);
	ms_rec_fns_totals(t, &tot);
	order = ms_xmalloc((nfns ? nfns : 1) * sizeof(*order));
	for (size_t i = 0; i < nfns; i++)
		order[n++] = (uint32_t)i;
	sort_ctx = (struct sort_ctx){.fns = fns, .t = tot, .v = v};
	qsort(order, n, sizeof(*order), by_column);
	for (size_t r = 0; r < n && r < v->max_rows; r++) {
		const struct ms_rec_fn *f = &fns[order[r]];

		for (int c = 0; c < ncols; c++) {
			double x = value(&tot, f, v, (enum ms_top_col)c);
			char a[32], cell[40];

			if (c == MS_TOP_OWN_COUNT || c == MS_TOP_TOT_COUNT)
				ms_fmt_count(cell, sizeof(cell), (uint64_t)llround(x));
			else if (c == MS_TOP_OWN_LIVE || c == MS_TOP_TOT_LIVE)
				ms_fmt_bytes(cell, sizeof(cell), (uint64_t)llround(x));
			else
				snprintf(cell, sizeof(cell), "%s/s",
					 ms_fmt_bytes(a, sizeof(a), (uint64_t)llround(x)));
			ms_top_buf_printf(buf, len, cap, "%*s ", widths[c], cell);
		}
		ms_top_buf_printf(buf, len, cap, " %s\n", f->name);
	}
	free(order);
}
