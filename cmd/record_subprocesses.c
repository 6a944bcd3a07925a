// SPDX-License-Identifier: MIT
/*
 * memspy record --subprocesses: the options, the merged profile written
 * and the summary. The coordinator that runs one recorder per process of
 * the tree and reads their profiles back is record/subprocesses.c.
 */
#include "cmd/cmd.h"
#include "cmd/record_interval.h"
#include "cmd/record_opts.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "attach/descendants.h"
#include "output/output.h"
#include "output/timeline.h"
#include "record/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD	   "record"
#define READY_LINE "memspy: recording pid "

/* The options: the coordinator's own; the rest go to every recorder. */
struct sp {
	struct ms_sp_opts o;
	struct cli_rec_opts co; /* pid (the root), -o, -f, -q (-d is o.duration_ns) */
	bool idle;		/* --idle */
	const char *all_path;	/* walk: the merged all-threads profile */
	char *all_default, *tl_default;
	bool count, live, lines;
	int verbose;
	unsigned keep;			/* --keep */
	struct cli_interval_files *ivf; /* --interval: the merged files */
	char *title;			/* the files' title: the command line */
};

bool cli_has_subprocesses(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--subprocesses"))
			return true;
	return false;
}

/* record's options that take a value (short and long), for passing them through. */
static bool takes_value(const char *a)
{
	static const char *const with_value[] = {"-p",
						 "--pid",
						 "-o",
						 "--output",
						 "-f",
						 "--format",
						 "-d",
						 "--duration",
						 "-s",
						 "--sample-bytes",
						 "--stack-bytes",
						 "--unwinder",
						 "--probe",
						 "--probe-free",
						 "--mode",
						 "--max-overhead",
						 "--interval",
						 "--keep",
						 "--rate",
						 "--walk-interval",
						 "--max-pause-share",
						 "--max-list-reads",
						 "--all-threads",
						 "--timeline"};

	for (size_t i = 0; i < MS_ARRAY_SIZE(with_value); i++)
		if (!strcmp(a, with_value[i]))
			return true;
	return false;
}

/* "--opt=value" or "--opt value" or "-xvalue": the value of option name/shrt, or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, const char *shrt)
{
	const char *a = argv[*i];
	size_t ln = strlen(name);

	if (!strncmp(a, name, ln) && a[ln] == '=')
		return a + ln + 1;
	if (!strcmp(a, name) || (shrt && !strcmp(a, shrt))) {
		if (*i + 1 >= argc)
			return NULL;
		return argv[++*i];
	}
	if (shrt && !strncmp(a, shrt, 2) && a[2])
		return a + 2;
	return NULL;
}

static bool is_opt(const char *a, const char *name, const char *shrt)
{
	size_t ln = strlen(name);

	return !strcmp(a, name) || (!strncmp(a, name, ln) && a[ln] == '=') ||
	       (shrt && !strncmp(a, shrt, 2));
}

static void pass(struct sp *s, char *a)
{
	s->o.pass = ms_xrealloc(s->o.pass, (s->o.npass + 1) * sizeof(*s->o.pass));
	s->o.pass[s->o.npass++] = a;
}

/* The options the coordinator reads itself; the rest go to every recorder. 0 or an exit code. */
static int parse(struct sp *s, int argc, char **argv, bool *help)
{
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (!strcmp(a, "--")) {
			for (; i < argc; i++)
				pass(s, argv[i]);
			break;
		}
		if (!strcmp(a, "--subprocesses"))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = true;
			return 0;
		}
		/*
		 * --interval: each recorder cuts on the coordinator's grid (the
		 * coordinator gives it --interval-origin), the coordinator merges
		 * each interval and keeps the files.
		 */
		if (is_opt(a, "--interval", NULL)) {
			if (!(v = opt_value(argc, argv, &i, "--interval", NULL)))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_interval_opt(CMD, v, &s->o.interval_ns)))
				return r;
			s->o.interval_arg = v;
		} else if (is_opt(a, "--keep", NULL)) {
			if (!(v = opt_value(argc, argv, &i, "--keep", NULL)))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_interval_opt_keep(CMD, v, &s->keep)))
				return r;
		} else if (is_opt(a, "--interval-origin", NULL)) {
			return cli_usage_error(CMD, "--interval-origin is memspy's own, for the "
						    "recorders of --subprocesses");
		} else if (is_opt(a, "--pid", "-p")) {
			if (!(v = opt_value(argc, argv, &i, "--pid", "-p")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_pid(CMD, v, &s->o.root)))
				return r;
		} else if (is_opt(a, "--output", "-o")) {
			if (!(v = opt_value(argc, argv, &i, "--output", "-o")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_output(CMD, v, &s->co.out_path)))
				return r;
		} else if (is_opt(a, "--format", "-f")) {
			if (!(v = opt_value(argc, argv, &i, "--format", "-f")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_format(CMD, v, &s->co.fmt)))
				return r;
			s->co.fmt_given = true;
		} else if (is_opt(a, "--duration", "-d")) {
			if (!(v = opt_value(argc, argv, &i, "--duration", "-d")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_duration(CMD, v, &s->o.duration_ns)))
				return r;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			s->co.quiet = true;
		} else if (is_opt(a, "--all-threads", NULL)) {
			if (!(v = opt_value(argc, argv, &i, "--all-threads", NULL)) || !*v)
				return cli_usage_error(CMD, "--all-threads needs a file name");
			s->all_path = v;
		} else if (is_opt(a, "--timeline", NULL)) {
			enum ms_tl_format tf;

			if (!(v = opt_value(argc, argv, &i, "--timeline", NULL)))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if (ms_tl_format_from_name(v, &tf))
				return cli_usage_error(
				    CMD, "--timeline: '%s' must end in .svg or .json", v);
			s->o.tl_path = v;
		} else {
			if (is_opt(a, "--mode", NULL)) {
				const char *m = a[6] == '='    ? a + 7
						: i + 1 < argc ? argv[i + 1]
							       : "";

				s->o.walk = !strcmp(m, "walk");
			}
			if (!strcmp(a, "--idle"))
				s->idle = true;
			if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
				s->verbose++;
			if (!strcmp(a, "--count"))
				s->count = true;
			if (!strcmp(a, "--live"))
				s->live = true;
			if (!strcmp(a, "--lines"))
				s->lines = true;
			pass(s, argv[i]);
			if (a[0] == '-' && !strchr(a, '=') && takes_value(a) && i + 1 < argc)
				pass(s, argv[++i]);
		}
	}
	if (!s->o.root)
		return cli_usage_error(CMD, "--pid is required (e.g. memspy record --pid "
					    "$(pidof nginx | tr ' ' '\\n' | sort -n | head -1) "
					    "--subprocesses -o alloc.svg)");
	s->co.pid = s->o.root;
	if ((r = cli_rec_opts_output(CMD, &s->co, s->o.interval_ns ? "-{n}" : "")))
		return r;
	if (s->o.walk && (s->o.interval_ns || s->keep))
		return cli_usage_error(CMD, "--interval and --keep are probe mode's: walk mode "
					    "writes one file at the end (and a heap timeline per "
					    "process)");
	if ((r = cli_interval_check(CMD, s->co.out_path, s->o.interval_ns, s->keep)))
		return r;
	if (!s->o.walk) {
		if (s->all_path || s->o.tl_path)
			return cli_usage_error(CMD, "--all-threads and --timeline are walk mode's "
						    "(--mode walk)");
		return 0;
	}
	/* Walk mode's other files, named as it names them (memspy record --mode walk --help). */
	if (!s->all_path) {
		size_t st = ms_sp_stem_len(s->co.out_path);

		s->all_default =
		    ms_xasprintf("%.*s.all%s", (int)st, s->co.out_path, s->co.out_path + st);
		s->all_path = s->all_default;
	}
	if (!s->o.tl_path) {
		s->tl_default = ms_xasprintf("%.*s.timeline-{pid}.svg",
					     (int)ms_sp_stem_len(s->co.out_path), s->co.out_path);
		s->o.tl_path = s->tl_default;
	}
	if (!strcmp(s->co.out_path, s->all_path))
		return cli_usage_error(CMD, "-o and --all-threads must name two different files");
	return 0;
}

static void print_note(const char *note)
{
	fputs("      ", stderr);
	ms_fputs_terminal(note, stderr);
	fputc('\n', stderr);
}

static bool log_line(void *ctx, const char *line)
{
	/* The recorder's lines quote module paths and names the target chose. */
	fprintf(stderr, "  [pid %d] ", (int)((const struct ms_sp_proc *)ctx)->pid);
	ms_fputs_terminal(line, stderr);
	return true;
}

/* Prints the recorder's own output (what it said went wrong). */
static void print_log(const struct ms_sp_proc *p)
{
	ms_sp_log_each(p, log_line, (void *)p);
}

/*
 * A partial recording: the recorder's own lines about why ("memspy: waiting
 * for pid ...", "WARNING: ..."), not its progress, its interval files and
 * summary (-v prints all).
 */
static bool reason_line(void *ctx, const char *buf)
{
	const char *t = buf + strspn(buf, " ");

	if ((!strncmp(buf, "memspy: ", 8) && strncmp(buf, READY_LINE, strlen(READY_LINE)) &&
	     strncmp(buf, "memspy: wrote ", 14) && strncmp(buf, "memspy: interval ", 17)) ||
	    !strncmp(t, "WARNING: ", 9))
	{
		fprintf(stderr, "      [pid %d] ", (int)((const struct ms_sp_proc *)ctx)->pid);
		ms_fputs_terminal(t, stderr);
	}
	return true;
}

static void print_reasons(const struct ms_sp_proc *p)
{
	ms_sp_log_each(p, reason_line, (void *)p);
}

/* What p's figures rest on (probe mode), into buf: "estimated from 120 samples, mean 4 KiB". */
static const char *estimate(const struct ms_sp_proc *p, char *buf, size_t size)
{
	char n[32];

	if (p->exact)
		return "exact: every call";
	if (!p->samples && p->bytes) /* --interval: from its files; its summary never came */
		return "estimated; its own summary is missing";
	if (!p->samples)
		return p->live ? "no live sample" : "no sample";
	snprintf(buf, size, "estimated from %s%s sample%s%s%s%s",
		 ms_fmt_count(n, sizeof(n), p->samples), p->live ? " live" : "",
		 p->samples == 1 ? "" : "s",
		 p->samples < MS_OUT_FEW_SAMPLES ? ": few, a rough figure" : "",
		 p->mean[0] ? ", mean " : "", p->mean);
	return buf;
}

/* What the recorder's exit status says, for the summary. */
static const char *status_word(const struct ms_sp_proc *p, bool *failed, bool *partial)
{
	int st = p->status;
	/* a zombie its parent has not reaped has exited too; a pid reused is gone */
	bool gone = p->gone || ms_procfs_gone(p->pid);

	if (WIFSIGNALED(st)) {
		*failed = true;
		return "its recorder was killed";
	}
	switch (WEXITSTATUS(st)) {
	case MS_EXIT_OK:
		/* Walk mode patched nothing: stopped at the exec, it ends well. */
		return p->exec_seen ? "until it exec'd" : NULL;
	case MS_EXIT_PARTIAL:
		/* A worker that exits ends its own recording: all of its life is there. */
		if (gone || p->exec_seen)
			return p->exec_seen ? "until it exec'd" : "until it exited";
		*partial = true;
		return "partial";
	default:
		/*
		 * After an exec the old image, whose bytes it put back before the
		 * exec or found gone, cannot be read to check: what the exec left
		 * is the new recorder's (a failed removal leaves no such note).
		 */
		if (p->exec_seen && WEXITSTATUS(st) == MS_EXIT_FAILED && p->note &&
		    strstr(p->note, "could not verify"))
			return "until it exec'd; its old image is gone, not verified";
		*failed = true;
		return "FAILED";
	}
}

/* The coordinator's progress lines. */
static void on_event(void *ctx, const struct ms_sp_proc *p, enum ms_sp_event ev)
{
	const struct sp *s = ctx;

	if (s->co.quiet)
		return;
	if (ev == MS_SP_STARTED && s->verbose)
		fprintf(stderr, "memspy: process %d (%s): recorder %d started\n", (int)p->pid,
			p->title, (int)p->rec);
	if (ev == MS_SP_READY)
		fprintf(stderr, "memspy: recording pid %d (%s)%s\n", (int)p->pid, p->title,
			p->gen	  ? ", probed again in its new image after exec"
			: p->late ? ", forked during the recording"
				  : "");
}

/* --interval: interval n of every process, merged: its file written, and said where. */
static void on_interval(void *ctx, const struct ms_sp_interval *iv)
{
	struct sp *s = ctx;
	struct cli_interval_fig fig = {
	    .n = iv->n,
	    .from_real_ns = iv->from_real_ns,
	    .duration_ns = iv->duration_ns,
	    .live_bytes = iv->live_bytes,
	    .live_count = iv->live_count,
	    .alloc_bytes = iv->alloc_bytes,
	    .alloc_count = iv->alloc_count,
	    .nproc = iv->nproc,
	};
	struct ms_afile af = {0};
	struct ms_error err = {0};
	uint64_t cpu = ms_rec_self_cpu_ns();
	char *sub = cli_interval_fig_subtitle(
	    &fig, s->live, iv->sampled ? "estimated from samples" : "exact (every call)");
	struct ms_out_opts wo = {
	    .title = s->title,
	    .subtitle = sub,
	    .value = s->count ? MS_VALUE_COUNT : MS_VALUE_BYTES,
	    .lines = s->lines,
	    .live = s->o.live_view,
	    .sample_period = iv->period,
	    /* either view carries the samples behind each stack (msprof's alloc_samples) */
	    .samples = iv->sampled,
	    .time_ns = iv->from_real_ns,
	    .duration_ns = iv->duration_ns,
	};
	int rc = cli_interval_files_open_n(s->ivf, iv->n, &af, &err);

	if (!rc) {
		rc = ms_profile_write(iv->prof, s->co.fmt, &wo, af.fp, &err);
		if (rc)
			ms_afile_abort(&af);
		else
			rc = ms_afile_commit(&af, &err);
	}
	cli_interval_files_note(s->ivf, &fig, rc == 0, &err, ms_rec_self_cpu_ns() - cpu,
				s->co.quiet);
	free(sub);
}

int cmd_record_subprocesses(int argc, char **argv)
{
	struct sp s = {0};
	struct ms_sp sp = {0};
	struct ms_sp_totals t;
	struct ms_afile af = {0}, af_all = {0};
	struct ms_error err = {0};
	struct ms_profile *prof = NULL, *all = NULL;
	bool help = false, afile_open = false, failed = false, partial = false;
	int ret, r;

	cli_rec_opts_init(&s.co);
	ret = parse(&s, argc, argv, &help);
	if (help) {
		char *h[] = {(char *)"record", (char *)"--mode", (char *)"walk", (char *)"--help",
			     NULL};
		bool walk = false;

		for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
			walk |= !strcmp(argv[i], "--mode=walk") ||
				(!strcmp(argv[i], "--mode") && i + 1 < argc &&
				 !strcmp(argv[i + 1], "walk"));
		h[1] = walk ? h[1] : h[3];
		ret = cmd_record(walk ? 4 : 2, h);
		goto out_opts;
	}
	if (ret)
		goto out_opts;
	ret = MS_EXIT_FAILED;
	if (ms_proc_check(s.o.root, &err)) {
		cli_report(&err);
		goto out_opts;
	}
	if (s.o.interval_ns) {
		/* the first file can be written: found before anything is attached */
		if (cli_interval_probe_dir(s.co.out_path, s.o.root, &err)) {
			cli_report(&err);
			goto out_opts;
		}
		s.ivf = cli_interval_files_new(s.co.out_path, s.keep, s.o.root);
		s.title = ms_xstrdup(cli_command_line());
		s.o.interval = on_interval;
		/* pprof carries both views, as one process's interval files do */
		s.o.live_view = s.live || s.co.fmt == MS_OUT_PPROF;
	} else if (ms_afile_open(&af, s.co.out_path, &err) ||
		   (s.o.walk && ms_afile_open(&af_all, s.all_path, &err))) {
		cli_report(&err);
		ms_afile_abort(&af);
		goto out_opts;
	} else {
		afile_open = true;
	}
	s.o.record = cmd_record;
	s.o.event = on_event;
	s.o.ctx = &s;
	if (ms_sp_start(&sp, &s.o, &err)) {
		cli_report(&err);
		goto out;
	}
	if (!s.co.quiet) {
		char d[32];

		fprintf(stderr,
			"memspy: recording pid %d and its descendants (--subprocesses) %s%s",
			(int)s.o.root, s.o.duration_ns ? "for " : "until Ctrl-C or they all exit",
			s.o.duration_ns ? ms_fmt_duration(d, sizeof(d), s.o.duration_ns) : "");
		if (s.o.interval_ns)
			fprintf(stderr, ", a file every %s merging every process's interval: %s",
				ms_fmt_duration(d, sizeof(d), s.o.interval_ns), s.co.out_path);
		fprintf(stderr, "\n");
	}
	if ((r = ms_sp_run(&sp))) {
		print_log(&sp.v[0]);
		ret = r;
		goto out;
	}
	if (!s.co.quiet)
		fprintf(stderr, "memspy: %s: %zu recording%s ended%s\n", sp.why, sp.n,
			sp.n == 1 ? "" : "s", s.o.walk ? "" : ", probes removed");

	if (!s.o.interval_ns) {
		prof = ms_profile_new();
		all = ms_profile_new();
	}
	ms_sp_merge(&sp, prof, all, &t);
	for (size_t i = 0; i < sp.n; i++)
		if (sp.v[i].unreadable)
			ms_warn("record: the profile of pid %d could not be read back",
				(int)sp.v[i].pid);
	{
		unsigned early = 0, late = 0; /* processes the recording never reached */
		char a[32], b[32], c[96], *subtitle, *how;
		struct ms_out_opts wo;

		/* What the figures rest on, as one process's summary says it. */
		if (t.exact && t.nproc)
			how = ms_xstrdup("exact: every call");
		else if (t.mean && t.one_mean)
			how = ms_xasprintf("estimated from %s%s samples, mean %s",
					   ms_fmt_count(a, sizeof(a), t.samples),
					   s.live ? " live" : "", t.mean);
		else
			how = ms_xasprintf(
			    "estimated from %s%s samples, each process at its own mean",
			    ms_fmt_count(a, sizeof(a), t.samples), s.live ? " live" : "");
		if (s.o.walk)
			subtitle = ms_xasprintf(
			    "Allocator time: %s of %s running thread samples (%.1f%%) were inside "
			    "malloc/free and friends, %zu process%s (--subprocesses), stops at "
			    "random instants, no probes",
			    ms_fmt_count(a, sizeof(a), t.count),
			    ms_fmt_count(b, sizeof(b), t.running),
			    t.running ? 100.0 * (double)t.count / (double)t.running : 0, t.nproc,
			    t.nproc == 1 ? "" : "es");
		else
			subtitle = ms_xasprintf(
			    "Total: %s %s in %s allocations, %zu process%s (--subprocesses), %s",
			    ms_fmt_bytes(a, sizeof(a), t.bytes),
			    s.live ? "still live" : "allocated",
			    ms_fmt_count(b, sizeof(b), t.count), t.nproc, t.nproc == 1 ? "" : "es",
			    how);
		wo = (struct ms_out_opts){
		    .title = cli_command_line(),
		    .subtitle = subtitle,
		    .value = s.count || s.o.walk ? MS_VALUE_COUNT : MS_VALUE_BYTES,
		    .count_name = s.o.walk ? "sample" : NULL,
		    .lines = s.lines,
		    .live = s.live,
		    .sample_period = t.period,
		    .samples = t.sampled,
		    .duration_ns = ms_now_ns() - sp.start_ns,
		};
		ret = s.o.interval_ns ? 0 : ms_profile_write(prof, s.co.fmt, &wo, af.fp, &err);
		free(subtitle);
		if (!ret && s.o.walk) {
			enum ms_out_format all_fmt;
			uint64_t nall = 0;

			if (ms_out_format_from_name(s.all_path, &all_fmt))
				all_fmt = s.co.fmt;
			subtitle = ms_xasprintf(
			    "All threads: %s%s thread samples of %zu process%s (--subprocesses), "
			    "stops at random instants, no probes%s",
			    ms_fmt_count(a, sizeof(a),
					 s.idle ? (ms_profile_totals(all, NULL, &nall), nall)
						: t.running),
			    s.idle ? "" : " running", t.nproc, t.nproc == 1 ? "" : "es",
			    s.idle ? "" : " (--idle shows the sleeping ones)");
			wo.subtitle = subtitle;
			ret = ms_profile_write(all, all_fmt, &wo, af_all.fp, &err);
			free(subtitle);
		}
		if (ret || (afile_open && ms_afile_commit(&af, &err)) ||
		    (s.o.walk && ms_afile_commit(&af_all, &err))) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
			free(how);
			goto out;
		}
		afile_open = false;
		if (!s.co.quiet && s.o.walk)
			fprintf(stderr,
				"memspy: wrote %s (%s, allocator time): %s of %s running thread "
				"samples (%.1f%%) were inside the allocator, over %zu process%s "
				"(stops at random instants: shares are estimates):\n",
				s.co.out_path, ms_out_format_name(s.co.fmt),
				ms_fmt_count(a, sizeof(a), t.count),
				ms_fmt_count(b, sizeof(b), t.running),
				t.running ? 100.0 * (double)t.count / (double)t.running : 0,
				t.nproc, t.nproc == 1 ? "" : "es");
		else if (!s.co.quiet && s.ivf) {
			char *files = cli_interval_files_summary(s.ivf);

			fprintf(stderr,
				"memspy: wrote %s (%s, each every process's interval): %s "
				"allocated in %s allocations over %zu process%s (%s):\n",
				files, ms_out_format_name(s.co.fmt),
				ms_fmt_bytes(a, sizeof(a), t.bytes),
				ms_fmt_count(b, sizeof(b), t.count), t.nproc,
				t.nproc == 1 ? "" : "es", how);
			free(files);
		} else if (!s.co.quiet)
			fprintf(stderr,
				"memspy: wrote %s (%s): %s %s in %s allocations over %zu "
				"process%s (%s):\n",
				s.co.out_path, ms_out_format_name(s.co.fmt),
				ms_fmt_bytes(a, sizeof(a), t.bytes),
				s.live ? "still live" : "allocated",
				ms_fmt_count(b, sizeof(b), t.count), t.nproc,
				t.nproc == 1 ? "" : "es", how);
		/* many samples dropped: first, not only on each process's line below */
		if (!s.co.quiet && t.ring_lost &&
		    (double)t.ring_lost >= MS_REC_RING_LOSS_WARN * (double)t.ring_total)
			fprintf(stderr,
				"  WARNING: %.0f%% of the samples were lost: %s of %s samples, in "
				"%zu process%s, found the in-target ring full (memspy drained it too "
				"slowly: a loaded machine?) and were dropped rather than stop the "
				"target; the %s drained were weighted up to stand for them, so the "
				"figures are rougher than their sample count says\n",
				100.0 * (double)t.ring_lost / (double)t.ring_total,
				ms_fmt_count(a, sizeof(a), t.ring_lost),
				ms_fmt_count(b, sizeof(b), t.ring_total), t.ring_nproc,
				t.ring_nproc == 1 ? "" : "es",
				ms_fmt_count(c, sizeof(c), t.ring_total - t.ring_lost));
		for (size_t i = 0; i < sp.n; i++) {
			struct ms_sp_proc *p = &sp.v[i];
			bool f = false, pa = false;
			const char *w;
			int nr = ms_sp_never_reached(p);

			if (nr) {
				(nr == 1 ? &early : &late)[0]++;
				if (!s.verbose)
					continue;
				w = nr == 1 ? "exited before memspy attached"
					    : "appeared as the recording ended";
			} else {
				w = status_word(p, &f, &pa);
			}
			failed |= f;
			partial |= pa;
			if (s.co.quiet && !f)
				continue;
			if (s.o.walk)
				fprintf(stderr,
					"  pid %-7d %-40s %s of %s running samples in the "
					"allocator%s%s%s\n",
					(int)p->pid, p->title, ms_fmt_count(a, sizeof(a), p->count),
					ms_fmt_count(b, sizeof(b), p->running), w ? " (" : "",
					w ? w : "", w ? ")" : "");
			else
				fprintf(stderr,
					"  pid %-7d %-40s %10s in %s allocations (%s%s%s)\n",
					(int)p->pid, p->title, ms_fmt_bytes(a, sizeof(a), p->bytes),
					ms_fmt_count(b, sizeof(b), p->count),
					estimate(p, c, sizeof(c)), w ? "; " : "", w ? w : "");
			if (p->have_timeline && !s.co.quiet)
				fprintf(stderr, "      heap timeline: %s\n", p->tl);
			if (p->iv_late && !s.co.quiet)
				fprintf(stderr,
					"      %u of its interval files came after their interval "
					"was written: what it allocated in %s is in no file\n",
					p->iv_late, p->iv_late == 1 ? "that interval" : "those");
			/* Both may quote a module's path: the target's to choose. */
			if (p->note && (s.verbose || f || strncmp(p->note, "verified", 8)))
				print_note(p->note);
			if (p->ring_note && !(f || (pa && s.verbose))) /* else in the log below */
				print_note(p->ring_note);
			if ((f || (pa && s.verbose)) && p->log)
				print_log(p);
			else if (pa && p->log)
				print_reasons(p);
		}
		if (early && !s.co.quiet)
			fprintf(stderr,
				"  %u process%s exited before memspy could attach to %s (it "
				"takes ~1 s): what %s allocated is not in the profile\n",
				early, early == 1 ? "" : "es", early == 1 ? "it" : "them",
				early == 1 ? "it" : "they");
		if (late && !s.co.quiet)
			fprintf(stderr,
				"  %u process%s appeared as the recording ended and %s not "
				"recorded\n",
				late, late == 1 ? "" : "es", late == 1 ? "was" : "were");
		if (sp.untraceable && !s.co.quiet)
			fprintf(stderr,
				"  %u process%s of the tree could not be recorded (another "
				"tracer holds them)\n",
				sp.untraceable, sp.untraceable == 1 ? "" : "es");
		if (s.o.walk && !s.co.quiet)
			fprintf(stderr,
				"  all threads: wrote %s (%s); heap timelines: %zu, one per "
				"process (above)\n",
				s.all_path,
				s.idle
				    ? "every sampled stack, the sleeping ones under [asleep in ...]"
				    : "the running threads' stacks; --idle adds the sleeping ones",
				t.ntl);
		free(how);
	}
	ret = failed ? MS_EXIT_FAILED : partial ? MS_EXIT_PARTIAL : MS_EXIT_OK;
	if (s.ivf && !cli_interval_files_written(s.ivf))
		ret = MS_EXIT_FAILED;
	else if (s.ivf && cli_interval_files_failed(s.ivf) && ret == MS_EXIT_OK)
		ret = MS_EXIT_PARTIAL;
out:
	ms_sp_close(&sp);
	if (afile_open) {
		ms_afile_abort(&af);
		ms_afile_abort(&af_all);
	}
	ms_profile_free(prof);
	ms_profile_free(all);
out_opts:
	free(s.o.pass);
	cli_rec_opts_free(&s.co);
	cli_interval_files_free(s.ivf);
	free(s.title);
	free(s.all_default);
	free(s.tl_default);
	return ret;
}

void ms_subprocess_hint(FILE *f, pid_t pid, uint64_t samples)
{
	pid_t *kids = NULL;
	size_t n = ms_children(pid, getpid(), &kids);
	uint64_t own = ms_proc_cpu_ticks(pid), theirs = 0;

	for (size_t i = 0; i < n; i++)
		theirs += ms_proc_cpu_ticks(kids[i]);
	if (n && (!samples || theirs > own)) {
		fprintf(f, "  hint: process %d has %zu child process%s (", (int)pid, n,
			n == 1 ? "" : "es");
		for (size_t i = 0; i < n && i < 3; i++) {
			char *t = ms_proc_title(kids[i]);

			fprintf(f, "%s%s %d", i ? ", " : "", t, (int)kids[i]);
			free(t);
		}
		fprintf(f, "%s); its work may be there: add --subprocesses\n",
			n > 3 ? ", ..." : "");
	}
	free(kids);
}
