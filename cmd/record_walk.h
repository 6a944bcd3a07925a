/* SPDX-License-Identifier: MIT */
/*
 * memspy record --mode walk: recording without probes. Periodic stops take
 * every thread's registers and stack and the malloc arena headers; the end
 * writes an allocator-time flame graph, an all-threads one and a heap timeline.
 */
#ifndef MEMSPY_RECORD_WALK_H
#define MEMSPY_RECORD_WALK_H

#include "common/common.h"

/* argv[0] = "record" (or any name); parses every option itself. Returns an exit code. */
int cmd_record_walk(int argc, char **argv);

/* ---- private to cmd/record_walk*.c ---- */

struct ms_heap_loc;

/* One arena as read from its header and free lists. */
struct rw_arena {
	ms_raddr_t addr;
	bool is_main;
	int mutex;
	uint64_t system_mem, top, fast, unsorted, small, large;
	bool capped; /* a free list was longer than the read budget allowed */
};

/* What one cheap heap read found. */
struct rw_heap {
	struct rw_arena *arenas;
	size_t narenas, cap;
	uint64_t mmapped_mem, n_mmaps;
	uint64_t tcache;	   /* bytes in every thread's tcache (from the counts) */
	bool tcache_known;	   /* the tcaches were located */
	bool capped, inconsistent; /* some list cut short / some arena locked */
	uint64_t reads;		   /* remote reads done */
};

/*
 * Reads the arena ring (headers only: system_mem, top), the fastbin and bin
 * lists (sizes summed, at most max_reads chunk reads in all), mp_'s mmapped
 * counters, and the tcache counts of the threads in loc. The target must be
 * stopped. 0, or a negative code when main_arena itself cannot be read.
 * h is reset first and keeps its buffer between calls.
 */
int rw_heap_read(const struct ms_heap_loc *loc, const struct ms_reader *r, struct rw_heap *h,
		 uint64_t max_reads);
void rw_heap_free(struct rw_heap *h);

/* Is this symbolised frame a part of an allocator (malloc and friends, their internals)? */
bool rw_frame_is_allocator(const char *function, const char *file, const char *module);
/* Is this module a runtime library an allocator call may pass through (libc, ld.so, vdso)? */
bool rw_module_is_runtime(const char *module);

#endif
