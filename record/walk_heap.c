// SPDX-License-Identifier: MIT
/*
 * record, walk mode: the cheap heap read done at each heap stop
 * (arena headers, free-list sizes, mp_ counters, tcache counts; no chunk
 * walk), and which symbolised frames belong to the allocator.
 */
#include "record/walk_int.h"
#include "heapwalk/heapwalk.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CLASSIFY_DEPTH 48 /* innermost PCs looked at to decide "inside the allocator" */
#define MAX_ARENAS 1024u /* glibc caps arenas at 8 x cores; this caps a corrupt ring */
#define NBINS	   128u

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

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
		      unsigned char *b, struct ms_rec_walk_arena *ar, struct ms_rec_walk_heap *h,
		      uint64_t max_reads)
{
	const struct ms_heap_layout *l = &loc->layout;
	int32_t mutex;
	uint64_t top_size[2];

	h->reads++;
	if (ms_read_exact(r, a, b, l->ar_size) != 0)
		return -EFAULT;
	memset(ar, 0, sizeof(*ar));
	ar->addr = a;
	ar->is_main = a == loc->main_arena;
	memcpy(&mutex, b + l->ar_mutex, 4);
	ar->mutex = mutex;
	ar->system_mem = rd64(b + l->ar_system_mem);
	if (rd64(b + l->ar_top)) {
		h->reads++;
		if (ms_read_exact(r, rd64(b + l->ar_top), top_size, sizeof(top_size)) == 0)
			ar->top = top_size[1] & ~(uint64_t)7;
	}
	for (uint32_t i = 0; i < l->nfastbins; i++)
		if (!sum_list(r, rd64(b + l->ar_fastbins + 8 * i), 0, l->safe_linking, &ar->fast,
			      &h->reads, max_reads))
			ar->capped = true;
	for (unsigned i = 1; i < NBINS; i++) {
		ms_raddr_t head = a + l->ar_bins + (i - 1) * 16 - 16;
		uint64_t *kind = i == 1 ? &ar->unsorted : i < 64 ? &ar->small : &ar->large;

		if (!sum_list(r, rd64(b + l->ar_bins + (i - 1) * 16), head, false, kind, &h->reads,
			      max_reads))
			ar->capped = true;
	}
	if (ar->mutex)
		h->inconsistent = true;
	if (ar->capped)
		h->capped = true;
	return 0;
}

int ms_rec_walk_heap_read(const struct ms_heap_loc *loc, const struct ms_reader *r,
			  struct ms_rec_walk_heap *h, uint64_t max_reads)
{
	const struct ms_heap_layout *l = &loc->layout;
	unsigned char *b = ms_xmalloc(l->ar_size);
	ms_raddr_t a = loc->main_arena;
	int ret = 0;

	h->narenas = 0;
	h->mmapped_mem = h->n_mmaps = h->tcache = h->reads = 0;
	h->capped = h->inconsistent = h->tcache_known = false;
	for (unsigned n = 0; n < MAX_ARENAS; n++) {
		struct ms_rec_walk_arena ar;
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
		next = rd64(b + l->ar_next);
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

void ms_rec_walk_heap_free(struct ms_rec_walk_heap *h)
{
	free(h->arenas);
	h->arenas = NULL;
	h->narenas = h->cap = 0;
}

/* ------------------------------------------------ allocator frames */

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p ? p : "";
}

/*
 * Entry points and glibc internals by name, for libcs without line info
 * (no libc6-dbg) and for allocators linked into the executable.
 */
static const char *const alloc_names[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "pvalloc",
    "cfree",
    "malloc_trim",
    "malloc_usable_size",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
    "__posix_memalign",
    "__libc_reallocarray",
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "_int_memalign",
    "_mid_memalign",
    "malloc_consolidate",
    "sysmalloc",
    "systrim",
    "mtrim",
    "heap_trim",
    "new_heap",
    "alloc_new_heap",
    "shrink_heap",
    "grow_heap",
    "munmap_chunk",
    "mremap_chunk",
    "tcache_init",
    "tcache_get",
    "tcache_put",
    "tcache_thread_shutdown",
    "arena_get2",
    "arena_get_retry",
    "_int_new_arena",
    "get_free_list",
    "reused_arena",
    "unlink_chunk",
    "ptmalloc_init",
    "malloc_hook_ini",
    "realloc_hook_ini",
    "memalign_hook_ini",
    "_int_free_merge_chunk",
    "_int_free_create_chunk",
    "_int_free_maybe_consolidate",
    "__malloc_arena_thread_freeres",
    "sysmalloc_mmap",
    "sysmalloc_mmap_fallback",
    "malloc_printerr",
    "__malloc_fork_lock_parent",
    "tcache_double_free_verify",
};

bool ms_rec_frame_is_allocator(const char *function, const char *file, const char *module)
{
	const char *m = base_name(module), *f = base_name(file);

	/* Whole-library allocators: every frame inside them is allocator time. */
	if (strstr(m, "jemalloc") || strstr(m, "tcmalloc") || strstr(m, "mimalloc") ||
	    strstr(m, "tbbmalloc") || strstr(m, "snmalloc") || strstr(m, "hoard"))
		return true;
	/* glibc with line info: everything compiled from malloc/ (arena.c is #included). */
	if (!strncmp(m, "libc.so", 7) && (!strcmp(f, "malloc.c") || !strcmp(f, "arena.c") ||
					  !strcmp(f, "hooks.c") || !strcmp(f, "morecore.c")))
		return true;
	if (!function)
		return false;
	if (!strncmp(function, "operator new", 12) || !strncmp(function, "operator delete", 15))
		return true;
	for (size_t i = 0; i < MS_ARRAY_SIZE(alloc_names); i++)
		if (!strcmp(function, alloc_names[i]))
			return true;
	return false;
}

bool ms_rec_module_is_runtime(const char *module)
{
	const char *m = base_name(module);

	return !strncmp(m, "libc.so", 7) || !strncmp(m, "ld-linux", 8) ||
	       !strncmp(m, "linux-vdso", 10) || !strncmp(m, "libpthread", 10) ||
	       !strncmp(m, "libstdc++", 9) || !strncmp(m, "libgcc_s", 8) || !strcmp(m, "??") || !*m;
}

bool ms_rec_stack_in_allocator(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t npcs)
{
	for (size_t i = 0; i < npcs && i < CLASSIFY_DEPTH; i++) {
		const struct ms_sym_frame *sf;
		size_t nsf;

		if (ms_symbolize(sym, pcs[i], i > 0, &sf, &nsf) || !nsf)
			continue;
		/* Innermost (inlined) first: the first frame outside the runtime decides. */
		for (size_t j = 0; j < nsf; j++) {
			const char *fn = strcmp(sf[j].function, "??") ? sf[j].function : NULL;

			if (ms_rec_frame_is_allocator(fn, sf[j].file, sf[j].module))
				return true;
			if (!ms_rec_module_is_runtime(sf[j].module))
				return false;
		}
	}
	return false;
}
