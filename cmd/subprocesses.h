/* SPDX-License-Identifier: MIT */
/*
 * --subprocesses for record and dump (cmd/record_subprocesses.c,
 * cmd/dump_subprocesses.c), and the hint a process whose children do the
 * work gets without it.
 */
#ifndef MEMSPY_SUBPROCESSES_H
#define MEMSPY_SUBPROCESSES_H

#include "common/common.h"

#include <stdio.h>
#include <sys/types.h>

/* Is "--subprocesses" among argv's options (before a "--")? */
bool cli_has_subprocesses(int argc, char **argv);
/*
 * memspy record --subprocesses: the process and all its descendants, those
 * there at the start and those forked or exec'd during the recording, each
 * recorded by a memspy record of its own (its probes, removal, check and
 * watchdog), merged into one profile with a root frame per process.
 */
int cmd_record_subprocesses(int argc, char **argv);
/* memspy dump --subprocesses: each process's report and their sum. */
int cmd_dump_subprocesses(int argc, char **argv);
/*
 * After a recording of pid without --subprocesses that found little
 * (samples: what it recorded): when pid has child processes that used
 * more CPU than it did (in all, as /proc counts it), or it recorded
 * nothing, prints to f which ones and that --subprocesses records them.
 */
void ms_subprocess_hint(FILE *f, pid_t pid, uint64_t samples);

#endif
