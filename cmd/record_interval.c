// SPDX-License-Identifier: MIT
/*
 * memspy record --interval: file names from a pattern, --keep rotation, and
 * each interval's view of the sample table (allocated in the interval, live
 * since the recording began). The recording loop (cmd/record.c) decides
 * when an interval ends and writes its file through these.
 */
#include "cmd/record_interval.h"
#include "cmd/cmd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A stack's cumulative figures when the current interval began. */
struct base {
	uint64_t samples, bytes;
	double count;
};

struct ms_rec_interval {
	char *pattern;
	uint64_t every_ns;
	unsigned keep; /* 0: every file is kept */
	pid_t pid;
	uint64_t start_ns;	/* the recording's start (CLOCK_MONOTONIC) */
	uint64_t from_ns;	/* this interval's start (CLOCK_MONOTONIC) */
	uint64_t from_real_ns;	/* the same, CLOCK_REALTIME */
	uint64_t end_ns;	/* when it ends */
	unsigned n;		/* its number, from 1 */
	struct base *base;	/* per stack; stacks past nbase are new (all zero) */
	size_t nbase, base_cap;
	struct base total;	/* the totals when it began */
	uint64_t prev_live;	/* live bytes at the end of the previous file (for "+X") */
	uint64_t prev_unfollowed; /* sampled blocks not followed to their free, so far */
	bool have_prev;
	char *open_name;	/* the file being written */
	/* The files written, oldest first: at most keep of them (the last one without --keep). */
	char **names;
	size_t nnames, names_cap;
	char *first_name;
	unsigned written, failed, removed, remove_failed;
	uint64_t cpu_ns;
};

/* ------------------------------ options ------------------------------ */

int ms_rec_interval_opt(const char *cmd, const char *arg, uint64_t *ns)
{
	if (cli_parse_duration(arg, ns) || *ns < MS_REC_INTERVAL_MIN_NS)
		return cli_usage_error(cmd,
				       "--interval: '%s' is not a duration of 1s or more (e.g. 10m, "
				       "1h, 90s)",
				       arg);
	return 0;
}

int ms_rec_interval_opt_keep(const char *cmd, const char *arg, unsigned *keep)
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

int ms_rec_interval_check(const char *cmd, const char *pattern, uint64_t interval_ns,
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

char *ms_rec_interval_name(const char *pattern, unsigned n, time_t t, pid_t pid)
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
			default: /* refused by ms_rec_interval_check: kept as written */
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

/* ------------------------------ the intervals ------------------------------ */

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct ms_rec_interval *ms_rec_interval_new(const char *pattern, uint64_t every_ns,
					    unsigned keep, pid_t pid, uint64_t start_ns)
{
	struct ms_rec_interval *iv = ms_xcalloc(1, sizeof(*iv));

	iv->pattern = ms_xstrdup(pattern);
	iv->every_ns = every_ns;
	iv->keep = keep;
	iv->pid = pid;
	iv->start_ns = iv->from_ns = start_ns;
	iv->from_real_ns = real_ns() - (ms_now_ns() - start_ns);
	iv->end_ns = start_ns + every_ns;
	iv->n = 1;
	return iv;
}

void ms_rec_interval_free(struct ms_rec_interval *iv)
{
	if (!iv)
		return;
	for (size_t i = 0; i < iv->nnames; i++)
		free(iv->names[i]);
	free(iv->names);
	free(iv->first_name);
	free(iv->open_name);
	free(iv->base);
	free(iv->pattern);
	free(iv);
}

int ms_rec_interval_probe_dir(const char *pattern, pid_t pid, struct ms_error *err)
{
	char *name = ms_rec_interval_name(pattern, 1, time(NULL), pid);
	struct ms_afile af = {0};
	int rc = ms_afile_open(&af, name, err);

	if (!rc)
		ms_afile_abort(&af);
	free(name);
	return rc;
}

uint64_t ms_rec_interval_end(const struct ms_rec_interval *iv)
{
	return iv->end_ns;
}

unsigned ms_rec_interval_number(const struct ms_rec_interval *iv)
{
	return iv->n;
}

void ms_rec_interval_stack(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			   size_t i, struct ms_rec_stack *out)
{
	ms_rec_table_stack(t, i, out);
	if (i >= iv->nbase)
		return;
	out->samples -= iv->base[i].samples;
	out->bytes -= iv->base[i].bytes;
	out->count -= iv->base[i].count;
	/* Sums of doubles: what an unchanged stack leaves is rounding, not allocations. */
	if (out->count < 1e-9)
		out->count = 0;
}

void ms_rec_interval_totals(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			    struct ms_rec_totals *out)
{
	ms_rec_table_totals(t, out);
	out->samples -= iv->total.samples;
	out->bytes -= iv->total.bytes;
	out->count -= iv->total.count;
	if (out->count < 1e-9)
		out->count = 0;
}

static void fmt_clock(char *buf, size_t size, uint64_t real)
{
	time_t t = (time_t)(real / 1000000000ull);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%H:%M:%S", &tm))
		snprintf(buf, size, "?");
}

/* "interval 3, 10:14:00-10:15:00 UTC (60.0 s)" */
static char *interval_label(const struct ms_rec_interval *iv, uint64_t now_ns)
{
	uint64_t len = now_ns > iv->from_ns ? now_ns - iv->from_ns : 0;
	char a[16], b[16];

	fmt_clock(a, sizeof(a), iv->from_real_ns);
	fmt_clock(b, sizeof(b), iv->from_real_ns + len);
	return ms_xasprintf("interval %u, %s-%s UTC (%.1f s)", iv->n, a, b, (double)len / 1e9);
}

char *ms_rec_interval_subtitle(const struct ms_rec_interval *iv, const struct ms_rec_table *t,
			       uint64_t now_ns, bool live, uint64_t mean)
{
	struct ms_rec_totals in, all;
	char *label = interval_label(iv, now_ns), *how, *sub;
	char a[32], b[32], c[32], d[32], e[32];

	ms_rec_interval_totals(iv, t, &in);
	ms_rec_table_totals(t, &all);
	how = mean ? ms_xasprintf("estimated from samples, mean %s", ms_fmt_bytes(e, sizeof(e), mean))
		   : ms_xstrdup("exact (every call)");
	ms_fmt_bytes(a, sizeof(a), in.bytes);
	ms_fmt_count(b, sizeof(b), (uint64_t)llround(in.count));
	ms_fmt_bytes(c, sizeof(c), all.live_bytes);
	ms_fmt_count(d, sizeof(d), (uint64_t)llround(all.live_count));
	if (live)
		sub = ms_xasprintf("%s: %s still live in %s allocations since the recording began "
				   "(%s allocated in %s allocations in this interval), %s",
				   label, c, d, a, b, how);
	else
		sub = ms_xasprintf("%s: %s allocated in %s allocations in this interval (%s still "
				   "live since the recording began), %s",
				   label, a, b, c, how);
	free(how);
	free(label);
	return sub;
}

void ms_rec_interval_times(const struct ms_rec_interval *iv, uint64_t now_ns, uint64_t *time_ns,
			   uint64_t *duration_ns)
{
	*time_ns = iv->from_real_ns;
	*duration_ns = now_ns > iv->from_ns ? now_ns - iv->from_ns : 0;
}

int ms_rec_interval_open(struct ms_rec_interval *iv, struct ms_afile *af, struct ms_error *err)
{
	free(iv->open_name);
	iv->open_name = ms_rec_interval_name(iv->pattern, iv->n, time(NULL), iv->pid);
	return ms_afile_open(af, iv->open_name, err);
}

/* Records a written file; beyond --keep, removes the oldest. Returns the removed name or NULL. */
static char *rotate(struct ms_rec_interval *iv, char *name)
{
	char *gone = NULL;
	size_t hold = iv->keep ? iv->keep : 1;

	/* The same name again ({time} alone, within a second): one file, listed once. */
	if (iv->nnames && !strcmp(iv->names[iv->nnames - 1], name)) {
		free(name);
		return NULL;
	}
	if (iv->nnames == hold) {
		gone = iv->names[0];
		memmove(iv->names, iv->names + 1, (iv->nnames - 1) * sizeof(*iv->names));
		iv->nnames--;
		if (iv->keep) {
			if (unlink(gone) == 0 || errno == ENOENT) {
				iv->removed++;
			} else {
				ms_warn("record: --keep %u: removing %s: %s", iv->keep, gone,
					strerror(errno));
				iv->remove_failed++;
			}
		} else {
			free(gone); /* not removed: only forgotten, the summary names the last */
			gone = NULL;
		}
	}
	ms_xgrow((void **)&iv->names, &iv->names_cap, iv->nnames + 1, sizeof(*iv->names));
	iv->names[iv->nnames++] = name;
	return gone;
}

void ms_rec_interval_done(struct ms_rec_interval *iv, const struct ms_rec_table *t,
			  uint64_t now_ns, bool written, const struct ms_error *err,
			  uint64_t cpu_ns, uint64_t dropped, bool quiet)
{
	uint64_t unfollowed;
	struct ms_rec_totals in, all;
	size_t nstacks = ms_rec_table_nstacks(t);
	char *label = interval_label(iv, now_ns), *gone = NULL;
	char a[32], b[32], c[32];

	ms_rec_interval_totals(iv, t, &in);
	ms_rec_table_totals(t, &all);
	iv->cpu_ns += cpu_ns;
	if (written) {
		iv->written++;
		if (!iv->first_name)
			iv->first_name = ms_xstrdup(iv->open_name);
		gone = rotate(iv, iv->open_name);
		iv->open_name = NULL;
	} else {
		iv->failed++;
	}
	if (!quiet && written) {
		fprintf(stderr, "memspy: %s -> %s: %s live", label, iv->names[iv->nnames - 1],
			ms_fmt_bytes(a, sizeof(a), all.live_bytes));
		if (iv->have_prev)
			fprintf(stderr, " (%s%s since the last file)",
				all.live_bytes >= iv->prev_live ? "+" : "-",
				ms_fmt_bytes(b, sizeof(b),
					     all.live_bytes >= iv->prev_live
						 ? all.live_bytes - iv->prev_live
						 : iv->prev_live - all.live_bytes));
		fprintf(stderr, ", %s allocated in it (%s samples)",
			ms_fmt_bytes(c, sizeof(c), in.bytes), ms_fmt_count(b, sizeof(b), in.samples));
		if (gone)
			fprintf(stderr, "; removed %s (--keep %u)", gone, iv->keep);
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
	unfollowed = dropped + all.untracked;
	if (!quiet && unfollowed > iv->prev_unfollowed)
		fprintf(stderr,
			"memspy: WARNING: %s more sampled blocks could not be followed to their "
			"free (memspy's table of sampled pointers is full): they count as live in "
			"this file and the later ones, and a diff shows them as growth\n",
			ms_fmt_count(a, sizeof(a), unfollowed - iv->prev_unfollowed));
	iv->prev_unfollowed = unfollowed;
	free(gone);
	free(label);
	if (written) {
		iv->prev_live = all.live_bytes;
		iv->have_prev = true;
	}

	/* The next interval starts from the table as it is now. */
	ms_xgrow((void **)&iv->base, &iv->base_cap, nstacks + 1, sizeof(*iv->base));
	for (size_t i = 0; i < nstacks; i++) {
		struct ms_rec_stack s;

		ms_rec_table_stack(t, i, &s);
		iv->base[i] = (struct base){.samples = s.samples, .bytes = s.bytes, .count = s.count};
	}
	iv->nbase = nstacks;
	iv->total = (struct base){.samples = all.samples, .bytes = all.bytes, .count = all.count};
	iv->from_real_ns += now_ns - iv->from_ns;
	iv->from_ns = now_ns;
	iv->n++;
	/* Boundaries stay on the grid of the start; a write that overran one skips it. */
	while (iv->end_ns <= now_ns)
		iv->end_ns += iv->every_ns;
}

const char *ms_rec_interval_progress(const struct ms_rec_interval *iv, uint64_t now_ns,
				     char *buf, size_t size)
{
	char d[32];

	snprintf(buf, size, " | interval %u, next file in %s", iv->n,
		 ms_fmt_duration(d, sizeof(d), iv->end_ns > now_ns ? iv->end_ns - now_ns : 0));
	return buf;
}

char *ms_rec_interval_summary(const struct ms_rec_interval *iv)
{
	const char *last = iv->nnames ? iv->names[iv->nnames - 1] : NULL;
	char *s, *more;

	if (!iv->written)
		s = ms_xasprintf("no interval file (pattern %s)", iv->pattern);
	else if (iv->written == 1)
		s = ms_xasprintf("1 interval file, %s", last);
	else
		s = ms_xasprintf("%u interval files, %s to %s", iv->written, iv->first_name, last);
	if (iv->keep && iv->removed) {
		more = ms_xasprintf("%s; kept the last %zu (--keep %u), from %s", s, iv->nnames,
				    iv->keep, iv->names[0]);
		free(s);
		s = more;
	}
	if (iv->failed) {
		more = ms_xasprintf("%s; %u interval%s could not be written", s, iv->failed,
				    iv->failed == 1 ? "" : "s");
		free(s);
		s = more;
	}
	return s;
}

uint64_t ms_rec_interval_cpu_ns(const struct ms_rec_interval *iv)
{
	return iv->cpu_ns;
}

unsigned ms_rec_interval_written(const struct ms_rec_interval *iv)
{
	return iv->written;
}

unsigned ms_rec_interval_failed(const struct ms_rec_interval *iv)
{
	return iv->failed;
}
