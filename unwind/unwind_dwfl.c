// SPDX-License-Identifier: MIT
/*
 * unwind/dwfl: elfutils over the copied stack, as perf does: dwfl_attach_state
 * with a memory_read that serves the copy (and the optional fallback reader)
 * and initial registers from user_regs_struct in DWARF order. Also the module
 * reporting that the symbolizer shares.
 */
#include "unwind/unwind_cfi.h"
#include "unwind/unwind_int.h"
#include "attach/debuginfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ============================ module reporting ============================ */

/*
 * libdwfl's find_elf callback has no user argument, so the mapping table it
 * needs is handed over here, only for the duration of the report and the
 * eager opening that follows (every file is opened inside that window).
 */
struct open_ctx {
	pid_t pid;
	struct ms_maps maps;
};
static __thread struct open_ctx *cur_open;

static int open_module_file(const struct open_ctx *c, const char *name)
{
	/* map_files finds the mapped file itself, across chroots and mount
	 * namespaces, and even after it was deleted or replaced on disk; the
	 * target's root is checked to still hold the mapped inode. */
	for (size_t i = 0; i < c->maps.n; i++) {
		const struct ms_map *m = &c->maps.v[i];
		int fd;

		if (!m->path || strcmp(m->path, name) != 0)
			continue;
		fd = ms_open_mapped_file(c->pid, m, NULL, NULL);
		return fd >= 0 ? fd : -1;
	}
	/* Mapped after memspy read the maps: without its inode, nothing is opened. */
	return -1;
}

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	const struct open_ctx *c = cur_open;

	if (c && name && name[0] == '/') {
		int fd = open_module_file(c, name);

		if (fd >= 0) {
			/* The name as the target sees it: libdwfl looks for
			 * .gnu_debuglink files next to it. */
			*file_name = strdup(name);
			*elfp = NULL;
			return fd;
		}
		/*
		 * Not libdwfl's own lookup: it opens the path in memspy's mount
		 * namespace, and the target chooses what is there (a FIFO
		 * blocked open() for good). The module goes without ELF.
		 */
		return -1;
	}
	/* The vDSO ("[vdso: PID]") is read from memory by libdwfl itself. */
	return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

/* Separate debug info: attach/debuginfo (build id, debuglink, debuginfod when allowed). */
static const Dwfl_Callbacks proc_callbacks = {
    .find_elf = find_elf,
    .find_debuginfo = ms_debuginfo_find,
    .debuginfo_path = &ms_debuginfo_search_path,
};

static int open_elf_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
		       void *arg)
{
	Dwarf_Addr bias;

	dwfl_module_getelf(mod, &bias);
	return DWARF_CB_OK;
}

Dwfl *ms_unwind_dwfl_open(pid_t pid, bool add, Dwfl *existing, struct ms_error *err)
{
	struct open_ctx ctx = {.pid = pid};
	Dwfl *dwfl = existing;
	int r;

	/* No network behind memspy's back: DEBUGINFOD_URLS only for its own lookups. */
	ms_debuginfo_init();
	r = ms_maps_read(pid, &ctx.maps, err);
	if (r < 0)
		return NULL;
	if (!dwfl)
		dwfl = dwfl_begin(&proc_callbacks);
	if (!dwfl) {
		ms_error_set(err, -ENOMEM, "unwind: dwfl_begin: %s", dwfl_errmsg(-1));
		goto out;
	}
	if (add)
		dwfl_report_begin_add(dwfl);
	else
		dwfl_report_begin(dwfl);
	cur_open = &ctx;
	r = dwfl_linux_proc_report(dwfl, pid);
	dwfl_report_end(dwfl, NULL, NULL);
	if (r != 0) {
		cur_open = NULL;
		ms_error_set(err, r > 0 ? -r : -EIO, "unwind: reporting the modules of %d: %s",
			     (int)pid, r > 0 ? strerror(r) : dwfl_errmsg(-1));
		if (!existing)
			dwfl_end(dwfl);
		dwfl = NULL;
		goto out;
	}
	/* Open every file now, while /proc/PID/map_files still exists. */
	dwfl_getmodules(dwfl, open_elf_cb, NULL, 0);
	cur_open = NULL;
out:
	ms_maps_free(&ctx.maps);
	return dwfl;
}

/* ================================ backend ================================ */

struct dwfl_priv {
	Dwfl *dwfl;
	/* Compiled CFI rows (NULL with MEMSPY_UNWIND_CACHE=0): most walks never call libdw. */
	struct ms_cfi_cache *cache;
	/* MEMSPY_VERIFY_UNWIND=1: every walk the table finishes is redone with libdw and
	 * compared; the libdw stack is the one kept. Summary on stderr at the end. */
	bool verify;
	uint64_t verified, mismatches;
	/* The walk in progress. */
	const struct ms_stack_copy *cur;
	ms_raddr_t *pcs;
	size_t max, n, frames;
	uint64_t last_sp;
	uint64_t maps_sig; /* the file mappings the Dwfl was built from */
};

/*
 * A signature of the target's file mappings (what libdwfl reports as
 * modules). A refresh rebuilds the Dwfl only when it changed: a rebuild
 * reopens every file (decompressing debug sections) and drops every CFI
 * cache, which cost more than the unwinding itself when done every 2 s.
 * 0 when the maps cannot be read (always rebuild then).
 */
static uint64_t maps_signature(pid_t pid)
{
	struct ms_maps maps;
	uint64_t h = 0xcbf29ce484222325ull;

	if (ms_maps_read(pid, &maps, NULL) < 0)
		return 0;
	for (size_t i = 0; i < maps.n; i++) {
		const struct ms_map *m = &maps.v[i];
		uint64_t v[5] = {m->start, m->end, m->offset, m->inode,
				 (uint64_t)m->dev_major << 32 | m->dev_minor};

		if (!m->path || (m->path[0] != '/' && strcmp(m->path, "[vdso]") != 0))
			continue;
		for (size_t k = 0; k < MS_ARRAY_SIZE(v); k++)
			h = (h ^ v[k]) * 0x100000001b3ull;
		for (const char *c = m->path; *c; c++)
			h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	}
	ms_maps_free(&maps);
	return h ? h : 1;
}

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	return 0; /* threads are only ever named by ms_unwind */
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	*thread_argp = arg;
	return true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct dwfl_priv *p = arg;
	uint64_t v;

	if (!p->cur || ms_unwind_read_word(p->cur, addr, &v) < 0)
		return false;
	*result = v;
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	const struct dwfl_priv *p = arg;
	Dwarf_Word regs[MS_UNWIND_NREGS];

	ms_unwind_regs_dwarf(p->cur->regs, regs);
	return dwfl_thread_state_registers(thread, 0, MS_UNWIND_NREGS, regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct dwfl_priv *p = arg;
	Dwarf_Addr pc;
	Dwarf_Word sp;
	bool activation;

	if (!dwfl_frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	if (p->frames++ == 0) { /* the initial frame: pcs[0] = rip already */
		p->last_sp = p->cur->regs->rsp;
		return DWARF_CB_OK;
	}
	if (pc == 0)
		return DWARF_CB_ABORT;
	/* Hostile or corrupt stacks: every caller's frame lies above its
	 * callee's. A stack pointer that does not move up ends the walk. */
	if (dwfl_frame_reg(state, 7, &sp) == 0) {
		if (sp <= p->last_sp)
			return DWARF_CB_ABORT;
		p->last_sp = sp;
	}
	p->pcs[p->n++] = pc;
	return p->n < p->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static int attach_new(struct ms_unwinder *u, struct dwfl_priv *p, struct ms_error *err)
{
	/* Taken before the report: a change in between shows at the next refresh. */
	p->maps_sig = maps_signature(u->pid);
	p->dwfl = ms_unwind_dwfl_open(u->pid, false, NULL, err);
	if (!p->dwfl)
		return err ? err->code : -EIO;
	if (!dwfl_attach_state(p->dwfl, NULL, u->pid, &thread_callbacks, p)) {
		int r = ms_error_set(err, -EIO, "unwind: dwfl_attach_state(%d): %s", (int)u->pid,
				     dwfl_errmsg(-1));

		dwfl_end(p->dwfl);
		p->dwfl = NULL;
		return r;
	}
	/* A PC may belong to another module now. */
	if (p->cache)
		ms_cfi_cache_clear(p->cache);
	return 0;
}

static bool env_flag(const char *name, bool dflt)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return dflt;
	return strcmp(v, "0") != 0 && strcmp(v, "off") != 0 && strcmp(v, "no") != 0;
}

static int dw_init(struct ms_unwinder *u, struct ms_error *err)
{
	struct dwfl_priv *p = ms_xcalloc(1, sizeof(*p));
	int r;

	if (env_flag("MEMSPY_UNWIND_CACHE", true))
		p->cache = ms_cfi_cache_new();
	p->verify = p->cache && env_flag("MEMSPY_VERIFY_UNWIND", false);
	r = attach_new(u, p, err);
	if (r < 0) {
		ms_cfi_cache_free(p->cache);
		free(p);
		return r;
	}
	u->priv = p;
	return 0;
}

static int dw_refresh(struct ms_unwinder *u)
{
	struct dwfl_priv *p = u->priv;
	struct ms_error err;
	Dwfl *old = p->dwfl;
	uint64_t old_sig = p->maps_sig, sig = maps_signature(u->pid);
	int r;

	if (sig && sig == old_sig)
		return 0; /* the same modules at the same places: the caches stay valid */
	/* A Dwfl is attached to a process state once: start a new one, and
	 * keep the old one if the new one cannot be made. */
	p->dwfl = NULL;
	r = attach_new(u, p, &err);
	if (r < 0) {
		p->dwfl = old;
		p->maps_sig = old_sig;
		return r;
	}
	dwfl_end(old);
	return 0;
}

static void dw_fini(struct ms_unwinder *u)
{
	struct dwfl_priv *p = u->priv;

	if (p->verify) {
		struct ms_cfi_cache_stats st;

		ms_cfi_cache_stats(p->cache, &st);
		/* One line a script can check; the test does. */
		fprintf(stderr,
			"memspy: unwind verification: %llu stacks compared, %llu mismatches "
			"(%llu walks, %llu by the CFI table, %llu by libdw; %llu rows compiled, "
			"%llu PCs left to libdw)\n",
			(unsigned long long)p->verified, (unsigned long long)p->mismatches,
			(unsigned long long)st.walks, (unsigned long long)st.done,
			(unsigned long long)st.fallbacks, (unsigned long long)st.rows,
			(unsigned long long)st.opaque);
	}
	if (p->cache && !p->verify) {
		struct ms_cfi_cache_stats st;

		ms_cfi_cache_stats(p->cache, &st);
		ms_debug("unwind: %llu walks, %llu by the CFI table, %llu by libdw; %llu rows "
			 "compiled, %llu PCs left to libdw, %llu flushes",
			 (unsigned long long)st.walks, (unsigned long long)st.done,
			 (unsigned long long)st.fallbacks, (unsigned long long)st.rows,
			 (unsigned long long)st.opaque, (unsigned long long)st.flushes);
	}
	if (p->dwfl)
		dwfl_end(p->dwfl);
	ms_cfi_cache_free(p->cache);
	free(p);
}

void ms_unwind_dwfl_cache_stats(const struct ms_unwinder *u, struct ms_cfi_cache_stats *out,
				uint64_t *mismatches)
{
	const struct dwfl_priv *p = u->priv;

	memset(out, 0, sizeof(*out));
	if (u->ops == &ms_unwind_dwfl_ops && p->cache)
		ms_cfi_cache_stats(p->cache, out);
	if (mismatches)
		*mismatches = u->ops == &ms_unwind_dwfl_ops ? p->mismatches : 0;
}

static void libdw_walk(struct ms_unwinder *u, struct dwfl_priv *p, const struct ms_stack_copy *s,
		       ms_raddr_t *pcs, size_t max, size_t *n)
{
	p->cur = s;
	p->pcs = pcs;
	p->max = max;
	p->n = *n;
	p->frames = 0;
	/* -1 at the end of the CFI or of the copy is normal: keep what was found. */
	dwfl_getthread_frames(p->dwfl, u->pid, frame_cb, p);
	*n = p->n;
	p->cur = NULL;
}

/* Prints the first few differences in full: enough to find the rule at fault. */
static void report_mismatch(struct dwfl_priv *p, const struct ms_stack_copy *s,
			    const ms_raddr_t *want, size_t nwant, const ms_raddr_t *got, size_t ngot)
{
	if (++p->mismatches > 5)
		return;
	fprintf(stderr, "memspy: unwind verification: mismatch at rip 0x%llx rsp 0x%llx\n",
		(unsigned long long)s->regs->rip, (unsigned long long)s->regs->rsp);
	for (size_t i = 0; i < nwant || i < ngot; i++) {
		char a[24] = "-", b[24] = "-";

		if (i < nwant)
			snprintf(a, sizeof(a), "0x%llx", (unsigned long long)want[i]);
		if (i < ngot)
			snprintf(b, sizeof(b), "0x%llx", (unsigned long long)got[i]);
		fprintf(stderr, "  #%-3zu libdw %-18s table %s%s\n", i, a, b,
			i < nwant && i < ngot && want[i] == got[i] ? "" : "   <-");
	}
}

static int dw_unwind(struct ms_unwinder *u, const struct ms_stack_copy *s, ms_raddr_t *pcs,
		     size_t max, size_t *n)
{
	struct dwfl_priv *p = u->priv;
	ms_raddr_t want[MS_UNWIND_VERIFY_MAX];
	size_t nwant = 1;

	if (!p->cache || !ms_cfi_cache_unwind(p->cache, p->dwfl, s, pcs, max, n)) {
		*n = 1; /* the table's partial walk is dropped: libdw does it all */
		libdw_walk(u, p, s, pcs, max, n);
		return 0;
	}
	if (!p->verify)
		return 0;
	/* Verification: the libdw walk is the truth, and the result. */
	if (max > MS_ARRAY_SIZE(want))
		max = MS_ARRAY_SIZE(want); /* deeper walks: compared up to here */
	if (*n > max)
		*n = max;
	want[0] = pcs[0];
	libdw_walk(u, p, s, want, max, &nwant);
	p->verified++;
	if (nwant != *n || memcmp(want, pcs, nwant * sizeof(*pcs)) != 0)
		report_mismatch(p, s, want, nwant, pcs, *n);
	memcpy(pcs, want, nwant * sizeof(*pcs));
	*n = nwant;
	return 0;
}

const struct ms_unwind_ops ms_unwind_dwfl_ops = {
    .name = "elfutils",
    .init = dw_init,
    .refresh = dw_refresh,
    .fini = dw_fini,
    .unwind = dw_unwind,
};
