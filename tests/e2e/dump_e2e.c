// SPDX-License-Identifier: MIT
/*
 * End-to-end driver for `memspy dump`: starts a self-checking target, reads
 * the mallinfo2() it prints, runs memspy dump --json on it and compares.
 *   dump_e2e MODE MEMSPY [--env K=V]... [--arg MEMSPY-ARG]... [--expect X]... -- TARGET [ARGS]
 *   MODE: mallinfo (exit 0, all nine fields equal), corrupt (exit 1, errors[]
 *   naming each --expect kind, totals present), foreign (exit 2, error naming
 *   each --expect word, RSS summary present). Always: the target exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t target = -1;
static const char *out_json;

/* The target runs in its own process group, so its forked copies die with it. */
static void cleanup(void)
{
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

int main(int argc, char **argv)
{
	static const char *const fields[] = {"arena",   "ordblks",  "smblks",   "hblks",   "hblkhd",
					     "fsmblks", "uordblks", "fordblks", "keepcost"};
	const char *mode, *memspy, *envs[16], *margs[16], *expects[16];
	int nenv = 0, nmarg = 0, nexp = 0, i, inpipe[2], outpipe[2], st, code;
	char line[4096], tmpl[] = "/tmp/memspy-dump-e2e-XXXXXX";
	json_t *exp, *got, *mi;
	json_error_t jerr;
	pid_t dump_pid, m;

	if (argc < 4)
		die("usage: dump_e2e MODE MEMSPY [--env K=V] [--arg A] [--expect X] -- TARGET [ARGS]");
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
		else
			die("unknown option %s", argv[i]);
	}
	if (i >= argc - 1)
		die("no target after --");
	i++;
	atexit(cleanup);
	signal(SIGALRM, on_alarm);
	alarm(100);

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
	/* Readiness: the target prints its mallinfo2() line, then blocks on stdin. */
	if (read_line(outpipe[0], line, sizeof(line), 60000) != 0)
		die("the target printed no mallinfo2 line");
	exp = json_loads(line, 0, &jerr);
	if (!exp)
		die("target line is not JSON: %s", line);
	printf("target: %s\n", line);

	{
		int fd = mkstemp(tmpl);

		if (fd < 0)
			die("mkstemp: %s", strerror(errno));
		close(fd);
		out_json = tmpl;
	}
	dump_pid = fork();
	if (dump_pid == 0) {
		const char *av[40];
		int n = 0;
		char pidbuf[32];

		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)json_integer_value(json_object_get(exp, "pid")));
		av[n++] = memspy;
		av[n++] = "dump";
		av[n++] = "--pid";
		av[n++] = pidbuf;
		av[n++] = "--json";
		av[n++] = "-o";
		av[n++] = tmpl;
		for (int k = 0; k < nmarg; k++)
			av[n++] = margs[k];
		av[n] = NULL;
		execv(memspy, (char **)av);
		_exit(127);
	}
	if (dump_pid < 0 || waitpid(dump_pid, &st, 0) != dump_pid)
		die("running memspy failed");
	code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	printf("memspy dump exit status: %d\n", code);
	got = json_load_file(tmpl, 0, &jerr);
	if (!got)
		die("memspy wrote no JSON report: %s", jerr.text);

	if (!strcmp(mode, "mallinfo")) {
		int bad = 0;

		mi = json_object_get(got, "mallinfo2");
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
		if (json_array_size(json_object_get(got, "errors")))
			die("errors reported on a healthy heap: %s",
			    json_dumps(json_object_get(got, "errors"), 0));
		if (code != 0)
			die("exit status %d, expected 0", code);
		if (bad)
			die("mallinfo2 fields differ");
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

	/* The target must be unharmed: it finishes normally once released. */
	if (write(inpipe[1], "q", 1) != 1)
		die("target stdin closed early");
	close(inpipe[1]);
	m = waitpid(target, &st, 0);
	target = -1;
	if (m < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("the target did not exit 0 after the dump (status 0x%x)", st);
	printf("PASS (%s)\n", mode);
	json_decref(exp);
	json_decref(got);
	return 0;
}
