// SPDX-License-Identifier: MIT
/*
 * record: dump's capture sequence. Stop the target as briefly as
 * possible: let the threads caught inside malloc out of it, take every
 * thread's fs base (tcache) and registers (leak roots), clone a frozen
 * snapshot of its memory and resume; retry while an arena is locked. Then
 * walk the snapshot (or, without one, the stopped target) and scan it for
 * leaks while the target runs, and release the snapshot.
 */
#include "record/record.h"
#include "attach/attach.h"
#include "attach/debuginfo.h"
#include "heapwalk/heapwalk.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/user.h>

/* A thread inside malloc holds its arena's lock: let it finish, at most this often. */
#define LOCK_RETRIES  20
#define LOCK_RETRY_MS 5

/* ms_heap_locate on a thread of its own (see ms_rec_capture_take). */
struct ms_rec_locate_job {
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
	struct ms_rec_locate_job *j = arg;

	j->r = ms_heap_locate(j->pid, &j->maps, &j->reader, j->opts, j->loc, &j->err);
	return NULL;
}

static void locate_join(struct ms_rec_locate_job *j)
{
	if (j->started) {
		pthread_join(j->th, NULL);
		j->started = false;
	}
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

int ms_rec_capture_take(struct ms_proc *proc, const struct ms_rec_capture_opts *o,
			struct ms_rec_capture *c, struct ms_error *err)
{
	pid_t pid = ms_proc_pid(proc);
	struct ms_rec_locate_job *lj = ms_xcalloc(1, sizeof(*lj));
	struct ms_error serr = {0}, qerr = {0};
	struct ms_reader reader, wreader;
	unsigned tries;
	int r;

	*c = (struct ms_rec_capture){.guard = {.fd = -1, .pid = -1}, .lj = lj};
	c->use_snapshot = o->use_snapshot;
	c->t_start = ms_now_ns();
	ms_proc_reader(proc, &reader);
	/*
	 * Locating reads libc's DWARF, inflating its compressed debug sections
	 * (0.1-0.3 s on a loaded machine): with a snapshot a thread does it, on
	 * its own copy of the maps, while this one stops the target and clones
	 * it; the arena locks are then checked in the frozen snapshot. Without
	 * one it is done first, so that it stays out of the pause.
	 */
	lj->pid = pid;
	lj->opts = o->locate;
	lj->loc = &c->loc;
	lj->r = ms_maps_read(pid, &lj->maps, &lj->err);
	if (lj->r == 0) {
		ms_pid_reader_init(&lj->pr, &lj->reader, pid, &lj->maps);
		ms_debuginfo_init(); /* before any thread: DEBUGINFOD_URLS out of libdwfl's reach */
		lj->started =
		    c->use_snapshot && pthread_create(&lj->th, NULL, locate_main, lj) == 0;
		if (!lj->started)
			locate_main(lj);
	}

	/* Forked now, not in the pause: reaps the snapshot in the target if memspy dies. */
	if (c->use_snapshot)
		ms_snapshot_guard_start(pid, &c->guard);
	/*
	 * libc's allocator functions and unwind tables, read before the stop: in
	 * it, the threads inside malloc are let out of it (attach/quiesce.c).
	 * Without it the lock check and retry below remain.
	 */
	c->quiesce = ms_quiesce_new(pid, ms_proc_maps(proc), &qerr);
	if (!c->quiesce)
		snprintf(c->qst.why, sizeof(c->qst.why), "%s", qerr.msg);

	for (tries = 0;; tries++) {
		int locked = 0;

		c->t_stop = ms_now_ns();
		/* lj->r is the thread's until it is joined. */
		r = !lj->started && lj->r ? lj->r : ms_proc_stop_all(proc);
		if (r) {
			locate_join(lj);
			if (lj->r)
				*err = lj->err;
			else
				ms_error_set(err, r, "dump: stopping process %d failed: %s",
					     (int)pid, ms_strerror(r));
			return err->code ? err->code : r;
		}
		c->t_stopped = ms_now_ns();
		ms_proc_refresh_maps(proc);
		c->t_maps = ms_now_ns();
		if (c->quiesce) {
			/* No thread inside malloc from here on, or the lock check decides. */
			r = ms_quiesce_run(c->quiesce, proc, &c->qst, &qerr);
			if (r == -MS_E_TARGET_EXITED || r == -EINTR) {
				ms_proc_resume_all(proc);
				locate_join(lj);
				*err = qerr;
				return r;
			}
			if (r && tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
				/* A thread may be inside malloc still: let all run, stop again. */
				ms_info(
				    "dump: %s; letting the process run a moment and stopping it "
				    "again",
				    qerr.msg);
				ms_proc_resume_all(proc);
				ms_signals_wait(LOCK_RETRY_MS);
				continue;
			}
		}
		if (!lj->started) {
			/* Located already: check the locks before paying for a clone. */
			locked = ms_heap_locked_arenas(&c->loc, &reader);
			if (locked > 0 && tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
				/* An arena is locked: let its thread leave malloc, look again. */
				ms_proc_resume_all(proc);
				ms_signals_wait(LOCK_RETRY_MS);
				continue;
			}
		}
		c->t_lock = ms_now_ns();
		free(c->tids);
		free(c->fs);
		get_fs_bases(proc, &c->tids, &c->fs);
		if (o->leaks) {
			free(c->lthreads);
			c->lthreads = get_leak_threads(proc, &c->nlthreads);
		}
		c->t_regs = ms_now_ns();
		if (c->use_snapshot && ms_snapshot_take(proc, &c->snap, &serr) == 0) {
			ms_snapshot_guard_arm(&c->guard, c->snap);
		} else if (c->use_snapshot && serr.code == -EINTR && tries < LOCK_RETRIES &&
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
		} else if (c->use_snapshot) {
			snprintf(c->snap_note, sizeof(c->snap_note), "%s", serr.msg);
			ms_info("dump: no snapshot, walking the stopped process: %s", serr.msg);
			c->use_snapshot = false;
		}
		c->t_snap = ms_now_ns();
		if (!c->snap) {
			if (lj->started) {
				/* No snapshot after all: the stopped walk needs the layout now. */
				locate_join(lj);
				if (lj->r == 0 && ms_heap_locked_arenas(&c->loc, &reader) > 0 &&
				    tries < LOCK_RETRIES && !ms_signals_stop_requested()) {
					ms_proc_resume_all(proc);
					ms_signals_wait(LOCK_RETRY_MS);
					continue;
				}
			}
			if (lj->r) {
				ms_proc_resume_all(proc);
				*err = lj->err;
				return err->code ? err->code : lj->r;
			}
			break;
		}
		c->t_res0 = ms_now_ns();
		ms_proc_resume_all(proc);
		c->t_resume = ms_now_ns();
		if (!lj->started)
			break; /* the locks were checked before the clone */
		locate_join(lj);
		if (lj->r) {
			ms_snapshot_release(proc, c->snap);
			ms_snapshot_guard_disarm(&c->guard);
			c->snap = NULL;
			*err = lj->err;
			return err->code ? err->code : lj->r;
		}
		ms_snapshot_reader(c->snap, &wreader);
		locked = ms_heap_locked_arenas(&c->loc, &wreader);
		if (locked <= 0 || tries >= LOCK_RETRIES || ms_signals_stop_requested())
			break;
		/* The snapshot caught a thread inside malloc: drop it and try again. */
		ms_snapshot_release(proc, c->snap);
		ms_snapshot_guard_disarm(&c->guard);
		c->snap = NULL;
		ms_signals_wait(LOCK_RETRY_MS);
	}
	c->tries = tries;
	c->have_loc = true;
	return 0;
}

int ms_rec_capture_walk(struct ms_rec_capture *c, struct ms_proc *proc, bool leaks,
			ms_raddr_t explain, struct ms_heap_report *rep, struct ms_leak_report *lrep,
			bool *have_rep, bool *have_leaks)
{
	pid_t pid = ms_proc_pid(proc);
	const struct ms_maps *wmaps;
	struct ms_reader wreader, wreader2;
	struct ms_pid_reader pr2;
	const struct ms_reader *wreaders[2];
	uint64_t t_threads, t_walked;
	int r;

	*have_leaks = false;
	if (c->snap) {
		const struct ms_snapshot_stats *st = ms_snapshot_stats(c->snap);

		c->snapshot_ms = (double)(st->t_cloned - st->t_entered) / 1e6;
		ms_snapshot_reader(c->snap, &wreader);
		ms_snapshot_reader(c->snap, &wreader2);
		wmaps = ms_snapshot_maps(c->snap);
	} else {
		ms_proc_reader(proc, &wreader);
		wmaps = ms_proc_maps(proc);
		/* A reader of its own for the second walker thread: its counters are not shared. */
		ms_pid_reader_init(&pr2, &wreader2, pid, wmaps);
	}
	wreaders[0] = &wreader;
	wreaders[1] = &wreader2;
	c->walk_source = c->snap ? "snapshot" : "stopped";
	ms_heap_locate_threads(&c->loc, &wreader, wmaps, c->tids, c->fs, ms_proc_nthreads(proc));
	t_threads = ms_now_ns();
	r = ms_heap_walk_flags(&c->loc, wreaders, 2, wmaps, leaks ? MS_HEAP_WALK_CHUNKS : 0, rep);
	t_walked = ms_now_ns();
	*have_rep = r == 0 || r == -MS_E_CORRUPT || rep->narenas;
	if (leaks && *have_rep) {
		/* On the snapshot the target runs meanwhile; stopped, the pause grows by the scan.
		 */
		*have_leaks = true;
		ms_info("dump: memspy peak RSS after the walk %lu MiB (%zu allocations listed)",
			peak_rss_mib(), rep->nchunks);
		if (ms_leak_scan_mt(rep, wreaders, 2, wmaps, pid, c->lthreads, c->nlthreads,
				    explain, lrep))
			ms_info("dump: leak scan partial: %s", lrep->note);
		ms_info("dump: leak scan %.1f ms (mark %.1f, %" PRIu64 " batches on two threads; "
			"types %.1f), %zu allocations",
			lrep->scan_ms, lrep->mark_ms, lrep->shared_batches, lrep->types_ms,
			rep->nchunks);
		ms_info("dump: memspy peak RSS after the leak scan %lu MiB", peak_rss_mib());
	}
	if (c->snap) {
		ms_snapshot_release(proc, c->snap);
		ms_snapshot_guard_disarm(&c->guard);
		c->snap = NULL;
		c->t_release = ms_now_ns();
	} else {
		c->t_res0 = ms_now_ns();
		ms_proc_resume_all(proc);
		c->t_resume = ms_now_ns();
	}
#define MS_DT(a, b) ((double)((b) - (a)) / 1e6)
	ms_info(
	    "dump: pause %.1f ms: stop %zu threads %.1f, maps %.1f, quiesce and lock check %.1f, "
	    "registers %.1f, snapshot %.1f (clone %.1f), %s %.1f, resume %.1f",
	    MS_DT(c->t_stop, c->t_resume), ms_proc_nthreads(proc), MS_DT(c->t_stop, c->t_stopped),
	    MS_DT(c->t_stopped, c->t_maps), MS_DT(c->t_maps, c->t_lock),
	    MS_DT(c->t_lock, c->t_regs), MS_DT(c->t_regs, c->t_snap), c->snapshot_ms,
	    c->t_release ? "walk (outside)" : "walk",
	    c->t_release ? 0.0 : MS_DT(c->t_snap, t_walked), MS_DT(c->t_res0, c->t_resume));
	ms_info("dump: walk (%s) %.1f ms: tcache pointers %.1f, heaps %.1f (%" PRIu64
		" chunks, %" PRIu64 " MiB read), lists and bins %.1f (%" PRIu64
		" cache-list candidates), mmapped scan %.1f (%" PRIu64 " probes)%s",
		c->walk_source, MS_DT(c->t_snap, t_walked), MS_DT(c->t_snap, t_threads),
		rep->chunks_ms, rep->chunks_walked, rep->bytes_read >> 20, rep->lists_ms,
		rep->list_candidates, rep->mmap_ms, rep->mmap_probes,
		c->snap_note[0] ? " (no snapshot)" : "");
	if (c->t_release)
		ms_info("dump: snapshot released in %.1f ms", MS_DT(t_walked, c->t_release));
	ms_info("dump: quiesce: %u thread(s) let out of malloc in the last round, %u over %u "
		"round(s), %.2f ms in all (longest round %.2f ms), %u syscalls of which %u futex "
		"waits, %u round(s) gave up%s%s",
		c->qst.threads_let_out, c->qst.let_out_total, c->qst.rounds, c->qst.ms,
		c->qst.max_ms, c->qst.syscalls, c->qst.futex_waits, c->qst.failed,
		c->qst.why[0] ? ": " : "", c->qst.why);
#undef MS_DT
	c->pause_ms = (double)(c->t_resume - c->t_stop) / 1e6;
	return r;
}

void ms_rec_capture_free(struct ms_rec_capture *c)
{
	ms_quiesce_free(c->quiesce);
	c->quiesce = NULL;
	ms_snapshot_guard_stop(&c->guard);
	if (c->lj) {
		locate_join(c->lj);
		ms_maps_free(&c->lj->maps);
		free(c->lj);
		c->lj = NULL;
	}
	if (c->have_loc || c->loc.threads || c->loc.tpoff_cand)
		ms_heap_loc_free(&c->loc);
	free(c->lthreads);
	free(c->tids);
	free(c->fs);
	c->lthreads = NULL;
	c->tids = NULL;
	c->fs = NULL;
}
