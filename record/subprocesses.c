// SPDX-License-Identifier: MIT
/*
 * record --subprocesses: a coordinator that runs one `memspy record` per
 * process of the tree (a fork of memspy running cmd_record, so each
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
 *
 * With --interval D each recorder cuts its intervals on the coordinator's
 * grid (--interval-origin: the coordinator's start), so that its file n
 * covers the same minutes as every other's, a process found late having a
 * partial first one; once interval n is over and every recorder that was
 * recording before its end has written its file n, the coordinator merges
 * them into one profile and hands it to cmd/ to write (see iv_step).
 *
 * cmd/record_subprocesses.c holds the options and the summary.
 */
#include "record/record.h"
#include "attach/descendants.h"
#include "output/output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS	   20	       /* the coordinator's pace: reaping, readiness, exec checks */
#define SCAN_NS	   50000000ull /* the tree is scanned again this often */
#define MAX_PROCS  4096
#define READY_LINE "memspy: recording pid "
/* --interval: how long interval n waits for a recorder's late file (at least) */
#define IV_LATE_NS 10000000000ull
/* a stop this soon after a boundary ends the interval before it (the cut there raced it) */
#define IV_STOP_TOL_NS 500000000ull

/*
 * The length of path without its extension; ours with two dots stay whole
 * (x.pb.gz, x.speedscope.json), as walk mode's own names of its files.
 */
size_t ms_sp_stem_len(const char *path)
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
	return ms_xasprintf("%.*s-%s%s", (int)ms_sp_stem_len(pattern), pattern, id,
			    pattern + ms_sp_stem_len(pattern));
}

bool ms_sp_log_each(const struct ms_sp_proc *p, bool (*fn)(void *ctx, const char *line), void *ctx)
{
	char buf[4096];
	FILE *f = p->log ? fopen(p->log, "re") : NULL;

	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f) && fn(ctx, buf))
		;
	fclose(f);
	return true;
}

/*
 * Removes the files of dir whose name starts with prefix followed by '.'
 * or '-' (one recorder's: "PID.GEN"), or every file (prefix NULL).
 */
static void remove_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t len = prefix ? strlen(prefix) : 0;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *path;

		if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
			continue;
		if (prefix && (strncmp(e->d_name, prefix, len) ||
			       (e->d_name[len] != '.' && e->d_name[len] != '-')))
			continue;
		path = ms_xasprintf("%s/%s", dir, e->d_name);
		unlink(path);
		free(path);
	}
	closedir(d);
}

static bool known(const struct ms_sp *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].pid == pid)
			return true;
	return false;
}

static bool is_recorder(const struct ms_sp *s, pid_t pid)
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

/*
 * When pid started (/proc/PID/stat's starttime, clock ticks since boot), 0
 * when gone: an exec keeps it, a pid reused by another process does not.
 */
static uint64_t start_time(pid_t pid)
{
	char path[64], buf[1024];
	const char *c;
	unsigned long long v = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	c = strrchr(buf, ')'); /* the name may hold anything but ends there */
	/* after ") ": state is field 3, starttime field 22 */
	for (int field = 2; c && field < 22; field++)
		c = strchr(c + 1, ' ');
	if (!c || sscanf(c + 1, "%llu", &v) != 1)
		return 0;
	return v + 1;
}

/* Is p's pid still the process it was found as (maybe after an exec)? */
static bool same_process(const struct ms_sp_proc *p)
{
	uint64_t t = start_time(p->pid);

	return t && t == p->started;
}

/* Starts a recorder for pid: a fork of memspy that runs o.record on it. 0 or -errno. */
static int spawn(struct ms_sp *s, pid_t pid, unsigned gen, bool late)
{
	struct ms_sp_proc *p;
	pid_t self = getpid(), c;
	char pidbuf[16], origin[32];

	ms_xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	p = &s->v[s->n++];
	*p = (struct ms_sp_proc){.pid = pid, .gen = gen, .late = late};
	p->title = ms_proc_title(pid);
	/* --interval: one file per interval, "PID.GEN-N.msprof" (iv_scan reads the names) */
	p->out = s->o.interval_ns ? ms_xasprintf("%s/%d.%u-{n}.msprof", s->dir, (int)pid, gen)
				  : ms_xasprintf("%s/%d.%u.msprof", s->dir, (int)pid, gen);
	p->log = ms_xasprintf("%s/%d.%u.log", s->dir, (int)pid, gen);
	if (s->o.walk) {
		p->all = ms_xasprintf("%s/%d.%u.all.msprof", s->dir, (int)pid, gen);
		p->tl = timeline_name(s->o.tl_path, pid, gen);
	}
	p->image = image_id(pid);
	p->started = start_time(pid);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	snprintf(origin, sizeof(origin), "%llu", (unsigned long long)s->start_ns);
	fflush(stdout);
	fflush(stderr);
	c = fork();
	if (c < 0) {
		p->ended = true;
		p->status = MS_EXIT_FAILED << 8;
		return -errno;
	}
	if (c == 0) {
		char **argv = ms_xcalloc(s->o.npass + 18, sizeof(*argv));
		char own[48];
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
		for (size_t i = 0; i < s->o.npass; i++)
			argv[n++] = s->o.pass[i];
		argv[n++] = (char *)"--pid";
		argv[n++] = pidbuf;
		argv[n++] = (char *)"-o";
		argv[n++] = p->out;
		argv[n++] = (char *)"-f";
		argv[n++] = (char *)"msprof";
		if (s->o.interval_ns) {
			argv[n++] = (char *)"--interval";
			argv[n++] = (char *)s->o.interval_arg;
			argv[n++] = (char *)"--interval-origin";
			argv[n++] = origin;
		}
		if (s->o.walk) {
			argv[n++] = (char *)"--all-threads";
			argv[n++] = p->all;
			argv[n++] = (char *)"--timeline";
			argv[n++] = p->tl;
		}
		argv[n] = NULL;
		fd = s->o.record((int)n, argv);
		/* The coordinator was killed: no one reads these files. */
		if (getppid() != self) {
			snprintf(own, sizeof(own), "%d.%u", (int)pid, gen);
			remove_files(s->dir, own);
			rmdir(s->dir); /* the last recorder to end removes it */
		}
		_exit(fd);
	}
	p->rec = c;
	if (s->o.event)
		s->o.event(s->o.ctx, p, MS_SP_STARTED);
	return 0;
}

static bool ready_line(void *ctx, const char *line)
{
	bool *ready = ctx;

	*ready = !strncmp(line, READY_LINE, strlen(READY_LINE));
	return !*ready;
}

/* Has p's recorder said it is recording (probes installed)? */
static void check_ready(struct ms_sp *s, struct ms_sp_proc *p)
{
	if (p->ready || p->ended)
		return;
	ms_sp_log_each(p, ready_line, &p->ready);
	if (p->ready) {
		p->ready_ns = ms_now_ns();
		free(p->title); /* the name it has now, probes in: a worker renames itself */
		p->title = ms_proc_title(p->pid);
		if (s->o.event)
			s->o.event(s->o.ctx, p, MS_SP_READY);
	}
}

static bool in_pids(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

/* New processes in the tree: a recorder for each that no one traces. */
static void scan_tree(struct ms_sp *s)
{
	pid_t *seen = NULL, *desc = NULL;
	size_t nseen = 0, ndesc;

	/*
	 * The search starts from the processes of the tree that still run the
	 * image they were found with, not from every pid ever recorded: the pid
	 * of a worker that exited is soon another program's (a shell, a
	 * compiler), whose children are not the tree's. Seen in an hour on
	 * nginx reloaded every 10 minutes: 12 strangers recorded.
	 */
	seen = ms_xcalloc(s->n + 1, sizeof(*seen));
	for (size_t i = 0; i < s->n; i++) {
		uint64_t id = s->v[i].image ? image_id(s->v[i].pid) : 0;

		if (id && id == s->v[i].image && same_process(&s->v[i]) &&
		    !in_pids(seen, nseen, s->v[i].pid))
			seen[nseen++] = s->v[i].pid;
	}
	ndesc = nseen ? ms_descendants(seen, nseen, getpid(), &desc) : 0;
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
		s->v[s->n++] = (struct ms_sp_proc){
		    .pid = d,
		    .title = ms_proc_title(d),
		    .image = image_id(d), /* its children are the tree's */
		    .started = start_time(d),
		    .ended = true,
		    .status = MS_EXIT_FAILED << 8,
		    .note = ms_xasprintf("not recorded: traced by pid %d", (int)tracer)};
	}
	free(desc);
	free(seen);
}

/* Collects ended recorders; a process that exec'd gets a new one. */
static void reap(struct ms_sp *s, bool stopping)
{
	for (;;) {
		int status;
		pid_t r = waitpid(-1, &status, WNOHANG);

		if (r <= 0)
			break;
		for (size_t i = 0; i < s->n; i++) {
			struct ms_sp_proc *p = &s->v[i];

			if (p->rec != r || p->ended)
				continue;
			p->ended = true;
			p->status = status;
			p->rec = 0;
			/* Walk mode's recorder ends by itself when it sees the exec. */
			if (!p->exec_seen && p->image && same_process(p)) {
				uint64_t id = image_id(p->pid);

				p->exec_seen = id && id != p->image;
			}
			/* --interval: nothing of it is live after its last file */
			p->gone = p->exec_seen || ms_procfs_gone(p->pid) || !same_process(p);
			if (p->exec_seen && !stopping && kill(p->pid, 0) == 0 && s->n < MAX_PROCS)
				spawn(s, p->pid, p->gen + 1, true);
			break;
		}
	}
}

static void check_exec(struct ms_sp *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct ms_sp_proc *p = &s->v[i];
		uint64_t id;

		if (p->ended || p->exec_seen || !p->rec)
			continue;
		id = image_id(p->pid);
		if (id && p->image && id != p->image && same_process(p)) {
			p->exec_seen = true;
			kill(p->rec, SIGINT);
			p->stop_sent = true;
		}
	}
}

static size_t n_running(const struct ms_sp *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += !s->v[i].ended;
	return n;
}

/*
 * From the recorder's log: its summary's figures, and its line about the
 * code after detach ("verified after detach: ...").
 */
/* A count as the summaries print it ("1,207"), *s moved past it; false when none. */
static bool read_count(const char **s, unsigned long long *v)
{
	const char *c = *s;

	*v = 0;
	if (*c < '0' || *c > '9')
		return false;
	for (; (*c >= '0' && *c <= '9') || (*c == ',' && c[1] >= '0' && c[1] <= '9'); c++)
		if (*c != ',')
			*v = *v * 10 + (unsigned long long)(*c - '0');
	*s = c;
	return true;
}

/* "N of M samples found the in-target ring full" at s: N and M. */
static bool sscanf_counts(const char *s, unsigned long long *lost, unsigned long long *total)
{
	static const char tail[] = " samples found the in-target ring full";

	return read_count(&s, lost) && !strncmp(s, " of ", 4) && (s += 4, read_count(&s, total)) &&
	       !strncmp(s, tail, sizeof(tail) - 1);
}

static bool note_line(void *ctx, const char *buf)
{
	struct ms_sp_proc *p = ctx;
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
					p->samples = p->samples * 10 + (uint64_t)(*from - '0');
		}
		/* --live: the view rests on the samples still live, "(N still live; ". */
		if (from && (from = strstr(from, " samples (")) && strstr(from, " still live;")) {
			p->samples = 0;
			for (from += 10; *from && *from != ' '; from++)
				if (*from >= '0' && *from <= '9')
					p->samples = p->samples * 10 + (uint64_t)(*from - '0');
		}
		if (mean) {
			mean += 5;
			snprintf(p->mean, sizeof(p->mean), "%.*s", (int)strcspn(mean, ")\n"), mean);
		}
	}

	/*
	 * Samples lost under load: the figures rest on fewer, said per process
	 * and summed at the top ("[WARNING: ...: ]N of M samples found the ...").
	 */
	if (strstr(t, " samples found the in-target ring full")) {
		const char *nm = t;
		unsigned long long lost, total;

		for (; *nm; nm++)
			if (*nm >= '0' && *nm <= '9' && sscanf_counts(nm, &lost, &total))
				break;
		p->ring_lost = *nm ? lost : 0;
		p->ring_total = *nm ? total : 0;
		free(p->ring_note);
		p->ring_note = ms_xasprintf("%.*s", (int)strcspn(t, "\n"), t);
		return true;
	}
	if (!strncmp(t, "verified after detach", 21) || !strncmp(t, "WARNING: ", 9) ||
	    !strncmp(t, "could not verify", 16)) {
		free(p->note);
		p->note = ms_xasprintf("%.*s", (int)strcspn(t, "\n"), t);
	}
	return true;
}

static void read_note(struct ms_sp_proc *p)
{
	ms_sp_log_each(p, note_line, p);
}

struct merge_ctx {
	struct ms_profile *prof;
	const char *rootname;
	struct ms_out_frame *fr;
	size_t cap;
	uint64_t *bytes, *count, *running;
	/* --interval: what to take of an interval file (its values: live, alloc beside) */
	struct ms_sp_interval *iv;
	bool take_alloc, take_live, live_view;
};

/* An interval file's stack: its allocated values, its live ones, as asked. */
static void merge_interval_stack(struct merge_ctx *m, const struct ms_msprof_stack *s, size_t n)
{
	if (m->take_live) {
		if (m->live_view && (s->bytes || s->count || s->samples))
			ms_profile_add_sampled(m->prof, m->fr, n, s->bytes, s->count, s->samples);
		m->iv->live_bytes += s->bytes;
		m->iv->live_count += s->count;
	}
	if (m->take_alloc) {
		/* the allocated view alone, with the samples it rests on */
		if (!m->live_view && (s->alloc_bytes || s->alloc_count || s->alloc_samples))
			ms_profile_add_sampled(m->prof, m->fr, n, s->alloc_bytes, s->alloc_count,
					       s->alloc_samples);
		else if (s->alloc_bytes || s->alloc_count)
			ms_profile_add_alloc_sampled(m->prof, m->fr, n, s->alloc_bytes,
						     s->alloc_count, s->alloc_samples);
		m->iv->alloc_bytes += s->alloc_bytes;
		m->iv->alloc_count += s->alloc_count;
		*m->bytes += s->alloc_bytes;
		*m->count += s->alloc_count;
	}
}

static int merge_stack(void *ctx, const struct ms_msprof_stack *s)
{
	struct merge_ctx *m = ctx;
	size_t n = 0;

	ms_xgrow((void **)&m->fr, &m->cap, s->n + 1, sizeof(*m->fr));
	m->fr[n++] = (struct ms_out_frame){.function = m->rootname};
	memcpy(m->fr + n, s->frames, s->n * sizeof(*s->frames));
	n += s->n;
	if (m->iv) {
		merge_interval_stack(m, s, n);
		return 0;
	}
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
static int merge_file(struct ms_profile *prof, struct ms_sp_proc *p, uint32_t space,
		      const char *path, uint64_t *bytes, uint64_t *count, uint64_t *running)
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
static int merge(struct ms_profile *prof, struct ms_profile *all, struct ms_sp_proc *p,
		 uint32_t space)
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

/* ------------------------------ --interval ------------------------------ */

/* One recorder's interval file in the directory: the recording (index in s->v), its number. */
struct ivfile {
	size_t i;
	unsigned n;
};

/* Recorder p's file for interval n. Allocated. */
static char *iv_path(const struct ms_sp *s, const struct ms_sp_proc *p, unsigned n)
{
	return ms_xasprintf("%s/%d.%u-%u.msprof", s->dir, (int)p->pid, p->gen, n);
}

/* The end of the grid's interval n (CLOCK_MONOTONIC). */
static uint64_t grid_end(const struct ms_sp *s, unsigned n)
{
	return s->start_ns + (uint64_t)n * s->o.interval_ns;
}

/* The number of the grid's interval that holds t. */
static unsigned grid_n(const struct ms_sp *s, uint64_t t)
{
	uint64_t k = t > s->start_ns ? (t - s->start_ns) / s->o.interval_ns : 0;

	return k + 1 > UINT_MAX ? UINT_MAX : (unsigned)(k + 1);
}

/*
 * The interval files the recorders have written (complete: a file being
 * written has a temporary name), *count of them. Allocated.
 */
static struct ivfile *iv_scan(const struct ms_sp *s, size_t *count)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	struct ivfile *v = NULL;
	size_t n = 0, cap = 0;

	*count = 0;
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		const char *c = e->d_name;
		unsigned long gen, num;
		long pid;
		char *end;

		if (*c < '0' || *c > '9')
			continue;
		pid = strtol(c, &end, 10);
		if (*end != '.' || end[1] < '0' || end[1] > '9')
			continue;
		gen = strtoul(end + 1, &end, 10);
		if (*end != '-' || end[1] < '0' || end[1] > '9')
			continue;
		num = strtoul(end + 1, &end, 10);
		if (strcmp(end, ".msprof") || !num || num > UINT_MAX)
			continue;
		for (size_t i = 0; i < s->n; i++) {
			if (s->v[i].pid != pid || s->v[i].gen != gen || !s->v[i].log)
				continue;
			ms_xgrow((void **)&v, &cap, n + 1, sizeof(*v));
			v[n++] = (struct ivfile){.i = i, .n = (unsigned)num};
			break;
		}
	}
	closedir(d);
	*count = n;
	return v;
}

/* The highest number among recording i's files in [lo, hi]; 0 for none. */
static unsigned iv_max(const struct ivfile *f, size_t nf, size_t i, unsigned lo, unsigned hi)
{
	unsigned top = 0;

	for (size_t k = 0; k < nf; k++)
		if (f[k].i == i && f[k].n >= lo && f[k].n <= hi && f[k].n > top)
			top = f[k].n;
	return top;
}

/*
 * Adds recording i's interval file path to iv->prof under its root frame,
 * in its own address space: what was allocated in it (alloc), what is live
 * at its end (live). 0 or a negative code.
 */
static int iv_read(struct ms_sp *s, size_t i, const char *path, bool alloc, bool live,
		   struct ms_sp_interval *iv)
{
	struct ms_sp_proc *p = &s->v[i];
	struct ms_error err = {0};
	struct ms_msprof_head head;
	struct merge_ctx m = {.prof = iv->prof,
			      .bytes = &p->bytes,
			      .count = &p->count,
			      .iv = iv,
			      .take_alloc = alloc,
			      .take_live = live,
			      .live_view = s->o.live_view};
	FILE *f = fopen(path, "re");
	int ret;

	if (!f)
		return -errno;
	m.rootname = ms_xasprintf("%s (%d)", p->title, (int)p->pid);
	ret = ms_msprof_read(f, iv->prof, (uint32_t)i + 1, &head, merge_stack, &m, &err);
	if (!ret) {
		p->period = head.sample_period;
		p->sampled = head.samples;
		iv->period = head.sample_period > iv->period ? head.sample_period : iv->period;
		iv->sampled |= head.samples;
	}
	fclose(f);
	free(m.fr);
	free((char *)m.rootname);
	return ret ? -EINVAL : 0;
}

/*
 * Merges interval n and hands it to o.interval. From each recording its
 * file n; with last (the recording's last interval) also its files after n
 * (a cut at the boundary raced the stop: their allocations are added, the
 * live figures are the newest file's), and for a process stopped with the
 * others whose last file came before n (its cut lagged), the live figures
 * of that file: the last interval holds every process's live at the end.
 * A process that exited or exec'd has nothing live after its last file.
 * Unless keep, the files of n and before are removed: a file that comes
 * after its interval was merged is late, its allocations in no file.
 */
static void iv_merge(struct ms_sp *s, unsigned n, bool last, bool keep)
{
	struct ms_sp_interval iv = {.n = n};
	size_t nf;
	struct ivfile *f = iv_scan(s, &nf);
	uint64_t from = grid_end(s, n - 1), end = grid_end(s, n);
	unsigned hi = last ? UINT_MAX : n;

	if (last)
		end = s->stop_ns ? s->stop_ns : ms_now_ns();
	iv.from_real_ns = s->start_real_ns + (from - s->start_ns);
	iv.duration_ns = end > from ? end - from : 0;
	iv.prof = ms_profile_new();
	for (size_t i = 0; i < s->n; i++) {
		struct ms_sp_proc *p = &s->v[i];
		unsigned top = iv_max(f, nf, i, n, hi), newest = iv_max(f, nf, i, 1, UINT_MAX);
		bool gone = p->ended && p->gone, took = false, bad = false;
		char *path;

		if (!p->log)
			continue;
		for (size_t k = 0; k < nf; k++) {
			if (f[k].i != i || f[k].n < n || f[k].n > hi)
				continue;
			path = iv_path(s, p, f[k].n);
			bad |= iv_read(s, i, path, true, f[k].n == top && !(gone && top == newest),
				       &iv) != 0;
			free(path);
			took = true;
		}
		if (last && !top && newest && p->stop_sent && !gone) {
			path = iv_path(s, p, newest);
			bad |= iv_read(s, i, path, false, true, &iv) != 0;
			free(path);
			took = true;
		}
		p->unreadable |= bad;
		p->iv_files += took;
		iv.nproc += took;
	}
	if (iv.nproc && s->o.interval)
		s->o.interval(s->o.ctx, &iv);
	ms_profile_free(iv.prof);
	for (size_t k = 0; k < nf && !keep; k++) {
		char *path;

		if (f[k].n > n)
			continue;
		if (f[k].n < n)
			s->v[f[k].i].iv_late++;
		path = iv_path(s, &s->v[f[k].i], f[k].n);
		unlink(path);
		free(path);
	}
	free(f);
}

/*
 * While the recording goes on: merges each interval that is over once
 * every recorder that was recording before its end has written its file
 * for it (or a later one: a cut that overran skips a number), or has
 * ended; a recorder whose file is IV_LATE_NS (or an interval) late is left
 * out of it. A recorder seen recording only after the end may have cut it
 * too: its file is taken if it is there.
 */
static void iv_step(struct ms_sp *s, uint64_t now)
{
	uint64_t late = s->o.interval_ns > IV_LATE_NS ? s->o.interval_ns : IV_LATE_NS;

	while (now >= grid_end(s, s->iv_n)) {
		uint64_t b = grid_end(s, s->iv_n);
		size_t nf;
		struct ivfile *f = iv_scan(s, &nf);
		bool wait = false;

		for (size_t i = 0; i < s->n && !wait; i++) {
			const struct ms_sp_proc *p = &s->v[i];

			wait = p->log && !p->ended && p->ready && p->ready_ns <= b &&
			       !iv_max(f, nf, i, s->iv_n, UINT_MAX);
		}
		free(f);
		if (wait) {
			if (!s->iv_wait_ns)
				s->iv_wait_ns = now;
			if (now - s->iv_wait_ns < late)
				return;
		}
		iv_merge(s, s->iv_n++, false, false);
		s->iv_wait_ns = 0;
	}
}

/*
 * Every recorder ended: the intervals not merged yet, the last one the
 * interval that holds the stop (a stop within IV_STOP_TOL_NS, or a tenth
 * of an interval, after a boundary ends the interval before it: a
 * --duration of whole intervals ends on one).
 */
static void iv_final(struct ms_sp *s)
{
	uint64_t tol = s->o.interval_ns / 10, t;
	size_t nf;
	struct ivfile *f;
	unsigned last;

	if (!s->stop_ns)
		s->stop_ns = ms_now_ns();
	tol = tol < IV_STOP_TOL_NS ? tol : IV_STOP_TOL_NS;
	t = s->stop_ns > s->start_ns + tol ? s->stop_ns - tol : s->start_ns;
	last = grid_n(s, t);
	if (last < s->iv_n)
		last = s->iv_n;
	f = iv_scan(s, &nf);
	for (size_t k = 0; k < nf; k++)
		if (f[k].n < s->iv_n)
			s->v[f[k].i].iv_late++;
	free(f);
	for (unsigned n = s->iv_n; n <= last; n++)
		iv_merge(s, n, n == last, true);
	s->iv_n = last + 1;
}

static int cmp_proc(const void *a, const void *b)
{
	const struct ms_sp_proc *x = a, *y = b;

	if (x->pid != y->pid)
		return (x->pid > y->pid) - (x->pid < y->pid);
	return (x->gen > y->gen) - (x->gen < y->gen);
}

/* Every file the recorders left (--interval: files no interval took too), and the directory. */
static void remove_dir(struct ms_sp *s)
{
	remove_files(s->dir, NULL);
	rmdir(s->dir);
}

struct log_find {
	const char *what;
	bool found;
};

static bool find_line(void *ctx, const char *line)
{
	struct log_find *lf = ctx;

	lf->found = strstr(line, lf->what) != NULL;
	return !lf->found;
}

/* Does p's recorder's log hold a line containing what? */
static bool log_has(const struct ms_sp_proc *p, const char *what)
{
	struct log_find lf = {.what = what};

	ms_sp_log_each(p, find_line, &lf);
	return lf.found;
}

/*
 * A process the recording never reached: it exited before its recorder could
 * attach (a short-lived child: a backend per connection under pgbench -C, a
 * CGI), or it appeared as the recording ended and its recorder was told to
 * stop before attaching. Neither is a failure: nothing of it was patched.
 * 1 for the first, 2 for the second, else 0.
 */
int ms_sp_never_reached(const struct ms_sp_proc *p)
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

int ms_sp_start(struct ms_sp *s, const struct ms_sp_opts *o, struct ms_error *err)
{
	*s = (struct ms_sp){.o = *o};
	snprintf(s->dir, sizeof(s->dir), "/tmp/memspy-subprocesses-XXXXXX");
	if (!mkdtemp(s->dir)) {
		int e = errno;

		s->dir[0] = '\0';
		return ms_error_set(err, -e, "record: mkdtemp /tmp/memspy-subprocesses-XXXXXX: %s",
				    strerror(e));
	}
	ms_signals_init();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		s->start_ns = ms_now_ns();
		s->start_real_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	s->iv_n = 1;
	spawn(s, o->root, 0, false);
	scan_tree(s);
	s->started = true;
	return 0;
}

int ms_sp_run(struct ms_sp *s)
{
	uint64_t deadline = s->o.duration_ns ? s->start_ns + s->o.duration_ns : 0;
	uint64_t last_scan = ms_now_ns();
	bool stopping = false;

	for (;;) {
		uint64_t now = ms_now_ns();

		reap(s, stopping);
		for (size_t i = 0; i < s->n; i++)
			check_ready(s, &s->v[i]);
		if (!stopping) {
			if (ms_signals_stop_requested())
				s->why = "stop requested";
			else if (deadline && now >= deadline)
				s->why = "duration elapsed";
			/* The root's recorder failed at once: nothing to follow. */
			else if (s->v[0].ended && !s->v[0].ready && WIFEXITED(s->v[0].status) &&
				 WEXITSTATUS(s->v[0].status) >= MS_EXIT_FAILED)
				return WEXITSTATUS(s->v[0].status);
			if (s->why) {
				stopping = true;
				s->stop_ns = now;
				for (size_t i = 0; i < s->n; i++)
					if (s->v[i].rec && !s->v[i].ended) {
						kill(s->v[i].rec, SIGINT);
						s->v[i].stop_sent = true;
					}
			} else {
				check_exec(s);
				if (now - last_scan >= SCAN_NS) {
					scan_tree(s);
					last_scan = now;
				}
				if (s->o.interval_ns)
					iv_step(s, now);
			}
		}
		if (!n_running(s)) {
			if (!s->why)
				s->why = "every process exited";
			if (s->o.interval_ns)
				iv_final(s);
			return 0;
		}
		ms_signals_wait(TICK_MS);
	}
}

void ms_sp_merge(struct ms_sp *s, struct ms_profile *prof, struct ms_profile *all,
		 struct ms_sp_totals *t)
{
	*t = (struct ms_sp_totals){.exact = true, .one_mean = true};
	qsort(s->v + 1, s->n - 1, sizeof(*s->v), cmp_proc);
	/* one pass: each recording read back, merged and counted */
	for (size_t i = 0; i < s->n; i++) {
		struct ms_sp_proc *p = &s->v[i];

		if (!p->log)
			continue; /* never had a recorder (another tracer holds it) */
		read_note(p);
		if (s->o.interval_ns) /* its figures: over the interval files merged */
			p->have_profile = p->iv_files > 0;
		else if (!p->have_profile && access(p->out, F_OK) == 0 &&
			 merge(prof, all, p, (uint32_t)i + 1))
			p->unreadable = true;
		t->ntl += p->have_timeline;
		if (!p->have_profile)
			continue;
		t->bytes += p->bytes;
		t->count += p->count;
		t->running += p->running;
		t->nproc++;
		t->samples += p->samples;
		t->ring_lost += p->ring_lost;
		t->ring_total += p->ring_total;
		t->ring_nproc += p->ring_lost > 0;
		t->exact &= p->exact;
		/* every recorder had the same -s: pprof's period, as one process's */
		t->period = p->period > t->period ? p->period : t->period;
		t->sampled |= p->sampled;
		if (!p->exact && p->mean[0]) {
			t->one_mean &= !t->mean || !strcmp(t->mean, p->mean);
			t->mean = p->mean;
		}
	}
}

void ms_sp_close(struct ms_sp *s)
{
	if (s->dir[0])
		remove_dir(s);
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].title);
		free(s->v[i].out);
		free(s->v[i].log);
		free(s->v[i].all);
		free(s->v[i].tl);
		free(s->v[i].note);
		free(s->v[i].ring_note);
	}
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
