// SPDX-License-Identifier: MIT
/*
 * Running one system call inside the target (mmap the probe pages, mprotect,
 * madvise, rt_sigaction): a stopped thread is pointed at a `syscall`
 * instruction in libc's text, single-stepped over it, and put back.
 */
#include "attach/probe_int.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Finds the bytes 0f 05 in an executable mapping, libc's first. 0 or -errno. */
static int find_syscall_insn(struct ms_proc *p, ms_raddr_t *out)
{
	const struct ms_maps *maps = ms_proc_maps(p);
	static uint8_t buf[65536];

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < maps->n; i++) {
			const struct ms_map *m = &maps->v[i];
			bool libc = m->path && strstr(m->path, "/libc.so");

			if (!m->x || !m->r || (pass == 0 && !libc) || (pass == 1 && libc))
				continue;
			if (pass == 1 && m->path && !strcmp(m->path, "[vsyscall]"))
				continue;
			for (ms_raddr_t a = m->start; a < m->end; a += sizeof(buf) - 1) {
				size_t want = (size_t)MS_MIN((ms_raddr_t)sizeof(buf), m->end - a);
				ssize_t n = ms_mem_read_pid(ms_proc_pid(p), a, buf, want);

				if (n < 2)
					break;
				for (ssize_t k = 0; k + 1 < n; k++) {
					if (buf[k] == 0x0f && buf[k + 1] == 0x05) {
						*out = a + (ms_raddr_t)k;
						return 0;
					}
				}
			}
		}
	}
	return -MS_E_NOT_FOUND;
}

/* Remembered per target: libc's text does not move while it is mapped. */
static pid_t cached_pid;
static ms_raddr_t cached_insn;

int ms_remote_prepare(struct ms_proc *p)
{
	ms_raddr_t insn;
	int rc;

	if (cached_pid == ms_proc_pid(p) && cached_insn)
		return 0;
	rc = find_syscall_insn(p, &insn);
	if (rc)
		return rc;
	cached_pid = ms_proc_pid(p);
	cached_insn = insn;
	return 0;
}

/*
 * The single step leaves the thread in a SIGTRAP signal-delivery stop: were
 * memspy to die there, the kernel would deliver that SIGTRAP (fatal once
 * the target's own SIG_DFL is back). Trades it for an interrupt stop,
 * which delivers nothing: interrupt, then resume with no signal; the
 * pending interrupt traps before the thread runs any of its code.
 */
static int settle_step(pid_t pid, pid_t tid)
{
	int status;

	if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0 || ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
		return -errno;
	for (int tries = 0; tries < 8; tries++) {
		pid_t w;

		do
			w = waitpid(tid, &status, __WALL);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return -errno;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -MS_E_TARGET_EXITED;
		if (!WIFSTOPPED(status))
			continue;
		if ((status >> 16) == PTRACE_EVENT_STOP)
			return 0;
		/* Another stop came first: hand its signal back, wait for the interrupt. */
		if ((status >> 16) == 0 && WSTOPSIG(status) != SIGTRAP)
			syscall(SYS_tgkill, pid, tid, WSTOPSIG(status));
		if (ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
			return -errno;
	}
	ms_debug("remote: thread %d did not reach its interrupt stop", (int)tid);
	return -EAGAIN;
}

int ms_proc_remote_syscall(struct ms_proc *p, pid_t tid, long nr, const long args[6], long *ret)
{
	struct user_regs_struct saved, regs;
	int requeue[8], n_requeue = 0, rc, status;
	ms_raddr_t insn;

	rc = ms_proc_get_regs(p, tid, &saved);
	if (rc)
		return rc;
	rc = ms_remote_prepare(p);
	if (rc)
		return rc;
	insn = cached_insn;

	regs = saved;
	/* orig_rax = -1: an interrupted system call is not restarted into ours. */
	regs.orig_rax = (unsigned long long)-1;
	regs.rax = (unsigned long long)nr;
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	regs.rdx = (unsigned long long)args[2];
	regs.r10 = (unsigned long long)args[3];
	regs.r8 = (unsigned long long)args[4];
	regs.r9 = (unsigned long long)args[5];
	regs.rip = insn;
	rc = ms_proc_set_regs(p, tid, &regs);
	if (rc)
		return rc;

	for (int tries = 0;; tries++) {
		pid_t w;

		if (tries > 16) {
			rc = -EAGAIN;
			goto restore;
		}
		if (ptrace(PTRACE_SINGLESTEP, tid, 0L, 0L) < 0) {
			rc = -errno;
			goto restore;
		}
		do
			w = waitpid(tid, &status, __WALL);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			rc = -errno;
			goto restore;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			/* Killed meanwhile (SIGKILL): nothing to restore. */
			return -MS_E_TARGET_EXITED;
		}
		if (!WIFSTOPPED(status))
			continue;
		if (ptrace(PTRACE_GETREGS, tid, 0L, &regs) < 0) {
			rc = -errno;
			goto restore;
		}
		if (regs.rip == insn + 2)
			break; /* stepped over the syscall */
		if (WSTOPSIG(status) != SIGTRAP && (status >> 16) == 0 &&
		    n_requeue < (int)MS_ARRAY_SIZE(requeue)) {
			/* A signal arrived before the step: hand it back afterwards. */
			requeue[n_requeue++] = WSTOPSIG(status);
		}
		/* Still at the syscall (a signal or event stop came first): step again. */
		if (regs.rip != insn) {
			rc = -EIO;
			goto restore;
		}
	}
	*ret = (long)regs.rax;
	rc = 0;
restore:
	if (ptrace(PTRACE_SETREGS, tid, 0L, &saved) < 0 && !rc)
		rc = -errno;
	if (settle_step(ms_proc_pid(p), tid) == -MS_E_TARGET_EXITED)
		return -MS_E_TARGET_EXITED;
	for (int i = 0; i < n_requeue; i++)
		syscall(SYS_tgkill, ms_proc_pid(p), tid, requeue[i]);
	return rc;
}
