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

/* ------------- what record_walk.c and record_walk_summary.c share ------------- */

#include "cmd/record_opts.h"
#include "output/timeline.h"
#include "record/record.h"

struct walk_opts {
	struct cli_rec_opts co; /* the options probe mode takes too */
	const char *all_path, *tl_path;
	char *all_default, *tl_default;
	enum ms_tl_format tl_fmt;
	double rate;
	uint64_t walk_ns;
	bool full_walk;
	bool idle;	  /* --idle: sleeping threads' stacks in the all-threads view too */
	double max_share; /* fraction of wall time the target may spend stopped */
	uint64_t max_reads;
};

/*
 * The closing summary on stderr: alloc_samples and alloc_asleep as
 * ms_rec_profile_build_walk() counted them, cpu_ns memspy's CPU.
 */
void walk_print_summary(const struct walk_opts *o, struct ms_rec_walk_account *w,
			const struct ms_rec_end *oc, uint64_t alloc_samples,
			uint64_t alloc_asleep, uint64_t cpu_ns);

#endif
