// SPDX-License-Identifier: MIT
/*
 * Locating glibc malloc in a running process: libc's version, the layout,
 * main_arena, mp_ and each thread's tcache. DWARF from the debug file found
 * by build id when present; otherwise version tables plus heuristics that
 * were checked against the DWARF answers on glibc 2.31, 2.36 and 2.41
 * (tests/glibc_roots).
 */
#include "heapwalk/heapwalk_int.h"
#include "attach/debuginfo.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef R_X86_64_TPOFF64
#define R_X86_64_TPOFF64 18
#endif

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : (p ? p : "");
}

static bool is_libc_name(const char *path)
{
	const char *b = base_name(path);

	/* libc.so.6 (2.34+ and most distributions) or libc-2.NN.so (older). */
	return !strncmp(b, "libc.so.6", 9) || (!strncmp(b, "libc-2.", 7) && strstr(b, ".so"));
}

/* The mapping of libc with file offset 0, or NULL. */
static const struct ms_map *find_libc(const struct ms_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].path && maps->v[i].offset == 0 && is_libc_name(maps->v[i].path))
			return &maps->v[i];
	return NULL;
}

/*
 * Opens a mapped file the way the target sees it: map_files finds the
 * mapped inode across chroots and mount namespaces; /proc/PID/root + path
 * is the fallback, checked to hold that inode. -errno on failure.
 */
static int open_mapped(pid_t pid, const struct ms_map *m)
{
	return ms_open_mapped_file(pid, m, NULL, NULL);
}

/* Load bias from the PT_LOAD that maps file offset m->offset. */
static int elf_bias(Elf *elf, const struct ms_map *m, ms_raddr_t *bias)
{
	size_t n;

	if (elf_getphdrnum(elf, &n) != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if ((ph.p_offset & ~0xfffull) != m->offset)
			continue;
		*bias = m->start - (ph.p_vaddr & ~0xfffull);
		return 0;
	}
	return -EINVAL;
}

static void elf_build_id_hex(Elf *elf, char *out, size_t size)
{
	Elf_Scn *scn = NULL;

	out[0] = '\0';
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t off = 0, noff, doff;
		GElf_Nhdr nh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp((char *)d->d_buf + noff, "GNU", 4)) {
				const unsigned char *b = (const unsigned char *)d->d_buf + doff;

				for (size_t i = 0; i < nh.n_descsz && 2 * i + 2 < size; i++)
					snprintf(out + 2 * i, 3, "%02x", b[i]);
				return;
			}
		}
	}
}

/* "2.36" from the banner in libc's .rodata ("... release version 2.36."). */
static void libc_version(int fd, char *out, size_t size)
{
	struct stat st;
	const char *key = "release version ";
	void *map;
	char *hit;

	out[0] = '\0';
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (1ll << 30))
		return;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return;
	hit = memmem(map, (size_t)st.st_size, key, strlen(key));
	if (hit) {
		const char *v = hit + strlen(key);
		const char *end = (const char *)map + st.st_size;
		size_t n = 0;

		while (v + n < end && n + 1 < size && (v[n] == '.' || (v[n] >= '0' && v[n] <= '9')))
			n++;
		while (n && v[n - 1] == '.')
			n--;
		memcpy(out, v, n);
		out[n] = '\0';
	}
	munmap(map, (size_t)st.st_size);
}

/* R_X86_64_TPOFF64 relocations with symbol 0: GOT slots of libc's static TLS. */
struct tpoff_rel {
	uint64_t offset; /* r_offset (link-time address of the GOT slot) */
	int64_t addend;  /* TLS-block offset of the variable */
};

static size_t tpoff_relocs(Elf *elf, struct tpoff_rel **out)
{
	Elf_Scn *scn = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Rela r;

			if (!gelf_getrela(d, (int)i, &r))
				break;
			if (GELF_R_TYPE(r.r_info) != R_X86_64_TPOFF64 || GELF_R_SYM(r.r_info) != 0)
				continue;
			ms_xgrow((void **)out, &cap, n + 1, sizeof(**out));
			(*out)[n].offset = r.r_offset;
			(*out)[n].addend = r.r_addend;
			n++;
		}
	}
	return n;
}

/* ------------------------------------------------------------- DWARF path */

struct dwarf_syms {
	ms_raddr_t main_arena, mp, global_max_fast;
	int64_t tcache_tls; /* st_value of the STT_TLS symbol tcache, -1 unknown */
};

static int locate_dwarf(pid_t pid, const char *open_path, ms_raddr_t bias, struct ms_heap_loc *loc,
			struct dwarf_syms *s)
{
	char dbg_path[256];
	char *dbg_path_p = dbg_path;
	Dwfl_Callbacks cb = {
		.find_elf = dwfl_build_id_find_elf,
		.find_debuginfo = ms_debuginfo_find, /* local only: the target is paused */
		.debuginfo_path = &dbg_path_p,
	};
	Dwfl *dwfl;
	Dwfl_Module *mod;
	Dwarf *dw;
	Dwarf_Addr dbias;
	int nsym, r = -MS_E_NOT_FOUND;

	/* Never go to the network mid-incident: no debuginfod. */
	ms_debuginfo_init();
	/* The target's own debug directory too, for processes in containers. */
	snprintf(dbg_path, sizeof(dbg_path), "+:.debug:/usr/lib/debug:/proc/%d/root/usr/lib/debug",
		 (int)pid);
	dwfl = dwfl_begin(&cb);
	if (!dwfl)
		return -ENOMEM;
	dwfl_report_begin(dwfl);
	mod = dwfl_report_elf(dwfl, "libc", open_path, -1, bias, true);
	dwfl_report_end(dwfl, NULL, NULL);
	if (!mod)
		goto out;
	dw = dwfl_module_getdwarf(mod, &dbias);
	if (!dw)
		goto out;
	if (hw_layout_from_dwarf(dw, &loc->layout) != 0)
		goto out;
	nsym = dwfl_module_getsymtab(mod);
	for (int i = 0; i < nsym; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);

		if (!name)
			continue;
		if (GELF_ST_TYPE(sym.st_info) == STT_TLS) {
			if (!strcmp(name, "tcache"))
				s->tcache_tls = (int64_t)sym.st_value;
			continue;
		}
		if (GELF_ST_TYPE(sym.st_info) != STT_OBJECT)
			continue;
		if (!strcmp(name, "main_arena"))
			s->main_arena = addr;
		else if (!strcmp(name, "mp_"))
			s->mp = addr;
		else if (!strcmp(name, "global_max_fast"))
			s->global_max_fast = addr;
	}
	if (s->main_arena && s->mp)
		r = 0;
out:
	dwfl_end(dwfl);
	return r;
}

/*
 * What libc's DWARF yields (the layout, symbol offsets from the load bias,
 * tcache's TLS offset) depends on that build of libc alone, and reading it
 * means inflating its compressed debug sections: 0.1-0.5 s on a loaded
 * machine, much of a dump. So it is kept per build-id in
 * $XDG_CACHE_HOME/memspy (else ~/.cache/memspy), as gdb's index-cache does;
 * a record of another size (another memspy) or build-id is ignored.
 * MEMSPY_NO_CACHE=1 turns it off.
 */
struct dwarf_cache {
	char magic[8];
	uint32_t rec_size;
	uint32_t pad;
	char build_id[130];
	struct ms_heap_layout layout;
	uint64_t main_arena, mp, global_max_fast; /* minus the load bias */
	int64_t tcache_tls;
};

static int cache_dir(char *buf, size_t size, bool create)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME"), *no = getenv("MEMSPY_NO_CACHE");

	if (no && no[0] && strcmp(no, "0"))
		return -1;
	if (x && x[0] == '/')
		snprintf(buf, size, "%s", x);
	else if (h && h[0] == '/')
		snprintf(buf, size, "%s/.cache", h);
	else
		return -1;
	if (create)
		mkdir(buf, 0700);
	snprintf(buf + strlen(buf), size - strlen(buf), "/memspy");
	if (create)
		mkdir(buf, 0700);
	return 0;
}

static int cache_load(const char *build_id, ms_raddr_t bias, struct ms_heap_loc *loc,
		      struct dwarf_syms *ds)
{
	struct dwarf_cache c;
	char path[512];
	ssize_t n;
	int fd;

	if (!build_id[0] || cache_dir(path, sizeof(path) - 150, false))
		return -1;
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/dwarf-%s", build_id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, &c, sizeof(c));
	close(fd);
	if (n != (ssize_t)sizeof(c) || memcmp(c.magic, "msdwarf1", 8) || c.rec_size != sizeof(c) ||
	    strncmp(c.build_id, build_id, sizeof(c.build_id)) || !c.layout.ar_size ||
	    !c.main_arena || !c.mp)
		return -1;
	loc->layout = c.layout;
	ds->main_arena = bias + c.main_arena;
	ds->mp = bias + c.mp;
	ds->global_max_fast = c.global_max_fast ? bias + c.global_max_fast : 0;
	ds->tcache_tls = c.tcache_tls;
	return 0;
}

static void cache_store(const char *build_id, ms_raddr_t bias, const struct ms_heap_loc *loc,
			const struct dwarf_syms *ds)
{
	struct dwarf_cache c;
	char dir[512], tmp[700], path[700];
	int fd;

	if (!build_id[0] || cache_dir(dir, sizeof(dir), true))
		return;
	memset(&c, 0, sizeof(c));
	memcpy(c.magic, "msdwarf1", 8);
	c.rec_size = sizeof(c);
	snprintf(c.build_id, sizeof(c.build_id), "%s", build_id);
	c.layout = loc->layout;
	c.main_arena = ds->main_arena - bias;
	c.mp = ds->mp - bias;
	c.global_max_fast = ds->global_max_fast ? ds->global_max_fast - bias : 0;
	c.tcache_tls = ds->tcache_tls;
	snprintf(path, sizeof(path), "%s/dwarf-%s", dir, build_id);
	snprintf(tmp, sizeof(tmp), "%s/.dwarf-%s.XXXXXX", dir, build_id);
	fd = mkstemp(tmp);
	if (fd < 0)
		return;
	/* Written whole, then renamed: a reader never sees half a record. */
	if (write(fd, &c, sizeof(c)) != (ssize_t)sizeof(c) || close(fd) != 0 ||
	    rename(tmp, path) != 0)
		unlink(tmp);
}

/* --------------------------------------------------------- heuristic path */

/* libc's writable data: its rw mappings plus the anonymous .bss right after. */
struct rwbuf {
	ms_raddr_t start;
	size_t len;
	unsigned char *buf;
};

/* The most of one writable mapping of libc's file searched for main_arena. */
#define LIBC_RW_MAX (64ull << 20)
/*
 * And all of them together: up to 8 are kept, each up to twice LIBC_RW_MAX
 * with its anonymous neighbour, 1 GiB in all. The mappings that follow one
 * of libc's own (its data after its RELRO page) are read first; the rest
 * only while the total stays under this.
 */
#define LIBC_RW_TOTAL (128ull << 20)

static size_t libc_rw(const struct ms_maps *maps, const struct ms_map *libc,
		      const struct ms_reader *r, struct rwbuf *out, size_t max)
{
	size_t n = 0, skipped = 0;
	uint64_t total = 0;

	/* Pass 0: mappings right after one of libc's own (its data after its
	 * RELRO page); pass 1: the others, which the process may have added. */
	for (size_t i = 0; i < 2 * maps->n && n < max; i++) {
		size_t k = i % maps->n;
		const struct ms_map *m = &maps->v[k];
		const struct ms_map *next = k + 1 < maps->n ? &maps->v[k + 1] : NULL;
		const struct ms_map *prev = k ? &maps->v[k - 1] : NULL;
		bool own;
		uint64_t len;
		ssize_t got;

		if (!m->path || m->inode != libc->inode || m->dev_major != libc->dev_major ||
		    m->dev_minor != libc->dev_minor || !m->w || !m->r)
			continue;
		own = prev && prev->end == m->start && prev->inode == m->inode &&
		      prev->dev_major == m->dev_major && prev->dev_minor == m->dev_minor;
		if (own != (i < maps->n))
			continue;
		/*
		 * libc's own writable data is tens of KiB; the process can map
		 * libc's file again, writable, as long as it likes (past the
		 * file's end too): such a mapping is not read whole.
		 */
		if (m->end - m->start > LIBC_RW_MAX)
			continue;
		len = m->end - m->start;
		if (next && !next->path && next->start == m->end && next->w && next->r &&
		    next->end - next->start < LIBC_RW_MAX)
			len += next->end - next->start;
		if (total + len > LIBC_RW_TOTAL) {
			skipped++;
			continue;
		}
		total += len;
		out[n].start = m->start;
		out[n].len = len;
		out[n].buf = ms_xmalloc(out[n].len);
		got = r->read(r->ctx, out[n].start, out[n].buf, out[n].len);
		if (got <= 0) {
			free(out[n].buf);
			continue;
		}
		out[n].len = (size_t)got;
		n++;
	}
	if (skipped)
		ms_debug("locate: %zu of libc's writable mappings not searched (more than %llu MiB "
			 "in all)",
			 skipped, (unsigned long long)(LIBC_RW_TOTAL >> 20));
	return n;
}

static bool rw_ptr(const struct ms_maps *maps, ms_raddr_t p)
{
	const struct ms_map *m = ms_maps_find(maps, p);

	return m && m->r && m->w;
}

static bool arena_shape(const struct ms_heap_layout *l, const struct ms_maps *maps,
			const unsigned char *a, ms_raddr_t addr)
{
	unsigned selfref = 0;
	ms_raddr_t top = hw_rd64(a + l->ar_top);

	if ((uint32_t)hw_rd32(a + l->ar_mutex) > 2 || (uint32_t)hw_rd32(a + l->ar_flags) > 7)
		return false;
	for (unsigned i = 1; i < HW_NBINS; i++) {
		ms_raddr_t bin = addr + l->ar_bins + (i - 1) * 16 - 16;
		ms_raddr_t fd = hw_rd64(a + l->ar_bins + (i - 1) * 16);
		ms_raddr_t bk = hw_rd64(a + l->ar_bins + (i - 1) * 16 + 8);

		if (fd == bin && bk == bin) {
			selfref++;
			continue;
		}
		if ((fd & 15) || (bk & 15) || !rw_ptr(maps, fd) || !rw_ptr(maps, bk))
			return false;
	}
	if (selfref < 8)
		return false;
	if (top != addr + l->ar_bins - 16 && ((top & 15) || !rw_ptr(maps, top)))
		return false;
	return rw_ptr(maps, hw_rd64(a + l->ar_next));
}

static bool ring_returns(const struct ms_heap_layout *l, const struct ms_reader *r, ms_raddr_t s)
{
	ms_raddr_t a = s;

	for (unsigned i = 0; i < HW_MAX_ARENAS; i++) {
		uint64_t next;

		if (ms_read_exact(r, a + l->ar_next, &next, 8) != 0 || (next & 7))
			return false;
		if (next == s)
			return true;
		a = next;
	}
	return false;
}

static ms_raddr_t scan_main_arena(const struct ms_heap_layout *l, const struct ms_maps *maps,
				  const struct ms_reader *r, const struct rwbuf *rw, size_t nrw)
{
	for (size_t k = 0; k < nrw; k++)
		for (size_t o = 0; o + l->ar_size <= rw[k].len; o += 8) {
			ms_raddr_t a = rw[k].start + o;

			if (arena_shape(l, maps, rw[k].buf + o, a) && ring_returns(l, r, a))
				return a;
		}
	return 0;
}

static ms_raddr_t scan_mp(const struct ms_heap_layout *l, const struct ms_maps *maps,
			  const struct rwbuf *rw, size_t nrw)
{
	ms_raddr_t heap_start = 0, heap_end = 0;

	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].path && !strcmp(maps->v[i].path, "[heap]")) {
			if (!heap_start)
				heap_start = maps->v[i].start;
			heap_end = maps->v[i].end;
		}
	/*
	 * sbrk_base is the start of [heap] unless something called brk before
	 * malloc did: with GLIBC_TUNABLES set, 2.31's ld.so does. Exact match first.
	 */
	for (int pass = 0; pass < 2; pass++)
	for (size_t k = 0; k < nrw; k++)
		for (size_t o = 0; o + l->mp_size <= rw[k].len; o += 8) {
			const unsigned char *p = rw[k].buf + o;
			uint64_t sbrk = hw_rd64(p + l->mp_sbrk_base);
			uint64_t mmapped = hw_rd64(p + l->mp_mmapped_mem);
			int32_t n_mmaps = hw_rd32(p + l->mp_n_mmaps);
			int32_t n_mmaps_max = hw_rd32(p + l->mp_n_mmaps + 4);

			if (heap_start && pass == 0 && sbrk != heap_start)
				continue;
			if (heap_start && pass == 1 && (sbrk < heap_start || sbrk >= heap_end))
				continue;
			if (!heap_start && sbrk && !rw_ptr(maps, sbrk))
				continue;
			if (n_mmaps < 0 || n_mmaps > n_mmaps_max || n_mmaps_max < 0 ||
			    (mmapped & 0xfff) || hw_rd64(p + l->mp_mmap_threshold) > (64u << 20))
				continue;
			if (l->tc_sizeof && (hw_rd64(p + l->mp_tcache_bins) > 64 ||
					     hw_rd64(p + l->mp_tcache_max_bytes) > 1032 ||
					     hw_rd64(p + l->mp_tcache_count) > 65535))
				continue;
			if (!heap_start && !sbrk && n_mmaps_max != 65536)
				continue;
			return rw[k].start + o;
		}
	return 0;
}

/* -------------------------------------------------------------- the API */

int ms_heap_locate(pid_t pid, const struct ms_maps *maps, const struct ms_reader *r,
		   const struct ms_heap_locate_opts *opts, struct ms_heap_loc *loc,
		   struct ms_error *err)
{
	const struct ms_map *libc;
	struct dwarf_syms ds = {.tcache_tls = -1};
	struct tpoff_rel *rels = NULL;
	struct rwbuf rw[8];
	size_t nrels = 0, nrw = 0;
	char open_path[256];
	Elf *elf = NULL;
	ms_raddr_t bias = 0;
	uint64_t t0 = ms_now_ns();
	int fd = -1, ret = 0;

	memset(loc, 0, sizeof(*loc));
	libc = find_libc(maps);
	if (!libc)
		return ms_error_set(err, -MS_E_NO_GLIBC,
				    "dump: process %d has no glibc (no libc.so.6 mapped)", (int)pid);
	snprintf(loc->libc_path, sizeof(loc->libc_path), "%s", libc->path);
	fd = open_mapped(pid, libc);
	if (fd < 0) {
		ret = ms_error_set(err, fd, "dump: cannot open %s of process %d: %s", libc->path,
				   (int)pid, strerror(-fd));
		ms_error_hint(err, "memspy reads libc through /proc/%d/map_files or /proc/%d/root; "
				   "run memspy as root or with CAP_SYS_PTRACE", (int)pid, (int)pid);
		goto out;
	}
	snprintf(open_path, sizeof(open_path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
		 (int)pid, libc->start, libc->end);
	if (access(open_path, R_OK) != 0)
		snprintf(open_path, sizeof(open_path), "/proc/%d/fd/%d", (int)getpid(), fd);
	libc_version(fd, loc->glibc_version, sizeof(loc->glibc_version));
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_bias(elf, libc, &bias) != 0) {
		ret = ms_error_set(err, -MS_E_UNSUPPORTED, "dump: %s: not a readable ELF file",
				   libc->path);
		goto out;
	}
	elf_build_id_hex(elf, loc->build_id, sizeof(loc->build_id));
	{
		unsigned maj = 0, min = 0;

		if (hw_parse_version(loc->glibc_version, &maj, &min) == 0)
			ms_heap_layout_for_version(maj, min, &loc->layout);
		loc->layout.ver_major = maj;
		loc->layout.ver_minor = min;
		loc->layout_source = "table";
	}
	if (!opts || !opts->no_debuginfo) {
		struct ms_heap_layout saved = loc->layout;

		bool cached = cache_load(loc->build_id, bias, loc, &ds) == 0;

		if (cached || locate_dwarf(pid, open_path, bias, loc, &ds) == 0) {
			if (!cached)
				cache_store(loc->build_id, bias, loc, &ds);
			ms_debug("heapwalk: layout of libc %s from DWARF%s", loc->build_id,
				 cached ? " (cached)" : "");
			loc->layout_source = "dwarf";
			loc->symbol_source = "dwarf";
			loc->main_arena = ds.main_arena;
			loc->mp = ds.mp;
			loc->global_max_fast = ds.global_max_fast;
		} else {
			loc->layout = saved;
			memset(&ds, 0, sizeof(ds));
			ds.tcache_tls = -1;
		}
	}
	if (!loc->layout.ar_size) {
		ret = ms_error_set(err, -MS_E_UNSUPPORTED,
				   "dump: glibc %s in process %d is not supported without debug info",
				   loc->glibc_version[0] ? loc->glibc_version : "(unknown version)",
				   (int)pid);
		ms_error_hint(err, "memspy knows the layouts of glibc 2.26 and newer; install the "
				   "libc debug symbols (Debian: libc6-dbg) so they are read from DWARF");
		goto out;
	}
	if (!loc->main_arena) {
		nrw = libc_rw(maps, libc, r, rw, MS_ARRAY_SIZE(rw));
		loc->main_arena = scan_main_arena(&loc->layout, maps, r, rw, nrw);
		loc->mp = scan_mp(&loc->layout, maps, rw, nrw);
		loc->symbol_source = "heuristic";
		if (!loc->main_arena || !loc->mp) {
			ret = ms_error_set(err, -MS_E_NOT_FOUND,
					   "dump: could not find glibc's %s in %s of process %d "
					   "(no debug info, heuristics failed)",
					   !loc->main_arena ? "main_arena" : "mp_", libc->path, (int)pid);
			ms_error_hint(err, "install the libc debug symbols (Debian: libc6-dbg) so "
					   "memspy can read their addresses from DWARF");
			goto out;
		}
	}

	/* Each thread's &tcache = fs_base + (the GOT slot libc relocated for it). */
	nrels = tpoff_relocs(elf, &rels);
	for (size_t i = 0, cap = 0; i < nrels; i++) {
		int64_t v;

		if (ms_read_exact(r, bias + rels[i].offset, &v, 8) != 0)
			continue;
		if (ds.tcache_tls >= 0 && rels[i].addend == ds.tcache_tls) {
			loc->have_tpoff = true;
			loc->tcache_tpoff = v;
		}
		ms_xgrow((void **)&loc->tpoff_cand, &cap, loc->ntpoff_cand + 1,
			 sizeof(*loc->tpoff_cand));
		loc->tpoff_cand[loc->ntpoff_cand++] = v;
	}
out:
	for (size_t i = 0; i < nrw; i++)
		free(rw[i].buf);
	free(rels);
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
	loc->locate_ms = (double)(ms_now_ns() - t0) / 1e6;
	return ret;
}

/* Does p look like a tcache_perthread_struct (the mem of a chunk of its size)? */
static bool tcache_shape(const struct ms_heap_loc *loc, const struct ms_reader *r,
			 const struct ms_maps *maps, ms_raddr_t p)
{
	uint64_t sz;

	if (!p || (p & 15) || !rw_ptr(maps, p) || !rw_ptr(maps, p - 8))
		return false;
	if (ms_read_exact(r, p - 8, &sz, 8) != 0)
		return false;
	return (sz & ~(uint64_t)HW_FLAGS) == ((loc->layout.tc_sizeof + 8 + 15) & ~15ull);
}

int ms_heap_locate_threads(struct ms_heap_loc *loc, const struct ms_reader *r,
			   const struct ms_maps *maps, const pid_t *tids, const ms_raddr_t *fs_base,
			   size_t n)
{
	free(loc->threads);
	loc->threads = ms_xcalloc(n ? n : 1, sizeof(*loc->threads));
	loc->nthreads = n;
	for (size_t i = 0; i < n; i++) {
		loc->threads[i].tid = tids[i];
		loc->threads[i].fs_base = fs_base[i];
	}
	if (!loc->layout.tc_sizeof)
		return 0;
	/*
	 * No debug info: libc has a dozen static-TLS GOT slots. The one whose
	 * value, for the most threads, points at a chunk the size of a
	 * tcache_perthread_struct is tcache.
	 */
	if (!loc->have_tpoff) {
		size_t best = 0, best_hits = 0;

		for (size_t c = 0; c < loc->ntpoff_cand; c++) {
			size_t hits = 0;

			for (size_t i = 0; i < n; i++) {
				uint64_t v;

				if (ms_read_exact(r, fs_base[i] + (uint64_t)loc->tpoff_cand[c], &v,
						  8) == 0 &&
				    tcache_shape(loc, r, maps, v))
					hits++;
			}
			if (hits > best_hits) {
				best_hits = hits;
				best = c;
			}
		}
		if (!best_hits)
			return 0;
		loc->have_tpoff = true;
		loc->tcache_tpoff = loc->tpoff_cand[best];
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		ms_raddr_t var = fs_base[i] + (uint64_t)loc->tcache_tpoff;

		if (!fs_base[i])
			continue;
		loc->threads[i].tcache_var = var;
		if (ms_read_exact(r, var, &v, 8) == 0)
			loc->threads[i].tcache = v;
	}
	return 0;
}

void ms_heap_loc_free(struct ms_heap_loc *loc)
{
	if (!loc)
		return;
	free(loc->threads);
	free(loc->tpoff_cand);
	loc->threads = NULL;
	loc->tpoff_cand = NULL;
	loc->nthreads = loc->ntpoff_cand = 0;
}

/* ------------------------------------------------- allocator detection */

/* Does the ELF file define symbol name in .dynsym? */
static bool elf_defines(int fd, const char *name)
{
	Elf *elf;
	Elf_Scn *scn = NULL;
	bool found = false;

	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return false;
	while (!found && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
		    !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *n;

			if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
				continue;
			n = elf_strptr(elf, sh.sh_link, s.st_name);
			if (n && !strcmp(n, name)) {
				found = true;
				break;
			}
		}
	}
	elf_end(elf);
	return found;
}

static const struct {
	const char *prefix, *name;
} foreign_libs[] = {
	{"libjemalloc", "jemalloc"},   {"libtcmalloc", "tcmalloc"}, {"libmimalloc", "mimalloc"},
	{"ld-musl-", "musl"},          {"libc.musl", "musl"},       {"libasan", "AddressSanitizer"},
	{"libtsan", "ThreadSanitizer"}, {"liblsan", "LeakSanitizer"}, {"vgpreload_memcheck", "valgrind"},
	{"libhoard", "hoard"},         {"libtbbmalloc", "tbbmalloc"}, {"libsnmalloc", "snmalloc"},
};

bool ms_heap_detect_allocator(pid_t pid, const struct ms_maps *maps, char *buf, size_t size)
{
	const struct ms_map *exe = NULL;
	bool have_libc = find_libc(maps) != NULL;

	for (size_t i = 0; i < maps->n; i++) {
		const struct ms_map *m = &maps->v[i];
		const char *b = base_name(m->path);

		if (!m->path || m->offset != 0 || m->path[0] != '/')
			continue;
		if (!exe)
			exe = m; /* the executable is mapped first */
		/* musl's loader is its libc: maps shows .../x86_64-linux-musl/libc.so */
		if (!have_libc && (!strcmp(b, "libc.so") || strstr(m->path, "musl"))) {
			snprintf(buf, size, "musl libc (%s)", m->path);
			return false;
		}
		for (size_t k = 0; k < MS_ARRAY_SIZE(foreign_libs); k++) {
			int fd;
			bool defines;

			if (strncmp(b, foreign_libs[k].prefix, strlen(foreign_libs[k].prefix)))
				continue;
			/* A library that does not export malloc (prefixed API) does not replace it. */
			fd = open_mapped(pid, m);
			defines = fd < 0 || elf_defines(fd, "malloc");
			if (fd >= 0)
				close(fd);
			if (defines || !have_libc) {
				snprintf(buf, size, "%s (%s)", foreign_libs[k].name, m->path);
				return false;
			}
		}
	}
	if (!have_libc) {
		int fd = exe ? open_mapped(pid, exe) : -1;
		const char *what = "a statically linked executable or another C library";

		if (fd >= 0) {
			if (elf_defines(fd, "__init_libc") || elf_defines(fd, "__malloc_context"))
				what = "a statically linked musl executable (musl's mallocng)";
			else if (elf_defines(fd, "main_arena"))
				what = "a statically linked glibc executable (not supported yet)";
			else if (elf_defines(fd, "mallctl") || elf_defines(fd, "je_mallctl"))
				what = "a statically linked executable with jemalloc";
			close(fd);
		}
		snprintf(buf, size, "no libc.so.6: %s", what);
		return false;
	}
	if (exe && !is_libc_name(exe->path)) {
		int fd = open_mapped(pid, exe);

		if (fd >= 0) {
			bool own = elf_defines(fd, "malloc");
			bool je = own && (elf_defines(fd, "mallctl") || elf_defines(fd, "je_mallctl"));
			bool mi = own && elf_defines(fd, "mi_malloc");
			bool tc = own && elf_defines(fd, "tc_malloc");

			close(fd);
			if (own) {
				snprintf(buf, size, "%s linked into %s",
					 je ? "jemalloc" : mi ? "mimalloc" : tc ? "tcmalloc" :
					 "a malloc of its own", exe->path);
				return false;
			}
		}
	}
	snprintf(buf, size, "glibc");
	return true;
}
