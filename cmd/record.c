// SPDX-License-Identifier: MIT
/*
 * memspy record: attach, probe the allocator, keep the raw PCs of sampled
 * allocations until --duration, Ctrl-C or the target's exit, remove every
 * probe, detach, then symbolise once per PC and write the flame graph.
 */
#include "cmd/cmd.h"
#include "cmd/record_opts.h"
#include "cmd/record_int.h"
#include "cmd/record_walk.h"
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
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define CMD	    "record"
#define MAX_PCS	    256
/*
 * The ring is drained at a pace that follows the sample rate: every 5 ms
 * when samples come fast (the ring holds 256), up to every 50 ms when they
 * are rare, because an empty drain still reads the whole ring (~60 us here)
 * and that fixed cost counts against the overhead budget.
 */
#define POLL_MIN_MS 5
#define POLL_MAX_MS 50
#define POLL_BATCH  64 /* samples waiting per drain to aim for */
#define BUDGET_READ_NS 100000000ull /* budget readings: 10 per second */
#define PROGRESS_NS 200000000ull  /* progress line refresh: 5 per second */
#define REFRESH_NS  2000000000ull /* module list refresh for the unwinder */

struct rec_opts {
	pid_t pid;
	const char *out_path;
	char *out_default;
	enum ms_out_format fmt;
	bool fmt_given;
	uint64_t duration_ns; /* 0: until Ctrl-C or the target exits */
	bool live, count, lines, quiet;
	uint64_t sample_bytes;
	double max_overhead; /* fraction of the target's CPU time; 0 = off */
	bool max_overhead_given;
	bool sample_bytes_given;
	uint64_t stack_bytes;
	enum ms_unwind_backend unwinder;
	const char **probes;
	size_t nprobes, probes_cap;
};

/* What the allocation callback needs: borrowed pointers, owned by cmd_record(). */
struct recorder {
	struct ms_unwinder *unwinder;
	struct ms_rec_table *table;
	const struct ms_probes *probes; /* which frames are the allocator's own */
	uint64_t alloc_events, free_events, unwind_failures, short_stacks;
	ms_raddr_t pcs[MAX_PCS];
};

static void help(FILE *f)
{
	fprintf(
	    f,
	    "Usage: memspy record --pid PID [-o FILE] [options]\n"
	    "\n"
	    "Attaches to a running process, probes its allocator (malloc, calloc, realloc,\n"
	    "posix_memalign, aligned_alloc, memalign, valloc, pvalloc, operator new; with\n"
	    "--live also free and operator delete), records the call stacks of sampled\n"
	    "allocations, removes every probe, detaches, and writes a flame graph of where\n"
	    "memory is allocated.\n"
	    "\n"
	    "Options:\n"
	    "  -p, --pid PID          process to record (required)\n"
	    "  -o, --output FILE      output file (default: memspy-PID.svg); written\n"
	    "                         atomically, also when the recording ends early\n"
	    "  -f, --format FMT       svg, folded, speedscope or pprof (default: from the\n"
	    "                         extension of FILE: .svg .folded .txt .json .pb.gz)\n"
	    "  -d, --duration D       stop after D (\"30\", \"30s\", \"500ms\", \"2m\"); default:\n"
	    "                         until Ctrl-C (SIGINT/SIGTERM/SIGHUP) or the target exits\n"
	    "      --live             bytes allocated during the recording and still not\n"
	    "                         freed at the end (the leak view)\n"
	    "      --count            allocation counts instead of bytes\n"
	    "  -s, --sample-bytes N   mean bytes between samples (default 512k; k/M/G\n"
	    "                         suffixes); 0 = every call (same as --exact)\n"
	    "      --max-overhead PCT overhead budget, as a share of the target's CPU time\n"
	    "                         (default 1%%; \"0.5%%\", \"off\"): memspy measures what\n"
	    "                         sampling costs (its own CPU, time in the probes, stops)\n"
	    "                         and widens the sampling mean when the cost exceeds it,\n"
	    "                         never narrower than --sample-bytes. Off when\n"
	    "                         --sample-bytes is given without it; not with --exact\n"
	    "      --exact            record every call: exact counts, one stop (a trap) per\n"
	    "                         call, for tests and low-rate programs; refused when a\n"
	    "                         thread blocks SIGTRAP\n"
	    "      --stack-bytes N    bytes of stack copied per sample (default 16k)\n"
	    "      --unwinder U       elfutils (default), libunwind, or fp (frame pointers)\n"
	    "      --lines            show file:line in frame names\n"
	    "      --probe SYMBOL     also probe SYMBOL as a malloc-like allocator taking the\n"
	    "                         size as first argument (repeatable)\n"
	    "      --subprocesses     follow forked children (not supported yet: forked\n"
	    "                         children are restored and let go)\n"
	    "      --mode MODE        probe (default: allocator probes, as above) or walk\n"
	    "                         (no probes: periodic stops and heap reads; see\n"
	    "                         'memspy record --mode walk --help')\n"
	    "  -q, --quiet            no progress line and no summary; errors only\n"
	    "  -v, --verbose          say what memspy does (each change of the sampling\n"
	    "                         mean); twice for debugging detail\n"
	    "  -h, --help             this help\n"
	    "\n"
	    "Examples:\n"
	    "  memspy record --pid 4242 -o alloc.svg --duration 30s\n"
	    "  memspy record --pid 4242 --live -o leaks.svg            (Ctrl-C to stop)\n"
	    "  memspy record --pid 4242 --count -o calls.folded\n"
	    "  memspy record --pid 4242 --exact --duration 5s -o all.speedscope.json\n"
	    "  memspy record --pid 4242 --probe my_pool_alloc -o pool.svg\n"
	    "\n"
	    "Exit status:\n"
	    "  0   complete: the file holds the whole recording\n"
	    "  1   partial: the file was written but the recording is incomplete (the\n"
	    "      target exited, or --live could not follow some sampled blocks to their\n"
	    "      free); the reason is printed\n"
	    "  2   failed: nothing written (cannot attach, no allocator found, output\n"
	    "      not writable); also when a probe could not be removed and verified\n"
	    "      (the file is still written then, and the byte at fault is named)\n"
	    "  64  usage error\n"
	    "\n"
	    "A progress line is shown on stderr when it is a terminal; a summary of what\n"
	    "was seen and what it cost the target is always printed at the end (but -q).\n");
}

enum {
	OPT_LIVE = 256,
	OPT_COUNT,
	OPT_EXACT,
	OPT_STACK_BYTES,
	OPT_UNWINDER,
	OPT_LINES,
	OPT_PROBE,
	OPT_SUBPROCESSES,
	OPT_MODE,
	OPT_MAX_OVERHEAD,
};

static const struct option long_opts[] = {
    {"pid", required_argument, NULL, 'p'},
    {"output", required_argument, NULL, 'o'},
    {"format", required_argument, NULL, 'f'},
    {"duration", required_argument, NULL, 'd'},
    {"live", no_argument, NULL, OPT_LIVE},
    {"count", no_argument, NULL, OPT_COUNT},
    {"sample-bytes", required_argument, NULL, 's'},
    {"exact", no_argument, NULL, OPT_EXACT},
    {"stack-bytes", required_argument, NULL, OPT_STACK_BYTES},
    {"unwinder", required_argument, NULL, OPT_UNWINDER},
    {"lines", no_argument, NULL, OPT_LINES},
    {"probe", required_argument, NULL, OPT_PROBE},
    {"subprocesses", no_argument, NULL, OPT_SUBPROCESSES},
    {"mode", required_argument, NULL, OPT_MODE},
    {"max-overhead", required_argument, NULL, OPT_MAX_OVERHEAD},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void opts_free(struct rec_opts *o)
{
	free(o->out_default);
	free(o->probes);
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

/* Returns 0, or the exit code to return (64 usage error, or 0 after --help with *done). */
static int parse_opts(int argc, char **argv, struct rec_opts *o, bool *done)
{
	bool exact = false, sample_given = false;
	int c, r;

	*o = (struct rec_opts){
	    .sample_bytes = 512 * 1024,
	    .max_overhead = 0.01,
	    .stack_bytes = 16 * 1024,
	    .unwinder = MS_UNWIND_DWFL};
	*done = false;
	optind = 1;
	opterr = 0; /* our own one-line messages, through cli_usage_error */
	while ((c = getopt_long(argc, argv, ":p:o:f:d:s:qvh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((r = cli_opt_pid(CMD, optarg, &o->pid)))
				return r;
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
		case OPT_LIVE:
			o->live = true;
			break;
		case OPT_COUNT:
			o->count = true;
			break;
		case 's':
			if (cli_parse_bytes(optarg, &o->sample_bytes))
				return cli_usage_error(CMD,
						       "--sample-bytes: '%s' is not a byte count "
						       "(e.g. 512k, 4M, 0 for every call)",
						       optarg);
			sample_given = true;
			break;
		case OPT_EXACT:
			exact = true;
			break;
		case OPT_MAX_OVERHEAD:
			if ((r = cli_opt_max_overhead(CMD, optarg, &o->max_overhead)))
				return r;
			o->max_overhead_given = true;
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
		case OPT_PROBE:
			if (!valid_symbol(optarg))
				return cli_usage_error(CMD, "--probe: '%s' is not a symbol name",
						       optarg);
			ms_xgrow((void **)&o->probes, &o->probes_cap, o->nprobes + 1,
				 sizeof(*o->probes));
			o->probes[o->nprobes++] = optarg;
			break;
		case OPT_SUBPROCESSES:
			return cli_usage_error(
			    CMD, "--subprocesses: following forked children is not "
				 "supported yet (without it, a forked child is "
				 "restored and let go; record it with its own --pid)");
		case OPT_MODE:
			/* "walk" never gets here: cmd_record() hands it to cmd_record_walk(). */
			if (strcmp(optarg, "probe"))
				return cli_usage_error(
				    CMD, "--mode: unknown mode '%s' (use probe or walk)", optarg);
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			if (ms_log_verbosity < MS_LOG_DEBUG)
				ms_log_verbosity++;
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
		return cli_usage_error(CMD, "--pid is required (e.g. memspy record --pid "
					    "$(pidof myservice) -o alloc.svg)");
	if (exact && sample_given && o->sample_bytes)
		return cli_usage_error(CMD, "--exact and --sample-bytes %s contradict each other",
				       "N > 0");
	if (exact)
		o->sample_bytes = 0;
	/*
	 * An explicit --sample-bytes asks for that precision: the budget only
	 * widens it when --max-overhead is given too.
	 */
	o->sample_bytes_given = sample_given;
	if (sample_given && !o->max_overhead_given)
		o->max_overhead = 0;
	if (!o->sample_bytes) {
		/* Exact must stay exact: no budget may widen it. */
		if (o->max_overhead_given && o->max_overhead > 0 && !o->quiet)
			fprintf(stderr, "memspy record: note: --max-overhead is ignored with "
					"--exact (every call is recorded; the cost is reported at "
					"the end)\n");
		o->max_overhead = 0;
	}
	if (!o->out_path) {
		o->out_default = ms_xasprintf("memspy-%d.%s", (int)o->pid,
					      o->fmt_given ? (o->fmt == MS_OUT_PPROF ? "pb.gz"
							      : o->fmt == MS_OUT_SPEEDSCOPE
								  ? "speedscope.json"
								  : ms_out_format_name(o->fmt))
							   : "svg");
		o->out_path = o->out_default;
		if (!o->fmt_given)
			o->fmt = MS_OUT_SVG;
	} else if (!o->fmt_given && ms_out_format_from_name(o->out_path, &o->fmt)) {
		return cli_usage_error(CMD,
				       "cannot tell the format from the name '%s': use "
				       "--format svg|folded|speedscope|pprof",
				       o->out_path);
	}
	return 0;
}

/* ------------------------------ recording ------------------------------ */

static void on_alloc_event(const struct ms_alloc_event *ev, void *ctx)
{
	struct recorder *r = ctx;
	struct ms_stack_copy sc;
	size_t n = 0, skip;

	if (ev->type == MS_AE_FREE) {
		r->free_events++;
		ms_rec_table_free_ptr(r->table, ev->ptr);
		return;
	}
	r->alloc_events++;
	/* The stack copy is borrowed for this call only: unwind now, symbolise at the end. */
	sc = (struct ms_stack_copy){.regs = &ev->regs,
				    .data = ev->stack,
				    .len = ev->stack_len,
				    .addr = ev->regs.rsp,
				    .at_entry = true};
	if (!ev->stack || ms_unwind(r->unwinder, &sc, r->pcs, MAX_PCS, &n) || n == 0) {
		r->unwind_failures++;
		n = 0;
	} else if (n == 1) {
		r->short_stacks++;
	}
	/*
	 * pcs[0] is the allocator's own entry: the leaf shown is its caller. A
	 * call another probed function handed on (glibc's posix_memalign calls
	 * its malloc for small alignments) has that function's frames next:
	 * the allocator's too, so the leaf is the same as for a call it made
	 * itself, sampled or exact. Return addresses: pc - 1 is in the call.
	 */
	skip = n > 1 ? 1 : n;
	while (r->probes && skip + 1 < n && ms_probes_in_allocator(r->probes, r->pcs[skip] - 1))
		skip++;
	ms_rec_table_add(r->table, r->pcs + skip, n - skip, ev->fn, ev->weight, ev->size, ev->ptr,
			 ev->tid);
}

/* ------------------------------ overhead ------------------------------ */

/* What the loop measures, for --max-overhead and for the summary. */
struct meter {
	pid_t pid;
	long clk_tck;
	struct ms_rec_budget budget;
	struct ms_rec_cost end;	    /* the last reading, when the loop ended */
	uint64_t cpu0, last_cpu;    /* memspy's CPU at the start, at the last iteration */
	uint64_t last_target_cpu;   /* the last target CPU read (kept when it exits) */
	uint64_t polls, idle_polls, idle_cpu_ns;
	uint64_t last_events;	    /* alloc + free events at the last iteration */
	bool busy;		    /* this iteration did more than wait and drain nothing */
	bool counting;
	uint64_t pace_ns, pace_samples, pace_frees, pace_ring_full;
	int wait_ms;
	uint64_t next_read_ns;
	bool set_failed; /* the engine refused a new mean: the budget stands down */
};

static uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* utime + stime of the whole process (all threads), from /proc/PID/stat; 0 if unreadable. */
static uint64_t target_cpu_ns(pid_t pid, long clk_tck)
{
	char path[64], buf[1024], *q;
	unsigned long long ut, st;
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
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: the fields start after the last ')'. */
	q = strrchr(buf, ')');
	if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return 0;
	return (ut + st) * (1000000000ull / (uint64_t)clk_tck);
}

static void meter_reading(struct meter *m, struct ms_probes *pr, struct ms_rec_cost *c)
{
	struct ms_probe_stats st;
	uint64_t tcpu = target_cpu_ns(m->pid, m->clk_tck);

	if (tcpu > m->last_target_cpu)
		m->last_target_cpu = tcpu;
	ms_probes_stats(pr, &st);
	*c = (struct ms_rec_cost){
	    .wall_ns = ms_now_ns(),
	    .self_cpu_ns = self_cpu_ns() - m->cpu0,
	    .stopped_ns = st.stopped_ns,
	    .stub_ns = st.target_ns,
	    .target_cpu_ns = m->last_target_cpu,
	    .samples = st.samples,
	    .polls = m->polls,
	    .idle_polls = m->idle_polls,
	    .idle_cpu_ns = m->idle_cpu_ns,
	};
}

static void meter_start(struct meter *m, pid_t pid, struct ms_probes *pr,
			const struct rec_opts *o)
{
	struct ms_rec_cost c;

	*m = (struct meter){.pid = pid, .wait_ms = POLL_MIN_MS};
	m->clk_tck = sysconf(_SC_CLK_TCK);
	if (m->clk_tck <= 0)
		m->clk_tck = 100;
	m->cpu0 = m->last_cpu = self_cpu_ns();
	ms_rec_budget_init(&m->budget, o->sample_bytes ? o->max_overhead : 0, o->sample_bytes,
			   MS_REC_BUDGET_MAX_MEAN);
	m->budget.floor_poll_hz = 1000.0 / POLL_MAX_MS;
	meter_reading(m, pr, &c);
	ms_rec_budget_update(&m->budget, &c);
	m->pace_ns = c.wall_ns;
	m->next_read_ns = c.wall_ns + BUDGET_READ_NS;
}

/*
 * At the top of each iteration: memspy's CPU in the last one. The idle
 * ones (a wait that timed out, an empty drain) are its fixed cost, which
 * the budget must not try to remove by widening the mean.
 */
static void meter_iteration(struct meter *m, const struct recorder *rec)
{
	uint64_t cpu = self_cpu_ns(), events = rec->alloc_events + rec->free_events;

	if (m->counting) {
		m->polls++;
		if (!m->busy && events == m->last_events && cpu >= m->last_cpu) {
			m->idle_polls++;
			m->idle_cpu_ns += cpu - m->last_cpu;
		}
	}
	m->counting = true;
	m->busy = false;
	m->last_cpu = cpu;
	m->last_events = events;
}

/* After a drain: the next wait, from the rate samples come at. */
static void meter_pace(struct meter *m, struct ms_probes *pr, const struct recorder *rec,
		       uint64_t now)
{
	struct ms_probe_stats st;
	double n, want;

	ms_probes_stats(pr, &st);
	n = (double)(rec->alloc_events - m->pace_samples) +
	    (double)(rec->free_events - m->pace_frees) / 16; /* the free ring holds 4096 */
	if (st.ring_full != m->pace_ring_full)
		want = POLL_MIN_MS; /* the ring overflowed (samples lost): drain often again */
	else if (n > 0)
		want = POLL_BATCH * ((double)(now - m->pace_ns) / 1e6) / n;
	else
		want = 2.0 * m->wait_ms;
	if (want > 2.0 * m->wait_ms)
		want = 2.0 * m->wait_ms; /* slow down gradually, speed up at once */
	m->wait_ms = want < POLL_MIN_MS ? POLL_MIN_MS : want > POLL_MAX_MS ? POLL_MAX_MS : (int)want;
	m->pace_ns = now;
	m->pace_samples = rec->alloc_events;
	m->pace_frees = rec->free_events;
	m->pace_ring_full = st.ring_full;
}

/* A budget reading; applies a new mean when the controller asks for one. */
static void meter_read(struct meter *m, struct ms_probes *pr, struct recorder *rec, uint64_t now)
{
	struct ms_rec_cost c;
	uint64_t mean;
	char a[32];
	int rc;

	m->next_read_ns = now + BUDGET_READ_NS;
	m->busy = true;
	meter_reading(m, pr, &c);
	mean = ms_rec_budget_update(&m->budget, &c);
	if (!mean || m->set_failed)
		return;
	rc = ms_probes_set_sample_bytes(pr, mean, on_alloc_event, rec);
	if (rc) {
		m->set_failed = true;
		m->budget.mean = ms_probes_sample_bytes(pr);
		m->budget.budget = 0;
		ms_warn("record: setting the sampling mean to %s failed (%s): it stays at %s and "
			"--max-overhead is off for the rest of the recording",
			ms_fmt_bytes(a, sizeof(a), mean), ms_strerror(rc),
			ms_fmt_bytes(a, sizeof(a), m->budget.mean));
	}
}

/* ------------------------------ progress ------------------------------ */

struct progress {
	bool tty;
	uint64_t start_ns, last_ns;
	bool shown;
};

/* Returns true when it printed. */
static bool progress_update(struct progress *pg, struct ms_probes *pr, const struct meter *m,
			    uint64_t now)
{
	struct ms_probe_stats st;
	char a[32], b[32], c[32], d[32];

	if (!pg->tty || now - pg->last_ns < PROGRESS_NS)
		return false;
	pg->last_ns = now;
	ms_probes_stats(pr, &st);
	fprintf(stderr, "\rmemspy: %.1f s, %s samples", (uint64_t)(now - pg->start_ns) / 1e9,
		ms_fmt_count(a, sizeof(a), st.samples));
	if (m->budget.mean)
		fprintf(stderr, " (mean %s)", ms_fmt_bytes(d, sizeof(d), m->budget.mean));
	fprintf(stderr, ", %s stops, target stopped %s\033[K", ms_fmt_count(b, sizeof(b), st.stops),
		ms_fmt_duration(c, sizeof(c), (uint64_t)st.stopped_ns));
	pg->shown = true;
	return true;
}

static void progress_clear(struct progress *pg)
{
	if (pg->shown)
		fprintf(stderr, "\r\033[K");
	pg->shown = false;
}

/* ------------------------------ the profile ------------------------------ */

/*
 * Builds the profile from the table: each distinct PC symbolised once (the
 * symboliser caches), frames root first, the values of the chosen view.
 *
 * Sampled counts are estimates with fractions. Each stack gets the rounded
 * running total minus what the stacks before it got, so the stacks add up
 * to exactly the rounded total that the summary and the subtitle print
 * (ms_rec_table_totals sums the same values in the same order): rounding
 * each stack alone made a flame graph's root or a pprof total differ from
 * the subtitle by a few allocations. No stack moves by a whole allocation.
 */
static void build_profile(struct ms_profile *prof, const struct ms_rec_table *t,
			  struct ms_symbolizer *sym, const struct rec_opts *o)
{
	struct ms_out_frame *frames = NULL;
	size_t cap = 0;
	double running = 0, running_alloc = 0;
	uint64_t given = 0, given_alloc = 0;

	for (size_t i = 0; i < ms_rec_table_nstacks(t); i++) {
		struct ms_rec_stack s;
		size_t n = 0;
		uint64_t bytes, count, alloc_count;

		ms_rec_table_stack(t, i, &s);
		bytes = o->live ? s.live_bytes : s.bytes;
		running += o->live ? s.live_count : s.count;
		count = (uint64_t)llround(running) - given;
		given += count;
		/* live: what the stack allocated in all too (pprof's alloc_*), rounded alike */
		running_alloc += s.count;
		alloc_count = (uint64_t)llround(running_alloc) - given_alloc;
		given_alloc += alloc_count;
		if (o->live && !bytes && !count && !s.bytes && !alloc_count)
			continue;
		/* pcs are innermost first; frames must be outermost first. */
		for (size_t k = s.npcs; k-- > 0;) {
			const struct ms_sym_frame *sf = NULL;
			size_t nsf = 0;

			if (sym && ms_symbolize(sym, s.pcs[k], true, &sf, &nsf) == 0 && nsf) {
				/* sf is innermost first: the containing function comes last. */
				for (size_t j = nsf; j-- > 0;) {
					ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
					frames[n++] = (struct ms_out_frame){
					    .function = strcmp(sf[j].function, "??")
							    ? sf[j].function
							    : NULL,
					    .file = o->lines ? sf[j].file : NULL,
					    .line = o->lines ? sf[j].line : 0,
					    .module =
						strcmp(sf[j].module, "??") ? sf[j].module : NULL,
					    .offset = sf[j].module_offset,
					    .inlined = sf[j].inlined,
					    .address = sf[j].address,
					};
				}
			} else {
				ms_xgrow((void **)&frames, &cap, n + 1, sizeof(*frames));
				frames[n++] = (struct ms_out_frame){
				    .offset = s.pcs[k], .address = s.pcs[k] ? s.pcs[k] - 1 : 0};
			}
		}
		if (bytes || count || !o->live)
			ms_profile_add(prof, frames, n, bytes, count);
		if (o->live)
			ms_profile_add_alloc(prof, frames, n, s.bytes, alloc_count);
	}
	free(frames);
}

/*
 * The modules the frames came from, as pprof mappings (address range, file
 * offset, build id): what lets go tool pprof, Pyroscope and Parca symbolise
 * the addresses memspy left unnamed. The executable is marked: pprof names
 * the profile after it.
 */
static void add_mappings(struct ms_profile *prof, struct ms_symbolizer *sym,
			 const struct ms_modules *mods)
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
		};

		for (size_t k = 0; k < mods->n; k++)
			if (mods->v[k].is_exec && !strcmp(mods->v[k].path, sm[i].path))
				m.is_main = true;
		ms_profile_add_mapping(prof, &m);
	}
}

/* ------------------------------ the command ------------------------------ */

struct outcome {
	bool target_exited;
	int exit_status;
	int wait_error;
	int stop_signal;
	bool duration_elapsed;
	uint64_t wall_ns;
};

/*
 * Calls that are not sampled still pass through the probes' fast path (a
 * countdown subtraction and two jumps). Not measured per run (timing each
 * call would cost more than the call): about 1 ns per call, from the gap
 * between the measured cost and bench/overhead.sh's tight malloc loop
 * (1.10x slower where the measured parts came to ~2.4%).
 */
#define FAST_PATH_NS 1.0

/*
 * The measured cost, answer first: its share of the target's CPU time
 * against the budget, its parts, then what the budget did to the mean.
 * unsampled: the estimated calls that took the probes' fast path (the
 * sampled ones are measured, in the stubs' time).
 */
static void print_cost(const struct rec_opts *o, const struct ms_probe_stats *st,
		       const struct meter *m, const struct outcome *oc, uint64_t unsampled)
{
	const struct ms_rec_budget *b = &m->budget;
	const struct ms_rec_cost *f = &b->first, *e = &m->end;
	uint64_t self = e->self_cpu_ns - f->self_cpu_ns;
	uint64_t stopped = e->stopped_ns - f->stopped_ns, stub = e->stub_ns - f->stub_ns;
	uint64_t tcpu = e->target_cpu_ns > f->target_cpu_ns ? e->target_cpu_ns - f->target_cpu_ns : 0;
	uint64_t cost = self + stopped + stub;
	double fixed = ms_rec_budget_floor(b, f, e);
	char s1[32], s2[32], s3[32], s4[32], s5[32], s6[32], s7[32];

	double fast = o->sample_bytes && tcpu ? (double)unsampled * FAST_PATH_NS : 0;

	if (tcpu)
		fprintf(stderr, "  cost to the target: %.2f%% of its CPU time measured",
			100.0 * cost / tcpu);
	else
		fprintf(stderr, "  cost to the target: not measurable (it used no CPU time)");
	if (b->budget > 0)
		fprintf(stderr, " (budget %.2g%%)", 100 * b->budget);
	else if (o->sample_bytes && !o->max_overhead_given)
		fprintf(stderr, " (no budget: --sample-bytes given without --max-overhead)");
	else if (o->sample_bytes)
		fprintf(stderr, " (no budget: --max-overhead off)");
	if (fast >= 1)
		fprintf(stderr, " + ~%.1f%% estimated in the probes' fast path",
			100.0 * fast / (double)tcpu);
	if (tcpu)
		fprintf(stderr, ", so about %.1f%% slower if it is CPU-bound",
			100.0 * ((double)cost + fast) / (double)tcpu);
	fprintf(stderr, "\n");
	fprintf(stderr, "    memspy's own CPU %s", ms_fmt_duration(s1, sizeof(s1), self));
	if (e->idle_polls) /* else never measured: samples came at every poll */
		fprintf(stderr, " (%s of it fixed: polling an empty ring)",
			ms_fmt_duration(s2, sizeof(s2), (uint64_t)fixed));
	fprintf(stderr,
		", %s in the probes in the target, %s stops holding threads %s in all; the target "
		"used %s of CPU over %s\n",
		ms_fmt_duration(s3, sizeof(s3), stub), ms_fmt_count(s4, sizeof(s4), st->stops),
		ms_fmt_duration(s5, sizeof(s5), stopped), ms_fmt_duration(s6, sizeof(s6), tcpu),
		ms_fmt_duration(s7, sizeof(s7), oc->wall_ns));
	if (fast >= 1)
		fprintf(stderr,
			"    the fast path: ~%s unsampled calls%s at ~%.0f ns, %s; estimated, and "
			"outside the budget (a wider mean cannot remove it)\n",
			ms_fmt_count(s2, sizeof(s2), unsampled),
			o->live ? " (frees taken as many as the allocations)" : "", FAST_PATH_NS,
			ms_fmt_duration(s1, sizeof(s1), (uint64_t)fast));
	if (o->sample_bytes) {
		double sps = oc->wall_ns ? (double)st->samples * 1e9 / (double)oc->wall_ns : 0;

		if (b->mean != b->min_mean)
			fprintf(stderr, "  sampling mean %s from %s to %s",
				b->mean > b->min_mean ? "widened" : "narrowed",
				ms_fmt_bytes(s1, sizeof(s1), b->min_mean),
				ms_fmt_bytes(s2, sizeof(s2), b->mean));
		else
			fprintf(stderr, "  sampling mean kept at %s",
				ms_fmt_bytes(s1, sizeof(s1), b->mean));
		if (b->widened + b->narrowed > 1)
			fprintf(stderr, " (%u changes, widest %s)", b->widened + b->narrowed,
				ms_fmt_bytes(s3, sizeof(s3), b->peak_mean));
		if (b->budget > 0)
			fprintf(stderr, " to stay within the %.2g%% budget", 100 * b->budget);
		fprintf(stderr, "; %.0f samples/s\n", sps);
		if (b->capped)
			fprintf(stderr,
				"  the mean reached its %s cap and the cost stayed over the budget\n",
				ms_fmt_bytes(s1, sizeof(s1), b->max_mean));
		if (b->floor_over)
			fprintf(stderr,
				"  memspy's fixed cost alone (polling an empty ring, %s) took most of "
				"the budget on this target: a wider mean cannot remove it\n",
				ms_fmt_duration(s1, sizeof(s1), (uint64_t)fixed));
	}
	fprintf(stderr, "  memspy's CPU is counted in full: that overstates the cost when the "
			"machine has idle cores for memspy to run on\n");
}

/*
 * What the in-target rings could not hand over. Ring mode drops rather than
 * stop a thread (a trap could kill a process whose thread blocks SIGTRAP):
 * say how many, and what that does to the figures.
 */
static void print_ring_losses(const struct rec_opts *o, const struct ms_probe_stats *st)
{
	uint64_t full = st->lost_samples - st->lost_nothread;
	char a[32], b[32];

	if (full)
		fprintf(stderr,
			"  %s of %s samples found the in-target ring full (memspy drained it too "
			"slowly) and were dropped rather than stop the target; the samples drained "
			"with them were weighted up to stand for them\n",
			ms_fmt_count(a, sizeof(a), full),
			ms_fmt_count(b, sizeof(b), st->ring_samples + full));
	if (st->lost_nothread)
		fprintf(stderr,
			"  %s samples of threads memspy could not enter in its thread table (256 "
			"entries) are missing: totals are low\n",
			ms_fmt_count(a, sizeof(a), st->lost_nothread));
	if (st->lost_frees && o->live)
		fprintf(stderr,
			"  %s frees of sampled blocks found the in-target ring full and were not "
			"seen: live figures may be high by as many blocks\n",
			ms_fmt_count(a, sizeof(a), st->lost_frees));
}

static void print_summary(const struct rec_opts *o, const struct ms_rec_table *t,
			  struct ms_probes *pr, const struct recorder *rec,
			  const struct outcome *oc, const struct meter *m, const char *verify_note,
			  int verified_ok)
{
	struct ms_probe_stats st = {0};
	struct ms_rec_totals tot;
	const char **names = NULL;
	size_t nnames = 0;
	uint64_t allocs;
	char a[32], b[32], c[32], d[32];

	ms_rec_table_totals(t, &tot);
	if (pr) {
		ms_probes_stats(pr, &st);
		nnames = ms_probes_sites(pr, &names);
	}
	fprintf(stderr, "memspy: wrote %s (%s", o->out_path, ms_out_format_name(o->fmt));
	fprintf(stderr, ", %s): ",
		o->live ? (o->count ? "live allocations" : "live bytes")
			: (o->count ? "allocation counts" : "bytes allocated"));
	if (o->live)
		fprintf(stderr, "%s still live in %s allocations, of ",
			ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.live_bytes),
			ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.live_count)));
	fprintf(stderr, "%s allocated in %s allocations",
		ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.bytes),
		ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.count)));
	fprintf(stderr, " over %s, from %s samples%s\n",
		ms_fmt_duration(c, sizeof(c), (uint64_t)oc->wall_ns), ms_fmt_count(d, sizeof(d), tot.samples),
		o->sample_bytes ? " (estimated)" : " (exact: every call)");
	if (tot.failed)
		fprintf(stderr, "  %s sampled calls failed (returned NULL) and are not counted\n",
			ms_fmt_count(a, sizeof(a), tot.failed));
	/*
	 * The allocations that were not sampled, and (--live probes free too)
	 * about as many frees, none of which is a sample.
	 */
	allocs = (uint64_t)llround(tot.count);
	print_cost(o, &st, m, oc,
		   (allocs > tot.samples ? allocs - tot.samples : 0) + (o->live ? allocs : 0));
	if (oc->wall_ns && st.stops * 1e9 / (double)oc->wall_ns > 200)
		fprintf(stderr,
			"  note: %.0f stops/s; each also costs a wake-up not counted above, so a "
			"busy target was likely much slower than that%s\n",
			st.stops * 1e9 / (double)oc->wall_ns,
			o->sample_bytes ? "" : ": sample (the default) instead of --exact");
	if (st.attach_pause_ns || st.remove_pause_ns)
		fprintf(
		    stderr,
		    "  pauses of the whole target: %s to install the probes, %s to remove them\n",
		    ms_fmt_duration(a, sizeof(a), (uint64_t)st.attach_pause_ns),
		    ms_fmt_duration(b, sizeof(b), (uint64_t)st.remove_pause_ns));
	if (st.dropped)
		fprintf(stderr,
			"  %s sampled blocks could not be followed to their free (memspy's "
			"in-target table of sampled pointers was full): the live view counts them "
			"as still live\n",
			ms_fmt_count(a, sizeof(a), st.dropped));
	print_ring_losses(o, &st);
	if (rec->unwind_failures)
		fprintf(stderr, "  %s samples could not be unwound (shown as [unknown])\n",
			ms_fmt_count(a, sizeof(a), rec->unwind_failures));
	if (nnames) {
		fprintf(stderr, "  probed %zu entry points:", nnames);
		for (size_t i = 0; i < nnames; i++)
			fprintf(stderr, "%s %s", i ? "," : "", names[i]);
		fprintf(stderr, "\n");
	}
	if (verify_note)
		fprintf(stderr, "  %s%s\n", verified_ok ? "" : "WARNING: ", verify_note);
}

int cmd_record(int argc, char **argv)
{
	struct rec_opts o;
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_proc *p = NULL;
	struct ms_modules mods = {0};
	struct ms_probes *pr = NULL;
	struct ms_symbolizer *sym = NULL;
	struct ms_profile *prof = NULL;
	struct recorder rec = {0};
	struct outcome oc = {0};
	struct progress pg = {0};
	struct meter m = {0};
	struct ms_attach_opts aopts = {.trace_fork = true};
	struct ms_probe_opts popts;
	char *verify_note = NULL;
	int verified_ok = 1;
	bool done, afile_open = false, removed_ok = true;
	uint64_t start_ns, deadline = 0, now, last_refresh;
	int rc, ret = MS_EXIT_FAILED;

	/* --mode walk patches nothing and is a different recorder altogether. */
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if ((!strcmp(argv[i], "--mode") && i + 1 < argc && !strcmp(argv[i + 1], "walk")) ||
		    !strcmp(argv[i], "--mode=walk"))
			return cmd_record_walk(argc, argv);
	}
	rc = parse_opts(argc, argv, &o, &done);
	if (rc || done) {
		opts_free(&o);
		return rc;
	}
	/* An unwritable output is found before anything is attached. */
	if (ms_afile_open(&af, o.out_path, &err)) {
		cli_report(&err);
		goto out;
	}
	afile_open = true;
	ms_signals_init();
	if (cli_attach(CMD, o.pid, &aopts, &p))
		goto out;
	rc = ms_modules_load(o.pid, ms_proc_maps(p), &mods);
	if (rc) {
		ms_error_set(&err, rc, "record: reading the modules of pid %d: %s", (int)o.pid,
			     ms_strerror(rc));
		cli_report(&err);
		goto out;
	}
	rec.table = ms_rec_table_new();
	rec.unwinder = ms_unwinder_new(o.pid, o.unwinder, &err);
	if (!rec.unwinder) {
		cli_report(&err);
		goto out;
	}
	/* Opens every module file now: symbolising still works after the target exits. */
	sym = ms_symbolizer_new(o.pid, &err);
	if (!sym) {
		cli_report(&err);
		goto out;
	}
	popts = (struct ms_probe_opts){
	    .sample_bytes = o.sample_bytes,
	    .stack_bytes = o.stack_bytes,
	    /*
	     * Only --live needs frees. Probing free anyway cost every free()
	     * a hash-table look-up: 1.38x on the tight malloc/free bench.
	     */
	    .track_frees = o.live,
	    .custom_symbols = o.probes,
	    .n_custom = o.nprobes,
	};
	rc = ms_probes_install(p, &mods, &popts, &pr, &err);
	rec.probes = pr;
	if (rc) {
		pr = NULL;
		rec.probes = NULL;
		if (!err.msg[0])
			ms_error_set(&err, rc, "record: probing the allocator of pid %d: %s",
				     (int)o.pid, ms_strerror(rc));
		cli_report(&err);
		goto out;
	}

	start_ns = last_refresh = ms_now_ns();
	if (o.duration_ns)
		deadline = start_ns + o.duration_ns;
	pg = (struct progress){
	    .tty = !o.quiet && isatty(STDERR_FILENO), .start_ns = start_ns, .last_ns = start_ns};
	if (!o.quiet) {
		const char **names;
		char comm[64], d[32];

		fprintf(stderr,
			"memspy: recording pid %d (%s, %zu threads, %zu entry points "
			"probed) %s%s\n",
			(int)o.pid, ms_proc_comm(o.pid, comm, sizeof(comm)), ms_proc_nthreads(p),
			ms_probes_sites(pr, &names),
			o.duration_ns ? "for " : "until Ctrl-C or its exit",
			o.duration_ns ? ms_fmt_duration(d, sizeof(d), (uint64_t)o.duration_ns) : "");
	}
	meter_start(&m, o.pid, pr, &o);
	for (;;) {
		struct ms_event ev;
		int timeout = m.wait_ms;

		now = ms_now_ns();
		if (deadline) {
			if (now >= deadline) {
				oc.duration_elapsed = true;
				break;
			}
			if (deadline - now < (uint64_t)timeout * 1000000)
				timeout = (int)((deadline - now) / 1000000) + 1;
		}
		if ((oc.stop_signal = ms_signals_stop_requested()))
			break;
		meter_iteration(&m, &rec);
		rc = ms_proc_wait(p, timeout, &ev);
		if (rc) {
			oc.wait_error = rc;
			break;
		}
		switch (ev.kind) {
		case MS_EV_TRAP:
			if (ms_probes_handle_event(pr, &ev, on_alloc_event, &rec) == 0) {
				/* Not a probe's trap: the target's own; deliver it as if untraced. */
				ms_debug("record: SIGTRAP at 0x%llx in thread %d is not a probe's",
					 (unsigned long long)ev.regs.rip, (int)ev.tid);
				ms_proc_pass_trap(p, ev.tid);
			}
			break;
		case MS_EV_FORK:
			/* The child inherited the patched text: the engine restores it. */
			if (ms_probes_handle_event(pr, &ev, on_alloc_event, &rec) == 0) {
				ms_warn(
				    "record: forked child %d was not restored by the probe engine",
				    (int)ev.child);
				ms_proc_fork_child_detach(ev.child);
			}
			break;
		case MS_EV_STOP_REQUEST:
			oc.stop_signal = ms_signals_stop_requested();
			break;
		case MS_EV_EXITED:
			oc.target_exited = true;
			oc.exit_status = ev.status;
			break;
		default:
			break;
		}
		if (oc.target_exited || ev.kind == MS_EV_STOP_REQUEST)
			break;
		rc = ms_probes_poll(pr, on_alloc_event, &rec);
		if (rc && rc != -EAGAIN) {
			oc.wait_error = rc;
			break;
		}
		now = ms_now_ns();
		m.busy = ev.kind != MS_EV_TIMEOUT;
		meter_pace(&m, pr, &rec, now);
		if (now >= m.next_read_ns)
			meter_read(&m, pr, &rec, now);
		if (progress_update(&pg, pr, &m, now))
			m.busy = true;
		/* Libraries dlopen'ed meanwhile: their CFI is needed to unwind through them. */
		if (now - last_refresh > REFRESH_NS) {
			ms_unwinder_refresh(rec.unwinder);
			last_refresh = now;
			m.busy = true;
		}
	}
	oc.wall_ns = ms_now_ns() - start_ns;
	meter_reading(&m, pr, &m.end);
	progress_clear(&pg);
	if (!oc.target_exited && ms_proc_exited(p, &oc.exit_status))
		oc.target_exited = true;
	if (!oc.target_exited)
		ms_symbolizer_refresh(sym); /* modules mapped during the recording */

	/* The target first: every byte back, verified, before anything else. */
	rc = ms_probes_remove(pr, on_alloc_event, &rec, &err);
	if (rc) {
		removed_ok = false;
		cli_report(&err);
	}
	ms_proc_detach(p);
	if (!oc.target_exited && removed_ok) {
		verified_ok = ms_rec_verify_text(o.pid, &mods, pr, &verify_note) == 0;
		if (!verified_ok)
			removed_ok = false;
	}

	cli_report_early_end(o.pid, oc.wait_error, oc.target_exited, oc.exit_status);

	prof = ms_profile_new();
	build_profile(prof, rec.table, sym, &o);
	add_mappings(prof, sym, &mods);
	{
		struct ms_rec_totals tot;
		char a[32], b[32], c[32];
		char *subtitle;
		struct ms_out_opts wo;

		ms_rec_table_totals(rec.table, &tot);
		if (o.live)
			subtitle = ms_xasprintf(
			    "%s still live in %s allocations (of %s allocated) "
			    "after %.1f s%s",
			    ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.live_bytes),
			    ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.live_count)),
			    ms_fmt_bytes(c, sizeof(c), (uint64_t)tot.bytes), (uint64_t)oc.wall_ns / 1e9,
			    o.sample_bytes ? ", sampled" : ", exact");
		else
			subtitle = ms_xasprintf(
			    "%s allocated in %s allocations over %.1f s%s",
			    ms_fmt_bytes(a, sizeof(a), (uint64_t)tot.bytes),
			    ms_fmt_count(b, sizeof(b), (uint64_t)llround(tot.count)),
			    (double)oc.wall_ns / 1e9, o.sample_bytes ? ", sampled" : ", exact");
		wo = (struct ms_out_opts){
		    .title = cli_command_line(),
		    .subtitle = subtitle,
		    .value = o.count ? MS_VALUE_COUNT : MS_VALUE_BYTES,
		    .lines = o.lines,
		    .live = o.live,
		    .sample_period = o.sample_bytes,
		    .duration_ns = oc.wall_ns,
		};
		for (size_t i = 0; i < mods.n; i++) {
			const char *slash = strrchr(mods.v[i].path, '/');

			if (mods.v[i].is_exec)
				wo.main_module = slash ? slash + 1 : mods.v[i].path;
		}
		rc = ms_profile_write(prof, o.fmt, &wo, af.fp, &err);
		free(subtitle);
	}
	if (rc || ms_afile_commit(&af, &err)) {
		cli_report(&err);
		goto out;
	}
	afile_open = false;
	if (!o.quiet)
		print_summary(&o, rec.table, pr, &rec, &oc, &m, verify_note, verified_ok);
	if (!removed_ok)
		ret = MS_EXIT_FAILED;
	else if (oc.target_exited || oc.wait_error)
		ret = MS_EXIT_PARTIAL;
	else {
		struct ms_probe_stats st;

		ms_probes_stats(pr, &st);
		ret = st.dropped ? MS_EXIT_PARTIAL : MS_EXIT_OK;
	}
out:
	if (afile_open)
		ms_afile_abort(&af);
	ms_probes_free(pr);
	ms_proc_free(p);
	ms_profile_free(prof);
	ms_symbolizer_free(sym);
	ms_unwinder_free(rec.unwinder);
	ms_rec_table_free(rec.table);
	ms_modules_free(&mods);
	free(verify_note);
	opts_free(&o);
	return ret;
}
