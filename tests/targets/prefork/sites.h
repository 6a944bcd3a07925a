/* SPDX-License-Identifier: MIT */
/*
 * memspy-prefork-target: allocation sites, one per file and never inlined,
 * so the stacks memspy records are the ones the target counts.
 */
#ifndef PREFORK_SITES_H
#define PREFORK_SITES_H

#include <stddef.h>

#define NOINLINE __attribute__((noinline))

/* Odd, recognisable sizes. */
#define PF_SIZE_A 4001
#define PF_SIZE_B 2003
#define PF_SIZE_C 1009
#define PF_SIZE_LEAK 96001 /* a leak: sampled nearly always at a mean of 8 KiB */

/* Each allocates its size, fills and checks it, frees it; returns 0 when the bytes read back wrong.
 */
NOINLINE unsigned long pf_site_a(unsigned seed);
NOINLINE unsigned long pf_site_b(unsigned seed);
NOINLINE unsigned long pf_site_c(unsigned seed);
/* Allocates PF_SIZE_LEAK bytes, fills and checks them, keeps them forever; 0 if they read back wrong. */
NOINLINE int pf_site_leak(unsigned seed);
unsigned long pf_fill_check(unsigned char *p, size_t n, unsigned seed);

#endif
