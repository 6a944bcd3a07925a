// SPDX-License-Identifier: MIT
/*
 * Running one system call inside the target (mmap the probe pages, mprotect,
 * madvise, rt_sigaction) on a stopped thread, through the stub region's
 * self-restoring trampoline, or libc's `syscall` instruction before it exists.
 */
#include "attach/probe_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kernel-internal return values of an interrupted system call (linux/errno.h). */

/* A syscall-stop with PTRACE_O_TRACESYSGOOD. */
#define SYSCALL_STOP (SIGTRAP | 0x80)

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
 * Fault injection for the survival tests (tests/e2e/chaos_e2e.py, scenario
 * rsys-kill): MEMSPY_TEST_KILL_AT=POINT:NR:K makes memspy SIGKILL itself at
 * POINT (set, enter, exit, back) of the K-th remote system call number NR,
 * to prove that no instant of a remote syscall needs memspy alive.
 */
static void kill_point(const char *point, long nr, int k)
{
	static const char *spec;
	static bool read;
	char want[64];

	if (!read) {
		spec = getenv("MEMSPY_TEST_KILL_AT");
		read = true;
	}
	if (!spec)
		return;
	snprintf(want, sizeof(want), "%s:%ld:%d", point, nr, k);
	if (!strcmp(spec, want))
		raise(SIGKILL);
}

/* Was the thread stopped on its way out of a system call the kernel will restart? */
static bool restartable(const struct user_regs_struct *r)
{
	long rax = (long)r->rax;

	return (long)r->orig_rax >= 0 &&
	       (rax == -K_ERESTARTSYS || rax == -K_ERESTARTNOINTR || rax == -K_ERESTARTNOHAND ||
		rax == -K_ERESTART_RESTARTBLOCK);
}

/*
 * As arch_do_signal_or_restart with no handler to run: the trampoline
 * returns to user space directly, so its frame must hold these already.
 * (A handler-bearing signal arriving at that very moment would have turned
 * -ERESTARTSYS into -EINTR; the frame restarts instead.)
 */
void ms_remote_apply_restart(struct user_regs_struct *r)
{
	if (!restartable(r))
		return;
	if ((long)r->rax == -K_ERESTART_RESTARTBLOCK)
		r->rax = SYS_restart_syscall;
	else
		r->rax = r->orig_rax;
	r->rip -= 2;
	r->orig_rax = (unsigned long long)-1;
}

/* Writes the trampoline's frame below the thread's red zone; 0 or -errno. */
static int write_frame(pid_t pid, const struct user_regs_struct *orig, ms_raddr_t *frame)
{
	struct user_regs_struct r = *orig;
	uint64_t w[17];
	struct iovec l = {w, sizeof(w)}, rv;
	ssize_t n;

	ms_remote_apply_restart(&r);
	w[0] = r.r15;
	w[1] = r.r14;
	w[2] = r.r13;
	w[3] = r.r12;
	w[4] = r.r11;
	w[5] = r.r10;
	w[6] = r.r9;
	w[7] = r.r8;
	w[8] = r.rbp;
	w[9] = r.rdi;
	w[10] = r.rsi;
	w[11] = r.rdx;
	w[12] = r.rcx;
	w[13] = r.rbx;
	w[14] = r.rax;
	w[15] = r.eflags;
	w[16] = r.rip;
	*frame = orig->rsp - MS_RSYS_FRAME_GAP;
	rv.iov_base = (void *)(uintptr_t)*frame;
	rv.iov_len = sizeof(w);
	n = process_vm_writev(pid, &l, 1, &rv, 1, 0);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(w) ? 0 : -EFAULT;
}

static int wait_tid(pid_t tid, int *status)
{
	pid_t w;

	do
		w = waitpid(tid, status, __WALL);
	while (w < 0 && errno == EINTR);
	return w < 0 ? -errno : 0;
}

/*
 * Registers back in place at the syscall-exit stop. A thread that was
 * inside an interrupted system call must still pass through the kernel's
 * signal path for it to be restarted: an interrupt stop does that (and
 * delivers nothing if memspy dies meanwhile). 0 or a negative code.
 */
static int put_back(pid_t pid, pid_t tid, const struct user_regs_struct *saved, long nr, int k)
{
	int status;

	if (ptrace(PTRACE_SETREGS, tid, 0L, saved) < 0)
		return -errno;
	kill_point("back", nr, k);
	if (!restartable(saved))
		return 0;
	if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0 || ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
		return -errno;
	for (int tries = 0; tries < 8; tries++) {
		int rc = wait_tid(tid, &status);

		if (rc)
			return rc;
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

static int remote_run(struct ms_proc *p, pid_t tid, ms_raddr_t entry, ms_raddr_t tramp, long nr,
		      const long args[6], long *ret)
{
	struct user_regs_struct saved, regs;
	int requeue[8], n_requeue = 0, rc, status;
	pid_t pid = ms_proc_pid(p);
	bool entered = false;
	ms_raddr_t insn, frame;
	static int count[512];
	int k = ++count[(unsigned long)nr % MS_ARRAY_SIZE(count)];

	rc = ms_proc_get_regs(p, tid, &saved);
	if (rc)
		return rc;
	regs = saved;
	if (tramp) {
		rc = write_frame(pid, &saved, &frame);
		if (rc)
			return rc;
		insn = tramp;
		regs.rsp = frame;
	} else {
		rc = ms_remote_prepare(p);
		if (rc)
			return rc;
		insn = cached_insn;
	}
	/*
	 * TRACESYSGOOD: a syscall-stop's exit code is then SIGTRAP|0x80, which
	 * the kernel cannot send as a signal when a dead tracer leaves it
	 * behind (without it, the thread would get a SIGTRAP).
	 */
	if (ptrace(PTRACE_SETOPTIONS, tid, 0L, ms_proc_ptrace_options(p) | PTRACE_O_TRACESYSGOOD) < 0)
		return -errno;
	/* orig_rax = -1: the stop's own interrupted system call is not restarted into ours. */
	regs.orig_rax = (unsigned long long)-1;
	regs.rax = (unsigned long long)nr;
	regs.rdi = (unsigned long long)args[0];
	regs.rsi = (unsigned long long)args[1];
	regs.rdx = (unsigned long long)args[2];
	regs.r10 = (unsigned long long)args[3];
	regs.r8 = (unsigned long long)args[4];
	regs.r9 = (unsigned long long)args[5];
	regs.rip = entry ? entry : insn;
	rc = ms_proc_set_regs(p, tid, &regs);
	if (rc)
		return rc;
	kill_point("set", nr, k);

	for (int tries = 0;; tries++) {
		int sig, event;

		if (tries > 16) {
			rc = -EAGAIN;
			goto restore;
		}
		if (ptrace(PTRACE_SYSCALL, tid, 0L, 0L) < 0) {
			rc = -errno;
			goto restore;
		}
		rc = wait_tid(tid, &status);
		if (rc)
			goto restore;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -MS_E_TARGET_EXITED; /* killed meanwhile: nothing to restore */
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (sig == SYSCALL_STOP && !event) {
			if (ptrace(PTRACE_GETREGS, tid, 0L, &regs) < 0) {
				rc = -errno;
				goto restore;
			}
			if (regs.rip != insn + 2) {
				rc = -EIO;
				goto restore;
			}
			if (entered)
				break; /* the syscall-exit stop */
			entered = true;
			kill_point("enter", nr, k);
			continue;
		}
		/* A signal arrived before the syscall: hand it back afterwards. */
		if (!event && sig != SIGTRAP && n_requeue < (int)MS_ARRAY_SIZE(requeue))
			requeue[n_requeue++] = sig;
	}
	*ret = (long)regs.rax;
	rc = 0;
	kill_point("exit", nr, k);
restore:
	{
		int e = put_back(pid, tid, &saved, nr, k);

		if (e == -MS_E_TARGET_EXITED)
			return e;
		if (e && !rc)
			rc = e;
	}
	for (int i = 0; i < n_requeue; i++)
		syscall(SYS_tgkill, pid, tid, requeue[i]);
	return rc;
}

int ms_remote_syscall_at(struct ms_proc *p, pid_t tid, ms_raddr_t tramp, long nr,
			 const long args[6], long *ret)
{
	return remote_run(p, tid, 0, tramp, nr, args, ret);
}

int ms_remote_run_to_syscall(struct ms_proc *p, pid_t tid, ms_raddr_t entry, ms_raddr_t tramp,
			     long nr, const long args[6], long *ret)
{
	if (!entry || !tramp)
		return -EINVAL;
	return remote_run(p, tid, entry, tramp, nr, args, ret);
}

int ms_proc_remote_syscall(struct ms_proc *p, pid_t tid, long nr, const long args[6], long *ret)
{
	return ms_remote_syscall_at(p, tid, 0, nr, args, ret);
}
