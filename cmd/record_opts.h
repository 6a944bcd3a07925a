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
