// SPDX-License-Identifier: MIT
/*
 * The dead man's helper: a process that puts the target back when memspy
 * dies without doing it itself. Both helpers run on it: the probe watchdog
 * (probe_watchdog.c: patched entries, armed stubs, memspy's SIGTRAP action)
 * and the dump guard (snapshot.c: the snapshot child, a zombie only the
 * target can reap). One design, for one reason each:
 *
 * What happens when memspy is SIGKILLed: none of its code runs. The kernel
 * detaches it from every thread it traced, which then run on with whatever
 * memspy left in their memory; it kills the tracees seized with
 * PTRACE_O_EXITKILL (the snapshot child), which then wait to be reaped by
 * their parent, the target; and it closes memspy's file descriptors.
 *
 * How the helper learns it: end-of-file on a pipe whose only write end is
 * memspy's (O_CLOEXEC, and every other helper closes what it inherits), so
 * EOF comes exactly when memspy's files are closed, i.e. when it is gone,
 * however it died. A memspy that finishes says so first (its last word) and
 * the helper exits without touching anything. No polling of a pid (pids are
 * reused) and no PR_SET_PDEATHSIG (it fires on the death of the forking
 * thread, not of the process).
 *
 * Why a child of memspy, not a grandchild: memspy reaps it at the end
 * (ms_deadman_stop), so a normal run leaves nothing behind. A grandchild is
 * an orphan on every run, and the init that inherits it may never reap it
 * (in a container PID 1 is often the application itself): one zombie per
 * recording. As a child only a memspy death hands it to init, once. Its
 * status cannot mislead memspy's wait loop: the loop peeks with WNOWAIT and
 * reaps only its own tracees (collect() in proc.c), and the helper exits
 * only when told to or once memspy is gone.
 *
 * What it restores is its user's part (on_death): the watchdog clears each
 * region's armed byte at once, through /proc/PID/mem opened before memspy
 * changed anything (keep_fd: a pid reused since cannot be written by
 * mistake), then seizes the target as soon as the dead memspy's ptrace links
 * are gone and puts back the entries and the SIGTRAP action; the guard waits
 * until the snapshot child is a zombie, seizes the target and reaps it from
 * inside. Forked before the target is stopped: a fork of an ASan build costs
 * tens of ms. In its own session, with SIGINT, SIGTERM, SIGHUP and SIGPIPE
 * ignored: a Ctrl-C, kill of the process group or hang-up meant for memspy
 * must not end it too.
 */
#include "attach/attach_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What goes down the pipe: a user message, or memspy's last word. */
struct msg {
	uint64_t last; /* 1: memspy is alive and done; the helper exits */
	uint64_t a, b;
};

/* Reads one whole message; false on EOF or an error (memspy is gone). */
static bool read_msg(int fd, struct msg *m)
{
	size_t have = 0;

	while (have < sizeof(*m)) {
		ssize_t r = read(fd, (char *)m + have, sizeof(*m) - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	return true;
}

static void helper_main(int rfd, const struct ms_deadman_ops *ops, void *st)
{
	struct msg m;

	while (read_msg(rfd, &m)) {
		if (m.last)
			_exit(0); /* memspy finished: what it told us may be gone (exec) */
		if (ops->on_msg)
			ops->on_msg(st, m.a, m.b);
	}
	close(rfd);
	ops->on_death(st);
	_exit(0);
}

int ms_deadman_start(struct ms_deadman *d, const struct ms_deadman_ops *ops, void *st,
		     int keep_fd)
{
	int pfd[2];

	d->fd = -1;
	d->pid = -1;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	d->pid = fork();
	if (d->pid < 0) {
		int e = errno;

		close(pfd[0]);
		close(pfd[1]);
		return -e;
	}
	if (d->pid == 0) {
		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN); /* its one log line may go to a closed pipe */
		/* Another helper's pipe end held here would hide memspy's death from it. */
		close(pfd[1]);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != pfd[0] && fd != keep_fd)
				close(fd);
		helper_main(pfd[0], ops, st);
	}
	close(pfd[0]);
	d->fd = pfd[1];
	return 0;
}

static int send_msg(const struct ms_deadman *d, const struct msg *m)
{
	if (d->fd < 0)
		return -EBADF;
	/* Smaller than PIPE_BUF: written whole or not at all. */
	if (write(d->fd, m, sizeof(*m)) != (ssize_t)sizeof(*m))
		return -errno;
	return 0;
}

int ms_deadman_send(const struct ms_deadman *d, uint64_t a, uint64_t b)
{
	struct msg m = {.last = 0, .a = a, .b = b};

	return send_msg(d, &m);
}

void ms_deadman_stop(struct ms_deadman *d)
{
	struct msg m = {.last = 1};

	if (d->fd >= 0) {
		int rc = send_msg(d, &m);

		if (rc)
			ms_debug("deadman: telling helper %d to stand down: %s", (int)d->pid,
				 strerror(-rc));
		close(d->fd);
	}
	/* It exits as soon as it reads that (or EOF): reap it. */
	while (d->pid > 0 && waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
		;
	d->fd = -1;
	d->pid = -1;
}
