/* SPDX-License-Identifier: MIT */
/*
 * memspy record --interval D, the command's side: the options, the files'
 * names from a pattern ({n}, {time}, {pid}), --keep N removing the oldest,
 * and what is said about each file. The intervals themselves (the grid,
 * each one's view of the table) are record/'s (ms_rec_interval_*). Each
 * file holds what was allocated in its interval and what of the
 * recording's sampled allocations was still live at its end, so two files
 * can be compared (go tool pprof -diff_base A B).
 */
#ifndef MEMSPY_RECORD_INTERVAL_H
#define MEMSPY_RECORD_INTERVAL_H

#include "cmd/record_int.h"

#include <stdio.h>

#define MS_REC_INTERVAL_MIN_NS 1000000000ull /* shorter would mostly measure the writing */

/* --interval D: 0 with *ns set, or a usage error printed and MS_EXIT_USAGE. */
int cli_interval_opt(const char *cmd, const char *arg, uint64_t *ns);
/*
 * --interval-origin NS: the grid's origin, a CLOCK_MONOTONIC instant in ns
 * (--subprocesses gives its recorders its own). 0 with *ns set, or a usage
 * error printed and MS_EXIT_USAGE.
 */
int cli_interval_opt_origin(const char *cmd, const char *arg, uint64_t *ns);
/* --keep N (N >= 1): 0 with *keep set, or a usage error printed and MS_EXIT_USAGE. */
int cli_interval_opt_keep(const char *cmd, const char *arg, unsigned *keep);
/*
 * Checks the options together once parsed: the name pattern (placeholders
 * known; {n} or {time} with --interval, none without), --keep only with
 * --interval. interval_ns 0: no --interval. Returns 0, or prints a usage
 * error and returns MS_EXIT_USAGE.
 */
int cli_interval_check(const char *cmd, const char *pattern, uint64_t interval_ns,
		       unsigned keep);
/*
 * The file name for interval n ending at real time t (seconds since the
 * epoch, shown in UTC as 20261202T101500Z) of process pid. Allocated.
 */
char *cli_interval_name(const char *pattern, unsigned n, time_t t, pid_t pid);

/*
 * Checks that the first file of pattern can be written (a temporary file
 * next to it, removed at once), before memspy attaches to anything. 0 or a
 * negative code with err filled.
 */
int cli_interval_probe_dir(const char *pattern, pid_t pid, struct ms_error *err);

/*
 * What is said of one interval's file, one process's or the merged one of
 * --subprocesses (nproc > 0: the processes in it). Plain data.
 */
struct cli_interval_fig {
	unsigned n;			   /* its number on the grid */
	uint64_t from_real_ns, duration_ns; /* its start (CLOCK_REALTIME) and length */
	uint64_t live_bytes, live_count;   /* still live at its end, since the recording began */
	uint64_t alloc_bytes, alloc_count; /* allocated in it */
	uint64_t samples;		   /* one process: the samples allocated in it */
	size_t nproc;			   /* --subprocesses: processes in the file, else 0 */
	uint64_t unfollowed; /* sampled blocks not followed to their free, so far (0: unknown) */
};
/*
 * The subtitle of fig's file: the interval (number, UTC times, length),
 * what was allocated in it and what is live at its end; live: the file's
 * single view is the live one; how: what the figures rest on. Allocated.
 */
char *cli_interval_fig_subtitle(const struct cli_interval_fig *fig, bool live, const char *how);
/*
 * The file's subtitle: the interval (number, UTC times, length), what was
 * allocated in it and what is live at its end. live: the file's single
 * view is the live one. mean: the sampling mean in force (0: exact).
 * Allocated.
 */
char *cli_interval_subtitle(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    uint64_t now_ns, bool live, uint64_t mean);
/*
 * For the progress line: " | interval N, next file in 12 s" into buf.
 * Returns buf.
 */
const char *cli_interval_progress(const struct ms_rec_interval *iv, uint64_t now_ns, char *buf,
				  size_t size);

struct cli_interval_files; /* opaque */

/* The files of a recording of pid, named from pattern (copied). keep 0: keep every file. */
struct cli_interval_files *cli_interval_files_new(const char *pattern, unsigned keep, pid_t pid);
/* NULL is a no-op. */
void cli_interval_files_free(struct cli_interval_files *f);
/*
 * Opens the file of iv's current interval (atomically: a temporary file
 * renamed by ms_afile_commit). The name is the pattern expanded for now. 0
 * or a negative code with err filled.
 */
int cli_interval_files_open(struct cli_interval_files *f, const struct ms_rec_interval *iv,
			    struct ms_afile *af, struct ms_error *err);
/* The same for interval n (--subprocesses' merged files). */
int cli_interval_files_open_n(struct cli_interval_files *f, unsigned n, struct ms_afile *af,
			      struct ms_error *err);
/*
 * iv's current interval ends at now_ns (before ms_rec_interval_next):
 * written says whether its file was committed (err says why not, when it
 * was not). Prints where it went (unless quiet) and removes the oldest
 * files beyond --keep. cpu_ns: memspy's CPU spent writing it. dropped: the
 * probes' count so far of sampled blocks whose free cannot be seen (their
 * in-target pointer table was full); a rise is warned of, since those
 * blocks count as live in this file and every later one.
 */
void cli_interval_files_done(struct cli_interval_files *f, const struct ms_rec_interval *iv,
			     const struct ms_rec_table *t, uint64_t now_ns, bool written,
			     const struct ms_error *err, uint64_t cpu_ns, uint64_t dropped,
			     bool quiet);
/* The same from fig's figures (cli_interval_files_done's, for any file). */
void cli_interval_files_note(struct cli_interval_files *f, const struct cli_interval_fig *fig,
			     bool written, const struct ms_error *err, uint64_t cpu_ns, bool quiet);
/*
 * For the summary: the files written, kept and removed, and failures, to
 * print after "memspy: wrote " (allocated).
 */
char *cli_interval_files_summary(const struct cli_interval_files *f);
/* What writing the files cost memspy (CPU ns), outside the overhead budget. */
uint64_t cli_interval_files_cpu_ns(const struct cli_interval_files *f);
/* Intervals whose file was written, and whose file could not be. */
unsigned cli_interval_files_written(const struct cli_interval_files *f);
unsigned cli_interval_files_failed(const struct cli_interval_files *f);

#endif
