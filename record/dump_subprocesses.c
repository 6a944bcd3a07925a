// SPDX-License-Identifier: MIT
/*
 * record: dump --subprocesses' coordinator. The heap report of a process
 * and of each of its descendants, one after the other: a fork of memspy
 * runs `dump --json` on each (handed in by cmd/, so each gets dump's own
 * pause, snapshot and guard), its report is read back, and the walked
 * ones' mallinfo2 and totals are summed. cmd/dump_subprocesses.c holds the
 * options and prints the reports.
 */
#include "record/record.h"
#include "attach/descendants.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The totals summed across processes (mallinfo2's fields are all summed). */
static const char *const sum_totals[] = {"system_bytes", "in_use_bytes", "in_use_chunks",
					 "free_bytes", "free_chunks"};

/* Runs o->dump (`dump ... --pid PID --json -o path`) in a fork; its exit code (MS_EXIT_FAILED if killed). */
static int dump_one(const struct ms_dump_sp_opts *o, pid_t pid, const char *path)
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
		char **argv = ms_xcalloc(o->npass + 8, sizeof(*argv));
		size_t n = 0;

		/* The coordinator's death ends the dump as a stop signal does. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != self)
			_exit(MS_EXIT_FAILED);
		argv[n++] = (char *)"dump";
		for (size_t i = 0; i < o->npass; i++)
			argv[n++] = o->pass[i];
		argv[n++] = (char *)"--pid";
		argv[n++] = pidbuf;
		argv[n++] = (char *)"--json";
		argv[n++] = (char *)"-o";
		argv[n++] = (char *)path;
		argv[n] = NULL;
		_exit(o->dump((int)n, argv));
	}
	while (waitpid(c, &status, 0) < 0)
		if (errno != EINTR)
			return MS_EXIT_FAILED;
	return WIFEXITED(status) ? WEXITSTATUS(status) : MS_EXIT_FAILED;
}

/* Adds obj's integers to sum: those named in keys, or all of them (keys NULL). */
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

int ms_dump_sp_run(const struct ms_dump_sp_opts *o, struct ms_dump_sp *s, struct ms_error *err)
{
	char dir[64] = "/tmp/memspy-subprocesses-XXXXXX";
	pid_t *desc = NULL, *procs;
	size_t ndesc, nprocs;

	*s = (struct ms_dump_sp){.worst = MS_EXIT_OK};
	if (!mkdtemp(dir))
		return ms_error_set(err, -errno, "dump: mkdtemp: %s", strerror(errno));
	ms_signals_init();
	ndesc = ms_descendants(&o->root, 1, getpid(), &desc);
	nprocs = ndesc + 1;
	procs = ms_xcalloc(nprocs, sizeof(*procs));
	procs[0] = o->root;
	memcpy(procs + 1, desc, ndesc * sizeof(*desc));
	s->reports = json_array();
	s->mallinfo2 = json_object();
	s->totals = json_object();
	for (size_t i = 0; i < nprocs; i++) {
		char *path = ms_xasprintf("%s/%d.json", dir, (int)procs[i]);
		char *title = ms_proc_title(procs[i]);
		struct ms_dump_sp_proc p = {.pid = procs[i], .title = title};
		json_error_t jerr;

		if (ms_signals_stop_requested()) {
			free(path);
			free(title);
			s->stopped = true;
			if (s->worst < MS_EXIT_PARTIAL)
				s->worst = MS_EXIT_PARTIAL;
			break;
		}
		p.code = dump_one(o, procs[i], path);
		p.rep = json_load_file(path, 0, &jerr);
		unlink(path);
		free(path);
		if (p.code > s->worst)
			s->worst = p.code;
		if (!p.rep) {
			p.rep = json_object();
			json_object_set_new(p.rep, "pid", json_integer(procs[i]));
			json_object_set_new(p.rep, "error", json_string("no report (see stderr)"));
			json_object_set_new(p.rep, "exit_code", json_integer(p.code));
		}
		json_object_set_new(p.rep, "title", json_string(title));
		p.walked = json_is_object(json_object_get(p.rep, "mallinfo2"));
		if (p.walked) {
			add_ints(s->mallinfo2, json_object_get(p.rep, "mallinfo2"), NULL, 0);
			add_ints(s->totals, json_object_get(p.rep, "totals"), sum_totals,
				 MS_ARRAY_SIZE(sum_totals));
			s->nwalked++;
		}
		if (o->each)
			o->each(o->ctx, &p);
		free(title);
		json_array_append_new(s->reports, p.rep);
		s->nprocs++;
	}
	rmdir(dir);
	free(procs);
	free(desc);
	return 0;
}

json_t *ms_dump_sp_json(const struct ms_dump_sp *s, pid_t root)
{
	json_t *doc = json_object(), *sum = json_object();

	json_object_set_new(doc, "tool", json_string("memspy dump"));
	json_object_set_new(doc, "schema_version", json_integer(1));
	json_object_set_new(doc, "subprocesses", json_true());
	json_object_set_new(doc, "pid", json_integer(root));
	json_object_set_new(sum, "processes", json_integer((json_int_t)s->nwalked));
	json_object_set(sum, "mallinfo2", s->mallinfo2);
	json_object_set(sum, "totals", s->totals);
	json_object_set_new(doc, "sum", sum);
	json_object_set_new(doc, "exit_code", json_integer(s->worst));
	json_object_set_new(doc, "complete", json_boolean(s->worst == MS_EXIT_OK));
	json_object_set(doc, "processes", s->reports);
	return doc;
}

void ms_dump_sp_free(struct ms_dump_sp *s)
{
	json_decref(s->reports);
	json_decref(s->mallinfo2);
	json_decref(s->totals);
	*s = (struct ms_dump_sp){0};
}
