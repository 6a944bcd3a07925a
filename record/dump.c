// SPDX-License-Identifier: MIT
/*
 * record: the dump of one process, everything its report says. The
 * verdict on the allocator (decided on maps read with every thread
 * stopped), the pause and the walk (capture.c), the detach, resident
 * memory from smaps, and whether the report is complete. cmd/dump.c opens
 * the files, attaches, and writes the report (output/heap_*.c).
 */
#include "record/record.h"
#include "attach/attach.h"
#include "heapwalk/heapwalk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Is the process's allocator glibc's? Fills d->allocator; err when the answer cannot be had. */
static int check_allocator(struct ms_proc *proc, pid_t pid, struct ms_rec_dump *d, bool *glibc)
{
	*glibc = ms_heap_detect_allocator(pid, ms_proc_maps(proc), d->allocator,
					  sizeof(d->allocator));
	/*
	 * "Not glibc" is a verdict about the process: it rests on maps read with
	 * every thread stopped, not on a read that raced with the target.
	 */
	if (!*glibc) {
		int r = ms_proc_refresh_maps_stopped(proc, &d->err);

		if (r)
			return r;
		*glibc = ms_heap_detect_allocator(pid, ms_proc_maps(proc), d->allocator,
						  sizeof(d->allocator));
	}
	return 0;
}

int ms_rec_dump_take(struct ms_proc *proc, const struct ms_rec_dump_opts *o, struct ms_rec_dump *d)
{
	struct ms_heap_meta *meta = &d->meta;
	struct ms_rec_capture_opts copts;
	pid_t pid = ms_proc_pid(proc);
	bool glibc;
	int r;

	*d = (struct ms_rec_dump){.cap = {.guard = {.fd = -1, .pid = -1}}, .locate = o->locate};
	meta->pid = pid;
	meta->comm = ms_proc_comm(pid, d->comm, sizeof(d->comm));
	meta->mem = ms_proc_mem_summary(pid, &d->mem) == 0 ? &d->mem : NULL;
	meta->rss = &d->rss;
	if (check_allocator(proc, pid, d, &glibc))
		goto no_walk;
	if (!glibc) {
		meta->allocator = d->allocator;
		ms_error_set(&d->err, -MS_E_NO_GLIBC,
			     "dump: process %d (%s) does not use glibc malloc: found %s", (int)pid,
			     d->comm, d->allocator);
		ms_error_hint(&d->err,
			      "memspy dump walks glibc's ptmalloc only; the memory summary "
			      "(RSS, anonymous mappings) below does not depend on the allocator; "
			      "where memory is allocated and what of it stays live, by call "
			      "stack: memspy record --pid %d --live (from its start on; it "
			      "probes the malloc and free of %s)",
			      (int)pid, d->allocator);
		goto no_walk;
	}
	meta->allocator = "glibc";

	/* The pause: stop, let threads out of malloc, registers, snapshot, resume. */
	copts = (struct ms_rec_capture_opts){
	    .use_snapshot = o->use_snapshot, .leaks = o->leaks, .locate = &d->locate};
	r = ms_rec_capture_take(proc, &copts, &d->cap, &d->err);
	if (d->cap.snap_note[0])
		meta->snapshot_fallback = d->cap.snap_note;
	if (r)
		goto no_walk;
	meta->lock_retries = d->cap.tries;
	meta->quiesce = &d->cap.qst;
	meta->quiesce_available = d->cap.quiesce != NULL;
	meta->loc = &d->cap.loc;
	/* The walk (and the leak scan) of the snapshot while the target runs, or of it stopped. */
	r = ms_rec_capture_walk(&d->cap, proc, o->leaks, o->explain, &d->rep, &d->lrep,
				&d->have_rep, &d->have_leaks);
	meta->snapshot_ms = d->cap.snapshot_ms;
	meta->walk_source = d->cap.walk_source;
	ms_proc_detach(proc);
	meta->pause_ms = d->cap.pause_ms;
	if (!d->have_rep) {
		ms_error_set(&d->err, r, "dump: walking the heap of process %d failed: %s",
			     (int)pid, d->rep.nerrors ? d->rep.errors[0].msg : ms_strerror(r));
		meta->fatal = d->err.msg;
	}
	meta->rep = d->have_rep ? &d->rep : NULL;
	meta->leaks = d->have_leaks ? &d->lrep : NULL;
	ms_heap_smaps(pid, d->have_rep ? &d->rep : NULL, &d->rss);
	if (!d->have_rep)
		return MS_REC_DUMP_FAILED;
	if (d->rep.nerrors || d->rep.partial || d->rep.inconsistent ||
	    (d->have_leaks && d->lrep.partial))
		return MS_REC_DUMP_PARTIAL;
	return MS_REC_DUMP_COMPLETE;

no_walk:
	/* Nothing to walk, but the allocator-independent summary still helps. */
	d->no_walk = true;
	meta->fatal = d->err.msg;
	ms_proc_detach(proc);
	ms_heap_smaps(pid, NULL, &d->rss);
	return MS_REC_DUMP_FAILED;
}

void ms_rec_dump_free(struct ms_rec_dump *d)
{
	ms_rec_capture_free(&d->cap);
	ms_heap_report_free(&d->rep);
	ms_leak_report_free(&d->lrep);
}
