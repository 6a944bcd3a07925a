// SPDX-License-Identifier: MIT
/*
 * A copy-on-write snapshot of a stopped target: one held thread runs an
 * injected clone() whose child is a frozen copy of the address space, the
 * target resumes at once, and memspy reads the child at leisure. One 4 KiB
 * r-x page stays mapped in the target afterwards, reused by the next dump:
 * unmapping it would be a remote syscall no self-restoring code can cover.
 */
#include "attach/attach_int.h"
#include "attach/probe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096u
/*
 * Layout of the page. [0, OFF_CLONE) never changes: the signature, its
 * layout version and the remote-syscall trampoline, compared byte for byte
 * before a page is reused. The clone code at OFF_CLONE holds the cloning
 * thread's registers and is rewritten by every dump.
 */
#define PAGE_SIG     "memspy-snapshot" /* 16 bytes with its NUL */
#define PAGE_VERSION 1u		       /* u32 at OFF_VERSION */
#define OFF_VERSION  16
#define OFF_RSYS     0x40
#define OFF_CLONE    0x100
#define RSYS_MAX     (OFF_CLONE - OFF_RSYS)
/* [OFF_CLONE, MS_PAGE_OFF_SLOTS): the clone code; then quiesce.c's return slots. */
_Static_assert(MS_PAGE_OFF_CURSOR >= OFF_CLONE + 256 && MS_PAGE_OFF_CURSOR + 4 <= MS_PAGE_OFF_SLOTS,
	       "clone code, slot cursor and slots overlap");
_Static_assert(MS_PAGE_SIZE == PAGE, "one page");
/* Signals that arrive for the cloning thread meanwhile, handed back after. */
#define MAX_REQUEUE 8
/* Bounds on stops while the clone runs: a loop here must never hang memspy. */
#define MAX_STOPS 64

struct ms_snapshot {
	pid_t pid;	 /* the child, in memspy's pid namespace (read it here) */
	pid_t ns_pid;	 /* the same child as the target sees it: clone's return value */
	pid_t thread;	 /* the target thread that ran the clone */
	ms_raddr_t page; /* the page in the target (left mapped) */
	bool tracer_reaped;
	int mem_fd; /* /proc/PID/mem of the child, -1 until opened */
	struct ms_maps maps;
	struct ms_snapshot_stats st;
};

/* ------------------------------------------------------------ the page */

static size_t put_movabs(uint8_t *c, size_t n, uint8_t rex, uint8_t op, uint64_t v)
{
	c[n++] = rex;
	c[n++] = op;
	memcpy(c + n, &v, 8);
	return n + 8;
}

/*
 * The code the cloning thread runs. After the syscall the child (rax 0)
 * calls exit_group(0) at once: it never runs a byte of the target's code.
 * The parent path matters only if memspy dies while the thread is in there
 * (normally memspy restores the registers at the syscall-exit stop): it puts
 * back every register the clone changed and jumps to where the thread was,
 * at the syscall instruction again when the kernel would have restarted an
 * interrupted call. No instruction on either path changes the flags, which
 * the syscall itself preserves (jrcxz, not test + jz).
 */
static size_t build_page(uint8_t *c, const struct user_regs_struct *s)
{
	struct user_regs_struct back = *s;
	uint64_t rax, rip;
	size_t n = 0, jrcxz;

	ms_remote_apply_restart(&back);
	rax = back.rax;
	rip = back.rip;
	c[n++] = 0x0f; /* syscall */
	c[n++] = 0x05;
	c[n++] = 0x48; /* mov rcx, rax */
	c[n++] = 0x89;
	c[n++] = 0xc1;
	jrcxz = n;
	c[n++] = 0xe3; /* jrcxz child (patched below) */
	c[n++] = 0;
	n = put_movabs(c, n, 0x48, 0xb8, rax);	  /* rax */
	n = put_movabs(c, n, 0x48, 0xb9, s->rcx); /* rcx */
	n = put_movabs(c, n, 0x49, 0xbb, s->r11); /* r11 */
	n = put_movabs(c, n, 0x48, 0xbf, s->rdi); /* rdi */
	n = put_movabs(c, n, 0x48, 0xbe, s->rsi); /* rsi */
	n = put_movabs(c, n, 0x48, 0xba, s->rdx); /* rdx */
	n = put_movabs(c, n, 0x49, 0xba, s->r10); /* r10 */
	n = put_movabs(c, n, 0x49, 0xb8, s->r8);  /* r8 */
	c[n++] = 0xff;				  /* jmp [rip+0] */
	c[n++] = 0x25;
	memset(c + n, 0, 4);
	n += 4;
	memcpy(c + n, &rip, 8);
	n += 8;
	c[jrcxz + 1] = (uint8_t)(n - (jrcxz + 2));
	c[n++] = 0xb8; /* child: mov eax, SYS_exit_group */
	c[n++] = SYS_exit_group;
	c[n++] = 0;
	c[n++] = 0;
	c[n++] = 0;
	c[n++] = 0x31; /* xor edi, edi */
	c[n++] = 0xff;
	c[n++] = 0x0f; /* syscall */
	c[n++] = 0x05;
	c[n++] = 0x0f; /* ud2: never reached */
	c[n++] = 0x0b;
	return n;
}

/*
 * Length of the stub image's self-restoring trampoline (ms_stub_rsys: syscall,
 * pop of every register and the flags, ret 128), or 0 if it is not shaped
 * as expected. Copied rather than re-assembled so that it always matches
 * the frame remote.c writes for it; it is position independent.
 */
static size_t rsys_len(void)
{
	const uint8_t *t = ms_stub_image + ms_stub_rsys;

	if (t[0] != 0x0f || t[1] != 0x05)
		return 0;
	for (size_t i = 2; i + 3 <= RSYS_MAX; i++)
		if (t[i] == 0xc2 && t[i + 1] == 0x80 && t[i + 2] == 0x00) /* ret 128 */
			return i + 3;
	return 0;
}

/* The unchanging head of the page, OFF_CLONE bytes: false without a trampoline. */
static bool build_fixed(uint8_t *c)
{
	uint32_t v = PAGE_VERSION;
	size_t n = rsys_len();

	if (!n)
		return false;
	memset(c, 0xcc, OFF_CLONE); /* int3: nothing runs between the pieces */
	memcpy(c, PAGE_SIG, sizeof(PAGE_SIG));
	memcpy(c + OFF_VERSION, &v, sizeof(v));
	memcpy(c + OFF_RSYS, ms_stub_image + ms_stub_rsys, n);
	return true;
}

/*
 * Does some thread of p have its rip in the page's clone code? (true when
 * unknown). One in quiesce.c's return slots does not matter here: the
 * clone code is rewritten, the slots are not.
 */
static bool thread_in_page(struct ms_proc *p, ms_raddr_t page)
{
	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		struct user_regs_struct r;

		if (ms_proc_get_regs(p, ms_proc_thread(p, i), &r) != 0)
			return true;
		if (r.rip >= page && r.rip < page + MS_PAGE_OFF_SLOTS)
			return true;
	}
	return false;
}

/*
 * The page an earlier dump left in pid: an anonymous private r-x mapping of
 * exactly 4 KiB whose head is byte for byte what build_fixed writes. With
 * check_threads, one that a thread is executing in (an earlier memspy died
 * mid-clone a moment ago) is passed over: its clone code is about to be
 * rewritten. 0 when there is none.
 */
static ms_raddr_t find_page(struct ms_proc *p, bool check_threads)
{
	uint8_t want[OFF_CLONE], got[OFF_CLONE];
	struct ms_maps maps;
	ms_raddr_t found = 0;

	if (!build_fixed(want) || ms_maps_read(ms_proc_pid(p), &maps, NULL) != 0)
		return 0;
	for (size_t i = 0; i < maps.n && !found; i++) {
		const struct ms_map *m = &maps.v[i];

		if (m->path || !m->r || m->w || !m->x || m->shared || m->end - m->start != PAGE)
			continue;
		if (ms_mem_read_pid(ms_proc_pid(p), m->start, got, sizeof(got)) !=
			(ssize_t)sizeof(got) ||
		    memcmp(got, want, sizeof(got)))
			continue;
		if (check_threads && thread_in_page(p, m->start)) {
			ms_debug("snapshot: a thread of %d runs in the page at 0x%" PRIx64
				 ": not reused",
				 (int)ms_proc_pid(p), m->start);
			continue;
		}
		found = m->start;
	}
	ms_maps_free(&maps);
	return found;
}

/* ------------------------------------------------------- the clone step */

/*
 * Test hook (tests/e2e/snapshot_e2e.py diein): MEMSPY_TEST_DIE_IN_CLONE=entry,
 * event or exit makes memspy SIGKILL itself at that stop of the clone, to
 * show the thread then runs the page's parent path back into its own code.
 */
static void test_die_at(const char *stop)
{
	const char *v = getenv("MEMSPY_TEST_DIE_IN_CLONE");

	if (v && !strcmp(v, stop))
		raise(SIGKILL);
}

static pid_t wait_one(pid_t tid, int *status)
{
	pid_t w;

	do
		w = waitpid(tid, status, __WALL);
	while (w < 0 && errno == EINTR);
	return w;
}

/*
 * Puts the cloning thread back: registers restored, options restored, and
 * parked in an interrupt stop. The interrupt is requested BEFORE the
 * registers are restored: it marks a signal pending, so whenever the thread
 * next returns to user mode (memspy dead or not) the kernel takes the
 * signal path, which restarts a system call the thread was stopped in;
 * from a bare syscall-exit stop it would return -ERESTARTSYS to the program.
 */
static int put_back(pid_t pid, pid_t tid, const struct user_regs_struct *saved, unsigned long opts,
		    int *requeue, int *nrq)
{
	int status, rc = 0;

	if (ptrace(PTRACE_INTERRUPT, tid, 0L, 0L) < 0)
		rc = -errno;
	if (ptrace(PTRACE_SETREGS, tid, 0L, saved) < 0 && !rc)
		rc = -errno;
	if (ptrace(PTRACE_SETOPTIONS, tid, 0L, opts) < 0 && !rc)
		rc = -errno;
	if (rc)
		return rc;
	if (ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
		return -errno;
	for (int i = 0; i < MAX_STOPS; i++) {
		if (wait_one(tid, &status) < 0)
			return -errno;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -MS_E_TARGET_EXITED;
		if (!WIFSTOPPED(status))
			continue;
		if ((status >> 16) == PTRACE_EVENT_STOP)
			return 0;
		if ((status >> 16) == 0 && *nrq < MAX_REQUEUE)
			requeue[(*nrq)++] = WSTOPSIG(status);
		if (ptrace(PTRACE_CONT, tid, 0L, 0L) < 0)
			return -errno;
	}
	ms_debug("snapshot: thread %d of %d did not reach its interrupt stop", (int)tid, (int)pid);
	return -EAGAIN;
}

/*
 * Runs the clone on tid, which sits at the page's syscall with the clone's
 * arguments. Not ms_proc_remote_syscall: that single-steps, and a thread
 * single-stepping through a syscall when its tracer dies takes a SIGTRAP on
 * the way out (measured here: the target dies), and the clone of a big
 * address space lasts tens of ms. Syscall stops instead (entry, the
 * PTRACE_EVENT_CLONE stop, exit) leave nothing pending when memspy dies:
 * the thread finishes the clone, runs the page's parent path and carries
 * on. TRACESYSGOOD makes those stops report SIGTRAP|0x80, which is no
 * signal at all should a kernel ever hand it back.
 */
static int run_clone(struct ms_snapshot *s, pid_t pid, pid_t tid, unsigned long opts,
		     const struct user_regs_struct *regs, long *ret, int *requeue, int *nrq)
{
	bool entered = false;
	int status;

	if (ptrace(PTRACE_SETOPTIONS, tid, 0L, opts | PTRACE_O_TRACESYSGOOD) < 0 ||
	    ptrace(PTRACE_SETREGS, tid, 0L, regs) < 0)
		return -errno;
	for (int i = 0; i < MAX_STOPS; i++) {
		struct user_regs_struct now;
		unsigned long msg = 0;
		int sig, event;

		if (ptrace(PTRACE_SYSCALL, tid, 0L, 0L) < 0)
			return -errno;
		if (wait_one(tid, &status) < 0)
			return -errno;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			return -MS_E_TARGET_EXITED;
		if (!WIFSTOPPED(status))
			continue;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (sig == (SIGTRAP | 0x80)) {
			if (ptrace(PTRACE_GETREGS, tid, 0L, &now) < 0)
				return -errno;
			if (now.rip != regs->rip + 2)
				return -EIO; /* not our syscall: give up, put everything back */
			if (!entered) {
				entered = true;
				s->st.t_entered = ms_now_ns();
				test_die_at("entry");
				continue;
			}
			test_die_at("exit");
			*ret = (long)now.rax;
			return 0;
		}
		if (event == PTRACE_EVENT_CLONE) {
			int cst;

			ptrace(PTRACE_GETEVENTMSG, tid, 0L, &msg);
			s->pid = (pid_t)msg;
			s->st.t_cloned = ms_now_ns();
			if (s->pid <= 0)
				continue;
			/*
			 * Auto-attached, it starts in a stop of its own. EXITKILL from
			 * now on: if memspy dies, the kernel kills the snapshot.
			 */
			if (wait_one(s->pid, &cst) < 0 || !WIFSTOPPED(cst)) {
				ms_debug("snapshot: child %d: no first stop (status 0x%x)",
					 (int)s->pid, cst);
				s->tracer_reaped = true;
				continue;
			}
			if (ptrace(PTRACE_SETOPTIONS, s->pid, 0L, PTRACE_O_EXITKILL) < 0)
				ms_debug("snapshot: PTRACE_SETOPTIONS(EXITKILL, %d): %s",
					 (int)s->pid, strerror(errno));
			test_die_at("event");
			continue;
		}
		/* A signal of the target's, before the syscall ran: hand it back afterwards. */
		if (event == 0 && sig != SIGTRAP && *nrq < MAX_REQUEUE)
			requeue[(*nrq)++] = sig;
		/* Interrupt or group-stop reports before the syscall: just go on. */
	}
	ms_debug("snapshot: thread %d of %d: clone did not finish within %d stops", (int)tid,
		 (int)pid, MAX_STOPS);
	return -EAGAIN;
}

/* ------------------------------------------------------------ helpers */

/*
 * One system call in the target. tramp: the page's trampoline, which makes
 * the thread restore itself if memspy dies meanwhile; 0 only before the
 * page exists (libc's `syscall`: a death then leaves its registers wrong).
 */
static long remote(struct ms_proc *p, pid_t tid, ms_raddr_t tramp, long nr, long a0, long a1,
		   long a2, long a3, int *rc)
{
	const long args[6] = {a0, a1, a2, a3, 0, 0};
	long ret = 0;

	*rc = ms_remote_syscall_at(p, tid, tramp, nr, args, &ret);
	return ret;
}

/* "Seccomp:" of /proc/PID/status: 0 none, 1 strict, 2 filter; -1 unknown. */
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

/* pid as its own (innermost) pid namespace numbers it: the last field of NSpid. */
static pid_t inner_pid(pid_t pid)
{
	char path[64], buf[4096];
	const char *v;
	long last = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
		return -1;
	v = ms_proc_status_field(buf, "NSpid");
	while (v && *v && *v != '\n') {
		char *end;
		long x = strtol(v, &end, 10);

		if (end == v)
			break;
		last = x;
		v = end;
	}
	return (pid_t)last;
}

static uint64_t read_u64_file(const char *path, bool *ok)
{
	char buf[64];

	*ok = ms_proc_read_file(path, buf, sizeof(buf)) > 0 && buf[0] >= '0' && buf[0] <= '9';
	return *ok ? strtoull(buf, NULL, 10) : 0;
}

/*
 * Memory left below the limit of pid's memory cgroup (v2 memory.max, or
 * v1 memory.limit_in_bytes); UINT64_MAX when there is no limit or it
 * cannot be read. *limit is the limit itself.
 */
static uint64_t cgroup_headroom(pid_t pid, uint64_t *limit)
{
	char path[160], buf[4096], file[512];
	uint64_t max, cur;
	bool ok1, ok2;
	char *line, *save = NULL;

	*limit = UINT64_MAX;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (ms_proc_read_file(path, buf, sizeof(buf)) <= 0)
		return UINT64_MAX;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *rel;

		if (!strncmp(line, "0::", 3)) {
			rel = line + 3;
			snprintf(file, sizeof(file), "/sys/fs/cgroup%s/memory.max", rel);
			max = read_u64_file(file, &ok1);
			snprintf(file, sizeof(file), "/sys/fs/cgroup%s/memory.current", rel);
			cur = read_u64_file(file, &ok2);
		} else if ((rel = strstr(line, ":memory:"))) {
			rel += 8;
			snprintf(file, sizeof(file),
				 "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", rel);
			max = read_u64_file(file, &ok1);
			snprintf(file, sizeof(file),
				 "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", rel);
			cur = read_u64_file(file, &ok2);
		} else {
			continue;
		}
		/* v1 says "no limit" with a huge page-rounded LONG_MAX. */
		if (ok1 && ok2 && max < (1ull << 60)) {
			*limit = max;
			return max > cur ? max - cur : 0;
		}
	}
	return UINT64_MAX;
}

/*
 * Copy-on-write costs memory while the walk runs: every page the target
 * writes meanwhile is copied. Declined when a quarter of the target's
 * anonymous memory is not free below its cgroup's limit or in the machine
 * (MemAvailable): an out-of-memory kill in an incident about memory could
 * pick the target. Returns 0 or -ENOMEM with err filled.
 */
static int check_headroom(pid_t pid, struct ms_error *err)
{
	struct ms_proc_mem_summary m;
	char buf[4096], a[32], b[32], c[32];
	uint64_t need, limit, room = UINT64_MAX;
	const char *v;

	if (ms_proc_mem_summary(pid, &m) != 0)
		return 0;
	need = m.rss_anon / 4;
	if (ms_proc_read_file("/proc/meminfo", buf, sizeof(buf)) > 0 &&
	    (v = ms_proc_status_field(buf, "MemAvailable")))
		room = strtoull(v, NULL, 10) * 1024;
	if (room < need)
		return ms_error_set(
		    err, -ENOMEM,
		    "snapshot: %s available on this machine, less than a quarter of "
		    "process %d's %s of anonymous memory that copy-on-write could need",
		    ms_fmt_bytes(a, sizeof(a), room), (int)pid,
		    ms_fmt_bytes(b, sizeof(b), m.rss_anon));
	room = cgroup_headroom(pid, &limit);
	if (room < need)
		return ms_error_set(
		    err, -ENOMEM,
		    "snapshot: %s left below the %s memory limit of process %d's "
		    "cgroup, less than a quarter of its %s of anonymous memory that "
		    "copy-on-write could need",
		    ms_fmt_bytes(a, sizeof(a), room), ms_fmt_bytes(c, sizeof(c), limit), (int)pid,
		    ms_fmt_bytes(b, sizeof(b), m.rss_anon));
	return 0;
}

/* Kills the child and collects its end as its tracer. Idempotent. */
static void kill_child(struct ms_snapshot *s)
{
	int status;

	if (s->pid <= 0 || s->tracer_reaped)
		return;
	kill(s->pid, SIGKILL);
	for (;;) {
		pid_t w = wait_one(s->pid, &status);

		if (w < 0 || WIFEXITED(status) || WIFSIGNALED(status))
			break; /* ECHILD: someone else collected it */
	}
	s->tracer_reaped = true;
}

/*
 * The dead child is now a zombie child of the target (its exit signal is 0,
 * so the target got no SIGCHLD and its wait()/waitpid() without __WALL
 * never sees it). Reaps it from inside: wait4(ns_pid, __WALL|WNOHANG) on
 * one thread, held briefly while the others run, through the page's
 * trampoline (the libc path only if the page is not there).
 */
static int reap_in_target(struct ms_proc *p, pid_t ns_pid, ms_raddr_t page)
{
	bool stopped_here = false;
	int rc = 0;
	pid_t tid;

	/* A target that exited left its children to init, which reaps them. */
	if (ns_pid <= 0 || ms_proc_exited(p, NULL) || ms_procfs_gone(ms_proc_pid(p)))
		return 0;
	tid = ms_proc_plain_stopped_thread(p);
	for (size_t i = 0; tid < 0 && i < ms_proc_nthreads(p) && i < 4; i++) {
		rc = ms_proc_stop_thread(p, ms_proc_thread(p, i));
		stopped_here = true;
		if (rc == -MS_E_TARGET_EXITED)
			return 0;
		tid = ms_proc_plain_stopped_thread(p);
	}
	if (tid < 0) {
		rc = -ESRCH;
		goto out;
	}
	for (int tries = 0; tries < 200; tries++) {
		long r = remote(p, tid, page ? page + OFF_RSYS : 0, SYS_wait4, ns_pid, 0,
				__WALL | WNOHANG, 0, &rc);

		if (rc)
			break;
		if (r == ns_pid || r == -ECHILD) {
			rc = 0; /* reaped, or the target reaped it itself with __WALL */
			break;
		}
		if (r < 0) {
			rc = (int)r;
			break;
		}
		rc = -EAGAIN;
		usleep(1000); /* not a zombie yet: the kill is still in flight */
	}
out:
	if (rc && !ms_procfs_gone(ms_proc_pid(p)))
		ms_warn("snapshot: the snapshot child %d may stay a zombie of process %d until it "
			"exits: wait4 in the target failed: %s",
			(int)ns_pid, (int)ms_proc_pid(p), ms_strerror(rc));
	if (stopped_here)
		ms_proc_resume_all(p);
	return rc;
}

/* ---------------------------------------------------------------- guard */

/*
 * If memspy dies while a snapshot exists, the kernel kills the child
 * (EXITKILL) and it stays a zombie child of the target, which only the
 * target can reap. The guard does it then: a dead man's helper (deadman.c)
 * told the snapshot's pids; when memspy dies with a snapshot armed it
 * seizes the target and injects the same wait4 as ms_snapshot_release.
 */
struct guard {
	pid_t target;
	int32_t pid, ns_pid; /* the armed snapshot; 0, 0: disarmed */
};

static void guard_msg(void *st, uint64_t pid, uint64_t ns_pid)
{
	struct guard *g = st;

	g->pid = (int32_t)pid;
	g->ns_pid = (int32_t)ns_pid;
}

static void guard_died(void *st)
{
	struct guard *g = st;
	struct ms_proc *p = NULL;

	if (g->ns_pid <= 0)
		return;
	ms_log_verbosity = MS_LOG_ERROR;
	/* The kernel's SIGKILL is on its way: wait (bounded) until the child is a zombie. */
	for (int i = 0; i < 2000 && !ms_procfs_gone(g->pid); i++)
		usleep(1000);
	if (ms_proc_seize(g->target, NULL, &p, NULL) == 0) {
		reap_in_target(p, g->ns_pid, find_page(p, false));
		ms_proc_free(p);
	}
}

int ms_snapshot_guard_start(pid_t target, struct ms_snapshot_guard *g)
{
	static const struct ms_deadman_ops ops = {.on_msg = guard_msg, .on_death = guard_died};
	struct guard st = {.target = target};
	struct ms_deadman d;
	int rc = ms_deadman_start(&d, &ops, &st, -1);

	g->fd = d.fd;
	g->pid = d.pid;
	return rc;
}

static void guard_send(const struct ms_snapshot_guard *g, int32_t pid, int32_t ns_pid)
{
	struct ms_deadman d = {.fd = g->fd, .pid = g->pid};
	int rc = ms_deadman_send(&d, (uint64_t)pid, (uint64_t)ns_pid);

	if (rc && g->fd >= 0)
		ms_debug("snapshot: guard: %s", strerror(-rc));
}

void ms_snapshot_guard_arm(const struct ms_snapshot_guard *g, const struct ms_snapshot *s)
{
	if (s)
		guard_send(g, s->pid, s->ns_pid);
}

void ms_snapshot_guard_disarm(const struct ms_snapshot_guard *g)
{
	guard_send(g, 0, 0);
}

void ms_snapshot_guard_stop(struct ms_snapshot_guard *g)
{
	struct ms_deadman d = {.fd = g->fd, .pid = g->pid};

	ms_deadman_stop(&d);
	g->fd = -1;
	g->pid = -1;
}

/* --------------------------------------------------------------- API */

int ms_code_page_get(struct ms_proc *p, ms_raddr_t *out, struct ms_error *err)
{
	uint8_t head[OFF_CLONE];
	pid_t pid = ms_proc_pid(p), tid;
	ms_raddr_t page;
	int rc, urc;
	long r;

	*out = 0;
	if (!build_fixed(head))
		return ms_error_set(err, -MS_E_UNSUPPORTED,
				    "snapshot: the stub image's remote-syscall trampoline is not "
				    "where it is expected (memspy build problem)");
	/*
	 * A page only memspy's injected code ever executes: never W and X at
	 * once. The one an earlier dump left is reused: the mmap below is the
	 * one remote syscall of a dump that goes through libc's `syscall`, with
	 * no trampoline yet to make the thread restore itself if memspy dies in it.
	 */
	page = find_page(p, true);
	if (page) {
		*out = page;
		return 0;
	}
	tid = ms_proc_plain_stopped_thread(p);
	if (tid < 0)
		return ms_error_set(err, -MS_E_UNSUPPORTED,
				    "snapshot: no thread of process %d in a plain stop to map "
				    "memspy's code page",
				    (int)pid);
	page = (ms_raddr_t)remote(p, tid, 0, SYS_mmap, 0, PAGE, PROT_READ | PROT_EXEC,
				  MAP_PRIVATE | MAP_ANONYMOUS, &rc);
	if (!rc && (int64_t)page < 0 && (int64_t)page > -4096)
		rc = (int)(int64_t)page;
	if (rc)
		return ms_error_set(err, rc, "snapshot: mmap in process %d failed: %s", (int)pid,
				    ms_strerror(rc));
	rc = ms_proc_write_mem(p, page, head, sizeof(head));
	if (rc) {
		ms_error_set(err, rc, "snapshot: writing the code page at 0x%" PRIx64 ": %s",
			     page, ms_strerror(rc));
		/* Not recognisable as ours, so never reused: take it back (libc path). */
		r = remote(p, tid, 0, SYS_munmap, (long)page, PAGE, 0, 0, &urc);
		if (urc || r)
			ms_debug("snapshot: munmap(0x%" PRIx64 ") in %d: %s", page, (int)pid,
				 ms_strerror(urc ? urc : (int)r));
		return rc;
	}
	*out = page;
	return 0;
}

int ms_snapshot_take(struct ms_proc *p, struct ms_snapshot **out, struct ms_error *err)
{
	struct user_regs_struct saved, regs;
	struct ms_snapshot *s;
	uint8_t code[OFF_CLONE + 256];
	pid_t pid = ms_proc_pid(p), tid;
	unsigned long opts = ms_proc_ptrace_options(p);
	int requeue[MAX_REQUEUE], nrq = 0, rc, urc, mode;
	ms_raddr_t page;
	size_t n;
	long ret = 0;

	*out = NULL;
	if (!ms_proc_all_stopped(p))
		return ms_error_set(err, -EINVAL, "snapshot: process %d is not stopped", (int)pid);
	mode = seccomp_mode(pid);
	if (mode != 0) {
		ms_error_set(
		    err, -MS_E_UNSUPPORTED,
		    "snapshot: process %d runs under seccomp (mode %d): an injected clone() "
		    "it does not allow could kill it",
		    (int)pid, mode);
		ms_error_hint(err, "the heap is walked with the process stopped instead");
		return -MS_E_UNSUPPORTED;
	}
	rc = check_headroom(pid, err);
	if (rc) {
		ms_error_hint(err, "the heap is walked with the process stopped instead");
		return rc;
	}
	tid = ms_proc_plain_stopped_thread(p);
	if (tid < 0)
		return ms_error_set(
		    err, -MS_E_UNSUPPORTED,
		    "snapshot: no thread of process %d in a plain stop (group-stopped "
		    "or signals pending)",
		    (int)pid);
	rc = ms_proc_get_regs(p, tid, &saved);
	if (rc)
		return ms_error_set(err, rc, "snapshot: registers of thread %d: %s", (int)tid,
				    ms_strerror(rc));

	s = ms_xcalloc(1, sizeof(*s));
	s->mem_fd = -1;
	s->thread = tid;
	s->st.t_start = ms_now_ns();
	if (!build_fixed(code)) {
		free(s);
		return ms_error_set(err, -MS_E_UNSUPPORTED,
				    "snapshot: the stub image's remote-syscall trampoline is not "
				    "where it is expected (memspy build problem)");
	}
	n = OFF_CLONE + build_page(code + OFF_CLONE, &saved);
	rc = ms_code_page_get(p, &page, err);
	if (!rc) {
		rc = ms_proc_write_mem(p, page + OFF_CLONE, code + OFF_CLONE, n - OFF_CLONE);
		if (rc)
			ms_error_set(err, rc,
				     "snapshot: writing the clone code at 0x%" PRIx64 ": %s",
				     page + OFF_CLONE, ms_strerror(rc));
	}
	if (rc) {
		free(s);
		return rc;
	}
	s->page = page;
	s->st.t_page = ms_now_ns();

	regs = saved;
	regs.rip = page + OFF_CLONE;
	regs.orig_rax = (unsigned long long)-1; /* no restart of what the thread was in */
	regs.rax = SYS_clone;
	/*
	 * exit_signal 0: no SIGCHLD for the target, and its wait() without
	 * __WALL never sees the child. CLONE_FILES: the child shares the fd
	 * table instead of holding copies, so a pipe or socket the target
	 * closes meanwhile really closes. No CLONE_VM: the copy is the point.
	 */
	regs.rdi = CLONE_FILES;
	regs.rsi = 0; /* new stack: none, the child never runs */
	regs.rdx = 0;
	regs.r10 = 0;
	regs.r8 = 0;
	rc = run_clone(s, pid, tid, opts, &regs, &ret, requeue, &nrq);
	if (rc == -MS_E_TARGET_EXITED) {
		kill_child(s);
		free(s);
		return ms_error_set(err, rc, "snapshot: process %d exited", (int)pid);
	}
	urc = put_back(pid, tid, &saved, opts, requeue, &nrq);
	for (int i = 0; i < nrq; i++)
		syscall(SYS_tgkill, pid, tid, requeue[i]);
	s->st.t_back = ms_now_ns();
	if (urc == -MS_E_TARGET_EXITED) {
		kill_child(s);
		free(s);
		return ms_error_set(err, urc, "snapshot: process %d exited", (int)pid);
	}
	if (urc) {
		ms_warn("snapshot: thread %d of %d could not be put back cleanly: %s", (int)tid,
			(int)pid, ms_strerror(urc));
		if (!rc)
			rc = urc;
	}
	if (!rc && ret > 0)
		s->ns_pid = (pid_t)ret;
	if (!rc && ret <= 0) {
		rc = (int)ret;
		if (ret == -K_ERESTARTNOINTR)
			rc = -EINTR;
	}
	if (!rc && s->pid <= 0)
		rc = -EPROTO; /* cloned, but no PTRACE_EVENT_CLONE: the child runs untraced */
	if (rc)
		ms_error_set(err, rc, "snapshot: clone() in process %d failed: %s", (int)pid,
			     ms_strerror(rc));
	s->st.t_end = ms_now_ns();
	if (!rc && s->tracer_reaped)
		rc = ms_error_set(err, -ESRCH, "snapshot: the child of process %d died at once",
				  (int)pid);
	if (!rc) {
		char path[64];

		rc = ms_maps_read(s->pid, &s->maps, err);
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)s->pid);
		if (!rc && (s->mem_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			rc = -errno;
			ms_error_set(err, rc, "snapshot: open %s: %s", path, ms_strerror(rc));
		}
	}
	if (rc) {
		if (ret > 0 && !s->ns_pid)
			s->ns_pid = (pid_t)ret;
		if (s->pid > 0 && !s->ns_pid && !s->tracer_reaped)
			s->ns_pid = inner_pid(s->pid);
		ms_snapshot_release(p, s);
		return rc;
	}
	ms_debug("snapshot: child %d (%d in the target) of %d: page %.2f ms, clone %.2f ms, "
		 "put back %.2f ms",
		 (int)s->pid, (int)s->ns_pid, (int)pid, (s->st.t_page - s->st.t_start) / 1e6,
		 (s->st.t_cloned - s->st.t_entered) / 1e6, (s->st.t_back - s->st.t_cloned) / 1e6);
	*out = s;
	return 0;
}

/*
 * Reads go through /proc/PID/mem, not process_vm_readv: that one pins the
 * pages it reads (FOLL_PIN), and since Linux 5.19 pinning a copy-on-write
 * shared anonymous page for reading makes the kernel copy it first
 * ("unshare"). Measured here: reading a fresh 2.4 GiB snapshot that way
 * copied every page, 5-10 s of system time and the memory doubled. The
 * /proc/PID/mem path takes plain references and copies nothing.
 */
static bool snap_readable(const struct ms_maps *maps, ms_raddr_t a, size_t *len)
{
	const struct ms_map *m = ms_maps_find(maps, a);

	if (!m || !m->r)
		return false;
	*len = (size_t)MS_MIN((uint64_t)*len, m->end - a);
	return true;
}

static ssize_t snap_read(void *ctx, ms_raddr_t addr, void *buf, size_t len)
{
	struct ms_snapshot *s = ctx;
	size_t done = 0;

	while (done < len) {
		size_t want = len - done;
		ssize_t n;

		if (!snap_readable(&s->maps, addr + done, &want))
			break;
		n = pread(s->mem_fd, (char *)buf + done, want, (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!done && n < 0 && errno != EIO && errno != EFAULT)
				return -errno;
			break;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t snap_readv(void *ctx, const struct ms_rvec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		ssize_t r = snap_read(ctx, v[i].addr, v[i].buf, v[i].len);

		if (r < 0)
			return i ? (ssize_t)i : r;
		if ((size_t)r != v[i].len)
			break;
	}
	return (ssize_t)i;
}

pid_t ms_snapshot_pid(const struct ms_snapshot *s)
{
	return s->pid;
}

const struct ms_maps *ms_snapshot_maps(const struct ms_snapshot *s)
{
	return &s->maps;
}

void ms_snapshot_reader(struct ms_snapshot *s, struct ms_reader *r)
{
	r->read = snap_read;
	r->readv = snap_readv;
	r->ctx = s;
}

const struct ms_snapshot_stats *ms_snapshot_stats(const struct ms_snapshot *s)
{
	return &s->st;
}

int ms_snapshot_release(struct ms_proc *p, struct ms_snapshot *s)
{
	int rc;

	if (!s)
		return 0;
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	kill_child(s);
	rc = reap_in_target(p, s->ns_pid, s->page);
	ms_maps_free(&s->maps);
	free(s);
	return rc;
}
