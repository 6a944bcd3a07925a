/* SPDX-License-Identifier: MIT */
/* cmd: subcommands and the helpers they share. The only code that exits. */
#ifndef MEMSPY_CMD_H
#define MEMSPY_CMD_H

#include "common/common.h"

/* Each subcommand gets argv with argv[0] = its own name; returns an exit code. */
int cmd_record(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_top(int argc, char **argv);

/* Usage error: "memspy <cmd>: <message>" + "Try 'memspy <cmd> --help'." Returns 64. */
int cli_usage_error(const char *cmd, const char *fmt, ...) MS_PRINTF(2, 3);
/* Parses a positive pid; 0 on success. */
int cli_parse_pid(const char *s, pid_t *out);
/* --pid ARG for cmd: 0 with *out set, or a usage error printed and MS_EXIT_USAGE. */
int cli_opt_pid(const char *cmd, const char *arg, pid_t *out);
/*
 * After getopt_long (optstring starting with ':', opterr = 0): the usage
 * error for what it returned in c (':' a missing value, '?' an unknown
 * option), or, with c == -1, for an argument left over. Returns
 * MS_EXIT_USAGE, or 0 when c == -1 and nothing is left over.
 */
int cli_getopt_error(const char *cmd, int c, int argc, char **argv);
/* Parses a duration such as "10", "10s", "500ms", "2m" into nanoseconds; 0 on success. */
int cli_parse_duration(const char *s, uint64_t *ns);
/* Parses a byte count such as "512k", "4M", "65536"; 0 on success. */
int cli_parse_bytes(const char *s, uint64_t *bytes);
/* Prints err as "memspy: <msg>" and "hint: <hint>" (when there is one). */
void cli_report(const struct ms_error *err);
/*
 * Says why a recording ended early, before what was collected is written:
 * waiting for pid failed (wait_error, a negative code, 0 = no), or the
 * target exited or was killed (exited, with its wait status).
 */
void cli_report_early_end(pid_t pid, int wait_error, bool exited, int status);
/* The command line as one string (for titles); static storage. */
const char *cli_command_line(void);

struct ms_proc;
struct ms_attach_opts;
/*
 * Seizes pid for subcommand cmd. On failure prints what failed and the
 * diagnosis ("memspy: ...", "hint: ...") and returns the exit code to use
 * (MS_EXIT_FAILED); 0 on success with *out set.
 */
int cli_attach(const char *cmd, pid_t pid, const struct ms_attach_opts *opts,
	       struct ms_proc **out);

#endif
