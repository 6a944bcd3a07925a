// SPDX-License-Identifier: MIT
/*
 * memspy record --subprocesses: a coordinator that runs one `memspy record`
 * per process of the tree (a fork of memspy calling cmd_record, so each
 * process gets the whole machinery: its probes, their removal and check,
 * the watchdog), follows the tree as it forks and execs, stops them all
 * together and merges their profiles under one root frame per process.
 * With --mode walk the recorders are walk mode's: their allocator-time and
 * all-threads graphs are merged the same way, and each writes its heap
 * timeline under the user's name with its pid.
 *
 * A tracee has one tracer: a child forked during the recording is first
 * the parent recorder's (PTRACE_O_TRACEFORK), which restores the text it
 * inherited and lets it go; the coordinator finds it on its next scan of
 * /proc and starts its own recorder. What the child allocates in between
 * is not seen: from the fork to its probes being in, 1.2-2.7 s (median
 * 2.1 s over 7 forks) on a 2-core machine at load 14 with the sanitizer
 * build, most of it the recorder's own start (a plain `memspy record`
 * takes 0.8-1.0 s there from launch to recording: the 0.25 s baseline,
 * opening every module for the unwinder and symboliser, the install).
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "attach/descendants.h"
#include "output/output.h"
#include "output/timeline.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD	   "record"
#define TICK_MS	   20	       /* the coordinator's pace: reaping, readiness, exec checks */
#define SCAN_NS	   50000000ull /* the tree is scanned again this often */
#define MAX_PROCS  4096
#define READY_LINE "memspy: recording pid "

struct sp_proc {
	pid_t pid;
	unsigned gen; /* recordings of this pid before this one (one per exec) */
	char *title;
	char *out, *log; /* the recorder's profile (speedscope) and its stderr */
	char *all, *tl;	 /* walk mode: its all-threads profile (speedscope), its timeline */
	pid_t rec;	 /* its recorder while it runs, else 0 */
	int status;	 /* the recorder's wait status once it ended */
	bool late;	 /* appeared during the recording */
	bool ready, ended, exec_seen, stop_sent;
	uint64_t image; /* image_id() when its recorder started */
	uint64_t bytes, count;
	uint64_t running; /* walk mode: running thread samples (all-threads profile) */
	uint64_t samples; /* probe mode: the samples its figures rest on (its summary) */
	bool exact;	  /* probe mode: every call seen (-s 0), no estimate */
	bool live;	  /* --live: samples counts the samples still live */
	char mean[32];	  /* probe mode: its sampling mean at the end ("4.00 KiB") */
	bool have_profile, have_timeline;
	uint64_t period; /* probe mode: the pprof period it wrote (-s, bytes; 0: exact) */
	bool sampled;	 /* probe mode: its values are estimates from samples */
	char *note;	 /* the recorder's line about its check of the code after detach */
};

struct sp {
	pid_t root;
	const char *out_path;
	char *out_default;
	bool walk, idle;      /* --mode walk; --idle */
	const char *all_path; /* walk: the merged all-threads profile */
	const char *tl_path;  /* walk: the timelines' name, {pid} for each process */
	char *all_default, *tl_default;
	enum ms_out_format fmt;
	bool fmt_given, quiet, count, live, lines;
	int verbose;
	uint64_t duration_ns;
	char **pass; /* options for each recorder, in the order given */
	size_t npass;
	char dir[64]; /* temporary directory for the recorders' files */
	struct sp_proc *v;
	size_t n, cap;
	unsigned untraceable; /* descendants left out (traced by someone else) */
	bool started;	      /* the first scan is done: what appears now is late */
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
	s->pass = realloc(s->pass, (s->npass + 1) * sizeof(*s->pass));
	if (!s->pass)
		abort();
	s->pass[s->npass++] = a;
}

/*
 * The length of path without its extension; ours with two dots stay whole
 * (x.pb.gz, x.speedscope.json), as walk mode's own names of its files.
 */
static size_t stem_len(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	static const char *const two[] = {".pb.gz", ".speedscope.json"};
	size_t n = strlen(path);

	for (size_t i = 0; i < MS_ARRAY_SIZE(two); i++) {
		size_t l = strlen(two[i]);

		if (n > l && !strcmp(path + n - l, two[i]) && (!slash || path + n - l > slash))
			return n - l;
	}
	if (!dot || (slash && dot < slash))
		return n;
	return (size_t)(dot - path);
}

/*
 * Walk mode: the heap timeline of process pid (gen: its recordings before,
 * one per exec), from --timeline: {pid} replaced, else "-PID" before the
 * extension (heap.svg -> heap-1234.svg).
 */
static char *timeline_name(const char *pattern, pid_t pid, unsigned gen)
{
	const char *at = strstr(pattern, "{pid}");
	char id[48];

	if (gen)
		snprintf(id, sizeof(id), "%d-exec%u", (int)pid, gen);
	else
		snprintf(id, sizeof(id), "%d", (int)pid);
	if (at)
		return ms_xasprintf("%.*s%s%s", (int)(at - pattern), pattern, id, at + 5);
	return ms_xasprintf("%.*s-%s%s", (int)stem_len(pattern), pattern, id,
			    pattern + stem_len(pattern));
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
		if (is_opt(a, "--interval", NULL) || is_opt(a, "--keep", NULL))
			return cli_usage_error(CMD, "%s is not available with --subprocesses yet",
					       a);
		if (is_opt(a, "--pid", "-p")) {
			if (!(v = opt_value(argc, argv, &i, "--pid", "-p")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_pid(CMD, v, &s->root)))
				return r;
		} else if (is_opt(a, "--output", "-o")) {
			if (!(v = opt_value(argc, argv, &i, "--output", "-o")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_output(CMD, v, &s->out_path)))
				return r;
		} else if (is_opt(a, "--format", "-f")) {
			if (!(v = opt_value(argc, argv, &i, "--format", "-f")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_format(CMD, v, &s->fmt)))
				return r;
			s->fmt_given = true;
		} else if (is_opt(a, "--duration", "-d")) {
			if (!(v = opt_value(argc, argv, &i, "--duration", "-d")))
				return cli_usage_error(CMD, "option '%s' needs a value", a);
			if ((r = cli_opt_duration(CMD, v, &s->duration_ns)))
				return r;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			s->quiet = true;
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
			s->tl_path = v;
		} else {
			if (is_opt(a, "--mode", NULL)) {
				const char *m = a[6] == '='    ? a + 7
						: i + 1 < argc ? argv[i + 1]
							       : "";

				s->walk = !strcmp(m, "walk");
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
	if (!s->root)
		return cli_usage_error(CMD, "--pid is required (e.g. memspy record --pid "
					    "$(pidof nginx | tr ' ' '\\n' | sort -n | head -1) "
					    "--subprocesses -o alloc.svg)");
	if (!s->out_path) {
		s->out_default =
		    ms_xasprintf("memspy-%d.%s", (int)s->root,
				 !s->fmt_given		       ? "svg"
				 : s->fmt == MS_OUT_PPROF      ? "pb.gz"
				 : s->fmt == MS_OUT_SPEEDSCOPE ? "speedscope.json"
							       : ms_out_format_name(s->fmt));
		s->out_path = s->out_default;
		if (!s->fmt_given)
			s->fmt = MS_OUT_SVG;
	} else if (!s->fmt_given && ms_out_format_from_name(s->out_path, &s->fmt)) {
		return cli_usage_error(CMD,
				       "cannot tell the format from the name '%s': use "
				       "--format svg|folded|speedscope|pprof",
				       s->out_path);
	}
	if (!s->walk) {
		if (s->all_path || s->tl_path)
			return cli_usage_error(CMD, "--all-threads and --timeline are walk mode's "
						    "(--mode walk)");
		return 0;
	}
	/* Walk mode's other files, named as it names them (memspy record --mode walk --help). */
	if (!s->all_path) {
		size_t st = stem_len(s->out_path);

		s->all_default = ms_xasprintf("%.*s.all%s", (int)st, s->out_path, s->out_path + st);
		s->all_path = s->all_default;
	}
	if (!s->tl_path) {
		s->tl_default = ms_xasprintf("%.*s.timeline-{pid}.svg", (int)stem_len(s->out_path),
					     s->out_path);
		s->tl_path = s->tl_default;
	}
	if (!strcmp(s->out_path, s->all_path))
		return cli_usage_error(CMD, "-o and --all-threads must name two different files");
	return 0;
}

static bool known(const struct sp *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].pid == pid)
			return true;
	return false;
}

static bool is_recorder(const struct sp *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].rec == pid)
			return true;
	return false;
}

/*
 * What identifies the image pid runs: its executable's device and inode,
 * and a hash of its auxiliary vector, which each exec rebuilds (AT_RANDOM
 * and the stack move with ASLR, AT_ENTRY with a PIE): an exec of the same
 * binary, as a server's binary upgrade does, is seen too. 0 when gone.
 */
static uint64_t image_id(pid_t pid)
{
	char path[64];
	unsigned char buf[1024];
	struct stat st;
	uint64_t h = 1469598103934665603ull;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return 0;
	h = (h ^ (uint64_t)st.st_dev) * 1099511628211ull;
	h = (h ^ (uint64_t)st.st_ino) * 1099511628211ull;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			for (ssize_t i = 0; i < n; i++)
				h = (h ^ buf[i]) * 1099511628211ull;
		close(fd);
	}
	return h ? h : 1;
}

/* Starts a recorder for pid: a fork of memspy that runs cmd_record on it. 0 or -errno. */
static int spawn(struct sp *s, pid_t pid, unsigned gen, bool late)
{
	struct sp_proc *p;
	pid_t self = getpid(), c;
	char pidbuf[16];

	ms_xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	p = &s->v[s->n++];
	*p = (struct sp_proc){.pid = pid, .gen = gen, .late = late};
	p->title = ms_proc_title(pid);
	p->out = ms_xasprintf("%s/%d.%u.msprof", s->dir, (int)pid, gen);
	p->log = ms_xasprintf("%s/%d.%u.log", s->dir, (int)pid, gen);
	if (s->walk) {
		p->all = ms_xasprintf("%s/%d.%u.all.msprof", s->dir, (int)pid, gen);
		p->tl = timeline_name(s->tl_path, pid, gen);
	}
	p->image = image_id(pid);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	fflush(stdout);
	fflush(stderr);
	c = fork();
	if (c < 0) {
		p->ended = true;
		p->status = MS_EXIT_FAILED << 8;
		return -errno;
	}
	if (c == 0) {
		char **argv = ms_xcalloc(s->npass + 14, sizeof(*argv));
		size_t n = 0;
		int fd;

		/* The coordinator killed: stop as on Ctrl-C (probes removed, checked). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != self)
			_exit(MS_EXIT_FAILED);
		fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		argv[n++] = (char *)"record";
		for (size_t i = 0; i < s->npass; i++)
			argv[n++] = s->pass[i];
		argv[n++] = (char *)"--pid";
		argv[n++] = pidbuf;
		argv[n++] = (char *)"-o";
		argv[n++] = p->out;
		argv[n++] = (char *)"-f";
		argv[n++] = (char *)"msprof";
		if (s->walk) {
			argv[n++] = (char *)"--all-threads";
			argv[n++] = p->all;
			argv[n++] = (char *)"--timeline";
			argv[n++] = p->tl;
		}
		argv[n] = NULL;
		fd = cmd_record((int)n, argv);
		/* The coordinator was killed: no one reads these files. */
		if (getppid() != self) {
			unlink(p->out);
			unlink(p->log);
			if (p->all)
				unlink(p->all);
			rmdir(s->dir); /* the last recorder to end removes it */
		}
		_exit(fd);
	}
	p->rec = c;
	if (!s->quiet && s->verbose)
		fprintf(stderr, "memspy: process %d (%s): recorder %d started\n", (int)pid,
			p->title, (int)c);
	return 0;
}

/* Has p's recorder said it is recording (probes installed)? */
static void check_ready(struct sp *s, struct sp_proc *p)
{
	char buf[4096];
	FILE *f;

	if (p->ready || p->ended)
		return;
	f = fopen(p->log, "re");
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, READY_LINE, strlen(READY_LINE)))
			p->ready = true;
	fclose(f);
	if (p->ready && !s->quiet) {
		free(p->title); /* the name it has now, probes in: a worker renames itself */
		p->title = ms_proc_title(p->pid);
		fprintf(stderr, "memspy: recording pid %d (%s)%s\n", (int)p->pid, p->title,
			p->gen	  ? ", probed again in its new image after exec"
			: p->late ? ", forked during the recording"
				  : "");
	}
}

/* New processes in the tree: a recorder for each that no one traces. */
static void scan_tree(struct sp *s)
{
	pid_t *seen = NULL, *desc = NULL;
	size_t nseen = 0, ndesc;

	seen = ms_xcalloc(s->n + 1, sizeof(*seen));
	for (size_t i = 0; i < s->n; i++)
		seen[nseen++] = s->v[i].pid;
	ndesc = ms_descendants(seen, nseen, getpid(), &desc);
	for (size_t i = 0; i < ndesc && s->n < MAX_PROCS; i++) {
		pid_t d = desc[i], tracer;

		if (known(s, d) || is_recorder(s, d))
			continue;
		tracer = ms_proc_tracer(d);
		if (tracer < 0)
			continue; /* gone */
		if (tracer == 0) {
			spawn(s, d, 0, s->started);
			continue;
		}
		/* Still held by its parent's recorder (restoring its text): next scan. */
		if (is_recorder(s, tracer))
			continue;
		/* A process another tracer holds cannot be recorded: said once at the end. */
		s->untraceable++;
		ms_xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
		s->v[s->n++] = (struct sp_proc){
		    .pid = d,
		    .title = ms_proc_title(d),
		    .ended = true,
		    .status = MS_EXIT_FAILED << 8,
		    .note = ms_xasprintf("not recorded: traced by pid %d", (int)tracer)};
	}
	free(desc);
	free(seen);
}

/* Collects ended recorders; a process that exec'd gets a new one. */
static void reap(struct sp *s, bool stopping)
{
	for (;;) {
		int status;
		pid_t r = waitpid(-1, &status, WNOHANG);

		if (r <= 0)
			break;
		for (size_t i = 0; i < s->n; i++) {
			struct sp_proc *p = &s->v[i];

			if (p->rec != r || p->ended)
				continue;
			p->ended = true;
			p->status = status;
			p->rec = 0;
			/* Walk mode's recorder ends by itself when it sees the exec. */
			if (!p->exec_seen && p->image) {
				uint64_t id = image_id(p->pid);

				p->exec_seen = id && id != p->image;
			}
			if (p->exec_seen && !stopping && kill(p->pid, 0) == 0 && s->n < MAX_PROCS)
				spawn(s, p->pid, p->gen + 1, true);
			break;
		}
	}
}

static void check_exec(struct sp *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct sp_proc *p = &s->v[i];
		uint64_t id;

		if (p->ended || p->exec_seen || !p->rec)
			continue;
		id = image_id(p->pid);
		if (id && p->image && id != p->image) {
			p->exec_seen = true;
			kill(p->rec, SIGINT);
			p->stop_sent = true;
		}
	}
}

static size_t n_running(const struct sp *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += !s->v[i].ended;
	return n;
}

/* The recorder's line about the code after detach ("verified after detach: ..."). */
static void read_note(struct sp_proc *p)
{
	char buf[4096];
	FILE *f = fopen(p->log, "re");

	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		const char *t = buf + strspn(buf, " ");

		/*
		 * Probe mode's summary: "memspy: wrote F (...): ... over D, from N
		 * samples (estimated, mean M)", or "(exact: every call)".
		 */
		if (!strncmp(buf, "memspy: wrote ", 14)) {
			const char *from = strstr(buf, ", from "), *mean = strstr(buf, "mean ");

			p->exact = strstr(buf, "(exact: every call)") != NULL;
			p->live = strstr(buf, "still live") != NULL;
			if (from) {
				p->samples = 0;
				for (from += 7; *from && *from != ' '; from++)
					if (*from >= '0' && *from <= '9')
						p->samples =
						    p->samples * 10 + (uint64_t)(*from - '0');
			}
			/* --live: the view rests on the samples still live, "(N still live; ". */
			if (from && (from = strstr(from, " samples (")) &&
			    strstr(from, " still live;")) {
				p->samples = 0;
				for (from += 10; *from && *from != ' '; from++)
					if (*from >= '0' && *from <= '9')
						p->samples =
						    p->samples * 10 + (uint64_t)(*from - '0');
			}
			if (mean) {
				mean += 5;
				snprintf(p->mean, sizeof(p->mean), "%.*s",
					 (int)strcspn(mean, ")\n"), mean);
			}
		}

		if (!strncmp(t, "verified after detach", 21) || !strncmp(t, "WARNING: ", 9) ||
		    !strncmp(t, "could not verify", 16)) {
			buf[strcspn(buf, "\n")] = '\0';
			free(p->note);
			p->note = ms_xstrdup(t);
		}
	}
	fclose(f);
}

/* Prints the recorder's own output (what it said went wrong). */
static void print_log(const struct sp_proc *p)
{
	char buf[4096];
	FILE *f = fopen(p->log, "re");

	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f))
		fprintf(stderr, "  [pid %d] %s", (int)p->pid, buf);
	fclose(f);
}

/*
 * A partial recording: the recorder's own lines about why ("memspy: waiting
 * for pid ...", "WARNING: ..."), not its progress and summary (-v prints all).
 */
static void print_reasons(const struct sp_proc *p)
{
	char buf[4096];
	FILE *f = fopen(p->log, "re");

	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		const char *t = buf + strspn(buf, " ");

		if ((!strncmp(buf, "memspy: ", 8) && strncmp(buf, READY_LINE, strlen(READY_LINE)) &&
		     strncmp(buf, "memspy: wrote ", 14)) ||
		    !strncmp(t, "WARNING: ", 9))
			fprintf(stderr, "      [pid %d] %s", (int)p->pid, t);
	}
	fclose(f);
}

struct merge_ctx {
	struct ms_profile *prof;
	const char *rootname;
	struct ms_out_frame *fr;
	size_t cap;
	uint64_t *bytes, *count, *running;
};

static int merge_stack(void *ctx, const struct ms_msprof_stack *s)
{
	struct merge_ctx *m = ctx;
	size_t n = 0;

	ms_xgrow((void **)&m->fr, &m->cap, s->n + 1, sizeof(*m->fr));
	m->fr[n++] = (struct ms_out_frame){.function = m->rootname};
	memcpy(m->fr + n, s->frames, s->n * sizeof(*s->frames));
	n += s->n;
	if (s->bytes || s->count || s->samples)
		ms_profile_add_sampled(m->prof, m->fr, n, s->bytes, s->count, s->samples);
	if (s->alloc_bytes || s->alloc_count)
		ms_profile_add_alloc(m->prof, m->fr, n, s->alloc_bytes, s->alloc_count);
	*m->bytes += s->bytes;
	*m->count += s->count;
	/* Walk mode marks a sleeping thread's leaf "[asleep in ...]". */
	if (m->running && !(s->n && s->frames[s->n - 1].function &&
			    !strncmp(s->frames[s->n - 1].function, "[asleep in ", 11)))
		*m->running += s->count;
	return 0;
}

/*
 * Adds the profile a recorder wrote to path (memspy's own format: every
 * frame with its address, the process's mappings) under a root frame
 * "TITLE (PID)", in address space `space`, its totals to *bytes and *count,
 * and (running != NULL: walk mode's all-threads profile) its samples that
 * are not asleep to *running. 0 or -EINVAL.
 */
static int merge_file(struct ms_profile *prof, struct sp_proc *p, uint32_t space, const char *path,
		      uint64_t *bytes, uint64_t *count, uint64_t *running)
{
	struct ms_error err = {0};
	struct ms_msprof_head head;
	struct merge_ctx m = {.prof = prof, .bytes = bytes, .count = count, .running = running};
	char *rootname;
	FILE *f = fopen(path, "re");
	int ret;

	if (!f)
		return -EINVAL;
	rootname = ms_xasprintf("%s (%d)", p->title, (int)p->pid);
	m.rootname = rootname;
	ret = ms_msprof_read(f, prof, space, &head, merge_stack, &m, &err);
	if (!running && !ret) {
		p->period = head.sample_period;
		p->sampled = head.samples;
	}
	fclose(f);
	free(m.fr);
	free(rootname);
	return ret ? -EINVAL : 0;
}

/* Adds p's profiles (walk mode: both) to prof and all. 0 or -EINVAL. */
static int merge(struct ms_profile *prof, struct ms_profile *all, struct sp_proc *p, uint32_t space)
{
	uint64_t ignored = 0;

	if (merge_file(prof, p, space, p->out, &p->bytes, &p->count, NULL))
		return -EINVAL;
	p->have_profile = true;
	if (p->all && access(p->all, F_OK) == 0 &&
	    merge_file(all, p, space, p->all, &ignored, &ignored, &p->running))
		return -EINVAL;
	p->have_timeline = p->tl && access(p->tl, F_OK) == 0;
	return 0;
}

static int cmp_proc(const void *a, const void *b)
{
	const struct sp_proc *x = a, *y = b;

	if (x->pid != y->pid)
		return (x->pid > y->pid) - (x->pid < y->pid);
	return (x->gen > y->gen) - (x->gen < y->gen);
}

static void remove_dir(struct sp *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].out)
			unlink(s->v[i].out);
		if (s->v[i].log)
			unlink(s->v[i].log);
		if (s->v[i].all)
			unlink(s->v[i].all);
	}
	rmdir(s->dir);
}

/* Does p's recorder's log hold a line containing what? */
static bool log_has(const struct sp_proc *p, const char *what)
{
	char buf[4096];
	bool found = false;
	FILE *f = p->log ? fopen(p->log, "re") : NULL;

	if (!f)
		return false;
	while (!found && fgets(buf, sizeof(buf), f))
		found = strstr(buf, what) != NULL;
	fclose(f);
	return found;
}

/*
 * A process the recording never reached: it exited before its recorder could
 * attach (a short-lived child: a backend per connection under pgbench -C, a
 * CGI), or it appeared as the recording ended and its recorder was told to
 * stop before attaching. Neither is a failure: nothing of it was patched.
 * 1 for the first, 2 for the second, else 0.
 */
static int never_reached(const struct sp_proc *p)
{
	if (p->ready || p->have_profile || p->exec_seen || !WIFEXITED(p->status) ||
	    WEXITSTATUS(p->status) != MS_EXIT_FAILED || !p->log)
		return 0;
	if (ms_procfs_gone(p->pid))
		return 1;
	if (p->stop_sent && log_has(p, "stopped before attaching"))
		return 2;
	return 0;
}

/* What p's figures rest on (probe mode), into buf: "estimated from 120 samples, mean 4 KiB". */
static const char *estimate(const struct sp_proc *p, char *buf, size_t size)
{
	char n[32];

	if (p->exact)
		return "exact: every call";
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
static const char *status_word(const struct sp_proc *p, bool *failed, bool *partial)
{
	int st = p->status;
	bool gone = ms_procfs_gone(p->pid); /* a zombie its parent has not reaped has exited too */

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

int cmd_record_subprocesses(int argc, char **argv)
{
	struct sp s = {0};
	struct ms_afile af = {0}, af_all = {0};
	struct ms_error err = {0};
	struct ms_profile *prof = NULL, *all = NULL;
	bool help = false, afile_open = false, failed = false, partial = false, stopping = false;
	uint64_t start, deadline = 0, last_scan = 0;
	const char *why = NULL;
	int ret, stop_sig = 0;

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
	if (ms_proc_check(s.root, &err)) {
		cli_report(&err);
		goto out_opts;
	}
	if (ms_afile_open(&af, s.out_path, &err) ||
	    (s.walk && ms_afile_open(&af_all, s.all_path, &err))) {
		cli_report(&err);
		ms_afile_abort(&af);
		goto out_opts;
	}
	afile_open = true;
	snprintf(s.dir, sizeof(s.dir), "/tmp/memspy-subprocesses-XXXXXX");
	if (!mkdtemp(s.dir)) {
		ms_error_set(&err, -errno, "record: mkdtemp %s: %s", s.dir, strerror(errno));
		cli_report(&err);
		goto out;
	}
	ms_signals_init();
	start = ms_now_ns();
	if (s.duration_ns)
		deadline = start + s.duration_ns;
	spawn(&s, s.root, 0, false);
	scan_tree(&s);
	s.started = true;
	last_scan = ms_now_ns();
	if (!s.quiet) {
		char d[32];

		fprintf(stderr,
			"memspy: recording pid %d and its descendants (--subprocesses) %s%s\n",
			(int)s.root, s.duration_ns ? "for " : "until Ctrl-C or they all exit",
			s.duration_ns ? ms_fmt_duration(d, sizeof(d), s.duration_ns) : "");
	}
	for (;;) {
		uint64_t now = ms_now_ns();

		reap(&s, stopping);
		for (size_t i = 0; i < s.n; i++)
			check_ready(&s, &s.v[i]);
		if (!stopping) {
			if ((stop_sig = ms_signals_stop_requested()))
				why = "stop requested";
			else if (deadline && now >= deadline)
				why = "duration elapsed";
			/* The root's recorder failed at once: nothing to follow. */
			else if (s.v[0].ended && !s.v[0].ready && WIFEXITED(s.v[0].status) &&
				 WEXITSTATUS(s.v[0].status) >= MS_EXIT_FAILED) {
				print_log(&s.v[0]);
				remove_dir(&s);
				ret = WEXITSTATUS(s.v[0].status);
				goto out;
			}
			if (why) {
				stopping = true;
				for (size_t i = 0; i < s.n; i++)
					if (s.v[i].rec && !s.v[i].ended) {
						kill(s.v[i].rec, SIGINT);
						s.v[i].stop_sent = true;
					}
			} else {
				check_exec(&s);
				if (now - last_scan >= SCAN_NS) {
					scan_tree(&s);
					last_scan = now;
				}
			}
		}
		if (!n_running(&s)) {
			if (!why)
				why = "every process exited";
			break;
		}
		ms_signals_wait(TICK_MS);
	}
	if (!s.quiet)
		fprintf(stderr, "memspy: %s: %zu recording%s ended%s\n", why, s.n,
			s.n == 1 ? "" : "s", s.walk ? "" : ", probes removed");

	qsort(s.v + 1, s.n - 1, sizeof(*s.v), cmp_proc);
	prof = ms_profile_new();
	all = ms_profile_new();
	for (size_t i = 0; i < s.n; i++) {
		struct sp_proc *p = &s.v[i];

		if (p->log) {
			read_note(p);
			if (!p->have_profile && access(p->out, F_OK) == 0 &&
			    merge(prof, all, p, (uint32_t)i + 1))
				ms_warn("record: the profile of pid %d could not be read back",
					(int)p->pid);
		}
	}
	{
		uint64_t bytes = 0, count = 0, run = 0;
		size_t nproc = 0, ntl = 0;
		unsigned early = 0, late = 0; /* processes the recording never reached */
		uint64_t samples = 0, period = 0;
		bool exact = true, one_mean = true, sampled = false;
		const char *mean = NULL;
		char a[32], b[32], c[96], *subtitle, *how;
		struct ms_out_opts wo;

		for (size_t i = 0; i < s.n; i++) {
			bytes += s.v[i].bytes;
			count += s.v[i].count;
			nproc += s.v[i].have_profile;
			run += s.v[i].running;
			ntl += s.v[i].have_timeline;
			if (!s.v[i].have_profile)
				continue;
			samples += s.v[i].samples;
			exact &= s.v[i].exact;
			/* every recorder had the same -s: pprof's period, as one process's */
			period = s.v[i].period > period ? s.v[i].period : period;
			sampled |= s.v[i].sampled;
			if (!s.v[i].exact && s.v[i].mean[0]) {
				one_mean &= !mean || !strcmp(mean, s.v[i].mean);
				mean = s.v[i].mean;
			}
		}
		/* What the figures rest on, as one process's summary says it. */
		if (exact && nproc)
			how = ms_xstrdup("exact: every call");
		else if (mean && one_mean)
			how = ms_xasprintf("estimated from %s%s samples, mean %s",
					   ms_fmt_count(a, sizeof(a), samples),
					   s.live ? " live" : "", mean);
		else
			how = ms_xasprintf(
			    "estimated from %s%s samples, each process at its own mean",
			    ms_fmt_count(a, sizeof(a), samples), s.live ? " live" : "");
		if (s.walk)
			subtitle = ms_xasprintf(
			    "Allocator time: %s of %s running thread samples (%.1f%%) were inside "
			    "malloc/free and friends, %zu processes (--subprocesses), stops at "
			    "random "
			    "instants, no probes",
			    ms_fmt_count(a, sizeof(a), count), ms_fmt_count(b, sizeof(b), run),
			    run ? 100.0 * (double)count / (double)run : 0, nproc);
		else
			subtitle = ms_xasprintf(
			    "Total: %s %s in %s allocations, %zu processes (--subprocesses), %s",
			    ms_fmt_bytes(a, sizeof(a), bytes), s.live ? "still live" : "allocated",
			    ms_fmt_count(b, sizeof(b), count), nproc, how);
		wo = (struct ms_out_opts){
		    .title = cli_command_line(),
		    .subtitle = subtitle,
		    .value = s.count || s.walk ? MS_VALUE_COUNT : MS_VALUE_BYTES,
		    .count_name = s.walk ? "sample" : NULL,
		    .lines = s.lines,
		    .live = s.live,
		    .sample_period = period,
		    .samples = sampled,
		    .duration_ns = ms_now_ns() - start,
		};
		ret = ms_profile_write(prof, s.fmt, &wo, af.fp, &err);
		free(subtitle);
		if (!ret && s.walk) {
			enum ms_out_format all_fmt;
			uint64_t nall = 0;

			if (ms_out_format_from_name(s.all_path, &all_fmt))
				all_fmt = s.fmt;
			subtitle = ms_xasprintf(
			    "All threads: %s%s thread samples of %zu processes (--subprocesses), "
			    "stops at random instants, no probes%s",
			    ms_fmt_count(a, sizeof(a),
					 s.idle ? (ms_profile_totals(all, NULL, &nall), nall)
						: run),
			    s.idle ? "" : " running", nproc,
			    s.idle ? "" : " (--idle shows the sleeping ones)");
			wo.subtitle = subtitle;
			ret = ms_profile_write(all, all_fmt, &wo, af_all.fp, &err);
			free(subtitle);
		}
		if (ret || ms_afile_commit(&af, &err) ||
		    (s.walk && ms_afile_commit(&af_all, &err))) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
			free(how);
			goto out_dir;
		}
		afile_open = false;
		if (!s.quiet && s.walk)
			fprintf(stderr,
				"memspy: wrote %s (%s, allocator time): %s of %s running thread "
				"samples (%.1f%%) were inside the allocator, over %zu process%s "
				"(stops at random instants: shares are estimates):\n",
				s.out_path, ms_out_format_name(s.fmt),
				ms_fmt_count(a, sizeof(a), count), ms_fmt_count(b, sizeof(b), run),
				run ? 100.0 * (double)count / (double)run : 0, nproc,
				nproc == 1 ? "" : "es");
		else if (!s.quiet)
			fprintf(
			    stderr,
			    "memspy: wrote %s (%s): %s %s in %s allocations over %zu "
			    "process%s (%s):\n",
			    s.out_path, ms_out_format_name(s.fmt),
			    ms_fmt_bytes(a, sizeof(a), bytes), s.live ? "still live" : "allocated",
			    ms_fmt_count(b, sizeof(b), count), nproc, nproc == 1 ? "" : "es", how);
		for (size_t i = 0; i < s.n; i++) {
			struct sp_proc *p = &s.v[i];
			bool f = false, pa = false;
			const char *w;
			int nr = never_reached(p);

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
			if (s.quiet && !f)
				continue;
			if (s.walk)
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
			if (p->have_timeline && !s.quiet)
				fprintf(stderr, "      heap timeline: %s\n", p->tl);
			if (p->note && (s.verbose || f || strncmp(p->note, "verified", 8)))
				fprintf(stderr, "      %s\n", p->note);
			if ((f || (pa && s.verbose)) && p->log)
				print_log(p);
			else if (pa && p->log)
				print_reasons(p);
		}
		if (early && !s.quiet)
			fprintf(stderr,
				"  %u process%s exited before memspy could attach to %s (it "
				"takes ~1 s): what %s allocated is not in the profile\n",
				early, early == 1 ? "" : "es", early == 1 ? "it" : "them",
				early == 1 ? "it" : "they");
		if (late && !s.quiet)
			fprintf(stderr,
				"  %u process%s appeared as the recording ended and %s not "
				"recorded\n",
				late, late == 1 ? "" : "es", late == 1 ? "was" : "were");
		if (s.untraceable && !s.quiet)
			fprintf(stderr,
				"  %u process%s of the tree could not be recorded (another "
				"tracer holds them)\n",
				s.untraceable, s.untraceable == 1 ? "" : "es");
		if (s.walk && !s.quiet)
			fprintf(stderr,
				"  all threads: wrote %s (%s); heap timelines: %zu, one per "
				"process (above)\n",
				s.all_path,
				s.idle
				    ? "every sampled stack, the sleeping ones under [asleep in ...]"
				    : "the running threads' stacks; --idle adds the sleeping ones",
				ntl);
		free(how);
	}
	ret = failed ? MS_EXIT_FAILED : partial ? MS_EXIT_PARTIAL : MS_EXIT_OK;
out_dir:
	remove_dir(&s);
out:
	if (afile_open) {
		ms_afile_abort(&af);
		ms_afile_abort(&af_all);
	}
	ms_profile_free(prof);
	ms_profile_free(all);
	for (size_t i = 0; i < s.n; i++) {
		free(s.v[i].title);
		free(s.v[i].out);
		free(s.v[i].log);
		free(s.v[i].all);
		free(s.v[i].tl);
		free(s.v[i].note);
	}
	free(s.v);
out_opts:
	free(s.pass);
	free(s.out_default);
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
