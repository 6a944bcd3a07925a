/* SPDX-License-Identifier: MIT */
/*
 * unwind: from registers plus a copy of the top of a thread's stack to a list
 * of PCs (elfutils, libunwind or frame pointers), and from PCs to frames
 * (function, inlined frames, file:line, module) with libdwfl, cached per PC.
 */
#ifndef MEMSPY_UNWIND_H
#define MEMSPY_UNWIND_H

#include "common/common.h"

#include <sys/user.h>

/* ============================== unwinding ============================== */

enum ms_unwind_backend {
	MS_UNWIND_DWFL,	     /* elfutils dwfl_attach_state over the copy (default, CFI) */
	MS_UNWIND_LIBUNWIND, /* libunwind remote, accessors served from the copy (CFI) */
	MS_UNWIND_FP, /* frame-pointer walk on the copy (fast; needs -fno-omit-frame-pointer) */
};

/* "elfutils" or "dwfl", "libunwind", "fp" -> *out. 0 or -EINVAL. */
int ms_unwind_backend_from_name(const char *name, enum ms_unwind_backend *out);
/* "elfutils", "libunwind", "fp". Static storage. */
const char *ms_unwind_backend_name(enum ms_unwind_backend b);

struct ms_unwinder; /* opaque */

/*
 * An unwinder for the threads of pid. Reports pid's modules (ELF files are
 * opened through /proc/PID/map_files, /proc/PID/root as the fallback;
 * debuginfod is never contacted). pid must be alive and traceable (ptrace
 * access permission is enough; no stop is needed). NULL on failure with err
 * filled.
 */
struct ms_unwinder *ms_unwinder_new(pid_t pid, enum ms_unwind_backend b, struct ms_error *err);
/* Re-reads the target's modules (after dlopen/dlclose). 0 or -errno. */
int ms_unwinder_refresh(struct ms_unwinder *u);
enum ms_unwind_backend ms_unwinder_backend(const struct ms_unwinder *u);
/* NULL is a no-op. */
void ms_unwinder_free(struct ms_unwinder *u);

/*
 * What a walk read of a stack copy (filled by ms_unwind when asked for), in
 * bytes from the copy's addr: how deep the copy has to reach for it.
 */
struct ms_stack_use {
	size_t used;   /* the end of the highest word read from the copy */
	size_t beyond; /* the end of the lowest word asked for above the copy's end; 0: none */
};

/*
 * What one thread looked like: its registers and a copy of [addr, addr+len)
 * of its stack, normally addr == regs->rsp. Everything is borrowed.
 */
struct ms_stack_copy {
	const struct user_regs_struct *regs;
	const uint8_t *data;
	size_t len;
	ms_raddr_t addr;
	/*
	 * Optional: serves reads outside the copy. Only valid while the thread
	 * is stopped; NULL for copies taken while it ran (ring mode): then the
	 * live stack is never read and the walk ends where the copy ends.
	 */
	const struct ms_reader *fallback;
	/*
	 * True when rip is the first instruction of a function (a probe at an
	 * allocator's entry): [rsp] holds the return address and rbp is still
	 * the caller's. The frame-pointer walk needs to know; CFI does not.
	 */
	bool at_entry;
	/* Optional: set by ms_unwind to what its walk read of the copy. */
	struct ms_stack_use *use;
};

/*
 * Unwinds s into pcs[0..*n). pcs[0] = regs->rip; later entries are return
 * addresses (subtract 1 before looking them up, or pass is_return_address
 * to ms_symbolize). At most max entries. Returns 0 whenever at least one
 * PC was produced, even when the walk stopped early (copy too short,
 * missing CFI, hostile data): a partial stack is a normal result. -EINVAL
 * for a bad argument. The target's stack is never read except through
 * s->fallback. Unwind tables come from the module files (elfutils) or from
 * the target's read-only file mappings (libunwind, which looks them up in
 * memory). Backends: elfutils is the default: a table of CFI rows compiled
 * from libdw's answers, once per PC, walks ~13 frames in ~0.5 us; libdw
 * itself (~8 us for 13 frames) walks what the table cannot express
 * (unwind_cfi.h); libunwind ~46 us (Debian's libunwind makes ~2 rt_sigprocmask calls per
 * frame); fp ~0.1 us, but only correct where every frame keeps rbp. When
 * a thread is stopped mid-function in code without frame pointers (a libc
 * syscall wrapper), fp misses that function's caller; CFI does not.
 * Not thread-safe: one unwinder per thread, and the libunwind backend
 * from one thread only.
 */
int ms_unwind(struct ms_unwinder *u, const struct ms_stack_copy *s, ms_raddr_t *pcs, size_t max,
	      size_t *n);

/* ============================= symbolising ============================= */

struct ms_symbolizer; /* opaque */

/*
 * A symboliser for pid. It reports pid's modules and opens every ELF file
 * right away while the process is alive, then keeps them: symbolising
 * keeps working after the target exited (create it at attach time).
 * Separate debug files are found by build id or debuglink under
 * /usr/lib/debug (and MEMSPY_DEBUGINFO_PATH), MiniDebugInfo is read, and
 * debuginfod is asked only when allowed (ms_symbolizer_set_debuginfod).
 * NULL on failure with err filled.
 */
struct ms_symbolizer *ms_symbolizer_new(pid_t pid, struct ms_error *err);
/* Adds modules mapped since (dlopen); existing ones are kept. 0 or -errno. */
int ms_symbolizer_refresh(struct ms_symbolizer *s);
/* NULL is a no-op. */
void ms_symbolizer_free(struct ms_symbolizer *s);

struct ms_sym_frame {
	const char *function;	  /* demangled; "??" when unknown */
	const char *file;	  /* source file, or NULL when there is no line info */
	int line;		  /* 0 when unknown */
	const char *module;	  /* basename of the module ("libc.so.6"), or "??" */
	const char *build_id;	  /* module's build id, lower-case hex; "" when none */
	bool inlined;		  /* an inlined call: its caller is the next frame */
	ms_raddr_t module_offset; /* pc as an ELF address of the module (pc - load bias) */
	ms_raddr_t address;	  /* the address looked up: pc, or pc - 1 for a return address */
};

/*
 * Frames for pc, innermost (inlined) first and the containing function
 * last; always at least one (function "??" when nothing is known).
 * is_return_address: pc came from ms_unwind at index > 0, so pc - 1 is
 * looked up (the call, not the next line). Each distinct (pc,
 * is_return_address) is symbolised once and cached. *frames and their
 * strings are owned by s, valid until ms_symbolizer_free. 0 or -EINVAL.
 */
int ms_symbolize(struct ms_symbolizer *s, ms_raddr_t pc, bool is_return_address,
		 const struct ms_sym_frame **frames, size_t *n);

/*
 * Lets the symboliser fetch missing debug info from the servers in the
 * user's DEBUGINFOD_URLS (bounded, with a progress line on stderr). Off by
 * default: turn it on only where a stall cannot hurt the target (after the
 * recording, the target running). Separate debug files on disk are always used.
 */
void ms_symbolizer_set_debuginfod(struct ms_symbolizer *s, bool allow);

/*
 * When at least 5% of the frames symbolised since creation have no function
 * name: one line saying how many and how to get names for the module with
 * most of them (owned by the caller). NULL otherwise.
 */
char *ms_symbolizer_names_hint(struct ms_symbolizer *s);

/* A module that ms_symbolize has looked addresses up in: its executable mapping. */
struct ms_sym_module {
	const char *path;	     /* the file as the target mapped it */
	const char *build_id;	     /* lower-case hex; "" when none */
	ms_raddr_t start, limit;     /* its executable segment in the target (page bounds) */
	ms_raddr_t file_offset;	     /* file offset mapped at start */
	bool has_symbols;	     /* a symbol table was found (its own, debug file, MiniDebugInfo) */
	bool is_main;		     /* the executable (/proc/PID/exe when the symboliser was made) */
};

/*
 * The modules looked up so far, in the order first used; owned by s, valid
 * until the next ms_symbolize or ms_symbolizer_free. Returns how many.
 */
size_t ms_symbolizer_modules(struct ms_symbolizer *s, const struct ms_sym_module **out);

#endif
