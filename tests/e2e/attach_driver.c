// SPDX-License-Identifier: MIT
/*
 * attach_driver: end-to-end tests of attach/ against the real
 * attach_threads target (tests/targets/attach_threads). One mode per test:
 *   attach_driver MODE TARGET [MEMSPY]  MODE: stress signal-int signal-term exit
 *                                        groupstop modules errors cli
 * Exit 0 pass, 1 fail, 77 when ptrace is not permitted here.
 */
#include "attach/attach.h"
#include "tests/lib/mstest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_TIMEOUT_MS 20000



struct child {
	pid_t pid;
	int in;  /* write commands here */
	int out; /* read its stdout here */
	char buf[65536];
	size_t len;
};

static struct child target;

static void kill_target(void)
{
	if (target.pid > 0) {
		kill(target.pid, SIGKILL);
		waitpid(target.pid, NULL, 0);
		target.pid = 0;
	}
}

static int spawn(struct child *c, const char *path)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		/* If the driver dies (ctest TIMEOUT), the target goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		ms_signals_reset_for_child();
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	c->len = 0;
	return 0;
}

/* Next line of the child's output into line; 0, or -1 on EOF/timeout. */
static int read_line(struct child *c, char *line, size_t size, int timeout_ms)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = {.fd = c->out, .events = POLLIN};
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - c->buf);

			snprintf(line, size, "%.*s", (int)l, c->buf);
			memmove(c->buf, nl + 1, c->len - l - 1);
			c->len -= l + 1;
			return 0;
		}
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static void send_cmd(struct child *c, const char *cmd)
{
	if (write(c->in, cmd, strlen(cmd)) < 0)
		perror("write to target");
}

static int start_target(const char *path)
{
	char line[256];

	if (spawn(&target, path) < 0 || read_line(&target, line, sizeof(line), LINE_TIMEOUT_MS) ||
	    strncmp(line, "ready ", 6)) {
		fprintf(stderr, "target did not start\n");
		kill_target();
		return -1;
	}
	return 0;
}

/* Tells the target to finish, reads its verdict, reaps it. 0 when it printed ok and exited 0. */
static int finish_target(int expect_rtsig)
{
	char line[256];
	int status = 0, rt = -1;
	const char *p;

	send_cmd(&target, "q\n");
	if (read_line(&target, line, sizeof(line), LINE_TIMEOUT_MS)) {
		fprintf(stderr, "FAIL: no verdict from the target\n");
		kill_target();
		return -1;
	}
	waitpid(target.pid, &status, 0);
	target.pid = 0;
	fprintf(stderr, "target: %s\n", line);
	CHECK(!strncmp(line, "ok ", 3), "target verdict: %s", line);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "target status %#x", status);
	p = strstr(line, "rtsig=");
	if (p)
		rt = atoi(p + 6);
	if (expect_rtsig >= 0)
		CHECK(rt == expect_rtsig, "target counted %d realtime signals, %d sent", rt,
		      expect_rtsig);
	return 0;
}

static int cmp_pid(const void *a, const void *b)
{
	return *(const pid_t *)a - *(const pid_t *)b;
}

/* With every thread stopped, the thread table must equal /proc/PID/task. */
static int check_table(struct ms_proc *p)
{
	pid_t proc_tids[4096], tab[4096];
	size_t n = 0, m = ms_proc_nthreads(p);
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)ms_proc_pid(p));
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) && n < 4096)
		if (atoi(de->d_name) > 0)
			proc_tids[n++] = atoi(de->d_name);
	closedir(d);
	if (m > 4096)
		return -1;
	for (size_t i = 0; i < m; i++)
		tab[i] = ms_proc_thread(p, i);
	qsort(proc_tids, n, sizeof(pid_t), cmp_pid);
	qsort(tab, m, sizeof(pid_t), cmp_pid);
	if (n != m || memcmp(proc_tids, tab, n * sizeof(pid_t))) {
		fprintf(stderr, "thread table (%zu) differs from /proc (%zu)\n", m, n);
		return -1;
	}
	return 0;
}

/* Drains events for up to ms milliseconds; returns the last event kind seen of interest. */
static int pump(struct ms_proc *p, int ms, int *exited_status)
{
	struct ms_event ev;
	int seen = -1;

	for (int i = 0; i < ms; i++) {
		if (ms_proc_wait(p, 1, &ev))
			return -1;
		if (ev.kind == MS_EV_TIMEOUT)
			continue;
		seen = ev.kind;
		if (ev.kind == MS_EV_EXITED) {
			if (exited_status)
				*exited_status = ev.status;
			return seen;
		}
		if (ev.kind == MS_EV_STOP_REQUEST)
			return seen;
		if (ev.kind == MS_EV_TRAP)
			ms_proc_cont_thread(p, ev.tid);
		if (ev.kind == MS_EV_FORK)
			ms_proc_fork_child_detach(ev.child);
	}
	return seen;
}

static int seize_or_skip(pid_t pid, struct ms_proc **p)
{
	struct ms_error err = {0};
	int r = ms_proc_seize(pid, NULL, p, &err);

	if (r == -EPERM) {
		fprintf(stderr, "SKIP: ptrace not permitted here: %s (%s)\n", err.msg, err.hint);
		return 77;
	}
	if (r) {
		fprintf(stderr, "FAIL: seize: %s\nhint: %s\n", err.msg, err.hint);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */

static int mode_stress(void)
{
	struct ms_proc *p;
	int r, rtsent = 0, stops = 200;
	size_t max_threads = 0;

	r = seize_or_skip(target.pid, &p);
	if (r)
		return r;
	for (int i = 0; i < stops; i++) {
		struct user_regs_struct regs;

		r = ms_proc_stop_all(p);
		CHECK(r == 0, "stop_all round %d: %s", i, ms_strerror(r));
		if (r)
			break;
		CHECK(ms_proc_all_stopped(p), "round %d", i);
		CHECK(check_table(p) == 0, "round %d", i);
		max_threads = MS_MAX(max_threads, ms_proc_nthreads(p));
		for (size_t t = 0; t < ms_proc_nthreads(p); t++) {
			r = ms_proc_get_regs(p, ms_proc_thread(p, t), &regs);
			CHECK(r == 0 && regs.rip != 0, "regs of %d: %s", (int)ms_proc_thread(p, t),
			      ms_strerror(r));
		}
		if (i % 10 == 0) {
			/* A signal for the target while it is stopped: must be passed on. */
			kill(target.pid, SIGRTMIN);
			rtsent++;
		}
		ms_proc_resume_all(p);
		pump(p, i % 3, NULL);
	}
	fprintf(stderr, "stress: %d stop/resume rounds, up to %zu threads\n", stops, max_threads);
	CHECK(max_threads >= 6, "expected 4 workers + main + spawner, saw %zu", max_threads);
	r = ms_proc_detach(p);
	CHECK(r == 0, "detach: %s", ms_strerror(r));
	CHECK(ms_proc_detach(p) == 0, "second detach");
	ms_proc_free(p);
	finish_target(rtsent);
	return ms_test_failures ? 1 : 0;
}

/* The loop memspy's commands run, interrupted by SIGINT/SIGTERM from another process. */
static int mode_signal(int sig)
{
	struct ms_proc *p;
	int go[2], r, rounds = 0;
	pid_t helper;
	bool asked = false;

	ms_signals_init();
	if (pipe(go))
		return 1;
	helper = fork();
	if (helper == 0) {
		char b;

		ms_signals_reset_for_child();
		if (read(go[0], &b, 1) == 1)
			kill(getppid(), sig);
		_exit(0);
	}
	close(go[0]);
	r = seize_or_skip(target.pid, &p);
	if (r) {
		close(go[1]);
		waitpid(helper, NULL, 0);
		return r;
	}
	for (;;) {
		struct ms_event ev;

		if (ms_proc_wait(p, 5, &ev)) {
			CHECK(0, "wait failed");
			break;
		}
		if (ev.kind == MS_EV_STOP_REQUEST)
			break;
		if (ev.kind == MS_EV_EXITED) {
			CHECK(0, "target exited");
			break;
		}
		if (ev.kind == MS_EV_TRAP)
			ms_proc_cont_thread(p, ev.tid);
		if (ev.kind != MS_EV_TIMEOUT)
			continue;
		r = ms_proc_stop_all(p);
		CHECK(r == 0, "stop_all: %s", ms_strerror(r));
		ms_proc_resume_all(p);
		if (++rounds == 30 && !asked) {
			/* Now ask the helper to signal us while we are attached and looping. */
			if (write(go[1], "g", 1) != 1)
				CHECK(0, "helper pipe");
			asked = true;
		}
		CHECK(rounds < 100000, "no stop request arrived");
		if (rounds >= 100000)
			break;
	}
	CHECK(ms_signals_stop_requested() == sig, "stop signal %d, expected %d",
	      ms_signals_stop_requested(), sig);
	fprintf(stderr, "signal %d: stop requested after %d rounds; detaching\n", sig, rounds);
	r = ms_proc_detach(p);
	CHECK(r == 0, "detach: %s", ms_strerror(r));
	ms_proc_free(p);
	close(go[1]);
	waitpid(helper, NULL, 0);
	finish_target(-1);
	return ms_test_failures ? 1 : 0;
}

static int mode_exit(void)
{
	struct ms_proc *p;
	int r, status = -1, seen = -1, st = 0;

	r = seize_or_skip(target.pid, &p);
	if (r)
		return r;
	/* Stop and resume once so the exit comes while memspy has been busy with it. */
	CHECK(ms_proc_stop_all(p) == 0, "stop_all");
	ms_proc_resume_all(p);
	send_cmd(&target, "x\n");
	for (int i = 0; i < 200 && seen != MS_EV_EXITED; i++)
		seen = pump(p, 100, &status);
	CHECK(seen == MS_EV_EXITED, "no MS_EV_EXITED (last %d)", seen);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7, "exit status %#x", status);
	CHECK(ms_proc_exited(p, &st) && st == status, "ms_proc_exited");
	CHECK(ms_proc_stop_all(p) == -MS_E_TARGET_EXITED, "stop_all after exit");
	CHECK(ms_proc_detach(p) == 0, "detach after exit");
	ms_proc_free(p);
	/* memspy is tracer and parent here: its wait loop reaped the status. */
	r = waitpid(target.pid, &status, WNOHANG);
	CHECK(r == -1 && errno == ECHILD, "target not reaped: r=%d", r);
	target.pid = 0;
	fprintf(stderr, "exit: MS_EV_EXITED with status 7\n");
	return ms_test_failures ? 1 : 0;
}

static char proc_state(pid_t pid, pid_t tid)
{
	char path[96], buf[512];
	int fd;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : 0;
}

static int mode_groupstop(void)
{
	struct ms_proc *p;
	char line[256];
	int r, got;
	struct pollfd pfd;

	r = seize_or_skip(target.pid, &p);
	if (r)
		return r;
	send_cmd(&target, "p\n");
	CHECK(read_line(&target, line, sizeof(line), LINE_TIMEOUT_MS) == 0 && !strcmp(line, "pong"),
	      "pong before SIGSTOP");
	kill(target.pid, SIGSTOP);
	pump(p, 200, NULL);
	/* Stopped by job control: a ping stays unanswered while memspy keeps looping. */
	send_cmd(&target, "p\n");
	pump(p, 200, NULL);
	CHECK(ms_proc_stop_all(p) == 0, "stop_all in a group-stop");
	ms_proc_resume_all(p);
	pump(p, 100, NULL);
	pfd.fd = target.out;
	pfd.events = POLLIN;
	got = poll(&pfd, 1, 0);
	CHECK(got == 0, "the target answered while SIGSTOPped (job control broken)");
	kill(target.pid, SIGCONT);
	/* The pending ping is answered once it runs again. */
	for (int i = 0; i < 200; i++) {
		pump(p, 10, NULL);
		if (poll(&pfd, 1, 0) > 0)
			break;
	}
	CHECK(read_line(&target, line, sizeof(line), LINE_TIMEOUT_MS) == 0 && !strcmp(line, "pong"),
	      "pong after SIGCONT");
	/* Detach during a group-stop: the target must stay stopped, as without memspy. */
	kill(target.pid, SIGSTOP);
	pump(p, 200, NULL);
	CHECK(ms_proc_detach(p) == 0, "detach in a group-stop");
	ms_proc_free(p);
	{
		char st = 0;

		for (int i = 0; i < 2000 && st != 'T'; i++) {
			st = proc_state(target.pid, target.pid);
			if (st != 'T')
				usleep(1000);
		}
		CHECK(st == 'T', "after detach in a group-stop the state is '%c', not 'T'", st);
	}
	kill(target.pid, SIGCONT);
	finish_target(-1);
	fprintf(stderr, "groupstop: done\n");
	return ms_test_failures ? 1 : 0;
}

static int mode_modules(void)
{
	struct ms_maps maps;
	struct ms_modules mods;
	char line[4096];
	int nbias = 0, nsym = 0;

	send_cmd(&target, "a\n");
	CHECK(ms_maps_read(target.pid, &maps, NULL) == 0, "maps");
	CHECK(ms_modules_load(target.pid, &maps, &mods) == 0, "modules_load");
	for (size_t i = 0; i < mods.n; i++) {
		char hex[129];

		fprintf(stderr, "module %-40s bias %#llx id %s%s\n", mods.v[i].path,
			(unsigned long long)mods.v[i].bias,
			ms_module_build_id_hex(&mods.v[i], hex, sizeof(hex)),
			mods.v[i].is_exec ? " (exec)" : "");
	}
	while (read_line(&target, line, sizeof(line), LINE_TIMEOUT_MS) == 0 && strcmp(line, "end")) {
		unsigned long a;
		char id[200], path[3000], name[200];

		if (sscanf(line, "bias %lx %199s %2999s", &a, id, path) == 3) {
			const struct ms_module *m = NULL;
			char hex[129];

			if (!strcmp(path, "-")) {
				/* The main program: dlpi_name is empty for it. */
				for (size_t i = 0; i < mods.n; i++)
					if (mods.v[i].is_exec)
						m = &mods.v[i];
			} else {
				/* The loader's names may go through symlinks (/lib -> usr/lib). */
				char real[4096], mreal[4096];

				if (!realpath(path, real))
					snprintf(real, sizeof(real), "%s", path);
				for (size_t i = 0; i < mods.n; i++)
					if (realpath(mods.v[i].path, mreal) && !strcmp(mreal, real))
						m = &mods.v[i];
			}
			if (!m && !strcmp(path, "linux-vdso.so.1"))
				continue; /* not a file */
			CHECK(m != NULL, "no module for %s", path);
			if (!m)
				continue;
			CHECK(m->bias == a, "%s: bias %#llx, target says %#lx", path,
			      (unsigned long long)m->bias, a);
			if (strcmp(id, "-"))
				CHECK(!strcmp(ms_module_build_id_hex(m, hex, sizeof(hex)), id),
				      "%s: build id %s, target says %s", path, hex, id);
			nbias++;
		} else if (sscanf(line, "sym %199s %lx", name, &a) == 2) {
			const struct ms_module *m = ms_modules_find(&mods, a);
			ms_raddr_t addr = 0;
			uint64_t size = 0;

			CHECK(m != NULL, "no module contains %s at %#lx", name, a);
			if (!m)
				continue;
			CHECK(ms_module_symbol(m, name, &addr, &size) == 0 && addr == a,
			      "%s in %s: memspy %#llx, target %#lx", name, m->path,
			      (unsigned long long)addr, a);
			if (!strcmp(name, "malloc"))
				CHECK(m == ms_modules_find_name(&mods, "libc.so"),
				      "malloc not in libc but %s", m->path);
			else
				CHECK(m->is_exec, "%s not in the executable", name);
			nsym++;
		}
	}
	CHECK(nbias >= 3 && nsym == 2, "compared %d biases, %d symbols", nbias, nsym);
	fprintf(stderr, "modules: %d biases and build ids, %d symbols match the target's own view\n",
		nbias, nsym);
	{
		ms_raddr_t a;

		CHECK(ms_module_symbol(ms_modules_find_name(&mods, "libc.so"),
				       "no_such_symbol_memspy", &a, NULL) == -MS_E_NOT_FOUND,
		      "missing symbol");
	}
	ms_modules_free(&mods);
	ms_maps_free(&maps);
	finish_target(-1);
	return ms_test_failures ? 1 : 0;
}

/* Seizes pid expecting failure code want; checks that msg and hint contain the given words. */
static void expect_error(const char *what, pid_t pid, int want, const char *in_msg,
			 const char *in_hint)
{
	struct ms_error err = {0};
	struct ms_proc *p = NULL;
	int r = ms_proc_seize(pid, NULL, &p, &err);

	fprintf(stderr, "%s: seize(%d) = %s\n  memspy: %s\n  hint: %s\n", what, (int)pid,
		ms_strerror(r), err.msg, err.hint);
	CHECK(r == want, "%s: got %s, want %s", what, ms_strerror(r), ms_strerror(want));
	CHECK(p == NULL, "%s: a proc was returned", what);
	CHECK(err.code == r, "%s: err.code %d", what, err.code);
	CHECK(!in_msg || strstr(err.msg, in_msg), "%s: message lacks \"%s\"", what, in_msg);
	CHECK(!in_hint || strstr(err.hint, in_hint), "%s: hint lacks \"%s\"", what, in_hint);
	if (p)
		ms_proc_free(p);
	/* ms_proc_check diagnoses the same cases without attaching. */
	memset(&err, 0, sizeof(err));
	r = ms_proc_check(pid, &err);
	CHECK(r == want, "%s: check got %s, want %s", what, ms_strerror(r), ms_strerror(want));
}

static pid_t find_kthread(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	while (d && (de = readdir(d)) && !found) {
		char path[300], buf[1024], *p;
		unsigned long flags;
		int fd;
		ssize_t n;

		if (atoi(de->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) == 1 &&
		    (flags & 0x00200000ul))
			found = atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static int mode_errors(void)
{
	int sync[2], status;
	pid_t c, tracer, kt;
	char b;

	/* No such process: a pid that just exited and was reaped. */
	c = fork();
	if (c == 0)
		_exit(0);
	waitpid(c, NULL, 0);
	expect_error("no such process", c, -ESRCH, "no such process", "pgrep");

	expect_error("memspy itself", getpid(), -MS_E_SELF, "memspy itself", NULL);

	kt = find_kthread();
	if (kt)
		expect_error("kernel thread", kt, -MS_E_KERNEL_THREAD, "kernel thread",
			     "user-space process");
	else
		fprintf(stderr, "kernel thread: none visible in this pid namespace; case skipped\n");

	/* A zombie: exited, not reaped (waitid WNOWAIT waits for that without reaping). */
	c = fork();
	if (c == 0)
		_exit(0);
	{
		siginfo_t si;

		waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT);
	}
	expect_error("zombie", c, -MS_E_ZOMBIE, "zombie", "its parent has not reaped it");
	waitpid(c, NULL, 0);

	/* A thread id that is not a process id. */
	{
		char path[64];
		struct dirent *de;
		DIR *d;
		pid_t tid = 0;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)target.pid);
		d = opendir(path);
		while (d && (de = readdir(d)))
			if (atoi(de->d_name) > 0 && atoi(de->d_name) != target.pid &&
			    (!tid || atoi(de->d_name) < tid))
				tid = atoi(de->d_name);
		if (d)
			closedir(d);
		/* Short-lived threads come and go: a worker's tid stays. The
		 * workers start first, so the lowest tid after the leader's is one. */
		if (tid)
			expect_error("thread id", tid, -EINVAL, "thread id", "--pid");
	}

	/* Already traced: another tracer holds the target. */
	if (pipe(sync))
		return 1;
	tracer = fork();
	if (tracer == 0) {
		prctl(PR_SET_NAME, "fake-gdb");
		if (ptrace(PTRACE_SEIZE, target.pid, 0L, 0L) < 0) {
			perror("fake-gdb: PTRACE_SEIZE");
			_exit(3);
		}
		if (write(sync[1], "s", 1) != 1)
			_exit(4);
		/* Hold it until the driver kills us (a tracer's death detaches). */
		for (;;)
			pause();
	}
	close(sync[1]);
	if (read(sync[0], &b, 1) != 1) {
		CHECK(0, "the fake tracer could not seize the target");
	} else {
		char want[64];

		snprintf(want, sizeof(want), "fake-gdb (pid %d)", (int)tracer);
		expect_error("already traced", target.pid, -MS_E_ALREADY_TRACED, want,
			     "detach fake-gdb");
	}
	kill(tracer, SIGKILL);
	waitpid(tracer, NULL, 0);
	close(sync[0]);

	/* Another user: run the seize as nobody against the root-owned target. */
	if (geteuid() == 0) {
		c = fork();
		if (c == 0) {
			ms_test_failures = 0;
			if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
				_exit(77);
			expect_error("another user", target.pid, -EPERM,
				     "Operation not permitted", "belongs to uid 0");
			_exit(ms_test_failures ? 1 : 0);
		}
		waitpid(c, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			fprintf(stderr, "another user: cannot switch to uid 65534; case skipped\n");
		else
			CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "another-user case failed (status %#x)", status);
	}

	/* After all that, the target is unharmed. */
	finish_target(-1);
	return ms_test_failures ? 1 : 0;
}

/* Copies file from to (created with mode); 0 or -1. */
static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, rc = 0;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -1;
			break;
		}
	if (n < 0 || fchmod(out, mode))
		rc = -1;
	close(in);
	if (close(out))
		rc = -1;
	return rc;
}

/* Runs memspy with args as uid (or -1 for ours); returns its exit status, stderr into err. */
static int run_memspy(const char *memspy, const char *const *args, int uid, char *err,
		      size_t size)
{
	const char *argv[16];
	int pfd[2], status = 0;
	size_t n = 0, len = 0;
	pid_t c;

	argv[n++] = memspy;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe(pfd))
		return -1;
	c = fork();
	if (c == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		if (uid >= 0 && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(99);
		execv(memspy, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], err + len, size - 1 - len);

		if (r <= 0)
			break;
		len += (size_t)r;
		if (len + 1 >= size)
			break;
	}
	err[len] = '\0';
	close(pfd[0]);
	waitpid(c, &status, 0);
	fprintf(stderr, "$ memspy");
	for (size_t i = 1; argv[i]; i++)
		fprintf(stderr, " %s", argv[i]);
	fprintf(stderr, "\n%s", err);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_cli(const char *memspy, const char *const *args, int uid, int want_rc,
		       const char *want1, const char *want2)
{
	char err[8192];
	int rc = run_memspy(memspy, args, uid, err, sizeof(err));

	CHECK(rc == want_rc, "exit %d, want %d", rc, want_rc);
	CHECK(!want1 || strstr(err, want1), "stderr lacks \"%s\"", want1);
	CHECK(!want2 || strstr(err, want2), "stderr lacks \"%s\"", want2);
}

/* The same diagnoses through the real binary: `memspy record/dump --pid N`. */
static int mode_cli(const char *memspy)
{
	char pid[32], gone[32], zpid[32], kpid[32];
	pid_t c, tracer, kt;
	int sync[2];
	char b;

	snprintf(pid, sizeof(pid), "%d", (int)target.pid);
	c = fork();
	if (c == 0)
		_exit(0);
	waitpid(c, NULL, 0);
	snprintf(gone, sizeof(gone), "%d", (int)c);
	expect_cli(memspy, (const char *const[]){"record", "--pid", gone, "-d", "1", "-o",
						  "/tmp/memspy-attach-cli.svg", NULL},
		   -1, 2, "no such process", "hint: check the pid with `pgrep");
	expect_cli(memspy, (const char *const[]){"dump", "--pid", gone, NULL}, -1, 2,
		   "no such process", "pgrep");

	kt = find_kthread();
	if (kt) {
		snprintf(kpid, sizeof(kpid), "%d", (int)kt);
		expect_cli(memspy, (const char *const[]){"dump", "--pid", kpid, NULL}, -1, 2,
			   "is a kernel thread", "hint: kernel threads");
	}

	c = fork();
	if (c == 0)
		_exit(0);
	{
		siginfo_t si;

		waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT);
	}
	snprintf(zpid, sizeof(zpid), "%d", (int)c);
	expect_cli(memspy, (const char *const[]){"dump", "--pid", zpid, NULL}, -1, 2,
		   "is a zombie", "its parent has not reaped it");
	waitpid(c, NULL, 0);

	/* An unwritable output fails before attaching: a traced target would say so otherwise. */
	if (pipe(sync))
		return 1;
	tracer = fork();
	if (tracer == 0) {
		prctl(PR_SET_NAME, "fake-gdb");
		if (ptrace(PTRACE_SEIZE, target.pid, 0L, 0L) < 0 || write(sync[1], "s", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	if (read(sync[0], &b, 1) == 1) {
		char want[64];

		snprintf(want, sizeof(want), "already traced by fake-gdb (pid %d)", (int)tracer);
		expect_cli(memspy, (const char *const[]){"record", "--pid", pid, "-d", "1", "-o",
							  "/nonexistent/dir/x.svg", NULL},
			   -1, 2, "/nonexistent/dir/x.svg", NULL);
		CHECK(access("/nonexistent/dir/x.svg", F_OK) != 0, "a file was left");
		expect_cli(memspy, (const char *const[]){"dump", "--pid", pid, NULL}, -1, 2, want,
			   "detach fake-gdb");
	} else {
		CHECK(0, "the fake tracer could not seize the target");
	}
	kill(tracer, SIGKILL);
	waitpid(tracer, NULL, 0);
	close(sync[0]);
	close(sync[1]);

	if (geteuid() == 0) {
		/* uid 65534 may not reach the build tree (a clone under /root is 0700):
		 * run a copy of the binary from a directory anyone can read. */
		char dir[] = "/tmp/memspy-nobody.XXXXXX", copy[sizeof(dir) + 8];

		if (mkdtemp(dir) && chmod(dir, 0755) == 0) {
			snprintf(copy, sizeof(copy), "%s/memspy", dir);
			CHECK(copy_file(memspy, copy, 0755) == 0, "copying %s to %s", memspy, copy);
			expect_cli(copy, (const char *const[]){"dump", "--pid", pid, NULL}, 65534,
				   2, "Operation not permitted", "belongs to uid 0");
			unlink(copy);
			rmdir(dir);
		} else {
			CHECK(0, "mkdtemp %s: %s", dir, strerror(errno));
		}
	}

	finish_target(-1);
	return ms_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: attach_driver MODE TARGET\n");
		return 2;
	}
	mode = argv[1];
	if (getenv("MEMSPY_DEBUG"))
		ms_log_verbosity = MS_LOG_DEBUG;
	alarm(120); /* never outlive a broken test: ctest's TIMEOUT kills us, this kills the target */
	if (start_target(argv[2]))
		return 1;
	if (!strcmp(mode, "stress"))
		r = mode_stress();
	else if (!strcmp(mode, "signal-int"))
		r = mode_signal(SIGINT);
	else if (!strcmp(mode, "signal-term"))
		r = mode_signal(SIGTERM);
	else if (!strcmp(mode, "exit"))
		r = mode_exit();
	else if (!strcmp(mode, "groupstop"))
		r = mode_groupstop();
	else if (!strcmp(mode, "modules"))
		r = mode_modules();
	else if (!strcmp(mode, "errors"))
		r = mode_errors();
	else if (!strcmp(mode, "cli") && argc > 3)
		r = mode_cli(argv[3]);
	else {
		fprintf(stderr, "unknown mode %s\n", mode);
		r = 2;
	}
	kill_target();
	if (r == 0)
		fprintf(stderr, "PASS %s\n", mode);
	return r;
}
