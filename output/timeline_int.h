/* SPDX-License-Identifier: MIT */
/* output/timeline internals shared by timeline_json.c and timeline_svg.c. */
#ifndef MEMSPY_OUTPUT_TIMELINE_INT_H
#define MEMSPY_OUTPUT_TIMELINE_INT_H

#include "output/timeline.h"

struct ms_timeline {
	struct ms_tl_info info; /* strings owned */
	struct ms_tl_sample *s; /* arenas owned per sample */
	size_t n, cap;
	ms_raddr_t *arena_addr; /* every arena seen, in order of first appearance */
	size_t narena_addr, arena_cap;
	uint64_t duration_ns; /* the recording's length, when told; 0: the last sample's time */
};

/* Stable small id of an arena address (its order of first appearance). */
size_t ms_tl_arena_id(const struct ms_timeline *t, ms_raddr_t addr);
/* True when any sample has heap figures. */
bool ms_tl_has_heap(const struct ms_timeline *t);

#endif
