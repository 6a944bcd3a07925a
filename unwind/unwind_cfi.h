/* SPDX-License-Identifier: MIT */
/*
 * unwind/cfi: a cache of compiled CFI rows for the elfutils backend. Each
 * PC the walk meets is looked up once with libdw (the .eh_frame row that
 * libdwfl itself would use) and compiled into a compact rule per register
 * (CFA = reg + offset; each register undefined, same value, saved at CFA +
 * n, equal to CFA + n, or a copy of another register). Later walks through
 * that PC run a tight loop over the copied stack with no libdw call and no
 * allocation. Rows it cannot express (DWARF expressions, signal frames, a
 * PC without .eh_frame coverage or outside every module) make the whole
 * walk go to libdw instead, so stacks are exactly what libdw gives.
 */
#ifndef MEMSPY_UNWIND_CFI_H
#define MEMSPY_UNWIND_CFI_H

#include "unwind/unwind_int.h"

struct ms_cfi_cache;

struct ms_cfi_cache_stats {
	uint64_t walks;	    /* walks tried with the table */
	uint64_t done;	    /* of walks, finished with the table alone */
	uint64_t fallbacks; /* of walks, handed to libdw (a row the table cannot express) */
	uint64_t rows;	    /* PCs compiled into rows */
	uint64_t opaque;    /* PCs libdw must handle (kept so they are looked up once) */
	uint64_t flushes;   /* the table was emptied (modules changed, or it was full) */
};

struct ms_cfi_cache *ms_cfi_cache_new(void);
/* NULL is a no-op. */
void ms_cfi_cache_free(struct ms_cfi_cache *c);
/* Forgets every row: call when the Dwfl's modules change (rows hold no addresses of
 * libdw's, but a PC may now belong to another module). */
void ms_cfi_cache_clear(struct ms_cfi_cache *c);

/*
 * Walks s with the table (rows for new PCs are compiled from dwfl's .eh_frame):
 * pcs[0] is already rip and *n == 1, as for a backend's unwind. true when the
 * walk is complete and pcs[0..*n) is what the libdw walk gives; false when a
 * frame needs libdw (pcs beyond index 0 and *n are then unspecified).
 */
bool ms_cfi_cache_unwind(struct ms_cfi_cache *c, Dwfl *dwfl, const struct ms_stack_copy *s,
			 ms_raddr_t *pcs, size_t max, size_t *n);

void ms_cfi_cache_stats(const struct ms_cfi_cache *c, struct ms_cfi_cache_stats *out);

/* The elfutils backend's table counters (all 0 for other backends or without the
 * table) and, in verification mode, the walks that differed from libdw's. */
void ms_unwind_dwfl_cache_stats(const struct ms_unwinder *u, struct ms_cfi_cache_stats *out,
				uint64_t *mismatches);

#endif
