// SPDX-License-Identifier: MIT
/*
 * memspy record: attach, probe the allocator, keep the raw PCs of sampled
 * allocations until --duration, Ctrl-C or the target's exit, remove every
 * probe, detach, then symbolise once per PC and write the flame graph.
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/record_int.h"
#include "cmd/record_interval.h"
#include "cmd/record_walk.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "attach/probe.h"
#include "output/output.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

/* "record", or the command that runs record's loop with hooks (ms_rec_main) */
static const char *cmd_name = "record";
#define CMD cmd_name
#define PROGRESS_NS 200000000ull  /* progress line refresh: 5 per second */


static void help(FILE *f)
{
	fprintf(f,
		"Usage: memspy record --pid PID [-o FILE] [options]\n"
		"\n"
		"Attaches to a running process, probes its allocator (malloc, calloc, realloc,\n"
		"posix_memalign, aligned_alloc, memalign, valloc, pvalloc, operator new; with\n"
		"--live also free and operator delete), records the call stacks of sampled\n"
		"allocations, removes every probe, detaches, and writes a flame graph of where\n"
		"memory is allocated.\n"
		"\n"
		"Options:\n");
	cli_help_shared(f, CLI_HELP_PID);
	cli_help_opt(f, "-o, --output FILE",
		     "output file (default: memspy-PID.svg); written atomically, also when the "
		     "recording ends early");
	cli_help_shared(f, CLI_HELP_FORMAT);
	cli_help_shared(f, CLI_HELP_DURATION);
	cli_help_opt(f, "--interval D",
		     "one file per interval of D (1s or more), for long leak hunts: FILE is a "
		     "pattern with {n} (1, 2, ...) or {time} (its end, UTC, 20261202T101500Z), and "
		     "{pid}; each file holds what was allocated in its interval and what the "
		     "recording sampled and is still live at its end (frees are followed, as "
		     "with --live). Compare two with go tool pprof -diff_base A B. With --live "
		     "the SVG, folded and speedscope files show the live view");
	cli_help_opt(f, "--keep N", "with --interval: keep only the last N files");
	cli_help_opt(f, "--live",
		     "bytes allocated during the recording and still not freed at the end (the "
		     "leak view)");
	cli_help_opt(f, "--count", "allocation counts instead of bytes");
	cli_help_shared(f, CLI_HELP_SAMPLE_BYTES);
	cli_help_shared(f, CLI_HELP_MAX_OVERHEAD);
	cli_help_shared(f, CLI_HELP_EXACT);
	cli_help_shared(f, CLI_HELP_STACK_BYTES);
	cli_help_shared(f, CLI_HELP_UNWINDER);
	cli_help_shared(f, CLI_HELP_LINES);
	cli_help_shared(f, CLI_HELP_PROBE);
	cli_help_shared(f, CLI_HELP_PROBE_FREE);
	cli_help_opt(f, "--subprocesses",
		     "the process and all its descendants, those forked or exec'd during the "
		     "recording too (one root frame per process): pre-forking servers (nginx, "
		     "postgres, gunicorn, php-fpm) work in their children; with --interval, "
		     "each file merges every process's interval");
	cli_help_opt(f, "--mode MODE",
		     "probe (default: allocator probes, as above) or walk (no probes: periodic "
		     "stops and heap reads; see 'memspy record --mode walk --help')");
	cli_help_shared(f, CLI_HELP_QUIET);
	cli_help_opt(f, "-v, --verbose",
		     "say what memspy does (each change of the sampling mean); twice for "
		     "debugging detail");
	cli_help_shared(f, CLI_HELP_HELP);
	fprintf(
	    f,
	    "\n"
	    "Examples:\n"
	    "  memspy record --pid 4242 -o alloc.svg --duration 30s\n"
	    "  memspy record --pid 4242 --live -o leaks.svg            (Ctrl-C to stop)\n"
	    "  memspy record --pid 4242 --count -o calls.folded\n"
	    "  memspy record --pid 4242 --exact --duration 5s -o all.speedscope.json\n"
	    "  memspy record --pid 4242 --probe my_pool_alloc -o pool.svg\n"
	    "  memspy record --pid 4242 --live --probe get_buf --probe-free put_buf\n"
	    "  memspy record --pid 4242 --interval 10m --keep 12 -o 'heap-{n}.pb.gz'\n"
	    "\n"
	    "Symbols: separate debug files by build id under /usr/lib/debug (and the\n"
	    "roots in MEMSPY_DEBUGINFO_PATH); a debuginfod server only when\n"
	    "DEBUGINFOD_URLS is set (after the recording, bounded, cached).\n"
	    "\n"
	    "Exit status:\n"
	    "  0   complete: the file holds the whole recording\n"
	    "  1   partial: the file was written but the recording is incomplete (the\n"
	    "      target exited, it overwrote memspy's pages in it, or --live could not\n"
	    "      follow some sampled blocks to their free); the reason is printed\n"
	    "  2   failed: nothing written (cannot attach, no allocator found, output\n"
	    "      not writable); also when a probe could not be removed and verified\n"
	    "      (the file is still written then, and the byte at fault is named)\n"
	    "  64  usage error\n"
	    "\n"
	    "A progress line is shown on stderr when it is a terminal; a summary of what\n"
	    "was seen and what it cost the target is always printed at the end (but -q).\n");
}

enum {
	OPT_LIVE = CLI_OPT_REC_OWN,
	OPT_COUNT,
	OPT_EXACT,
	OPT_PROBE,
	OPT_SUBPROCESSES,
	OPT_MAX_OVERHEAD,
	OPT_INTERVAL,
	OPT_KEEP,
	OPT_PROBE_FREE,
	OPT_INTERVAL_ORIGIN,
};

static const struct option long_opts[] = {
    CLI_REC_LONG_OPTS,
    {"live", no_argument, NULL, OPT_LIVE},
    {"count", no_argument, NULL, OPT_COUNT},
    {"sample-bytes", required_argument, NULL, 's'},
    {"exact", no_argument, NULL, OPT_EXACT},
    {"probe", required_argument, NULL, OPT_PROBE},
    {"probe-free", required_argument, NULL, OPT_PROBE_FREE},
    {"subprocesses", no_argument, NULL, OPT_SUBPROCESSES},
    {"max-overhead", required_argument, NULL, OPT_MAX_OVERHEAD},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"keep", required_argument, NULL, OPT_KEEP},
    /* --subprocesses' recorders: the coordinator's grid (not in the help) */
    {"interval-origin", required_argument, NULL, OPT_INTERVAL_ORIGIN},
    {NULL, 0, NULL, 0},
};

static void opts_free(struct rec_opts *o)
{
	cli_rec_opts_free(&o->co);
	free(o->probes);
	free(o->probe_frees);
}

static bool valid_symbol(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s == '@' || *s == ';')
			return false;
	return true;
}

/*
 * A --probe allocator's blocks are given back through its own free
 * function: unless --probe-free names one, memspy never sees them freed and
 * the live view holds every sampled one. memspy cannot tell which free
 * goes with which allocator (any probed free matches any sampled block), so
 * one --probe-free silences the warning for all.
 */
static void warn_probe_frees(const struct rec_opts *o)
{
	bool frees = o->live || o->interval_ns;

	if (o->co.quiet)
		return;
	if (frees && !o->nprobe_frees) {
		for (size_t i = 0; i < o->nprobes; i++)
			fprintf(stderr,
				"memspy %s: warning: --probe %s without --probe-free: memspy "
				"never sees these blocks freed, so %s counts every sampled block "
				"as live (name its free function with --probe-free SYMBOL)\n",
				CMD, o->probes[i], o->live ? "--live" : "--interval's live view");
	}
	if (!frees && o->nprobe_frees)
		fprintf(stderr,
			"memspy %s: note: --probe-free has no effect without --live or "
			"--interval (frees are not followed)\n",
			CMD);
}

/* The long name of option c. */
static const char *opt_name(int c)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == c)
			return lo->name;
	return "?";
}

/*
 * Returns 0, or the exit code to return (64 usage error, or 0 after --help
 * with *done). With hooks (h): h's help, and no option about a file.
 */
static int parse_opts(int argc, char **argv, struct rec_opts *o, bool *done,
		      const struct ms_rec_hooks *h)
{
	struct ms_rec_sampling_ask ask;
	struct ms_rec_sampling pol;
	int c, r;

	*o = (struct rec_opts){0};
	ms_rec_sampling_ask_init(&ask);
	cli_rec_opts_init(&o->co);
	o->cmd = CMD;
	*done = false;
	optind = 1;
	opterr = 0; /* our own one-line messages, through cli_usage_error */
	while ((c = getopt_long(argc, argv, CLI_REC_SHORT_OPTS "s:", long_opts, NULL)) != -1) {
		if (h && (c == 'o' || c == 'f' || c == OPT_COUNT || c == CLI_OPT_LINES ||
			  c == CLI_OPT_MODE || c == OPT_INTERVAL || c == OPT_KEEP ||
			  c == OPT_SUBPROCESSES))
			return cli_usage_error(CMD, "--%s is an option of memspy record, not of %s",
					       opt_name(c), CMD);
		if ((r = cli_rec_opt(CMD, c, optarg, &o->co)) != 1) {
			if (r)
				return r;
			if (o->co.help) {
				(h ? h->help : help)(stdout);
				*done = true;
				return MS_EXIT_OK;
			}
			continue;
		}
		switch (c) {
		case OPT_LIVE:
			o->live = true;
			break;
		case OPT_COUNT:
			o->count = true;
			break;
		case 's':
			if (cli_parse_bytes(optarg, &ask.sample_bytes))
				return cli_usage_error(CMD,
						       "--sample-bytes: '%s' is not a byte count "
						       "(e.g. 512k, 4M, 0 for every call)",
						       optarg);
			ask.sample_given = true;
			break;
		case OPT_EXACT:
			ask.exact = true;
			break;
		case OPT_MAX_OVERHEAD:
			if ((r = cli_opt_max_overhead(CMD, optarg, &ask.max_overhead)))
				return r;
			ask.overhead_given = true;
			break;
		case OPT_INTERVAL:
			if ((r = cli_interval_opt(CMD, optarg, &o->interval_ns)))
				return r;
			break;
		case OPT_KEEP:
			if ((r = cli_interval_opt_keep(CMD, optarg, &o->keep)))
				return r;
			break;
		case OPT_INTERVAL_ORIGIN:
			if ((r = cli_interval_opt_origin(CMD, optarg, &o->interval_origin_ns)))
				return r;
			break;
		case OPT_PROBE:
			if (!valid_symbol(optarg))
				return cli_usage_error(CMD, "--probe: '%s' is not a symbol name",
						       optarg);
			ms_xgrow((void **)&o->probes, &o->probes_cap, o->nprobes + 1,
				 sizeof(*o->probes));
			o->probes[o->nprobes++] = optarg;
			break;
		case OPT_PROBE_FREE:
			if (!valid_symbol(optarg))
				return cli_usage_error(CMD,
						       "--probe-free: '%s' is not a symbol name",
						       optarg);
			ms_xgrow((void **)&o->probe_frees, &o->probe_frees_cap,
				 o->nprobe_frees + 1, sizeof(*o->probe_frees));
			o->probe_frees[o->nprobe_frees++] = optarg;
			break;
		case OPT_SUBPROCESSES:
			/* cmd_record() hands it to cmd_record_subprocesses(), which drops it. */
			break;
		case CLI_OPT_MODE:
			/* "walk" never gets here: cmd_record() hands it to cmd_record_walk(). */
			if (strcmp(optarg, "probe"))
				return cli_usage_error(
				    CMD, "--mode: unknown mode '%s' (use probe or walk)", optarg);
			break;
		default: /* ':' or '?' */
			return cli_getopt_error(CMD, c, argc, argv);
		}
	}
	if ((r = cli_getopt_error(CMD, -1, argc, argv)))
		return r;
	for (unsigned i = 0; i < o->co.verbose; i++)
		if (ms_log_verbosity < MS_LOG_DEBUG)
			ms_log_verbosity++;
	if (!o->co.pid) {
		char *example = ms_xasprintf("memspy %s --pid $(pidof myservice)%s", CMD,
					     h ? "" : " -o alloc.svg");

		r = cli_rec_opts_need_pid(CMD, &o->co, example);
		free(example);
		return r;
	}
	/* The sampling mean and the budget: record/policy.c. */
	if (ms_rec_sampling_policy(&ask, &pol))
		return cli_usage_error(CMD, "--exact and --sample-bytes %s contradict each other",
				       "N > 0");
	o->sample_bytes = pol.sample_bytes;
	o->min_sample_bytes = pol.min_sample_bytes;
	o->max_overhead = pol.max_overhead;
	o->sample_bytes_given = ask.sample_given;
	o->max_overhead_given = ask.overhead_given;
	if (pol.overhead_ignored && !o->co.quiet)
		fprintf(stderr, "memspy %s: note: --max-overhead is ignored with --exact (every "
				"call is recorded; the cost is reported at the end)\n",
			CMD);
	warn_probe_frees(o);
	if (h)
		return 0; /* no file */
	if ((r = cli_rec_opts_output(CMD, &o->co, o->interval_ns ? "-{n}" : "")))
		return r;
	return cli_interval_check(CMD, o->co.out_path, o->interval_ns, o->keep);
}

/* ------------------------------ progress ------------------------------ */

struct progress {
	bool tty;
	uint64_t start_ns, last_ns;
	bool shown;
	const struct ms_rec_interval *iv; /* --interval: which one, and when the next file */
};

/* Returns true when it printed. */
static bool progress_update(struct progress *pg, struct ms_probes *pr, const struct ms_rec_meter *m,
			    uint64_t now)
{
	struct ms_probe_stats st;
	char a[32], b[32], c[32], d[32], e[64];

	if (!pg->tty || now - pg->last_ns < PROGRESS_NS)
		return false;
	pg->last_ns = now;
	ms_probes_stats(pr, &st);
	fprintf(stderr, "\rmemspy: %.1f s, %s samples", (uint64_t)(now - pg->start_ns) / 1e9,
		ms_fmt_count(a, sizeof(a), st.samples));
	if (m->budget.mean)
		fprintf(stderr, " (mean %s)", ms_fmt_bytes(d, sizeof(d), m->budget.mean));
	fprintf(stderr, ", %s stops, target stopped %s%s\033[K", ms_fmt_count(b, sizeof(b), st.stops),
		ms_fmt_duration(c, sizeof(c), (uint64_t)st.stopped_ns),
		pg->iv ? cli_interval_progress(pg->iv, now, e, sizeof(e)) : "");
	pg->shown = true;
	return true;
}

static void progress_clear(struct progress *pg)
{
	if (pg->shown)
		fprintf(stderr, "\r\033[K");
	pg->shown = false;
}

/* ------------------------------ the command ------------------------------ */

/*
 * Writes the profile of t to fp: the whole recording (iv NULL, wall_ns
 * long), or the current interval of iv, ending at now_ns. 0 or a negative
 * code with err filled.
 */
static int write_profile(const struct rec_opts *o, const struct ms_rec_table *t,
			 struct ms_symbolizer *sym, const struct ms_modules *mods,
			 const struct ms_rec_interval *iv, uint64_t wall_ns, uint64_t now_ns,
			 const struct ms_rec_budget *b, FILE *fp, struct ms_error *err)
{
	struct ms_profile *prof = ms_profile_new();
	struct ms_rec_profile_opts view = {.live = o->live, .lines = o->co.lines, .iv = iv};
	struct ms_out_opts wo;
	char *subtitle;
	int rc;

	/* An interval's pprof file carries both views (alloc_* and inuse_*), as Go's heap
	 * profiles do: -diff_base of two of them shows what grew. So does the msprof
	 * file a --subprocesses recorder hands to the coordinator, which merges them. */
	if (iv && (o->co.fmt == MS_OUT_PPROF || o->co.fmt == MS_OUT_MSPROF))
		view.live = true;
	ms_rec_profile_build(prof, t, sym, &view);
	ms_rec_profile_mappings(prof, sym, mods);
	if (iv) {
		subtitle = cli_interval_subtitle(iv, t, now_ns, o->live,
						 o->sample_bytes ? b->mean : 0);
	} else {
		struct ms_rec_totals tot;

		ms_rec_table_totals(t, &tot);
		subtitle = rec_file_subtitle(o, &tot, wall_ns, b);
	}
	wo = (struct ms_out_opts){
	    .title = cli_command_line(),
	    .subtitle = subtitle,
	    .value = o->count ? MS_VALUE_COUNT : MS_VALUE_BYTES,
	    .lines = o->co.lines,
	    .live = view.live,
	    .sample_period = o->sample_bytes,
	    .samples = o->sample_bytes != 0,
	    .duration_ns = wall_ns,
	};
	if (iv)
		ms_rec_interval_times(iv, now_ns, &wo.time_ns, &wo.duration_ns);
	wo.main_module = ms_rec_profile_main_module(mods);
	rc = ms_profile_write(prof, o->co.fmt, &wo, fp, err);
	free(subtitle);
	ms_profile_free(prof);
	return rc;
}

/*
 * Ends the current interval at now (the rings were just drained): writes
 * its file atomically and says where it went. memspy's CPU for it is kept
 * out of the overhead budget, which a wider mean would not reduce; the
 * summary reports it.
 */
static void interval_cut(const struct rec_opts *o, struct ms_rec_interval *iv,
			 struct cli_interval_files *ivf, struct ms_rec_session *rs,
			 struct progress *pg, uint64_t now)
{
	uint64_t cpu = ms_rec_self_cpu_ns(), spent;
	struct ms_probe_stats st;
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_rec_read r;
	int rc;

	progress_clear(pg);
	ms_rec_session_read(rs, &r);
	if (r.sym)
		ms_symbolizer_refresh(r.sym); /* modules mapped meanwhile */
	rc = cli_interval_files_open(ivf, iv, &af, &err);
	if (!rc) {
		rc = write_profile(o, r.table, r.sym, r.mods, iv, 0, now, &r.meter->budget, af.fp,
				   &err);
		if (rc)
			ms_afile_abort(&af);
		else
			rc = ms_afile_commit(&af, &err);
	}
	spent = ms_rec_self_cpu_ns() - cpu;
	ms_probes_stats(r.probes, &st);
	cli_interval_files_done(ivf, iv, r.table, now, rc == 0, &err, spent, st.dropped, o->co.quiet);
	ms_rec_interval_next(iv, r.table, now);
	ms_rec_session_cut(rs, spent);
}

/* What a hook sees of the recording (ms_rec_hooks). */
static void fill_view(struct ms_rec_view *v, const struct rec_opts *o,
		      const struct ms_rec_session *rs)
{
	struct ms_rec_read r;

	ms_rec_session_read(rs, &r);
	*v = (struct ms_rec_view){
	    .pid = o->co.pid,
	    .live = o->live,
	    .start_ns = r.start_ns,
	    .table = r.table,
	    .sym = r.sym,
	    .budget = &r.meter->budget,
	    .last = r.last,
	};
}

int cmd_record(int argc, char **argv)
{
	return ms_rec_main(argc, argv, NULL);
}

int ms_rec_main(int argc, char **argv, const struct ms_rec_hooks *h)
{
	struct rec_opts o;
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_proc *p = NULL;
	struct ms_rec_session *rs = NULL;
	struct ms_rec_session_opts so;
	struct ms_rec_read r;
	struct ms_rec_closed closed = {.verified = true};
	struct ms_rec_interval *iv = NULL;
	struct cli_interval_files *ivf = NULL;
	unsigned interval_failed = 0;
	struct progress pg = {0};
	struct ms_rec_baseline baseline = {0};
	struct ms_attach_opts aopts = {.trace_fork = true};
	bool done, afile_open = false;
	uint64_t now;
	int rc, ret = MS_EXIT_FAILED;

	if (h)
		cmd_name = h->cmd;
	if (!h && cli_has_subprocesses(argc, argv))
		return cmd_record_subprocesses(argc, argv);
	/* --mode walk patches nothing and is a different recorder altogether. */
	for (int i = 1; !h && i < argc && strcmp(argv[i], "--"); i++) {
		if ((!strcmp(argv[i], "--mode") && i + 1 < argc && !strcmp(argv[i + 1], "walk")) ||
		    !strcmp(argv[i], "--mode=walk"))
			return cmd_record_walk(argc, argv);
	}
	rc = parse_opts(argc, argv, &o, &done, h);
	if (rc || done) {
		opts_free(&o);
		return rc;
	}
	/* An unwritable output is found before anything is attached. */
	if (h) {
		/* no file */
	} else if (o.interval_ns) {
		if (cli_interval_probe_dir(o.co.out_path, o.co.pid, &err)) {
			cli_report(&err);
			goto out;
		}
	} else {
		if (ms_afile_open(&af, o.co.out_path, &err)) {
			cli_report(&err);
			goto out;
		}
		afile_open = true;
	}
	ms_signals_init();
	/* Before anything is attached: how long the target waits for a CPU anyway. */
	if (!ms_rec_baseline_measure(o.co.pid, &baseline)) {
		ms_error_set(&err, -EINTR, "record: stopped before attaching (signal %d)",
			     ms_signals_stop_requested());
		cli_report(&err);
		goto out;
	}
	if (cli_attach(CMD, o.co.pid, &aopts, &p))
		goto out;
	so = (struct ms_rec_session_opts){
	    .duration_ns = o.co.duration_ns,
	    .sample_bytes = o.sample_bytes,
	    .min_sample_bytes = o.min_sample_bytes,
	    .max_overhead = o.max_overhead,
	    .stack_bytes = o.co.stack_bytes,
	    .unwinder = o.co.unwinder,
	    .track_frees = o.live || o.interval_ns, /* an interval's file holds the live view */
	    .probes = o.probes,
	    .nprobes = o.nprobes,
	    .probe_frees = o.probe_frees,
	    .nprobe_frees = o.nprobe_frees,
	};
	/* The session owns p from here on. */
	if (ms_rec_session_open(p, &so, &baseline, &rs, &err)) {
		cli_report(&err);
		goto out;
	}
	ms_rec_session_read(rs, &r);
	if (o.interval_ns) {
		iv = ms_rec_interval_new(o.interval_ns, r.start_ns, o.interval_origin_ns);
		ivf = cli_interval_files_new(o.co.out_path, o.keep, o.co.pid);
	}
	pg = (struct progress){.tty = !o.co.quiet && !h && isatty(STDERR_FILENO),
			       .start_ns = r.start_ns,
			       .last_ns = r.start_ns,
			       .iv = iv};
	if (!o.co.quiet && !h) {
		const char **names;
		char comm[64], d[32];
		size_t nthr = ms_proc_nthreads(r.proc), nsites = ms_probes_sites(r.probes, &names);

		fprintf(stderr,
			"memspy: recording pid %d (%s, %zu thread%s, %zu entry point%s "
			"probed) %s%s",
			(int)o.co.pid, ms_proc_comm(o.co.pid, comm, sizeof(comm)), nthr,
			nthr == 1 ? "" : "s", nsites, nsites == 1 ? "" : "s",
			o.co.duration_ns ? "for " : "until Ctrl-C or its exit",
			o.co.duration_ns ? ms_fmt_duration(d, sizeof(d), (uint64_t)o.co.duration_ns) : "");
		if (iv)
			fprintf(stderr, ", a file every %s: %s",
				ms_fmt_duration(d, sizeof(d), o.interval_ns), o.co.out_path);
		fprintf(stderr, "\n");
	}
	while (ms_rec_session_step(rs, iv ? ms_rec_interval_end(iv) : 0) == 0) {
		now = ms_now_ns();
		/*
		 * Just drained: what was sampled before the boundary is in the table.
		 * A boundary at the end of --duration is the last file's, written
		 * after the loop (cut here too, it left a 0.0-s file after it).
		 */
		if (iv && ms_rec_interval_due(iv, now,
					      o.co.duration_ns ? r.start_ns + o.co.duration_ns : 0))
			interval_cut(&o, iv, ivf, rs, &pg, now);
		ms_rec_session_upkeep(rs);
		ms_rec_session_read(rs, &r);
		if (progress_update(&pg, r.probes, r.meter, ms_now_ns()))
			ms_rec_session_busy(rs);
		if (h && h->step) {
			struct ms_rec_view v;
			int s;

			fill_view(&v, &o, rs);
			s = h->step(h->ctx, &v);
			if (s & MS_REC_STEP_BUSY)
				ms_rec_session_busy(rs); /* the hook's CPU is not idle polling */
			if (s & MS_REC_STEP_STOP)
				break;
		}
	}
	progress_clear(&pg);
	/* The target first: every byte back, verified, before anything else. */
	if (ms_rec_session_close(rs, &closed, &err))
		cli_report(&err);
	ms_rec_session_read(rs, &r);

	if (h && h->ended) {
		struct ms_rec_view v;

		fill_view(&v, &o, rs);
		h->ended(h->ctx, &v);
	}
	cli_report_early_end(o.co.pid, r.end->wait_error, r.end->target_exited, r.end->exit_status);
	if (h)
		goto summary;

	/* detached, the target runs: a debuginfod fetch (only with the user's
	 * DEBUGINFOD_URLS) can no longer stall it */
	if (r.sym)
		ms_symbolizer_set_debuginfod(r.sym, true);
	if (iv) {
		/* the last interval ends here; its file is written like the others */
		interval_cut(&o, iv, ivf, rs, &pg, r.start_ns + r.end->wall_ns);
		ms_rec_session_read(rs, &r);
		goto summary;
	}
	rc = write_profile(&o, r.table, r.sym, r.mods, NULL, r.end->wall_ns, 0, &r.meter->budget,
			   af.fp, &err);
	if (rc || ms_afile_commit(&af, &err)) {
		cli_report(&err);
		goto out;
	}
	afile_open = false;
summary:
	if (!o.co.quiet) {
		char *hint = r.sym ? ms_symbolizer_names_hint(r.sym) : NULL;

		rec_print_summary(&o, r.table, r.probes, r.counts, r.end, r.meter, closed.verify_note,
			      closed.verified, ivf);
		{
			struct ms_rec_totals tot;

			ms_rec_table_totals(r.table, &tot);
			ms_subprocess_hint(stderr, o.co.pid, tot.samples);
		}
		if (hint) { /* it names modules: their paths are the target's */
			fputs("  ", stderr);
			ms_fputs_terminal(hint, stderr);
			fputc('\n', stderr);
		}
		free(hint);
	}
	if (ivf)
		interval_failed = cli_interval_files_failed(ivf);
	if (!closed.removed || (ivf && !cli_interval_files_written(ivf)))
		ret = MS_EXIT_FAILED;
	else if (r.end->target_exited || r.end->wait_error || interval_failed)
		ret = MS_EXIT_PARTIAL;
	else {
		struct ms_probe_stats st;

		ms_probes_stats(r.probes, &st);
		ret = st.dropped || st.tampered || st.discarded ? MS_EXIT_PARTIAL : MS_EXIT_OK;
	}
out:
	if (afile_open)
		ms_afile_abort(&af);
	if (rs)
		ms_rec_session_free(rs); /* and p with it */
	else
		ms_proc_free(p);
	ms_rec_interval_free(iv);
	cli_interval_files_free(ivf);
	free(closed.verify_note);
	opts_free(&o);
	return ret;
}
