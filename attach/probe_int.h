/* SPDX-License-Identifier: MIT */
/*
 * attach/probe internals: relocation of the instructions a probe displaces
 * (decode.c, over Zydis), the branch sweep, and the layout of the injected
 * stub image (probe_stubs.S). Not part of the public API.
 */
#ifndef MEMSPY_PROBE_INT_H
#define MEMSPY_PROBE_INT_H

#include "attach/attach.h"

/* ============================ relocation (decode.c) ============================ */

#define MS_RELOC_MAX 64 /* relocated bytes + the jmp back must fit one orig slot */

struct ms_reloc {
	uint8_t code[MS_RELOC_MAX]; /* relocated instructions, then `jmp entry+displaced` */
	size_t len;                 /* bytes used in code */
	size_t displaced;           /* bytes taken from the entry (>= min_len) */
	unsigned n_insns;           /* instructions displaced */
	char why[160];              /* why the site was refused */
};

/*
 * Decodes the instructions at entry (bytes: a copy of its text, avail
 * bytes) until at least min_len bytes are covered, and re-encodes them to
 * run at dest followed by `jmp entry+N`: jcc -> jcc rel32, jmp/call rel ->
 * rel32, RIP-relative disp32 re-based. Refuses (-MS_E_UNSUPPORTED, out->why
 * says why) loop/jrcxz/xbegin, branches into entry+1..entry+N-1, a return
 * or indirect jump before min_len, and anything out of rel32 reach.
 */
int ms_decode_relocate(const uint8_t *bytes, size_t avail, ms_raddr_t entry, ms_raddr_t dest,
		       size_t min_len, struct ms_reloc *out);

/* A half-open range [lo, hi) that no relative branch may land in. */
struct ms_range {
	ms_raddr_t lo, hi;
	ms_raddr_t hit_from; /* out: a branch found landing in the range (0 = none) */
	ms_raddr_t hit_to;
};

/*
 * Linear sweep of text (a copy of len bytes mapped at addr): for every
 * direct relative branch or call whose target lies in one of the ranges,
 * records the first offender in that range. Undecodable bytes are skipped
 * one at a time (data in text). Returns the number of ranges hit.
 */
size_t ms_decode_sweep(const uint8_t *text, size_t len, ms_raddr_t addr, struct ms_range *ranges,
		       size_t n);

/* Length of the instruction at bytes, or 0 if it does not decode. */
size_t ms_decode_length(const uint8_t *bytes, size_t avail);

#endif
