// SPDX-License-Identifier: MIT
/*
 * Which entry points to probe: the allocator symbols of each module, the
 * C++ operators that do not reach a probed entry on their own (following
 * PLT slots and GOT entries), and the checks that refuse an entry a 5-byte
 * jmp cannot safely replace (too short, a branch lands inside it). Needs no
 * stop: it runs before the target is stopped.
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

static const struct {
	const char *sym;
	enum ms_alloc_fn fn;
} entry_points[] = {
    {"malloc", MS_FN_MALLOC},
    {"calloc", MS_FN_CALLOC},
    {"realloc", MS_FN_REALLOC},
    {"free", MS_FN_FREE},
    {"posix_memalign", MS_FN_POSIX_MEMALIGN},
    {"aligned_alloc", MS_FN_ALIGNED_ALLOC},
    {"memalign", MS_FN_MEMALIGN},
    {"valloc", MS_FN_VALLOC},
    {"pvalloc", MS_FN_PVALLOC},
};

static bool have_entry(const struct ms_probes *pr, ms_raddr_t a)
{
	for (size_t i = 0; i < pr->ns; i++)
		if (pr->s[i].entry == a)
			return true;
	return false;
}

static void add_site(struct ms_probes *pr, const struct ms_modules *mods, size_t mi,
		     const char *sym, enum ms_alloc_fn fn)
{
	const struct ms_module *m = &mods->v[mi];
	ms_raddr_t a;
	uint64_t size;
	struct site *s;

	if (ms_module_symbol(m, sym, &a, &size) || a < m->start || a >= m->end || have_entry(pr, a))
		return;
	if (probe_fn_kind(fn) == MS_SK_FREE && !pr->opts.track_frees)
		return; /* nothing to report: leave free untouched */
	ms_xgrow((void **)&pr->s, &pr->cap_s, pr->ns + 1, sizeof(*pr->s));
	s = &pr->s[pr->ns++];
	memset(s, 0, sizeof(*s));
	s->fn = fn;
	s->sym = sym;
	s->entry = a;
	s->end = a + (size ? size : 1);
	/* A glibc-only name: jemalloc's or tcmalloc's memalign never reaches their malloc. */
	s->glibc = !ms_module_symbol(m, "__libc_memalign", &a, &size);
	s->mod = mi;
	s->slot = -1;
	s->name = ms_xasprintf("%s@%s", sym, probe_base_name(m->path));
	s->open_path = ms_xstrdup(m->open_path ? m->open_path : m->path);
}

static void drop_site(struct ms_probes *pr, size_t i)
{
	free(pr->s[i].name);
	free(pr->s[i].open_path);
	pr->s[i] = pr->s[--pr->ns];
}

static bool is_loader(const struct ms_module *m)
{
	const char *b = probe_base_name(m->path);

	return !strncmp(b, "ld-linux", 8) || !strncmp(b, "ld64.so", 7);
}

/*
 * libc, the executable, and any other module (a preloaded allocator) that
 * defines malloc itself. C++ operators: see probe_plan_cxx.
 */
void probe_plan_sites(struct ms_probes *pr, const struct ms_modules *mods)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		const struct ms_module *m = &mods->v[mi];
		bool libc = !strncmp(probe_base_name(m->path), "libc.so", 7);
		ms_raddr_t a;
		uint64_t sz;

		if (is_loader(m))
			continue;
		if (!libc && !m->is_exec && ms_module_symbol(m, "malloc", &a, &sz))
			continue;
		for (size_t k = 0; k < MS_ARRAY_SIZE(entry_points); k++)
			add_site(pr, mods, mi, entry_points[k].sym, entry_points[k].fn);
	}
	for (size_t c = 0; c < pr->opts.n_custom; c++) {
		size_t before = pr->ns;

		for (size_t mi = 0; mi < mods->n && pr->ns == before; mi++)
			add_site(pr, mods, mi, pr->opts.custom_symbols[c], MS_FN_CUSTOM);
		if (pr->ns == before)
			ms_warn("probe: --probe %s: no module of process %d defines it",
				pr->opts.custom_symbols[c], (int)pr->pid);
	}
	for (size_t c = 0; c < pr->opts.n_custom_free && pr->opts.track_frees; c++) {
		size_t before = pr->ns;

		for (size_t mi = 0; mi < mods->n && pr->ns == before; mi++)
			add_site(pr, mods, mi, pr->opts.custom_free_symbols[c], MS_FN_CUSTOM_FREE);
		if (pr->ns == before)
			ms_warn("probe: --probe-free %s: no module of process %d defines it",
				pr->opts.custom_free_symbols[c], (int)pr->pid);
	}
}

/*
 * C++ operators. In GCC's libstdc++ each operator new/delete calls malloc,
 * aligned_alloc or free (or another operator) through the PLT within a few
 * instructions: the libc probes see those allocations already, with the
 * operator on the stack, and probing the operator too would count them
 * twice. So an operator is probed only when its first instructions do not
 * reach a probed entry: directly, through a PLT slot the dynamic linker has
 * filled, or through another operator (depth-limited).
 */
/*
 * The 3-argument deletes (pointer, size, alignment in rdx) are probed like
 * the others: every path of the free stub keeps rdx (the ring path saves
 * it around the freed-ring push; a trap does not touch it).
 */
static const struct {
	const char *sym;
	enum ms_alloc_fn fn;
} cxx_points[] = {
    {"_Znwm", MS_FN_OPERATOR_NEW},
    {"_Znam", MS_FN_OPERATOR_NEW},
    {"_ZnwmRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnamRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnwmSt11align_val_t", MS_FN_OPERATOR_NEW},
    {"_ZnamSt11align_val_t", MS_FN_OPERATOR_NEW},
    {"_ZnwmSt11align_val_tRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZnamSt11align_val_tRKSt9nothrow_t", MS_FN_OPERATOR_NEW},
    {"_ZdlPv", MS_FN_OPERATOR_DELETE},
    {"_ZdaPv", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvm", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvm", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvRKSt9nothrow_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvRKSt9nothrow_t", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdlPvmSt11align_val_t", MS_FN_OPERATOR_DELETE},
    {"_ZdaPvmSt11align_val_t", MS_FN_OPERATOR_DELETE},
};

static bool is_site_entry(const struct ms_probes *pr, ms_raddr_t a)
{
	return a && have_entry(pr, a);
}

/*
 * The symbol a PLT/GOT slot at runtime address slot of module m is bound to,
 * from the module file's JUMP_SLOT/GLOB_DAT relocations: the slot's value
 * is no help while lazy binding has not resolved it yet. false if none.
 */
static bool slot_symbol(const struct ms_module *m, ms_raddr_t slot, char *buf, size_t size)
{
	int fd = ms_module_open(m); /* never a plain open(): a FIFO there blocks it */
	Elf *e;
	Elf_Scn *scn = NULL;
	bool found = false;

	if (fd < 0)
		return false;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (e && !found && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		Elf_Scn *symscn;
		GElf_Shdr symsh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		symscn = elf_getscn(e, sh.sh_link);
		d = elf_getdata(scn, NULL);
		if (!symscn || !d || !gelf_getshdr(symscn, &symsh))
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;
			GElf_Sym sym;
			const char *name;
			unsigned type;

			if (!gelf_getrela(d, (int)i, &r))
				break;
			type = (unsigned)GELF_R_TYPE(r.r_info);
			if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) ||
			    r.r_offset + m->bias != slot)
				continue;
			if (gelf_getsym(elf_getdata(symscn, NULL), (int)GELF_R_SYM(r.r_info),
					&sym) &&
			    (name = elf_strptr(e, symsh.sh_link, sym.st_name))) {
				snprintf(buf, size, "%s", name);
				found = true;
			}
			break;
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	return found;
}

static bool reaches_probe(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t a,
			  int depth);

/*
 * Follows a GOT slot: covered when its value is a probed entry, or when the
 * symbol it is bound to is a probed allocator's name or an operator that is.
 */
static bool slot_reaches(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t slot,
			 int depth)
{
	const struct ms_module *m = ms_modules_find(mods, slot);
	ms_raddr_t v = 0;
	char name[128];

	if (ms_mem_read_pid(pr->pid, slot, &v, sizeof(v)) == sizeof(v) &&
	    (is_site_entry(pr, v) ||
	     (m && v >= m->start && v < m->end ? false : reaches_probe(pr, mods, v, depth + 1))))
		return true;
	if (!m || !slot_symbol(m, slot, name, sizeof(name)))
		return false;
	for (size_t i = 0; i < pr->ns; i++)
		if (!strcmp(pr->s[i].sym, name))
			return true; /* binds to a probed allocator once resolved */
	for (size_t mi = 0; mi < mods->n; mi++) {
		ms_raddr_t a;
		uint64_t sz;

		if (!ms_module_symbol(&mods->v[mi], name, &a, &sz))
			return is_site_entry(pr, a) || reaches_probe(pr, mods, a, depth + 1);
	}
	return false;
}

/* The GOT slot a PLT stub at t jumps through, or 0. */
static ms_raddr_t plt_slot(const struct ms_probes *pr, ms_raddr_t t)
{
	uint8_t code[32];
	size_t off = 0;

	if (ms_mem_read_pid(pr->pid, t, code, sizeof(code)) != (ssize_t)sizeof(code))
		return 0;
	for (int n = 0; n < 2; n++) {
		size_t len;
		enum ms_flow f;
		ms_raddr_t slot;

		if (ms_decode_flow(code + off, sizeof(code) - off, t + off, &len, &f, &slot))
			return 0;
		if (f == MS_FLOW_JMP_MEM)
			return slot;
		if (f != MS_FLOW_NONE)
			return 0;
		off += len; /* endbr64 */
	}
	return 0;
}

static bool reaches_probe(const struct ms_probes *pr, const struct ms_modules *mods, ms_raddr_t a,
			  int depth)
{
	uint8_t code[160];
	size_t off = 0;

	if (!a || depth > 3 ||
	    ms_mem_read_pid(pr->pid, a, code, sizeof(code)) != (ssize_t)sizeof(code))
		return false;
	for (int n = 0; n < 24 && off + 16 <= sizeof(code); n++) {
		size_t len;
		enum ms_flow f;
		ms_raddr_t t, slot;

		if (ms_decode_flow(code + off, sizeof(code) - off, a + off, &len, &f, &t))
			return false;
		if (f == MS_FLOW_JMP_MEM)
			return slot_reaches(pr, mods, t, depth);
		if (f == MS_FLOW_CALL || f == MS_FLOW_JMP || f == MS_FLOW_JCC) {
			if (is_site_entry(pr, t))
				return true;
			slot = plt_slot(pr, t);
			if (slot && slot_reaches(pr, mods, slot, depth))
				return true;
			if (!slot && f != MS_FLOW_JCC && reaches_probe(pr, mods, t, depth + 1))
				return true;
		}
		if (f == MS_FLOW_JMP || f == MS_FLOW_END)
			return false;
		off += len;
	}
	return false;
}

void probe_plan_cxx(struct ms_probes *pr, const struct ms_modules *mods)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		const struct ms_module *m = &mods->v[mi];

		if (is_loader(m))
			continue;
		for (size_t k = 0; k < MS_ARRAY_SIZE(cxx_points); k++) {
			ms_raddr_t a;
			uint64_t sz;

			if (cxx_points[k].fn == MS_FN_OPERATOR_DELETE && !pr->opts.track_frees)
				continue; /* frees are probed only for --live */
			if (ms_module_symbol(m, cxx_points[k].sym, &a, &sz) || a < m->start ||
			    a >= m->end || have_entry(pr, a))
				continue;
			if (reaches_probe(pr, mods, a, 0)) {
				ms_debug(
				    "probe: %s@%s calls a probed allocator entry: covered by it",
				    cxx_points[k].sym, probe_base_name(m->path));
				continue;
			}
			add_site(pr, mods, mi, cxx_points[k].sym, cxx_points[k].fn);
		}
	}
}

/* Reads each entry and checks that it can be relocated (dest = a nearby dummy). */
void probe_check_sites(struct ms_probes *pr)
{
	for (size_t i = 0; i < pr->ns;) {
		struct site *s = &pr->s[i];
		ssize_t n = ms_mem_read_pid(pr->pid, s->entry, s->orig, sizeof(s->orig));
		int rc = -EFAULT;

		if (n == (ssize_t)sizeof(s->orig))
			rc = ms_decode_relocate(s->orig, sizeof(s->orig), s->entry,
						s->entry - (1 << 20), PATCH_LEN, &s->reloc);
		if (rc) {
			probe_skip_site(pr, s, "its entry at %#llx cannot be relocated: %s",
				  (unsigned long long)s->entry,
				  rc == -MS_E_UNSUPPORTED ? s->reloc.why : ms_strerror(rc));
			drop_site(pr, i);
			continue;
		}
		i++;
	}
}

/*
 * One linear sweep of each module's executable mappings for relative
 * branches that land inside a patched range (entry+1 .. entry+N-1): such a
 * branch would jump into the middle of the jmp. Done before stopping.
 */
void probe_sweep_sites(struct ms_probes *pr, const struct ms_modules *mods,
			const struct ms_maps *maps)
{
	for (size_t mi = 0; mi < mods->n; mi++) {
		struct ms_range *rgs = NULL;
		size_t *idx = NULL, nr = 0;

		for (size_t i = 0; i < pr->ns; i++) {
			if (pr->s[i].mod != mi)
				continue;
			rgs = ms_xrealloc(rgs, (nr + 1) * sizeof(*rgs));
			idx = ms_xrealloc(idx, (nr + 1) * sizeof(*idx));
			rgs[nr] =
			    (struct ms_range){.lo = pr->s[i].entry + 1,
					      .hi = pr->s[i].entry + pr->s[i].reloc.displaced};
			idx[nr++] = i;
		}
		if (!nr)
			continue;
		for (size_t k = 0; k < maps->n; k++) {
			const struct ms_map *mp = &maps->v[k];
			uint8_t *text;
			ssize_t n;

			if (!mp->x || mp->start < mods->v[mi].start || mp->end > mods->v[mi].end)
				continue;
			text = ms_xmalloc(mp->end - mp->start);
			n = ms_mem_read_pid(pr->pid, mp->start, text, mp->end - mp->start);
			if (n > 0)
				ms_decode_sweep(text, (size_t)n, mp->start, rgs, nr);
			free(text);
		}
		/* Drop from the highest index so the others stay valid. */
		for (size_t j = nr; j-- > 0;) {
			if (!rgs[j].hit_from)
				continue;
			probe_skip_site(
			    pr, &pr->s[idx[j]],
			    "the branch at %#llx lands inside its first %zu bytes (%#llx)",
			    (unsigned long long)rgs[j].hit_from, pr->s[idx[j]].reloc.displaced,
			    (unsigned long long)rgs[j].hit_to);
			pr->s[idx[j]].entry = 0; /* marked; removed below */
		}
		free(rgs);
		free(idx);
	}
	for (size_t i = 0; i < pr->ns;) {
		if (!pr->s[i].entry)
			drop_site(pr, i);
		else
			i++;
	}
}
