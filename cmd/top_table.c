// SPDX-License-Identifier: MIT
/*
 * memspy top: record's samples summed per function. Each distinct stack of
 * the recording table is symbolised once, when it first appears; its
 * functions (the leaf, and the distinct set of all its frames) are kept, so
 * that a refresh only adds what each stack gained since the last one.
 */
#include "cmd/top_int.h"
#include "unwind/unwind.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 512 /* a longer name is cut (C++ templates) */

struct fn {
	char *name;	/* "function (module)", printable ASCII */
	double win[4];	/* this window: own bytes, total bytes, own count, total count */
	double cum[4];	/* since the first update, the same */
	double live[2]; /* bytes still live now: own, total */
};

struct stack {
	uint32_t leaf; /* index in fns */
	uint32_t *fns; /* distinct functions on the stack, leaf included */
	size_t nfns;
	uint64_t bytes; /* the recording table's totals at the last update */
	double count;
};

struct ms_top_table {
	struct fn *fns;
	size_t nfns, fns_cap;
	uint32_t *index; /* open addressing over fns by name; UINT32_MAX = empty */
	size_t index_cap;
	struct stack *stacks;
	size_t nstacks, stacks_cap;
	uint64_t window_ns, cum_ns;
	double win_bytes, win_count, cum_bytes, cum_count, live_bytes;
};

struct ms_top_table *ms_top_table_new(void)
{
	return ms_xcalloc(1, sizeof(struct ms_top_table));
}

void ms_top_table_free(struct ms_top_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nfns; i++)
		free(t->fns[i].name);
	for (size_t i = 0; i < t->nstacks; i++)
		free(t->stacks[i].fns);
	free(t->fns);
	free(t->index);
	free(t->stacks);
	free(t);
}

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

static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static void index_put(uint32_t *index, size_t cap, const char *name, uint32_t id)
{
	size_t k = (size_t)hash_name(name) & (cap - 1);

	while (index[k] != UINT32_MAX)
		k = (k + 1) & (cap - 1);
	index[k] = id;
}

/* The function named name (taken over: freed if already known). */
static uint32_t intern_fn(struct ms_top_table *t, char *name)
{
	size_t k;

	if ((t->nfns + 1) * 2 > t->index_cap) {
		size_t cap = t->index_cap ? t->index_cap * 2 : 256;

		free(t->index);
		t->index = ms_xmalloc(cap * sizeof(*t->index));
		memset(t->index, 0xff, cap * sizeof(*t->index));
		t->index_cap = cap;
		for (size_t i = 0; i < t->nfns; i++)
			index_put(t->index, cap, t->fns[i].name, (uint32_t)i);
	}
	for (k = (size_t)hash_name(name) & (t->index_cap - 1); t->index[k] != UINT32_MAX;
	     k = (k + 1) & (t->index_cap - 1)) {
		if (!strcmp(t->fns[t->index[k]].name, name)) {
			free(name);
			return t->index[k];
		}
	}
	ms_xgrow((void **)&t->fns, &t->fns_cap, t->nfns + 1, sizeof(*t->fns));
	t->fns[t->nfns] = (struct fn){.name = name};
	t->index[k] = (uint32_t)t->nfns;
	return (uint32_t)t->nfns++;
}

/* Names come from the target's files: only printable ASCII reaches a terminal. */
static char *printable(const char *s)
{
	size_t n = strnlen(s, NAME_MAX_LEN);
	char *out = ms_xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		out[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : s[i] == ' ' ? ' ' : '?';
	out[n] = '\0';
	return out;
}

static char *frame_name(const struct ms_sym_frame *f, ms_raddr_t pc)
{
	char *raw, *name;

	if (!f)
		raw = ms_xasprintf("0x%llx", (unsigned long long)pc);
	else if (strcmp(f->function, "??"))
		raw = strcmp(f->module, "??") ? ms_xasprintf("%s (%s)", f->function, f->module)
					      : ms_xstrdup(f->function);
	else if (strcmp(f->module, "??"))
		raw = ms_xasprintf("%s+0x%llx", f->module, (unsigned long long)f->module_offset);
	else
		raw = ms_xasprintf("0x%llx", (unsigned long long)f->address);
	name = printable(raw);
	free(raw);
	return name;
}

static void stack_add_fn(struct stack *s, size_t *cap, uint32_t id)
{
	for (size_t i = 0; i < s->nfns; i++)
		if (s->fns[i] == id)
			return; /* recursion: once per stack */
	ms_xgrow((void **)&s->fns, cap, s->nfns + 1, sizeof(*s->fns));
	s->fns[s->nfns++] = id;
}

/* The functions of a stack new to t; pcs are return addresses, leaf first. */
static void add_stack(struct ms_top_table *t, const struct ms_rec_stack *rs,
		      struct ms_symbolizer *sym)
{
	struct stack s = {0};
	size_t cap = 0;

	if (!rs->npcs) {
		s.leaf = intern_fn(t, ms_xstrdup("[unknown]"));
		stack_add_fn(&s, &cap, s.leaf);
	}
	for (size_t k = 0; k < rs->npcs; k++) {
		const struct ms_sym_frame *sf = NULL;
		size_t nsf = 0;

		if (!sym || ms_symbolize(sym, rs->pcs[k], true, &sf, &nsf) || !nsf) {
			sf = NULL;
			nsf = 1;
		}
		/* innermost (inlined) first: the leaf's own function is the first frame */
		for (size_t j = 0; j < nsf; j++) {
			uint32_t id = intern_fn(t, frame_name(sf ? &sf[j] : NULL, rs->pcs[k]));

			if (k == 0 && j == 0)
				s.leaf = id;
			stack_add_fn(&s, &cap, id);
		}
	}
	ms_xgrow((void **)&t->stacks, &t->stacks_cap, t->nstacks + 1, sizeof(*t->stacks));
	t->stacks[t->nstacks++] = s;
}

void ms_top_table_update(struct ms_top_table *t, const struct ms_rec_table *rt,
			 struct ms_symbolizer *sym, uint64_t window_ns)
{
	size_t n = ms_rec_table_nstacks(rt);

	for (size_t i = 0; i < t->nfns; i++) {
		memset(t->fns[i].win, 0, sizeof(t->fns[i].win));
		memset(t->fns[i].live, 0, sizeof(t->fns[i].live));
	}
	t->win_bytes = t->win_count = t->live_bytes = 0;
	t->window_ns = window_ns;
	t->cum_ns += window_ns;
	for (size_t i = 0; i < n; i++) {
		struct ms_rec_stack rs;
		struct stack *s;
		double db, dc;

		ms_rec_table_stack(rt, i, &rs);
		if (i >= t->nstacks)
			add_stack(t, &rs, sym);
		s = &t->stacks[i];
		/* Table totals only grow; a stack's count is a sum of doubles. */
		db = rs.bytes > s->bytes ? (double)(rs.bytes - s->bytes) : 0;
		dc = rs.count > s->count ? rs.count - s->count : 0;
		s->bytes = rs.bytes;
		s->count = rs.count;
		t->win_bytes += db;
		t->win_count += dc;
		t->live_bytes += (double)rs.live_bytes;
		for (size_t k = 0; k < s->nfns; k++) {
			struct fn *f = &t->fns[s->fns[k]];
			bool own = s->fns[k] == s->leaf;

			f->win[1] += db;
			f->win[3] += dc;
			f->live[1] += (double)rs.live_bytes;
			if (own) {
				f->win[0] += db;
				f->win[2] += dc;
				f->live[0] += (double)rs.live_bytes;
			}
		}
	}
	t->cum_bytes += t->win_bytes;
	t->cum_count += t->win_count;
	for (size_t i = 0; i < t->nfns; i++)
		for (int c = 0; c < 4; c++)
			t->fns[i].cum[c] += t->fns[i].win[c];
}

bool ms_top_table_pending(const struct ms_top_table *t, const struct ms_rec_table *rt)
{
	return ms_rec_table_nstacks(rt) > t->nstacks;
}

void ms_top_table_totals(const struct ms_top_table *t, struct ms_top_totals *out)
{
	*out = (struct ms_top_totals){
	    .win_bytes = t->win_bytes,
	    .win_count = t->win_count,
	    .cum_bytes = t->cum_bytes,
	    .cum_count = t->cum_count,
	    .live_bytes = t->live_bytes,
	    .window_ns = t->window_ns,
	    .cum_ns = t->cum_ns,
	    .nfns = t->nfns,
	};
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
static double value(const struct ms_top_table *t, const struct fn *f, const struct ms_top_view *v,
		    enum ms_top_col c)
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
	const struct ms_top_table *t;
	const struct ms_top_view *v;
};
static struct sort_ctx sort_ctx; /* qsort has no context argument */

static int by_column(const void *a, const void *b)
{
	const struct fn *fa = &sort_ctx.t->fns[*(const uint32_t *)a];
	const struct fn *fb = &sort_ctx.t->fns[*(const uint32_t *)b];
	double va = value(sort_ctx.t, fa, sort_ctx.v, sort_ctx.v->sort);
	double vb = value(sort_ctx.t, fb, sort_ctx.v, sort_ctx.v->sort);

	if (va != vb)
		return va < vb ? 1 : -1;
	/* ties (often 0 in this window): the biggest since the start first, then by name */
	if (fa->cum[1] != fb->cum[1])
		return fa->cum[1] < fb->cum[1] ? 1 : -1;
	return strcmp(fa->name, fb->name);
}

void ms_top_table_render(const struct ms_top_table *t, const struct ms_top_view *v, char **buf,
			 size_t *len, size_t *cap)
{
	int ncols = v->live ? MS_TOP_NCOLS : MS_TOP_OWN_LIVE;
	uint32_t *order;
	size_t n = 0;

	for (int c = 0; c < ncols; c++)
		ms_top_buf_printf(buf, len, cap, "%*s%c", widths[c], titles[c],
				  (int)v->sort == c ? '*' : ' ');
	ms_top_buf_printf(buf, len, cap, " FUNCTION\n");
	order = ms_xmalloc((t->nfns ? t->nfns : 1) * sizeof(*order));
	for (size_t i = 0; i < t->nfns; i++)
		order[n++] = (uint32_t)i;
	sort_ctx = (struct sort_ctx){.t = t, .v = v};
	qsort(order, n, sizeof(*order), by_column);
	for (size_t r = 0; r < n && r < v->max_rows; r++) {
		const struct fn *f = &t->fns[order[r]];

		for (int c = 0; c < ncols; c++) {
			double x = value(t, f, v, (enum ms_top_col)c);
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
