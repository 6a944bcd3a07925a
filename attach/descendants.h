/* SPDX-License-Identifier: MIT */
/*
 * attach/descendants: a process's descendants and their names, read from
 * /proc without attaching (for `record --subprocesses`, `dump
 * --subprocesses` and the hint a master process gets without it).
 */
#ifndef MEMSPY_DESCENDANTS_H
#define MEMSPY_DESCENDANTS_H

#include "common/common.h"

#include <sys/types.h>

/*
 * The processes whose parent is one of known[0..nknown) (or a child of
 * those, to any depth), in ascending pid order, excluding known[] itself
 * and `exclude` and its descendants (memspy itself, when it runs under the
 * target). *out is malloc'd (the caller frees it); returns how many.
 */
size_t ms_descendants(const pid_t *known, size_t nknown, pid_t exclude, pid_t **out);
/* The direct children of pid, as ms_descendants. */
size_t ms_children(pid_t pid, pid_t exclude, pid_t **out);
/*
 * What a person calls process pid: its command line as it shows it now (a
 * server that rewrites its argv, "nginx: worker process", is named so),
 * arguments joined by spaces, else its comm; ';' and control characters
 * become ' ' (a frame name in folded stacks), at most 96 bytes. Malloc'd.
 */
char *ms_proc_title(pid_t pid);
/* utime + stime of pid from /proc/PID/stat, in clock ticks; 0 when unreadable. */
uint64_t ms_proc_cpu_ticks(pid_t pid);
/* The TracerPid of pid (0: none), or -1 when unreadable (gone). */
pid_t ms_proc_tracer(pid_t pid);

#endif
