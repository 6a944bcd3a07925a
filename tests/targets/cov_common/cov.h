/* SPDX-License-Identifier: MIT */
/*
 * Shared harness of the memspy-cov-* targets (allocator coverage of `memspy
 * record`): 4 workers, a ready/go pipe handshake, self-announced expectations.
 */
#ifndef COV_H
#define COV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NOINLINE     __attribute__((noinline))
#define COV_NWORKERS 4

struct cov_mode {
	const char *name;
	/* One round of one worker; returns 1 when every block read back what was written. */
	int (*round)(unsigned seed);
	/*
	 * Prints the expectations for `rounds` rounds (all workers together):
	 *   expect-folded BYTES COUNT FRAME;FRAME;...   (frames as memspy names them;
	 *                                                 the sequence is contiguous in a stack)
	 *   expect-live BYTES COUNT FRAME;...           (still allocated at "done")
	 */
	void (*expect)(unsigned long long rounds);
	/* After memspy detached: checks kept blocks; 1 = ok. May be NULL. */
	int (*check)(unsigned long long rounds);
};

/* Provided by each target. */
extern const struct cov_mode cov_modes[];
extern const size_t cov_nmodes;

/* Keeps the compiler from dropping an allocation. */
void cov_escape(void *p);
/* Fills n bytes with a pattern from seed, reads them back: 1 if they match. */
int cov_fill_check(void *p, size_t n, unsigned seed);
/* 1 if n bytes still hold the pattern cov_fill_check wrote with seed. */
int cov_verify(const void *p, size_t n, unsigned seed);
/* Same for memory that must read as zero before the fill (calloc). */
int cov_zero_fill_check(void *p, size_t n, unsigned seed);
/* Records a failure reason (first one wins); thread-safe. */
void cov_fail(const char *why);

#ifdef __cplusplus
}
#endif

#endif
