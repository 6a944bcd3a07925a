// SPDX-License-Identifier: MIT
/*
 * memspy record --mode walk: patch nothing; stop the target periodically,
 * copy every thread's registers and stack top (and read the malloc arena
 * headers every --walk-interval), resume, and unwind the copies while it runs.
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/record_walk.h"
#include "attach/attach.h"
#include "heapwalk/heapwalk.h"
#include "output/output.h"
#include "output/timeline.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD		 "record"
#define MAX_PCS		 256
#define PROGRESS_NS	 200000000ull
#define CLASSIFY_DEPTH	 48	    /* innermost PCs looked at to decide "inside the allocator" */
#define BUDGET_CREDIT_NS 5000000ull /* lets the first stops happen before any wall time passed */

struct walk_opts {
	pid_t pid;
	const char *out_path, *all_path, *tl_path;
	char *out_default, *all_default, *tl_default;
	enum ms_out_format fmt;
	bool fmt_given;
	enum ms_tl_format tl_fmt;
	uint64_t duration_ns;
	double rate;
	uint64_t walk_ns;
	bool full_walk, quiet, lines, verbose;
	bool idle;	  /* --idle: sleeping threads' stacks in the all-threads view too */
	double max_share; /* fraction of wall time the target may spend stopped */
	uint64_t stack_bytes, max_reads;
	enum ms_unwind_backend unwinder;
};

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
	    "Options:\n"
	    "  -p, --pid PID           process to record (required)\n"
	    "      --mode walk         this mode (probes, the default of record, are the other)\n"
	    "  -o, --output FILE       allocator-time flame graph (default memspy-PID.svg)\n"
	    "  -f, --format FMT        svg, folded, speedscope or pprof (default: from FILE)\n"
	    "      --all-threads FILE  all-threads flame graph (default: FILE with .all\n"
	    "                          before the extension, e.g. memspy-PID.all.svg)\n"
	    "      --timeline FILE     heap timeline, .svg or .json (default: beside -o, "
	    "OUT.timeline.svg)\n"
	    "  -d, --duration D        stop after D (\"30\", \"30s\", \"500ms\", \"2m\"); "
	    "default:\n"
	    "                          until Ctrl-C (SIGINT/SIGTERM/SIGHUP) or the target exits\n"
	    "      --rate HZ           stops per second for stacks, on average (default 100;\n"
	    "                          the instants are random, so that no periodic activity\n"
	    "                          of the process is seen at one phase only)\n"
	    "      --idle              also show the stacks of threads asleep in a system call\n"
	    "                          (futex, epoll_wait, nanosleep, poll, read...) in the\n"
	    "                          all-threads view; they are counted either way and\n"
	    "                          never count as inside the allocator\n"
	    "      --walk-interval D   time between heap reads (default 1s)\n"
	    "      --full-walk         walk every chunk at each heap read (exact, but the pause\n"
	    "                          grows with the heap) instead of the arena headers and\n"
	    "                          free lists\n"
	    "      --max-pause-share P the most the target may spend stopped, as a percentage\n"
	    "                          of wall time (default 1%%); samples are skipped to stay\n"
	    "                          under it\n"
	    "      --stack-bytes N     bytes of stack copied per thread and stop (default 16k)\n"
	    "      --unwinder U        elfutils (default), libunwind, or fp (frame pointers)\n"
	    "      --lines             show file:line in frame names\n"
	    "  -q, --quiet             no progress line and no summary; errors only\n"
	    "  -v, --verbose           one line per heap read on stderr (index, time of the\n"
	    "                          stop on CLOCK_MONOTONIC, in use, mmapped, RSS)\n"
	    "  -h, --help              this help\n"
	    "\n"
	    "Examples:\n"
	    "  memspy record --mode walk --pid 4242 --duration 60s\n"
	    "  memspy record --mode walk --pid 4242 -o alloc.svg --timeline heap.json\n"
	    "  memspy record --mode walk --pid 4242 --rate 20 --walk-interval 200ms\n"
	    "\n"
	    "Exit status: 0 complete, 1 partial (the target exited, or a stop failed; what was\n"
	    "collected is written), 2 failed (nothing written), 64 usage error.\n");
}

enum {
	OPT_MODE = 256,
	OPT_RATE,
	OPT_WALK_INTERVAL,
	OPT_FULL_WALK,
	OPT_TIMELINE,
	OPT_MAX_PAUSE,
	OPT_ALL,
	OPT_STACK_BYTES,
	OPT_UNWINDER,
	OPT_LINES,
	OPT_MAX_READS,
	OPT_IDLE,
};

static const struct option long_opts[] = {
    {"pid", required_argument, NULL, 'p'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"output", required_argument, NULL, 'o'},
    {"format", required_argument, NULL, 'f'},
    {"duration", required_argument, NULL, 'd'},
    {"rate", required_argument, NULL, OPT_RATE},
    {"walk-interval", required_argument, NULL, OPT_WALK_INTERVAL},
    {"full-walk", no_argument, NULL, OPT_FULL_WALK},
    {"timeline", required_argument, NULL, OPT_TIMELINE},
    {"max-pause-share", required_argument, NULL, OPT_MAX_PAUSE},
    {"all-threads", required_argument, NULL, OPT_ALL},
    {"stack-bytes", required_argument, NULL, OPT_STACK_BYTES},
    {"unwinder", required_argument, NULL, OPT_UNWINDER},
    {"lines", no_argument, NULL, OPT_LINES},
    {"max-list-reads", required_argument, NULL, OPT_MAX_READS},
    {"idle", no_argument, NULL, OPT_IDLE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void opts_free(struct walk_opts *o)
{
	free(o->out_default);
	free(o->all_default);
	free(o->tl_default);
}

/* "a/b.svg" + ".all" -> "a/b.all.svg"; no extension: appended. */
/* The length of path without its extension; a double extension of ours stays whole: x.speedscope.json, x.pb.gz. */
static size_t stem_len(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	size_t stem;
	const char *inner;

	if (!dot || (slash && dot < slash))
		return strlen(path);
	stem = (size_t)(dot - path);
	inner = memrchr(path, '.', stem);
	if (inner && (!slash || inner > slash) && (!strcmp(dot, ".gz") || !strcmp(dot, ".json")) &&
	    (!strncmp(inner, ".pb.", 4) || !strncmp(inner, ".speedscope.", 12)))
		stem = (size_t)(inner - path);
	return stem;
}

static char *with_infix(const char *path, const char *infix, const char *ext_if_none)
{
	size_t stem = stem_len(path);

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
				.stack_bytes = 16 * 1024,
				.max_reads = 20000,
				.unwinder = MS_UNWIND_DWFL,
				.tl_fmt = MS_TL_SVG};
	*done = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:o:f:d:qvh", long_opts, NULL)) != -1) {
		char *end;
		double v;

		switch (c) {
		case 'p':
			if ((r = cli_opt_pid(CMD, optarg, &o->pid)))
				return r;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "walk"))
				return cli_usage_error(CMD,
						       "--mode: '%s' is not handled here (this is "
						       "the walk mode; probes are record's default "
						       "mode)",
						       optarg);
			break;
		case 'o':
			if ((r = cli_opt_output(CMD, optarg, &o->out_path)))
				return r;
			break;
		case 'f':
			if ((r = cli_opt_format(CMD, optarg, &o->fmt)))
				return r;
			o->fmt_given = true;
			break;
		case 'd':
			if ((r = cli_opt_duration(CMD, optarg, &o->duration_ns)))
				return r;
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
		case OPT_STACK_BYTES:
			if ((r = cli_opt_stack_bytes(CMD, optarg, &o->stack_bytes)))
				return r;
			break;
		case OPT_UNWINDER:
			if ((r = cli_opt_unwinder(CMD, optarg, &o->unwinder)))
				return r;
			break;
		case OPT_LINES:
			o->lines = true;
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
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			help(stdout);
			*done = true;
			return MS_EXIT_OK;
		default: /* ':' or '?' */
			return cli_getopt_error(CMD, c, argc, argv);
		}
	}
	if ((r = cli_getopt_error(CMD, -1, argc, argv)))
		return r;
	if (!o->pid)
		return cli_usage_error(CMD, "--pid is required (e.g. memspy record --mode walk "
					    "--pid $(pidof myservice))");
	if (!o->out_path) {
		o->out_default =
		    ms_xasprintf("memspy-%d.%s", (int)o->pid,
				 !o->fmt_given		       ? "svg"
				 : o->fmt == MS_OUT_PPROF      ? "pb.gz"
				 : o->fmt == MS_OUT_SPEEDSCOPE ? "speedscope.json"
							       : ms_out_format_name(o->fmt));
		o->out_path = o->out_default;
		if (!o->fmt_given)
			o->fmt = MS_OUT_SVG;
	} else if (!o->fmt_given && ms_out_format_from_name(o->out_path, &o->fmt)) {
		return cli_usage_error(CMD,
				       "cannot tell the format from the name '%s': use "
				       "--format svg|folded|speedscope|pprof",
				       o->out_path);
	}
	if (!o->all_path) {
		o->all_default = with_infix(o->out_path, ".all", "");
		o->all_path = o->all_default;
	}
	if (!o->tl_path) {
		/* Beside -o, as the all-threads graph: w.svg -> w.timeline.svg. */
		o->tl_default = ms_xasprintf("%.*s.timeline.svg", (int)stem_len(o->out_path),
					     o->out_path);
		o->tl_path = o->tl_default;
	}
	if (!strcmp(o->out_path, o->all_path) || !strcmp(o->out_path, o->tl_path) ||
	    !strcmp(o->all_path, o->tl_path))
		return cli_usage_error(CMD, "-o, --all-threads and --timeline must name three "
					    "different files");
	return 0;
}

/* ------------------------------ stack table ------------------------------ */

struct stk {
	ms_raddr_t *pcs; /* innermost first: pcs[0] is the interrupted PC itself */
	size_t n;
	uint64_t count, hash;
	int in_alloc; /* -1 not decided yet, 0 no, 1 yes */
	int asleep;   /* 0 running, else 1 + the system call the thread slept in */
};

struct stk_table {
	struct stk *v;
	size_t n, cap;
	size_t *slot; /* open addressing: index + 1, 0 = empty */
	size_t nslot;
	uint64_t total;
};

static void stk_rehash(struct stk_table *t)
{
	size_t ns = t->nslot ? t->nslot * 2 : 1024;

	free(t->slot);
	t->slot = ms_xcalloc(ns, sizeof(*t->slot));
	t->nslot = ns;
	for (size_t i = 0; i < t->n; i++) {
		size_t s = t->v[i].hash & (ns - 1);

		while (t->slot[s])
			s = (s + 1) & (ns - 1);
		t->slot[s] = i + 1;
	}
}

static void stk_add(struct stk_table *t, const ms_raddr_t *pcs, size_t n, int asleep)
{
	uint64_t h = ms_hash_u64s(pcs, n) ^ ((uint64_t)asleep * 0x9e3779b97f4a7c15ull);
	size_t s;

	t->total++;
	if ((t->n + 1) * 2 > t->nslot)
		stk_rehash(t);
	for (s = h & (t->nslot - 1); t->slot[s]; s = (s + 1) & (t->nslot - 1)) {
		struct stk *e = &t->v[t->slot[s] - 1];

		if (e->hash == h && e->n == n && e->asleep == asleep &&
		    !memcmp(e->pcs, pcs, n * sizeof(*pcs))) {
			e->count++;
			return;
		}
	}
	ms_xgrow((void **)&t->v, &t->cap, t->n + 1, sizeof(*t->v));
	t->v[t->n] = (struct stk){.pcs = ms_xmalloc((n ? n : 1) * sizeof(*pcs)),
				  .n = n,
				  .count = 1,
				  .hash = h,
				  .in_alloc = -1,
				  .asleep = asleep};
	if (n)
		memcpy(t->v[t->n].pcs, pcs, n * sizeof(*pcs));
	t->slot[s] = ++t->n;
}

static void stk_free(struct stk_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].pcs);
	free(t->v);
	free(t->slot);
}

/* ------------------------------ pauses ------------------------------ */

struct pauses {
	uint32_t *us; /* every pause, microseconds */
	size_t n, cap;
	uint64_t total_ns, worst_ns;
	double ewma_ns;
};

static void pause_add(struct pauses *p, uint64_t ns)
{
	ms_xgrow((void **)&p->us, &p->cap, p->n + 1, sizeof(*p->us));
	p->us[p->n++] = (uint32_t)MS_MIN(ns / 1000, (uint64_t)UINT32_MAX);
	p->total_ns += ns;
	p->worst_ns = MS_MAX(p->worst_ns, ns);
	p->ewma_ns = p->ewma_ns ? 0.8 * p->ewma_ns + 0.2 * (double)ns : (double)ns;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pause_median_ns(struct pauses *p)
{
	if (!p->n)
		return 0;
	qsort(p->us, p->n, sizeof(*p->us), cmp_u32);
	return (p->n % 2 ? p->us[p->n / 2] : (p->us[p->n / 2 - 1] + p->us[p->n / 2]) / 2.0) * 1e3;
}

/* ------------------------------ the recorder ------------------------------ */

struct thr {
	pid_t tid;
	struct user_regs_struct regs;
	uint8_t *stack;
	size_t len;
	bool ok;
	bool asleep;	/* asleep (not running, nor waiting for a CPU) at the stop */
	int syscall_nr; /* the system call it was in, or -1 */
};

struct walker {
	struct walk_opts *o;
	struct ms_proc *p;
	struct ms_unwinder *unwinder;
	struct stk_table stacks;
	struct thr *thr;
	size_t nthr, thr_cap;
	ms_raddr_t pcs[MAX_PCS];

	/* heap */
	bool glibc;
	char allocator[600];
	struct ms_heap_loc loc;
	bool have_loc;
	struct rw_heap heap;
	struct ms_timeline *tl;
	pid_t *tids;
	ms_raddr_t *fsb;
	size_t ntids_cap;
	struct ms_tl_arena *tla;
	size_t tla_cap;

	/* cost */
	struct pauses stack_pauses, heap_pauses;
	uint64_t stops, stack_ticks, heap_ticks, skipped_stack, skipped_heap, stop_failures;
	uint64_t thread_samples, unwind_failures, heap_capped, heap_inconsistent;
	uint64_t start_ns, last_read_ns;
	int last_stop_error;

	/* running or asleep at the stop (issue: a sleeping thread is idle, not busy) */
	uint64_t running_samples, sleeping_samples, alloc_asleep;
	uint64_t asleep_in[RW_NSYSCALLS + 1]; /* by system call; the last: any other */

	/* sampling instants (record_walk_sampler.c) and the rate actually had */
	struct rw_rng rng;
	pid_t *pre_tid; /* each thread's state letter just before the stop */
	char *pre_state;
	size_t npre, pre_cap;
	bool realtime;		 /* may wake at real-time priority (rw_prio_realtime) */
	uint64_t late_ns;	 /* sum over stack stops of how late memspy woke */
	uint64_t skipped_busy;	 /* instants that came due while memspy was busy: skipped */
	uint64_t busy_until;	 /* when memspy's last stop (and its unwinding) ended */
	uint64_t stack_work_ns;	 /* memspy's time per stack stop: stop, copy, resume, unwind */
	struct rw_sched kernel0; /* the threads' schedstat when recording began */
	bool threads_changed;	 /* a stop saw other threads than those */
	bool kernel_ok;		 /* and their shares over the window: */
	double kernel_run, kernel_wait;
	size_t kernel_threads;
};

static uint64_t paused_ns(const struct walker *w)
{
	return w->stack_pauses.total_ns + w->heap_pauses.total_ns;
}

static void threads_reserve(struct walker *w, size_t n)
{
	size_t old = w->thr_cap;

	if (n <= w->thr_cap)
		return;
	ms_xgrow((void **)&w->thr, &w->thr_cap, n, sizeof(*w->thr));
	for (size_t i = old; i < w->thr_cap; i++)
		w->thr[i] = (struct thr){.stack = ms_xmalloc(w->o->stack_bytes), .syscall_nr = -1};
}

/* Just before a stop, while the threads run: the state each one is in. */
static void read_states(struct walker *w)
{
	size_t n = ms_proc_nthreads(w->p);

	if (n > w->pre_cap) {
		w->pre_cap = n;
		w->pre_tid = ms_xrealloc(w->pre_tid, n * sizeof(*w->pre_tid));
		w->pre_state = ms_xrealloc(w->pre_state, n);
	}
	for (size_t i = 0; i < n; i++) {
		w->pre_tid[i] = ms_proc_thread(w->p, i);
		w->pre_state[i] = rw_thread_state(ms_proc_pid(w->p), w->pre_tid[i]);
	}
	w->npre = n;
}

/*
 * Was the i-th thread asleep at the stop? The state the kernel gave just
 * before it: 'S' or 'D' asleep, 'R' running or waiting for a CPU. For a
 * thread not seen then (born since), the registers: a wait the stop cut
 * short returns a restart code.
 */
static bool thread_asleep(struct walker *w, size_t i, struct thr *t)
{
	char st = 0;
	bool by_regs = rw_regs_sleeping(&t->regs, &t->syscall_nr);

	if ((long)t->regs.orig_rax >= 0)
		t->syscall_nr = (int)t->regs.orig_rax;
	if (i < w->npre && w->pre_tid[i] == t->tid)
		st = w->pre_state[i];
	else
		for (size_t k = 0; k < w->npre && !st; k++)
			if (w->pre_tid[k] == t->tid)
				st = w->pre_state[k];
	if (st == 'S' || st == 'D')
		return true;
	if (st == 'R')
		return false;
	return by_regs;
}

/*
 * Every thread has been sent its interrupt: the instant is taken, and real-
 * time priority ends. Held until the resume, it made stops of busy threads
 * on a loaded machine last 2-30 ms instead of ~0.1 ms: a real-time tracer
 * woken by a tracee's stop finds it not yet off its CPU and the kernel makes
 * it wait a scheduler tick. Dropped before the interrupts were sent, the
 * stops were short but late again: memspy sent them when a CPU came free,
 * after the bursts (17-21% of samples in 1 ms bursts taking 24-27% of the
 * time).
 */
static void interrupts_sent(void *ctx)
{
	(void)ctx;
	rw_prio_realtime(false);
}

/* While stopped: registers and one stack copy per thread, nothing else. */
static void grab_threads(struct walker *w, bool stacks)
{
	size_t n = ms_proc_nthreads(w->p);

	threads_reserve(w, n);
	if (n != w->kernel0.n)
		w->threads_changed = true;
	w->nthr = 0;
	for (size_t i = 0; i < n; i++) {
		struct thr *t = &w->thr[w->nthr];
		pid_t last_tid = t->tid; /* this slot at the stop before */
		int last_nr = t->asleep ? t->syscall_nr : -1;
		ssize_t got;

		t->tid = ms_proc_thread(w->p, i);
		t->ok = false;
		t->len = 0;
		if (ms_proc_get_regs(w->p, t->tid, &t->regs))
			continue; /* a thread held at a trap or gone: skip it this time */
		t->asleep = thread_asleep(w, i, t);
		/*
		 * A sleep memspy's last stop cut short goes on in restart_syscall:
		 * it is still the same wait, named as at that stop.
		 */
		if (t->asleep && t->syscall_nr == SYS_restart_syscall && last_tid == t->tid &&
		    last_nr >= 0)
			t->syscall_nr = last_nr;
		w->nthr++;
		if (!stacks)
			continue;
		got = ms_mem_read_pid(ms_proc_pid(w->p), t->regs.rsp, t->stack, w->o->stack_bytes);
		t->len = got > 0 ? (size_t)got : 0;
		t->ok = true;
	}
}

/* After resuming: unwind the copies (no fallback reads: the threads run again). */
static void unwind_threads(struct walker *w)
{
	for (size_t i = 0; i < w->nthr; i++) {
		struct thr *t = &w->thr[i];
		struct ms_stack_copy sc = {
		    .regs = &t->regs, .data = t->stack, .len = t->len, .addr = t->regs.rsp};
		size_t n = 0;

		if (!t->ok)
			continue;
		w->thread_samples++;
		if (t->asleep) {
			w->sleeping_samples++;
			w->asleep_in[t->syscall_nr >= 0 && t->syscall_nr < RW_NSYSCALLS
					 ? t->syscall_nr
					 : RW_NSYSCALLS]++;
		} else {
			w->running_samples++;
		}
		if (ms_unwind(w->unwinder, &sc, w->pcs, MAX_PCS, &n) || !n) {
			w->unwind_failures++;
			w->pcs[0] = t->regs.rip;
			n = 1;
		}
		stk_add(&w->stacks, w->pcs, n, t->asleep ? 1 + t->syscall_nr : 0);
	}
}

/* While stopped: the arena headers (or the whole heap with --full-walk). */
static void read_heap(struct walker *w, struct ms_tl_sample *s, struct ms_heap_report *rep)
{
	struct ms_reader r;
	int rc;

	ms_proc_reader(w->p, &r);
	ms_xgrow((void **)&w->tids, &w->ntids_cap, w->nthr + 1, sizeof(*w->tids));
	w->fsb = ms_xrealloc(w->fsb, w->ntids_cap * sizeof(*w->fsb));
	for (size_t i = 0; i < w->nthr; i++) {
		w->tids[i] = w->thr[i].tid;
		w->fsb[i] = w->thr[i].regs.fs_base;
	}
	ms_heap_locate_threads(&w->loc, &r, ms_proc_maps(w->p), w->tids, w->fsb, w->nthr);
	if (w->o->full_walk) {
		rc = ms_heap_walk(&w->loc, &r, ms_proc_maps(w->p), rep);
		s->heap = rc == 0 || rc == -MS_E_CORRUPT;
		s->full_walk = true;
		return;
	}
	rc = rw_heap_read(&w->loc, &r, &w->heap, w->o->max_reads);
	s->heap = rc == 0;
}

/* After resuming: turn what read_heap found into a timeline sample. */
static void heap_sample(struct walker *w, struct ms_tl_sample *s, struct ms_heap_report *rep)
{
	struct ms_tl_values *t = &s->total;

	s->narenas = 0;
	if (!s->heap)
		return;
	if (s->full_walk) {
		ms_xgrow((void **)&w->tla, &w->tla_cap, rep->narenas + 1, sizeof(*w->tla));
		for (size_t i = 0; i < rep->narenas; i++) {
			const struct ms_heap_arena *a = &rep->arenas[i];
			struct ms_tl_values *v = &w->tla[i].v;

			w->tla[i] = (struct ms_tl_arena){.addr = a->addr, .is_main = a->is_main};
			v->system = a->system_mem;
			v->top = a->c.bytes[MS_HK_TOP];
			v->in_use = a->mi.uordblks;
			v->free = a->mi.fordblks - MS_MIN(a->mi.fordblks, v->top);
			v->tcache = a->c.bytes[MS_HK_TCACHE];
			t->system += v->system;
			t->top += v->top;
			t->free += v->free;
		}
		s->narenas = rep->narenas;
		t->in_use = rep->mi.uordblks;
		t->tcache = rep->total.bytes[MS_HK_TCACHE];
		t->mmapped = rep->mi.hblkhd;
		s->approximate = rep->partial;
		s->inconsistent = rep->inconsistent;
	} else {
		struct rw_heap *h = &w->heap;

		ms_xgrow((void **)&w->tla, &w->tla_cap, h->narenas + 1, sizeof(*w->tla));
		for (size_t i = 0; i < h->narenas; i++) {
			const struct rw_arena *a = &h->arenas[i];
			struct ms_tl_values *v = &w->tla[i].v;
			uint64_t fr = a->fast + a->unsorted + a->small + a->large;

			w->tla[i] = (struct ms_tl_arena){.addr = a->addr, .is_main = a->is_main};
			v->system = a->system_mem;
			v->top = a->top;
			v->free = fr;
			/* As mallinfo2: uordblks = system_mem - fordblks (free + top). */
			v->in_use = a->system_mem - MS_MIN(a->system_mem, fr + a->top);
			t->system += v->system;
			t->top += v->top;
			t->free += v->free;
			t->in_use += v->in_use;
		}
		s->narenas = h->narenas;
		t->tcache = h->tcache;
		t->mmapped = h->mmapped_mem;
		s->approximate = h->capped;
		s->inconsistent = h->inconsistent;
	}
	s->arenas = w->tla;
	if (s->approximate)
		w->heap_capped++;
	if (s->inconsistent)
		w->heap_inconsistent++;
}

/*
 * One stop. Returns 0, or -MS_E_TARGET_EXITED when the target is gone.
 * pause = from the first interrupt to the last resume.
 */
static int tick(struct walker *w, bool do_stack, bool do_heap, bool heap_read)
{
	struct ms_tl_sample s = {0};
	struct ms_heap_report rep;
	struct ms_proc_mem_summary ms;
	uint64_t t0 = 0, t1;
	int rc;

	memset(&rep, 0, sizeof(rep));
	heap_read = heap_read && do_heap && w->have_loc;
	if (heap_read)
		ms_proc_refresh_maps(w->p); /* while it runs: the heap may have grown */
	if (do_stack || heap_read) {
		w->npre = 0;
		if (do_stack)
			read_states(w);
		t0 = ms_now_ns();
		rc = ms_proc_stop_all(w->p);
		if (rc) {
			t1 = ms_now_ns();
			if (rc == -MS_E_TARGET_EXITED)
				return rc;
			/* stop_all resumed everything: count it, try again next tick. */
			w->stop_failures++;
			w->last_stop_error = rc;
			pause_add(heap_read ? &w->heap_pauses : &w->stack_pauses, t1 - t0);
			return 0;
		}
		grab_threads(w, do_stack);
		if (heap_read) {
			uint64_t r0 = ms_now_ns();

			read_heap(w, &s, &rep);
			w->last_read_ns = ms_now_ns() - r0;
		}
		ms_proc_resume_all(w->p);
		t1 = ms_now_ns();
		w->stops++;
		pause_add(heap_read ? &w->heap_pauses : &w->stack_pauses, t1 - t0);
		if (do_stack) {
			w->stack_ticks++;
			unwind_threads(w);
			w->stack_work_ns += ms_now_ns() - t0;
		}
	}
	if (do_heap) {
		w->heap_ticks++;
		if (!heap_read)
			t0 = ms_now_ns();
		s.t_ns = t0 - w->start_ns;
		heap_sample(w, &s, &rep);
		if (ms_proc_mem_summary(ms_proc_pid(w->p), &ms) == 0)
			s.total.rss = ms.vm_rss;
		if (w->o->verbose)
			fprintf(
			    stderr,
			    "memspy: heap sample %zu: stopped at %.9f s (CLOCK_MONOTONIC)%s "
			    "in_use %llu free %llu top %llu mmapped %llu rss %llu (read %llu us, "
			    "%llu reads)\n",
			    ms_timeline_nsamples(w->tl), (double)t0 / 1e9,
			    s.heap ? "" : " (no heap figures)", (unsigned long long)s.total.in_use,
			    (unsigned long long)s.total.free, (unsigned long long)s.total.top,
			    (unsigned long long)s.total.mmapped, (unsigned long long)s.total.rss,
			    (unsigned long long)(heap_read ? w->last_read_ns / 1000 : 0),
			    (unsigned long long)(heap_read ? w->heap.reads : 0));
		ms_timeline_add(w->tl, &s);
	}
	ms_heap_report_free(&rep);
	return 0;
}

/* --------------------------- the end: profiles --------------------------- */

static bool stack_in_allocator(struct ms_symbolizer *sym, const struct stk *s)
{
	for (size_t i = 0; i < s->n && i < CLASSIFY_DEPTH; i++) {
		const struct ms_sym_frame *sf;
		size_t nsf;

		if (ms_symbolize(sym, s->pcs[i], i > 0, &sf, &nsf) || !nsf)
			continue;
		/* Innermost (inlined) first: the first frame outside the runtime decides. */
		for (size_t j = 0; j < nsf; j++) {
			const char *fn = strcmp(sf[j].function, "??") ? sf[j].function : NULL;

			if (rw_frame_is_allocator(fn, sf[j].file, sf[j].module))
				return true;
			if (!rw_module_is_runtime(sf[j].module))
				return false;
		}
	}
	return false;
}

/* The modules the frames came from, as pprof mappings (range, file offset, build id). */
static void add_mappings(struct ms_symbolizer *sym, struct ms_profile *alloc,
			 struct ms_profile *all)
{
	const struct ms_sym_module *sm;
	size_t n = sym ? ms_symbolizer_modules(sym, &sm) : 0;

	for (size_t i = 0; i < n; i++) {
		struct ms_out_mapping m = {
		    .start = sm[i].start,
		    .limit = sm[i].limit,
		    .file_offset = sm[i].file_offset,
		    .path = sm[i].path,
		    .build_id = sm[i].build_id,
		    .is_main = sm[i].is_main,
		};

		ms_profile_add_mapping(alloc, &m);
		ms_profile_add_mapping(all, &m);
	}
}

static void build_profiles(struct walker *w, struct ms_symbolizer *sym, struct ms_profile *alloc,
			   struct ms_profile *all, uint64_t *alloc_samples)
{
	struct ms_out_frame *frames = NULL;
	size_t cap = 0;
	char asleep_name[64];

	*alloc_samples = 0;
	for (size_t i = 0; i < w->stacks.n; i++) {
		struct stk *s = &w->stacks.v[i];
		size_t n = 0;

		s->in_alloc = sym && stack_in_allocator(sym, s);
		if (s->asleep) {
			/* Asleep inside allocator code: a lock, or an allocator's own thread. */
			if (s->in_alloc)
				w->alloc_asleep += s->count;
			if (!w->o->idle)
				continue;
		}
		for (size_t k = s->n; k-- > 0;) {
			const struct ms_sym_frame *sf = NULL;
			size_t nsf = 0;

			/* pcs[0] is where the thread was stopped, the others return addresses. */
			if (sym && ms_symbolize(sym, s->pcs[k], k > 0, &sf, &nsf) == 0 && nsf) {
				for (size_t j = nsf; j-- > 0;) {
					ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
					frames[n++] = (struct ms_out_frame){
					    .function = strcmp(sf[j].function, "??")
							    ? sf[j].function
							    : NULL,
					    .file = w->o->lines ? sf[j].file : NULL,
					    .line = w->o->lines ? sf[j].line : 0,
					    .module =
						strcmp(sf[j].module, "??") ? sf[j].module : NULL,
					    .offset = sf[j].module_offset,
					    .inlined = sf[j].inlined,
					    .address = sf[j].address,
					};
				}
			} else {
				ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
				frames[n++] = (struct ms_out_frame){.offset = s->pcs[k]};
			}
		}
		if (s->asleep) {
			/* The leaf says so: "[asleep in futex]". */
			const char *sc = rw_syscall_name(s->asleep - 1);

			ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
			if (sc)
				snprintf(asleep_name, sizeof(asleep_name), "[asleep in %s]", sc);
			else
				snprintf(asleep_name, sizeof(asleep_name),
					 "[asleep in system call %d]", s->asleep - 1);
			frames[n++] = (struct ms_out_frame){.function = asleep_name};
		}
		ms_profile_add(all, frames, n, 0, s->count);
		if (s->in_alloc && !s->asleep) {
			ms_profile_add(alloc, frames, n, 0, s->count);
			*alloc_samples += s->count;
		}
	}
	free(frames);
}

/* ------------------------------ the command ------------------------------ */

struct outcome {
	bool target_exited, duration_elapsed;
	int exit_status, wait_error, stop_signal;
	uint64_t wall_ns;
};

static void progress(struct walker *w, bool tty, uint64_t now, uint64_t *last, bool *shown)
{
	char a[32], b[32], c[32];

	if (!tty || now - *last < PROGRESS_NS)
		return;
	*last = now;
	fprintf(stderr, "\rmemspy: %.1f s, %s stops, %s thread samples, stopped %s (%.2f%%)\033[K",
		(uint64_t)(now - w->start_ns) / 1e9, ms_fmt_count(a, sizeof(a), w->stops),
		ms_fmt_count(b, sizeof(b), w->thread_samples),
		ms_fmt_duration(c, sizeof(c), (uint64_t)paused_ns(w)),
		now > w->start_ns ? 100.0 * (double)paused_ns(w) / (double)(now - w->start_ns) : 0);
	*shown = true;
}

/* "12,345 running and 3,193 sleeping (in clock_nanosleep 3,000, futex 193)", and the kernel's view.
 */
static void print_thread_states(struct walker *w, const struct outcome *oc)
{
	char a[32], b[32], c[32], list[256] = "";
	bool taken[RW_NSYSCALLS + 1] = {false};
	size_t len = 0;

	/* The four commonest waits, largest first ("other" when not one syscall). */
	for (int k = 0; k < 4; k++) {
		size_t best = SIZE_MAX;

		for (size_t i = 0; i <= RW_NSYSCALLS; i++)
			if (!taken[i] && w->asleep_in[i] &&
			    (best == SIZE_MAX || w->asleep_in[i] > w->asleep_in[best]))
				best = i;
		if (best == SIZE_MAX)
			break;
		taken[best] = true;
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %s",
						len ? ", " : "in ",
						best == RW_NSYSCALLS ? "other calls"
						: rw_syscall_name((int)best)
						    ? rw_syscall_name((int)best)
						    : ms_fmt_count(c, sizeof(c), (uint64_t)best),
						ms_fmt_count(a, sizeof(a), w->asleep_in[best]));
	}
	fprintf(stderr, "  thread samples: %s running and %s sleeping%s%s%s\n",
		ms_fmt_count(a, sizeof(a), w->running_samples),
		ms_fmt_count(b, sizeof(b), w->sleeping_samples), len ? " (" : "", list,
		len ? ")" : "");
	if (w->alloc_asleep)
		fprintf(stderr,
			"  %s of the sleeping samples were waiting inside allocator code (a lock "
			"inside malloc, or an allocator's own thread): not counted as allocator "
			"time\n",
			ms_fmt_count(a, sizeof(a), w->alloc_asleep));
	/* The same question asked of the kernel: is the sampler fair? */
	if (w->thread_samples && w->kernel_ok)
		fprintf(stderr,
			"  running share: %.1f%% of thread samples; the kernel's: %.1f%% of the "
			"time of %zu threads on a CPU, %.1f%% with their wait for one "
			"(/proc/PID/task/*/schedstat)\n",
			100.0 * (double)w->running_samples / (double)w->thread_samples,
			100 * w->kernel_run, w->kernel_threads,
			100 * (w->kernel_run + w->kernel_wait));
}

/* The rate asked against the rate had, and why they differ. */
static void print_rate(struct walker *w, const struct outcome *oc)
{
	const struct walk_opts *o = w->o;
	char a[32], b[32], why[512] = "";
	size_t len = 0;
	double had = oc->wall_ns ? (double)w->stack_ticks * 1e9 / (double)oc->wall_ns : 0;
	double work = w->stack_ticks ? (double)w->stack_work_ns / (double)w->stack_ticks : 0;
	double late = w->stack_ticks ? (double)w->late_ns / (double)w->stack_ticks : 0;

	fprintf(stderr,
		"  stacks: %g Hz asked, %.1f Hz had (%s stops with stacks in %.1f s, at "
		"random instants)",
		o->rate, had, ms_fmt_count(a, sizeof(a), w->stack_ticks),
		(double)oc->wall_ns / 1e9);
	if (had >= 0.9 * o->rate) {
		fprintf(stderr, "\n");
		return;
	}
#define WHY(...)                                                                                   \
	do {                                                                                       \
		if (len < sizeof(why))                                                             \
			len += (size_t)snprintf(why + len, sizeof(why) - len, __VA_ARGS__);        \
	} while (0)
	if (w->skipped_stack)
		WHY("%sthe pause budget skipped %s (--max-pause-share %.2g%%; a stop paused the "
		    "target %s at the median)",
		    len ? "; " : "", ms_fmt_count(a, sizeof(a), w->skipped_stack),
		    o->max_share * 100,
		    ms_fmt_duration(b, sizeof(b), pause_median_ns(&w->stack_pauses)));
	if (w->skipped_busy)
		WHY("%s%s instants came due while memspy was still busy with the stop before "
		    "(stop, copy, unwind of %zu threads: %s each on average) and were skipped",
		    len ? "; " : "", ms_fmt_count(a, sizeof(a), w->skipped_busy), w->nthr,
		    ms_fmt_duration(b, sizeof(b), (uint64_t)work));
	if (late > 200000)
		WHY("%smemspy woke %s late on average (%s: the machine's CPUs were busy)",
		    len ? "; " : "", ms_fmt_duration(a, sizeof(a), (uint64_t)late),
		    w->realtime ? "even at real-time priority"
				: "real-time priority was refused (CAP_SYS_NICE)");
	if (w->stop_failures)
		WHY("%s%s stops failed", len ? "; " : "",
		    ms_fmt_count(a, sizeof(a), w->stop_failures));
	if (!len)
		WHY("memspy did not get the CPU time to keep up");
#undef WHY
	fprintf(stderr, ": fewer, because %s\n", why);
}

static void print_summary(struct walker *w, const struct outcome *oc, uint64_t alloc_samples,
			  uint64_t cpu_ns)
{
	const struct walk_opts *o = w->o;
	char a[32], b[32], c[32], d[32];
	double share = oc->wall_ns ? (double)paused_ns(w) / (double)oc->wall_ns : 0;
	size_t nt = ms_timeline_nsamples(w->tl);

	fprintf(stderr,
		"memspy: wrote %s (%s, allocator time): %s of %s running thread samples (%.1f%%) "
		"were inside the allocator, over %s\n",
		o->out_path, ms_out_format_name(o->fmt), ms_fmt_count(a, sizeof(a), alloc_samples),
		ms_fmt_count(b, sizeof(b), w->running_samples),
		w->running_samples ? 100.0 * (double)alloc_samples / (double)w->running_samples : 0,
		ms_fmt_duration(c, sizeof(c), (uint64_t)oc->wall_ns));
	print_thread_states(w, oc);
	fprintf(stderr, "  all threads: wrote %s (%s)\n", o->all_path,
		o->idle ? "every sampled stack, the sleeping ones under [asleep in ...]"
			: "the running threads' stacks; --idle adds the sleeping ones");
	fprintf(stderr, "  heap timeline: wrote %s (%zu samples", o->tl_path, nt);
	if (w->glibc && nt) {
		const struct ms_tl_sample *f = ms_timeline_sample(w->tl, 0);
		const struct ms_tl_sample *l = ms_timeline_sample(w->tl, nt - 1);

		/* First and last samples with heap figures (a skipped read holds RSS only). */
		for (size_t i = 0; i < nt && !f->heap; i++)
			f = ms_timeline_sample(w->tl, i);
		for (size_t i = nt; i-- > 0 && !l->heap;)
			l = ms_timeline_sample(w->tl, i);

		fprintf(stderr, "; in use %s -> %s",
			ms_fmt_bytes(a, sizeof(a), (uint64_t)f->total.in_use),
			ms_fmt_bytes(b, sizeof(b), (uint64_t)l->total.in_use));
		/* Blocks above the mmap threshold are not in the arenas' figures. */
		if (f->total.mmapped || l->total.mmapped)
			fprintf(stderr, " in the arenas, mmapped chunks %s -> %s",
				ms_fmt_bytes(a, sizeof(a), (uint64_t)f->total.mmapped),
				ms_fmt_bytes(b, sizeof(b), (uint64_t)l->total.mmapped));
		fprintf(stderr, ", RSS %s -> %s%s)\n",
			ms_fmt_bytes(c, sizeof(c), (uint64_t)f->total.rss),
			ms_fmt_bytes(d, sizeof(d), (uint64_t)l->total.rss),
			o->full_walk ? ", every chunk walked" : ", from the arena headers");
	} else {
		fprintf(stderr, ")\n");
	}
	if (!w->glibc)
		fprintf(stderr,
			"  note: the heap timeline needs glibc malloc; this process uses %s, "
			"so it holds RSS only (stacks and the flame graphs are complete)\n",
			w->allocator);
	if (w->heap_capped && o->full_walk)
		fprintf(stderr,
			"  %s heap walks were incomplete (see memspy dump for the anomalies)\n",
			ms_fmt_count(a, sizeof(a), w->heap_capped));
	else if (w->heap_capped)
		fprintf(stderr,
			"  %s heap reads cut a free list short (more than %llu chunks): their "
			"free bytes are a lower bound (--max-list-reads, or --full-walk)\n",
			ms_fmt_count(a, sizeof(a), w->heap_capped),
			(unsigned long long)o->max_reads);
	if (w->heap_inconsistent)
		fprintf(stderr,
			"  %s heap reads found an arena locked (a thread inside malloc): "
			"those figures may be off by a chunk\n",
			ms_fmt_count(a, sizeof(a), w->heap_inconsistent));
	fprintf(stderr, "  cost to the target: %s stops, median pause %s, worst %s",
		ms_fmt_count(a, sizeof(a), w->stops),
		ms_fmt_duration(b, sizeof(b), pause_median_ns(&w->stack_pauses)),
		ms_fmt_duration(c, sizeof(c), (uint64_t)w->stack_pauses.worst_ns));
	if (w->heap_pauses.n)
		fprintf(stderr, " (heap reads: median %s, worst %s)",
			ms_fmt_duration(a, sizeof(a), pause_median_ns(&w->heap_pauses)),
			ms_fmt_duration(b, sizeof(b), (uint64_t)w->heap_pauses.worst_ns));
	fprintf(stderr,
		"; stopped %s in all = estimated slowdown %.2f%% (stopped time / wall "
		"time; budget %.2g%%)\n",
		ms_fmt_duration(d, sizeof(d), (uint64_t)paused_ns(w)), share * 100,
		o->max_share * 100);
	print_rate(w, oc);
	if (w->skipped_heap)
		fprintf(stderr,
			"  the pause budget skipped %s heap reads (--max-pause-share, "
			"--walk-interval)\n",
			ms_fmt_count(b, sizeof(b), w->skipped_heap));
	if (w->stop_failures)
		fprintf(stderr, "  %s stops failed (last: %s): those samples are missing\n",
			ms_fmt_count(a, sizeof(a), w->stop_failures),
			ms_strerror(w->last_stop_error));
	if (w->unwind_failures)
		fprintf(stderr, "  %s stacks could not be unwound past their first frame\n",
			ms_fmt_count(a, sizeof(a), w->unwind_failures));
	fprintf(stderr, "  memspy itself used %s of CPU\n",
		ms_fmt_duration(a, sizeof(a), (uint64_t)cpu_ns));
}

static uint64_t cpu_time_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
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
	    .lines = o->lines,
	    .duration_ns = wall_ns,
	};

	return ms_profile_write(prof, fmt, &wo, af->fp, err);
}

int cmd_record_walk(int argc, char **argv)
{
	struct walk_opts o;
	struct walker w;
	struct ms_afile af_out = {0}, af_all = {0}, af_tl = {0};
	struct ms_error err = {0};
	struct ms_attach_opts aopts = {.trace_fork =
					   false}; /* nothing patched: forks are no concern */
	struct ms_symbolizer *sym = NULL;
	struct ms_profile *alloc = NULL, *all = NULL;
	struct outcome oc = {0};
	uint64_t next_stack, next_heap, stack_period, deadline = 0, cpu0, last_pg = 0;
	uint64_t alloc_samples = 0;
	unsigned long old_slack = 0;
	bool done, tty, shown = false;
	int rc, ret = MS_EXIT_FAILED;
	char comm[64];

	memset(&w, 0, sizeof(w));
	rc = parse_opts(argc, argv, &o, &done);
	if (rc || done) {
		opts_free(&o);
		return rc;
	}
	w.o = &o;
	/* Unwritable outputs are found before anything is attached. */
	if (ms_afile_open(&af_out, o.out_path, &err) || ms_afile_open(&af_all, o.all_path, &err) ||
	    ms_afile_open(&af_tl, o.tl_path, &err)) {
		cli_report(&err);
		goto out;
	}
	ms_signals_init();
	cpu0 = cpu_time_ns();
	if (cli_attach(CMD, o.pid, &aopts, &w.p))
		goto out;
	w.unwinder = ms_unwinder_new(o.pid, o.unwinder, &err);
	if (!w.unwinder) {
		cli_report(&err);
		goto out;
	}
	/* Opens every module now, so symbolising works after the target exited. */
	sym = ms_symbolizer_new(o.pid, &err);
	if (!sym) {
		cli_report(&err);
		goto out;
	}
	w.glibc =
	    ms_heap_detect_allocator(o.pid, ms_proc_maps(w.p), w.allocator, sizeof(w.allocator));
	if (!w.glibc) {
		/* "Uses another allocator" only from maps read with every thread stopped. */
		if (ms_proc_refresh_maps_stopped(w.p, &err)) {
			cli_report(&err);
			goto out;
		}
		w.glibc = ms_heap_detect_allocator(o.pid, ms_proc_maps(w.p), w.allocator,
						   sizeof(w.allocator));
	}
	if (w.glibc) {
		struct ms_reader r;
		struct ms_error herr = {0};

		/* The expensive part (DWARF) while the target runs. */
		ms_proc_reader(w.p, &r);
		if (ms_heap_locate(o.pid, ms_proc_maps(w.p), &r, NULL, &w.loc, &herr) == 0) {
			w.have_loc = true;
			if (w.loc.glibc_version[0])
				snprintf(w.allocator, sizeof(w.allocator), "glibc %s",
					 w.loc.glibc_version);
		} else {
			fprintf(stderr, "memspy: %s\n",
				herr.msg[0] ? herr.msg : ms_strerror(herr.code));
			if (herr.hint[0])
				fprintf(stderr, "hint: %s\n", herr.hint);
			fprintf(stderr,
				"memspy: going on without the heap timeline (stacks and RSS "
				"only)\n");
		}
	}
	{
		char *note = !w.glibc
				 ? ms_xasprintf("no heap figures: the heap timeline needs glibc "
						"malloc, and this process uses %s (RSS only)",
						w.allocator)
			     : !w.have_loc ? ms_xstrdup("no heap figures: glibc malloc's state was "
							"not found (RSS only)")
					   : NULL;
		struct ms_tl_info info = {.pid = o.pid,
					  .comm = ms_proc_comm(o.pid, comm, sizeof(comm)),
					  .command = cli_command_line(),
					  .allocator = w.allocator,
					  .note = note,
					  .interval_ns = o.walk_ns};

		w.tl = ms_timeline_new(&info);
		free(note);
	}

	/*
	 * Sampling instants independent of the target (record_walk_sampler.c):
	 * no timer slack to coalesce memspy's wake-ups with the target's, and
	 * exponential intervals, so no periodic activity is seen at one phase.
	 */
	old_slack = rw_timer_slack_minimal();
	w.realtime = rw_prio_realtime(true);
	if (w.realtime)
		ms_proc_set_interrupted_hook(w.p, interrupts_sent, &w);
	rw_rng_seed(&w.rng, ms_now_ns() ^ ((uint64_t)getpid() << 32));
	{
		size_t nt = ms_proc_nthreads(w.p);
		pid_t *tids = ms_xcalloc(nt ? nt : 1, sizeof(*tids));

		for (size_t i = 0; i < nt; i++)
			tids[i] = ms_proc_thread(w.p, i);
		rw_sched_begin(&w.kernel0, o.pid, tids, nt);
		free(tids);
	}
	w.start_ns = ms_now_ns();
	if (o.duration_ns)
		deadline = w.start_ns + o.duration_ns;
	stack_period = (uint64_t)(1e9 / o.rate);
	next_heap = w.start_ns;
	next_stack = w.start_ns + rw_interval_ns(&w.rng, stack_period);
	tty = !o.quiet && isatty(STDERR_FILENO);
	if (!o.quiet) {
		char d[32], e[32];

		fprintf(stderr,
			"memspy: recording pid %d (%s, %zu threads) without probes: stacks at "
			"%g Hz, heap every %s (%s), %s%s\n",
			(int)o.pid, comm, ms_proc_nthreads(w.p), o.rate,
			ms_fmt_duration(d, sizeof(d), (uint64_t)o.walk_ns),
			!w.have_loc   ? "RSS only"
			: o.full_walk ? "full walk"
				      : "arena headers",
			o.duration_ns ? "for " : "until Ctrl-C or its exit",
			o.duration_ns ? ms_fmt_duration(e, sizeof(e), (uint64_t)o.duration_ns)
				      : "");
	}
	for (;;) {
		struct ms_event ev;
		uint64_t now = ms_now_ns(), due = MS_MIN(next_stack, next_heap);
		bool do_stack, do_heap, heap_read;
		double allowed;

		if (deadline && now >= deadline) {
			oc.duration_elapsed = true;
			break;
		}
		if ((oc.stop_signal = ms_signals_stop_requested()))
			break;
		if (deadline)
			due = MS_MIN(due, deadline);
		if (w.realtime)
			rw_prio_realtime(true); /* wake up on time, even on a loaded machine */
		if (now < due && due - now < 1000000) {
			/* The last stretch to the nanosecond (waits below take whole ms). */
			rw_sleep_until(due);
			continue;
		}
		if (now < due) {
			/* Whole milliseconds, rounded down: events wake it early. */
			rc = ms_proc_wait(w.p, (int)((due - now) / 1000000), &ev);
			if (rc) {
				oc.wait_error = rc;
				break;
			}
			if (ev.kind == MS_EV_EXITED) {
				oc.target_exited = true;
				oc.exit_status = ev.status;
				break;
			}
			if (ev.kind == MS_EV_STOP_REQUEST) {
				oc.stop_signal = ms_signals_stop_requested();
				break;
			}
			/* A trap is the target's own: nothing is patched. */
			if (ev.kind == MS_EV_TRAP)
				ms_proc_pass_trap(w.p, ev.tid);
			if (ev.kind == MS_EV_FORK)
				ms_proc_fork_child_detach(ev.child);
			continue;
		}
		do_stack = now >= next_stack;
		do_heap = now >= next_heap;
		/*
		 * An instant that came due while memspy was busy with its last
		 * stop is skipped, not taken late: taken late, it would land
		 * just after a resume, when every thread the stop woke is
		 * runnable again. Otherwise the next instant is an exponential
		 * interval after this one's, so memspy's wake-up latency does
		 * not shift the schedule (and a fresh start from now when even
		 * that is past: missed instants are not made up for in a burst).
		 */
		if (do_stack && next_stack < w.busy_until) {
			w.skipped_busy++;
			next_stack = now + rw_interval_ns(&w.rng, stack_period);
			do_stack = false;
		} else if (do_stack) {
			w.late_ns += now - next_stack;
			next_stack += rw_interval_ns(&w.rng, stack_period);
			if (next_stack <= now)
				next_stack = now + rw_interval_ns(&w.rng, stack_period);
		}
		if (do_heap)
			next_heap = MS_MAX(next_heap + o.walk_ns, now + o.walk_ns / 2);
		/* The pause budget: stopped time may not exceed max_share of wall time. */
		allowed = o.max_share * (double)(now - w.start_ns) + (double)BUDGET_CREDIT_NS -
			  (double)paused_ns(&w);
		heap_read = do_heap && w.have_loc;
		if (heap_read && allowed < MS_MAX(w.heap_pauses.ewma_ns, 1.0)) {
			/* Still an RSS point, which needs no stop. */
			w.skipped_heap++;
			heap_read = false;
		}
		if (do_stack && !heap_read &&
		    allowed < (w.stack_pauses.ewma_ns ? w.stack_pauses.ewma_ns : 100000.0)) {
			double need = w.stack_pauses.ewma_ns ? w.stack_pauses.ewma_ns : 100000.0;
			uint64_t skip = (uint64_t)((need - allowed) / o.max_share);

			/*
			 * Sleep until the budget allows a stop rather than waking at
			 * --rate only to skip: memspy's own CPU competes with the target.
			 */
			w.skipped_stack += 1 + skip / stack_period;
			next_stack =
			    MS_MAX(next_stack, now + skip) + rw_interval_ns(&w.rng, stack_period);
			do_stack = false;
		}
		if (!do_stack && !do_heap)
			continue;
		rc = tick(&w, do_stack, do_heap, heap_read);
		w.busy_until = ms_now_ns();
		if (rc == -MS_E_TARGET_EXITED) {
			oc.target_exited = true;
			ms_proc_exited(w.p, &oc.exit_status);
			break;
		}
		progress(&w, tty, ms_now_ns(), &last_pg, &shown);
	}
	oc.wall_ns = ms_now_ns() - w.start_ns;
	if (o.verbose)
		fprintf(stderr, "memspy: recording ended at %.9f s (CLOCK_MONOTONIC)\n",
			(double)(w.start_ns + oc.wall_ns) / 1e9);
	rw_timer_slack_restore(old_slack);
	if (w.realtime)
		rw_prio_realtime(false);
	/* The kernel's accounting over the same window, before anything else runs. */
	w.kernel_ok = rw_sched_end(&w.kernel0, o.pid, oc.wall_ns, &w.kernel_run, &w.kernel_wait,
				   &w.kernel_threads);
	/* Comparable only when the sampled threads are the ones alive all along. */
	if (w.threads_changed || w.kernel_threads != w.kernel0.n)
		w.kernel_ok = false;
	if (shown)
		fprintf(stderr, "\r\033[K");
	if (!oc.target_exited && ms_proc_exited(w.p, &oc.exit_status))
		oc.target_exited = true;
	/* The target first: nothing was patched, so detaching is all it needs. */
	ms_proc_detach(w.p);

	cli_report_early_end(o.pid, oc.wait_error, oc.target_exited, oc.exit_status);

	alloc = ms_profile_new();
	all = ms_profile_new();
	build_profiles(&w, sym, alloc, all, &alloc_samples);
	add_mappings(sym, alloc, all);
	{
		char a[32], b[32], c[32], d[32];
		/* The rate asked is not the rate had when the pause budget skipped stops. */
		double had = oc.wall_ns ? (double)w.stack_ticks * 1e9 / (double)oc.wall_ns : 0;
		char *rate =
		    w.skipped_stack
			? ms_xasprintf("%g Hz asked, %.1f Hz had: %s stack samples skipped "
				       "by the pause budget",
				       o.rate, had, ms_fmt_count(c, sizeof(c), w.skipped_stack))
			: ms_xasprintf("%g Hz asked, %.1f Hz had", o.rate, had);
		char *sub_alloc = ms_xasprintf(
		    "Allocator time: %s of %s running thread samples (%.1f%%) were inside "
		    "malloc/free and friends over %.1f s (%s; %s sleeping left out), no probes",
		    ms_fmt_count(a, sizeof(a), alloc_samples),
		    ms_fmt_count(b, sizeof(b), w.running_samples),
		    w.running_samples ? 100.0 * (double)alloc_samples / (double)w.running_samples
				      : 0,
		    (double)oc.wall_ns / 1e9, rate, ms_fmt_count(d, sizeof(d), w.sleeping_samples));
		char *sub_all =
		    o.idle
			? ms_xasprintf("All threads: %s thread samples (%s running, %s sleeping) "
				       "over %.1f s (%s), no probes",
				       ms_fmt_count(a, sizeof(a), w.stacks.total),
				       ms_fmt_count(b, sizeof(b), w.running_samples),
				       ms_fmt_count(d, sizeof(d), w.sleeping_samples),
				       (double)oc.wall_ns / 1e9, rate)
			: ms_xasprintf("All threads: %s running thread samples over %.1f s (%s; "
				       "%s sleeping left out, --idle shows them), no probes",
				       ms_fmt_count(a, sizeof(a), w.running_samples),
				       (double)oc.wall_ns / 1e9, rate,
				       ms_fmt_count(d, sizeof(d), w.sleeping_samples));
		enum ms_out_format all_fmt;

		if (ms_out_format_from_name(o.all_path, &all_fmt))
			all_fmt = o.fmt;
		rc = write_profile(alloc, &o, o.fmt, sub_alloc, &af_out, oc.wall_ns, &err);
		if (!rc)
			rc = write_profile(all, &o, all_fmt, sub_all, &af_all, oc.wall_ns, &err);
		ms_timeline_set_duration(w.tl, oc.wall_ns);
		if (!rc)
			rc = ms_timeline_write(w.tl, o.tl_fmt, af_tl.fp, &err);
		free(sub_alloc);
		free(sub_all);
		free(rate);
	}
	if (rc || ms_afile_commit(&af_out, &err) || ms_afile_commit(&af_all, &err) ||
	    ms_afile_commit(&af_tl, &err)) {
		cli_report(&err);
		goto out;
	}
	if (!o.quiet)
		print_summary(&w, &oc, alloc_samples, cpu_time_ns() - cpu0);
	ret = oc.target_exited || oc.wait_error ? MS_EXIT_PARTIAL : MS_EXIT_OK;
out:
	/* Aborting a committed file is a no-op (its temporary name is gone). */
	ms_afile_abort(&af_out);
	ms_afile_abort(&af_all);
	ms_afile_abort(&af_tl);
	ms_proc_free(w.p);
	ms_profile_free(alloc);
	ms_profile_free(all);
	ms_symbolizer_free(sym);
	ms_unwinder_free(w.unwinder);
	stk_free(&w.stacks);
	for (size_t i = 0; i < w.thr_cap; i++)
		free(w.thr[i].stack);
	free(w.thr);
	free(w.tids);
	free(w.fsb);
	free(w.tla);
	rw_heap_free(&w.heap);
	ms_heap_loc_free(&w.loc);
	ms_timeline_free(w.tl);
	rw_sched_free(&w.kernel0);
	free(w.pre_tid);
	free(w.pre_state);
	free(w.stack_pauses.us);
	free(w.heap_pauses.us);
	opts_free(&o);
	return ret;
}
