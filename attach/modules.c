// SPDX-License-Identifier: MIT
/*
 * The module table: ELF files mapped by the target, each with its load bias
 * (from a mapping's file offset and the PT_LOAD that covers it, never from
 * the first mapping's start), build id and symbol lookup.
 */
#include "attach/attach_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PAGE_MASK_4K (~(uint64_t)0xfff)

static bool elf_ready(void)
{
	static int ok = -1;

	if (ok < 0)
		ok = elf_version(EV_CURRENT) != EV_NONE;
	return ok;
}

/* The ELF file open at fd; NULL (and fd closed) when it is not one. */
static Elf *open_elf(int fd)
{
	Elf *e;

	if (fd < 0)
		return NULL;
	e = elf_ready() ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
	if (!e || elf_kind(e) != ELF_K_ELF) {
		if (e)
			elf_end(e);
		close(fd);
		return NULL;
	}
	return e;
}

static void close_elf(Elf *e, int fd)
{
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
}

static bool same_file(const struct ms_map *a, const struct ms_map *b)
{
	return a->inode == b->inode && a->dev_major == b->dev_major &&
	       a->dev_minor == b->dev_minor && a->path && b->path && !strcmp(a->path, b->path);
}

static bool file_backed(const struct ms_map *m)
{
	return m->path && m->path[0] == '/' && m->inode != 0;
}

/*
 * The bias from one mapping: the PT_LOAD whose file range covers the
 * mapping's offset (same permissions first: a page can hold the end of
 * one segment and the start of the next, with different vaddr-offset).
 * Returns 0 with *bias set, or -MS_E_NOT_FOUND.
 */
static int bias_from_map(Elf *e, const struct ms_map *m, ms_raddr_t *bias)
{
	size_t n;
	int pass;

	if (elf_getphdrnum(e, &n) != 0)
		return -MS_E_NOT_FOUND;
	for (pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;
			uint64_t lo, hi;

			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			lo = ph.p_offset & PAGE_MASK_4K;
			hi = ph.p_offset + ph.p_filesz;
			if (m->offset < lo || m->offset >= MS_MAX(hi, lo + 1))
				continue;
			if (pass == 0 && (!!(ph.p_flags & PF_X) != m->x || !!(ph.p_flags & PF_W) != m->w))
				continue;
			/* start maps file offset m->offset, i.e. vaddr p_vaddr - (p_offset - m->offset). */
			*bias = m->start - (ph.p_vaddr - ph.p_offset + m->offset);
			return 0;
		}
	}
	return -MS_E_NOT_FOUND;
}

static void read_build_id(Elf *e, struct ms_module *mod)
{
	size_t n;

	if (elf_getphdrnum(e, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		Elf_Data *d;
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;

		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		d = elf_getdata_rawchunk(e, (int64_t)ph.p_offset, ph.p_filesz,
					 ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
		if (!d)
			continue;
		while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp((char *)d->d_buf + name_off, "GNU", 4) && nh.n_descsz > 0 &&
			    nh.n_descsz <= sizeof(mod->build_id)) {
				memcpy(mod->build_id, (char *)d->d_buf + desc_off, nh.n_descsz);
				mod->build_id_len = nh.n_descsz;
				return;
			}
		}
	}
}

static int cmp_module(const void *a, const void *b)
{
	const struct ms_module *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int ms_modules_load(pid_t pid, const struct ms_maps *maps, struct ms_modules *out)
{
	struct stat exe_st;
	bool have_exe;
	char exe_link[64];
	size_t cap = 0;
	bool *done;

	memset(out, 0, sizeof(*out));
	if (!elf_ready())
		return -ENOSYS;
	snprintf(exe_link, sizeof(exe_link), "/proc/%d/exe", (int)pid);
	have_exe = stat(exe_link, &exe_st) == 0;
	done = ms_xcalloc(maps->n + 1, sizeof(*done));

	for (size_t i = 0; i < maps->n; i++) {
		const struct ms_map *m = &maps->v[i];
		const struct ms_map *pick = NULL;
		struct ms_module mod;
		Elf *e;
		int fd;
		GElf_Ehdr eh;

		if (done[i] || !file_backed(m))
			continue;
		memset(&mod, 0, sizeof(mod));
		mod.start = m->start;
		mod.end = m->end;
		/* Group the mappings of this file; prefer an executable one for the bias. */
		for (size_t j = i; j < maps->n; j++) {
			const struct ms_map *o = &maps->v[j];

			if (done[j] || !file_backed(o) || !same_file(m, o))
				continue;
			done[j] = true;
			mod.start = MS_MIN(mod.start, o->start);
			mod.end = MS_MAX(mod.end, o->end);
			if (!pick || (o->x && !pick->x))
				pick = o;
		}
		/* map_files, else the target's root, checked to hold the mapped inode. */
		fd = ms_open_mapped_file(pid, pick, &mod.via_root, &mod.open_path);
		if (fd < 0) {
			ms_debug("modules: cannot open %s of pid %d: %s", m->path, (int)pid,
				 ms_strerror(fd));
			continue;
		}
		mod.id = *pick;
		mod.id.path = NULL;
		e = open_elf(fd);
		if (!e)
			fd = -1;
		if (!e || !gelf_getehdr(e, &eh) || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)) {
			/* Fonts, locale archives, caches: mapped files that are not code. */
			close_elf(e, fd);
			free(mod.open_path);
			continue;
		}
		if (bias_from_map(e, pick, &mod.bias) != 0) {
			ms_debug("modules: no PT_LOAD covers offset %#llx of %s",
				 (unsigned long long)pick->offset, pick->path);
			close_elf(e, fd);
			free(mod.open_path);
			continue;
		}
		read_build_id(e, &mod);
		mod.is_exec = eh.e_type == ET_EXEC ||
			      (have_exe && exe_st.st_ino == m->inode &&
			       major(exe_st.st_dev) == m->dev_major &&
			       minor(exe_st.st_dev) == m->dev_minor);
		if (!mod.is_exec && have_exe) {
			/* overlayfs shows the lower device in maps: compare by the link too. */
			char target[4096];
			ssize_t n = readlink(exe_link, target, sizeof(target) - 1);

			if (n > 0) {
				target[n] = '\0';
				mod.is_exec = !strcmp(target, m->path) && exe_st.st_ino == m->inode;
			}
		}
		close_elf(e, fd);
		mod.path = ms_xstrdup(m->path);
		ms_xgrow((void **)&out->v, &cap, out->n + 1, sizeof(*out->v));
		out->v[out->n++] = mod;
	}
	free(done);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_module);
	return 0;
}

void ms_modules_free(struct ms_modules *mods)
{
	for (size_t i = 0; i < mods->n; i++) {
		free(mods->v[i].path);
		free(mods->v[i].open_path);
	}
	free(mods->v);
	mods->v = NULL;
	mods->n = 0;
}

int ms_module_open(const struct ms_module *m)
{
	if (!m->open_path)
		return -ENOENT;
	return m->via_root ? ms_open_target_file_as(m->open_path, &m->id)
			   : ms_open_target_file(m->open_path);
}

const struct ms_module *ms_modules_find(const struct ms_modules *mods, ms_raddr_t addr)
{
	const struct ms_module *best = NULL;

	/* Spans may nest (a small library mapped in another's gap): take the tightest. */
	for (size_t i = 0; i < mods->n; i++) {
		const struct ms_module *m = &mods->v[i];

		if (addr >= m->start && addr < m->end &&
		    (!best || m->end - m->start < best->end - best->start))
			best = m;
	}
	return best;
}

const struct ms_module *ms_modules_find_name(const struct ms_modules *mods, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (size_t i = 0; i < mods->n; i++) {
		const char *slash = strrchr(mods->v[i].path, '/');
		const char *base = slash ? slash + 1 : mods->v[i].path;

		if (!strncmp(base, prefix, plen))
			return &mods->v[i];
	}
	return NULL;
}

const char *ms_module_build_id_hex(const struct ms_module *m, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	if (!size)
		return buf;
	for (i = 0; i < m->build_id_len && 2 * i + 2 < size; i++) {
		buf[2 * i] = hex[m->build_id[i] >> 4];
		buf[2 * i + 1] = hex[m->build_id[i] & 15];
	}
	buf[2 * i] = '\0';
	return buf;
}

static int find_in_symtab(Elf *e, Elf32_Word type, const char *name, const struct ms_module *m,
			  ms_raddr_t *addr, uint64_t *size)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s;
			const char *sn;
			int t;

			if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
				continue;
			t = GELF_ST_TYPE(s.st_info);
			if (t != STT_FUNC && t != STT_GNU_IFUNC && t != STT_OBJECT)
				continue;
			sn = elf_strptr(e, sh.sh_link, s.st_name);
			if (!sn || strcmp(sn, name))
				continue;
			*addr = m->bias + s.st_value;
			if (size)
				*size = s.st_size;
			return 0;
		}
	}
	return -MS_E_NOT_FOUND;
}

int ms_module_symbol(const struct ms_module *m, const char *name, ms_raddr_t *addr,
		     uint64_t *size)
{
	int fd = ms_module_open(m), r;
	Elf *e = open_elf(fd);

	if (!e)
		return -MS_E_NOT_FOUND;
	r = find_in_symtab(e, SHT_DYNSYM, name, m, addr, size);
	if (r)
		r = find_in_symtab(e, SHT_SYMTAB, name, m, addr, size);
	close_elf(e, fd);
	return r;
}
