/* SPDX-License-Identifier: MIT */
/*
 * attach: the only code in memspy that speaks ptrace. A process object
 * (seize every thread, stop, resume, one waitpid(__WALL) event loop, detach
 * on every path), memory reads clamped to the mapping table, writes to text,
 * the mapping and module tables, and the remote-syscall helper.
 */
#ifndef MEMSPY_ATTACH_H
#define MEMSPY_ATTACH_H

#include "common/common.h"

#include <sys/user.h>

/* ======================= mapping table (/proc/PID/maps) ======================= */

struct ms_map {
	ms_raddr_t start, end; /* [start, end) */
	uint64_t offset;       /* file offset of start */
	bool r, w, x, shared;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	char *path; /* as printed by the kernel ("[heap]", "/usr/lib/..."); NULL when anonymous */
};

struct ms_maps {
	struct ms_map *v; /* sorted by start, non-overlapping */
	size_t n;
};

/*
 * Parses maps text (unit-testable). 0, -EINVAL for a line that is not a
 * mapping, or -EAGAIN for lines out of order or overlapping (a read that
 * raced with a change of the mappings: read again). out owns its strings;
 * empty on failure.
 */
int ms_maps_parse(const char *text, struct ms_maps *out);
/*
 * Where maps text comes from: read() puts the whole text of one read of the
 * file, NUL-terminated and malloc'd (the caller frees it), in *text, and
 * returns 0 or -errno. Unit tests give fixtures; ms_maps_read the kernel.
 */
struct ms_maps_source {
	int (*read)(void *ctx, char **text);
	void *ctx;
};
/*
 * The one reader of /proc/PID/maps: reads src until the table is consistent
 * (sorted, no overlap, no duplicate), a bounded number of times, since on
 * Linux >= 6.17 a read that races with mmap/mprotect is not (maps.c). 0 and
 * a non-empty table; or -errno (-ENOENT/-ESRCH: gone; an empty file is
 * -ESRCH too), -EINVAL, or -MS_E_MAPS_UNSTABLE when no read was consistent,
 * with err filled (what, why, what to do; err may be NULL). out is empty on
 * failure: never use it as the process's table then.
 */
int ms_maps_read_from(pid_t pid, const struct ms_maps_source *src, struct ms_maps *out,
		      struct ms_error *err);
/* ms_maps_read_from on /proc/PID/maps. */
int ms_maps_read(pid_t pid, struct ms_maps *out, struct ms_error *err);
/* The mapping containing addr, or NULL. Borrowed from maps. */
const struct ms_map *ms_maps_find(const struct ms_maps *maps, ms_raddr_t addr);
/* Frees what maps owns (not maps itself); leaves it empty. */
void ms_maps_free(struct ms_maps *maps);

/* ================================ memory ================================ */

/*
 * Reads len bytes at addr from pid with process_vm_readv, continuing after
 * short reads. Returns the bytes read from the start (may be short at an
 * unreadable page) or -errno when nothing could be read (-EFAULT,
 * -ESRCH, -EPERM). Needs only ptrace access permission, not a stop.
 */
ssize_t ms_mem_read_pid(pid_t pid, ms_raddr_t addr, void *buf, size_t len);

/*
 * A reader for pid whose reads are clamped to the readable mappings in maps
 * (borrowed; must outlive the reader). ctx is owned by the caller:
 *   struct ms_pid_reader pr; struct ms_reader r; ms_pid_reader_init(&pr, &r, pid, &maps);
 */
struct ms_pid_reader {
	pid_t pid;
	const struct ms_maps *maps;
	uint64_t nreads, nbytes; /* statistics */
};
void ms_pid_reader_init(struct ms_pid_reader *pr, struct ms_reader *r, pid_t pid,
			const struct ms_maps *maps);

/* =============================== modules =============================== */

struct ms_module {
	char *path;      /* path as in maps */
	char *open_path; /* a path memspy can open: /proc/PID/map_files/START-END, or
			    /proc/PID/root + path as the fallback */
	ms_raddr_t start, end; /* lowest start, highest end of its file mappings */
	ms_raddr_t bias;       /* load bias: runtime address = bias + ELF p_vaddr/st_value */
	uint8_t build_id[64];
	size_t build_id_len; /* 0 when the file has no NT_GNU_BUILD_ID note */
	bool is_exec;        /* the main executable (ET_EXEC or the PIE at /proc/PID/exe) */
	/* open_path is /proc/PID/root + path: open it with ms_module_open, which checks
	 * that it is still this mapping's inode. */
	bool via_root;
	struct ms_map id; /* the mapping read: its device and inode (path NULL) */
};

struct ms_modules {
	struct ms_module *v; /* sorted by start */
	size_t n;
};

/*
 * Builds the module table of ELF files mapped by pid. The bias comes from
 * each mapping's file offset and the ELF program headers (not from the
 * first mapping's start). 0 or -errno.
 */
int ms_modules_load(pid_t pid, const struct ms_maps *maps, struct ms_modules *out);
void ms_modules_free(struct ms_modules *mods);
/* Opens m's file (open_path) for reading: ms_open_target_file, checked as
 * ms_open_target_file_as when it is reached through /proc/PID/root. */
int ms_module_open(const struct ms_module *m);
/* The module whose mappings contain addr, or NULL. Borrowed. */
const struct ms_module *ms_modules_find(const struct ms_modules *mods, ms_raddr_t addr);
/* The first module whose file name (basename) starts with prefix ("libc.so.6",
 * "libstdc++.so"), or NULL. Borrowed. */
const struct ms_module *ms_modules_find_name(const struct ms_modules *mods, const char *prefix);
/* Build id as lower-case hex into buf (>= 2*len+1 bytes); "" when none. */
const char *ms_module_build_id_hex(const struct ms_module *m, char *buf, size_t size);

/*
 * Opens one of the target's files read-only (a module, through
 * /proc/PID/map_files or /proc/PID/root). Only a regular file: the path
 * under /proc/PID/root is the target's to choose, and a FIFO there would
 * block open() for good (O_NONBLOCK; SIGTERM does not end a blocked open).
 * An fd, or -errno (-EINVAL when it is not a regular file).
 */
int ms_open_target_file(const char *path);
/*
 * ms_open_target_file of a path that is not the mapping's own handle
 * (/proc/PID/root + the path maps shows), checked to be the inode that m
 * maps: a file replaced on disk (or renamed over, or a new file at a
 * deleted one's path) is refused with a warning, once per mapping's inode,
 * and -ESTALE.
 */
int ms_open_target_file_as(const char *path, const struct ms_map *m);
/*
 * Opens the file of mapping m: /proc/PID/map_files/START-END (the mapped
 * file itself, whatever is on disk), else /proc/PID/root + its path
 * (without CAP_SYS_ADMIN; " (deleted)" taken off) through
 * ms_open_target_file_as. *via_root tells which, *path (malloc'd) is the
 * path opened; either may be NULL. An fd or -errno.
 */
int ms_open_mapped_file(pid_t pid, const struct ms_map *m, bool *via_root, char **path);

/* Has pid exited: gone from /proc, or a zombie (Z, X) its parent has not reaped? */
bool ms_procfs_gone(pid_t pid);

/*
 * The CPU time a process's threads ran and the time they waited for a CPU,
 * in ns, from each thread's /proc/PID/task/TID/schedstat (exact, where
 * /proc/PID/stat counts in clock ticks: 10 ms, as much as a light process
 * uses in a third of a second). The totals only grow: each reading adds, per
 * thread, what it ran and waited since the previous reading (the whole of
 * it for a thread born since), so a thread that exits takes nothing with it
 * (only its last partial interval is not seen).
 */
struct ms_sched_thread {
	pid_t tid;
	uint64_t run_ns, wait_ns;
};
struct ms_sched_account {
	uint64_t run_ns, wait_ns;     /* totals since the first reading */
	struct ms_sched_thread *t;    /* the last reading, sorted by tid */
	size_t n, cap;
	unsigned readings;
};
/*
 * One reading of pid's threads into a. 0; -ENOENT when no thread could be
 * read (the process is gone, or the kernel has no schedstats); -E2BIG when
 * it has more than max_threads threads (reading them all would cost more
 * than it tells): a stays as it was.
 */
int ms_sched_account_read(struct ms_sched_account *a, pid_t pid, size_t max_threads);
void ms_sched_account_free(struct ms_sched_account *a);

/*
 * Looks up a symbol's runtime address (bias applied) and size in m's
 * .dynsym, then .symtab, of the mapped file. Only defined FUNC, IFUNC and
 * OBJECT symbols count. 0, or -MS_E_NOT_FOUND.
 */
int ms_module_symbol(const struct ms_module *m, const char *name, ms_raddr_t *addr,
		     uint64_t *size);

/* =============================== process =============================== */

struct ms_proc; /* opaque */

/* Why ms_proc_wait returned. */
enum ms_event_kind {
	MS_EV_TIMEOUT,     /* nothing happened within timeout_ms */
	MS_EV_STOP_REQUEST, /* memspy received SIGINT/SIGTERM/SIGHUP (ms_signals_stop_requested) */
	MS_EV_TRAP,        /* a thread stopped with SIGTRAP (breakpoint): it stays stopped until
			      ms_proc_cont_thread(); regs are in ev->regs */
	MS_EV_THREAD_NEW,  /* a new thread was seized (already resumed unless all are stopped) */
	MS_EV_THREAD_EXIT, /* a thread exited */
	MS_EV_FORK,        /* the target forked; ev->child is the new pid, stopped and detached
			      from memspy's thread set: see ms_proc_fork_child_* below */
	MS_EV_EXITED,      /* the whole target is gone; ev->status is its wait status */
	MS_EV_SYSCALL,     /* a thread let out by ms_proc_run_syscalls stopped at a system
			      call's entry or exit: held until ms_proc_cont_thread (which goes
			      on to the next one) or ms_proc_park_thread; regs in ev->regs */
};

struct ms_event {
	enum ms_event_kind kind;
	pid_t tid;
	pid_t child;                  /* MS_EV_FORK */
	int status;                   /* MS_EV_EXITED: wait status of the thread-group leader */
	struct user_regs_struct regs; /* MS_EV_TRAP */
};

struct ms_attach_opts {
	bool trace_fork; /* PTRACE_O_TRACEFORK|VFORK: report forks (needed while text is patched) */
};

/*
 * Seizes every thread of pid (rescanning /proc/PID/task until stable;
 * PTRACE_O_TRACECLONE for threads created later). Threads keep running.
 * On failure fills err with what failed and a diagnosis (no such process,
 * kernel thread, zombie, memspy itself, already traced by TracerPid,
 * another user, yama ptrace_scope, missing CAP_SYS_PTRACE, container) and
 * leaves nothing attached. Returns 0 or a negative code.
 */
int ms_proc_seize(pid_t pid, const struct ms_attach_opts *opts, struct ms_proc **out,
		  struct ms_error *err);

/*
 * Checks, without attaching, that pid exists and could be traced, with the
 * same diagnoses as ms_proc_seize. For commands that only read memory.
 */
int ms_proc_check(pid_t pid, struct ms_error *err);

pid_t ms_proc_pid(const struct ms_proc *p);
size_t ms_proc_nthreads(const struct ms_proc *p);
pid_t ms_proc_thread(const struct ms_proc *p, size_t i); /* tid of the i-th live thread */

/*
 * Stops every thread (PTRACE_INTERRUPT, then waits for each stop, seizing
 * threads born meanwhile). Events other than stops that arrive meanwhile
 * are queued for ms_proc_wait. 0, -MS_E_TARGET_EXITED, or -errno.
 */
int ms_proc_stop_all(struct ms_proc *p);
/* Resumes every thread stopped by memspy (group-stopped ones stay in LISTEN). */
int ms_proc_resume_all(struct ms_proc *p);
bool ms_proc_all_stopped(const struct ms_proc *p);

/*
 * Called at each new thread's first stop (auto-attached through
 * PTRACE_O_TRACECLONE, or seized during ms_proc_stop_all), before it runs
 * any code of its own and before MS_EV_THREAD_NEW reaches the caller, with
 * the thread's registers. The probe engine enters the thread in its stubs'
 * thread table there. One hook per process; fn NULL removes it.
 */
typedef void (*ms_thread_hook_fn)(void *ctx, pid_t tid, const struct user_regs_struct *regs);
void ms_proc_set_thread_hook(struct ms_proc *p, ms_thread_hook_fn fn, void *ctx);

/*
 * Called by ms_proc_stop_all once every interrupt is sent, before it waits
 * for the stops (walk mode drops its real-time priority there: the instant
 * is taken, and a tracer that races its tracees into their stop waits a
 * scheduler tick in the kernel for each). NULL: none.
 */
void ms_proc_set_interrupted_hook(struct ms_proc *p, void (*fn)(void *ctx), void *ctx);

/* Registers of a stopped thread. 0 or -errno. */
int ms_proc_get_regs(struct ms_proc *p, pid_t tid, struct user_regs_struct *regs);
int ms_proc_set_regs(struct ms_proc *p, pid_t tid, const struct user_regs_struct *regs);
/* Resumes one thread stopped at MS_EV_TRAP (or by stop_all). */
int ms_proc_cont_thread(struct ms_proc *p, pid_t tid);
/*
 * Resumes a thread stopped at an MS_EV_TRAP that is not memspy's (an int3
 * or trap of the target's own), delivering its SIGTRAP as if memspy were
 * not there. 0 or -ESRCH.
 */
int ms_proc_pass_trap(struct ms_proc *p, pid_t tid);

/*
 * Waits for the next event, at most timeout_ms (-1 = forever). Group-stops
 * (PTRACE_LISTEN), signals meant for the target (re-injected), clone
 * events and interrupt stops are handled inside; only the kinds above are
 * reported. Also returns MS_EV_STOP_REQUEST as soon as memspy is asked to
 * stop. 0 or -errno.
 */
int ms_proc_wait(struct ms_proc *p, int timeout_ms, struct ms_event *ev);
/*
 * While held, ms_proc_wait does not report a stop request (Ctrl-C,
 * SIGTERM): for the removal of the probes, which is what the request asked
 * for and must not be cut short by it (its waits for a thread's trap
 * returned at once after a Ctrl-C, so a queued SIGTRAP was never settled).
 */
void ms_proc_hold_stop_requests(struct ms_proc *p, bool hold);

/*
 * The process's mapping table (borrowed; replaced by the refreshes below).
 * ms_proc_seize fills it or fails, so it is never the empty table of a
 * failed read.
 */
const struct ms_maps *ms_proc_maps(struct ms_proc *p);
/*
 * Reads the maps again (ms_maps_read: consistent or an error). On failure
 * the previous table stays. 0 or a negative code.
 */
int ms_proc_refresh_maps(struct ms_proc *p);
/*
 * Reads the maps with every thread stopped, stopping and resuming them
 * unless memspy already holds them (stop_all in progress): what a verdict
 * about the process ("no libc", "nothing to probe") must rest on, since a
 * read while it runs can miss a mapping that changed meanwhile. Callers
 * must not hold single threads (ms_proc_stop_thread, a trap) unless all
 * are stopped. 0, or a negative code with err filled; the previous table
 * stays on failure.
 */
int ms_proc_refresh_maps_stopped(struct ms_proc *p, struct ms_error *err);
void ms_proc_reader(struct ms_proc *p, struct ms_reader *r);

/*
 * Writes len bytes into the target's memory through /proc/PID/mem (works
 * on read-only text), then reads them back and compares. 0, -EIO on a
 * mismatch, or -errno.
 */
int ms_proc_write_mem(struct ms_proc *p, ms_raddr_t addr, const void *buf, size_t len);

/*
 * Runs one system call in the target on thread tid, which must be stopped
 * (by stop_all or at a trap): saves its registers, executes a `syscall`
 * instruction found in libc's text with orig_rax = -1, restores them.
 * 0 and *ret = the syscall's return value, or -errno.
 */
int ms_proc_remote_syscall(struct ms_proc *p, pid_t tid, long nr, const long args[6], long *ret);

/*
 * Detaches from every thread, leaving them all running (threads in a
 * group-stop stay stopped, as they would without memspy). Idempotent; safe
 * on any path, including after the target exited. Callers that patched
 * memory restore it before this.
 */
int ms_proc_detach(struct ms_proc *p);
/* Detaches if needed and frees. NULL is a no-op. */
void ms_proc_free(struct ms_proc *p);

/* True once the whole target has exited; *status its wait status. */
bool ms_proc_exited(const struct ms_proc *p, int *status);

/* A forked child reported by MS_EV_FORK: stopped and traced by memspy. */
int ms_proc_fork_child_detach(pid_t child);

/*
 * For attach/snapshot.c, which makes one held thread run a clone() whose
 * child is a copy-on-write snapshot of the target. The ptrace options set
 * on the target's threads (PTRACE_O_*), to restore after a temporary change.
 */
unsigned long ms_proc_ptrace_options(const struct ms_proc *p);
/*
 * A thread held by memspy in a plain stop (not a group-stop, no signal of
 * the target's to deliver, not at a trap, not inside a half-done system
 * call such as vfork): one that can be made to run an injected
 * instruction and put back. -ESRCH when there is none.
 */
pid_t ms_proc_plain_stopped_thread(const struct ms_proc *p);
/*
 * Stops one thread (the others keep running) and holds it, and any other
 * stop seen meanwhile, until ms_proc_resume_all. 0, -ESRCH, -ETIMEDOUT or
 * -MS_E_TARGET_EXITED.
 */
int ms_proc_stop_thread(struct ms_proc *p, pid_t tid);

/*
 * Lets one held thread run while the others stay held (attach/quiesce.c):
 * resumed with PTRACE_SYSCALL, it stops at each system call's entry and exit
 * (MS_EV_SYSCALL), signals for it are delivered at once, and its exit is
 * reported as usual. Memspy's death leaves nothing behind: the kernel stops
 * tracing syscalls when the tracer goes. 0 or -ESRCH (not held, group-stopped).
 */
int ms_proc_run_syscalls(struct ms_proc *p, pid_t tid);
/*
 * Holds a thread let out by ms_proc_run_syscalls again, in a plain stop
 * (as ms_proc_stop_all leaves it), with its syscall stops off. At a syscall
 * stop the call is finished (or, if it blocks, interrupted to be restarted
 * later) and no user instruction runs. 0, -ESRCH (it exited), -ETIMEDOUT or
 * -MS_E_TARGET_EXITED.
 */
int ms_proc_park_thread(struct ms_proc *p, pid_t tid);

/* ============================ snapshot (fork) ============================ */

/*
 * A copy-on-write snapshot of the whole address space (attach/snapshot.c):
 * with every thread stopped, one thread runs an injected clone() (no
 * CLONE_VM, exit signal 0: invisible to the target's wait() and no
 * SIGCHLD) whose child stays ptrace-stopped, never runs the target's code
 * and is killed when memspy dies (PTRACE_O_EXITKILL). The target can
 * resume at once; the child's memory is the target's as of the clone.
 */
struct ms_snapshot; /* opaque */

/* Monotonic timestamps (ns) of the phases of ms_snapshot_take. */
struct ms_snapshot_stats {
	uint64_t t_start;   /* began (target stopped) */
	uint64_t t_page;    /* code page found (reused) or mapped, and written */
	uint64_t t_entered; /* the thread entered clone() */
	uint64_t t_cloned;  /* PTRACE_EVENT_CLONE: the copy exists */
	uint64_t t_back;    /* the thread's registers are back */
	uint64_t t_end;     /* the clone is done and checked: the target may resume */
};

/*
 * Takes a snapshot of p, whose threads must all be stopped (ms_proc_stop_all).
 * Needs a thread in a plain stop and no seccomp filter (a filter might kill
 * the process for a clone()). 0 and *out, or a negative code with err
 * filled and nothing left behind: the caller then walks the stopped target.
 */
int ms_snapshot_take(struct ms_proc *p, struct ms_snapshot **out, struct ms_error *err);
/* The child's pid in memspy's pid namespace. */
pid_t ms_snapshot_pid(const struct ms_snapshot *s);
/* The child's mapping table, read once when it was taken. Borrowed from s. */
const struct ms_maps *ms_snapshot_maps(const struct ms_snapshot *s);
/* A reader of the child's memory, clamped to its maps, usable from any thread. Valid
 * until release. */
void ms_snapshot_reader(struct ms_snapshot *s, struct ms_reader *r);
const struct ms_snapshot_stats *ms_snapshot_stats(const struct ms_snapshot *s);
/*
 * Kills the child, collects it as its tracer, then reaps it in the target
 * (wait4 injected on one thread, held briefly while the others run, or on
 * a stopped one) so no zombie is left. Frees s; NULL is a no-op. 0, or a
 * negative code when the target-side reap failed (a zombie may remain
 * until the target exits; a warning says so).
 */
int ms_snapshot_release(struct ms_proc *p, struct ms_snapshot *s);

/*
 * A guard process for the case where memspy dies (even by SIGKILL) while a
 * snapshot exists: the kernel then kills the child, and the guard reaps it
 * in the target. Start it before stopping the target (a fork of memspy,
 * its child): 0 or -errno (g then does nothing). Arm it with each snapshot
 * taken, disarm it after each release; stop it at the end (it is reaped).
 */
struct ms_snapshot_guard {
	int fd;    /* write end of its pipe, -1 when none */
	pid_t pid; /* the guard, -1 when none */
};
int ms_snapshot_guard_start(pid_t target, struct ms_snapshot_guard *g);
void ms_snapshot_guard_arm(const struct ms_snapshot_guard *g, const struct ms_snapshot *s);
void ms_snapshot_guard_disarm(const struct ms_snapshot_guard *g);
void ms_snapshot_guard_stop(struct ms_snapshot_guard *g);

/* ============================== quiescing ============================== */

/*
 * A moment with no thread inside glibc's malloc (attach/quiesce.c). With
 * every thread stopped, the ones whose unwound stack has a frame in
 * malloc.c's functions (libc's symbols) run on alone, each until it returns
 * from its outermost allocator frame, caught by a one-shot return slot in
 * memspy's code page (the return address on its stack is redirected there;
 * the slot makes a getpid() syscall memspy stops at, then jumps back). No
 * libc byte is patched and no trap is armed: if memspy dies meanwhile, the
 * threads pass through their slots untraced and carry on.
 */
struct ms_quiesce; /* opaque */

struct ms_quiesce_stats {
	unsigned rounds;	  /* quiesce attempts (one per stop of the process) */
	unsigned threads_let_out; /* threads let out of malloc in the last round */
	unsigned let_out_total;	  /* the same, summed over all rounds */
	unsigned syscalls;	  /* system calls they made before leaving (mmap, futex...) */
	unsigned futex_waits;	  /* of which futex waits (a lock another thread held) */
	unsigned blocked;	  /* rounds given up: a let-out thread waited on a stopped one */
	unsigned failed;	  /* rounds that did not reach a quiescent moment (any reason) */
	double ms, max_ms;	  /* time spent quiescing, all rounds / the longest round */
	char why[512];		  /* why the last failed round failed; "" when none did */
};

/*
 * Prepares for pid (libc's symbols and unwind tables; a few ms, done before
 * the process is stopped). maps: the process's mapping table. NULL with err
 * filled when the process has no libc.so.6 or its symbols cannot be read.
 */
struct ms_quiesce *ms_quiesce_new(pid_t pid, const struct ms_maps *maps, struct ms_error *err);
/*
 * One round on p, whose threads must all be stopped (ms_proc_stop_all); on
 * return they all are again. 0: no thread is inside the allocator now.
 * -EAGAIN (err says why: a thread waits on a lock a stopped thread holds,
 * an unwind that does not find the allocator call's return, seccomp, no
 * time left): the caller falls back to letting the process run a moment
 * and stopping it again. -MS_E_TARGET_EXITED, -EINTR (stop requested).
 * st accumulates over rounds.
 */
int ms_quiesce_run(struct ms_quiesce *q, struct ms_proc *p, struct ms_quiesce_stats *st,
		   struct ms_error *err);
/* NULL is a no-op. */
void ms_quiesce_free(struct ms_quiesce *q);

/* ============================ process facts ============================ */

/* Resident and anonymous memory from /proc/PID/status, in bytes. */
struct ms_proc_mem_summary {
	uint64_t vm_rss, rss_anon, rss_file, vm_size, vm_data;
};
int ms_proc_mem_summary(pid_t pid, struct ms_proc_mem_summary *out);
/*
 * The command name (/proc/PID/comm) into buf; "" on failure. The process
 * chose it (any 15 bytes but NUL and '/'): control characters, DEL and C1
 * are made '?' (ms_terminal_clean), as it is shown on terminals.
 */
const char *ms_proc_comm(pid_t pid, char *buf, size_t size);

#endif
