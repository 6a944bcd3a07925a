// SPDX-License-Identifier: MIT
/*
 * record: probe mode's recording session. Open installs the probes on a
 * seized process; each step waits for the target's events and drains the
 * rings, unwinding every sample into the stack table; upkeep takes the cost
 * meter's readings and applies the budget's mean; close removes the probes
 * (every byte restored and read back), detaches and verifies the code.
 */
#include "record/record.h"
#include "attach/attach.h"
#include "unwind/unwind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PCS	   256
#define REFRESH_NS 2000000000ull /* module list refresh for the unwinder */

struct ms_rec_session {
	pid_t pid;
	struct ms_proc *p;
	struct ms_modules mods;
	struct ms_probes *pr;
	struct ms_unwinder *unwinder;
	struct ms_symbolizer *sym;
	struct ms_rec_table *table;
	struct ms_rec_meter m;
	struct ms_rec_counts counts;
	struct ms_rec_end end;
	uint64_t start_ns, deadline, last_refresh;
	uint64_t upkeep0; /* memspy's CPU when the upkeep began; 0: not in upkeep */
	bool ended, closed;
	ms_raddr_t pcs[MAX_PCS];
};

/* ------------------------------ a sample ------------------------------ */

static void on_alloc_event(const struct ms_alloc_event *ev, void *ctx)
{
	struct ms_rec_session *r = ctx;
	struct ms_stack_copy sc;
	struct ms_stack_use use;
	size_t n = 0, skip;

	if (ev->type == MS_AE_FREE) {
		r->counts.free_events++;
		ms_rec_table_free_ptr(r->table, ev->ptr);
		return;
	}
	r->counts.alloc_events++;
	/* The stack copy is borrowed for this call only: unwind now, symbolise at the end. */
	sc = (struct ms_stack_copy){.regs = &ev->regs,
				    .data = ev->stack,
				    .len = ev->stack_len,
				    .addr = ev->regs.rsp,
				    .at_entry = true,
				    .use = &use};
	if (!ev->stack || ms_unwind(r->unwinder, &sc, r->pcs, MAX_PCS, &n) || n == 0) {
		r->counts.unwind_failures++;
		n = 0;
	} else if (n == 1) {
		r->counts.short_stacks++;
	}
	/* How deep the stubs' copies must reach (they copy no more than that). */
	if (ev->stack && n)
		ms_probes_stack_use(r->pr, ev, use.used, use.beyond);
	/*
	 * pcs[0] is the allocator's own entry: the leaf shown is its caller. A
	 * call another probed function handed on (glibc's posix_memalign calls
	 * its malloc for small alignments) has that function's frames next:
	 * the allocator's too, so the leaf is the same as for a call it made
	 * itself, sampled or exact. Return addresses: pc - 1 is in the call.
	 */
	/* Inside another sampled probed call: that one is reported (pcs[0] is the entry). */
	if (r->pr && n > 1 && ms_probes_nested_sample(r->pr, r->pcs + 1, n - 1)) {
		r->counts.alloc_events--;
		return;
	}
	skip = n > 1 ? 1 : n;
	while (r->pr && skip + 1 < n && ms_probes_in_allocator(r->pr, r->pcs[skip] - 1))
		skip++;
	if (n - skip <= 1)
		r->counts.one_frame++;
	if (ev->unfollowed)
		ms_rec_table_add_unfollowed(r->table, r->pcs + skip, n - skip, ev->fn, ev->weight,
					    ev->size, ev->ptr);
	else
		ms_rec_table_add(r->table, r->pcs + skip, n - skip, ev->fn, ev->weight, ev->size,
				 ev->ptr, ev->tid);
}

/*
 * Has pid exited, allowing a process that is exiting a moment to finish: its
 * memory is released (reads of it fail with ESRCH) before its state
 * becomes Z. Only asked when a read of the process failed.
 */
static bool process_gone(pid_t pid)
{
	for (int i = 0; i < 40; i++) {
		if (ms_procfs_gone(pid))
			return true;
		usleep(5000);
	}
	return false;
}

/* ------------------------------ the session ------------------------------ */

int ms_rec_session_open(struct ms_proc *p, const struct ms_rec_session_opts *o,
			const struct ms_rec_baseline *bl, struct ms_rec_session **out,
			struct ms_error *err)
{
	struct ms_rec_session *s = ms_xcalloc(1, sizeof(*s));
	struct ms_probe_opts popts;
	int rc;

	*out = s;
	s->p = p;
	s->pid = ms_proc_pid(p);
	rc = ms_modules_load(s->pid, ms_proc_maps(p), &s->mods);
	if (rc) {
		ms_error_set(err, rc, "record: reading the modules of pid %d: %s", (int)s->pid,
			     ms_strerror(rc));
		return rc;
	}
	s->table = ms_rec_table_new();
	if (!o->track_frees) /* no free will be reported */
		ms_rec_table_no_frees(s->table);
	s->unwinder = ms_unwinder_new(s->pid, o->unwinder, err);
	if (!s->unwinder)
		return err->code ? err->code : -EINVAL;
	/* Opens every module file now: symbolising still works after the target exits. */
	s->sym = ms_symbolizer_new(s->pid, err);
	if (!s->sym)
		return err->code ? err->code : -EINVAL;
	popts = (struct ms_probe_opts){
	    .sample_bytes = o->sample_bytes,
	    .stack_bytes = o->stack_bytes,
	    .track_frees = o->track_frees,
	    .custom_symbols = o->probes,
	    .n_custom = o->nprobes,
	    .custom_free_symbols = o->probe_frees,
	    .n_custom_free = o->nprobe_frees,
	};
	rc = ms_probes_install(p, &s->mods, &popts, &s->pr, err);
	if (rc) {
		s->pr = NULL;
		if (!err->msg[0])
			ms_error_set(err, rc, "record: probing the allocator of pid %d: %s",
				     (int)s->pid, ms_strerror(rc));
		return rc;
	}
	s->start_ns = s->last_refresh = ms_now_ns();
	if (o->duration_ns)
		s->deadline = s->start_ns + o->duration_ns;
	ms_rec_meter_start(&s->m, s->pid, s->pr, o->max_overhead, o->sample_bytes,
			   o->min_sample_bytes, bl);
	s->m.follow_frees = o->track_frees; /* none followed yet: the first reading holds */
	return 0;
}

/* memspy's CPU in the upkeep since ms_rec_session_upkeep: the budget's fixed cost. */
static void upkeep_end(struct ms_rec_session *s)
{
	if (s->upkeep0)
		s->m.upkeep_ns += ms_rec_self_cpu_ns() - s->upkeep0;
	s->upkeep0 = 0;
}

int ms_rec_session_step(struct ms_rec_session *s, uint64_t wake_ns)
{
	struct ms_rec_end *oc = &s->end;
	struct ms_event ev;
	int timeout = s->m.wait_ms, rc;
	uint64_t now;

	if (s->ended)
		return 1;
	upkeep_end(s);
	now = ms_now_ns();
	if (s->deadline) {
		if (now >= s->deadline) {
			oc->duration_elapsed = true;
			goto ended;
		}
		if (s->deadline - now < (uint64_t)timeout * 1000000)
			timeout = (int)((s->deadline - now) / 1000000) + 1;
	}
	if (wake_ns > now && wake_ns - now < (uint64_t)timeout * 1000000)
		timeout = (int)((wake_ns - now) / 1000000) + 1;
	if ((oc->stop_signal = ms_signals_stop_requested()))
		goto ended;
	ms_rec_meter_iteration(&s->m, s->counts.alloc_events + s->counts.free_events);
	rc = ms_proc_wait(s->p, timeout, &ev);
	if (rc) {
		oc->wait_error = rc;
		goto ended;
	}
	switch (ev.kind) {
	case MS_EV_TRAP:
		if (ms_probes_handle_event(s->pr, &ev, on_alloc_event, s) == 0) {
			/* Not a probe's trap: the target's own; deliver it as if untraced. */
			ms_debug("record: SIGTRAP at 0x%llx in thread %d is not a probe's",
				 (unsigned long long)ev.regs.rip, (int)ev.tid);
			ms_proc_pass_trap(s->p, ev.tid);
		}
		break;
	case MS_EV_FORK:
		/* The child inherited the patched text: the engine restores it. */
		if (ms_probes_handle_event(s->pr, &ev, on_alloc_event, s) == 0) {
			ms_warn("record: forked child %d was not restored by the probe engine",
				(int)ev.child);
			ms_proc_fork_child_detach(ev.child);
		}
		break;
	case MS_EV_STOP_REQUEST:
		oc->stop_signal = ms_signals_stop_requested();
		break;
	case MS_EV_EXITED:
		oc->target_exited = true;
		oc->exit_status = ev.status;
		break;
	default:
		break;
	}
	if (oc->target_exited || ev.kind == MS_EV_STOP_REQUEST)
		goto ended;
	rc = ms_probes_poll(s->pr, on_alloc_event, s);
	if (rc == -MS_E_TAMPERED)
		goto ended; /* the pages are not memspy's any more: stop, say so (probe stats) */
	if (rc && rc != -EAGAIN) {
		oc->wait_error = rc;
		goto ended;
	}
	s->m.busy = ev.kind != MS_EV_TIMEOUT;
	return 0;
ended:
	s->ended = true;
	return 1;
}

void ms_rec_session_upkeep(struct ms_rec_session *s)
{
	uint64_t now = ms_now_ns();

	ms_rec_meter_pace(&s->m, s->pr, s->counts.alloc_events, s->counts.free_events, now);
	/*
	 * Upkeep from here on: its CPU is the budget's fixed cost, which a
	 * wider mean cannot remove (counted as sampling, it widened a light
	 * process's mean 16x under ASan with one sample a second).
	 */
	s->upkeep0 = ms_rec_self_cpu_ns();
	if (now >= s->m.next_read_ns)
		ms_rec_meter_read(&s->m, s->pr, now, on_alloc_event, s);
	/* Libraries dlopen'ed meanwhile: their CFI is needed to unwind through them. */
	if (now - s->last_refresh > REFRESH_NS) {
		ms_unwinder_refresh(s->unwinder);
		s->last_refresh = now;
		s->m.busy = true;
	}
}

void ms_rec_session_busy(struct ms_rec_session *s)
{
	s->m.busy = true;
}

void ms_rec_session_cut(struct ms_rec_session *s, uint64_t cpu_ns)
{
	/* hours of churn: memory for the live samples only, not every one ever freed */
	ms_rec_table_compact(s->table);
	s->m.cpu0 += cpu_ns;
	s->m.last_cpu += cpu_ns;
}

void ms_rec_session_read(const struct ms_rec_session *s, struct ms_rec_read *out)
{
	*out = (struct ms_rec_read){
	    .pid = s->pid,
	    .proc = s->p,
	    .start_ns = s->start_ns,
	    .table = s->table,
	    .mean = s->m.budget.mean,
	    .sym = s->sym,
	    .mods = &s->mods,
	    .probes = s->pr,
	    .meter = &s->m,
	    .last = s->closed ? &s->m.end : &s->m.last,
	    .counts = &s->counts,
	    .end = &s->end,
	};
}

int ms_rec_session_close(struct ms_rec_session *s, struct ms_rec_closed *out, struct ms_error *err)
{
	struct ms_rec_end *oc = &s->end;
	int rc;

	*out = (struct ms_rec_closed){.removed = true, .verified = true};
	upkeep_end(s);
	s->ended = s->closed = true;
	oc->wall_ns = ms_now_ns() - s->start_ns;
	ms_rec_meter_reading(&s->m, s->pr, &s->m.end);
	if (!oc->target_exited && ms_proc_exited(s->p, &oc->exit_status))
		oc->target_exited = true;
	if (!oc->target_exited)
		ms_symbolizer_refresh(s->sym); /* modules mapped during the recording */

	/* The target first: every byte back, verified, before anything else. */
	rc = ms_probes_remove(s->pr, on_alloc_event, s, err);
	if (rc)
		out->removed = false;
	ms_proc_detach(s->p);
	if (!oc->target_exited && out->removed) {
		out->verified = ms_rec_verify_text(s->pid, &s->mods, s->pr, &out->verify_note) == 0;
		/*
		 * A process that exited between the removal and the read-back
		 * cannot be read, and has nothing left to harm: the recording
		 * is complete, and no failure.
		 */
		if (!out->verified && process_gone(s->pid)) {
			free(out->verify_note);
			out->verify_note =
			    ms_xasprintf("not verified after detach: the process exited "
					 "the moment memspy detached (nothing left to check)");
			out->verified = true;
		}
		if (!out->verified)
			out->removed = false;
	}
	return rc;
}

void ms_rec_session_free(struct ms_rec_session *s)
{
	if (!s)
		return;
	ms_probes_free(s->pr);
	ms_proc_free(s->p);
	ms_symbolizer_free(s->sym);
	ms_unwinder_free(s->unwinder);
	ms_rec_table_free(s->table);
	ms_modules_free(&s->mods);
	ms_rec_meter_free(&s->m);
	free(s);
}
