// SPDX-License-Identifier: MIT
/*
 * record: the stack table summed per function, over windows (memspy top).
 * Each distinct stack is symbolised once, when it first appears; its
 * functions (the leaf, and the distinct set of all its frames) are kept,
 * so that a window only adds what each stack gained since the last one
 * (the table since a mark, mark.c).
 */
#include "record/record.h"
#include "unwind/unwind.h"

#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 512 /* a longer name is cut (C++ templates) */

struct stack {
	uint32_t leaf; /* index in fns */
	uint32_t *fns; /* distinct functions on the stack, leaf included */
	size_t nfns;
};

struct ms_rec_fns {
	struct ms_rec_fn *fns;
	size_t nfns, fns_cap;
	uint32_t *index; /* open addressing over fns by name; UINT32_MAX = empty */
	size_t index_cap;
	struct stack *stacks;
	size_t nstacks, stacks_cap;
	struct ms_rec_mark *mark; /* the table at the last update */
	uint64_t window_ns, cum_ns;
	double win_bytes, win_count, cum_bytes, cum_count, live_bytes;
};

struct ms_rec_fns *ms_rec_fns_new(void)
{
	struct ms_rec_fns *t = ms_xcalloc(1, sizeof(*t));

	t->mark = ms_rec_mark_new();
	return t;
}

void ms_rec_fns_free(struct ms_rec_fns *t)
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
	ms_rec_mark_free(t->mark);
	free(t);
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
static uint32_t intern_fn(struct ms_rec_fns *t, char *name)
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
	t->fns[t->nfns] = (struct ms_rec_fn){.name = name};
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
static void add_stack(struct ms_rec_fns *t, const struct ms_rec_stack *rs,
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

void ms_rec_fns_update(struct ms_rec_fns *t, const struct ms_rec_table *rt,
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
		struct ms_rec_stack rs, since;
		struct stack *s;
		double db, dc;

		ms_rec_table_stack(rt, i, &rs);
		if (i >= t->nstacks)
			add_stack(t, &rs, sym);
		s = &t->stacks[i];
		/* What the stack gained in this window (the table's figures only grow). */
		ms_rec_mark_stack(t->mark, rt, i, &since);
		db = (double)since.bytes;
		dc = since.count;
		t->win_bytes += db;
		t->win_count += dc;
		t->live_bytes += (double)rs.live_bytes;
		for (size_t k = 0; k < s->nfns; k++) {
			struct ms_rec_fn *f = &t->fns[s->fns[k]];
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
	ms_rec_mark_set(t->mark, rt);
	t->cum_bytes += t->win_bytes;
	t->cum_count += t->win_count;
	for (size_t i = 0; i < t->nfns; i++)
		for (int c = 0; c < 4; c++)
			t->fns[i].cum[c] += t->fns[i].win[c];
}

bool ms_rec_fns_pending(const struct ms_rec_fns *t, const struct ms_rec_table *rt)
{
	return ms_rec_table_nstacks(rt) > t->nstacks;
}

void ms_rec_fns_totals(const struct ms_rec_fns *t, struct ms_rec_fns_totals *out)
{
	*out = (struct ms_rec_fns_totals){
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

const struct ms_rec_fn *ms_rec_fns_list(const struct ms_rec_fns *t, size_t *n)
{
	*n = t->nfns;
	return t->fns;
}
