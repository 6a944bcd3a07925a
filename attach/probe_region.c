// SPDX-License-Identifier: MIT
/*
 * Where the stubs go: a region within rel32 reach of each probed module,
 * mapped in the target by remote mmap, filled with the stub image, the
 * relocated entry bytes and the countdowns, and given a slot per site.
 * Placement is its own job because it is the only part that depends on the
 * target's address space layout.
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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001u
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002u
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#define KSA_RESTORER 0x04000000ul
#define KSA_RESTART  0x10000000ul

#define PAGE	     4096ull
#define REACH	     ((int64_t)2 << 30)
#define REACH_MARGIN ((int64_t)64 << 20)

bool probe_in_reach(ms_raddr_t base, const struct ms_module *m)
{
	int64_t d1 = (int64_t)(base - m->start),
		d2 = (int64_t)(base + MS_STUB_REGION_SIZE - m->end);

	return llabs(d1) < REACH - REACH_MARGIN && llabs(d2) < REACH - REACH_MARGIN;
}

/* Candidate addresses in the free gaps of maps, nearest to m first. */
static size_t region_candidates(const struct ms_maps *maps, const struct ms_module *m,
				ms_raddr_t *out, size_t max)
{
	size_t n = 0;
	uint64_t need = MS_STUB_REGION_SIZE + 2 * PAGE;

	for (size_t i = 0; i + 1 <= maps->n; i++) {
		ms_raddr_t lo = i ? maps->v[i - 1].end : 0x10000, hi = maps->v[i].start;
		const char *below = i ? maps->v[i - 1].path : NULL;
		const char *above = maps->v[i].path;
		ms_raddr_t c;

		if (hi <= lo || hi - lo < need)
			continue;
		/* Keep out of brk's way above [heap] and of [stack]'s growth below it. */
		if (above && !strcmp(above, "[stack]"))
			c = lo + PAGE;
		else if (below && !strcmp(below, "[heap]"))
			c = hi - MS_STUB_REGION_SIZE - PAGE;
		else if (hi <= m->start)
			c = hi - MS_STUB_REGION_SIZE - PAGE;
		else
			c = lo + PAGE;
		if (above && !strcmp(above, "[stack]") && below && !strcmp(below, "[heap]"))
			c = lo + (hi - lo) / 2;
		c &= ~(PAGE - 1);
		if (!probe_in_reach(c, m) || n >= max)
			continue;
		out[n++] = c;
	}
	/* Nearest first. */
	for (size_t i = 1; i < n; i++) {
		for (size_t j = i; j > 0; j--) {
			int64_t a = llabs((int64_t)(out[j] - m->start));
			int64_t b = llabs((int64_t)(out[j - 1] - m->start));

			if (a >= b)
				break;
			ms_raddr_t t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	}
	return n;
}

/*
 * Ring mode: the region's shared part (draws and rings, MS_STUB_SHARED_OFF
 * on) becomes a memfd mapped in the target and in memspy, so that the
 * drain copies slots with memcpy instead of process_vm_readv (each of which
 * pins the pages it reads: on this VM ~3 us a call and ~0.3 us a page).
 * Every thread is stopped. The memfd is sealed against shrinking before
 * memspy maps it (the target could otherwise truncate it under memspy's
 * reads: SIGBUS), and its descriptor is closed in the target at once, so
 * the target keeps only a mapping, as with the private pages: if memspy
 * dies or stops, a stub writes the ring as before and never waits for
 * anything. Only an armed stub touches this part, and the control page
 * (armed, counters) stays private and wiped on fork: a child's stubs see
 * armed = 0 and never write its parent's rings. Any failure leaves the
 * part private (the drain then reads it with process_vm_readv).
 * MEMSPY_SHARED_RING=0 keeps it private.
 */
static void share_ring(struct ms_probes *pr, struct region *rg)
{
	static const char name[] = "memspy-ring";
	const char *env = getenv("MEMSPY_SHARED_RING");
	ms_raddr_t at = rg->base + MS_STUB_SHARED_OFF;
	char path[64];
	long tfd = -1, ret = 0;
	int fd = -1;
	struct stat st;
	void *v = MAP_FAILED;
	const char *why = NULL;
	uint64_t t0 = ms_now_ns();

	if (!pr->ring || pr->io || (env && !strcmp(env, "0")))
		return;
	/* The name goes where the mapping will be: the page is the region's own. */
	if (ms_proc_write_mem(pr->p, at, name, sizeof(name)) ||
	    probe_rsyscall(pr, SYS_memfd_create, (long)at, MFD_CLOEXEC | MFD_ALLOW_SEALING, 0, 0,
			   0, 0, &tfd) ||
	    tfd < 0) {
		why = "memfd_create in the target failed";
		tfd = -1;
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)pr->pid, tfd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	/* The target is stopped: the descriptor is the memfd just made, empty and unlinked. */
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size || st.st_nlink) {
		why = "opening the target's memfd failed";
		goto out;
	}
	if (ftruncate(fd, MS_STUB_SHARED_SIZE) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		why = "sizing or sealing the memfd failed";
		goto out;
	}
	v = mmap(NULL, MS_STUB_SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (v == MAP_FAILED) {
		why = "mapping the memfd in memspy failed";
		goto out;
	}
	if (probe_rsyscall(pr, SYS_mmap, (long)at, MS_STUB_SHARED_SIZE, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_FIXED, tfd, 0, &ret) ||
	    (ms_raddr_t)ret != at) {
		long r2 = 0;

		why = "mapping the memfd in the target failed";
		/* A failed MAP_FIXED may have unmapped the range: private pages again. */
		if (probe_rsyscall(pr, SYS_mmap, (long)at, MS_STUB_SHARED_SIZE,
				   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				   -1, 0, &r2) ||
		    (ms_raddr_t)r2 != at)
			ms_warn("probe: the ring pages at %#llx in process %d could not be mapped "
				"again: sampling there will fail",
				(unsigned long long)at, (int)pr->pid);
		munmap(v, MS_STUB_SHARED_SIZE);
		v = MAP_FAILED;
		goto out;
	}
	rg->view = v;
out:
	if (tfd >= 0 && (probe_rsyscall(pr, SYS_close, tfd, 0, 0, 0, 0, 0, &ret) || ret))
		ms_warn("probe: closing memspy's memfd (descriptor %ld) in process %d failed",
			tfd, (int)pr->pid);
	if (fd >= 0)
		close(fd);
	if (why)
		ms_debug("probe: region %#llx: ring pages stay private (%s)",
			 (unsigned long long)rg->base, why);
	else
		ms_debug("probe: region %#llx: ring pages shared with memspy (%.1f ms)",
			 (unsigned long long)rg->base, (double)(ms_now_ns() - t0) / 1e6);
}

void probe_unshare_ring(struct region *rg, bool release)
{
	if (!rg->view)
		return;
	/* The pages go for both sides; a straggler's write faults in a zero page. */
	if (release)
		madvise(rg->view, MS_STUB_SHARED_SIZE, MADV_REMOVE);
	munmap(rg->view, MS_STUB_SHARED_SIZE);
	rg->view = NULL;
}

/*
 * Ring mode: the target's own code writes one byte of every page a sample
 * writes first: the control pages, draws, freed ring and headers, the
 * whole slots of the first MS_CAP_LEARN samples (they copy whole stacks),
 * and the first page of the others (the learned cap mostly fits in it).
 * It runs through the page toucher (probe_stubs.S) on one thread, after a
 * populating madvise that allocates the pages from the kernel. Measured on
 * this VM (shadow page tables): a first write into a page cost the stub
 * ~10 us, after a write from memspy or a populating madvise still ~4 us,
 * after a touch by the process itself 0.03 us. A light process takes few
 * samples and never left that first lap: its budget went to faults, and
 * the budget widened the mean to pay them. The pages are the ring's 4.2
 * MiB, all made resident by the madvise (probe_prefault_ring then only maps
 * memspy's own view of them, or writes them itself where the madvise failed).
 */
static int touch_ring(struct ms_probes *pr, struct region *rg, pid_t tid)
{
	static const struct {
		unsigned off, end, stride;
	} spans[] = {
	    {MS_STUB_CTRL_OFF, MS_STUB_DATA_OFF, 4096},
	    {MS_STUB_DATA_OFF, MS_STUB_DATA_OFF + MS_CAP_LEARN * MS_STUB_DATA_SIZE, 4096},
	    {MS_STUB_DATA_OFF + MS_CAP_LEARN * MS_STUB_DATA_SIZE, MS_STUB_REGION_SIZE,
	     MS_STUB_DATA_SIZE},
	};
	long ret = 0;
	int rc;

	if (!rg->tramp || !probe_region_intact(pr, (size_t)(rg - pr->rg)))
		return 0;
	/* Older kernels refuse MADV_POPULATE_WRITE: the touch then does it all. */
	rc = ms_remote_syscall_at(pr->p, tid, rg->base + ms_stub_rsys, SYS_madvise,
				  (const long[6]){(long)(rg->base + MS_STUB_CTRL_OFF),
						  MS_STUB_REGION_SIZE - MS_STUB_CTRL_OFF,
						  MADV_POPULATE_WRITE},
				  &ret);
	rg->populated = !rc && ret == 0;
	for (size_t i = 0; i < MS_ARRAY_SIZE(spans) && !rc; i++) {
		ms_raddr_t a = rg->base + spans[i].off, b = rg->base + spans[i].end;
		const long args[6] = {(long)a, (long)b, (long)spans[i].stride, 0, 0, 0};
		uint8_t probe;

		/* Both ends still mapped (a failed share may have lost the range). */
		if (ms_mem_read_pid(pr->pid, a, &probe, 1) != 1 ||
		    ms_mem_read_pid(pr->pid, b - 1, &probe, 1) != 1)
			return -EFAULT;
		rc = ms_remote_run_to_syscall(pr->p, tid, rg->base + ms_stub_touch,
					      rg->base + ms_stub_rsys, SYS_getpid, args, &ret);
	}
	return rc;
}

/*
 * In the install pause, every thread stopped, before any entry is patched:
 * one of them touches every region's ring (a few ms here, far less on
 * hardware with nested paging). Not later on one held thread while the
 * others run: a process that writes over memspy's pages (the hostile
 * test's scribbler) then had tens of ms of it with stubs live and memspy
 * busy with the one thread, and one such run ended in a SIGSEGV (not
 * understood; 1 of 12 runs). Best effort: a failure only leaves the faults
 * to the stubs. MEMSPY_TOUCH_RING=0 leaves them all to the stubs (for
 * comparisons).
 */
void probe_touch_rings(struct ms_probes *pr)
{
	const char *env = getenv("MEMSPY_TOUCH_RING");
	uint64_t t0 = ms_now_ns();
	pid_t tid;
	int rc = 0;

	if (!pr->ring || pr->io || !pr->nrg || (env && !strcmp(env, "0")))
		return;
	tid = probe_any_thread(pr);
	for (size_t r = 0; r < pr->nrg && tid > 0 && !rc; r++)
		rc = touch_ring(pr, &pr->rg[r], tid);
	pr->st.touch_ns = ms_now_ns() - t0;
	if (tid < 0 || rc)
		ms_debug("probe: the ring pages were not touched by the target: %s",
			 ms_strerror(tid < 0 ? -ESRCH : rc));
	else
		ms_debug("probe: ring pages of %zu regions touched by thread %d of the target "
			 "(%.2f ms)",
			 pr->nrg, (int)tid, (double)pr->st.touch_ns / 1e6);
}

int probe_map_region(struct ms_probes *pr, const struct ms_module *m, struct ms_error *err)
{
	ms_raddr_t cand[64];
	size_t n;
	long ret = 0;
	int rc;

	rc = ms_proc_refresh_maps(pr->p);
	if (rc)
		return ms_error_set(err, rc, "probe: reading /proc/%d/maps: %s", (int)pr->pid,
				    ms_strerror(rc));
	n = region_candidates(ms_proc_maps(pr->p), m, cand, MS_ARRAY_SIZE(cand));
	for (size_t i = 0; i < n; i++) {
		struct region *rg;

		/*
		 * Mapped RX: the stub image goes in through /proc/PID/mem at once,
		 * so the rest of the set-up (the data pages made RW first) already
		 * runs through its trampoline.
		 */
		rc = probe_rsyscall(pr, SYS_mmap, (long)cand[i], MS_STUB_REGION_SIZE,
			      PROT_READ | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0, &ret);
		if (rc)
			return ms_error_set(err, rc, "probe: remote mmap in process %d: %s",
					    (int)pr->pid, ms_strerror(rc));
		if (ret == -EEXIST)
			continue;
		if (ret < 0 && ret > -4096)
			return ms_error_set(err, (int)ret,
					    "probe: remote mmap(%#llx, %#x) in process %d: %s",
					    (unsigned long long)cand[i], MS_STUB_REGION_SIZE,
					    (int)pr->pid, strerror((int)-ret));
		if ((ms_raddr_t)ret != cand[i]) {
			/* A kernel older than 4.17 took the flag as a hint. */
			long r2;

			probe_rsyscall(pr, SYS_munmap, ret, MS_STUB_REGION_SIZE, 0, 0, 0, 0, &r2);
			continue;
		}
		ms_xgrow((void **)&pr->rg, &pr->cap_rg, pr->nrg + 1, sizeof(*pr->rg));
		rg = &pr->rg[pr->nrg++];
		memset(rg, 0, sizeof(*rg));
		rg->base = cand[i];
		ms_debug("probe: region %#llx (+%#x) for %s", (unsigned long long)cand[i],
			 MS_STUB_REGION_SIZE, m->path);
		rc = ms_proc_write_mem(pr->p, rg->base, ms_stub_image, MS_STUB_CODE_SIZE);
		if (rc)
			return ms_error_set(err, rc, "probe: writing the stub code at %#llx: %s",
					    (unsigned long long)rg->base, ms_strerror(rc));
		rg->tramp = true;
		rc = probe_rsyscall(pr, SYS_mprotect, (long)(rg->base + MS_STUB_CTRL_OFF),
			      MS_STUB_REGION_SIZE - MS_STUB_CTRL_OFF, PROT_READ | PROT_WRITE, 0, 0,
			      0, &ret);
		if (!rc && ret)
			rc = (int)ret;
		if (rc)
			return ms_error_set(err, rc, "probe: remote mprotect(%#llx, RW): %s",
					    (unsigned long long)(rg->base + MS_STUB_CTRL_OFF),
					    ms_strerror(rc));
		share_ring(pr, rg);
		return 0;
	}
	return ms_error_set(err, -ENOMEM,
			    "probe: no free address range within +-2 GiB of %s in process %d",
			    m->path, (int)pr->pid);
}

/* A free slot of kind in region r, or -1. */
int probe_take_slot(struct region *r, int kind)
{
	for (int i = 0; i < MS_STUB_NSLOTS; i++) {
		if (!r->used[i] && (int)ms_stub_desc[i].kind == kind) {
			r->used[i] = true;
			return i;
		}
	}
	return -1;
}

/* Fills the regions' code pages, control pages and countdowns; maps code RX. */
/*
 * Does glibc serve some calls of this site by jumping to its own malloc
 * entry (posix_memalign, memalign and aligned_alloc for alignments up to
 * MS_RELAY_ALIGN; realloc of NULL), and is that malloc probed in the same
 * region? Then the stub leaves those calls to the malloc probe.
 */
static bool relays(const struct ms_probes *pr, const struct site *s)
{
	if (!s->glibc || (s->fn != MS_FN_POSIX_MEMALIGN && s->fn != MS_FN_MEMALIGN &&
			  s->fn != MS_FN_ALIGNED_ALLOC && s->fn != MS_FN_REALLOC))
		return false;
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].fn == MS_FN_MALLOC && pr->s[i].mod == s->mod &&
		    pr->s[i].region == s->region && pr->s[i].slot >= 0)
			return true;
	return false;
}

int probe_build_regions(struct ms_probes *pr, struct ms_error *err)
{
	uint8_t *img = ms_xmalloc(MS_STUB_CODE_SIZE);
	int rc = 0;

	for (size_t r = 0; r < pr->nrg && !rc; r++) {
		struct region *rg = &pr->rg[r];
		struct ms_ksigaction ks = {
		    .handler = rg->base + ms_stub_sig_handler,
		    .flags = KSA_RESTORER | KSA_RESTART,
		    .restorer = rg->base + ms_stub_sig_restorer,
		    .mask = 0,
		};
		int64_t cnt[MS_STUB_NCNT * 8];
		uint8_t ctl[5], relay[MS_STUB_NSLOTS] = {0};
		uint64_t sig[2];
		long ret;

		memcpy(img, ms_stub_image, MS_STUB_CODE_SIZE);
		for (size_t i = 0; i < pr->ns; i++) {
			struct site *s = &pr->s[i];
			const struct ms_stub_desc *d;

			if (s->region != r || s->slot < 0)
				continue;
			d = &ms_stub_desc[s->slot];
			rc = ms_decode_relocate(s->orig, sizeof(s->orig), s->entry,
						rg->base + d->orig, PATCH_LEN, &s->reloc);
			if (rc) {
				probe_skip_site(pr, s, "%s", s->reloc.why);
				s->slot = -1;
				rc = 0;
				continue;
			}
			memcpy(img + d->orig, s->reloc.code, s->reloc.len);
		}
		for (size_t i = 0; i < pr->ns; i++)
			if (pr->s[i].region == r && pr->s[i].slot >= 0 && relays(pr, &pr->s[i]))
				relay[pr->s[i].slot] = 1;
		/* RX already: written through /proc/PID/mem, and read back. */
		rc = ms_proc_write_mem(pr->p, rg->base, img, MS_STUB_CODE_SIZE);
		if (rc) {
			ms_error_set(err, rc, "probe: writing the stub code at %#llx: %s",
				     (unsigned long long)rg->base, ms_strerror(rc));
			break;
		}
		memset(cnt, 0, sizeof(cnt));
		for (int k = 0; k < MS_STUB_NCNT; k++)
			cnt[k * 8] = pr->exact ? INT64_MIN / 2 : probe_draw_countdown(pr);
		ctl[MS_CTRL_ARMED] = 0;
		ctl[MS_CTRL_FREE_ALL] = pr->exact && pr->opts.track_frees;
		ctl[MS_CTRL_TRACK] = !pr->exact && pr->opts.track_frees;
		ctl[MS_CTRL_RING] = pr->ring;
		ctl[MS_CTRL_EXACT] = pr->exact;
		memcpy(rg->ctl, ctl, sizeof(ctl));
		memcpy(rg->relay, relay, sizeof(relay));
		sig[0] = MS_RING_MAGIC;
		sig[1] = pr->nonce ^ rg->base;
		if (pr->ring)
			probe_refill_draws(pr, rg, 0, MS_STUB_NDRAW);
		if ((rc = probe_write_remote(pr, rg->base + MS_STUB_CNT_OFF, cnt, sizeof(cnt))) ||
		    (rc = probe_write_remote(pr, probe_rg_ctrl(rg, 0), ctl, sizeof(ctl))) ||
		    (rc = probe_write_remote(pr, probe_rg_ctrl(rg, MS_CTRL_MAGIC), sig,
					     sizeof(sig))) ||
		    (rc = probe_write_remote(pr, probe_rg_ctrl(rg, MS_CTRL_RELAY), relay,
					     sizeof(relay))) ||
		    (rc = probe_write_remote(pr, probe_rg_ctrl(rg, MS_CTRL_SIGACT_NEW), &ks,
					     sizeof(ks)))) {
			ms_error_set(err, rc, "probe: writing the stub data at %#llx: %s",
				     (unsigned long long)rg->base, ms_strerror(rc));
			break;
		}
		/* A forked child must see armed = 0, zero counters and an empty table. */
		/* (Only the private part: a shared mapping cannot be wiped on fork.) */
		rc = probe_rsyscall(pr, SYS_madvise, (long)(rg->base + MS_STUB_CTRL_OFF),
			      (rg->view ? MS_STUB_SHARED_OFF : MS_STUB_REGION_SIZE) -
				  MS_STUB_CTRL_OFF,
			      MADV_WIPEONFORK, 0, 0, 0, &ret);
		if (!rc && ret)
			ms_warn("probe: madvise(MADV_WIPEONFORK) failed in process %d (%s): "
				"forked children keep armed stubs until memspy restores them",
				(int)pr->pid, strerror((int)-ret));
		rc = 0;
	}
	free(img);
	return rc;
}
