/* SPDX-License-Identifier: MIT */
/*
 * Options both recording modes take (probe mode, cmd/record.c, and walk
 * mode, cmd/record_walk.c): one validator and one message per option. Each
 * returns 0 with *out set, or prints a usage error for cmd and returns
 * MS_EXIT_USAGE.
 */
#ifndef MEMSPY_RECORD_OPTS_H
#define MEMSPY_RECORD_OPTS_H

#include "cmd/cmd.h"
#include "output/output.h"
#include "unwind/unwind.h"

#include <getopt.h>
#include <stdio.h>

/*
 * The options both recording modes take, one table and one parser: each
 * mode's getopt table starts with CLI_REC_LONG_OPTS and its own option
 * values start at CLI_OPT_REC_OWN; its switch hands every option to
 * cli_rec_opt() first.
 */
enum {
	CLI_OPT_STACK_BYTES = 256,
	CLI_OPT_UNWINDER,
	CLI_OPT_LINES,
	CLI_OPT_MODE, /* each mode checks its own name (cli_rec_opt leaves it) */
	CLI_OPT_REC_OWN,
};

#define CLI_REC_SHORT_OPTS ":p:o:f:d:qvh"
#define CLI_REC_LONG_OPTS                                                                          \
	{"pid", required_argument, NULL, 'p'}, {"output", required_argument, NULL, 'o'},          \
	    {"format", required_argument, NULL, 'f'},                                              \
	    {"duration", required_argument, NULL, 'd'},                                            \
	    {"stack-bytes", required_argument, NULL, CLI_OPT_STACK_BYTES},                         \
	    {"unwinder", required_argument, NULL, CLI_OPT_UNWINDER},                               \
	    {"lines", no_argument, NULL, CLI_OPT_LINES},                                           \
	    {"mode", required_argument, NULL, CLI_OPT_MODE}, {"quiet", no_argument, NULL, 'q'},   \
	    {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'}

/* What the shared options set; cli_rec_opts_init() gives the defaults. */
struct cli_rec_opts {
	pid_t pid;
	const char *out_path;
	char *out_default; /* out_path when memspy named the file */
	enum ms_out_format fmt;
	bool fmt_given;
	uint64_t duration_ns; /* 0: until Ctrl-C or the target exits */
	uint64_t stack_bytes;
	enum ms_unwind_backend unwinder;
	bool lines, quiet;
	unsigned verbose; /* -v given this many times */
	bool help;	  /* -h: print the help and return 0 */
};

void cli_rec_opts_init(struct cli_rec_opts *co);
void cli_rec_opts_free(struct cli_rec_opts *co);
/*
 * Option c (getopt_long's value, arg its argument): 0 when it was one of
 * the shared options and taken, 1 when it is not one (the mode's own, or
 * getopt's ':' and '?'), else the exit code of a usage error.
 */
int cli_rec_opt(const char *cmd, int c, const char *arg, struct cli_rec_opts *co);
/* After the options: --pid is required (example: a command line that shows how). */
int cli_rec_opts_need_pid(const char *cmd, const struct cli_rec_opts *co, const char *example);
/*
 * -o defaults to memspy-PID<infix>.<the format's extension>, the format to
 * the file name's. 0 or an exit code.
 */
int cli_rec_opts_output(const char *cmd, struct cli_rec_opts *co, const char *infix);

/*
 * Help: one line per option, for every command's --help (record, its walk
 * mode, top, dump), in one layout: the option at column 2 ("--long" alone
 * under "-x, --long"), its text from column 25 wrapped before column 80.
 */
void cli_help_opt(FILE *f, const char *opt, const char *text);
/* The options several commands take, each with one text (cmd/record_opts.c's table). */
enum cli_help_id {
	CLI_HELP_PID,
	CLI_HELP_FORMAT,
	CLI_HELP_DURATION,
	CLI_HELP_SAMPLE_BYTES,
	CLI_HELP_MAX_OVERHEAD,
	CLI_HELP_EXACT,
	CLI_HELP_STACK_BYTES,
	CLI_HELP_UNWINDER,
	CLI_HELP_LINES,
	CLI_HELP_PROBE,
	CLI_HELP_PROBE_FREE,
	CLI_HELP_QUIET,
	CLI_HELP_HELP,
};
void cli_help_shared(FILE *f, enum cli_help_id id);

int cli_opt_output(const char *cmd, const char *arg, const char **out);
int cli_opt_format(const char *cmd, const char *arg, enum ms_out_format *out);
int cli_opt_duration(const char *cmd, const char *arg, uint64_t *ns);
int cli_opt_stack_bytes(const char *cmd, const char *arg, uint64_t *bytes);
int cli_opt_unwinder(const char *cmd, const char *arg, enum ms_unwind_backend *out);
/*
 * --max-overhead PCT: "1", "1%", "0.5%" (a share of the target's CPU time,
 * above 0 and at most 100), or "0"/"off" to disable. *frac is 0.01 for 1%,
 * 0 when disabled.
 */
int cli_opt_max_overhead(const char *cmd, const char *arg, double *frac);

#endif
