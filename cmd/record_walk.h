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

#endif
