/* SPDX-License-Identifier: MIT */
/*
 * memspy record, the command's side: its options as its files share them,
 * the closing summary and the file's subtitle (record_summary.c), and
 * record's loop as other commands run it (memspy top). The engine:
 * record/record.h.
 */
#ifndef MEMSPY_CMD_RECORD_INT_H
#define MEMSPY_CMD_RECORD_INT_H

#include "cmd/record_opts.h"
#include "record/record.h"

#include <stdio.h>
#include <sys/types.h>

/* ------------------------- record's options and summary ------------------------- */

struct rec_opts {
	const char *cmd; /* "record", or the command running record's loop (hooks) */
	struct cli_rec_opts co; /* the options walk mode takes too */
	bool live, count;
	uint64_t sample_bytes;	    /* the mean to start with (0: exact) */
	uint64_t min_sample_bytes; /* the narrowest the budget may pick */
	double max_overhead; /* fraction of the target's CPU time; 0 = off */
	bool max_overhead_given;
	bool sample_bytes_given;
	const char **probes;
	size_t nprobes, probes_cap;
	const char **probe_frees; /* --probe-free */
	size_t nprobe_frees, probe_frees_cap;
	uint64_t interval_ns; /* --interval: one file per interval (0: one file at the end) */
	unsigned keep;	      /* --keep: files kept (0: all) */
	uint64_t interval_origin_ns; /* --interval-origin: the grid's (0: the start) */
};

struct ms_probes;
struct cli_interval_files;
/*
 * The closing summary on stderr. pr: the probes (NULL if none went in);
 * verify_note and verified_ok: the check after detach; ivf: --interval's
 * files (NULL without).
 */
void rec_print_summary(const struct rec_opts *o, const struct ms_rec_table *t,
		       struct ms_probes *pr, const struct ms_rec_counts *rec,
		       const struct ms_rec_end *oc, const struct ms_rec_meter *m,
		       const char *verify_note, int verified_ok,
		       const struct cli_interval_files *ivf);
/*
 * The file's subtitle: the same totals as the summary, what they rest on,
 * and a warning when that is few samples. Allocated.
 */
char *rec_file_subtitle(const struct rec_opts *o, const struct ms_rec_totals *tot,
			uint64_t wall_ns, const struct ms_rec_budget *b);

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
