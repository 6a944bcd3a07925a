/* SPDX-License-Identifier: MIT */
/*
 * memspy record, private: the sample table that the recording loop fills at
 * each stop (raw PCs, interned per distinct stack) and the end reads back.
 */
#ifndef MEMSPY_RECORD_INT_H
#define MEMSPY_RECORD_INT_H

#include "common/common.h"

#include <sys/types.h>

struct ms_rec_table; /* opaque */

/* Totals of one distinct stack, as estimated from its samples. */
struct ms_rec_stack {
	const ms_raddr_t *pcs; /* leaf first: pcs[0] = the allocator's entry; borrowed */
	size_t npcs;
	int fn;		     /* enum ms_alloc_fn of the first sample (the leaf function) */
	uint64_t samples;    /* sampled allocations on this stack */
	uint64_t bytes;	     /* estimated bytes allocated (sum of weights) */
	double count;	     /* estimated allocations (sum of weight / size) */
	uint64_t live_bytes; /* estimated bytes not freed by the end */
	double live_count;   /* estimated allocations not freed by the end */
};

struct ms_rec_table *ms_rec_table_new(void);
void ms_rec_table_free(struct ms_rec_table *t);

/*
 * Stores one sampled allocation: its stack (copied), the bytes it stands for
 * (weight), the bytes asked for (size), the returned pointer and the
 * function called. A call that returned 0 allocated nothing: it is only
 * counted in ms_rec_totals.failed.
 */
void ms_rec_table_add(struct ms_rec_table *t, const ms_raddr_t *pcs, size_t npcs, int fn,
		      uint64_t weight, uint64_t size, ms_raddr_t ptr, pid_t tid);

/*
 * A free of ptr: marks the most recent live sample at ptr freed (the same
 * address can be sampled again after it was freed). Returns 1 when a sample
 * matched, 0 when none did (a pointer allocated before the recording, or not
 * sampled).
 */
int ms_rec_table_free_ptr(struct ms_rec_table *t, ms_raddr_t ptr);

/* Number of distinct stacks; stack i's totals into *out (pcs borrowed from t). */
size_t ms_rec_table_nstacks(const struct ms_rec_table *t);
void ms_rec_table_stack(const struct ms_rec_table *t, size_t i, struct ms_rec_stack *out);

/* Totals over every sample. Any pointer may be NULL. */
struct ms_rec_totals {
	uint64_t samples, frees_matched, failed;
	uint64_t bytes, live_bytes;
	double count, live_count;
	size_t distinct_pcs_hint; /* total PCs stored over distinct stacks */
};
void ms_rec_table_totals(const struct ms_rec_table *t, struct ms_rec_totals *out);

struct ms_modules;
struct ms_probes;
/*
 * After detach: compares the executable mappings of every module that had a
 * probe with the module's file, byte for byte. Returns 0 when identical
 * (note says what was checked), -EIO when a byte differs (note names the
 * first one), or another negative code when the check could not be done
 * (note says why). *note is allocated; the caller frees it.
 */
int ms_rec_verify_text(pid_t pid, const struct ms_modules *mods, struct ms_probes *pr, char **note);

#endif
