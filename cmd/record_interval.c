// SPDX-License-Identifier: MIT
/*
 * memspy record --interval, the command's side: the options, file names
 * from a pattern, --keep rotation, and what is said about each file. The
 * intervals themselves (record/interval.c) and the recording loop
 * (cmd/record.c) decide when one ends; its file is written through these.
 */
#include "cmd/record_interval.h"
#include "cmd/cmd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cli_interval_files {
	char *pattern;
	unsigned keep; /* 0: every file is kept */
	pid_t pid;
	uint64_t prev_live;	  /* live bytes at the end of the previous file (for "+X") */
	uint64_t prev_unfollowed; /* sampled blocks not followed to their free, so far */
	bool have_prev;
	char *open_name; /* the file being written */
	/* The files written, oldest first: at most keep of them (the last one without --keep). */
	char **names;
	size_t nnames, names_cap;
	char *first_name;
	unsigned written, failed, removed, remove_failed;
	uint64_t cpu_ns;
};

/* ------------------------------ options ------------------------------ */

int cli_interval_opt(const char *cmd, const char *arg, uint64_t *ns)
{
	if (cli_parse_duration(arg, ns) || *ns < MS_REC_INTERVAL_MIN_NS)
		return cli_usage_error(cmd,
				       "--interval: '%s' is not a duration of 1s or more (e.g. 10m, "
				       "1h, 90s)",
				       arg);
	return 0;
}

int cli_interval_opt_origin(const char *cmd, const char *arg, uint64_t *ns)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (!*arg || errno || *end || !v || *arg == '-')
		return cli_usage_error(cmd,
				       "--interval-origin: '%s' is not a CLOCK_MONOTONIC instant in "
				       "ns (it is --subprocesses' own, for its recorders)",
				       arg);
	*ns = v;
	return 0;
}

int cli_interval_opt_keep(const char *cmd, const char *arg, unsigned *keep)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (!*arg || errno || *end || v < 1 || v > 1000000)
		return cli_usage_error(cmd, "--keep: '%s' is not a number of files (1 or more)",
				       arg);
	*keep = (unsigned)v;
	return 0;
}

enum ph { PH_NONE, PH_N, PH_TIME, PH_PID, PH_BAD };

/* The placeholder at s ('{'), its length in *len. */
static enum ph placeholder(const char *s, size_t *len)
{
	static const struct {
		const char *text;
		enum ph ph;
	} known[] = {{"{n}", PH_N}, {"{time}", PH_TIME}, {"{pid}", PH_PID}};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		*len = strlen(known[i].text);
		if (!strncmp(s, known[i].text, *len))
			return known[i].ph;
	}
	*len = 1;
	return PH_BAD;
}

int cli_interval_check(const char *cmd, const char *pattern, uint64_t interval_ns,
		       unsigned keep)
{
	bool has_n = false, has_time = false, has_any = false;
	size_t len;

	for (const char *s = pattern; (s = strchr(s, '{')); s += len) {
		switch (placeholder(s, &len)) {
		case PH_N: has_n = true; break;
		case PH_TIME: has_time = true; break;
		case PH_PID: break;
		default: {
			const char *close = strchr(s, '}');
			int w = close ? (int)(close - s + 1) : (int)strlen(s);

			return cli_usage_error(cmd,
					       "-o: unknown placeholder '%.*s' in '%s' (known: {n}, "
					       "{time}, {pid})",
					       w, s, pattern);
		}
		}
		has_any = true;
	}
	if (keep && !interval_ns)
		return cli_usage_error(cmd, "--keep needs --interval (it removes the oldest of "
					    "the files written one per interval)");
	if (!interval_ns && has_any)
		return cli_usage_error(cmd,
				       "-o '%s': {n}, {time} and {pid} name the files of "
				       "--interval; give --interval D, or a plain name",
				       pattern);
	if (interval_ns && !has_n && !has_time)
		return cli_usage_error(cmd,
				       "--interval writes one file per interval: the name '%s' needs "
				       "{n} (the interval's number) or {time} (when it ended), e.g. "
				       "-o 'heap-{n}.pb.gz'",
				       pattern);
	return 0;
}

char *cli_interval_name(const char *pattern, unsigned n, time_t t, pid_t pid)
{
	char *out = NULL, tbuf[32];
	size_t cap = 0, used = 0, len;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(tbuf, sizeof(tbuf), "%Y%m%dT%H%M%SZ", &tm))
		snprintf(tbuf, sizeof(tbuf), "%lld", (long long)t);
	for (const char *s = pattern; *s; s += len) {
		char num[32];
		const char *add = s;
		size_t alen = 1;

		len = 1;
		if (*s == '{') {
			switch (placeholder(s, &len)) {
			case PH_N:
				snprintf(num, sizeof(num), "%u", n);
				add = num;
				alen = strlen(num);
				break;
			case PH_TIME:
				add = tbuf;
				alen = strlen(tbuf);
				break;
			case PH_PID:
				snprintf(num, sizeof(num), "%d", (int)pid);
				add = num;
				alen = strlen(num);
				break;
			default: /* refused by cli_interval_check: kept as written */
				break;
			}
		}
		ms_xgrow((void **)&out, &cap, used + alen + 1, 1);
		memcpy(out + used, add, alen);
		used += alen;
	}
	ms_xgrow((void **)&out, &cap, used + 1, 1);
	out[used] = '\0';
	return out;
}

/* ------------------------------ the files ------------------------------ */

struct cli_interval_files *cli_interval_files_new(const char *pattern, unsigned keep, pid_t pid)
{
	struct cli_interval_files *f = ms_xcalloc(1, sizeof(*f));

	f->pattern = ms_xstrdup(pattern);
	f->keep = keep;
	f->pid = pid;
	return f;
}

void cli_interval_files_free(struct cli_interval_files *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nnames; i++)
		free(f->names[i]);
	free(f->names);
	free(f->first_name);
	free(f->open_name);
	free(f->pattern);
	free(f);
}

int cli_interval_probe_dir(const char *pattern, pid_t pid, struct ms_error *err)
{
	char *name = cli_interval_name(pattern, 1, time(NULL), pid);
	struct ms_afile af = {0};
	int rc = ms_afile_open(&af, name, err);

	if (!rc)
		ms_afile_abort(&af);
	free(name);
	return rc;
}

static void fmt_clock(char *buf, size_t size, uint64_t real)
{
	time_t t = (time_t)(real / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%H:%M:%S", &tm))
		snprintf(buf, size, "?");
}

/* "interval 3, 10:14:00-10:15:00 UTC (60.0 s)" */
static char *interval_label(const struct cli_interval_fig *fig)
{
	char a[16], b[16];

	fmt_clock(a, sizeof(a), fig->from_real_ns);
	fmt_clock(b, sizeof(b), fig->from_real_ns + fig->duration_ns);
	return ms_xasprintf("interval %u, %s-%s UTC (%.1f s)", fig->n, a, b,
			    (double)fig->duration_ns / 1e9);
}

/* One process's current interval of iv, ending at now_ns, in t. */
static void fig_of(struct cli_interval_fig *fig, const struct ms_rec_interval *iv,
		   const struct ms_rec_table *t, uint64_t now_ns)
{
	struct ms_rec_totals in, all;

	ms_rec_interval_totals(iv, t, &in);
	ms_rec_table_totals(t, &all);
	*fig = (struct cli_interval_fig){
	    .n = ms_rec_interval_number(iv),
	    .live_bytes = all.live_bytes,
	    .live_count = (uint64_t)llround(all.live_count),
	    .alloc_bytes = in.bytes,
	    .alloc_count = (uint64_t)llround(in.count),
	    .samples = in.samples,
	    .unfollowed = all.untracked,
	};
	ms_rec_interval_times(iv, now_ns, &fig->from_real_ns, &fig->duration_ns);
}

char *cli_interval_fig_subtitle(const struct cli_interval_fig *fig, bool live, const char *how)
{
	char *label = interval_label(fig), *sub, *procs = NULL;
	char a[32], b[32], c[32], d[32];

	ms_fmt_bytes(a, sizeof(a), fig->alloc_bytes);
	ms_fmt_count(b, sizeof(b), fig->alloc_count);
	ms_fmt_bytes(c, sizeof(c), fig->live_bytes);
	ms_fmt_count(d, sizeof(d), fig->live_count);
	if (fig->nproc)
		procs = ms_xasprintf(" of %zu process%s (--subprocesses)", fig->nproc,
				     fig->nproc == 1 ? "" : "es");
	if (live)
		sub = ms_xasprintf("%s: %s still live in %s allocations%s since the recording "
				   "began (%s allocated in %s allocations in this interval), %s",
				   label, c, d, procs ? procs : "", a, b, how);
	else
		sub = ms_xasprintf("%s: %s allocated in %s allocations%s in this interval (%s "
				   "still live since the recording began), %s",
				   label, a, b, procs ? procs : "", c, how);
	free(procs);
	free(label);
	return sub;
}

char *cli_interval_subtitle(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    uint64_t now_ns, bool live, uint64_t mean)
{
	struct cli_interval_fig fig;
	char e[32], *how, *sub;

	fig_of(&fig, iv, t, now_ns);
	how = mean ? ms_xasprintf("estimated from samples, mean %s", ms_fmt_bytes(e, sizeof(e), mean))
		   : ms_xstrdup("exact (every call)");
	sub = cli_interval_fig_subtitle(&fig, live, how);
	free(how);
	return sub;
}

int cli_interval_files_open_n(struct cli_interval_files *f, unsigned n, struct ms_afile *af,
			      struct ms_error *err)
{
	free(f->open_name);
	f->open_name = cli_interval_name(f->pattern, n, time(NULL), f->pid);
	return ms_afile_open(af, f->open_name, err);
}

int cli_interval_files_open(struct cli_interval_files *f, const struct ms_rec_interval *iv,
			    struct ms_afile *af, struct ms_error *err)
{
	return cli_interval_files_open_n(f, ms_rec_interval_number(iv), af, err);
}

/* Records a written file; beyond --keep, removes the oldest. Returns the removed name or NULL. */
static char *rotate(struct cli_interval_files *f, char *name)
{
	char *gone = NULL;
	size_t hold = f->keep ? f->keep : 1;

	/* The same name again ({time} alone, within a second): one file, listed once. */
	if (f->nnames && !strcmp(f->names[f->nnames - 1], name)) {
		free(name);
		return NULL;
	}
	if (f->nnames == hold) {
		gone = f->names[0];
		memmove(f->names, f->names + 1, (f->nnames - 1) * sizeof(*f->names));
		f->nnames--;
		if (f->keep) {
			if (unlink(gone) == 0 || errno == ENOENT) {
				f->removed++;
			} else {
				ms_warn("record: --keep %u: removing %s: %s", f->keep, gone,
					strerror(errno));
				f->remove_failed++;
			}
		} else {
			free(gone); /* not removed: only forgotten, the summary names the last */
			gone = NULL;
		}
	}
	ms_xgrow((void **)&f->names, &f->names_cap, f->nnames + 1, sizeof(*f->names));
	f->names[f->nnames++] = name;
	return gone;
}

void cli_interval_files_done(struct cli_interval_files *f, const struct ms_rec_interval *iv,
			     const struct ms_rec_table *t, uint64_t now_ns, bool written,
			     const struct ms_error *err, uint64_t cpu_ns, uint64_t dropped,
			     bool quiet)
{
	struct cli_interval_fig fig;

	fig_of(&fig, iv, t, now_ns);
	fig.unfollowed += dropped;
	cli_interval_files_note(f, &fig, written, err, cpu_ns, quiet);
}

void cli_interval_files_note(struct cli_interval_files *f, const struct cli_interval_fig *fig,
			     bool written, const struct ms_error *err, uint64_t cpu_ns, bool quiet)
{
	uint64_t unfollowed;
	char *label = interval_label(fig), *gone = NULL;
	char a[32], b[32], c[32];

	f->cpu_ns += cpu_ns;
	if (written) {
		f->written++;
		if (!f->first_name)
			f->first_name = ms_xstrdup(f->open_name);
		gone = rotate(f, f->open_name);
		f->open_name = NULL;
	} else {
		f->failed++;
	}
	if (!quiet && written) {
		fprintf(stderr, "memspy: %s -> %s: %s live", label, f->names[f->nnames - 1],
			ms_fmt_bytes(a, sizeof(a), fig->live_bytes));
		if (f->have_prev)
			fprintf(stderr, " (%s%s since the last file)",
				fig->live_bytes >= f->prev_live ? "+" : "-",
				ms_fmt_bytes(b, sizeof(b),
					     fig->live_bytes >= f->prev_live
						 ? fig->live_bytes - f->prev_live
						 : f->prev_live - fig->live_bytes));
		if (fig->nproc)
			fprintf(stderr, ", %s allocated in it, %zu process%s",
				ms_fmt_bytes(c, sizeof(c), fig->alloc_bytes), fig->nproc,
				fig->nproc == 1 ? "" : "es");
		else
			fprintf(stderr, ", %s allocated in it (%s samples)",
				ms_fmt_bytes(c, sizeof(c), fig->alloc_bytes),
				ms_fmt_count(b, sizeof(b), fig->samples));
		if (gone)
			fprintf(stderr, "; removed %s (--keep %u)", gone, f->keep);
		fprintf(stderr, "\n");
	} else if (!written) {
		fprintf(stderr, "memspy: %s: no file written: %s\n", label,
			err && err->msg[0] ? err->msg : "unknown error");
		if (err && err->hint[0])
			fprintf(stderr, "hint: %s\n", err->hint);
	}
	/*
	 * Blocks whose free memspy cannot see (the probes' pointer table in the
	 * target, or memspy's bound on kept samples, was full) stay live in this
	 * file and every later one: a diff would show them as growth.
	 */
	unfollowed = fig->unfollowed;
	if (!quiet && unfollowed > f->prev_unfollowed)
		fprintf(stderr,
			"memspy: WARNING: %s more sampled blocks could not be followed to their "
			"free (memspy's table of sampled pointers is full): they count as live in "
			"this file and the later ones, and a diff shows them as growth\n",
			ms_fmt_count(a, sizeof(a), unfollowed - f->prev_unfollowed));
	f->prev_unfollowed = unfollowed;
	free(gone);
	free(label);
	if (written) {
		f->prev_live = fig->live_bytes;
		f->have_prev = true;
	}
}

const char *cli_interval_progress(const struct ms_rec_interval *iv, uint64_t now_ns, char *buf,
				  size_t size)
{
	uint64_t end = ms_rec_interval_end(iv);
	char d[32];

	snprintf(buf, size, " | interval %u, next file in %s", ms_rec_interval_number(iv),
		 ms_fmt_duration(d, sizeof(d), end > now_ns ? end - now_ns : 0));
	return buf;
}

char *cli_interval_files_summary(const struct cli_interval_files *f)
{
	const char *last = f->nnames ? f->names[f->nnames - 1] : NULL;
	char *s, *more;

	if (!f->written)
		s = ms_xasprintf("no interval file (pattern %s)", f->pattern);
	else if (f->written == 1)
		s = ms_xasprintf("1 interval file, %s", last);
	else
		s = ms_xasprintf("%u interval files, %s to %s", f->written, f->first_name, last);
	if (f->keep && f->removed) {
		more = ms_xasprintf("%s; kept the last %zu (--keep %u), from %s", s, f->nnames,
				    f->keep, f->names[0]);
		free(s);
		s = more;
	}
	if (f->failed) {
		more = ms_xasprintf("%s; %u interval%s could not be written", s, f->failed,
				    f->failed == 1 ? "" : "s");
		free(s);
		s = more;
	}
	return s;
}

uint64_t cli_interval_files_cpu_ns(const struct cli_interval_files *f)
{
	return f->cpu_ns;
}

unsigned cli_interval_files_written(const struct cli_interval_files *f)
{
	return f->written;
}

unsigned cli_interval_files_failed(const struct cli_interval_files *f)
{
	return f->failed;
}
