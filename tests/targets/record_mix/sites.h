/* SPDX-License-Identifier: MIT */
/*
 * memspy-rec-target: allocation call sites, one per file and never inlined,
 * so that the stacks memspy records are the ones the target announces.
 */
#ifndef REC_SITES_H
#define REC_SITES_H

#include <stddef.h>

#define NOINLINE __attribute__((noinline))

/* Sizes are odd and recognisable; a:b:c bytes = 60:30:10 per round. */
#define SITE_A_BYTES 6007
#define SITE_B_BYTES 3001
#define SITE_C_BYTES 997
#define LEAK_BYTES   4099
#define POOL_BYTES   1531

/* Each allocates, fills, checks and frees; returns a checksum (0 = corrupt). */
NOINLINE unsigned long rec_site_a(unsigned seed);
NOINLINE unsigned long rec_site_b(unsigned seed);
NOINLINE unsigned long rec_site_c(unsigned seed);
/* Allocates LEAK_BYTES and keeps it forever (on a list); returns a checksum. */
NOINLINE unsigned long rec_leak_keep(unsigned seed);
/* Counts the kept blocks and checks their contents; returns the number kept or -1. */
long rec_leak_check(void);

/* The custom allocator (never calls malloc) and its call site. */
NOINLINE void *rec_pool_alloc(size_t n);
NOINLINE unsigned long rec_site_pool(unsigned seed);

/* Keeps the compiler from dropping an allocation. */
void rec_escape(void *p);
/* Fills n bytes with a pattern from seed and returns a checksum of them read back. */
unsigned long rec_fill_check(unsigned char *p, size_t n, unsigned seed);

#endif
