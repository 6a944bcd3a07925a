/* SPDX-License-Identifier: MIT */
/*
 * attach: private declarations shared by proc.c, diagnose.c and the unit
 * tests. The diagnosis works on facts gathered from a /proc-like tree, so
 * tests can feed it fixture files instead of a live system.
 */
#ifndef MEMSPY_ATTACH_INT_H
#define MEMSPY_ATTACH_INT_H

#include "attach/attach.h"

#define MS_CAP_SYS_PTRACE 19

/* What memspy knows about a would-be target and about itself. */
struct ms_diag_facts {
	pid_t pid;
	pid_t self_pid;
	bool exists;        /* /proc/PID/status readable */
	bool kernel_thread; /* PF_KTHREAD in stat flags, or no exe and a kthreadd parent */
	char state;         /* first letter of State: in status ('R', 'S', 'Z', ...); 0 unknown */
	int threads;        /* Threads: in status; 0 unknown */
	pid_t tgid;         /* Tgid: in status (differs from pid for a thread id) */
	pid_t tracer_pid;   /* TracerPid: in status */
	char tracer_comm[64];
	char comm[64];
	long target_uid[4]; /* Uid: real, effective, saved, fs; -1 unknown */
	long self_uid[4];
	int yama_scope; /* /proc/sys/kernel/yama/ptrace_scope; -1 when absent */
	bool self_caps_known;
	uint64_t self_cap_eff, self_cap_bnd;
};

/*
 * Gathers the facts about pid from proc_root ("/proc" on a live system; a
 * fixture directory in tests: proc_root/PID/status, proc_root/PID/stat,
 * proc_root/self/status, proc_root/sys/kernel/yama/ptrace_scope). self_pid
 * is memspy's own pid. Never fails: unknown facts stay unknown.
 */
void ms_diag_gather(const char *proc_root, pid_t pid, pid_t self_pid, struct ms_diag_facts *f);

/*
 * The checks that need no ptrace call: no such process, memspy itself, a
 * kernel thread, a thread id that is not a process, a zombie, already
 * traced. op names the operation for the message ("attach"). Returns 0, or
 * a negative code with err filled.
 */
int ms_diag_precheck(const struct ms_diag_facts *f, const char *op, struct ms_error *err);

/*
 * Explains a failed ptrace(PTRACE_SEIZE) (code = -errno): EPERM is diagnosed
 * as already traced, another user, yama ptrace_scope, missing
 * CAP_SYS_PTRACE, or a container without SYS_PTRACE. Returns the code to
 * report, with err filled.
 */
int ms_diag_seize_error(const struct ms_diag_facts *f, const char *op, int code,
			struct ms_error *err);

/* The target vanished while memspy attached to it. Returns -MS_E_TARGET_EXITED. */
int ms_diag_exited_during_attach(pid_t pid, const char *op, struct ms_error *err);

/*
 * memspy's code page in a target (attach/snapshot.c): one 4 KiB r-x
 * anonymous page, signed, left mapped and reused by every later dump. The
 * snapshot's clone code lives below MS_PAGE_OFF_SLOTS, quiesce.c's one-shot
 * return slots above. Found, or mapped with a remote mmap on a thread in a
 * plain stop (every thread must be stopped). 0 and *page, or a negative code
 * with err filled.
 */
#define MS_PAGE_SIZE 4096u
#define MS_PAGE_OFF_SLOTS 0x400u
#define MS_PAGE_OFF_CURSOR 0x3f0u /* u32: quiesce.c's next slot (below the slots) */
int ms_code_page_get(struct ms_proc *p, ms_raddr_t *page, struct ms_error *err);

/* Reads a small /proc file into buf (NUL-terminated; procfs.c). Bytes read or -errno. */
ssize_t ms_proc_read_file(const char *path, char *buf, size_t size);
/*
 * Reads /proc/PID/status or /proc/PID/task/TID/status into buf like
 * ms_proc_read_file, but to the file's end, keeping only whole lines of at
 * most 1 KiB: a huge Groups line is left out instead of pushing the lines
 * after it out of buf. Bytes kept or -errno.
 */
ssize_t ms_proc_read_status(const char *path, char *buf, size_t size);
/* The value after "key:" in /proc status-like text, or NULL. Borrowed from text. */
const char *ms_proc_status_field(const char *text, const char *key);
/*
 * A hex signal mask field (SigPnd, ShdPnd, SigBlk, SigCgt, ...) of
 * /proc/PID/status, or of /proc/PID/task/TID/status when tid > 0; 0 if the
 * file or the field is missing (procfs.c).
 */
uint64_t ms_procfs_status_mask(pid_t pid, pid_t tid, const char *key);

/*
 * The dead man's helper (deadman.c, which says why it is built so): a child
 * of memspy that runs on_death(st) if memspy dies (EOF on its pipe) before
 * ms_deadman_stop. st is the helper's copy (fork) of the caller's state;
 * on_msg(st, a, b) runs in the helper for each ms_deadman_send, in order.
 * keep_fd: a descriptor the helper keeps (the caller still closes its own
 * copy), or -1.
 */
struct ms_deadman_ops {
	void (*on_msg)(void *st, uint64_t a, uint64_t b);
	void (*on_death)(void *st); /* the helper exits when it returns */
};
struct ms_deadman {
	int fd;	   /* write end of its pipe, -1 when none */
	pid_t pid; /* the helper, -1 when none */
};
/* 0, or -errno (d then holds fd = pid = -1, and nothing runs). */
int ms_deadman_start(struct ms_deadman *d, const struct ms_deadman_ops *ops, void *st,
		     int keep_fd);
/* 0 or -errno (no helper, or the pipe failed). */
int ms_deadman_send(const struct ms_deadman *d, uint64_t a, uint64_t b);
/* memspy's last word: the helper exits without acting and is reaped. d is reset; no-op if none. */
void ms_deadman_stop(struct ms_deadman *d);

#endif
