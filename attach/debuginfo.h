/* SPDX-License-Identifier: MIT */
/*
 * attach/debuginfo: where memspy's libdwfl users (the unwinder and symboliser,
 * the heap locator, quiesce) find separate debug info: by build id and
 * .gnu_debuglink under /usr/lib/debug and the other places libdwfl knows
 * (MEMSPY_DEBUGINFO_PATH first), MiniDebugInfo (.gnu_debugdata, which libdw
 * decompresses itself), and a debuginfod server only when the user set
 * DEBUGINFOD_URLS and only for lookups that allow it (symbolising, after the
 * target runs again): bounded in time, with a progress line, cached by
 * libdebuginfod. Lives in attach/ because quiesce (attach) uses it too.
 */
#ifndef MEMSPY_DEBUGINFO_H
#define MEMSPY_DEBUGINFO_H

#include "common/common.h"

#include <elfutils/libdwfl.h>

/*
 * Takes DEBUGINFOD_URLS out of reach of libdwfl (remembered, left set to ""),
 * so that nothing goes to the network behind memspy's back. Idempotent and
 * thread-safe; call it first thing in main, before any thread or dwfl.
 */
void ms_debuginfo_init(void);

/* True when the user set DEBUGINFOD_URLS (memspy may ask those servers). */
bool ms_debuginfod_enabled(void);

/*
 * The Dwfl_Callbacks.find_debuginfo of every memspy dwfl user: libdwfl's
 * standard lookup (build id, debuglink, in the callbacks' debuginfo_path),
 * then debuginfod by build id when this thread allows it.
 */
int ms_debuginfo_find(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		      const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
		      char **debuginfo_file_name);

/*
 * For Dwfl_Callbacks.debuginfo_path (&ms_debuginfo_search_path): "+:.debug:"
 * then MEMSPY_DEBUGINFO_PATH (colon-separated roots holding
 * .build-id/xx/rest.debug or mirrored paths), then /usr/lib/debug. Set by
 * ms_debuginfo_init (NULL before: libdwfl's default).
 */
extern char *ms_debuginfo_search_path;

/* Lets this thread's lookups ask debuginfod (default: not). Returns the old value. */
bool ms_debuginfo_allow_network(bool allow);

/*
 * One line for a module whose frames have no names: how to get them
 * (its Debian -dbgsym package from the debug archive, a build-id folder,
 * DEBUGINFOD_URLS; or what debuginfod answered). share: percent of the
 * frames without a name. Owned by the caller.
 */
char *ms_debuginfo_hint(const char *module_path, const char *build_id, unsigned share);

#endif
