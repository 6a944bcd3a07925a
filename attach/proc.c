// SPDX-License-Identifier: MIT
/*
 * The process object: seize every thread, stop and resume them, one
 * waitpid(__WALL) event loop, clean detach on every path. Why the target
 * stays safe: doc/DESIGN.md (keeping the target safe).
 */
#include "attach/attach_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long stop_all and detach wait for interrupted threads to report. */
#define STOP_TIMEOUT_MS 5000
/* Rescans of /proc/PID/task before giving up on a thread-spawning storm. */
#define MAX_SCANS 1000

enum tstate {
	T_NEW,     /* auto-attached by PTRACE_O_TRACECLONE; first stop not seen yet */
	T_RUNNING, /* running (or about to stop for an interrupt memspy sent) */
	T_STOPPED, /* in a ptrace-stop held by memspy */
	T_TRAP,    /* stopped at a breakpoint trap; held until ms_proc_cont_thread */
	T_LISTEN,  /* in a group-stop, resumed with PTRACE_LISTEN */
};

struct thread {
	pid_t tid;
	enum tstate state;
	bool group;     /* T_STOPPED during a group-stop: resume with LISTEN, not CONT */
	int pending_sig; /* a signal meant for the target, to deliver on resume/detach */
	bool sysstop;    /* let out by ms_proc_run_syscalls: resumed with PTRACE_SYSCALL, its
			    syscall stops reported, its signals passed on at once */
	bool in_call;    /* held at an event stop inside a system call (vfork, or an event
			    memspy did not ask for): its registers are the call's, half done,
			    so nothing may be injected into it (see handle_status) */
};

struct fork_child {
	pid_t pid;
	bool stopped;   /* its first stop was already consumed by our wait loop */
	bool reported;  /* MS_EV_FORK was queued */
};

struct ms_proc {
	pid_t pid;
	bool stop_requests_held; /* ms_proc_hold_stop_requests */
	unsigned long options;
	struct thread *t;
	size_t nt, cap_t;
	struct fork_child *fk;
	size_t nfk, cap_fk;
	struct ms_event *q; /* events for ms_proc_wait, FIFO */
	size_t qhead, qn, cap_q;
	bool stop_mode; /* stop_all in progress or all stopped: hold every stop */
	bool all_stopped;
	bool exited, detached;
	int exit_status;
	int mem_fd;
	struct ms_maps maps;
	struct ms_pid_reader pr;
	ms_thread_hook_fn thread_hook; /* a new thread's first stop (ms_proc_set_thread_hook) */
	void *thread_hook_ctx;
	void (*interrupted_hook)(void *ctx); /* ms_proc_set_interrupted_hook */
	void *interrupted_hook_ctx;
};

/* ---------------------------- small helpers ---------------------------- */

static int refresh_maps(struct ms_proc *p, struct ms_error *err);

static struct thread *find_thread(struct ms_proc *p, pid_t tid)
{
	for (size_t i = 0; i < p->nt; i++)
		if (p->t[i].tid == tid)
			return &p->t[i];
	return NULL;
}

static struct thread *add_thread(struct ms_proc *p, pid_t tid, enum tstate st)
{
	struct thread *t = find_thread(p, tid);

	if (t)
		return t;
	ms_xgrow((void **)&p->t, &p->cap_t, p->nt + 1, sizeof(*p->t));
	t = &p->t[p->nt++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->state = st;
	return t;
}

static void remove_thread(struct ms_proc *p, pid_t tid)
{
	for (size_t i = 0; i < p->nt; i++) {
		if (p->t[i].tid == tid) {
			p->t[i] = p->t[--p->nt];
			return;
		}
	}
}

static struct fork_child *find_fork(struct ms_proc *p, pid_t pid)
{
	for (size_t i = 0; i < p->nfk; i++)
		if (p->fk[i].pid == pid)
			return &p->fk[i];
	return NULL;
}

static struct fork_child *add_fork(struct ms_proc *p, pid_t pid)
{
	struct fork_child *f = find_fork(p, pid);

	if (f)
		return f;
	ms_xgrow((void **)&p->fk, &p->cap_fk, p->nfk + 1, sizeof(*p->fk));
	f = &p->fk[p->nfk++];
	memset(f, 0, sizeof(*f));
	f->pid = pid;
	return f;
}

static void push_event(struct ms_proc *p, const struct ms_event *ev)
{
	if (p->qhead && p->qhead == p->qn) {
		p->qhead = 0;
		p->qn = 0;
	}
	ms_xgrow((void **)&p->q, &p->cap_q, p->qn + 1, sizeof(*p->q));
	p->q[p->qn++] = *ev;
}

static bool pop_event(struct ms_proc *p, struct ms_event *ev)
{
	if (p->qhead >= p->qn)
		return false;
	*ev = p->q[p->qhead++];
	if (p->qhead == p->qn) {
		p->qhead = 0;
		p->qn = 0;
	}
	return true;
}

static void queue_simple(struct ms_proc *p, enum ms_event_kind kind, pid_t tid)
{
	struct ms_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.tid = tid;
	push_event(p, &ev);
}

/* A new thread's first stop: it has run none of its own code yet. */
static void first_stop(struct ms_proc *p, pid_t tid)
{
	struct user_regs_struct regs;

	queue_simple(p, MS_EV_THREAD_NEW, tid);
	if (p->thread_hook && ptrace(PTRACE_GETREGS, tid, 0L, &regs) == 0)
		p->thread_hook(p->thread_hook_ctx, tid, &regs);
}

/* Tgid and TracerPid of a task, from /proc/TID/status; -1 when unknown. */
static void task_ids(pid_t tid, pid_t *tgid, pid_t *tracer)
{
	char path[64], buf[2048];
	const char *v;

	*tgid = -1;
	*tracer = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
		return;
	if ((v = ms_proc_status_field(buf, "Tgid")))
		*tgid = (pid_t)atoi(v);
	if ((v = ms_proc_status_field(buf, "TracerPid")))
		*tracer = (pid_t)atoi(v);
}

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/* Resumes a thread that memspy holds: LISTEN in a group-stop, else CONT. */
static void resume_thread(struct ms_proc *p, struct thread *t)
{
	long r;

	if (t->group) {
		r = ptrace(PTRACE_LISTEN, t->tid, 0L, 0L);
		t->state = T_LISTEN;
	} else {
		r = ptrace(t->sysstop ? PTRACE_SYSCALL : PTRACE_CONT, t->tid, 0L,
			   (long)t->pending_sig);
		t->state = T_RUNNING;
	}
	if (r < 0 && errno != ESRCH)
		ms_debug("attach: resume %d: %s", (int)t->tid, strerror(errno));
	/* ESRCH: the thread is dying; its exit report will remove it. */
	t->group = false;
	t->pending_sig = 0;
	t->in_call = false;
	(void)p;
}

/* -------------------------- the wait status decoder -------------------------- */

/*
 * Handles one wait status of one of our tasks. Either the thread ends up
 * held (stopped) by memspy, or it is resumed, and events for the caller are
 * queued. Everything ms_proc_wait and stop_all learn goes through here.
 */
static void handle_status(struct ms_proc *p, pid_t tid, int status)
{
	struct thread *t = find_thread(p, tid);
	struct fork_child *fk = find_fork(p, tid);
	int sig, event;

	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		if (fk) {
			/* A forked child died before anyone detached it. */
			fk->stopped = false;
			return;
		}
		if (!t && tid != p->pid)
			return; /* exited before its clone event: never reported as new */
		remove_thread(p, tid);
		if (tid == p->pid || p->nt == 0) {
			struct ms_event ev;

			/* Leader reported last (delayed group-leader reaping): all is gone. */
			p->exited = true;
			p->exit_status = status;
			p->nt = 0;
			memset(&ev, 0, sizeof(ev));
			ev.kind = MS_EV_EXITED;
			ev.tid = tid;
			ev.status = status;
			push_event(p, &ev);
		} else {
			queue_simple(p, MS_EV_THREAD_EXIT, tid);
		}
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	sig = WSTOPSIG(status);
	event = (unsigned)status >> 16;

	if (fk) {
		/* A forked child's first stop: keep it stopped for ms_proc_fork_child_detach. */
		fk->stopped = true;
		return;
	}
	if (!t) {
		pid_t tgid, tracer;

		/*
		 * Unknown task: a new thread whose first stop came before the
		 * parent's PTRACE_EVENT_CLONE, or a forked child before its
		 * PTRACE_EVENT_FORK. The thread group tells them apart.
		 */
		task_ids(tid, &tgid, &tracer);
		if (tgid != -1 && tgid != p->pid) {
			add_fork(p, tid)->stopped = true;
			return;
		}
		t = add_thread(p, tid, T_NEW);
	}

	if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
	    event == PTRACE_EVENT_VFORK) {
		unsigned long msg = 0;
		pid_t child, tgid = -1, tracer;

		ptrace(PTRACE_GETEVENTMSG, tid, 0L, &msg);
		child = (pid_t)msg;
		if (child > 0 && event == PTRACE_EVENT_CLONE)
			task_ids(child, &tgid, &tracer);
		if (child > 0 && event == PTRACE_EVENT_CLONE && (tgid == p->pid || tgid == -1)) {
			struct thread *c = find_thread(p, child);

			/*
			 * The child may have run, exited and been reaped before this
			 * event was collected: adding it now would wait forever for
			 * a stop from a dead thread.
			 */
			if (!c && (syscall(SYS_tgkill, p->pid, child, 0) == 0 || errno != ESRCH)) {
				c = add_thread(p, child, T_NEW);
				queue_simple(p, MS_EV_THREAD_NEW, child);
			}
		} else if (child > 0) {
			struct fork_child *f = add_fork(p, child);

			if (!f->reported) {
				struct ms_event ev;

				f->reported = true;
				memset(&ev, 0, sizeof(ev));
				ev.kind = MS_EV_FORK;
				ev.tid = tid;
				ev.child = child;
				push_event(p, &ev);
			}
		}
		t->state = T_STOPPED;
		if (!p->stop_mode) {
			resume_thread(p, t);
		} else if (event != PTRACE_EVENT_VFORK && !t->sysstop) {
			/*
			 * Stopped inside clone() or fork(): the call is half done
			 * (rax is still -ENOSYS, the child's id not yet returned).
			 * A system call injected here would take the call's exit
			 * and the thread would see clone fail although the child
			 * runs: glibc then clones again onto the same stack and
			 * the process dies. Let the call finish; the pending
			 * interrupt holds the thread at its exit to user space.
			 */
			if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0 && errno != ESRCH)
				ms_debug("attach: interrupt %d: %s", (int)tid, strerror(errno));
			resume_thread(p, t);
		} else {
			/* vfork waits for its child, which memspy may hold: keep it here, marked. */
			t->in_call = true;
		}
		return;
	}

	if (event == PTRACE_EVENT_STOP) {
		bool first = t->state == T_NEW;

		if (first)
			first_stop(p, tid);
		t->group = is_stop_signal(sig);
		t->state = T_STOPPED;
		if (!p->stop_mode)
			resume_thread(p, t);
		return;
	}

	if (event != 0) {
		/* An event we did not ask for (exec/exit are not enabled): let it run. */
		t->state = T_STOPPED;
		t->group = false;
		if (!p->stop_mode)
			resume_thread(p, t);
		else
			t->in_call = true;
		return;
	}

	/* A syscall stop (TRACESYSGOOD) of a thread let out by ms_proc_run_syscalls. */
	if (t->sysstop && sig == (SIGTRAP | 0x80)) {
		struct ms_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.kind = MS_EV_SYSCALL;
		ev.tid = tid;
		if (ptrace(PTRACE_GETREGS, tid, 0L, &ev.regs) < 0)
			ms_debug("attach: GETREGS %d: %s", (int)tid, strerror(errno));
		t->state = T_TRAP;
		t->group = false;
		push_event(p, &ev);
		return;
	}

	/* Signal-delivery-stop. */
	if (t->state == T_NEW)
		first_stop(p, tid);
	if (sig == SIGTRAP) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (ptrace(PTRACE_GETSIGINFO, tid, 0L, &si) == 0 &&
		    (si.si_code == SI_KERNEL || si.si_code == TRAP_BRKPT ||
		     si.si_code == TRAP_TRACE)) {
			struct ms_event ev;

			memset(&ev, 0, sizeof(ev));
			ev.kind = MS_EV_TRAP;
			ev.tid = tid;
			if (ptrace(PTRACE_GETREGS, tid, 0L, &ev.regs) < 0)
				ms_debug("attach: GETREGS %d: %s", (int)tid, strerror(errno));
			t->state = T_TRAP;
			t->group = false;
			t->pending_sig = 0;
			push_event(p, &ev);
			return;
		}
	}
	/*
	 * A signal meant for the target: pass it on (now, or when memspy
	 * resumes). A thread let out while the others are held gets it at once:
	 * it runs its handler as it would have without memspy.
	 */
	t->state = T_STOPPED;
	t->group = false;
	t->pending_sig = sig;
	if (!p->stop_mode || t->sysstop)
		resume_thread(p, t);
}

/* Is pid a task memspy traces for this process (or a child it forked)? */
static bool ours(struct ms_proc *p, pid_t pid)
{
	pid_t tgid, tracer;

	if (pid == p->pid || find_thread(p, pid) || find_fork(p, pid))
		return true;
	task_ids(pid, &tgid, &tracer);
	return tracer == getpid() || tgid == p->pid;
}

/*
 * Collects every wait status that is ready, without blocking. Returns the
 * number handled, or -ECHILD when memspy has no tracee left.
 *
 * waitid(WNOWAIT) peeks first so that memspy never reaps a child that is
 * not its tracee (a watchdog, a helper): if the next status belongs to
 * someone else, poll our tasks one by one instead.
 */
static int collect(struct ms_proc *p)
{
	int handled = 0;

	for (int guard = 0; guard < 4096; guard++) {
		siginfo_t si;
		int status;
		pid_t r;

		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL) < 0) {
			if (errno == EINTR)
				continue;
			return handled ? handled : -errno;
		}
		if (si.si_pid == 0)
			return handled;
		if (!ours(p, si.si_pid))
			break;
		r = waitpid(si.si_pid, &status, __WALL | WNOHANG);
		if (r <= 0)
			continue;
		handle_status(p, r, status);
		handled++;
	}
	/* A foreign status is at the head of the queue: poll ours individually. */
	for (size_t i = 0; i <= p->nt + p->nfk; i++) {
		pid_t want, r;
		int status;

		if (i < p->nt)
			want = p->t[i].tid;
		else if (i - p->nt < p->nfk)
			want = p->fk[i - p->nt].pid;
		else
			want = p->pid; /* the leader, even once out of the table */
		r = waitpid(want, &status, __WALL | WNOHANG);
		if (r > 0) {
			handle_status(p, r, status);
			handled++;
			i = (size_t)-1; /* the table may have changed: start over */
		}
	}
	return handled;
}

/* ------------------------------- seize ------------------------------- */

static int seize_one(struct ms_proc *p, pid_t tid)
{
	if (ptrace(PTRACE_SEIZE, tid, 0L, p->options) == 0) {
		add_thread(p, tid, T_RUNNING);
		return 0;
	}
	return -errno;
}

/* Seizes every tid in /proc/PID/task not seized yet. Returns the number added or -errno. */
static int scan_tasks(struct ms_proc *p, pid_t *failed_tid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int added = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)p->pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		int r;

		if (tid <= 0 || find_thread(p, tid))
			continue;
		r = seize_one(p, tid);
		if (r == 0) {
			added++;
			continue;
		}
		if (r == -EPERM) {
			pid_t tgid, tracer;

			/* Auto-attached already through PTRACE_O_TRACECLONE by a seized parent. */
			task_ids(tid, &tgid, &tracer);
			if (tracer == getpid()) {
				add_thread(p, tid, T_NEW);
				added++;
				continue;
			}
		}
		if (r == -ESRCH && tid != p->pid)
			continue; /* the thread exited meanwhile */
		*failed_tid = tid;
		closedir(d);
		return r;
	}
	closedir(d);
	return added;
}

static struct ms_proc *proc_new(pid_t pid)
{
	struct ms_proc *p = ms_xcalloc(1, sizeof(*p));

	p->pid = pid;
	p->mem_fd = -1;
	return p;
}

int ms_proc_seize(pid_t pid, const struct ms_attach_opts *opts, struct ms_proc **out,
		  struct ms_error *err)
{
	struct ms_diag_facts f;
	struct ms_proc *p;
	pid_t failed = 0;
	int r, scans;

	*out = NULL;
	ms_diag_gather("/proc", pid, getpid(), &f);
	/*
	 * A memspy killed a moment ago leaves its watchdog holding the target
	 * for the few milliseconds it takes to put the probed code back: wait
	 * (bounded) rather than call it another tracer. A memspy that is
	 * recording it is still reported, one second later.
	 */
	for (int i = 0; i < 100 && f.tracer_pid > 0 && f.tracer_pid != f.self_pid &&
			!strcmp(f.tracer_comm, "memspy");
	     i++) {
		usleep(10000);
		ms_diag_gather("/proc", pid, getpid(), &f);
	}
	r = ms_diag_precheck(&f, "attach", err);
	if (r)
		return r;

	p = proc_new(pid);
	/* Never PTRACE_O_EXITKILL: if memspy dies, the target must live on. */
	p->options = PTRACE_O_TRACECLONE;
	if (opts && opts->trace_fork)
		p->options |= PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;

	r = seize_one(p, pid);
	if (r) {
		failed = pid;
		goto fail;
	}
	for (scans = 0; scans < MAX_SCANS; scans++) {
		r = scan_tasks(p, &failed);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
	}
	if (scans == MAX_SCANS) {
		r = -EAGAIN;
		ms_error_set(err, r,
			     "attach: pid %d: threads kept appearing through %d scans of /proc/%d/task",
			     (int)pid, MAX_SCANS, (int)pid);
		ms_error_hint(err, "retry; the process is creating threads faster than memspy can "
				   "attach to them");
		ms_proc_free(p);
		return r;
	}
	/*
	 * Every caller decides from this table (allocator, modules, probes): a
	 * failed read must fail the attach, never leave it empty. A process
	 * that keeps changing its maps through every read is read once more
	 * with its threads stopped.
	 */
	r = refresh_maps(p, err);
	if (r == -MS_E_MAPS_UNSTABLE)
		r = ms_proc_refresh_maps_stopped(p, err);
	if (r < 0) {
		ms_proc_detach(p);
		ms_proc_free(p);
		ms_diag_gather("/proc", pid, getpid(), &f);
		if (!f.exists || f.state == 'Z' || f.state == 'X')
			return ms_diag_exited_during_attach(pid, "attach", err);
		return r; /* err says what and why */
	}
	ms_debug("attach: seized %zu threads of %d", p->nt, (int)pid);
	*out = p;
	return 0;

fail:
	ms_proc_detach(p);
	ms_proc_free(p);
	ms_diag_gather("/proc", pid, getpid(), &f);
	if (r == -ESRCH || !f.exists || f.state == 'Z' || f.state == 'X') {
		if (failed == pid && !f.exists)
			return ms_diag_precheck(&f, "attach", err);
		return ms_diag_exited_during_attach(pid, "attach", err);
	}
	return ms_diag_seize_error(&f, "attach", r, err);
}

int ms_proc_check(pid_t pid, struct ms_error *err)
{
	struct ms_diag_facts f;
	char path[64];
	int fd, r;

	ms_diag_gather("/proc", pid, getpid(), &f);
	r = ms_diag_precheck(&f, "check", err);
	if (r)
		return r;
	/*
	 * Opening /proc/PID/mem takes the same PTRACE_MODE_ATTACH check as a
	 * seize (uids, yama, capabilities) without stopping anything.
	 */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	r = -errno;
	if (r == -EACCES)
		r = -EPERM;
	ms_diag_gather("/proc", pid, getpid(), &f);
	if (!f.exists)
		return ms_diag_exited_during_attach(pid, "check", err);
	return ms_diag_seize_error(&f, "check", r, err);
}

/* ----------------------------- accessors ----------------------------- */

pid_t ms_proc_pid(const struct ms_proc *p)
{
	return p->pid;
}

size_t ms_proc_nthreads(const struct ms_proc *p)
{
	return p->nt;
}

pid_t ms_proc_thread(const struct ms_proc *p, size_t i)
{
	return i < p->nt ? p->t[i].tid : -1;
}

bool ms_proc_all_stopped(const struct ms_proc *p)
{
	return p->all_stopped;
}

bool ms_proc_exited(const struct ms_proc *p, int *status)
{
	if (p->exited && status)
		*status = p->exit_status;
	return p->exited;
}

/* --------------------------- stop and resume --------------------------- */

static bool held(const struct thread *t)
{
	return t->state == T_STOPPED || t->state == T_TRAP;
}

/* Sleeps briefly until a child event may be ready. */
static void nap(int ms)
{
	ms_signals_wait(ms);
}

/*
 * Interrupts every running or listening thread and waits until each one
 * (including threads born meanwhile) is held. Runs with stop_mode set, so
 * the decoder keeps every thread it sees stopped.
 */
static int stop_all(struct ms_proc *p, int timeout_ms)
{
	uint64_t deadline = ms_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	p->stop_mode = true;
	for (size_t i = 0; i < p->nt; i++) {
		struct thread *t = &p->t[i];

		if (t->state == T_RUNNING || t->state == T_LISTEN) {
			if (ptrace(PTRACE_INTERRUPT, t->tid, 0L, 0L) < 0 && errno != ESRCH)
				ms_debug("attach: interrupt %d: %s", (int)t->tid, strerror(errno));
			/* A listening thread reports its group-stop again, now held. */
			t->state = T_RUNNING;
		}
	}
	if (p->interrupted_hook)
		p->interrupted_hook(p->interrupted_hook_ctx);
	for (;;) {
		size_t waiting = 0;
		int r;

		if (p->exited)
			return -MS_E_TARGET_EXITED;
		for (size_t i = 0; i < p->nt; i++) {
			struct thread *t = &p->t[i];

			if (!held(t))
				waiting++;
		}
		if (!waiting)
			break;
		r = collect(p);
		if (r == -ECHILD) {
			/* No tracee left at all: the target is gone without a report. */
			p->exited = true;
			p->nt = 0;
			return -MS_E_TARGET_EXITED;
		}
		if (r > 0)
			continue;
		if (ms_now_ns() > deadline) {
			ms_warn("attach: %zu thread(s) of %d did not stop within %d ms "
				"(uninterruptible sleep?)",
				waiting, (int)p->pid, timeout_ms);
			for (size_t i = 0; i < p->nt; i++)
				if (!held(&p->t[i]))
					ms_debug("attach: thread %d state %d", (int)p->t[i].tid,
						 (int)p->t[i].state);
			return -ETIMEDOUT;
		}
		nap(1);
	}
	p->all_stopped = true;
	return 0;
}

int ms_proc_stop_all(struct ms_proc *p)
{
	int r;

	if (p->detached)
		return -ESRCH;
	if (p->exited)
		return -MS_E_TARGET_EXITED;
	r = stop_all(p, STOP_TIMEOUT_MS);
	if (r)
		ms_proc_resume_all(p);
	return r;
}

int ms_proc_resume_all(struct ms_proc *p)
{
	p->stop_mode = false;
	p->all_stopped = false;
	if (p->detached || p->exited)
		return 0;
	for (size_t i = 0; i < p->nt; i++) {
		struct thread *t = &p->t[i];

		/* A thread let out and never parked: it runs on untraced syscalls. */
		if (t->sysstop && held(t)) {
			t->sysstop = false;
			ptrace(PTRACE_SETOPTIONS, t->tid, 0L, p->options);
			if (t->state == T_TRAP)
				t->state = T_STOPPED;
		}
		/* A T_TRAP thread waits for its event to be handled (ms_proc_cont_thread). */
		if (t->state == T_STOPPED)
			resume_thread(p, t);
	}
	return 0;
}

int ms_proc_cont_thread(struct ms_proc *p, pid_t tid)
{
	struct thread *t = find_thread(p, tid);

	if (!t || !held(t))
		return -ESRCH;
	/* Its next stop is held while the others are held (stop_mode stays set). */
	p->all_stopped = false;
	t->state = T_STOPPED;
	resume_thread(p, t);
	return 0;
}

int ms_proc_pass_trap(struct ms_proc *p, pid_t tid)
{
	struct thread *t = find_thread(p, tid);

	if (!t || t->state != T_TRAP)
		return -ESRCH;
	p->all_stopped = false;
	t->state = T_STOPPED;
	t->group = false;
	t->pending_sig = SIGTRAP; /* PTRACE_CONT delivers it, as if untraced */
	resume_thread(p, t);
	return 0;
}

void ms_proc_set_interrupted_hook(struct ms_proc *p, void (*fn)(void *ctx), void *ctx)
{
	p->interrupted_hook = fn;
	p->interrupted_hook_ctx = ctx;
}

void ms_proc_set_thread_hook(struct ms_proc *p, ms_thread_hook_fn fn, void *ctx)
{
	p->thread_hook = fn;
	p->thread_hook_ctx = ctx;
}

int ms_proc_get_regs(struct ms_proc *p, pid_t tid, struct user_regs_struct *regs)
{
	struct thread *t = find_thread(p, tid);

	if (!t || !held(t))
		return -ESRCH;
	if (ptrace(PTRACE_GETREGS, tid, 0L, regs) < 0)
		return -errno;
	return 0;
}

int ms_proc_set_regs(struct ms_proc *p, pid_t tid, const struct user_regs_struct *regs)
{
	struct thread *t = find_thread(p, tid);

	if (!t || !held(t))
		return -ESRCH;
	if (ptrace(PTRACE_SETREGS, tid, 0L, regs) < 0)
		return -errno;
	return 0;
}

unsigned long ms_proc_ptrace_options(const struct ms_proc *p)
{
	return p->options;
}

pid_t ms_proc_plain_stopped_thread(const struct ms_proc *p)
{
	/* The leader first: it is the thread most likely to stay (and to be known). */
	for (size_t i = 0; i < p->nt; i++) {
		const struct thread *t = &p->t[i];

		if (t->state == T_STOPPED && !t->group && !t->pending_sig && !t->in_call &&
		    t->tid == p->pid)
			return t->tid;
	}
	for (size_t i = 0; i < p->nt; i++) {
		const struct thread *t = &p->t[i];

		if (t->state == T_STOPPED && !t->group && !t->pending_sig && !t->in_call)
			return t->tid;
	}
	return -ESRCH;
}

/* Waits until tid is held (stop_mode holds its next stop), within STOP_TIMEOUT_MS. */
static int wait_held(struct ms_proc *p, pid_t tid)
{
	uint64_t deadline = ms_now_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000ull;
	struct thread *t;

	while ((t = find_thread(p, tid)) && !held(t)) {
		int r;

		if (p->exited)
			return -MS_E_TARGET_EXITED;
		r = collect(p);
		if (r == -ECHILD)
			return -MS_E_TARGET_EXITED;
		if (r > 0)
			continue;
		if (ms_now_ns() > deadline)
			return -ETIMEDOUT;
		nap(1);
	}
	return t ? 0 : -ESRCH;
}

int ms_proc_stop_thread(struct ms_proc *p, pid_t tid)
{
	struct thread *t = find_thread(p, tid);

	if (p->detached || !t)
		return -ESRCH;
	if (p->exited)
		return -MS_E_TARGET_EXITED;
	if (held(t))
		return 0;
	/* stop_mode: the decoder holds what it sees until ms_proc_resume_all. */
	p->stop_mode = true;
	if (t->state == T_RUNNING || t->state == T_LISTEN) {
		if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0 && errno != ESRCH)
			return -errno;
		t->state = T_RUNNING;
	}
	return wait_held(p, tid);
}

int ms_proc_run_syscalls(struct ms_proc *p, pid_t tid)
{
	struct thread *t = find_thread(p, tid);

	if (p->detached || !t || !held(t) || t->group)
		return -ESRCH;
	/* Options are per thread: only this one reports syscall stops as SIGTRAP|0x80. */
	if (ptrace(PTRACE_SETOPTIONS, tid, 0L, p->options | PTRACE_O_TRACESYSGOOD) < 0)
		return -errno;
	t->sysstop = true;
	p->all_stopped = false;
	p->stop_mode = true;
	t->state = T_STOPPED;
	resume_thread(p, t);
	return 0;
}

/* Held again after a thread was let out: all_stopped again once every thread is. */
static int park_done(struct ms_proc *p, int r)
{
	bool all = true;

	for (size_t i = 0; i < p->nt; i++)
		if (!held(&p->t[i]))
			all = false;
	p->all_stopped = all && !p->exited;
	return r;
}

int ms_proc_park_thread(struct ms_proc *p, pid_t tid)
{
	struct thread *t = find_thread(p, tid);
	int r;

	if (p->detached)
		return -ESRCH;
	if (p->exited)
		return -MS_E_TARGET_EXITED;
	if (!t)
		return park_done(p, -ESRCH); /* it exited: the others may all be held now */
	if (!held(t)) {
		r = ms_proc_stop_thread(p, tid);
		if (r)
			return r;
		t = find_thread(p, tid);
		if (!t)
			return -ESRCH;
	}
	if (t->sysstop) {
		t->sysstop = false;
		if (ptrace(PTRACE_SETOPTIONS, tid, 0L, p->options) < 0 && errno != ESRCH)
			return -errno;
	}
	/* Drop its syscall stops still queued: they are stale now. */
	if (p->qn) {
		size_t w = p->qhead;

		for (size_t i = p->qhead; i < p->qn; i++)
			if (p->q[i].kind != MS_EV_SYSCALL || p->q[i].tid != tid)
				p->q[w++] = p->q[i];
		p->qn = w;
	}
	if (t->state != T_TRAP)
		return park_done(p, 0);
	/*
	 * At a syscall stop: the interrupt, requested before the resume, makes
	 * the thread finish its system call and stop before it runs a single
	 * user instruction (a call interrupted that way is restarted later).
	 */
	if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	t->state = T_STOPPED;
	t->pending_sig = 0;
	resume_thread(p, t);
	return park_done(p, wait_held(p, tid));
}

/* ------------------------------- wait ------------------------------- */

void ms_proc_hold_stop_requests(struct ms_proc *p, bool hold)
{
	p->stop_requests_held = hold;
}

int ms_proc_wait(struct ms_proc *p, int timeout_ms, struct ms_event *ev)
{
	uint64_t deadline = 0;

	memset(ev, 0, sizeof(*ev));
	if (timeout_ms >= 0)
		deadline = ms_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		int r, left = -1;

		if (pop_event(p, ev))
			return 0;
		if (!p->stop_requests_held && ms_signals_stop_requested()) {
			ev->kind = MS_EV_STOP_REQUEST;
			return 0;
		}
		if (p->exited || p->detached) {
			ev->kind = p->exited ? MS_EV_EXITED : MS_EV_TIMEOUT;
			ev->status = p->exit_status;
			ev->tid = p->pid;
			return 0;
		}
		r = collect(p);
		if (r == -ECHILD) {
			p->exited = true;
			p->nt = 0;
			queue_simple(p, MS_EV_EXITED, p->pid);
			continue;
		}
		if (r > 0)
			continue;
		if (timeout_ms >= 0) {
			uint64_t now = ms_now_ns();

			if (now >= deadline) {
				ev->kind = MS_EV_TIMEOUT;
				return 0;
			}
			left = (int)((deadline - now + 999999) / 1000000);
		}
		/*
		 * SIGCHLD and the stop signals wake this up. A cap keeps a
		 * status whose SIGCHLD was merged with another from waiting long.
		 */
		nap(left < 0 || left > 100 ? 100 : left);
	}
}

/* ------------------------------ detach ------------------------------ */

/* Is SIGTRAP pending for this thread alone (SigPnd in /proc/PID/task/TID/status)? */
static bool sigtrap_pending(pid_t pid, pid_t tid)
{
	char path[96], buf[4096];
	const char *v;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
		return false;
	v = ms_proc_status_field(buf, "SigPnd");
	return v && (strtoull(v, NULL, 16) & (1ull << (SIGTRAP - 1)));
}

/*
 * PTRACE_INTERRUPT's stop is reported before a SIGTRAP an int3 already
 * queued (get_signal runs the job-control trap first); detaching then would
 * deliver it untraced and kill the target. Let such a thread take its
 * trap while still traced, and swallow it. Runs with every thread held.
 */
static void consume_stray_traps(struct ms_proc *p)
{
	for (size_t i = 0; i < p->nt; i++) {
		uint64_t deadline = ms_now_ns() + 1000000000ull;
		pid_t tid = p->t[i].tid;
		struct thread *t = &p->t[i];

		if (t->state != T_STOPPED || t->pending_sig || !sigtrap_pending(p->pid, tid))
			continue;
		ms_debug("attach: thread %d has a SIGTRAP queued; consuming it before detach",
			 (int)tid);
		if (ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
			continue;
		t->state = T_RUNNING;
		t->group = false;
		/* stop_mode is set: whatever stop comes next is held. */
		while ((t = find_thread(p, tid)) && !held(t) && !p->exited &&
		       ms_now_ns() < deadline) {
			if (collect(p) <= 0)
				nap(1);
		}
		if (t && t->state == T_TRAP)
			t->state = T_STOPPED; /* swallowed: detach passes no signal */
		if (t && !held(t)) {
			ptrace(PTRACE_INTERRUPT, tid, 0L, 0L);
			stop_all(p, 1000);
		}
		i = (size_t)-1; /* the table may have changed: look again from the start */
		if (p->exited)
			break;
	}
	/* Drop the trap events just generated: they belong to no probe. */
	if (p->qn) {
		size_t w = p->qhead;

		for (size_t r = p->qhead; r < p->qn; r++)
			if (p->q[r].kind != MS_EV_TRAP)
				p->q[w++] = p->q[r];
		p->qn = w;
	}
}

static void detach_forks(struct ms_proc *p)
{
	for (size_t i = 0; i < p->nfk; i++)
		if (!p->fk[i].reported || p->fk[i].stopped)
			ms_proc_fork_child_detach(p->fk[i].pid);
	p->nfk = 0;
}

int ms_proc_detach(struct ms_proc *p)
{
	int ret = 0;

	if (!p || p->detached)
		return 0;
	if (!p->exited) {
		int r = p->all_stopped ? 0 : stop_all(p, STOP_TIMEOUT_MS);

		if (r == 0 && !p->exited)
			consume_stray_traps(p);
		for (size_t i = 0; i < p->nt; i++) {
			struct thread *t = &p->t[i];
			long sig = t->state == T_STOPPED ? t->pending_sig : 0;

			/* PTRACE_DETACH needs a stopped thread; one stuck in D state stays
			 * traced until memspy exits, when the kernel detaches it. */
			if (!held(t))
				ms_warn("attach: thread %d did not stop; it detaches when memspy exits",
					(int)t->tid);
			if (ptrace(PTRACE_DETACH, t->tid, 0L, sig) < 0 && errno != ESRCH) {
				ms_warn("attach: ptrace(PTRACE_DETACH, %d): %s", (int)t->tid,
					strerror(errno));
				ret = -errno;
			}
		}
	}
	detach_forks(p);
	p->nt = 0;
	p->stop_mode = false;
	p->all_stopped = false;
	p->detached = true;
	if (p->mem_fd >= 0) {
		close(p->mem_fd);
		p->mem_fd = -1;
	}
	return ret;
}

void ms_proc_free(struct ms_proc *p)
{
	if (!p)
		return;
	ms_proc_detach(p);
	ms_maps_free(&p->maps);
	free(p->t);
	free(p->fk);
	free(p->q);
	free(p);
}

int ms_proc_fork_child_detach(pid_t child)
{
	/* Its first stop may not have been reported yet: wait for it, bounded. */
	for (int i = 0; i < 2000; i++) {
		int status;
		pid_t r;

		if (ptrace(PTRACE_DETACH, child, 0L, 0L) == 0)
			return 0;
		if (errno != ESRCH)
			return -errno;
		r = waitpid(child, &status, __WALL | WNOHANG);
		if (r < 0)
			return errno == ECHILD ? 0 : -errno; /* not ours (any more) */
		if (r > 0 && (WIFEXITED(status) || WIFSIGNALED(status)))
			return 0;
		if (r == 0)
			nap(1);
	}
	return -ETIMEDOUT;
}

/* ------------------------------ memory ------------------------------ */

const struct ms_maps *ms_proc_maps(struct ms_proc *p)
{
	return &p->maps;
}

static int refresh_maps(struct ms_proc *p, struct ms_error *err)
{
	struct ms_maps m;
	int r = ms_maps_read(p->pid, &m, err);

	if (r < 0)
		return r;
	ms_maps_free(&p->maps);
	p->maps = m;
	return 0;
}

int ms_proc_refresh_maps(struct ms_proc *p)
{
	return refresh_maps(p, NULL);
}

int ms_proc_refresh_maps_stopped(struct ms_proc *p, struct ms_error *err)
{
	bool stop = !p->stop_mode;
	int r;

	if (stop) {
		r = ms_proc_stop_all(p);
		if (r)
			return ms_error_set(err, r,
					    "attach: stopping process %d to read its maps: %s",
					    (int)p->pid, ms_strerror(r));
	}
	r = refresh_maps(p, err);
	if (stop)
		ms_proc_resume_all(p);
	return r;
}

void ms_proc_reader(struct ms_proc *p, struct ms_reader *r)
{
	ms_pid_reader_init(&p->pr, r, p->pid, &p->maps);
}

int ms_proc_write_mem(struct ms_proc *p, ms_raddr_t addr, const void *buf, size_t len)
{
	uint8_t check[256];
	size_t done = 0;

	if (p->detached || p->exited)
		return -ESRCH;
	if (p->mem_fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)p->pid);
		p->mem_fd = open(path, O_RDWR | O_CLOEXEC);
		if (p->mem_fd < 0)
			return -errno;
	}
	while (done < len) {
		ssize_t n = pwrite(p->mem_fd, (const char *)buf + done, len - done,
				   (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	/* Read back through the same file: a write to text that did not land must not pass. */
	for (done = 0; done < len;) {
		size_t chunk = MS_MIN(len - done, sizeof(check));
		ssize_t n = pread(p->mem_fd, check, chunk, (off_t)(addr + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n != chunk || memcmp(check, (const char *)buf + done, chunk))
			return -EIO;
		done += chunk;
	}
	return 0;
}

/* --------------------------- process facts --------------------------- */

int ms_proc_mem_summary(pid_t pid, struct ms_proc_mem_summary *out)
{
	static const struct {
		const char *key;
		size_t off;
	} fields[] = {
		{"VmRSS", offsetof(struct ms_proc_mem_summary, vm_rss)},
		{"RssAnon", offsetof(struct ms_proc_mem_summary, rss_anon)},
		{"RssFile", offsetof(struct ms_proc_mem_summary, rss_file)},
		{"VmSize", offsetof(struct ms_proc_mem_summary, vm_size)},
		{"VmData", offsetof(struct ms_proc_mem_summary, vm_data)},
	};
	char path[64], buf[8192];
	ssize_t n;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	n = ms_proc_read_status(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	for (size_t i = 0; i < MS_ARRAY_SIZE(fields); i++) {
		const char *v = ms_proc_status_field(buf, fields[i].key);
		uint64_t kb;

		if (!v)
			continue; /* kernel threads and zombies have no Vm* lines */
		kb = strtoull(v, NULL, 10);
		*(uint64_t *)((char *)out + fields[i].off) = kb * 1024;
	}
	return 0;
}

const char *ms_proc_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	if (!size)
		return buf;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	n = ms_proc_read_file(path, buf, size);
	if (n <= 0) {
		buf[0] = '\0';
		return buf;
	}
	buf[strcspn(buf, "\n")] = '\0';
	ms_terminal_clean(buf);
	return buf;
}
