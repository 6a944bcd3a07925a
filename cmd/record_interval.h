/* SPDX-License-Identifier: MIT */
/*
 * memspy record --interval D: one file per interval for long leak hunts.
 * Names come from a pattern ({n}, {time}, {pid}); --keep N removes the
 * oldest. Each file holds what was allocated in its interval and what of
 * the recording's sampled allocations was still live at its end, so two
 * files can be compared (go tool pprof -diff_base A B).
 */
#ifndef MEMSPY_RECORD_INTERVAL_H
#define MEMSPY_RECORD_INTERVAL_H

#include "cmd/record_int.h"

#include <stdio.h>

#define MS_REC_INTERVAL_MIN_NS 1000000000ull /* shorter would mostly measure the writing */

/* --interval D: 0 with *ns set, or a usage error printed and MS_EXIT_USAGE. */
int ms_rec_interval_opt(const char *cmd, const char *arg, uint64_t *ns);
/* --keep N (N >= 1): 0 with *keep set, or a usage error printed and MS_EXIT_USAGE. */
int ms_rec_interval_opt_keep(const char *cmd, const char *arg, unsigned *keep);
/*
 * Checks the options together once parsed: the name pattern (placeholders
 * known; {n} or {time} with --interval, none without), --keep only with
 * --interval. interval_ns 0: no --interval. Returns 0, or prints a usage
 * error and returns MS_EXIT_USAGE.
 */
int ms_rec_interval_check(const char *cmd, const char *pattern, uint64_t interval_ns,
			  unsigned keep);
/*
 * The file name for interval n ending at real time t (seconds since the
 * epoch, shown in UTC as 20261202T101500Z) of process pid. Allocated.
 */
char *ms_rec_interval_name(const char *pattern, unsigned n, time_t t, pid_t pid);

/*
 * Checks that the first file of pattern can be written (a temporary file
 * next to it, removed at once), before memspy attaches to anything. 0 or a
 * negative code with err filled.
 */
int ms_rec_interval_probe_dir(const char *pattern, pid_t pid, struct ms_error *err);

struct ms_rec_interval; /* opaque */

/*
 * Starts the intervals at start_ns (CLOCK_MONOTONIC; the recording's
 * start). pattern is copied. keep 0: keep every file.
 */
struct ms_rec_interval *ms_rec_interval_new(const char *pattern, uint64_t every_ns,
					    unsigned keep, pid_t pid, uint64_t start_ns);
void ms_rec_interval_free(struct ms_rec_interval *iv);

/* When the current interval ends (CLOCK_MONOTONIC ns). */
uint64_t ms_rec_interval_end(const struct ms_rec_interval *iv);
/* The current interval's number (from 1) and start (CLOCK_MONOTONIC ns). */
unsigned ms_rec_interval_number(const struct ms_rec_interval *iv);

/*
 * Stack i of t as the current interval's file shows it: samples, bytes and
 * count are what was allocated since the interval began; the live figures
 * are the recording's (everything sampled since it started and not freed).
 */
void ms_rec_interval_stack(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			   size_t i, struct ms_rec_stack *out);
/* The same for the totals of t (see ms_rec_table_totals). */
void ms_rec_interval_totals(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    struct ms_rec_totals *out);
/*
 * The file's subtitle: the interval (number, UTC times, length), what was
 * allocated in it and what is live at its end. live: the file's single
 * view is the live one. mean: the sampling mean in force (0: exact).
 * Allocated.
 */
char *ms_rec_interval_subtitle(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			       uint64_t now_ns, bool live, uint64_t mean);
/* pprof's time_nanos and duration_nanos of the current interval ending at now_ns. */
void ms_rec_interval_times(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t *time_ns,
			   uint64_t *duration_ns);

/*
 * Opens the current interval's file (atomically: a temporary file renamed
 * by ms_afile_commit). The name is the pattern expanded for now. 0 or a
 * negative code with err filled.
 */
int ms_rec_interval_open(struct ms_rec_interval *iv, struct ms_afile *af, struct ms_error *err);
/*
 * Ends the current interval at now_ns: written says whether its file was
 * committed (err says why not, when it was not). Prints where it went
 * (unless quiet), removes the oldest files beyond --keep, and starts the
 * next interval from t's figures. cpu_ns: memspy's CPU spent writing it.
 * dropped: the probes' count so far of sampled blocks whose free cannot be
 * seen (their in-target pointer table was full); a rise is warned of, since
 * those blocks count as live in this file and every later one.
 */
void ms_rec_interval_done(struct ms_rec_interval *iv, const struct ms_rec_table *t,
			  uint64_t now_ns, bool written, const struct ms_error *err,
			  uint64_t cpu_ns, uint64_t dropped, bool quiet);
/*
 * For the progress line: " | interval N, next file in 12 s" into buf.
 * Returns buf.
 */
const char *ms_rec_interval_progress(const struct ms_rec_interval *iv, uint64_t now_ns,
				     char *buf, size_t size);
/*
 * For the summary: the files written, kept and removed, and failures, to
 * print after "memspy: wrote " (allocated).
 */
char *ms_rec_interval_summary(const struct ms_rec_interval *iv);
/* What writing the files cost memspy (CPU ns), outside the overhead budget. */
uint64_t ms_rec_interval_cpu_ns(const struct ms_rec_interval *iv);
/* Intervals whose file was written, and whose file could not be. */
unsigned ms_rec_interval_written(const struct ms_rec_interval *iv);
unsigned ms_rec_interval_failed(const struct ms_rec_interval *iv);

#endif
