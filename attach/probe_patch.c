// SPDX-License-Identifier: MIT
/*
 * What memspy changes in the target and how it is switched on: the SIGTRAP
 * action (the stubs' safety net), the manifests that let a watchdog or a
 * later memspy undo everything, the integrity checks of memspy's pages, the
 * jmp written at each entry while no thread is inside it, and the armed
 * bytes. Kept together because each write here must be undone by
 * probe_remove.c in the reverse order.
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

#define PATCH_RETRIES 50

int probe_install_sigtrap(struct ms_probes *pr, struct ms_error *err)
{
	struct region *rg = &pr->rg[0];
	long ret;
	int rc = probe_rsyscall(pr, SYS_rt_sigaction, SIGTRAP,
				(long)probe_rg_ctrl(rg, MS_CTRL_SIGACT_NEW),
				(long)probe_rg_ctrl(rg, MS_CTRL_SIGACT_OLD), 8, 0, 0, &ret);

	if (!rc && ret)
		rc = (int)ret;
	if (rc)
		return ms_error_set(err, rc,
				    "probe: remote rt_sigaction(SIGTRAP) in process %d: %s",
				    (int)pr->pid, ms_strerror(rc));
	pr->sigact_installed = true;
	return 0;
}

int probe_restore_sigtrap(struct ms_probes *pr)
{
	long ret;
	int rc;

	ms_raddr_t from;

	if (!pr->sigact_installed)
		return 0;
	if (pr->rg[0].overwritten) {
		/*
		 * The control page's copy is the target's to overwrite, and the
		 * region may be gone or unreadable: memspy's own copy goes below a
		 * stopped thread's stack (under the red zone and the remote-syscall
		 * frame: scratch to a stopped thread), for the kernel to read.
		 */
		struct user_regs_struct regs;
		pid_t tid = probe_any_thread(pr);

		if (tid < 0 || ms_proc_get_regs(pr->p, tid, &regs))
			return -MS_E_TARGET_EXITED;
		from = (regs.rsp - 1024) & ~(ms_raddr_t)15;
		rc = ms_proc_write_mem(pr->p, from, &pr->sigact_old, sizeof(pr->sigact_old));
		if (rc)
			return rc;
	} else if (!probe_code_intact(pr, 0)) {
		return 0; /* exec'd: the kernel reset every handler already */
	} else {
		from = probe_rg_ctrl(&pr->rg[0], MS_CTRL_SIGACT_OLD);
	}
	rc = probe_rsyscall(pr, SYS_rt_sigaction, SIGTRAP, (long)from, 0, 8, 0, 0, &ret);
	if (!rc && ret)
		rc = (int)ret;
	if (!rc)
		pr->sigact_installed = false;
	return rc;
}

/* ------------------------------ manifests ------------------------------ */

/*
 * Writes each region's manifest (probe_int.h): its sites and the SIGTRAP
 * action memspy is about to replace, act. Before the action is replaced and
 * before any entry is patched, so that a memspy death at any moment after
 * leaves what the watchdog or the next memspy need to put everything back.
 */
int probe_write_manifests(struct ms_probes *pr, const struct ms_ksigaction *act)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		struct ms_stub_manifest m;
		int rc;

		memset(&m, 0, sizeof(m));
		memcpy(m.sig, MS_MANIFEST_SIG, sizeof(m.sig));
		m.version = MS_MANIFEST_VERSION;
		m.nonce = pr->nonce;
		m.memspy_pid = (int32_t)getpid();
		m.target_pid = (int32_t)pr->pid;
		m.our_handler = pr->rg[0].base + ms_stub_sig_handler;
		m.sigact_old = *act;
		for (size_t i = 0; i < pr->ns && m.nsites < MS_MANIFEST_SITES; i++) {
			const struct site *s = &pr->s[i];

			if (s->slot < 0 || s->region != r)
				continue;
			m.site[m.nsites].entry = s->entry;
			m.site[m.nsites].stub = pr->rg[r].base + ms_stub_desc[s->slot].stub;
			memcpy(m.site[m.nsites].orig, s->orig, sizeof(m.site[0].orig));
			m.nsites++;
		}
		m.sum = ms_manifest_sum(&m);
		rc = ms_proc_write_mem(pr->p, pr->rg[r].base + MS_STUB_MANIFEST_OFF, &m, sizeof(m));
		if (rc)
			return rc;
	}
	return 0;
}

/* Everything is back: the manifests say nothing is left to do. */
void probe_retire_manifests(struct ms_probes *pr)
{
	static const char zero_sig[16];

	for (size_t r = 0; r < pr->nrg; r++)
		if (probe_code_intact(pr, r))
			ms_proc_write_mem(pr->p, pr->rg[r].base + MS_STUB_MANIFEST_OFF, zero_sig,
					  sizeof(zero_sig));
}

/*
 * Before planning (which reads the entries' bytes): puts back what an earlier
 * memspy that died left (ms_probe_reclaim) and says so in one line. A
 * memspy `ret` handler that could not be taken back is refused here, with
 * its cause, rather than as a handler of the target's own.
 */
int probe_reclaim_leftovers(struct ms_probes *pr, struct ms_error *err)
{
	struct ms_reclaim rec;
	int rc;

	if (!ms_probe_leftovers(pr->pid))
		return 0;
	ms_remote_prepare(pr->p);
	rc = ms_proc_stop_all(pr->p);
	if (rc)
		return ms_error_set(err, rc, "probe: stopping the threads of process %d: %s",
				    (int)pr->pid, ms_strerror(rc));
	rc = ms_probe_reclaim(pr->p, NULL, 0, 0, &rec);
	ms_proc_resume_all(pr->p);
	if (rc || !rec.nregions)
		return 0;
	if ((rec.restored || rec.handler_restored) && rec.written_in != pr->pid)
		/* A child forked while probed: its parent's memspy restored its bytes only. */
		ms_warn(
		    "found probes memspy (pid %d) left in process %d before it forked this one: "
		    "restored %zu entry point%s%s",
		    (int)rec.memspy_pid, (int)rec.written_in, rec.restored,
		    rec.restored == 1 ? "" : "s",
		    rec.handler_restored ? " and the SIGTRAP action" : "");
	else if (rec.restored || rec.handler_restored)
		ms_warn("found probes left by an earlier memspy (pid %d) that was killed: restored "
			"%zu entry point%s%s",
			(int)rec.memspy_pid, rec.restored, rec.restored == 1 ? "" : "s",
			rec.handler_restored ? " and the SIGTRAP action" : "");
	if (rec.handler_found && !rec.handler_restored) {
		ms_error_set(err, -MS_E_UNSUPPORTED,
			     "probe: process %d still has the SIGTRAP handler of an earlier memspy "
			     "(pid %d) that was killed: %s",
			     (int)pr->pid, (int)rec.memspy_pid,
			     rec.why_left ? rec.why_left : "it could not be restored");
		ms_error_hint(err, "try again in a moment, or use `memspy record --mode walk` "
				   "(no probes)");
		return err ? err->code : -MS_E_UNSUPPORTED;
	}
	if (rec.left)
		ms_warn(
		    "probe: %zu entry point%s left by that memspy stay patched and disarmed: %s",
		    rec.left, rec.left == 1 ? "" : "s", rec.why_left ? rec.why_left : "?");
	return 0;
}

/* The SIGTRAP action as /proc shows it: ignored or default (a handler was refused). */
struct ms_ksigaction probe_sigtrap_action_now(pid_t pid)
{
	struct ms_ksigaction a = {0, 0, 0, 0};

	if (ms_procfs_status_mask(pid, 0, "SigIgn") & SIGBIT(SIGTRAP))
		a.handler = (uint64_t)(uintptr_t)SIG_IGN;
	return a;
}

/* ------------------------------ patching ------------------------------ */

/* Is any stopped thread strictly inside [lo+1, hi)? */
static bool thread_inside(struct ms_probes *pr, ms_raddr_t lo, ms_raddr_t hi)
{
	for (size_t i = 0; i < ms_proc_nthreads(pr->p); i++) {
		struct user_regs_struct regs;

		if (ms_proc_get_regs(pr->p, ms_proc_thread(pr->p, i), &regs))
			continue;
		if (regs.rip > lo && regs.rip < hi)
			return true;
	}
	return false;
}

/*
 * Does region r still hold memspy's stub code? After an exec (not traced)
 * or an munmap its addresses may belong to something else: never write there.
 */
bool probe_code_intact(const struct ms_probes *pr, size_t r)
{
	uint8_t code[64];
	struct iovec l = {code, sizeof(code)};
	struct iovec rv = {(void *)(uintptr_t)pr->rg[r].base, sizeof(code)};

	return probe_ring_readv((struct ms_probes *)pr, &l, 1, &rv, 1) == (ssize_t)sizeof(code) &&
	       !memcmp(code, ms_stub_image, sizeof(code));
}

/*
 * ... and are its data pages still memspy's? A region whose pages failed
 * the drain's checks is neither written (its pages may now hold the
 * target's own data) nor used for remote system calls.
 */
bool probe_region_intact(const struct ms_probes *pr, size_t r)
{
	return !pr->rg[r].tampered && probe_code_intact(pr, r);
}

/* The 5-byte jmp from site s to its stub. */
void probe_site_jmp(const struct ms_probes *pr, const struct site *s, uint8_t jmp[PATCH_LEN])
{
	ms_raddr_t stub = pr->rg[s->region].base + ms_stub_desc[s->slot].stub;
	int32_t rel = (int32_t)(int64_t)(stub - (s->entry + PATCH_LEN));

	jmp[0] = 0xe9;
	memcpy(jmp + 1, &rel, 4);
}

/*
 * Makes the sample ring's pages (headers and stack copies) resident in the
 * target, and memspy's own view of a shared ring with them. On this VM
 * (shadow page tables) a write from memspy still left the stub a 4-10 us
 * fault on its first write into each page; the pages a sample writes first
 * are touched by the target itself at install (probe_region.c,
 * touch_ring), whose MADV_POPULATE_WRITE in the target made the rest of
 * each slot resident. Where that call succeeded, only memspy's view is left
 * to map (its own populating madvise, no copy); where it failed (older
 * kernels, no touch), zeros are written over the ring, or a shared part's
 * bytes copied onto themselves.
 */
void probe_prefault_ring(struct ms_probes *pr)
{
	static const uint8_t zero[65536];
	uint64_t t0 = ms_now_ns();

	if (!pr->ring)
		return;
	for (size_t r = 0; r < pr->nrg; r++) {
		if (pr->rg[r].populated &&
		    (!pr->rg[r].view ||
		     madvise(pr->rg[r].view, MS_STUB_SHARED_SIZE, MADV_POPULATE_WRITE) == 0))
			continue;
		/*
		 * A shared part: its own bytes copied onto themselves from memspy's
		 * mapping, which faults the pages in on both sides in one call (the
		 * draws are kept; nothing is armed yet), out of the install pause
		 * (populating them there took 3-27 ms on this VM).
		 */
		if (pr->rg[r].view) {
			struct iovec l = {pr->rg[r].view, MS_STUB_SHARED_SIZE},
				     rv = {(void *)(uintptr_t)(pr->rg[r].base + MS_STUB_SHARED_OFF),
					   MS_STUB_SHARED_SIZE};

			if (process_vm_writev(pr->pid, &l, 1, &rv, 1, 0) != (ssize_t)l.iov_len)
				ms_debug("probe: faulting in the shared ring of region %zu: %s", r,
					 strerror(errno));
			continue;
		}
		for (ms_raddr_t off = MS_STUB_HDR_OFF; off < MS_STUB_REGION_SIZE;
		     off += sizeof(zero))
			if (probe_write_remote(pr, pr->rg[r].base + off, zero,
					 (size_t)MS_MIN((ms_raddr_t)sizeof(zero),
							MS_STUB_REGION_SIZE - off)))
				break;
	}
	ms_debug("probe: ring pages made resident in %.2f ms", (double)(ms_now_ns() - t0) / 1e6);
}

int probe_set_armed(struct ms_probes *pr, bool on)
{
	int rc = 0;

	if (on && !pr->armed)
		pr->armed_ns = ms_now_ns();
	pr->armed = on;
	for (size_t r = 0; r < pr->nrg; r++) {
		uint8_t v = on;
		int e;

		if (!probe_region_intact(pr, r))
			continue;
		e = probe_write_remote(pr, probe_rg_ctrl(&pr->rg[r], MS_CTRL_ARMED), &v, 1);

		if (e && !rc)
			rc = e;
		if (!on) {
			uint8_t z[2] = {0, 0};

			/* What the drain's checks expect from here on. */
			pr->rg[r].ctl[MS_CTRL_FREE_ALL] = pr->rg[r].ctl[MS_CTRL_TRACK] = 0;

			probe_write_remote(pr, probe_rg_ctrl(&pr->rg[r], MS_CTRL_FREE_ALL), z, 2);
		}
	}
	return rc;
}

int probe_patch_sites(struct ms_probes *pr)
{
	size_t done = 0;

	for (size_t i = 0; i < pr->ns; i++) {
		struct site *s = &pr->s[i];
		uint8_t jmp[PATCH_LEN];
		int tries = 0, rc;

		if (s->slot < 0)
			continue;
		probe_site_jmp(pr, s, jmp);
		while (thread_inside(pr, s->entry, s->entry + s->reloc.displaced)) {
			/* Let it run out of the range, then stop again. */
			if (++tries > PATCH_RETRIES)
				break;
			ms_proc_resume_all(pr->p);
			usleep(100);
			rc = ms_proc_stop_all(pr->p);
			if (rc)
				return rc;
		}
		if (tries > PATCH_RETRIES) {
			probe_skip_site(pr, s, "a thread stays inside its first %zu bytes",
				  s->reloc.displaced);
			continue;
		}
		rc = ms_proc_write_mem(pr->p, s->entry, jmp, PATCH_LEN);
		if (rc) {
			probe_skip_site(pr, s, "writing the jmp at %#llx: %s",
				  (unsigned long long)s->entry, ms_strerror(rc));
			continue;
		}
		s->patched = true;
		done++;
	}
	return done ? 0 : -MS_E_NOT_FOUND;
}
