// SPDX-License-Identifier: MIT
/*
 * memspy dump --subprocesses, the command's side: its options, and each
 * process's summary and their sum printed (text) or the document written
 * (JSON). The coordinator, a dump per process of the tree and the sum:
 * record/dump_subprocesses.c.
 */
#include "cmd/cmd.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "record/record.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "dump"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
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

/* what, then label, then text, a line: what and text may quote what the target named. */
static void print_clean(FILE *out, const char *what, const char *label, const char *text)
{
	ms_fputs_terminal(what, out);
	fputs(label, out);
	ms_fputs_terminal(text, out);
	fputc('\n', out);
}

struct each_ctx {
	FILE *out;
	bool json;
};

/* Text: each process's summary as its dump comes in. */
static void print_each(void *ctx, const struct ms_dump_sp_proc *p)
{
	struct each_ctx *e = ctx;
	const char *why = json_string_value(json_object_get(p->rep, "error"));
	const char *cause = json_string_value(json_object_get(p->rep, "cause_message"));
	char *what;

	if (e->json)
		return;
	what = ms_xasprintf("process %d (%s)", (int)p->pid, p->title);
	if (p->walked)
		print_text(e->out, what, json_object_get(p->rep, "mallinfo2"),
			   json_object_get(p->rep, "totals"));
	else
		print_clean(e->out, what, ": not walked: ", why ? why : "no report");
	if (p->code == MS_EXIT_PARTIAL)
		print_clean(e->out, "", "  partial: ",
			    cause ? cause : "see the report of this process alone");
	free(what);
}

int cmd_dump_subprocesses(int argc, char **argv)
{
	char **pass = ms_xcalloc((size_t)argc + 1, sizeof(*pass));
	size_t npass = 0;
	const char *out_path = NULL;
	pid_t root = 0;
	bool json = false;
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_dump_sp sp = {0};
	struct each_ctx each;
	json_t *doc = NULL;
	FILE *out = stdout;
	int ret = MS_EXIT_FAILED, r;

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
	each = (struct each_ctx){.out = out, .json = json};
	if (ms_dump_sp_run(&(struct ms_dump_sp_opts){.root = root,
						     .pass = pass,
						     .npass = npass,
						     .dump = cmd_dump,
						     .each = print_each,
						     .ctx = &each},
			   &sp, &err)) {
		cli_report(&err);
		goto out;
	}
	if (!json) {
		char *what = ms_xasprintf("sum over %zu process%s", sp.nwalked,
					  sp.nwalked == 1 ? "" : "es");

		print_text(out, what, sp.mallinfo2, sp.totals);
		if (sp.nwalked < sp.nprocs)
			fprintf(out, "  (%zu process%s not walked: not in the sum)\n",
				sp.nprocs - sp.nwalked, sp.nprocs - sp.nwalked == 1 ? "" : "es");
		free(what);
	} else {
		doc = ms_dump_sp_json(&sp, root);
		if (json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) ||
		    fputc('\n', out) == EOF) {
			ms_error_set(&err, -EIO, "dump: writing the report: %s", strerror(errno));
			cli_report(&err);
			goto out;
		}
	}
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
	ret = sp.worst == MS_EXIT_OK ? MS_EXIT_OK : MS_EXIT_PARTIAL;
	if (!sp.nwalked)
		ret = MS_EXIT_FAILED;
out:
	if (out_path && af.fp)
		ms_afile_abort(&af);
	json_decref(doc);
	ms_dump_sp_free(&sp);
	free(pass);
	return ret;
}
