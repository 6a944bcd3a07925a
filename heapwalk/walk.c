// SPDX-License-Identifier: MIT
/*
 * The walk: every arena, every heap segment streamed through one reused
 * window, chunks classified, cache lists and bins resolved in local tables
 * built during the sequential walk (no remote read per list hop), mmapped
 * chunks found by a page-header scan. Every value read is hostile.
 */
#include "heapwalk/heapwalk_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>

/*
 * Read costs measured here (2 vCPUs, paravirtualised): one process_vm_readv
 * ~4-5 us whatever its size up to 16 KiB; streaming into a reused 256 KiB
 * buffer ~11 GB/s (1 MiB: 8, 4 MiB: 3.5, the buffer falls out of L2). So
 * stream 256 KiB windows, and after a chunk of 16 KiB or more (whose bytes
 * cost more to copy than a system call) read only 16 KiB at the next
 * header: a jump, not a copy of the chunk's contents. Big chunks inside a
 * window are still copied: their sizes are not known before the read.
 */
#define WIN_SIZE (256u << 10)
#define JUMP_CHUNK (16u << 10)
#define JUMP_READ (16u << 10)
/* Page-header probes per scattered read (process_vm_readv's iovec limit). */
#define PROBE_MAX 1024u
#define MAX_ERRORS 1000u
#define RESYNC_SCAN (1u << 20)
#define HIST_N 104u
/* Below this much heap one walker thread is enough. */
#define MT_MIN_BYTES (16ull << 20)
/* Allocations moved per step when the second walker's list joins the first (1.5 MiB). */
#define CK_SLICE (64u << 10)

/* A chunk that looks in use and is small enough to be a tcache or fastbin member. */
struct cent {
	uint64_t addr, fd;
	uint32_t size;
	uint16_t arena;
	uint8_t kind;
	uint8_t seen;
};

/* A chunk free by its successor's P bit: it must be in a bin. */
struct fent {
	uint64_t addr, fd, bk, size;
	uint16_t arena;
	uint8_t kind;
	uint8_t seen;
};

struct seg {
	ms_raddr_t start; /* first chunk */
	ms_raddr_t end;
	ms_raddr_t heap;  /* heap_info address, 0 for the main arena */
	size_t arena;
};

struct arena_buf {
	unsigned char *b; /* the malloc_state as read */
};

struct walker {
	const struct ms_heap_loc *loc;
	const struct ms_heap_layout *l;
	const struct ms_reader *r;
	const struct ms_maps *maps;
	struct ms_heap_report *rep;
	struct arena_buf *ab;
	struct seg *segs;
	size_t nsegs, segcap;
	struct cent *small;
	size_t nsmall, smallcap;
	struct fent *freev;
	size_t nfree, freecap;
	uint64_t small_max;
	uint64_t hmax; /* HEAP_MAX_SIZE of this process */
	size_t nheapsegs;
	/* Tables in mmap'd reservations (table_reserve) rather than malloc'd. */
	size_t small_map, free_map; /* bytes mapped, 0 when malloc'd */
	/*
	 * After the walk: succ[i] is the index in freev (address order) of
	 * freev[i].fd, or SUCC_NONE when fd is no free chunk (a bin head, or
	 * corruption). Bin hops then follow this compact array.
	 */
	uint32_t *succ;
	size_t succ_map;
	/*
	 * MS_HEAP_WALK_CHUNKS: the allocations for the leak scan. Big in-use
	 * chunks as settled (address order per walker), small ones once the
	 * cache lists have ruled them out, mmapped ones as probed; one sorted
	 * array in the report at the end.
	 */
	bool want_chunks;
	struct ms_heap_chunk *ck, *ck_mm;
	size_t nck, ckcap, nck_mm, ck_mmcap;
	unsigned char *win;
	ms_raddr_t win_base;
	size_t win_len;
	size_t errcap;
};

const char *ms_heap_kind_name(enum ms_heap_kind k)
{
	static const char *const names[MS_HK_N] = {
		[MS_HK_INUSE] = "in_use",      [MS_HK_TCACHE] = "tcache", [MS_HK_FAST] = "fastbin",
		[MS_HK_UNSORTED] = "unsorted", [MS_HK_SMALL] = "smallbin", [MS_HK_LARGE] = "largebin",
		[MS_HK_TOP] = "top",           [MS_HK_MMAPPED] = "mmapped",
	};

	return (unsigned)k < MS_HK_N ? names[k] : "?";
}

MS_PRINTF(5, 6)
static void err_add(struct walker *w, const char *kind, ms_raddr_t addr, int arena,
		    const char *fmt, ...)
{
	struct ms_heap_report *rep = w->rep;
	struct ms_heap_error *e;
	va_list ap;

	if (rep->nerrors >= MAX_ERRORS) {
		rep->errors_dropped++;
		return;
	}
	ms_xgrow((void **)&rep->errors, &w->errcap, rep->nerrors + 1, sizeof(*rep->errors));
	e = &rep->errors[rep->nerrors++];
	memset(e, 0, sizeof(*e));
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	e->addr = addr;
	e->arena = arena;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/*
 * A range is mapped when a run of adjacent readable mappings covers it, not
 * one mapping: after a fork the kernel cannot merge memory that grows next
 * to an inherited mapping (a different anon_vma), so brk's [heap] of a
 * daemon that forked, or a thread heap grown by mprotect in a forked
 * worker, shows as several adjacent lines of maps with the same
 * permissions. Every range check of the walk goes through here.
 */
bool hw_range_readable(const struct ms_maps *maps, ms_raddr_t a, uint64_t len)
{
	const struct ms_map *m = ms_maps_find(maps, a);
	ms_raddr_t end;
	size_t i;

	if (!m || len > UINT64_MAX - a)
		return false;
	end = a + len;
	for (i = (size_t)(m - maps->v);; i++) {
		if (!maps->v[i].r)
			return false;
		if (end <= maps->v[i].end)
			return true;
		if (i + 1 >= maps->n || maps->v[i + 1].start != maps->v[i].end)
			return false;
	}
}

bool hw_readable_run(const struct ms_maps *maps, ms_raddr_t a, ms_raddr_t *lo, ms_raddr_t *hi)
{
	const struct ms_map *m = ms_maps_find(maps, a);
	size_t first, last;

	if (!m || !m->r)
		return false;
	first = last = (size_t)(m - maps->v);
	while (first > 0 && maps->v[first - 1].r && maps->v[first - 1].end == maps->v[first].start)
		first--;
	while (last + 1 < maps->n && maps->v[last + 1].r &&
	       maps->v[last + 1].start == maps->v[last].end)
		last++;
	*lo = maps->v[first].start;
	*hi = maps->v[last].end;
	return true;
}

/*
 * The window: [addr, addr+len) from one read of up to WIN_SIZE bytes
 * ending at or before limit. NULL when the target cannot supply it.
 */
static const unsigned char *win_get_n(struct walker *w, ms_raddr_t addr, size_t len,
				      ms_raddr_t limit, size_t win)
{
	ssize_t n;
	size_t want;

	if (addr >= w->win_base && addr - w->win_base + len <= w->win_len)
		return w->win + (addr - w->win_base);
	if (limit <= addr || limit - addr < len)
		return NULL;
	want = (size_t)MS_MIN((uint64_t)MS_MAX(win, len), limit - addr);
	w->win_len = 0; /* invalid before refilling: a short read must not leave stale data */
	w->win_base = addr;
	n = w->r->read(w->r->ctx, addr, w->win, want);
	if (n <= 0)
		return NULL;
	w->win_len = (size_t)n;
	w->rep->bytes_read += (uint64_t)n;
	return w->win_len >= len ? w->win : NULL;
}

static const unsigned char *win_get(struct walker *w, ms_raddr_t addr, size_t len,
				    ms_raddr_t limit)
{
	return win_get_n(w, addr, len, limit, WIN_SIZE);
}

static unsigned hist_index(uint64_t sz)
{
	unsigned b = 0;

	if (sz < 1024)
		return (unsigned)(sz >> 4);
	while (b < 63 && (sz >> (b + 1)))
		b++;
	return MS_MIN(64u + (b - 10), HIST_N - 1);
}

static void hist_add(struct walker *w, uint64_t sz, bool in_use)
{
	struct ms_heap_hist *h = &w->rep->hist[hist_index(sz)];

	if (in_use) {
		h->inuse_chunks++;
		h->inuse_bytes += sz;
	} else {
		h->free_chunks++;
		h->free_bytes += sz;
	}
}

static void count(struct walker *w, size_t arena, enum ms_heap_kind k, uint64_t sz)
{
	struct ms_heap_arena *a = &w->rep->arenas[arena];

	a->c.chunks[k]++;
	a->c.bytes[k] += sz;
	if (k != MS_HK_TOP)
		hist_add(w, sz, k == MS_HK_INUSE || k == MS_HK_MMAPPED);
	if (k != MS_HK_INUSE && k != MS_HK_TOP && k != MS_HK_MMAPPED && sz > a->largest_free)
		a->largest_free = sz;
}

/* -------------------------------------------------------------- arenas */

static ms_raddr_t ar_u64(struct walker *w, size_t i, uint32_t off)
{
	return hw_rd64(w->ab[i].b + off);
}

static ms_raddr_t bin_at(struct walker *w, size_t i, unsigned bin)
{
	return w->rep->arenas[i].addr + w->l->ar_bins + (bin - 1) * 16 - 16;
}

static int read_arenas(struct walker *w)
{
	const struct ms_heap_layout *l = w->l;
	ms_raddr_t a = w->loc->main_arena;
	size_t cap = 0, abcap = 0;

	for (unsigned n = 0; n < HW_MAX_ARENAS; n++) {
		struct ms_heap_arena *ar;
		unsigned char *b;
		ms_raddr_t next;

		for (size_t k = 0; k < w->rep->narenas; k++)
			if (w->rep->arenas[k].addr == a) {
				err_add(w, "arena_ring_cycle", a, (int)k,
					"arena ring returns to 0x%" PRIx64 " without passing main_arena",
					a);
				return 0;
			}
		if ((a & 7) || !hw_range_readable(w->maps, a, l->ar_size)) {
			err_add(w, "bad_arena", a, -1, "arena pointer 0x%" PRIx64 " is not readable",
				a);
			w->rep->partial = true;
			return w->rep->narenas ? 0 : -MS_E_CORRUPT;
		}
		b = ms_xmalloc(l->ar_size);
		if (ms_read_exact(w->r, a, b, l->ar_size) != 0) {
			free(b);
			err_add(w, "bad_arena", a, -1, "cannot read the arena at 0x%" PRIx64, a);
			w->rep->partial = true;
			return w->rep->narenas ? 0 : -EFAULT;
		}
		ms_xgrow((void **)&w->rep->arenas, &cap, w->rep->narenas + 1, sizeof(*w->rep->arenas));
		ms_xgrow((void **)&w->ab, &abcap, w->rep->narenas + 1, sizeof(*w->ab));
		ar = &w->rep->arenas[w->rep->narenas];
		memset(ar, 0, sizeof(*ar));
		w->ab[w->rep->narenas].b = b;
		ar->addr = a;
		ar->is_main = a == w->loc->main_arena;
		ar->mutex = hw_rd32(b + l->ar_mutex);
		ar->attached_threads = hw_rd64(b + l->ar_attached_threads);
		ar->on_free_list = !ar->is_main && ar->attached_threads == 0;
		ar->system_mem = hw_rd64(b + l->ar_system_mem);
		if (ar->mutex) {
			ar->inconsistent = true;
			w->rep->inconsistent = true;
			w->rep->locked_arenas++;
		}
		w->rep->narenas++;
		next = hw_rd64(b + l->ar_next);
		if (next == w->loc->main_arena)
			return 0;
		a = next;
	}
	err_add(w, "arena_ring_too_long", a, -1, "more than %u arenas: ring is corrupt",
		HW_MAX_ARENAS);
	w->rep->partial = true;
	return 0;
}

int ms_heap_locked_arenas(const struct ms_heap_loc *loc, const struct ms_reader *r)
{
	const struct ms_heap_layout *l = &loc->layout;
	ms_raddr_t a = loc->main_arena;
	int locked = 0;

	for (unsigned n = 0; n < HW_MAX_ARENAS; n++) {
		int32_t mutex;
		uint64_t next;

		if (ms_read_exact(r, a + l->ar_mutex, &mutex, 4) != 0 ||
		    ms_read_exact(r, a + l->ar_next, &next, 8) != 0)
			return locked ? locked : -EFAULT;
		if (mutex)
			locked++;
		if (next == loc->main_arena)
			break;
		a = next;
	}
	return locked;
}

/* ------------------------------------------------------------ segments */

static void seg_add(struct walker *w, ms_raddr_t start, ms_raddr_t end, ms_raddr_t heap,
		    size_t arena)
{
	ms_xgrow((void **)&w->segs, &w->segcap, w->nsegs + 1, sizeof(*w->segs));
	w->segs[w->nsegs++] = (struct seg){.start = start, .end = end, .heap = heap, .arena = arena};
}

static uint64_t heap_max_size(struct walker *w, uint64_t hp_pagesize)
{
	/* 2.35+: heap_max_size() is 4 x the hugetlb page size when hugetlb is on. */
	return hp_pagesize ? 4 * hp_pagesize : 64ull << 20;
}

static void arena_segments(struct walker *w, size_t i, uint64_t sbrk_base, uint64_t hp_pagesize)
{
	const struct ms_heap_layout *l = w->l;
	struct ms_heap_arena *ar = &w->rep->arenas[i];
	ms_raddr_t top = ar_u64(w, i, l->ar_top);
	uint64_t topsz = 0;
	uint64_t hmax = heap_max_size(w, hp_pagesize);
	ms_raddr_t h;

	if (top == bin_at(w, i, 1))
		return; /* never used: top still points at the unsorted bin */
	if ((top & 15) || !hw_range_readable(w->maps, top, 16) ||
	    ms_read_exact(w->r, top + 8, &topsz, 8) != 0) {
		err_add(w, "bad_top", top, (int)i, "top chunk 0x%" PRIx64 " is not readable", top);
		ar->partial = w->rep->partial = true;
		return;
	}
	topsz &= ~(uint64_t)HW_FLAGS;
	if (ar->is_main) {
		ms_raddr_t start = (sbrk_base + 15) & ~15ull, lo, hi;

		if (!(hw_rd32(w->ab[i].b + l->ar_flags) & HW_NONCONTIG_BIT) && sbrk_base &&
		    sbrk_base <= top && top - sbrk_base < (1ull << 46)) {
			seg_add(w, start, top + topsz, 0, i);
			return;
		}
		/*
		 * Non-contiguous main arena (brk failed or was moved): no list of
		 * its segments exists. Walk the brk part and the mapped range that
		 * holds top (each a run of adjacent mappings: see
		 * hw_range_readable); anything else is reported as partial.
		 */
		if (sbrk_base && hw_readable_run(w->maps, sbrk_base, &lo, &hi) &&
		    !(top >= lo && top < hi))
			seg_add(w, start, hi, 0, i);
		if (hw_readable_run(w->maps, top, &lo, &hi))
			seg_add(w, lo > start || !sbrk_base ? lo : start, top + topsz, 0, i);
		ar->partial = true;
		err_add(w, "noncontiguous_main", top, (int)i,
			"main arena is non-contiguous: segments other than [heap] and top's may "
			"be missed");
		return;
	}
	h = top & ~(hmax - 1);
	for (unsigned n = 0; h && n < 65536; n++) {
		unsigned char hi[64];
		ms_raddr_t ar_ptr, prev, start;
		uint64_t size;

		if (!hw_range_readable(w->maps, h, l->hi_sizeof) ||
		    ms_read_exact(w->r, h, hi, MS_MIN(sizeof(hi), (size_t)l->hi_sizeof)) != 0) {
			err_add(w, "bad_heap_info", h, (int)i, "heap_info at 0x%" PRIx64
				" is not readable", h);
			ar->partial = w->rep->partial = true;
			return;
		}
		ar_ptr = hw_rd64(hi + l->hi_ar_ptr);
		prev = hw_rd64(hi + l->hi_prev);
		size = hw_rd64(hi + l->hi_size);
		if (ar_ptr != ar->addr || size > hmax || size < l->hi_sizeof || (prev & (hmax - 1))) {
			err_add(w, "bad_heap_info", h, (int)i,
				"heap_info at 0x%" PRIx64 ": ar_ptr 0x%" PRIx64 " size 0x%" PRIx64
				" prev 0x%" PRIx64 " do not describe a heap of arena 0x%" PRIx64,
				h, ar_ptr, size, prev, ar->addr);
			ar->partial = w->rep->partial = true;
			return;
		}
		if (ar->addr == h + l->hi_sizeof)
			start = (ar->addr + l->ar_size + 15) & ~15ull;
		else
			start = h + l->hi_sizeof;
		seg_add(w, start, h + size, h, i);
		h = prev;
	}
}

/* ---------------------------------------------------- scattered reads */

/* How many of the n pieces were read whole, from the first: r->readv, else one read each. */
static size_t readv_pieces(struct walker *w, const struct ms_rvec *v, size_t n)
{
	size_t i;

	if (w->r->readv) {
		ssize_t k = w->r->readv(w->r->ctx, v, n);

		for (i = 0; k > 0 && i < (size_t)k; i++)
			w->rep->bytes_read += v[i].len;
		return k > 0 ? (size_t)k : 0;
	}
	for (i = 0; i < n; i++) {
		if (ms_read_exact(w->r, v[i].addr, v[i].buf, v[i].len) != 0)
			break;
		w->rep->bytes_read += v[i].len;
	}
	return i;
}

/* Whether [a, a+len) lies inside one heap segment (segs sorted, heap segments only). */
static bool in_heap_seg(const struct walker *w, ms_raddr_t a, uint64_t len)
{
	size_t lo = 0, hi = w->nheapsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->segs[mid].start <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && a - w->segs[lo - 1].start < w->segs[lo - 1].end - w->segs[lo - 1].start &&
	       len <= w->segs[lo - 1].end - a;
}

/*
 * Big local tables (a million free chunks is 40 MB) are reserved at their
 * bound up front and backed by transparent huge pages: growing them by
 * realloc faulted 4 KiB pages one by one inside the pause (~10 us each
 * here). Falls back to the heap when the reservation is refused.
 */
static void *table_reserve(size_t bytes, size_t *cap, size_t elem)
{
	void *p;

	bytes = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE);
	*cap = bytes / elem;
	return p;
}

/* Grows a table; one in a reservation that turns out too small moves to the heap. */
static void table_grow(void **p, size_t *cap, size_t *mapped, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	if (*mapped) {
		void *q = ms_xmalloc(*cap * elem);

		memcpy(q, *p, *cap * elem);
		munmap(*p, *mapped);
		*p = q;
		*mapped = 0;
	}
	ms_xgrow(p, cap, need, elem);
}

/* -------------------------------------------------------- chunk walk */

static void small_add(struct walker *w, ms_raddr_t c, uint64_t sz, uint64_t fd, size_t arena)
{
	table_grow((void **)&w->small, &w->smallcap, &w->small_map, w->nsmall + 1, sizeof(*w->small));
	w->small[w->nsmall++] = (struct cent){
		.addr = c, .fd = fd, .size = (uint32_t)sz, .arena = (uint16_t)arena};
}

static void free_add(struct walker *w, ms_raddr_t c, uint64_t sz, uint64_t fd, uint64_t bk,
		     size_t arena)
{
	table_grow((void **)&w->freev, &w->freecap, &w->free_map, w->nfree + 1, sizeof(*w->freev));
	w->freev[w->nfree++] = (struct fent){
		.addr = c, .fd = fd, .bk = bk, .size = sz, .arena = (uint16_t)arena};
}

static void chunk_add(struct ms_heap_chunk **v, size_t *n, size_t *cap, ms_raddr_t c, uint64_t sz,
		      uint64_t word0)
{
	if (*n == *cap)
		ms_xgrow((void **)v, cap, *n + 1, sizeof(**v));
	(*v)[(*n)++] = (struct ms_heap_chunk){.addr = c, .size = sz, .word0 = word0};
}

/* The previous chunk's status is known once its successor's P bit is read. */
struct pending {
	ms_raddr_t c;
	uint64_t sz, fd, bk;
	bool valid;
};

/*
 * Whether an in-use-looking chunk could be on a tcache or fastbin list:
 * its first word, demangled as both lists store it (the field's address
 * >> 12 XOR the pointer, 2.32+), is 0 (end of list) or a 16-aligned
 * address in a heap (tcache points at mem, fastbins at the chunk). Every
 * list member passes; live data rarely does (with safe-linking almost
 * never), so the small table stays small and the lists are still checked
 * against it exactly. A member whose next pointer is wild fails the
 * filter, and the list check reports that member, the corrupt one.
 */
static bool maybe_listed(const struct walker *w, ms_raddr_t c, uint64_t fd)
{
	uint64_t next = w->l->safe_linking ? ((c + 16) >> 12) ^ fd : fd;

	return !next || (!(next & 15) && in_heap_seg(w, next, 16));
}

static inline void settle(struct walker *w, struct pending *p, bool next_pinuse, size_t arena)
{
	if (!p->valid)
		return;
	if (!next_pinuse)
		free_add(w, p->c, p->sz, p->fd, p->bk, arena);
	else if (p->sz <= w->small_max && maybe_listed(w, p->c, p->fd))
		small_add(w, p->c, p->sz, p->fd, arena);
	else {
		count(w, arena, MS_HK_INUSE, p->sz);
		if (w->want_chunks)
			chunk_add(&w->ck, &w->nck, &w->ckcap, p->c, p->sz, p->fd);
	}
	p->valid = false;
}

static bool header_ok(uint64_t raw, ms_raddr_t c, ms_raddr_t hi, bool is_main)
{
	uint64_t sz = raw & ~(uint64_t)HW_FLAGS;

	if (sz < HW_MINSIZE || (sz & 15) || sz > hi - c || (raw & HW_IS_MMAPPED))
		return false;
	/* Free chunks of thread arenas lose NON_MAIN_ARENA; main arena chunks never have it. */
	return !is_main || !(raw & HW_NON_MAIN);
}

/* After a bad header: the next 16-byte boundary whose header and successor's look right. */
static ms_raddr_t resync(struct walker *w, ms_raddr_t c, ms_raddr_t hi, bool is_main)
{
	ms_raddr_t end = MS_MIN(hi, c + RESYNC_SCAN);

	for (ms_raddr_t x = c + 16; x + 16 <= end; x += 16) {
		const unsigned char *h = win_get(w, x, 16, hi);
		uint64_t raw, sz, raw2;

		if (!h)
			return 0;
		raw = hw_rd64(h + 8);
		if (!header_ok(raw, x, hi, is_main))
			continue;
		sz = raw & ~(uint64_t)HW_FLAGS;
		if (x + sz + 16 > hi)
			continue;
		h = win_get(w, x + sz, 16, hi);
		if (!h)
			continue;
		raw2 = hw_rd64(h + 8);
		if (header_ok(raw2, x + sz, hi, is_main) || (raw2 & ~(uint64_t)HW_FLAGS) == 0x10)
			return x;
	}
	return 0;
}

static void walk_segment(struct walker *w, const struct seg *s)
{
	struct ms_heap_arena *ar = &w->rep->arenas[s->arena];
	const struct ms_heap_layout *l = w->l;
	ms_raddr_t top = ar_u64(w, s->arena, l->ar_top);
	ms_raddr_t c = s->start, hi = s->end;
	struct pending p = {0};
	uint64_t walked = 0;
	int ai = (int)s->arena;

	ar->nheaps++;
	if (s->end <= s->start || (s->start & 15)) {
		err_add(w, "bad_segment", s->start, ai,
			"heap segment 0x%" PRIx64 "-0x%" PRIx64 " has impossible bounds", s->start,
			s->end);
		ar->partial = w->rep->partial = true;
		return;
	}
	if (!hw_range_readable(w->maps, s->start, s->end - s->start)) {
		err_add(w, "unmapped_segment", s->start, ai,
			"heap segment 0x%" PRIx64 "-0x%" PRIx64 " is not covered by readable "
			"mappings",
			s->start, s->end);
		ar->partial = w->rep->partial = true;
		return;
	}
	w->win_len = 0;
	while (c < hi) {
		const unsigned char *h;
		uint64_t raw, sz;

		/*
		 * The common case: chunk after chunk inside the window, header, fd
		 * and bk already copied. Top, fenceposts and anything odd take the
		 * careful path below.
		 */
		while (c >= w->win_base && hi - c >= 32 && c + 32 - w->win_base <= w->win_len) {
			h = w->win + (c - w->win_base);
			raw = hw_rd64(h + 8);
			sz = raw & ~(uint64_t)HW_FLAGS;
			if (c == top || !header_ok(raw, c, hi, ar->is_main) || (top > c && top < c + sz))
				break;
			settle(w, &p, raw & HW_PREV_INUSE, s->arena);
			p = (struct pending){
				.c = c, .sz = sz, .fd = hw_rd64(h + 16), .bk = hw_rd64(h + 24), .valid = true};
			w->rep->chunks_walked++;
			walked += sz;
			c += sz;
		}
		if (c >= hi)
			break;
		/* After a big chunk jump to the next header rather than copy the chunk. */
		h = win_get_n(w, c, hi - c >= 32 ? 32 : 16, hi,
			      p.valid && p.sz >= JUMP_CHUNK ? JUMP_READ : WIN_SIZE);
		if (!h) {
			err_add(w, "read_failed", c, ai, "cannot read chunk header at 0x%" PRIx64, c);
			ar->partial = w->rep->partial = true;
			break;
		}
		raw = hw_rd64(h + 8);
		sz = raw & ~(uint64_t)HW_FLAGS;
		w->rep->chunks_walked++;
		if (c == top) {
			settle(w, &p, raw & HW_PREV_INUSE, s->arena);
			if (sz < HW_MINSIZE || sz != hi - c)
				err_add(w, "bad_top", c, ai,
					"top chunk 0x%" PRIx64 " has size 0x%" PRIx64
					" but its segment ends at 0x%" PRIx64,
					c, sz, hi);
			count(w, s->arena, MS_HK_TOP, sz);
			walked += sz;
			c = hi;
			break;
		}
		/* Fenceposts: 0x10|P chunks at an abandoned top, then 0|P ending a thread heap. */
		if (sz == 0 && !ar->is_main) {
			settle(w, &p, raw & HW_PREV_INUSE, s->arena);
			break;
		}
		if (sz == 0x10 && c + 0x10 <= hi) {
			settle(w, &p, raw & HW_PREV_INUSE, s->arena);
			ar->overhead += 0x10;
			walked += 0x10;
			c += 0x10;
			continue;
		}
		if (!header_ok(raw, c, hi, ar->is_main) || (top > c && top < c + sz)) {
			ms_raddr_t nc;

			err_add(w, "bad_chunk", c, ai,
				"chunk 0x%" PRIx64 " has an impossible size field 0x%" PRIx64
				" (segment 0x%" PRIx64 "-0x%" PRIx64 ")",
				c, raw, s->start, hi);
			ar->partial = w->rep->partial = true;
			p.valid = false;
			nc = resync(w, c, hi, ar->is_main);
			if (!nc)
				break;
			c = nc;
			continue;
		}
		settle(w, &p, raw & HW_PREV_INUSE, s->arena);
		p.c = c;
		p.sz = sz;
		p.valid = true;
		p.fd = p.bk = 0;
		h = win_get(w, c + 16, 16, hi);
		if (h) {
			p.fd = hw_rd64(h);
			p.bk = hw_rd64(h + 8);
		}
		walked += sz;
		c += sz;
	}
	if (p.valid) {
		err_add(w, "truncated_segment", p.c, ai,
			"walk of segment 0x%" PRIx64 "-0x%" PRIx64 " ended without top or a fencepost",
			s->start, s->end);
		ar->partial = w->rep->partial = true;
	}
	ar->overhead += (s->end - s->start) - MS_MIN(walked, s->end - s->start);
}

/* ------------------------------------------------------------ lists */

static struct cent *small_find(struct walker *w, ms_raddr_t c)
{
	size_t lo = 0, hi = w->nsmall;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->small[mid].addr < c)
			lo = mid + 1;
		else if (w->small[mid].addr > c)
			hi = mid;
		else
			return &w->small[mid];
	}
	return NULL;
}

#define SUCC_NONE UINT32_MAX

static struct fent *free_find(struct walker *w, ms_raddr_t c)
{
	size_t lo = 0, hi = w->nfree;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (w->freev[mid].addr < c)
			lo = mid + 1;
		else if (w->freev[mid].addr > c)
			hi = mid;
		else
			return &w->freev[mid];
	}
	return NULL;
}

struct fdkey {
	uint64_t key; /* an fd pointer */
	uint64_t i;   /* index of the chunk holding it */
};

/* LSD radix sort on 16-bit digits; a digit that is the same everywhere costs one count. */
static void radix_sort(struct fdkey *a, struct fdkey *tmp, size_t n)
{
	static size_t cnt[1u << 16];

	for (unsigned shift = 0; shift < 64; shift += 16) {
		size_t sum = 0;

		memset(cnt, 0, sizeof(cnt));
		for (size_t i = 0; i < n; i++)
			cnt[(a[i].key >> shift) & 0xffff]++;
		if (cnt[(a[0].key >> shift) & 0xffff] == n)
			continue;
		for (size_t d = 0; d < MS_ARRAY_SIZE(cnt); d++) {
			size_t c = cnt[d];

			cnt[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[cnt[(a[i].key >> shift) & 0xffff]++] = a[i];
		memcpy(a, tmp, n * sizeof(*a));
	}
}

/*
 * Bins are followed hop by hop in free order, random in memory: a hash
 * look-up per hop cost one cache miss in a table of tens of MB, and each
 * hop waits for the last (~0.5 us per hop, 0.3 s for 650 K unsorted chunks
 * here). Every chunk's fd is known from the walk, so all the look-ups are
 * done at once instead: sort (fd, index) pairs and merge them with freev,
 * which is in address order. A hop then reads a 4-byte successor from an
 * array small enough to stay in cache.
 */
static void free_successors(struct walker *w)
{
	size_t n = w->nfree, mapped = 0, dummy;
	struct fdkey *a, *tmp;

	if (!n || n >= SUCC_NONE)
		return; /* walk_bins keeps the binary search */
	a = table_reserve(2 * n * sizeof(*a), &dummy, sizeof(*a));
	if (a)
		mapped = (2 * n * sizeof(*a) + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	else
		a = ms_xmalloc(2 * n * sizeof(*a));
	tmp = a + n;
	w->succ = table_reserve(n * sizeof(*w->succ), &dummy, sizeof(*w->succ));
	if (w->succ) {
		w->succ_map = (n * sizeof(*w->succ) + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	} else {
		w->succ = ms_xmalloc(n * sizeof(*w->succ));
	}
	for (size_t i = 0; i < n; i++) {
		a[i] = (struct fdkey){.key = w->freev[i].fd, .i = i};
		w->succ[i] = SUCC_NONE;
	}
	radix_sort(a, tmp, n);
	for (size_t k = 0, j = 0; k < n; k++) {
		while (j < n && w->freev[j].addr < a[k].key)
			j++;
		if (j == n)
			break;
		if (w->freev[j].addr == a[k].key)
			w->succ[a[k].i] = (uint32_t)j;
	}
	if (mapped)
		munmap(a, mapped);
	else
		free(a);
}

static void walk_fastbins(struct walker *w, size_t i)
{
	const struct ms_heap_layout *l = w->l;

	for (unsigned b = 0; b < l->nfastbins; b++) {
		ms_raddr_t p = ar_u64(w, i, l->ar_fastbins + 8 * b);

		for (size_t hops = 0; p; hops++) {
			struct cent *e = small_find(w, p);
			uint64_t next;

			if (!e) {
				err_add(w, "bad_fastbin_entry", p, (int)i,
					"fastbin %u entry 0x%" PRIx64 " is not an in-use-looking "
					"chunk of this heap",
					b, p);
				break;
			}
			if (e->seen || hops > w->nsmall) {
				err_add(w, "fastbin_cycle", p, (int)i,
					"fastbin %u revisits chunk 0x%" PRIx64 " (cycle or shared tail)",
					b, p);
				break;
			}
			e->seen = 1;
			if ((e->size >> 4) - 2 != b || e->arena != i)
				err_add(w, "fastbin_wrong_size", p, (int)i,
					"fastbin %u holds chunk 0x%" PRIx64 " of size 0x%x", b, p,
					e->size);
			e->kind = MS_HK_FAST;
			next = l->safe_linking ? ((p + 16) >> 12) ^ e->fd : e->fd;
			if (next & 15) {
				err_add(w, "bad_fastbin_next", p, (int)i,
					"fastbin %u: chunk 0x%" PRIx64 " has a misaligned next pointer "
					"0x%" PRIx64,
					b, p, next);
				break;
			}
			p = next;
		}
	}
}

static void walk_tcache(struct walker *w, size_t t)
{
	const struct ms_heap_layout *l = w->l;
	const struct ms_heap_thread *th = &w->loc->threads[t];
	struct ms_heap_thread_rep *tr = &w->rep->threads[t];
	unsigned char *tc;

	tr->tid = th->tid;
	tr->tcache = th->tcache;
	if (!th->tcache || !l->tc_sizeof)
		return;
	if ((th->tcache & 15) || !hw_range_readable(w->maps, th->tcache, l->tc_sizeof)) {
		err_add(w, "bad_tcache", th->tcache, -1,
			"thread %d: tcache pointer 0x%" PRIx64 " is not readable", (int)th->tid,
			th->tcache);
		return;
	}
	tc = ms_xmalloc(l->tc_sizeof);
	if (ms_read_exact(w->r, th->tcache, tc, l->tc_sizeof) != 0) {
		err_add(w, "bad_tcache", th->tcache, -1, "thread %d: cannot read its tcache",
			(int)th->tid);
		free(tc);
		return;
	}
	for (unsigned b = 0; b < l->tc_nbins; b++) {
		uint64_t cnt = l->tc_count_size == 2 ? *(uint16_t *)(tc + l->tc_counts + 2 * b) :
						       tc[l->tc_counts + b];
		ms_raddr_t mem = hw_rd64(tc + l->tc_entries + 8 * b);
		uint64_t n = 0;
		bool broken = false; /* the list walk stopped at an error (reported) */

		while (mem) {
			struct cent *e = (mem & 15) ? NULL : small_find(w, mem - 16);
			uint64_t next;

			if (!e) {
				err_add(w, "bad_tcache_entry", mem, -1,
					"thread %d: tcache bin %u entry 0x%" PRIx64
					" is not an in-use-looking chunk",
					(int)th->tid, b, mem);
				broken = true;
				break;
			}
			if (e->seen || n > cnt + 1) {
				err_add(w, "tcache_cycle", mem, -1,
					"thread %d: tcache bin %u revisits 0x%" PRIx64
					" or is longer than its count %" PRIu64,
					(int)th->tid, b, mem, cnt);
				broken = true;
				break;
			}
			e->seen = 1;
			if ((e->size - 0x20) / 16 != b)
				err_add(w, "tcache_wrong_size", mem, e->arena,
					"thread %d: tcache bin %u holds a chunk of size 0x%x",
					(int)th->tid, b, e->size);
			e->kind = MS_HK_TCACHE;
			tr->chunks++;
			tr->bytes += e->size;
			n++;
			next = l->safe_linking ? (mem >> 12) ^ e->fd : e->fd;
			mem = next;
		}
		if (n != cnt) {
			tr->count_mismatch = true;
			/*
			 * One off, on a list that ended normally: a thread stopped between
			 * updating the count and the list. A list cut short by an error
			 * says nothing about that (its length is unknown): the error is
			 * the finding, not a mid-update.
			 */
			if (broken) {
				/* reported above */
			} else if (n + 1 != cnt && n != cnt + 1) {
				err_add(w, "tcache_count", th->tcache, -1,
					"thread %d: tcache bin %u counts %" PRIu64 " entries, list has "
					"%" PRIu64,
					(int)th->tid, b, cnt, n);
			} else {
				w->rep->inconsistent = true;
				w->rep->tcache_midupdate++;
			}
		}
	}
	free(tc);
}

static void walk_bins(struct walker *w, size_t i)
{
	const struct ms_heap_layout *l = w->l;

	for (unsigned b = 1; b < HW_NBINS; b++) {
		ms_raddr_t head = bin_at(w, i, b);
		ms_raddr_t p = ar_u64(w, i, l->ar_bins + (b - 1) * 16);
		ms_raddr_t last = ar_u64(w, i, l->ar_bins + (b - 1) * 16 + 8);
		ms_raddr_t prev = head;
		enum ms_heap_kind k = b == 1 ? MS_HK_UNSORTED : b < HW_NSMALLBINS ? MS_HK_SMALL :
								       MS_HK_LARGE;
		struct fent *e = p != head ? free_find(w, p) : NULL;

		for (size_t hops = 0; p != head; hops++) {
			if (!e) {
				err_add(w, "bad_bin_entry", p, (int)i,
					"bin %u entry 0x%" PRIx64 " is not a free chunk of this heap", b,
					p);
				break;
			}
			if (e->seen || hops > w->nfree) {
				err_add(w, "bin_cycle", p, (int)i, "bin %u revisits chunk 0x%" PRIx64,
					b, p);
				break;
			}
			e->seen = 1;
			e->kind = (uint8_t)k;
			if (e->bk != prev)
				err_add(w, "bin_bk_mismatch", p, (int)i,
					"bin %u: chunk 0x%" PRIx64 "->bk is 0x%" PRIx64 ", expected 0x%" PRIx64,
					b, p, e->bk, prev);
			if (k == MS_HK_SMALL && e->size != 16u * b)
				err_add(w, "smallbin_wrong_size", p, (int)i,
					"small bin %u holds a chunk of size 0x%" PRIx64, b, e->size);
			if (e->arena != i)
				err_add(w, "bin_wrong_arena", p, (int)i,
					"bin %u holds chunk 0x%" PRIx64 " of another arena", b, p);
			prev = p;
			p = e->fd;
			if (!w->succ)
				e = free_find(w, p);
			else if (w->succ[e - w->freev] != SUCC_NONE)
				e = &w->freev[w->succ[e - w->freev]];
			else
				e = NULL;
		}
		if (p == head && last != prev)
			err_add(w, "bin_bk_mismatch", head, (int)i,
				"bin %u: head bk 0x%" PRIx64 " is not the last chunk 0x%" PRIx64, b, last,
				prev);
	}
}

/* ------------------------------------------------------ mmapped chunks */

struct span {
	ms_raddr_t lo, hi;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Whether some thread's TCB (at the top of a glibc thread's stack) is in m. */
static bool holds_thread(struct walker *w, const struct ms_map *m)
{
	for (size_t t = 0; t < w->loc->nthreads; t++)
		if (w->loc->threads[t].fs_base >= m->start && w->loc->threads[t].fs_base < m->end)
			return true;
	return false;
}

/*
 * Page-header probes over [lo, hi), batched into scattered reads. After a
 * hit the next header is expected right after the chunk (mmap puts runs
 * of chunks side by side), so batches restart small there and double while
 * nothing is found. Stops as soon as glibc's own counters are matched.
 */
static void probe_span(struct walker *w, ms_raddr_t lo, ms_raddr_t hi, uint64_t want_n,
		       uint64_t want_bytes, uint64_t *n, uint64_t *bytes)
{
	struct ms_rvec vec[PROBE_MAX];
	uint64_t hdr[PROBE_MAX][2];
	size_t batch = 8;
	ms_raddr_t pg = lo;

	while (pg + 16 <= hi) {
		size_t k = 0, got;
		ms_raddr_t next = 0;
		bool hit = false;

		if (*n == want_n && *bytes == want_bytes)
			return;
		for (ms_raddr_t a = pg; k < batch && a + 16 <= hi; a += 4096, k++)
			vec[k] = (struct ms_rvec){.addr = a, .buf = hdr[k], .len = 16};
		got = readv_pieces(w, vec, k);
		w->rep->mmap_probes += got;
		for (size_t j = 0; j < got; j++) {
			ms_raddr_t a = vec[j].addr;
			uint64_t ps = hdr[j][0], sz = hdr[j][1] & ~(uint64_t)HW_FLAGS;

			if (a < next)
				continue; /* inside a chunk found in this batch */
			if ((hdr[j][1] & (HW_IS_MMAPPED | HW_NON_MAIN)) == HW_IS_MMAPPED && !(ps & 15) &&
			    ps < 4096 && sz >= 4096 && !((ps + sz) & 4095) && ps + sz <= hi - a) {
				(*n)++;
				*bytes += ps + sz;
				w->rep->total.chunks[MS_HK_MMAPPED]++;
				w->rep->total.bytes[MS_HK_MMAPPED] += ps + sz;
				hist_add(w, ps + sz, true);
				seg_add(w, a, a + ps + sz, 0, SIZE_MAX);
				if (w->want_chunks)
					chunk_add(&w->ck_mm, &w->nck_mm, &w->ck_mmcap, a,
						  sz | MS_HEAP_CHUNK_MMAPPED, 0);
				next = a + ps + sz;
				hit = true;
				if (*n == want_n && *bytes == want_bytes)
					return;
			}
		}
		/* An unreadable page (got < k) is stepped over. */
		pg = MS_MAX(pg + 4096ull * (got < k ? got + 1 : got), next);
		batch = hit ? 8 : MS_MIN(batch * 2, (size_t)PROBE_MAX);
	}
}

/* Anonymous private rw memory: where glibc's mmapped chunks live. */
static bool may_hold_mmapped(const struct ms_map *m)
{
	if (!m->r || !m->w || m->shared)
		return false;
	/* Not files, [heap], [stack], [vvar] ... */
	return !m->path || !strcmp(m->path, "/anon_hugepage") || !strncmp(m->path, "[anon", 5);
}

/*
 * mmapped chunks: no list exists, only glibc's counters (mp_.n_mmaps,
 * mp_.mmapped_mem). Probe every page of the anonymous private mappings
 * outside heap segments. The kernel merges adjacent mappings, so a run of
 * mmapped chunks can share one VMA with a thread heap just above it: what
 * is probed is each run of adjacent VMAs minus the heaps' 64 MiB
 * reservations, not whole VMAs. Mappings holding a thread's stack (its TCB) come last, since they
 * rarely hold chunks and the scan stops once the counters are matched.
 */
static void scan_mmapped(struct walker *w, uint64_t want_n, uint64_t want_bytes)
{
	struct span *ex = ms_xcalloc(w->nsegs + 1, sizeof(*ex)), *todo = NULL;
	size_t nex = 0, ntodo = 0, todocap = 0;
	uint64_t n = 0, bytes = 0;
	uint64_t t0 = ms_now_ns();

	for (size_t i = 0; i < w->nsegs; i++) {
		const struct seg *s = &w->segs[i];

		ex[nex++] = s->heap ? (struct span){s->heap, s->heap + w->hmax} :
				      (struct span){s->start, s->end};
	}
	if (nex > 1)
		qsort(ex, nex, sizeof(*ex), cmp_span);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0, last; i < w->maps->n; i = last + 1) {
			const struct ms_map *m = &w->maps->v[i];
			ms_raddr_t lo = m->start, end;
			bool thread = holds_thread(w, m);

			last = i;
			if (!may_hold_mmapped(m))
				continue;
			/* Adjacent mappings are one range (a fork splits them): a chunk may span them. */
			while (last + 1 < w->maps->n && may_hold_mmapped(&w->maps->v[last + 1]) &&
			       w->maps->v[last + 1].start == w->maps->v[last].end)
				thread |= holds_thread(w, &w->maps->v[++last]);
			end = w->maps->v[last].end;
			if (thread != (pass == 1))
				continue;
			for (size_t j = 0; j <= nex && lo < end; j++) {
				ms_raddr_t hi = j < nex ? MS_MIN(ex[j].lo, end) : end;

				if (j < nex && ex[j].hi <= lo)
					continue;
				if (hi > lo) {
					ms_xgrow((void **)&todo, &todocap, ntodo + 1, sizeof(*todo));
					todo[ntodo++] = (struct span){lo, hi};
				}
				if (j < nex)
					lo = MS_MAX(lo, ex[j].hi);
			}
		}
	}
	for (size_t i = 0; i < ntodo; i++) {
		if (n == want_n && bytes == want_bytes)
			break; /* glibc's count is matched (also when it is 0): nothing left to find */
		probe_span(w, todo[i].lo, todo[i].hi, want_n, want_bytes, &n, &bytes);
	}
	if (n != want_n || bytes != want_bytes)
		err_add(w, "mmapped_mismatch", 0, -1,
			"found %" PRIu64 " mmapped chunks (%" PRIu64 " bytes); glibc counts %" PRIu64
			" (%" PRIu64 " bytes)",
			n, bytes, want_n, want_bytes);
	free(ex);
	free(todo);
	w->rep->mmap_ms = (double)(ms_now_ns() - t0) / 1e6;
}

/* --------------------------------------------------------------- totals */

static void tally(struct walker *w)
{
	struct ms_heap_report *rep = w->rep;

	for (size_t i = 0; i < w->nsmall; i++) {
		struct cent *e = &w->small[i];

		count(w, e->arena, e->kind ? (enum ms_heap_kind)e->kind : MS_HK_INUSE, e->size);
	}
	for (size_t i = 0; i < w->nfree; i++) {
		struct fent *e = &w->freev[i];

		if (!e->seen) {
			err_add(w, "free_not_in_bin", e->addr, e->arena,
				"chunk 0x%" PRIx64 " (size 0x%" PRIx64 ") is free but in no bin",
				e->addr, e->size);
			e->kind = e->size < 0x400 ? MS_HK_SMALL : MS_HK_LARGE;
		}
		count(w, e->arena, (enum ms_heap_kind)e->kind, e->size);
	}
	for (size_t i = 0; i < rep->narenas; i++) {
		struct ms_heap_arena *a = &rep->arenas[i];
		struct ms_heap_mallinfo *mi = &a->mi;
		uint64_t fast = a->c.bytes[MS_HK_FAST];
		uint64_t bins = a->c.bytes[MS_HK_UNSORTED] + a->c.bytes[MS_HK_SMALL] +
				a->c.bytes[MS_HK_LARGE];
		uint64_t topsz = a->c.bytes[MS_HK_TOP];

		/* glibc's int_mallinfo: tcache chunks count as in use, fastbins as free. */
		mi->arena = a->system_mem;
		mi->ordblks = a->c.chunks[MS_HK_UNSORTED] + a->c.chunks[MS_HK_SMALL] +
			      a->c.chunks[MS_HK_LARGE] + 1;
		mi->smblks = a->c.chunks[MS_HK_FAST];
		mi->fsmblks = fast;
		mi->fordblks = topsz + bins + fast;
		mi->uordblks = a->system_mem - mi->fordblks;
		if (a->is_main) {
			mi->keepcost = topsz;
			mi->hblks = rep->mp_n_mmaps;
			mi->hblkhd = rep->mp_mmapped_mem;
		}
		rep->mi.arena += mi->arena;
		rep->mi.ordblks += mi->ordblks;
		rep->mi.smblks += mi->smblks;
		rep->mi.fsmblks += mi->fsmblks;
		rep->mi.fordblks += mi->fordblks;
		rep->mi.uordblks += mi->uordblks;
		rep->mi.keepcost += mi->keepcost;
		rep->mi.hblks += mi->hblks;
		rep->mi.hblkhd += mi->hblkhd;
		for (unsigned k = 0; k < MS_HK_N; k++) {
			rep->total.chunks[k] += a->c.chunks[k];
			rep->total.bytes[k] += a->c.bytes[k];
		}
		if (a->largest_free > rep->largest_free)
			rep->largest_free = a->largest_free;
		if (a->system_mem < a->c.bytes[MS_HK_INUSE])
			err_add(w, "system_mem_short", a->addr, (int)i,
				"arena system_mem %" PRIu64 " is below the bytes walked", a->system_mem);
	}
	rep->in_use_bytes = rep->total.bytes[MS_HK_INUSE] + rep->total.bytes[MS_HK_MMAPPED];
	rep->free_bytes = 0;
	for (unsigned k = MS_HK_TCACHE; k <= MS_HK_TOP; k++)
		rep->free_bytes += rep->total.bytes[k];
}

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_cent(const void *a, const void *b)
{
	const struct cent *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int cmp_fent(const void *a, const void *b)
{
	const struct fent *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* ------------------------------------------------------ two walkers */

struct worker {
	struct walker w;
	struct ms_heap_report rep;
	size_t first, last; /* heap segments [first, last) */
};

static void *worker_main(void *arg)
{
	struct worker *k = arg;

	for (size_t i = k->first; i < k->last; i++)
		if (k->w.segs[i].start < k->w.segs[i].end)
			walk_segment(&k->w, &k->w.segs[i]);
	return NULL;
}

static uint64_t seg_bytes(const struct seg *s)
{
	return s->end > s->start ? s->end - s->start : 0;
}

static void free_tables(struct walker *w)
{
	if (w->small_map)
		munmap(w->small, w->small_map);
	else
		free(w->small);
	if (w->free_map)
		munmap(w->freev, w->free_map);
	else
		free(w->freev);
	w->small = NULL;
	w->freev = NULL;
	w->small_map = w->free_map = 0;
	w->smallcap = w->freecap = 0;
}

/* Adds a worker's counts, errors and tables to the main walker's (address order kept). */
static void merge_worker(struct walker *w, struct worker *k)
{
	struct ms_heap_report *rep = w->rep, *kr = &k->rep;

	for (size_t i = 0; i < rep->narenas; i++) {
		struct ms_heap_arena *a = &rep->arenas[i], *b = &kr->arenas[i];

		for (unsigned c = 0; c < MS_HK_N; c++) {
			a->c.chunks[c] += b->c.chunks[c];
			a->c.bytes[c] += b->c.bytes[c];
		}
		a->largest_free = MS_MAX(a->largest_free, b->largest_free);
		a->overhead += b->overhead;
		a->nheaps += b->nheaps;
		a->partial |= b->partial;
	}
	for (size_t i = 0; i < HIST_N; i++) {
		rep->hist[i].inuse_chunks += kr->hist[i].inuse_chunks;
		rep->hist[i].inuse_bytes += kr->hist[i].inuse_bytes;
		rep->hist[i].free_chunks += kr->hist[i].free_chunks;
		rep->hist[i].free_bytes += kr->hist[i].free_bytes;
	}
	for (size_t i = 0; i < kr->nerrors; i++) {
		if (rep->nerrors >= MAX_ERRORS) {
			rep->errors_dropped++;
			continue;
		}
		ms_xgrow((void **)&rep->errors, &w->errcap, rep->nerrors + 1, sizeof(*rep->errors));
		rep->errors[rep->nerrors++] = kr->errors[i];
	}
	rep->errors_dropped += kr->errors_dropped;
	rep->partial |= kr->partial;
	rep->bytes_read += kr->bytes_read;
	rep->chunks_walked += kr->chunks_walked;
	table_grow((void **)&w->small, &w->smallcap, &w->small_map, w->nsmall + k->w.nsmall,
		   sizeof(*w->small));
	if (k->w.nsmall)
		memcpy(w->small + w->nsmall, k->w.small, k->w.nsmall * sizeof(*w->small));
	w->nsmall += k->w.nsmall;
	table_grow((void **)&w->freev, &w->freecap, &w->free_map, w->nfree + k->w.nfree,
		   sizeof(*w->freev));
	if (k->w.nfree)
		memcpy(w->freev + w->nfree, k->w.freev, k->w.nfree * sizeof(*w->freev));
	w->nfree += k->w.nfree;
	free_tables(&k->w); /* before the lists below grow: not resident at once */
	if (k->w.nck) {
		size_t left = k->w.nck;

		ms_xgrow((void **)&w->ck, &w->ckcap, w->nck + left, sizeof(*w->ck));
		/*
		 * Moved from the end in slices, the worker's array shrunk behind each
		 * (realloc gives a big array's tail pages back): copied whole, both
		 * lists were resident at once, and this was memspy's peak (bench
		 * heap, 4.6 M allocations: 211 MiB, of which the worker's ~53 MiB).
		 */
		while (left) {
			size_t m = MS_MIN(left, CK_SLICE);

			left -= m;
			memcpy(w->ck + w->nck + left, k->w.ck + left, m * sizeof(*w->ck));
			if (left)
				k->w.ck = ms_xrealloc(k->w.ck, left * sizeof(*w->ck));
		}
		w->nck += k->w.nck;
		free(k->w.ck);
		k->w.ck = NULL;
		k->w.nck = k->w.ckcap = 0;
	}
}

/*
 * Heap segments are sorted and disjoint: the upper ones (about half the
 * bytes) go to a second thread with its own window, tables, counters and
 * reader, the lower ones stay here, and the results are concatenated in
 * address order. On 2 cores reading and parsing ~2 GB takes ~40% less.
 * Falls back to walking everything here when the thread cannot start.
 */
static void walk_two(struct walker *w, const struct ms_reader *r2, uint64_t heap_bytes)
{
	struct worker *k = ms_xcalloc(1, sizeof(*k));
	uint64_t acc = 0, bytes2 = 0;
	size_t split = 1;
	pthread_t th;
	bool started;

	for (size_t i = 0; i + 1 < w->nheapsegs; i++) {
		acc += seg_bytes(&w->segs[i]);
		split = i + 1;
		if (acc >= heap_bytes / 2)
			break;
	}
	for (size_t i = split; i < w->nheapsegs; i++)
		bytes2 += seg_bytes(&w->segs[i]);
	k->w = *w;
	k->w.r = r2;
	k->w.rep = &k->rep;
	k->w.errcap = 0;
	k->w.win = ms_xmalloc(WIN_SIZE);
	k->w.win_len = 0;
	k->w.nsmall = k->w.nfree = 0;
	k->w.ck = NULL;
	k->w.nck = k->w.ckcap = 0;
	k->w.small = table_reserve((size_t)(bytes2 / 32 + 16) * sizeof(*k->w.small), &k->w.smallcap,
				   sizeof(*k->w.small));
	k->w.small_map = k->w.small ? k->w.smallcap * sizeof(*k->w.small) : 0;
	if (!k->w.small)
		k->w.smallcap = 0;
	k->w.freev = table_reserve((size_t)(bytes2 / 32 + 16) * sizeof(*k->w.freev), &k->w.freecap,
				   sizeof(*k->w.freev));
	k->w.free_map = k->w.freev ? k->w.freecap * sizeof(*k->w.freev) : 0;
	if (!k->w.freev)
		k->w.freecap = 0;
	k->rep.narenas = w->rep->narenas;
	k->rep.arenas = ms_xcalloc(w->rep->narenas, sizeof(*k->rep.arenas));
	for (size_t i = 0; i < w->rep->narenas; i++) {
		k->rep.arenas[i].addr = w->rep->arenas[i].addr;
		k->rep.arenas[i].is_main = w->rep->arenas[i].is_main;
	}
	k->rep.hist = ms_xcalloc(HIST_N, sizeof(*k->rep.hist));
	k->rep.nhist = HIST_N;
	k->first = split;
	k->last = w->nheapsegs;
	started = pthread_create(&th, NULL, worker_main, k) == 0;
	for (size_t i = 0; i < split; i++)
		if (w->segs[i].start < w->segs[i].end)
			walk_segment(w, &w->segs[i]);
	if (started)
		pthread_join(th, NULL);
	else
		worker_main(k);
	merge_worker(w, k);
	free_tables(&k->w);
	free(k->w.win);
	free(k->w.ck);
	free(k->rep.arenas);
	free(k->rep.hist);
	free(k->rep.errors);
	free(k);
}

int ms_heap_walk(const struct ms_heap_loc *loc, const struct ms_reader *r,
		 const struct ms_maps *maps, struct ms_heap_report *rep)
{
	return ms_heap_walk_mt(loc, &r, 1, maps, rep);
}

int ms_heap_walk_mt(const struct ms_heap_loc *loc, const struct ms_reader *const *readers,
		    size_t nreaders, const struct ms_maps *maps, struct ms_heap_report *rep)
{
	return ms_heap_walk_flags(loc, readers, nreaders, maps, 0, rep);
}

static int cmp_chunk(const void *a, const void *b)
{
	const struct ms_heap_chunk *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sorts v unless it is already; returns whether it was. */
static bool sort_run(struct ms_heap_chunk *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (v[i - 1].addr >= v[i].addr) {
			qsort(v, n, sizeof(*v), cmp_chunk);
			return false;
		}
	return true;
}

/*
 * The allocations in one address-sorted array: big in-use chunks (walk
 * order), small ones no cache list holds, mmapped ones. The last two runs
 * are short: they are merged into the first from its end, in place (a
 * fresh array costs a page fault per 4 KiB, ~1 s for 5 M chunks here).
 */
static void collect_chunks(struct walker *w)
{
	struct ms_heap_chunk *sm = NULL, *mm = w->ck_mm;
	size_t nsm = 0, smcap = 0, nmm = w->nck_mm, n, a, b, c;
	uint64_t t0 = ms_now_ns();
	bool sorted[3];

	for (size_t i = 0; i < w->nsmall; i++)
		if (!w->small[i].kind)
			chunk_add(&sm, &nsm, &smcap, w->small[i].addr, w->small[i].size,
				  w->small[i].fd);
	sorted[0] = sort_run(w->ck, w->nck);
	sorted[1] = sort_run(sm, nsm);
	sorted[2] = sort_run(mm, nmm);
	n = w->nck + nsm + nmm;
	ms_xgrow((void **)&w->ck, &w->ckcap, n ? n : 1, sizeof(*w->ck));
	a = w->nck;
	b = nsm;
	c = nmm;
	for (size_t out = n; out-- > 0;) {
		ms_raddr_t xa = a ? w->ck[a - 1].addr : 0, xb = b ? sm[b - 1].addr : 0,
			   xc = c ? mm[c - 1].addr : 0;

		if (a && xa >= xb && xa >= xc) {
			if (out == a - 1)
				break; /* the rest of the first run is in place */
			w->ck[out] = w->ck[--a];
		} else if (b && xb >= xc) {
			w->ck[out] = sm[--b];
		} else {
			w->ck[out] = mm[--c];
		}
	}
	free(sm);
	free(mm);
	w->ck_mm = NULL;
	w->rep->chunks = w->ck;
	w->rep->nchunks = n;
	w->ck = NULL;
	ms_debug("heapwalk: %zu allocations collected in %.1f ms (runs sorted: %d %d %d)", n,
		 (double)(ms_now_ns() - t0) / 1e6, sorted[0], sorted[1], sorted[2]);
}

int ms_heap_walk_flags(const struct ms_heap_loc *loc, const struct ms_reader *const *readers,
		       size_t nreaders, const struct ms_maps *maps, unsigned flags,
		       struct ms_heap_report *rep)
{
	const struct ms_reader *r = readers[0];
	struct walker w = {.loc = loc,
			   .l = &loc->layout,
			   .r = r,
			   .maps = maps,
			   .rep = rep,
			   .want_chunks = flags & MS_HEAP_WALK_CHUNKS};
	const struct ms_heap_layout *l = &loc->layout;
	unsigned char *mp = NULL;
	uint64_t t0 = ms_now_ns(), t2, sbrk_base, hp_pagesize = 0, tmax, heap_bytes = 0;
	size_t nheapsegs;
	int ret = 0;
	double cpu0 = hw_cpu_ms();

	memset(rep, 0, sizeof(*rep));
	rep->hist = ms_xcalloc(HIST_N, sizeof(*rep->hist));
	rep->nhist = HIST_N;
	for (unsigned i = 0; i < HIST_N; i++) {
		if (i < 64) {
			rep->hist[i].lo = 16ull * i;
			rep->hist[i].hi = 16ull * i + 16;
		} else {
			rep->hist[i].lo = 1ull << (i - 64 + 10);
			rep->hist[i].hi = i + 1 < HIST_N ? 1ull << (i - 64 + 11) : UINT64_MAX;
		}
	}
	rep->threads = ms_xcalloc(loc->nthreads ? loc->nthreads : 1, sizeof(*rep->threads));
	rep->nthreads = loc->nthreads;
	if (!l->ar_size || !l->mp_size || l->ar_size > 0x10000 || l->mp_size > 0x1000 ||
	    l->tc_sizeof > 0x10000 || l->ar_bins + HW_NBINS * 16 > l->ar_size + 16) {
		err_add(&w, "bad_layout", 0, -1, "no usable layout of glibc's structures");
		return -MS_E_UNSUPPORTED;
	}
	mp = ms_xmalloc(l->mp_size);
	if (!hw_range_readable(maps, loc->mp, l->mp_size) || ms_read_exact(r, loc->mp, mp, l->mp_size) != 0) {
		err_add(&w, "bad_mp", loc->mp, -1, "cannot read mp_ at 0x%" PRIx64, loc->mp);
		ret = -EFAULT;
		goto out;
	}
	sbrk_base = hw_rd64(mp + l->mp_sbrk_base);
	if (l->mp_has_hp_pagesize)
		hp_pagesize = hw_rd64(mp + l->mp_hp_pagesize);
	if (hp_pagesize & (hp_pagesize - 1) || hp_pagesize > (1ull << 30)) {
		err_add(&w, "bad_mp", loc->mp, -1, "mp_.hp_pagesize %" PRIu64 " is not a page size",
			hp_pagesize);
		hp_pagesize = 0;
	}
	rep->mp_n_mmaps = (uint64_t)(int64_t)hw_rd32(mp + l->mp_n_mmaps);
	rep->mp_mmapped_mem = hw_rd64(mp + l->mp_mmapped_mem);
	rep->mmap_threshold = hw_rd64(mp + l->mp_mmap_threshold);
	rep->tcache_count = l->tc_sizeof ? hw_rd64(mp + l->mp_tcache_count) : 0;
	tmax = l->tc_sizeof ? hw_rd64(mp + l->mp_tcache_max_bytes) : 0;
	if (loc->global_max_fast)
		ms_read_exact(r, loc->global_max_fast, &rep->global_max_fast, 8);
	/* Whatever the variables say, no fastbin or tcache chunk can be larger than this. */
	w.small_max = MS_MAX(MS_MAX(rep->global_max_fast, 0xb0u),
			     MS_MIN((tmax + 8 + 15) & ~15ull, 0x10000u));
	if (l->tc_sizeof)
		w.small_max = MS_MAX(w.small_max, 0x410u);

	ret = read_arenas(&w);
	if (ret)
		goto out;
	for (size_t i = 0; i < rep->narenas; i++)
		arena_segments(&w, i, sbrk_base, hp_pagesize);
	if (w.nsegs > 1)
		qsort(w.segs, w.nsegs, sizeof(*w.segs), cmp_seg);
	for (size_t i = 0; i + 1 < w.nsegs; i++)
		if (w.segs[i].end > w.segs[i + 1].start) {
			err_add(&w, "overlapping_heaps", w.segs[i + 1].start, (int)w.segs[i + 1].arena,
				"heap segments overlap at 0x%" PRIx64, w.segs[i + 1].start);
			w.segs[i + 1].start = w.segs[i].end;
			rep->partial = true;
		}
	w.win = ms_xmalloc(WIN_SIZE);
	w.hmax = heap_max_size(&w, hp_pagesize);
	nheapsegs = w.nheapsegs = w.nsegs;
	for (size_t i = 0; i < nheapsegs; i++)
		heap_bytes += w.segs[i].end > w.segs[i].start ? w.segs[i].end - w.segs[i].start : 0;
	/* At most one chunk per 32 bytes: reserve that much, touch only what is used. */
	w.freev = table_reserve((size_t)(heap_bytes / 32 + 16) * sizeof(*w.freev), &w.freecap,
				sizeof(*w.freev));
	if (w.freev)
		w.free_map = w.freecap * sizeof(*w.freev);
	w.small = table_reserve((size_t)(heap_bytes / 32 + 16) * sizeof(*w.small), &w.smallcap,
				sizeof(*w.small));
	if (w.small)
		w.small_map = w.smallcap * sizeof(*w.small);
	t2 = ms_now_ns();
	if (nreaders > 1 && nheapsegs > 1 && heap_bytes >= MT_MIN_BYTES)
		walk_two(&w, readers[1], heap_bytes);
	else
		for (size_t i = 0; i < nheapsegs; i++)
			if (w.segs[i].start < w.segs[i].end)
				walk_segment(&w, &w.segs[i]);
	/* Segments are sorted and disjoint, so the tables are too, unless resyncs interleaved. */
	for (size_t i = 1; i < w.nsmall; i++)
		if (w.small[i - 1].addr >= w.small[i].addr) {
			qsort(w.small, w.nsmall, sizeof(*w.small), cmp_cent);
			break;
		}
	for (size_t i = 1; i < w.nfree; i++)
		if (w.freev[i - 1].addr >= w.freev[i].addr) {
			qsort(w.freev, w.nfree, sizeof(*w.freev), cmp_fent);
			break;
		}
	rep->chunks_ms = (double)(ms_now_ns() - t2) / 1e6;
	t2 = ms_now_ns();
	rep->list_candidates = w.nsmall;
	free_successors(&w);
	ms_debug("heapwalk: successors of %zu free chunks: %.1f ms", w.nfree,
		 (double)(ms_now_ns() - t2) / 1e6);
	for (size_t t = 0; t < loc->nthreads; t++)
		walk_tcache(&w, t);
	for (size_t i = 0; i < rep->narenas; i++) {
		walk_fastbins(&w, i);
		walk_bins(&w, i);
	}
	ms_debug("heapwalk: lists and bins: %.1f ms", (double)(ms_now_ns() - t2) / 1e6);
	rep->lists_ms = (double)(ms_now_ns() - t2) / 1e6;
	scan_mmapped(&w, rep->mp_n_mmaps, rep->mp_mmapped_mem);
	tally(&w);
	if (w.want_chunks) {
		/* Free chunks are counted: their table goes before the allocations' list grows. */
		if (w.free_map)
			munmap(w.freev, w.free_map);
		else
			free(w.freev);
		w.freev = NULL;
		w.free_map = w.freecap = w.nfree = 0;
		if (w.succ_map)
			munmap(w.succ, w.succ_map);
		else
			free(w.succ);
		w.succ = NULL;
		w.succ_map = 0;
		collect_chunks(&w);
	}

	/* What the report shows: heap segments (heap_info included) and mmapped chunks. */
	rep->segs = ms_xcalloc(w.nsegs ? w.nsegs : 1, sizeof(*rep->segs));
	for (size_t i = 0; i < w.nsegs; i++) {
		struct ms_heap_segment *s = &rep->segs[rep->nsegs++];

		s->start = w.segs[i].heap ? w.segs[i].heap : w.segs[i].start;
		s->end = w.segs[i].end;
		s->arena = w.segs[i].arena == SIZE_MAX ? -1 : (int)w.segs[i].arena;
		s->kind = w.segs[i].arena == SIZE_MAX ? "mmap" : w.segs[i].heap ? "heap" : "brk";
	}
	if (rep->nerrors)
		ret = -MS_E_CORRUPT;
out:
	if (w.ab)
		for (size_t i = 0; i < rep->narenas; i++)
			free(w.ab[i].b);
	free(w.ab);
	free(w.segs);
	free_tables(&w);
	free(w.ck);
	free(w.ck_mm);
	if (w.succ_map)
		munmap(w.succ, w.succ_map);
	else
		free(w.succ);
	free(w.win);
	free(mp);
	rep->walk_ms = (double)(ms_now_ns() - t0) / 1e6;
	rep->walk_cpu_ms = hw_cpu_ms() - cpu0;
	return ret;
}

void ms_heap_report_free(struct ms_heap_report *rep)
{
	if (!rep)
		return;
	free(rep->arenas);
	free(rep->threads);
	free(rep->segs);
	free(rep->hist);
	free(rep->errors);
	free(rep->chunks);
	memset(rep, 0, sizeof(*rep));
}
