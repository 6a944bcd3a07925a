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
 * cmd/record_subprocesses.c holds the options and the summary.
 */
#include "record/record.h"
#include "attach/descendants.h"
#include "output/output.h"

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

#define TICK_MS	   20	       /* the coordinator's pace: reaping, readiness, exec checks */
#define SCAN_NS	   50000000ull /* the tree is scanned again this often */
#define MAX_PROCS  4096
#define READY_LINE "memspy: recording pid "

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

/* Starts a recorder for pid: a fork of memspy that runs o.record on it. 0 or -errno. */
static int spawn(struct ms_sp *s, pid_t pid, unsigned gen, bool late)
{
	struct ms_sp_proc *p;
	pid_t self = getpid(), c;
	char pidbuf[16];

	ms_xgrow((void **)&s->v, &s->cap, s->n + 1, sizeof(*s->v));
	p = &s->v[s->n++];
	*p = (struct ms_sp_proc){.pid = pid, .gen = gen, .late = late};
	p->title = ms_proc_title(pid);
	p->out = ms_xasprintf("%s/%d.%u.msprof", s->dir, (int)pid, gen);
	p->log = ms_xasprintf("%s/%d.%u.log", s->dir, (int)pid, gen);
	if (s->o.walk) {
		p->all = ms_xasprintf("%s/%d.%u.all.msprof", s->dir, (int)pid, gen);
		p->tl = timeline_name(s->o.tl_path, pid, gen);
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
		char **argv = ms_xcalloc(s->o.npass + 14, sizeof(*argv));
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
			unlink(p->out);
			unlink(p->log);
			if (p->all)
				unlink(p->all);
			rmdir(s->dir); /* the last recorder to end removes it */
		}
		_exit(fd);
	}
	p->rec = c;
	if (s->o.event)
		s->o.event(s->o.ctx, p, MS_SP_STARTED);
	return 0;
}

/* Has p's recorder said it is recording (probes installed)? */
static void check_ready(struct ms_sp *s, struct ms_sp_proc *p)
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
	if (p->ready) {
		free(p->title); /* the name it has now, probes in: a worker renames itself */
		p->title = ms_proc_title(p->pid);
		if (s->o.event)
			s->o.event(s->o.ctx, p, MS_SP_READY);
	}
}

/* New processes in the tree: a recorder for each that no one traces. */
static void scan_tree(struct ms_sp *s)
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
		s->v[s->n++] = (struct ms_sp_proc){
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

static void check_exec(struct ms_sp *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct ms_sp_proc *p = &s->v[i];
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

static size_t n_running(const struct ms_sp *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += !s->v[i].ended;
	return n;
}

/* The recorder's line about the code after detach ("verified after detach: ..."). */
static void read_note(struct ms_sp_proc *p)
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

static int cmp_proc(const void *a, const void *b)
{
	const struct ms_sp_proc *x = a, *y = b;

	if (x->pid != y->pid)
		return (x->pid > y->pid) - (x->pid < y->pid);
	return (x->gen > y->gen) - (x->gen < y->gen);
}

static void remove_dir(struct ms_sp *s)
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
static bool log_has(const struct ms_sp_proc *p, const char *what)
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
	s->start_ns = ms_now_ns();
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
			}
		}
		if (!n_running(s)) {
			if (!s->why)
				s->why = "every process exited";
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
		if (!p->have_profile && access(p->out, F_OK) == 0 &&
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
	}
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
