// SPDX-License-Identifier: MIT
/*
 * heapwalk: the quick heap read, what walk mode reads at each heap stop:
 * the arena ring's headers (system_mem, top), the sizes on each free list
 * (within a budget of reads), mp_'s mmapped counters and the tcache counts.
 * No chunk is walked (walk.c does that); the figures are mallinfo2's
 * arena-level ones, approximate where a list was cut short.
 */
#include "heapwalk/heapwalk_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Sums the chunk sizes of one list; returns false when it had to stop early. */
static bool sum_list(const struct ms_reader *r, ms_raddr_t first, ms_raddr_t head, bool mangled,
		     uint64_t *bytes, uint64_t *reads, uint64_t max_reads)
{
	ms_raddr_t c = first;

	while (c && c != head) {
		uint64_t w[3];

		if (*reads >= max_reads)
			return false;
		/* Chunks are 16-aligned on x86_64: anything else is a torn or corrupt list. */
		if (c & 15)
			return false;
		(*reads)++;
		if (ms_read_exact(r, c, w, sizeof(w)) != 0)
			return false;
		*bytes += w[1] & ~(uint64_t)7;
		/* Safe-linking (2.32+) mangles the singly linked fd with its own address. */
		c = mangled ? ((c + 16) >> 12) ^ w[2] : w[2];
	}
	return true;
}

static int read_arena(const struct ms_heap_loc *loc, const struct ms_reader *r, ms_raddr_t a,
		      unsigned char *b, struct ms_heap_quick_arena *ar, struct ms_heap_quick *h,
		      uint64_t max_reads)
{
	const struct ms_heap_layout *l = &loc->layout;
	uint64_t top_size[2];

	h->reads++;
	if (ms_read_exact(r, a, b, l->ar_size) != 0)
		return -EFAULT;
	memset(ar, 0, sizeof(*ar));
	ar->addr = a;
	ar->is_main = a == loc->main_arena;
	ar->mutex = hw_rd32(b + l->ar_mutex);
	ar->system_mem = hw_rd64(b + l->ar_system_mem);
	if (hw_rd64(b + l->ar_top)) {
		h->reads++;
		if (ms_read_exact(r, hw_rd64(b + l->ar_top), top_size, sizeof(top_size)) == 0)
			ar->top = top_size[1] & ~(uint64_t)7;
	}
	for (uint32_t i = 0; i < l->nfastbins; i++)
		if (!sum_list(r, hw_rd64(b + l->ar_fastbins + 8 * i), 0, l->safe_linking, &ar->fast,
			      &h->reads, max_reads))
			ar->capped = true;
	for (unsigned i = 1; i < HW_NBINS; i++) {
		ms_raddr_t head = a + l->ar_bins + (i - 1) * 16 - 16;
		uint64_t *kind = i == 1 ? &ar->unsorted : i < 64 ? &ar->small : &ar->large;

		if (!sum_list(r, hw_rd64(b + l->ar_bins + (i - 1) * 16), head, false, kind, &h->reads,
			      max_reads))
			ar->capped = true;
	}
	if (ar->mutex)
		h->inconsistent = true;
	if (ar->capped)
		h->capped = true;
	return 0;
}

int ms_heap_quick_read(const struct ms_heap_loc *loc, const struct ms_reader *r,
			  struct ms_heap_quick *h, uint64_t max_reads)
{
	const struct ms_heap_layout *l = &loc->layout;
	unsigned char *b = ms_xmalloc(l->ar_size);
	ms_raddr_t a = loc->main_arena;
	int ret = 0;

	h->narenas = 0;
	h->mmapped_mem = h->n_mmaps = h->tcache = h->reads = 0;
	h->capped = h->inconsistent = h->tcache_known = false;
	for (unsigned n = 0; n < HW_MAX_ARENAS; n++) {
		struct ms_heap_quick_arena ar;
		ms_raddr_t next;
		bool seen = false;

		for (size_t k = 0; k < h->narenas; k++)
			seen |= h->arenas[k].addr == a;
		if (seen || (a & 7))
			break;
		if (read_arena(loc, r, a, b, &ar, h, max_reads)) {
			if (!h->narenas)
				ret = -EFAULT;
			h->capped = true;
			break;
		}
		ms_xgrow((void **)&h->arenas, &h->cap, h->narenas + 1, sizeof(*h->arenas));
		h->arenas[h->narenas++] = ar;
		next = hw_rd64(b + l->ar_next);
		if (next == loc->main_arena)
			break;
		a = next;
	}
	if (loc->mp) {
		uint64_t v;
		int32_t n;

		h->reads += 2;
		if (ms_read_exact(r, loc->mp + l->mp_mmapped_mem, &v, 8) == 0)
			h->mmapped_mem = v;
		if (ms_read_exact(r, loc->mp + l->mp_n_mmaps, &n, 4) == 0)
			h->n_mmaps = (uint64_t)(n < 0 ? 0 : n);
	}
	if (l->tc_sizeof && l->tc_nbins <= 128 &&
	    (l->tc_count_size == 1 || l->tc_count_size == 2)) {
		unsigned char counts[256];

		for (size_t i = 0; i < loc->nthreads; i++) {
			ms_raddr_t tc = loc->threads[i].tcache;

			if (!tc)
				continue;
			h->reads++;
			if (ms_read_exact(r, tc + l->tc_counts, counts,
					  l->tc_nbins * l->tc_count_size))
				continue;
			h->tcache_known = true;
			for (uint32_t k = 0; k < l->tc_nbins; k++) {
				uint16_t c = counts[k];

				if (l->tc_count_size == 2)
					memcpy(&c, counts + 2 * k, 2);
				/* Bin k holds chunks of 0x20 + 16k bytes on x86_64. */
				h->tcache += (uint64_t)c * (0x20 + 16 * k);
			}
		}
	}
	free(b);
	return ret;
}

void ms_heap_quick_free(struct ms_heap_quick *h)
{
	free(h->arenas);
	h->arenas = NULL;
	h->narenas = h->cap = 0;
}

