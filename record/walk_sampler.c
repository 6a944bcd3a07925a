// SPDX-License-Identifier: MIT
/*
 * record, walk mode: when to stop the target, and what each thread
 * was doing at that instant.
 *
 * A sampling profiler is only as good as the independence of its instants
 * from what the threads do (doc/DESIGN.md, "walk mode: sampling instants").
 * Three things tied walk mode's stops to the target's own wake-ups:
 *   - timer slack: the kernel lets a sleep end anywhere in [t, t + slack]
 *     (50 us by default) and expires every timer whose window has opened in
 *     the same interrupt, so memspy woke with the target's sleepers and
 *     stopped them before they had run a single instruction of their burst;
 *   - a fixed period: a target whose cycle divides it is seen at one phase;
 *   - waits rounded up to whole milliseconds, another fixed grid.
 * So: slack of 1 ns on memspy's thread, intervals drawn from an exponential
 * distribution (a Poisson process: the instants are memoryless, so no
 * periodic target can lock onto them), and waits to the nanosecond.
 */
#include "record/walk_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------ instants ------------------------------ */

unsigned long ms_rec_walk_timer_slack_minimal(void)
{
	int old = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);

	/* 1 ns: the smallest the kernel takes (0 would mean "back to the default"). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	return old > 0 ? (unsigned long)old : 0;
}

void ms_rec_walk_timer_slack_restore(unsigned long old)
{
	if (old)
		prctl(PR_SET_TIMERSLACK, old, 0, 0, 0);
}

void ms_rec_walk_rng_seed(struct ms_rec_walk_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
}

/* xorshift64*: plenty for spacing samples, and no libc state shared with anyone. */
static uint64_t rng_next(struct ms_rec_walk_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

uint64_t ms_rec_walk_interval_ns(struct ms_rec_walk_rng *r, uint64_t mean_ns)
{
	/* u in (0, 1]: 53 random bits, never 0 (log(0) is -inf). */
	double u = ((double)(rng_next(r) >> 11) + 1.0) / 9007199254740992.0;
	double x = -log(u);

	/* Capped at 10 means (probability e^-10): a bounded wait, the rate unchanged. */
	return (uint64_t)((double)mean_ns * (x < 10 ? x : 10));
}

void ms_rec_walk_sleep_until(uint64_t due_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(due_ns / 1000000000ull),
			      .tv_nsec = (long)(due_ns % 1000000000ull)};

	/* Absolute, on CLOCK_MONOTONIC as ms_now_ns(): no drift, no rounding. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* --------------------------- running or asleep --------------------------- */

/*
 * A thread stopped by PTRACE_INTERRUPT while it ran user code shows
 * orig_rax = -1. One stopped inside a system call shows the call's number in
 * orig_rax and, in rax, what the call returns: a call that was waiting
 * (futex, epoll_wait, nanosleep, poll, read on a socket...) was woken by the
 * interrupt and returns one of the restart codes or -EINTR; a call that was
 * doing work, or whose wait had already ended (woken, waiting for a CPU),
 * returns its own result. The kernel restarts the call after the stop
 * (the restart codes never reach the program).
 */
#define ERESTARTSYS	      512
#define ERESTARTNOINTR	      513
#define ERESTARTNOHAND	      514
#define ERESTART_RESTARTBLOCK 516

bool ms_rec_walk_regs_sleeping(const struct user_regs_struct *regs, int *syscall_nr)
{
	long nr = (long)regs->orig_rax, ret = (long)regs->rax;

	*syscall_nr = -1;
	if (nr < 0)
		return false;
	if (ret != -ERESTARTSYS && ret != -ERESTARTNOINTR && ret != -ERESTARTNOHAND &&
	    ret != -ERESTART_RESTARTBLOCK && ret != -EINTR)
		return false;
	*syscall_nr = (int)nr;
	return true;
}

/*
 * System calls that never wait: a thread found in one at the stop was
 * running, whatever its state letter said a moment before.
 */
static bool never_waits(long nr)
{
	switch (nr) {
	case SYS_clock_gettime: /* the CPU-time clocks are always a system call */
	case SYS_clock_getres:
	case SYS_gettimeofday:
	case SYS_time:
	case SYS_getpid:
	case SYS_gettid:
	case SYS_getrusage:
	case SYS_times:
	case SYS_getcpu:
	case SYS_sched_yield:
		return true;
	default:
		return false;
	}
}

/*
 * System calls whose only work is to wait (futex: its waiting operations).
 * A thread stopped in one had not run a single instruction of its own since
 * the wait ended, whatever the wait returned.
 */
#define FUTEX_OP_WAIT		  0
#define FUTEX_OP_LOCK_PI	  6
#define FUTEX_OP_WAIT_BITSET	  9
#define FUTEX_OP_WAIT_REQUEUE_PI  11
#define FUTEX_OP_LOCK_PI2	  13
#define FUTEX_OP_CMD_MASK	  127

static bool only_waits(long nr, const struct user_regs_struct *regs)
{
	switch (nr) {
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_restart_syscall: /* resumes a wait the kernel cut short */
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait:
	case SYS_poll:
	case SYS_ppoll:
	case SYS_select:
	case SYS_pselect6:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
#ifdef SYS_futex_waitv
	case SYS_futex_waitv:
#endif
	case SYS_wait4:
	case SYS_waitid:
		return true;
	case SYS_futex:
		switch ((int)regs->rsi & FUTEX_OP_CMD_MASK) {
		case FUTEX_OP_WAIT:
		case FUTEX_OP_WAIT_BITSET:
		case FUTEX_OP_WAIT_REQUEUE_PI:
		case FUTEX_OP_LOCK_PI:
		case FUTEX_OP_LOCK_PI2:
			return true;
		default:
			return false;
		}
	default:
		return false;
	}
}

bool ms_rec_walk_asleep_at_stop(char pre_state, const struct user_regs_struct *regs,
				int *syscall_nr)
{
	bool by_regs = ms_rec_walk_regs_sleeping(regs, syscall_nr);
	long nr = (long)regs->orig_rax;

	if (nr >= 0)
		*syscall_nr = (int)nr;
	/* Found running code: it woke between the state read and the stop. */
	if (nr < 0 || never_waits(nr))
		return false;
	if (pre_state == 'S' || pre_state == 'D')
		return true;
	/*
	 * 'R' but stopped inside a call that only waits: woken, it had not run
	 * since. Most were woken by memspy's own timer interrupt, which also
	 * expires every sleep timer of that CPU whose slack window has opened
	 * (traced: 0.2-0.6 of the target's wake-ups per memspy wake-up, against
	 * 0.01 within 2 us of a random instant); the instant before it they
	 * were asleep. The rest had woken and waited for a CPU: their stack is
	 * the wait all the same.
	 */
	if (only_waits(nr, regs))
		return true;
	if (pre_state == 'R')
		return false;
	return by_regs;
}

const char *ms_rec_syscall_name(int nr)
{
	switch (nr) {
	case SYS_read:
		return "read";
	case SYS_write:
		return "write";
	case SYS_poll:
		return "poll";
	case SYS_select:
		return "select";
	case SYS_nanosleep:
		return "nanosleep";
	case SYS_pause:
		return "pause";
	case SYS_accept:
		return "accept";
	case SYS_accept4:
		return "accept4";
	case SYS_recvfrom:
		return "recvfrom";
	case SYS_recvmsg:
		return "recvmsg";
	case SYS_wait4:
		return "wait4";
	case SYS_waitid:
		return "waitid";
	case SYS_futex:
		return "futex";
	case SYS_epoll_wait:
		return "epoll_wait";
	case SYS_epoll_pwait:
		return "epoll_pwait";
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
		return "epoll_pwait2";
#endif
	case SYS_restart_syscall: /* a sleep or poll resumed after a stop (memspy's own) */
		return "restart_syscall";
	case SYS_clock_nanosleep:
		return "clock_nanosleep";
	case SYS_ppoll:
		return "ppoll";
	case SYS_pselect6:
		return "pselect6";
	case SYS_rt_sigtimedwait:
		return "rt_sigtimedwait";
	case SYS_rt_sigsuspend:
		return "rt_sigsuspend";
	case SYS_io_getevents:
		return "io_getevents";
#ifdef SYS_io_uring_enter
	case SYS_io_uring_enter:
		return "io_uring_enter";
#endif
	case SYS_msgrcv:
		return "msgrcv";
	case SYS_semop:
		return "semop";
	case SYS_semtimedop:
		return "semtimedop";
	case SYS_connect:
		return "connect";
	case SYS_sendto:
		return "sendto";
	case SYS_sendmsg:
		return "sendmsg";
	case SYS_flock:
		return "flock";
	case SYS_fcntl:
		return "fcntl";
	default:
		return NULL;
	}
}

/* ------------------------ the kernel's own accounting ------------------------ */

/* /proc/PID/task/TID/schedstat: time on a CPU, time waiting for one (ns). */
static bool read_schedstat(pid_t pid, pid_t tid, uint64_t *run, uint64_t *wait)
{
	char path[96], buf[128];
	unsigned long long r, wt;
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return false;
	buf[got] = 0;
	if (sscanf(buf, "%llu %llu", &r, &wt) != 2)
		return false;
	*run = r;
	*wait = wt;
	return true;
}

void ms_rec_walk_sched_begin(struct ms_rec_walk_sched *st, pid_t pid, const pid_t *tids, size_t n)
{
	st->tid = ms_xcalloc(n ? n : 1, sizeof(*st->tid));
	st->run = ms_xcalloc(n ? n : 1, sizeof(*st->run));
	st->wait = ms_xcalloc(n ? n : 1, sizeof(*st->wait));
	st->n = 0;
	for (size_t i = 0; i < n; i++)
		if (read_schedstat(pid, tids[i], &st->run[st->n], &st->wait[st->n]))
			st->tid[st->n++] = tids[i];
}

bool ms_rec_walk_sched_end(const struct ms_rec_walk_sched *st, pid_t pid, uint64_t wall_ns,
			   double *run_share, double *wait_share, size_t *nthreads)
{
	uint64_t run = 0, wait = 0;
	size_t both = 0;

	for (size_t i = 0; i < st->n; i++) {
		uint64_t r, wt;

		/* Threads alive at both ends only: a thread's share needs its whole window. */
		if (!read_schedstat(pid, st->tid[i], &r, &wt) || r < st->run[i] || wt < st->wait[i])
			continue;
		run += r - st->run[i];
		wait += wt - st->wait[i];
		both++;
	}
	*nthreads = both;
	if (!both || !wall_ns)
		return false;
	*run_share = (double)run / ((double)wall_ns * (double)both);
	*wait_share = (double)wait / ((double)wall_ns * (double)both);
	return true;
}

void ms_rec_walk_sched_free(struct ms_rec_walk_sched *st)
{
	free(st->tid);
	free(st->run);
	free(st->wait);
	memset(st, 0, sizeof(*st));
}

/* ------------------------- waking up on time ------------------------- */

/*
 * On a loaded machine a woken memspy waits for a CPU, and gets one when a
 * thread gives its CPU up: often a target thread ending its burst. The stop
 * then lands just after the burst, never inside it. With the lowest
 * real-time priority memspy's wake-up preempts at once, so the instant the
 * timer chose is the instant of the stop. Held from the wait until every
 * thread has been sent its interrupt (record_walk.c, interrupts_sent): the
 * rest runs at normal priority, beside the target. The price, on a loaded
 * machine only: a thread memspy preempted waits for a CPU to reach its
 * stop, so stops last longer (doc/DESIGN.md).
 */
bool ms_rec_walk_prio_realtime(bool on)
{
	struct sched_param sp = {.sched_priority = on ? 1 : 0};

	return sched_setscheduler(0, on ? SCHED_FIFO | SCHED_RESET_ON_FORK : SCHED_OTHER, &sp) == 0;
}

/* "tid (comm) S ...": the name may hold anything, ')' included; the last one ends it. */
static char state_letter(char *buf, ssize_t got)
{
	const char *close_paren;

	if (got <= 0)
		return 0;
	buf[got] = 0;
	close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' ? close_paren[2] : 0;
}

static int open_stat(pid_t pid, pid_t tid)
{
	char path[96];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/*
 * Past this many threads the files are opened for each read, as before:
 * memspy's descriptors stay bounded whatever the target's thread count.
 */
#define STATES_MAX_OPEN 256

char ms_rec_walk_states_read(struct ms_rec_walk_states *s, pid_t pid, pid_t tid, size_t hint)
{
	char buf[512];
	size_t i = hint;
	ssize_t got;
	int fd;

	if (i >= s->n || s->f[i].tid != tid)
		for (i = 0; i < s->n && s->f[i].tid != tid; i++)
			;
	if (i == s->n) {
		fd = open_stat(pid, tid);
		if (fd < 0)
			return 0;
		if (s->n == STATES_MAX_OPEN) {
			got = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			return state_letter(buf, got);
		}
		ms_xgrow((void **)&s->f, &s->cap, s->n + 1, sizeof(*s->f));
		s->f[s->n++] = (struct ms_rec_walk_state_file){.tid = tid, .fd = fd};
	}
	s->f[i].seen = true;
	/* The kernel builds the file anew at each read from offset 0. */
	got = pread(s->f[i].fd, buf, sizeof(buf) - 1, 0);
	return state_letter(buf, got);
}

void ms_rec_walk_states_prune(struct ms_rec_walk_states *s)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (!s->f[i].seen) {
			close(s->f[i].fd); /* a thread gone since: its file reads nothing more */
			continue;
		}
		s->f[k] = s->f[i];
		s->f[k++].seen = false;
	}
	s->n = k;
}

void ms_rec_walk_states_close(struct ms_rec_walk_states *s)
{
	for (size_t i = 0; i < s->n; i++)
		close(s->f[i].fd);
	free(s->f);
	memset(s, 0, sizeof(*s));
}
