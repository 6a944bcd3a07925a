// SPDX-License-Identifier: MIT
/*
 * record, walk mode: which symbolised frames belong to the allocator, and
 * so which stacks were caught inside it. (The heap read at each heap stop
 * is heapwalk's quick read, heapwalk/quick.c.)
 */
#include "record/walk_int.h"
#include "heapwalk/heapwalk.h"
#include "unwind/unwind.h"

#include <stdlib.h>
#include <string.h>

#define CLASSIFY_DEPTH 48 /* innermost PCs looked at to decide "inside the allocator" */

/* ------------------------------------------------ allocator frames */

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p ? p : "";
}

/*
 * Entry points and glibc internals by name, for libcs without line info
 * (no libc6-dbg) and for allocators linked into the executable.
 */
static const char *const alloc_names[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "pvalloc",
    "cfree",
    "malloc_trim",
    "malloc_usable_size",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
    "__posix_memalign",
    "__libc_reallocarray",
    "_int_malloc",
    "_int_free",
    "_int_realloc",
    "_int_memalign",
    "_mid_memalign",
    "malloc_consolidate",
    "sysmalloc",
    "systrim",
    "mtrim",
    "heap_trim",
    "new_heap",
    "alloc_new_heap",
    "shrink_heap",
    "grow_heap",
    "munmap_chunk",
    "mremap_chunk",
    "tcache_init",
    "tcache_get",
    "tcache_put",
    "tcache_thread_shutdown",
    "arena_get2",
    "arena_get_retry",
    "_int_new_arena",
    "get_free_list",
    "reused_arena",
    "unlink_chunk",
    "ptmalloc_init",
    "malloc_hook_ini",
    "realloc_hook_ini",
    "memalign_hook_ini",
    "_int_free_merge_chunk",
    "_int_free_create_chunk",
    "_int_free_maybe_consolidate",
    "__malloc_arena_thread_freeres",
    "sysmalloc_mmap",
    "sysmalloc_mmap_fallback",
    "malloc_printerr",
    "__malloc_fork_lock_parent",
    "tcache_double_free_verify",
};

bool ms_rec_frame_is_allocator(const char *function, const char *file, const char *module)
{
	const char *m = base_name(module), *f = base_name(file);

	/* Whole-library allocators: every frame inside them is allocator time. */
	if (strstr(m, "jemalloc") || strstr(m, "tcmalloc") || strstr(m, "mimalloc") ||
	    strstr(m, "tbbmalloc") || strstr(m, "snmalloc") || strstr(m, "hoard"))
		return true;
	/* glibc with line info: everything compiled from malloc/ (arena.c is #included). */
	if (!strncmp(m, "libc.so", 7) && (!strcmp(f, "malloc.c") || !strcmp(f, "arena.c") ||
					  !strcmp(f, "hooks.c") || !strcmp(f, "morecore.c")))
		return true;
	if (!function)
		return false;
	if (!strncmp(function, "operator new", 12) || !strncmp(function, "operator delete", 15))
		return true;
	for (size_t i = 0; i < MS_ARRAY_SIZE(alloc_names); i++)
		if (!strcmp(function, alloc_names[i]))
			return true;
	return false;
}

bool ms_rec_module_is_runtime(const char *module)
{
	const char *m = base_name(module);

	return !strncmp(m, "libc.so", 7) || !strncmp(m, "ld-linux", 8) ||
	       !strncmp(m, "linux-vdso", 10) || !strncmp(m, "libpthread", 10) ||
	       !strncmp(m, "libstdc++", 9) || !strncmp(m, "libgcc_s", 8) || !strcmp(m, "??") || !*m;
}

bool ms_rec_stack_in_allocator(struct ms_symbolizer *sym, const ms_raddr_t *pcs, size_t npcs)
{
	for (size_t i = 0; i < npcs && i < CLASSIFY_DEPTH; i++) {
		const struct ms_sym_frame *sf;
		size_t nsf;

		if (ms_symbolize(sym, pcs[i], i > 0, &sf, &nsf) || !nsf)
			continue;
		/* Innermost (inlined) first: the first frame outside the runtime decides. */
		for (size_t j = 0; j < nsf; j++) {
			const char *fn = strcmp(sf[j].function, "??") ? sf[j].function : NULL;

			if (ms_rec_frame_is_allocator(fn, sf[j].file, sf[j].module))
				return true;
			if (!ms_rec_module_is_runtime(sf[j].module))
				return false;
		}
	}
	return false;
}
