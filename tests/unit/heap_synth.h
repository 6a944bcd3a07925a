/* SPDX-License-Identifier: MIT */
/*
 * A synthetic glibc 2.36 heap in local memory for the walker's unit test and
 * fuzzer: main_arena + mp_ in a "libc data" region, one brk heap with a
 * tcache struct, in-use chunks, a fastbin chunk, two tcache entries, an
 * unsorted chunk and top. Read through a struct ms_reader over the image.
 */
#ifndef MEMSPY_TEST_HEAP_SYNTH_H
#define MEMSPY_TEST_HEAP_SYNTH_H

#include "heapwalk/heapwalk.h"

#include <stdlib.h>
#include <string.h>

#define SY_DATA 0x7f0000001000ull /* main_arena at +0, mp_ at +0x1000 */
#define SY_DATA_LEN 0x2000u
#define SY_HEAP 0x555555559000ull
#define SY_HEAP_LEN 0x4000u

struct synth {
	unsigned char data[SY_DATA_LEN];
	unsigned char heap[SY_HEAP_LEN];
	struct ms_maps maps;
	struct ms_heap_loc loc;
	struct ms_heap_thread thread;
	/* what the walk must find */
	uint64_t inuse_chunks, fast_chunks, tcache_chunks, unsorted_chunks, top_size;
};

static ssize_t synth_read(void *ctx, ms_raddr_t addr, void *buf, size_t len)
{
	struct synth *s = ctx;
	const unsigned char *base;
	ms_raddr_t start;
	size_t size;

	if (addr >= SY_DATA && addr < SY_DATA + SY_DATA_LEN) {
		base = s->data;
		start = SY_DATA;
		size = SY_DATA_LEN;
	} else if (addr >= SY_HEAP && addr < SY_HEAP + SY_HEAP_LEN) {
		base = s->heap;
		start = SY_HEAP;
		size = SY_HEAP_LEN;
	} else {
		return 0;
	}
	len = len < size - (addr - start) ? len : size - (addr - start);
	memcpy(buf, base + (addr - start), len);
	return (ssize_t)len;
}

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Chunk header at heap offset off. */
static void chunk(struct synth *s, uint32_t off, uint64_t size_flags)
{
	put64(s->heap + off + 8, size_flags);
}

static int synth_build(struct synth *s)
{
	const struct ms_heap_layout *l;
	unsigned char *ar, *mp;
	ms_raddr_t mainar = SY_DATA, h = SY_HEAP;
	uint32_t off;
	int r;

	ms_maps_free(&s->maps); /* s is static and rebuilt per case */
	memset(s, 0, sizeof(*s));
	r = ms_maps_parse("555555559000-55555555d000 rw-p 00000000 00:00 0 [heap]\n"
			  "7f0000001000-7f0000003000 rw-p 00000000 00:00 0\n",
			  &s->maps);
	if (r)
		return r;
	ms_heap_layout_for_version(2, 36, &s->loc.layout);
	l = &s->loc.layout;
	s->loc.main_arena = mainar;
	s->loc.mp = SY_DATA + 0x1000;
	s->loc.layout_source = "table";
	ar = s->data;
	mp = s->data + 0x1000;
	/* Empty bins point at themselves. */
	for (unsigned i = 1; i < 128; i++) {
		put64(ar + l->ar_bins + (i - 1) * 16, mainar + l->ar_bins + (i - 1) * 16 - 16);
		put64(ar + l->ar_bins + (i - 1) * 16 + 8, mainar + l->ar_bins + (i - 1) * 16 - 16);
	}
	put64(ar + l->ar_next, mainar);
	put64(ar + l->ar_attached_threads, 1);
	put64(ar + l->ar_system_mem, SY_HEAP_LEN);
	put64(mp + l->mp_sbrk_base, h);
	put64(mp + l->mp_tcache_max_bytes, 1032);
	put64(mp + l->mp_tcache_count, 7);
	put64(mp + l->mp_tcache_bins, 64);

	/* 0x000: tcache_perthread_struct chunk (0x290), in use. */
	off = 0;
	chunk(s, off, 0x291);
	s->thread.tid = 1;
	s->thread.tcache = h + 0x10;
	s->loc.threads = &s->thread;
	s->loc.nthreads = 1;
	s->inuse_chunks = 1;
	off += 0x290;
	/* 0x290: in use 0x30; 0x2c0: tcache 0x30; 0x2f0: tcache 0x30 (list: 0x300 -> 0x2d0). */
	chunk(s, off, 0x31);
	s->inuse_chunks++;
	chunk(s, 0x2c0, 0x31);
	chunk(s, 0x2f0, 0x31);
	/* safe-linking: next = (field_addr >> 12) ^ ptr */
	put64(s->heap + 0x300, ((h + 0x300) >> 12) ^ (h + 0x2d0));
	put64(s->heap + 0x2d0, ((h + 0x2d0) >> 12) ^ 0);
	*(uint16_t *)(s->heap + 0x10 + 2 * 1) = 2;      /* counts[1] (0x30) */
	put64(s->heap + 0x10 + 128 + 8 * 1, h + 0x300); /* entries[1] */
	s->tcache_chunks = 2;
	/* 0x320: fastbin 0x40 (fastbinsY[2]) */
	chunk(s, 0x320, 0x41);
	put64(s->heap + 0x330, ((h + 0x330) >> 12) ^ 0);
	put64(ar + l->ar_fastbins + 8 * 2, h + 0x320);
	s->fast_chunks = 1;
	/* 0x360: in use 0x100 */
	chunk(s, 0x360, 0x101);
	s->inuse_chunks++;
	/* 0x460: free 0x200 in the unsorted bin; its successor has P clear. */
	chunk(s, 0x460, 0x201);
	put64(s->heap + 0x470, mainar + l->ar_bins - 16);
	put64(s->heap + 0x478, mainar + l->ar_bins - 16);
	put64(ar + l->ar_bins, h + 0x460);
	put64(ar + l->ar_bins + 8, h + 0x460);
	put64(s->heap + 0x660, 0x200); /* footer */
	s->unsorted_chunks = 1;
	/* 0x660: in use 0x40, P clear */
	chunk(s, 0x660, 0x40);
	s->inuse_chunks++;
	/* 0x6a0: top up to the end */
	chunk(s, 0x6a0, (SY_HEAP_LEN - 0x6a0) | 1);
	s->top_size = SY_HEAP_LEN - 0x6a0;
	put64(ar + l->ar_top, h + 0x6a0);
	return 0;
}

#endif
