/* SPDX-License-Identifier: MIT */
/* unwind: private structures shared by the backends, the dispatcher and the symbolizer. */
#ifndef MEMSPY_UNWIND_INT_H
#define MEMSPY_UNWIND_INT_H

#include "unwind/unwind.h"
#include "attach/attach.h"

#include <elfutils/libdwfl.h>
#include <stdio.h>

struct ms_unwinder;

/* One backend. priv is the backend's own state, owned by it. */
struct ms_unwind_ops {
	const char *name;
	int (*init)(struct ms_unwinder *u, struct ms_error *err);
	int (*refresh)(struct ms_unwinder *u);
	void (*fini)(struct ms_unwinder *u);
	/* Called with max >= 2 and pcs[0] already set to regs->rip (*n == 1). */
	int (*unwind)(struct ms_unwinder *u, const struct ms_stack_copy *s, ms_raddr_t *pcs,
		      size_t max, size_t *n);
};

struct ms_unwinder {
	pid_t pid;
	enum ms_unwind_backend backend;
	const struct ms_unwind_ops *ops;
	void *priv;
	FILE *dump; /* MEMSPY_UNWIND_DUMP: every copy unwound is written here */
};

extern const struct ms_unwind_ops ms_unwind_dwfl_ops;
extern const struct ms_unwind_ops ms_unwind_libunwind_ops;
extern const struct ms_unwind_ops ms_unwind_fp_ops;

/*
 * The registers in DWARF order for x86-64 (psABI 3.6.2: rax, rdx, rcx, rbx,
 * rsi, rdi, rbp, rsp, r8-r15), then the return-address column 16, which
 * holds rip in the first frame. libunwind numbers them the same way.
 */
#define MS_UNWIND_NREGS 17
/* Verification mode compares walks up to this many frames. */
#define MS_UNWIND_VERIFY_MAX 1024
void ms_unwind_regs_dwarf(const struct user_regs_struct *r, uint64_t out[MS_UNWIND_NREGS]);

/*
 * Reads the 8-byte word at addr from the copy, else from s->fallback.
 * 0, or -EFAULT when neither has it (never touches the live stack otherwise).
 */
int ms_unwind_read_word(const struct ms_stack_copy *s, ms_raddr_t addr, uint64_t *out);
/* Notes a read of the word at addr in s->use (non-NULL): served by the copy, or not. */
void ms_unwind_note_read(const struct ms_stack_copy *s, ms_raddr_t addr, bool in_copy);

/*
 * A Dwfl with pid's modules reported (files opened through
 * /proc/PID/map_files, then /proc/PID/root) and every main ELF opened now,
 * so it outlives the process. NULL and err filled on failure.
 */
Dwfl *ms_unwind_dwfl_open(pid_t pid, bool add, Dwfl *existing, struct ms_error *err);

/*
 * perfmap.c: names of generated code from the process's /tmp/perf-PID.map
 * (read as it grows; checks in perfmap.c). lookup returns the name of the
 * latest line whose range holds pc, valid until the next lookup re-reads a
 * replaced file or ms_perfmap_free; NULL when none (or no usable file).
 */
struct ms_perfmap;
struct ms_perfmap *ms_perfmap_new(pid_t pid);
const char *ms_perfmap_lookup(struct ms_perfmap *m, uint64_t pc);
const char *ms_perfmap_module(const struct ms_perfmap *m); /* "perf-PID.map" */
void ms_perfmap_free(struct ms_perfmap *m);

/*
 * MEMSPY_UNWIND_DUMP=FILE (unwind_dump.c): the copies an unwinder is given,
 * written for bench/unwind_replay. open/close are no-ops without the variable.
 */
void ms_unwind_dump_open(struct ms_unwinder *u);
void ms_unwind_dump_write(struct ms_unwinder *u, const struct ms_stack_copy *s);
void ms_unwind_dump_close(struct ms_unwinder *u);

/* One copy read back from a dump; data is owned by the array. */
struct ms_unwind_dump_rec {
	struct user_regs_struct regs;
	uint64_t addr;
	size_t len;
	uint8_t *data;
	bool at_entry;
};
/* Reads a whole dump into *out (a truncated last record is dropped). 0 or -1. */
int ms_unwind_dump_load(const char *path, struct ms_unwind_dump_rec **out, size_t *n);
void ms_unwind_dump_free(struct ms_unwind_dump_rec *v, size_t n);

#endif
