// SPDX-License-Identifier: MIT
/*
 * Quiescing: a moment with no thread inside glibc's malloc, for the dump's
 * snapshot. With every thread stopped, each one is unwound (libc's CFI);
 * one with a frame in malloc.c's code may hold an arena lock or be half way
 * through a list update. Only those run on, each until it returns from its
 * outermost allocator frame; the others never move. The return is caught by
 * a one-shot slot in memspy's code page: the return address on the stack is
 * pointed at a slot that makes a getpid() system call (a syscall stop, seen
 * with PTRACE_SYSCALL) and then jumps to the real return address. Nothing
 * in libc is patched and no breakpoint or single-step is armed, so if
 * memspy dies at any moment the thread passes through the slot untraced and
 * carries on: the target comes out unharmed.
 *
 * A thread let out may wait for a lock that a stopped thread holds (a
 * futex wait that does not end): then everything let out is stopped again
 * and the caller falls back to letting the whole process run a moment and
 * stopping it again, and says so.
 */
#include "attach/attach_int.h"
#include "attach/debuginfo.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Return slots in the code page: SLOT_SIZE bytes each, from MS_PAGE_OFF_SLOTS. */
#define SLOT_SIZE 32u
#define NSLOTS ((MS_PAGE_SIZE - MS_PAGE_OFF_SLOTS) / SLOT_SIZE)
#define SLOT_SYSCALL_END 11 /* rip at the slot's syscall stop */
#define SLOT_TARGET 21      /* the 8-byte real return address */
/* Frames looked at per thread, and libc frames allowed before an allocator one. */
#define MAX_FRAMES 48
#define MAX_LEAD_FRAMES 16
/*
 * Bounds on the let-out phase. Leaving malloc takes microseconds; the bounds
 * only keep a thread that cannot leave (a lock held by a stopped thread, a
 * stop signal) from hanging the dump.
 */
#define LIMIT_MS 1000
#define BLOCKED_MS 100

/*
 * The functions of malloc.c (arena.c and hooks.c are included in it), glibc
 * 2.26 to 2.41: the exported ones are in .dynsym; the static ones only in
 * the .symtab of libc's debug file. Without it the unwound chain still
 * reaches an exported one above any static one. Suffixes such as ".cold",
 * ".isra.0" or ".part.0" are matched by the name before the dot.
 *
 * And fork(): it holds every arena lock around the clone, outside malloc's
 * code. A thread stopped there is let out too (its child, if it completes
 * the clone, returns through a copy of the same slot, untraced), else the
 * threads let out of malloc would wait on those locks until given up
 * (measured: a forking thread next to 4 malloc loops made rounds give up
 * again and again, each restarted clone interrupted by the next stop).
 */
static const char *const alloc_funcs[] = {
    "fork", "__libc_fork", "__fork",
    "malloc", "free", "realloc", "calloc", "cfree", "memalign", "aligned_alloc",
    "posix_memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallopt",
    "mallinfo", "mallinfo2", "malloc_stats", "malloc_info", "reallocarray",
    "__libc_malloc", "__libc_free", "__libc_realloc", "__libc_calloc", "__libc_memalign",
    "__libc_valloc", "__libc_pvalloc", "__libc_mallopt", "__libc_mallinfo", "__libc_mallinfo2",
    "__libc_reallocarray", "__posix_memalign", "__malloc_trim", "__malloc_usable_size",
    "__malloc_stats", "__malloc_info", "__libc_freeres_fn", "_mid_memalign",
    "_int_malloc", "_int_free", "_int_realloc", "_int_memalign", "_int_free_merge_chunk",
    "_int_free_create_chunk", "_int_free_maybe_consolidate", "malloc_consolidate", "sysmalloc",
    "sysmalloc_mmap", "sysmalloc_mmap_fallback", "systrim", "mtrim", "heap_trim", "munmap_chunk",
    "mremap_chunk", "unlink_chunk", "malloc_printerr", "int_mallinfo", "ptmalloc_init",
    "malloc_init_state", "tcache_init", "tcache_thread_shutdown", "tcache_get", "tcache_put",
    "arena_get2", "arena_get_retry", "get_free_list", "reused_arena", "_int_new_arena",
    "new_heap", "alloc_new_heap", "grow_heap", "shrink_heap", "detach_arena",
    "remove_from_free_list", "__malloc_arena_thread_freeres", "__malloc_fork_lock_parent",
    "__malloc_fork_unlock_parent", "__malloc_fork_unlock_child", "malloc_hook_ini",
    "realloc_hook_ini", "memalign_hook_ini", "malloc_check", "free_check", "realloc_check",
    "memalign_check", "mem2chunk_check", "top_check", "__malloc_check_init",
    "__libc_malloc_pthread_startup", "do_check_chunk", "do_check_malloc_state",
};

struct range {
	ms_raddr_t lo, hi;
};

struct frame {
	ms_raddr_t pc, sp;
	bool activation;
};

struct ms_quiesce {
	pid_t pid;
	Dwfl *dwfl;
	Dwfl_Module *libc;
	Dwarf_CFI *eh_cfi;    /* libc's .eh_frame, loaded before the pause */
	Dwarf_Addr eh_bias;
	ms_raddr_t libc_lo, libc_hi;
	struct range *r;
	size_t nr;
	bool internal; /* static functions were found (debug file's .symtab) */
	/* The unwind in progress. */
	const struct user_regs_struct *regs;
	struct frame f[MAX_FRAMES];
	size_t nf;
};

/* What a thread is doing with the allocator. */
enum where { W_OUT, W_IN, W_LOST };

struct let {
	pid_t tid;
	ms_raddr_t exit_pc;   /* where its outermost allocator frame returns */
	ms_raddr_t ra_slot;   /* the stack word that holds exit_pc */
	ms_raddr_t slot;      /* its slot in the code page */
	bool running, arrived, gone, in_wait;
	uint64_t wait_since;  /* ns: entered a futex wait */
	unsigned syscalls;
};

/* ---------------------------------------------------------- unwinding */

/*
 * Only libc is reported, with a descriptor memspy opened itself
 * (ms_open_target_file): any other file libdwfl asks for is refused, never
 * looked up by dwfl_linux_proc_find_elf, which opens the target's paths in
 * memspy's mount namespace with a plain open() that a FIFO there blocks for
 * good.
 */
static int find_elf_none(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
			 char **file_name, Elf **elfp)
{
	(void)mod;
	(void)userdata;
	(void)name;
	(void)base;
	*file_name = NULL;
	*elfp = NULL;
	return -1;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = find_elf_none,
    .find_debuginfo = ms_debuginfo_find, /* local only: quiesce never allows the network */
    .debuginfo_path = &ms_debuginfo_search_path,
};

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	return 0; /* threads are only ever named by unwind() */
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	*thread_argp = arg;
	return true;
}

/* The thread is stopped: its live stack is read. */
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct ms_quiesce *q = arg;
	uint64_t v;

	if (ms_mem_read_pid(q->pid, addr, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return false;
	*result = v;
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	const struct ms_quiesce *q = arg;
	const struct user_regs_struct *r = q->regs;
	/* DWARF order: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8-r15, return address. */
	Dwarf_Word v[17] = {r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8,
			    r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip};

	return dwfl_thread_state_registers(thread, 0, 17, v);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct ms_quiesce *q = arg;
	struct frame *f = &q->f[q->nf];
	Dwarf_Addr pc;
	Dwarf_Word sp;

	if (!dwfl_frame_pc(state, &pc, &f->activation))
		return DWARF_CB_ABORT;
	if (q->nf == 0) {
		sp = q->regs->rsp;
	} else if (dwfl_frame_reg(state, 7, &sp) != 0 || sp <= q->f[q->nf - 1].sp) {
		return DWARF_CB_ABORT; /* no stack pointer, or one that does not move up */
	}
	f->pc = pc;
	f->sp = sp;
	q->nf++;
	/* Only libc's frames are unwound further: the first caller outside ends it. */
	if (q->nf >= MAX_FRAMES || pc < q->libc_lo || pc >= q->libc_hi)
		return DWARF_CB_ABORT;
	return DWARF_CB_OK;
}

static bool in_alloc(const struct ms_quiesce *q, ms_raddr_t pc)
{
	size_t lo = 0, hi = q->nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (pc < q->r[mid].lo)
			hi = mid;
		else if (pc >= q->r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/*
 * Whether libc's .eh_frame describes the instruction at pc. It does not
 * after the system call of clone() and clone3(): glibc ends their CFI
 * before it, so that the child's unwind stops there, and a thread stopped
 * inside clone() is held exactly there (attach lets the call finish).
 * Without libc's .eh_frame (not loaded), libdw decides.
 */
static bool eh_covers(const struct ms_quiesce *q, ms_raddr_t pc)
{
	Dwarf_Frame *frame = NULL;

	if (!q->eh_cfi)
		return true;
	if (dwarf_cfi_addrframe(q->eh_cfi, pc - q->eh_bias, &frame) != 0)
		return false;
	free(frame);
	return true;
}

/*
 * Where the thread is: outside the allocator, inside it with the stack word
 * that holds the return address of its outermost allocator frame, or inside
 * it with no such word found.
 */
static enum where classify(struct ms_quiesce *q, const struct user_regs_struct *regs,
			   ms_raddr_t *exit_pc, ms_raddr_t *ra_slot)
{
	size_t i, last_in = SIZE_MAX;
	uint64_t word;

	q->nf = 0;
	if (regs->rip >= q->libc_lo && regs->rip < q->libc_hi && !eh_covers(q, regs->rip)) {
		/*
		 * No caller can be found from here, and libdw, finding no
		 * .eh_frame entry, would try .debug_frame: it loads and inflates
		 * all of libc's DWARF from the debug file, 100-250 ms inside the
		 * pause. The chain is this one frame, as it was after that load.
		 */
		q->f[0].pc = regs->rip;
		q->f[0].sp = regs->rsp;
		q->f[0].activation = true;
		q->nf = 1;
		ms_debug("quiesce: pc 0x%llx of a thread is outside libc's .eh_frame (inside clone()): "
			 "one frame, not unwound", (unsigned long long)regs->rip);
	} else {
		q->regs = regs;
		dwfl_getthread_frames(q->dwfl, q->pid, frame_cb, q);
		q->regs = NULL;
	}
	if (q->nf == 0)
		return in_alloc(q, regs->rip) ? W_LOST : W_OUT;
	for (i = 0; i < q->nf; i++) {
		/* A return address may be the first byte after the call's function. */
		ms_raddr_t pc = q->f[i].pc - (i > 0 && !q->f[i].activation ? 1 : 0);

		if (in_alloc(q, pc)) {
			last_in = i;
			continue;
		}
		if (last_in != SIZE_MAX)
			break; /* the caller of the outermost allocator frame */
		if (i >= MAX_LEAD_FRAMES || pc < q->libc_lo || pc >= q->libc_hi)
			return W_OUT; /* reached code outside libc before any allocator frame */
	}
	if (last_in == SIZE_MAX)
		return W_OUT;
	if (i >= q->nf || q->f[i].activation)
		return W_LOST; /* the chain ends inside the allocator, or in a signal frame */
	/* The caller's stack pointer is the callee's CFA: the return address is just below. */
	*exit_pc = q->f[i].pc;
	*ra_slot = q->f[i].sp - 8;
	if (ms_mem_read_pid(q->pid, *ra_slot, &word, sizeof(word)) != (ssize_t)sizeof(word) ||
	    word != *exit_pc)
		return W_LOST;
	return W_IN;
}

/* ------------------------------------------------------------- setup */

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool alloc_name(const char *name)
{
	size_t n = strcspn(name, ".");

	for (size_t i = 0; i < MS_ARRAY_SIZE(alloc_funcs); i++)
		if (strlen(alloc_funcs[i]) == n && !strncmp(alloc_funcs[i], name, n))
			return true;
	return false;
}

static bool is_exported(const char *name)
{
	return name[0] != '_' || !strncmp(name, "__libc_", 7);
}

struct ms_quiesce *ms_quiesce_new(pid_t pid, const struct ms_maps *maps, struct ms_error *err)
{
	struct ms_modules mods = {0};
	const struct ms_module *m;
	struct ms_quiesce *q = NULL;
	size_t cap = 0;
	int r, nsym, fd;

	/* An on-call engineer's tool must not block on the network. */
	ms_debuginfo_init();
	r = ms_modules_load(pid, maps, &mods);
	if (r) {
		ms_error_set(err, r, "quiesce: modules of process %d: %s", (int)pid, ms_strerror(r));
		return NULL;
	}
	m = ms_modules_find_name(&mods, "libc.so.6");
	if (!m) {
		ms_error_set(err, -MS_E_NOT_FOUND, "quiesce: process %d has no libc.so.6", (int)pid);
		goto fail;
	}
	q = ms_xcalloc(1, sizeof(*q));
	q->pid = pid;
	q->libc_lo = m->start;
	q->libc_hi = m->end;
	q->dwfl = dwfl_begin(&callbacks);
	if (!q->dwfl) {
		ms_error_set(err, -ENOMEM, "quiesce: dwfl_begin: %s", dwfl_errmsg(-1));
		goto fail;
	}
	/*
	 * Opened here, not by libdwfl: a plain open() of a path the target
	 * controls blocks for good on a FIFO (ms_open_target_file takes
	 * regular files only; through the target's root, only the mapped
	 * inode). libdwfl consumes the descriptor on success.
	 */
	fd = ms_module_open(m);
	if (fd < 0) {
		ms_error_set(err, fd, "quiesce: opening %s: %s", m->open_path, strerror(-fd));
		goto fail;
	}
	dwfl_report_begin(q->dwfl);
	q->libc = dwfl_report_elf(q->dwfl, "libc.so.6", m->open_path, fd, m->bias, false);
	dwfl_report_end(q->dwfl, NULL, NULL);
	if (!q->libc)
		close(fd);
	if (!q->libc) {
		ms_error_set(err, -EIO, "quiesce: reading %s: %s", m->open_path, dwfl_errmsg(-1));
		goto fail;
	}
	if (!dwfl_attach_state(q->dwfl, NULL, pid, &thread_callbacks, q)) {
		ms_error_set(err, -EIO, "quiesce: dwfl_attach_state(%d): %s", (int)pid,
			     dwfl_errmsg(-1));
		goto fail;
	}
	nsym = dwfl_module_getsymtab(q->libc);
	for (int i = 1; i < nsym; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *name = dwfl_module_getsym_info(q->libc, i, &sym, &addr, NULL, NULL, NULL);

		if (!name || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_size ||
		    !alloc_name(name))
			continue;
		if (!is_exported(name) && GELF_ST_BIND(sym.st_info) == STB_LOCAL)
			q->internal = true;
		ms_xgrow((void **)&q->r, &cap, q->nr + 1, sizeof(*q->r));
		q->r[q->nr].lo = addr;
		q->r[q->nr].hi = addr + sym.st_size;
		q->nr++;
	}
	if (!q->nr) {
		ms_error_set(err, -MS_E_NOT_FOUND, "quiesce: no allocator function in %s's symbols",
			     m->path);
		goto fail;
	}
	qsort(q->r, q->nr, sizeof(*q->r), cmp_range);
	/*
	 * Load libc's unwind tables now, with the target running: the first
	 * unwind would otherwise parse .eh_frame inside the pause. A dry run
	 * from malloc's first byte with an unreadable stack caches what it can.
	 */
	{
		Dwarf_Addr bias;
		struct user_regs_struct dry;
		ms_raddr_t x, y;

		q->eh_cfi = dwfl_module_eh_cfi(q->libc, &bias);
		q->eh_bias = bias;
		memset(&dry, 0, sizeof(dry));
		for (size_t i = 0; i < q->nr; i++) {
			dry.rip = q->r[i].lo;
			dry.rsp = 8;
			classify(q, &dry, &x, &y);
		}
	}
	ms_debug("quiesce: %zu allocator functions in libc (%s)", q->nr,
		 q->internal ? "with the static ones" : "exported ones only");
	ms_modules_free(&mods);
	return q;
fail:
	ms_modules_free(&mods);
	ms_quiesce_free(q);
	return NULL;
}

void ms_quiesce_free(struct ms_quiesce *q)
{
	if (!q)
		return;
	if (q->dwfl)
		dwfl_end(q->dwfl);
	free(q->r);
	free(q);
}

/* --------------------------------------------------------- the slots */

/*
 * A one-shot return point: everything a function's caller may rely on
 * after the return is kept (rax and rdx, the callee-saved registers, the
 * flags, which nothing here changes; rcx and r11, which the syscall
 * clobbers, are saved too), and the three words pushed lie below the
 * caller's stack pointer, where the return address was.
 */
static void build_slot(uint8_t *c, ms_raddr_t target)
{
	static const uint8_t code[SLOT_TARGET] = {
	    0x50,			  /* push rax */
	    0x51,			  /* push rcx */
	    0x41, 0x53,			  /* push r11 */
	    0xb8, SYS_getpid, 0, 0, 0,	  /* mov eax, SYS_getpid */
	    0x0f, 0x05,			  /* syscall: the stop memspy waits for */
	    0x41, 0x5b,			  /* pop r11 */
	    0x59,			  /* pop rcx */
	    0x58,			  /* pop rax */
	    0xff, 0x25, 0x00, 0x00, 0x00, 0x00, /* jmp [rip+0] */
	};

	_Static_assert(sizeof(code) == SLOT_TARGET, "slot layout");
	memset(c, 0xcc, SLOT_SIZE);
	memcpy(c, code, sizeof(code));
	memcpy(c + SLOT_TARGET, &target, 8);
}

static int seccomp_mode(pid_t pid)
{
	char path[64], buf[4096];
	const char *v;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
		return -1;
	v = ms_proc_status_field(buf, "Seccomp");
	return v ? atoi(v) : -1;
}

static struct let *find_let(struct let *l, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].tid == tid)
			return &l[i];
	return NULL;
}

/*
 * Slots a thread may still return into, conservatively: any word of a
 * thread's live stack ([rsp, end of its mapping), at most 1 MiB) that points
 * into the slot area. Unwinding finds the ones of threads inside malloc; this
 * also finds a thread whose signal handler runs on top of a malloc an
 * earlier round or a dead memspy redirected. A stale word only costs a slot.
 */
static void mark_stack_refs(struct ms_proc *p, ms_raddr_t page, bool *busy)
{
	const struct ms_maps *maps = ms_proc_maps(p);
	static uint64_t buf[8192];

	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		struct user_regs_struct regs;
		const struct ms_map *m;
		ms_raddr_t a, end;

		if (ms_proc_get_regs(p, ms_proc_thread(p, i), &regs) != 0)
			continue;
		a = regs.rsp & ~7ull;
		m = ms_maps_find(maps, a);
		if (!m)
			continue;
		end = MS_MIN(m->end, a + (1u << 20));
		while (a < end) {
			size_t want = (size_t)MS_MIN((uint64_t)sizeof(buf), end - a);
			ssize_t got = ms_mem_read_pid(ms_proc_pid(p), a, buf, want);

			if (got <= 0)
				break;
			for (size_t k = 0; k < (size_t)got / 8; k++)
				if (buf[k] >= page + MS_PAGE_OFF_SLOTS && buf[k] < page + MS_PAGE_SIZE)
					busy[(buf[k] - page - MS_PAGE_OFF_SLOTS) / SLOT_SIZE] = true;
			a += (size_t)got & ~7ull;
		}
	}
}

/* Test hook (tests/e2e/quiesce_e2e.py diein): memspy SIGKILLs itself at that point. */
static void test_die_at(const char *where)
{
	const char *v = getenv("MEMSPY_TEST_DIE_IN_QUIESCE");

	if (v && !strcmp(v, where))
		raise(SIGKILL);
}

/* Stops every let-out thread that is not parked yet (their stacks stay patched: harmless). */
static void park_all(struct ms_proc *p, struct let *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!l[i].running || l[i].gone)
			continue;
		if (ms_proc_park_thread(p, l[i].tid) == -ESRCH)
			l[i].gone = true;
		l[i].running = false;
	}
}

/* ---------------------------------------------------------------- run */

int ms_quiesce_run(struct ms_quiesce *q, struct ms_proc *p, struct ms_quiesce_stats *st,
		   struct ms_error *err)
{
	size_t n = ms_proc_nthreads(p), nlet = 0, left;
	struct let *l = ms_xcalloc(n ? n : 1, sizeof(*l));
	bool busy[NSLOTS] = {0};
	uint64_t t0 = ms_now_ns(), last_progress;
	pid_t pid = ms_proc_pid(p);
	ms_raddr_t page = 0;
	int rc = 0;
	size_t next_slot = 0, k;
	uint32_t cursor = 0;

	st->rounds++;
	/* Who is inside the allocator? Everyone is stopped. */
	for (size_t i = 0; i < n; i++) {
		struct user_regs_struct regs;
		pid_t tid = ms_proc_thread(p, i);
		ms_raddr_t exit_pc = 0, ra_slot = 0;
		enum where w;

		if (ms_proc_get_regs(p, tid, &regs) != 0)
			continue; /* group-stopped or gone: it cannot be inside malloc's work now */
		w = classify(q, &regs, &exit_pc, &ra_slot);
		if (w == W_LOST) {
			rc = ms_error_set(err, -EAGAIN,
					  "quiesce: thread %d is inside malloc (pc 0x%llx) but the "
					  "return of its allocator call was not found on its stack",
					  (int)tid, (unsigned long long)regs.rip);
			goto out;
		}
		if (w == W_IN) {
			l[nlet].tid = tid;
			l[nlet].exit_pc = exit_pc;
			l[nlet].ra_slot = ra_slot;
			nlet++;
		}
	}
	ms_debug("quiesce: %zu of %zu threads inside malloc (unwound in %.2f ms)", nlet, n,
		 (double)(ms_now_ns() - t0) / 1e6);
	st->threads_let_out = (unsigned)nlet;
	st->let_out_total += (unsigned)nlet;
	if (!nlet)
		goto out;
	if (seccomp_mode(pid) != 0) {
		rc = ms_error_set(err, -EAGAIN,
				  "quiesce: process %d runs under seccomp: the return slots' "
				  "getpid() might not be allowed",
				  (int)pid);
		goto out;
	}
	rc = ms_code_page_get(p, &page, err);
	if (rc) {
		rc = -EAGAIN;
		goto out;
	}
	/* Slots still in use: a thread executing one, or returning into one (a memspy that died). */
	for (size_t i = 0; i < n; i++) {
		struct user_regs_struct regs;

		if (ms_proc_get_regs(p, ms_proc_thread(p, i), &regs) == 0 &&
		    regs.rip >= page + MS_PAGE_OFF_SLOTS && regs.rip < page + MS_PAGE_SIZE)
			busy[(regs.rip - page - MS_PAGE_OFF_SLOTS) / SLOT_SIZE] = true;
	}
	for (size_t i = 0; i < nlet; i++)
		if (l[i].exit_pc >= page + MS_PAGE_OFF_SLOTS && l[i].exit_pc < page + MS_PAGE_SIZE)
			busy[(l[i].exit_pc - page - MS_PAGE_OFF_SLOTS) / SLOT_SIZE] = true;
	mark_stack_refs(p, page, busy);
	/*
	 * Slots are handed out round-robin from a cursor kept in the page, so a
	 * slot is rewritten only after every other one was used: a thread no
	 * scan can see returning into one (its handler on an alternate signal
	 * stack) has that long to pass through it.
	 */
	if (ms_mem_read_pid(pid, page + MS_PAGE_OFF_CURSOR, &cursor, sizeof(cursor)) !=
	    (ssize_t)sizeof(cursor))
		cursor = 0;
	next_slot = cursor % NSLOTS;
	for (size_t i = 0; i < nlet; i++) {
		struct let *t = &l[i];
		uint8_t code[SLOT_SIZE];

		if (t->exit_pc >= page + MS_PAGE_OFF_SLOTS && t->exit_pc < page + MS_PAGE_SIZE &&
		    (t->exit_pc - page - MS_PAGE_OFF_SLOTS) % SLOT_SIZE == 0) {
			t->slot = t->exit_pc; /* it returns into a slot already */
			continue;
		}
		for (k = 0; k < NSLOTS && busy[next_slot]; k++)
			next_slot = (next_slot + 1) % NSLOTS;
		if (k == NSLOTS) {
			rc = ms_error_set(err, -EAGAIN, "quiesce: no free return slot for thread %d",
					  (int)t->tid);
			goto out;
		}
		busy[next_slot] = true;
		cursor = (uint32_t)(next_slot + 1) % NSLOTS;
		rc = ms_proc_write_mem(p, page + MS_PAGE_OFF_CURSOR, &cursor, sizeof(cursor));
		t->slot = page + MS_PAGE_OFF_SLOTS + next_slot * SLOT_SIZE;
		build_slot(code, t->exit_pc);
		/* The slot first, then the stack word that leads there. */
		if (!rc)
			rc = ms_proc_write_mem(p, t->slot, code, sizeof(code));
		if (!rc) {
			uint64_t to = t->slot;

			rc = ms_proc_write_mem(p, t->ra_slot, &to, sizeof(to));
		}
		if (rc) {
			ms_error_set(err, -EAGAIN, "quiesce: patching the return of thread %d: %s",
				     (int)t->tid, ms_strerror(rc));
			rc = -EAGAIN; /* a stack already patched returns through its slot: fine */
			goto out;
		}
		ms_debug("quiesce: thread %d returns to 0x%llx (stack 0x%llx) through slot 0x%llx",
			 (int)t->tid, (unsigned long long)t->exit_pc,
			 (unsigned long long)t->ra_slot, (unsigned long long)t->slot);
	}
	test_die_at("patched");
	for (size_t i = 0; i < nlet; i++) {
		rc = ms_proc_run_syscalls(p, l[i].tid);
		if (rc) {
			ms_error_set(err, -EAGAIN, "quiesce: letting thread %d run: %s",
				     (int)l[i].tid, ms_strerror(rc));
			rc = -EAGAIN;
			park_all(p, l, nlet);
			goto out;
		}
		l[i].running = true;
	}
	test_die_at("running");
	{
		/* Test hook: give the first N rounds up at once (the fallback, slots in flight). */
		const char *v = getenv("MEMSPY_TEST_QUIESCE_GIVE_UP");

		if (v && st->rounds <= (unsigned)atoi(v)) {
			park_all(p, l, nlet);
			rc = ms_error_set(err, -EAGAIN, "quiesce: given up (test hook)");
			goto out;
		}
	}
	left = nlet;
	last_progress = ms_now_ns();
	while (left) {
		struct ms_event ev;
		struct let *t;
		uint64_t now;

		rc = ms_proc_wait(p, 5, &ev);
		if (rc) {
			ms_error_set(err, rc, "quiesce: waiting for process %d: %s", (int)pid,
				     ms_strerror(rc));
			park_all(p, l, nlet);
			goto out;
		}
		now = ms_now_ns();
		t = find_let(l, nlet, ev.tid);
		switch (ev.kind) {
		case MS_EV_SYSCALL:
			if (!t || !t->running) {
				ms_proc_cont_thread(p, ev.tid);
				break;
			}
			last_progress = now;
			if (ev.regs.rip == t->slot + SLOT_SYSCALL_END &&
			    ev.regs.orig_rax == SYS_getpid) {
				test_die_at("arrived");
				rc = ms_proc_park_thread(p, t->tid);
				t->running = false;
				if (rc == -ESRCH) {
					t->gone = true;
				} else if (rc) {
					ms_error_set(err, rc, "quiesce: stopping thread %d: %s",
						     (int)t->tid, ms_strerror(rc));
					park_all(p, l, nlet);
					goto out;
				} else {
					t->arrived = true;
				}
				left--;
				break;
			}
			st->syscalls++;
			t->syscalls++;
			if (ev.regs.orig_rax == SYS_futex) {
				int op = (int)ev.regs.rsi & FUTEX_CMD_MASK;
				bool entry = (long long)ev.regs.rax == -ENOSYS;

				if (entry && (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET ||
					      op == FUTEX_LOCK_PI || op == FUTEX_LOCK_PI2)) {
					t->in_wait = true;
					t->wait_since = now;
					st->futex_waits++;
				} else if (!entry) {
					t->in_wait = false;
				}
			}
			ms_proc_cont_thread(p, t->tid);
			break;
		case MS_EV_TRAP:
			/* A breakpoint of the target's own: delivered as if untraced. */
			if (t && t->running)
				ms_proc_pass_trap(p, t->tid);
			break;
		case MS_EV_THREAD_EXIT:
			if (t && t->running) {
				t->running = false;
				t->gone = true;
				left--;
				ms_proc_park_thread(p, t->tid); /* -ESRCH; marks all stopped */
			}
			break;
		case MS_EV_EXITED:
			rc = ms_error_set(err, -MS_E_TARGET_EXITED,
					  "quiesce: process %d exited", (int)pid);
			goto out;
		case MS_EV_STOP_REQUEST:
			park_all(p, l, nlet);
			rc = ms_error_set(err, -EINTR, "quiesce: interrupted");
			goto out;
		default:
			break;
		}
		if (!left)
			break;
		now = ms_now_ns();
		/* Blocked: every thread still out waits on a futex, and none moved for a while. */
		{
			bool all_wait = true;
			pid_t waiter = 0;

			for (size_t i = 0; i < nlet; i++) {
				if (!l[i].running)
					continue;
				if (!l[i].in_wait)
					all_wait = false;
				else
					waiter = l[i].tid;
			}
			if (all_wait && now - last_progress > (uint64_t)BLOCKED_MS * 1000000u) {
				st->blocked++;
				park_all(p, l, nlet);
				rc = ms_error_set(err, -EAGAIN,
						  "quiesce: thread %d let out of malloc waits on a "
						  "lock that a stopped thread holds",
						  (int)waiter);
				goto out;
			}
		}
		if (now - t0 > (uint64_t)LIMIT_MS * 1000000u) {
			park_all(p, l, nlet);
			rc = ms_error_set(err, -EAGAIN,
					  "quiesce: %zu thread(s) did not leave malloc within %d ms",
					  left, LIMIT_MS);
			goto out;
		}
	}
	rc = 0;
	ms_debug("quiesce: all %zu out after %.2f ms", nlet, (double)(ms_now_ns() - t0) / 1e6);
out:
	{
		double ms = (double)(ms_now_ns() - t0) / 1e6;

		st->ms += ms;
		if (ms > st->max_ms)
			st->max_ms = ms;
	}
	if (rc) {
		st->failed++;
		snprintf(st->why, sizeof(st->why), "%s", err->msg);
	}
	free(l);
	return rc;
}
