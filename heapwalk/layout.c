// SPDX-License-Identifier: MIT
/*
 * Layouts of glibc malloc's structures: from libc's DWARF when present, else
 * from tables keyed by glibc version (from the glibc sources, 2.26 .. 2.41).
 */
#include "heapwalk/heapwalk_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hw_parse_version(const char *s, unsigned *major, unsigned *minor)
{
	unsigned a, b;

	if (!s || sscanf(s, "%u.%u", &a, &b) != 2)
		return -EINVAL;
	*major = a;
	*minor = b;
	return 0;
}

int ms_heap_layout_for_version(unsigned major, unsigned minor, struct ms_heap_layout *l)
{
	/* have_fastchunks (2.27) shifts everything after flags by 8 bytes. */
	uint32_t shift;

	memset(l, 0, sizeof(*l));
	if (major != 2 || minor < 26 || minor > 99)
		return -MS_E_UNSUPPORTED;
	l->ver_major = major;
	l->ver_minor = minor;
	shift = minor >= 27 ? 8 : 0;
	l->ar_mutex = 0;
	l->ar_flags = 4;
	l->ar_fastbins = 0x08 + shift;
	l->ar_top = 0x58 + shift;
	l->ar_bins = 0x68 + shift;
	l->ar_next = 0x868 + shift;
	l->ar_next_free = 0x870 + shift;
	l->ar_attached_threads = 0x878 + shift;
	l->ar_system_mem = 0x880 + shift;
	l->ar_size = 0x890 + shift;
	l->nfastbins = 10;

	/* 2.35 added thp_pagesize, hp_pagesize and hp_flags after arena_max. */
	if (minor >= 35) {
		l->mp_has_hp_pagesize = true;
		l->mp_hp_pagesize = 48;
		shift = 20; /* n_mmaps moves from 40 to 60 */
	} else {
		shift = 0;
	}
	l->mp_mmap_threshold = 16;
	l->mp_n_mmaps = 40 + shift;
	l->mp_mmapped_mem = minor >= 35 ? 80 : 56;
	l->mp_sbrk_base = l->mp_mmapped_mem + 16;
	l->mp_tcache_bins = l->mp_sbrk_base + 8;
	l->mp_tcache_max_bytes = l->mp_sbrk_base + 16;
	l->mp_tcache_count = l->mp_sbrk_base + 24;
	l->mp_size = l->mp_sbrk_base + 40;

	/* heap_info gained pagesize in 2.35 (sizeof 0x20 -> 0x30). */
	l->hi_ar_ptr = 0;
	l->hi_prev = 8;
	l->hi_size = 0x10;
	l->hi_mprotect_size = 0x18;
	l->hi_sizeof = minor >= 35 ? 0x30 : 0x20;

	/* tcache counts were char until 2.30, uint16_t since. */
	l->tc_nbins = 64;
	l->tc_counts = 0;
	l->tc_count_size = minor >= 30 ? 2 : 1;
	l->tc_entries = 64 * l->tc_count_size;
	l->tc_sizeof = l->tc_entries + 64 * 8;
	l->safe_linking = minor >= 32;
	return 0;
}

/* ------------------------------------------------------------------ DWARF */

static bool find_member(Dwarf_Die *st, const char *name, uint32_t *off, Dwarf_Die *type)
{
	Dwarf_Die child;

	if (dwarf_child(st, &child) != 0)
		return false;
	do {
		Dwarf_Attribute at;
		Dwarf_Word w;
		const char *n;

		if (dwarf_tag(&child) != DW_TAG_member)
			continue;
		n = dwarf_diename(&child);
		if (!n || strcmp(n, name))
			continue;
		if (!dwarf_attr(&child, DW_AT_data_member_location, &at) ||
		    dwarf_formudata(&at, &w) != 0 || w > 0x100000)
			return false;
		*off = (uint32_t)w;
		if (type) {
			Dwarf_Attribute ta;

			if (!dwarf_attr_integrate(&child, DW_AT_type, &ta) ||
			    !dwarf_formref_die(&ta, type))
				return false;
		}
		return true;
	} while (dwarf_siblingof(&child, &child) == 0);
	return false;
}

static bool struct_size(Dwarf_Die *st, uint32_t *out)
{
	Dwarf_Word sz;

	if (dwarf_aggregate_size(st, &sz) != 0 || sz == 0 || sz > 0x100000)
		return false;
	*out = (uint32_t)sz;
	return true;
}

/* Element size and count of an array type (typedefs peeled). */
static bool array_dims(Dwarf_Die *type, uint32_t *elem, uint32_t *count)
{
	Dwarf_Die arr, el;
	Dwarf_Attribute ta;
	Dwarf_Word total, esz;

	if (dwarf_peel_type(type, &arr) != 0 || dwarf_tag(&arr) != DW_TAG_array_type)
		return false;
	if (dwarf_aggregate_size(&arr, &total) != 0)
		return false;
	if (!dwarf_attr_integrate(&arr, DW_AT_type, &ta) || !dwarf_formref_die(&ta, &el))
		return false;
	if (dwarf_aggregate_size(&el, &esz) != 0 || esz == 0 || total % esz)
		return false;
	*elem = (uint32_t)esz;
	*count = (uint32_t)(total / esz);
	return true;
}

struct found {
	Dwarf_Die ms, mp, hi, tc;
	bool have_ms, have_mp, have_hi, have_tc;
};

static void scan_cu(Dwarf_Die *cu, struct found *f)
{
	Dwarf_Die d;

	if (dwarf_child(cu, &d) != 0)
		return;
	do {
		const char *n;
		Dwarf_Attribute decl;

		if (dwarf_tag(&d) != DW_TAG_structure_type)
			continue;
		if (dwarf_attr(&d, DW_AT_declaration, &decl))
			continue;
		n = dwarf_diename(&d);
		if (!n)
			continue;
		if (!f->have_ms && !strcmp(n, "malloc_state")) {
			f->ms = d;
			f->have_ms = true;
		} else if (!f->have_mp && !strcmp(n, "malloc_par")) {
			f->mp = d;
			f->have_mp = true;
		} else if (!f->have_hi && !strcmp(n, "_heap_info")) {
			f->hi = d;
			f->have_hi = true;
		} else if (!f->have_tc && !strcmp(n, "tcache_perthread_struct")) {
			f->tc = d;
			f->have_tc = true;
		}
	} while (dwarf_siblingof(&d, &d) == 0);
}

int hw_layout_from_dwarf(Dwarf *dw, struct ms_heap_layout *l)
{
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie, sub, t;
	uint8_t utype;
	Dwarf_Half ver;
	struct found f = {0};
	uint32_t esz, cnt;
	bool ok = true;

	/* Only the malloc.c unit defines these (arena.c is #included into it). */
	while (dwarf_get_units(dw, cu, &cu, &ver, &utype, &cudie, &sub) == 0) {
		const char *name = dwarf_diename(&cudie);
		size_t n;

		if (!name)
			continue;
		n = strlen(name);
		if (n < 8 || strcmp(name + n - 8, "malloc.c"))
			continue;
		scan_cu(&cudie, &f);
		if (f.have_ms && f.have_mp && f.have_hi)
			break;
	}
	if (!f.have_ms || !f.have_mp)
		return -MS_E_NOT_FOUND;

	ok &= find_member(&f.ms, "mutex", &l->ar_mutex, NULL);
	ok &= find_member(&f.ms, "flags", &l->ar_flags, NULL);
	ok &= find_member(&f.ms, "fastbinsY", &l->ar_fastbins, &t);
	if (ok && array_dims(&t, &esz, &cnt) && esz == 8)
		l->nfastbins = cnt;
	ok &= find_member(&f.ms, "top", &l->ar_top, NULL);
	ok &= find_member(&f.ms, "bins", &l->ar_bins, NULL);
	ok &= find_member(&f.ms, "next", &l->ar_next, NULL);
	ok &= find_member(&f.ms, "next_free", &l->ar_next_free, NULL);
	ok &= find_member(&f.ms, "attached_threads", &l->ar_attached_threads, NULL);
	ok &= find_member(&f.ms, "system_mem", &l->ar_system_mem, NULL);
	ok &= struct_size(&f.ms, &l->ar_size);

	ok &= find_member(&f.mp, "mmap_threshold", &l->mp_mmap_threshold, NULL);
	ok &= find_member(&f.mp, "n_mmaps", &l->mp_n_mmaps, NULL);
	ok &= find_member(&f.mp, "mmapped_mem", &l->mp_mmapped_mem, NULL);
	ok &= find_member(&f.mp, "sbrk_base", &l->mp_sbrk_base, NULL);
	ok &= struct_size(&f.mp, &l->mp_size);
	l->mp_has_hp_pagesize = find_member(&f.mp, "hp_pagesize", &l->mp_hp_pagesize, NULL);
	if (find_member(&f.mp, "tcache_bins", &l->mp_tcache_bins, NULL)) {
		ok &= find_member(&f.mp, "tcache_max_bytes", &l->mp_tcache_max_bytes, NULL);
		ok &= find_member(&f.mp, "tcache_count", &l->mp_tcache_count, NULL);
	}
	if (f.have_hi) {
		ok &= find_member(&f.hi, "ar_ptr", &l->hi_ar_ptr, NULL);
		ok &= find_member(&f.hi, "prev", &l->hi_prev, NULL);
		ok &= find_member(&f.hi, "size", &l->hi_size, NULL);
		ok &= find_member(&f.hi, "mprotect_size", &l->hi_mprotect_size, NULL);
		ok &= struct_size(&f.hi, &l->hi_sizeof);
	}
	if (f.have_tc) {
		ok &= find_member(&f.tc, "counts", &l->tc_counts, &t);
		if (ok && array_dims(&t, &esz, &cnt) && (esz == 1 || esz == 2)) {
			l->tc_count_size = esz;
			l->tc_nbins = cnt;
		} else {
			ok = false;
		}
		ok &= find_member(&f.tc, "entries", &l->tc_entries, NULL);
		ok &= struct_size(&f.tc, &l->tc_sizeof);
	}
	return ok ? 0 : -MS_E_NOT_FOUND;
}
