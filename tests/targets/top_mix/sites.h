/* SPDX-License-Identifier: MIT */
/*
 * memspy-top-target: allocation sites, one per file and never inlined, so
 * that the functions memspy top shows are the ones the target announces.
 * Per round: big 1 x 6000 B, mid 2 x 1500 B, small 10 x 100 B: bytes
 * 60:30:10 (big > mid > small), allocations 1:2:10 (small > mid > big).
 */
#ifndef TOP_SITES_H
#define TOP_SITES_H

#include <stddef.h>

#define NOINLINE __attribute__((noinline))

#define BIG_BYTES   6000
#define BIG_N	    1
#define MID_BYTES   1500
#define MID_N	    2
#define SMALL_BYTES 100
#define SMALL_N	    10
#define LEAK_BYTES  4096 /* kept: one block every LEAK_EVERY rounds (leak mode) */
#define LEAK_EVERY  64

/* Each allocates n blocks, fills and checks them, frees them; returns 0 when one is corrupt. */
NOINLINE int top_site_big(unsigned seed);
NOINLINE int top_site_mid(unsigned seed);
NOINLINE int top_site_small(unsigned seed);
/* Allocates LEAK_BYTES and keeps it (on a list, checked at the end); 0 on failure. */
NOINLINE int top_site_leak(unsigned seed);
/* The kept blocks intact: their number, or -1. */
long top_leak_check(void);

/* Fills n bytes from seed, reads them back; 1 when they are as written. */
int top_fill_check(unsigned char *p, size_t n, unsigned seed);

#endif
