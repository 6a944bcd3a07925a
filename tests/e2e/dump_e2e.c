// SPDX-License-Identifier: MIT
/*
 * End-to-end driver for `memspy dump`: starts a self-checking target, reads
 * the mallinfo2() it prints, runs memspy dump --json on it and compares.
 *   dump_e2e MODE MEMSPY [--env K=V]... [--arg MEMSPY-ARG]... [--expect X]... -- TARGET [ARGS]
 *   MODE: mallinfo (exit 0, all nine fields equal), corrupt (exit 1, errors[]
 *   naming each --expect kind, totals present), foreign (exit 2, error naming
 *   each --expect word, RSS summary present), prefork (a daemonizing target
 *   whose --procs N processes each print a mallinfo2 line: each is dumped
 *   and must be exact, as in mallinfo mode, and its [heap] must span two
 *   mappings or more, or the test would not test the fork case). Always:
 *   the target exits 0 (prefork: the daemon, reaped here as subreaper, too).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t target = -1;
static const char *out_json;
/* Processes of a daemonizing target: setsid() took them out of the target's group. */
static pid_t daemons[32];
static int ndaemons;
static pid_t daemon_master; /* the one whose line says "role": "master" */

/* The target runs in its own process group, so its forked copies die with it. */
static void cleanup(void)
{
	for (int i = 0; i < ndaemons; i++)
		if (daemons[i] > 0)
			kill(daemons[i], SIGKILL);
	if (target > 0) {
		kill(-target, SIGKILL);
		waitpid(target, NULL, 0);
		target = -1;
	}
	if (out_json)
		unlink(out_json);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "FAIL: driver timeout\n";
	ssize_t w = write(2, m, sizeof(m) - 1);
	(void)w;
	for (int i = 0; i < ndaemons; i++)
		if (daemons[i] > 0)
			kill(daemons[i], SIGKILL);
	if (target > 0)
		kill(-target, SIGKILL);
	_exit(1);
}

/* One line from fd, waiting at most ms. */
static int read_line(int fd, char *buf, size_t size, int ms)
{
	size_t n = 0;

	while (n + 1 < size) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, ms) <= 0)
			return -1;
		r = read(fd, buf + n, 1);
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

/* memspy dump --pid PID --json -o OUT [margs]; its exit status. */
static int run_memspy(const char *memspy, json_int_t pid, const char *out, const char **margs,
		      int nmarg)
{
	pid_t dump_pid = fork();
	int st;

	if (dump_pid == 0) {
		const char *av[40];
		int n = 0;
		char pidbuf[32];

		snprintf(pidbuf, sizeof(pidbuf), "%lld", (long long)pid);
		av[n++] = memspy;
		av[n++] = "dump";
		av[n++] = "--pid";
		av[n++] = pidbuf;
		av[n++] = "--json";
		av[n++] = "-o";
		av[n++] = out;
		for (int k = 0; k < nmarg; k++)
			av[n++] = margs[k];
		av[n] = NULL;
		execv(memspy, (char **)av);
		_exit(127);
	}
	if (dump_pid < 0 || waitpid(dump_pid, &st, 0) != dump_pid)
		die("running memspy failed");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* mallinfo mode's checks: all nine fields, --expect key=value, no errors, exit 0. */
static void check_mallinfo(json_t *exp, json_t *got, int code, const char **expects, int nexp)
{
	static const char *const fields[] = {"arena",   "ordblks",  "smblks",   "hblks",   "hblkhd",
					     "fsmblks", "uordblks", "fordblks", "keepcost"};
	json_t *mi = json_object_get(got, "mallinfo2");
	int bad = 0;

	if (!mi)
		die("report has no mallinfo2 (error: %s)",
		    json_string_value(json_object_get(got, "error")));
	printf("%-9s %14s %14s\n", "field", "target", "memspy");
	for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
		json_int_t a = json_integer_value(json_object_get(exp, fields[k]));
		json_int_t b = json_integer_value(json_object_get(mi, fields[k]));

		printf("%-9s %14lld %14lld%s\n", fields[k], (long long)a, (long long)b,
		       a == b ? "" : "   <-- differs");
		bad |= a != b;
	}
	printf("layout_source=%s symbol_source=%s pause_ms=%.2f\n",
	       json_string_value(json_object_get(got, "layout_source")),
	       json_string_value(json_object_get(got, "symbol_source")),
	       json_real_value(json_object_get(got, "pause_ms")));
	for (int k = 0; k < nexp; k++) {
		const char *eq = strchr(expects[k], '=');
		char key[64];
		const char *v;

		if (!eq || eq - expects[k] >= 64)
			die("bad --expect %s", expects[k]);
		memcpy(key, expects[k], (size_t)(eq - expects[k]));
		key[eq - expects[k]] = '\0';
		v = json_string_value(json_object_get(got, key));
		if (!v || strcmp(v, eq + 1))
			die("%s is '%s', expected '%s'", key, v ? v : "(none)", eq + 1);
	}
	if (json_array_size(json_object_get(got, "errors"))) {
		json_t *errs = json_object_get(got, "errors");
		char *first = json_dumps(json_array_get(errs, 0), 0);

		die("%zu errors reported on a healthy heap (cause: %s); the first: %s",
		    json_array_size(errs), json_string_value(json_object_get(got, "cause_message")),
		    first ? first : "?");
	}
	if (code != 0)
		die("exit status %d, expected 0", code);
	if (bad)
		die("mallinfo2 fields differ");
}

/*
 * prefork mode: nprocs lines (master and workers of a daemon), each dumped
 * and checked exactly; the daemon's [heap] must span several mappings.
 */
static void check_prefork(int outfd, int nprocs, const char *memspy, const char *tmpl,
			  const char **margs, int nmarg, const char **expects, int nexp)
{
	json_t *exp[32];
	char line[4096];

	if (nprocs < 1 || nprocs > 32)
		die("--procs must be 1..32");
	for (int k = 0; k < nprocs; k++) {
		json_error_t jerr;

		if (read_line(outfd, line, sizeof(line), 60000) != 0)
			die("the target printed %d of %d mallinfo2 lines", k, nprocs);
		exp[k] = json_loads(line, 0, &jerr);
		if (!exp[k])
			die("target line is not JSON: %s", line);
		daemons[ndaemons++] = (pid_t)json_integer_value(json_object_get(exp[k], "pid"));
		if (!strcmp(json_string_value(json_object_get(exp[k], "role")) ?: "", "master"))
			daemon_master = daemons[ndaemons - 1];
		printf("target: %s\n", line);
	}
	for (int k = 0; k < nprocs; k++) {
		json_int_t pid = json_integer_value(json_object_get(exp[k], "pid"));
		json_int_t heaps = json_integer_value(json_object_get(exp[k], "heap_mappings"));
		json_error_t jerr;
		json_t *got;
		int code;

		printf("--- %s %lld: [heap] in %lld mappings, its thread's heap in %lld\n",
		       json_string_value(json_object_get(exp[k], "role")), (long long)pid,
		       (long long)heaps,
		       (long long)json_integer_value(json_object_get(exp[k], "thread_heap_mappings")));
		if (heaps < 2)
			die("process %lld: [heap] is %lld mapping(s): the fork did not split it, "
			    "so this test would not test what it claims",
			    (long long)pid, (long long)heaps);
		code = run_memspy(memspy, pid, tmpl, margs, nmarg);
		printf("memspy dump exit status: %d\n", code);
		got = json_load_file(tmpl, 0, &jerr);
		if (!got)
			die("memspy wrote no JSON report: %s", jerr.text);
		check_mallinfo(exp[k], got, code, expects, nexp);
		json_decref(got);
		json_decref(exp[k]);
	}
}

int main(int argc, char **argv)
{
	const char *mode, *memspy, *envs[16], *margs[16], *expects[16];
	int nenv = 0, nmarg = 0, nexp = 0, nprocs = 1, i, inpipe[2], outpipe[2], st, code;
	char line[4096], tmpl[] = "/tmp/memspy-dump-e2e-XXXXXX";
	json_t *exp = NULL, *got = NULL;
	json_error_t jerr;
	pid_t m;

	if (argc < 4)
		die("usage: dump_e2e MODE MEMSPY [--env K=V] [--arg A] [--expect X] -- TARGET [ARGS]");
	setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the FAIL line on stderr */
	mode = argv[1];
	memspy = argv[2];
	for (i = 3; i < argc && strcmp(argv[i], "--"); i++) {
		if (i + 1 >= argc)
			die("option %s needs a value", argv[i]);
		if (!strcmp(argv[i], "--env") && nenv < 15)
			envs[nenv++] = argv[++i];
		else if (!strcmp(argv[i], "--arg") && nmarg < 15)
			margs[nmarg++] = argv[++i];
		else if (!strcmp(argv[i], "--expect") && nexp < 15)
			expects[nexp++] = argv[++i];
		else if (!strcmp(argv[i], "--procs"))
			nprocs = atoi(argv[++i]);
		else
			die("unknown option %s", argv[i]);
	}
	if (i >= argc - 1)
		die("no target after --");
	i++;
	atexit(cleanup);
	signal(SIGALRM, on_alarm);
	alarm(100);
	/* A daemonizing target's master is re-parented here, to be reaped and checked. */
	if (!strcmp(mode, "prefork") && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		die("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));

	if (pipe(inpipe) || pipe(outpipe))
		die("pipe: %s", strerror(errno));
	target = fork();
	if (target < 0)
		die("fork: %s", strerror(errno));
	setpgid(target, target);
	if (target == 0) {
		setpgid(0, 0);
		for (int k = 0; k < nenv; k++)
			putenv((char *)envs[k]);
		dup2(inpipe[0], 0);
		dup2(outpipe[1], 1);
		close(inpipe[1]);
		close(outpipe[0]);
		execv(argv[i], argv + i);
		_exit(127);
	}
	close(inpipe[0]);
	close(outpipe[1]);
	{
		int fd = mkstemp(tmpl);

		if (fd < 0)
			die("mkstemp: %s", strerror(errno));
		close(fd);
		out_json = tmpl;
	}
	if (!strcmp(mode, "prefork")) {
		check_prefork(outpipe[0], nprocs, memspy, tmpl, margs, nmarg, expects, nexp);
		goto release;
	}
	/* Readiness: the target prints its mallinfo2() line, then blocks on stdin. */
	if (read_line(outpipe[0], line, sizeof(line), 60000) != 0)
		die("the target printed no mallinfo2 line");
	exp = json_loads(line, 0, &jerr);
	if (!exp)
		die("target line is not JSON: %s", line);
	printf("target: %s\n", line);

	code = run_memspy(memspy, json_integer_value(json_object_get(exp, "pid")), tmpl, margs,
			  nmarg);
	printf("memspy dump exit status: %d\n", code);
	got = json_load_file(tmpl, 0, &jerr);
	if (!got)
		die("memspy wrote no JSON report: %s", jerr.text);

	if (!strcmp(mode, "mallinfo")) {
		check_mallinfo(exp, got, code, expects, nexp);
	} else if (!strcmp(mode, "corrupt")) {
		json_t *errs = json_object_get(got, "errors");
		char *dump = json_dumps(errs, 0);

		printf("errors: %s\n", dump ? dump : "(none)");
		if (code != 1)
			die("exit status %d, expected 1 (partial)", code);
		if (!json_array_size(errs))
			die("no errors[] for a corrupted heap");
		for (int k = 0; k < nexp; k++)
			if (!dump || !strstr(dump, expects[k]))
				die("no error of kind %s", expects[k]);
		if (json_integer_value(json_object_get(json_object_get(got, "mallinfo2"), "arena")) <= 0)
			die("no totals in the report of a corrupted heap");
		free(dump);
	} else if (!strcmp(mode, "foreign")) {
		const char *e = json_string_value(json_object_get(got, "error"));

		printf("error: %s\n", e ? e : "(none)");
		if (code != 2)
			die("exit status %d, expected 2", code);
		for (int k = 0; k < nexp; k++)
			if (!e || !strstr(e, expects[k]))
				die("error does not name %s", expects[k]);
		if (!json_object_get(got, "rss"))
			die("no allocator-independent rss summary");
	} else {
		die("unknown mode %s", mode);
	}

release:
	/* The target must be unharmed: it finishes normally once released. */
	if (write(inpipe[1], "q", 1) != 1)
		die("target stdin closed early");
	close(inpipe[1]);
	m = waitpid(target, &st, 0);
	target = -1;
	if (m < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("the target did not exit 0 after the dump (status 0x%x)", st);
	/* The daemon's master (first line) was re-parented here; it reaps its workers. */
	if (ndaemons) {
		if (!daemon_master)
			die("no line of the target says \"role\": \"master\"");
		m = waitpid(daemon_master, &st, 0);
		if (m < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("the daemon %d did not exit 0 after the dumps (status 0x%x)",
			    (int)daemon_master, st);
		ndaemons = 0;
	}
	printf("PASS (%s)\n", mode);
	json_decref(exp);
	json_decref(got);
	return 0;
}
