// SPDX-License-Identifier: MIT
/*
 * Why memspy cannot attach, and what to do about it. The facts come from a
 * /proc-like tree (the live /proc, or fixtures in the unit tests).
 */
#include "attach/attach_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void read_uids(const char *status, long uid[4])
{
	const char *v = ms_proc_status_field(status, "Uid");

	for (int i = 0; i < 4; i++)
		uid[i] = -1;
	if (v)
		sscanf(v, "%ld %ld %ld %ld", &uid[0], &uid[1], &uid[2], &uid[3]);
}

/*
 * A name from the target (its comm: any bytes but NUL and '/') for a
 * message on the user's terminal: the kernel escapes only some control
 * characters in status, so the others become '?'.
 */
static void copy_line(char *dst, size_t size, const char *src)
{
	size_t n = src ? strcspn(src, "\n") : 0;

	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
	dst[n] = '\0';
}

/* PF_KTHREAD from include/linux/sched.h; the 9th field of /proc/PID/stat. */
#define PF_KTHREAD 0x00200000u

static bool stat_is_kthread(const char *stat)
{
	const char *p = strrchr(stat, ')'); /* comm may contain spaces and parens */
	unsigned long flags = 0;
	int ppid = 0;
	char state;

	if (!p)
		return false;
	/* ") S ppid pgrp session tty_nr tpgid flags" */
	if (sscanf(p + 1, " %c %d %*d %*d %*d %*d %lu", &state, &ppid, &flags) != 3)
		return false;
	return (flags & PF_KTHREAD) != 0;
}

void ms_diag_gather(const char *proc_root, pid_t pid, pid_t self_pid, struct ms_diag_facts *f)
{
	char path[512], buf[8192];
	const char *v;

	memset(f, 0, sizeof(*f));
	f->pid = pid;
	f->self_pid = self_pid;
	f->yama_scope = -1;
	for (int i = 0; i < 4; i++) {
		f->target_uid[i] = -1;
		f->self_uid[i] = -1;
	}
	if (pid > 0) {
		snprintf(path, sizeof(path), "%s/%d/status", proc_root, (int)pid);
		if (ms_proc_read_status(path, buf, sizeof(buf)) > 0) {
			f->exists = true;
			copy_line(f->comm, sizeof(f->comm), ms_proc_status_field(buf, "Name"));
			if ((v = ms_proc_status_field(buf, "State")))
				f->state = *v;
			if ((v = ms_proc_status_field(buf, "Threads")))
				f->threads = atoi(v);
			if ((v = ms_proc_status_field(buf, "Tgid")))
				f->tgid = (pid_t)atoi(v);
			if ((v = ms_proc_status_field(buf, "TracerPid")))
				f->tracer_pid = (pid_t)atoi(v);
			read_uids(buf, f->target_uid);
		}
		snprintf(path, sizeof(path), "%s/%d/stat", proc_root, (int)pid);
		if (f->exists && ms_proc_read_file(path, buf, sizeof(buf)) > 0)
			f->kernel_thread = stat_is_kthread(buf);
	}
	if (f->tracer_pid > 0) {
		snprintf(path, sizeof(path), "%s/%d/status", proc_root, (int)f->tracer_pid);
		if (ms_proc_read_status(path, buf, sizeof(buf)) > 0)
			copy_line(f->tracer_comm, sizeof(f->tracer_comm),
				  ms_proc_status_field(buf, "Name"));
	}
	snprintf(path, sizeof(path), "%s/self/status", proc_root);
	if (ms_proc_read_status(path, buf, sizeof(buf)) > 0) {
		read_uids(buf, f->self_uid);
		if ((v = ms_proc_status_field(buf, "CapEff"))) {
			f->self_cap_eff = strtoull(v, NULL, 16);
			f->self_caps_known = true;
		}
		if ((v = ms_proc_status_field(buf, "CapBnd")))
			f->self_cap_bnd = strtoull(v, NULL, 16);
	}
	snprintf(path, sizeof(path), "%s/sys/kernel/yama/ptrace_scope", proc_root);
	if (ms_proc_read_file(path, buf, sizeof(buf)) > 0)
		f->yama_scope = atoi(buf);
}

int ms_diag_precheck(const struct ms_diag_facts *f, const char *op, struct ms_error *err)
{
	int pid = (int)f->pid;

	if (f->pid <= 0) {
		ms_error_set(err, -EINVAL, "%s: invalid pid %d", op, pid);
		ms_error_hint(err, "give the pid of a running process (see `pgrep NAME`)");
		return -EINVAL;
	}
	if (f->pid == f->self_pid) {
		ms_error_set(err, -MS_E_SELF, "%s: pid %d is memspy itself", op, pid);
		ms_error_hint(err, "memspy cannot trace itself; give the pid of the process to "
				   "profile (see `pgrep NAME`)");
		return -MS_E_SELF;
	}
	if (!f->exists) {
		ms_error_set(err, -ESRCH, "%s: pid %d: no such process", op, pid);
		ms_error_hint(err, "check the pid with `pgrep NAME` or `ps -ef`; the process may "
				   "have exited, or it lives in another pid namespace (run memspy "
				   "in the target's namespace)");
		return -ESRCH;
	}
	if (f->kernel_thread) {
		ms_error_set(err, -MS_E_KERNEL_THREAD, "%s: pid %d (%s) is a kernel thread", op,
			     pid, f->comm);
		ms_error_hint(err, "kernel threads have no user-space memory to profile; give "
				   "the pid of a user-space process (see `ps -ef`, whose kernel "
				   "threads are shown in [brackets])");
		return -MS_E_KERNEL_THREAD;
	}
	if (f->tgid > 0 && f->tgid != f->pid) {
		ms_error_set(err, -EINVAL, "%s: %d is a thread id of process %d (%s), not a process",
			     op, pid, (int)f->tgid, f->comm);
		ms_error_hint(err, "give the process id: --pid %d (memspy attaches to every thread "
				   "of it)", (int)f->tgid);
		return -EINVAL;
	}
	if ((f->state == 'Z' || f->state == 'X') && f->threads <= 1) {
		ms_error_set(err, -MS_E_ZOMBIE, "%s: pid %d (%s) is a zombie", op, pid, f->comm);
		ms_error_hint(err, "it has exited; its parent has not reaped it, so there is no "
				   "memory left to profile (`ps -o ppid= -p %d` names the parent)",
			      pid);
		return -MS_E_ZOMBIE;
	}
	if (f->tracer_pid > 0) {
		const char *who = f->tracer_comm[0] ? f->tracer_comm : "another process";

		if (f->tracer_pid == f->self_pid) {
			ms_error_set(err, -MS_E_ALREADY_TRACED,
				     "%s: pid %d (%s) is already traced by this memspy", op, pid,
				     f->comm);
			ms_error_hint(err, "attach once per process");
			return -MS_E_ALREADY_TRACED;
		}
		ms_error_set(err, -MS_E_ALREADY_TRACED,
			     "%s: pid %d (%s) is already traced by %s (pid %d)", op, pid, f->comm,
			     who, (int)f->tracer_pid);
		ms_error_hint(err, "a process can have only one tracer: detach %s (pid %d) first "
				   "(in gdb: `detach`; strace: Ctrl-C), then run memspy again",
			      who, (int)f->tracer_pid);
		return -MS_E_ALREADY_TRACED;
	}
	return 0;
}

static bool has_cap(uint64_t set, int cap)
{
	return (set >> cap) & 1;
}

int ms_diag_seize_error(const struct ms_diag_facts *f, const char *op, int code,
			struct ms_error *err)
{
	int pid = (int)f->pid;
	bool root_like, other_user;

	if (code != -EPERM && code != -EACCES) {
		ms_error_set(err, code, "%s: ptrace(PTRACE_SEIZE, %d): %s", op, pid,
			     ms_strerror(code));
		return code;
	}
	ms_error_set(err, -EPERM, "%s: ptrace(PTRACE_SEIZE, %d): Operation not permitted", op,
		     pid);
	/* In the order that explains most: a tracer, then uids, capabilities, yama. */
	if (f->tracer_pid > 0 && f->tracer_pid != f->self_pid) {
		struct ms_error tmp = {0};

		ms_diag_precheck(f, op, &tmp);
		ms_error_set(err, -MS_E_ALREADY_TRACED, "%s", tmp.msg);
		ms_error_hint(err, "%s", tmp.hint);
		return -MS_E_ALREADY_TRACED;
	}
	root_like = f->self_caps_known && has_cap(f->self_cap_eff, MS_CAP_SYS_PTRACE);
	other_user = f->self_uid[1] >= 0 && f->target_uid[0] >= 0 &&
		     (f->target_uid[0] != f->self_uid[1] || f->target_uid[1] != f->self_uid[1] ||
		      f->target_uid[2] != f->self_uid[1]);
	if (f->self_caps_known && !has_cap(f->self_cap_bnd, MS_CAP_SYS_PTRACE) &&
	    (other_user || f->yama_scope >= 2)) {
		ms_error_hint(err, "memspy runs without CAP_SYS_PTRACE and cannot gain it: its "
				   "bounding set lacks it, as in a container started without it. "
				   "Start the container with --cap-add=SYS_PTRACE (docker/podman; "
				   "in Kubernetes: securityContext.capabilities.add: [SYS_PTRACE]), or "
				   "run memspy on the host");
		return -EPERM;
	}
	if (other_user && !root_like) {
		ms_error_hint(err, "pid %d (%s) belongs to uid %ld and memspy runs as uid %ld: "
				   "run memspy as the same user (`sudo -u \\#%ld memspy ...`), or "
				   "as root / with CAP_SYS_PTRACE (`sudo memspy ...`)",
			      pid, f->comm, f->target_uid[0], f->self_uid[1], f->target_uid[0]);
		return -EPERM;
	}
	switch (f->yama_scope) {
	case 1:
		if (!root_like) {
			ms_error_hint(err, "kernel.yama.ptrace_scope is 1 (restricted: only a "
					   "parent may trace its descendants). Run memspy as root or "
					   "with CAP_SYS_PTRACE (`sudo memspy ...`), or allow it for "
					   "everyone with `sysctl kernel.yama.ptrace_scope=0`");
			return -EPERM;
		}
		break;
	case 2:
		if (!root_like) {
			ms_error_hint(err, "kernel.yama.ptrace_scope is 2 (admin-only: tracing needs "
					   "CAP_SYS_PTRACE). Run memspy as root (`sudo memspy ...`), "
					   "or lower it with `sysctl kernel.yama.ptrace_scope=1`");
			return -EPERM;
		}
		break;
	case 3:
		ms_error_hint(err, "kernel.yama.ptrace_scope is 3 (no attach: ptrace attach is "
				   "disabled for everyone, root included, until the next reboot). "
				   "Nothing can attach on this boot; set kernel.yama.ptrace_scope=1 "
				   "in /etc/sysctl.d/ for the next boot");
		return -EPERM;
	default:
		break;
	}
	if (f->self_caps_known && !root_like && other_user) {
		ms_error_hint(err, "memspy lacks CAP_SYS_PTRACE (CapEff in /proc/self/status): "
				   "run it as root or grant it with `setcap cap_sys_ptrace+ep "
				   "$(command -v memspy)`");
		return -EPERM;
	}
	ms_error_hint(err, "the kernel refused without a cause memspy can see: the target may be "
			   "non-dumpable (setuid, prctl(PR_SET_DUMPABLE, 0)) or confined by an LSM "
			   "(SELinux, AppArmor deny ptrace); run memspy as root with "
			   "CAP_SYS_PTRACE, and check `dmesg` for a denial");
	return -EPERM;
}

int ms_diag_exited_during_attach(pid_t pid, const char *op, struct ms_error *err)
{
	ms_error_set(err, -MS_E_TARGET_EXITED, "%s: pid %d exited while memspy was attaching",
		     op, (int)pid);
	ms_error_hint(err, "nothing was changed in it; if it restarts, attach to the new pid "
			   "(`pgrep NAME`)");
	return -MS_E_TARGET_EXITED;
}
