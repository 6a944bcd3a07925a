// SPDX-License-Identifier: MIT
/*
 * Stops at a stub's int3 (exact and stop-per-sample modes, and the ring's
 * nested-call check): the sample taken from the trapped thread's registers
 * and stack, and forked children, whose copy of the patched text is put
 * back before they run on.
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

#define KCMP_VM_TYPE 1

const struct site *probe_site_for(const struct ms_probes *pr, size_t region, int slot)
{
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].region == region && pr->s[i].slot == slot)
			return &pr->s[i];
	return NULL;
}

/* The region and slot whose int3 is at addr; false if none. */
bool probe_find_trap(const struct ms_probes *pr, ms_raddr_t addr, size_t *region, int *slot)
{
	for (size_t r = 0; r < pr->nrg; r++) {
		ms_raddr_t b = pr->rg[r].base;

		if (addr < b || addr >= b + MS_STUB_CODE_SIZE)
			continue;
		*region = r;
		*slot = -1;
		for (int i = 0; i < MS_STUB_NSLOTS; i++)
			if (b + ms_stub_desc[i].trap == addr)
				*slot = i;
		return true;
	}
	return false;
}

/* The stack mapping's end above sp (to clamp the copy), or sp + want. */
static size_t stack_room(struct ms_probes *pr, ms_raddr_t sp, size_t want)
{
	const struct ms_map *m = ms_maps_find(ms_proc_maps(pr->p), sp);

	if (!m) {
		ms_proc_refresh_maps(pr->p);
		m = ms_maps_find(ms_proc_maps(pr->p), sp);
	}
	if (!m)
		return want;
	return (size_t)MS_MIN((uint64_t)want, m->end - sp);
}

static void refill(struct ms_probes *pr, const struct region *rg, ms_raddr_t entry_sp)
{
	int64_t v;

	if (pr->exact)
		return;
	v = probe_draw_countdown(pr);
	probe_write_remote(pr, rg->base + MS_STUB_CNT_OFF + ((entry_sp >> 23) & 63) * 64, &v,
			   sizeof(v));
}

/* Emits the events of one trap. The thread stays stopped. */
void probe_on_trap(struct ms_probes *pr, pid_t tid, const struct user_regs_struct *regs,
		    size_t region, int slot, ms_alloc_event_cb cb, void *ctx)
{
	const struct site *s = probe_site_for(pr, region, slot);
	int kind = (int)ms_stub_desc[slot].kind;
	struct ms_alloc_event ev;
	size_t frame = kind == MS_SK_PMEMALIGN ? 32 : 24, len;
	uint64_t w[4], flags, size;
	ms_raddr_t entry_sp;
	ssize_t n;

	if (pr->ring) {
		/*
		 * Ring mode has no reachable int3: only control bytes the target
		 * changed lead here. Its frame is not the stub's either.
		 */
		probe_tamper(pr, region,
			     "a stub trapped in ring mode: the control flags were changed");
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.fn = s ? s->fn : MS_FN_CUSTOM;
	ev.tid = tid;
	ev.time_ns = ms_now_ns();
	if (kind == MS_SK_FREE) {
		ev.type = MS_AE_FREE;
		ev.ptr = regs->rdi;
		pr->st.frees++;
		if (cb)
			cb(&ev, ctx);
		return;
	}
	/* Trap frame {size, aux, flags} (posix_memalign: {rc, size, memptr, flags}), then the
	 * stack. */
	entry_sp = regs->rsp + frame;
	len = frame + stack_room(pr, entry_sp, pr->opts.stack_bytes);
	n = ms_mem_read_pid(pr->pid, regs->rsp, pr->buf, len);
	if (n < (ssize_t)frame) {
		pr->st.dropped++;
		return;
	}
	memcpy(w, pr->buf + (kind == MS_SK_PMEMALIGN ? 8 : 0), sizeof(uint64_t) * 3);
	size = w[0];
	flags = w[2];
	if (kind == MS_SK_REALLOC && (flags & 1) && !(regs->rax == 0 && size != 0)) {
		ev.type = MS_AE_FREE;
		ev.ptr = w[1];
		pr->st.frees++;
		if (cb)
			cb(&ev, ctx);
	}
	if (!(flags & 2))
		return;
	refill(pr, &pr->rg[region], entry_sp);
	ev.type = MS_AE_ALLOC;
	ev.size = size;
	ev.weight = probe_sample_weight(pr, size, pr->opts.sample_bytes);
	ev.ptr = regs->rax;
	ev.regs = *regs;
	ev.regs.rip = s ? s->entry : regs->rip;
	ev.regs.rsp = entry_sp;
	ev.stack = pr->buf + frame;
	ev.stack_len = (size_t)n - frame;
	pr->st.samples++;
	if (cb)
		cb(&ev, ctx);
}

/* Restores the original entry bytes in a forked child (its own copy of the text). */
void probe_restore_child(struct ms_probes *pr, pid_t child)
{
	char path[64];
	int fd;

	/* A vfork/CLONE_VM child shares our text: leave it (the handler covers a stray trap). */
	if (syscall(SYS_kcmp, pr->pid, child, KCMP_VM_TYPE, 0, 0) == 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	for (size_t i = 0; i < pr->ns; i++) {
		const struct site *s = &pr->s[i];

		if (s->patched && pwrite(fd, s->orig, PATCH_LEN, (off_t)s->entry) != PATCH_LEN)
			ms_warn("probe: restoring %s in forked child %d: %s", s->name, (int)child,
				strerror(errno));
	}
	close(fd);
}

int ms_probes_handle_event(struct ms_probes *pr, const struct ms_event *ev, ms_alloc_event_cb cb,
			   void *ctx)
{
	size_t region;
	int slot;
	uint64_t t0;

	if (!pr)
		return 0;
	if (ev->kind == MS_EV_FORK) {
		if (!pr->removed)
			probe_restore_child(pr, ev->child);
		ms_proc_fork_child_detach(ev->child);
		return 1;
	}
	if (ev->kind != MS_EV_TRAP || !probe_find_trap(pr, ev->regs.rip - 1, &region, &slot))
		return 0;
	t0 = ms_now_ns();
	if (slot >= 0)
		probe_on_trap(pr, ev->tid, &ev->regs, region, slot, cb, ctx);
	pr->st.stops++;
	ms_proc_cont_thread(pr->p, ev->tid);
	pr->st.stopped_ns += ms_now_ns() - t0;
	return 1;
}
