// SPDX-License-Identifier: MIT
/*
 * End-to-end driver for the probe engine against tests/targets/probe_alloc:
 *   count MEAN TARGET ITERS [fork|stop|late]
 *                                   install (MEAN 0 = exact; stop: a stop per sample
 *                                   instead of the ring), count events until the
 *                                   target is done, remove, compare with its counts
 *                                   and the entry bytes with the libc file
 *   killtest TARGET ITERS ROUNDS    SIGKILL a probing driver mid-run, ROUNDS times:
 *                                   the target must finish with the reference checksum
 *   midremove TARGET ITERS ROUNDS   remove the probes and detach mid-run, ROUNDS times
 *   cxx TARGET ITERS                C++ new/delete each seen exactly once (exact mode)
 *   exec TARGET                     the target execs while probed: removal writes nothing
 *   refuse TARGET                   a target blocking SIGTRAP: install refuses, target unharmed
 *   hold PID MEAN                   (for killtest) probe PID until killed
 * Exit 0 pass, 1 fail, 77 when ptrace is not permitted here.
 */
#include "attach/attach.h"
#include "attach/probe.h"
#include "attach/probe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct target {
	pid_t pid;
	int in, out; /* its stdin (we write), its stdout (we read) */
	char text[4096];
	size_t len;
};

static void die(const char *what)
{
	fprintf(stderr, "probe_driver: %s\n", what);
	exit(1);
}

static void spawn(struct target *t, char **argv)
{
	int a[2], b[2];

	memset(t, 0, sizeof(*t));
	if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC))
		die("pipe");
	t->pid = fork();
	if (t->pid < 0)
		die("fork");
	if (t->pid == 0) {
		ms_signals_reset_for_child();
		dup2(a[0], 0);
		dup2(b[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(a[0]);
	close(b[1]);
	t->in = a[1];
	t->out = b[0];
}

/* Reads what the target printed, waiting at most timeout_ms. True once `word` was seen. */
static bool pump(struct target *t, const char *word, int timeout_ms)
{
	struct pollfd pf = {.fd = t->out, .events = POLLIN};

	if (strstr(t->text, word))
		return true;
	if (poll(&pf, 1, timeout_ms) > 0) {
		ssize_t n = read(t->out, t->text + t->len, sizeof(t->text) - 1 - t->len);

		if (n > 0) {
			t->len += (size_t)n;
			t->text[t->len] = 0;
		}
	}
	return strstr(t->text, word) != NULL;
}

static void say(struct target *t, const char *s)
{
	if (write(t->in, s, strlen(s)) != (ssize_t)strlen(s))
		die("write to target");
}

static void kill_target(struct target *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
}

static int finish_target(struct target *t)
{
	int st;

	say(t, "exit\n");
	if (waitpid(t->pid, &st, 0) != t->pid)
		return -1;
	t->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static unsigned long long field(const char *text, const char *key)
{
	const char *v = strstr(text, key);

	return v ? strtoull(v + strlen(key), NULL, 0) : ~0ull;
}

static const char *checksum_of(const char *text, char *buf, size_t size)
{
	const char *v = strstr(text, "checksum=");
	size_t n = 0;

	buf[0] = 0;
	if (!v)
		return buf;
	v += 9;
	while (v[n] && v[n] != ' ' && v[n] != '\n' && n + 1 < size) {
		buf[n] = v[n];
		n++;
	}
	buf[n] = 0;
	return buf;
}

/* ------------------------------ counting ------------------------------ */

struct counts {
	uint64_t alloc[MS_FN_COUNT], freed[MS_FN_COUNT];
	uint64_t bytes, weighted;
	uint64_t bad_ptr, bad_ret, unmatched_free;
	ms_raddr_t exe_lo, exe_hi;
	ms_raddr_t *live;
	size_t nlive, cap;
};

static void on_event(const struct ms_alloc_event *ev, void *ctx)
{
	struct counts *c = ctx;

	if (ev->type == MS_AE_ALLOC) {
		uint64_t ret = 0;

		c->alloc[ev->fn]++;
		if (ev->fn == MS_FN_CUSTOM)
			return; /* pool_alloc wraps malloc: its block is counted there */
		c->bytes += ev->size;
		c->weighted += ev->weight;
		if (!ev->ptr)
			c->bad_ptr++;
		/* regs.rsp -> the caller's return address: it must be in the target's code. */
		if (ev->stack_len >= 8)
			memcpy(&ret, ev->stack, 8);
		if (ret < c->exe_lo || ret >= c->exe_hi)
			c->bad_ret++;
		ms_xgrow((void **)&c->live, &c->cap, c->nlive + 1, sizeof(*c->live));
		c->live[c->nlive++] = ev->ptr;
	} else {
		c->freed[ev->fn]++;
		for (size_t i = c->nlive; i-- > 0;) {
			if (c->live[i] == ev->ptr) {
				c->live[i] = c->live[--c->nlive];
				return;
			}
		}
		c->unmatched_free++;
	}
}

/* Compares 16 bytes at each libc entry in the live target with the libc file. */
static int compare_libc(pid_t pid, int *compared)
{
	static const char *const syms[] = {"malloc",   "calloc",	 "realloc",
					   "free",     "posix_memalign", "aligned_alloc",
					   "memalign", "valloc",	 "pvalloc"};
	struct ms_maps maps;
	struct ms_modules mods;
	const struct ms_module *libc;
	int bad = 0, fd;

	*compared = 0;
	if (ms_maps_read(pid, &maps, NULL) || ms_modules_load(pid, &maps, &mods))
		die("maps/modules");
	libc = ms_modules_find_name(&mods, "libc.so");
	if (!libc)
		die("no libc in the target");
	fd = open(libc->open_path, O_RDONLY);
	if (fd < 0)
		die("open libc file");
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		ms_raddr_t a;
		uint64_t sz;
		uint8_t live[16], file[16];
		const struct ms_map *m;

		if (ms_module_symbol(libc, syms[i], &a, &sz))
			continue;
		m = ms_maps_find(&maps, a);
		if (!m || ms_mem_read_pid(pid, a, live, 16) != 16 ||
		    pread(fd, file, 16, (off_t)(m->offset + (a - m->start))) != 16)
			die("reading entry bytes");
		(*compared)++;
		if (memcmp(live, file, 16)) {
			fprintf(stderr, "FAIL: %s at %#llx differs from the libc file\n", syms[i],
				(unsigned long long)a);
			bad++;
		}
	}
	close(fd);
	ms_modules_free(&mods);
	ms_maps_free(&maps);
	return bad;
}

/* Sampled calls stop the thread (int3) instead of going through the ring. */
static bool stop_per_sample;

static int attach_and_install(pid_t pid, uint64_t mean, struct ms_proc **pp, struct ms_probes **prp,
			      struct counts *c)
{
	struct ms_attach_opts ao = {.trace_fork = true};
	static const char *const custom[] = {"pool_alloc"};
	struct ms_probe_opts po = {.sample_bytes = mean,
				   .stack_bytes = 16384,
				   .track_frees = true,
				   .seed = 42,
				   .custom_symbols = custom,
				   .n_custom = 1,
				   .stop_per_sample = stop_per_sample};
	struct ms_error err = {0};
	struct ms_maps maps;
	struct ms_modules mods;
	int rc;

	rc = ms_proc_seize(pid, &ao, pp, &err);
	if (rc) {
		fprintf(stderr, "probe_driver: %s\n%s\n", err.msg, err.hint);
		return rc == -EPERM ? 77 : 1;
	}
	if (ms_maps_read(pid, &maps, NULL) || ms_modules_load(pid, &maps, &mods))
		die("maps/modules");
	for (size_t i = 0; i < mods.n; i++) {
		if (mods.v[i].is_exec) {
			c->exe_lo = mods.v[i].start;
			c->exe_hi = mods.v[i].end;
		}
	}
	/* probe_stale_modules: an empty snapshot from attach must not make install give up. */
	if (getenv("PROBE_DRIVER_EMPTY_MODULES")) {
		ms_modules_free(&mods);
		memset(&mods, 0, sizeof(mods));
	}
	rc = ms_probes_install(*pp, &mods, &po, prp, &err);
	ms_modules_free(&mods);
	ms_maps_free(&maps);
	if (rc) {
		fprintf(stderr, "probe_driver: install: %s\nhint: %s\n", err.msg, err.hint);
		return 1;
	}
	return 0;
}

static int run_count(uint64_t mean, char *target, char *iters, const char *mode)
{
	bool fork_mode = mode && (!strcmp(mode, "fork") || !strcmp(mode, "vfork"));
	bool blocktrap = mode && !strcmp(mode, "blocktrap");
	char *argv[] = {target, iters, mode && strcmp(mode, "stop") ? (char *)mode : NULL, NULL};
	struct target t;
	struct ms_proc *p = NULL;
	struct ms_probes *pr = NULL;
	struct ms_probe_stats st;
	struct ms_error err = {0};
	struct counts c;
	uint64_t t_go, t_done;
	int rc, fails = 0, compared, status;
	uint64_t aligned;
	const char **names;
	size_t nn;

	memset(&c, 0, sizeof(c));
	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	rc = attach_and_install(t.pid, mean, &p, &pr, &c);
	if (rc) {
		ms_proc_free(p);
		kill_target(&t);
		return rc;
	}
	ms_probes_stats(pr, &st);
	nn = ms_probes_sites(pr, &names);
	printf("installed %zu probes, attach pause %.3f ms:", nn, st.attach_pause_ns / 1e6);
	for (size_t i = 0; i < nn; i++)
		printf(" %s", names[i]);
	printf("\n");
	say(&t, "go\n");
	t_go = ms_now_ns();
	while (!pump(&t, "done", 0)) {
		struct ms_event ev;

		/* blocktrap: drain slowly, so that the ring fills and its drop path runs. */
		if (ms_proc_wait(p, blocktrap ? 20 : 2, &ev))
			die("wait");
		if (ev.kind == MS_EV_EXITED)
			die("target exited while probed");
		if (ev.kind == MS_EV_TRAP || ev.kind == MS_EV_FORK) {
			if (!ms_probes_handle_event(pr, &ev, on_event, &c)) {
				fprintf(stderr, "FAIL: a trap at %#llx that is not a probe's\n",
					(unsigned long long)ev.regs.rip);
				ms_proc_cont_thread(p, ev.tid);
				fails++;
			}
		}
		if (ms_probes_poll(pr, on_event, &c))
			die("poll");
	}
	t_done = ms_now_ns();
	rc = ms_probes_remove(pr, on_event, &c, &err);
	if (rc) {
		fprintf(stderr, "FAIL: remove: %s\n", err.msg);
		fails++;
	}
	ms_probes_stats(pr, &st);
	ms_proc_detach(p);
	if (compare_libc(t.pid, &compared))
		fails++;
	printf("entry bytes equal to the libc file after detach: %d functions compared\n",
	       compared);
	status = finish_target(&t);
	printf("target said: %s", t.text);
	aligned = c.alloc[MS_FN_POSIX_MEMALIGN] + c.alloc[MS_FN_ALIGNED_ALLOC] +
		  c.alloc[MS_FN_MEMALIGN] + c.alloc[MS_FN_VALLOC];
	printf("events: malloc=%llu calloc=%llu realloc=%llu free=%llu realloc-free=%llu "
	       "bytes=%llu weighted=%llu memalign=%llu pool=%llu\n",
	       (unsigned long long)c.alloc[MS_FN_MALLOC], (unsigned long long)c.alloc[MS_FN_CALLOC],
	       (unsigned long long)c.alloc[MS_FN_REALLOC], (unsigned long long)c.freed[MS_FN_FREE],
	       (unsigned long long)c.freed[MS_FN_REALLOC], (unsigned long long)c.bytes,
	       (unsigned long long)c.weighted, (unsigned long long)aligned,
	       (unsigned long long)c.alloc[MS_FN_CUSTOM]);
	printf("ring samples=%llu dropped=%llu lost=%llu (unregistered threads %llu) lost "
	       "frees=%llu in-target %.2f us/sample\n",
	       (unsigned long long)st.ring_samples, (unsigned long long)st.dropped,
	       (unsigned long long)st.lost_samples, (unsigned long long)st.lost_nothread,
	       (unsigned long long)st.lost_frees,
	       st.ring_samples ? st.target_ns / 1e3 / (double)st.ring_samples : 0.0);
	printf("stops=%llu handler=%.2f us/stop run=%.1f ms remove pause %.3f ms\n",
	       (unsigned long long)st.stops,
	       st.stops ? st.stopped_ns / 1e3 / (double)st.stops : 0.0, (t_done - t_go) / 1e6,
	       st.remove_pause_ns / 1e6);
	if (status != 0) {
		fprintf(stderr, "FAIL: target exit status %d\n", status);
		fails++;
	}
	if (blocktrap && !st.lost_samples) {
		fprintf(stderr, "FAIL: the ring never filled: its drop path was not exercised\n");
		fails++;
	}
	if (blocktrap && field(t.text, "masks_lost=") != 0) {
		fprintf(stderr,
			"FAIL: %llu thread(s) that block SIGTRAP had it unblocked: a probe trapped "
			"them (the kernel also reset the SIGTRAP action to SIG_DFL)\n",
			field(t.text, "masks_lost="));
		fails++;
	}
	if (fork_mode && field(t.text, "child=") != 0) {
		fprintf(stderr, "FAIL: forked child status %lld\n",
			(long long)field(t.text, "child="));
		fails++;
	}
	if (c.bad_ptr || c.bad_ret || c.unmatched_free) {
		fprintf(stderr,
			"FAIL: %llu NULL pointers, %llu bad return addresses, %llu frees "
			"of unknown pointers\n",
			(unsigned long long)c.bad_ptr, (unsigned long long)c.bad_ret,
			(unsigned long long)c.unmatched_free);
		fails++;
	}
	/*
	 * Ring mode never stops a thread: threads born after install are entered
	 * in the thread table at their first ptrace stop, before they run, so
	 * none of their samples is lost for want of a table entry.
	 */
	if (mean && !stop_per_sample && (st.stops || st.lost_nothread)) {
		fprintf(stderr, "FAIL: ring mode: %llu stops, %llu samples of unregistered threads\n",
			(unsigned long long)st.stops, (unsigned long long)st.lost_nothread);
		fails++;
	}
	if (mode && !strcmp(mode, "late") && !st.ring_samples) {
		fprintf(stderr, "FAIL: threads born after install: no ring samples\n");
		fails++;
	}
	if (mean == 0) {
		unsigned long long r = field(t.text, "realloc=");

		if (c.alloc[MS_FN_MALLOC] != field(t.text, "malloc=") ||
		    c.alloc[MS_FN_CALLOC] != field(t.text, "calloc=") ||
		    c.alloc[MS_FN_REALLOC] != r || c.freed[MS_FN_REALLOC] != r ||
		    c.freed[MS_FN_FREE] != field(t.text, "free=") ||
		    aligned != field(t.text, "memalign=") ||
		    c.alloc[MS_FN_CUSTOM] != field(t.text, "pool=") ||
		    c.bytes != field(t.text, "bytes=") || c.nlive != 0) {
			fprintf(stderr, "FAIL: exact counts differ from the target's (%zu live)\n",
				c.nlive);
			fails++;
		}
	} else {
		double want = (double)field(t.text, "bytes=");
		/* Ring drops are independent of the size: scale by delivered + dropped. */
		double got = (double)c.weighted * ((double)(st.samples + st.dropped) /
						   (double)(st.samples ? st.samples : 1));

		printf("weighted estimate / true bytes = %.3f\n", got / want);
		if (st.dropped > st.samples) {
			fprintf(stderr, "FAIL: %llu samples dropped for %llu delivered\n",
				(unsigned long long)st.dropped, (unsigned long long)st.samples);
			fails++;
		}
		/*
		 * blocktrap starves the ring on purpose (most samples lost, a few
		 * drains): the weights' make-up for losses rests on too few drains to
		 * be checked there; the other ring tests check it.
		 */
		if (!blocktrap && (got < 0.8 * want || got > 1.2 * want)) {
			fprintf(stderr, "FAIL: weighted bytes %.0f vs true %.0f\n", got, want);
			fails++;
		}
	}
	ms_probes_free(pr);
	ms_proc_free(p);
	free(c.live);
	printf("%s\n", fails ? "FAILED" : "PASSED");
	return fails ? 1 : 0;
}

/* ------------------------------ kill test ------------------------------ */

static int run_hold(pid_t pid, uint64_t mean)
{
	struct ms_proc *p = NULL;
	struct ms_probes *pr = NULL;
	struct counts c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = attach_and_install(pid, mean, &p, &pr, &c);
	if (rc)
		return rc;
	printf("installed\n");
	fflush(stdout);
	for (;;) {
		struct ms_event ev;

		if (ms_proc_wait(p, 100, &ev))
			break;
		if (ev.kind == MS_EV_EXITED)
			break;
		if (ev.kind == MS_EV_STOP_REQUEST) {
			/* SIGTERM/SIGINT: take the probes out and detach (killtest uses SIGKILL). */
			struct ms_error err;

			ms_probes_remove(pr, NULL, NULL, &err);
			ms_probes_free(pr);
			ms_proc_free(p);
			return 0;
		}
		if (ev.kind == MS_EV_TRAP || ev.kind == MS_EV_FORK)
			if (!ms_probes_handle_event(pr, &ev, NULL, NULL))
				ms_proc_cont_thread(p, ev.tid);
		ms_probes_poll(pr, NULL, NULL);
	}
	return 0;
}

/*
 * The `armed` byte of every stub region left in pid (found by its code),
 * polled until all are 0: the watchdog's job once the driver died.
 * Returns the number of regions found, or -1 if one stayed armed.
 */
static int regions_disarmed(pid_t pid)
{
	for (int tries = 0; tries < 200; tries++) {
		struct ms_maps maps;
		int found = 0, armed = 0;

		if (ms_maps_read(pid, &maps, NULL))
			return 0;
		for (size_t i = 0; i < maps.n; i++) {
			const struct ms_map *m = &maps.v[i];
			uint8_t code[64], a = 1;

			if (!m->x || m->w || m->path || m->end - m->start != MS_STUB_CODE_SIZE)
				continue;
			if (ms_mem_read_pid(pid, m->start, code, sizeof(code)) != sizeof(code) ||
			    memcmp(code, ms_stub_image, sizeof(code)))
				continue;
			found++;
			if (ms_mem_read_pid(pid, m->start + MS_STUB_CTRL_OFF + MS_CTRL_ARMED, &a,
					    1) != 1 ||
			    a)
				armed++;
		}
		ms_maps_free(&maps);
		if (!armed)
			return found;
		poll(NULL, 0, 10);
	}
	return -1;
}

static int run_killtest(char *self, char *target, char *iters, int rounds)
{
	char *argv[] = {target, iters, NULL};
	char ref[64], got[64];
	struct target t;
	int survived = 0, midrun = 0, disarmed = 0;

	/* Reference: the same work with nobody attached. */
	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	say(&t, "go\n");
	while (!pump(&t, "done", 10000))
		;
	checksum_of(t.text, ref, sizeof(ref));
	if (finish_target(&t) != 0 || !ref[0])
		die("reference run failed");
	srand((unsigned)time(NULL));

	for (int r = 0; r < rounds; r++) {
		const char *mean = r % 2 ? "65536" : "0";
		char pidbuf[32];
		struct target d;
		char *dargv[] = {self, "hold", pidbuf, (char *)mean, NULL};
		int st, delay_ms = 5 + rand() % 60;
		bool done_before;

		spawn(&t, argv);
		if (!pump(&t, "ready", 10000))
			die("target not ready");
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)t.pid);
		spawn(&d, dargv);
		if (!pump(&d, "installed", 20000)) {
			int ds;

			kill(d.pid, SIGKILL);
			waitpid(d.pid, &ds, 0);
			kill_target(&t);
			if (WIFEXITED(ds) && WEXITSTATUS(ds) == 77)
				return 77;
			die("driver did not install");
		}
		say(&t, "go\n");
		pump(&t, "done", delay_ms);
		done_before = strstr(t.text, "done") != NULL;
		kill(d.pid, SIGKILL);
		waitpid(d.pid, NULL, 0);
		close(d.in);
		close(d.out);
		for (int k = 0; k < 600 && !pump(&t, "done", 100); k++) {
			if (waitpid(t.pid, &st, WNOHANG) == t.pid) {
				fprintf(stderr,
					"FAIL round %d: target died (%s %d) after the driver's "
					"SIGKILL\n",
					r, WIFSIGNALED(st) ? "signal" : "exit",
					WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				t.pid = 0;
				break;
			}
		}
		if (!t.pid)
			continue;
		switch (regions_disarmed(t.pid)) {
		case -1:
			fprintf(stderr,
				"FAIL round %d: a stub region stayed armed after the driver "
				"died (watchdog)\n",
				r);
			break;
		case 0:
			fprintf(stderr, "FAIL round %d: no stub region found in the target\n", r);
			break;
		default:
			disarmed++;
		}
		checksum_of(t.text, got, sizeof(got));
		st = finish_target(&t);
		if (st == 0 && !strcmp(got, ref)) {
			survived++;
			midrun += !done_before;
		} else {
			fprintf(stderr, "FAIL round %d (%s): status %d checksum %s (want %s)\n", r,
				mean, st, got, ref);
		}
		close(t.in);
		close(t.out);
	}
	printf("killtest: %d/%d survived with the reference checksum (%d killed mid-run); "
	       "watchdog disarmed the stubs in %d/%d\n",
	       survived, rounds, midrun, disarmed, rounds);
	return survived == rounds && disarmed == rounds ? 0 : 1;
}

/*
 * Removes the probes and detaches while the target's 4 threads are still
 * allocating (traps in flight, threads between the armed check and int3),
 * ROUNDS times: the target must finish with the reference checksum and the
 * entry bytes must equal the libc file.
 */
static int run_midremove(char *target, char *iters, int rounds)
{
	char *argv[] = {target, iters, NULL};
	char ref[64], got[64];
	struct target t;
	int ok = 0;

	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	say(&t, "go\n");
	while (!pump(&t, "done", 10000))
		;
	checksum_of(t.text, ref, sizeof(ref));
	if (finish_target(&t) != 0 || !ref[0])
		die("reference run failed");

	for (int r = 0; r < rounds; r++) {
		/* Odd rounds: ring mode (few events, no stops); even: exact (traps in flight). */
		uint64_t mean = r % 2 ? 65536 : 0, want = r % 2 ? 1 : 50 + (uint64_t)r * 40;
		struct ms_proc *p = NULL;
		struct ms_probes *pr = NULL;
		struct ms_error err = {0};
		struct counts c;
		int rc, compared, st;
		bool done_early;

		memset(&c, 0, sizeof(c));
		spawn(&t, argv);
		if (!pump(&t, "ready", 10000))
			die("target not ready");
		rc = attach_and_install(t.pid, mean, &p, &pr, &c);
		if (rc) {
			ms_proc_free(p);
			kill_target(&t);
			return rc;
		}
		say(&t, "go\n");
		/*
		 * The target's whole run takes ~60 ms unprobed and ring mode does not
		 * slow it: wait in short slices so the removal lands mid-run.
		 */
		while (c.nlive + c.freed[MS_FN_FREE] < want && !pump(&t, "done", 0)) {
			struct ms_event ev;

			if (ms_proc_wait(p, mean ? 1 : 20, &ev) || ev.kind == MS_EV_EXITED)
				die("target exited while probed");
			if (ev.kind == MS_EV_TRAP || ev.kind == MS_EV_FORK)
				if (!ms_probes_handle_event(pr, &ev, on_event, &c))
					ms_proc_cont_thread(p, ev.tid);
			ms_probes_poll(pr, on_event, &c);
		}
		done_early = strstr(t.text, "done") != NULL;
		rc = ms_probes_remove(pr, on_event, &c, &err);
		if (rc)
			fprintf(stderr, "FAIL round %d: remove: %s\n", r, err.msg);
		ms_proc_detach(p);
		if (compare_libc(t.pid, &compared))
			rc = -1;
		ms_probes_free(pr);
		ms_proc_free(p);
		free(c.live);
		while (!pump(&t, "done", 30000))
			if (waitpid(t.pid, &st, WNOHANG) == t.pid)
				break;
		checksum_of(t.text, got, sizeof(got));
		st = finish_target(&t);
		if (!rc && st == 0 && !strcmp(got, ref) && !done_early)
			ok++;
		else
			fprintf(stderr,
				"FAIL round %d: remove rc %d, status %d, checksum %s (want %s)%s\n",
				r, rc, st, got, ref,
				done_early ? ", target finished too early" : "");
		close(t.in);
		close(t.out);
	}
	printf("midremove: %d/%d rounds removed mid-run, target finished with the reference "
	       "checksum, entry bytes equal to the file\n",
	       ok, rounds);
	return ok == rounds ? 0 : 1;
}

/* A target that blocks SIGTRAP: install must refuse, say why, and leave it unharmed. */
static int run_refuse(char *target)
{
	char *argv[] = {target, "200", "blocktrap", NULL};
	struct ms_attach_opts ao = {.trace_fork = true};
	struct ms_probe_opts po = {.sample_bytes = 0, .track_frees = true};
	struct ms_error err = {0};
	struct ms_proc *p = NULL;
	struct ms_probes *pr = NULL;
	struct ms_maps maps;
	struct ms_modules mods;
	struct target t;
	int rc, st, fails = 0, compared;

	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	rc = ms_proc_seize(t.pid, &ao, &p, &err);
	if (rc) {
		kill_target(&t);
		return rc == -EPERM ? 77 : 1;
	}
	if (ms_maps_read(t.pid, &maps, NULL) || ms_modules_load(t.pid, &maps, &mods))
		die("maps/modules");
	rc = ms_probes_install(p, &mods, &po, &pr, &err);
	printf("install: rc %d: %s\nhint: %s\n", rc, err.msg, err.hint);
	if (rc != -MS_E_UNSUPPORTED || !strstr(err.msg, "blocks SIGTRAP") || pr) {
		fprintf(stderr, "FAIL: install did not refuse a target that blocks SIGTRAP\n");
		fails++;
	}
	ms_probes_free(pr);
	ms_modules_free(&mods);
	ms_maps_free(&maps);
	ms_proc_free(p);
	if (compare_libc(t.pid, &compared))
		fails++;
	say(&t, "go\n");
	while (!pump(&t, "done", 10000))
		if (waitpid(t.pid, &st, WNOHANG) == t.pid)
			die("target died");
	st = finish_target(&t);
	if (st) {
		fprintf(stderr, "FAIL: target status %d\n", st);
		fails++;
	}
	printf("%s\n", fails ? "FAILED" : "PASSED");
	return fails ? 1 : 0;
}

/*
 * C++ target in exact mode: every operator new and delete must be seen
 * exactly once (through libc's malloc/aligned_alloc/free probes, or the
 * operator's own probe when it does not call them), never twice.
 */
static int run_cxx(char *target, char *iters)
{
	char *argv[] = {target, iters, NULL};
	struct target t;
	struct ms_proc *p = NULL;
	struct ms_probes *pr = NULL;
	struct ms_error err = {0};
	struct counts c;
	uint64_t allocs = 0, frees = 0;
	const char **names;
	size_t nn;
	int rc, fails = 0;

	memset(&c, 0, sizeof(c));
	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	/* The allocator's caller is libstdc++'s operator here, not the executable. */
	rc = attach_and_install(t.pid, 0, &p, &pr, &c);
	if (rc) {
		ms_proc_free(p);
		kill_target(&t);
		return rc;
	}
	nn = ms_probes_sites(pr, &names);
	printf("installed:");
	for (size_t i = 0; i < nn; i++)
		printf(" %s", names[i]);
	printf("\n");
	say(&t, "go\n");
	while (!pump(&t, "done", 0)) {
		struct ms_event ev;

		if (ms_proc_wait(p, 2, &ev) || ev.kind == MS_EV_EXITED)
			die("target exited while probed");
		if (ev.kind == MS_EV_TRAP || ev.kind == MS_EV_FORK)
			if (!ms_probes_handle_event(pr, &ev, on_event, &c))
				ms_proc_cont_thread(p, ev.tid);
	}
	if (ms_probes_remove(pr, on_event, &c, &err)) {
		fprintf(stderr, "FAIL: remove: %s\n", err.msg);
		fails++;
	}
	ms_proc_detach(p);
	for (int f = 0; f < MS_FN_COUNT; f++) {
		allocs += c.alloc[f];
		frees += c.freed[f];
	}
	printf("target said: %s", t.text);
	printf("events: allocations=%llu (operator new probe: %llu) frees=%llu (operator delete "
	       "probe: %llu) unmatched frees=%llu live=%zu\n",
	       (unsigned long long)allocs, (unsigned long long)c.alloc[MS_FN_OPERATOR_NEW],
	       (unsigned long long)frees, (unsigned long long)c.freed[MS_FN_OPERATOR_DELETE],
	       (unsigned long long)c.unmatched_free, c.nlive);
	if (allocs != field(t.text, "news=") || frees != field(t.text, "deletes=") ||
	    c.unmatched_free || c.nlive) {
		fprintf(stderr, "FAIL: events differ from the target's counts\n");
		fails++;
	}
	if (finish_target(&t) != 0) {
		fprintf(stderr, "FAIL: target exit status\n");
		fails++;
	}
	ms_probes_free(pr);
	ms_proc_free(p);
	free(c.live);
	printf("%s\n", fails ? "FAILED" : "PASSED");
	return fails ? 1 : 0;
}

/*
 * The target execs while probed: removal must find the stub region and the
 * jmps gone, write nothing into the new image, and succeed.
 */
static int run_exec(char *target)
{
	char *argv[] = {target, "2000", "exec", NULL};
	struct target t;
	struct ms_proc *p = NULL;
	struct ms_probes *pr = NULL;
	struct ms_error err = {0};
	struct counts c;
	int rc, fails = 0, compared;

	memset(&c, 0, sizeof(c));
	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	rc = attach_and_install(t.pid, 0, &p, &pr, &c);
	if (rc) {
		ms_proc_free(p);
		kill_target(&t);
		return rc;
	}
	say(&t, "go\n");
	while (!pump(&t, "done", 0)) {
		struct ms_event ev;

		if (ms_proc_wait(p, 2, &ev) || ev.kind == MS_EV_EXITED)
			die("target exited while probed");
		if (ev.kind == MS_EV_TRAP || ev.kind == MS_EV_FORK)
			if (!ms_probes_handle_event(pr, &ev, on_event, &c))
				ms_proc_cont_thread(p, ev.tid);
	}
	rc = ms_probes_remove(pr, on_event, &c, &err);
	printf("remove after exec: rc %d %s\n", rc, rc ? err.msg : "");
	if (rc)
		fails++;
	ms_proc_detach(p);
	if (compare_libc(t.pid, &compared) || !compared)
		fails++;
	printf("new image: %d libc entries equal to the file; %llu events before the exec\n",
	       compared, (unsigned long long)(c.alloc[MS_FN_MALLOC] + c.freed[MS_FN_FREE]));
	if (finish_target(&t) != 0) {
		fprintf(stderr, "FAIL: target exit status after exec\n");
		fails++;
	}
	ms_probes_free(pr);
	ms_proc_free(p);
	free(c.live);
	printf("%s\n", fails ? "FAILED" : "PASSED");
	return fails ? 1 : 0;
}

/* The same run with nobody attached: the time from "go" to "done" (for comparisons). */
static int run_base(char *target, char *iters)
{
	char *argv[] = {target, iters, NULL};
	struct target t;
	uint64_t t0;

	spawn(&t, argv);
	if (!pump(&t, "ready", 10000))
		die("target not ready");
	say(&t, "go\n");
	t0 = ms_now_ns();
	while (!pump(&t, "done", 10000))
		;
	printf("base run=%.1f ms\n", (ms_now_ns() - t0) / 1e6);
	return finish_target(&t);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MEMSPY_DEBUG"))
		ms_log_verbosity = MS_LOG_DEBUG;
	ms_signals_init();
	if (argc >= 5 && !strcmp(argv[1], "count")) {
		stop_per_sample = argc > 5 && !strcmp(argv[5], "stop");
		return run_count(strtoull(argv[2], NULL, 0), argv[3], argv[4],
				 argc > 5 ? argv[5] : NULL);
	}
	if (argc >= 5 && !strcmp(argv[1], "killtest"))
		return run_killtest(argv[0], argv[2], argv[3], atoi(argv[4]));
	if (argc >= 3 && !strcmp(argv[1], "exec"))
		return run_exec(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "cxx"))
		return run_cxx(argv[2], argv[3]);
	if (argc >= 4 && !strcmp(argv[1], "base"))
		return run_base(argv[2], argv[3]);
	if (argc >= 3 && !strcmp(argv[1], "refuse"))
		return run_refuse(argv[2]);
	if (argc >= 5 && !strcmp(argv[1], "midremove"))
		return run_midremove(argv[2], argv[3], atoi(argv[4]));
	if (argc >= 4 && !strcmp(argv[1], "hold"))
		return run_hold((pid_t)atoi(argv[2]), strtoull(argv[3], NULL, 0));
	fprintf(stderr, "usage: probe_driver count MEAN TARGET ITERS [fork] | killtest TARGET "
			"ITERS ROUNDS | hold PID MEAN\n");
	return 64;
}
