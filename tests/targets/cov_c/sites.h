/* SPDX-License-Identifier: MIT */
/*
 * memspy-cov-c / memspy-cov-bump: one allocation call site per file, never
 * inlined, so the stacks memspy records are the ones the target announces.
 */
#ifndef COV_SITES_H
#define COV_SITES_H

#include "cov.h"

/* Odd, recognisable sizes. */
#define MALLOC_BYTES 6007
#define CALLOC_N     31
#define CALLOC_SIZE  97
#define REALLOC_FROM 1009
#define REALLOC_TO   5003
#define KEEP_BYTES   4099
#define PM_ALIGN     64
#define PM_BYTES     5003
#define AA_ALIGN     256
#define AA_BYTES     3001
#define MA_ALIGN     128
#define MA_BYTES     1999
#define VA_BYTES     4001
#define PVA_BYTES    2003
#define RNULL_BYTES  1201
#define PM16_BYTES   1301
#define MA16_BYTES   1401
#define AA16_BYTES   1501
#define CHAIN_FIRST  101
#define CHAIN_STEP   67
#define CHAIN_GROWS  100
#define BIGC_N	     40009 /* x BIGC_SIZE = 40.8 MB: above glibc's largest mmap threshold */
#define BIGC_SIZE    1021
#define SPREAD_DEPTHS 48
#define SPREAD_BYTES  211
#define SPREAD_STEP   53

int cov_site_malloc(unsigned seed);
int cov_site_calloc(unsigned seed);
int cov_site_realloc(unsigned seed); /* malloc(REALLOC_FROM) then realloc to REALLOC_TO */
int cov_site_keep(unsigned seed);    /* malloc(KEEP_BYTES), kept until the end */
int cov_keep_check(unsigned long long expected);
int cov_site_pm(unsigned seed);
int cov_site_aa(unsigned seed);
int cov_site_ma(unsigned seed);
int cov_site_va(unsigned seed);
int cov_site_pva(unsigned seed);
int cov_site_rnull(unsigned seed); /* realloc(NULL, n) */
int cov_site_pm16(unsigned seed);  /* alignments glibc serves with plain malloc */
int cov_site_ma16(unsigned seed);
int cov_site_aa16(unsigned seed);
int cov_site_chain(unsigned seed); /* malloc, then CHAIN_GROWS reallocs, each larger */
int cov_site_bigcalloc(unsigned seed);
int cov_site_spread(unsigned seed);	 /* one malloc at SPREAD_DEPTHS stack depths */
int cov_site_zero(unsigned seed);	 /* malloc(0) and free(NULL) */
int cov_site_fail_malloc(unsigned seed); /* a size no allocator can give: NULL */
int cov_site_fail_calloc(unsigned seed); /* nmemb * size overflows: NULL */

/* The sizes the failing sites ask for (volatile: the compiler must not fold them). */
extern volatile size_t cov_huge_bytes, cov_ovf_n, cov_ovf_size;

#endif
