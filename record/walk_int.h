/* SPDX-License-Identifier: MIT */
/*
 * record, walk mode, private to record/walk*.c: which frames are the
 * allocator's (walk_allocator.c) and the sampler's helpers
 * (walk_sampler.c). The heap read: heapwalk's quick read (heapwalk/quick.c).
 */
#ifndef MEMSPY_RECORD_WALK_INT_H
#define MEMSPY_RECORD_WALK_INT_H

#include "record/record.h"

/* Is this symbolised frame a part of an allocator (malloc and friends, their internals)? */
bool ms_rec_frame_is_allocator(const char *function, const char *file, const char *module);
/* Is this module a runtime library an allocator call may pass through (libc, ld.so, vdso)? */
bool ms_rec_module_is_runtime(const char *module);

/* ---- walk_sampler.c: when to stop, and what a stopped thread was doing ---- */

#include <sys/types.h>
#include <sys/user.h>

/* Sets this thread's timer slack to 1 ns; returns the old value for ..._restore. */
unsigned long ms_rec_walk_timer_slack_minimal(void);
void ms_rec_walk_timer_slack_restore(unsigned long old);

struct ms_rec_walk_rng {
	uint64_t s;
};
void ms_rec_walk_rng_seed(struct ms_rec_walk_rng *r, uint64_t seed);
/* An interval drawn from the exponential distribution of this mean (capped at 10 means). */
uint64_t ms_rec_walk_interval_ns(struct ms_rec_walk_rng *r, uint64_t mean_ns);
/*
 * Real-time priority 1 (SCHED_FIFO) on, or back to SCHED_OTHER; false when
 * the system refuses (no CAP_SYS_NICE, or RLIMIT_RTPRIO is 0).
 */
bool ms_rec_walk_prio_realtime(bool on);
/* Sleeps until due_ns on CLOCK_MONOTONIC (ms_now_ns's clock), to the nanosecond. */
void ms_rec_walk_sleep_until(uint64_t due_ns);

/*
 * Registers of a thread stopped by PTRACE_INTERRUPT: was it asleep in a
 * system call (which one in *syscall_nr), or running (on a CPU or waiting
 * for one)?
 */
bool ms_rec_walk_regs_sleeping(const struct user_regs_struct *regs, int *syscall_nr);
/*
 * The threads' state letters in /proc/PID/task/TID/stat ('R' running or
 * waiting for a CPU, 'S' asleep, 'D' uninterruptible wait, ...), read just
 * before the stop: the registers after it cannot tell a sleep that ended
 * while the stop was on its way from a thread that ran. They are read while
 * memspy holds a CPU at real-time priority, which threads woken meanwhile
 * wait for: each file stays open and is read with one pread (5 threads:
 * 25-39 us on this VM, against 62-74 us opening and closing each file).
 */
struct ms_rec_walk_states {
	struct ms_rec_walk_state_file {
		pid_t tid;
		int fd;
		bool seen; /* read since the last prune */
	} *f;
	size_t n, cap;
};
/* tid's state letter, 0 when unreadable; hint: where tid was last time. */
char ms_rec_walk_states_read(struct ms_rec_walk_states *s, pid_t pid, pid_t tid, size_t hint);
/* Closes the files of threads not read since the last prune (gone). */
void ms_rec_walk_states_prune(struct ms_rec_walk_states *s);
void ms_rec_walk_states_close(struct ms_rec_walk_states *s);
/*
 * Was a thread asleep at the stop? pre_state is its state letter read just
 * before ('S' or 'D' asleep, 'R' running or waiting for a CPU, 0 unknown:
 * then the registers decide). The registers overrule the letter both ways:
 * stopped in user code (orig_rax = -1) or inside a system call that never
 * waits (clock_gettime of a CPU-time clock, getpid, ...), it ran after the
 * read; stopped inside a call that only waits (nanosleep, a futex wait,
 * poll, epoll_wait, ...), an 'R' is a wait that ended without the thread
 * running since, most often ended by the interrupt that woke memspy.
 * *syscall_nr: the call it was in, or -1.
 */
bool ms_rec_walk_asleep_at_stop(char pre_state, const struct user_regs_struct *regs,
				int *syscall_nr);

/* The threads' run and run-delay times (schedstat) at the start of a window. */
struct ms_rec_walk_sched {
	pid_t *tid;
	uint64_t *run, *wait;
	size_t n;
};
void ms_rec_walk_sched_begin(struct ms_rec_walk_sched *st, pid_t pid, const pid_t *tids, size_t n);
/*
 * Over the window since ms_rec_walk_sched_begin, for the threads alive at both ends:
 * the share of wall time they ran, and the share they waited for a CPU.
 * false when no thread was alive at both ends.
 */
bool ms_rec_walk_sched_end(const struct ms_rec_walk_sched *st, pid_t pid, uint64_t wall_ns,
			   double *run_share, double *wait_share, size_t *nthreads);
void ms_rec_walk_sched_free(struct ms_rec_walk_sched *st);

#endif
