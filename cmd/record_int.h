/* SPDX-License-Identifier: MIT */
/*
 * memspy record, the command's side: record's loop as other commands run
 * it (memspy top), and the check after detach. The engine: record/record.h.
 */
#ifndef MEMSPY_CMD_RECORD_INT_H
#define MEMSPY_CMD_RECORD_INT_H

#include "record/record.h"

#include <stdio.h>
#include <sys/types.h>

/* ------------------------- record's loop, for other commands ------------------------- */

struct ms_symbolizer;
/* What a hook sees of a recording; everything borrowed, valid during the call. */
struct ms_rec_view {
	pid_t pid;
	bool live;			  /* frees are probed: live figures are meaningful */
	uint64_t start_ns;		  /* ms_now_ns() when the probes went in */
	const struct ms_rec_table *table; /* the samples so far */
	struct ms_symbolizer *sym;	  /* made at attach time; symbolises while the target runs */
	const struct ms_rec_budget *budget; /* mean in force; budget->first: the first reading */
	const struct ms_rec_cost *last;	  /* the latest reading (10 a second; the final one at the end) */
};

#define MS_REC_STEP_BUSY 1 /* the hook did work: its CPU is not counted as idle polling */
#define MS_REC_STEP_STOP 2 /* end the recording, as Ctrl-C does */

/*
 * A command built on record's loop (memspy top). Options are record's, less
 * those about a file (-o, -f, --count, --lines, --mode); nothing is written,
 * the summary is record's (its first line names cmd, not a file).
 */
struct ms_rec_hooks {
	const char *cmd;	   /* "top": in messages */
	void (*help)(FILE *f);	   /* --help */
	void *ctx;
	/* Each iteration of the loop (every 5-50 ms): returns MS_REC_STEP_* flags. */
	int (*step)(void *ctx, const struct ms_rec_view *v);
	/* Once, after every probe is removed and the target detached (and verified), before the summary. */
	void (*ended)(void *ctx, const struct ms_rec_view *v);
};

/* memspy record's main (h NULL), or with hooks; returns the exit code record's help lists. */
int ms_rec_main(int argc, char **argv, const struct ms_rec_hooks *h);

#endif
