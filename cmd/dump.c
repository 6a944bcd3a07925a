// SPDX-License-Identifier: MIT
/*
 * memspy dump: stop the target as briefly as possible, walk glibc malloc's
 * state from outside, resume, and report (text, or JSON per doc/dump-json.md).
 */
#include "cmd/cmd.h"
#include "cmd/subprocesses.h"
#include "attach/attach.h"
#include "attach/debuginfo.h"
#include "heapwalk/heapwalk.h"
#include "output/heap.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A thread inside malloc holds its arena's lock: let it finish, at most this often. */
#define LOCK_RETRIES 20
#define LOCK_RETRY_MS 5

/* ms_heap_locate on a thread of its own (see cmd_dump). */
struct locate_job {
	pid_t pid;
	const struct ms_heap_locate_opts *opts;
	struct ms_heap_loc *loc;
	struct ms_maps maps; /* its own copy: the main thread refreshes the process's */
	struct ms_pid_reader pr;
	struct ms_reader reader;
	struct ms_error err;
	pthread_t th;
	bool started; /* running on th, not joined yet */
	int r;
};

static void *locate_main(void *arg)
{
	struct locate_job *j = arg;

	j->r = ms_heap_locate(j->pid, &j->maps, &j->reader, j->opts, j->loc, &j->err);
	return NULL;
}

static void locate_join(struct locate_job *j)
{
	if (j->started) {
		pthread_join(j->th, NULL);
		j->started = false;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: memspy dump --pid PID [--leaks] [--explain ADDR] [--json] [-o FILE] [--svg FILE]\n"
		"                   [--no-debuginfo] [--no-snapshot]\n"
		"\n"
		"Walks the glibc malloc heap of a running process from outside and reports\n"
		"in-use and free memory per arena, bins, caches, size classes, fragmentation\n"
		"and resident memory. Totals equal the process's own mallinfo2().\n"
		"\n"
		"The process is stopped only while a copy-on-write snapshot of it is made (one\n"
		"injected clone(), whose child never runs and is killed afterwards); the heap is\n"
		"then read from the snapshot while the process runs. Pages the process writes\n"
		"meanwhile are copied once by the kernel, so no snapshot is made when less\n"
		"than a quarter of its anonymous memory is free below its cgroup's memory\n"
		"limit or in the machine; then, and wherever no snapshot can be made, the heap\n"
		"is read with the process stopped (the report says why). Threads caught\n"
		"inside malloc are first let run alone until they return from it, so that no\n"
		"arena is read half updated (the report says how many, and for how long).\n"
		"\n"
		"What libc's debug info says about its structures is cached per libc build-id\n"
		"in $XDG_CACHE_HOME/memspy (else ~/.cache/memspy); MEMSPY_NO_CACHE=1 disables it.\n"
		"\n"
		"Options:\n"
		"  -p, --pid PID       process to inspect (required)\n"
		"  -l, --leaks         also scan for leaks: which allocations no root (module data,\n"
		"                      stacks, registers, TLS, other anonymous memory) reaches any\n"
		"                      more, and what the heap is made of by C++ class (from vtable\n"
		"                      pointers) or chunk size; runs on the snapshot, so the pause\n"
		"                      does not grow\n"
		"      --explain ADDR  with the leak scan: why the allocation holding ADDR is\n"
		"                      reachable (the chain of references from a root: a thread's\n"
		"                      register or stack slot, a module's data symbol, ...), or that\n"
		"                      it is leaked and which leaked allocations point to it\n"
		"      --svg FILE      with the leak scan (implied): also draw the heap as an\n"
		"                      interactive SVG icicle: arenas, then C++ classes or chunk\n"
		"                      sizes and free memory, then the leaked part of each (red);\n"
		"                      hover for exact bytes and counts, click to zoom, Ctrl-F\n"
		"                      to search (?s=^leaked$ in the URL shows the share leaked)\n"
		"  -j, --json          JSON instead of text (schema: doc/dump-json.md)\n"
		"  -o, --output FILE   write there instead of standard output; a FILE ending in\n"
		"                      .svg (without --json) gets the SVG view (as --svg),\n"
		"                      and one ending in .json is JSON (as --json)\n"
		"      --no-debuginfo  ignore libc's debug symbols: use built-in layouts and\n"
		"                      heuristics (what happens when libc6-dbg is missing)\n"
		"      --subprocesses  the process and each of its descendants, one after the\n"
		"                      other, then their sum (text or --json; not with --leaks)\n"
		"      --no-snapshot   keep the process stopped for the whole walk (no clone()\n"
		"                      in it, no copy-on-write memory)\n"
		"  -v, --verbose       more diagnostics on standard error\n"
		"  -h, --help          this text\n"
		"\n"
		"Examples:\n"
		"  memspy dump --pid 4242\n"
		"  memspy dump --pid 4242 --json -o heap.json\n"
		"  memspy dump --pid 4242 --leaks\n"
		"  memspy dump --pid 4242 --leaks -o heap.svg\n"
		"  memspy dump --pid 4242 --explain 0x55d0c3a41e70\n"
		"\n"
		"Exit status:\n"
		"  0   complete report\n"
		"  1   report written but partial: part of the heap could not be read, it is\n"
		"      damaged, or a thread was stopped inside malloc (the report says which;\n"
		"      see errors)\n"
		"  2   failed: cannot attach, or the process does not use glibc malloc (an\n"
		"      allocator-independent memory summary is still written)\n"
		"  64  usage error\n");
}

static int get_fs_bases(struct ms_proc *p, pid_t **tids, ms_raddr_t **fs)
{
	size_t n = ms_proc_nthreads(p);

	*tids = ms_xcalloc(n ? n : 1, sizeof(**tids));
	*fs = ms_xcalloc(n ? n : 1, sizeof(**fs));
	for (size_t i = 0; i < n; i++) {
		struct user_regs_struct regs;

		(*tids)[i] = ms_proc_thread(p, i);
		if (ms_proc_get_regs(p, (*tids)[i], &regs) == 0)
			(*fs)[i] = regs.fs_base;
	}
	return (int)n;
}

/* memspy's own peak resident memory so far (VmHWM), MiB; 0 when unknown. For -v. */
static unsigned long peak_rss_mib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[128];
	unsigned long kib = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lu kB", &kib) == 1)
			break;
	fclose(f);
	return kib >> 10;
}

/* Every thread's registers, for the leak scan's roots (taken in the pause, as fs_base is). */
static struct ms_leak_thread *get_leak_threads(struct ms_proc *p, size_t *n)
{
	struct ms_leak_thread *t;

	*n = ms_proc_nthreads(p);
	t = ms_xcalloc(*n ? *n : 1, sizeof(*t));
	for (size_t i = 0; i < *n; i++) {
		t[i].tid = ms_proc_thread(p, i);
		t[i].have_regs = ms_proc_get_regs(p, t[i].tid, &t[i].regs) == 0;
	}
	return t;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcmp(s + n - k, suffix);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"leaks", no_argument, NULL, 'l'},
		{"explain", required_argument, NULL, 'E'},
		{"output", required_argument, NULL, 'o'},
		{"svg", required_argument, NULL, 'G'},
		{"no-debuginfo", no_argument, NULL, 'N'},
		{"no-snapshot", no_argument, NULL, 'S'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct ms_heap_locate_opts lopts = {0};
	struct ms_heap_loc loc = {0};
	struct ms_heap_report rep = {0};
	struct ms_leak_report lrep = {0};
	struct ms_leak_thread *lthreads = NULL;
	size_t nlthreads = 0;
	bool leaks = false, have_leaks = false;
	ms_raddr_t explain = 0;
	struct ms_heap_rss rss = {0};
	struct ms_proc_mem_summary mem = {0};
	struct ms_heap_meta meta = {0};
	struct ms_afile af = {0};
	struct ms_error err = {0};
	struct ms_proc *proc = NULL;
	struct ms_reader reader;
	const char *out_path = NULL, *svg_path = NULL;
	struct ms_afile svg_af = {0};
	bool svg_main = false; /* -o FILE.svg: the SVG is the report */
	char allocator[600], comm[64];
	pid_t pid = 0, *tids = NULL;
	ms_raddr_t *fs = NULL;
	bool json = false, have_rep = false, have_loc = false, have_mem, use_snapshot = true, glibc;
	struct ms_snapshot *snap = NULL;
	struct ms_error serr = {0};
	const struct ms_maps *wmaps;
	struct ms_reader wreader, wreader2;
	struct ms_pid_reader pr2;
	const struct ms_reader *wreaders[2];
	char snap_note[600] = "";
	struct locate_job lj = {0};
	struct ms_snapshot_guard guard = {.fd = -1, .pid = -1};
	struct ms_quiesce *quiesce = NULL;
	struct ms_quiesce_stats qst = {0};
	struct ms_error qerr = {0};
	unsigned tries;
	uint64_t t_start = ms_now_ns(), t_stop = 0, t_resume = 0;
	uint64_t t_stopped = 0, t_maps = 0, t_lock = 0, t_regs = 0, t_threads = 0, t_walked = 0;
	uint64_t t_snap = 0, t_release = 0, t_res0 = 0;
	FILE *out = stdout;
	int c, r, ret = MS_EXIT_FAILED;

	if (cli_has_subprocesses(argc, argv))
		return cmd_dump_subprocesses(argc, argv);

	optind = 1;
	opterr = 0; /* our own one-line messages, through cli_getopt_error */
	while ((c = getopt_long(argc, argv, ":p:jlo:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((r = cli_opt_pid("dump", optarg, &pid)))
				return r;
			break;
		case 'j':
			json = true;
			break;
		case 'l':
			leaks = true;
			break;
		case 'E': {
			char *end;

			errno = 0;
			explain = strtoull(optarg, &end, 0);
			if (errno || *end || !explain)
				return cli_usage_error("dump", "--explain takes an address such as "
							       "0x55d0c3a41e70");
			leaks = true;
			break;
		}
		case 'o':
			out_path = optarg;
			break;
		case 'G':
			if (!*optarg)
				return cli_usage_error("dump", "--svg: empty file name");
			svg_path = optarg;
			leaks = true;
			break;
		case 'N':
			lopts.no_debuginfo = true;
			break;
		case 'S':
			use_snapshot = false;
			break;
		case 'v':
			ms_log_verbosity++;
			break;
		case 'h':
			usage(stdout);
			return MS_EXIT_OK;
		default: /* ':' or '?' */
			return cli_getopt_error("dump", c, argc, argv);
		}
	}
	if ((r = cli_getopt_error("dump", -1, argc, argv)))
		return r;
	if (!pid)
		return cli_usage_error("dump", "--pid is required");

	/*
	 * -o heap.json is JSON, as record picks formats by extension: text in a
	 * .json file is what a script then fails to parse. record's own formats
	 * are refused rather than written as text under their names.
	 */
	if (out_path && (ends_with(out_path, ".pb.gz") || ends_with(out_path, ".pb") ||
			 ends_with(out_path, ".folded")))
		return cli_usage_error("dump", "-o %s: dump writes text (.txt), JSON (.json) or an "
					       "SVG of the heap (.svg); pprof and folded stacks are "
					       "'memspy record' outputs",
				       out_path);
	if (out_path && ends_with(out_path, ".json"))
		json = true;
	/* -o heap.svg: the picture is what was asked for (as record picks formats by extension). */
	if (out_path && !json && strlen(out_path) > 4 &&
	    !strcmp(out_path + strlen(out_path) - 4, ".svg")) {
		if (svg_path)
			return cli_usage_error("dump", "-o %s is an SVG already: drop --svg %s, or "
						       "give -o a .txt or .json file",
					       out_path, svg_path);
		svg_main = true;
		leaks = true;
	}
	/* An unwritable output is found before anything is attached. */
	if (svg_path && ms_afile_open(&svg_af, svg_path, &err) != 0) {
		cli_report(&err);
		return MS_EXIT_FAILED;
	}
	if (out_path) {
		if (ms_afile_open(&af, out_path, &err) != 0) {
			cli_report(&err);
			if (svg_path)
				ms_afile_abort(&svg_af);
			return MS_EXIT_FAILED;
		}
		out = af.fp;
	}
	ms_signals_init();
	r = cli_attach("dump", pid, NULL, &proc);
	if (r) {
		ret = r;
		goto out;
	}
	ms_proc_reader(proc, &reader);
	meta.pid = pid;
	meta.comm = ms_proc_comm(pid, comm, sizeof(comm));
	have_mem = ms_proc_mem_summary(pid, &mem) == 0;
	meta.mem = have_mem ? &mem : NULL;

	/*
	 * "Not glibc" is a verdict about the process: it rests on maps read with
	 * every thread stopped, not on a read that raced with the target.
	 */
	glibc = ms_heap_detect_allocator(pid, ms_proc_maps(proc), allocator, sizeof(allocator));
	if (!glibc) {
		if (ms_proc_refresh_maps_stopped(proc, &err)) {
			meta.fatal = err.msg;
			goto report_without_walk;
		}
		glibc = ms_heap_detect_allocator(pid, ms_proc_maps(proc), allocator,
						 sizeof(allocator));
	}
	if (!glibc) {
		meta.allocator = allocator;
		ms_error_set(&err, -MS_E_NO_GLIBC,
			     "dump: process %d (%s) does not use glibc malloc: found %s", (int)pid,
			     comm, allocator);
		ms_error_hint(&err, "memspy dump walks glibc's ptmalloc only; the memory summary "
				    "(RSS, anonymous mappings) below does not depend on the allocator; "
				    "where memory is allocated and what of it stays live, by call "
				    "stack: memspy record --pid %d --live (from its start on; it "
				    "probes the malloc and free of %s)",
			      (int)pid, allocator);
		meta.fatal = err.msg;
		goto report_without_walk;
	}
	meta.allocator = "glibc";

	/*
	 * Locating reads libc's DWARF, inflating its compressed debug sections
	 * (0.1-0.3 s on a loaded machine): with a snapshot a thread does it, on
	 * its own copy of the maps, while this one stops the target and clones
	 * it; the arena locks are then checked in the frozen snapshot. Without
	 * one it is done first, so that it stays out of the pause.
	 */
	lj.pid = pid;
	lj.opts = &lopts;
	lj.loc = &loc;
	lj.r = ms_maps_read(pid, &lj.maps, &lj.err);
	if (lj.r == 0) {
		ms_pid_reader_init(&lj.pr, &lj.reader, pid, &lj.maps);
		ms_debuginfo_init(); /* before any thread: DEBUGINFOD_URLS out of libdwfl's reach */
		lj.started = use_snapshot && pthread_create(&lj.th, NULL, locate_main, &lj) == 0;
		if (!lj.started)
			locate_main(&lj);
	}

	/* Forked now, not in the pause: reaps the snapshot in the target if memspy dies. */
	if (use_snapshot)
		ms_snapshot_guard_start(pid, &guard);
	/*
	 * libc's allocator functions and unwind tables, read before the stop: in
	 * it, the threads inside malloc are let out of it (attach/quiesce.c).
	 * Without it the lock check and retry below remain.
	 */
	quiesce = ms_quiesce_new(pid, ms_proc_maps(proc), &qerr);
	if (!quiesce)
		snprintf(qst.why, sizeof(qst.why), "%s", qerr.msg);

	for (tries = 0;; tries++) {
		int locked = 0;

		t_stop = ms_now_ns();
		/* lj.r is the thread's until it is joined. */
		r = !lj.started && lj.r ? lj.r : ms_proc_stop_all(proc);
		if (r) {
			locate_join(&lj);
			if (lj.r)
				err = lj.err;
			else
				ms_error_set(&err, r, "dump: stopping process %d failed: %s", (int)pid,
					     ms_strerror(r));
			meta.fatal = err.msg;
			goto report_without_walk;
		}
		t_stopped = ms_now_ns();
		ms_proc_refresh_maps(proc);
		t_maps = ms_now_ns();
		if (quiesce) {
			/* No thread inside malloc from here on, or the lock check decides. */
			r = ms_quiesce_run(quiesce, proc, &qst, &qerr);
			if (r == -MS_E_TARGET_EXITED || r == -EINTR) {
				ms_proc_resume_all(proc);
				locate_join(&lj);
				err = qerr;
				meta.fatal = err.msg;
				goto report_without_walk;
			}
			if (r && tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
				/* A thread may still be inside malloc: let all run a moment, stop again. */
				ms_info("dump: %s; letting the process run a moment and stopping it "
					"again",
					qerr.msg);
				ms_proc_resume_all(proc);
				ms_signals_wait(LOCK_RETRY_MS);
				continue;
			}
		}
		if (!lj.started) {
			/* Located already: check the locks before paying for a clone. */
			locked = ms_heap_locked_arenas(&loc, &reader);
			if (locked > 0 && tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
				/* A thread holds an arena lock: let it leave malloc, then look again. */
				ms_proc_resume_all(proc);
				ms_signals_wait(LOCK_RETRY_MS);
				continue;
			}
		}
		t_lock = ms_now_ns();
		free(tids);
		free(fs);
		get_fs_bases(proc, &tids, &fs);
		if (leaks) {
			free(lthreads);
			lthreads = get_leak_threads(proc, &nlthreads);
		}
		t_regs = ms_now_ns();
		if (use_snapshot && ms_snapshot_take(proc, &snap, &serr) == 0) {
			ms_snapshot_guard_arm(&guard, snap);
		} else if (use_snapshot && serr.code == -EINTR && tries < LOCK_RETRIES &&
			   !ms_signals_stop_requested()) {
			/*
			 * A signal for the target (under ptrace even an ignored SIGCHLD
			 * is queued) made the kernel abandon the clone: let the process
			 * take it, then stop it again.
			 */
			ms_info("dump: %s; letting the process run a moment and trying again",
				serr.msg);
			ms_proc_resume_all(proc);
			ms_signals_wait(LOCK_RETRY_MS);
			continue;
		} else if (use_snapshot) {
			snprintf(snap_note, sizeof(snap_note), "%s", serr.msg);
			ms_info("dump: no snapshot, walking the stopped process: %s", serr.msg);
			meta.snapshot_fallback = snap_note;
			use_snapshot = false;
		}
		t_snap = ms_now_ns();
		if (!snap) {
			if (lj.started) {
				/* No snapshot after all: the stopped walk needs the layout now. */
				locate_join(&lj);
				if (lj.r == 0 && ms_heap_locked_arenas(&loc, &reader) > 0 &&
				    tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
					ms_proc_resume_all(proc);
					ms_signals_wait(LOCK_RETRY_MS);
					continue;
				}
			}
			if (lj.r) {
				ms_proc_resume_all(proc);
				err = lj.err;
				meta.fatal = err.msg;
				goto report_without_walk;
			}
			break;
		}
		t_res0 = ms_now_ns();
		ms_proc_resume_all(proc);
		t_resume = ms_now_ns();
		if (!lj.started)
			break; /* the locks were checked before the clone */
		locate_join(&lj);
		if (lj.r) {
			ms_snapshot_release(proc, snap);
			ms_snapshot_guard_disarm(&guard);
			snap = NULL;
			err = lj.err;
			meta.fatal = err.msg;
			goto report_without_walk;
		}
		ms_snapshot_reader(snap, &wreader);
		locked = ms_heap_locked_arenas(&loc, &wreader);
		if (locked <= 0 || tries >= LOCK_RETRIES || ms_signals_stop_requested())
			break;
		/* The snapshot caught a thread inside malloc: drop it and try again. */
		ms_snapshot_release(proc, snap);
		ms_snapshot_guard_disarm(&guard);
		snap = NULL;
		ms_signals_wait(LOCK_RETRY_MS);
	}
	meta.lock_retries = tries;
	meta.quiesce = &qst;
	meta.quiesce_available = quiesce != NULL;
	have_loc = true;
	meta.loc = &loc;
	if (snap) {
		const struct ms_snapshot_stats *st = ms_snapshot_stats(snap);

		meta.snapshot_ms = (double)(st->t_cloned - st->t_entered) / 1e6;
		ms_snapshot_reader(snap, &wreader);
		ms_snapshot_reader(snap, &wreader2);
		wmaps = ms_snapshot_maps(snap);
	} else {
		wreader = reader;
		wmaps = ms_proc_maps(proc);
		/* A reader of its own for the second walker thread: its counters are not shared. */
		ms_pid_reader_init(&pr2, &wreader2, pid, wmaps);
	}
	wreaders[0] = &wreader;
	wreaders[1] = &wreader2;
	meta.walk_source = snap ? "snapshot" : "stopped";
	ms_heap_locate_threads(&loc, &wreader, wmaps, tids, fs, ms_proc_nthreads(proc));
	t_threads = ms_now_ns();
	r = ms_heap_walk_flags(&loc, wreaders, 2, wmaps, leaks ? MS_HEAP_WALK_CHUNKS : 0, &rep);
	t_walked = ms_now_ns();
	have_rep = r == 0 || r == -MS_E_CORRUPT || rep.narenas;
	if (leaks && have_rep) {
		/* On the snapshot the target runs meanwhile; stopped, the pause grows by the scan. */
		have_leaks = true;
		ms_info("dump: memspy peak RSS after the walk %lu MiB (%zu allocations listed)",
			peak_rss_mib(), rep.nchunks);
		if (ms_leak_scan_mt(&rep, wreaders, 2, wmaps, pid, lthreads, nlthreads, explain,
				    &lrep))
			ms_info("dump: leak scan partial: %s", lrep.note);
		ms_info("dump: leak scan %.1f ms (mark %.1f, %" PRIu64 " batches on two threads; "
			"types %.1f), %zu allocations",
			lrep.scan_ms, lrep.mark_ms, lrep.shared_batches, lrep.types_ms, rep.nchunks);
		ms_info("dump: memspy peak RSS after the leak scan %lu MiB", peak_rss_mib());
	}
	if (snap) {
		ms_snapshot_release(proc, snap);
		ms_snapshot_guard_disarm(&guard);
		snap = NULL;
		t_release = ms_now_ns();
	} else {
		t_res0 = ms_now_ns();
		ms_proc_resume_all(proc);
		t_resume = ms_now_ns();
	}
#define MS_DT(a, b) ((double)((b) - (a)) / 1e6)
	ms_info("dump: pause %.1f ms: stop %zu threads %.1f, maps %.1f, quiesce and lock check %.1f, "
		"registers %.1f, snapshot %.1f (clone %.1f), %s %.1f, resume %.1f",
		MS_DT(t_stop, t_resume), ms_proc_nthreads(proc), MS_DT(t_stop, t_stopped),
		MS_DT(t_stopped, t_maps), MS_DT(t_maps, t_lock), MS_DT(t_lock, t_regs),
		MS_DT(t_regs, t_snap), meta.snapshot_ms, t_release ? "walk (outside)" : "walk",
		t_release ? 0.0 : MS_DT(t_snap, t_walked), MS_DT(t_res0, t_resume));
	ms_info("dump: walk (%s) %.1f ms: tcache pointers %.1f, heaps %.1f (%" PRIu64
		" chunks, %" PRIu64 " MiB read), lists and bins %.1f (%" PRIu64
		" cache-list candidates), mmapped scan %.1f (%" PRIu64 " probes)%s",
		meta.walk_source, MS_DT(t_snap, t_walked), MS_DT(t_snap, t_threads), rep.chunks_ms,
		rep.chunks_walked, rep.bytes_read >> 20, rep.lists_ms, rep.list_candidates, rep.mmap_ms,
		rep.mmap_probes, snap_note[0] ? " (no snapshot)" : "");
	if (t_release)
		ms_info("dump: snapshot released in %.1f ms", MS_DT(t_walked, t_release));
	ms_info("dump: quiesce: %u thread(s) let out of malloc in the last round, %u over %u "
		"round(s), %.2f ms in all (longest round %.2f ms), %u syscalls of which %u futex "
		"waits, %u round(s) gave up%s%s",
		qst.threads_let_out, qst.let_out_total, qst.rounds, qst.ms, qst.max_ms, qst.syscalls,
		qst.futex_waits, qst.failed, qst.why[0] ? ": " : "", qst.why);
#undef MS_DT
	ms_proc_detach(proc);
	meta.pause_ms = (double)(t_resume - t_stop) / 1e6;
	if (!have_rep) {
		ms_error_set(&err, r, "dump: walking the heap of process %d failed: %s", (int)pid,
			     rep.nerrors ? rep.errors[0].msg : ms_strerror(r));
		meta.fatal = err.msg;
	}
	meta.rep = have_rep ? &rep : NULL;
	meta.leaks = have_leaks ? &lrep : NULL;
	ms_heap_smaps(pid, have_rep ? &rep : NULL, &rss);
	meta.rss = &rss;
	if (!have_rep)
		ret = MS_EXIT_FAILED;
	else if (rep.nerrors || rep.partial || rep.inconsistent || (have_leaks && lrep.partial))
		ret = MS_EXIT_PARTIAL;
	else
		ret = MS_EXIT_OK;
	goto render;

report_without_walk:
	/* Nothing to walk, but the allocator-independent summary still helps. */
	if (proc)
		ms_proc_detach(proc);
	ms_heap_smaps(pid, NULL, &rss);
	meta.rss = &rss;
	ret = MS_EXIT_FAILED;
	cli_report(&err);

render:
	meta.exit_code = ret;
	meta.total_ms = (double)(ms_now_ns() - t_start) / 1e6;
	r = svg_main ? ms_heap_write_svg(out, &meta) :
	    json     ? ms_heap_write_json(out, &meta) :
		       ms_heap_write_text(out, &meta);
	if (r)
		ms_error("dump: writing the report failed: %s", ms_strerror(r));
	if (have_rep && ret == MS_EXIT_PARTIAL) {
		/* The cause the errors point to, not a guess (see ms_heap_verdict). */
		struct ms_heap_verdict v;

		ms_heap_verdict(&rep, &v);
		fprintf(stderr, "memspy: dump: process %d: %zu heap anomal%s: %s (exit 1: partial); "
				"see \"errors\" in the report\n",
			(int)pid, rep.nerrors + rep.errors_dropped,
			rep.nerrors + rep.errors_dropped == 1 ? "y" : "ies", v.text);
	}
	if (svg_path) {
		r = ms_heap_write_svg(svg_af.fp, &meta);
		if (r) {
			ms_error("dump: writing %s failed: %s", svg_path, ms_strerror(r));
			ms_afile_abort(&svg_af);
			ret = MS_EXIT_FAILED;
		} else if (ms_afile_commit(&svg_af, &err) != 0) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
		}
		svg_path = NULL;
	}
	if (out_path) {
		if (ms_afile_commit(&af, &err) != 0) {
			cli_report(&err);
			ret = MS_EXIT_FAILED;
		}
	} else {
		fflush(stdout);
	}
	out_path = NULL;
out:
	ms_quiesce_free(quiesce);
	ms_snapshot_guard_stop(&guard);
	locate_join(&lj);
	ms_maps_free(&lj.maps);
	if (out_path)
		ms_afile_abort(&af);
	if (svg_path)
		ms_afile_abort(&svg_af);
	ms_proc_free(proc);
	ms_heap_report_free(&rep);
	ms_leak_report_free(&lrep);
	free(lthreads);
	if (have_loc || loc.threads || loc.tpoff_cand)
		ms_heap_loc_free(&loc);
	free(tids);
	free(fs);
	return ret;
}
