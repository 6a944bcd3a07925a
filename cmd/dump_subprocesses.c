// SPDX-License-Identifier: MIT
/*
 * memspy dump --subprocesses: the heap report of a process and of each of
 * its descendants, one after the other (a fork of memspy runs cmd_dump on
 * each, so each gets dump's own pause, snapshot and guard), then their sum.
 */
#include "cmd/cmd.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "attach/descendants.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#define CMD "dump"

static const char *const sum_totals[] = {"system_bytes", "in_use_bytes", "in_use_chunks",
					 "free_bytes", "free_chunks"};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* Runs `dump --json -o path` on pid in a fork; its exit code (MS_EXIT_FAILED if killed). */
static int dump_one(pid_t pid, const char *path, char **pass, size_t npass)
{
	char pidbuf[16];
	pid_t self = getpid(), c;
	int status;

	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	fflush(stdout);
	fflush(stderr);
	c = fork();
	if (c < 0)
		return MS_EXIT_FAILED;
	if (c == 0) {
		char **argv = ms_xcalloc(npass + 8, sizeof(*argv));
		size_t n = 0;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != self)
			_exit(MS_EXIT_FAILED);
		argv[n++] = (char *)"dump";
		for (size_t i = 0; i < npass; i++)
			argv[n++] = pass[i];
		argv[n++] = (char *)"--pid";
		argv[n++] = pidbuf;
		argv[n++] = (char *)"--json";
		argv[n++] = (char *)"-o";
		argv[n++] = (char *)path;
		argv[n] = NULL;
		_exit(cmd_dump((int)n, argv));
	}
	while (waitpid(c, &status, 0) < 0)
		if (errno != EINTR)
			return MS_EXIT_FAILED;
	return WIFEXITED(status) ? WEXITSTATUS(status) : MS_EXIT_FAILED;
}

static void add_ints(json_t *sum, json_t *obj, const char *const *keys, size_t nkeys)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return;
	if (keys) {
		for (size_t i = 0; i < nkeys; i++) {
			json_int_t have = json_integer_value(json_object_get(sum, keys[i]));

			json_object_set_new(
			    sum, keys[i],
			    json_integer(have + json_integer_value(json_object_get(obj, keys[i]))));
		}
		return;
	}
	json_object_foreach(obj, k, v)
	{
		if (json_is_integer(v))
			json_object_set_new(
			    sum, k,
			    json_integer(json_integer_value(json_object_get(sum, k)) +
					 json_integer_value(v)));
	}
}

static void print_text(FILE *out, const char *what, json_t *mi, json_t *tot)
{
	char a[32], b[32], c[32], d[32];

	fprintf(out, "%s: in use %s in %s chunks, free %s, system %s\n", what,
		ms_fmt_bytes(a, sizeof(a),
			     (uint64_t)json_integer_value(json_object_get(tot, "in_use_bytes"))),
		ms_fmt_count(b, sizeof(b),
			     (uint64_t)json_integer_value(json_object_get(tot, "in_use_chunks"))),
		ms_fmt_bytes(c, sizeof(c),
			     (uint64_t)json_integer_value(json_object_get(tot, "free_bytes"))),
		ms_fmt_bytes(d, sizeof(d),
			     (uint64_t)json_integer_value(json_object_get(tot, "system_bytes"))));
	fprintf(out,
		"  mallinfo2: arena %lld ordblks %lld smblks %lld hblks %lld hblkhd %lld "
		"fsmblks %lld uordblks %lld fordblks %lld keepcost %lld\n",
		(long long)json_integer_value(json_object_get(mi, "arena")),
		(long long)json_integer_value(json_object_get(mi, "ordblks")),
		(long long)json_integer_value(json_object_get(mi, "smblks")),
		(long long)json_integer_value(json_object_get(mi, "hblks")),
		(long long)json_integer_value(json_object_get(mi, "hblkhd")),
		(long long)json_integer_value(json_object_get(mi, "fsmblks")),
		(long long)json_integer_value(json_object_get(mi, "uordblks")),
		(long long)json_integer_value(json_object_get(mi, "fordblks")),
		(long long)json_integer_value(json_object_get(mi, "keepcost")));
}

int cmd_dump_subprocesses(int argc, char **argv)
{
	char **pass = ms_xcalloc((size_t)argc + 1, sizeof(*pass));
	size_t npass = 0, ndesc = 0, nprocs, nwalked = 0;
	const char *out_path = NULL;
	pid_t root = 0, *desc = NULL, *procs = NULL;
	bool json = false;
	char dir[64] = "";
	struct ms_afile af = {0};
	struct ms_error err = {0};
	json_t *doc = NULL, *arr, *sum_mi, *sum_tot;
	FILE *out = stdout;
	int ret = MS_EXIT_FAILED, worst = MS_EXIT_OK, r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--subprocesses"))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			char *h[] = {(char *)"dump", (char *)"--help", NULL};

			free(pass);
			return cmd_dump(2, h);
		}
		if (!strcmp(a, "-p") || !strcmp(a, "--pid") || !strncmp(a, "--pid=", 6)) {
			const char *v = !strncmp(a, "--pid=", 6) ? a + 6
					: i + 1 < argc		 ? argv[++i]
								 : NULL;

			if (!v) {
				ret = cli_usage_error(CMD, "option '%s' needs a value", a);
				goto out;
			}
			if ((r = cli_opt_pid(CMD, v, &root))) {
				ret = r;
				goto out;
			}
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (i + 1 >= argc) {
				ret = cli_usage_error(CMD, "option '%s' needs a value", a);
				goto out;
			}
			out_path = argv[++i];
		} else if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--no-debuginfo") || !strcmp(a, "--no-snapshot") ||
			   !strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			pass[npass++] = argv[i];
		} else {
			ret = cli_usage_error(CMD,
					      "%s: not available with --subprocesses (which takes "
					      "--pid, --json, -o FILE(.txt|.json), --no-debuginfo, "
					      "--no-snapshot, -v)",
					      a);
			goto out;
		}
	}
	if (!root) {
		ret = cli_usage_error(CMD, "--pid is required");
		goto out;
	}
	if (out_path && ends_with(out_path, ".json"))
		json = true;
	if (out_path && !ends_with(out_path, ".json") && !ends_with(out_path, ".txt")) {
		ret = cli_usage_error(CMD,
				      "-o %s: with --subprocesses dump writes text (.txt) or "
				      "JSON (.json)",
				      out_path);
		goto out;
	}
	if (ms_proc_check(root, &err)) {
		cli_report(&err);
		goto out;
	}
	if (out_path) {
		if (ms_afile_open(&af, out_path, &err)) {
			cli_report(&err);
			goto out;
		}
		out = af.fp;
	}
	snprintf(dir, sizeof(dir), "/tmp/memspy-subprocesses-XXXXXX");
	if (!mkdtemp(dir)) {
		ms_error_set(&err, -errno, "dump: mkdtemp: %s", strerror(errno));
		cli_report(&err);
		dir[0] = '\0';
		goto out;
	}
	ms_signals_init();
	ndesc = ms_descendants(&root, 1, getpid(), &desc);
	nprocs = ndesc + 1;
	procs = ms_xcalloc(nprocs, sizeof(*procs));
	procs[0] = root;
	memcpy(procs + 1, desc, ndesc * sizeof(*desc));
	doc = json_object();
	arr = json_array();
	sum_mi = json_object();
	sum_tot = json_object();
	for (size_t i = 0; i < nprocs; i++) {
		char *path = ms_xasprintf("%s/%d.json", dir, (int)procs[i]);
		char *title = ms_proc_title(procs[i]);
		json_t *rep;
		json_error_t jerr;
		int code;

		if (ms_signals_stop_requested()) {
			free(path);
			free(title);
			worst = MS_EXIT_PARTIAL;
			break;
		}
		code = dump_one(procs[i], path, pass, npass);
		rep = json_load_file(path, 0, &jerr);
		unlink(path);
		free(path);
		if (code > worst)
			worst = code;
		if (!rep) {
			rep = json_object();
			json_object_set_new(rep, "pid", json_integer(procs[i]));
			json_object_set_new(rep, "error", json_string("no report (see stderr)"));
			json_object_set_new(rep, "exit_code", json_integer(code));
		}
		json_object_set_new(rep, "title", json_string(title));
		if (json_is_object(json_object_get(rep, "mallinfo2"))) {
			add_ints(sum_mi, json_object_get(rep, "mallinfo2"), NULL, 0);
			add_ints(sum_tot, json_object_get(rep, "totals"), sum_totals,
				 MS_ARRAY_SIZE(sum_totals));
			nwalked++;
		}
		if (!json) {
			char *what = ms_xasprintf("process %d (%s)", (int)procs[i], title);

			if (json_is_object(json_object_get(rep, "mallinfo2")))
				print_text(out, what, json_object_get(rep, "mallinfo2"),
					   json_object_get(rep, "totals"));
			else
				fprintf(out, "%s: not walked: %s\n", what,
					json_string_value(json_object_get(rep, "error"))
					    ? json_string_value(json_object_get(rep, "error"))
					    : "no report");
			if (code == MS_EXIT_PARTIAL)
				fprintf(
				    out, "  partial: %s\n",
				    json_string_value(json_object_get(rep, "cause_message"))
					? json_string_value(json_object_get(rep, "cause_message"))
					: "see the report of this process alone");
			free(what);
		}
		free(title);
		json_array_append_new(arr, rep);
	}
	if (!json) {
		char *what =
		    ms_xasprintf("sum over %zu process%s", nwalked, nwalked == 1 ? "" : "es");

		print_text(out, what, sum_mi, sum_tot);
		if (nwalked < json_array_size(arr))
			fprintf(out, "  (%zu process%s not walked: not in the sum)\n",
				json_array_size(arr) - nwalked,
				json_array_size(arr) - nwalked == 1 ? "" : "es");
		free(what);
		json_decref(sum_mi);
		json_decref(sum_tot);
	} else {
		json_t *sum = json_object();

		json_object_set_new(doc, "tool", json_string("memspy dump"));
		json_object_set_new(doc, "schema_version", json_integer(1));
		json_object_set_new(doc, "subprocesses", json_true());
		json_object_set_new(doc, "pid", json_integer(root));
		json_object_set_new(sum, "processes", json_integer((json_int_t)nwalked));
		json_object_set_new(sum, "mallinfo2", sum_mi);
		json_object_set_new(sum, "totals", sum_tot);
		json_object_set_new(doc, "sum", sum);
		json_object_set_new(doc, "exit_code", json_integer(worst));
		json_object_set_new(doc, "complete", json_boolean(worst == MS_EXIT_OK));
		json_object_set(doc, "processes", arr);
		if (json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) ||
		    fputc('\n', out) == EOF) {
			ms_error_set(&err, -EIO, "dump: writing the report: %s", strerror(errno));
			cli_report(&err);
			json_decref(arr);
			goto out;
		}
	}
	json_decref(arr);
	if (out_path) {
		if (ms_afile_commit(&af, &err)) {
			cli_report(&err);
			out_path = NULL;
			goto out;
		}
		out_path = NULL;
	} else {
		fflush(stdout);
	}
	/* A process whose heap could not be walked (exit 2) leaves the sum partial. */
	ret = worst == MS_EXIT_OK ? MS_EXIT_OK : MS_EXIT_PARTIAL;
	if (!nwalked)
		ret = MS_EXIT_FAILED;
out:
	if (out_path && af.fp)
		ms_afile_abort(&af);
	if (dir[0])
		rmdir(dir);
	json_decref(doc);
	free(procs);
	free(desc);
	free(pass);
	return ret;
}
