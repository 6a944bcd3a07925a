// SPDX-License-Identifier: MIT
/*
 * What a memspy that died leaves in its target, and how it is taken back:
 * the manifest each stub region carries (probe_int.h), the reclaim that
 * reads it (run by the watchdog right after memspy's death, and by the next
 * memspy before it installs its own probes), and the watchdog process.
 *
 * Why restoring is safe once every thread is stopped. An entry's first five
 * bytes hold one instruction, the jmp: a stopped thread is before it, at
 * it, or past it in the stub; none can be inside it (patching refused sites
 * where one was, and the branch sweep refused sites that a branch enters).
 * A thread in the stub runs the displaced instructions from the stub page
 * and jumps back to entry+N, the first byte that was never changed, so
 * putting the original bytes back under it is consistent. The SIGTRAP
 * action goes back last, and only when no thread can still take a probe's
 * int3: the stubs are disarmed first, a thread between a stub's armed check
 * and its int3 is moved past the int3 (as a normal removal does), and a
 * SIGTRAP already queued is taken while traced, suppressed.
 *
 * Why seize rather than write /proc/PID/mem from the watchdog: a plain
 * write races threads executing the bytes it changes (a 5-byte write is not
 * atomic to an instruction fetch), and the SIGTRAP action can only be set
 * by the target itself, i.e. by a remote system call from a tracer. Once
 * memspy is dead its ptrace links are gone and the watchdog may attach.
 */
#include "attach/attach_int.h"
#include "attach/probe_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The manifest sits in the code page, after the last orig slot. */
_Static_assert(MS_STUB_MANIFEST_OFF >= MS_STUB_ORIG_OFF + MS_STUB_NSLOTS * MS_STUB_ORIG_SIZE &&
		   MS_STUB_MANIFEST_OFF + sizeof(struct ms_stub_manifest) <= MS_STUB_CODE_SIZE,
	       "the manifest must fit between the orig slots and the end of the code pages");

uint64_t ms_manifest_sum(const struct ms_stub_manifest *m)
{
	const uint8_t *b = (const uint8_t *)m;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < offsetof(struct ms_stub_manifest, sum); i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Reads and checks the manifest of the region at base: true when valid. */
static bool read_manifest(pid_t pid, ms_raddr_t base, struct ms_stub_manifest *m)
{
	if (ms_mem_read_pid(pid, base + MS_STUB_MANIFEST_OFF, m, sizeof(*m)) !=
	    (ssize_t)sizeof(*m))
		return false;
	return !memcmp(m->sig, MS_MANIFEST_SIG, sizeof(m->sig)) &&
	       m->version == MS_MANIFEST_VERSION && m->nsites <= MS_MANIFEST_SITES &&
	       m->sum == ms_manifest_sum(m);
}

/* Does the region at base run this memspy's stub code (same offsets)? */
static bool image_is_ours(pid_t pid, ms_raddr_t base)
{
	uint8_t *code = ms_xmalloc(MS_STUB_ORIG_OFF);
	bool ok = ms_mem_read_pid(pid, base, code, MS_STUB_ORIG_OFF) == MS_STUB_ORIG_OFF &&
		  !memcmp(code, ms_stub_image, MS_STUB_ORIG_OFF);

	free(code);
	return ok;
}

/* Is a SIGTRAP queued for any thread of p, or for the whole process? */
static bool sigtrap_queued(struct ms_proc *p)
{
	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		pid_t pid = ms_proc_pid(p), tid = ms_proc_thread(p, i);

		if ((ms_procfs_status_mask(pid, tid, "SigPnd") |
		     ms_procfs_status_mask(pid, tid, "ShdPnd")) &
		    SIGBIT(SIGTRAP))
			return true;
	}
	return false;
}

/*
 * Lets the threads run, traced, until no SIGTRAP is queued: each one
 * reaches its signal-delivery stop and is suppressed there; then stops
 * them all again. No new one can be raised meanwhile (the stubs are
 * disarmed, no thread is between a check and its int3), so this only
 * waits for the scheduler: under load a thread may wait tens of
 * milliseconds for a CPU, so the bound is in seconds, not in rounds of a
 * fixed few milliseconds (160 ms in all gave up at load 20 on 2 cores).
 * 0 once none is queued, -EAGAIN (one stays queued: a thread blocks it),
 * or a negative code (threads may then run).
 */
static int settle_queued(struct ms_proc *p)
{
	uint64_t end = ms_now_ns() + 5000000000ull;

	while (sigtrap_queued(p)) {
		int rc;

		if (ms_now_ns() > end)
			return -EAGAIN;
		ms_debug("probe: reclaim: a SIGTRAP is queued in process %d: letting it arrive "
			 "while traced",
			 (int)ms_proc_pid(p));
		ms_proc_resume_all(p);
		for (int polls = 0; polls < 100 && sigtrap_queued(p); polls++) {
			struct ms_event ev;

			if (ms_proc_wait(p, 5, &ev))
				return -MS_E_TARGET_EXITED;
			if (ev.kind == MS_EV_TRAP)
				ms_proc_cont_thread(p, ev.tid); /* suppressed */
			else if (ev.kind == MS_EV_EXITED)
				return -MS_E_TARGET_EXITED;
			else if (ev.kind == MS_EV_FORK)
				ms_proc_fork_child_detach(ev.child);
		}
		rc = ms_proc_stop_all(p);
		if (rc)
			return rc;
	}
	return 0;
}

struct found {
	ms_raddr_t base;
	struct ms_stub_manifest m;
	bool ours; /* its stub code is this memspy's: offsets (guards, trampoline) apply */
};

/*
 * Stub regions with a valid manifest in pid's maps: a region is an
 * anonymous r-x code part directly followed by its anonymous rw- data.
 * Anonymous mappings may merge with a neighbour, so the code part's start
 * is taken from where the data begins.
 */
static size_t scan_regions(pid_t pid, struct found **out)
{
	struct ms_maps maps;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (ms_maps_read(pid, &maps, NULL))
		return 0;
	for (size_t i = 1; i < maps.n; i++) {
		const struct ms_map *c = &maps.v[i - 1], *d = &maps.v[i];
		ms_raddr_t base = d->start - MS_STUB_CODE_SIZE;
		struct ms_stub_manifest m;

		if (c->path || d->path || !c->x || c->w || !d->w || c->shared || d->shared ||
		    c->end != d->start || d->start - c->start < MS_STUB_CODE_SIZE ||
		    /* Ring mode's shared part, when mapped, is a mapping of its own after d. */
		    d->end - d->start < MS_STUB_SHARED_OFF - MS_STUB_CODE_SIZE)
			continue;
		if (!read_manifest(pid, base, &m))
			continue;
		ms_xgrow((void **)out, &cap, n + 1, sizeof(**out));
		(*out)[n].base = base;
		(*out)[n].m = m;
		n++;
	}
	ms_maps_free(&maps);
	return n;
}

size_t ms_probe_leftovers(pid_t pid)
{
	struct found *f;
	size_t n = scan_regions(pid, &f);

	free(f);
	return n;
}

/* Is some thread's rip strictly inside (lo, hi)? (true when a thread cannot be read) */
static bool thread_within(struct ms_proc *p, ms_raddr_t lo, ms_raddr_t hi)
{
	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		struct user_regs_struct r;

		if (ms_proc_get_regs(p, ms_proc_thread(p, i), &r))
			return true;
		if (r.rip > lo && r.rip < hi)
			return true;
	}
	return false;
}

/* Is tid's rip in a remote-syscall trampoline of one of the regions? */
static bool in_trampoline(struct ms_proc *p, pid_t tid, const struct found *f, size_t nf)
{
	struct user_regs_struct r;

	if (ms_proc_get_regs(p, tid, &r))
		return false;
	for (size_t k = 0; k < nf; k++)
		if (f[k].ours && r.rip >= f[k].base + ms_stub_rsys &&
		    r.rip < f[k].base + ms_stub_sig_handler)
			return true;
	return false;
}

/*
 * A thread the dead memspy had pointed at a region's remote-syscall
 * trampoline has yet to run that call (rt_sigaction installing memspy's
 * handler, say) and to restore itself: let it, before anything is read.
 * Only that thread runs, the others stay stopped, in windows that grow
 * from 1 ms: under load it may not get a CPU for tens of milliseconds
 * (50 windows of 1 ms with every thread let out gave up at load 20 on 2
 * cores, and the handler memspy had just installed stayed). The
 * trampoline is a few instructions with no wait in them, so the bound
 * (5 s) is only against a thread the scheduler never runs.
 * 0, -EAGAIN when one stays there, or a negative code from stopping.
 */
static int let_trampolines_finish(struct ms_proc *p, const struct found *f, size_t nf)
{
	uint64_t end = ms_now_ns() + 5000000000ull;
	bool let_out = false;

	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		pid_t tid = ms_proc_thread(p, i);
		unsigned win_us = 1000;

		while (in_trampoline(p, tid, f, nf)) {
			int rc;

			if (ms_now_ns() > end)
				return -EAGAIN;
			ms_debug("probe: reclaim: thread %d is in a remote-syscall trampoline: "
				 "letting it finish (%u us)",
				 (int)tid, win_us);
			rc = ms_proc_cont_thread(p, tid);
			if (rc)
				return rc;
			let_out = true;
			usleep(win_us);
			if (win_us < 50000)
				win_us *= 2;
			rc = ms_proc_stop_thread(p, tid);
			if (rc == -ESRCH)
				break; /* it exited */
			if (rc)
				return rc;
		}
	}
	/* Every thread held again (and counted as such, and any born meanwhile). */
	return let_out ? ms_proc_stop_all(p) : 0;
}

/* A thread between a stub's armed check and its int3 would still trap: move it past. */
static void move_past_traps(struct ms_proc *p, const struct found *f, size_t nf)
{
	for (size_t i = 0; i < ms_proc_nthreads(p); i++) {
		pid_t tid = ms_proc_thread(p, i);
		struct user_regs_struct r;

		if (ms_proc_get_regs(p, tid, &r))
			continue;
		for (size_t k = 0; k < nf; k++) {
			if (!f[k].ours || r.rip < f[k].base || r.rip >= f[k].base + MS_STUB_CODE_SIZE)
				continue;
			for (int s = 0; s < MS_STUB_NSLOTS; s++) {
				ms_raddr_t g = f[k].base + ms_stub_desc[s].guard;
				ms_raddr_t t = f[k].base + ms_stub_desc[s].trap;

				if (r.rip >= g && r.rip <= t) {
					ms_debug("probe: reclaim: thread %d before a stub's int3: "
						 "moved past it",
						 (int)tid);
					r.rip = t + 1;
					ms_proc_set_regs(p, tid, &r);
				}
			}
		}
	}
}

/* Puts back the entries of region f that still hold its jmp. */
static void restore_entries(struct ms_proc *p, const struct found *f, struct ms_reclaim *out)
{
	for (uint32_t i = 0; i < f->m.nsites; i++) {
		ms_raddr_t entry = f->m.site[i].entry;
		int32_t rel = (int32_t)(int64_t)(f->m.site[i].stub - (entry + PATCH_LEN));
		uint8_t jmp[PATCH_LEN] = {0xe9}, now[PATCH_LEN];

		memcpy(jmp + 1, &rel, 4);
		if (ms_mem_read_pid(ms_proc_pid(p), entry, now, PATCH_LEN) != PATCH_LEN ||
		    memcmp(now, jmp, PATCH_LEN))
			continue; /* never patched, put back already, or not ours any more */
		if (thread_within(p, entry, entry + PATCH_LEN)) {
			out->left++;
			out->why_left = "a thread is inside an entry's first bytes";
			continue;
		}
		if (ms_proc_write_mem(p, entry, f->m.site[i].orig, PATCH_LEN)) {
			out->left++;
			out->why_left = "writing an entry's bytes failed";
			continue;
		}
		out->restored++;
	}
}

/* A remote system call on a stopped thread, through region f's trampoline when it is ours. */
static int rsys(struct ms_proc *p, const struct found *f, long nr, long a0, long a1, long a2,
		long a3, long *ret)
{
	const long args[6] = {a0, a1, a2, a3, 0, 0};
	pid_t tid = ms_proc_plain_stopped_thread(p);

	if (tid < 0)
		return -ESRCH;
	return ms_remote_syscall_at(p, tid, f->ours ? f->base + ms_stub_rsys : 0, nr, args, ret);
}

/* The region whose manifest names handler as memspy's, or NULL. */
static const struct found *owner_of(const struct found *f, size_t nf, uint64_t handler)
{
	for (size_t k = 0; k < nf; k++)
		if (f[k].m.our_handler == handler)
			return &f[k];
	return NULL;
}

/*
 * If the SIGTRAP action is a memspy `ret` handler of one of the regions,
 * sets the action that region's memspy found (following a chain of
 * memspies, each of which saw the previous one's handler).
 */
static void restore_handler(struct ms_proc *p, const struct found *f, size_t nf,
			    struct ms_reclaim *out)
{
	const struct found *at = NULL, *own;
	struct ms_ksigaction cur, want;
	pid_t pid = ms_proc_pid(p);
	long ret = 0;
	int rc;

	/* The scratch words and the trampoline: any region of this memspy's layout. */
	for (size_t k = 0; k < nf && !at; k++)
		if (f[k].ours)
			at = &f[k];
	if (!at)
		at = &f[0];
	rc = rsys(p, at, SYS_rt_sigaction, SIGTRAP, 0,
		  (long)(at->base + MS_STUB_CTRL_OFF + MS_CTRL_SIGACT_CUR), 8, &ret);
	if (!rc && ret)
		rc = (int)ret;
	if (rc || ms_mem_read_pid(pid, at->base + MS_STUB_CTRL_OFF + MS_CTRL_SIGACT_CUR, &cur,
				  sizeof(cur)) != (ssize_t)sizeof(cur)) {
		out->why_left = "the SIGTRAP action could not be read";
		return;
	}
	own = owner_of(f, nf, cur.handler);
	if (!own)
		return; /* the target's own action (put back already, or set since) */
	out->handler_found = true;
	want = own->m.sigact_old;
	for (size_t hops = 0; hops < nf; hops++) {
		const struct found *prev = owner_of(f, nf, want.handler);

		if (!prev)
			break;
		want = prev->m.sigact_old;
	}
	for (size_t k = 0; k < nf; k++) {
		if (!f[k].ours) {
			/* Its int3s are where this memspy cannot tell: the handler must stay. */
			out->why_left = "a region was left by another memspy version";
			return;
		}
	}
	rc = settle_queued(p);
	if (rc) {
		out->why_left = rc == -EAGAIN ? "a SIGTRAP stays queued (a thread blocks it?)"
					      : "the threads could not be stopped again";
		return;
	}
	if (ms_proc_write_mem(p, at->base + MS_STUB_CTRL_OFF + MS_CTRL_SIGACT_NEW, &want,
			      sizeof(want))) {
		out->why_left = "the SIGTRAP action could not be written";
		return;
	}
	rc = rsys(p, at, SYS_rt_sigaction, SIGTRAP,
		  (long)(at->base + MS_STUB_CTRL_OFF + MS_CTRL_SIGACT_NEW), 0, 8, &ret);
	if (!rc && ret)
		rc = (int)ret;
	if (rc) {
		out->why_left = "rt_sigaction in the target failed";
		return;
	}
	out->handler_restored = true;
}

int ms_probe_reclaim(struct ms_proc *p, const ms_raddr_t *bases, size_t n, uint64_t nonce,
		     struct ms_reclaim *out)
{
	static const char zero_sig[16];
	pid_t pid = ms_proc_pid(p);
	struct found *f = NULL;
	size_t nf = 0, cap = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (n) {
		for (size_t i = 0; i < n; i++) {
			struct ms_stub_manifest m;

			if (!read_manifest(pid, bases[i], &m) || m.nonce != nonce)
				continue;
			ms_xgrow((void **)&f, &cap, nf + 1, sizeof(*f));
			f[nf].base = bases[i];
			f[nf].m = m;
			nf++;
		}
	} else {
		nf = scan_regions(pid, &f);
	}
	if (!nf) {
		free(f);
		return 0;
	}
	out->nregions = nf;
	out->memspy_pid = f[0].m.memspy_pid;
	out->written_in = f[0].m.target_pid;
	for (size_t k = 0; k < nf; k++)
		f[k].ours = image_is_ours(pid, f[k].base);
	rc = let_trampolines_finish(p, f, nf);
	if (rc) {
		free(f);
		return rc;
	}
	for (size_t k = 0; k < nf; k++) {
		static const uint8_t off[3];

		/* Disarmed: armed, free-all and track (a forked child's are 0 already). */
		ms_proc_write_mem(p, f[k].base + MS_STUB_CTRL_OFF + MS_CTRL_ARMED, off,
				  sizeof(off));
	}
	move_past_traps(p, f, nf);
	for (size_t k = 0; k < nf; k++)
		restore_entries(p, &f[k], out);
	restore_handler(p, f, nf, out);
	/* Done with a region when nothing it lists is left: its manifest is retired. */
	if (!out->left && (!out->handler_found || out->handler_restored))
		for (size_t k = 0; k < nf; k++)
			if (ms_proc_write_mem(p, f[k].base + MS_STUB_MANIFEST_OFF, zero_sig,
					      sizeof(zero_sig)))
				ms_debug("probe: reclaim: retiring the manifest at %#llx failed",
					 (unsigned long long)f[k].base);
	ms_debug("probe: reclaim in process %d: %zu region(s) of memspy %d, %zu entries "
		 "restored, %zu left, SIGTRAP handler %s%s%s",
		 (int)pid, nf, (int)out->memspy_pid, out->restored, out->left,
		 !out->handler_found ? "not memspy's" : out->handler_restored ? "restored" : "left",
		 out->why_left ? ": " : "", out->why_left ? out->why_left : "");
	free(f);
	return 0;
}

/* ------------------------------ watchdog ------------------------------ */

/* Has any thread of pid a tracer? (the dead memspy's links go during its exit) */
static bool traced(pid_t pid)
{
	char path[300], buf[2048];
	struct dirent *de;
	bool any = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!any && (de = readdir(d))) {
		const char *t;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
		if (ms_proc_read_status(path, buf, sizeof(buf)) <= 0)
			continue;
		t = strstr(buf, "TracerPid:");
		any = t && atoi(t + 10) != 0;
	}
	closedir(d);
	return any;
}

/* Seizes, stops, reclaims the regions at base, resumes and detaches. */
static void watchdog_reclaim(pid_t target, const ms_raddr_t *base, size_t n, uint64_t nonce)
{
	uint64_t end = ms_now_ns() + 10000000000ull;
	struct ms_proc *p = NULL;
	struct ms_reclaim rec;

	/* Bounded: a new tracer (another memspy) may hold it; that one reclaims then. */
	while (ms_now_ns() < end) {
		if (!traced(target) && ms_proc_seize(target, NULL, &p, NULL) == 0)
			break;
		p = NULL;
		if (kill(target, 0) && errno == ESRCH)
			return;
		usleep(2000);
	}
	if (!p)
		return;
	ms_remote_prepare(p);
	if (ms_proc_stop_all(p) == 0 && ms_probe_reclaim(p, base, n, nonce, &rec) == 0 &&
	    rec.nregions) {
		if (rec.left || (rec.handler_found && !rec.handler_restored))
			ms_warn("watchdog: memspy died; process %d: restored %zu entry point%s, "
				"%zu left patched and disarmed%s%s",
				(int)target, rec.restored, rec.restored == 1 ? "" : "s", rec.left,
				rec.why_left ? ": " : "", rec.why_left ? rec.why_left : "");
		else
			ms_info("watchdog: memspy died; process %d restored (%zu entry point%s, "
				"its SIGTRAP action)",
				(int)target, rec.restored, rec.restored == 1 ? "" : "s");
	}
	ms_proc_resume_all(p);
	ms_proc_free(p); /* detaches */
}

/*
 * Test and diagnosis hook: MEMSPY_TEST_WATCHDOG_LOG=FILE appends the
 * watchdog's debug lines (what its reclaim did and why) to FILE.
 */
static void watchdog_log(pid_t target)
{
	const char *path = getenv("MEMSPY_TEST_WATCHDOG_LOG");
	int fd;

	if (!path || !*path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dup2(fd, STDERR_FILENO);
	close(fd);
	ms_log_verbosity = MS_LOG_DEBUG;
	ms_debug("watchdog %d: memspy died, reclaiming process %d", (int)getpid(), (int)target);
}

/* The watchdog's state, in the helper process (deadman.c). */
struct watchdog {
	pid_t target;
	uint64_t nonce;
	int mfd; /* the target's /proc/PID/mem, opened before memspy changed anything */
	ms_raddr_t base[64];
	size_t n;
};

static void watchdog_msg(void *st, uint64_t region, uint64_t unused)
{
	struct watchdog *w = st;

	(void)unused;
	if (w->n < MS_ARRAY_SIZE(w->base))
		w->base[w->n++] = region;
}

static void watchdog_died(void *st)
{
	struct watchdog *w = st;
	size_t live = 0;
	const char *hook;

	/* memspy's own fault injection (attach/remote.c) is not the watchdog's. */
	unsetenv("MEMSPY_TEST_KILL_AT");
	/*
	 * First, at once and without a stop: no new sample starts. mfd was
	 * opened on the target's address space before memspy touched it, so
	 * a pid reused since cannot be written by mistake.
	 */
	for (size_t i = 0; i < w->n; i++) {
		uint8_t zero = 0;
		struct ms_stub_manifest m;

		if (pwrite(w->mfd, &zero, 1, (off_t)(w->base[i] + MS_STUB_CTRL_OFF + MS_CTRL_ARMED)) <
		    0)
			break;
		if (pread(w->mfd, &m, sizeof(m), (off_t)(w->base[i] + MS_STUB_MANIFEST_OFF)) ==
			(ssize_t)sizeof(m) &&
		    !memcmp(m.sig, MS_MANIFEST_SIG, sizeof(m.sig)) && m.nonce == w->nonce)
			live++;
	}
	close(w->mfd);
	/* Test hook (tests/e2e/chaos_e2e.py): a watchdog that only disarms, as before. */
	hook = getenv("MEMSPY_TEST_WATCHDOG");
	watchdog_log(w->target);
	if (!live || (hook && !strcmp(hook, "disarm-only")))
		return;
	watchdog_reclaim(w->target, w->base, w->n, w->nonce);
}

int ms_probe_watchdog_start(pid_t target, uint64_t nonce, struct ms_deadman *wd)
{
	static const struct ms_deadman_ops ops = {.on_msg = watchdog_msg,
						  .on_death = watchdog_died};
	struct watchdog w = {.target = target, .nonce = nonce};
	char path[64];
	int rc;

	wd->fd = wd->pid = -1;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)target);
	w.mfd = open(path, O_RDWR | O_CLOEXEC);
	if (w.mfd < 0)
		return -errno;
	rc = ms_deadman_start(wd, &ops, &w, w.mfd);
	close(w.mfd);
	return rc;
}

void ms_probe_watchdog_add(const struct ms_deadman *wd, ms_raddr_t region)
{
	int rc = ms_deadman_send(wd, region, 0);

	if (rc && wd->fd >= 0)
		ms_warn("probe: the watchdog did not take region %#llx: %s",
			(unsigned long long)region, strerror(-rc));
}

void ms_probe_watchdog_stop(struct ms_deadman *wd)
{
	ms_deadman_stop(wd);
}
