// SPDX-License-Identifier: MIT
/*
 * Taking the probes out, on every path: disarm, drain what is left, let
 * every thread out of the stubs, restore each entry and check it against
 * the module file, restore the SIGTRAP action, unmap the regions, retire
 * the manifests. The target must come out whole even if it exited, exec'd
 * or overwrote memspy's pages meanwhile.
 */
#include "attach/probe.h"
#include "attach/attach_int.h"
#include "attach/probe_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* A SIGTRAP queued for tid, or for the whole process (ShdPnd). */
static bool sigtrap_pending(pid_t pid, pid_t tid)
{
	return (ms_procfs_status_mask(pid, tid, "SigPnd") |
		ms_procfs_status_mask(pid, tid, "ShdPnd")) &
	       SIGBIT(SIGTRAP);
}

/* Reads every intact region's `armed` byte back: true when all are 0. */
static bool armed_cleared(struct ms_probes *pr)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		uint8_t v = 1;

		if (!probe_region_intact(pr, r))
			continue;
		if (ms_mem_read_pid(pr->pid, probe_rg_ctrl(&pr->rg[r], MS_CTRL_ARMED), &v, 1) !=
			1 ||
		    v)
			return false;
	}
	return true;
}

/*
 * Handles events that arrived while stopping: traps are turned into events
 * and their threads stay held (tids appended to *held). Returns false when
 * the target exited.
 */
static bool drain_events(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, pid_t **held,
			 size_t *nheld, size_t *cap, int timeout_ms, pid_t want)
{
	for (;;) {
		struct ms_event ev;
		size_t region;
		int slot;

		if (ms_proc_wait(pr->p, timeout_ms, &ev))
			return false;
		switch (ev.kind) {
		case MS_EV_TRAP:
			if (probe_find_trap(pr, ev.regs.rip - 1, &region, &slot) && slot >= 0) {
				probe_on_trap(pr, ev.tid, &ev.regs, region, slot, cb, ctx);
				pr->st.stops++;
			}
			ms_xgrow((void **)held, cap, *nheld + 1, sizeof(**held));
			(*held)[(*nheld)++] = ev.tid;
			if (ev.tid == want)
				return true;
			break;
		case MS_EV_FORK:
			probe_restore_child(pr, ev.child);
			ms_proc_fork_child_detach(ev.child);
			break;
		case MS_EV_EXITED:
			return false;
		case MS_EV_TIMEOUT:
		case MS_EV_STOP_REQUEST:
			return true;
		default:
			break; /* thread births and deaths: nothing patched depends on them */
		}
	}
}

/* Compares the restored bytes with the module file's own bytes. */
static int compare_with_file(struct ms_probes *pr, const struct site *s, struct ms_error *err)
{
	const struct ms_map *m = ms_maps_find(ms_proc_maps(pr->p), s->entry);
	uint8_t fb[PATCH_LEN];
	int fd;
	ssize_t n;

	if (!m || !m->path)
		return 0;
	/* Only a regular file, the mapped inode: a FIFO at a path the target
	 * chose blocks open() for good, and another file is no reference. */
	fd = ms_open_target_file_as(s->open_path, m);
	if (fd < 0)
		return 0; /* the file may be gone (upgraded); the read-back still held */
	n = pread(fd, fb, sizeof(fb), (off_t)(m->offset + (s->entry - m->start)));
	close(fd);
	if (n == (ssize_t)sizeof(fb) && memcmp(fb, s->orig, sizeof(fb)))
		return ms_error_set(err, -EIO,
				    "probe: %s at %#llx differs from its file %s after restore",
				    s->name, (unsigned long long)s->entry, s->open_path);
	return 0;
}

/*
 * Brings every thread to a stop from which resuming delivers no SIGTRAP:
 * a thread held at a trap is in a signal-delivery stop whose SIGTRAP the
 * kernel delivers if memspy dies, so it is resumed with the signal
 * suppressed (it sits after the int3, on valid code) and interrupted
 * again; a queued SIGTRAP is let through while traced and consumed the
 * same way. Repeats until a round finds nothing. 0 when settled, 1 when
 * the target exited, -EAGAIN when it did not settle, or -errno when it
 * could not be stopped again (then its threads run).
 */
static int settle_traps(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, pid_t **held,
			size_t *nheld, size_t *cap)
{
	for (int round = 0; round < 16; round++) {
		bool resumed = false;
		int rc;

		for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
			pid_t tid = ms_proc_thread(pr->p, i);
			bool is_held = false;

			for (size_t k = 0; k < *nheld; k++)
				is_held |= (*held)[k] == tid;
			if (is_held || !sigtrap_pending(pr->pid, tid))
				continue;
			ms_debug("probe: thread %d has a SIGTRAP queued: letting it trap while "
				 "traced",
				 (int)tid);
			if (ms_proc_cont_thread(pr->p, tid))
				continue;
			resumed = true;
			if (!drain_events(pr, cb, ctx, held, nheld, cap, 1000, tid))
				return 1;
		}
		if (!*nheld && !resumed)
			return 0;
		for (size_t k = 0; k < *nheld; k++)
			if (!ms_proc_cont_thread(pr->p, (*held)[k]))
				resumed = true;
		*nheld = 0;
		if (!resumed)
			return 0; /* the held threads are gone */
		rc = ms_proc_stop_all(pr->p);
		if (rc == -MS_E_TARGET_EXITED)
			return 1;
		if (rc)
			return rc;
		if (!drain_events(pr, cb, ctx, held, nheld, cap, 0, 0))
			return 1;
	}
	return -EAGAIN;
}

int ms_probes_remove(struct ms_probes *pr, ms_alloc_event_cb cb, void *ctx, struct ms_error *err)
{
	pid_t *held = NULL;
	size_t nheld = 0, cap = 0;
	uint64_t t0;
	int rc = 0, ret = 0, settle = 0;
	bool was_stopped;

	if (!pr || pr->removed)
		return 0;
	pr->removed = true;
	ms_proc_set_thread_hook(pr->p, NULL, NULL);
	/* Disarm first, without a stop: from here no new sample starts. */
	probe_set_armed(pr, false);
	if (ms_proc_exited(pr->p, NULL)) {
		ms_probe_watchdog_stop(&pr->wd);
		return 0;
	}
	/* The removal is what a Ctrl-C asked for: its waits are not cut short by it. */
	ms_proc_hold_stop_requests(pr->p, true);
	was_stopped = ms_proc_all_stopped(pr->p);
	if (!was_stopped) {
		rc = ms_proc_stop_all(pr->p);
		if (rc == -MS_E_TARGET_EXITED) {
			ms_proc_hold_stop_requests(pr->p, false);
			ms_probe_watchdog_stop(&pr->wd);
			return 0;
		}
		if (rc) {
			ret = ms_error_set(err, rc,
					   "probe: stopping process %d to remove the probes: %s",
					   (int)pr->pid, ms_strerror(rc));
			goto out;
		}
	}
	t0 = ms_now_ns();
	if (!drain_events(pr, cb, ctx, &held, &nheld, &cap, 0, 0))
		goto gone;
	if (nheld)
		ms_debug("probe: %zu trap(s) arrived while stopping for removal", nheld);
	/* The samples the ring still holds. */
	probe_drain_all(pr, cb, ctx);

	/*
	 * The target's SIGTRAP action comes back only once no thread can
	 * deliver a probe's SIGTRAP: were memspy to die after that, a held
	 * trap or a queued SIGTRAP would kill the target (SIG_DFL).
	 */
	settle = settle_traps(pr, cb, ctx, &held, &nheld, &cap);
	if (settle == 1)
		goto gone;
	if (settle && settle != -EAGAIN) {
		ret = ms_error_set(err, settle,
				   "probe: stopping process %d again to remove the probes: %s (the "
				   "stubs stay in place, disarmed)",
				   (int)pr->pid, ms_strerror(settle));
		goto out;
	}

	probe_drain_all(pr, cb, ctx); /* samples finished by the threads settle_traps resumed */

	/* A thread between the armed check and its int3 would still trap: move it past. */
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		pid_t tid = ms_proc_thread(pr->p, i);
		struct user_regs_struct regs;

		if (ms_proc_get_regs(pr->p, tid, &regs))
			continue;
		for (size_t r = 0; r < pr->nrg; r++) {
			if (!probe_code_intact(pr, r))
				continue;
			for (int k = 0; k < MS_STUB_NSLOTS; k++) {
				ms_raddr_t g = pr->rg[r].base + ms_stub_desc[k].guard;
				ms_raddr_t t = pr->rg[r].base + ms_stub_desc[k].trap;

				if (regs.rip >= g && regs.rip <= t) {
					ms_debug(
					    "probe: thread %d at %#llx before a stub's int3: moved "
					    "past it",
					    (int)tid, (unsigned long long)regs.rip);
					regs.rip = t + 1;
					ms_proc_set_regs(pr->p, tid, &regs);
				}
			}
		}
	}

	for (size_t i = 0; i < pr->ns; i++) {
		struct site *s = &pr->s[i];

		uint8_t jmp[PATCH_LEN], now[PATCH_LEN];

		if (!s->patched)
			continue;
		probe_site_jmp(pr, s, jmp);
		if (ms_mem_read_pid(pr->pid, s->entry, now, PATCH_LEN) != PATCH_LEN ||
		    memcmp(now, jmp, PATCH_LEN)) {
			/* Not our jmp any more: an exec, or the library was unloaded. */
			ms_warn(
			    "probe: %s at %#llx no longer holds memspy's jmp (exec or unload?): "
			    "left untouched",
			    s->name, (unsigned long long)s->entry);
			s->patched = false;
			continue;
		}
		rc = ms_proc_write_mem(pr->p, s->entry, s->orig, PATCH_LEN);
		if (rc) {
			if (!ret)
				ret = ms_error_set(err, rc,
						   "probe: restoring %s at %#llx in process %d: %s",
						   s->name, (unsigned long long)s->entry,
						   (int)pr->pid, ms_strerror(rc));
			continue;
		}
		s->patched = false;
		rc = compare_with_file(pr, s, ret ? NULL : err);
		if (rc && !ret)
			ret = rc;
	}
	/* Every trap consumed, nothing queued, no one before an int3, text restored. */
	for (size_t i = 0; i < ms_proc_nthreads(pr->p) && !settle; i++) {
		/* Read right before: a SIGTRAP still queued would be fatal under SIG_DFL. */
		if (sigtrap_pending(pr->pid, ms_proc_thread(pr->p, i))) {
			ms_debug("probe: thread %d still has a SIGTRAP queued",
				 (int)ms_proc_thread(pr->p, i));
			settle = -EAGAIN;
		}
	}
	if (settle || ret || !armed_cleared(pr)) {
		ms_warn("probe: the stub region's `ret` SIGTRAP handler stays installed in process "
			"%d: a thread may still reach a disarmed int3%s",
			(int)pr->pid, settle ? " (traps kept arriving while removing)" : "");
		rc = 0;
	} else {
		rc = probe_restore_sigtrap(pr);
		if (!rc)
			probe_retire_manifests(pr);
	}
	if (rc && !ret)
		ret =
		    ms_error_set(err, rc,
				 "probe: restoring the SIGTRAP action of process %d: %s (the stub "
				 "region's `ret` handler stays installed)",
				 (int)pr->pid, ms_strerror(rc));
	if (pr->ring) {
		/* The ring's 4 MiB can go now: a straggler's write just faults in a zero page. */
		for (size_t r = 0; r < pr->nrg; r++) {
			long mret;

			if (!probe_region_intact(pr, r))
				continue;
			probe_rsyscall(pr, SYS_madvise, (long)(pr->rg[r].base + MS_STUB_HDR_OFF),
				 MS_STUB_REGION_SIZE - MS_STUB_HDR_OFF, MADV_DONTNEED, 0, 0, 0,
				 &mret);
		}
	}
	pr->st.remove_pause_ns = ms_now_ns() - t0;
	if (pr->nested)
		ms_debug(
		    "probe: %llu allocations nested in a sampled probed call were not reported",
		    (unsigned long long)pr->nested);
	if (pr->n_drains)
		ms_debug("probe: %llu drains with events, %.1f us each, %.1f events each; %llu "
			 "left unread by the quick check",
			 (unsigned long long)pr->n_drains,
			 pr->drain_ns / 1e3 / (double)pr->n_drains,
			 (double)pr->drained / (double)pr->n_drains, (unsigned long long)pr->n_quiet);
	if (pr->nticks) {
		/* Median: the mean is dominated by samples whose thread was preempted. */
		for (size_t i = 1; i < pr->nticks; i++)
			for (size_t j = i; j > 0 && pr->ticks[j - 1] > pr->ticks[j]; j--) {
				uint64_t x = pr->ticks[j];

				pr->ticks[j] = pr->ticks[j - 1];
				pr->ticks[j - 1] = x;
			}
		ms_debug("probe: in-target time per ring sample: median %.2f us, min %.2f us "
			 "(%zu samples)",
			 probe_tsc_to_ns(pr, pr->ticks[pr->nticks / 2]) / 1e3,
			 probe_tsc_to_ns(pr, pr->ticks[0]) / 1e3, pr->nticks);
	}
	if (!was_stopped)
		ms_proc_resume_all(pr->p);
	for (size_t k = 0; k < nheld; k++)
		ms_proc_cont_thread(pr->p, held[k]);
	/*
	 * A shared ring's pages only go once freed through memspy's mapping
	 * (the target's MADV_DONTNEED above just unmaps them): done with the
	 * target running, as nothing of it waits on this.
	 */
	for (size_t r = 0; r < pr->nrg; r++)
		probe_unshare_ring(&pr->rg[r], true);
	goto out;
gone:
	/* The target exited while we removed: nothing left to restore. */
	ret = 0;
out:
	ms_proc_hold_stop_requests(pr->p, false);
	free(held);
	ms_probe_watchdog_stop(&pr->wd);
	return ret;
}
