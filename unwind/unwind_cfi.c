// SPDX-License-Identifier: MIT
/*
 * unwind/cfi: compiled CFI rows and the tight walk over them (see
 * unwind_cfi.h). The rules are read back from libdw's own answers
 * (dwarf_frame_cfa, dwarf_frame_register) and evaluated the way libdwfl
 * evaluates those answers when it unwinds a frame: a register whose rule
 * cannot be evaluated (memory outside the copy, a source register that is
 * not known) is left unknown rather than ending the walk, and the walk ends
 * where the return address is unknown or 0. Anything else libdwfl could do
 * differently (an expression, a signal frame, a return-address column other
 * than 16, a PC without an .eh_frame row, where libdwfl would try
 * .debug_frame and then its frame-pointer guess) is not compiled: the walk
 * gives up and libdw does the whole stack.
 */
#include "unwind/unwind_cfi.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdlib.h>
#include <string.h>

#define NREGS	  MS_UNWIND_NREGS
#define RA_REG	  16 /* the return-address column of x86-64 CIEs */
#define SP_REG	  7
#define ALL_REGS  ((1u << NREGS) - 1)
#define NO_ROW	  UINT32_MAX /* a PC the table leaves to libdw */
#define MAX_SLOTS (1u << 16) /* then the table starts over: ~6 MiB at most on hostile stacks */

enum rule_kind {
	RULE_SAME,   /* the caller's value is this frame's (when this frame knows it) */
	RULE_AT_CFA, /* saved in memory at CFA + off */
	RULE_CFA,    /* the value CFA + off (rsp) */
	RULE_REG,    /* the value of register off in this frame */
};

struct rule {
	int32_t off;  /* CFA offset, or the source register of RULE_REG */
	uint8_t reg;  /* DWARF number of the register the rule sets */
	uint8_t kind; /* enum rule_kind */
};

/* One compiled row: registers without a rule are undefined in the caller. */
struct row {
	int32_t cfa_off;
	uint8_t cfa_reg;
	uint8_t nrules;
	struct rule rules[NREGS];
};

struct slot {
	uint64_t pc; /* lookup address (pc, or pc - 1 for a return address); 0 = empty */
	uint32_t row;
};

struct ms_cfi_cache {
	struct slot *slots;
	size_t nslots, used; /* nslots a power of two, used <= nslots / 2 */
	struct row *rows;
	size_t nrows, cap_rows;
	struct ms_cfi_cache_stats st;
};

struct ms_cfi_cache *ms_cfi_cache_new(void)
{
	struct ms_cfi_cache *c = ms_xcalloc(1, sizeof(*c));

	c->nslots = 1024;
	c->slots = ms_xcalloc(c->nslots, sizeof(*c->slots));
	return c;
}

void ms_cfi_cache_free(struct ms_cfi_cache *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c->rows);
	free(c);
}

void ms_cfi_cache_clear(struct ms_cfi_cache *c)
{
	memset(c->slots, 0, c->nslots * sizeof(*c->slots));
	c->used = 0;
	c->nrows = 0;
	c->st.flushes++;
}

void ms_cfi_cache_stats(const struct ms_cfi_cache *c, struct ms_cfi_cache_stats *out)
{
	*out = c->st;
}

static inline size_t slot_of(const struct ms_cfi_cache *c, uint64_t pc)
{
	return (size_t)((pc * 0x9e3779b97f4a7c15ull) >> 20) & (c->nslots - 1);
}

static struct slot *find_slot(struct ms_cfi_cache *c, uint64_t pc)
{
	size_t i = slot_of(c, pc);

	while (c->slots[i].pc && c->slots[i].pc != pc)
		i = (i + 1) & (c->nslots - 1);
	return &c->slots[i];
}

static void grow_slots(struct ms_cfi_cache *c)
{
	struct slot *old = c->slots;
	size_t n = c->nslots;

	c->nslots *= 2;
	c->slots = ms_xcalloc(c->nslots, sizeof(*c->slots));
	for (size_t i = 0; i < n; i++)
		if (old[i].pc)
			*find_slot(c, old[i].pc) = old[i];
	free(old);
}

/* dwarf_frame_register's answer for one register -> a rule; false: not expressible. */
static bool compile_register(Dwarf_Frame *fr, int regno, struct row *row)
{
	Dwarf_Op mem[3], *ops;
	size_t nops, k = 0;
	struct rule r = {.reg = (uint8_t)regno};
	bool value = false;

	if (dwarf_frame_register(fr, regno, mem, &ops, &nops) != 0)
		return true; /* libdwfl leaves the register unknown */
	if (nops == 0) {
		if (ops == mem)
			return true; /* undefined */
		if (ops != NULL)
			return false;
		r.kind = RULE_SAME;
		row->rules[row->nrules++] = r;
		return true;
	}
	if (nops == 1 && ops[0].atom == DW_OP_regx) {
		if (ops[0].number >= NREGS)
			return true; /* a register libdwfl does not track: unknown */
		r.kind = RULE_REG;
		r.off = (int32_t)ops[0].number;
		row->rules[row->nrules++] = r;
		return true;
	}
	/* call_frame_cfa [plus_uconst N] [stack_value]: a location or a value. */
	if (ops[k++].atom != DW_OP_call_frame_cfa)
		return false;
	if (k < nops && ops[k].atom == DW_OP_plus_uconst) {
		int64_t off = (int64_t)ops[k++].number;

		if (off != (int32_t)off)
			return false;
		r.off = (int32_t)off;
	}
	if (k < nops && ops[k].atom == DW_OP_stack_value) {
		value = true;
		k++;
	}
	if (k != nops)
		return false;
	r.kind = value ? RULE_CFA : RULE_AT_CFA;
	row->rules[row->nrules++] = r;
	return true;
}

/* The row libdwfl would use at lookup address pc, compiled; false: leave pc to libdw. */
static bool compile_row(Dwfl *dwfl, uint64_t pc, struct row *row)
{
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, pc);
	Dwarf_Addr bias, start, end;
	Dwarf_CFI *cfi;
	Dwarf_Frame *fr;
	Dwarf_Op *ops;
	size_t nops;
	bool signalp, ok = false;

	if (!mod || !(cfi = dwfl_module_eh_cfi(mod, &bias)))
		return false;
	if (dwarf_cfi_addrframe(cfi, pc - bias, &fr) != 0)
		return false;
	if (dwarf_frame_info(fr, &start, &end, &signalp) != RA_REG || signalp)
		goto out;
	if (dwarf_frame_cfa(fr, &ops, &nops) != 0 || nops != 1 || ops[0].atom != DW_OP_bregx ||
	    ops[0].number >= NREGS)
		goto out;
	row->cfa_reg = (uint8_t)ops[0].number;
	row->cfa_off = (int64_t)ops[0].number2;
	if (row->cfa_off != (int32_t)row->cfa_off)
		goto out;
	row->nrules = 0;
	for (int regno = 0; regno < NREGS; regno++)
		if (!compile_register(fr, regno, row))
			goto out;
	ok = true;
out:
	free(fr);
	return ok;
}

/* The row for lookup address pc, compiled on first sight; NULL: libdw's. */
static const struct row *lookup(struct ms_cfi_cache *c, Dwfl *dwfl, uint64_t pc)
{
	struct slot *s;
	struct row row;

	if (pc == 0)
		return NULL;
	s = find_slot(c, pc);
	if (s->pc)
		return s->row == NO_ROW ? NULL : &c->rows[s->row];
	/* A miss: compile, then remember the answer either way. */
	if (c->used + 1 > c->nslots / 2) {
		if (c->nslots >= MAX_SLOTS)
			ms_cfi_cache_clear(c);
		else
			grow_slots(c);
		s = find_slot(c, pc);
	}
	c->used++;
	s->pc = pc;
	if (!compile_row(dwfl, pc, &row)) {
		s->row = NO_ROW;
		c->st.opaque++;
		return NULL;
	}
	if (c->nrows == c->cap_rows) {
		c->cap_rows = c->cap_rows ? c->cap_rows * 2 : 256;
		c->rows = realloc(c->rows, c->cap_rows * sizeof(*c->rows));
		if (!c->rows)
			abort();
	}
	c->rows[c->nrows] = row;
	s->row = (uint32_t)c->nrows++;
	c->st.rows++;
	return &c->rows[s->row];
}

static inline bool read_word(const struct ms_stack_copy *s, uint64_t addr, uint64_t *out)
{
	if (addr >= s->addr && s->len >= 8 && addr - s->addr <= s->len - 8) {
		memcpy(out, s->data + (addr - s->addr), 8);
		if (s->use)
			ms_unwind_note_read(s, addr, true);
		return true;
	}
	if (s->fallback)
		return ms_unwind_read_word(s, addr, out) == 0;
	if (s->use)
		ms_unwind_note_read(s, addr, false);
	return false;
}

bool ms_cfi_cache_unwind(struct ms_cfi_cache *c, Dwfl *dwfl, const struct ms_stack_copy *s,
			 ms_raddr_t *pcs, size_t max, size_t *n)
{
	uint64_t a[NREGS], b[NREGS] = {0}, *regs = a, *next = b, last_sp = s->regs->rsp;
	uint32_t known = ALL_REGS;
	bool initial = true;

	c->st.walks++;
	ms_unwind_regs_dwarf(s->regs, a);
	while (*n < max) {
		/* A return address points after its call: look up the call. */
		uint64_t pc = regs[RA_REG], cfa = 0;
		const struct row *row = lookup(c, dwfl, initial ? pc : pc - 1);
		uint32_t next_known = 0;
		bool cfa_known;

		if (!row) {
			c->st.fallbacks++;
			return false;
		}
		cfa_known = known >> row->cfa_reg & 1;
		if (cfa_known)
			cfa = regs[row->cfa_reg] + (uint64_t)row->cfa_off;
		for (unsigned i = 0; i < row->nrules; i++) {
			const struct rule *r = &row->rules[i];
			uint64_t v;

			switch (r->kind) {
			case RULE_SAME:
				if (!(known >> r->reg & 1))
					continue;
				v = regs[r->reg];
				break;
			case RULE_AT_CFA:
				if (!cfa_known || !read_word(s, cfa + (uint64_t)r->off, &v))
					continue;
				break;
			case RULE_CFA:
				if (!cfa_known)
					continue;
				v = cfa + (uint64_t)r->off;
				break;
			default: /* RULE_REG */
				if (!(known >> r->off & 1))
					continue;
				v = regs[r->off];
				break;
			}
			next[r->reg] = v;
			next_known |= 1u << r->reg;
		}
		/* No return address, or 0: the outermost frame (libdwfl: PC undefined). */
		if (!(next_known >> RA_REG & 1) || next[RA_REG] == 0)
			break;
		/* As the libdw walk's frame callback: a caller's frame lies above its callee's. */
		if (next_known >> SP_REG & 1) {
			if (next[SP_REG] <= last_sp)
				break;
			last_sp = next[SP_REG];
		}
		pcs[(*n)++] = next[RA_REG];
		/* The caller's registers become the current ones (only known ones are read). */
		{
			uint64_t *t = regs;

			regs = next;
			next = t;
		}
		known = next_known;
		initial = false;
	}
	c->st.done++;
	return true;
}
