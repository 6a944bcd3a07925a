// SPDX-License-Identifier: MIT
/*
 * unwind/symbolize: PC -> frames (inlined chain, function, file:line, module)
 * with libdwfl. An uncached lookup costs 50-110 us (doc/DESIGN.md, measured
 * costs), so each distinct PC is symbolised once and cached.
 */
#include "unwind/unwind_int.h"
#include "attach/debuginfo.h"

#include <dwarf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libstdc++'s demangler (C ABI). */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

struct mod_info {
	Dwfl_Module *mod;
	char *name;	/* basename */
	char *build_id; /* hex */
	Dwarf_Addr bias;
	unsigned long unnamed; /* frames asked for with no function name found */
};

struct sym_entry {
	uint64_t key; /* pc * 2 + is_return_address; 0 = empty slot (pc 0 is never cached) */
	struct ms_sym_frame *frames;
	size_t n;
	long mod; /* index into mods, -1 for none */
};

struct ms_symbolizer {
	pid_t pid;
	Dwfl *dwfl;
	struct mod_info *mods;
	size_t nmods, cap_mods;
	struct ms_sym_module *pub; /* ms_symbolizer_modules' answer */
	size_t cap_pub;
	struct sym_entry *tab; /* open addressing, power-of-two size */
	size_t tab_size, tab_used;
	struct ms_sym_frame unknown_pc0; /* for pc 0 */
	struct ms_perfmap *perfmap;	 /* names of code no file backs (JIT) */
	unsigned long jit_unnamed;	 /* frames of those in no module (no perf-map name either) */
	bool debuginfod;		 /* lookups may ask debuginfod */
	char exe[4096];			 /* /proc/PID/exe at creation; "" unknown */
	unsigned long frames, unnamed;	 /* ms_symbolize calls, and those without a name */
};

struct ms_symbolizer *ms_symbolizer_new(pid_t pid, struct ms_error *err)
{
	struct ms_symbolizer *s;
	Dwfl *dwfl = ms_unwind_dwfl_open(pid, false, NULL, err);

	if (!dwfl)
		return NULL;
	s = ms_xcalloc(1, sizeof(*s));
	s->pid = pid;
	s->dwfl = dwfl;
	s->tab_size = 1024;
	s->tab = ms_xcalloc(s->tab_size, sizeof(*s->tab));
	s->unknown_pc0 = (struct ms_sym_frame){.function = "??", .module = "??", .build_id = ""};
	s->perfmap = ms_perfmap_new(pid);
	{
		char link[64];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
		n = readlink(link, s->exe, sizeof(s->exe) - 1);
		s->exe[n > 0 ? n : 0] = '\0';
	}
	return s;
}

int ms_symbolizer_refresh(struct ms_symbolizer *s)
{
	/* Keep modules unmapped since: samples taken before may point there. */
	return ms_unwind_dwfl_open(s->pid, true, s->dwfl, NULL) ? 0 : -EIO;
}

void ms_symbolizer_free(struct ms_symbolizer *s)
{
	size_t i, j;

	if (!s)
		return;
	for (i = 0; i < s->tab_size; i++) {
		struct sym_entry *e = &s->tab[i];

		if (!e->key)
			continue;
		for (j = 0; j < e->n; j++) {
			free((char *)e->frames[j].function);
			free((char *)e->frames[j].file);
		}
		free(e->frames);
	}
	for (i = 0; i < s->nmods; i++) {
		free(s->mods[i].name);
		free(s->mods[i].build_id);
	}
	free(s->mods);
	free(s->pub);
	free(s->tab);
	ms_perfmap_free(s->perfmap);
	dwfl_end(s->dwfl);
	free(s);
}

static const struct mod_info *mod_info(struct ms_symbolizer *s, Dwfl_Module *mod)
{
	const unsigned char *bits;
	const char *name, *slash;
	GElf_Addr vaddr;
	struct mod_info *m;
	size_t i;
	int len;

	for (i = 0; i < s->nmods; i++)
		if (s->mods[i].mod == mod)
			return &s->mods[i];
	ms_xgrow((void **)&s->mods, &s->cap_mods, s->nmods + 1, sizeof(*s->mods));
	m = &s->mods[s->nmods++];
	memset(m, 0, sizeof(*m));
	m->mod = mod;
	name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	name = name ? name : "??";
	slash = strrchr(name, '/');
	m->name = ms_xstrdup(slash ? slash + 1 : name);
	dwfl_module_getelf(mod, &m->bias);
	len = dwfl_module_build_id(mod, &bits, &vaddr);
	m->build_id = ms_xcalloc(1, len > 0 ? 2 * (size_t)len + 1 : 1);
	for (i = 0; len > 0 && i < (size_t)len; i++)
		sprintf(m->build_id + 2 * i, "%02x", bits[i]);
	return m;
}

static char *strndup_or_die(const char *s, size_t n)
{
	char *d = ms_xmalloc(n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static char *demangle(const char *versioned)
{
	char *name, *d;
	int status;

	if (!versioned)
		return NULL;
	/* ELF symbol versions ("pthread_create@GLIBC_2.2.5", "memcpy@@GLIBC_2.14")
	 * name the same function as the plain name; keep flame graphs readable. */
	name = strndup_or_die(versioned, strcspn(versioned, "@"));
	if (name[0] == '_' && name[1] == 'Z') {
		d = __cxa_demangle(name, NULL, NULL, &status);
		if (d && status == 0) {
			free(name);
			name = ms_xstrdup(d); /* keep one allocator for our strings */
		}
		free(d);
	}
	return name;
}

/*
 * A DIE's name, qualified through its linkage name when that is a mangled
 * C++ one. A C linkage name is an asm alias (glibc's "__GI___libc_read" for
 * __libc_read): DW_AT_name reads better there.
 */
static char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *n = NULL;

	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
		n = dwarf_formstring(&attr);
	if (n && strncmp(n, "_Z", 2) != 0)
		n = NULL;
	if (!n && dwarf_attr_integrate(die, DW_AT_name, &attr))
		n = dwarf_formstring(&attr);
	return n ? demangle(n) : NULL;
}

struct frame_buf {
	struct ms_sym_frame *v;
	size_t n, cap;
};

static void push_frame(struct frame_buf *b, const struct mod_info *m, ms_raddr_t pc, char *function,
		       const char *file, int line, bool inlined)
{
	struct ms_sym_frame *f;

	ms_xgrow((void **)&b->v, &b->cap, b->n + 1, sizeof(*b->v));
	f = &b->v[b->n++];
	f->function = function ? function : ms_xstrdup("??");
	f->file = file ? ms_xstrdup(file) : NULL;
	f->line = file ? line : 0;
	f->module = m ? m->name : "??";
	f->build_id = m ? m->build_id : "";
	f->inlined = inlined;
	f->module_offset = m ? pc - m->bias : pc;
}

static void lookup(struct ms_symbolizer *s, ms_raddr_t pc, bool is_ra, struct frame_buf *b,
		   long *mod_index)
{
	Dwarf_Addr addr = is_ra && pc ? pc - 1 : pc, dwbias = 0;
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, addr);
	const struct mod_info *m;
	const char *file = NULL, *symname;
	Dwarf_Die *cudie, *scopes = NULL;
	Dwarf_Files *files = NULL;
	Dwfl_Line *dline;
	GElf_Off off;
	GElf_Sym sym;
	int line = 0, nscopes = 0, i;
	bool have_sub = false;

	*mod_index = -1;
	if (!mod) {
		const char *jit = ms_perfmap_lookup(s->perfmap, addr);

		push_frame(b, NULL, pc, jit ? ms_xstrdup(jit) : NULL, NULL, 0, false);
		if (jit)
			b->v[b->n - 1].module = ms_perfmap_module(s->perfmap);
		return;
	}
	m = mod_info(s, mod);
	*mod_index = m - s->mods;
	symname = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
	dline = dwfl_module_getsrc(mod, addr);
	if (dline)
		file = dwfl_lineinfo(dline, NULL, &line, NULL, NULL, NULL);
	cudie = dwfl_module_addrdie(mod, addr, &dwbias);
	if (cudie) {
		nscopes = dwarf_getscopes(cudie, addr - dwbias, &scopes);
		if (dwarf_getsrcfiles(cudie, &files, NULL) != 0)
			files = NULL;
	}
	/* Innermost first: each inlined_subroutine is a frame whose caller's
	 * position is its DW_AT_call_file:DW_AT_call_line. */
	for (i = 0; i < nscopes && !have_sub; i++) {
		Dwarf_Die *die = &scopes[i];
		Dwarf_Attribute attr;
		Dwarf_Word cf = 0, cl = 0;

		switch (dwarf_tag(die)) {
		case DW_TAG_inlined_subroutine:
			push_frame(b, m, pc, die_name(die), file, line, true);
			file = NULL;
			line = 0;
			if (dwarf_attr(die, DW_AT_call_file, &attr) &&
			    dwarf_formudata(&attr, &cf) == 0 && files)
				file = dwarf_filesrc(files, cf, NULL, NULL);
			if (dwarf_attr(die, DW_AT_call_line, &attr) &&
			    dwarf_formudata(&attr, &cl) == 0)
				line = (int)cl;
			break;
		case DW_TAG_subprogram: {
			char *n = die_name(die);

			if (!n && symname)
				n = demangle(symname);
			push_frame(b, m, pc, n, file, line, false);
			have_sub = true;
			break;
		}
		default:
			break;
		}
	}
	free(scopes);
	if (!have_sub && !symname) {
		/*
		 * A module's range runs from its lowest to its highest mapping, and
		 * node maps part of its text again near the top of the address
		 * space: JIT code between falls in "node". A perf-map name wins
		 * over no name.
		 */
		const char *jit = ms_perfmap_lookup(s->perfmap, addr);

		if (jit) {
			push_frame(b, NULL, pc, ms_xstrdup(jit), NULL, 0, false);
			b->v[b->n - 1].module = ms_perfmap_module(s->perfmap);
			*mod_index = -1;
			return;
		}
	}
	if (!have_sub)
		push_frame(b, m, pc, symname ? demangle(symname) : NULL, file, line, false);
}

static void tab_grow(struct ms_symbolizer *s)
{
	struct sym_entry *old = s->tab;
	size_t old_size = s->tab_size, i;

	s->tab_size *= 2;
	s->tab = ms_xcalloc(s->tab_size, sizeof(*s->tab));
	for (i = 0; i < old_size; i++) {
		size_t h;

		if (!old[i].key)
			continue;
		h = (size_t)(old[i].key * 0x9e3779b97f4a7c15ull) & (s->tab_size - 1);
		while (s->tab[h].key)
			h = (h + 1) & (s->tab_size - 1);
		s->tab[h] = old[i];
	}
	free(old);
}

int ms_symbolize(struct ms_symbolizer *s, ms_raddr_t pc, bool is_return_address,
		 const struct ms_sym_frame **frames, size_t *n)
{
	uint64_t key;
	struct frame_buf b = {0};
	size_t h;

	if (!s || !frames || !n || pc > UINT64_MAX / 2)
		return -EINVAL;
	if (pc == 0) {
		*frames = &s->unknown_pc0;
		*n = 1;
		return 0;
	}
	key = pc * 2 + (is_return_address ? 1 : 0);
	h = (size_t)(key * 0x9e3779b97f4a7c15ull) & (s->tab_size - 1);
	while (s->tab[h].key && s->tab[h].key != key)
		h = (h + 1) & (s->tab_size - 1);
	if (!s->tab[h].key) {
		bool net = ms_debuginfo_allow_network(s->debuginfod);
		long mod_index;

		lookup(s, pc, is_return_address, &b, &mod_index);
		ms_debuginfo_allow_network(net);
		for (size_t j = 0; j < b.n; j++)
			b.v[j].address = is_return_address ? pc - 1 : pc;
		if (2 * (s->tab_used + 1) > s->tab_size) {
			tab_grow(s);
			h = (size_t)(key * 0x9e3779b97f4a7c15ull) & (s->tab_size - 1);
			while (s->tab[h].key)
				h = (h + 1) & (s->tab_size - 1);
		}
		s->tab[h].key = key;
		s->tab[h].frames = b.v;
		s->tab[h].n = b.n;
		s->tab[h].mod = mod_index;
		s->tab_used++;
	}
	/* the containing function (last) without a name: a frame tools show as an address */
	s->frames++;
	if (!strcmp(s->tab[h].frames[s->tab[h].n - 1].function, "??")) {
		s->unnamed++;
		if (s->tab[h].mod >= 0)
			s->mods[s->tab[h].mod].unnamed++;
		else
			s->jit_unnamed++;
	}
	*frames = s->tab[h].frames;
	*n = s->tab[h].n;
	return 0;
}

/*
 * The executable PT_LOAD of m's ELF as the kernel maps it: page-aligned
 * start and file offset, end rounded up. Falls back to the module's whole
 * range (offset 0) when the ELF has no such segment.
 */
static void exec_segment(Dwfl_Module *mod, struct ms_sym_module *out)
{
	const uint64_t page = 4096;
	Dwarf_Addr low = 0, high = 0, bias = 0;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	size_t nph = 0;

	dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
	out->start = low;
	out->limit = high;
	out->file_offset = 0;
	if (!elf || elf_getphdrnum(elf, &nph) != 0)
		return;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		out->start = (bias + ph.p_vaddr) & ~(page - 1);
		out->limit = (bias + ph.p_vaddr + ph.p_memsz + page - 1) & ~(page - 1);
		out->file_offset = ph.p_offset & ~(page - 1);
		return;
	}
}

size_t ms_symbolizer_modules(struct ms_symbolizer *s, const struct ms_sym_module **out)
{
	ms_xgrow((void **)&s->pub, &s->cap_pub, s->nmods + 1, sizeof(*s->pub));
	for (size_t i = 0; i < s->nmods; i++) {
		struct ms_sym_module *p = &s->pub[i];
		const char *name =
		    dwfl_module_info(s->mods[i].mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

		memset(p, 0, sizeof(*p));
		p->path = name ? name : s->mods[i].name;
		p->build_id = s->mods[i].build_id;
		p->has_symbols = dwfl_module_getsymtab(s->mods[i].mod) > 0;
		p->is_main = s->exe[0] && !strcmp(p->path, s->exe);
		exec_segment(s->mods[i].mod, p);
	}
	*out = s->pub;
	return s->nmods;
}

void ms_symbolizer_set_debuginfod(struct ms_symbolizer *s, bool allow)
{
	s->debuginfod = allow;
}

char *ms_symbolizer_names_hint(struct ms_symbolizer *s)
{
	const struct mod_info *worst = NULL;
	const char *path;

	if (!s->frames || s->unnamed * 20 < s->frames)
		return NULL;
	for (size_t i = 0; i < s->nmods; i++)
		if (s->mods[i].unnamed && (!worst || s->mods[i].unnamed > worst->unnamed))
			worst = &s->mods[i];
	if (s->jit_unnamed && (!worst || s->jit_unnamed > worst->unnamed))
		return ms_xasprintf(
		    "names: %lu%% of the frames are in code no file backs (generated at run time by a "
		    "JIT) and have no name; memspy reads names for such code from the process's "
		    "/tmp/perf-PID.map, which runtimes write when asked (node --perf-basic-prof, "
		    "python3.12 -X perf, java with perf-map-agent)",
		    s->jit_unnamed * 100 / s->frames);
	if (!worst)
		return NULL;
	path = dwfl_module_info(worst->mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	return ms_debuginfo_hint(path ? path : worst->name, worst->build_id,
				 (unsigned)(s->unnamed * 100 / s->frames));
}
