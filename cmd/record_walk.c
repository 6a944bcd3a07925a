// SPDX-License-Identifier: MIT
/*
 * memspy record --mode walk: options, help, the progress line, the flame
 * graphs and timeline written from what the session recorded, the summary
 * and the exit code. The recording itself (stops at random instants, stack
 * copies, heap reads, unwinding): record/walk.c.
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/record_walk.h"
#include "record/record.h"
#include "attach/attach.h"
#include "output/output.h"
#include "output/timeline.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD		 "record"
#define PROGRESS_NS	 200000000ull


static void help(FILE *f)
{
	fprintf(
	    f,
	    "Usage: memspy record --mode walk --pid PID [-o FILE] [options]\n"
	    "\n"
	    "Records without patching anything: stops the process periodically, copies\n"
	    "every thread's registers and the top of its stack, reads the malloc arena\n"
	    "headers, and resumes it at once; the stacks are unwound while it runs. Writes\n"
	    "  - an allocator-time flame graph (-o): the stacks of threads caught inside\n"
	    "    malloc, free, realloc, calloc, the memalign family, operator new/delete\n"
	    "    or the allocator's internals: where the program spends its time allocating;\n"
	    "  - an all-threads flame graph (--all-threads): the stacks of the threads that\n"
	    "    were running (on a CPU or waiting for one); --idle adds the sleeping ones;\n"
	    "  - a heap timeline (--timeline): in use, free, top, mmapped and RSS over time,\n"
	    "    in total and per arena (glibc malloc only; RSS for other allocators).\n"
	    "\n"
	    "Options:\n");
	cli_help_shared(f, CLI_HELP_PID);
	cli_help_opt(f, "--mode walk", "this mode (probes, the default of record, are the other)");
	cli_help_opt(f, "-o, --output FILE", "allocator-time flame graph (default memspy-PID.svg)");
	cli_help_shared(f, CLI_HELP_FORMAT);
	cli_help_opt(f, "--all-threads FILE",
		     "all-threads flame graph (default: FILE with .all before the extension, "
		     "e.g. memspy-PID.all.svg)");
	cli_help_opt(f, "--timeline FILE",
		     "heap timeline, .svg or .json (default: beside -o, OUT.timeline.svg)");
	cli_help_shared(f, CLI_HELP_DURATION);
	cli_help_opt(f, "--rate HZ",
		     "stops per second for stacks, on average (default 100; the instants are "
		     "random, so that no periodic activity of the process is seen at one phase "
		     "only)");
	cli_help_opt(f, "--idle",
		     "also show the stacks of threads asleep in a system call (futex, "
		     "epoll_wait, nanosleep, poll, read...) in the all-threads view; they are "
		     "counted either way and never count as inside the allocator");
	cli_help_opt(f, "--walk-interval D", "time between heap reads (default 1s)");
	cli_help_opt(f, "--full-walk",
		     "walk every chunk at each heap read (exact, but the pause grows with the "
		     "heap) instead of the arena headers and free lists");
	cli_help_opt(f, "--max-pause-share P",
		     "the most the target may spend stopped, as a percentage of wall time "
		     "(default 1%); samples are skipped to stay under it");
	cli_help_shared(f, CLI_HELP_STACK_BYTES);
	cli_help_shared(f, CLI_HELP_UNWINDER);
	cli_help_shared(f, CLI_HELP_LINES);
	cli_help_opt(f, "--subprocesses",
		     "the process and all its descendants, those forked or exec'd during the "
		     "recording too: one root frame per process, a heap timeline each ({pid} "
		     "in --timeline)");
	cli_help_shared(f, CLI_HELP_QUIET);
	cli_help_opt(f, "-v, --verbose",
		     "one line per heap read on stderr (index, time of the stop on "
		     "CLOCK_MONOTONIC, in use, mmapped, RSS)");
	cli_help_shared(f, CLI_HELP_HELP);
	fprintf(f,
	    "\n"
	    "Examples:\n"
	    "  memspy record --mode walk --pid 4242 --duration 60s\n"
	    "  memspy record --mode walk --pid 4242 -o alloc.svg --timeline heap.json\n"
	    "  memspy record --mode walk --pid 4242 --rate 20 --walk-interval 200ms\n"
	    "\n"
	    "Exit status: 0 complete, 1 partial (the target exited or exec'd, or a stop\n"
	    "failed; what was collected is written), 2 failed (nothing written), 64 usage\n"
	    "error.\n");
}

enum {
	OPT_RATE = CLI_OPT_REC_OWN,
	OPT_WALK_INTERVAL,
	OPT_FULL_WALK,
	OPT_TIMELINE,
	OPT_MAX_PAUSE,
	OPT_ALL,
	OPT_MAX_READS,
	OPT_IDLE,
};

static const struct option long_opts[] = {
    CLI_REC_LONG_OPTS,
    {"rate", required_argument, NULL, OPT_RATE},
    {"walk-interval", required_argument, NULL, OPT_WALK_INTERVAL},
    {"full-walk", no_argument, NULL, OPT_FULL_WALK},
    {"timeline", required_argument, NULL, OPT_TIMELINE},
    {"max-pause-share", required_argument, NULL, OPT_MAX_PAUSE},
    {"all-threads", required_argument, NULL, OPT_ALL},
    {"max-list-reads", required_argument, NULL, OPT_MAX_READS},
    {"idle", no_argument, NULL, OPT_IDLE},
    {NULL, 0, NULL, 0},
};

static void opts_free(struct walk_opts *o)
{
	cli_rec_opts_free(&o->co);
	free(o->all_default);
	free(o->tl_default);
}

/*
 * "a/b.svg" + ".all" -> "a/b.all.svg" (x.pb.gz, x.speedscope.json: before
 * both parts); no extension: appended.
 */
static char *with_infix(const char *path, const char *infix, const char *ext_if_none)
{
	size_t stem = ms_sp_stem_len(path);

	if (!path[stem])
		return ms_xasprintf("%s%s%s", path, infix, ext_if_none);
	return ms_xasprintf("%.*s%s%s", (int)stem, path, infix, path + stem);
}

static int parse_opts(int argc, char **argv, struct walk_opts *o, bool *done)
{
	int c, r;

	*o = (struct walk_opts){.rate = 100,
				.walk_ns = 1000000000ull,
				.max_share = 0.01,
				.max_reads = 20000,
				.tl_fmt = MS_TL_SVG};
	cli_rec_opts_init(&o->co);
	*done = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, CLI_REC_SHORT_OPTS, long_opts, NULL)) != -1) {
		char *end;
		double v;

		if ((r = cli_rec_opt(CMD, c, optarg, &o->co)) != 1) {
			if (r)
				return r;
			if (o->co.help) {
				help(stdout);
				*done = true;
				return MS_EXIT_OK;
			}
			continue;
		}
		switch (c) {
		case CLI_OPT_MODE:
			if (strcmp(optarg, "walk"))
				return cli_usage_error(CMD,
						       "--mode: '%s' is not handled here (this is "
						       "the walk mode; probes are record's default "
						       "mode)",
						       optarg);
			break;
		case OPT_RATE:
			errno = 0;
			v = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(v >= 0.1 && v <= 10000))
				return cli_usage_error(CMD,
						       "--rate: '%s' is not a rate between 0.1 and "
						       "10000 samples per second (default 100)",
						       optarg);
			o->rate = v;
			break;
		case OPT_WALK_INTERVAL:
			if (cli_parse_duration(optarg, &o->walk_ns) || o->walk_ns < 1000000)
				return cli_usage_error(CMD,
						       "--walk-interval: '%s' is not a duration of "
						       "at least 1ms (e.g. 1s, 200ms)",
						       optarg);
			break;
		case OPT_FULL_WALK:
			o->full_walk = true;
			break;
		case OPT_TIMELINE:
			if (ms_tl_format_from_name(optarg, &o->tl_fmt))
				return cli_usage_error(
				    CMD, "--timeline: '%s' must end in .svg or .json", optarg);
			o->tl_path = optarg;
			break;
		case OPT_MAX_PAUSE:
			errno = 0;
			v = strtod(optarg, &end);
			if (*end == '%')
				end++;
			if (errno || end == optarg || *end || !(v > 0 && v <= 50))
				return cli_usage_error(
				    CMD,
				    "--max-pause-share: '%s' is not a percentage "
				    "above 0 and at most 50 (default 1%%)",
				    optarg);
			o->max_share = v / 100;
			break;
		case OPT_ALL:
			if (!*optarg)
				return cli_usage_error(CMD, "--all-threads: empty file name");
			o->all_path = optarg;
			break;
		case OPT_MAX_READS:
			if (cli_parse_bytes(optarg, &o->max_reads) || !o->max_reads)
				return cli_usage_error(CMD,
						       "--max-list-reads: '%s' is not a positive "
						       "count",
						       optarg);
			break;
		case OPT_IDLE:
			o->idle = true;
			break;
		default: /* ':' or '?' */
			return cli_getopt_error(CMD, c, argc, argv);
		}
	}
	if ((r = cli_getopt_error(CMD, -1, argc, argv)))
		return r;
	if ((r = cli_rec_opts_need_pid(CMD, &o->co,
				       "memspy record --mode walk --pid $(pidof myservice)")) ||
	    (r = cli_rec_opts_output(CMD, &o->co, "")))
		return r;
	if (!o->all_path) {
		o->all_default = with_infix(o->co.out_path, ".all", "");
		o->all_path = o->all_default;
	}
	if (!o->tl_path) {
		/* Beside -o, as the all-threads graph: w.svg -> w.timeline.svg. */
		o->tl_default = ms_xasprintf("%.*s.timeline.svg", (int)ms_sp_stem_len(o->co.out_path),
					     o->co.out_path);
		o->tl_path = o->tl_default;
	}
	if (!strcmp(o->co.out_path, o->all_path) || !strcmp(o->co.out_path, o->tl_path) ||
	    !strcmp(o->all_path, o->tl_path))
		return cli_usage_error(CMD, "-o, --all-threads and --timeline must name three "
					    "different files");
	return 0;
}

/* ------------------------------ the command ------------------------------ */


static void progress(struct ms_rec_walk_account *w, bool tty, uint64_t now, uint64_t *last,
		     bool *shown)
{
	char a[32], b[32], c[32];

	if (!tty || now - *last < PROGRESS_NS)
		return;
	*last = now;
	fprintf(stderr, "\rmemspy: %.1f s, %s stops, %s thread samples, stopped %s (%.2f%%)\033[K",
		(uint64_t)(now - w->start_ns) / 1e9, ms_fmt_count(a, sizeof(a), w->stops),
		ms_fmt_count(b, sizeof(b), w->thread_samples),
		ms_fmt_duration(c, sizeof(c), (uint64_t)ms_rec_walk_paused_ns(w)),
		now > w->start_ns ? 100.0 * (double)ms_rec_walk_paused_ns(w) / (double)(now - w->start_ns) : 0);
	*shown = true;
}

static int write_profile(struct ms_profile *prof, const struct walk_opts *o, enum ms_out_format fmt,
			 const char *subtitle, struct ms_afile *af, uint64_t wall_ns,
			 struct ms_error *err)
{
	struct ms_out_opts wo = {
	    .title = cli_command_line(),
	    .subtitle = subtitle,
	    .value = MS_VALUE_COUNT,
	    .count_name = "sample", /* thread stacks caught in a stop, not allocations */
	    .lines = o->co.lines,
	    .duration_ns = wall_ns,
	};

	return ms_profile_write(prof, fmt, &wo, af->fp, err);
}

int cmd_record_walk(int argc, char **argv)
{
	struct walk_opts o;
	struct ms_rec_walk *rw = NULL;
	struct ms_rec_walk_opts wo;
	struct ms_rec_walk_read r;
	struct ms_rec_walk_account *w;
	struct ms_afile af_out = {0}, af_all = {0}, af_tl = {0};
	struct ms_error err = {0};
	struct ms_attach_opts aopts = {.trace_fork =
					   false}; /* nothing patched: forks are no concern */
	struct ms_proc *p = NULL;
	struct ms_profile *alloc = NULL, *all = NULL;
	struct ms_rec_end oc;
	uint64_t cpu0, last_pg = 0;
	uint64_t alloc_samples = 0, alloc_asleep = 0;
	bool done, tty, shown = false;
	int rc, ret = MS_EXIT_FAILED;
	char comm[64];

	rc = parse_opts(argc, argv, &o, &done);
	if (rc || done) {
		opts_free(&o);
		return rc;
	}
	/* Unwritable outputs are found before anything is attached. */
	if (ms_afile_open(&af_out, o.co.out_path, &err) || ms_afile_open(&af_all, o.all_path, &err) ||
	    ms_afile_open(&af_tl, o.tl_path, &err)) {
		cli_report(&err);
		goto out;
	}
	ms_signals_init();
	cpu0 = ms_rec_self_cpu_ns();
	if (cli_attach(CMD, o.co.pid, &aopts, &p))
		goto out;
	wo = (struct ms_rec_walk_opts){
	    .duration_ns = o.co.duration_ns,
	    .rate = o.rate,
	    .walk_ns = o.walk_ns,
	    .full_walk = o.full_walk,
	    .max_share = o.max_share,
	    .stack_bytes = o.co.stack_bytes,
	    .max_reads = o.max_reads,
	    .unwinder = o.co.unwinder,
	    .command = cli_command_line(),
	};
	/* The session owns p from here on. */
	rc = ms_rec_walk_open(p, &wo, &rw, &err);
	ms_rec_walk_read(rw, &r);
	w = r.account;
	if (r.heap_err) {
		fprintf(stderr, "memspy: %s\n",
			r.heap_err->msg[0] ? r.heap_err->msg : ms_strerror(r.heap_err->code));
		if (r.heap_err->hint[0])
			fprintf(stderr, "hint: %s\n", r.heap_err->hint);
		fprintf(stderr, "memspy: going on without the heap timeline (stacks and RSS "
				"only)\n");
	}
	if (rc) {
		cli_report(&err);
		goto out;
	}
	tty = !o.co.quiet && isatty(STDERR_FILENO);
	if (!o.co.quiet) {
		char d[32], e[32];

		fprintf(stderr,
			"memspy: recording pid %d (%s, %zu thread%s) without probes: stacks at "
			"%g Hz, heap every %s (%s), %s%s\n",
			(int)o.co.pid, ms_proc_comm(o.co.pid, comm, sizeof(comm)), ms_proc_nthreads(r.proc),
			ms_proc_nthreads(r.proc) == 1 ? "" : "s",
			o.rate, ms_fmt_duration(d, sizeof(d), (uint64_t)o.walk_ns),
			!w->have_loc  ? "RSS only"
			: o.full_walk ? "full walk"
				      : "arena headers",
			o.co.duration_ns ? "for " : "until Ctrl-C or its exit",
			o.co.duration_ns ? ms_fmt_duration(e, sizeof(e), (uint64_t)o.co.duration_ns)
				      : "");
	}
	while ((rc = ms_rec_walk_step(rw)) != MS_REC_WALK_ENDED) {
		const struct ms_rec_walk_heap_sample *hs = &w->heap_sample;

		if (rc != MS_REC_WALK_STOPPED)
			continue;
		if (o.co.verbose && hs->fresh)
			fprintf(stderr,
				"memspy: heap sample %zu: stopped at %.9f s (CLOCK_MONOTONIC)%s "
				"in_use %llu free %llu top %llu mmapped %llu rss %llu (read %llu us, "
				"%llu reads)\n",
				hs->index, (double)hs->stop_ns / 1e9,
				hs->heap ? "" : " (no heap figures)",
				(unsigned long long)hs->total.in_use,
				(unsigned long long)hs->total.free, (unsigned long long)hs->total.top,
				(unsigned long long)hs->total.mmapped,
				(unsigned long long)hs->total.rss,
				(unsigned long long)(hs->read_ns / 1000), (unsigned long long)hs->reads);
		progress(w, tty, ms_now_ns(), &last_pg, &shown);
	}
	if (shown)
		fprintf(stderr, "\r\033[K");
	ms_rec_walk_close(rw);
	oc = w->end;
	if (o.co.verbose)
		fprintf(stderr, "memspy: recording ended at %.9f s (CLOCK_MONOTONIC)\n",
			(double)(w->start_ns + oc.wall_ns) / 1e9);

	cli_report_early_end(o.co.pid, oc.wait_error, oc.target_exited, oc.exit_status);
	if (oc.target_execd)
		fprintf(stderr,
			"memspy: the target (pid %d) exec'd a new program during the recording; "
			"writing what was collected before\n",
			(int)o.co.pid);

	alloc = ms_profile_new();
	all = ms_profile_new();
	ms_rec_profile_build_walk(alloc, all, r.table, r.sym, o.idle, o.co.lines, &alloc_samples,
				  &alloc_asleep);
	ms_rec_profile_mappings(alloc, r.sym, NULL);
	ms_rec_profile_mappings(all, r.sym, NULL);
	{
		char a[32], b[32], c[32], d[32];
		struct ms_rec_totals tot;
		uint64_t all_samples = (ms_rec_table_totals(r.table, &tot), tot.samples);
		/* The rate asked is not the rate had when the pause budget skipped stops. */
		double had = ms_rec_walk_rate_had(w);
		char *rate =
		    w->skipped_stack
			? ms_xasprintf("%g Hz asked, %.1f Hz had: %s stack samples skipped "
				       "by the pause budget",
				       o.rate, had, ms_fmt_count(c, sizeof(c), w->skipped_stack))
			: ms_xasprintf("%g Hz asked, %.1f Hz had", o.rate, had);
		char *sub_alloc = ms_xasprintf(
		    "Allocator time: %s of %s running thread samples (%.1f%%) were inside "
		    "malloc/free and friends over %.1f s (%s; %s sleeping left out), no probes",
		    ms_fmt_count(a, sizeof(a), alloc_samples),
		    ms_fmt_count(b, sizeof(b), w->running_samples),
		    w->running_samples ? 100.0 * (double)alloc_samples / (double)w->running_samples
				      : 0,
		    (double)oc.wall_ns / 1e9, rate, ms_fmt_count(d, sizeof(d), w->sleeping_samples));
		char *sub_all =
		    o.idle
			? ms_xasprintf("All threads: %s thread samples (%s running, %s sleeping) "
				       "over %.1f s (%s), no probes",
				       ms_fmt_count(a, sizeof(a), all_samples),
				       ms_fmt_count(b, sizeof(b), w->running_samples),
				       ms_fmt_count(d, sizeof(d), w->sleeping_samples),
				       (double)oc.wall_ns / 1e9, rate)
			: ms_xasprintf("All threads: %s running thread samples over %.1f s (%s; "
				       "%s sleeping left out, --idle shows them), no probes",
				       ms_fmt_count(a, sizeof(a), w->running_samples),
				       (double)oc.wall_ns / 1e9, rate,
				       ms_fmt_count(d, sizeof(d), w->sleeping_samples));
		enum ms_out_format all_fmt;

		if (ms_out_format_from_name(o.all_path, &all_fmt))
			all_fmt = o.co.fmt;
		rc = write_profile(alloc, &o, o.co.fmt, sub_alloc, &af_out, oc.wall_ns, &err);
		if (!rc)
			rc = write_profile(all, &o, all_fmt, sub_all, &af_all, oc.wall_ns, &err);
		ms_timeline_set_duration(w->tl, oc.wall_ns);
		if (!rc)
			rc = ms_timeline_write(w->tl, o.tl_fmt, af_tl.fp, &err);
		free(sub_alloc);
		free(sub_all);
		free(rate);
	}
	if (rc || ms_afile_commit(&af_out, &err) || ms_afile_commit(&af_all, &err) ||
	    ms_afile_commit(&af_tl, &err)) {
		cli_report(&err);
		goto out;
	}
	if (!o.co.quiet)
		walk_print_summary(&o, w, &oc, alloc_samples, alloc_asleep, ms_rec_self_cpu_ns() - cpu0);
	ret = oc.target_exited || oc.target_execd || oc.wait_error ? MS_EXIT_PARTIAL : MS_EXIT_OK;
out:
	/* Aborting a committed file is a no-op (its temporary name is gone). */
	ms_afile_abort(&af_out);
	ms_afile_abort(&af_all);
	ms_afile_abort(&af_tl);
	if (rw)
		ms_rec_walk_free(rw); /* and p with it */
	else
		ms_proc_free(p);
	ms_profile_free(alloc);
	ms_profile_free(all);
	opts_free(&o);
	return ret;
}
