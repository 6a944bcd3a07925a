/* SPDX-License-Identifier: MIT */
/* heapwalk internals shared by layout.c, locate.c and walk.c. */
#ifndef MEMSPY_HEAPWALK_INT_H
#define MEMSPY_HEAPWALK_INT_H

#include "heapwalk/heapwalk.h"

#include <dwarf.h>
#include <sys/resource.h>
#include <elfutils/libdw.h>
#include <stdio.h>
#include <string.h>

/* memspy's CPU time so far, in ms: user + system, all threads. */
static inline double hw_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* x86_64 glibc constants that no version changed. */
#define HW_SIZE_SZ 8u
#define HW_ALIGN 16u
#define HW_MINSIZE 0x20u
#define HW_PREV_INUSE 0x1u
#define HW_IS_MMAPPED 0x2u
#define HW_NON_MAIN 0x4u
#define HW_FLAGS 0x7u
#define HW_NBINS 128u
#define HW_NONCONTIG_BIT 0x2u
#define HW_NSMALLBINS 64u
/* Arena ring length is bounded by 8 x cores in glibc; this caps a corrupt ring. */
#define HW_MAX_ARENAS 1024u

/*
 * Fills out from libc's DWARF (the malloc.c compile unit): member offsets
 * of malloc_state, malloc_par, heap_info and tcache_perthread_struct.
 * Fields missing from DWARF keep the values already in out (the version
 * table). 0, or -MS_E_NOT_FOUND when the structures are not there.
 */
int hw_layout_from_dwarf(Dwarf *dw, struct ms_heap_layout *out);

/*
 * Whether [a, a+len) is covered by readable mappings of maps, where a run of
 * adjacent mappings counts as one (after a fork, [heap] and thread heaps
 * grow as separate adjacent mappings). len 0: whether a is readable.
 */
bool hw_range_readable(const struct ms_maps *maps, ms_raddr_t a, uint64_t len);
/*
 * The run of adjacent readable mappings holding a: [*lo, *hi). false when a
 * is in no readable mapping.
 */
bool hw_readable_run(const struct ms_maps *maps, ms_raddr_t a, ms_raddr_t *lo, ms_raddr_t *hi);

/*
 * One read of smaps from f (ms_heap_smaps opens /proc/PID/smaps; the fuzzer
 * feeds any text). 0, or -EAGAIN when the mappings are out of order (a read
 * that raced with a change).
 */
int ms_heap_smaps_parse(FILE *f, const struct ms_heap_report *rep, struct ms_heap_rss *out);

/* Parses "2.36" style versions. 0 or -EINVAL. */
int hw_parse_version(const char *s, unsigned *major, unsigned *minor);

/* Little-endian fields of a buffer read from the target (unaligned). */
static inline uint64_t hw_rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline int32_t hw_rd32(const unsigned char *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

#endif
