// SPDX-License-Identifier: MIT
/*
 * record: the stack table as output/'s profile, for both modes: each
 * stack's frames (frames.c, each distinct PC symbolised once) with the
 * values of the view asked for, and the modules the frames came from as
 * pprof mappings.
 */
#include "record/record.h"
#include "output/output.h"
#include "unwind/unwind.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Sampled counts are estimates with fractions. Each stack gets the rounded
 * running total minus what the stacks before it got, so the stacks add up
 * to exactly the rounded total that the summary and the subtitle print
 * (ms_rec_table_totals sums the same values in the same order): rounding
 * each stack alone made a flame graph's root or a pprof total differ from
 * the subtitle by a few allocations. No stack moves by a whole allocation.
 */
void ms_rec_profile_build(struct ms_profile *prof, const struct ms_rec_table *t,
			  struct ms_symbolizer *sym, const struct ms_rec_profile_opts *o)
{
	struct ms_out_frame *frames = NULL;
	size_t cap = 0;
	double running = 0, running_alloc = 0;
	uint64_t given = 0, given_alloc = 0;

	for (size_t i = 0; i < ms_rec_table_nstacks(t); i++) {
		struct ms_rec_stack s;
		size_t n;
		uint64_t bytes, count, alloc_count;

		if (o->iv) /* allocated: in this interval; live: since the recording began */
			ms_rec_interval_stack(o->iv, t, i, &s);
		else
			ms_rec_table_stack(t, i, &s);
		bytes = o->live ? s.live_bytes : s.bytes;
		running += o->live ? s.live_count : s.count;
		count = (uint64_t)llround(running) - given;
		given += count;
		/* live: what the stack allocated in all too (pprof's alloc_*), rounded alike */
		running_alloc += s.count;
		alloc_count = (uint64_t)llround(running_alloc) - given_alloc;
		given_alloc += alloc_count;
		if (o->live && !bytes && !count && !s.bytes && !alloc_count)
			continue;
		n = ms_rec_frames(sym, s.pcs, s.npcs,
				  MS_REC_FRAMES_ADDRESS | (o->lines ? MS_REC_FRAMES_LINES : 0), &frames,
				  &cap, 0);
		if (bytes || count || !o->live)
			ms_profile_add_sampled(prof, frames, n, bytes, count,
					       o->live ? s.live_samples : s.samples);
		if (o->live) /* with its samples: an interval's allocated view says them */
			ms_profile_add_alloc_sampled(prof, frames, n, s.bytes, alloc_count,
						     s.samples);
	}
	free(frames);
}

void ms_rec_profile_build_walk(struct ms_profile *alloc, struct ms_profile *all,
			       const struct ms_rec_table *t, struct ms_symbolizer *sym, bool idle,
			       bool lines, uint64_t *alloc_samples, uint64_t *alloc_asleep)
{
	struct ms_out_frame *frames = NULL;
	size_t cap = 0;
	char asleep_name[64];

	*alloc_samples = 0;
	*alloc_asleep = 0;
	for (size_t i = 0; i < ms_rec_table_nstacks(t); i++) {
		struct ms_rec_stack rs;
		const struct ms_rec_stack *s = &rs;
		int asleep;
		bool in_alloc;
		size_t n;

		ms_rec_table_stack(t, i, &rs);
		asleep = s->fn; /* 0 running, else 1 + the system call it slept in */
		in_alloc = sym && ms_rec_stack_in_allocator(sym, s->pcs, s->npcs);
		if (asleep) {
			/* Asleep inside allocator code: a lock, or an allocator's own thread. */
			if (in_alloc)
				*alloc_asleep += s->samples;
			if (!idle)
				continue;
		}
		/* pcs[0] is where the thread was stopped, the others return addresses. */
		n = ms_rec_frames(sym, s->pcs, s->npcs,
				  MS_REC_FRAMES_LEAF_IS_PC | (lines ? MS_REC_FRAMES_LINES : 0),
				  &frames, &cap, 0);
		if (asleep) {
			/* The leaf says so: "[asleep in futex]". */
			const char *sc = ms_rec_syscall_name(asleep - 1);

			ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
			if (sc)
				snprintf(asleep_name, sizeof(asleep_name), "[asleep in %s]", sc);
			else
				snprintf(asleep_name, sizeof(asleep_name),
					 "[asleep in system call %d]", asleep - 1);
			frames[n++] = (struct ms_out_frame){.function = asleep_name};
		}
		ms_profile_add(all, frames, n, 0, s->samples);
		if (in_alloc && !asleep) {
			ms_profile_add(alloc, frames, n, 0, s->samples);
			*alloc_samples += s->samples;
		}
	}
	free(frames);
}

/*
 * The executable is marked (pprof names the profile after it): as the
 * symboliser says, or as the module table does.
 */
void ms_rec_profile_mappings(struct ms_profile *prof, struct ms_symbolizer *sym,
			     const struct ms_modules *mods)
{
	const struct ms_sym_module *sm;
	size_t n = sym ? ms_symbolizer_modules(sym, &sm) : 0;

	for (size_t i = 0; i < n; i++) {
		struct ms_out_mapping m = {
		    .start = sm[i].start,
		    .limit = sm[i].limit,
		    .file_offset = sm[i].file_offset,
		    .path = sm[i].path,
		    .build_id = sm[i].build_id,
		    .is_main = sm[i].is_main,
		};

		for (size_t k = 0; mods && k < mods->n; k++)
			if (mods->v[k].is_exec && !strcmp(mods->v[k].path, sm[i].path))
				m.is_main = true;
		ms_profile_add_mapping(prof, &m);
	}
}

const char *ms_rec_profile_main_module(const struct ms_modules *mods)
{
	const char *name = NULL;

	for (size_t i = 0; mods && i < mods->n; i++) {
		const char *slash = strrchr(mods->v[i].path, '/');

		if (mods->v[i].is_exec)
			name = slash ? slash + 1 : mods->v[i].path;
	}
	return name;
}
