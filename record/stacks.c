// SPDX-License-Identifier: MIT
/*
 * record: the stack table of both modes. Stacks are interned (one copy of
 * the PCs per distinct stack, keyed by their PCs and a tag); probe mode adds
 * weighted allocation samples, walk mode counts threads caught on a stack.
 * Sampled pointers are kept in a multiset so that a free marks the right
 * sample even when an address is reused.
 */
#include "record/record.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * What a target can make memspy keep is bounded (it can feed millions of
 * distinct fake stacks, or never free): past a bound, a new stack shares
 * its function's stack with no frames (shown as [unknown]), and a sample is
 * counted but not kept for matching its free (its block counts as live).
 * The summary says which bound was hit (ms_rec_totals).
 */
#define MAX_STACKS    (1u << 18) /* distinct stacks: ~20 MiB with their index */
#define MAX_TABLE_PCS (1u << 20) /* PCs kept over every distinct stack: 8 MiB (the output
				   tree built from them costs ~100x that) */
#define MAX_SAMPLES   (1u << 21) /* samples kept for matching frees: 80 MiB */

struct stack {
	size_t pc_off; /* into t->pcs */
	uint32_t npcs;
	int fn;
	uint64_t hash;
	uint64_t samples, live_samples, bytes, live_bytes;
	double count, live_count;
};

struct sample {
	ms_raddr_t ptr;
	uint64_t weight;
	double count;
	uint32_t stack;
	uint32_t prev; /* 1 + index of the previous live sample at the same ptr; 0 = none */
	bool freed;
};

/* ptr -> 1 + index of the newest live sample at ptr (0 = slot free). */
struct ptr_slot {
	ms_raddr_t ptr;
	uint32_t head;
};

struct ms_rec_table {
	ms_raddr_t *pcs;
	size_t npcs, pcs_cap;
	struct stack *stacks;
	size_t nstacks, stacks_cap;
	uint32_t *stack_index;	/* 1 + stack id; 0 = empty */
	size_t stack_index_cap; /* power of two */
	struct sample *samples;
	size_t nsamples, samples_cap;
	uint32_t free_samples; /* 1 + index of a freed sample to reuse (chained by prev); 0 = none */
	struct ptr_slot *live;
	size_t live_cap, live_used; /* slots whose ptr was ever set (never emptied but on rehash) */
	struct ptr_slot *live_spare; /* the table before the last rehash, reused by the next */
	size_t live_spare_cap;
	uint64_t frees_matched, failed;
	uint64_t stacks_capped; /* samples whose stack was past MAX_STACKS / MAX_TABLE_PCS */
	uint64_t untracked;	/* samples not kept: MAX_SAMPLES live ones were */
	bool no_frees;		/* frees are not followed: samples are not kept (ms_rec_table_no_frees) */
};

static uint64_t hash_ptr(ms_raddr_t p)
{
	p ^= p >> 33;
	p *= 0xff51afd7ed558ccdull;
	p ^= p >> 33;
	return p;
}

struct ms_rec_table *ms_rec_table_new(void)
{
	struct ms_rec_table *t = ms_xcalloc(1, sizeof(*t));

	t->stack_index_cap = 1024;
	t->stack_index = ms_xcalloc(t->stack_index_cap, sizeof(*t->stack_index));
	t->live_cap = 1024;
	t->live = ms_xcalloc(t->live_cap, sizeof(*t->live));
	return t;
}

void ms_rec_table_no_frees(struct ms_rec_table *t)
{
	t->no_frees = true;
}

void ms_rec_table_free(struct ms_rec_table *t)
{
	if (!t)
		return;
	free(t->pcs);
	free(t->stacks);
	free(t->stack_index);
	free(t->samples);
	free(t->live);
	free(t->live_spare);
	free(t);
}

static void stack_index_insert(uint32_t *index, size_t cap, uint64_t hash, uint32_t id)
{
	for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (!index[i]) {
			index[i] = id + 1;
			return;
		}
	}
}

static uint32_t intern_stack(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int fn)
{
	uint64_t h = ms_hash_u64s(pcs, npcs);
	size_t mask = t->stack_index_cap - 1;
	struct stack *s;

	for (size_t i = h & mask; t->stack_index[i]; i = (i + 1) & mask) {
		s = &t->stacks[t->stack_index[i] - 1];
		if (s->hash == h && s->npcs == npcs && s->fn == fn &&
		    !memcmp(t->pcs + s->pc_off, pcs, npcs * sizeof(*pcs)))
			return t->stack_index[i] - 1;
	}
	if (npcs && (t->nstacks >= MAX_STACKS || t->npcs + npcs > MAX_TABLE_PCS)) {
		t->stacks_capped++;
		return intern_stack(t, pcs, 0, fn); /* at most one per function: always room */
	}
	if ((t->nstacks + 1) * 2 > t->stack_index_cap) {
		size_t cap = t->stack_index_cap * 2;
		uint32_t *index = ms_xcalloc(cap, sizeof(*index));

		for (size_t k = 0; k < t->nstacks; k++)
			stack_index_insert(index, cap, t->stacks[k].hash, (uint32_t)k);
		free(t->stack_index);
		t->stack_index = index;
		t->stack_index_cap = cap;
	}
	ms_xgrow((void **)&t->stacks, &t->stacks_cap, t->nstacks + 1, sizeof(*t->stacks));
	ms_xgrow((void **)&t->pcs, &t->pcs_cap, t->npcs + npcs + 1, sizeof(*t->pcs));
	memcpy(t->pcs + t->npcs, pcs, npcs * sizeof(*pcs));
	s = &t->stacks[t->nstacks];
	memset(s, 0, sizeof(*s));
	s->pc_off = t->npcs;
	s->npcs = (uint32_t)npcs;
	s->fn = fn;
	s->hash = h;
	t->npcs += npcs;
	stack_index_insert(t->stack_index, t->stack_index_cap, h, (uint32_t)t->nstacks);
	return (uint32_t)t->nstacks++;
}

static struct ptr_slot *live_slot(struct ptr_slot *tab, size_t cap, ms_raddr_t ptr, bool *found)
{
	for (size_t i = hash_ptr(ptr) & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (tab[i].ptr == ptr) {
			*found = true;
			return &tab[i];
		}
		if (!tab[i].ptr) {
			*found = false;
			return &tab[i];
		}
	}
}

/* Rebuilds the pointer table, dropping pointers with no live sample left. */
static void live_rehash(struct ms_rec_table *t)
{
	size_t n = 0, cap;
	struct ptr_slot *tab;
	bool found;

	for (size_t i = 0; i < t->live_cap; i++)
		n += t->live[i].ptr && t->live[i].head;
	cap = t->live_cap;
	while ((n + 1) * 4 > cap)
		cap *= 2;
	/* The previous table's pages again when the size is the same (no new page faults). */
	if (t->live_spare && t->live_spare_cap == cap) {
		tab = t->live_spare;
		memset(tab, 0, cap * sizeof(*tab));
	} else {
		free(t->live_spare);
		tab = ms_xcalloc(cap, sizeof(*tab));
	}
	for (size_t i = 0; i < t->live_cap; i++) {
		if (t->live[i].ptr && t->live[i].head)
			*live_slot(tab, cap, t->live[i].ptr, &found) = t->live[i];
	}
	t->live_spare = t->live;
	t->live_spare_cap = t->live_cap;
	t->live = tab;
	t->live_cap = cap;
	t->live_used = n;
}

/*
 * At MAX_SAMPLES: drops the samples already freed (renumbering the rest and
 * their pointer chains). Returns whether there is room again (a quarter of
 * the bound at least); if not, later samples are counted but not kept.
 */
static bool compact_samples(struct ms_rec_table *t)
{
	uint32_t *to = ms_xmalloc(t->nsamples * sizeof(*to));
	size_t n = 0;

	for (size_t i = 0; i < t->nsamples; i++) {
		to[i] = 0;
		if (t->samples[i].freed)
			continue;
		t->samples[n] = t->samples[i];
		to[i] = (uint32_t)(n + 1);
		n++;
	}
	/* A chain holds live samples only (a free unlinks its head): every link maps. */
	for (size_t i = 0; i < n; i++)
		if (t->samples[i].prev)
			t->samples[i].prev = to[t->samples[i].prev - 1];
	for (size_t i = 0; i < t->live_cap; i++)
		if (t->live[i].ptr && t->live[i].head)
			t->live[i].head = to[t->live[i].head - 1];
	free(to);
	t->nsamples = n;
	t->free_samples = 0; /* the freed ones are gone */
	return n <= MAX_SAMPLES / 4 * 3;
}

void ms_rec_table_compact(struct ms_rec_table *t)
{
	if (t->nsamples)
		compact_samples(t);
}

static void add(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int fn,
		uint64_t weight, uint64_t size, ms_raddr_t ptr, bool keep)
{
	/* Poisson sampling by bytes: a sample of size s weighted w stands for w/s calls. */
	double count = size && weight != size ? (double)weight / (double)size : 1.0;
	struct sample *smp;
	struct ptr_slot *slot;
	struct stack *s;
	uint32_t id, idx;
	bool found;

	if (!ptr) {
		/* A failed call allocated nothing (realloc(p, 0) returns NULL and frees). */
		t->failed++;
		return;
	}
	id = intern_stack(t, pcs, npcs, fn);
	s = &t->stacks[id];
	s->samples++;
	s->live_samples++;
	s->bytes += weight;
	s->count += count;
	s->live_bytes += weight;
	s->live_count += count;
	if (!keep)
		return; /* never freed, as far as memspy will know */
	if (t->no_frees)
		return; /* nothing will ask for it: no per-sample record, no pointer slot */
	if (t->untracked ||
	    (t->nsamples >= MAX_SAMPLES && !t->free_samples && !compact_samples(t))) {
		t->untracked++; /* counted above; its free cannot be matched */
		return;
	}
	/*
	 * A freed sample's record is taken again (no chain holds it: a free
	 * unlinks the head of its pointer's chain), so the array stops growing
	 * once frees keep up with samples.
	 */
	if (t->free_samples) {
		idx = t->free_samples - 1;
		t->free_samples = t->samples[idx].prev;
	} else {
		ms_xgrow((void **)&t->samples, &t->samples_cap, t->nsamples + 1,
			 sizeof(*t->samples));
		idx = (uint32_t)t->nsamples++;
	}
	smp = &t->samples[idx];
	*smp = (struct sample){.ptr = ptr, .weight = weight, .count = count, .stack = id};
	if ((t->live_used + 1) * 2 > t->live_cap)
		live_rehash(t);
	slot = live_slot(t->live, t->live_cap, ptr, &found);
	if (!found) {
		slot->ptr = ptr;
		slot->head = 0;
		t->live_used++;
	}
	smp->prev = slot->head;
	slot->head = idx + 1;
}

void ms_rec_table_add(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int fn,
		      uint64_t weight, uint64_t size, ms_raddr_t ptr, pid_t tid)
{
	(void)tid;
	add(t, pcs, npcs, fn, weight, size, ptr, true);
}

void ms_rec_table_add_unfollowed(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs,
				 int fn, uint64_t weight, uint64_t size, ms_raddr_t ptr)
{
	add(t, pcs, npcs, fn, weight, size, ptr, false);
}

void ms_rec_table_count(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int tag)
{
	uint32_t id = intern_stack(t, pcs, npcs, tag); /* may move t->stacks */

	t->stacks[id].samples++;
}

int ms_rec_table_free_ptr(struct ms_rec_table *t, ms_raddr_t ptr)
{
	struct ptr_slot *slot;
	struct sample *smp;
	struct stack *s;
	uint32_t idx;
	bool found;

	if (!ptr)
		return 0;
	slot = live_slot(t->live, t->live_cap, ptr, &found);
	if (!found || !slot->head)
		return 0;
	idx = slot->head - 1;
	smp = &t->samples[idx];
	slot->head = smp->prev;
	smp->freed = true;
	smp->prev = t->free_samples;
	t->free_samples = idx + 1;
	s = &t->stacks[smp->stack];
	s->live_bytes -= smp->weight;
	s->live_samples--;
	s->live_count -= smp->count;
	t->frees_matched++;
	return 1;
}

size_t ms_rec_table_nstacks(const struct ms_rec_table *t)
{
	return t->nstacks;
}

void ms_rec_table_stack(const struct ms_rec_table *t, size_t i, struct ms_rec_stack *out)
{
	const struct stack *s = &t->stacks[i];

	*out = (struct ms_rec_stack){
	    .pcs = t->pcs + s->pc_off,
	    .npcs = s->npcs,
	    .fn = s->fn,
	    .samples = s->samples,
	    .live_samples = s->live_samples,
	    .bytes = s->bytes,
	    .count = s->count,
	    .live_bytes = s->live_bytes,
	    /* Rounding: sums of doubles can leave -1e-12 behind after frees. */
	    .live_count = s->live_count < 1e-9 ? 0 : s->live_count,
	};
}

void ms_rec_table_totals(const struct ms_rec_table *t, struct ms_rec_totals *out)
{
	struct ms_rec_totals r = {.frees_matched = t->frees_matched,
				  .failed = t->failed,
				  .distinct_pcs_hint = t->npcs,
				  .stacks_capped = t->stacks_capped,
				  .untracked = t->untracked,
				  .max_stacks = MAX_STACKS,
				  .max_pcs = MAX_TABLE_PCS,
				  .max_samples = MAX_SAMPLES};

	for (size_t i = 0; i < t->nstacks; i++) {
		const struct stack *s = &t->stacks[i];

		r.samples += s->samples;
		r.live_samples += s->live_samples;
		r.bytes += s->bytes;
		r.count += s->count;
		r.live_bytes += s->live_bytes;
		r.live_count += s->live_count < 1e-9 ? 0 : s->live_count;
	}
	*out = r;
}
